//! Calibration: raw detector scores → probabilities, and the operating point.
//!
//! A calibration is fitted on **one explicit split** of a labelled set
//! (normally [`Split::Calib`]); every other row is ignored, fitting on
//! [`Split::Test`] is refused, and a split without scored rows of both classes
//! is an error. The result is a small, versioned [`CalibrationArtefact`]
//! whose JSON is byte-for-byte reproducible.
//!
//! ## Operating point
//!
//! With calibrated probabilities `p` of the calibration rows:
//!
//! * `manipulated_at_or_above` is the **smallest** threshold `t` such that
//!   the FPR on authentic calibration rows, `#{authentic: p >= t} / N-`, is at
//!   most `target_fpr` (default 0.01). With `k = floor(target_fpr * N-)`
//!   authentic rows allowed above it, that is the next float above the
//!   `(k+1)`-th highest authentic probability.
//! * `authentic_below` bounds the opposite error: `likely_authentic` is only
//!   said where at most `authentic_max_fnr` (default 0.05) of the manipulated
//!   calibration rows fall, i.e. the **largest** `t` with
//!   `#{manipulated: p < t} / N+ <= authentic_max_fnr` — the `(m+1)`-th
//!   lowest manipulated probability for `m = floor(authentic_max_fnr * N+)`
//!   — capped at `manipulated_at_or_above`. Scores between the two are
//!   `inconclusive` and go to a person. A weak detector gets a wide band; a
//!   strong one a narrow or empty band.

use serde::{Deserialize, Serialize};

use candor_core::{ModelRef, Thresholds};

use crate::error::{EvalError, Result};
use crate::json::to_canonical_json;
use crate::manifest::Split;
use crate::metrics::{reliability, Roc, ScoredItem};

/// Format tag of the artefact's JSON schema.
pub const ARTEFACT_FORMAT: &str = "candor.calibration.v1";

/// A fitted map from raw score to probability of "manipulated".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Calibrator {
    /// `p = 1 / (1 + exp(-(a * raw + b)))`. (Platt's paper writes
    /// `1 / (1 + exp(A f + B))`, i.e. `a = -A`, `b = -B`.)
    Platt {
        /// Slope.
        a: f64,
        /// Intercept.
        b: f64,
    },
    /// Monotone non-decreasing piecewise-linear map through `(xs[i], ys[i])`
    /// (pool-adjacent-violators fit); clamped to `ys[0]` / `ys[last]` outside.
    Isotonic {
        /// Raw-score knots, strictly increasing.
        xs: Vec<f64>,
        /// Probabilities at the knots, non-decreasing.
        ys: Vec<f64>,
    },
}

/// Which calibration to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Logistic fit ([`Calibrator::Platt`]).
    Platt,
    /// Isotonic regression ([`Calibrator::Isotonic`]).
    Isotonic,
}

impl Method {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Platt => "platt",
            Method::Isotonic => "isotonic",
        }
    }
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// Round to 12 significant digits so that fitted parameters do not carry
/// last-bit noise into committed files.
pub fn round_sig(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    format!("{x:.11e}").parse().unwrap_or(x)
}

impl Calibrator {
    /// Calibrated probability for a raw score.
    pub fn apply(&self, raw: f64) -> f64 {
        match self {
            Calibrator::Platt { a, b } => sigmoid(a * raw + b),
            Calibrator::Isotonic { xs, ys } => {
                if xs.is_empty() || raw.is_nan() {
                    return f64::NAN;
                }
                if raw <= xs[0] {
                    return ys[0];
                }
                let last = xs.len() - 1;
                if raw >= xs[last] {
                    return ys[last];
                }
                // xs[i-1] < raw < xs[i] (or equal to xs[i]).
                let i = xs.partition_point(|&x| x < raw);
                if xs[i] == raw {
                    return ys[i];
                }
                let (x0, x1, y0, y1) = (xs[i - 1], xs[i], ys[i - 1], ys[i]);
                y0 + (raw - x0) / (x1 - x0) * (y1 - y0)
            }
        }
    }

