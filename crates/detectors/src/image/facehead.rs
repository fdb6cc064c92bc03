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
use crate::fusion::{Hidden, VectorHead};

/// Format tag of the file.
pub const FORMAT: &str = "candor.image-face-head/1";
/// File, relative to the manifest's folder.
pub const FILE: &str = "image/face-head.json";
/// Side of the patch grid.
pub use super::clip::GRID;

/// One head over the standardised features its [`Inputs`] select: linear
/// (`raw = bias + Σ_d w_d z_d`), or with a hidden layer of rectified units
/// beside that linear term (see [`Hidden`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    #[serde(flatten)]
    pub linear: VectorHead,
    /// Rectified units added to the linear term (version 4 main head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Hidden>,
    /// Platt calibration of this head's log-odds, `p = σ(a · raw + b)`
    /// (only for the evidence heads; the main head's calibration is the
    /// detector's calibration artefact).
    #[serde(default)]
    pub platt: Option<[f64; 2]>,
}

impl Head {
    fn check(&mut self, name: &str, dim: usize) -> Result<(), String> {
        self.linear
            .check(dim)
            .map_err(|e| format!("head `{name}`: {e}"))?;
        if let Some(h) = self.hidden.as_mut() {
            h.prepare(dim).map_err(|e| format!("head `{name}`: {e}"))?;
        }
        Ok(())
    }

    /// Standardised inputs (a non-finite value counts as average: 0).
    fn standardise(&self, x: &[f32]) -> Vec<f64> {
        let l = &self.linear;
        (0..l.mean.len())
            .map(|j| x.get(j).map_or(0.0, |v| l.z(j, f64::from(*v))))
            .collect()
    }

    /// Log-odds for one feature vector.
    pub fn raw(&self, x: &[f32]) -> f64 {
        let Some(h) = &self.hidden else {
            return self.linear.raw(x);
        };
        let z = self.standardise(x);
        let lin: f64 = z.iter().zip(&self.linear.weights).map(|(a, w)| a * w).sum();
        self.linear.bias + lin + h.output(&z)
    }

    /// The head's weights on the standardised inputs at `x`: the linear
    /// weights, plus for a hidden layer the weights of the units that are on
    /// at `x` (the head is linear in a neighbourhood of `x` with these
    /// weights, so per-input shares of the log-odds read the same way).
    pub fn local_weights(&self, x: &[f32]) -> Vec<f64> {
        let mut w = self.linear.weights.clone();
        if let Some(h) = &self.hidden {
            let z = self.standardise(x);
            let on: Vec<(usize, f64)> = h
                .pre(&z)
                .iter()
                .zip(&h.out)
                .enumerate()
                .filter(|(_, (a, _))| **a > 0.0)
                .map(|(k, (_, o))| (k, *o))
                .collect();
            for (d, wd) in w.iter_mut().enumerate() {
                let row = &h.decoded[d * h.units..(d + 1) * h.units];
                *wd += on.iter().map(|&(k, o)| f64::from(row[k]) * o).sum::<f64>();
            }
        }
        w
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
        let mut h: FaceHeads = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
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
        for (n, x) in [("generation", &mut h.generation), ("swap", &mut h.swap)] {
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
    /// block's patch tokens; `None` when the head does not read it. A head
    /// with a hidden layer is read through its weights at this face
    /// ([`Head::local_weights`]).
    pub fn patch_map(&self, f: &ClipFeatures) -> Option<Vec<f64>> {
        let tokens = f.patches.as_ref()?;
        let i = &self.inputs;
        let k = i.mean.iter().position(|&l| l == LAYERS - 1)?;
        let off = usize::from(i.embeds) * EMBED_DIM + (i.cls.len() + k) * HIDDEN;
        let n = (GRID * GRID) as f64;
        let h = &self.main.linear;
        let w = self.main.local_weights(&i.select(f));
        let map = tokens
            .chunks_exact(HIDDEN)
            .map(|t| {
                t.iter()
                    .enumerate()
                    .map(|(d, v)| w[off + d] * h.z(off + d, f64::from(*v)) / n)
                    .sum::<f64>()
            })
            .collect::<Vec<f64>>();
        (map.len() == GRID * GRID).then_some(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// A head file with a hidden layer of `units` units over the projected
    /// embedding only (512 inputs), numbers from a fixed generator.
    fn hidden_head(units: usize, bytes_short: usize, f16: bool) -> Vec<u8> {
        let d = EMBED_DIM;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let w: Vec<u8> = (0..d * units)
            .flat_map(|_| {
                let v = (next() * 0.2) as f32;
                if f16 {
                    half::f16::from_f32(v).to_le_bytes().to_vec()
                } else {
                    v.to_le_bytes().to_vec()
                }
            })
            .collect();
        let w = &w[..w.len() - bytes_short];
        let head = serde_json::json!({
            "mean": vec![0.1; d], "scale": vec![2.0; d],
            "weights": (0..d).map(|_| next() * 0.01).collect::<Vec<_>>(), "bias": -0.3,
            "hidden": {
                "units": units,
                "dtype": if f16 { "f16" } else { "f32" },
                "weights": base64::engine::general_purpose::STANDARD.encode(w),
                "bias": (0..units).map(|_| next()).collect::<Vec<_>>(),
                "out": (0..units).map(|_| next()).collect::<Vec<_>>(),
            }
        });
        serde_json::to_vec(&serde_json::json!({
            "format": FORMAT, "id": "t", "version": "4", "view": {"side": 224, "zoom": 0.8},
            "inputs": {"embeds": true, "cls": [], "mean": []},
            "main": head, "min_eye_distance": 16.0,
        }))
        .unwrap()
    }

    #[test]
    fn hidden_layer_reads_like_its_local_weights() {
        let h32 = FaceHeads::from_slice(&hidden_head(8, 0, false)).unwrap();
        let h = FaceHeads::from_slice(&hidden_head(8, 0, true)).unwrap();
        // The same numbers as f16 give nearly the same log-odds.
        let x0: Vec<f32> = (0..EMBED_DIM).map(|i| (i % 5) as f32).collect();
        assert!((h.main.raw(&x0) - h32.main.raw(&x0)).abs() < 1e-2);
        let hid = h.main.hidden.as_ref().unwrap();
        assert_eq!(hid.decoded.len(), EMBED_DIM * 8);
        let x: Vec<f32> = (0..EMBED_DIM)
            .map(|i| ((i * 37) % 11) as f32 - 5.0)
            .collect();
        let r = h.main.raw(&x);
        // The units on at x change the log-odds: a linear head alone differs.
        assert!((r - h.main.linear.raw(&x)).abs() > 1e-3);
        // Each input's local weight is the slope of the log-odds along it.
        let w = h.main.local_weights(&x);
        for j in [0, 7, 300, EMBED_DIM - 1] {
            let mut x2 = x.clone();
            x2[j] += 0.01;
            let slope = (h.main.raw(&x2) - r) / (0.01 / 2.0);
            assert!(
                (slope - w[j]).abs() < 1e-3,
                "input {j}: {slope} vs {}",
                w[j]
            );
        }
    }

    #[test]
    fn hidden_layer_of_the_wrong_size_is_refused() {
        for f16 in [false, true] {
            let e = FaceHeads::from_slice(&hidden_head(8, 4, f16)).unwrap_err();
            assert!(e.contains("hidden layer"), "{e}");
        }
    }
}
