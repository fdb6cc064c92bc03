//! Shared helpers for the integration tests: fixture loading and in-test
//! fixture builders (images, WAV, DOCX, PNG chunks).
#![allow(dead_code)]

use std::io::{Cursor, Write};
use std::path::PathBuf;
use std::sync::Arc;

use candor_core::{ProblemKind, ToProblem};
use candor_media::{decode, DecodeOptions, Decoded, Hint, Limits, MediaError};
use image::{ImageFormat, Rgb, RgbImage};

pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples/media")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

pub const AUDIO_FIXTURES: &[&str] = &[
    "speech.flac",
    "speech.mp3",
    "speech.m4a",
    "speech_vorbis.ogg",
    "speech_opus.ogg",
    "speech_opus.webm",
    "speech_streamed.webm",
    "interview.mp4",
];

pub const DOC_FIXTURES: &[&str] = &["resume.pdf", "resume_encrypted.pdf", "scanned.pdf"];

pub fn no_hint() -> Hint<'static> {
    Hint::default()
}

pub fn named(name: &'static str) -> Hint<'static> {
    Hint {
        filename: Some(name),
        content_type: None,
    }
}

pub fn run(bytes: &[u8], hint: &Hint, limits: &Limits) -> Result<Decoded, MediaError> {
    decode(Arc::from(bytes), hint, limits, &DecodeOptions::default())
}

pub fn ok(bytes: &[u8], hint: &Hint) -> Decoded {
    match run(bytes, hint, &Limits::default()) {
        Ok(d) => d,
        Err(e) => panic!("expected success, got {:?}: {e}", e.problem_kind()),
    }
}

pub fn err(bytes: &[u8], hint: &Hint, limits: &Limits) -> MediaError {
    match run(bytes, hint, limits) {
        Ok(d) => panic!("expected an error, got a decoded {:?}", d.kind()),
        Err(e) => e,
    }
}

pub fn assert_problem(e: &MediaError, kind: ProblemKind, code: &str) {
    assert_eq!(e.problem_kind(), kind, "{e}");
    assert_eq!(e.problem_code(), Some(code), "{e}");
}

/// A gradient test image, w×h.
pub fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 128])
    })
}

pub fn encode(img: &RgbImage, fmt: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, fmt).unwrap();
    out.into_inner()
}

/// A TIFF/EXIF blob: Orientation (SHORT) and Make (ASCII, inline).
pub fn exif_blob(orientation: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"II*\0");
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    // Make = "Cam\0"
    b.extend_from_slice(&0x010Fu16.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(b"Cam\0");
    // Orientation
    b.extend_from_slice(&0x0112u16.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&orientation.to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&0u32.to_le_bytes());
    b
}

/// Inserts a JPEG APPn segment right after SOI.
pub fn jpeg_with_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

pub fn png_chunk(ty: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(&(data.len() as u32).to_be_bytes());
    c.extend_from_slice(ty);
    c.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(ty);
    crc.update(data);
    c.extend_from_slice(&crc.sum().to_be_bytes());
    c
}

/// Inserts chunks right before IEND.
pub fn png_with_chunks(png: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
    let iend = png.len() - 12;
    let mut out = png[..iend].to_vec();
    for c in chunks {
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&png[iend..]);
    out
}

pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A PNG that only has a signature and an IHDR declaring w×h.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend(png_chunk(b"IDAT", &zlib(&[0u8; 64])));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// 16-bit PCM WAV of a sine tone.
pub fn wav(rate: u32, channels: u16, seconds: f64, freq: f64) -> Vec<u8> {
    let frames = (f64::from(rate) * seconds) as u32;
    let data_len = frames * u32::from(channels) * 2;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        let t = f64::from(i) / f64::from(rate);
        let s = ((2.0 * std::f64::consts::PI * freq * t).sin() * 0.5 * 32767.0) as i16;
        for _ in 0..channels {
            b.extend_from_slice(&s.to_le_bytes());
        }
    }
    b
}

/// A DOCX (zip) with the given `word/document.xml` body paragraphs.
pub fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let mut body = String::new();
    for p in paragraphs {
        body.push_str("<w:p><w:r><w:t xml:space=\"preserve\">");
        body.push_str(p);
        body.push_str("</w:t></w:r></w:p>");
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
         <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">\
         <w:body>{body}</w:body></w:document>"
    );
    docx_with_document_xml(xml.as_bytes())
}

pub fn docx_with_document_xml(xml: &[u8]) -> Vec<u8> {
    let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zw.start_file("[Content_Types].xml", opts).unwrap();
    zw.write_all(b"<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>").unwrap();
    zw.start_file("word/document.xml", opts).unwrap();
    zw.write_all(xml).unwrap();
    zw.finish().unwrap().into_inner()
}
