//! Audio detector: voice changers, TTS and cloned voices, on a timeline.
//!
//! Pipeline (16 kHz mono, after decoding and resampling):
//! 1. speech activity (silero VAD, run by the analyzer's front end);
//! 2. abstain on too little speech or very low SNR;
//! 3. 2 s segments every `hop_s` (2 s: touching) wherever at least
//!    `min_window_speech_s` of the segment is speech; a file shorter than
//!    2 s is one zero-padded segment;
//! 4. per segment: the speech encoder (Whisper tiny.en's log-mel front end
//!    and encoder, converted at setup, model `whisper-tiny-en-encoder`; the
//!    mean and spread of its states after each block), the project's
//!    anti-spoofing model (LCNN on LFCC, `models/audio/lcnn-lfcc.onnx`) and
//!    the signal forensics of [`dsp`]; the encoder takes each segment in a
//!    call of its own (its features never depend on other segments), the
//!    LCNN's segments go 16 to a request;
//! 5. a logistic head (`models/audio/head.json`, fitted by
//!    `scripts/audio/train_audio_head.py` on `candor audio-features` output)
//!    over the encoder statistics and the named features it lists gives each
//!    segment's log-odds; the segment calibration turns it into the
//!    timeline's probabilities;
//! 6. the file's log-odds is the mean of its top `file_top_fraction` of
//!    segment log-odds (a high quantile: stable in file length, unlike the
//!    maximum), calibrated by the file calibration into the score and label;
//! 7. evidence: the timeline of segments (start, end, probability,
//!    dominant signal) and a spectrogram PNG with the segments marked.

pub mod dsp;
pub mod picture;
pub mod stream;
pub mod voice;

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
/// Id of the speech encoder in `models/manifest.toml`.
pub const ENCODER_MODEL: &str = "whisper-tiny-en-encoder";
/// Head and calibrations, relative to the manifest's folder.
pub const HEAD_FILE: &str = "audio/head.json";
pub const CALIBRATION_FILE: &str = "audio/calibration.json";
pub const SEGMENT_CALIBRATION_FILE: &str = "audio/calibration-segment.json";
/// Format tag of the head file.
pub const HEAD_FORMAT: &str = "candor.audio-head/3";
/// States the encoder pools (the stem and each of its 4 blocks).
pub const ENCODER_STATES: usize = 5;
/// Width of one encoder state.
pub const ENCODER_WIDTH: usize = 384;
/// Length of a segment's encoder statistics: means of every state, then
/// their standard deviations.
pub const ENCODER_DIM: usize = 2 * ENCODER_STATES * ENCODER_WIDTH;
/// Name of the encoder's share of a segment's log-odds in the evidence.
pub const ENCODER_SIGNAL: &str = "encoder.whisper";

/// Segment length the model takes (2 s at 16 kHz).
pub const SEGMENT: usize = 32_000;
/// Rows per LCNN request (a long file is several requests in flight,
/// which the batcher packs together with other files' segments).
const ROWS_PER_REQUEST: usize = 16;
/// Rows per speech-encoder request: one. Its INT8 graph quantises
/// activations with one scale per call, so a segment's features would
/// depend on the other segments of its request; alone, a segment gets the
/// same features in an upload, in a live stream (which sends segments one
/// at a time) and beside any other file. Packing buys little on 2 cores
/// (docs/benchmarks-audio.md: `batched` against `batch1`).
const ENCODER_ROWS_PER_REQUEST: usize = 1;

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
            hop_s: 2.0,
            min_snr_db: 3.0,
            max_segments: 3600,
            picture: true,
        }
    }
}

/// The head: one standardised logistic layer over the encoder statistics
/// it selects and the named features it lists (in that order), plus the
/// segment and file rules it was fitted with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AudioHead {
    pub format: String,
    pub id: String,
    pub version: String,
    /// Encoder states read (0 = after the stem, 4 = after the last block and
    /// the final norm), in input order...
    #[serde(default)]
    pub encoder_states: Vec<usize>,
    /// ...and which statistics of each: `mean`, `std`.
    #[serde(default)]
    pub encoder_stats: Vec<String>,
    /// Named features after the encoder values (from [`FEATURES`]).
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(flatten)]
    pub linear: crate::fusion::VectorHead,
    /// Rectified units added to the linear term (over the encoder values
    /// only: a head with a hidden layer lists no named features).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<crate::fusion::Hidden>,
    /// The file log-odds is the mean of this top share of segment log-odds.
    pub file_top_fraction: f64,
    /// Below this much speech (s) the detector abstains.
    pub min_speech_s: f64,
    /// A segment is scored when at least this much of it (s) is speech.
    pub min_window_speech_s: f64,
    #[serde(default)]
    pub trained_on: serde_json::Value,
}

