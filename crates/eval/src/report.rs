//! Evaluation reports: JSON, Markdown and plots; and the generated
//! `docs/evaluation.md` that collects several reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use candor_core::{ModelRef, Thresholds};

use crate::error::{EvalError, Result};
use crate::json::to_canonical_json;
use crate::manifest::{ClassCounts, Manifest, Split};
use crate::metrics::{
    abstentions, per_group, rank_metrics, reliability, split_scores, throughput, BootstrapConfig,
    Estimate, GroupRow, RankMetrics, Reliability, Roc, RocPoint, ScoredItem,
};
use crate::plot;

/// Format tag of report JSON.
pub const REPORT_FORMAT: &str = "candor.eval-report.v1";

/// Where a labelled set came from and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetProvenance {
    /// Set name.
    pub name: String,
    /// Manifest file or directory.
    pub path: String,
    /// The split evaluated (`None`: all rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Items per class (of the evaluated rows).
    pub counts: ClassCounts,
    /// Items per class per group (of the evaluated rows).
    pub groups: BTreeMap<String, ClassCounts>,
}

impl SetProvenance {
    /// Provenance of a manifest, restricted to `split` when given.
    pub fn from_manifest(m: &Manifest, split: Option<Split>) -> SetProvenance {
        let mut counts = ClassCounts::default();
        let mut groups: BTreeMap<String, ClassCounts> = BTreeMap::new();
        for it in m
            .items
            .iter()
            .filter(|it| split.is_none() || it.split == split)
        {
            counts.add(it.label);
            if let Some(g) = &it.group {
                groups.entry(g.clone()).or_default().add(it.label);
            }
        }
        SetProvenance {
            name: m.name.clone(),
            path: m.origin.display().to_string(),
            split,
            counts,
            groups,
        }
    }

    /// Provenance computed from scored items (when there is no manifest).
    pub fn from_items(name: &str, path: &str, items: &[ScoredItem]) -> SetProvenance {
        let mut counts = ClassCounts::default();
        let mut groups: BTreeMap<String, ClassCounts> = BTreeMap::new();
        for it in items {
            let l = if it.manipulated {
                crate::GroundTruth::Manipulated
            } else {
                crate::GroundTruth::Authentic
            };
            counts.add(l);
            if let Some(g) = &it.group {
                groups.entry(g.clone()).or_default().add(l);
            }
        }
        SetProvenance {
            name: name.to_string(),
            path: path.to_string(),
            split: None,
            counts,
            groups,
        }
    }
}

/// Settings of a report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReportConfig {
    /// Bootstrap settings for the intervals.
    pub bootstrap: BootstrapConfig,
    /// Bins of the reliability diagram / ECE.
    pub ece_bins: usize,
    /// Bins of the score histograms.
    pub hist_bins: usize,
    /// Most ROC points kept in the report (the curve is thinned beyond).
    pub roc_max_points: usize,
    /// Draw the ROC with a log-scaled FPR axis.
    pub roc_log_x: bool,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            bootstrap: BootstrapConfig::default(),
            ece_bins: 10,
            hist_bins: 40,
            roc_max_points: 400,
            roc_log_x: true,
        }
    }
}

/// What is evaluated.
#[derive(Debug, Clone)]
pub struct EvalInput<'a> {
    /// The labelled set.
    pub set: SetProvenance,
    /// Detector id.
    pub detector: String,
    /// Models and calibration artefacts used.
    pub models: Vec<ModelRef>,
    /// Thresholds in force (labels and per-group rates use them).
    pub thresholds: Option<Thresholds>,
    /// The detector's outputs.
    pub items: &'a [ScoredItem],
    /// Wall-clock seconds spent scoring all items, if measured.
    pub total_seconds: Option<f64>,
    /// Command line that produced the report.
    pub created_by: String,
}

/// Abstentions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbstentionSummary {
    /// Items that abstained.
    pub count: usize,
    /// `count / n_items`.
    pub rate: f64,
    /// Reason → count.
    pub reasons: BTreeMap<String, usize>,
}