    /// Platt scaling: minimise log-loss against Platt's smoothed targets
    /// `(N+ + 1) / (N+ + 2)` for manipulated and `1 / (N- + 2)` for authentic
    /// rows, by Newton's method with a backtracking line search.
    pub fn fit_platt(raw: &[f64], manipulated: &[bool]) -> Result<Calibrator> {
        Self::fit_platt_weighted(raw, manipulated, (1.0, 1.0))
    }

    /// [`Calibrator::fit_platt`] with a weight per class (manipulated,
    /// authentic): each row's log-loss counts that much.
    pub fn fit_platt_weighted(
        raw: &[f64],
        manipulated: &[bool],
        class_weights: (f64, f64),
    ) -> Result<Calibrator> {
        check_fit_input(raw, manipulated)?;
        let (w_pos, w_neg) = class_weights;
        let weight: Vec<f64> = manipulated
            .iter()
            .map(|&m| if m { w_pos } else { w_neg })
            .collect();
        let n_pos = manipulated.iter().filter(|&&m| m).count() as f64;
        let n_neg = manipulated.len() as f64 - n_pos;
        let t_pos = (n_pos + 1.0) / (n_pos + 2.0);
        let t_neg = 1.0 / (n_neg + 2.0);
        let target: Vec<f64> = manipulated
            .iter()
            .map(|&m| if m { t_pos } else { t_neg })
            .collect();
        let loss = |a: f64, b: f64| -> f64 {
            raw.iter()
                .zip(&target)
                .zip(&weight)
                .map(|((&x, &t), &w)| {
                    let z = a * x + b;
                    w * (t * softplus(-z) + (1.0 - t) * softplus(z))
                })
                .sum()
        };
        let mut a = 0.0;
        let mut b = ((w_pos * n_pos + 1.0) / (w_neg * n_neg + 1.0)).ln();
        let mut f = loss(a, b);
        for _ in 0..200 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for ((&x, &t), &r) in raw.iter().zip(&target).zip(&weight) {
                let p = sigmoid(a * x + b);
                let d = r * (p - t);
                let w = r * (p * (1.0 - p)).max(1e-12);
                ga += d * x;
                gb += d;
                haa += w * x * x;
                hab += w * x;
                hbb += w;
            }
            if ga.abs().max(gb.abs()) < 1e-9 * raw.len() as f64 {
                break;
            }
            haa += 1e-12;
            hbb += 1e-12;
            let det = haa * hbb - hab * hab;
            if det <= 0.0 || !det.is_finite() {
                return Err(EvalError::InvalidInput(
                    "Platt fit: singular Hessian (are all raw scores equal?)".into(),
                ));
            }
            let da = -(hbb * ga - hab * gb) / det;
            let db = -(haa * gb - hab * ga) / det;
            let slope = ga * da + gb * db;
            let mut step = 1.0;
            let mut improved = false;
            while step > 1e-10 {
                let (na, nb) = (a + step * da, b + step * db);
                let nf = loss(na, nb);
                if nf <= f + 1e-4 * step * slope {
                    a = na;
                    b = nb;
                    f = nf;
                    improved = true;
                    break;
                }
                step /= 2.0;
            }
            if !improved {
                break;
            }
        }
        if !(a.is_finite() && b.is_finite()) {
            return Err(EvalError::InvalidInput("Platt fit diverged".into()));
        }
        Ok(Calibrator::Platt {
            a: round_sig(a),
            b: round_sig(b),
        })
    }

    /// Isotonic regression by pool-adjacent-violators. Rows with equal raw
    /// scores are pooled first; each final block contributes a knot at its
    /// lowest and highest raw score, so the map is flat within a block and
    /// linear between blocks.
    pub fn fit_isotonic(raw: &[f64], manipulated: &[bool]) -> Result<Calibrator> {
        Self::fit_isotonic_weighted(raw, manipulated, (1.0, 1.0))
    }

    /// [`Calibrator::fit_isotonic`] with a weight per class (manipulated,
    /// authentic).
    pub fn fit_isotonic_weighted(
        raw: &[f64],
        manipulated: &[bool],
        class_weights: (f64, f64),
    ) -> Result<Calibrator> {
        check_fit_input(raw, manipulated)?;
        let (w_pos, w_neg) = class_weights;
        let mut rows: Vec<(f64, bool)> = raw
            .iter()
            .copied()
            .zip(manipulated.iter().copied())
            .collect();
        rows.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        // Blocks: (x_lo, x_hi, sum_y, weight).
        let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
        for (x, m) in rows {
            let (y, w) = if m { (w_pos, w_pos) } else { (0.0, w_neg) };
            match blocks.last_mut() {
                Some(last) if last.1 == x => {
                    last.2 += y;
                    last.3 += w;
                }
                _ => blocks.push((x, x, y, w)),
            }
            // Pool while the previous block's mean is not below the last
            // one's (equal means are pooled too: fewer, equivalent knots).
            while blocks.len() >= 2 {
                let n = blocks.len();
                let (p, q) = (blocks[n - 2], blocks[n - 1]);
                if p.2 * q.3 >= q.2 * p.3 {
                    blocks.pop();
                    let last = blocks.last_mut().expect("n >= 2");
                    *last = (p.0, q.1, p.2 + q.2, p.3 + q.3);
                } else {
                    break;
                }
            }
        }
        let mut xs = Vec::with_capacity(blocks.len() * 2);
        let mut ys = Vec::with_capacity(blocks.len() * 2);
        for (lo, hi, s, w) in blocks {
            let y = s / w;
            xs.push(lo);
            ys.push(y);
            if hi > lo {
                xs.push(hi);
                ys.push(y);
            }
        }
        Ok(Calibrator::Isotonic { xs, ys })
    }
}

