//! `candor eval`, `candor calibrate` and `candor eval-doc`: the evaluation
//! harness on top of `candor-eval`.
//!
//! * `eval --set` runs a labelled set through the in-process [`Analyzer`]
//!   (priority `bulk`, bounded concurrency) and writes an [`EvalReport`]
//!   (`report.json`, `report.md`, plots) plus `items.jsonl` (one line per
//!   item: score or abstention / error, with its reason).
//! * `eval --scores` evaluates per-item scores produced elsewhere (e.g. the
//!   published RawGAT-ST scores); such reports are labelled "external scores
//!   (harness validation), not a Candor detector".
//! * `calibrate` fits a [`CalibrationArtefact`] on the `calib` split only.
//! * `eval-doc` writes `docs/evaluation.md` from `report.json` files.
//!
//! Nothing here makes up a number: abstentions and errors are counted and
//! listed, and metrics that a set cannot support are `n/a`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use candor_core::{AnalysisResult, Modality, ModelRef, Priority, Thresholds, ToProblem};
use candor_detectors::{AnalyzeOptions, Analyzer, InputSource, RawInput};
use candor_eval::{
    fit_calibration, BootstrapConfig, CalibrationArtefact, EvalError, EvalInput, EvalReport,
    FitSpec, Manifest, ManifestItem, Method, ReportConfig, ScoredItem, SetProvenance, Split,
};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::args::AnalyzerArgs;

/// Prefix of the detector id of reports on externally produced scores.
const EXTERNAL_PREFIX: &str = "external scores: ";
/// Banner of reports on externally produced scores.
const EXTERNAL_BANNER: &str = "External scores (harness validation), not a Candor detector";
/// Prefix of the abstention reason of items that could not be analysed.
const ERROR_PREFIX: &str = "error: ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DetectorArg {
    /// Headshots and interview frames.
    Image,
    /// Interview audio and the audio track of video.
    Audio,
    /// Resume text (PDF, DOCX, TXT).
    Text,
}

impl DetectorArg {
    fn modality(self) -> Modality {
        match self {
            DetectorArg::Image => Modality::Image,
            DetectorArg::Audio => Modality::Audio,
            DetectorArg::Text => Modality::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    Train,
    Calib,
    Test,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Split {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::Calib => Split::Calib,
            SplitArg::Test => Split::Test,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScoresFormat {
    /// ASVspoof CM score file: `id attack key score` per line, key
    /// `bonafide` | `spoof`, higher score = more bona fide (negated on
    /// reading), group = attack (`-` → `bonafide`), split assigned by hashing
    /// the id (30% calib, 70% test).
    Asvspoof,
    /// One JSON object per line: `{"id", "manipulated", "score"` (null when
    /// abstained), optional `"group"`, `"split"`, `"abstain_reason"}`; higher
    /// score = more likely manipulated. `items.jsonl` of `candor eval` is in
    /// this format.
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Logistic fit (2 parameters): smooth, needs few rows, assumes a
    /// monotone sigmoid shape.
    Platt,
    /// Monotone step fit: follows any monotone shape, needs more rows and can
    /// overfit small calib splits.
    Isotonic,
}

/// Where the items come from (shared by `eval` and `calibrate`).
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Labelled set: a manifest (.jsonl / .csv) or a directory with
    /// `authentic/` and `manipulated/` sub-folders. Every item is run through
    /// the in-process analyzer, which costs the full analysis time per item.
    #[arg(
        long,
        env = "CANDOR_EVAL_SET",
        value_name = "DIR_OR_MANIFEST",
        conflicts_with = "scores",
        required_unless_present = "scores"
    )]
    pub set: Option<PathBuf>,

    /// Per-item scores produced outside Candor (see --format). Fast (no
    /// analysis) but measures the system that produced them, not Candor:
    /// reports are labelled as external scores (harness validation).
    #[arg(long, env = "CANDOR_EVAL_SCORES", value_name = "FILE")]
    pub scores: Option<PathBuf>,

    /// Format of --scores.
    #[arg(long, env = "CANDOR_EVAL_SCORES_FORMAT", value_enum, default_value_t = ScoresFormat::Asvspoof)]
    pub format: ScoresFormat,

    /// Name of the system that produced --scores (e.g. `rawgat-st`); shown in
    /// the report's detector id `external scores: NAME`.
    #[arg(long, env = "CANDOR_EVAL_EXTERNAL_ID", default_value = "external")]
    pub external_id: String,

    /// The --scores come from one of Candor's own training scripts (a head
    /// refitted without some data, e.g. for a leave-one-family-out fold),
    /// not from an outside system: describe how they were made. The report
    /// then names them `refit: NAME` and says so instead of "external".
    #[arg(long, env = "CANDOR_EVAL_SCORES_ORIGIN", requires = "scores")]
    pub scores_origin: Option<String>,

    /// Name of the set in reports (default: the manifest's or scores file's
    /// stem). Also names the default output folder, so distinct names keep
    /// reports of different sets apart.
    #[arg(long, env = "CANDOR_EVAL_NAME")]
    pub name: Option<String>,

    /// Items analysed at once with --set (0 = one per CPU core). More overlap
    /// decoding with model execution; fewer bound peak memory (each item is
    /// held decoded in memory while it runs).
    #[arg(long, env = "CANDOR_EVAL_CONCURRENCY", default_value_t = 0)]
    pub concurrency: usize,
}

#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Evaluate one detector: only items of this modality are run (from the
    /// manifest's `modality` column, else the file extension, else the
    /// analysed result). Without it, all items are run and the detector id
    /// lists the modalities seen.
    #[arg(long, env = "CANDOR_EVAL_DETECTOR", value_enum)]
    pub detector: Option<DetectorArg>,

