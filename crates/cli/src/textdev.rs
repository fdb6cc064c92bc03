//! `candor text-features`: the text detector's own features of a labelled
//! set, the training input of its head (docs/text-detector.md).
//!
//! It runs the scoring language model over each row (the `candor eval`
//! manifest format) as the detector does, and writes the zero-shot features
//! (also for prefixes of the prose, for the minimum-length measurement) and,
//! with `--hidden-out`, the mean of the tapped hidden states over the prose
//! tokens. scripts/text/train_text_head.py fits `models/text/hidden-head.json`
//! on them and `candor calibrate` the calibration (calib rows, never test).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use candor_core::Priority;
use candor_detectors::text::features::{self, DocStyle};
use candor_detectors::text::{segment, TextConfig, TextScorer, LM_MODEL};
use candor_eval::manifest::{Manifest, Split};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::args::AnalyzerArgs;

/// Prose-token prefix lengths measured for the minimum-length rule.
const PREFIXES: [usize; 7] = [24, 32, 48, 64, 96, 128, 192];

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

    /// Also write the mean of the language model's tapped hidden states over
    /// each row's prose tokens to this file (little-endian f32, one row of
    /// the model's tap width per manifest row, NaN where nothing was
    /// scored). Needs a model with `[model.lm] hidden_taps`. The means over
    /// the first N prose tokens, for N in the prefix lengths, go to
    /// FILE.prefixes (one block of `prefixes × width` values per row), for
    /// the minimum-length measurement of `scripts/text/train_text_head.py`.
    #[arg(long, env = "CANDOR_TEXT_FEATURES_HIDDEN_OUT", value_name = "FILE")]
    pub hidden_out: Option<PathBuf>,
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
    // Training reads the zero-shot features too (and taps past block 18).
    ec.lm_statistics = Some(true);
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
                let pooled = features::pool_hidden(&a.hidden, a.hidden_width, 0..a.tokens.len());
                let prefixes: Vec<Option<Vec<f32>>> = PREFIXES
                    .iter()
                    .map(|&n| {
                        (a.tokens.len() >= n)
                            .then(|| features::pool_hidden(&a.hidden, a.hidden_width, 0..n))
                            .flatten()
                    })
                    .collect();
                let row = FeatureRow {
                    id,
                    manipulated: item.label.is_positive(),
                    group: item.group.clone(),
                    split: item.split,
                    tokens: a.tokens.len(),
                    abstain: a.abstain.as_ref().map(|x| x.reason.clone()),
                    features: a.features.map(|f| f.to_vec()),
                    prefix,
                };
                anyhow::Ok((row, (pooled, prefixes), a.hidden_width))
            }
        },
    )
    .await?;
    if let Some(path) = &args.hidden_out {
        use std::io::Write;
        let width = rows.iter().map(|r| r.2).max().unwrap_or(0);
        if width == 0 {
            bail!("the language model returned no hidden states (no `[model.lm] hidden_taps`)");
        }
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut fp =
            std::io::BufWriter::new(std::fs::File::create(path.with_extension("prefixes"))?);
        let nan = vec![f32::NAN; width];
        for (_, (pooled, prefixes), _) in &rows {
            for x in pooled.as_deref().unwrap_or(&nan) {
                f.write_all(&x.to_le_bytes())?;
            }
            for p in prefixes {
                for x in p.as_deref().unwrap_or(&nan) {
                    fp.write_all(&x.to_le_bytes())?;
                }
            }
        }
        f.flush()?;
        fp.flush()?;
        println!(
            "text-features: hidden means ({width} values per row) -> {}",
            path.display()
        );
    }
    let rows: Vec<FeatureRow> = rows.into_iter().map(|r| r.0).collect();
    crate::rows::write_jsonl(&args.out, &rows)?;
    println!(
        "text-features: {total} rows in {:.1} s -> {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
