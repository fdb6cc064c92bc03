//! Audio scoring benchmarks: the whole audio path of the analyzer (WAV
//! decode, silero VAD, 2 s segments every 2 s, the Whisper tiny.en encoder
//! (log-mel in the graph), signal forensics, the linear head, calibrations,
//! spectrogram PNG) on 30 s of speech built from the committed authentic
//! samples.
//!
//! * `audio-30s/single`: one 30 s file at a time (latency per file);
//! * `audio-30s/batched`: `FILES` files in flight, the model's segments of
//!   all of them packed into shared batches (max_batch 32);
//! * `audio-30s/batch1`: the same files with `max_batch = 1` for the model
//!   (every request runs alone, as the service runs the encoder's one-segment
//!   requests): the reference for batching.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candor_core::Modality;
use candor_detectors::audio::ENCODER_MODEL;
use candor_detectors::VAD_MODEL;
use common::{analyze_copies, analyzer, batching_group, engine_config, repo};
use criterion::{criterion_group, criterion_main, Criterion};

const FILES: usize = 4;

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

fn audio_scoring(c: &mut Criterion) {
    let wav: Arc<[u8]> = thirty_seconds().into();
    batching_group(
        c,
        "audio-30s",
        Duration::from_secs(20),
        FILES,
        32,
        |max_batch| {
            analyzer(
                engine_config(&[ENCODER_MODEL, VAD_MODEL], ENCODER_MODEL, max_batch, None),
                Modality::Audio,
            )
        },
        |a, n| analyze_copies(a, Arc::clone(&wav), "bench.wav", n),
    );
}

criterion_group!(benches, audio_scoring);
criterion_main!(benches);
