//! The one result schema for all modalities.
//!
//! A result is either a calibrated probability with a label, or an
//! abstention with a reason. It never carries a made-up score: `score` and
//! `label` are `None` exactly when `abstention` is `Some`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of material an input is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Headshot or interview frame.
    Image,
    /// Interview audio, or the audio track of interview video.
    Audio,
    /// Resume text (PDF, DOCX, TXT or pasted).
    Text,
}

impl Modality {
    pub const ALL: [Modality; 3] = [Modality::Image, Modality::Audio, Modality::Text];

    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Image => "image",
            Modality::Audio => "audio",
            Modality::Text => "text",
        }
    }
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision a score leads to. Candor routes to human review; it never
/// rejects a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Score below the authentic threshold.
    LikelyAuthentic,
    /// Score between the two thresholds: a person should look.
    Inconclusive,
    /// Score at or above the manipulated threshold: route to review.
    LikelyManipulated,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::LikelyAuthentic => "likely_authentic",
            Label::Inconclusive => "inconclusive",
            Label::LikelyManipulated => "likely_manipulated",
        }
    }
}

/// Two thresholds on the calibrated probability, chosen for a stated false
/// positive rate on authentic material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Thresholds {
    /// Below this probability the label is `likely_authentic`.
    pub authentic_below: f64,
    /// At or above this probability the label is `likely_manipulated`.
    pub manipulated_at_or_above: f64,
    /// False positive rate on authentic data that `manipulated_at_or_above`
    /// was chosen for (e.g. 0.01).
    pub target_fpr: f64,
}

impl Thresholds {
    /// Label for a calibrated probability.
    pub fn label(&self, score: f64) -> Label {
        if score >= self.manipulated_at_or_above {
            Label::LikelyManipulated
        } else if score < self.authentic_below {
            Label::LikelyAuthentic
        } else {
            Label::Inconclusive
        }
    }
}

/// Why a detector did not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AbstainCode {
    /// No detector for this modality is installed in this build/config.
    DetectorNotInstalled,
    /// Too little material (short audio, short text, tiny image).
    TooShort,
    /// No face found in the image.
    NoFace,
    /// Audio is silent or holds too little speech.
    Silence,
    /// Several overlapping speakers, music, or very low SNR.
    UnsuitableAudio,
    /// The text is not in a supported language.
    UnsupportedLanguage,
    /// The text is mostly lists of names, dates and keywords.
    InsufficientProse,
    /// The input is of too low quality to judge.
    LowQuality,
}

/// An abstention: the detector says it cannot decide, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Abstention {
    pub code: AbstainCode,
    /// Human-readable reason, e.g. "1.1 s of speech, at least 1.5 s needed".
    pub reason: String,
}

/// One named sub-score that went into the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signal {
    /// Stable name, e.g. `provenance.c2pa`, `forensics.ela`, `lm.binoculars`.
    pub name: String,
    /// Raw value of the signal (its unit or scale is described in `detail`).
    pub value: f64,
    /// Calibrated probability this signal alone gives, where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// What the value means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Evidence a person can check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// A rectangle in image pixel coordinates (after EXIF orientation).
    ImageRegion {
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        score: Option<f64>,
        label: String,
    },
    /// A time range of the audio, in seconds from the start.
    AudioSegment {
        start_s: f64,
        end_s: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        score: Option<f64>,
        /// The signal that dominates this segment's score.
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
    },
    /// A character range of the extracted text (Unicode scalar offsets,
    /// end exclusive).
    TextSpan {
        start: usize,
        end: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        score: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// A PNG picture (heatmap, spectrogram), base64-encoded.
    Picture {
        name: String,
        media_type: String,
        data_base64: String,
    },
    /// A provenance or metadata fact (C2PA claim, XMP field, PNG chunk, ...).
    Fact {
        name: String,
        value: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
}

/// A model (or calibration artefact) that contributed to a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelRef {
    pub id: String,
    pub version: String,
    /// SHA-256 of the weights file as verified at start-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// What Candor knows about the input itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InputInfo {
    /// File or field name as given by the caller, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// SHA-256 of the exact bytes received.
    pub sha256: String,
    /// Size of the bytes received.
    pub bytes: u64,
    /// Detected format, e.g. `jpeg`, `webm/opus`, `pdf`, `text/plain`.
    pub format: String,
    /// Format-specific facts: width/height, duration, sample rate, pages,
    /// characters, ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_json::Value>,
}

/// Wall-clock time spent per stage, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timings {
    pub decode_ms: f64,
    /// Time waiting in the engine's queues.
    pub queue_ms: f64,
    /// Time in model execution and signal processing.
    pub inference_ms: f64,
    pub total_ms: f64,
}

