//! Helpers shared by the detector integration tests.
#![allow(dead_code)] // each test file uses a subset

use candor_core::AnalysisResult;
use candor_detectors::{AnalyzeOptions, Analyzer, InputSource, RawInput};

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
