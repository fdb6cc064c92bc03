//! The [`Analyzer`]: one entry point for every input.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use candor_core::{
    sha256_hex, AbstainCode, Abstention, AnalysisResult, Evidence, InputInfo, Limits, Modality,
    ModelRef, Priority, Signal, Thresholds, Timings,
};
use candor_engine::{Engine, EngineConfig, EngineError, ModelHandle};
use candor_media::{document_from_text, DecodeOptions, Decoded, Hint, Kind};
use serde::Serialize;
use serde_json::json;

use crate::speech::{self, SpeechActivity};
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
    /// Also compute the identity registry's templates (the largest face's
    /// embedding, the text) into [`AnalysisResult::identity`].
    pub identity: bool,
}

/// Analyzer configuration (the CLI fills it from flags / env vars).
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    pub limits: Limits,
    /// Sample rate audio is decoded to, in Hz.
    pub audio_sample_rate: u32,
    /// Deadline applied when a request sets none.
    pub default_timeout: Duration,
    /// Knobs of the audio detector.
    pub audio: crate::audio::AudioConfig,
    /// Knobs of the image detector.
    pub image: crate::image::ImageConfig,
    /// A bulk analysis starts only once no live analysis has run for this
    /// long ([`crate::livegate`]); zero turns the yielding off.
    pub bulk_quiet: Duration,
    /// Longest a bulk analysis waits for that quiet moment.
    pub bulk_max_wait: Duration,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            limits: Limits::default(),
            audio_sample_rate: 16_000,
            default_timeout: Duration::from_secs(120),
            audio: crate::audio::AudioConfig::default(),
            image: crate::image::ImageConfig::default(),
            bulk_quiet: Duration::from_millis(250),
            bulk_max_wait: Duration::from_secs(10),
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
    /// What the detector's trained parts were trained on: data sources with
    /// their licences and the splits used (the head file's `trained_on`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub trained_on: Option<serde_json::Value>,
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
    /// Start-up warnings (models not loaded and why).
    pub warnings: Vec<String>,
    pub detectors: Vec<DetectorStatus>,
    pub limits: Limits,
    pub audio_sample_rate: u32,
}

/// Context a detector gets with a decoded input.
#[derive(Debug, Clone)]
pub struct DetectContext {
    pub priority: Priority,
    /// Absolute deadline of the request.
    pub deadline: Instant,
    /// Speech activity from the audio front end, when it ran.
    pub speech: Option<SpeechActivity>,
    /// Compute identity templates (see [`AnalyzeOptions::identity`]).
    pub identity: bool,
}

/// What a detector concluded.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A calibrated probability and the thresholds that label it.
    Score {
        probability: f64,
        thresholds: Thresholds,
    },
    /// The detector cannot decide.
    Abstain(Abstention),
}

/// A detector's full answer for one input.
#[derive(Debug, Clone)]
pub struct Finding {
    pub outcome: Outcome,
    pub signals: Vec<Signal>,
    pub evidence: Vec<Evidence>,
    pub models: Vec<ModelRef>,
    pub warnings: Vec<String>,
    /// Time this detector's requests waited in engine queues (ms).
    pub queue_ms: f64,
    /// Time in models and signal processing (ms).
    pub inference_ms: f64,
    /// Identity templates, when asked for and available.
    pub identity: Option<candor_core::IdentityTemplates>,
}

/// A detector for one modality.
#[async_trait]
pub trait Detector: Send + Sync {
    /// The modality it scores.
    fn modality(&self) -> Modality;
    /// Name, version, installed state.
    fn status(&self) -> DetectorStatus;
    /// Scores one decoded input (or abstains with a reason).
    async fn detect(&self, input: &Decoded, ctx: &DetectContext) -> Result<Finding, AnalyzeError>;
}

