//! `candor image-features` and `candor image-train`: how the image
//! detector's fusion head and calibration are made (docs/image-detector.md).
//!
//! 1. `image-features` decodes every file of a labelled set and writes its
//!    forensic measures and the forgery CNN's score;
//! 2. `image-train` fits the logistic fusion head on the `train` rows (or on
//!    one half of `calib`) and the Platt calibration with its 1% FPR
//!    operating point on the `calib` rows (the other half), never `test`,
//!    and writes `models/image/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use candor_core::Priority;
use candor_detectors::image::{
    cnn, ImageConfig, ImageDetector, ImageHead, FEATURES, HEAD_FORMAT, N_FEATURES,
};
use candor_detectors::LinearHead;
use candor_eval::calibrate::{fit_calibration, FitSpec, Method};
use candor_eval::logistic::{fit_logistic, impute_column_means};
use candor_eval::manifest::{Manifest, Split};
use candor_eval::metrics::ScoredItem;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::args::AnalyzerArgs;

#[derive(Debug, Clone, Args)]
pub struct ImageFeaturesArgs {
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,

    /// Labelled set (manifest JSONL/CSV as for `candor eval`) of images.
    #[arg(long, env = "CANDOR_IMAGE_FEATURES_SET", value_name = "MANIFEST")]
    pub set: PathBuf,

    /// Output JSONL, one row per manifest row.
    #[arg(long, env = "CANDOR_IMAGE_FEATURES_OUT", value_name = "FILE")]
    pub out: PathBuf,

    /// Images analysed at once. Up to the number of cores raises
    /// throughput; each holds one decoded image in memory.
    #[arg(long, env = "CANDOR_IMAGE_FEATURES_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ImageTrainArgs {
    /// Features JSONL written by `candor image-features`.
    #[arg(long, env = "CANDOR_IMAGE_TRAIN_FEATURES", value_name = "FILE")]
    pub features: PathBuf,

    /// Folder the head and the calibration are written to.
    #[arg(
        long,
        env = "CANDOR_IMAGE_TRAIN_OUT_DIR",
        default_value = "models/image"
    )]
    pub out_dir: PathBuf,

    #[command(flatten)]
    pub fit: crate::args::HeadFitArgs,

    /// Measures the head uses (comma-separated names from the forensic
    /// feature list).
    #[arg(
        long,
        env = "CANDOR_IMAGE_TRAIN_USE",
        value_delimiter = ',',
        default_value = "ela_spread,jpeg_double,noise_spread,npr_asym,spectrum_peak,spectrum_hf,forgery_cnn"
    )]
    pub use_features: Vec<String>,

    /// Which rows the head is fitted on. `train` (default): the train
    /// images, the calibration on all of calib (the most authentic images
    /// for the 1% FPR threshold; the forgery CNN's AUROC on its own training
    /// images is only a little above calib, 0.74 vs 0.70, so the head barely
    /// over-trusts it). `calib-half`: one half of the calib images (by a
    /// hash of the id), the calibration on the other half (no over-trust,
    /// half the calibration data).
    #[arg(long, env = "CANDOR_IMAGE_TRAIN_HEAD_ON", default_value = "train", value_parser = ["calib-half", "train"])]
    pub head_on: String,
}

/// One image's measures (`null` = not measurable).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FeatureRow {
    id: String,
    manipulated: bool,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    split: Option<Split>,
    format: String,
    x: Vec<Option<f64>>,
}

impl FeatureRow {
    fn x(&self) -> [f64; N_FEATURES] {
        let mut a = [f64::NAN; N_FEATURES];
        for (v, o) in a.iter_mut().zip(&self.x) {
            *v = o.unwrap_or(f64::NAN);
        }
        a
    }
}

