//! What the detector benchmarks share: the engine over the committed
//! manifest with one model's batch size overridden, an analyzer, and the
//! `single` / `batched` / `batch1` group every detector benchmark reports.
#![allow(dead_code)] // each bench uses a subset

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candor_core::Modality;
use candor_detectors::{AnalyzeOptions, Analyzer, AnalyzerConfig, InputSource, RawInput};
use candor_engine::manifest::BatchingSpec;
use candor_engine::EngineConfig;
use criterion::{Criterion, Throughput};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `$CANDOR_HOME`, default `<repo>/.candor`.
pub fn home() -> PathBuf {
    std::env::var_os("CANDOR_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".candor"))
}

/// CPU engine settings loading `models` from `$CANDOR_HOME` (default
/// `<repo>/.candor`), with `max_batch` (and `max_wait_ms`, when given)
/// overriding the manifest for `batched_model`.
pub fn engine_config(
    models: &[&str],
    batched_model: &str,
    max_batch: usize,
    max_wait_ms: Option<u64>,
) -> EngineConfig {
    let mut cfg = EngineConfig {
        home: home(),
        manifest: repo().join("models/manifest.toml"),
        models: Some(models.iter().map(|m| m.to_string()).collect()),
        device: candor_engine::Device::Cpu,
        ..EngineConfig::default()
    };
    cfg.overrides.insert(
        batched_model.to_string(),
        BatchingSpec {
            max_batch: Some(max_batch),
            max_wait_ms,
            ..BatchingSpec::default()
        },
    );
    cfg
}

/// The whole analyzer over `cfg`; `None` (SKIP, said on stderr) when it
/// cannot load or the detector of `modality` is not fully installed.
pub fn analyzer(cfg: EngineConfig, modality: Modality) -> Option<Arc<Analyzer>> {
    match Analyzer::load(AnalyzerConfig::default(), cfg) {
        Ok(a) => {
            let d = a.detectors().into_iter().find(|d| d.modality == modality);
            match d {
                Some(d) if d.installed => Some(Arc::new(a)),
                _ => {
                    eprintln!("SKIP: {modality:?} detector not installed");
                    None
                }
            }
        }
        Err(e) => {
            eprintln!("SKIP: {e}");
            None
        }
    }
}

/// Analyses `n` copies of one uploaded file, all in flight at once; each
/// must be scored.
pub async fn analyze_copies(a: Arc<Analyzer>, bytes: Arc<[u8]>, name: &'static str, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (a, b) = (Arc::clone(&a), Arc::clone(&bytes));
        set.spawn(async move {
            a.analyze(
                InputSource::File(RawInput {
                    bytes: b,
                    name: Some(name.into()),
                    content_type: None,
                }),
                &AnalyzeOptions::default(),
            )
            .await
            .map(|r| r.score)
        });
    }
    while let Some(r) = set.join_next().await {
        assert!(r.unwrap().unwrap().is_some(), "{name} must be scored");
    }
}

/// The benchmark group of a detector: `single` (one item alone) and
/// `batched` (`n` items in flight) with `make(batched_max)`, and `batch1`
/// (`n` items in flight) with `make(1)`, the reference for batching. A
/// `make` that returns `None` skips its rows.
pub fn batching_group<T, F, Fut>(
    c: &mut Criterion,
    group: &str,
    measurement: Duration,
    n: usize,
    batched_max: usize,
    make: impl Fn(usize) -> Option<T>,
    run: F,
) where
    T: Clone,
    F: Fn(T, usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(measurement);
    if let Some(t) = make(batched_max) {
        g.throughput(Throughput::Elements(1));
        g.bench_function("single", |b| b.iter(|| rt.block_on(run(t.clone(), 1))));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("batched", |b| b.iter(|| rt.block_on(run(t.clone(), n))));
    }
    if let Some(t) = make(1) {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("batch1", |b| b.iter(|| rt.block_on(run(t.clone(), n))));
    }
    g.finish();
}
