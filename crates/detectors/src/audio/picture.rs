//! The spectrogram picture with the scored segments marked.
//!
//! Top: log-power spectrogram (0-8 kHz, low frequencies at the bottom).
//! Below it a timeline strip: each scored segment coloured by its label
//! (green likely authentic, amber inconclusive, red likely manipulated),
//! grey where nothing was scored. Segments at or above the manipulated
//! threshold are also framed in red on the spectrogram.

use super::dsp::{Frames, BINS, FRAME_RATE};

/// Picture height of the spectrogram part, in pixels.
const SPEC_H: usize = 128;
/// Height of the timeline strip.
const STRIP_H: usize = 14;
/// Widest picture, in pixels (long files are compressed in time).
pub const MAX_WIDTH: usize = 1200;

/// A segment to mark: start and end in seconds, calibrated probability.
pub struct Mark {
    pub start_s: f64,
    pub end_s: f64,
    pub probability: f64,
}

/// Renders the picture as PNG bytes.
pub fn render(
    frames: &Frames,
    marks: &[Mark],
    authentic_below: f64,
    manipulated_at: f64,
) -> Result<Vec<u8>, String> {
    let n = frames.len().max(1);
    let width = n.min(MAX_WIDTH);
    let height = SPEC_H + 2 + STRIP_H;
    let mut rgb = vec![0u8; width * height * 3];

    // Column = max power over its frames, rows = bins averaged in groups.
    let per_row = (BINS - 1) as f64 / SPEC_H as f64;
    let mut cols = vec![0f32; width * SPEC_H];
    for (x, col) in cols.chunks_mut(SPEC_H).enumerate() {
        let (f0, f1) = (x * n / width, ((x + 1) * n / width).max(x * n / width + 1));
        for f in f0..f1.min(frames.len()) {
            let spec = frames.spectrum(f);
            for (r, c) in col.iter_mut().enumerate() {
                let (b0, b1) = (
                    (r as f64 * per_row) as usize,
                    (((r + 1) as f64 * per_row) as usize).max((r as f64 * per_row) as usize + 1),
                );
                let v = spec[b0..b1.min(BINS)].iter().sum::<f32>() / (b1 - b0) as f32;
                *c = c.max(v);
            }
        }
    }
    let db: Vec<f32> = cols.iter().map(|v| 10.0 * (v + 1e-12).log10()).collect();
    let top = db.iter().copied().fold(f32::MIN, f32::max);
    for x in 0..width {
        for r in 0..SPEC_H {
            let v = ((db[x * SPEC_H + r] - (top - 80.0)) / 80.0).clamp(0.0, 1.0);
            let y = SPEC_H - 1 - r;
            put(&mut rgb, width, x, y, colormap(v));
        }
    }
    // Separator.
    for x in 0..width {
        for y in SPEC_H..SPEC_H + 2 {
            put(&mut rgb, width, x, y, [255, 255, 255]);
        }
    }
    // Timeline strip.
    for x in 0..width {
        for y in SPEC_H + 2..height {
            put(&mut rgb, width, x, y, [90, 90, 90]);
        }
    }
    let secs_per_px = n as f64 / FRAME_RATE / width as f64;
    let mut ordered: Vec<&Mark> = marks.iter().collect();
    // Draw the most suspicious last so overlapping segments show it.
    ordered.sort_by(|a, b| a.probability.total_cmp(&b.probability));
    for m in ordered {
        let x0 = ((m.start_s / secs_per_px) as usize).min(width - 1);
        let x1 = ((m.end_s / secs_per_px).ceil() as usize).clamp(x0 + 1, width);
        let colour = if m.probability >= manipulated_at {
            [220, 40, 40]
        } else if m.probability < authentic_below {
            [40, 170, 80]
        } else {
            [235, 170, 30]
        };
        for x in x0..x1 {
            for y in SPEC_H + 2..height {
                put(&mut rgb, width, x, y, colour);
            }
        }
        if m.probability >= manipulated_at {
            for x in x0..x1 {
                for y in [0, 1, SPEC_H - 2, SPEC_H - 1] {
                    put(&mut rgb, width, x, y, colour);
                }
            }
            for y in 0..SPEC_H {
                for x in [x0, x1 - 1] {
                    put(&mut rgb, width, x, y, colour);
                }
            }
        }
    }

    crate::pngenc::encode(&rgb, width, height, true)
}

fn put(rgb: &mut [u8], width: usize, x: usize, y: usize, c: [u8; 3]) {
    let i = (y * width + x) * 3;
    rgb[i..i + 3].copy_from_slice(&c);
}

/// Dark blue -> purple -> orange -> pale yellow.
fn colormap(v: f32) -> [u8; 3] {
    const STOPS: [(f32, [f32; 3]); 5] = [
        (0.0, [0.0, 0.0, 4.0]),
        (0.3, [60.0, 15.0, 110.0]),
        (0.55, [180.0, 55.0, 110.0]),
        (0.8, [250.0, 140.0, 40.0]),
        (1.0, [252.0, 253.0, 190.0]),
    ];
    for w in STOPS.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if v <= b {
            let t = ((v - a) / (b - a)).clamp(0.0, 1.0);
            return [0, 1, 2].map(|k| (ca[k] + t * (cb[k] - ca[k])) as u8);
        }
    }
    [252, 253, 190]
}
