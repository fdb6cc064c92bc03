//! Detection metrics on (score, label) pairs.
//!
//! Conventions used throughout:
//!
//! * **Positive = manipulated.** Higher scores mean "more likely manipulated".
//!   A detector whose score means "more bona fide" must be negated first.
//! * **Decision rule:** an item is flagged when `score >= threshold`.
//!   `FPR(t) = #{authentic: s >= t} / N_authentic`,
//!   `TPR(t) = #{manipulated: s >= t} / N_manipulated`.
//! * **ROC curve:** one point per distinct score, in order of decreasing
//!   threshold, starting at `(0, 0)` (threshold above every score, stored as
//!   `None`) and ending at `(1, 1)`. Tied scores of both classes give a
//!   diagonal segment.
//! * **AUROC:** the Mann–Whitney statistic `P(s+ > s-) + 0.5 P(s+ = s-)`,
//!   computed exactly from integer counts (equal to the trapezoidal area under
//!   the ROC curve above).
//! * **EER:** walk the ROC curve and find the first segment on which
//!   `FNR - FPR` changes sign from positive to zero or negative; the EER is the
//!   point of that straight segment where `FPR = FNR`.
//! * **TPR at FPR x:** the largest TPR over ROC points with `FPR <= x`
//!   (no interpolation: the value is achievable with the returned threshold).
//! * **Abstentions** (score `None`) are excluded from every rate and reported
//!   separately as a rate and a histogram of reasons.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::manifest::Split;

/// One evaluated item: its ground truth and the detector's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredItem {
    /// Identifier (usually the file path).
    pub id: String,
    /// `true` when the item is manipulated (positive class).
    pub manipulated: bool,
    /// Sub-population, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Detector score, `None` when the detector abstained.
    pub score: Option<f64>,
    /// Why the detector abstained (e.g. an abstention code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstain_reason: Option<String>,
    /// Split of the labelled set the item belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
}

impl ScoredItem {
    /// A scored item.
    pub fn scored(id: impl Into<String>, manipulated: bool, score: f64) -> Self {
        ScoredItem {
            id: id.into(),
            manipulated,
            group: None,
            score: Some(score),
            abstain_reason: None,
            split: None,
        }
    }

    /// An abstained item.
    pub fn abstained(id: impl Into<String>, manipulated: bool, reason: impl Into<String>) -> Self {
        ScoredItem {
            id: id.into(),
            manipulated,
            group: None,
            score: None,
            abstain_reason: Some(reason.into()),
            split: None,
        }
    }

    /// Set the split.
    pub fn with_split(mut self, split: Split) -> Self {
        self.split = Some(split);
        self
    }

    /// Set the group.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }
}

/// Split scored items into (positive, negative) score vectors; abstentions
/// are dropped. Errors on non-finite scores.
pub fn split_scores(items: &[ScoredItem]) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    for it in items {
        if let Some(s) = it.score {
            if !s.is_finite() {
                return Err(EvalError::InvalidInput(format!(
                    "score of `{}` is not finite ({s})",
                    it.id
                )));
            }
            if it.manipulated {
                pos.push(s);
            } else {
                neg.push(s);
            }
        }
    }
    Ok((pos, neg))
}

/// One point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// Items with `score >= threshold` are flagged; `None` means a threshold
    /// above every score (nothing flagged).
    pub threshold: Option<f64>,
    /// False positive rate.
    pub fpr: f64,
    /// True positive rate.
    pub tpr: f64,
}

/// Equal error rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Eer {
    /// The rate where FPR = FNR (interpolated on the ROC segment).
    pub eer: f64,
    /// Threshold of the segment's lower end: the highest threshold at which
    /// `FNR <= FPR` (an achievable operating point near the EER).
    pub threshold: f64,
}

/// Largest TPR achievable at a false positive rate no higher than a target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TprAtFpr {
    /// The FPR target.
    pub target_fpr: f64,
    /// TPR reached.
    pub tpr: f64,
    /// FPR actually reached (`<= target_fpr`).
    pub fpr: f64,
    /// Threshold that reaches it (`None`: nothing can be flagged).
    pub threshold: Option<f64>,
}