    /// Evaluate only the rows of this split (default: every row). Report
    /// headline numbers on `test`; numbers on `calib` are optimistic for a
    /// calibration fitted on it.
    #[arg(long, env = "CANDOR_EVAL_SPLIT", value_enum)]
    pub split: Option<SplitArg>,

    /// Output folder for report.json, report.md, items.jsonl and the plots
    /// (default: target/eval/<name>). Existing files there are overwritten.
    #[arg(long, env = "CANDOR_EVAL_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Bootstrap resamples for the 95% intervals (0 = no intervals). More
    /// resamples give steadier interval edges but cost time linear in
    /// resamples × items (1000 on 70k items takes tens of seconds).
    #[arg(long, env = "CANDOR_EVAL_BOOTSTRAP", default_value_t = 1000)]
    pub bootstrap: usize,

    /// Calibration artefact applied to --scores before measuring; its
    /// thresholds become the report's operating point. Evaluate on
    /// `--split test` when the artefact was fitted on the same file's calib
    /// split, or the numbers are optimistic.
    #[arg(
        long,
        env = "CANDOR_EVAL_CALIBRATION",
        value_name = "FILE",
        requires = "scores"
    )]
    pub calibration: Option<PathBuf>,

    /// Evaluate one named signal of the results instead of the detector's
    /// calibrated score (e.g. `forensics.npr_asym`): its raw value is the
    /// score (higher = more likely manipulated), items without it abstain
    /// (`signal_absent`). Rank metrics (AUROC, TPR at FPR, EER) are
    /// meaningful; there are no thresholds, so no label metrics.
    #[arg(
        long,
        env = "CANDOR_EVAL_SIGNAL",
        value_name = "NAME",
        requires = "set"
    )]
    pub signal: Option<String>,

    /// Also report AUROC, EER and TPR at 1% FPR of these signals' raw
    /// values (comma-separated names, e.g.
    /// `forensics.npr_asym,forensics.forgery_cnn`) in a per-signal table of
    /// the same report. Costs nothing extra: the results are already there.
    #[arg(
        long,
        env = "CANDOR_EVAL_PER_SIGNAL",
        value_name = "NAMES",
        value_delimiter = ',',
        requires = "set"
    )]
    pub per_signal: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Detector whose scores are calibrated: `image`, `audio` or `text` with
    /// --set (only items of that modality are run); with --scores, any id of
    /// the system that produced them. Recorded in the artefact, which must
    /// only be applied to that detector's scores.
    #[arg(long, env = "CANDOR_CALIBRATE_DETECTOR")]
    pub detector: String,

    /// Calibration method.
    #[arg(long, env = "CANDOR_CALIBRATE_METHOD", value_enum, default_value_t = MethodArg::Platt)]
    pub method: MethodArg,

    #[command(flatten)]
    pub operating_point: crate::args::OperatingPointArgs,

    /// Where to write the artefact, e.g. models/calibration/<id>.json.
    /// Overwrites an existing file.
    #[arg(long, env = "CANDOR_CALIBRATE_OUT", value_name = "FILE")]
    pub out: PathBuf,

    /// Artefact id (default: `calibration/<detector>-<set name>`). Results
    /// carry it in `models`, so keep it stable across refits of one detector.
    #[arg(long, env = "CANDOR_CALIBRATE_ID")]
    pub id: Option<String>,

    /// Artefact version. Bump it on every refit so results say which fit
    /// labelled them.
    #[arg(long, env = "CANDOR_CALIBRATE_VERSION", default_value = "1")]
    pub artefact_version: String,
}

#[derive(Debug, Clone, Args)]
pub struct EvalDocArgs {
    /// report.json files, or folders holding one (as written by `candor
    /// eval`).
    #[arg(value_name = "REPORT", required = true)]
    pub reports: Vec<PathBuf>,

