//! What the detectors' logistic fusion heads share: the head file's
//! common part ([`LinearHead`]) and its checks.

use serde::{Deserialize, Serialize};

/// A standardised logistic head: log-odds = bias + Σ weight × (x − mean) /
/// scale over the named features. Each detector's head file is this plus
/// its own rules (flattened into the same JSON object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearHead {
    /// Format tag of the detector's head file.
    pub format: String,
    pub id: String,
    pub version: String,
    /// Feature names (a subset of the detector's feature list), in weight order.
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
    /// Provenance: data set, split sizes, command line.
    #[serde(default)]
    pub trained_on: serde_json::Value,
}

impl LinearHead {
    /// A head from a fitted logistic regression (numbers rounded to 12
    /// significant digits, so files are stable across platforms).
    pub fn from_fit(
        format: &str,
        id: &str,
        version: &str,
        features: Vec<String>,
        fit: &candor_eval::logistic::Logistic,
        trained_on: serde_json::Value,
    ) -> LinearHead {
        use candor_eval::calibrate::round_sig;
        LinearHead {
            format: format.into(),
            id: id.into(),
            version: version.into(),
            features,
            mean: fit.mean.iter().map(|&v| round_sig(v)).collect(),
            scale: fit.scale.iter().map(|&v| round_sig(v)).collect(),
            weights: fit.weights.iter().map(|&v| round_sig(v)).collect(),
            bias: round_sig(fit.bias),
            trained_on,
        }
    }

    /// Checks the format tag, lengths, feature names and numbers.
    pub fn check(&self, format: &str, known: &[&str]) -> Result<(), String> {
        check_linear_head(
            (&self.format, format),
            &self.features,
            known,
            &self.mean,
            &self.scale,
            &self.weights,
            self.bias,
        )
    }

    /// Each known feature's contribution to the log-odds, in `known` order;
    /// features the head does not use, and unmeasured (non-finite) values,
    /// contribute 0.
    pub fn contributions<const N: usize>(&self, known: &[&str; N], x: &[f64; N]) -> [f64; N] {
        let mut c = [0.0; N];
        for (j, name) in self.features.iter().enumerate() {
            let Some(i) = known.iter().position(|f| f == name) else {
                continue;
            };
            let z = (x[i] - self.mean[j]) / self.scale[j];
            if z.is_finite() {
                c[i] = self.weights[j] * z;
            }
        }
        c
    }

    /// Log-odds from the contributions.
    pub fn raw_of(&self, contributions: &[f64]) -> f64 {
        self.bias + contributions.iter().sum::<f64>()
    }
}

/// A standardised logistic layer over a plain vector (an embedding, pooled
/// hidden states): log-odds = bias + Σ weight_j × (x_j − mean_j) / scale_j.
/// The image face heads, the text head and the audio head are each one of
/// these plus their own rules, flattened into one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorHead {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl VectorHead {
    /// Checks that the head reads `n` values and that its numbers are
    /// finite with positive scales.
    pub fn check(&self, n: usize) -> Result<(), String> {
        if self.mean.len() != n || self.scale.len() != n || self.weights.len() != n {
            return Err(format!("expected {n} means, scales and weights"));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !finite(&self.mean)
            || !finite(&self.weights)
            || !self.bias.is_finite()
            || self.scale.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err("non-finite numbers or a scale ≤ 0".into());
        }
        Ok(())
    }

    /// Value `v` at position `j`, standardised (a non-finite value counts
    /// as average: 0).
    pub fn z(&self, j: usize, v: f64) -> f64 {
        let z = (v - self.mean[j]) / self.scale[j];
        if z.is_finite() {
            z
        } else {
            0.0
        }
    }

    /// The contribution of value `v` at position `j` (a non-finite value
    /// counts as average: 0).
    pub fn term(&self, j: usize, v: f64) -> f64 {
        self.weights[j] * self.z(j, v)
    }

    /// Log-odds of a vector (extra values beyond the head's length are
    /// ignored; missing ones count as average).
    pub fn raw(&self, x: &[f32]) -> f64 {
        self.bias
            + x.iter()
                .take(self.weights.len())
                .enumerate()
                .map(|(j, v)| self.term(j, f64::from(*v)))
                .sum::<f64>()
    }
}

/// A hidden layer: `raw += Σ_k out_k · max(0, bias_k + Σ_d W_{d,k} z_d)` on
/// the head's standardised inputs `z`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hidden {
    pub units: usize,
    /// Number format of `weights`: `f32` (default) or `f16`.
    #[serde(default = "f32_name")]
    pub dtype: String,
    /// `W`, input-major (`d × units`), little-endian numbers of `dtype`,
    /// base64 (standard alphabet, padded).
    pub weights: String,
    pub bias: Vec<f64>,
    pub out: Vec<f64>,
    /// `weights`, decoded by [`Hidden::prepare`].
    #[serde(skip)]
    pub decoded: Vec<f32>,
}