fn check_fit_input(raw: &[f64], manipulated: &[bool]) -> Result<()> {
    if raw.len() != manipulated.len() {
        return Err(EvalError::InvalidInput(
            "raw scores and labels differ in length".into(),
        ));
    }
    if let Some(x) = raw.iter().find(|x| !x.is_finite()) {
        return Err(EvalError::InvalidInput(format!(
            "raw score {x} is not finite"
        )));
    }
    let n_pos = manipulated.iter().filter(|&&m| m).count();
    if n_pos == 0 || n_pos == manipulated.len() {
        return Err(EvalError::InvalidInput(
            "calibration needs both authentic and manipulated rows".into(),
        ));
    }
    Ok(())
}

/// Targets for choosing the two thresholds (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPointSpec {
    /// Maximum FPR on authentic calibration rows at `manipulated_at_or_above`.
    pub target_fpr: f64,
    /// Maximum fraction of manipulated calibration rows below
    /// `authentic_below`.
    pub authentic_max_fnr: f64,
    /// Share of manipulated inputs the probabilities are for. `None`: the
    /// calibration rows' own class mix. `Some(p)`: rows are weighted so the
    /// classes count p : 1 − p (0.5 = "as likely as not" before the
    /// evidence). Thresholds follow the same FPR / FNR targets either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<f64>,
}

impl Default for OperatingPointSpec {
    fn default() -> Self {
        OperatingPointSpec {
            target_fpr: 0.01,
            authentic_max_fnr: 0.05,
            prior: None,
        }
    }
}

/// Choose thresholds on calibrated probabilities of authentic (`neg`) and
/// manipulated (`pos`) calibration rows (see the module docs for the rule).
pub fn choose_thresholds(
    pos: &[f64],
    neg: &[f64],
    spec: &OperatingPointSpec,
) -> Result<Thresholds> {
    if pos.is_empty() || neg.is_empty() {
        return Err(EvalError::InvalidInput(
            "operating point needs both classes".into(),
        ));
    }
    for (name, v) in [
        ("target_fpr", spec.target_fpr),
        ("authentic_max_fnr", spec.authentic_max_fnr),
    ] {
        if !(0.0..1.0).contains(&v) {
            return Err(EvalError::InvalidInput(format!(
                "{name} must be in [0, 1), got {v}"
            )));
        }
    }
    let mut neg_desc = neg.to_vec();
    neg_desc.sort_by(|a, b| b.total_cmp(a));
    let k = (spec.target_fpr * neg.len() as f64 + 1e-9).floor() as usize;
    // k < N- because target_fpr < 1.
    let manipulated_at_or_above = neg_desc[k].next_up();
    let mut pos_asc = pos.to_vec();
    pos_asc.sort_by(f64::total_cmp);
    let m = (spec.authentic_max_fnr * pos.len() as f64 + 1e-9).floor() as usize;
    let authentic_below = pos_asc
        .get(m)
        .copied()
        .unwrap_or(manipulated_at_or_above)
        .min(manipulated_at_or_above);
    Ok(Thresholds {
        authentic_below,
        manipulated_at_or_above,
        target_fpr: spec.target_fpr,
    })
}