/// Score histograms per class over `[lo, hi]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// Lower edge.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Counts of authentic scores per bin.
    pub authentic: Vec<usize>,
    /// Counts of manipulated scores per bin.
    pub manipulated: Vec<usize>,
}

/// Timing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReportTimings {
    /// Seconds spent scoring.
    pub total_s: Option<f64>,
    /// Items (scored or abstained) per second.
    pub items_per_s: Option<f64>,
}

/// The threshold used for per-group rates and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupThreshold {
    /// The threshold (`score >= value` is flagged).
    pub value: f64,
    /// `manipulated_at_or_above` or `eer`.
    pub source: String,
}

/// Counts of decided labels per class, when thresholds are given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCounts {
    /// Scored below `authentic_below`.
    pub likely_authentic: usize,
    /// Scored in the band.
    pub inconclusive: usize,
    /// Scored at or above `manipulated_at_or_above`.
    pub likely_manipulated: usize,
}

/// One evaluation of one detector on one set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Schema tag ([`REPORT_FORMAT`]).
    pub format: String,
    /// The set.
    pub set: SetProvenance,
    /// Detector id.
    pub detector: String,
    /// Models and calibration artefacts used.
    pub models: Vec<ModelRef>,
    /// Command line that produced it.
    pub created_by: String,
    /// All items, scored or abstained.
    pub n_items: usize,
    /// Items with a score.
    pub n_scored: usize,
    /// Thresholds in force.
    pub thresholds: Option<Thresholds>,
    /// Rank metrics with intervals (at `manipulated_at_or_above` if given).
    pub metrics: RankMetrics,
    /// Reliability / ECE (only when every score is a probability).
    pub calibration: Option<Reliability>,
    /// Decided labels for authentic items.
    pub labels_authentic: Option<LabelCounts>,
    /// Decided labels for manipulated items.
    pub labels_manipulated: Option<LabelCounts>,
    /// Threshold of the per-group table.
    pub group_threshold: Option<GroupThreshold>,
    /// Per-group rates.
    pub per_group: Vec<GroupRow>,
    /// Abstentions.
    pub abstention: AbstentionSummary,
    /// Timing.
    pub timings: ReportTimings,
    /// ROC curve (thinned to at most `roc_max_points`).
    pub roc: Vec<RocPoint>,
    /// Score histograms.
    pub histograms: Histograms,
    /// Rank metrics of individual signals of the results (raw values,
    /// higher = more likely manipulated), when asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_signal: Vec<SignalRow>,
    /// Settings used.
    pub config: ReportConfig,
}

fn thin_roc(points: Vec<RocPoint>, max: usize) -> Vec<RocPoint> {
    if points.len() <= max.max(4) {
        return points;
    }
    let half = max / 2;
    let mut keep: Vec<usize> = vec![0, points.len() - 1];
    let grid = (0..half)
        .map(|i| 10f64.powf(-6.0 + 6.0 * i as f64 / (half - 1) as f64))
        .chain((0..half).map(|i| i as f64 / (half - 1) as f64));
    for g in grid {
        let k = points.partition_point(|p| p.fpr <= g);
        keep.push(k.saturating_sub(1));
    }
    keep.sort_unstable();
    keep.dedup();
    keep.into_iter().map(|i| points[i]).collect()
}

/// Rank metrics of one signal's raw values over the report's items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRow {
    /// Signal name, e.g. `forensics.npr_asym`.
    pub signal: String,
    /// Items without the signal (not measured on them).
    pub n_absent: usize,
    /// AUROC, EER and TPR at 1% / 0.1% FPR (no threshold).
    pub metrics: RankMetrics,
}

impl EvalReport {
    /// Adds per-signal rank metrics: one item list per signal, scored with
    /// the signal's raw value (abstained where the signal is absent).
    pub fn add_signals(&mut self, signals: &[(String, Vec<ScoredItem>)]) -> Result<()> {
        for (name, items) in signals {
            let (pos, neg) = split_scores(items)?;
            self.per_signal.push(SignalRow {
                signal: name.clone(),
                n_absent: items.iter().filter(|i| i.score.is_none()).count(),
                metrics: rank_metrics(&pos, &neg, None, &self.config.bootstrap),
            });
        }
        Ok(())
    }

