//! Text scoring benchmarks (SmolLM2-135M through the `candle-lm` backend).
//!
//! One iteration scores `DOCS` copies of `benches/text/resume_700tok.txt`
//! (a ~700-token resume) through the text detector's scorer (tokenize,
//! windows of 512 tokens, language model, features), all in flight at once:
//! * `smollm2-text/batch1`: `max_batch = 1`, every window runs alone;
//! * `smollm2-text/batched`: windows packed up to 2048 tokens per pass;
//! * `smollm2-text/single`: one resume alone (latency per resume).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candor_core::Priority;
use candor_detectors::text::{TextConfig, TextScorer, LM_MODEL};
use candor_engine::manifest::BatchingSpec;
use candor_engine::{Engine, EngineConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const DOCS: usize = 4;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scorer(max_batch: usize) -> Option<Arc<TextScorer>> {
    let home = std::env::var_os("CANDOR_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".candor"));
    let mut cfg = EngineConfig {
        home,
        manifest: repo().join("models/manifest.toml"),
        models: Some(vec![LM_MODEL.to_string()]),
        device: candor_engine::Device::Cpu,
        ..EngineConfig::default()
    };
    cfg.overrides.insert(
        LM_MODEL.to_string(),
        BatchingSpec {
            max_batch: Some(max_batch),
            max_wait_ms: Some(2),
            ..BatchingSpec::default()
        },
    );
    let engine = match Engine::load(cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("SKIP: {e}");
            return None;
        }
    };
    let Some(lm) = engine.model(LM_MODEL) else {
        eprintln!("SKIP: {LM_MODEL} not loaded; run scripts/setup.sh");
        return None;
    };
    Some(Arc::new(TextScorer::new(lm, TextConfig::default()).ok()?))
}

async fn score_all(s: &Arc<TextScorer>, text: &Arc<String>, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (s, t) = (Arc::clone(s), Arc::clone(text));
        set.spawn(async move {
            s.analyze(&t, Priority::Bulk, None)
                .await
                .map(|a| a.tokens.len())
        });
    }
    while let Some(r) = set.join_next().await {
        assert!(r.unwrap().unwrap() > 100);
    }
}

fn text_scoring(c: &mut Criterion) {
    let text = Arc::new(
        std::fs::read_to_string(repo().join("benches/text/resume_700tok.txt"))
            .expect("benches/text/resume_700tok.txt"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("smollm2-text");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(60));
    if let Some(s) = scorer(2048) {
        g.throughput(Throughput::Elements(1));
        g.bench_function("single", |b| {
            b.iter(|| rt.block_on(score_all(&s, &text, 1)))
        });
        g.throughput(Throughput::Elements(DOCS as u64));
        g.bench_function("batched", |b| {
            b.iter(|| rt.block_on(score_all(&s, &text, DOCS)))
        });
    }
    if let Some(s) = scorer(1) {
        g.throughput(Throughput::Elements(DOCS as u64));
        g.bench_function("batch1", |b| {
            b.iter(|| rt.block_on(score_all(&s, &text, DOCS)))
        });
    }
    g.finish();
}

criterion_group!(benches, text_scoring);
criterion_main!(benches);
