//! Audio detector: voice changers, TTS and cloned voices, on a timeline.
//!
//! Pipeline (16 kHz mono, after decoding and resampling):
//! 1. speech activity (silero VAD, run by the analyzer's front end);
//! 2. abstain on too little speech or very low SNR;
//! 3. 2 s segments every `hop_s` (1 s) wherever at least
//!    `min_window_speech_s` of the segment is speech; a file shorter than
//!    2 s is one zero-padded segment;
//! 4. per segment: the project's anti-spoofing model (LCNN on LFCC,
//!    `models/audio/lcnn-lfcc.onnx`, trained by `scripts/audio/train_lcnn.py`;
//!    segments of all files in flight share engine batches) and the signal
//!    forensics of [`dsp`];
//! 5. a logistic fusion head (`models/audio/fusion-head.json`, fitted by
//!    `candor audio-train`) gives each segment's log-odds; the segment
//!    calibration turns it into the timeline's probabilities;
//! 6. the file's log-odds is the mean of its top `file_top_fraction` of
//!    segment log-odds (a high quantile: stable in file length, unlike the
//!    maximum), calibrated by the file calibration into the score and label;
//! 7. evidence: the timeline of segments (start, end, probability,
//!    dominant signal) and a spectrogram PNG with the segments marked.

pub mod dsp;
pub mod picture;
pub mod stream;

use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use base64::Engine as _;
use candor_core::{AbstainCode, Abstention, Evidence, Modality, ModelRef, Priority, Signal};
use candor_engine::{EngineError, ModelHandle, NamedTensor, TensorData};
use candor_eval::calibrate::CalibrationArtefact;
use candor_media::Decoded;
use serde::{Deserialize, Serialize};

use crate::analyzer::{DetectContext, Detector, DetectorStatus, Finding, Outcome};
use crate::speech::{self, SpeechActivity};
use crate::AnalyzeError;

/// Id of the anti-spoofing model in `models/manifest.toml`.
pub const LCNN_MODEL: &str = "candor-audio-lcnn";
/// Fusion head and calibrations, relative to the manifest's folder.
pub const HEAD_FILE: &str = "audio/fusion-head.json";
pub const CALIBRATION_FILE: &str = "audio/calibration.json";
pub const SEGMENT_CALIBRATION_FILE: &str = "audio/calibration-segment.json";
/// Format tag of the fusion head file.
pub const HEAD_FORMAT: &str = "candor.audio-fusion/1";

/// Segment length the model takes (2 s at 16 kHz).
pub const SEGMENT: usize = 32_000;
/// Rows per engine request (a long file is several requests in flight,
/// which the batcher packs together with other files' segments).
const ROWS_PER_REQUEST: usize = 16;

/// All features a segment has, in vector order: the model's log-odds, then
/// the forensic features of [`dsp::FEATURES`].
pub const FEATURES: [&str; 8] = [
    "lcnn.logit",
    dsp::FEATURES[0],
    dsp::FEATURES[1],
    dsp::FEATURES[2],
    dsp::FEATURES[3],
    dsp::FEATURES[4],
    dsp::FEATURES[5],
    dsp::FEATURES[6],
];

/// What a feature measures.
pub fn describe(name: &str) -> &'static str {
    match name {
        "lcnn.logit" => {
            "log-odds of the project's anti-spoofing model (LCNN on LFCC) for the segment"
        }
        other => dsp::describe(other),
    }
}

/// Knobs of the audio detector.
#[derive(Debug, Clone)]
pub struct AudioConfig {
    /// Seconds between segment starts (segments are 2 s long).
    pub hop_s: f64,
    /// Abstain (`unsuitable_audio`) when speech is less than this many dB
    /// above the non-speech parts.
    pub min_snr_db: f64,
    /// Most segments scored per file (the rest is skipped with a warning).
    pub max_segments: usize,
    /// Draw the spectrogram picture.
    pub picture: bool,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            hop_s: 1.0,
            min_snr_db: 3.0,
            max_segments: 3600,
            picture: true,
        }
    }
}

