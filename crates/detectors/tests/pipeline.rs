//! The analysis pipeline end to end: real decoders, and the real silero VAD
//! through the engine when `scripts/setup.sh` has installed it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use candor_core::{AbstainCode, Modality, ProblemKind, ToProblem};
use candor_detectors::{
    AnalyzeError, AnalyzeOptions, Analyzer, AnalyzerConfig, EngineConfig, InputSource, RawInput,
};
use common::wav;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn file(path: &Path) -> InputSource {
    InputSource::File(RawInput {
        bytes: Arc::from(std::fs::read(path).unwrap()),
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        content_type: None,
    })
}

/// An analyzer with the real engine, or `None` (test skips) when the setup
/// step has not installed the runtime and the VAD model.
fn real_analyzer() -> Option<Analyzer> {
    let home = std::env::var_os("CANDOR_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".candor"));
    if !home.join("models/silero-vad/silero_vad.onnx").is_file() {
        eprintln!(
            "SKIP: {} has no silero-vad model (run scripts/setup.sh)",
            home.display()
        );
        return None;
    }
    let engine = EngineConfig {
        home,
        manifest: root().join("models/manifest.toml"),
        models: Some(vec!["silero-vad".into()]),
        ..EngineConfig::default()
    };
    Some(Analyzer::load(AnalyzerConfig::default(), engine).expect("engine loads"))
}

#[tokio::test]
async fn audio_gets_speech_activity_from_the_vad() {
    let Some(a) = real_analyzer() else { return };
    let speech = root().join("samples/media/speech.flac");
    let r = a
        .analyze(file(&speech), &AnalyzeOptions::default())
        .await
        .unwrap();
    assert_eq!(r.modality, Modality::Audio);
    assert!(r.is_consistent());
    let secs = r.input.properties["speech_seconds"].as_f64().unwrap();
    assert!(
        secs > 1.0,
        "espeak speech should be mostly speech, got {secs} s"
    );
    assert_eq!(r.models[0].id, "silero-vad");
    // Only the VAD is loaded here, so the audio detector is not installed:
    // it abstains, never a made-up score.
    assert_eq!(r.score, None);
    assert_eq!(
        r.abstention.as_ref().unwrap().code,
        AbstainCode::DetectorNotInstalled
    );

    // Three seconds of digital silence hold no speech.
    let silence = wav(&vec![0.0; 48_000], 16_000);
    let r = a
        .analyze(
            InputSource::File(RawInput {
                bytes: Arc::from(silence),
                name: Some("silence.wav".into()),
                content_type: None,
            }),
            &AnalyzeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.input.properties["speech_seconds"].as_f64(), Some(0.0));
    assert!(r.timings.total_ms >= r.timings.decode_ms);
}

#[tokio::test]
async fn concurrent_files_share_vad_batches_and_agree_with_single_runs() {
    let Some(a) = real_analyzer() else { return };
    let a = Arc::new(a);
    let speech = root().join("samples/media/speech.flac");
    let alone = a
        .analyze(file(&speech), &AnalyzeOptions::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let a = a.clone();
        let input = file(&speech);
        tasks.push(tokio::spawn(async move {
            a.analyze(input, &AnalyzeOptions::default()).await.unwrap()
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        let got = r.input.properties["speech_seconds"].as_f64().unwrap();
        let want = alone.input.properties["speech_seconds"].as_f64().unwrap();
        assert!((got - want).abs() < 0.1, "batched {got} vs alone {want}");
    }
}

#[tokio::test]
async fn decode_errors_map_to_problem_kinds() {
    let a = Analyzer::new(AnalyzerConfig::default());
    let err = a
        .analyze(
            InputSource::File(RawInput {
                bytes: Arc::from(&b"\x00\x01\x02garbage that is no known format"[..]),
                name: Some("x.bin".into()),
                content_type: None,
            }),
            &AnalyzeOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.problem_kind(),
        ProblemKind::UnsupportedMediaType,
        "{err}"
    );

    let enc = root().join("samples/media/resume_encrypted.pdf");
    let err = a
        .analyze(file(&enc), &AnalyzeOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.problem_kind(), ProblemKind::UnprocessableInput);
    assert_eq!(err.problem_code(), Some("encrypted_pdf"));

    let mut cfg = AnalyzerConfig::default();
    cfg.limits.max_upload_bytes = 10;
    let small = Analyzer::new(cfg);
    let err = small
        .analyze(
            InputSource::Text {
                name: None,
                text: "this text is longer than ten bytes".into(),
            },
            &AnalyzeOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.problem_kind(), ProblemKind::PayloadTooLarge, "{err}");
}

#[tokio::test]
async fn text_and_documents_abstain_until_a_detector_is_installed() {
    let a = Analyzer::new(AnalyzerConfig::default());
    let r = a
        .analyze(
            InputSource::Text {
                name: Some("pasted".into()),
                text: "Led a team of five engineers.\n\nShipped a payments service.".into(),
            },
            &AnalyzeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.modality, Modality::Text);
    assert_eq!(r.input.format, "text/plain");
    assert_eq!(r.input.properties["paragraphs"].as_u64(), Some(2));
    assert!(r.is_consistent() && r.score.is_none());

    let pdf = root().join("samples/media/resume.pdf");
    let r = a
        .analyze(file(&pdf), &AnalyzeOptions::default())
        .await
        .unwrap();
    assert_eq!(r.modality, Modality::Text);
    assert_eq!(r.input.format, "pdf");
}

#[tokio::test]
async fn an_expired_deadline_is_reported_not_ignored() {
    let Some(a) = real_analyzer() else { return };
    let speech = root().join("samples/media/speech.flac");
    let opts = AnalyzeOptions {
        deadline: Some(Instant::now() - Duration::from_millis(1)),
        ..AnalyzeOptions::default()
    };
    match a.analyze(file(&speech), &opts).await {
        Err(e @ AnalyzeError::Deadline { .. }) => {
            assert_eq!(e.problem_kind(), ProblemKind::DeadlineExceeded)
        }
        other => panic!("expected a deadline error, got {other:?}"),
    }
}