/// Decodes inputs and runs the detector for their modality.
pub struct Analyzer {
    config: AnalyzerConfig,
    detectors: BTreeMap<Modality, Arc<dyn Detector>>,
    engine: Option<Arc<Engine>>,
    vad: Option<ModelHandle>,
    /// The speaker embedding of the identity registry.
    voice: Option<ModelHandle>,
    /// The audio detector again, concretely typed, for live streams.
    audio: Option<Arc<crate::audio::AudioDetector>>,
    /// Why a modality's detector is not installed, when known.
    missing: BTreeMap<Modality, String>,
    /// Live analyses in flight: bulk ones wait for a quiet moment.
    live: Arc<crate::livegate::LiveGate>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("detectors", &self.detectors.keys().collect::<Vec<_>>())
            .field("engine", &self.engine.as_ref().map(|e| e.model_ids()))
            .finish()
    }
}

/// Id of the voice activity model in `models/manifest.toml`.
pub const VAD_MODEL: &str = "silero-vad";

impl Analyzer {
    /// An analyzer with real decoders but no model engine and no
    /// detectors: every modality abstains with `detector_not_installed`.
    pub fn new(config: AnalyzerConfig) -> Self {
        Analyzer {
            config,
            detectors: BTreeMap::new(),
            engine: None,
            vad: None,
            voice: None,
            audio: None,
            missing: BTreeMap::new(),
            live: crate::livegate::LiveGate::new(),
        }
    }

    /// Loads the model engine (manifest, sha256 checks, ONNX Runtime) and
    /// the detectors that exist. Fails on a hash mismatch or a broken
    /// manifest; a model whose file is missing is a warning shown in
    /// `/info`, and `/ready` stays false until every manifest model loads.
    pub fn load(config: AnalyzerConfig, engine: EngineConfig) -> Result<Self, AnalyzeError> {
        let manifest = engine.manifest.clone();
        let engine = Engine::load(engine)?;
        for w in engine.warnings() {
            tracing::warn!(warning = %w, "engine start-up");
        }
        let mut analyzer = Self::with_engine(config, Arc::new(engine));
        analyzer.install_text_detector(&manifest, crate::text::TextConfig::default());
        let audio = analyzer.config.audio.clone();
        analyzer.install_audio_detector(&manifest, audio);
        let model = |id: &str| analyzer.engine.as_ref().and_then(|e| e.model(id));
        let models = crate::image::ImageModels {
            yunet: model(crate::image::yunet::MODEL),
            tower: model(crate::image::clip::MODEL),
            cnn: model(crate::image::cnn::MODEL),
            sface: model(crate::image::sface::MODEL),
        };
        let image =
            crate::image::ImageDetector::load(&manifest, models, analyzer.config.image.clone());
        for m in image.missing() {
            tracing::warn!(missing = %m, "image detector");
        }
        analyzer.add_detector(Arc::new(image));
        Ok(analyzer)
    }

    /// Installs the text detector when its language model is loaded and its
    /// fusion head and calibration files (next to the manifest) are present;
    /// otherwise records why not (shown in `/info`).
    pub fn install_text_detector(
        &mut self,
        manifest: &std::path::Path,
        cfg: crate::text::TextConfig,
    ) {
        let lm = self
            .engine
            .as_ref()
            .and_then(|e| e.model(crate::text::LM_MODEL));
        let Some(lm) = lm else {
            self.missing.insert(
                Modality::Text,
                format!(
                    "the scoring language model `{}` is not loaded (run scripts/setup.sh)",
                    crate::text::LM_MODEL
                ),
            );
            return;
        };
        let (head, calibration) = crate::text::default_files(manifest);
        match crate::text::TextDetector::load(lm, &head, &calibration, cfg) {
            Ok(d) => {
                self.missing.remove(&Modality::Text);
                self.add_detector(Arc::new(d));
            }
            Err(e) => {
                tracing::warn!(error = %e, "text detector not installed");
                self.missing
                    .insert(Modality::Text, format!("text detector not installed: {e}"));
            }
        }
    }

