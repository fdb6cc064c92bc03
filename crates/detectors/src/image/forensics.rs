//! Training-free image forensics, in plain Rust.
//!
//! Every measure works on the pixels as decoded (no resampling: resizing
//! would wipe the traces they look for). Images larger than
//! [`ForensicConfig::max_side`] are analysed on a centre crop whose origin is
//! a multiple of 8, so the JPEG block grid stays aligned.
//!
//! Measures ([`FEATURES`], `NaN` = not measurable on this image):
//! - `ela_spread`: error level analysis. The error a JPEG re-save at a fixed
//!   quality would add (root mean square per 16×16 block, computed in the
//!   DCT domain: no encoder runs), divided by the block's texture (mean
//!   gradient) so busy areas do not dominate. The value is the spread of the
//!   block map: (p99 − p50) / p50. A pasted region compressed differently
//!   from its surroundings stands out.
//! - `jpeg_double`: JPEG files only. Low-frequency DCT coefficients on the
//!   file's own 8×8 grid are divided by the file's quantisation steps; a
//!   once-compressed file gives smooth histograms of the quotients, a file
//!   compressed twice with different steps gives periodic gaps and peaks.
//!   The value is the median, over the usable modes, of the histogram's
//!   mean absolute second difference relative to its mass.
//! - `noise_spread`: the local noise level (Immerkær's Laplacian estimator
//!   per block, strong edges excluded), as the spread p90 − p10 of its
//!   logarithm. Content from another camera or a smoothed/generated region
//!   has a different noise level from the rest.
//! - `npr_asym`: the neighbouring-pixel residual on 2×2 cells at the four
//!   cell offsets. In a camera image the four are alike; content upsampled
//!   by 2 (most generators' decoders, many resizes) has a much smaller
//!   residual at one offset. The value is ln(mean of the other three / the
//!   smallest).
//! - `spectrum_peak`: the largest excess of the log power spectrum over its
//!   ring mean, away from low frequencies and the JPEG 8×8 lattice:
//!   periodic resampling and upsampling artefacts make isolated peaks.
//! - `spectrum_hf`: the high-frequency tail of the azimuthally averaged
//!   spectrum against a power-law fit of the mid band (positive: more
//!   high-frequency energy than a natural 1/f image, e.g. checkerboard
//!   artefacts; negative: smoothed or heavily compressed).

use std::sync::Arc;

use image::RgbImage;
use rustfft::{num_complex::Complex32, FftPlanner};

/// Names of the forensic measures, in vector order.
pub const FEATURES: [&str; 6] = [
    "ela_spread",
    "jpeg_double",
    "noise_spread",
    "npr_asym",
    "spectrum_peak",
    "spectrum_hf",
];

/// Number of forensic measures.
pub const N_FEATURES: usize = FEATURES.len();

/// Side of the blocks of the ELA, noise and NPR maps, in pixels.
pub const BLOCK: usize = 16;

/// What a measure means, for the result's `detail`.
pub fn describe(name: &str) -> &'static str {
    match name {
        "ela_spread" => "error level analysis: spread (p99-p50)/p50 of the texture-normalised re-save error over 16x16 blocks; high = regions compressed differently",
        "jpeg_double" => "JPEG double compression: roughness of the DCT quotient histograms on the file's 8x8 grid; high = compressed twice with different tables",
        "noise_spread" => "noise inconsistency: spread p90-p10 of the log local noise level over 16x16 blocks; high = regions with different noise",
        "npr_asym" => "neighbouring-pixel residual asymmetry over the four 2x2 cell offsets; high = content upsampled by 2 (generator decoders, resizes)",
        "spectrum_peak" => "largest isolated peak of the log power spectrum above its ring mean (nats), off the JPEG lattice; high = periodic resampling artefacts",
        "spectrum_hf" => "high-frequency tail of the azimuthal spectrum against a power-law fit (nats); positive = excess high-frequency energy",
        _ => "",
    }
}

/// Settings of the forensic pass.
#[derive(Debug, Clone)]
pub struct ForensicConfig {
    /// Longest side analysed; larger images are centre-cropped (not resized).
    pub max_side: u32,
    /// JPEG quality of the ELA re-save.
    pub ela_quality: u8,
    /// Side of the spectrum window (a power of two; smaller images use the
    /// largest power of two that fits).
    pub spectrum_side: usize,
}

impl Default for ForensicConfig {
    fn default() -> Self {
        ForensicConfig {
            max_side: 1536,
            ela_quality: 90,
            spectrum_side: 512,
        }
    }
}