pub async fn run_features(args: ImageFeaturesArgs) -> ExitCode {
    match features_cmd(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor image-features: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn run_train(args: ImageTrainArgs) -> ExitCode {
    match train_cmd(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor image-train: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn features_cmd(args: ImageFeaturesArgs) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.set)
        .with_context(|| format!("cannot load labelled set {}", args.set.display()))?;
    let cfg = args.analyzer.analyzer_config();
    let mut ec = args.analyzer.engine_config();
    ec.models = Some(vec![cnn::MODEL.to_string()]);
    ec.required = vec![cnn::MODEL.to_string()];
    let engine = candor_engine::Engine::load(ec).context("cannot load the forgery CNN")?;
    let detector = Arc::new(ImageDetector::measures_only(
        ImageConfig {
            picture: false,
            ..cfg.image
        },
        Some(engine.require(cnn::MODEL)?),
    ));
    let limits = args.analyzer.limits();
    let base = args.set.parent().map(Path::to_path_buf).unwrap_or_default();
    let started = Instant::now();
    let total = manifest.items.len();
    let rows = crate::rows::map_bounded(
        manifest.items.clone(),
        args.concurrency,
        "image-features",
        100,
        |_, item| {
            let detector = Arc::clone(&detector);
            let limits = limits.clone();
            let id = item
                .path
                .strip_prefix(&base)
                .unwrap_or(&item.path)
                .display()
                .to_string();
            async move {
                let dec = crate::rows::decode_file(&item.path, &limits).await?;
                let candor_media::Decoded::Image(img) = dec else {
                    bail!("{} is not an image", item.path.display());
                };
                let format = img.format.to_string();
                let a = tokio::task::spawn_blocking(move || {
                    detector.analyze_pixels(&img, Priority::Bulk, None)
                })
                .await?
                .map_err(|e| anyhow::anyhow!(e))?;
                anyhow::Ok(FeatureRow {
                    id,
                    manipulated: item.label.is_positive(),
                    group: item.group.clone(),
                    split: item.split,
                    format,
                    x: a.x.iter().map(|v| v.is_finite().then_some(*v)).collect(),
                })
            }
        },
    )
    .await?;
    crate::rows::write_jsonl(&args.out, &rows)?;
    println!(
        "image-features: {total} rows in {:.1} s -> {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

fn train_cmd(args: ImageTrainArgs) -> anyhow::Result<()> {
    let (text, rows): (String, Vec<FeatureRow>) = crate::rows::read_jsonl(&args.features)?;
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
    let calib_half = args.head_on == "calib-half";
    let in_split = |r: &&FeatureRow, s: Split| r.split == Some(s);
    let train: Vec<&FeatureRow> = rows
        .iter()
        .filter(|r| {
            if calib_half {
                in_split(r, Split::Calib) && crate::rows::in_head_half(&r.id)
            } else {
                in_split(r, Split::Train)
            }
        })
        .collect();
    let calib: Vec<&FeatureRow> = rows
        .iter()
        .filter(|r| in_split(r, Split::Calib) && !(calib_half && crate::rows::in_head_half(&r.id)))
        .collect();
    if train.is_empty() || calib.is_empty() {
        bail!(
            "no rows to fit the head or the calibration on in {}",
            args.features.display()
        );
    }
    // Missing values imputed with the column mean of the measured rows
    // (what the head does at run time: a missing measure contributes 0).
    let mut x: Vec<Vec<f64>> = train
        .iter()
        .map(|r| {
            let v = r.x();
            cols.iter().map(|&c| v[c]).collect()
        })
        .collect();
    let y: Vec<bool> = train.iter().map(|r| r.manipulated).collect();
    impute_column_means(&mut x);
    let fit = fit_logistic(&x, &y, args.fit.l2).context("fitting the fusion head")?;
    let created_by = std::env::args().collect::<Vec<_>>().join(" ");
    let head = ImageHead(LinearHead::from_fit(
        HEAD_FORMAT,
        "image-fusion",
        &args.fit.artefact_version,
        cols.iter().map(|&c| FEATURES[c].to_string()).collect(),
        &fit,
        serde_json::json!({
            "features_file": args.features.file_name().map(|n| n.to_string_lossy().into_owned()),
            "features_sha256": candor_core::sha256_hex(text.as_bytes()),
            "rows": if calib_half { "half of the calib images, chosen by sha256 of the id (the calibration uses the other half)" } else { "split train" },
            "manipulated": y.iter().filter(|&&v| v).count(),
            "authentic": y.iter().filter(|&&v| !v).count(),
            "l2": args.fit.l2,
            "method": "logistic regression, standardised features, class-balanced, Newton",
            "created_by": created_by,
        }),
    ));
    head.check(HEAD_FORMAT, &FEATURES)
        .map_err(|e| anyhow::anyhow!(e))?;

    let items: Vec<ScoredItem> = calib
        .iter()
        .map(|r| {
            ScoredItem::scored(&r.id, r.manipulated, head.raw(&r.x())).with_split(Split::Calib)
        })
        .collect();
    let spec = FitSpec {
        id: "calibration/image".into(),
        version: args.fit.artefact_version.clone(),
        detector: "image".into(),
        set: args
            .features
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        created_by: std::env::args().collect::<Vec<_>>().join(" "),
        method: Method::Platt,
        operating_point: args.fit.operating_point.spec(),
    };
    let cal = fit_calibration(&items, Split::Calib, &spec).context("fitting the calibration")?;

    std::fs::create_dir_all(&args.out_dir)?;
    std::fs::write(
        args.out_dir.join("fusion-head.json"),
        serde_json::to_string_pretty(&head)? + "\n",
    )?;
    cal.save(args.out_dir.join("calibration.json"))?;
    println!(
        "head: {} train images; weights {:?}",
        y.len(),
        head.features
            .iter()
            .zip(&head.weights)
            .map(|(f, w)| format!("{f}={w:+.3}"))
            .collect::<Vec<_>>()
    );
    let (t, m) = (&cal.thresholds, &cal.metrics_on_calib);
    println!(
        "calibration on {} calib images: AUROC {:.4}, thresholds authentic < {:.4}, \
         manipulated >= {:.4} (FPR {:.4}, TPR {:.4})",
        items.len(),
        m.auroc,
        t.authentic_below,
        t.manipulated_at_or_above,
        m.fpr_at_threshold,
        m.tpr_at_threshold
    );
    println!("wrote {}", args.out_dir.display());
    Ok(())
}
