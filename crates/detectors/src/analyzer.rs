//! The [`Analyzer`]: one entry point for every input.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use candor_core::{
    sha256_hex, AbstainCode, AnalysisResult, InputInfo, Limits, Modality, Priority, ProblemKind,
};
use serde::Serialize;

use crate::AnalyzeError;

/// Bytes received from a caller (upload, multipart part, file on disk).
#[derive(Debug, Clone)]
pub struct RawInput {
    pub bytes: Arc<[u8]>,
    /// File or field name as given, if any.
    pub name: Option<String>,
    /// Declared media type, if any (a hint: magic bytes win).
    pub content_type: Option<String>,
}

/// What to analyse.
#[derive(Debug, Clone)]
pub enum InputSource {
    /// A file: image, audio/video or document.
    File(RawInput),
    /// Pasted text (JSON body or form field).
    Text { name: Option<String>, text: String },
}

impl InputSource {
    /// Name given by the caller, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            InputSource::File(r) => r.name.as_deref(),
            InputSource::Text { name, .. } => name.as_deref(),
        }
    }
}

/// Per-request options.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeOptions {
    pub priority: Priority,
    /// Absolute deadline; `None` means the analyzer's default timeout.
    pub deadline: Option<Instant>,
}

/// Analyzer configuration (the CLI fills it from flags / env vars).
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    pub limits: Limits,
    /// Sample rate audio is decoded to, in Hz.
    pub audio_sample_rate: u32,
    /// Deadline applied when a request sets none.
    pub default_timeout: Duration,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            limits: Limits::default(),
            audio_sample_rate: 16_000,
            default_timeout: Duration::from_secs(120),
        }
    }
}

/// Whether a modality's detector is installed, and what it is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DetectorStatus {
    pub modality: Modality,
    pub installed: bool,
    /// Detector name and version when installed.
    pub name: Option<String>,
    pub version: Option<String>,
    /// Why it is not installed, when it is not.
    pub reason: Option<String>,
}

/// What `/info` shows about the analysis side.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AnalyzerInfo {
    /// Device models run on (`cpu`, `cuda:0`, ...).
    pub device: String,
    /// Runtime details (ONNX Runtime library and version, ...).
    #[schema(value_type = Object)]
    pub runtime: serde_json::Value,
    /// Loaded models with ids, versions, sha256, licences and batching.
    #[schema(value_type = Vec<Object>)]
    pub models: Vec<serde_json::Value>,
    pub detectors: Vec<DetectorStatus>,
    pub limits: Limits,
    pub audio_sample_rate: u32,
}

/// A detector for one modality.
#[async_trait]
pub trait Detector: Send + Sync {
    fn status(&self) -> DetectorStatus;
}

/// Decodes inputs and runs the detector for their modality.
pub struct Analyzer {
    config: AnalyzerConfig,
    detectors: BTreeMap<Modality, Arc<dyn Detector>>,
    device: String,
    runtime: serde_json::Value,
    models: Vec<serde_json::Value>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("device", &self.device)
            .field("detectors", &self.detectors.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Analyzer {
    /// An analyzer with no model engine and no detectors: every modality
    /// abstains with `detector_not_installed`.
    pub fn new(config: AnalyzerConfig) -> Self {
        Analyzer {
            config,
            detectors: BTreeMap::new(),
            device: "cpu".into(),
            runtime: serde_json::Value::Null,
            models: Vec::new(),
        }
    }

    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// True once models are loaded and the analyzer can serve.
    pub fn is_ready(&self) -> bool {
        true
    }

    /// Detector status per modality.
    pub fn detectors(&self) -> Vec<DetectorStatus> {
        Modality::ALL
            .iter()
            .map(|m| match self.detectors.get(m) {
                Some(d) => d.status(),
                None => DetectorStatus {
                    modality: *m,
                    installed: false,
                    name: None,
                    version: None,
                    reason: Some(format!("no {m} detector is installed in this build")),
                },
            })
            .collect()
    }

    /// Everything `/info` shows about analysis.
    pub fn info(&self) -> AnalyzerInfo {
        AnalyzerInfo {
            device: self.device.clone(),
            runtime: self.runtime.clone(),
            models: self.models.clone(),
            detectors: self.detectors(),
            limits: self.config.limits.clone(),
            audio_sample_rate: self.config.audio_sample_rate,
        }
    }

    /// Analyse one input.
    pub async fn analyze(
        &self,
        input: InputSource,
        opts: &AnalyzeOptions,
    ) -> Result<AnalysisResult, AnalyzeError> {
        let started = Instant::now();
        let (bytes, name): (Arc<[u8]>, Option<String>) = match &input {
            InputSource::File(r) => (r.bytes.clone(), r.name.clone()),
            InputSource::Text { name, text } => (Arc::from(text.as_bytes()), name.clone()),
        };
        if bytes.len() as u64 > self.config.limits.max_upload_bytes {
            return Err(AnalyzeError::Input {
                kind: ProblemKind::PayloadTooLarge,
                code: "max_upload_bytes",
                message: format!(
                    "input is {} bytes, limit is {} bytes",
                    bytes.len(),
                    self.config.limits.max_upload_bytes
                ),
            });
        }
        if bytes.is_empty() {
            return Err(AnalyzeError::Input {
                kind: ProblemKind::UnprocessableInput,
                code: "empty",
                message: "input is empty".into(),
            });
        }
        let (modality, format) = match &input {
            InputSource::Text { .. } => (Modality::Text, "text/plain"),
            InputSource::File(_) => classify(&bytes)?,
        };
        let info = InputInfo {
            name,
            sha256: sha256_hex(&bytes),
            bytes: bytes.len() as u64,
            format: format.into(),
            properties: BTreeMap::new(),
        };
        let mut result = AnalysisResult::abstained(
            modality,
            info,
            AbstainCode::DetectorNotInstalled,
            format!("no {modality} detector is installed in this build"),
        );
        result.timings.total_ms = started.elapsed().as_secs_f64() * 1e3;
        let _ = opts;
        Ok(result)
    }
}

/// Magic-byte classification (temporary until the media crate lands).
fn classify(b: &[u8]) -> Result<(Modality, &'static str), AnalyzeError> {
    let starts = |p: &[u8]| b.starts_with(p);
    let r = if starts(b"\xFF\xD8\xFF") {
        (Modality::Image, "jpeg")
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        (Modality::Image, "png")
    } else if starts(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        (Modality::Image, "webp")
    } else if starts(b"RIFF") && b.get(8..12) == Some(b"WAVE") {
        (Modality::Audio, "wav")
    } else if starts(b"%PDF-") {
        (Modality::Text, "pdf")
    } else if std::str::from_utf8(b).is_ok() {
        (Modality::Text, "text/plain")
    } else {
        return Err(AnalyzeError::Input {
            kind: ProblemKind::UnsupportedMediaType,
            code: "unknown_type",
            message: "input is not a supported image, audio or document type".into(),
        });
    };
    Ok(r)
}