/// The fusion head: standardised features, one logistic layer, plus the
/// segment and file rules it was fitted with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AudioHead {
    /// The logistic layer (format [`HEAD_FORMAT`], features from [`FEATURES`]).
    #[serde(flatten)]
    pub linear: crate::fusion::LinearHead,
    /// The file log-odds is the mean of this top share of segment log-odds.
    pub file_top_fraction: f64,
    /// Below this much speech (s) the detector abstains.
    pub min_speech_s: f64,
    /// A segment is scored when at least this much of it (s) is speech.
    pub min_window_speech_s: f64,
}

impl std::ops::Deref for AudioHead {
    type Target = crate::fusion::LinearHead;
    fn deref(&self) -> &crate::fusion::LinearHead {
        &self.linear
    }
}

impl AudioHead {
    /// Parses and checks a head file's JSON.
    pub fn from_slice(bytes: &[u8]) -> Result<AudioHead, String> {
        let h: AudioHead = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        h.check()?;
        Ok(h)
    }

    /// Consistency checks.
    pub fn check(&self) -> Result<(), String> {
        self.linear.check(HEAD_FORMAT, &FEATURES)?;
        if !(self.min_speech_s.is_finite() && self.min_window_speech_s.is_finite()) {
            return Err("speech minimums must be finite".into());
        }
        if !(self.file_top_fraction > 0.0 && self.file_top_fraction <= 1.0) {
            return Err("file_top_fraction must be in (0, 1]".into());
        }
        Ok(())
    }

    /// Per-feature contributions to the log-odds, in [`FEATURES`] order
    /// (features the head does not use, and missing values, contribute 0).
    pub fn contributions(&self, x: &[f64; 8]) -> [f64; 8] {
        self.linear.contributions(&FEATURES, x)
    }

    /// Segment log-odds.
    pub fn raw(&self, x: &[f64; 8]) -> f64 {
        self.raw_of(&self.contributions(x))
    }

    /// The feature that pushed a segment's log-odds up most, if any did.
    pub fn dominant_of(contributions: &[f64; 8]) -> Option<&'static str> {
        contributions
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .filter(|(_, c)| **c > 0.0)
            .map(|(i, _)| FEATURES[i])
    }

    /// File log-odds from segment log-odds: mean of the top share.
    pub fn file_raw(&self, segment_raw: &[f64]) -> Option<f64> {
        file_raw(segment_raw, self.file_top_fraction)
    }
}

/// Mean of the top `fraction` of `values` (at least one).
pub fn file_raw(values: &[f64], fraction: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    let k = ((v.len() as f64 * fraction).ceil() as usize).clamp(1, v.len());
    Some(v[..k].iter().sum::<f64>() / k as f64)
}

/// One scored segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentFeatures {
    pub start_s: f64,
    pub end_s: f64,
    /// Seconds of speech in the segment.
    pub speech_s: f64,
    /// Features in [`FEATURES`] order (`NaN` = not measurable).
    pub x: [f64; 8],
}

/// Everything measured on one file, before the head.
#[derive(Debug, Clone)]
pub struct AudioAnalysis {
    pub duration_s: f64,
    pub speech_seconds: f64,
    /// Speech level over non-speech level (dB), when both exist.
    pub snr_db: Option<f64>,
    pub segments: Vec<SegmentFeatures>,
    pub frames: dsp::Frames,
    pub warnings: Vec<String>,
    pub queue_ms: f64,
    pub inference_ms: f64,
}

/// Runs the front end, the model and the forensics (no head, no
/// calibration): shared by the detector and `candor audio-features`.
pub struct AudioScorer {
    lcnn: ModelHandle,
    vad: Option<ModelHandle>,
    analyzer: dsp::Analyzer,
    cfg: AudioConfig,
}