/// A per-block map (`NaN` = block not measured).
#[derive(Debug, Clone, Default)]
pub struct BlockMap {
    /// Blocks across.
    pub bw: usize,
    /// Blocks down.
    pub bh: usize,
    /// Row-major values.
    pub v: Vec<f32>,
}

impl BlockMap {
    fn new(bw: usize, bh: usize) -> Self {
        BlockMap {
            bw,
            bh,
            v: vec![f32::NAN; bw * bh],
        }
    }

    /// Values as robust z-scores (median and MAD of the finite values).
    pub fn robust_z(&self) -> BlockMap {
        let mut vals: Vec<f32> = self.v.iter().copied().filter(|x| x.is_finite()).collect();
        let mut out = BlockMap::new(self.bw, self.bh);
        if vals.len() < 4 {
            return out;
        }
        let med = quantile(&mut vals, 0.5);
        let mut dev: Vec<f32> = vals.iter().map(|x| (x - med).abs()).collect();
        let mad = quantile(&mut dev, 0.5).max(1e-6) * 1.4826;
        for (o, x) in out.v.iter_mut().zip(&self.v) {
            if x.is_finite() {
                *o = (x - med) / mad;
            }
        }
        out
    }
}

/// Result of the forensic pass.
#[derive(Debug, Clone)]
pub struct Forensics {
    /// Measures in [`FEATURES`] order (`NaN` = not measurable).
    pub x: [f64; N_FEATURES],
    /// Analysed region in image pixels (x, y, width, height).
    pub region: (u32, u32, u32, u32),
    /// Texture-normalised ELA per block.
    pub ela: BlockMap,
    /// Log noise level per block.
    pub noise: BlockMap,
    /// JPEG quality estimated from the luminance table (IJG scale), if JPEG.
    pub jpeg_quality: Option<u32>,
    /// Shifted log power spectrum (side × side, 0–255), for the picture.
    pub spectrum: Option<(usize, Vec<u8>)>,
    /// Luminance of the analysed region (input of the forgery CNN).
    pub luma: Plane,
}

/// Runs every measure on `img`. `luma_table` is the file's luminance
/// quantisation table in zig-zag order (JPEG files only).
pub fn analyze(
    img: &RgbImage,
    luma_table: Option<&[u16; 64]>,
    cfg: &ForensicConfig,
) -> Result<Forensics, String> {
    let (w, h) = img.dimensions();
    let cw = w.min(cfg.max_side);
    let ch = h.min(cfg.max_side);
    let x0 = ((w - cw) / 2) & !7;
    let y0 = ((h - ch) / 2) & !7;
    let crop;
    let img = if (cw, ch) == (w, h) {
        img
    } else {
        crop = image::imageops::crop_imm(img, x0, y0, cw, ch).to_image();
        &crop
    };
    let y = luma(img);
    let grad = gradient(&y);

    let mut x = [f64::NAN; N_FEATURES];
    let ela_map = ela(img, &grad, cfg.ela_quality);
    x[0] = spread_ratio(&ela_map);
    let jpeg_quality = luma_table.map(ijg_quality);
    if let Some(t) = luma_table {
        x[1] = double_jpeg(&y, t);
    }
    let noise_map = noise(&y, &grad);
    x[2] = spread_range(&noise_map);
    x[3] = npr_asym(&y);
    let spectrum = spectrum(&y, cfg.spectrum_side);
    if let Some(s) = &spectrum {
        x[4] = s.peak;
        x[5] = s.hf;
    }
    Ok(Forensics {
        x,
        region: (x0, y0, cw, ch),
        ela: ela_map,
        noise: noise_map,
        jpeg_quality,
        spectrum: spectrum.map(|s| (s.side, s.picture)),
        luma: y,
    })
}

/// A luminance plane, 0–255.
#[derive(Debug, Clone)]
pub struct Plane {
    pub w: usize,
    pub h: usize,
    pub v: Vec<f32>,
}

impl Plane {
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.v[y * self.w + x]
    }
}

/// ITU-R BT.601 luminance.
pub fn luma(img: &RgbImage) -> Plane {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let v = img
        .pixels()
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    Plane { w, h, v }
}

/// |dx| + |dy| per pixel of the 3×3 box-blurred plane (forward
/// differences, 0 on the last row/column): edges and texture, not noise.
fn gradient(y: &Plane) -> Vec<f32> {
    let y = &box3(y);
    let w = y.w;
    let mut g = vec![0.0; y.w * y.h];
    for r in 0..y.h.saturating_sub(1) {
        let (row, next) = (&y.v[r * w..(r + 1) * w], &y.v[(r + 1) * w..(r + 2) * w]);
        let out = &mut g[r * w..(r + 1) * w];
        for c in 0..w.saturating_sub(1) {
            let v = row[c];
            out[c] = (row[c + 1] - v).abs() + (next[c] - v).abs();
        }
    }
    g
}

