//! `candor audio-features` and `candor audio-train`: how the audio
//! detector's fusion head and calibrations are made (docs/audio-detector.md).
//!
//! 1. `audio-features` decodes every file of a labelled set, runs the VAD,
//!    the anti-spoofing model and the forensics, and writes each file's
//!    per-segment features;
//! 2. `audio-train` fits the logistic fusion head on the segments of the
//!    `train` files, the segment calibration on the segments of the `calib`
//!    files and the file calibration on the `calib` files (never `test`),
//!    and writes `models/audio/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use candor_core::Priority;
use candor_detectors::audio::{
    file_raw, AudioConfig, AudioHead, AudioScorer, FEATURES, HEAD_FORMAT, LCNN_MODEL,
};
use candor_detectors::{LinearHead, VAD_MODEL};
use candor_eval::calibrate::{fit_calibration, CalibrationArtefact, FitSpec, Method};
use candor_eval::logistic::{fit_logistic, impute_column_means};
use candor_eval::manifest::{Manifest, Split};
use candor_eval::metrics::ScoredItem;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::args::AnalyzerArgs;

#[derive(Debug, Clone, Args)]
pub struct AudioFeaturesArgs {
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,

    /// Labelled set (manifest JSONL/CSV as for `candor eval`) of audio files.
    #[arg(long, env = "CANDOR_AUDIO_FEATURES_SET", value_name = "MANIFEST")]
    pub set: PathBuf,

    /// Output JSONL, one row per manifest row.
    #[arg(long, env = "CANDOR_AUDIO_FEATURES_OUT", value_name = "FILE")]
    pub out: PathBuf,

    /// Files in flight at once (their segments share model batches). More
    /// raises throughput until the CPU is saturated, and holds more decoded
    /// audio in memory.
    #[arg(long, env = "CANDOR_AUDIO_FEATURES_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,

    /// Segments with less speech than this (s) are not written. Keep it at
    /// or below the head's `min_window_speech_s`.
    #[arg(
        long,
        env = "CANDOR_AUDIO_FEATURES_MIN_WINDOW_SPEECH",
        default_value_t = 1.0
    )]
    pub min_window_speech_s: f64,
}

#[derive(Debug, Clone, Args)]
pub struct AudioTrainArgs {
    /// Features JSONL written by `candor audio-features`.
    #[arg(long, env = "CANDOR_AUDIO_TRAIN_FEATURES", value_name = "FILE")]
    pub features: PathBuf,

    /// Folder the head and the two calibrations are written to.
    #[arg(
        long,
        env = "CANDOR_AUDIO_TRAIN_OUT_DIR",
        default_value = "models/audio"
    )]
    pub out_dir: PathBuf,

    #[command(flatten)]
    pub fit: crate::args::HeadFitArgs,

    /// Features the head uses (comma-separated names from the detector's
    /// feature list).
    #[arg(
        long,
        env = "CANDOR_AUDIO_TRAIN_USE",
        value_delimiter = ',',
        default_value = "lcnn.logit,pitch.f0_std_semitones,pitch.jitter,pitch.periodicity,spectrum.cutoff_hz,spectrum.high_band_flatness,spectrum.transient_sharpness,modulation.syllabic_share"
    )]
    pub use_features: Vec<String>,

    /// The file score is the mean of this top share of its segment scores.
    /// Higher = a few fake segments in a long real file move it less.
    #[arg(long, env = "CANDOR_AUDIO_TRAIN_TOP_FRACTION", default_value_t = 0.25)]
    pub file_top_fraction: f64,

    /// Less speech than this (s) and the detector abstains. Lower scores
    /// shorter clips with a less reliable false positive rate.
    #[arg(long, env = "CANDOR_AUDIO_TRAIN_MIN_SPEECH", default_value_t = 1.5)]
    pub min_speech_s: f64,

    /// A segment is scored when at least this much of its 2 s is speech.
    #[arg(
        long,
        env = "CANDOR_AUDIO_TRAIN_MIN_WINDOW_SPEECH",
        default_value_t = 1.0
    )]
    pub min_window_speech_s: f64,

    /// Which rows the head is fitted on. `calib-half` (default): one half of
    /// the calib files (by a hash of the file id), the calibrations on the
    /// other half, so the head learns how far to trust the model's log-odds
    /// on audio the model never trained on (its `train` log-odds are
    /// over-confident). `train`: the train files, calibrations on all of
    /// calib (more calibration data, over-trusts the model).
    #[arg(long, env = "CANDOR_AUDIO_TRAIN_HEAD_ON", default_value = "calib-half", value_parser = ["calib-half", "train"])]
    pub head_on: String,
}