impl AudioScorer {
    /// A scorer around the loaded anti-spoofing model; `vad` is needed only
    /// when callers do not pass speech activity in.
    pub fn new(lcnn: ModelHandle, vad: Option<ModelHandle>, cfg: AudioConfig) -> Self {
        AudioScorer {
            lcnn,
            vad,
            analyzer: dsp::Analyzer::new(),
            cfg,
        }
    }

    pub fn model_ref(&self) -> ModelRef {
        self.lcnn.model_ref()
    }

    /// Scores 16 kHz mono samples. `speech` is the front end's activity;
    /// when `None` the scorer runs the VAD itself.
    pub async fn analyze(
        &self,
        samples: &[f32],
        speech: Option<&SpeechActivity>,
        min_window_speech_s: f64,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<AudioAnalysis, AnalyzeError> {
        let mut queue_ms = 0.0;
        let mut inference_ms = 0.0;
        let own;
        let speech = match speech {
            Some(s) => s,
            None => {
                let vad = self.vad.as_ref().ok_or_else(|| {
                    AnalyzeError::Internal("audio scorer has no speech activity".into())
                })?;
                let t = Instant::now();
                own = speech::detect(vad, samples, priority, deadline).await?;
                queue_ms += own.queue_ms;
                inference_ms += ms(t) - own.queue_ms;
                &own
            }
        };
        let t = Instant::now();
        let duration_s = samples.len() as f64 / dsp::RATE as f64;
        let frames = self.analyzer.frames(samples);
        let snr_db = snr(&frames, &speech.segments);
        let mut warnings = Vec::new();

        // Segment starts.
        let seg_s = SEGMENT as f64 / dsp::RATE as f64;
        let mut starts: Vec<f64> = Vec::new();
        if duration_s <= seg_s {
            starts.push(0.0);
        } else {
            let mut s = 0.0;
            while s + seg_s <= duration_s + 1e-9 {
                starts.push(s);
                s += self.cfg.hop_s;
            }
            let last = duration_s - seg_s;
            if starts
                .last()
                .is_some_and(|&l| last - l > 0.25 * self.cfg.hop_s)
            {
                starts.push(last);
            }
        }
        let mut segments: Vec<SegmentFeatures> = starts
            .into_iter()
            .map(|s| {
                let e = (s + seg_s).min(duration_s);
                SegmentFeatures {
                    start_s: s,
                    end_s: e,
                    speech_s: overlap(&speech.segments, s, e),
                    x: [f64::NAN; 8],
                }
            })
            .filter(|w| w.speech_s >= min_window_speech_s.min(w.end_s - w.start_s))
            .collect();
        if segments.len() > self.cfg.max_segments {
            warnings.push(format!(
                "only the first {} of {} speech segments were scored (max_segments)",
                self.cfg.max_segments,
                segments.len()
            ));
            segments.truncate(self.cfg.max_segments);
        }
        for w in &mut segments {
            let f0 = (w.start_s * dsp::FRAME_RATE) as usize;
            let f1 = ((w.end_s * dsp::FRAME_RATE) as usize).saturating_sub(dsp::FRAME / dsp::HOP);
            let f = dsp::segment_features(&frames, f0..f1.max(f0 + 1));
            w.x[1..].copy_from_slice(&f);
        }
        inference_ms += ms(t);

        // The model, in requests of ROWS_PER_REQUEST segments, all in flight.
        let mut requests = Vec::new();
        for chunk in segments.chunks(ROWS_PER_REQUEST) {
            let mut data = vec![0f32; chunk.len() * SEGMENT];
            for (row, w) in data.chunks_mut(SEGMENT).zip(chunk) {
                let a = (w.start_s * dsp::RATE as f64).round() as usize;
                let b = (a + SEGMENT).min(samples.len());
                row[..b - a].copy_from_slice(&samples[a..b]);
            }
            let model = self.lcnn.clone();
            let n = chunk.len();
            requests.push(async move {
                let input = TensorData::f32_from_vec(&[n, SEGMENT], data)
                    .ok_or_else(|| EngineError::backend(LCNN_MODEL, "waveform shape"))?;
                let mut out = model
                    .infer(
                        vec![NamedTensor::new("waveform", input)],
                        priority,
                        deadline,
                    )
                    .await?;
                let logits: Vec<f32> = out
                    .take("logit")
                    .and_then(|t| t.as_f32().map(|a| a.iter().copied().collect()))
                    .ok_or_else(|| EngineError::backend(LCNN_MODEL, "output `logit` missing"))?;
                if logits.len() != n {
                    return Err(EngineError::backend(
                        LCNN_MODEL,
                        format!("{} logits for {n} segments", logits.len()),
                    ));
                }
                Ok::<_, EngineError>((logits, out.queue_ms, out.exec_ms))
            });
        }
        let results = futures_util::future::join_all(requests).await;
        let mut k = 0;
        let mut q_max: f64 = 0.0;
        let mut e_max: f64 = 0.0;
        for r in results {
            let (logits, q, e) = r?;
            q_max = q_max.max(q);
            e_max = e_max.max(e);
            for l in logits {
                segments[k].x[0] = l as f64;
                k += 1;
            }
        }
        // Requests ran concurrently: count the longest, not the sum.
        queue_ms += q_max;
        inference_ms += e_max;
        Ok(AudioAnalysis {
            duration_s,
            speech_seconds: speech.speech_seconds,
            snr_db,
            segments,
            frames,
            warnings,
            queue_ms,
            inference_ms,
        })
    }
}

/// Seconds of `segments` inside [s, e).
fn overlap(segments: &[(f64, f64)], s: f64, e: f64) -> f64 {
    segments
        .iter()
        .map(|&(a, b)| (b.min(e) - a.max(s)).max(0.0))
        .sum()
}

/// Median level of speech frames minus median level of the others (dB).
fn snr(frames: &dsp::Frames, speech: &[(f64, f64)]) -> Option<f64> {
    let (mut sp, mut other) = (Vec::new(), Vec::new());
    for i in 0..frames.len() {
        let t = (i * dsp::HOP + dsp::FRAME / 2) as f64 / dsp::RATE as f64;
        if speech.iter().any(|&(a, b)| t >= a && t < b) {
            sp.push(frames.level_db[i]);
        } else {
            other.push(frames.level_db[i]);
        }
    }
    if sp.len() < 20 || other.len() < 20 {
        return None;
    }
    let med = |v: &mut Vec<f32>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2] as f64
    };
    Some(med(&mut sp) - med(&mut other))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Where the audio detector's committed files are, for a manifest path:
