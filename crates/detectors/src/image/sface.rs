//! The face embedding of the identity registry (issue 18): SFace (OpenCV
//! Zoo, 128-d) on the largest face, aligned to the five-point template at
//! 112×112 ([`super::yunet::align`] with zoom 1). Computed only when a
//! caller asks for identity templates; the embedding never appears in a
//! result (see [`candor_core::IdentityTemplates`]).

use std::time::Instant;

use candor_core::{FaceTemplate, Priority};
use candor_engine::{ModelHandle, NamedTensor, TensorData};
use image::RgbImage;

use super::yunet::{self, AlignSpec, Face};

/// Id of the model in `models/manifest.toml`.
pub const MODEL: &str = "sface-face-embedding";
/// Side of the aligned crop.
pub const SIDE: u32 = 112;
/// Embedding length.
pub const DIM: usize = 128;

/// The template of `face` in `img`, or `None` when the face cannot be
/// aligned.
pub fn embed(
    model: &ModelHandle,
    img: &RgbImage,
    face: &Face,
    priority: Priority,
    deadline: Option<Instant>,
) -> Result<Option<FaceTemplate>, String> {
    let Some((crop, _)) = yunet::align(
        img,
        &face.landmarks,
        AlignSpec {
            side: SIDE,
            zoom: 1.0,
        },
    ) else {
        return Ok(None);
    };
    let n = (SIDE * SIDE) as usize;
    let mut chw = vec![0f32; 3 * n];
    for (i, p) in crop.pixels().enumerate() {
        for c in 0..3 {
            chw[c * n + i] = f32::from(p[c]);
        }
    }
    let input = TensorData::f32_from_vec(&[1, 3, SIDE as usize, SIDE as usize], chw)
        .ok_or_else(|| "SFace input shape".to_string())?;
    let mut out = model
        .infer_blocking(vec![NamedTensor::new("data", input)], priority, deadline)
        .map_err(|e| e.to_string())?;
    let v: Vec<f32> = out
        .take("fc1")
        .and_then(|t| t.as_f32().map(|a| a.iter().copied().collect()))
        .ok_or_else(|| "SFace: output `fc1` missing".to_string())?;
    if v.len() != DIM {
        return Err(format!("SFace: output has {} values", v.len()));
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm <= 0.0 {
        return Ok(None);
    }
    let r = model.model_ref();
    Ok(Some(FaceTemplate {
        embedding: v.iter().map(|x| x / norm).collect(),
        model: format!("{} {}", r.id, r.version),
        region: [
            face.x.max(0.0) as u32,
            face.y.max(0.0) as u32,
            face.width.max(0.0) as u32,
            face.height.max(0.0) as u32,
        ],
    }))
}
