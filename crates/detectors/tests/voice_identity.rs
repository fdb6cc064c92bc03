//! The identity registry's voice embedding (GE2E) through the real audio
//! front end (decode, silero VAD, mel frames): computed only when asked
//! for, never serialised or printed, closer for two recordings of one
//! reader than for two people, and withheld when there is too little
//! speech.

mod common;

use std::time::Instant;

use candor_detectors::audio::voice;
use candor_detectors::{
    AnalyzeOptions, Analyzer, AnalyzerConfig, InputSource, RawInput, VAD_MODEL,
};
use common::repo;

fn analyzer() -> Option<Analyzer> {
    let cfg = common::engine_config(
        &[VAD_MODEL, voice::MODEL],
        &[
            "onnxruntime",
            "models/silero-vad/silero_vad.onnx",
            "models/ge2e/ge2e-speaker-encoder.onnx",
        ],
    )?;
    Some(Analyzer::load(AnalyzerConfig::default(), cfg).unwrap())
}

async fn analyze(a: &Analyzer, name: &str, identity: bool) -> candor_core::AnalysisResult {
    let bytes = std::fs::read(repo().join("samples/audio").join(name)).unwrap();
    let input = InputSource::File(RawInput {
        bytes: bytes.into(),
        name: Some(name.into()),
        content_type: None,
    });
    let opts = AnalyzeOptions {
        deadline: Some(Instant::now() + std::time::Duration::from_secs(120)),
        identity,
        ..AnalyzeOptions::default()
    };
    a.analyze(input, &opts).await.unwrap()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn voice_of(r: &candor_core::AnalysisResult) -> Vec<f32> {
    r.identity
        .as_ref()
        .and_then(|t| t.voice.as_ref())
        .map(|v| v.embedding.clone())
        .expect("a voice template")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reader_is_closer_than_two_and_templates_stay_inside() {
    let Some(a) = analyzer() else { return };
    // authentic-07 and -08: two passages of one LibriVox reader (Sense and
    // Sensibility, chapter 1); authentic-09: another speaker (codec2's
    // 16 kHz reference recording), through MP3.
    let plain = analyze(&a, "authentic-07.wav", false).await;
    assert!(plain.identity.is_none(), "no template unless asked for");
    let r7 = analyze(&a, "authentic-07.wav", true).await;
    let r8 = analyze(&a, "authentic-08.flac", true).await;
    let r9 = analyze(&a, "authentic-09.mp3", true).await;
    let (x, y, z) = (voice_of(&r7), voice_of(&r8), voice_of(&r9));
    assert_eq!(x.len(), voice::DIM);
    assert!((cos(&x, &x) - 1.0).abs() < 1e-4, "unit length");
    let same = cos(&x, &y);
    let other = cos(&x, &z);
    let other2 = cos(&y, &z);
    eprintln!("same reader {same:.3}, two people {other:.3} / {other2:.3}");
    assert!(same > 0.8, "one reader: {same}");
    assert!(same > other + 0.1 && same > other2 + 0.1);
    assert!(r7.models.iter().any(|m| m.id == voice::MODEL));
    let t = r7.identity.as_ref().and_then(|t| t.voice.as_ref()).unwrap();
    assert!(t.speech_s >= voice::MIN_SPEECH_S && t.span_s[1] > t.span_s[0]);
    // Never in the JSON, never in Debug output (the largest component, as
    // printed, stands for the template: many components are 0 after ReLU).
    let probe = x.iter().copied().fold(0f32, f32::max);
    assert!(probe > 0.01);
    let json = serde_json::to_string(&r7).unwrap();
    assert!(!json.contains("identity") && !json.contains(&format!("{probe:.6}")));
    let dbg = format!("{r7:?}");
    assert!(dbg.contains("<redacted>") && !dbg.contains(&format!("{probe}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_speech_gives_no_template_and_says_so() {
    let Some(a) = analyzer() else { return };
    // authentic-07 cut to its first 2 s: less than MIN_SPEECH_S of speech.
    let bytes = std::fs::read(repo().join("samples/audio/authentic-07.wav")).unwrap();
    let mut samples = common::wav_samples(&bytes);
    samples.truncate(32_000);
    let input = InputSource::File(RawInput {
        bytes: common::wav(&samples, 16_000).into(),
        name: Some("short.wav".into()),
        content_type: None,
    });
    let opts = AnalyzeOptions {
        deadline: Some(Instant::now() + std::time::Duration::from_secs(60)),
        identity: true,
        ..AnalyzeOptions::default()
    };
    let r = a.analyze(input, &opts).await.unwrap();
    assert!(r.identity.and_then(|t| t.voice).is_none());
    assert!(
        r.warnings.iter().any(|w| w.contains("no voice template")),
        "{:?}",
        r.warnings
    );
}
