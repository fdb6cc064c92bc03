#![no_main]
//! Fuzzes text decoding (bytes and pasted strings).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = candor_media::Limits::default();
    if let Ok(d) = candor_media::document::decode_text_bytes(data, &limits) {
        let n = d.text.chars().count();
        for r in &d.paragraphs {
            assert!(r.start < r.end && r.end <= n);
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = candor_media::document_from_text(s, &limits);
    }
});