/// (head, file calibration, segment calibration).
pub fn default_files(manifest: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    (
        dir.join(HEAD_FILE),
        dir.join(CALIBRATION_FILE),
        dir.join(SEGMENT_CALIBRATION_FILE),
    )
}

/// The audio detector: scorer + fusion head + calibrations.
pub struct AudioDetector {
    scorer: AudioScorer,
    head: AudioHead,
    head_sha256: String,
    calibration: CalibrationArtefact,
    segment_calibration: CalibrationArtefact,
    cfg: AudioConfig,
}

impl AudioDetector {
    /// Builds the detector from the loaded model and the committed files.
    pub fn load(
        lcnn: ModelHandle,
        vad: Option<ModelHandle>,
        head: &Path,
        calibration: &Path,
        segment_calibration: &Path,
        cfg: AudioConfig,
    ) -> Result<Self, String> {
        let bytes =
            std::fs::read(head).map_err(|e| format!("fusion head {}: {e}", head.display()))?;
        let head_sha256 = candor_core::sha256_hex(&bytes);
        let head_v = AudioHead::from_slice(&bytes)
            .map_err(|e| format!("fusion head {}: {e}", head.display()))?;
        let load_cal = |p: &Path, want: &str| -> Result<CalibrationArtefact, String> {
            let c = CalibrationArtefact::load(p)
                .map_err(|e| format!("calibration {}: {e}", p.display()))?;
            if c.detector != want {
                return Err(format!(
                    "calibration `{}` is for detector `{}`, not `{want}`",
                    c.id, c.detector
                ));
            }
            Ok(c)
        };
        let calibration = load_cal(calibration, "audio")?;
        let segment_calibration = load_cal(segment_calibration, "audio-segment")?;
        Ok(AudioDetector {
            scorer: AudioScorer::new(lcnn, vad, cfg.clone()),
            head: head_v,
            head_sha256,
            calibration,
            segment_calibration,
            cfg,
        })
    }

