//! End-to-end tests of `candor_media::decode` on valid and hostile inputs.

mod common;

use candor_core::{ProblemKind, ToProblem};
use candor_media::{document_from_text, sniff, Decoded, Kind, Limits};
use common::*;
use image::ImageFormat;

fn image_of(d: Decoded) -> candor_media::DecodedImage {
    match d {
        Decoded::Image(i) => i,
        other => panic!("expected image, got {:?}", other.kind()),
    }
}

fn audio_of(d: Decoded) -> candor_media::DecodedAudio {
    match d {
        Decoded::Audio(a) => a,
        other => panic!("expected audio, got {:?}", other.kind()),
    }
}

fn doc_of(d: Decoded) -> candor_media::DecodedDocument {
    match d {
        Decoded::Document(x) => x,
        other => panic!("expected document, got {:?}", other.kind()),
    }
}

// ------------------------------------------------------------- images ----

#[test]
fn images_round_trip_in_every_format() {
    let src = gradient(40, 24);
    for (fmt, name) in [
        (ImageFormat::Png, "png"),
        (ImageFormat::Jpeg, "jpeg"),
        (ImageFormat::Gif, "gif"),
        (ImageFormat::Bmp, "bmp"),
        (ImageFormat::Tiff, "tiff"),
        (ImageFormat::WebP, "webp"),
    ] {
        let bytes = encode(&src, fmt);
        let d = ok(&bytes, &no_hint());
        assert_eq!(d.kind(), Kind::Image);
        assert_eq!(d.format(), name);
        assert_eq!(d.properties()["width"], 40);
        let img = image_of(d);
        assert_eq!(img.image.dimensions(), (40, 24), "{name}");
        assert_eq!((img.original_width, img.original_height), (40, 24));
        // Lossless formats keep pixels; lossy ones stay close.
        let p = img.image.get_pixel(20, 12).0;
        let q = src.get_pixel(20, 12).0;
        let tol = if matches!(name, "jpeg" | "gif") {
            24
        } else {
            0
        };
        for c in 0..3 {
            assert!(p[c].abs_diff(q[c]) <= tol, "{name}: {p:?} vs {q:?}");
        }
    }
}

#[test]
fn jpeg_exif_orientation_is_applied_and_fields_read() {
    let src = gradient(40, 20);
    let jpeg = encode(&src, ImageFormat::Jpeg);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(exif_blob(6));
    let bytes = jpeg_with_segment(&jpeg, 0xE1, &app1);
    let img = image_of(ok(&bytes, &no_hint()));
    assert_eq!(img.orientation, Some(6));
    assert_eq!((img.original_width, img.original_height), (40, 20));
    assert_eq!(img.image.dimensions(), (20, 40), "rotated 90°");
    // Rotate 90° clockwise: the source's left column becomes the top row.
    let top_left = img.image.get_pixel(19, 0).0;
    assert!(top_left[0] < 30, "{top_left:?}");
    let tags: Vec<_> = img.metadata.exif.iter().map(|f| f.tag.as_str()).collect();
    assert!(tags.contains(&"Make"), "{tags:?}");
    assert!(img
        .metadata
        .exif
        .iter()
        .any(|f| f.tag == "Make" && f.value.contains("Cam")));
    assert!(!img.metadata.jpeg_quant_tables.is_empty());
    let q0 = &img.metadata.jpeg_quant_tables[0];
    assert_eq!(q0.precision, 0);
    assert!(q0.values.iter().all(|&v| v > 0));
}

