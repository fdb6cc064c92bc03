//! Image scoring benchmarks: the whole image path of the analyzer (JPEG
//! decode, metadata and provenance, forensic measures (ELA, double JPEG,
//! noise, NPR, spectrum), the face cascade, the forgery CNN over 128 px
//! tiles, the CLIP generation probe, fusion head, calibration, heatmap and
//! spectrum PNGs) on a
//! headshot-sized picture: the committed astronaut sample upscaled to
//! 1024×1024 and saved as JPEG quality 90.
//!
//! * `headshot-1024/single`: one image at a time (latency per headshot);
//! * `headshot-1024/batched`: `FILES` images in flight, the CNN tiles of all
//!   of them packed into shared batches (max_batch 64);
//! * `headshot-1024/batch1`: the same with `max_batch = 1` for the CNN
//!   (every image's 64-tile request runs alone): the reference for batching.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candor_detectors::image::cnn;
use candor_detectors::{
    AnalyzeOptions, Analyzer, AnalyzerConfig, EngineConfig, InputSource, RawInput,
};
use candor_engine::manifest::BatchingSpec;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const FILES: usize = 4;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn analyzer(max_batch: usize) -> Option<Arc<Analyzer>> {
    let home = std::env::var_os("CANDOR_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".candor"));
    let mut cfg = EngineConfig {
        home,
        manifest: repo().join("models/manifest.toml"),
        models: Some(vec![
            cnn::MODEL.into(),
            candor_detectors::image::clip::MODEL.into(),
        ]),
        device: candor_engine::Device::Cpu,
        ..EngineConfig::default()
    };
    cfg.overrides.insert(
        cnn::MODEL.to_string(),
        BatchingSpec {
            max_batch: Some(max_batch),
            ..BatchingSpec::default()
        },
    );
    match Analyzer::load(AnalyzerConfig::default(), cfg) {
        Ok(a) => Some(Arc::new(a)),
        Err(e) => {
            eprintln!("SKIP: {e}");
            None
        }
    }
}

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

async fn analyze_all(a: &Arc<Analyzer>, jpg: &Arc<[u8]>, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (a, j) = (Arc::clone(a), Arc::clone(jpg));
        set.spawn(async move {
            a.analyze(
                InputSource::File(RawInput {
                    bytes: j,
                    name: Some("headshot.jpg".into()),
                    content_type: None,
                }),
                &AnalyzeOptions::default(),
            )
            .await
            .map(|r| r.score)
        });
    }
    while let Some(r) = set.join_next().await {
        assert!(r.unwrap().unwrap().is_some(), "the headshot must be scored");
    }
}

fn image_scoring(c: &mut Criterion) {
    let jpg: Arc<[u8]> = headshot().into();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("headshot-1024");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(15));
    if let Some(a) = analyzer(64) {
        g.throughput(Throughput::Elements(1));
        g.bench_function("single", |b| {
            b.iter(|| rt.block_on(analyze_all(&a, &jpg, 1)))
        });
        g.throughput(Throughput::Elements(FILES as u64));
        g.bench_function("batched", |b| {
            b.iter(|| rt.block_on(analyze_all(&a, &jpg, FILES)))
        });
    }
    if let Some(a) = analyzer(1) {
        g.throughput(Throughput::Elements(FILES as u64));
        g.bench_function("batch1", |b| {
            b.iter(|| rt.block_on(analyze_all(&a, &jpg, FILES)))
        });
    }
    g.finish();
}

criterion_group!(benches, image_scoring);
criterion_main!(benches);