impl AudioHead {
    /// Parses and checks a head file's JSON.
    pub fn from_slice(bytes: &[u8]) -> Result<AudioHead, String> {
        let mut h: AudioHead = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let dim = h.dim();
        if let Some(hid) = h.hidden.as_mut() {
            hid.prepare(dim)?;
        }
        h.check()?;
        Ok(h)
    }

    /// Consistency checks.
    pub fn check(&self) -> Result<(), String> {
        if self.format != HEAD_FORMAT {
            return Err(format!(
                "unknown head format `{}` (expected `{HEAD_FORMAT}`)",
                self.format
            ));
        }
        if let Some(f) = self
            .features
            .iter()
            .find(|f| !FEATURES.contains(&f.as_str()))
        {
            return Err(format!("unknown feature `{f}`"));
        }
        if self.encoder_states.iter().any(|&l| l >= ENCODER_STATES)
            || self.encoder_stats.iter().any(|s| s != "mean" && s != "std")
            || self.encoder_states.is_empty() != self.encoder_stats.is_empty()
        {
            return Err("encoder_states must be in 0..5 and encoder_stats mean|std".into());
        }
        if self.dim() == 0 {
            return Err("the head reads nothing".into());
        }
        self.linear.check(self.dim())?;
        if let Some(h) = &self.hidden {
            if !self.features.is_empty() {
                return Err("a head with a hidden layer reads no named features".into());
            }
            if h.decoded.len() != self.dim() * h.units {
                return Err("hidden layer: weights not decoded for this head's inputs".into());
            }
        }
        if !(self.min_speech_s.is_finite() && self.min_window_speech_s.is_finite()) {
            return Err("speech minimums must be finite".into());
        }
        if !(self.file_top_fraction > 0.0 && self.file_top_fraction <= 1.0) {
            return Err("file_top_fraction must be in (0, 1]".into());
        }
        Ok(())
    }

    /// Values the head reads.
    pub fn dim(&self) -> usize {
        self.encoder_states.len() * self.encoder_stats.len() * ENCODER_WIDTH + self.features.len()
    }

    /// Whether the head reads the speech encoder / the LCNN.
    pub fn needs_encoder(&self) -> bool {
        !self.encoder_states.is_empty()
    }
    pub fn needs_lcnn(&self) -> bool {
        self.features.iter().any(|f| f == "lcnn.logit")
    }

    /// The encoder's share of the log-odds (with the hidden units, which
    /// read the encoder only) and each named feature's, in [`FEATURES`]
    /// order (features the head does not use, and missing values,
    /// contribute 0).
    pub fn contributions(&self, w: &SegmentFeatures) -> (f64, [f64; 8]) {
        let mut j = 0;
        let mut enc = 0.0;
        let mut z = Vec::with_capacity(if self.hidden.is_some() { self.dim() } else { 0 });
        for stat in &self.encoder_stats {
            let base = if stat == "mean" {
                0
            } else {
                ENCODER_STATES * ENCODER_WIDTH
            };
            for &l in &self.encoder_states {
                let off = base + l * ENCODER_WIDTH;
                for d in 0..ENCODER_WIDTH {
                    let v = w.emb.get(off + d).copied().map_or(f64::NAN, f64::from);
                    let zj = self.linear.z(j, v);
                    enc += self.linear.weights[j] * zj;
                    if self.hidden.is_some() {
                        z.push(zj);
                    }
                    j += 1;
                }
            }
        }
        if let Some(h) = &self.hidden {
            enc += h.output(&z);
        }
        let mut c = [0.0; 8];
        for name in &self.features {
            if let Some(i) = FEATURES.iter().position(|f| f == name) {
                c[i] += self.linear.term(j, w.x[i]);
            }
            j += 1;
        }
        (enc, c)
    }

