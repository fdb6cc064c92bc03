//! Face detection with `rustface` (pure Rust SeetaFace cascade).
//!
//! The cascade's weights (`seeta_fd_frontal_v1.0.bin`, BSD-2-Clause) ship in
//! the `rustface` 0.1.7 crate package on crates.io; the setup step extracts
//! them (pinned by the crate's sha256) into
//! `$CANDOR_HOME/models/seetaface/`. Faces are found on a grey copy of the
//! image reduced to at most [`DETECT_SIDE`] pixels (the cascade's cost grows
//! with the pixel count), boxes are mapped back to image pixels.

use std::path::{Path, PathBuf};

use image::RgbImage;

/// Where the setup step puts the cascade, under `$CANDOR_HOME/models/`.
pub const MODEL_FILE: &str = "seetaface/seeta_fd_frontal_v1.0.bin";
/// SHA-256 of the cascade file (member of rustface-0.1.7.crate).
pub const MODEL_SHA256: &str = "c4619d066ed35e84d9a8e842860b0dff567aba0cbb139881075538761db3ff5d";
/// Model id and version shown in results.
pub const MODEL_ID: &str = "seetaface-frontal";
pub const MODEL_VERSION: &str = "rustface-0.1.7";

/// Longest side of the image the cascade runs on.
pub const DETECT_SIDE: u32 = 800;
/// Smallest face searched, in detection pixels (the cascade's minimum is 20).
const MIN_FACE: u32 = 32;
/// Cascade score a face must reach.
const SCORE_THRESHOLD: f64 = 2.0;
/// Most faces reported.
pub const MAX_FACES: usize = 16;

/// A face box in image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Cascade score (higher = more face-like; ≥ 2 reported).
    pub score: f64,
}

/// The loaded cascade.
pub struct FaceDetector {
    model: rustface::Model,
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaceDetector")
    }
}

/// Default location of the cascade for a `$CANDOR_HOME`.
pub fn default_path(home: &Path) -> PathBuf {
    home.join("models").join(MODEL_FILE)
}

impl FaceDetector {
    /// Loads the cascade, checking its sha256.
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sha = candor_core::sha256_hex(&bytes);
        if sha != MODEL_SHA256 {
            return Err(format!(
                "{}: sha256 {sha} does not match the pinned {MODEL_SHA256} (re-run setup)",
                path.display()
            ));
        }
        let model = rustface::read_model(std::io::Cursor::new(bytes))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(FaceDetector { model })
    }

    /// Finds faces, largest first. Never panics: a cascade failure is an error.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<FaceBox>, String> {
        let (w, h) = img.dimensions();
        let scale = (DETECT_SIDE as f64 / f64::from(w.max(h))).min(1.0);
        let (dw, dh) = (
            ((f64::from(w) * scale).round() as u32).max(1),
            ((f64::from(h) * scale).round() as u32).max(1),
        );
        if dw < MIN_FACE || dh < MIN_FACE {
            return Ok(Vec::new());
        }
        let grey = image::imageops::grayscale(img);
        let grey = if scale < 1.0 {
            image::imageops::resize(&grey, dw, dh, image::imageops::FilterType::Triangle)
        } else {
            grey
        };
        let model = self.model.clone();
        let found = std::panic::catch_unwind(move || {
            let mut d = rustface::create_detector_with_model(model);
            d.set_min_face_size(MIN_FACE);
            d.set_score_thresh(SCORE_THRESHOLD);
            d.set_pyramid_scale_factor(0.8);
            d.set_slide_window_step(4, 4);
            let data = rustface::ImageData::new(grey.as_raw(), dw, dh);
            d.detect(&data)
        })
        .map_err(|_| "face detector failed on this image".to_string())?;
        let mut faces: Vec<FaceBox> = found
            .iter()
            .filter_map(|f| {
                let b = f.bbox();
                let x0 = (f64::from(b.x().max(0)) / scale).floor() as u32;
                let y0 = (f64::from(b.y().max(0)) / scale).floor() as u32;
                let x1 = ((f64::from(b.x() + b.width() as i32) / scale).ceil() as u32).min(w);
                let y1 = ((f64::from(b.y() + b.height() as i32) / scale).ceil() as u32).min(h);
                (x1 > x0 && y1 > y0).then_some(FaceBox {
                    x: x0,
                    y: y0,
                    width: x1 - x0,
                    height: y1 - y0,
                    score: f.score(),
                })
            })
            .collect();
        faces.sort_by_key(|f| std::cmp::Reverse(f.width * f.height));
        faces.truncate(MAX_FACES);
        Ok(faces)
    }
}
