//! Evidence pictures of the image detector: the manipulation heatmap (ELA
//! and noise-level outliers over the analysed region, face boxes drawn) and
//! the log power spectrum.

use image::RgbImage;

use super::cnn::{CnnMap, CELL};
use super::faces::FaceBox;
use super::forensics::{BlockMap, BLOCK};

/// Widest heatmap, in pixels.
const MAX_W: u32 = 384;
/// Robust z-score at which a block starts to be coloured.
const Z_START: f32 = 2.5;
/// Robust z-score of full colour.
const Z_FULL: f32 = 8.0;

/// Heatmap PNG of the analysed `region` (x, y, w, h) of `img`: the picture
/// in dim grey; blocks whose ELA or noise level is an outlier (robust
/// z ≥ 2.5) or whose forgery-CNN probability is above one half tinted from
/// orange to red; face boxes in green.
pub fn heatmap(
    img: &RgbImage,
    region: (u32, u32, u32, u32),
    ela_z: &BlockMap,
    noise_z: &BlockMap,
    cnn: Option<&CnnMap>,
    faces: &[FaceBox],
) -> Result<Vec<u8>, String> {
    let (rx, ry, rw, rh) = region;
    let scale = (f64::from(MAX_W) / f64::from(rw)).min(1.0);
    let ow = ((f64::from(rw) * scale).round() as usize).max(1);
    let oh = ((f64::from(rh) * scale).round() as usize).max(1);
    let mut rgb = vec![0u8; ow * oh * 3];
    for oy in 0..oh {
        for ox in 0..ow {
            let sx = rx + ((ox as f64 / scale) as u32).min(rw - 1);
            let sy = ry + ((oy as f64 / scale) as u32).min(rh - 1);
            let p = img.get_pixel(sx, sy);
            let g = (0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
                * 0.55;
            let (bx, by) = ((sx - rx) as usize / BLOCK, (sy - ry) as usize / BLOCK);
            let z = [ela_z, noise_z]
                .iter()
                .filter(|m| bx < m.bw && by < m.bh)
                .map(|m| m.v[by * m.bw + bx])
                .filter(|v| v.is_finite())
                .fold(0.0f32, f32::max);
            let mut t = if z >= Z_START {
                ((z - Z_START) / (Z_FULL - Z_START)).clamp(0.0, 1.0)
            } else {
                -1.0
            };
            if let Some(m) = cnn {
                let (cx0, cy0, cw, ch) = m.region;
                let (px, py) = ((sx - rx) as usize, (sy - ry) as usize);
                if px >= cx0 && py >= cy0 && px < cx0 + cw && py < cy0 + ch {
                    let (gx, gy) = ((px - cx0) / CELL, (py - cy0) / CELL);
                    if gx < m.cw && gy < m.ch {
                        let l = m.logits[gy * m.cw + gx];
                        let p = 1.0 / (1.0 + (-l).exp());
                        if p > 0.5 {
                            t = t.max((p - 0.5) * 2.0);
                        }
                    }
                }
            }
            let a = if t >= 0.0 { 0.35 + 0.5 * t } else { 0.0 };
            let t = t.max(0.0);
            let tint = [255.0, 160.0 * (1.0 - t), 0.0];
            let i = (oy * ow + ox) * 3;
            for k in 0..3 {
                rgb[i + k] = (g * (1.0 - a) + tint[k] * a).clamp(0.0, 255.0) as u8;
            }
        }
    }
    for f in faces {
        // Boxes clipped to the analysed region; a face wholly outside it is skipped.
        let to = |v: u32, o: u32, lim: usize| -> usize {
            let d = (i64::from(v) - i64::from(o)).max(0);
            ((d as f64 * scale).round() as usize).min(lim - 1)
        };
        let (x0, y0) = (to(f.x, rx, ow), to(f.y, ry, oh));
        let (x1, y1) = (to(f.x + f.width, rx, ow), to(f.y + f.height, ry, oh));
        if x1 <= x0 || y1 <= y0 {
            continue;
        }
        for x in x0..=x1 {
            for y in [y0, y1] {
                rgb[(y * ow + x) * 3..(y * ow + x) * 3 + 3].copy_from_slice(&[40, 220, 90]);
            }
        }
        for y in y0..=y1 {
            for x in [x0, x1] {
                rgb[(y * ow + x) * 3..(y * ow + x) * 3 + 3].copy_from_slice(&[40, 220, 90]);
            }
        }
    }
    crate::pngenc::encode(&rgb, ow, oh, true)
}

/// Side of the face map picture (the 224 px aligned crop shown at 2x).
const FACE_MAP_SIDE: usize = 448;

/// PNG of the aligned face the heads read, in grey, with each of its 14 × 14
/// patches tinted by how much it pushed the main head's log-odds: red
/// towards "manipulated", blue towards "authentic" (full colour at the
/// largest absolute contribution of this face, so the picture shows where,
/// not how much).
pub fn face_map(crop: &RgbImage, map: &[f64]) -> Result<Vec<u8>, String> {
    let grid = (map.len() as f64).sqrt() as usize;
    if grid == 0 || grid * grid != map.len() {
        return Err(format!("face map of {} cells is not square", map.len()));
    }
    let (cw, ch) = (crop.width() as usize, crop.height() as usize);
    let peak = map.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-9);
    let side = FACE_MAP_SIDE;
    let mut rgb = vec![0u8; side * side * 3];
    for oy in 0..side {
        for ox in 0..side {
            let (sx, sy) = (ox * cw / side, oy * ch / side);
            let p = crop.get_pixel(sx as u32, sy as u32);
            let g = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            let c = map[(sy * grid / ch) * grid + sx * grid / cw] / peak;
            let a = 0.55 * c.abs();
            let tint = if c > 0.0 {
                [255.0, 40.0, 20.0]
            } else {
                [30.0, 90.0, 255.0]
            };
            let i = (oy * side + ox) * 3;
            for k in 0..3 {
                rgb[i + k] = (g * (1.0 - a) + tint[k] * a).clamp(0.0, 255.0) as u8;
            }
        }
    }
    crate::pngenc::encode(&rgb, side, side, true)
}

/// Grey PNG of the shifted log power spectrum (`side`×`side`).
pub fn spectrum(side: usize, pixels: &[u8]) -> Result<Vec<u8>, String> {
    crate::pngenc::encode(pixels, side, side, false)
}