#[test]
fn jpeg_xmp_icc_and_c2pa_detected() {
    let jpeg = encode(&gradient(16, 16), ImageFormat::Jpeg);
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    xmp.extend_from_slice(b"<x:xmpmeta><rdf:Description xmp:CreatorTool=\"GenTool\"/></x:xmpmeta>");
    let mut bytes = jpeg_with_segment(&jpeg, 0xE1, &xmp);
    let mut jumbf = b"JP\x02\x11\0\0\0\x01".to_vec();
    jumbf.extend_from_slice(
        b"\0\0\0\x20jumb\0\0\0\x18jumdc2pa\0\x11\0\x10\x80\0\xaa\0\x38\x9b\x71c2pa\0",
    );
    bytes = jpeg_with_segment(&bytes, 0xEB, &jumbf);
    let img = image_of(ok(&bytes, &no_hint()));
    assert!(img.metadata.xmp.as_deref().unwrap().contains("GenTool"));
    assert!(img.metadata.has_c2pa);
    let plain = image_of(ok(&jpeg, &no_hint()));
    assert!(!plain.metadata.has_c2pa);
    assert!(plain.metadata.xmp.is_none());
}

#[test]
fn png_text_chunks_are_read_and_inflated() {
    let png = encode(&gradient(8, 8), ImageFormat::Png);
    let mut itxt = b"XML:com.adobe.xmp\0\x01\0\0\0".to_vec();
    itxt.extend(zlib(b"<x:xmpmeta>png-xmp</x:xmpmeta>"));
    let mut ztxt = b"parameters\0\0".to_vec();
    ztxt.extend(zlib(b"a portrait, photorealistic, Steps: 30"));
    let bytes = png_with_chunks(
        &png,
        &[
            png_chunk(b"tEXt", b"Software\0GIMP 2.10"),
            png_chunk(b"zTXt", &ztxt),
            png_chunk(b"iTXt", &itxt),
            png_chunk(b"caBX", b"\0\0\0\x08jumb"),
        ],
    );
    let img = image_of(ok(&bytes, &no_hint()));
    let m = &img.metadata;
    assert_eq!(m.png_text.len(), 3);
    assert_eq!(m.png_text[0].keyword, "Software");
    assert_eq!(m.png_text[0].text, "GIMP 2.10");
    assert!(!m.png_text[0].compressed);
    assert_eq!(m.png_text[1].keyword, "parameters");
    assert!(m.png_text[1].text.contains("Steps: 30"));
    assert!(m.png_text[1].compressed);
    assert_eq!(m.xmp.as_deref(), Some("<x:xmpmeta>png-xmp</x:xmpmeta>"));
    assert!(m.has_c2pa);
}

#[test]
fn png_text_bomb_is_skipped_not_inflated() {
    let png = encode(&gradient(8, 8), ImageFormat::Png);
    let mut ztxt = b"bomb\0\0".to_vec();
    ztxt.extend(zlib(&vec![b'a'; 8 * 1024 * 1024]));
    let bytes = png_with_chunks(&png, &[png_chunk(b"zTXt", &ztxt)]);
    let img = image_of(ok(&bytes, &no_hint()));
    assert!(img.metadata.png_text.is_empty());
    assert!(
        img.warnings.iter().any(|w| w.contains("bomb")),
        "{:?}",
        img.warnings
    );
}

#[test]
fn animated_gif_warns() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame, RgbaImage};
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        let frames = (0..3).map(|i| {
            Frame::from_parts(
                RgbaImage::from_pixel(6, 6, image::Rgba([i * 80, 0, 0, 255])),
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            )
        });
        enc.encode_frames(frames).unwrap();
    }
    let img = image_of(ok(&out, &no_hint()));
    assert_eq!(
        img.warnings,
        vec!["animated GIF: first frame used".to_string()]
    );
    let still = image_of(ok(&encode(&gradient(6, 6), ImageFormat::Gif), &no_hint()));
    assert!(still.warnings.is_empty());
}

#[test]
fn huge_declared_png_is_rejected_before_decoding() {
    let bytes = png_header_only(100_000, 100_000);
    let e = err(&bytes, &no_hint(), &Limits::default());
    assert_eq!(e.problem_kind(), ProblemKind::PayloadTooLarge);
    assert_eq!(e.problem_code(), Some("max_image_side"));
    let limits = Limits {
        max_pixels: 1_000_000,
        ..Limits::default()
    };
    let e = err(&png_header_only(2000, 2000), &no_hint(), &limits);
    assert_problem(&e, ProblemKind::PayloadTooLarge, "max_pixels");
    assert!(
        e.to_string().contains("2000×2000 = 4 Mpx, limit is 1 Mpx"),
        "{e}"
    );
}