    /// Log-odds from the contributions.
    pub fn raw_of(&self, c: &(f64, [f64; 8])) -> f64 {
        self.linear.bias + c.0 + c.1.iter().sum::<f64>()
    }

    /// Segment log-odds.
    pub fn raw(&self, w: &SegmentFeatures) -> f64 {
        self.raw_of(&self.contributions(w))
    }

    /// What pushed a segment's log-odds up most, if anything did: the
    /// encoder as a whole or one named feature.
    pub fn dominant_of(c: &(f64, [f64; 8])) -> Option<&'static str> {
        std::iter::once((ENCODER_SIGNAL, c.0))
            .chain(FEATURES.iter().copied().zip(c.1))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|(_, v)| *v > 0.0)
            .map(|(n, _)| n)
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
    /// The speech encoder's statistics ([`ENCODER_DIM`] values: the mean of
    /// each state, then the standard deviation of each), empty without the
    /// encoder.
    #[serde(skip)]
    pub emb: Vec<f32>,
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

/// Runs the front end, the models and the forensics (no head, no
/// calibration): shared by the detector and `candor audio-features`.
pub struct AudioScorer {
    lcnn: Option<ModelHandle>,
    encoder: Option<ModelHandle>,
    vad: Option<ModelHandle>,
    analyzer: dsp::Analyzer,
    cfg: AudioConfig,
}

impl AudioScorer {
    /// A scorer around the loaded models (either may be absent: its
    /// features are then missing); `vad` is needed only when callers do not
    /// pass speech activity in.
    pub fn new(
        lcnn: Option<ModelHandle>,
        encoder: Option<ModelHandle>,
        vad: Option<ModelHandle>,
        cfg: AudioConfig,
    ) -> Self {
        AudioScorer {
            lcnn,
            encoder,
            vad,
            analyzer: dsp::Analyzer::new(),
            cfg,
        }
    }