    /// Installs the audio detector when the VAD and the models its head
    /// reads are loaded and its head and calibration files (next to the
    /// manifest) are present; otherwise records why not (shown in `/info`).
    pub fn install_audio_detector(
        &mut self,
        manifest: &std::path::Path,
        cfg: crate::audio::AudioConfig,
    ) {
        let model = |id: &str| self.engine.as_ref().and_then(|e| e.model(id));
        let lcnn = model(crate::audio::LCNN_MODEL);
        let encoder = model(crate::audio::ENCODER_MODEL);
        let Some(vad) = self.vad.clone() else {
            self.missing.insert(
                Modality::Audio,
                format!(
                    "the voice activity model `{VAD_MODEL}` is not loaded (run scripts/setup.sh)"
                ),
            );
            return;
        };
        let (head, cal, seg_cal) = crate::audio::default_files(manifest);
        match crate::audio::AudioDetector::load(
            lcnn,
            encoder,
            Some(vad),
            &head,
            &cal,
            &seg_cal,
            cfg,
        ) {
            Ok(d) => {
                self.missing.remove(&Modality::Audio);
                let d = Arc::new(d);
                self.audio = Some(Arc::clone(&d));
                self.add_detector(d);
            }
            Err(e) => {
                tracing::warn!(error = %e, "audio detector not installed");
                self.missing.insert(
                    Modality::Audio,
                    format!("audio detector not installed: {e}"),
                );
            }
        }
    }

    /// An analyzer around an already loaded engine.
    pub fn with_engine(config: AnalyzerConfig, engine: Arc<Engine>) -> Self {
        let vad = engine.model(VAD_MODEL);
        let voice = engine.model(crate::audio::voice::MODEL);
        Analyzer {
            config,
            detectors: BTreeMap::new(),
            engine: Some(engine),
            vad,
            voice,
            audio: None,
            missing: BTreeMap::new(),
            live: crate::livegate::LiveGate::new(),
        }
    }

    /// Opens a live audio stream (see [`crate::audio::stream`]); `Err` says
    /// why not (no audio detector, unsupported format).
    pub fn audio_stream(
        &self,
        encoding: crate::audio::stream::Encoding,
        sample_rate: u32,
        priority: Priority,
    ) -> Result<crate::audio::stream::AudioStream, String> {
        let Some(d) = &self.audio else {
            return Err(self
                .missing
                .get(&Modality::Audio)
                .cloned()
                .unwrap_or_else(|| not_installed(Modality::Audio)));
        };
        crate::audio::stream::AudioStream::new(
            Arc::clone(d),
            encoding,
            sample_rate,
            self.config.limits.max_audio_seconds,
            priority,
        )
    }