#[test]
fn heic_is_unsupported() {
    let e = err(
        b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0",
        &no_hint(),
        &Limits::default(),
    );
    assert_eq!(e.problem_kind(), ProblemKind::UnsupportedMediaType);
    assert!(e.to_string().contains("HEIC"));
}

// -------------------------------------------------------------- audio ----

#[test]
fn wav_is_downmixed_and_resampled() {
    let bytes = wav(48_000, 2, 1.0, 440.0);
    let a = audio_of(ok(&bytes, &no_hint()));
    assert_eq!(a.sample_rate, 16_000);
    assert_eq!(a.original_sample_rate, 48_000);
    assert_eq!(a.original_channels, 2);
    assert_eq!(a.container, "wav");
    assert_eq!(a.samples.len(), 16_000);
    assert!((a.duration_s - 1.0).abs() < 1e-9);
    let peak = a.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!((0.45..0.55).contains(&peak), "{peak}");
    let crossings = a
        .samples
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    assert!((860..900).contains(&crossings), "{crossings}");
}

#[test]
fn every_audio_fixture_decodes() {
    for name in AUDIO_FIXTURES {
        let bytes = fixture(name);
        let a = audio_of(ok(&bytes, &no_hint()));
        assert_eq!(a.sample_rate, 16_000, "{name}");
        assert!(
            (1.8..2.2).contains(&a.duration_s),
            "{name}: {} s",
            a.duration_s
        );
        let rms = (a.samples.iter().map(|s| s * s).sum::<f32>() / a.samples.len() as f32).sqrt();
        assert!(rms > 0.01, "{name}: silent ({rms})");
        let expect_codec = match *name {
            "speech.flac" => "flac",
            "speech.mp3" => "mp3",
            "speech.m4a" | "interview.mp4" => "aac",
            "speech_vorbis.ogg" => "vorbis",
            _ => "opus",
        };
        assert!(
            a.codec.to_ascii_lowercase().contains(expect_codec),
            "{name}: codec {}",
            a.codec
        );
        assert_eq!(
            a.original_sample_rate,
            if expect_codec == "opus" {
                48_000
            } else {
                44_100
            },
            "{name}"
        );
        if *name == "speech_streamed.webm" {
            assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        }
    }
}

#[test]
fn he_aac_is_rejected_clearly() {
    let e = err(
        &fixture("speech_he_aac.m4a"),
        &no_hint(),
        &Limits::default(),
    );
    assert_problem(&e, ProblemKind::UnprocessableInput, "unsupported_codec");
    assert!(e.to_string().contains("HE-AAC"), "{e}");
}

#[test]
fn audio_over_the_duration_limit_is_rejected() {
    let limits = Limits {
        max_audio_seconds: 1.0,
        ..Limits::default()
    };
    let e = err(&wav(16_000, 1, 3.0, 200.0), &no_hint(), &limits);
    assert_problem(&e, ProblemKind::PayloadTooLarge, "max_audio_seconds");
    for name in ["speech.flac", "speech_streamed.webm", "speech.mp3"] {
        let e = err(&fixture(name), &no_hint(), &limits);
        assert_problem(&e, ProblemKind::PayloadTooLarge, "max_audio_seconds");
    }
}

#[test]
fn zero_length_audio_and_video_without_audio() {
    let e = err(&wav(16_000, 1, 0.0, 0.0), &no_hint(), &Limits::default());
    assert_eq!(e.problem_kind(), ProblemKind::UnprocessableInput, "{e}");
}

// ---------------------------------------------------------- documents ----

