//! Audio scoring benchmarks: the whole audio path of the analyzer (WAV
//! decode, silero VAD, 2 s segments every 1 s, LCNN-on-LFCC anti-spoofing
//! model, signal forensics, fusion head, calibration, spectrogram PNG) on
//! 30 s of speech built from the committed authentic samples.
//!
//! * `audio-30s/single`: one 30 s file at a time (latency per file);
//! * `audio-30s/batched`: `FILES` files in flight, the model's segments of
//!   all of them packed into shared batches (max_batch 32);
//! * `audio-30s/batch1`: the same files with `max_batch = 1` for the model
//!   (every 16-segment request runs alone): the reference for batching.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candor_detectors::audio::LCNN_MODEL;
use candor_detectors::{
    AnalyzeOptions, Analyzer, AnalyzerConfig, EngineConfig, InputSource, RawInput, VAD_MODEL,
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
        models: Some(vec![LCNN_MODEL.into(), VAD_MODEL.into()]),
        device: candor_engine::Device::Cpu,
        ..EngineConfig::default()
    };
    cfg.overrides.insert(
        LCNN_MODEL.to_string(),
        BatchingSpec {
            max_batch: Some(max_batch),
            ..BatchingSpec::default()
        },
    );
    match Analyzer::load(AnalyzerConfig::default(), cfg) {
        Ok(a) if a.detectors().iter().any(|d| d.installed) => Some(Arc::new(a)),
        Ok(_) => {
            eprintln!("SKIP: audio detector not installed");
            None
        }
        Err(e) => {
            eprintln!("SKIP: {e}");
            None
        }
    }
}

/// 30 s of 16 kHz speech: the authentic WAV samples, concatenated and
/// repeated, as one WAV file.
fn thirty_seconds() -> Vec<u8> {
    let m = std::fs::read_to_string(repo().join("samples/eval/audio.jsonl")).unwrap();
    let mut pcm: Vec<u8> = Vec::new();
    let files: Vec<PathBuf> = m
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["label"] == "authentic" && v["path"].as_str().is_some_and(|p| p.ends_with(".wav"))
        })
        .map(|v| {
            repo()
                .join("samples/eval")
                .join(v["path"].as_str().unwrap())
        })
        .collect();
    assert!(!files.is_empty(), "no authentic wav samples");
    while pcm.len() < 30 * 32_000 {
        for f in &files {
            let b = std::fs::read(f).unwrap();
            // The data chunk of a 16 kHz mono 16-bit WAV.
            let mut i = 12;
            while i + 8 <= b.len() {
                let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
                if &b[i..i + 4] == b"data" {
                    pcm.extend_from_slice(&b[i + 8..(i + 8 + len).min(b.len())]);
                    break;
                }
                i += 8 + len + (len & 1);
            }
        }
    }
    pcm.truncate(30 * 32_000);
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    // fmt chunk: size 16, PCM, mono, 16 kHz, 32,000 bytes/s, 2-byte frames, 16 bits.
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&[1, 0, 1, 0]);
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 16, 0]);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    out.extend_from_slice(&pcm);
    out
}

async fn analyze_all(a: &Arc<Analyzer>, wav: &Arc<[u8]>, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (a, w) = (Arc::clone(a), Arc::clone(wav));
        set.spawn(async move {
            a.analyze(
                InputSource::File(RawInput {
                    bytes: w,
                    name: Some("bench.wav".into()),
                    content_type: None,
                }),
                &AnalyzeOptions::default(),
            )
            .await
            .map(|r| r.score)
        });
    }
    while let Some(r) = set.join_next().await {
        assert!(
            r.unwrap().unwrap().is_some(),
            "30 s of speech must be scored"
        );
    }
}

fn audio_scoring(c: &mut Criterion) {
    let wav: Arc<[u8]> = thirty_seconds().into();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("audio-30s");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));
    if let Some(a) = analyzer(32) {
        g.throughput(Throughput::Elements(1));
        g.bench_function("single", |b| {
            b.iter(|| rt.block_on(analyze_all(&a, &wav, 1)))
        });
        g.throughput(Throughput::Elements(FILES as u64));
        g.bench_function("batched", |b| {
            b.iter(|| rt.block_on(analyze_all(&a, &wav, FILES)))
        });
    }
    if let Some(a) = analyzer(1) {
        g.throughput(Throughput::Elements(FILES as u64));
        g.bench_function("batch1", |b| {
            b.iter(|| rt.block_on(analyze_all(&a, &wav, FILES)))
        });
    }
    g.finish();
}

criterion_group!(benches, audio_scoring);
criterion_main!(benches);