/// 3×3 box blur (edges replicated): column sums of three rows, then sums
/// of three columns.
fn box3(y: &Plane) -> Plane {
    let (w, h) = (y.w, y.h);
    let mut v = vec![0.0f32; w * h];
    if w == 0 || h == 0 {
        return Plane { w, h, v };
    }
    let mut col = vec![0.0f32; w];
    for r in 0..h {
        let up = &y.v[r.saturating_sub(1) * w..][..w];
        let mid = &y.v[r * w..][..w];
        let down = &y.v[(r + 1).min(h - 1) * w..][..w];
        for (((o, a), b), c) in col.iter_mut().zip(up).zip(mid).zip(down) {
            *o = a + b + c;
        }
        let out = &mut v[r * w..(r + 1) * w];
        if w == 1 {
            out[0] = 3.0 * col[0] / 9.0;
            continue;
        }
        out[0] = (2.0 * col[0] + col[1]) / 9.0;
        out[w - 1] = (col[w - 2] + 2.0 * col[w - 1]) / 9.0;
        for (o, t) in out[1..w - 1].iter_mut().zip(col.windows(3)) {
            *o = (t[0] + t[1] + t[2]) / 9.0;
        }
    }
    Plane { w, h, v }
}

fn quantile(v: &mut [f32], q: f64) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    let (_, m, _) = v.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    *m
}

fn finite(map: &BlockMap) -> Vec<f32> {
    map.v.iter().copied().filter(|x| x.is_finite()).collect()
}

/// (p99 − p50) / p50 of a positive map.
fn spread_ratio(map: &BlockMap) -> f64 {
    let mut v = finite(map);
    if v.len() < 16 {
        return f64::NAN;
    }
    let p50 = quantile(&mut v, 0.5);
    let p99 = quantile(&mut v, 0.99);
    f64::from((p99 - p50) / p50.max(1e-3))
}

/// p90 − p10 of a map.
fn spread_range(map: &BlockMap) -> f64 {
    let mut v = finite(map);
    if v.len() < 16 {
        return f64::NAN;
    }
    f64::from(quantile(&mut v, 0.9) - quantile(&mut v, 0.1))
}

/// Mean over R, G and B of the squared gain from an error in Y, Cb and Cr
/// (the columns of the JFIF YCbCr → RGB matrix): R = Y + 1.402 Cr,
/// G = Y − 0.344136 Cb − 0.714136 Cr, B = Y + 1.772 Cb.
const RGB_GAIN: [f32; 3] = [
    1.0,
    (0.344_136 * 0.344_136 + 1.772 * 1.772) / 3.0,
    (1.402 * 1.402 + 0.714_136 * 0.714_136) / 3.0,
];

/// Mean squared RGB error of rounding the encoder's Y, Cb and Cr and the
/// decoder's R, G and B to integers (1/12 each, through [`RGB_GAIN`]).
const ROUNDING_MSE: f32 = (RGB_GAIN[0] + RGB_GAIN[1] + RGB_GAIN[2] + 1.0) / 12.0;