/// FPR and TPR at a fixed threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// The threshold (`score >= threshold` is flagged).
    pub threshold: f64,
    /// False positive rate; `None` without authentic items.
    pub fpr: Option<f64>,
    /// True positive rate; `None` without manipulated items.
    pub tpr: Option<f64>,
}

/// An exact ROC curve held as integer counts, the basis of every rank metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Roc {
    /// (threshold, true positives, false positives) in order of decreasing
    /// threshold; the first entry has threshold `+inf` and counts 0.
    steps: Vec<(f64, u64, u64)>,
    n_pos: u64,
    n_neg: u64,
}

impl Roc {
    /// Build from positive (manipulated) and negative (authentic) scores.
    pub fn new(pos: &[f64], neg: &[f64]) -> Roc {
        let p = sorted_desc(pos);
        let n = sorted_desc(neg);
        Roc::from_sorted(&p, None, &n, None)
    }

    /// Build from scored items (abstentions ignored).
    pub fn from_items(items: &[ScoredItem]) -> Result<Roc> {
        let (p, n) = split_scores(items)?;
        Ok(Roc::new(&p, &n))
    }

    /// Build from descending-sorted scores with optional multiplicities.
    fn from_sorted(pos: &[f64], wp: Option<&[u32]>, neg: &[f64], wn: Option<&[u32]>) -> Roc {
        let w = |ws: Option<&[u32]>, i: usize| ws.map_or(1u64, |w| u64::from(w[i]));
        let n_pos: u64 = (0..pos.len()).map(|i| w(wp, i)).sum();
        let n_neg: u64 = (0..neg.len()).map(|i| w(wn, i)).sum();
        let mut steps = Vec::with_capacity(pos.len() + neg.len() + 1);
        steps.push((f64::INFINITY, 0, 0));
        let (mut i, mut j) = (0usize, 0usize);
        let (mut tp, mut fp) = (0u64, 0u64);
        while i < pos.len() || j < neg.len() {
            let t = match (pos.get(i), neg.get(j)) {
                (Some(&a), Some(&b)) => a.max(b),
                (Some(&a), None) => a,
                (None, Some(&b)) => b,
                (None, None) => unreachable!(),
            };
            while i < pos.len() && pos[i] == t {
                tp += w(wp, i);
                i += 1;
            }
            while j < neg.len() && neg[j] == t {
                fp += w(wn, j);
                j += 1;
            }
            let last = steps.last().expect("non-empty");
            if last.1 != tp || last.2 != fp {
                steps.push((t, tp, fp));
            }
        }
        Roc {
            steps,
            n_pos,
            n_neg,
        }
    }

    /// Number of positive (manipulated) scores.
    pub fn n_pos(&self) -> u64 {
        self.n_pos
    }

    /// Number of negative (authentic) scores.
    pub fn n_neg(&self) -> u64 {
        self.n_neg
    }

    fn has_both(&self) -> bool {
        self.n_pos > 0 && self.n_neg > 0
    }

    /// The ROC curve (see the module docs). Empty if a class is missing.
    pub fn points(&self) -> Vec<RocPoint> {
        if !self.has_both() {
            return Vec::new();
        }
        self.steps
            .iter()
            .map(|&(t, tp, fp)| RocPoint {
                threshold: t.is_finite().then_some(t),
                fpr: fp as f64 / self.n_neg as f64,
                tpr: tp as f64 / self.n_pos as f64,
            })
            .collect()
    }

    /// Area under the ROC curve (Mann–Whitney, ties count 0.5).
    pub fn auroc(&self) -> Option<f64> {
        if !self.has_both() {
            return None;
        }
        // Twice the trapezoid area in count units: sum dFP * (TP0 + TP1).
        let mut twice: u128 = 0;
        for w in self.steps.windows(2) {
            let (_, tp0, fp0) = w[0];
            let (_, tp1, fp1) = w[1];
            twice += u128::from(fp1 - fp0) * u128::from(tp0 + tp1);
        }
        Some(twice as f64 / (2.0 * self.n_pos as f64 * self.n_neg as f64))
    }

