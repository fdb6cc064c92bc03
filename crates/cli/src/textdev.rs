//! `candor text-features` and `candor text-train`: how the text detector's
//! fusion head and calibration are made (see docs/models.md).
//!
//! 1. `text-features` runs the scoring language model over a labelled set
//!    (the `candor eval` manifest format) and writes each row's features,
//!    also for prefixes of the prose (for the minimum-length measurement);
//! 2. `text-train` fits the logistic fusion head on the `train` rows, the
//!    calibration on the `calib` rows (never `test`), measures the shortest
//!    prose length at which the false positive rate still holds on calib
//!    authentic rows, and writes `models/text/fusion-head.json` and
//!    `models/text/calibration.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use candor_core::Priority;
use candor_detectors::text::features::{self, DocStyle, FusionHead, FEATURES, HEAD_FORMAT};
use candor_detectors::text::{segment, TextConfig, TextScorer, LM_MODEL};
use candor_detectors::LinearHead;
use candor_eval::calibrate::{fit_calibration, round_sig, FitSpec, Method};
use candor_eval::logistic::{fit_logistic_signed, Logistic};
use candor_eval::manifest::{Manifest, Split};
use candor_eval::metrics::ScoredItem;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::args::AnalyzerArgs;

/// Prose-token prefix lengths measured for the minimum-length rule.
const PREFIXES: [usize; 7] = [24, 32, 48, 64, 96, 128, 192];
/// Calib human texts a prefix length needs before its FPR counts in the
/// minimum-length rule: one text moves an FPR measured on fewer than 100 by
/// more than a point, so a 1% target cannot be judged there (such lengths
/// are still reported).
const MIN_PREFIX_ROWS: usize = 100;

#[derive(Debug, Clone, Args)]
pub struct TextFeaturesArgs {
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,

    /// Labelled set (manifest JSONL/CSV as for `candor eval`) of text files.
    #[arg(long, env = "CANDOR_TEXT_FEATURES_SET", value_name = "MANIFEST")]
    pub set: PathBuf,

    /// Output JSONL, one row per manifest row.
    #[arg(long, env = "CANDOR_TEXT_FEATURES_OUT", value_name = "FILE")]
    pub out: PathBuf,

    /// Documents in flight at once (their windows share model batches).
    /// More raises throughput until the CPU is saturated.
    #[arg(long, env = "CANDOR_TEXT_FEATURES_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
}

#[derive(Debug, Clone, Args)]
pub struct TextTrainArgs {
    /// Features JSONL written by `candor text-features`.
    #[arg(long, env = "CANDOR_TEXT_TRAIN_FEATURES", value_name = "FILE")]
    pub features: PathBuf,

    /// Fusion head file to write.
    #[arg(
        long,
        env = "CANDOR_TEXT_TRAIN_HEAD_OUT",
        default_value = "models/text/fusion-head.json"
    )]
    pub head_out: PathBuf,

    /// Calibration artefact to write.
    #[arg(
        long,
        env = "CANDOR_TEXT_TRAIN_CALIBRATION_OUT",
        default_value = "models/text/calibration.json"
    )]
    pub calibration_out: PathBuf,

    #[command(flatten)]
    pub fit: crate::args::HeadFitArgs,

    /// Features the head uses (comma-separated names). The default leaves
    /// out `style.mattr`: in the project's own set it mostly separates the
    /// register of the human sources (technical documentation repeats its
    /// terms) from the generator, in the opposite direction to published
    /// findings on LLM text, so it would not transfer. It is still reported
    /// as a signal.
    #[arg(
        long,
        env = "CANDOR_TEXT_TRAIN_USE",
        value_delimiter = ',',
        default_value = "lm.mean_logprob,lm.mean_log_rank,lm.mean_entropy,lm.fast_detectgpt,lm.ppl_entropy_ratio,lm.sentence_logprob_std,style.sentence_length_cv"
    )]
    pub use_features: Vec<String>,

    /// Hold each weight to the direction its feature is published to move
    /// for machine text (`features::machine_direction`); a feature whose
    /// weight would flip is left out of the head. Costs some separation on
    /// the training generator (features cancelling each other fit its
    /// quirks) and transfers better to other generators (docs/text-detector.md).
    /// `false` = a free fit (the head before version 3).
    #[arg(
        long,
        env = "CANDOR_TEXT_TRAIN_SIGNED",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub signed: bool,

    /// Prose tokens below which the detector abstains; 0 = measure it: the
    /// shortest prefix length from which on the calib authentic false
    /// positive rate stays within twice the target.
    #[arg(long, env = "CANDOR_TEXT_TRAIN_MIN_PROSE_TOKENS", default_value_t = 0)]
    pub min_prose_tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FeatureRow {
    id: String,
    manipulated: bool,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    split: Option<Split>,
    tokens: usize,
    #[serde(default)]
    abstain: Option<String>,
    #[serde(default)]
    features: Option<Vec<f64>>,
    /// Features of the first N prose tokens, by N.
    #[serde(default)]
    prefix: BTreeMap<usize, Vec<f64>>,
}

