#![no_main]
//! Fuzzes format sniffing with and without hints.

use candor_media::{sniff, Hint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sniff(data, &Hint::default());
    let _ = sniff(
        data,
        &Hint {
            filename: Some("upload.bin"),
            content_type: Some("application/octet-stream"),
        },
    );
});
