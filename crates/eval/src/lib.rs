//! Candor's measurement and calibration layer.
//!
//! * [`manifest`]: labelled sets from JSONL / CSV manifests or a directory
//!   layout, with train / calib / test splits and groups.
//! * [`metrics`]: AUROC, ROC, EER, TPR at FPR, rates at a threshold, ECE and
//!   reliability bins, abstentions, per-group rates, throughput, and seeded
//!   stratified bootstrap intervals. Positive = manipulated; higher score =
//!   more likely manipulated; `score >= threshold` is flagged.
//! * [`calibrate`]: Platt and isotonic calibration fitted on one explicit
//!   split, the operating point rule, and the versioned
//!   [`CalibrationArtefact`].
//! * [`report`]: [`EvalReport`] (JSON, Markdown, PNG plots) and the generated
//!   `docs/evaluation.md`.

pub mod calibrate;
pub mod error;
pub mod json;
pub mod logistic;
pub mod manifest;
pub mod metrics;
pub mod plot;
pub mod report;

pub use calibrate::{
    choose_thresholds, fit_calibration, CalibMetrics, CalibrationArtefact, Calibrator, FitSpec,
    FittedOn, Method, OperatingPointSpec,
};
pub use error::{EvalError, Result};
pub use manifest::{ClassCounts, GroundTruth, Manifest, ManifestItem, Split};
pub use metrics::{
    auroc, bootstrap_ci, eer, rank_metrics, rates_at, reliability, tpr_at_fpr, BootstrapConfig,
    Eer, Estimate, GroupRow, RankMetrics, Rates, Reliability, Roc, RocPoint, ScoredItem, TprAtFpr,
};
pub use report::{
    evaluation_markdown, evaluation_markdown_from_files, EvalInput, EvalReport, ReportConfig,
    SetProvenance, SignalRow,
};
