//! The face heads: logistic regressions on the CLIP features of an aligned
//! face (`models/image/face-head.json`, fitted by
//! `scripts/image/train_face_head.py` on features measured by
//! `candor image-embed`, so training and serving read the same numbers).
//!
//! * `main`: real photographs vs every manipulated family (generated,
//!   swapped, edited, rendered faces); its log-odds, calibrated by
//!   `models/image/calibration.json`, is the image score;
//! * `generation` and `swap` (optional): the same features against generated
//!   faces only and against swapped or edited faces only, each with its own
//!   Platt calibration; reported per face as evidence, not fused.
//!
//! Because the features end with the mean of the 196 patch tokens, the
//! main head's patch part is linear in each patch: the contribution of
//! patch `i` to the log-odds is `Σ_d w_d (t_{i,d} − m_d) / (196 s_d)` over
//! the patch-mean dimensions, which gives a 14 × 14 map of where in the
//! aligned face the head's evidence comes from.

use serde::{Deserialize, Serialize};

use super::clip::{ClipFeatures, FEATURE_DIM, HIDDEN};
use crate::fusion::VectorHead;

/// Format tag of the file.
pub const FORMAT: &str = "candor.image-face-head/1";
/// File, relative to the manifest's folder.
pub const FILE: &str = "image/face-head.json";
/// Side of the patch grid.
pub const GRID: usize = 14;

/// One standardised logistic head over the [`FEATURE_DIM`] features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    #[serde(flatten)]
    pub linear: VectorHead,
    /// Platt calibration of this head's log-odds, `p = σ(a · raw + b)`
    /// (only for the evidence heads; the main head's calibration is the
    /// detector's calibration artefact).
    #[serde(default)]
    pub platt: Option<[f64; 2]>,
}

impl Head {
    fn check(&self, name: &str) -> Result<(), String> {
        self.linear
            .check(FEATURE_DIM)
            .map_err(|e| format!("head `{name}`: {e}"))
    }

    /// Log-odds for one feature vector.
    pub fn raw(&self, x: &[f32]) -> f64 {
        self.linear.raw(x)
    }

    /// Probability by the head's own Platt calibration, if it has one.
    pub fn probability(&self, raw: f64) -> Option<f64> {
        self.platt
            .map(|[a, b]| 1.0 / (1.0 + (-(a * raw + b)).exp()))
    }
}

/// How the face is cut out before the tower (must match training).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub side: u32,
    pub zoom: f32,
}

/// The heads file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceHeads {
    pub format: String,
    pub id: String,
    pub version: String,
    pub view: View,
    pub main: Head,
    #[serde(default)]
    pub generation: Option<Head>,
    #[serde(default)]
    pub swap: Option<Head>,
    /// Faces whose eyes are closer than this many pixels are too small to
    /// judge (the detector abstains `low_quality`).
    pub min_eye_distance: f32,
    #[serde(default)]
    pub trained_on: serde_json::Value,
}

impl FaceHeads {
    /// Parses and checks a heads file.
    pub fn from_slice(bytes: &[u8]) -> Result<FaceHeads, String> {
        let h: FaceHeads = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if h.format != FORMAT {
            return Err(format!("format `{}`, expected `{FORMAT}`", h.format));
        }
        if h.view.side != super::clip::SIDE as u32 || !(h.view.zoom > 0.1 && h.view.zoom <= 2.0) {
            return Err(format!("unsupported view {:?}", h.view));
        }
        h.main.check("main")?;
        for (n, x) in [("generation", &h.generation), ("swap", &h.swap)] {
            if let Some(x) = x {
                x.check(n)?;
            }
        }
        Ok(h)
    }

    /// The alignment the heads were trained on.
    pub fn align_spec(&self) -> super::yunet::AlignSpec {
        super::yunet::AlignSpec {
            side: self.view.side,
            zoom: self.view.zoom,
        }
    }

    /// Per-patch contributions of the main head to the log-odds (row-major
    /// 14 × 14), from the patch tokens of the last hidden state.
    pub fn patch_map(&self, f: &ClipFeatures) -> Option<Vec<f64>> {
        let tokens = f.patches.as_ref()?;
        let off = FEATURE_DIM - HIDDEN;
        let n = (GRID * GRID) as f64;
        let h = &self.main.linear;
        let map = tokens
            .chunks_exact(HIDDEN)
            .map(|t| {
                t.iter()
                    .enumerate()
                    .map(|(d, v)| h.term(off + d, f64::from(*v)) / n)
                    .sum::<f64>()
            })
            .collect::<Vec<f64>>();
        (map.len() == GRID * GRID).then_some(map)
    }
}