/// ELA: the root-mean-square RGB error a JPEG re-save at `quality` (IJG
/// tables, 4:4:4, JFIF YCbCr) would add, per block, over (the mean
/// gradient plus 2). The re-save is computed in the DCT domain, with no encoder or
/// decoder: JPEG's forward DCT is orthonormal, so a block's error energy in
/// each YCbCr channel equals its coefficients' quantisation error energy
/// (Parseval). The channels' errors reach RGB through the inverse colour
/// transform ([`RGB_GAIN`]); rounding to 8 bits (the encoder's YCbCr, the
/// decoder's RGB) adds [`ROUNDING_MSE`].
fn ela(img: &RgbImage, grad: &[f32], quality: u8) -> BlockMap {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (bw, bh) = (w / BLOCK, h / BLOCK);
    let mut map = BlockMap::new(bw, bh);
    let tables = [
        ijg_table(&IJG_LUMA, quality),
        ijg_table(&IJG_CHROMA, quality),
        ijg_table(&IJG_CHROMA, quality),
    ];
    let m = dct_matrix();
    let mut mt = [[0.0f32; 8]; 8];
    for (k, row) in m.iter().enumerate() {
        for (n, &v) in row.iter().enumerate() {
            mt[n][k] = v;
        }
    }
    let raw = img.as_raw();
    let mut planes = [[[0.0f32; 8]; 8]; 3];
    for by in 0..bh {
        for bx in 0..bw {
            let mut err = 0.0f32;
            for sub in 0..(BLOCK / 8) * (BLOCK / 8) {
                let x0 = bx * BLOCK + (sub % (BLOCK / 8)) * 8;
                let y0 = by * BLOCK + (sub / (BLOCK / 8)) * 8;
                for r in 0..8 {
                    let row = &raw[((y0 + r) * w + x0) * 3..((y0 + r) * w + x0 + 8) * 3];
                    for (c, p) in row.chunks_exact(3).enumerate() {
                        let (red, g, b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
                        planes[0][r][c] = 0.299 * red + 0.587 * g + 0.114 * b - 128.0;
                        planes[1][r][c] = -0.168_736 * red - 0.331_264 * g + 0.5 * b;
                        planes[2][r][c] = 0.5 * red - 0.418_688 * g - 0.081_312 * b;
                    }
                }
                for ((plane, q), gain) in planes.iter().zip(&tables).zip(RGB_GAIN) {
                    let f = dct8x8(&m, &mt, plane);
                    let mut e2 = 0.0f32;
                    for (row, qrow) in f.iter().zip(q) {
                        for (&v, &step) in row.iter().zip(qrow) {
                            let e = v - round_away(v / step) * step;
                            e2 += e * e;
                        }
                    }
                    err += gain * e2;
                }
            }
            let mut tex = 0.0f32;
            for r in by * BLOCK..(by + 1) * BLOCK {
                tex += grad[r * w + bx * BLOCK..r * w + (bx + 1) * BLOCK]
                    .iter()
                    .sum::<f32>();
            }
            let n = (BLOCK * BLOCK) as f32;
            let rms = (err / n + ROUNDING_MSE).sqrt();
            map.v[by * bw + bx] = rms / (tex / n + 2.0);
        }
    }
    map
}

/// A standard table (natural order) at an IJG quality (libjpeg's scaling),
/// as 8×8 steps.
fn ijg_table(base: &[u16; 64], quality: u8) -> [[f32; 8]; 8] {
    let q = u32::from(quality.clamp(1, 100));
    let mut t = [[0.0f32; 8]; 8];
    for (i, &b) in base.iter().enumerate() {
        t[i / 8][i % 8] = ijg_step(b, q) as f32;
    }
    t
}

/// A standard table's step `base` at IJG quality `q` (1–100), as libjpeg
/// scales it.
fn ijg_step(base: u16, q: u32) -> u32 {
    let s = if q < 50 { 5000 / q } else { 200 - 2 * q };
    ((u32::from(base) * s + 50) / 100).clamp(1, 255)
}

/// The orthonormal 8-point DCT-II, `m[k][n] = a_k cos((2n+1)kπ/16)`: the
/// 2-D transform `M X Mᵀ` is JPEG's forward DCT.
fn dct_matrix() -> [[f32; 8]; 8] {
    let mut m = [[0.0f32; 8]; 8];
    for (k, row) in m.iter_mut().enumerate() {
        let a = if k == 0 {
            0.125f32.sqrt()
        } else {
            0.25f32.sqrt()
        };
        for (n, v) in row.iter_mut().enumerate() {
            *v = a * (((2 * n + 1) * k) as f32 * std::f32::consts::PI / 16.0).cos();
        }
    }
    m
}

/// `M X Mᵀ` for an 8×8 block (rows of `x` are pixel rows); `mt` is `Mᵀ`.
fn dct8x8(m: &[[f32; 8]; 8], mt: &[[f32; 8]; 8], x: &[[f32; 8]; 8]) -> [[f32; 8]; 8] {
    // t = M X: the columns' transforms.
    let mut t = [[0.0f32; 8]; 8];
    for (trow, mrow) in t.iter_mut().zip(m) {
        for (&mk, xrow) in mrow.iter().zip(x) {
            for (tv, &xv) in trow.iter_mut().zip(xrow) {
                *tv += mk * xv;
            }
        }
    }
    // o = t Mᵀ: the rows' transforms.
    let mut o = [[0.0f32; 8]; 8];
    for (orow, trow) in o.iter_mut().zip(&t) {
        for (&tv, mtrow) in trow.iter().zip(mt) {
            for (ov, &mv) in orow.iter_mut().zip(mtrow) {
                *ov += tv * mv;
            }
        }
    }
    o
}

/// Rounds half away from zero, as a JPEG quantiser does (|v| < 2^31).
#[inline]
fn round_away(v: f32) -> f32 {
    (v + 0.5f32.copysign(v)) as i32 as f32
}

/// Immerkær noise level per block, in log units; pixels on strong edges
/// (top 20% gradient) excluded, blocks with fewer than a quarter of their
/// pixels left are not measured.
fn noise(y: &Plane, grad: &[f32]) -> BlockMap {
    let (w, h) = (y.w, y.h);
    let (bw, bh) = (w / BLOCK, h / BLOCK);
    let mut map = BlockMap::new(bw, bh);
    if w < 3 || h < 3 {
        return map;
    }
    let mut g: Vec<f32> = grad.iter().copied().step_by(7).collect();
    let edge = quantile(&mut g, 0.8).max(1.0);
    let k = (std::f32::consts::PI / 2.0).sqrt() / 6.0;
    for by in 0..bh {
        for bx in 0..bw {
            let (mut s, mut n) = (0.0f32, 0usize);
            for r in (by * BLOCK).max(1)..((by + 1) * BLOCK).min(h - 1) {
                for c in (bx * BLOCK).max(1)..((bx + 1) * BLOCK).min(w - 1) {
                    if grad[r * w + c] > edge {
                        continue;
                    }
                    let m = y.at(c - 1, r - 1) - 2.0 * y.at(c, r - 1) + y.at(c + 1, r - 1)
                        - 2.0 * y.at(c - 1, r)
                        + 4.0 * y.at(c, r)
                        - 2.0 * y.at(c + 1, r)
                        + y.at(c - 1, r + 1)
                        - 2.0 * y.at(c, r + 1)
                        + y.at(c + 1, r + 1);
                    s += m.abs();
                    n += 1;
                }
            }
            if n >= BLOCK * BLOCK / 4 {
                map.v[by * bw + bx] = (k * s / n as f32 + 0.25).ln();
            }
        }
    }
    map
}

/// NPR residual energy at the four 2×2 cell offsets.
fn npr_energy(y: &Plane) -> [f64; 4] {
    let mut e = [0.0f64; 4];
    for (k, (ox, oy)) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate() {
        let (mut s, mut n) = (0.0f64, 0usize);
        let mut r = oy;
        while r + 1 < y.h {
            let mut c = ox;
            let mut row = 0.0f32;
            while c + 1 < y.w {
                let a = y.at(c, r);
                row += (y.at(c + 1, r) - a).abs()
                    + (y.at(c, r + 1) - a).abs()
                    + (y.at(c + 1, r + 1) - a).abs();
                n += 1;
                c += 2;
            }
            s += f64::from(row);
            r += 2;
        }
        e[k] = if n > 0 { s / n as f64 } else { f64::NAN };
    }
    e
}

/// ln(mean of the three other offsets / the smallest).
fn npr_asym(y: &Plane) -> f64 {
    if y.w < 32 || y.h < 32 {
        return f64::NAN;
    }
    let e = npr_energy(y);
    let (imin, min) = e
        .iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, f64::NAN));
    let others: f64 = e
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != imin)
        .map(|(_, v)| v)
        .sum::<f64>()
        / 3.0;
    ((others + 0.01) / (min + 0.01)).ln()
}

