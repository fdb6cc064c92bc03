//! `candor image-embed`: the face and whole-image embeddings that the image
//! detector's generation head is trained on, measured by the service's own
//! code (decoder, YuNet, alignment, CLIP tower), so that training and
//! serving read the same numbers.
//!
//! Writes `OUT.jsonl` (one row per manifest row: faces found, the chosen
//! face, errors) and `OUT.f32` (little-endian f32, one block of
//! `views × clip::FEATURE_DIM` values per row in manifest order; NaN where a
//! view could not be measured).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candor_core::Priority;
use candor_detectors::image::{clip, yunet};
use candor_eval::manifest::Manifest;
use clap::Args;
use serde::Serialize;

use crate::args::AnalyzerArgs;

#[derive(Debug, Clone, Args)]
pub struct ImageEmbedArgs {
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,

    /// Labelled set (manifest JSONL/CSV as for `candor eval`) of images.
    #[arg(long, env = "CANDOR_IMAGE_EMBED_SET", value_name = "MANIFEST")]
    pub set: PathBuf,

    /// Output prefix: writes PREFIX.jsonl and PREFIX.f32.
    #[arg(long, env = "CANDOR_IMAGE_EMBED_OUT", value_name = "PREFIX")]
    pub out: PathBuf,

    /// Face crops to embed, as template zooms (1.0 = tight ArcFace framing;
    /// smaller takes in hair and background). Each is one CLIP run per image.
    #[arg(
        long,
        env = "CANDOR_IMAGE_EMBED_ZOOMS",
        value_delimiter = ',',
        default_value = "0.6"
    )]
    pub zooms: Vec<f32>,

    /// Also embed the whole image (the package's centre-crop preprocessing).
    #[arg(long, env = "CANDOR_IMAGE_EMBED_WHOLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub whole: bool,

    /// Images analysed at once.
    #[arg(long, env = "CANDOR_IMAGE_EMBED_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,

    /// Save the aligned face crops (PNG, one per face view) of the first
    /// rows here, to check the alignment by eye.
    #[arg(long, env = "CANDOR_IMAGE_EMBED_SAVE_CROPS", value_name = "DIR")]
    pub save_crops: Option<PathBuf>,

    /// Also write PREFIX.grid.f32: per face view, the last block's patch
    /// tokens averaged over a G × G grid of regions of the 14 × 14 patch
    /// grid (G × G × 768 values; 0 = off). Costs no extra tower run, but
    /// disk and memory until the end of the run (rows are written at the
    /// end): 7 gives 150 KB per view, 14 (every patch) 600 KB.
    #[arg(long, env = "CANDOR_IMAGE_EMBED_PATCH_GRID", default_value_t = 0)]
    pub patch_grid: usize,

    /// Only the first N rows (0 = all), for quick trials.
    #[arg(long, env = "CANDOR_IMAGE_EMBED_LIMIT", default_value_t = 0)]
    pub limit: usize,
}

#[derive(Debug, Serialize)]
struct EmbedRow {
    row: usize,
    id: String,
    manipulated: bool,
    format: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    faces: usize,
    face_score: Option<f32>,
    /// Chosen face: x, y, width, height.
    face_box: Option<[f32; 4]>,
    eye_distance: Option<f32>,
    /// Five landmarks, image pixels.
    landmarks: Option<[[f32; 2]; 5]>,
    error: Option<String>,
    ms: f64,
}