use crate::rows::in_head_half;

/// One segment in a features file (`null` = not measurable).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SegRow {
    start_s: f64,
    end_s: f64,
    speech_s: f64,
    x: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FeatureRow {
    id: String,
    manipulated: bool,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    split: Option<Split>,
    duration_s: f64,
    speech_s: f64,
    #[serde(default)]
    snr_db: Option<f64>,
    segments: Vec<SegRow>,
}

impl SegRow {
    fn x8(&self) -> [f64; 8] {
        let mut a = [f64::NAN; 8];
        for (v, o) in a.iter_mut().zip(&self.x) {
            *v = o.unwrap_or(f64::NAN);
        }
        a
    }
}

pub async fn run_features(args: AudioFeaturesArgs) -> ExitCode {
    match features_cmd(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor audio-features: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn run_train(args: AudioTrainArgs) -> ExitCode {
    match train_cmd(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor audio-train: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn features_cmd(args: AudioFeaturesArgs) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.set)
        .with_context(|| format!("cannot load labelled set {}", args.set.display()))?;
    let mut ec = args.analyzer.engine_config();
    ec.models = Some(vec![LCNN_MODEL.to_string(), VAD_MODEL.to_string()]);
    ec.required = vec![LCNN_MODEL.to_string(), VAD_MODEL.to_string()];
    let engine = candor_engine::Engine::load(ec).context("cannot load the audio models")?;
    let scorer = Arc::new(AudioScorer::new(
        engine.require(LCNN_MODEL)?,
        Some(engine.require(VAD_MODEL)?),
        AudioConfig {
            picture: false,
            ..AudioConfig::default()
        },
    ));
    let limits = args.analyzer.limits();
    let base = args.set.parent().map(Path::to_path_buf).unwrap_or_default();
    let started = Instant::now();
    let total = manifest.items.len();
    let min_ws = args.min_window_speech_s;
    let rows = crate::rows::map_bounded(
        manifest.items.clone(),
        args.concurrency,
        "audio-features",
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
                let dec = crate::rows::decode_file(&item.path, &limits).await?;
                let candor_media::Decoded::Audio(audio) = dec else {
                    bail!("{} is not audio", item.path.display());
                };
                let a = scorer
                    .analyze(&audio.samples, None, min_ws, Priority::Bulk, None)
                    .await?;
                anyhow::Ok(FeatureRow {
                    id,
                    manipulated: item.label.is_positive(),
                    group: item.group.clone(),
                    split: item.split,
                    duration_s: a.duration_s,
                    speech_s: a.speech_seconds,
                    snr_db: a.snr_db,
                    segments: a
                        .segments
                        .iter()
                        .map(|w| SegRow {
                            start_s: w.start_s,
                            end_s: w.end_s,
                            speech_s: w.speech_s,
                            x: w.x.iter().map(|v| v.is_finite().then_some(*v)).collect(),
                        })
                        .collect(),
                })
            }
        },
    )
    .await?;
    crate::rows::write_jsonl(&args.out, &rows)?;
    println!(
        "audio-features: {total} rows in {:.1} s -> {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

fn train_cmd(args: AudioTrainArgs) -> anyhow::Result<()> {
    let (text, rows): (String, Vec<FeatureRow>) = crate::rows::read_jsonl(&args.features)?;
    let usable = |s: Split| {
        let (min_sp, min_ws) = (args.min_speech_s, args.min_window_speech_s);
        rows.iter()
            .filter(move |r| r.split == Some(s) && r.speech_s >= min_sp)
            .map(move |r| {
                let segs: Vec<&SegRow> = r
                    .segments
                    .iter()
                    .filter(|w| w.speech_s >= min_ws.min(w.end_s - w.start_s))
                    .collect();
                (r, segs)
            })
            .filter(|(_, segs)| !segs.is_empty())
    };
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

    // Training segments; missing values imputed with the column mean (what
    // the head does at run time: a missing feature contributes nothing).
    let mut x: Vec<Vec<f64>> = Vec::new();
    let mut y: Vec<bool> = Vec::new();
    let (mut n_files_pos, mut n_files_neg) = (0, 0);
    let head_rows: Vec<_> = if args.head_on == "train" {
        usable(Split::Train).collect()
    } else {
        usable(Split::Calib)
            .filter(|(r, _)| in_head_half(&r.id))
            .collect()
    };
    let calib_rows: Vec<_> = if args.head_on == "train" {
        usable(Split::Calib).collect()
    } else {
        usable(Split::Calib)
            .filter(|(r, _)| !in_head_half(&r.id))
            .collect()
    };
    for (r, segs) in head_rows {
        if r.manipulated {
            n_files_pos += 1;
        } else {
            n_files_neg += 1;
        }
        for w in segs {
            let v = w.x8();
            x.push(cols.iter().map(|&c| v[c]).collect());
            y.push(r.manipulated);
        }
    }
    if x.is_empty() {
        bail!("no usable segments to fit the head on ({})", args.head_on);
    }
    impute_column_means(&mut x);
    let fit = fit_logistic(&x, &y, args.fit.l2).context("fitting the fusion head")?;
    let created_by = std::env::args().collect::<Vec<_>>().join(" ");
    let head = AudioHead {
        linear: LinearHead::from_fit(
            HEAD_FORMAT,
            "audio-fusion",
            &args.fit.artefact_version,
            cols.iter().map(|&c| FEATURES[c].to_string()).collect(),
            &fit,
            serde_json::json!({
                "features_file": args.features.file_name().map(|n| n.to_string_lossy().into_owned()),
                "features_sha256": candor_core::sha256_hex(text.as_bytes()),
                "rows": if args.head_on == "train" { "split train" } else { "half of the calib files, chosen by sha256 of the file id (the calibrations use the other half)" },
                "segments_manipulated": y.iter().filter(|&&v| v).count(),
                "segments_authentic": y.iter().filter(|&&v| !v).count(),
                "files_manipulated": n_files_pos,
                "files_authentic": n_files_neg,
                "l2": args.fit.l2,
                "method": "logistic regression on segments, standardised features, class-balanced, Newton",
                "created_by": created_by,
            }),
        ),
        file_top_fraction: args.file_top_fraction,
        min_speech_s: args.min_speech_s,
        min_window_speech_s: args.min_window_speech_s,
    };
    head.check().map_err(|e| anyhow::anyhow!(e))?;

    let set_name = args
        .features
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let spec = |id: &str, detector: &str| FitSpec {
        id: id.into(),
        version: args.fit.artefact_version.clone(),
        detector: detector.into(),
        set: set_name.clone(),
        created_by: std::env::args().collect::<Vec<_>>().join(" "),
        method: Method::Platt,
        operating_point: args.fit.operating_point.spec(),
    };
    let mut seg_items = Vec::new();
    let mut file_items = Vec::new();
    for (r, segs) in calib_rows {
        let raws: Vec<f64> = segs.iter().map(|w| head.raw(&w.x8())).collect();
        for (k, raw) in raws.iter().enumerate() {
            seg_items.push(
                ScoredItem::scored(format!("{}#{k}", r.id), r.manipulated, *raw)
                    .with_split(Split::Calib),
            );
        }
        if let Some(f) = file_raw(&raws, head.file_top_fraction) {
            file_items.push(ScoredItem::scored(&r.id, r.manipulated, f).with_split(Split::Calib));
        }
    }
    let seg_cal = fit_calibration(
        &seg_items,
        Split::Calib,
        &spec("calibration/audio-segment", "audio-segment"),
    )
    .context("fitting the segment calibration")?;
    let file_cal = fit_calibration(
        &file_items,
        Split::Calib,
        &spec("calibration/audio", "audio"),
    )
    .context("fitting the file calibration")?;

    std::fs::create_dir_all(&args.out_dir)?;
    let head_path = args.out_dir.join("fusion-head.json");
    std::fs::write(&head_path, serde_json::to_string_pretty(&head)? + "\n")?;
    file_cal.save(args.out_dir.join("calibration.json"))?;
    seg_cal.save(args.out_dir.join("calibration-segment.json"))?;

    println!(
        "head: {} train segments ({} files); weights {:?}",
        y.len(),
        n_files_pos + n_files_neg,
        head.features
            .iter()
            .zip(&head.weights)
            .map(|(f, w)| format!("{f}={w:+.3}"))
            .collect::<Vec<_>>()
    );
    let show = |what: &str, n: usize, c: &CalibrationArtefact| {
        let (t, m) = (&c.thresholds, &c.metrics_on_calib);
        println!(
            "{what} calibration on {n} calib items: AUROC {:.4}, thresholds authentic < {:.4}, \
             manipulated >= {:.4} (FPR {:.4}, TPR {:.4})",
            m.auroc,
            t.authentic_below,
            t.manipulated_at_or_above,
            m.fpr_at_threshold,
            m.tpr_at_threshold
        );
    };
    show("segment", seg_items.len(), &seg_cal);
    show("file", file_items.len(), &file_cal);
    println!("wrote {}", args.out_dir.display());
    Ok(())
}