fn f32_name() -> String {
    "f32".into()
}

impl Hidden {
    /// Decodes the weights and checks the sizes against `dim` inputs.
    pub fn prepare(&mut self, dim: usize) -> Result<(), String> {
        use base64::Engine as _;
        let width = match self.dtype.as_str() {
            "f32" => 4,
            "f16" => 2,
            other => return Err(format!("hidden weights: dtype `{other}`")),
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.weights.as_bytes())
            .map_err(|e| format!("hidden weights: {e}"))?;
        if self.units == 0
            || bytes.len() != dim * self.units * width
            || self.bias.len() != self.units
            || self.out.len() != self.units
        {
            return Err(format!(
                "hidden layer: expected {dim} × {} weights, {} biases and outputs",
                self.units, self.units
            ));
        }
        self.decoded = if width == 4 {
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()
        };
        let finite = self.decoded.iter().all(|v| v.is_finite())
            && self.bias.iter().chain(&self.out).all(|v| v.is_finite());
        if !finite {
            return Err("hidden layer: non-finite numbers".into());
        }
        Ok(())
    }

    /// Pre-activations of the units for standardised inputs `z`.
    pub fn pre(&self, z: &[f64]) -> Vec<f64> {
        let mut a = self.bias.clone();
        for (d, &zd) in z.iter().enumerate() {
            if zd == 0.0 {
                continue;
            }
            let row = &self.decoded[d * self.units..(d + 1) * self.units];
            for (ak, &w) in a.iter_mut().zip(row) {
                *ak += f64::from(w) * zd;
            }
        }
        a
    }

    /// The units' share of the log-odds, `Σ_k out_k · max(0, pre_k)`.
    pub fn output(&self, z: &[f64]) -> f64 {
        self.pre(z)
            .iter()
            .zip(&self.out)
            .map(|(a, o)| a.max(0.0) * o)
            .sum()
    }
}

/// Checks a standardised linear head: a known format tag, one mean, scale
/// and weight per feature, every feature known, finite numbers, positive
/// scales.
pub fn check_linear_head(
    format: (&str, &str),
    features: &[String],
    known: &[&str],
    mean: &[f64],
    scale: &[f64],
    weights: &[f64],
    bias: f64,
) -> Result<(), String> {
    let (got, want) = format;
    if got != want {
        return Err(format!("unknown head format `{got}` (expected `{want}`)"));
    }
    let n = features.len();
    if n == 0 || mean.len() != n || scale.len() != n || weights.len() != n {
        return Err("features, mean, scale and weights must have the same length".into());
    }
    if let Some(f) = features.iter().find(|f| !known.contains(&f.as_str())) {
        return Err(format!("unknown feature `{f}`"));
    }
    let finite = mean
        .iter()
        .chain(scale)
        .chain(weights)
        .chain(std::iter::once(&bias))
        .all(|x| x.is_finite());
    if !finite || scale.iter().any(|&s| s <= 0.0) {
        return Err("non-finite weight or non-positive scale".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_each_kind_of_bad_head() {
        let f = vec!["a".to_string()];
        let ok = |fmt, feats: &[String], scale: f64, bias: f64| {
            check_linear_head((fmt, "x/1"), feats, &["a"], &[0.0], &[scale], &[1.0], bias)
        };
        assert!(ok("x/1", &f, 1.0, 0.0).is_ok());
        assert!(ok("x/2", &f, 1.0, 0.0).is_err());
        assert!(ok("x/1", &["b".to_string()], 1.0, 0.0).is_err());
        assert!(ok("x/1", &f, 0.0, 0.0).is_err());
        assert!(ok("x/1", &f, 1.0, f64::NAN).is_err());
        assert!(ok("x/1", &[], 1.0, 0.0).is_err());
    }

    #[test]
    fn vector_head_is_checked_and_applied() {
        let h = VectorHead {
            mean: vec![1.0, 0.0],
            scale: vec![1.0, 2.0],
            weights: vec![1.0, -1.0],
            bias: 0.5,
        };
        h.check(2).unwrap();
        assert!(h.check(3).is_err());
        // 0.5 + (3 - 1) - (4 - 0) / 2 = 0.5
        assert!((h.raw(&[3.0, 4.0]) - 0.5).abs() < 1e-12);
        // A missing value counts as average.
        assert!((h.raw(&[3.0, f32::NAN]) - 2.5).abs() < 1e-12);
        let bad = VectorHead {
            scale: vec![1.0, 0.0],
            ..h
        };
        assert!(bad.check(2).is_err());
    }
}