pub async fn run_features(args: TextFeaturesArgs) -> ExitCode {
    match features_cmd(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor text-features: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn run_train(args: TextTrainArgs) -> ExitCode {
    match train_cmd(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor text-train: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn prefix_features(
    text: &str,
    a: &candor_detectors::text::TextAnalysis,
    n: usize,
) -> Option<Vec<f64>> {
    if a.tokens.len() < n {
        return None;
    }
    let toks = &a.tokens[..n];
    let mut ids: Vec<usize> = toks.iter().map(|t| t.sentence).collect();
    ids.dedup();
    let words: Vec<String> = ids
        .iter()
        .flat_map(|&s| segment::words(&text[a.sentences[s].bytes.clone()]))
        .collect();
    let style = DocStyle {
        sentence_words: ids.iter().map(|&s| a.sentences[s].words).collect(),
        mattr: segment::mattr(&words, 50),
    };
    features::features(toks, &style).map(|f| f.to_vec())
}

async fn features_cmd(args: TextFeaturesArgs) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.set)
        .with_context(|| format!("cannot load labelled set {}", args.set.display()))?;
    let mut ec = args.analyzer.engine_config();
    ec.models = Some(vec![LM_MODEL.to_string()]);
    ec.required = vec![LM_MODEL.to_string()];
    let engine = candor_engine::Engine::load(ec).context("cannot load the language model")?;
    let lm = engine.require(LM_MODEL)?;
    let scorer = Arc::new(TextScorer::new(lm, TextConfig::default())?);
    let limits = args.analyzer.limits();
    let base = args.set.parent().map(Path::to_path_buf).unwrap_or_default();
    let started = Instant::now();
    let total = manifest.items.len();
    let rows = crate::rows::map_bounded(
        manifest.items.clone(),
        args.concurrency,
        "text-features",
        100,
        |_, item| {
            let scorer = Arc::clone(&scorer);
            let limits = limits.clone();
            let id = item
                .path
                .strip_prefix(&base)
                .unwrap_or(&item.path)
                .display()
                .to_string();
            async move {
                let doc = crate::rows::decode_file(&item.path, &limits).await?;
                let candor_media::Decoded::Document(doc) = doc else {
                    bail!("{} is not a document", item.path.display());
                };
                let a = scorer.analyze(&doc.text, Priority::Bulk, None).await?;
                let prefix = PREFIXES
                    .iter()
                    .filter_map(|&n| prefix_features(&doc.text, &a, n).map(|f| (n, f)))
                    .collect();
                anyhow::Ok(FeatureRow {
                    id,
                    manipulated: item.label.is_positive(),
                    group: item.group.clone(),
                    split: item.split,
                    tokens: a.tokens.len(),
                    abstain: a.abstain.as_ref().map(|x| x.reason.clone()),
                    features: a.features.map(|f| f.to_vec()),
                    prefix,
                })
            }
        },
    )
    .await?;
    crate::rows::write_jsonl(&args.out, &rows)?;
    println!(
        "text-features: {total} rows in {:.1} s -> {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

fn train_cmd(args: TextTrainArgs) -> anyhow::Result<()> {
    let (text, rows): (String, Vec<FeatureRow>) = crate::rows::read_jsonl(&args.features)?;
    let usable = |s: Split| {
        rows.iter()
            .filter(move |r| r.split == Some(s) && r.features.is_some())
    };
    let train: Vec<&FeatureRow> = usable(Split::Train).collect();
    if train.is_empty() {
        bail!("no scored rows in split `train`");
    }
    let cols: Vec<usize> = args
        .use_features
        .iter()
        .map(|f| {
            FEATURES
                .iter()
                .position(|k| k == f)
                .ok_or_else(|| anyhow::anyhow!("unknown feature `{f}` (known: {FEATURES:?})"))
        })
        .collect::<anyhow::Result<_>>()?;
    let x: Vec<Vec<f64>> = train
        .iter()
        .map(|r| {
            let f = r.features.as_deref().unwrap_or_default();
            cols.iter()
                .map(|&c| f.get(c).copied().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    let y: Vec<bool> = train.iter().map(|r| r.manipulated).collect();
    let signs: Vec<f64> = cols
        .iter()
        .map(|&c| {
            if args.signed {
                features::machine_direction(FEATURES[c])
            } else {
                0.0
            }
        })
        .collect();
    let (fit, dropped) =
        fit_logistic_signed(&x, &y, args.fit.l2, &signs).context("fitting the fusion head")?;
    for &j in &dropped {
        println!(
            "left out {}: its weight would run against the published direction",
            FEATURES[cols[j]]
        );
    }
    // The head keeps only the features it weighs.
    let keep: Vec<usize> = (0..cols.len()).filter(|j| !dropped.contains(j)).collect();
    let pick = |v: &[f64]| keep.iter().map(|&j| v[j]).collect::<Vec<f64>>();
    let fit = Logistic {
        mean: pick(&fit.mean),
        scale: pick(&fit.scale),
        weights: pick(&fit.weights),
        bias: fit.bias,
        iterations: fit.iterations,
    };
    let dropped_names: Vec<&str> = dropped.iter().map(|&j| FEATURES[cols[j]]).collect();
    let cols: Vec<usize> = keep.iter().map(|&j| cols[j]).collect();
    let features_sha = candor_core::sha256_hex(text.as_bytes());
    let mut head = FusionHead {
        linear: LinearHead::from_fit(
            HEAD_FORMAT,
            "text-fusion",
            &args.fit.artefact_version,
            cols.iter().map(|&c| FEATURES[c].to_string()).collect(),
            &fit,
            serde_json::json!({
                "features_file": args.features.file_name().map(|n| n.to_string_lossy().into_owned()),
                "features_sha256": features_sha,
                "split": "train",
                "n_machine": y.iter().filter(|&&v| v).count(),
                "n_human": y.iter().filter(|&&v| !v).count(),
                "l2": args.fit.l2,
                "method": if args.signed {
                    "logistic regression, standardised features, class-balanced, Newton; weights held to the published direction of each feature (active set)"
                } else {
                    "logistic regression, standardised features, class-balanced, Newton"
                },
                "candidates": args.use_features,
                "left_out_against_direction": dropped_names,
                "created_by": std::env::args().collect::<Vec<_>>().join(" "),
            }),
        ),
        min_prose_tokens: 0,
    };
    let as8 = |v: &[f64]| -> [f64; 8] {
        let mut a = [0.0; 8];
        a.copy_from_slice(&v[..8]);
        a
    };
    let items: Vec<ScoredItem> = usable(Split::Calib)
        .map(|r| {
            let raw = head.raw(&as8(r.features.as_deref().unwrap_or(&[0.0; 8])));
            ScoredItem::scored(&r.id, r.manipulated, raw).with_split(Split::Calib)
        })
        .collect();
    let art = fit_calibration(
        &items,
        Split::Calib,
        &FitSpec {
            id: "calibration/text".into(),
            version: args.fit.artefact_version.clone(),
            detector: "text".into(),
            set: args
                .features
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            created_by: std::env::args().collect::<Vec<_>>().join(" "),
            method: Method::Platt,
            operating_point: args.fit.operating_point.spec(),
        },
    )
    .context("fitting the calibration")?;

    // Minimum length: FPR of calib authentic rows scored on their first N
    // prose tokens only.
    let thr = art.thresholds.manipulated_at_or_above;
    println!("prefix  calib-authentic  FPR     calib-machine  TPR");
    let mut table = Vec::new();
    for &n in &PREFIXES {
        let (mut fp, mut na, mut tp, mut nm) = (0usize, 0usize, 0usize, 0usize);
        for r in usable(Split::Calib) {
            if let Some(f) = r.prefix.get(&n) {
                let p = art.apply(head.raw(&as8(f)));
                if r.manipulated {
                    nm += 1;
                    tp += usize::from(p >= thr);
                } else {
                    na += 1;
                    fp += usize::from(p >= thr);
                }
            }
        }
        let fpr = fp as f64 / na.max(1) as f64;
        println!(
            "{n:>6}  {na:>15}  {fpr:.4}  {nm:>13}  {:.4}",
            tp as f64 / nm.max(1) as f64
        );
        table.push((n, fpr, na));
    }
    // The bound "holds" at a length when the measured FPR is within twice
    // the target, or not significantly above the target (one-sided 95%
    // Wilson lower bound at or below it). Lengths with too few calib human
    // texts to measure it do not count.
    let bound = 2.0 * args.fit.operating_point.target_fpr;
    let holds = |f: f64, na: usize| {
        na < MIN_PREFIX_ROWS
            || f <= bound
            || wilson_lower(f, na) <= args.fit.operating_point.target_fpr
    };
    let measured = (0..table.len())
        .find(|&i| table[i..].iter().all(|&(_, f, na)| holds(f, na)))
        .map(|i| table[i].0)
        .unwrap_or(*PREFIXES.last().unwrap_or(&192));
    head.min_prose_tokens = if args.min_prose_tokens > 0 {
        args.min_prose_tokens
    } else {
        measured
    };
    if let serde_json::Value::Object(m) = &mut head.trained_on {
        m.insert(
            "min_prose_tokens_rule".into(),
            serde_json::json!(format!(
                "shortest prose-token prefix from which, at every longer prefix reached by at \
                 least {MIN_PREFIX_ROWS} calib authentic texts, the calib authentic FPR is <= \
                 {bound} (2 x target) or its one-sided 95% Wilson lower bound is <= the target; \
                 measured {measured}"
            )),
        );
        m.insert(
            "prefix_fpr_on_calib_authentic".into(),
            serde_json::json!(table
                .iter()
                .map(|(n, f, na)| serde_json::json!({"tokens": n, "fpr": round_sig(*f), "n": na}))
                .collect::<Vec<_>>()),
        );
    }
    head.check().map_err(|e| anyhow::anyhow!(e))?;
    for p in [&args.head_out, &args.calibration_out] {
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d)?;
        }
    }
    std::fs::write(&args.head_out, serde_json::to_string_pretty(&head)? + "\n")?;
    art.save(&args.calibration_out)?;
    println!(
        "head: {} train rows; weights {:?}",
        train.len(),
        head.features
            .iter()
            .zip(&head.weights)
            .map(|(f, w)| format!("{f}={w:+.3}"))
            .collect::<Vec<_>>()
    );
    let t = &art.thresholds;
    let m = &art.metrics_on_calib;
    println!(
        "calibration on {} calib rows: AUROC {:.4}, thresholds authentic < {:.4}, manipulated >= {:.4} \
         (FPR {:.4}, TPR {:.4}); min prose tokens {}",
        items.len(),
        m.auroc,
        t.authentic_below,
        t.manipulated_at_or_above,
        m.fpr_at_threshold,
        m.tpr_at_threshold,
        head.min_prose_tokens
    );
    println!(
        "wrote {} and {}",
        args.head_out.display(),
        args.calibration_out.display()
    );
    Ok(())
}

/// One-sided 95% Wilson score lower bound of a proportion `p` out of `n`.
fn wilson_lower(p: f64, n: usize) -> f64 {
    let z = 1.645f64;
    let n = n as f64;
    let denom = 1.0 + z * z / n;
    let centre = p + z * z / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    ((centre - spread) / denom).max(0.0)
}