/// What a calibration was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedOn {
    /// Name of the labelled set.
    pub set: String,
    /// The split used (always `calib` or `train`).
    pub split: Split,
    /// Scored authentic rows used.
    pub n_authentic: usize,
    /// Scored manipulated rows used.
    pub n_manipulated: usize,
    /// Rows of the split skipped because the detector abstained.
    pub n_abstained: usize,
    /// SHA-256 of the rows used, one `id\tlabel\tscore\n` line each, sorted.
    pub rows_sha256: String,
}

/// Metrics of the fitted calibration on the rows it was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibMetrics {
    /// AUROC of the raw scores.
    pub auroc: f64,
    /// Expected calibration error of the calibrated scores (10 bins).
    pub ece: f64,
    /// Mean log-loss of the calibrated scores (clamped to [1e-15, 1-1e-15]).
    pub log_loss: f64,
    /// Mean squared error of the calibrated scores.
    pub brier: f64,
    /// FPR at `manipulated_at_or_above`.
    pub fpr_at_threshold: f64,
    /// TPR at `manipulated_at_or_above`.
    pub tpr_at_threshold: f64,
    /// Fraction of manipulated rows below `authentic_below`.
    pub fnr_below_authentic: f64,
    /// Fraction of all rows in the inconclusive band.
    pub inconclusive_rate: f64,
}

/// What to fit and how to label the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitSpec {
    /// Artefact id, e.g. `calibration/audio-rawgat`.
    pub id: String,
    /// Artefact version, e.g. `1`.
    pub version: String,
    /// Detector whose raw scores are calibrated.
    pub detector: String,
    /// Name of the labelled set.
    pub set: String,
    /// Command line that produced the artefact.
    pub created_by: String,
    /// Calibration method.
    pub method: Method,
    /// Threshold targets.
    pub operating_point: OperatingPointSpec,
}

/// A fitted calibration with its operating point: small, versioned JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationArtefact {
    /// Schema tag ([`ARTEFACT_FORMAT`]).
    pub format: String,
    /// Artefact id.
    pub id: String,
    /// Artefact version.
    pub version: String,
    /// Detector whose raw scores this calibrates.
    pub detector: String,
    /// `platt` or `isotonic`.
    pub method: Method,
    /// The fitted map.
    pub params: Calibrator,
    /// Thresholds on the calibrated probability.
    pub thresholds: Thresholds,
    /// The targets the thresholds were chosen for.
    pub operating_point: OperatingPointSpec,
    /// Provenance of the fit.
    pub fitted_on: FittedOn,
    /// Command line that produced it.
    pub created_by: String,
    /// Metrics on the calibration rows.
    pub metrics_on_calib: CalibMetrics,
}