    /// Compute every metric of the report.
    pub fn compute(input: &EvalInput<'_>, cfg: &ReportConfig) -> Result<EvalReport> {
        let (pos, neg) = split_scores(input.items)?;
        let roc = Roc::new(&pos, &neg);
        let threshold = input.thresholds.as_ref().map(|t| t.manipulated_at_or_above);
        let metrics = rank_metrics(&pos, &neg, threshold, &cfg.bootstrap);
        let group_threshold = match (threshold, metrics.eer_threshold) {
            (Some(t), _) => Some(GroupThreshold {
                value: t,
                source: "manipulated_at_or_above".into(),
            }),
            (None, Some(t)) => Some(GroupThreshold {
                value: t,
                source: "eer".into(),
            }),
            _ => None,
        };
        let per_group = match &group_threshold {
            Some(g) => per_group(input.items, g.value)?,
            None => Vec::new(),
        };
        let (rate, reasons) = abstentions(input.items);
        let labels = |scores: &[f64]| {
            input.thresholds.as_ref().map(|t| {
                let mut c = LabelCounts::default();
                for &s in scores {
                    match t.label(s) {
                        candor_core::Label::LikelyAuthentic => c.likely_authentic += 1,
                        candor_core::Label::Inconclusive => c.inconclusive += 1,
                        candor_core::Label::LikelyManipulated => c.likely_manipulated += 1,
                    }
                }
                c
            })
        };
        let all = pos.iter().chain(&neg);
        let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
        if !lo.is_finite() || (lo >= 0.0 && hi <= 1.0) {
            (lo, hi) = (0.0, 1.0);
        } else if hi <= lo {
            hi = lo + 1.0;
        }
        let nb = cfg.hist_bins.max(1);
        let bin = |x: f64| (((x - lo) / (hi - lo) * nb as f64) as usize).min(nb - 1);
        let mut ha = vec![0usize; nb];
        let mut hm = vec![0usize; nb];
        neg.iter().for_each(|&x| ha[bin(x)] += 1);
        pos.iter().for_each(|&x| hm[bin(x)] += 1);
        Ok(EvalReport {
            format: REPORT_FORMAT.to_string(),
            set: input.set.clone(),
            detector: input.detector.clone(),
            models: input.models.clone(),
            created_by: input.created_by.clone(),
            n_items: input.items.len(),
            n_scored: pos.len() + neg.len(),
            thresholds: input.thresholds.clone(),
            metrics,
            calibration: reliability(&pos, &neg, cfg.ece_bins),
            labels_authentic: labels(&neg),
            labels_manipulated: labels(&pos),
            group_threshold,
            per_group,
            abstention: AbstentionSummary {
                count: input.items.iter().filter(|i| i.score.is_none()).count(),
                rate,
                reasons,
            },
            timings: ReportTimings {
                total_s: input.total_seconds,
                items_per_s: input
                    .total_seconds
                    .and_then(|t| throughput(input.items.len(), t)),
            },
            per_signal: Vec::new(),
            roc: thin_roc(roc.points(), cfg.roc_max_points),
            histograms: Histograms {
                lo,
                hi,
                authentic: ha,
                manipulated: hm,
            },
            config: *cfg,
        })
    }

    /// Canonical JSON of the report.
    pub fn to_json(&self) -> Result<String> {
        to_canonical_json(self)
    }

