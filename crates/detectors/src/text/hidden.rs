//! The text detector's head (version 4): a logistic regression on the
//! scoring language model's own hidden states, averaged over the prose
//! tokens (`models/text/hidden-head.json`, fitted by
//! `scripts/text/train_text_head.py` on states measured by
//! `candor text-features`, so training and serving read the same numbers).
//!
//! The states are the residual stream after the blocks listed in `taps`
//! (the model's `[model.lm] hidden_taps` in the manifest must list the same
//! blocks in the same order): no extra forward pass, the model that already
//! reads the text for the zero-shot statistics supplies them. Optionally the
//! head also reads some of the zero-shot features ([`super::features::FEATURES`]),
//! appended after the states.

use serde::{Deserialize, Serialize};

use super::features::FEATURES;
use crate::fusion::VectorHead;

/// Format tag of the file.
pub const FORMAT: &str = "candor.text-hidden-head/1";
/// File, relative to the manifest's folder.
pub const FILE: &str = "text/hidden-head.json";

/// The head file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiddenHead {
    pub format: String,
    pub id: String,
    pub version: String,
    /// Blocks (1-based) whose mean state the head reads, in input order.
    pub taps: Vec<usize>,
    /// Width of one block's state.
    pub width: usize,
    /// Zero-shot features appended after the states (names from
    /// [`FEATURES`]); may be empty.
    #[serde(default)]
    pub zero_shot: Vec<String>,
    #[serde(flatten)]
    pub linear: VectorHead,
    /// Below this many scored prose tokens the detector abstains.
    pub min_prose_tokens: usize,
    /// Sentences with fewer scored tokens get no span score.
    pub min_sentence_tokens: usize,
    #[serde(default)]
    pub trained_on: serde_json::Value,
}

impl HiddenHead {
    /// Parses and checks a head file.
    pub fn from_slice(bytes: &[u8]) -> Result<HiddenHead, String> {
        let h: HiddenHead = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        h.check()?;
        Ok(h)
    }

    fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format `{}`, expected `{FORMAT}`", self.format));
        }
        if self.taps.is_empty() || self.width == 0 {
            return Err("no taps".into());
        }
        if let Some(z) = self
            .zero_shot
            .iter()
            .find(|z| !FEATURES.contains(&z.as_str()))
        {
            return Err(format!("unknown zero-shot feature `{z}`"));
        }
        self.linear.check(self.dim())
    }

    /// Input length: the states and the zero-shot features.
    pub fn dim(&self) -> usize {
        self.taps.len() * self.width + self.zero_shot.len()
    }

    /// Checks that the language model returns the states this head reads.
    pub fn matches_model(&self, model_taps: &[usize]) -> Result<(), String> {
        if model_taps != self.taps.as_slice() {
            return Err(format!(
                "the head reads blocks {:?} but the language model returns {:?} \
                 (`[model.lm] hidden_taps` in the manifest)",
                self.taps, model_taps
            ));
        }
        Ok(())
    }

    /// Log-odds from the mean states (`taps × width` values) and the
    /// document's zero-shot features (in [`FEATURES`] order; only those
    /// named in `zero_shot` are read, `NaN` counts as average).
    pub fn raw(&self, pooled: &[f32], zero_shot: Option<&[f64; 8]>) -> f64 {
        let nh = self.taps.len() * self.width;
        let h = &self.linear;
        let mut z = h.bias;
        for (j, v) in pooled.iter().take(nh).enumerate() {
            z += h.term(j, f64::from(*v));
        }
        for (k, name) in self.zero_shot.iter().enumerate() {
            let v = zero_shot
                .and_then(|x| FEATURES.iter().position(|f| f == name).map(|i| x[i]))
                .unwrap_or(f64::NAN);
            z += h.term(nh + k, v);
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_checked_and_applied() {
        let mut h = HiddenHead {
            format: FORMAT.into(),
            id: "t".into(),
            version: "1".into(),
            taps: vec![3],
            width: 2,
            zero_shot: vec!["lm.mean_logprob".into()],
            linear: VectorHead {
                mean: vec![1.0, 0.0, -3.0],
                scale: vec![1.0, 2.0, 1.0],
                weights: vec![1.0, 1.0, 2.0],
                bias: 0.5,
            },
            min_prose_tokens: 32,
            min_sentence_tokens: 8,
            trained_on: serde_json::Value::Null,
        };
        h.check().unwrap();
        let mut x = [0.0; 8];
        x[0] = -2.0;
        // 0.5 + (2 - 1) + (4 - 0) / 2 + 2 * (-2 + 3) = 5.5
        assert!((h.raw(&[2.0, 4.0], Some(&x)) - 5.5).abs() < 1e-9);
        // A missing zero-shot feature counts as average.
        assert!((h.raw(&[2.0, 4.0], None) - 3.5).abs() < 1e-9);
        assert!(h.matches_model(&[3]).is_ok());
        assert!(h.matches_model(&[3, 6]).is_err());
        h.zero_shot[0] = "nope".into();
        assert!(h.check().is_err());
    }
}
