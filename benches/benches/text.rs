//! Text scoring benchmarks (SmolLM2-135M through the `candle-lm` backend).
//!
//! One iteration scores `DOCS` copies of `benches/text/resume_700tok.txt`
//! (a ~700-token resume) through the text detector's scorer (tokenize,
//! windows of 512 tokens, language model, features), all in flight at once:
//! * `smollm2-text/batch1`: `max_batch = 1`, every window runs alone;
//! * `smollm2-text/batched`: windows packed up to 2048 tokens per pass;
//! * `smollm2-text/single`: one resume alone (latency per resume).
//!
//! And the language model alone, every token's statistics (what the Python
//! reference computes), on each CPU path in the same run:
//! * `smollm2-text-lm/openblas`: the OpenBLAS path (the default);
//! * `smollm2-text-lm/candle`: candle's own kernels (the fallback).

mod common;

use std::sync::Arc;
use std::time::Duration;

use candor_core::Priority;
use candor_detectors::text::{TextConfig, TextScorer, LM_MODEL};
use candor_engine::backend::{blas, causal_lm::CausalLm};
use candor_engine::{Device, Engine, TextTokenizer};
use common::{batching_group, engine_config, home, repo};
use criterion::{criterion_group, criterion_main, Criterion};

const DOCS: usize = 4;

fn scorer(max_batch: usize) -> Option<Arc<TextScorer>> {
    let cfg = engine_config(&[LM_MODEL], LM_MODEL, max_batch, Some(2));
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

async fn score_all(s: Arc<TextScorer>, text: Arc<String>, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (s, t) = (Arc::clone(&s), Arc::clone(&text));
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
    batching_group(
        c,
        "smollm2-text",
        Duration::from_secs(60),
        DOCS,
        2048,
        scorer,
        |s, n| score_all(s, Arc::clone(&text), n),
    );
}

/// The resume's tokens in the scorer's windows (512, then the rest).
fn lm_forward(c: &mut Criterion) {
    let path = home().join("models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.is_file() {
        eprintln!("SKIP: {} missing; run scripts/setup.sh", path.display());
        return;
    }
    let text = std::fs::read_to_string(repo().join("benches/text/resume_700tok.txt"))
        .expect("benches/text/resume_700tok.txt");
    let tk = TextTokenizer::from_gguf(&path).expect("tokenizer");
    let ids: Vec<i64> = tk
        .encode(&text)
        .expect("encode")
        .ids
        .iter()
        .map(|&i| i as i64)
        .collect();
    let pos: Vec<i64> = (0..ids.len() as i64).map(|i| i % 512).collect();
    let mut g = c.benchmark_group("smollm2-text-lm");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.throughput(criterion::Throughput::Elements(1));
    let mut paths: Vec<(&str, Option<&'static blas::Blas>)> = vec![("candle", None)];
    match blas::load(&home()) {
        Ok(b) => paths.insert(0, ("openblas", Some(b))),
        Err(e) => eprintln!("SKIP openblas: {e}"),
    }
    for (name, lib) in paths {
        let lm = CausalLm::load("smollm2", &path, Device::Cpu, 2048, lib).expect("load");
        g.bench_function(name, |b| b.iter(|| lm.score(&ids, &pos).expect("score")));
    }
    g.finish();
}

criterion_group!(benches, text_scoring, lm_forward);
criterion_main!(benches);
