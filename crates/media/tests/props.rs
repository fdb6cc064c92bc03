//! Property tests: arbitrary and mutated inputs never panic and always end
//! in `Ok` or a `MediaError` that is the caller's problem (never `Internal`).

mod common;

use candor_core::{ProblemKind, ToProblem};
use candor_media::{document_from_text, Hint, Limits};
use common::*;
use image::ImageFormat;
use proptest::prelude::*;

const HINTS: &[Option<&str>] = &[
    None,
    Some("x.jpg"),
    Some("x.png"),
    Some("x.webp"),
    Some("x.gif"),
    Some("x.bmp"),
    Some("x.tif"),
    Some("x.wav"),
    Some("x.flac"),
    Some("x.mp3"),
    Some("x.aac"),
    Some("x.m4a"),
    Some("x.ogg"),
    Some("x.webm"),
    Some("x.mkv"),
    Some("x.pdf"),
    Some("x.docx"),
    Some("x.txt"),
];

fn small_limits() -> Limits {
    Limits {
        max_audio_seconds: 30.0,
        decode_timeout_ms: 10_000,
        ..Limits::default()
    }
}

fn check(bytes: &[u8], hint: Option<&'static str>) {
    let h = Hint {
        filename: hint,
        content_type: None,
    };
    if let Err(e) = run(bytes, &h, &small_limits()) {
        assert_ne!(e.problem_kind(), ProblemKind::Internal, "{e}");
        assert!(!e.to_string().is_empty());
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut v = vec![
        encode(&gradient(9, 7), ImageFormat::Png),
        encode(&gradient(9, 7), ImageFormat::Jpeg),
        encode(&gradient(9, 7), ImageFormat::Gif),
        encode(&gradient(9, 7), ImageFormat::Bmp),
        encode(&gradient(9, 7), ImageFormat::Tiff),
        encode(&gradient(9, 7), ImageFormat::WebP),
        wav(8_000, 1, 0.1, 300.0),
        docx(&["a", "b"]),
        b"plain text\n\nsecond".to_vec(),
    ];
    for f in [
        "speech_opus.ogg",
        "speech.mp3",
        "speech.m4a",
        "speech_streamed.webm",
        "resume.pdf",
    ] {
        v.push(fixture(f));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                   h in 0..HINTS.len()) {
        check(&bytes, HINTS[h]);
    }

    #[test]
    fn mutated_fixtures_never_panic(which in 0usize..14,
                                    edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
                                    cut in any::<prop::sample::Index>(),
                                    do_cut in any::<bool>(),
                                    h in 0..HINTS.len()) {
        let seeds = seeds();
        let mut bytes = seeds[which % seeds.len()].clone();
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        if do_cut {
            let n = cut.index(bytes.len());
            bytes.truncate(n.max(1));
        }
        check(&bytes, HINTS[h]);
    }

    #[test]
    fn pasted_text_paragraphs_are_valid_char_ranges(s in "\\PC{0,300}") {
        if let Ok(d) = document_from_text(&s, &Limits::default()) {
            let n = d.text.chars().count();
            let mut prev = 0;
            for r in &d.paragraphs {
                prop_assert!(r.start >= prev && r.start < r.end && r.end <= n);
                prev = r.end;
            }
        }
    }
}
