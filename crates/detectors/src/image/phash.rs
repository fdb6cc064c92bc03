//! Perceptual hashes of a picture for the identity registry (issue 18):
//! the same photograph behind two applicants, re-encoded, resized or
//! re-cropped, whoever is in it (a generated face too).
//!
//! The hash is the classic DCT one: the picture's luma averaged down to
//! 32×32, its 2-D DCT-II, and one bit per low-frequency coefficient of the
//! top-left 8×8 block (the mean term left out, its bit always 0): set when
//! the coefficient is above their median. Re-encoding, resizing and small
//! colour changes move few bits; another photograph moves about half.
//! Three hashes are kept: the whole picture, and the largest face aligned
//! to two fixed framings, which a re-crop of the picture does not move: a
//! wide one with some hair and background, and a close one (the face
//! alone), which a crop into the background or hair moves less and
//! landmark jitter moves more. The distances that decide a match are
//! measured in docs/identity-evaluation.md (`candor identity-eval`).

use image::RgbImage;

use super::yunet::{self, AlignSpec, Face};

/// Id of the hash (reported as the template's model).
pub const MODEL: &str = "candor-photo-dct-hash";
/// Version: changes whenever a hash of the same picture would change.
pub const VERSION: &str = "2";
/// Side of the grid the DCT runs on.
const N: usize = 32;
/// Side of the low-frequency block kept.
const K: usize = 8;
/// Framing of the face crop: the five-point template over 55% of the crop.
pub const FACE_SPEC: AlignSpec = AlignSpec {
    side: 64,
    zoom: 0.55,
};

/// The close framing: the five-point template over 80% of the crop.
pub const CLOSE_SPEC: AlignSpec = AlignSpec {
    side: 64,
    zoom: 0.8,
};

/// Luma of `img` averaged over a 32×32 grid of boxes (a picture smaller
/// than 32 px on a side repeats its pixels).
fn grid(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut sum = vec![0f64; N * N];
    let mut count = vec![0u32; N * N];
    if w == 0 || h == 0 {
        return vec![0.0; N * N];
    }
    let raw = img.as_raw();
    let col: Vec<usize> = (0..w).map(|x| x * N / w).collect();
    for y in 0..h {
        let r = y * N / h;
        let row = &raw[y * w * 3..(y + 1) * w * 3];
        for (x, p) in row.chunks_exact(3).enumerate() {
            let l = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            let i = r * N + col[x];
            sum[i] += l;
            count[i] += 1;
        }
    }
    // Boxes no pixel fell into (a side under 32 px): the nearest pixel's.
    (0..N * N)
        .map(|i| {
            if count[i] > 0 {
                (sum[i] / f64::from(count[i])) as f32
            } else {
                let (r, c) = (i / N, i % N);
                let (y, x) = (r * h / N, c * w / N);
                let p = img.get_pixel(x as u32, y as u32);
                0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
            }
        })
        .collect()
}

/// The 64-bit hash of a 32×32 luma grid.
fn dct_hash(g: &[f32]) -> u64 {
    let cos: Vec<f64> = (0..K * N)
        .map(|i| {
            let (u, x) = (i / N, i % N);
            (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * N) as f64).cos()
        })
        .collect();
    // Columns first (over y), then rows (over x); only the 8×8 kept.
    let mut t = vec![0f64; K * N];
    for u in 0..K {
        for x in 0..N {
            t[u * N + x] = (0..N)
                .map(|y| cos[u * N + y] * f64::from(g[y * N + x]))
                .sum();
        }
    }
    let mut c = [0f64; K * K];
    for u in 0..K {
        for v in 0..K {
            c[u * K + v] = (0..N).map(|x| cos[v * N + x] * t[u * N + x]).sum();
        }
    }
    let mut ac: Vec<f64> = c[1..].to_vec();
    ac.sort_by(f64::total_cmp);
    let median = ac[ac.len() / 2];
    let mut h = 0u64;
    for (i, v) in c.iter().enumerate().skip(1) {
        if *v > median {
            h |= 1 << i;
        }
    }
    h
}

/// Hash of the whole picture.
pub fn whole(img: &RgbImage) -> u64 {
    dct_hash(&grid(img))
}

/// Hash of `face` aligned to `spec` ([`FACE_SPEC`], [`CLOSE_SPEC`]; none
/// when it cannot be aligned).
pub fn face(img: &RgbImage, face: &Face, spec: AlignSpec) -> Option<u64> {
    let (crop, _) = yunet::align(img, &face.landmarks, spec)?;
    Some(dct_hash(&grid(&crop)))
}

/// The registry's template of a picture.
pub fn template(img: &RgbImage, largest: Option<&Face>) -> candor_core::PhotoTemplate {
    candor_core::PhotoTemplate {
        whole: whole(img),
        face: largest.and_then(|f| face(img, f, FACE_SPEC)),
        face_close: largest.and_then(|f| face(img, f, CLOSE_SPEC)),
        model: format!("{MODEL} {VERSION}"),
        size: [img.width(), img.height()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits in which two hashes differ (0-64).
    fn distance(a: u64, b: u64) -> u32 {
        (a ^ b).count_ones()
    }

    fn scene(w: u32, h: u32, seed: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let s = seed as f32;
            let v = 128.0
                + 60.0 * (fx * (3.0 + s) + fy * 2.0).sin()
                + 40.0 * (fy * (5.0 + s * 0.7) - fx).cos()
                + 20.0 * ((fx - 0.5).powi(2) + (fy - 0.4).powi(2) < 0.04) as u8 as f32;
            let v = v.clamp(0.0, 255.0) as u8;
            image::Rgb([v, v.saturating_sub(20), v / 2])
        })
    }

    fn jpeg(img: &RgbImage, q: u8) -> RgbImage {
        let mut b = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut b, q)
            .encode_image(img)
            .unwrap();
        image::load_from_memory(&b).unwrap().to_rgb8()
    }

    #[test]
    fn the_same_picture_re_encoded_and_resized_stays_close() {
        let a = scene(640, 480, 1);
        let h = whole(&a);
        let small = image::imageops::resize(&a, 300, 225, image::imageops::FilterType::Triangle);
        assert!(distance(h, whole(&jpeg(&a, 50))) <= 4);
        assert!(distance(h, whole(&jpeg(&small, 70))) <= 6);
        // A different scene differs in many bits.
        assert!(distance(h, whole(&scene(640, 480, 4))) >= 16);
    }

    #[test]
    fn hashes_are_deterministic_and_keep_the_mean_bit_clear() {
        let a = scene(100, 37, 2);
        assert_eq!(whole(&a), whole(&a));
        assert_eq!(whole(&a) & 1, 0);
        // Tiny and flat pictures hash without panicking.
        let _ = whole(&RgbImage::new(1, 1));
        let _ = whole(&RgbImage::new(3, 50));
        assert_eq!(distance(u64::MAX, 0), 64);
    }
}