    /// Read a `report.json`.
    pub fn load(path: impl AsRef<Path>) -> Result<EvalReport> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        let r: EvalReport = serde_json::from_str(&text)?;
        if r.format != REPORT_FORMAT {
            return Err(EvalError::InvalidInput(format!(
                "{}: unknown report format `{}`",
                path.display(),
                r.format
            )));
        }
        Ok(r)
    }

    /// Metrics table (Markdown) shared by the report and the combined doc.
    /// The per-group table (rates at the group threshold), if any.
    fn per_group_table(&self, out: &mut String) {
        if !self.per_group.is_empty() {
            let t = self
                .group_threshold
                .as_ref()
                .expect("groups imply a threshold");
            let _ = writeln!(
                out,
                "\n### Per group (threshold {} from `{}`)\n",
                fmt_num(t.value),
                t.source
            );
            out.push_str("| Group | Authentic | Manipulated | Abstained | FPR | TPR | EER vs all authentic | TPR at 1% FPR vs all authentic |\n|---|---|---|---|---|---|---|---|\n");
            for g in &self.per_group {
                let o = |x: Option<f64>| x.map_or("—".to_string(), fmt_pct);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    g.group,
                    g.n_authentic,
                    g.n_manipulated,
                    g.n_abstained,
                    o(g.fpr),
                    o(g.tpr),
                    o(g.eer_vs_all_authentic),
                    o(g.tpr_at_1pct_fpr_vs_all_authentic)
                );
            }
        }
    }

    /// The per-signal table, if any.
    fn per_signal_table(&self, out: &mut String) {
        if !self.per_signal.is_empty() {
            out.push_str(
                "\n### Per signal (raw values; AUROC below 0.5 = the signal runs the other way)\n\n\
                 | Signal | Authentic | Manipulated | Absent | AUROC [95% CI] | EER | TPR at 1% FPR |\n\
                 |---|---|---|---|---|---|---|\n",
            );
            for r in &self.per_signal {
                let m = &r.metrics;
                let auroc = m
                    .auroc
                    .map_or("n/a".to_string(), |e| match (e.ci_lo, e.ci_hi) {
                        (Some(a), Some(b)) => format!("{:.3} [{a:.3}, {b:.3}]", e.value),
                        _ => format!("{:.3}", e.value),
                    });
                let eer = m.eer.map_or("n/a".to_string(), |e| fmt_pct(e.value));
                let tpr = m
                    .tpr_at_fpr
                    .iter()
                    .find(|t| (t.point.target_fpr - 0.01).abs() < 1e-12)
                    .map_or("n/a".to_string(), |t| fmt_pct(t.tpr.value));
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {auroc} | {eer} | {tpr} |",
                    r.signal, m.n_authentic, m.n_manipulated, r.n_absent
                );
            }
        }
    }

    fn metrics_table(&self, out: &mut String) {
        let m = &self.metrics;
        out.push_str("| Metric | Value | 95% CI |\n|---|---|---|\n");
        let row = |out: &mut String, name: &str, e: &Option<Estimate>, pct: bool| {
            let f = |x: f64| if pct { fmt_pct(x) } else { format!("{x:.4}") };
            match e {
                Some(e) => {
                    let ci = match (e.ci_lo, e.ci_hi) {
                        (Some(a), Some(b)) => format!("[{}, {}]", f(a), f(b)),
                        _ => "—".into(),
                    };
                    let _ = writeln!(out, "| {name} | {} | {ci} |", f(e.value));
                }
                None => {
                    let _ = writeln!(out, "| {name} | n/a | — |");
                }
            }
        };
        row(out, "AUROC", &m.auroc, false);
        row(out, "EER", &m.eer, true);
        for t in &m.tpr_at_fpr {
            let name = format!("TPR @ FPR ≤ {}", fmt_pct(t.point.target_fpr));
            row(out, &name, &Some(t.tpr), true);
        }
        if let Some(t) = &m.at_threshold {
            row(
                out,
                &format!("FPR @ {}", fmt_num(t.threshold)),
                &t.fpr,
                true,
            );
            row(
                out,
                &format!("TPR @ {}", fmt_num(t.threshold)),
                &t.tpr,
                true,
            );
        }
        if let Some(c) = &self.calibration {
            let _ = writeln!(out, "| ECE ({} bins) | {:.4} | — |", c.bins.len(), c.ece);
        }
        let _ = writeln!(
            out,
            "| Abstention rate | {} | — |",
            fmt_pct(self.abstention.rate)
        );
        if let Some(r) = self.timings.items_per_s {
            let _ = writeln!(out, "| Throughput | {r:.1} items/s | — |");
        }
    }

    fn provenance(&self, out: &mut String) {
        let s = &self.set;
        let _ = writeln!(out, "- Set: `{}` (`{}`)", s.name, s.path);
        if let Some(sp) = s.split {
            let _ = writeln!(out, "- Split: `{sp}`");
        }
        let _ = writeln!(
            out,
            "- Items: {} ({} authentic, {} manipulated); scored {}; abstained {}",
            self.n_items,
            s.counts.authentic,
            s.counts.manipulated,
            self.n_scored,
            self.abstention.count
        );
        let _ = writeln!(out, "- Detector: `{}`", self.detector);
        for m in &self.models {
            let _ = writeln!(
                out,
                "- Model: `{}` v{}{}",
                m.id,
                m.version,
                m.sha256
                    .as_deref()
                    .map(|h| format!(" (sha256 {})", &h[..h.len().min(12)]))
                    .unwrap_or_default()
            );
        }
        if let Some(t) = &self.thresholds {
            let _ = writeln!(
                out,
                "- Thresholds: likely_authentic < {}, likely_manipulated ≥ {} (target FPR {})",
                fmt_num(t.authentic_below),
                fmt_num(t.manipulated_at_or_above),
                fmt_pct(t.target_fpr)
            );
        }
        let b = &self.config.bootstrap;
        let _ = writeln!(
            out,
            "- Intervals: stratified percentile bootstrap, {} resamples, seed {}",
            b.resamples, b.seed
        );
    }

    /// A readable Markdown section.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## {} on `{}`\n", self.detector, self.set.name);
        self.provenance(&mut out);
        out.push('\n');
        self.metrics_table(&mut out);
        if let (Some(a), Some(m)) = (&self.labels_authentic, &self.labels_manipulated) {
            out.push_str("\n### Decisions\n\n| Class | likely_authentic | inconclusive | likely_manipulated |\n|---|---|---|---|\n");
            for (name, c) in [("authentic", a), ("manipulated", m)] {
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} |",
                    c.likely_authentic, c.inconclusive, c.likely_manipulated
                );
            }
        }
        self.per_group_table(&mut out);
        self.per_signal_table(&mut out);
        if !self.abstention.reasons.is_empty() {
            out.push_str("\n### Abstentions\n\n| Reason | Count |\n|---|---|\n");
            for (r, c) in &self.abstention.reasons {
                let _ = writeln!(out, "| {r} | {c} |");
            }
        }
        if let Some(t) = self.timings.total_s {
            let _ = writeln!(out, "\nScoring took {t:.2} s.");
        }
        out
    }

    /// Write `report.json`, `report.md`, `roc.png`, `hist.png` and
    /// `reliability.png` into `out` (created if needed). Returns the paths.
    pub fn write_dir(&self, out: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let out = out.as_ref();
        std::fs::create_dir_all(out).map_err(|e| EvalError::io(out, e))?;
        let min_fpr = if self.metrics.n_authentic > 0 {
            (1.0 / self.metrics.n_authentic as f64).max(1e-4)
        } else {
            1e-4
        };
        let marks: Vec<f64> = self
            .thresholds
            .iter()
            .flat_map(|t| [t.authentic_below, t.manipulated_at_or_above])
            .collect();
        let rel_bins = self
            .calibration
            .as_ref()
            .map(|c| c.bins.clone())
            .unwrap_or_default();
        let files: Vec<(&str, Vec<u8>)> = vec![
            ("report.json", self.to_json()?.into_bytes()),
            ("report.md", self.to_markdown().into_bytes()),
            (
                "roc.png",
                plot::roc_png(&self.roc, self.config.roc_log_x, min_fpr)?,
            ),
            (
                "hist.png",
                plot::hist_png(
                    self.histograms.lo,
                    self.histograms.hi,
                    &self.histograms.authentic,
                    &self.histograms.manipulated,
                    &marks,
                )?,
            ),
            ("reliability.png", plot::reliability_png(&rel_bins)?),
        ];
        let mut paths = Vec::new();
        for (name, bytes) in files {
            let p = out.join(name);
            std::fs::write(&p, bytes).map_err(|e| EvalError::io(&p, e))?;
            paths.push(p);
        }
        Ok(paths)
    }
}