#[test]
fn pdf_text_layer_is_extracted() {
    let d = doc_of(ok(&fixture("resume.pdf"), &no_hint()));
    assert_eq!(d.format, "pdf");
    assert_eq!(d.pages, Some(1));
    assert!(d.text.contains("Jane Doe"), "{}", d.text);
    assert!(d.text.contains("Rust services"), "{}", d.text);
    assert!(!d.paragraphs.is_empty());
}

#[test]
fn encrypted_and_image_only_pdfs_are_refused() {
    let e = err(
        &fixture("resume_encrypted.pdf"),
        &no_hint(),
        &Limits::default(),
    );
    assert_problem(&e, ProblemKind::UnprocessableInput, "encrypted_pdf");
    let e = err(&fixture("scanned.pdf"), &no_hint(), &Limits::default());
    assert_problem(&e, ProblemKind::UnprocessableInput, "image_only_pdf");
    assert!(e.to_string().contains("no text layer"));
}

#[test]
fn pdf_page_limit() {
    let limits = Limits {
        max_pages: 0,
        ..Limits::default()
    };
    let e = err(&fixture("resume.pdf"), &no_hint(), &limits);
    assert_problem(&e, ProblemKind::PayloadTooLarge, "max_pages");
}

#[test]
fn docx_paragraphs() {
    let bytes = docx(&["Jane Doe", "Senior engineer &amp; mentor", "", "Rust — Go"]);
    let d = doc_of(ok(&bytes, &no_hint()));
    assert_eq!(d.format, "docx");
    assert_eq!(d.text, "Jane Doe\n\nSenior engineer & mentor\n\nRust — Go");
    assert_eq!(d.paragraphs.len(), 3);
    let third: String = d
        .text
        .chars()
        .skip(d.paragraphs[2].start)
        .take(d.paragraphs[2].len())
        .collect();
    assert_eq!(third, "Rust — Go");
}

#[test]
fn docx_zip_bomb_is_refused() {
    let mut xml = b"<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>".to_vec();
    xml.extend(std::iter::repeat_n(b'a', 40 * 1024 * 1024));
    xml.extend_from_slice(b"</w:t></w:r></w:p></w:body></w:document>");
    let bytes = docx_with_document_xml(&xml);
    assert!(bytes.len() < 1024 * 1024);
    let e = err(&bytes, &no_hint(), &Limits::default());
    assert_problem(&e, ProblemKind::PayloadTooLarge, "decompression_ratio");
    let limits = Limits {
        max_decompressed_bytes: 1024 * 1024,
        ..Limits::default()
    };
    let e = err(&bytes, &no_hint(), &limits);
    assert_problem(&e, ProblemKind::PayloadTooLarge, "max_decompressed_bytes");
}

#[test]
fn docx_that_is_not_a_zip() {
    let e = err(
        b"PK\x03\x04word/ this is not really a zip",
        &no_hint(),
        &Limits::default(),
    );
    assert_problem(&e, ProblemKind::UnprocessableInput, "corrupt");
    let e = err(
        b"\x01\x02garbage\x00\x00",
        &named("cv.docx"),
        &Limits::default(),
    );
    assert_problem(&e, ProblemKind::UnprocessableInput, "corrupt");
}

#[test]
fn text_uploads_and_pasted_text() {
    let d = doc_of(ok(b"Jane Doe\r\n\r\nEngineer.\r\n", &named("cv.md")));
    assert_eq!(d.text, "Jane Doe\n\nEngineer.");
    assert_eq!(d.paragraphs, vec![0..8, 10..19]);
    let e = err(b"caf\xe9 latin-1", &named("cv.txt"), &Limits::default());
    assert_problem(&e, ProblemKind::UnprocessableInput, "invalid_utf8");
    let limits = Limits {
        max_text_chars: 1000,
        ..Limits::default()
    };
    let huge = "word ".repeat(100_000);
    let e = document_from_text(&huge, &limits).unwrap_err();
    assert_problem(&e, ProblemKind::PayloadTooLarge, "max_text_chars");
    let e = err(huge.as_bytes(), &named("cv.txt"), &limits);
    assert_problem(&e, ProblemKind::PayloadTooLarge, "max_text_chars");
    let small = Limits {
        max_upload_bytes: 100,
        ..Limits::default()
    };
    let e = document_from_text(&huge, &small).unwrap_err();
    assert_problem(&e, ProblemKind::PayloadTooLarge, "max_upload_bytes");
}

