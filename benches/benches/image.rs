//! Image scoring benchmarks: the whole image path of the analyzer (JPEG
//! decode, metadata and provenance, forensic measures (ELA, double JPEG,
//! noise, NPR, spectrum), YuNet face detection and alignment, the CLIP
//! tower on the aligned face, the face heads, calibration, the forgery CNN
//! over 128 px tiles, face map, heatmap and spectrum PNGs) on a
//! headshot-sized picture: the committed astronaut sample upscaled to
//! 1024×1024 and saved as JPEG quality 90.
//!
//! * `headshot-1024/single`: one image at a time (latency per headshot);
//! * `headshot-1024/batched`: `FILES` images in flight, the CNN tiles of all
//!   of them packed into shared batches (max_batch 64);
//! * `headshot-1024/batch1`: the same with `max_batch = 1` for the CNN
//!   (every image's 64-tile request runs alone): the reference for batching.

mod common;

use std::sync::Arc;
use std::time::Duration;

use candor_core::Modality;
use candor_detectors::image::{clip, cnn, yunet};
use common::{analyze_copies, analyzer, batching_group, engine_config, repo};
use criterion::{criterion_group, criterion_main, Criterion};

const FILES: usize = 4;

fn headshot() -> Vec<u8> {
    let img = image::open(repo().join("samples/image/authentic-astronaut.jpg"))
        .unwrap()
        .to_rgb8();
    let big = image::imageops::resize(&img, 1024, 1024, image::imageops::FilterType::CatmullRom);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&big)
        .unwrap();
    out
}

fn image_scoring(c: &mut Criterion) {
    let jpg: Arc<[u8]> = headshot().into();
    batching_group(
        c,
        "headshot-1024",
        Duration::from_secs(15),
        FILES,
        64,
        |max_batch| {
            analyzer(
                engine_config(
                    &[cnn::MODEL, clip::MODEL, yunet::MODEL],
                    cnn::MODEL,
                    max_batch,
                    None,
                ),
                Modality::Image,
            )
        },
        |a, n| analyze_copies(a, Arc::clone(&jpg), "headshot.jpg", n),
    );
}

criterion_group!(benches, image_scoring);
criterion_main!(benches);