/// Fit a calibration and operating point on the rows of `split` only.
///
/// Rows of other splits (and rows without a split) are ignored; abstained
/// rows of the split are counted and skipped. Errors when `split` is
/// [`Split::Test`], when the split has no scored rows, or only one class.
pub fn fit_calibration(
    items: &[ScoredItem],
    split: Split,
    spec: &FitSpec,
) -> Result<CalibrationArtefact> {
    if split == Split::Test {
        return Err(EvalError::FitOnTestSplit);
    }
    let mut rows: Vec<(&str, bool, f64)> = Vec::new();
    let mut n_abstained = 0usize;
    for it in items.iter().filter(|it| it.split == Some(split)) {
        match it.score {
            Some(s) if s.is_finite() => rows.push((it.id.as_str(), it.manipulated, s)),
            Some(s) => {
                return Err(EvalError::InvalidInput(format!(
                    "score of `{}` is not finite ({s})",
                    it.id
                )))
            }
            None => n_abstained += 1,
        }
    }
    if rows.is_empty() {
        return Err(EvalError::NoRowsInSplit {
            split: split.to_string(),
        });
    }
    // Canonical order: the fit and the hash do not depend on input order.
    rows.sort_by(|x, y| x.0.cmp(y.0).then(x.1.cmp(&y.1)).then(x.2.total_cmp(&y.2)));
    let n_manipulated = rows.iter().filter(|r| r.1).count();
    let n_authentic = rows.len() - n_manipulated;
    if n_manipulated == 0 || n_authentic == 0 {
        return Err(EvalError::OneClass {
            split: split.to_string(),
            n_authentic,
            n_manipulated,
        });
    }
    let mut canon = String::new();
    for (id, m, s) in &rows {
        let label = if *m { "manipulated" } else { "authentic" };
        canon.push_str(&format!("{id}\t{label}\t{s:?}\n"));
    }
    let rows_sha256 = candor_core::sha256_hex(canon.as_bytes());

    let raw: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let lab: Vec<bool> = rows.iter().map(|r| r.1).collect();
    // Class weights for the prior: each class's rows together weigh its
    // share of the total (1 : 1 per row without a prior).
    let weights = match spec.operating_point.prior {
        None => (1.0, 1.0),
        Some(p) if p > 0.0 && p < 1.0 => {
            let n = rows.len() as f64;
            (
                p * n / n_manipulated as f64,
                (1.0 - p) * n / n_authentic as f64,
            )
        }
        Some(p) => {
            return Err(EvalError::InvalidInput(format!(
                "prior {p} must be strictly between 0 and 1"
            )))
        }
    };
    let params = match spec.method {
        Method::Platt => Calibrator::fit_platt_weighted(&raw, &lab, weights)?,
        Method::Isotonic => Calibrator::fit_isotonic_weighted(&raw, &lab, weights)?,
    };
    let cal: Vec<f64> = raw.iter().map(|&x| params.apply(x)).collect();
    let pos: Vec<f64> = cal
        .iter()
        .zip(&lab)
        .filter(|(_, &m)| m)
        .map(|(&p, _)| p)
        .collect();
    let neg: Vec<f64> = cal
        .iter()
        .zip(&lab)
        .filter(|(_, &m)| !m)
        .map(|(&p, _)| p)
        .collect();
    let thresholds = choose_thresholds(&pos, &neg, &spec.operating_point)?;

    let raw_pos: Vec<f64> = raw
        .iter()
        .zip(&lab)
        .filter(|(_, &m)| m)
        .map(|(&p, _)| p)
        .collect();
    let raw_neg: Vec<f64> = raw
        .iter()
        .zip(&lab)
        .filter(|(_, &m)| !m)
        .map(|(&p, _)| p)
        .collect();
    let n = cal.len() as f64;
    let (mut log_loss, mut brier) = (0.0, 0.0);
    for (&p, &m) in cal.iter().zip(&lab) {
        let y = if m { 1.0 } else { 0.0 };
        let pc = p.clamp(1e-15, 1.0 - 1e-15);
        log_loss -= y * pc.ln() + (1.0 - y) * (1.0 - pc).ln();
        brier += (p - y) * (p - y);
    }
    let cal_roc = Roc::new(&pos, &neg);
    let at = cal_roc.rates_at(thresholds.manipulated_at_or_above);
    let below = pos
        .iter()
        .filter(|&&p| p < thresholds.authentic_below)
        .count() as f64;
    let inconclusive = cal
        .iter()
        .filter(|&&p| p >= thresholds.authentic_below && p < thresholds.manipulated_at_or_above)
        .count() as f64;
    let r = |x: f64| round_sig(x);
    let metrics_on_calib = CalibMetrics {
        auroc: r(Roc::new(&raw_pos, &raw_neg).auroc().unwrap_or(f64::NAN)),
        ece: r(reliability(&pos, &neg, 10).map_or(f64::NAN, |x| x.ece)),
        log_loss: r(log_loss / n),
        brier: r(brier / n),
        fpr_at_threshold: r(at.fpr.unwrap_or(f64::NAN)),
        tpr_at_threshold: r(at.tpr.unwrap_or(f64::NAN)),
        fnr_below_authentic: r(below / pos.len() as f64),
        inconclusive_rate: r(inconclusive / n),
    };
    Ok(CalibrationArtefact {
        format: ARTEFACT_FORMAT.to_string(),
        id: spec.id.clone(),
        version: spec.version.clone(),
        detector: spec.detector.clone(),
        method: spec.method,
        params,
        thresholds,
        operating_point: spec.operating_point,
        fitted_on: FittedOn {
            set: spec.set.clone(),
            split,
            n_authentic,
            n_manipulated,
            n_abstained,
            rows_sha256,
        },
        created_by: spec.created_by.clone(),
        metrics_on_calib,
    })
}