// ------------------------------------------------------------ hostile ----

#[test]
fn empty_and_oversized_uploads() {
    let e = err(b"", &no_hint(), &Limits::default());
    assert_problem(&e, ProblemKind::UnprocessableInput, "empty_input");
    let e = err(b"", &named("a.png"), &Limits::default());
    assert_eq!(e.problem_kind(), ProblemKind::UnprocessableInput);
    let limits = Limits {
        max_upload_bytes: 10,
        ..Limits::default()
    };
    let e = err(&[0u8; 11], &no_hint(), &limits);
    assert_problem(&e, ProblemKind::PayloadTooLarge, "max_upload_bytes");
}

#[test]
fn random_bytes() {
    // Deterministic pseudo-random bytes (xorshift).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let e = err(&bytes, &no_hint(), &Limits::default());
    assert_eq!(e.problem_kind(), ProblemKind::UnsupportedMediaType, "{e}");
    for hint in [
        "a.jpg", "a.png", "a.webp", "a.gif", "a.bmp", "a.tiff", "a.wav", "a.mp3", "a.m4a", "a.ogg",
        "a.webm", "a.pdf", "a.docx", "a.txt",
    ] {
        let e = err(&bytes, &named(hint), &Limits::default());
        assert_eq!(
            e.problem_kind(),
            ProblemKind::UnprocessableInput,
            "{hint}: {e}"
        );
    }
}

fn all_valid_inputs() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = Vec::new();
    let img = gradient(33, 17);
    for (f, n) in [
        (ImageFormat::Png, "png"),
        (ImageFormat::Jpeg, "jpeg"),
        (ImageFormat::Gif, "gif"),
        (ImageFormat::Bmp, "bmp"),
        (ImageFormat::Tiff, "tiff"),
        (ImageFormat::WebP, "webp"),
    ] {
        v.push((n.into(), encode(&img, f)));
    }
    v.push(("wav".into(), wav(22_050, 1, 0.5, 300.0)));
    v.push(("docx".into(), docx(&["Hello", "World"])));
    for f in AUDIO_FIXTURES.iter().chain(DOC_FIXTURES) {
        v.push((f.to_string(), fixture(f)));
    }
    v
}

#[test]
fn truncated_inputs_never_panic_and_fail_cleanly() {
    for (name, bytes) in all_valid_inputs() {
        let n = bytes.len();
        for cut in [1, 3, 8, 16, 64, n / 4, n / 2, n * 3 / 4, n - 1] {
            if cut == 0 || cut >= n {
                continue;
            }
            match run(&bytes[..cut], &no_hint(), &Limits::default()) {
                Ok(d) => {
                    // Audio cut mid-stream decodes what is there; images may
                    // decode partially. Never anything but the sniffed kind.
                    // A few leading bytes of a binary file can be valid text.
                    if d.kind() == Kind::Document {
                        // lopdf rebuilds a damaged xref and may still find the text.
                        assert!(
                            (d.format() == "text" && cut < 16) || name.ends_with(".pdf"),
                            "{name} cut at {cut}"
                        );
                    }
                }
                Err(e) => {
                    let k = e.problem_kind();
                    assert!(
                        matches!(
                            k,
                            ProblemKind::UnprocessableInput | ProblemKind::UnsupportedMediaType
                        ),
                        "{name} cut at {cut}: {k:?} {e}"
                    );
                }
            }
        }
    }
    // Lossless formats cut in half must fail as truncated/corrupt.
    for (name, bytes) in all_valid_inputs()
        .into_iter()
        .filter(|(n, _)| n == "png" || n == "docx" || n == "resume.pdf")
    {
        let e = err(&bytes[..bytes.len() / 2], &no_hint(), &Limits::default());
        assert_eq!(
            e.problem_kind(),
            ProblemKind::UnprocessableInput,
            "{name}: {e}"
        );
    }
}