/// Natural-order index of each zig-zag position.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// The IJG (libjpeg) standard luminance table, natural order.
const IJG_LUMA: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// The IJG (libjpeg) standard chrominance table, natural order.
const IJG_CHROMA: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// The IJG quality (1–100) whose luminance table is closest to `zz`.
pub fn ijg_quality(zz: &[u16; 64]) -> u32 {
    let mut natural = [0u16; 64];
    for (z, &v) in zz.iter().enumerate() {
        natural[ZIGZAG[z]] = v;
    }
    (1..=100u32)
        .min_by_key(|&q| {
            IJG_LUMA
                .iter()
                .zip(&natural)
                .map(|(&b, &t)| {
                    let v = ijg_step(b, q);
                    (i64::from(v) - i64::from(t)).unsigned_abs()
                })
                .sum::<u64>()
        })
        .unwrap_or(0)
}

/// Double-compression roughness of the quotient histograms (zig-zag modes
/// 1–9 of the luminance table), median over usable modes.
fn double_jpeg(y: &Plane, zz: &[u16; 64]) -> f64 {
    const K: i32 = 20;
    const MODES: usize = 9;
    let (bw, bh) = (y.w / 8, y.h / 8);
    if bw * bh < 64 {
        return f64::NAN;
    }
    // Basis of each mode: 1/4 C(u) C(v) cos((2x+1)uπ/16) cos((2y+1)vπ/16).
    let mut basis = [[0.0f32; 64]; MODES];
    let mut q = [0.0f32; MODES];
    for (m, b) in basis.iter_mut().enumerate() {
        let nat = ZIGZAG[m + 1];
        let (v, u) = (nat / 8, nat % 8);
        let cu = if u == 0 { 1.0 / 2f32.sqrt() } else { 1.0 };
        let cv = if v == 0 { 1.0 / 2f32.sqrt() } else { 1.0 };
        for yy in 0..8 {
            for xx in 0..8 {
                let c = std::f32::consts::PI / 16.0;
                b[yy * 8 + xx] = 0.25
                    * cu
                    * cv
                    * ((2 * xx + 1) as f32 * u as f32 * c).cos()
                    * ((2 * yy + 1) as f32 * v as f32 * c).cos();
            }
        }
        q[m] = f32::from(zz[m + 1].max(1));
    }
    let mut hist = vec![[0u32; (2 * K + 1) as usize]; MODES];
    let mut px = [0.0f32; 64];
    for by in 0..bh {
        for bx in 0..bw {
            for yy in 0..8 {
                for xx in 0..8 {
                    px[yy * 8 + xx] = y.at(bx * 8 + xx, by * 8 + yy) - 128.0;
                }
            }
            for m in 0..MODES {
                let f: f32 = basis[m].iter().zip(&px).map(|(a, b)| a * b).sum();
                let k = (f / q[m]).round() as i32;
                if k.abs() <= K {
                    hist[m][(k + K) as usize] += 1;
                }
            }
        }
    }
    let mut scores: Vec<f32> = Vec::new();
    for h in &hist {
        let at = |k: i32| f64::from(h[(k + K) as usize]);
        let mass: f64 = (1..=K).map(|k| at(k) + at(-k)).sum();
        if mass < 100.0 {
            continue;
        }
        let mut rough = 0.0;
        for k in 2..K {
            for s in [k, -k] {
                let d = if s > 0 { 1 } else { -1 };
                rough += (at(s) - 0.5 * (at(s - d) + at(s + d))).abs();
            }
        }
        scores.push((rough / mass) as f32);
    }
    if scores.is_empty() {
        return f64::NAN;
    }
    f64::from(quantile(&mut scores, 0.5))
}

