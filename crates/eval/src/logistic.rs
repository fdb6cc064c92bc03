//! L2-regularised logistic regression on standardised features (Newton's
//! method), for the small fusion heads that combine a detector's signals.

use crate::calibrate::sigmoid;
use crate::error::{EvalError, Result};

/// A fitted head: `z = bias + Σ w_i (x_i - mean_i) / scale_i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
    /// Newton iterations used.
    pub iterations: usize,
}

impl Logistic {
    /// The log-odds for one row.
    pub fn raw(&self, x: &[f64]) -> f64 {
        self.bias
            + x.iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .zip(&self.weights)
                .map(|(((x, m), s), w)| w * (x - m) / s)
                .sum::<f64>()
    }
}

/// Solves `a x = b` (dense, partial pivoting); `None` when singular.
#[allow(clippy::needless_range_loop)] // index form mirrors the algebra
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            for k in c..n {
                a[r][k] -= f * a[c][k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

/// Replaces each non-finite value (an unmeasured feature) with the mean
/// of the finite values of its column (0 when none is finite): the value a
/// standardised head maps to a zero contribution, as it does at run time.
pub fn impute_column_means(x: &mut [Vec<f64>]) {
    let d = x.first().map_or(0, Vec::len);
    for j in 0..d {
        let vals: Vec<f64> = x.iter().map(|r| r[j]).filter(|v| v.is_finite()).collect();
        let m = if vals.is_empty() {
            0.0
        } else {
            vals.iter().sum::<f64>() / vals.len() as f64
        };
        for r in x.iter_mut() {
            if !r[j].is_finite() {
                r[j] = m;
            }
        }
    }
}

/// Fits a logistic regression of `y` on the rows of `x`, standardising each
/// column (mean 0, standard deviation 1) and penalising `l2 / 2 * |w|²`
/// (the bias is not penalised). Classes are weighted to equal total mass,
/// so the head does not learn the training set's class ratio (calibration
/// on a separate split takes care of probabilities).
pub fn fit_logistic(x: &[Vec<f64>], y: &[bool], l2: f64) -> Result<Logistic> {
    let n = x.len();
    if n == 0 || y.len() != n {
        return Err(EvalError::InvalidInput(format!(
            "{n} rows and {} labels",
            y.len()
        )));
    }
    let d = x[0].len();
    if d == 0
        || x.iter()
            .any(|r| r.len() != d || r.iter().any(|v| !v.is_finite()))
    {
        return Err(EvalError::InvalidInput(
            "rows must be non-empty, of equal length and finite".into(),
        ));
    }
    let npos = y.iter().filter(|&&v| v).count();
    if npos == 0 || npos == n {
        return Err(EvalError::InvalidInput("both classes are needed".into()));
    }
    let mut mean = vec![0.0; d];
    for r in x {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v / n as f64;
        }
    }
    let mut scale = vec![0.0; d];
    for r in x {
        for ((s, v), m) in scale.iter_mut().zip(r).zip(&mean) {
            *s += (v - m) * (v - m) / n as f64;
        }
    }
    for s in &mut scale {
        *s = if *s > 1e-24 { s.sqrt() } else { 1.0 };
    }
    let z: Vec<Vec<f64>> = x
        .iter()
        .map(|r| {
            let mut v: Vec<f64> = r
                .iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((v, m), s)| (v - m) / s)
                .collect();
            v.push(1.0);
            v
        })
        .collect();
    let wpos = n as f64 / (2.0 * npos as f64);
    let wneg = n as f64 / (2.0 * (n - npos) as f64);
    let mut beta = vec![0.0; d + 1];
    let mut it = 0;
    for _ in 0..100 {
        it += 1;
        let mut g = vec![0.0; d + 1];
        let mut h = vec![vec![0.0; d + 1]; d + 1];
        for (row, &yy) in z.iter().zip(y) {
            let w = if yy { wpos } else { wneg };
            let p = sigmoid(row.iter().zip(&beta).map(|(a, b)| a * b).sum());
            let t = if yy { 1.0 } else { 0.0 };
            for i in 0..=d {
                g[i] += w * (p - t) * row[i];
                for j in 0..=d {
                    h[i][j] += w * p * (1.0 - p) * row[i] * row[j];
                }
            }
        }
        for (i, b) in beta.iter().enumerate().take(d) {
            g[i] += l2 * b;
            h[i][i] += l2;
        }
        let step = solve(h, g.clone())
            .ok_or_else(|| EvalError::InvalidInput("singular Hessian".into()))?;
        let mut max = 0.0f64;
        for (b, s) in beta.iter_mut().zip(&step) {
            *b -= s;
            max = max.max(s.abs());
        }
        if max < 1e-10 {
            break;
        }
    }
    Ok(Logistic {
        mean,
        scale,
        weights: beta[..d].to_vec(),
        bias: beta[d],
        iterations: it,
    })
}