/// The result for one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnalysisResult {
    pub modality: Modality,
    pub input: InputInfo,
    /// Calibrated probability that the input was made or altered by AI.
    /// `null` when the detector abstained.
    pub score: Option<f64>,
    /// Label from `score` and `thresholds`. `null` when abstained.
    pub label: Option<Label>,
    /// Present when the detector could not decide.
    pub abstention: Option<Abstention>,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    #[serde(default)]
    pub signals: Vec<Signal>,
    /// Models and calibration artefacts used, with versions.
    #[serde(default)]
    pub models: Vec<ModelRef>,
    /// Thresholds that produced `label`.
    pub thresholds: Option<Thresholds>,
    pub timings: Timings,
    /// Non-fatal remarks (e.g. "EXIF orientation applied",
    /// "decoded first frame of animated GIF").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The file ends before the data it declares (a JPEG cut off before its
    /// end marker, audio shorter than its header states): only the part
    /// received was analysed, and a warning says so. Treat such a score
    /// with care.
    #[serde(default)]
    pub input_truncated: bool,
    /// Templates for the identity registry (a face embedding, the text),
    /// present only when the analyzer was asked for them. Never
    /// serialised, never printed (see [`IdentityTemplates`]).
    #[serde(skip)]
    #[schema(ignore)]
    pub identity: Option<IdentityTemplates>,
}

/// What the identity registry compares across applicants (issue 18):
/// biometric data. It never leaves the process except into the registry's
/// store: not serialised, and its `Debug` prints only which parts exist.
#[derive(Clone, Default, PartialEq)]
pub struct IdentityTemplates {
    pub face: Option<FaceTemplate>,
    /// Perceptual hashes of the picture itself: the same photograph
    /// re-encoded, resized or re-cropped, whoever is in it.
    pub photo: Option<PhotoTemplate>,
    pub voice: Option<VoiceTemplate>,
    pub text: Option<String>,
}

/// The speaker embedding of a recording's speech.
#[derive(Clone, PartialEq)]
pub struct VoiceTemplate {
    /// Unit-length embedding.
    pub embedding: Vec<f32>,
    /// The embedding model's id and version.
    pub model: String,
    /// Seconds of speech it was computed on.
    pub speech_s: f64,
    /// First speech start and last speech end in the recording, seconds.
    pub span_s: [f64; 2],
}

impl std::fmt::Debug for VoiceTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoiceTemplate(<redacted>)")
    }
}

/// Perceptual hashes of a picture (64-bit DCT hashes): close hashes mean
/// the same photograph, re-encoded or resized; the face hashes, taken on
/// the largest face aligned to two fixed framings, survive re-cropping too.
#[derive(Clone, PartialEq)]
pub struct PhotoTemplate {
    /// Hash of the whole picture.
    pub whole: u64,
    /// Hash of the largest face, aligned to a framing with hair and
    /// background (none without a face).
    pub face: Option<u64>,
    /// Hash of the largest face aligned to a close framing (the face
    /// alone), which a crop into the background moves less.
    pub face_close: Option<u64>,
    /// The hash's id and version.
    pub model: String,
    /// Width and height of the picture.
    pub size: [u32; 2],
}

impl std::fmt::Debug for PhotoTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhotoTemplate(<redacted>)")
    }
}

/// The embedding of the largest face of a picture.
#[derive(Clone, PartialEq)]
pub struct FaceTemplate {
    /// Unit-length embedding.
    pub embedding: Vec<f32>,
    /// The embedding model's id and version.
    pub model: String,
    /// The face's box in the picture: x, y, width, height.
    pub region: [u32; 4],
}

impl std::fmt::Debug for IdentityTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityTemplates")
            .field("face", &self.face.as_ref().map(|_| "<redacted>"))
            .field("photo", &self.photo.as_ref().map(|_| "<redacted>"))
            .field("voice", &self.voice.as_ref().map(|_| "<redacted>"))
            .field("text", &self.text.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl std::fmt::Debug for FaceTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaceTemplate(<redacted>)")
    }
}

impl AnalysisResult {
    /// A result that abstains. Score and label are `None`.
    pub fn abstained(
        modality: Modality,
        input: InputInfo,
        code: AbstainCode,
        reason: impl Into<String>,
    ) -> Self {
        AnalysisResult {
            modality,
            input,
            score: None,
            label: None,
            abstention: Some(Abstention {
                code,
                reason: reason.into(),
            }),
            evidence: Vec::new(),
            signals: Vec::new(),
            models: Vec::new(),
            thresholds: None,
            timings: Timings::default(),
            warnings: Vec::new(),
            input_truncated: false,
            identity: None,
        }
    }

    /// A scored result; the label follows from the thresholds.
    pub fn scored(
        modality: Modality,
        input: InputInfo,
        score: f64,
        thresholds: Thresholds,
    ) -> Self {
        let score = score.clamp(0.0, 1.0);
        AnalysisResult {
            modality,
            input,
            score: Some(score),
            label: Some(thresholds.label(score)),
            abstention: None,
            evidence: Vec::new(),
            signals: Vec::new(),
            models: Vec::new(),
            thresholds: Some(thresholds),
            timings: Timings::default(),
            warnings: Vec::new(),
            input_truncated: false,
            identity: None,
        }
    }

