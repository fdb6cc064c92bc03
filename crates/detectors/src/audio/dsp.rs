//! Signal forensics for 16 kHz mono speech: per-frame analysis once per
//! file, aggregated per segment into the named forensic features.
//!
//! Frames are 32 ms (512 samples, Hann) every 10 ms. Per frame: the power
//! spectrum (1024-point, zero-padded, so the inverse transform is the
//! linear autocorrelation), the frame level, and a pitch estimate from the
//! normalised autocorrelation peak in 60-400 Hz. The segment features are
//! the kind of cues voice changers and vocoders leave (see
//! docs/audio-detector.md): too flat or too jumpy pitch, too periodic
//! voicing, a hard band limit, a noise-like or empty high band, smeared
//! transients, an unnatural syllable rhythm.

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

/// Sample rate the analysis assumes.
pub const RATE: usize = 16_000;
/// Analysis frame length (32 ms).
pub const FRAME: usize = 512;
/// Hop between frames (10 ms).
pub const HOP: usize = 160;
/// FFT length (frame zero-padded to twice its length).
pub const NFFT: usize = 1024;
/// Power-spectrum bins kept (DC..Nyquist).
pub const BINS: usize = NFFT / 2 + 1;
/// Frames per second.
pub const FRAME_RATE: f64 = RATE as f64 / HOP as f64;

const F0_MIN: f32 = 60.0;
const F0_MAX: f32 = 400.0;
/// Normalised autocorrelation peak above which a frame is voiced.
const VOICED_AT: f32 = 0.45;
/// Frames more than this far (dB) below the segment's loudest are inactive.
const ACTIVE_DB: f32 = 35.0;

/// Names of the segment features, in vector order.
pub const FEATURES: [&str; 7] = [
    "pitch.f0_std_semitones",
    "pitch.jitter",
    "pitch.periodicity",
    "spectrum.cutoff_hz",
    "spectrum.high_band_flatness",
    "spectrum.transient_sharpness",
    "modulation.syllabic_share",
];

/// What each feature measures (shown with the signal).
pub fn describe(name: &str) -> &'static str {
    match name {
        "pitch.f0_std_semitones" => {
            "spread of the pitch contour over voiced frames, in semitones (flat = monotone synthesis)"
        }
        "pitch.jitter" => {
            "mean frame-to-frame pitch period change relative to the period (human speech 1-3%)"
        }
        "pitch.periodicity" => {
            "mean normalised autocorrelation peak of voiced frames (vocoders are over-periodic)"
        }
        "spectrum.cutoff_hz" => {
            "highest frequency within 45 dB of the segment's spectral peak (band limit of codec or vocoder)"
        }
        "spectrum.high_band_flatness" => {
            "spectral flatness in 4-7.5 kHz over active frames (1 = noise-like, 0 = tonal or empty)"
        }
        "spectrum.transient_sharpness" => {
            "95th percentile over median of the positive spectral flux (phase vocoders smear onsets)"
        }
        "modulation.syllabic_share" => {
            "share of the level envelope's modulation energy at 2-8 Hz (syllable rhythm)"
        }
        _ => "forensic feature",
    }
}

/// Per-frame analysis of a whole file.
#[derive(Debug, Clone, Default)]
pub struct Frames {
    /// Power spectrum per frame, `BINS` values each (row-major).
    pub power: Vec<f32>,
    /// Frame level in dB (relative to full scale).
    pub level_db: Vec<f32>,
    /// Pitch in Hz, 0 when unvoiced.
    pub f0: Vec<f32>,
    /// Normalised autocorrelation peak (0..1).
    pub periodicity: Vec<f32>,
}

impl Frames {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.level_db.len()
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.level_db.is_empty()
    }

    /// One frame's power spectrum.
    pub fn spectrum(&self, i: usize) -> &[f32] {
        &self.power[i * BINS..(i + 1) * BINS]
    }
}