/// [`fit_logistic`] with the sign of some weights fixed in advance:
/// `signs[j]` is `+1` (feature `j` may only push towards the positive
/// class), `-1` (only away from it) or `0` (free). Active set: after each
/// fit the feature whose weight most contradicts its sign is dropped
/// (weight 0) and the rest refitted, until every weight agrees. Returns the
/// head (dropped features keep their mean and scale, with weight 0) and the
/// dropped indices in the order they were dropped.
///
/// Why: with strongly correlated features an unconstrained fit takes
/// differences between them (one weight flips sign to cancel part of
/// another), which follows the training generator's quirks and does not
/// carry to other generators; fixing directions known from the literature
/// keeps only combinations that point the published way.
pub fn fit_logistic_signed(
    x: &[Vec<f64>],
    y: &[bool],
    l2: f64,
    signs: &[f64],
) -> Result<(Logistic, Vec<usize>)> {
    let full = fit_logistic(x, y, l2)?;
    if signs.len() != full.weights.len() {
        return Err(EvalError::InvalidInput(format!(
            "{} signs for {} features",
            signs.len(),
            full.weights.len()
        )));
    }
    let mut active: Vec<usize> = (0..signs.len()).collect();
    let mut dropped = Vec::new();
    let mut fit = full.clone();
    loop {
        let worst = active
            .iter()
            .enumerate()
            .map(|(k, &j)| (k, j, fit.weights[k] * signs[j]))
            .filter(|&(_, _, v)| v < 0.0)
            .min_by(|a, b| a.2.total_cmp(&b.2));
        let Some((k, j, _)) = worst else { break };
        active.remove(k);
        dropped.push(j);
        if active.is_empty() {
            return Err(EvalError::InvalidInput(
                "no feature keeps its required sign".into(),
            ));
        }
        let sub: Vec<Vec<f64>> = x
            .iter()
            .map(|r| active.iter().map(|&j| r[j]).collect())
            .collect();
        fit = fit_logistic(&sub, y, l2)?;
    }
    let mut weights = vec![0.0; signs.len()];
    for (k, &j) in active.iter().enumerate() {
        weights[j] = fit.weights[k];
    }
    Ok((
        Logistic {
            mean: full.mean,
            scale: full.scale,
            weights,
            bias: fit.bias,
            iterations: fit.iterations,
        },
        dropped,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn recovers_a_separating_direction() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..2000 {
            let a: f64 = rng.random::<f64>() * 4.0 - 2.0;
            let b: f64 = rng.random::<f64>() * 4.0 - 2.0;
            let p = sigmoid(3.0 * a - 0.0 * b);
            y.push(rng.random::<f64>() < p);
            x.push(vec![a, b]);
        }
        let m = fit_logistic(&x, &y, 1e-3).unwrap();
        // Weight of the informative feature dominates; the other is ~0.
        assert!(m.weights[0] > 2.0, "{m:?}");
        assert!(m.weights[1].abs() < 0.3, "{m:?}");
        assert!(m.raw(&[1.0, 0.0]) > m.raw(&[-1.0, 0.0]));
    }

    #[test]
    fn sign_constraints_drop_a_suppressor() {
        // b = a + noise; y depends on a and on the noise's opposite. The
        // free fit gives b a negative weight through a's correlation
        // (a suppressor); requiring b >= 0 drops it and keeps a's direction.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..3000 {
            let a: f64 = rng.random::<f64>() * 4.0 - 2.0;
            let e: f64 = rng.random::<f64>() - 0.5;
            let p = sigmoid(2.0 * a - 4.0 * e);
            y.push(rng.random::<f64>() < p);
            x.push(vec![a, a + e]);
        }
        let free = fit_logistic(&x, &y, 1e-3).unwrap();
        assert!(free.weights[1] < -0.5, "{free:?}");
        let (signed, dropped) = fit_logistic_signed(&x, &y, 1e-3, &[1.0, 1.0]).unwrap();
        assert_eq!(dropped, vec![1]);
        assert_eq!(signed.weights[1], 0.0);
        assert!(signed.weights[0] > 0.5, "{signed:?}");
        assert_eq!(signed.mean, free.mean);
        // Free signs reproduce the plain fit.
        let (same, none) = fit_logistic_signed(&x, &y, 1e-3, &[0.0, 0.0]).unwrap();
        assert!(none.is_empty());
        assert_eq!(same, free);
        assert!(fit_logistic_signed(&x, &y, 1e-3, &[1.0]).is_err());
    }

    #[test]
    fn imputes_column_means_of_finite_values() {
        let mut x = vec![
            vec![1.0, f64::NAN],
            vec![f64::NAN, f64::INFINITY],
            vec![3.0, f64::NAN],
        ];
        impute_column_means(&mut x);
        assert_eq!(x, vec![vec![1.0, 0.0], vec![2.0, 0.0], vec![3.0, 0.0]]);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(fit_logistic(&[], &[], 1.0).is_err());
        assert!(fit_logistic(&[vec![1.0], vec![2.0]], &[true, true], 1.0).is_err());
        assert!(fit_logistic(&[vec![f64::NAN], vec![2.0]], &[true, false], 1.0).is_err());
    }
}