    /// Equal error rate (see the module docs).
    pub fn eer(&self) -> Option<Eer> {
        if !self.has_both() {
            return None;
        }
        let (np, nn) = (self.n_pos as f64, self.n_neg as f64);
        let rates = |&(t, tp, fp): &(f64, u64, u64)| (t, fp as f64 / nn, 1.0 - tp as f64 / np);
        for w in self.steps.windows(2) {
            let (_, fpr0, fnr0) = rates(&w[0]);
            let (t1, fpr1, fnr1) = rates(&w[1]);
            let d0 = fnr0 - fpr0;
            let d1 = fnr1 - fpr1;
            if d0 > 0.0 && d1 <= 0.0 {
                let a = d0 / (d0 - d1);
                let eer = fpr0 + a * (fpr1 - fpr0);
                return Some(Eer { eer, threshold: t1 });
            }
        }
        // Unreachable with both classes present (d starts at 1, ends at -1).
        None
    }

    /// Largest TPR with FPR <= `target_fpr`.
    pub fn tpr_at_fpr(&self, target_fpr: f64) -> Option<TprAtFpr> {
        if !self.has_both() {
            return None;
        }
        let allowed = target_fpr * self.n_neg as f64 * (1.0 + 1e-12);
        let mut best = self.steps[0];
        for s in &self.steps {
            if s.2 as f64 <= allowed {
                best = *s;
            } else {
                break;
            }
        }
        Some(TprAtFpr {
            target_fpr,
            tpr: best.1 as f64 / self.n_pos as f64,
            fpr: best.2 as f64 / self.n_neg as f64,
            threshold: best.0.is_finite().then_some(best.0),
        })
    }

    /// FPR and TPR when flagging `score >= threshold`.
    pub fn rates_at(&self, threshold: f64) -> Rates {
        // Last step whose threshold is >= the given one.
        let k = self.steps.partition_point(|s| s.0 >= threshold);
        let (_, tp, fp) = self.steps[k.saturating_sub(1)];
        Rates {
            threshold,
            fpr: (self.n_neg > 0).then(|| fp as f64 / self.n_neg as f64),
            tpr: (self.n_pos > 0).then(|| tp as f64 / self.n_pos as f64),
        }
    }
}

fn sorted_desc(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    v
}

/// AUROC of positive vs negative scores (`None` if a class is empty).
pub fn auroc(pos: &[f64], neg: &[f64]) -> Option<f64> {
    Roc::new(pos, neg).auroc()
}

/// Equal error rate of positive vs negative scores.
pub fn eer(pos: &[f64], neg: &[f64]) -> Option<Eer> {
    Roc::new(pos, neg).eer()
}

/// Largest TPR at FPR <= `target_fpr`.
pub fn tpr_at_fpr(pos: &[f64], neg: &[f64], target_fpr: f64) -> Option<TprAtFpr> {
    Roc::new(pos, neg).tpr_at_fpr(target_fpr)
}

/// FPR/TPR when flagging `score >= threshold`.
pub fn rates_at(pos: &[f64], neg: &[f64], threshold: f64) -> Rates {
    Roc::new(pos, neg).rates_at(threshold)
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge (inclusive).
    pub lo: f64,
    /// Upper edge (exclusive, except for the last bin).
    pub hi: f64,
    /// Items in the bin.
    pub count: usize,
    /// Mean predicted probability in the bin (`None` when empty).
    pub mean_score: Option<f64>,
    /// Fraction of manipulated items in the bin (`None` when empty).
    pub frac_manipulated: Option<f64>,
}

/// Reliability diagram and expected calibration error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    /// Equal-width bins over [0, 1].
    pub bins: Vec<ReliabilityBin>,
    /// `sum_b (n_b / n) * |mean_score_b - frac_manipulated_b|`.
    pub ece: f64,
}