    /// The fusion head in force.
    pub fn head(&self) -> &AudioHead {
        &self.head
    }

    /// The file calibration in force.
    pub fn calibration(&self) -> &CalibrationArtefact {
        &self.calibration
    }

    /// The segment calibration in force.
    pub fn segment_calibration(&self) -> &CalibrationArtefact {
        &self.segment_calibration
    }

    /// Scores one segment of at most 2 s (16 kHz mono) on its own, for
    /// streaming: its own speech activity, model and forensics. `None` when
    /// the segment holds too little speech.
    pub async fn score_segment(
        &self,
        samples: &[f32],
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<Option<ScoredSegment>, AnalyzeError> {
        let samples = &samples[..samples.len().min(SEGMENT)];
        let a = self
            .scorer
            .analyze(
                samples,
                None,
                self.head.min_window_speech_s,
                priority,
                deadline,
            )
            .await?;
        let Some(w) = a.segments.first() else {
            return Ok(None);
        };
        let contributions = self.head.contributions(&w.x);
        let raw = self.head.raw_of(&contributions);
        let dominant = AudioHead::dominant_of(&contributions);
        Ok(Some(ScoredSegment {
            raw,
            probability: self.segment_calibration.apply(raw),
            speech_s: w.speech_s,
            dominant,
        }))
    }

    /// Model references of a result (model, head, calibrations).
    pub fn models(&self) -> Vec<ModelRef> {
        vec![
            self.scorer.model_ref(),
            ModelRef {
                id: self.head.id.clone(),
                version: self.head.version.clone(),
                sha256: Some(self.head_sha256.clone()),
            },
            self.segment_calibration.model_ref(),
            self.calibration.model_ref(),
        ]
    }
}

#[async_trait]
impl Detector for AudioDetector {
    fn modality(&self) -> Modality {
        Modality::Audio
    }

    fn status(&self) -> DetectorStatus {
        DetectorStatus {
            modality: Modality::Audio,
            installed: true,
            name: Some(format!("{} + {}", LCNN_MODEL, self.head.id)),
            version: Some(self.head.version.clone()),
            reason: None,
        }
    }