struct Spectrum {
    side: usize,
    peak: f64,
    hf: f64,
    picture: Vec<u8>,
}

/// Log power spectrum of the centre `side`×`side` window (Hann-windowed).
fn spectrum(y: &Plane, max_side: usize) -> Option<Spectrum> {
    let mut n = 1usize;
    while n * 2 <= y.w.min(y.h).min(max_side) {
        n *= 2;
    }
    if n < 64 {
        return None;
    }
    let (x0, y0) = ((y.w - n) / 2, (y.h - n) / 2);
    let mut mean = 0.0f32;
    for r in 0..n {
        for c in 0..n {
            mean += y.at(x0 + c, y0 + r);
        }
    }
    mean /= (n * n) as f32;
    let hann: Vec<f32> = (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos())
        .collect();
    let mut buf: Vec<Complex32> = Vec::with_capacity(n * n);
    for r in 0..n {
        for c in 0..n {
            buf.push(Complex32::new(
                (y.at(x0 + c, y0 + r) - mean) * hann[r] * hann[c],
                0.0,
            ));
        }
    }
    let fft: Arc<dyn rustfft::Fft<f32>> = FftPlanner::new().plan_fft_forward(n);
    for row in buf.chunks_mut(n) {
        fft.process(row);
    }
    let mut col = vec![Complex32::default(); n];
    for c in 0..n {
        for r in 0..n {
            col[r] = buf[r * n + c];
        }
        fft.process(&mut col);
        for r in 0..n {
            buf[r * n + c] = col[r];
        }
    }
    // Shifted log power: index (r, c) ↔ frequency (r − n/2, c − n/2).
    let half = n / 2;
    let mut lp = vec![0.0f32; n * n];
    for r in 0..n {
        for c in 0..n {
            let v = buf[((r + half) % n) * n + (c + half) % n];
            lp[r * n + c] = (v.norm_sqr() + 1e-3).ln();
        }
    }
    let ring = |r: usize, c: usize| -> usize {
        let (dr, dc) = (r as f32 - half as f32, c as f32 - half as f32);
        (dr * dr + dc * dc).sqrt().round() as usize
    };
    let mut sum = vec![0.0f64; half + 1];
    let mut cnt = vec![0usize; half + 1];
    for r in 0..n {
        for c in 0..n {
            let k = ring(r, c);
            if k <= half {
                sum[k] += f64::from(lp[r * n + c]);
                cnt[k] += 1;
            }
        }
    }
    let ring_mean: Vec<f64> = sum
        .iter()
        .zip(&cnt)
        .map(|(s, &k)| if k > 0 { s / k as f64 } else { f64::NAN })
        .collect();
    // Power-law fit of the mid band, tail residual.
    let lo = (n / 32).max(2);
    let tail = (half * 3) / 4;
    let pts: Vec<(f64, f64)> = (lo..tail)
        .map(|k| ((k as f64).ln(), ring_mean[k]))
        .collect();
    let np = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / np;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / np;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let slope = sxy / sxx.max(1e-9);
    let hf = (tail..half)
        .map(|k| ring_mean[k] - (my + slope * ((k as f64).ln() - mx)))
        .sum::<f64>()
        / (half - tail) as f64;
    // Isolated peaks off the 8×8 lattice and away from low frequencies.
    let lattice = n / 8;
    let near_lattice = |f: usize| {
        let d = f.abs_diff(half) % lattice;
        d <= 1 || d + 1 >= lattice
    };
    let mut peak = f64::NEG_INFINITY;
    for r in 0..n {
        for c in 0..n {
            let k = ring(r, c);
            if k < n / 8 || k >= half || (near_lattice(r) && near_lattice(c)) {
                continue;
            }
            peak = peak.max(f64::from(lp[r * n + c]) - ring_mean[k]);
        }
    }
    // Picture: at most 256 px, max-pooled, stretched between p1 and p99.
    let step = (n / 256).max(1);
    let side = n / step;
    let mut pooled = vec![f32::NEG_INFINITY; side * side];
    for r in 0..n {
        for c in 0..n {
            let i = (r / step) * side + c / step;
            pooled[i] = pooled[i].max(lp[r * n + c]);
        }
    }
    let mut s = pooled.clone();
    let (p1, p99) = (quantile(&mut s, 0.01), quantile(&mut s, 0.99));
    let picture = pooled
        .iter()
        .map(|v| (((v - p1) / (p99 - p1).max(1e-3)).clamp(0.0, 1.0) * 255.0) as u8)
        .collect();
    Some(Spectrum {
        side,
        peak: if peak.is_finite() { peak } else { f64::NAN },
        hf,
        picture,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;

    /// A deterministic textured test image with mild sensor-like noise.
    fn natural(w: u32, h: u32, seed: u32) -> RgbImage {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 1000) as f32 / 1000.0
        };
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            let base = 120.0
                + 50.0 * (fx / 37.0).sin() * (fy / 23.0).cos()
                + 30.0 * ((fx + fy) / 11.0).sin();
            let mut v = |o: f32| (base + o + 6.0 * (rnd() - 0.5)).clamp(0.0, 255.0) as u8;
            image::Rgb([v(10.0), v(0.0), v(-10.0)])
        })
    }

    #[test]
    fn upsampling_by_two_raises_npr_asymmetry() {
        let img = natural(256, 256, 7);
        let small = image::imageops::resize(&img, 128, 128, image::imageops::FilterType::Triangle);
        let up = image::imageops::resize(&small, 256, 256, image::imageops::FilterType::Nearest);
        let a = npr_asym(&luma(&img));
        let b = npr_asym(&luma(&up));
        assert!(a < 0.1, "camera-like image asymmetry {a}");
        assert!(b > 1.0, "upsampled image asymmetry {b}");
    }

    #[test]
    fn noisy_patch_raises_noise_spread() {
        let img = natural(256, 256, 3);
        let mut patched = img.clone();
        let mut s = 12345u32;
        for y in 64..192 {
            for x in 64..192 {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let n = (s % 41) as i32 - 20;
                let p = patched.get_pixel_mut(x, y);
                for ch in p.0.iter_mut() {
                    *ch = (i32::from(*ch) + n).clamp(0, 255) as u8;
                }
            }
        }
        let cfg = ForensicConfig::default();
        let a = analyze(&img, None, &cfg).unwrap().x[2];
        let b = analyze(&patched, None, &cfg).unwrap().x[2];
        assert!(b > a + 0.5, "noise spread {a} -> {b}");
    }

    #[test]
    fn double_compression_roughens_the_histograms() {
        let img = natural(384, 384, 11);
        let jpeg = |img: &RgbImage, q: u8| -> RgbImage {
            let mut buf = Vec::new();
            JpegEncoder::new_with_quality(&mut buf, q)
                .encode_image(img)
                .unwrap();
            image::load_from_memory(&buf).unwrap().to_rgb8()
        };
        // The encoder's luminance table at quality 90 (IJG scaling).
        let table = |q: u32| -> [u16; 64] {
            let mut zz = [0u16; 64];
            for (z, &nat) in ZIGZAG.iter().enumerate() {
                zz[z] = ijg_step(IJG_LUMA[nat], q) as u16;
            }
            zz
        };
        assert_eq!(ijg_quality(&table(90)), 90);
        let once = jpeg(&img, 90);
        let twice = jpeg(&jpeg(&img, 60), 90);
        let a = double_jpeg(&luma(&once), &table(90));
        let b = double_jpeg(&luma(&twice), &table(90));
        assert!(b > 2.0 * a, "roughness once {a}, twice {b}");
    }

    /// The plain 3×3 box blur with replicated edges.
    fn box3_reference(y: &Plane) -> Plane {
        let (w, h) = (y.w as i64, y.h as i64);
        let mut v = Vec::with_capacity(y.v.len());
        for r in 0..h {
            for c in 0..w {
                let mut s = 0.0;
                for dr in -1..=1 {
                    for dc in -1..=1 {
                        let (rr, cc) = ((r + dr).clamp(0, h - 1), (c + dc).clamp(0, w - 1));
                        s += y.at(cc as usize, rr as usize);
                    }
                }
                v.push(s / 9.0);
            }
        }
        Plane { w: y.w, h: y.h, v }
    }

    #[test]
    fn separable_box_blur_matches_the_plain_one() {
        for (w, h) in [(1, 1), (1, 5), (5, 1), (2, 2), (37, 23)] {
            let y = luma(&natural(w, h, 9));
            let (a, b) = (box3(&y), box3_reference(&y));
            assert_eq!((a.w, a.h), (b.w, b.h));
            for (p, q) in a.v.iter().zip(&b.v) {
                assert!((p - q).abs() < 1e-3, "{w}x{h}: {p} vs {q}");
            }
        }
    }

    /// The DCT-domain re-save error against a real encoder and decoder: the
    /// RMS pixel error of `image`'s JPEG round trip at the same quality.
    #[test]
    fn dct_domain_resave_error_matches_a_real_round_trip() {
        for seed in [2, 4] {
            let img = natural(128, 128, seed);
            let flat = vec![0.0f32; 128 * 128];
            let map = ela(&img, &flat, 90);
            let mine: f32 =
                map.v.iter().map(|v| (v * 2.0).powi(2)).sum::<f32>() / map.v.len() as f32;
            let mut buf = Vec::new();
            JpegEncoder::new_with_quality(&mut buf, 90)
                .encode_image(&img)
                .unwrap();
            let re = image::load_from_memory(&buf).unwrap().to_rgb8();
            let real: f32 = img
                .as_raw()
                .iter()
                .zip(re.as_raw())
                .map(|(&a, &b)| (f32::from(a) - f32::from(b)).powi(2))
                .sum::<f32>()
                / img.as_raw().len() as f32;
            let (mine, real) = (mine.sqrt(), real.sqrt());
            assert!(
                (mine / real - 1.0).abs() < 0.15,
                "DCT-domain RMS {mine} against the round trip's {real}"
            );
        }
    }

    #[test]
    fn a_pasted_uncompressed_patch_stands_out_in_the_ela() {
        // A photo saved at quality 75, with a patch pasted back from the
        // never-compressed original: re-saving at 90 changes the patch more.
        let img = natural(256, 256, 13);
        let mut buf = Vec::new();
        JpegEncoder::new_with_quality(&mut buf, 75)
            .encode_image(&img)
            .unwrap();
        let saved = image::load_from_memory(&buf).unwrap().to_rgb8();
        let mut spliced = saved.clone();
        for y in 96..160 {
            for x in 96..160 {
                spliced.put_pixel(x, y, *img.get_pixel(x, y));
            }
        }
        let cfg = ForensicConfig::default();
        let a = analyze(&saved, None, &cfg).unwrap();
        let b = analyze(&spliced, None, &cfg).unwrap();
        assert!(b.x[0] > 2.0 * a.x[0], "ela spread {} -> {}", a.x[0], b.x[0]);
        let z = b.ela.robust_z();
        let inside = z.v[7 * z.bw + 7];
        let outside = z.v[2 * z.bw + 2];
        assert!(
            inside > 3.0 && outside.abs() < 2.0,
            "z inside {inside}, outside {outside}"
        );
    }

    #[test]
    fn small_images_measure_what_they_can() {
        let img = natural(28, 28, 1);
        let f = analyze(&img, None, &ForensicConfig::default()).unwrap();
        assert!(f.x[0].is_nan() && f.x[3].is_nan() && f.x[4].is_nan());
        assert!(f.spectrum.is_none());
    }

    #[test]
    fn large_images_are_cropped_on_the_jpeg_grid() {
        let img = natural(1700, 300, 5);
        let f = analyze(&img, None, &ForensicConfig::default()).unwrap();
        assert_eq!(f.region.2, 1536);
        assert_eq!(f.region.0 % 8, 0);
        assert!(f.x.iter().enumerate().all(|(i, v)| i == 1 || v.is_finite()));
    }
}