/// Expected calibration error with `n_bins` equal-width bins on [0, 1].
/// Scores must be probabilities; `None` if any is outside [0, 1], there are
/// no scores or `n_bins == 0`. A score of exactly 1 falls into the last bin.
pub fn reliability(pos: &[f64], neg: &[f64], n_bins: usize) -> Option<Reliability> {
    let n = pos.len() + neg.len();
    if n == 0 || n_bins == 0 {
        return None;
    }
    let mut count = vec![0usize; n_bins];
    let mut sum = vec![0f64; n_bins];
    let mut npos = vec![0usize; n_bins];
    for (scores, is_pos) in [(pos, true), (neg, false)] {
        for &s in scores {
            if !(0.0..=1.0).contains(&s) {
                return None;
            }
            let b = ((s * n_bins as f64) as usize).min(n_bins - 1);
            count[b] += 1;
            sum[b] += s;
            npos[b] += usize::from(is_pos);
        }
    }
    let mut ece = 0.0;
    let bins = (0..n_bins)
        .map(|b| {
            let (mean, frac) = if count[b] > 0 {
                let c = count[b] as f64;
                let m = sum[b] / c;
                let f = npos[b] as f64 / c;
                ece += c / n as f64 * (m - f).abs();
                (Some(m), Some(f))
            } else {
                (None, None)
            };
            ReliabilityBin {
                lo: b as f64 / n_bins as f64,
                hi: (b + 1) as f64 / n_bins as f64,
                count: count[b],
                mean_score: mean,
                frac_manipulated: frac,
            }
        })
        .collect();
    Some(Reliability { bins, ece })
}

/// Fraction of items that abstained, and a histogram of reasons
/// (`"unspecified"` when an abstained item gives none).
pub fn abstentions(items: &[ScoredItem]) -> (f64, BTreeMap<String, usize>) {
    let mut reasons = BTreeMap::new();
    let mut n = 0usize;
    for it in items.iter().filter(|it| it.score.is_none()) {
        n += 1;
        let r = it
            .abstain_reason
            .clone()
            .unwrap_or_else(|| "unspecified".to_string());
        *reasons.entry(r).or_insert(0) += 1;
    }
    let rate = if items.is_empty() {
        0.0
    } else {
        n as f64 / items.len() as f64
    };
    (rate, reasons)
}

/// Items per second, `None` unless `total_seconds > 0`.
pub fn throughput(n_items: usize, total_seconds: f64) -> Option<f64> {
    (total_seconds > 0.0 && total_seconds.is_finite()).then(|| n_items as f64 / total_seconds)
}

/// Per-group rates at one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRow {
    /// Group name.
    pub group: String,
    /// Authentic items (scored or not).
    pub n_authentic: usize,
    /// Manipulated items (scored or not).
    pub n_manipulated: usize,
    /// Items of the group that abstained.
    pub n_abstained: usize,
    /// FPR over the group's scored authentic items.
    pub fpr: Option<f64>,
    /// TPR over the group's scored manipulated items.
    pub tpr: Option<f64>,
    /// EER of the group's manipulated items against *all* scored authentic
    /// items of the set (the ASVspoof per-attack convention).
    pub eer_vs_all_authentic: Option<f64>,
    /// TPR of the group's manipulated items at 1% FPR on all scored
    /// authentic items of the set.
    #[serde(default)]
    pub tpr_at_1pct_fpr_vs_all_authentic: Option<f64>,
}

/// Per-group FPR (authentic items) and TPR (manipulated items) at
/// `threshold`, sorted by group name. Items without a group are left out.
pub fn per_group(items: &[ScoredItem], threshold: f64) -> Result<Vec<GroupRow>> {
    let (_, all_neg) = split_scores(items)?;
    let all_neg = sorted_desc(&all_neg);
    let mut groups: BTreeMap<&str, Vec<&ScoredItem>> = BTreeMap::new();
    for it in items {
        if let Some(g) = &it.group {
            groups.entry(g.as_str()).or_default().push(it);
        }
    }
    let mut rows = Vec::with_capacity(groups.len());
    for (g, its) in groups {
        let owned: Vec<ScoredItem> = its.iter().map(|i| (*i).clone()).collect();
        let (p, n) = split_scores(&owned)?;
        let r = Roc::new(&p, &n).rates_at(threshold);
        let (eer, tpr1) = if p.is_empty() {
            (None, None)
        } else {
            let roc = Roc::from_sorted(&sorted_desc(&p), None, &all_neg, None);
            (
                roc.eer().map(|e| e.eer),
                roc.tpr_at_fpr(0.01).map(|t| t.tpr),
            )
        };
        rows.push(GroupRow {
            group: g.to_string(),
            n_authentic: its.iter().filter(|i| !i.manipulated).count(),
            n_manipulated: its.iter().filter(|i| i.manipulated).count(),
            n_abstained: its.iter().filter(|i| i.score.is_none()).count(),
            fpr: r.fpr,
            tpr: r.tpr,
            eer_vs_all_authentic: eer,
            tpr_at_1pct_fpr_vs_all_authentic: tpr1,
        });
    }
    Ok(rows)
}