    async fn detect(&self, input: &Decoded, ctx: &DetectContext) -> Result<Finding, AnalyzeError> {
        let Decoded::Audio(audio) = input else {
            return Err(AnalyzeError::Internal(
                "audio detector given a non-audio input".into(),
            ));
        };
        let mut finding = Finding {
            outcome: Outcome::Abstain(Abstention {
                code: AbstainCode::TooShort,
                reason: String::new(),
            }),
            signals: Vec::new(),
            evidence: Vec::new(),
            models: self.models(),
            warnings: Vec::new(),
            queue_ms: 0.0,
            inference_ms: 0.0,
        };
        if audio.sample_rate as usize != dsp::RATE {
            finding.outcome = Outcome::Abstain(Abstention {
                code: AbstainCode::LowQuality,
                reason: format!(
                    "audio decoded at {} Hz; the audio detector needs {} Hz",
                    audio.sample_rate,
                    dsp::RATE
                ),
            });
            return Ok(finding);
        }
        // Cheap rule before any model: too little speech.
        if let Some(sp) = &ctx.speech {
            if let Some(ab) = speech_abstention(sp.speech_seconds, self.head.min_speech_s) {
                finding.outcome = Outcome::Abstain(ab);
                return Ok(finding);
            }
        }
        let a = self
            .scorer
            .analyze(
                &audio.samples,
                ctx.speech.as_ref(),
                self.head.min_window_speech_s,
                ctx.priority,
                Some(ctx.deadline),
            )
            .await?;
        finding.queue_ms = a.queue_ms;
        finding.inference_ms = a.inference_ms;
        finding.warnings = a.warnings.clone();
        if let Some(ab) = speech_abstention(a.speech_seconds, self.head.min_speech_s) {
            finding.outcome = Outcome::Abstain(ab);
            return Ok(finding);
        }
        if let Some(snr) = a.snr_db {
            if snr < self.cfg.min_snr_db {
                finding.outcome = Outcome::Abstain(Abstention {
                    code: AbstainCode::UnsuitableAudio,
                    reason: format!(
                        "speech is only {snr:.1} dB above the background (at least {:.1} dB \
                         needed): too noisy to judge",
                        self.cfg.min_snr_db
                    ),
                });
                return Ok(finding);
            }
        }
        if a.segments.is_empty() {
            finding.outcome = Outcome::Abstain(Abstention {
                code: AbstainCode::TooShort,
                reason: format!(
                    "{:.1} s of speech, but no 2 s stretch holds {:.1} s of it",
                    a.speech_seconds, self.head.min_window_speech_s
                ),
            });
            return Ok(finding);
        }

        let t = Instant::now();
        // Each segment's contributions once: its log-odds, its dominant
        // signal and the per-feature means below all come from them.
        let contribs: Vec<[f64; 8]> = a
            .segments
            .iter()
            .map(|w| self.head.contributions(&w.x))
            .collect();
        let seg_raw: Vec<f64> = contribs.iter().map(|c| self.head.raw_of(c)).collect();
        let file_raw = self
            .head
            .file_raw(&seg_raw)
            .ok_or_else(|| AnalyzeError::Internal("no segment scores".into()))?;
        let probability = self.calibration.apply(file_raw);
        let th = &self.segment_calibration.thresholds;
        let mut marks = Vec::with_capacity(a.segments.len());
        for ((w, raw), c) in a.segments.iter().zip(&seg_raw).zip(&contribs) {
            let p = self.segment_calibration.apply(*raw);
            let dominant = AudioHead::dominant_of(c).map(str::to_string);
            finding.evidence.push(Evidence::AudioSegment {
                start_s: round4(w.start_s),
                end_s: round4(w.end_s),
                score: Some(round4(p)),
                signal: dominant,
            });
            marks.push(picture::Mark {
                start_s: w.start_s,
                end_s: w.end_s,
                probability: p,
            });
        }
        if self.cfg.picture {
            match picture::render(
                &a.frames,
                &marks,
                th.authentic_below,
                th.manipulated_at_or_above,
            ) {
                Ok(png) => finding.evidence.push(Evidence::Picture {
                    name: "spectrogram".into(),
                    media_type: "image/png".into(),
                    data_base64: base64::engine::general_purpose::STANDARD.encode(png),
                }),
                Err(e) => finding
                    .warnings
                    .push(format!("spectrogram picture not drawn: {e}")),
            }
        }

        // Signals: file means of each feature, with its mean contribution.
        let n = a.segments.len() as f64;
        for (i, name) in FEATURES.iter().enumerate() {
            let vals: Vec<f64> = a
                .segments
                .iter()
                .map(|w| w.x[i])
                .filter(|v| v.is_finite())
                .collect();
            if vals.is_empty() {
                continue;
            }
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let used = self.head.features.iter().any(|f| f == name);
            let c: f64 = contribs.iter().map(|c| c[i]).sum::<f64>() / n;
            finding.signals.push(Signal {
                name: (*name).to_string(),
                value: round4(m),
                probability: None,
                detail: Some(if used {
                    format!(
                        "{} (mean over {} segments); mean contribution to the segment log-odds {c:+.3}",
                        describe(name),
                        vals.len()
                    )
                } else {
                    format!("{} (not used by the head)", describe(name))
                }),
            });
        }
        let seg_max = seg_raw.iter().copied().fold(f64::MIN, f64::max);
        finding.signals.push(Signal {
            name: "fusion.segment_max".into(),
            value: round4(seg_max),
            probability: Some(round4(self.segment_calibration.apply(seg_max))),
            detail: Some(
                "highest segment log-odds (fusion head), with its segment probability".into(),
            ),
        });
        finding.signals.push(Signal {
            name: "fusion.file".into(),
            value: round4(file_raw),
            probability: Some(round4(probability)),
            detail: Some(format!(
                "mean of the top {:.0}% of {} segment log-odds, before calibration `{}`",
                self.head.file_top_fraction * 100.0,
                a.segments.len(),
                self.calibration.id
            )),
        });
        if let Some(snr) = a.snr_db {
            finding.signals.push(Signal {
                name: "audio.snr_db".into(),
                value: round4(snr),
                probability: None,
                detail: Some("speech level over background level (not used by the head)".into()),
            });
        }
        finding.inference_ms += ms(t);
        finding.outcome = Outcome::Score {
            probability,
            thresholds: self.calibration.thresholds.clone(),
        };
        Ok(finding)
    }
}

/// One segment scored on its own (streaming).
#[derive(Debug, Clone)]
pub struct ScoredSegment {
    /// Segment log-odds (fusion head).
    pub raw: f64,
    /// Calibrated segment probability.
    pub probability: f64,
    /// Seconds of speech in the segment.
    pub speech_s: f64,
    /// Feature that pushed the score up most, if any did.
    pub dominant: Option<&'static str>,
}

/// Abstention for too little speech, if any.
pub fn speech_abstention(speech_s: f64, min_speech_s: f64) -> Option<Abstention> {
    if speech_s < 0.25 {
        Some(Abstention {
            code: AbstainCode::Silence,
            reason: format!("no speech found ({speech_s:.2} s)"),
        })
    } else if speech_s < min_speech_s {
        Some(Abstention {
            code: AbstainCode::TooShort,
            reason: format!("{speech_s:.1} s of speech, at least {min_speech_s:.1} s needed"),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_raw_is_a_top_share_mean() {
        assert_eq!(file_raw(&[], 0.25), None);
        assert_eq!(file_raw(&[1.0], 0.25), Some(1.0));
        // Top 25% of 8 values = the 2 highest.
        let v = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        assert_eq!(file_raw(&v, 0.25), Some(6.5));
        assert_eq!(file_raw(&v, 1.0), Some(3.5));
    }

    #[test]
    fn head_treats_missing_features_as_average() {
        let h = AudioHead {
            linear: crate::fusion::LinearHead {
                format: HEAD_FORMAT.into(),
                id: "h".into(),
                version: "1".into(),
                features: vec!["lcnn.logit".into(), "pitch.jitter".into()],
                mean: vec![0.0, 0.02],
                scale: vec![2.0, 0.01],
                weights: vec![1.5, 0.5],
                bias: -1.0,
                trained_on: serde_json::Value::Null,
            },
            file_top_fraction: 0.25,
            min_speech_s: 1.5,
            min_window_speech_s: 1.0,
        };
        h.check().unwrap();
        let mut x = [f64::NAN; 8];
        x[0] = 4.0;
        // -1 + 1.5 * 2 + 0 (jitter missing)
        assert!((h.raw(&x) - 2.0).abs() < 1e-12);
        x[2] = 0.04;
        assert!((h.raw(&x) - 3.0).abs() < 1e-12);
        let mut bad = h.clone();
        bad.linear.features[1] = "nope".into();
        assert!(bad.check().is_err());
        bad = h;
        bad.file_top_fraction = 0.0;
        assert!(bad.check().is_err());
    }

    #[test]
    fn speech_rules() {
        assert_eq!(
            speech_abstention(0.1, 1.5).unwrap().code,
            AbstainCode::Silence
        );
        assert_eq!(
            speech_abstention(1.0, 1.5).unwrap().code,
            AbstainCode::TooShort
        );
        assert!(speech_abstention(2.0, 1.5).is_none());
    }
}
