#![no_main]
//! Fuzzes the image decoder entry point directly (no worker thread, so a panic
//! or hang here is a real finding).

use candor_media::bounded::Deadline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = candor_media::Limits {
        max_audio_seconds: 60.0,
        max_pixels: 4_000_000,
        max_image_side: 4096,
        max_decompressed_bytes: 16 * 1024 * 1024,
        ..Default::default()
    };
    let deadline = Deadline::after_ms(5_000);
    let fmts = ["jpeg", "png", "webp", "gif", "bmp", "tiff"];
    let fmt = match candor_media::sniff(data, &candor_media::Hint::default()) {
        Ok(s) if s.kind == candor_media::Kind::Image => s.format,
        _ => fmts[usize::from(data.first().copied().unwrap_or(0)) % fmts.len()],
    };
    let _ = candor_media::image::decode_image(data, fmt, &limits, &deadline);
});
