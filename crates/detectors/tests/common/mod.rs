//! Helpers shared by the detector integration tests.
#![allow(dead_code)] // each test file uses a subset

use std::path::{Path, PathBuf};

use candor_core::{AnalysisResult, Priority};
use candor_detectors::{AnalyzeOptions, Analyzer, EngineConfig, InputSource, RawInput};
use candor_engine::{ModelHandle, NamedTensor, TensorData};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An engine over the committed manifest loading `models`, with
/// `$CANDOR_HOME` (default `<repo>/.candor`); `None` (SKIP, said on
/// stderr) when a file of `needs` (relative to the home) is missing.
pub fn engine_config(models: &[&str], needs: &[&str]) -> Option<EngineConfig> {
    let home = std::env::var_os("CANDOR_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".candor"));
    if let Some(missing) = needs.iter().map(Path::new).find(|n| !home.join(n).exists()) {
        eprintln!(
            "SKIP: {} not installed in {} (run scripts/setup.sh)",
            missing.display(),
            home.display()
        );
        return None;
    }
    Some(EngineConfig {
        home,
        manifest: repo().join("models/manifest.toml"),
        models: Some(models.iter().map(|m| m.to_string()).collect()),
        ..EngineConfig::default()
    })
}

/// Runs `model` on one f32 input and returns one f32 output, flattened.
pub async fn infer_f32(
    model: &ModelHandle,
    input: &str,
    shape: &[usize],
    data: Vec<f32>,
    output: &str,
) -> Vec<f32> {
    let t = TensorData::f32_from_vec(shape, data).unwrap();
    let mut out = model
        .infer(vec![NamedTensor::new(input, t)], Priority::Upload, None)
        .await
        .unwrap();
    out.take(output)
        .unwrap()
        .as_f32()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// 16-bit mono WAV of `samples` at `rate`.
pub fn wav(samples: &[f32], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    b
}

/// The PCM bytes of a 16-bit WAV file (its `data` chunk).
pub fn wav_data(bytes: &[u8]) -> &[u8] {
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().unwrap()) as usize;
        if &bytes[i..i + 4] == b"data" {
            return &bytes[i + 8..(i + 8 + len).min(bytes.len())];
        }
        i += 8 + len + (len & 1);
    }
    panic!("no data chunk")
}

/// The samples of a 16-bit PCM WAV file's data chunk, scaled to [-1, 1).
pub fn wav_samples(bytes: &[u8]) -> Vec<f32> {
    wav_data(bytes)
        .chunks_exact(2)
        .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
        .collect()
}

/// Analyses `bytes` as an uploaded file called `name`.
pub async fn analyze_bytes(a: &Analyzer, name: &str, bytes: Vec<u8>) -> AnalysisResult {
    a.analyze(
        InputSource::File(RawInput {
            bytes: bytes.into(),
            name: Some(name.into()),
            content_type: None,
        }),
        &AnalyzeOptions::default(),
    )
    .await
    .unwrap()
}