/// Reusable FFT plans and buffers.
pub struct Analyzer {
    fwd: Arc<dyn Fft<f32>>,
    inv: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// Autocorrelation of the window itself, to undo its taper.
    window_ac: Vec<f32>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl Analyzer {
    pub fn new() -> Self {
        let mut planner = FftPlanner::<f32>::new();
        let fwd = planner.plan_fft_forward(NFFT);
        let inv = planner.plan_fft_inverse(NFFT);
        let window: Vec<f32> = (0..FRAME)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / FRAME as f32).cos())
            .collect();
        let window_ac = (0..FRAME)
            .map(|lag| {
                window[..FRAME - lag]
                    .iter()
                    .zip(&window[lag..])
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
            })
            .collect();
        Analyzer {
            fwd,
            inv,
            window,
            window_ac,
        }
    }

    /// Analyses 16 kHz mono samples frame by frame.
    pub fn frames(&self, samples: &[f32]) -> Frames {
        let n = if samples.len() >= FRAME {
            (samples.len() - FRAME) / HOP + 1
        } else {
            0
        };
        let mut out = Frames {
            power: vec![0.0; n * BINS],
            level_db: vec![-120.0; n],
            f0: vec![0.0; n],
            periodicity: vec![0.0; n],
        };
        let mut buf = vec![Complex32::new(0.0, 0.0); NFFT];
        let mut scratch = vec![Complex32::new(0.0, 0.0); self.fwd.get_inplace_scratch_len()];
        let min_lag = (RATE as f32 / F0_MAX).floor() as usize;
        let max_lag = (RATE as f32 / F0_MIN).ceil() as usize;
        for i in 0..n {
            let frame = &samples[i * HOP..i * HOP + FRAME];
            let mean = frame.iter().sum::<f32>() / FRAME as f32;
            let mut energy = 0.0f32;
            for (k, c) in buf.iter_mut().enumerate() {
                *c = if k < FRAME {
                    let v = (frame[k] - mean) * self.window[k];
                    energy += v * v;
                    Complex32::new(v, 0.0)
                } else {
                    Complex32::new(0.0, 0.0)
                };
            }
            out.level_db[i] = 10.0 * (energy / FRAME as f32 + 1e-12).log10();
            self.fwd.process_with_scratch(&mut buf, &mut scratch);
            let p = &mut out.power[i * BINS..(i + 1) * BINS];
            for (k, c) in buf.iter_mut().enumerate() {
                let pw = c.norm_sqr();
                if k < BINS {
                    p[k] = pw;
                }
                *c = Complex32::new(pw, 0.0);
            }
            if energy <= 1e-9 {
                continue;
            }
            self.inv.process_with_scratch(&mut buf, &mut scratch);
            let r0 = buf[0].re.max(1e-12);
            // Normalised, taper-corrected autocorrelation; best peak in range.
            let mut best = (0usize, 0.0f32);
            for lag in min_lag..=max_lag.min(FRAME - 1) {
                let r = buf[lag].re / r0 * (self.window_ac[0] / self.window_ac[lag].max(1e-6));
                let prev = buf[lag - 1].re;
                let next = buf[lag + 1].re;
                if buf[lag].re >= prev && buf[lag].re >= next && r > best.1 {
                    best = (lag, r);
                }
            }
            let (lag, r) = best;
            out.periodicity[i] = r.clamp(0.0, 1.0);
            if lag > 0 && r >= VOICED_AT {
                // Parabolic interpolation of the peak.
                let (a, b, c) = (buf[lag - 1].re, buf[lag].re, buf[lag + 1].re);
                let denom = a - 2.0 * b + c;
                let shift = if denom.abs() > 1e-12 {
                    (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
                } else {
                    0.0
                };
                out.f0[i] = RATE as f32 / (lag as f32 + shift);
            }
        }
        out
    }
}