    /// The models a result lists.
    pub fn model_refs(&self) -> Vec<ModelRef> {
        [&self.encoder, &self.lcnn]
            .into_iter()
            .flatten()
            .map(|m| m.model_ref())
            .collect()
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
                    emb: Vec::new(),
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

        // The models, in requests of their rows per request, all in flight.
        let mut requests = Vec::new();
        for (model, wants, rows) in [
            (&self.lcnn, Want::Lcnn, ROWS_PER_REQUEST),
            (&self.encoder, Want::Encoder, ENCODER_ROWS_PER_REQUEST),
        ] {
            let Some(m) = model else { continue };
            for (ci, chunk) in segments.chunks(rows).enumerate() {
                let mut data = vec![0f32; chunk.len() * SEGMENT];
                for (row, w) in data.chunks_mut(SEGMENT).zip(chunk) {
                    let a = (w.start_s * dsp::RATE as f64).round() as usize;
                    let b = (a + SEGMENT).min(samples.len());
                    row[..b - a].copy_from_slice(&samples[a..b]);
                }
                requests.push(run_segments(
                    m.clone(),
                    wants,
                    ci * rows,
                    chunk.len(),
                    data,
                    priority,
                    deadline,
                ));
            }
        }
        let results = futures_util::future::join_all(requests).await;
        let mut q_max: f64 = 0.0;
        let mut e_max: f64 = 0.0;
        for r in results {
            let r = r?;
            q_max = q_max.max(r.queue_ms);
            e_max = e_max.max(r.exec_ms);
            for (k, v) in r.values.into_iter().enumerate() {
                let w = &mut segments[r.first + k];
                match v {
                    SegmentOut::Logit(l) => w.x[0] = f64::from(l),
                    SegmentOut::Stats(e) => w.emb = e,
                }
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

/// Which model a segment request is for.
#[derive(Debug, Clone, Copy)]
enum Want {
    Lcnn,
    Encoder,
}

/// One segment's output of one model.
enum SegmentOut {
    Logit(f32),
    Stats(Vec<f32>),
}

/// A segment request's outputs.
struct SegmentsDone {
    /// Index of the request's first segment.
    first: usize,
    values: Vec<SegmentOut>,
    queue_ms: f64,
    exec_ms: f64,
}

/// Runs `n` segments (rows of `data`) through the LCNN or the encoder.
async fn run_segments(
    model: ModelHandle,
    wants: Want,
    first: usize,
    n: usize,
    data: Vec<f32>,
    priority: Priority,
    deadline: Option<Instant>,
) -> Result<SegmentsDone, EngineError> {
    let id = model.spec().id.clone();
    let input = TensorData::f32_from_vec(&[n, SEGMENT], data)
        .ok_or_else(|| EngineError::backend(&id, "waveform shape"))?;
    let mut out = model
        .infer(
            vec![NamedTensor::new("waveform", input)],
            priority,
            deadline,
        )
        .await?;
    let mut take = |name: &str| -> Result<Vec<f32>, EngineError> {
        out.take(name)
            .and_then(|t| t.as_f32().map(|a| a.iter().copied().collect()))
            .ok_or_else(|| EngineError::backend(&id, format!("output `{name}` missing")))
    };
    let values: Vec<SegmentOut> = match wants {
        Want::Lcnn => {
            let logits = take("logit")?;
            if logits.len() != n {
                return Err(EngineError::backend(
                    &id,
                    format!("{} logits for {n} segments", logits.len()),
                ));
            }
            logits.into_iter().map(SegmentOut::Logit).collect()
        }
        Want::Encoder => {
            let (mean, std) = (take("layer_mean")?, take("layer_std")?);
            let per = ENCODER_STATES * ENCODER_WIDTH;
            if mean.len() != n * per || std.len() != n * per {
                return Err(EngineError::backend(
                    &id,
                    format!("{} encoder values for {n} segments", mean.len()),
                ));
            }
            mean.chunks_exact(per)
                .zip(std.chunks_exact(per))
                .map(|(m, s)| SegmentOut::Stats([m, s].concat()))
                .collect()
        }
    };
    Ok(SegmentsDone {
        first,
        values,
        queue_ms: out.queue_ms,
        exec_ms: out.exec_ms,
    })
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

/// The audio detector: scorer + head + calibrations.
pub struct AudioDetector {
    scorer: AudioScorer,
    head: AudioHead,
    head_sha256: String,
    calibration: CalibrationArtefact,
    segment_calibration: CalibrationArtefact,
    cfg: AudioConfig,
}

impl AudioDetector {
    /// Builds the detector from the loaded models and the committed files;
    /// fails when the head needs a model that is not loaded.
    pub fn load(
        lcnn: Option<ModelHandle>,
        encoder: Option<ModelHandle>,
        vad: Option<ModelHandle>,
        head: &Path,
        calibration: &Path,
        segment_calibration: &Path,
        cfg: AudioConfig,
    ) -> Result<Self, String> {
        let bytes = std::fs::read(head).map_err(|e| format!("head {}: {e}", head.display()))?;
        let head_sha256 = candor_core::sha256_hex(&bytes);
        let head_v =
            AudioHead::from_slice(&bytes).map_err(|e| format!("head {}: {e}", head.display()))?;
        if head_v.needs_encoder() && encoder.is_none() {
            return Err(format!(
                "the head reads the speech encoder `{ENCODER_MODEL}`, which is not loaded (run scripts/setup.sh)"
            ));
        }
        if head_v.needs_lcnn() && lcnn.is_none() {
            return Err(format!(
                "the head reads the anti-spoofing model `{LCNN_MODEL}`, which is not loaded"
            ));
        }
        // Models the head does not read are not run.
        let lcnn = lcnn.filter(|_| head_v.needs_lcnn());
        let encoder = encoder.filter(|_| head_v.needs_encoder());
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
            scorer: AudioScorer::new(lcnn, encoder, vad, cfg.clone()),
            head: head_v,
            head_sha256,
            calibration,
            segment_calibration,
            cfg,
        })
    }

    /// The head in force.
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

    /// The VAD model the detector runs (a live stream runs it as audio
    /// arrives, [`crate::speech::StreamingVad`]).
    pub fn vad(&self) -> Option<&ModelHandle> {
        self.scorer.vad.as_ref()
    }

    /// Scores one segment of at most 2 s (16 kHz mono) on its own, for
    /// streaming: model and forensics, with the given speech activity (in
    /// seconds from the segment's start) or, when `None`, the VAD run over
    /// the segment alone. `None` when the segment holds too little speech.
    pub async fn score_segment(
        &self,
        samples: &[f32],
        speech: Option<&SpeechActivity>,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<Option<ScoredSegment>, AnalyzeError> {
        let samples = &samples[..samples.len().min(SEGMENT)];
        let a = self
            .scorer
            .analyze(
                samples,
                speech,
                self.head.min_window_speech_s,
                priority,
                deadline,
            )
            .await?;
        let Some(w) = a.segments.first() else {
            return Ok(None);
        };
        let contributions = self.head.contributions(w);
        let raw = self.head.raw_of(&contributions);
        let dominant = AudioHead::dominant_of(&contributions);
        Ok(Some(ScoredSegment {
            raw,
            probability: self.segment_calibration.apply(raw),
            speech_s: w.speech_s,
            dominant,
        }))
    }

    /// Model references of a result (models, head, calibrations).
    pub fn models(&self) -> Vec<ModelRef> {
        let mut m = self.scorer.model_refs();
        m.extend([
            ModelRef {
                id: self.head.id.clone(),
                version: self.head.version.clone(),
                sha256: Some(self.head_sha256.clone()),
            },
            self.segment_calibration.model_ref(),
            self.calibration.model_ref(),
        ]);
        m
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
            name: Some(format!(
                "{} + {}",
                if self.head.needs_encoder() {
                    ENCODER_MODEL
                } else {
                    LCNN_MODEL
                },
                self.head.id
            )),
            version: Some(self.head.version.clone()),
            reason: None,
            trained_on: Some(self.head.trained_on.clone()),
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
            identity: None,
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
        let contribs: Vec<(f64, [f64; 8])> = a
            .segments
            .iter()
            .map(|w| self.head.contributions(w))
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
            let c: f64 = contribs.iter().map(|c| c.1[i]).sum::<f64>() / n;
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
        if self.head.needs_encoder() {
            let c: f64 = contribs.iter().map(|c| c.0).sum::<f64>() / n;
            finding.signals.push(Signal {
                name: ENCODER_SIGNAL.into(),
                value: round4(c),
                probability: None,
                detail: Some(format!(
                    "mean contribution of the speech encoder's statistics (Whisper tiny.en \
                     states {:?}, {}) to the segment log-odds",
                    self.head.encoder_states,
                    self.head.encoder_stats.join(" and ")
                )),
            });
        }
        let seg_max = seg_raw.iter().copied().fold(f64::MIN, f64::max);
        finding.signals.push(Signal {
            name: "fusion.segment_max".into(),
            value: round4(seg_max),
            probability: Some(round4(self.segment_calibration.apply(seg_max))),
            detail: Some("highest segment log-odds (head), with its segment probability".into()),
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
    fn head_reads_encoder_statistics_and_named_features() {
        let dim = ENCODER_WIDTH + 2;
        let mut weights = vec![0.0; dim];
        weights[3] = 1.0; // std of state 2, dimension 3
        weights[ENCODER_WIDTH] = 1.5; // lcnn.logit
        weights[ENCODER_WIDTH + 1] = 0.5; // pitch.jitter
        let mut mean = vec![0.0; dim];
        mean[ENCODER_WIDTH + 1] = 0.02;
        let mut scale = vec![1.0; dim];
        scale[ENCODER_WIDTH] = 2.0;
        scale[ENCODER_WIDTH + 1] = 0.01;
        let h = AudioHead {
            format: HEAD_FORMAT.into(),
            id: "h".into(),
            version: "1".into(),
            encoder_states: vec![2],
            encoder_stats: vec!["std".into()],
            features: vec!["lcnn.logit".into(), "pitch.jitter".into()],
            linear: crate::fusion::VectorHead {
                mean,
                scale,
                weights,
                bias: -1.0,
            },
            hidden: None,
            file_top_fraction: 0.25,
            min_speech_s: 1.5,
            min_window_speech_s: 1.0,
            trained_on: serde_json::Value::Null,
        };
        h.check().unwrap();
        let mut emb = vec![0f32; ENCODER_DIM];
        emb[ENCODER_STATES * ENCODER_WIDTH + 2 * ENCODER_WIDTH + 3] = 2.0;
        let mut w = SegmentFeatures {
            start_s: 0.0,
            end_s: 2.0,
            speech_s: 2.0,
            x: [f64::NAN; 8],
            emb,
        };
        w.x[0] = 4.0;
        // -1 + 2 (encoder) + 1.5 * 2 + 0 (jitter missing)
        assert!((h.raw(&w) - 4.0).abs() < 1e-9);
        assert_eq!(
            AudioHead::dominant_of(&h.contributions(&w)),
            Some("lcnn.logit")
        );
        w.x[2] = 0.04;
        assert!((h.raw(&w) - 5.0).abs() < 1e-9);
        let mut bad = h.clone();
        bad.features[1] = "nope".into();
        assert!(bad.check().is_err());
        bad = h.clone();
        bad.encoder_states = vec![5];
        assert!(bad.check().is_err());
        bad = h;
        bad.file_top_fraction = 0.0;
        assert!(bad.check().is_err());
    }

    /// A head over the means of state 1 with a hidden layer of two units:
    /// unit 0 reads dimension 0 (out 2), unit 1 reads dimension 1 with bias
    /// −1 (out −3).
    fn hidden_head(features: &[&str], short: usize) -> Vec<u8> {
        let n = ENCODER_WIDTH + features.len();
        let mut w = vec![0f32; n * 2];
        w[0] = 1.0; // d 0 -> unit 0
        w[2 + 1] = 1.0; // d 1 -> unit 1
        let mut bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.truncate(bytes.len() - short);
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        format!(
            r#"{{"format":"{HEAD_FORMAT}","id":"h","version":"1","encoder_states":[1],
            "encoder_stats":["mean"],"features":{features},"mean":{m},"scale":{sc},
            "weights":{wt},"bias":0.5,"hidden":{{"units":2,"weights":"{b64}",
            "bias":[0.0,-1.0],"out":[2.0,-3.0]}},"file_top_fraction":0.25,
            "min_speech_s":1.5,"min_window_speech_s":1.0}}"#,
            features = serde_json::to_string(features).unwrap(),
            m = serde_json::to_string(&vec![0.0; n]).unwrap(),
            sc = serde_json::to_string(&vec![1.0; n]).unwrap(),
            wt = serde_json::to_string(&vec![0.0; n]).unwrap(),
        )
        .into_bytes()
    }

    #[test]
    fn head_hidden_layer_adds_rectified_units_to_the_encoder_share() {
        let h = AudioHead::from_slice(&hidden_head(&[], 0)).unwrap();
        let mut emb = vec![0f32; ENCODER_DIM];
        let seg = |emb: &Vec<f32>| SegmentFeatures {
            start_s: 0.0,
            end_s: 2.0,
            speech_s: 2.0,
            x: [f64::NAN; 8],
            emb: emb.clone(),
        };
        // All units off: the bias alone.
        assert!((h.raw(&seg(&emb)) - 0.5).abs() < 1e-9);
        emb[ENCODER_WIDTH] = 1.5; // state 1, d 0: unit 0 on, 2 × 1.5
        emb[ENCODER_WIDTH + 1] = 3.0; // d 1: unit 1 at 3 − 1 = 2, × −3
        let c = h.contributions(&seg(&emb));
        assert!((c.0 - (3.0 - 6.0)).abs() < 1e-9, "{c:?}");
        assert!((h.raw(&seg(&emb)) - (0.5 + 3.0 - 6.0)).abs() < 1e-9);
        emb[ENCODER_WIDTH + 1] = 0.5; // unit 1 off (0.5 − 1 < 0)
        assert!((h.raw(&seg(&emb)) - 3.5).abs() < 1e-9);
        // Wrong byte count, or named features beside a hidden layer: refused.
        let e = AudioHead::from_slice(&hidden_head(&[], 4)).unwrap_err();
        assert!(e.contains("hidden layer"), "{e}");
        let e = AudioHead::from_slice(&hidden_head(&["pitch.jitter"], 0)).unwrap_err();
        assert!(e.contains("no named features"), "{e}");
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
