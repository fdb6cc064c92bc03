//! The project's forgery CNN (`models/image/forgery-cnn.onnx`, trained by
//! `scripts/image/train_forgery_cnn.py`): a small fully-convolutional net on
//! fixed high-pass residuals of the luminance. Each 128×128 tile gives a
//! 16×16 map of log-odds, one per 8×8 cell, that the cell belongs to an
//! edited region (splice, copy-move, local resample, self-blend, upsampled
//! or recompressed content).
//!
//! Region: a square of at most `max_side` (≤ [`MAX_SIDE`]) a side inside the
//! forensic region, never resized, centred on the largest face when there
//! is one (else on the region's centre) and moved inside the region; its
//! origin is a multiple of 8 so the JPEG grid stays aligned. Tiles: a 128
//! grid from the region's top-left, the last row/column aligned to the far
//! edge. The image score is the mean of the top 2% of all tile cells (at
//! least 4), as in training.
//!
//! The cost is linear in the region's area: [`DEFAULT_SIDE`] (16 tiles)
//! costs a quarter of a whole 1024 px headshot (64 tiles).

use std::time::Instant;

use candor_core::Priority;
use candor_engine::{ModelHandle, NamedTensor, TensorData};

use super::forensics::Plane;

/// Engine id of the model.
pub const MODEL: &str = "candor-image-forgery-cnn";
/// Tile side, pixels.
pub const TILE: usize = 128;
/// Cell side, pixels (the output map has TILE / CELL cells a side).
pub const CELL: usize = 8;
/// Longest side of the region the CNN may cover (at most 8×8 tiles).
pub const MAX_SIDE: usize = 1024;
/// Default side of the region (4×4 tiles).
pub const DEFAULT_SIDE: usize = 512;
/// Share of the cells averaged for the image score.
pub const TOP_SHARE: f64 = 0.02;

const CELLS: usize = TILE / CELL;

/// The CNN's map over its region.
#[derive(Debug, Clone)]
pub struct CnnMap {
    /// Region covered, in the forensic region's pixels (x, y, w, h).
    pub region: (usize, usize, usize, usize),
    /// Cells across and down.
    pub cw: usize,
    pub ch: usize,
    /// Cell log-odds, row-major (max where tiles overlap).
    pub logits: Vec<f32>,
    /// Image score: mean of the top 2% of tile cells.
    pub score: f64,
    /// Tiles run.
    pub tiles: usize,
    /// Time waiting for the engine and running the model, ms.
    pub queue_ms: f64,
    pub exec_ms: f64,
}

/// Tile origins along an axis of `n` pixels.
fn axis(n: usize) -> Vec<usize> {
    if n < TILE {
        return Vec::new();
    }
    let mut o: Vec<usize> = (0..=(n - TILE)).step_by(TILE).collect();
    if o.last().is_some_and(|&l| l + TILE < n) {
        o.push(n - TILE);
    }
    o
}

/// Mean of the top `TOP_SHARE` of `v` (at least 4 values).
pub fn top_mean(v: &[f32]) -> f64 {
    let mut s: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| b.total_cmp(a));
    let k = ((TOP_SHARE * s.len() as f64).ceil() as usize)
        .max(4)
        .min(s.len());
    s[..k].iter().map(|&x| f64::from(x)).sum::<f64>() / k as f64
}

/// Origin along an axis of `n` pixels of a span of `len` centred on `c`
/// (the axis' centre when `None`), moved inside the axis and rounded down
/// to a multiple of 8.
fn origin(n: usize, len: usize, c: Option<f32>) -> usize {
    let room = n - len;
    let want = match c {
        Some(c) if c.is_finite() => (c - len as f32 / 2.0).max(0.0) as usize,
        _ => room / 2,
    };
    want.min(room) & !7
}