    /// Markdown file to write. Overwritten as a whole: never hand-edit it.
    #[arg(
        long,
        env = "CANDOR_EVAL_DOC_OUT",
        default_value = "docs/evaluation.md"
    )]
    pub out: PathBuf,

    /// Command named in the generated header as the way to regenerate the
    /// file.
    #[arg(
        long,
        env = "CANDOR_EVAL_DOC_COMMAND",
        default_value = "scripts/gen-evaluation.sh"
    )]
    pub command: String,
}

/// The command line, with the binary's path shortened to `candor`.
fn command_line() -> String {
    let mut a: Vec<String> = std::env::args().collect();
    if let Some(first) = a.first_mut() {
        *first = "candor".into();
    }
    a.join(" ")
}

/// Deterministic split of externally scored trials: 30% calib, 70% test,
/// from the SHA-256 of the id (the same rule as the `rawgat_report` example).
fn hash_split(id: &str) -> Split {
    let h = candor_core::sha256_hex(id.as_bytes());
    match u8::from_str_radix(&h[..2], 16) {
        Ok(b) if b < 77 => Split::Calib,
        _ => Split::Test,
    }
}

fn parse_scores(path: &Path, format: ScoresFormat) -> anyhow::Result<Vec<ScoredItem>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read scores file {}", path.display()))?;
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        match format {
            ScoresFormat::Asvspoof => {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() != 4 {
                    bail!(
                        "{}: expected 4 whitespace-separated fields `id attack key score`, got {}",
                        at(),
                        f.len()
                    );
                }
                let manipulated = match f[2] {
                    "spoof" => true,
                    "bonafide" => false,
                    k => bail!("{}: key must be `bonafide` or `spoof`, got `{k}`", at()),
                };
                let raw: f64 = f[3]
                    .parse()
                    .with_context(|| format!("{}: score `{}` is not a number", at(), f[3]))?;
                if !raw.is_finite() {
                    bail!("{}: score `{}` is not finite", at(), f[3]);
                }
                let group = if f[1] == "-" { "bonafide" } else { f[1] };
                // Higher = more bona fide in ASVspoof; Candor: higher = more
                // likely manipulated.
                items.push(
                    ScoredItem::scored(f[0], manipulated, -raw)
                        .with_group(group)
                        .with_split(hash_split(f[0])),
                );
            }
            ScoresFormat::Jsonl => {
                let it: ScoredItem = serde_json::from_str(line)
                    .with_context(|| format!("{}: not a scored item", at()))?;
                items.push(it);
            }
        }
    }
    if items.is_empty() {
        bail!("{}: no scores", path.display());
    }
    Ok(items)
}

fn file_stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "set".into())
}

/// Modality guessed from the manifest row or the file extension.
fn row_modality(it: &ManifestItem) -> Option<Modality> {
    let from_str = |s: &str| match s.trim().to_ascii_lowercase().as_str() {
        "image" => Some(Modality::Image),
        "audio" | "video" => Some(Modality::Audio),
        "text" => Some(Modality::Text),
        _ => None,
    };
    if let Some(m) = it.modality.as_deref().and_then(from_str) {
        return Some(m);
    }
    let ext = it.path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" | "jpe" | "jfif" | "png" | "webp" | "gif" | "bmp" | "tif" | "tiff" => {
            Modality::Image
        }
        "wav" | "wave" | "flac" | "mp3" | "aac" | "m4a" | "mp4" | "m4v" | "mov" | "ogg" | "oga"
        | "opus" | "webm" | "mkv" | "mka" => Modality::Audio,
        "pdf" | "docx" | "txt" | "text" | "md" | "markdown" => Modality::Text,
        _ => return None,
    })
}

/// One line of `items.jsonl`.
#[derive(Debug, Serialize)]
struct ItemRecord {
    #[serde(flatten)]
    item: ScoredItem,
    #[serde(skip_serializing_if = "Option::is_none")]
    modality: Option<Modality>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    /// Human-readable abstention reason or error detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<f64>,
}

/// Everything a report is computed from.
struct Collected {
    set: SetProvenance,
    detector: String,
    models: Vec<ModelRef>,
    thresholds: Option<Thresholds>,
    items: Vec<ScoredItem>,
    records: Vec<ItemRecord>,
    total_seconds: Option<f64>,
    /// Banner and remarks shown above the report.
    notes: Vec<String>,
    /// Items scored by each asked-for signal's raw value.
    signal_items: Vec<(String, Vec<ScoredItem>)>,
}

/// What analysing one manifest row gave.
struct RowOutcome {
    result: Result<AnalysisResult, (String, String)>,
    ms: f64,
}

async fn analyze_row(
    analyzer: Arc<Analyzer>,
    path: PathBuf,
    timeout: Duration,
) -> Result<AnalysisResult, (String, String)> {
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ("read_error".to_string(), format!("{}: {e}", path.display())))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let input = InputSource::File(RawInput {
        bytes: Arc::from(bytes),
        name,
        content_type: None,
    });
    let opts = AnalyzeOptions {
        priority: Priority::Bulk,
        deadline: Some(Instant::now() + timeout),
        identity: false,
    };
    analyzer.analyze(input, &opts).await.map_err(|e| {
        let code = e
            .problem_code()
            .unwrap_or_else(|| e.problem_kind().slug())
            .to_string();
        (code, e.to_string())
    })
}

