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
//! The heads read the tower's projected embedding and, from the residual
//! stream after chosen blocks, the class token and the mean of the 196
//! patch tokens ([`Inputs`]). Where the main head reads the last block's
//! mean patch token, that part is linear in each patch: the contribution of
//! patch `i` to the log-odds is `Σ_d w_d (t_{i,d} − m_d) / (196 s_d)` over
//! those dimensions, which gives a 14 × 14 map of where in the aligned face
//! that share of the evidence comes from.

use serde::{Deserialize, Serialize};

use super::clip::{ClipFeatures, CLS_OFFSET, EMBED_DIM, HIDDEN, LAYERS, MEAN_OFFSET};
use crate::fusion::VectorHead;

/// Format tag of the file.
pub const FORMAT: &str = "candor.image-face-head/1";
/// File, relative to the manifest's folder.
pub const FILE: &str = "image/face-head.json";
/// Side of the patch grid.
pub const GRID: usize = 14;

/// One standardised logistic head over the features its [`Inputs`] select.
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
    fn check(&self, name: &str, dim: usize) -> Result<(), String> {
        self.linear
            .check(dim)
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

/// Which of the tower's outputs the heads read, in this order: the projected
/// embedding, the class token after the listed blocks, the mean patch token
/// after the listed blocks (blocks 0..12; 11 = the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub embeds: bool,
    pub cls: Vec<usize>,
    pub mean: Vec<usize>,
}

impl Inputs {
    /// Values the heads read.
    pub fn dim(&self) -> usize {
        usize::from(self.embeds) * EMBED_DIM + (self.cls.len() + self.mean.len()) * HIDDEN
    }

    /// The heads' input vector from the tower's features.
    pub fn select(&self, f: &ClipFeatures) -> Vec<f32> {
        let mut v = Vec::with_capacity(self.dim());
        if self.embeds {
            v.extend_from_slice(&f.embeds);
        }
        for &l in &self.cls {
            v.extend_from_slice(&f.layer_cls[l * HIDDEN..(l + 1) * HIDDEN]);
        }
        for &l in &self.mean {
            v.extend_from_slice(&f.layer_mean[l * HIDDEN..(l + 1) * HIDDEN]);
        }
        v
    }

    /// The same selection from a [`ClipFeatures::concat`] vector (training
    /// files).
    pub fn select_concat(&self, x: &[f32]) -> Vec<f32> {
        let mut v = Vec::with_capacity(self.dim());
        if self.embeds {
            v.extend_from_slice(&x[..EMBED_DIM]);
        }
        for &l in &self.cls {
            v.extend_from_slice(&x[CLS_OFFSET + l * HIDDEN..CLS_OFFSET + (l + 1) * HIDDEN]);
        }
        for &l in &self.mean {
            v.extend_from_slice(&x[MEAN_OFFSET + l * HIDDEN..MEAN_OFFSET + (l + 1) * HIDDEN]);
        }
        v
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
    /// The tower outputs the heads read.
    pub inputs: Inputs,
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
        let i = &h.inputs;
        if i.cls.iter().chain(&i.mean).any(|&l| l >= LAYERS) || i.dim() == 0 {
            return Err(format!("inputs {i:?}: blocks must be in 0..{LAYERS}"));
        }
        let dim = i.dim();
        h.main.check("main", dim)?;
        for (n, x) in [("generation", &h.generation), ("swap", &h.swap)] {
            if let Some(x) = x {
                x.check(n, dim)?;
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

    /// Per-patch contributions of the main head's share that reads the mean
    /// patch token after the last block (row-major 14 × 14), from that
    /// block's patch tokens; `None` when the head does not read it.
    pub fn patch_map(&self, f: &ClipFeatures) -> Option<Vec<f64>> {
        let tokens = f.patches.as_ref()?;
        let i = &self.inputs;
        let k = i.mean.iter().position(|&l| l == LAYERS - 1)?;
        let off = usize::from(i.embeds) * EMBED_DIM + (i.cls.len() + k) * HIDDEN;
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