    /// Registers a detector for its modality (replacing any previous one).
    pub fn add_detector(&mut self, detector: Arc<dyn Detector>) {
        self.detectors.insert(detector.modality(), detector);
    }

    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// True when every model the manifest lists is loaded (or no engine is
    /// configured at all, as in tests and `scan` without models).
    pub fn is_ready(&self) -> bool {
        self.engine.as_ref().is_none_or(|e| e.warnings().is_empty())
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
                    reason: Some(
                        self.missing
                            .get(m)
                            .cloned()
                            .unwrap_or_else(|| not_installed(*m)),
                    ),
                    trained_on: None,
                },
            })
            .collect()
    }

    /// Everything `/info` shows about analysis.
    pub fn info(&self) -> AnalyzerInfo {
        let (device, runtime, models, warnings) = match &self.engine {
            Some(e) => {
                let info = e.info();
                let runtime = serde_json::to_value(&info.onnxruntime).unwrap_or_default();
                let models = info
                    .models
                    .iter()
                    .filter_map(|m| serde_json::to_value(m).ok())
                    .collect();
                (info.device, runtime, models, info.warnings)
            }
            None => (
                "cpu".to_string(),
                serde_json::Value::Null,
                Vec::new(),
                vec!["no model engine loaded".to_string()],
            ),
        };
        AnalyzerInfo {
            device,
            runtime,
            models,
            warnings,
            detectors: self.detectors(),
            limits: self.config.limits.clone(),
            audio_sample_rate: self.config.audio_sample_rate,
        }
    }

    /// Analyse one input: decode (bounded), run the front end, run the
    /// detector for its modality, and assemble the result.
    pub async fn analyze(
        &self,
        input: InputSource,
        opts: &AnalyzeOptions,
    ) -> Result<AnalysisResult, AnalyzeError> {
        // Live work goes first on the cores too, not only in the model queues.
        let _live = (opts.priority == Priority::Live).then(|| self.live.enter_live());
        if opts.priority == Priority::Bulk && !self.config.bulk_quiet.is_zero() {
            let waited = self
                .live
                .wait_quiet(self.config.bulk_quiet, self.config.bulk_max_wait)
                .await;
            metrics::histogram!("candor_bulk_yield_seconds").record(waited.as_secs_f64());
        }
        let started = Instant::now();
        let deadline = opts
            .deadline
            .unwrap_or_else(|| started + self.config.default_timeout);
        let (bytes, name, content_type): (Arc<[u8]>, Option<String>, Option<String>) = match &input
        {
            InputSource::File(r) => (r.bytes.clone(), r.name.clone(), r.content_type.clone()),
            InputSource::Text { name, text } => (Arc::from(text.as_bytes()), name.clone(), None),
        };
        let sha256 = sha256_hex(&bytes);
        let n_bytes = bytes.len() as u64;

        // Decode on the blocking pool; the media crate bounds time and memory.
        let limits = self.config.limits.clone();
        let decode_opts = DecodeOptions {
            audio_sample_rate: self.config.audio_sample_rate,
        };
        let is_text = matches!(input, InputSource::Text { .. });
        let text = match input {
            InputSource::Text { text, .. } => Some(text),
            InputSource::File(_) => None,
        };
        let file_name = name.clone();
        let decode = tokio::task::spawn_blocking(move || match text {
            Some(t) => document_from_text(&t, &limits).map(Decoded::Document),
            None => {
                let hint = Hint {
                    filename: file_name.as_deref(),
                    content_type: content_type.as_deref(),
                };
                candor_media::decode(bytes, &hint, &limits, &decode_opts)
            }
        });
        let decoded = match tokio::time::timeout_at(deadline.into(), decode).await {
            Err(_) => {
                return Err(AnalyzeError::Deadline {
                    elapsed_ms: ms(started),
                })
            }
            Ok(Err(join)) => return Err(AnalyzeError::Internal(format!("decoder task: {join}"))),
            Ok(Ok(Err(e))) => {
                metrics::counter!("candor_decode_failures_total", "code" => e.code()).increment(1);
                return Err(e.into());
            }
            Ok(Ok(Ok(d))) => d,
        };
        let decode_ms = ms(started);
        metrics::histogram!("candor_decode_seconds", "kind" => decoded.kind().as_str())
            .record(decode_ms / 1e3);

        let modality = match decoded.kind() {
            Kind::Image => Modality::Image,
            Kind::Audio => Modality::Audio,
            Kind::Document => Modality::Text,
        };
        let mut properties = decoded.properties();
        let mut warnings: Vec<String> = decoded.warnings().to_vec();
        let mut front_models = Vec::new();
        let mut queue_ms = 0.0;
        let mut inference_ms = 0.0;

        // Audio front end: speech activity.
        let mut speech = None;
        if let Decoded::Audio(a) = &decoded {
            match (&self.vad, a.sample_rate == speech::RATE) {
                (Some(vad), true) => {
                    let t = Instant::now();
                    let act = speech::detect(vad, &a.samples, opts.priority, Some(deadline))
                        .await
                        .map_err(|e| match e {
                            EngineError::DeadlineExceeded { .. } => AnalyzeError::Deadline {
                                elapsed_ms: ms(started),
                            },
                            other => other.into(),
                        })?;
                    queue_ms += act.queue_ms;
                    inference_ms += ms(t) - act.queue_ms;
                    properties.insert("speech_seconds".into(), json!(round3(act.speech_seconds)));
                    properties.insert(
                        "speech_ratio".into(),
                        json!(round3(act.speech_seconds / a.duration_s.max(1e-9))),
                    );
                    properties.insert("speech_segments".into(), json!(act.segments.len()));
                    front_models.push(vad.model_ref());
                    speech = Some(act);
                }
                (Some(_), false) => warnings.push(format!(
                    "speech activity not measured: audio decoded at {} Hz, the VAD needs {} Hz",
                    a.sample_rate,
                    speech::RATE
                )),
                (None, _) => {}
            }
        }

        let info = InputInfo {
            name: name.clone(),
            sha256,
            bytes: n_bytes,
            format: if is_text {
                "text/plain".to_string()
            } else {
                decoded.format().to_string()
            },
            properties,
        };

        // The registry's voice template: the speech segments, kept before
        // the activity moves into the detector's context.
        let voice_segments = match (&speech, &self.voice) {
            (Some(sp), Some(_)) if opts.identity => Some(sp.segments.clone()),
            _ => None,
        };
        let mut result = match self.detectors.get(&modality) {
            None => AnalysisResult::abstained(
                modality,
                info,
                AbstainCode::DetectorNotInstalled,
                self.missing
                    .get(&modality)
                    .cloned()
                    .unwrap_or_else(|| not_installed(modality)),
            ),
            Some(det) => {
                let ctx = DetectContext {
                    priority: opts.priority,
                    deadline,
                    speech,
                    identity: opts.identity,
                };
                let f = det.detect(&decoded, &ctx).await?;
                queue_ms += f.queue_ms;
                inference_ms += f.inference_ms;
                let mut r = match f.outcome {
                    Outcome::Score {
                        probability,
                        thresholds,
                    } => AnalysisResult::scored(modality, info, probability, thresholds),
                    Outcome::Abstain(a) => {
                        AnalysisResult::abstained(modality, info, a.code, a.reason)
                    }
                };
                r.signals = f.signals;
                r.evidence = f.evidence;
                r.models = f.models;
                r.identity = f.identity;
                warnings.extend(f.warnings);
                r
            }
        };
        if let (Some(segments), Some(model), Decoded::Audio(a)) =
            (&voice_segments, &self.voice, &decoded)
        {
            let t = Instant::now();
            match crate::audio::voice::embed(
                model,
                &a.samples,
                segments,
                opts.priority,
                Some(deadline),
            )
            .await
            {
                Ok(Some(v)) => {
                    result.identity.get_or_insert_with(Default::default).voice = Some(v);
                    front_models.push(model.model_ref());
                }
                Ok(None) => warnings.push(format!(
                    "no voice template for the identity registry: less than {:.0} s of speech",
                    crate::audio::voice::MIN_SPEECH_S
                )),
                Err(e) => {
                    warnings.push(format!("no voice template for the identity registry: {e}"))
                }
            }
            inference_ms += ms(t);
        }
        front_models.append(&mut result.models);
        result.models = front_models;
        result.warnings = warnings;
        result.input_truncated = decoded.truncated();
        if opts.identity {
            if let Decoded::Document(d) = &decoded {
                result.identity.get_or_insert_with(Default::default).text = Some(d.text.clone());
            }
        }
        result.timings = Timings {
            decode_ms,
            queue_ms,
            inference_ms,
            total_ms: ms(started),
        };
        Ok(result)
    }
}

fn not_installed(m: Modality) -> String {
    format!("no {m} detector is installed in this build")
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}