    /// Invariant check: a result has a score xor an abstention.
    pub fn is_consistent(&self) -> bool {
        match (&self.score, &self.label, &self.abstention) {
            (Some(s), Some(_), None) => (0.0..=1.0).contains(s) && self.thresholds.is_some(),
            (None, None, Some(_)) => true,
            _ => false,
        }
    }
}

/// When several inputs belong to one applicant: one line for the case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaseSummary {
    /// Inputs analysed.
    pub inputs: usize,
    /// Inputs that got a score (did not abstain).
    pub scored: usize,
    /// Highest calibrated score among the inputs, if any was scored.
    pub max_score: Option<f64>,
    /// The most severe label among the inputs (`likely_manipulated` >
    /// `inconclusive` > `likely_authentic`); `null` when every input abstained.
    pub label: Option<Label>,
    /// Whether a person should review this case.
    pub needs_review: bool,
    /// One line per input that drives the summary.
    pub reasons: Vec<String>,
}

impl CaseSummary {
    /// Summarise results for one applicant.
    pub fn from_results(results: &[AnalysisResult]) -> Self {
        fn rank(l: Label) -> u8 {
            match l {
                Label::LikelyAuthentic => 0,
                Label::Inconclusive => 1,
                Label::LikelyManipulated => 2,
            }
        }
        let scored: Vec<&AnalysisResult> = results.iter().filter(|r| r.score.is_some()).collect();
        let max_score = scored
            .iter()
            .filter_map(|r| r.score)
            .fold(None, |acc: Option<f64>, s| {
                Some(acc.map_or(s, |a| a.max(s)))
            });
        let label = scored
            .iter()
            .filter_map(|r| r.label)
            .max_by_key(|l| rank(*l));
        let mut reasons = Vec::new();
        for r in results {
            let name = r.input.name.as_deref().unwrap_or(&r.input.sha256[..12]);
            match (&r.label, &r.abstention) {
                (Some(l), _) if *l != Label::LikelyAuthentic => reasons.push(format!(
                    "{} {}: {} (score {:.3})",
                    r.modality,
                    name,
                    l.as_str(),
                    r.score.unwrap_or_default()
                )),
                (_, Some(a)) => {
                    reasons.push(format!("{} {}: abstained ({})", r.modality, name, a.reason))
                }
                _ => {}
            }
        }
        CaseSummary {
            inputs: results.len(),
            scored: scored.len(),
            max_score,
            needs_review: matches!(label, Some(Label::Inconclusive | Label::LikelyManipulated)),
            label,
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> InputInfo {
        InputInfo {
            name: Some(name.into()),
            sha256: crate::sha256_hex(name.as_bytes()),
            bytes: 3,
            format: "text/plain".into(),
            properties: BTreeMap::new(),
        }
    }

    fn th() -> Thresholds {
        Thresholds {
            authentic_below: 0.3,
            manipulated_at_or_above: 0.8,
            target_fpr: 0.01,
        }
    }

    #[test]
    fn thresholds_label_band() {
        let t = th();
        assert_eq!(t.label(0.1), Label::LikelyAuthentic);
        assert_eq!(t.label(0.3), Label::Inconclusive);
        assert_eq!(t.label(0.79), Label::Inconclusive);
        assert_eq!(t.label(0.8), Label::LikelyManipulated);
    }

    #[test]
    fn abstained_result_has_no_score() {
        let r = AnalysisResult::abstained(
            Modality::Audio,
            info("a"),
            AbstainCode::Silence,
            "no speech",
        );
        assert!(r.is_consistent());
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["score"].is_null());
        assert!(v["label"].is_null());
        assert_eq!(v["abstention"]["code"], "silence");
    }

    #[test]
    fn case_summary_takes_most_severe() {
        let a = AnalysisResult::scored(Modality::Image, info("a.jpg"), 0.1, th());
        let b = AnalysisResult::scored(Modality::Text, info("cv.pdf"), 0.9, th());
        let c = AnalysisResult::abstained(
            Modality::Audio,
            info("x.wav"),
            AbstainCode::TooShort,
            "0.4 s of speech",
        );
        let s = CaseSummary::from_results(&[a, b, c]);
        assert_eq!(s.inputs, 3);
        assert_eq!(s.scored, 2);
        assert_eq!(s.label, Some(Label::LikelyManipulated));
        assert_eq!(s.max_score, Some(0.9));
        assert!(s.needs_review);
        assert_eq!(s.reasons.len(), 2);
    }

    #[test]
    fn evidence_is_tagged() {
        let e = Evidence::AudioSegment {
            start_s: 1.0,
            end_s: 3.0,
            score: Some(0.5),
            signal: Some("pitch.flatness".into()),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "audio_segment");
    }
}