pub async fn run(args: ImageEmbedArgs) -> ExitCode {
    match embed_cmd(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("candor image-embed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn embed_cmd(args: ImageEmbedArgs) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.set)
        .with_context(|| format!("cannot load labelled set {}", args.set.display()))?;
    let mut ec = args.analyzer.engine_config();
    let ids = vec![yunet::MODEL.to_string(), clip::MODEL.to_string()];
    ec.models = Some(ids.clone());
    ec.required = ids;
    let engine = candor_engine::Engine::load(ec).context("cannot load YuNet and CLIP")?;
    let det = Arc::new(yunet::YuNet::new(engine.require(yunet::MODEL)?));
    let clip_m = engine.require(clip::MODEL)?;
    let limits = args.analyzer.limits();
    let base = args.set.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut items = manifest.items.clone();
    if args.limit > 0 {
        items.truncate(args.limit);
    }
    let views = args.zooms.len() + usize::from(args.whole);
    let grid = args.patch_grid.min(clip::GRID);
    let grid_dim = grid * grid * clip::HIDDEN;
    let zooms = Arc::new(args.zooms.clone());
    let whole = args.whole;
    let save = args.save_crops.clone();
    if let Some(d) = &save {
        std::fs::create_dir_all(d)?;
    }
    let started = Instant::now();
    let total = items.len();
    let rows = crate::rows::map_bounded(
        items.into_iter().enumerate().collect(),
        args.concurrency,
        "image-embed",
        200,
        |_, (i, item)| {
            let det = Arc::clone(&det);
            let clip_m = clip_m.clone();
            let limits = limits.clone();
            let zooms = Arc::clone(&zooms);
            let save = save
                .clone()
                .filter(|_| i < 64)
                .map(|d| d.join(format!("{i:05}")));
            let id = item
                .path
                .strip_prefix(&base)
                .unwrap_or(&item.path)
                .display()
                .to_string();
            async move {
                let t = Instant::now();
                let mut row = EmbedRow {
                    row: i,
                    id,
                    manipulated: item.label.is_positive(),
                    format: None,
                    width: None,
                    height: None,
                    faces: 0,
                    face_score: None,
                    face_box: None,
                    eye_distance: None,
                    landmarks: None,
                    error: None,
                    ms: 0.0,
                };
                let mut vec = vec![f32::NAN; views * clip::FEATURE_DIM];
                let n_zooms = zooms.len();
                let mut pooled = vec![f32::NAN; n_zooms * grid_dim];
                match crate::rows::decode_file(&item.path, &limits).await {
                    Ok(candor_media::Decoded::Image(img)) => {
                        row.format = Some(img.format.to_string());
                        row.width = Some(img.image.width());
                        row.height = Some(img.image.height());
                        let r = tokio::task::spawn_blocking(move || {
                            embed_one(&det, &clip_m, &img, &zooms, whole, save.as_deref())
                        })
                        .await?;
                        match r {
                            Ok((face, feats)) => {
                                if let Some((n, f)) = face {
                                    row.faces = n;
                                    row.face_score = Some(f.score);
                                    row.face_box = Some([f.x, f.y, f.width, f.height]);
                                    row.eye_distance = Some(f.eye_distance());
                                    row.landmarks = Some(f.landmarks);
                                }
                                for (k, f) in feats.into_iter().enumerate() {
                                    if let (Some(f), true) = (&f, grid > 0 && k < n_zooms) {
                                        if let Some(p) = &f.patches {
                                            pooled[k * grid_dim..(k + 1) * grid_dim]
                                                .copy_from_slice(&clip::pool_patches(p, grid));
                                        }
                                    }
                                    if let Some(f) = f {
                                        vec[k * clip::FEATURE_DIM..(k + 1) * clip::FEATURE_DIM]
                                            .copy_from_slice(&f.concat());
                                    }
                                }
                            }
                            Err(e) => row.error = Some(e),
                        }
                    }
                    Ok(_) => row.error = Some("not an image".into()),
                    Err(e) => row.error = Some(format!("{e:#}")),
                }
                row.ms = t.elapsed().as_secs_f64() * 1e3;
                anyhow::Ok((row, vec, pooled))
            }
        },
    )
    .await?;
    let jsonl = args.out.with_extension("jsonl");
    let bin = args.out.with_extension("f32");
    let mut j = std::io::BufWriter::new(std::fs::File::create(&jsonl)?);
    let mut b = std::io::BufWriter::new(std::fs::File::create(&bin)?);
    let mut g = if grid > 0 {
        let p = args.out.with_extension("grid.f32");
        Some(std::io::BufWriter::new(std::fs::File::create(p)?))
    } else {
        None
    };
    for (row, vec, pooled) in &rows {
        serde_json::to_writer(&mut j, row)?;
        j.write_all(b"\n")?;
        for v in vec {
            b.write_all(&v.to_le_bytes())?;
        }
        if let Some(g) = g.as_mut() {
            for v in pooled {
                g.write_all(&v.to_le_bytes())?;
            }
        }
    }
    j.flush()?;
    b.flush()?;
    if let Some(mut g) = g {
        g.flush()?;
    }
    println!(
        "image-embed: {total} rows, {views} views of {} values, in {:.1} s -> {}",
        clip::FEATURE_DIM,
        started.elapsed().as_secs_f64(),
        jsonl.display()
    );
    Ok(())
}

type FaceAndFeatures = (
    Option<(usize, yunet::Face)>,
    Vec<Option<clip::ClipFeatures>>,
);

/// Faces, the largest face's aligned crops and the whole image, embedded.
fn embed_one(
    det: &yunet::YuNet,
    clip_m: &candor_engine::ModelHandle,
    img: &candor_media::DecodedImage,
    zooms: &[f32],
    whole: bool,
    save: Option<&Path>,
) -> Result<FaceAndFeatures, String> {
    let img = &img.image;
    let faces = det.detect(img, Priority::Bulk, None)?;
    let best = faces
        .iter()
        .copied()
        .max_by(|a, b| a.eye_distance().total_cmp(&b.eye_distance()));
    let mut feats = Vec::new();
    for &z in zooms {
        let f = match &best {
            Some(face) => {
                let spec = yunet::AlignSpec {
                    side: clip::SIDE as u32,
                    zoom: z,
                };
                match yunet::align(img, &face.landmarks, spec) {
                    Some((crop, _)) => Some({
                        if let Some(p) = save {
                            let _ = crop.save(p.with_extension(format!("z{z}.png")));
                        }
                        clip::embed(clip_m, clip::normalise(&crop), Priority::Bulk, None)?
                    }),
                    None => None,
                }
            }
            None => None,
        };
        feats.push(f);
    }
    if whole {
        feats.push(Some(clip::embed(
            clip_m,
            clip::preprocess(img),
            Priority::Bulk,
            None,
        )?));
    }
    Ok((best.map(|b| (faces.len(), b)), feats))
}
