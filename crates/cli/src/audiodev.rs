//! `candor audio-features`: what the audio detector's head is trained on
//! (docs/audio-detector.md). It decodes every file of a labelled set, runs
//! the VAD, the speech encoder, the anti-spoofing model and the forensics,
//! and writes each file's per-segment features (JSONL) and the segments'
//! encoder statistics (a binary side file); `scripts/audio/train_audio_head.py`
//! fits the head and `candor calibrate` the segment and file calibrations.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use candor_core::Priority;
use candor_detectors::audio::{AudioConfig, AudioScorer, ENCODER_DIM, ENCODER_MODEL, LCNN_MODEL};
use candor_detectors::VAD_MODEL;
use candor_eval::manifest::{Manifest, Split};
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

    /// Where the segments' speech-encoder statistics go (little-endian f32,
    /// one block of the encoder's statistics per segment, segments in the
    /// order of the JSONL rows). Default: OUT with the extension `.enc.f32`.
    #[arg(long, env = "CANDOR_AUDIO_FEATURES_ENCODER_OUT", value_name = "FILE")]
    pub encoder_out: Option<PathBuf>,
}

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

pub async fn run_features(args: AudioFeaturesArgs) -> ExitCode {
    match features_cmd(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor audio-features: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn features_cmd(args: AudioFeaturesArgs) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.set)
        .with_context(|| format!("cannot load labelled set {}", args.set.display()))?;
    let mut ec = args.analyzer.engine_config();
    let ids: Vec<String> = [LCNN_MODEL, ENCODER_MODEL, VAD_MODEL]
        .map(String::from)
        .to_vec();
    ec.models = Some(ids.clone());
    ec.required = ids;
    let engine = candor_engine::Engine::load(ec).context("cannot load the audio models")?;
    let scorer = Arc::new(AudioScorer::new(
        Some(engine.require(LCNN_MODEL)?),
        Some(engine.require(ENCODER_MODEL)?),
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
                let emb: Vec<f32> = a
                    .segments
                    .iter()
                    .flat_map(|w| {
                        let mut e = w.emb.clone();
                        e.resize(ENCODER_DIM, f32::NAN);
                        e
                    })
                    .collect();
                let row = FeatureRow {
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
                };
                anyhow::Ok((row, emb))
            }
        },
    )
    .await?;
    {
        use std::io::Write;
        let path = args
            .encoder_out
            .clone()
            .unwrap_or_else(|| args.out.with_extension("enc.f32"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for (_, emb) in &rows {
            for v in emb {
                f.write_all(&v.to_le_bytes())?;
            }
        }
        f.flush()?;
        println!(
            "audio-features: encoder statistics ({ENCODER_DIM} values per segment) -> {}",
            path.display()
        );
    }
    let rows: Vec<FeatureRow> = rows.into_iter().map(|r| r.0).collect();
    crate::rows::write_jsonl(&args.out, &rows)?;
    println!(
        "audio-features: {total} rows in {:.1} s -> {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