/// The forensic features of frames `range` (a segment), in [`FEATURES`]
/// order. A feature that cannot be measured (e.g. pitch of an unvoiced
/// segment) is `NaN`; the fusion head treats it as average.
pub fn segment_features(frames: &Frames, range: std::ops::Range<usize>) -> [f64; 7] {
    let mut x = [f64::NAN; 7];
    let range = range.start.min(frames.len())..range.end.min(frames.len());
    if range.is_empty() {
        return x;
    }
    let lv = &frames.level_db[range.clone()];
    let loudest = lv.iter().copied().fold(f32::MIN, f32::max);
    let active: Vec<usize> = range
        .clone()
        .filter(|&i| frames.level_db[i] >= loudest - ACTIVE_DB)
        .collect();

    // Pitch.
    let voiced: Vec<usize> = active
        .iter()
        .copied()
        .filter(|&i| frames.f0[i] > 0.0)
        .collect();
    if voiced.len() >= 5 {
        let st: Vec<f64> = voiced
            .iter()
            .map(|&i| 12.0 * (frames.f0[i] as f64 / 100.0).log2())
            .collect();
        x[0] = std_dev(&st);
        let mut jit = Vec::new();
        for w in voiced.windows(2) {
            if w[1] == w[0] + 1 {
                let (p0, p1) = (1.0 / frames.f0[w[0]] as f64, 1.0 / frames.f0[w[1]] as f64);
                jit.push((p1 - p0).abs() / (0.5 * (p0 + p1)));
            }
        }
        if !jit.is_empty() {
            x[1] = mean(&jit);
        }
        x[2] = mean(
            &voiced
                .iter()
                .map(|&i| frames.periodicity[i] as f64)
                .collect::<Vec<_>>(),
        );
    }

    // Long-term spectrum of the active frames.
    if !active.is_empty() {
        let mut avg = vec![0f64; BINS];
        for &i in &active {
            for (a, p) in avg.iter_mut().zip(frames.spectrum(i)) {
                *a += *p as f64;
            }
        }
        let db: Vec<f64> = smooth(&avg, 4)
            .iter()
            .map(|v| 10.0 * (v / active.len() as f64 + 1e-20).log10())
            .collect();
        let peak = db.iter().copied().fold(f64::MIN, f64::max);
        let hz_per_bin = RATE as f64 / NFFT as f64;
        let top = db.iter().rposition(|&v| v >= peak - 45.0).unwrap_or(0);
        x[3] = top as f64 * hz_per_bin;

        let (lo, hi) = (
            (4000.0 / hz_per_bin) as usize,
            (7500.0 / hz_per_bin) as usize,
        );
        let mut flat = Vec::with_capacity(active.len());
        for &i in &active {
            let band = &frames.spectrum(i)[lo..hi];
            let am = band.iter().map(|&v| v as f64).sum::<f64>() / band.len() as f64;
            if am > 0.0 {
                let gm = (band.iter().map(|&v| (v as f64 + 1e-20).ln()).sum::<f64>()
                    / band.len() as f64)
                    .exp();
                flat.push(gm / am);
            }
        }
        if !flat.is_empty() {
            x[4] = mean(&flat);
        }
    }

    // Transient sharpness: positive log-spectral flux between frames.
    if range.len() >= 10 {
        let mut flux = Vec::with_capacity(range.len());
        for i in range.start + 1..range.end {
            let (a, b) = (frames.spectrum(i - 1), frames.spectrum(i));
            let f: f64 = a
                .iter()
                .zip(b)
                .map(|(&p, &q)| ((q as f64 + 1e-10).ln() - (p as f64 + 1e-10).ln()).max(0.0))
                .sum::<f64>()
                / BINS as f64;
            flux.push(f);
        }
        flux.sort_by(|a, b| a.total_cmp(b));
        let med = flux[flux.len() / 2];
        let p95 = flux[(flux.len() * 95 / 100).min(flux.len() - 1)];
        if med > 0.0 {
            x[5] = p95 / med;
        }
    }

    // Syllabic modulation: spectrum of the level envelope.
    if range.len() >= 64 {
        let env: Vec<f64> = lv.iter().map(|&v| v.max(loudest - 60.0) as f64).collect();
        let m = mean(&env);
        let n = env.len();
        let (mut syl, mut all) = (0.0, 0.0);
        // Direct DFT over the few bins needed (n <= a few hundred).
        for k in 1..n / 2 {
            let hz = k as f64 * FRAME_RATE / n as f64;
            if !(0.5..=32.0).contains(&hz) {
                continue;
            }
            let (mut re, mut im) = (0.0, 0.0);
            for (t, v) in env.iter().enumerate() {
                let ang = 2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                re += (v - m) * ang.cos();
                im -= (v - m) * ang.sin();
            }
            let e = re * re + im * im;
            all += e;
            if (2.0..=8.0).contains(&hz) {
                syl += e;
            }
        }
        if all > 0.0 {
            x[6] = syl / all;
        }
    }
    x
}

fn smooth(v: &[f64], half: usize) -> Vec<f64> {
    (0..v.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(v.len()));
            v[a..b].iter().sum::<f64>() / (b - a) as f64
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn std_dev(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, secs: f32, amp: f32) -> Vec<f32> {
        (0..(secs * RATE as f32) as usize)
            .map(|n| amp * (2.0 * std::f32::consts::PI * hz * n as f32 / RATE as f32).sin())
            .collect()
    }

    #[test]
    fn pitch_of_a_harmonic_tone_is_found() {
        // 150 Hz with harmonics: a crude voiced sound.
        let s: Vec<f32> = (0..RATE)
            .map(|n| {
                let t = n as f32 / RATE as f32;
                (1..6)
                    .map(|h| {
                        0.2 / h as f32 * (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin()
                    })
                    .sum()
            })
            .collect();
        let f = Analyzer::new().frames(&s);
        assert_eq!(f.len(), (RATE - FRAME) / HOP + 1);
        let voiced: Vec<f32> = f.f0.iter().copied().filter(|&v| v > 0.0).collect();
        assert!(voiced.len() > f.len() * 9 / 10);
        for v in voiced {
            assert!((v - 150.0).abs() < 2.0, "f0 {v}");
        }
        let x = segment_features(&f, 0..f.len());
        assert!(x[0] < 0.1, "a steady tone has a flat contour: {}", x[0]);
        assert!(x[1] < 0.01, "and no jitter: {}", x[1]);
        assert!(x[2] > 0.9, "and is periodic: {}", x[2]);
    }

    #[test]
    fn band_limit_is_measured() {
        // White-ish noise low-passed by summing tones below 3.4 kHz.
        let mut s = vec![0f32; RATE];
        for k in 1..100 {
            let hz = k as f32 * 33.0 + 17.0;
            for (v, t) in s.iter_mut().zip(tone(hz, 1.0, 0.01)) {
                *v += t;
            }
        }
        let f = Analyzer::new().frames(&s);
        let x = segment_features(&f, 0..f.len());
        assert!((3000.0..3800.0).contains(&x[3]), "cutoff {}", x[3]);
    }

    #[test]
    fn silence_and_short_input_give_nan_not_panic() {
        let f = Analyzer::new().frames(&[0.0; 100]);
        assert!(f.is_empty());
        assert!(segment_features(&f, 0..10).iter().all(|v| v.is_nan()));
        let f = Analyzer::new().frames(&vec![0.0; RATE]);
        let x = segment_features(&f, 0..f.len());
        assert!(x[0].is_nan());
    }
}