/// Runs the CNN over a region of `y` at most `max_side` a side (clamped to
/// `TILE..=MAX_SIDE`), centred on `centre` (plane pixels; `None`: the
/// plane's centre). Blocking: call from a blocking thread. `None` when the
/// plane is smaller than one tile.
pub fn run(
    model: &ModelHandle,
    y: &Plane,
    centre: Option<(f32, f32)>,
    max_side: usize,
    priority: Priority,
    deadline: Option<Instant>,
) -> Result<Option<CnnMap>, String> {
    let side = max_side.clamp(TILE, MAX_SIDE);
    let (w, h) = (y.w.min(side), y.h.min(side));
    let x0 = origin(y.w, w, centre.map(|c| c.0));
    let y0 = origin(y.h, h, centre.map(|c| c.1));
    let (xs, ys) = (axis(w), axis(h));
    if xs.is_empty() || ys.is_empty() {
        return Ok(None);
    }
    let origins: Vec<(usize, usize)> = ys
        .iter()
        .flat_map(|&ty| xs.iter().map(move |&tx| (ty, tx)))
        .collect();
    let n = origins.len();
    let mut data = vec![0f32; n * TILE * TILE];
    for (t, &(ty, tx)) in origins.iter().enumerate() {
        let dst = &mut data[t * TILE * TILE..(t + 1) * TILE * TILE];
        for r in 0..TILE {
            for c in 0..TILE {
                dst[r * TILE + c] = y.at(x0 + tx + c, y0 + ty + r);
            }
        }
    }
    let input = TensorData::f32_from_vec(&[n, 1, TILE, TILE], data)
        .ok_or_else(|| "forgery CNN input shape".to_string())?;
    let mut out = model
        .infer_blocking(vec![NamedTensor::new("luma", input)], priority, deadline)
        .map_err(|e| e.to_string())?;
    let logits: Vec<f32> = out
        .take("logits")
        .and_then(|t| t.as_f32().map(|a| a.iter().copied().collect()))
        .ok_or_else(|| "forgery CNN: output `logits` missing".to_string())?;
    if logits.len() != n * CELLS * CELLS {
        return Err(format!(
            "forgery CNN: {} logits for {n} tiles",
            logits.len()
        ));
    }
    let (cw, ch) = (w / CELL, h / CELL);
    let mut map = vec![f32::NAN; cw * ch];
    for (t, &(ty, tx)) in origins.iter().enumerate() {
        for r in 0..CELLS {
            for c in 0..CELLS {
                let v = logits[t * CELLS * CELLS + r * CELLS + c];
                let (mr, mc) = (ty / CELL + r, tx / CELL + c);
                if mr < ch && mc < cw {
                    let m = &mut map[mr * cw + mc];
                    *m = if m.is_nan() { v } else { m.max(v) };
                }
            }
        }
    }
    Ok(Some(CnnMap {
        region: (x0, y0, w, h),
        cw,
        ch,
        score: top_mean(&logits),
        logits: map,
        tiles: n,
        queue_ms: out.queue_ms,
        exec_ms: out.exec_ms,
    }))
}

impl CnnMap {
    /// Mean of the top 2% (at least 4) cell log-odds inside a box given in
    /// the forensic region's pixels (x, y, w, h); `None` when the box does
    /// not overlap the CNN's region.
    pub fn top_mean_in(&self, b: (usize, usize, usize, usize)) -> Option<f64> {
        let (rx, ry, _, _) = self.region;
        let gx0 = b.0.saturating_sub(rx) / CELL;
        let gy0 = b.1.saturating_sub(ry) / CELL;
        let gx1 = ((b.0 + b.2).saturating_sub(rx) / CELL).min(self.cw);
        let gy1 = ((b.1 + b.3).saturating_sub(ry) / CELL).min(self.ch);
        let cells: Vec<f32> = (gy0..gy1)
            .flat_map(|y| (gx0..gx1).map(move |x| (x, y)))
            .map(|(x, y)| self.logits[y * self.cw + x])
            .filter(|v| v.is_finite())
            .collect();
        let v = top_mean(&cells);
        v.is_finite().then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_axis() {
        assert!(axis(127).is_empty());
        assert_eq!(axis(128), vec![0]);
        assert_eq!(axis(300), vec![0, 128, 172]);
        assert_eq!(axis(256), vec![0, 128]);
    }

    #[test]
    fn region_follows_the_face_inside_the_plane() {
        // Centred by default, on the 8-pixel grid.
        assert_eq!(origin(1024, 512, None), 256);
        assert_eq!(origin(1000, 512, None), 240);
        // On the face, rounded down to the grid.
        assert_eq!(origin(1024, 512, Some(600.0)), 344);
        // Moved inside the plane at either edge.
        assert_eq!(origin(1024, 512, Some(40.0)), 0);
        assert_eq!(origin(1024, 512, Some(1020.0)), 512);
        assert_eq!(origin(1030, 512, Some(1020.0)), 512);
        assert_eq!(origin(1024, 512, Some(f32::NAN)), 256);
        // A plane no larger than the region: the whole plane.
        assert_eq!(origin(300, 300, Some(10.0)), 0);
    }

    #[test]
    fn top_mean_takes_at_least_four() {
        let v: Vec<f32> = (0..10).map(|i| i as f32).collect();
        assert_eq!(top_mean(&v), 7.5);
        let v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        assert_eq!(top_mean(&v), (980..1000).sum::<i32>() as f64 / 20.0);
    }
}