/// Bootstrap settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Resamples; 0 disables confidence intervals.
    pub resamples: usize,
    /// Seed of the ChaCha8 generator (results are reproducible).
    pub seed: u64,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            resamples: 1000,
            seed: 0x0C4D_0E7A,
            level: 0.95,
        }
    }
}

/// A point estimate with an optional percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The value on the full set.
    pub value: f64,
    /// Lower bound of the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_lo: Option<f64>,
    /// Upper bound of the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_hi: Option<f64>,
}

impl Estimate {
    /// Whether `x` lies in the interval (false without one).
    pub fn ci_contains(&self, x: f64) -> bool {
        matches!((self.ci_lo, self.ci_hi), (Some(lo), Some(hi)) if lo <= x && x <= hi)
    }
}

/// Stratified percentile bootstrap over positive and negative scores: each
/// resample draws `len(pos)` positives and `len(neg)` negatives with
/// replacement, builds the weighted ROC and evaluates `stat` on it.
/// Returns `(lo, hi)` or `None` when disabled or when fewer than half of the
/// resamples give a value.
pub fn bootstrap_ci<F>(
    pos: &[f64],
    neg: &[f64],
    cfg: &BootstrapConfig,
    stat: F,
) -> Option<(f64, f64)>
where
    F: Fn(&Roc) -> Option<f64>,
{
    bootstrap_many(pos, neg, cfg, &[&stat as Statistic<'_>])
        .into_iter()
        .next()
        .flatten()
}

/// A statistic of a (resampled) ROC, `None` where undefined.
pub type Statistic<'a> = &'a dyn Fn(&Roc) -> Option<f64>;

/// Like [`bootstrap_ci`] for several statistics sharing the same resamples.
pub fn bootstrap_many(
    pos: &[f64],
    neg: &[f64],
    cfg: &BootstrapConfig,
    stats: &[Statistic<'_>],
) -> Vec<Option<(f64, f64)>> {
    if cfg.resamples == 0 || (pos.is_empty() && neg.is_empty()) {
        return vec![None; stats.len()];
    }
    let p = sorted_desc(pos);
    let n = sorted_desc(neg);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut wp = vec![0u32; p.len()];
    let mut wn = vec![0u32; n.len()];
    let mut values: Vec<Vec<f64>> = vec![Vec::with_capacity(cfg.resamples); stats.len()];
    for _ in 0..cfg.resamples {
        wp.iter_mut().for_each(|w| *w = 0);
        wn.iter_mut().for_each(|w| *w = 0);
        for _ in 0..p.len() {
            wp[rng.random_range(0..p.len())] += 1;
        }
        for _ in 0..n.len() {
            wn[rng.random_range(0..n.len())] += 1;
        }
        let roc = Roc::from_sorted(&p, Some(&wp), &n, Some(&wn));
        for (k, s) in stats.iter().enumerate() {
            if let Some(v) = s(&roc) {
                if v.is_finite() {
                    values[k].push(v);
                }
            }
        }
    }
    let alpha = (1.0 - cfg.level) / 2.0;
    values
        .into_iter()
        .map(|mut v| {
            if v.len() * 2 < cfg.resamples {
                return None;
            }
            v.sort_by(f64::total_cmp);
            Some((quantile(&v, alpha), quantile(&v, 1.0 - alpha)))
        })
        .collect()
}

/// Linear-interpolated quantile of sorted data (type 7).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Rank metrics with bootstrap intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankMetrics {
    /// Scored authentic items.
    pub n_authentic: usize,
    /// Scored manipulated items.
    pub n_manipulated: usize,
    /// Area under the ROC curve.
    pub auroc: Option<Estimate>,
    /// Equal error rate.
    pub eer: Option<Estimate>,
    /// Threshold at the EER.
    pub eer_threshold: Option<f64>,
    /// TPR at 1% FPR (with interval) and at 0.1% FPR (point only).
    pub tpr_at_fpr: Vec<TprAtFprEstimate>,
    /// Rates at the operating threshold, when one is given.
    pub at_threshold: Option<ThresholdEstimate>,
}

/// TPR at an FPR target with an interval on the TPR.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TprAtFprEstimate {
    /// Point result.
    pub point: TprAtFpr,
    /// TPR with interval.
    pub tpr: Estimate,
}

/// FPR/TPR at a fixed threshold with intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdEstimate {
    /// The threshold.
    pub threshold: f64,
    /// False positive rate.
    pub fpr: Option<Estimate>,
    /// True positive rate.
    pub tpr: Option<Estimate>,
}