fn fmt_pct(x: f64) -> String {
    let p = x * 100.0;
    if p != 0.0 && p.abs() < 0.1 {
        format!("{p:.3}%")
    } else {
        format!("{p:.2}%")
    }
}

fn fmt_num(x: f64) -> String {
    let s = format!("{x:.4}");
    if s == "0.0000" && x != 0.0 {
        format!("{x:.3e}")
    } else {
        s
    }
}

/// Generate `docs/evaluation.md` from reports: a header saying the file is
/// generated (and by which command), then per report its provenance and
/// metrics table. Reports are ordered by set name, then detector.
pub fn evaluation_markdown(reports: &[EvalReport], command: &str) -> String {
    let mut rs: Vec<&EvalReport> = reports.iter().collect();
    rs.sort_by(|a, b| {
        (a.set.name.as_str(), a.detector.as_str()).cmp(&(b.set.name.as_str(), b.detector.as_str()))
    });
    let mut out = String::new();
    out.push_str("<!-- GENERATED FILE: do not edit by hand. -->\n");
    let _ = writeln!(out, "<!-- Regenerate with: {command} -->\n");
    out.push_str("# Evaluation\n\n");
    let _ = writeln!(
        out,
        "This file is generated by `{command}` from the evaluation reports listed \
         below and is never edited by hand. Positive = manipulated; FPR is the rate \
         of authentic items flagged; intervals are 95% stratified bootstrap intervals.\n"
    );
    if rs.is_empty() {
        out.push_str("No evaluation reports yet.\n");
        return out;
    }
    out.push_str("| Set | Detector | Authentic | Manipulated | AUROC | EER | TPR @ 1% FPR |\n|---|---|---|---|---|---|---|\n");
    for r in &rs {
        let v = |e: &Option<Estimate>, pct: bool| {
            e.map_or("n/a".to_string(), |e| {
                if pct {
                    fmt_pct(e.value)
                } else {
                    format!("{:.4}", e.value)
                }
            })
        };
        let t1 = r
            .metrics
            .tpr_at_fpr
            .iter()
            .find(|t| t.point.target_fpr == 0.01)
            .map_or("n/a".to_string(), |t| fmt_pct(t.tpr.value));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.set.name,
            r.detector,
            r.set.counts.authentic,
            r.set.counts.manipulated,
            v(&r.metrics.auroc, false),
            v(&r.metrics.eer, true),
            t1
        );
    }
    for r in rs {
        let _ = writeln!(out, "\n## {} on `{}`\n", r.detector, r.set.name);
        r.provenance(&mut out);
        let _ = writeln!(out, "- Produced by: `{}`", r.created_by);
        if !r.set.groups.is_empty() {
            let g: Vec<String> = r
                .set
                .groups
                .iter()
                .map(|(k, c)| format!("{k} ({}+{})", c.authentic, c.manipulated))
                .collect();
            let _ = writeln!(out, "- Groups (authentic+manipulated): {}", g.join(", "));
        }
        out.push('\n');
        r.metrics_table(&mut out);
        r.per_group_table(&mut out);
        r.per_signal_table(&mut out);
    }
    out
}

/// [`evaluation_markdown`] over `report.json` files on disk.
pub fn evaluation_markdown_from_files(paths: &[PathBuf], command: &str) -> Result<String> {
    let reports = paths
        .iter()
        .map(EvalReport::load)
        .collect::<Result<Vec<_>>>()?;
    Ok(evaluation_markdown(&reports, command))
}