/// Run `rows` through the analyzer with at most `concurrency` in flight;
/// outcomes come back in row order.
async fn run_rows(
    analyzer: &Arc<Analyzer>,
    rows: &[ManifestItem],
    concurrency: usize,
    timeout: Duration,
) -> Vec<RowOutcome> {
    let bar = (rows.len() > 1 && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(rows.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {per_sec} eta {eta}",
        ) {
            b.set_style(style);
        }
        b
    });
    let mut out: Vec<Option<RowOutcome>> = (0..rows.len()).map(|_| None).collect();
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0usize;
    loop {
        while next < rows.len() && set.len() < concurrency.max(1) {
            let a = Arc::clone(analyzer);
            let path = rows[next].path.clone();
            let i = next;
            set.spawn(async move {
                let started = Instant::now();
                let result = analyze_row(a, path, timeout).await;
                (
                    i,
                    RowOutcome {
                        result,
                        ms: started.elapsed().as_secs_f64() * 1e3,
                    },
                )
            });
            next += 1;
        }
        match set.join_next().await {
            Some(Ok((i, o))) => out[i] = Some(o),
            Some(Err(e)) => {
                // A panicking task: its row is reported as an error below.
                tracing::error!(error = %e, "evaluation task failed");
            }
            None => break,
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    out.into_iter()
        .map(|o| {
            o.unwrap_or(RowOutcome {
                result: Err(("internal".into(), "analysis task panicked".into())),
                ms: 0.0,
            })
        })
        .collect()
}

fn concurrency(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

/// Run a manifest through the analyzer.
async fn collect_set(
    analyzer_args: &AnalyzerArgs,
    source: &SourceArgs,
    set_path: &Path,
    detector: Option<Modality>,
    split: Option<Split>,
    signal: Option<&str>,
    per_signal: &[String],
) -> anyhow::Result<Collected> {
    let manifest = Manifest::load(set_path)
        .with_context(|| format!("cannot load labelled set {}", set_path.display()))?;
    let name = source.name.clone().unwrap_or_else(|| manifest.name.clone());
    let base: PathBuf = if set_path.is_dir() {
        set_path.to_path_buf()
    } else {
        set_path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let rows: Vec<ManifestItem> = manifest
        .items
        .iter()
        .filter(|it| split.is_none() || it.split == split)
        .filter(|it| match (detector, row_modality(it)) {
            (Some(want), Some(m)) => want == m,
            _ => true,
        })
        .cloned()
        .collect();
    if rows.is_empty() {
        bail!(
            "labelled set {} has no rows{}{}",
            set_path.display(),
            split
                .map(|s| format!(" in split `{s}`"))
                .unwrap_or_default(),
            detector
                .map(|m| format!(" of modality `{m}`"))
                .unwrap_or_default()
        );
    }
    let analyzer = crate::build_analyzer(analyzer_args)?;
    let timeout = Duration::from_millis(analyzer_args.request_timeout_ms.max(1));
    let started = Instant::now();
    let outcomes = run_rows(&analyzer, &rows, concurrency(source.concurrency), timeout).await;
    let total_seconds = started.elapsed().as_secs_f64();

    let mut kept_rows = Vec::new();
    let mut items = Vec::new();
    let mut records = Vec::new();
    let mut models: Vec<ModelRef> = Vec::new();
    let mut thresholds: BTreeSet<String> = BTreeSet::new();
    let mut first_thresholds: Option<Thresholds> = None;
    let mut modalities: BTreeSet<&'static str> = BTreeSet::new();
    let (mut n_other, mut n_errors) = (0usize, 0usize);
    let mut signal_items: Vec<(String, Vec<ScoredItem>)> =
        per_signal.iter().map(|n| (n.clone(), Vec::new())).collect();
    for (row, o) in rows.iter().zip(outcomes) {
        if let (Some(want), Ok(r)) = (detector, &o.result) {
            if r.modality != want {
                n_other += 1;
                continue;
            }
        }
        let id = row
            .path
            .strip_prefix(&base)
            .unwrap_or(&row.path)
            .display()
            .to_string();
        let manipulated = row.label.is_positive();
        let (mut item, modality, sha256, detail) = match &o.result {
            Ok(r) => {
                modalities.insert(r.modality.as_str());
                for m in &r.models {
                    if !models.contains(m) {
                        models.push(m.clone());
                    }
                }
                for (k, name) in per_signal.iter().enumerate() {
                    let v = r
                        .signals
                        .iter()
                        .find(|sg| &sg.name == name)
                        .map(|sg| sg.value)
                        .filter(|v| v.is_finite());
                    let mut it = match v {
                        Some(v) => ScoredItem::scored(&id, manipulated, v),
                        None => ScoredItem::abstained(&id, manipulated, "signal_absent"),
                    };
                    it.group = row.group.clone();
                    signal_items[k].1.push(it);
                }
                let by_signal = signal.map(|name| {
                    r.signals
                        .iter()
                        .find(|sg| sg.name == name)
                        .map(|sg| sg.value)
                        .filter(|v| v.is_finite())
                });
                let item = match (r.score, &r.abstention) {
                    _ if by_signal.is_some() => match by_signal.flatten() {
                        Some(v) => ScoredItem::scored(&id, manipulated, v),
                        None => ScoredItem::abstained(&id, manipulated, "signal_absent"),
                    },
                    (Some(s), _) => {
                        if let Some(t) = &r.thresholds {
                            thresholds.insert(serde_json::to_string(t)?);
                            first_thresholds.get_or_insert_with(|| t.clone());
                        }
                        ScoredItem::scored(&id, manipulated, s)
                    }
                    (None, Some(a)) => {
                        let code = serde_json::to_value(a.code)?
                            .as_str()
                            .unwrap_or("unspecified")
                            .to_string();
                        ScoredItem::abstained(&id, manipulated, code)
                    }
                    (None, None) => ScoredItem::abstained(&id, manipulated, "unspecified"),
                };
                let detail = r.abstention.as_ref().map(|a| a.reason.clone());
                (item, Some(r.modality), Some(r.input.sha256.clone()), detail)
            }
            Err((code, detail)) => {
                n_errors += 1;
                let item = ScoredItem::abstained(&id, manipulated, format!("{ERROR_PREFIX}{code}"));
                (item, row_modality(row), None, Some(detail.clone()))
            }
        };
        item.group = row.group.clone();
        item.split = row.split;
        records.push(ItemRecord {
            item: item.clone(),
            modality,
            sha256,
            detail,
            ms: Some(o.ms),
        });
        items.push(item);
        kept_rows.push(row.clone());
    }
    if items.is_empty() {
        bail!(
            "no item of {} was of modality `{}` ({n_other} of other modalities)",
            set_path.display(),
            detector.map_or("?", |m| m.as_str())
        );
    }
    let thresholds = if thresholds.len() == 1 {
        first_thresholds
    } else {
        if thresholds.len() > 1 {
            tracing::warn!("results carry different thresholds; the report shows none");
        }
        None
    };
    let kept = Manifest {
        name,
        origin: manifest.origin.clone(),
        items: kept_rows,
    };
    let set = SetProvenance::from_manifest(&kept, split);
    let detector_id = match detector {
        Some(m) => m.as_str().to_string(),
        None if modalities.is_empty() => "unknown".to_string(),
        None => modalities.into_iter().collect::<Vec<_>>().join("+"),
    };
    let detector_id = match signal {
        Some(name) => format!("{detector_id} (signal {name}, raw value)"),
        None => detector_id,
    };
    let mut notes = Vec::new();
    if n_other > 0 {
        notes.push(format!(
            "{n_other} item(s) turned out to be of another modality than `{detector_id}` and were left out."
        ));
    }
    if n_errors > 0 {
        notes.push(format!(
            "{n_errors} item(s) could not be analysed (errors). They count as abstentions with \
             reason `{ERROR_PREFIX}<code>` below and are listed with their detail in `items.jsonl`."
        ));
    }
    Ok(Collected {
        set,
        detector: detector_id,
        models,
        thresholds,
        items,
        records,
        total_seconds: Some(total_seconds),
        notes,
        signal_items,
    })
}

/// Read externally produced scores.
fn collect_scores(
    source: &SourceArgs,
    path: &Path,
    split: Option<Split>,
    calibration: Option<&Path>,
) -> anyhow::Result<Collected> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read scores file {}", path.display()))?;
    let sha = candor_core::sha256_hex(&bytes);
    let mut items = parse_scores(path, source.format)?;
    if let Some(s) = split {
        items.retain(|it| it.split == Some(s));
        if items.is_empty() {
            bail!("{}: no rows in split `{s}`", path.display());
        }
    }
    let mut models = vec![ModelRef {
        id: format!("external:{}", source.external_id),
        version: "scores-file".into(),
        sha256: Some(sha.clone()),
    }];
    let mut thresholds = None;
    if let Some(c) = calibration {
        let art = CalibrationArtefact::load(c)
            .with_context(|| format!("cannot load calibration {}", c.display()))?;
        for it in &mut items {
            it.score = it.score.map(|s| art.apply(s));
        }
        models.push(art.model_ref());
        thresholds = Some(art.thresholds.clone());
    }
    let name = source.name.clone().unwrap_or_else(|| file_stem(path));
    let mut set = SetProvenance::from_items(&name, &path.display().to_string(), &items);
    set.split = split;
    let records = items
        .iter()
        .map(|it| ItemRecord {
            item: it.clone(),
            modality: None,
            sha256: None,
            detail: None,
            ms: None,
        })
        .collect();
    let orientation = match source.format {
        ScoresFormat::Asvspoof => {
            " ASVspoof scores are higher = more bona fide; they are negated so that higher = \
             more likely manipulated. Groups are the attack ids; splits are assigned by hashing \
             the trial id (30% calib, 70% test)."
        }
        ScoresFormat::Jsonl => "",
    };
    let (notes, detector) = match &source.scores_origin {
        Some(origin) => (
            vec![format!(
                "**Refit for measurement.** {origin} The scores were read from `{}` (sha256 \
                 {}). They measure how the detector's method generalises to data its head \
                 never saw; the shipped model's own numbers are in the reports of the \
                 detector run end to end.",
                path.display(),
                &sha[..12]
            )],
            format!("refit: {}", source.external_id),
        ),
        None => (
            vec![format!(
                "**{EXTERNAL_BANNER}.** The scores were produced outside Candor by `{}` and read from \
                 `{}` (sha256 {}); this report checks Candor's metrics harness against published \
                 numbers and says nothing about Candor's own detectors.{orientation}",
                source.external_id,
                path.display(),
                &sha[..12]
            )],
            format!(
                "{EXTERNAL_PREFIX}{} (harness validation, not a Candor detector)",
                source.external_id
            ),
        ),
    };
    if source.scores_origin.is_some() {
        models[0].id = format!("refit:{}", source.external_id);
    }
    Ok(Collected {
        set,
        detector,
        models,
        thresholds,
        items,
        records,
        total_seconds: None,
        notes,
        signal_items: Vec::new(),
    })
}

/// Remarks any reader needs before the numbers: one class, nothing scored.
fn report_notes(r: &EvalReport) -> Vec<String> {
    let mut notes = Vec::new();
    let c = &r.set.counts;
    if c.authentic == 0 || c.manipulated == 0 {
        notes.push(format!(
            "**One class only** ({} authentic, {} manipulated): AUROC, EER and TPR @ FPR are \
             n/a (one class); only abstention, timing and (with thresholds) decision counts are \
             meaningful.",
            c.authentic, c.manipulated
        ));
    }
    if r.n_scored == 0 {
        let errors: usize = r
            .abstention
            .reasons
            .iter()
            .filter(|(k, _)| k.starts_with(ERROR_PREFIX))
            .map(|(_, v)| v)
            .sum();
        notes.push(format!(
            "**No item was scored**: abstention rate {:.0}% ({} abstained, of which {errors} \
             could not be analysed). Every rank metric is n/a; no number here is made up.",
            r.abstention.rate * 100.0,
            r.abstention.count
        ));
    } else if (r.metrics.n_authentic == 0 || r.metrics.n_manipulated == 0)
        && c.authentic > 0
        && c.manipulated > 0
    {
        notes.push(format!(
            "The scored items hold one class only ({} authentic, {} manipulated scored): \
             rank metrics are n/a.",
            r.metrics.n_authentic, r.metrics.n_manipulated
        ));
    }
    notes
}

/// Why the rank metrics of a report are `n/a`, if they are.
fn na_reason(r: &EvalReport) -> Option<&'static str> {
    let c = &r.set.counts;
    if c.authentic == 0 || c.manipulated == 0 {
        Some("n/a (one class)")
    } else if r.n_scored == 0 {
        Some("n/a (no scores)")
    } else if r.metrics.n_authentic == 0 || r.metrics.n_manipulated == 0 {
        Some("n/a (one class scored)")
    } else {
        None
    }
}

/// Say why in every `n/a` table cell of `md` (Markdown of one report).
fn explain_na(md: &str, r: &EvalReport) -> String {
    match na_reason(r) {
        Some(why) => md
            .split_inclusive('\n')
            .map(|l| explain_na_line(l, why))
            .collect(),
        None => md.to_string(),
    }
}

fn explain_na_line(line: &str, why: &str) -> String {
    if !line.starts_with('|') {
        return line.to_string();
    }
    line.split('|')
        .map(|cell| {
            if cell.trim() == "n/a" {
                format!(" {why} ")
            } else {
                cell.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// [`explain_na`] over the generated doc: each report's summary row and
/// its section.
fn explain_na_doc(md: &str, reports: &[EvalReport]) -> String {
    let mut out = String::with_capacity(md.len());
    let mut section: Option<&EvalReport> = None;
    for line in md.split_inclusive('\n') {
        if line.starts_with("## ") {
            section = reports
                .iter()
                .find(|r| line.trim_end() == format!("## {} on `{}`", r.detector, r.set.name));
        }
        let row = reports
            .iter()
            .find(|r| line.starts_with(&format!("| {} | {} |", r.set.name, r.detector)));
        match row.or(section).and_then(na_reason) {
            Some(why) => out.push_str(&explain_na_line(line, why)),
            None => out.push_str(line),
        }
    }
    out
}

fn notes_markdown(notes: &[String]) -> String {
    let mut s = String::new();
    for n in notes {
        let _ = writeln!(s, "> {n}\n");
    }
    s
}

pub async fn run_eval(args: EvalArgs) -> ExitCode {
    match eval(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor eval: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let split = args.split.map(Split::from);
    let c = match (&args.source.set, &args.source.scores) {
        (Some(set), None) => {
            collect_set(
                &args.analyzer,
                &args.source,
                set,
                args.detector.map(DetectorArg::modality),
                split,
                args.signal.as_deref(),
                &args.per_signal,
            )
            .await?
        }
        (None, Some(scores)) => {
            collect_scores(&args.source, scores, split, args.calibration.as_deref())?
        }
        _ => bail!("give exactly one of --set and --scores"),
    };
    let mut report = EvalReport::compute(
        &EvalInput {
            set: c.set.clone(),
            detector: c.detector.clone(),
            models: c.models.clone(),
            thresholds: c.thresholds.clone(),
            items: &c.items,
            total_seconds: c.total_seconds,
            created_by: command_line(),
        },
        &ReportConfig {
            bootstrap: BootstrapConfig {
                resamples: args.bootstrap,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .context("cannot compute the report")?;
    report
        .add_signals(&c.signal_items)
        .context("cannot compute the per-signal metrics")?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/eval").join(sanitize(&report.set.name)));
    let mut paths = report
        .write_dir(&out)
        .with_context(|| format!("cannot write the report to {}", out.display()))?;
    let mut notes = c.notes.clone();
    notes.extend(report_notes(&report));
    let md = format!(
        "{}{}",
        notes_markdown(&notes),
        explain_na(&report.to_markdown(), &report)
    );
    let md_path = out.join("report.md");
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    let items_path = out.join("items.jsonl");
    let mut lines = String::new();
    for r in &c.records {
        lines.push_str(&serde_json::to_string(r)?);
        lines.push('\n');
    }
    std::fs::write(&items_path, lines)
        .with_context(|| format!("cannot write {}", items_path.display()))?;
    paths.push(items_path);
    println!("{md}");
    for p in paths {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn sanitize(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() || t.starts_with('.') {
        format!("set{t}")
    } else {
        t
    }
}

pub async fn run_calibrate(args: CalibrateArgs) -> ExitCode {
    match calibrate(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor calibrate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn calibrate(args: CalibrateArgs) -> anyhow::Result<()> {
    let method = match args.method {
        MethodArg::Platt => Method::Platt,
        MethodArg::Isotonic => Method::Isotonic,
    };
    let (items, set_name) = match (&args.source.set, &args.source.scores) {
        (Some(set), None) => {
            let modality = match args.detector.as_str() {
                "image" => Modality::Image,
                "audio" => Modality::Audio,
                "text" => Modality::Text,
                d => bail!("--detector must be image, audio or text with --set (got `{d}`)"),
            };
            // Refuse early, before any analysis, when there is nothing to fit on.
            let m = Manifest::load(set)
                .with_context(|| format!("cannot load labelled set {}", set.display()))?;
            if m.split(Split::Calib).next().is_none() {
                bail!(
                    "labelled set {} has no rows in split `calib`: calibrations are fitted on \
                     calib rows only (give rows `\"split\": \"calib\"`), never on test rows",
                    set.display()
                );
            }
            let c = collect_set(
                &args.analyzer,
                &args.source,
                set,
                Some(modality),
                Some(Split::Calib),
                None,
                &[],
            )
            .await?;
            (c.items, c.set.name)
        }
        (None, Some(scores)) => {
            let items = parse_scores(scores, args.source.format)?;
            let name = args
                .source
                .name
                .clone()
                .unwrap_or_else(|| file_stem(scores));
            (items, name)
        }
        _ => bail!("give exactly one of --set and --scores"),
    };
    let n_calib = items
        .iter()
        .filter(|i| i.split == Some(Split::Calib))
        .count();
    if n_calib == 0 {
        bail!(
            "set `{set_name}` has no rows in split `calib`: calibrations are fitted on calib \
             rows only, never on test rows"
        );
    }
    let id = args.id.clone().unwrap_or_else(|| {
        format!(
            "calibration/{}-{}",
            sanitize(&args.detector),
            sanitize(&set_name)
        )
    });
    let art = fit_calibration(
        &items,
        Split::Calib,
        &FitSpec {
            id,
            version: args.artefact_version.clone(),
            detector: args.detector.clone(),
            set: set_name.clone(),
            created_by: command_line(),
            method,
            operating_point: args.operating_point.spec(),
        },
    )
    .map_err(|e| match e {
        EvalError::NoRowsInSplit { .. } => anyhow::anyhow!(
            "{e} (every calib row of `{set_name}` abstained or failed: is the `{}` detector \
             installed?)",
            args.detector
        ),
        e => anyhow::Error::new(e).context("cannot fit the calibration"),
    })?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    art.save(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let t = &art.thresholds;
    let m = &art.metrics_on_calib;
    let f = &art.fitted_on;
    println!(
        "calibration `{}` v{} ({}) for detector `{}`",
        art.id,
        art.version,
        method.as_str(),
        art.detector
    );
    println!(
        "fitted on set `{}` split `{}`: {} authentic, {} manipulated scored, {} abstained",
        f.set, f.split, f.n_authentic, f.n_manipulated, f.n_abstained
    );
    println!(
        "thresholds: likely_authentic < {:.6}, likely_manipulated >= {:.6} (target FPR {}, authentic max FNR {})",
        t.authentic_below, t.manipulated_at_or_above, t.target_fpr, art.operating_point.authentic_max_fnr
    );
    println!(
        "calib metrics: AUROC {:.4}, ECE {:.4}, log-loss {:.4}, Brier {:.4}, FPR@thr {:.4}, TPR@thr {:.4}, FNR below authentic {:.4}, inconclusive {:.4}",
        m.auroc,
        m.ece,
        m.log_loss,
        m.brier,
        m.fpr_at_threshold,
        m.tpr_at_threshold,
        m.fnr_below_authentic,
        m.inconclusive_rate
    );
    println!("wrote {}", args.out.display());
    Ok(())
}

pub fn run_eval_doc(args: EvalDocArgs) -> ExitCode {
    match eval_doc(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor eval-doc: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn eval_doc(args: &EvalDocArgs) -> anyhow::Result<()> {
    let paths: Vec<PathBuf> = args
        .reports
        .iter()
        .map(|p| {
            if p.is_dir() {
                p.join("report.json")
            } else {
                p.clone()
            }
        })
        .collect();
    let md = candor_eval::evaluation_markdown_from_files(&paths, &args.command)
        .context("cannot read the reports")?;
    let mut reports = paths
        .iter()
        .map(EvalReport::load)
        .collect::<Result<Vec<_>, _>>()?;
    reports.sort_by(|a, b| {
        (a.set.name.as_str(), a.detector.as_str()).cmp(&(b.set.name.as_str(), b.detector.as_str()))
    });
    let mut sets = String::from("## Sets\n\n");
    for r in &reports {
        let s = &r.set;
        let _ = writeln!(
            sets,
            "- **`{}`** (`{}`{}): {} items ({} authentic, {} manipulated), {} scored, \
             abstention rate {:.2}%; detector `{}`.",
            s.name,
            s.path,
            s.split
                .map(|x| format!(", split `{x}`"))
                .unwrap_or_default(),
            r.n_items,
            s.counts.authentic,
            s.counts.manipulated,
            r.n_scored,
            r.abstention.rate * 100.0,
            r.detector
        );
        let mut notes = Vec::new();
        if r.detector.starts_with(EXTERNAL_PREFIX) {
            notes.push(format!(
                "**{EXTERNAL_BANNER}**: validates the metrics harness against published numbers; \
                 it measures nothing of Candor's."
            ));
        }
        notes.extend(report_notes(r));
        if !r.abstention.reasons.is_empty() {
            let reasons: Vec<String> = r
                .abstention
                .reasons
                .iter()
                .map(|(k, v)| format!("`{k}` {v}"))
                .collect();
            notes.push(format!("Abstentions and errors: {}.", reasons.join(", ")));
        }
        for n in notes {
            let _ = writeln!(sets, "  - {n}");
        }
    }
    sets.push('\n');
    let mut md = explain_na_doc(&md, &reports);
    // Provenance goes above the summary table.
    match md.find("| Set | Detector |") {
        Some(i) => md.insert_str(i, &sets),
        None => md.push_str(&sets),
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, md)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_split_is_deterministic_and_roughly_30_70() {
        let n = 10_000;
        let calib = (0..n)
            .filter(|i| hash_split(&format!("LA_E_{i}")) == Split::Calib)
            .count();
        assert!((2700..3300).contains(&calib), "{calib}");
        assert_eq!(hash_split("LA_E_1"), hash_split("LA_E_1"));
    }

    #[test]
    fn na_cells_say_why() {
        assert_eq!(
            explain_na_line("| s | d | 0 | 9 | n/a | n/a | n/a |\n", "n/a (one class)"),
            "| s | d | 0 | 9 | n/a (one class) | n/a (one class) | n/a (one class) |\n"
        );
        assert_eq!(explain_na_line("- n/a\n", "x"), "- n/a\n");
    }

    #[test]
    fn sanitize_keeps_names_safe() {
        assert_eq!(sanitize("a b/c"), "a_b_c");
        assert_eq!(sanitize(".."), "set..");
    }
}