impl CalibrationArtefact {
    /// Calibrated probability for a raw score of the detector.
    pub fn apply(&self, raw: f64) -> f64 {
        self.params.apply(raw)
    }

    /// Canonical JSON (sorted keys, stable floats, trailing newline).
    pub fn to_json(&self) -> Result<String> {
        to_canonical_json(self)
    }

    /// Parse an artefact; rejects unknown formats.
    pub fn from_json(text: &str) -> Result<CalibrationArtefact> {
        let a: CalibrationArtefact = serde_json::from_str(text)?;
        if a.format != ARTEFACT_FORMAT {
            return Err(EvalError::InvalidInput(format!(
                "unknown calibration format `{}` (expected `{ARTEFACT_FORMAT}`)",
                a.format
            )));
        }
        Ok(a)
    }

    /// Write the canonical JSON to `path`.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json()?).map_err(|e| EvalError::io(path, e))
    }

    /// Read an artefact from `path`.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<CalibrationArtefact> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        CalibrationArtefact::from_json(&text)
    }

    /// Reference for `AnalysisResult::models`: id, version and the SHA-256
    /// of the canonical JSON.
    pub fn model_ref(&self) -> ModelRef {
        ModelRef {
            id: self.id.clone(),
            version: self.version.clone(),
            sha256: self
                .to_json()
                .ok()
                .map(|j| candor_core::sha256_hex(j.as_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pav_hand_case() {
        // y by x: 0, 1, 0, 1, 1 at x = 1..5 -> blocks {1}:0, {2,3}:0.5, {4,5}:1.
        let c = Calibrator::fit_isotonic(
            &[3.0, 1.0, 2.0, 5.0, 4.0],
            &[false, false, true, true, true],
        )
        .unwrap();
        let Calibrator::Isotonic { xs, ys } = &c else {
            panic!()
        };
        assert_eq!(xs, &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(ys, &[0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(c.apply(0.0), 0.0);
        assert_eq!(c.apply(1.5), 0.25);
        assert_eq!(c.apply(2.5), 0.5);
        assert_eq!(c.apply(3.5), 0.75);
        assert_eq!(c.apply(9.0), 1.0);
    }

    #[test]
    fn thresholds_follow_the_rule() {
        // 100 authentic at 0.00..0.99, target 1% -> one may be flagged:
        // threshold just above 0.98.
        let neg: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let pos: Vec<f64> = (0..20).map(|i| 0.5 + i as f64 / 40.0).collect();
        let t = choose_thresholds(&pos, &neg, &OperatingPointSpec::default()).unwrap();
        assert_eq!(t.manipulated_at_or_above, 0.98f64.next_up());
        // 5% of 20 = 1 manipulated may fall below: the 2nd lowest, 0.525.
        assert_eq!(t.authentic_below, 0.525);
        assert!(t.authentic_below <= t.manipulated_at_or_above);
        // Strong detector: band capped.
        let t = choose_thresholds(&[0.999, 0.999], &[0.1, 0.2], &OperatingPointSpec::default())
            .unwrap();
        assert_eq!(t.manipulated_at_or_above, 0.2f64.next_up());
        assert_eq!(t.authentic_below, t.manipulated_at_or_above);
        assert!(choose_thresholds(
            &[0.5],
            &[0.1],
            &OperatingPointSpec {
                target_fpr: 1.0,
                ..Default::default()
            }
        )
        .is_err());
    }
}