fn est(value: Option<f64>, ci: Option<(f64, f64)>) -> Option<Estimate> {
    value.map(|v| Estimate {
        value: v,
        ci_lo: ci.map(|c| c.0),
        ci_hi: ci.map(|c| c.1),
    })
}

/// AUROC, EER, TPR@1% and @0.1% FPR and (optionally) rates at `threshold`,
/// with stratified bootstrap intervals for AUROC, EER, TPR@1%FPR and the
/// rates at the threshold.
pub fn rank_metrics(
    pos: &[f64],
    neg: &[f64],
    threshold: Option<f64>,
    cfg: &BootstrapConfig,
) -> RankMetrics {
    let roc = Roc::new(pos, neg);
    let t = threshold.unwrap_or(f64::NAN);
    let s_auc = |r: &Roc| r.auroc();
    let s_eer = |r: &Roc| r.eer().map(|e| e.eer);
    let s_tpr1 = |r: &Roc| r.tpr_at_fpr(0.01).map(|x| x.tpr);
    let s_fpr = |r: &Roc| r.rates_at(t).fpr;
    let s_tpr = |r: &Roc| r.rates_at(t).tpr;
    let mut stats: Vec<Statistic<'_>> = vec![&s_auc, &s_eer, &s_tpr1];
    if threshold.is_some() {
        stats.push(&s_fpr);
        stats.push(&s_tpr);
    }
    let cis = bootstrap_many(pos, neg, cfg, &stats);
    let e = roc.eer();
    let t1 = roc.tpr_at_fpr(0.01);
    let t01 = roc.tpr_at_fpr(0.001);
    let mut tpr_at_fpr = Vec::new();
    if let Some(t1) = t1 {
        tpr_at_fpr.push(TprAtFprEstimate {
            point: t1,
            tpr: est(Some(t1.tpr), cis[2]).expect("some"),
        });
    }
    if let Some(t01) = t01 {
        tpr_at_fpr.push(TprAtFprEstimate {
            point: t01,
            tpr: est(Some(t01.tpr), None).expect("some"),
        });
    }
    let at_threshold = threshold.map(|t| {
        let r = roc.rates_at(t);
        ThresholdEstimate {
            threshold: t,
            fpr: est(r.fpr, cis[3]),
            tpr: est(r.tpr, cis[4]),
        }
    });
    RankMetrics {
        n_authentic: neg.len(),
        n_manipulated: pos.len(),
        auroc: est(roc.auroc(), cis[0]),
        eer: est(e.map(|e| e.eer), cis[1]),
        eer_threshold: e.map(|e| e.threshold),
        tpr_at_fpr,
        at_threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auroc_hand_values() {
        assert_eq!(auroc(&[0.9, 0.8], &[0.1, 0.2, 0.3]), Some(1.0));
        assert_eq!(auroc(&[0.1, 0.2], &[0.8, 0.9]), Some(0.0));
        assert_eq!(auroc(&[0.5, 0.5], &[0.5, 0.5, 0.5]), Some(0.5));
        // pos {0.8, 0.4}, neg {0.6, 0.4, 0.2}: pairs won 0.8>all (3),
        // 0.4 > 0.2 (1) + tie with 0.4 (0.5) -> 4.5 / 6.
        assert!(close(auroc(&[0.8, 0.4], &[0.6, 0.4, 0.2]).unwrap(), 0.75));
        assert_eq!(auroc(&[0.1], &[]), None);
    }

    #[test]
    fn roc_points_and_rates() {
        let roc = Roc::new(&[0.9, 0.7, 0.5], &[0.8, 0.5, 0.1]);
        let pts = roc.points();
        let xy: Vec<(f64, f64)> = pts.iter().map(|p| (p.fpr, p.tpr)).collect();
        let third = 1.0 / 3.0;
        let expect = [
            (0.0, 0.0),
            (0.0, third),
            (third, third),
            (third, 2.0 * third),
            (2.0 * third, 1.0),
            (1.0, 1.0),
        ];
        assert_eq!(xy.len(), expect.len());
        for (a, b) in xy.iter().zip(expect) {
            assert!(close(a.0, b.0) && close(a.1, b.1), "{xy:?}");
        }
        assert_eq!(pts[0].threshold, None);
        assert_eq!(pts[4].threshold, Some(0.5));
        let r = roc.rates_at(0.5);
        assert!(close(r.fpr.unwrap(), 2.0 * third) && close(r.tpr.unwrap(), 1.0));
        let r = roc.rates_at(0.75);
        assert!(close(r.fpr.unwrap(), third) && close(r.tpr.unwrap(), third));
        let r = roc.rates_at(2.0);
        assert_eq!((r.fpr, r.tpr), (Some(0.0), Some(0.0)));
    }

    #[test]
    fn eer_known_cases() {
        // Perfect separation: EER 0.
        let e = eer(&[0.9, 0.8], &[0.1, 0.2]).unwrap();
        assert_eq!(e.eer, 0.0);
        // 4 vs 4 with one error each way: pos {0.9,0.8,0.7,0.3},
        // neg {0.6,0.4,0.2,0.75}. At t=0.7 FPR=1/4 (0.75), FNR=1/4 (0.3).
        let e = eer(&[0.9, 0.8, 0.7, 0.3], &[0.6, 0.4, 0.2, 0.75]).unwrap();
        assert!(close(e.eer, 0.25), "{e:?}");
        // Interpolated: pos {0.6, 0.4}, neg {0.5, 0.3}.
        // Points (fpr, fnr): (0,1) (0,0.5) (0.5,0.5) ... segment (0,0.5)->(0.5,0.5)
        // is where fnr - fpr goes 0.5 -> 0: EER = 0.5.
        let e = eer(&[0.6, 0.4], &[0.5, 0.3]).unwrap();
        assert!(close(e.eer, 0.5), "{e:?}");
        // A diagonal (tied) segment: pos {0.5}, neg {0.5}: (0,1)->(1,0), EER 0.5.
        let e = eer(&[0.5], &[0.5]).unwrap();
        assert!(close(e.eer, 0.5), "{e:?}");
        // Unequal class sizes with interpolation on a tie segment:
        // pos {0.9, 0.5, 0.5, 0.1}, neg {0.5, 0.2}. Points (fpr, fnr):
        // (0,1) (0,.75) (.5,.25) ... on the segment fnr = .75 - fpr:
        // fpr = fnr -> 0.375.
        let e = eer(&[0.9, 0.5, 0.5, 0.1], &[0.5, 0.2]).unwrap();
        assert!(close(e.eer, 0.375), "{e:?}");
        assert!(close(e.threshold, 0.5), "{e:?}");
    }

    #[test]
    fn tpr_at_fpr_known_case() {
        // 100 negatives at 0..99 / 100, positives at 0.995, 0.985, 0.5.
        let neg: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let pos = [0.995, 0.985, 0.5];
        // FPR <= 1%: one negative (0.99) may be flagged -> threshold 0.985
        // flags 0.99 (neg) and the two positives at or above 0.985.
        let t = tpr_at_fpr(&pos, &neg, 0.01).unwrap();
        assert!(close(t.tpr, 2.0 / 3.0), "{t:?}");
        assert!(close(t.fpr, 0.01));
        assert_eq!(t.threshold, Some(0.985));
        // FPR <= 0.1%: no negative may be flagged -> threshold 0.995.
        let t = tpr_at_fpr(&pos, &neg, 0.001).unwrap();
        assert!(close(t.tpr, 1.0 / 3.0), "{t:?}");
        assert_eq!(t.fpr, 0.0);
        assert_eq!(t.threshold, Some(0.995));
        // No positive above every negative: nothing can be flagged.
        let t = tpr_at_fpr(&[0.5, 0.2], &neg, 0.001).unwrap();
        assert_eq!((t.tpr, t.fpr, t.threshold), (0.0, 0.0, None));
    }

    #[test]
    fn ece_and_reliability() {
        // Bin [0.8, 0.9): scores 0.8 x4, 3 positives -> |0.8 - 0.75| = 0.05.
        // Bin [0.2, 0.3): scores 0.2 x4, 1 positive -> |0.2 - 0.25| = 0.05.
        let pos = [0.8, 0.8, 0.8, 0.2];
        let neg = [0.8, 0.2, 0.2, 0.2];
        let r = reliability(&pos, &neg, 10).unwrap();
        assert!(close(r.ece, 0.05), "{}", r.ece);
        assert_eq!(r.bins.len(), 10);
        assert_eq!(r.bins[8].count, 4);
        assert_eq!(r.bins[8].frac_manipulated, Some(0.75));
        assert_eq!(r.bins[0].mean_score, None);
        assert!(reliability(&[1.0], &[0.0], 5).unwrap().ece == 0.0);
        assert!(reliability(&[1.2], &[0.0], 5).is_none());
    }

    #[test]
    fn abstention_groups_and_throughput() {
        let items = vec![
            ScoredItem::scored("a", false, 0.1).with_group("native"),
            ScoredItem::scored("b", false, 0.9).with_group("non_native"),
            ScoredItem::scored("c", false, 0.2).with_group("non_native"),
            ScoredItem::scored("d", true, 0.95).with_group("gpt4"),
            ScoredItem::scored("e", true, 0.3).with_group("gpt4"),
            ScoredItem::abstained("f", true, "too_short").with_group("gpt4"),
            ScoredItem::abstained("g", false, "too_short"),
        ];
        let (rate, reasons) = abstentions(&items);
        assert!(close(rate, 2.0 / 7.0));
        assert_eq!(reasons.get("too_short"), Some(&2));
        let rows = per_group(&items, 0.5).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(names, ["gpt4", "native", "non_native"]);
        assert_eq!(rows[0].tpr, Some(0.5));
        assert_eq!(rows[0].fpr, None);
        assert_eq!(rows[0].n_abstained, 1);
        assert_eq!(rows[2].fpr, Some(0.5));
        assert_eq!(rows[1].fpr, Some(0.0));
        assert_eq!(throughput(10, 4.0), Some(2.5));
        assert_eq!(throughput(10, 0.0), None);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_estimate() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let pos: Vec<f64> = (0..300).map(|_| rng.random::<f64>() + 0.3).collect();
        let neg: Vec<f64> = (0..300).map(|_| rng.random::<f64>()).collect();
        let cfg = BootstrapConfig {
            resamples: 400,
            ..Default::default()
        };
        let m1 = rank_metrics(&pos, &neg, Some(0.8), &cfg);
        let m2 = rank_metrics(&pos, &neg, Some(0.8), &cfg);
        assert_eq!(m1, m2);
        let a = m1.auroc.unwrap();
        assert!(
            a.ci_lo.unwrap() < a.value && a.value < a.ci_hi.unwrap(),
            "{a:?}"
        );
        // AUROC of U(0.3,1.3) vs U(0,1) = 1 - 0.7^2 / 2 = 0.755.
        assert!(a.ci_contains(0.755), "{a:?}");
        let e = m1.eer.unwrap();
        assert!(e.ci_lo.unwrap() <= e.value && e.value <= e.ci_hi.unwrap());
        let f = m1.at_threshold.unwrap().fpr.unwrap();
        // True FPR at 0.8 is 0.2.
        assert!(f.ci_contains(0.2), "{f:?}");
        let other = rank_metrics(&pos, &neg, None, &BootstrapConfig { seed: 1, ..cfg });
        assert_ne!(other.auroc, m1.auroc);
    }
}