#[test]
fn sniff_agrees_with_decode() {
    for (name, bytes) in all_valid_inputs() {
        let s = sniff(&bytes, &no_hint()).unwrap();
        let expected_kind = if name.ends_with(".pdf") || name == "docx" {
            Kind::Document
        } else if name.contains('.') || name == "wav" {
            Kind::Audio
        } else {
            Kind::Image
        };
        assert_eq!(s.kind, expected_kind, "{name}");
    }
}

// ------------------------------------------------- implausible / truncated ----

#[test]
fn implausible_audio_headers_are_refused() {
    // 3.6 KB declaring 1 Hz: an hour of audio.
    let one_hz = wav(1, 1, 1800.0, 0.0);
    assert!(one_hz.len() < 4000);
    let e = err(&one_hz, &no_hint(), &Limits::default());
    assert_problem(&e, ProblemKind::UnprocessableInput, "implausible_header");
    assert!(e.to_string().contains("1 Hz"), "{e}");
    // Just under the floor is refused too, the floor itself is accepted.
    let e = err(&wav(3_999, 1, 0.5, 100.0), &no_hint(), &Limits::default());
    assert_problem(&e, ProblemKind::UnprocessableInput, "implausible_header");
    let a = audio_of(ok(&wav(4_000, 1, 0.5, 100.0), &no_hint()));
    assert_eq!(a.original_sample_rate, 4_000);
    assert!(!a.truncated);

    // A header declaring ten times the samples the file holds.
    let mut lying = wav(16_000, 1, 1.0, 200.0);
    let data_len = u32::from_le_bytes(lying[40..44].try_into().unwrap());
    lying[40..44].copy_from_slice(&(data_len * 10).to_le_bytes());
    lying[4..8].copy_from_slice(&(36 + data_len * 10).to_le_bytes());
    let e = err(&lying, &no_hint(), &Limits::default());
    assert_problem(&e, ProblemKind::UnprocessableInput, "implausible_header");
}

#[test]
fn truncated_audio_is_decoded_and_flagged() {
    let full = wav(16_000, 1, 2.0, 200.0);
    let a = audio_of(ok(&full, &no_hint()));
    assert!(!a.truncated);
    assert!(!ok(&full, &no_hint()).truncated());
    // Cut at three quarters: what is there is decoded, and the result says so.
    let cut = &full[..full.len() * 3 / 4];
    let d = ok(cut, &no_hint());
    assert!(d.truncated());
    let a = audio_of(d);
    assert!((a.duration_s - 1.5).abs() < 0.05, "{}", a.duration_s);
    assert!(
        a.warnings.iter().any(|w| w.contains("truncated")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn truncated_jpeg_is_flagged() {
    let jpeg = encode(&gradient(256, 192), ImageFormat::Jpeg);
    let d = ok(&jpeg, &no_hint());
    assert!(!d.truncated());
    assert!(!image_of(d).warnings.iter().any(|w| w.contains("truncated")));
    let cut = &jpeg[..jpeg.len() * 3 / 4];
    match run(cut, &no_hint(), &Limits::default()) {
        Ok(d) => {
            assert!(d.truncated());
            let img = image_of(d);
            assert!(
                img.warnings.iter().any(|w| w.contains("truncated")),
                "{:?}",
                img.warnings
            );
        }
        // A decoder that refuses the cut file is fine too: never silent.
        Err(e) => assert_eq!(e.problem_kind(), ProblemKind::UnprocessableInput, "{e}"),
    }
}
