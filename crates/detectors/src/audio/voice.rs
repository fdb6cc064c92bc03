//! The voice embedding of the identity registry (issue 18): the GE2E
//! speaker encoder (Resemblyzer's weights, 3 LSTM layers, 256-d) over the
//! speech the voice activity detector found. Computed only when a caller
//! asks for identity templates; the embedding never appears in a result
//! (see [`candor_core::IdentityTemplates`]).
//!
//! Front end, as the encoder was trained: the speech segments joined (the
//! silences between them left out), the level raised to −30 dBFS when it is
//! lower (never lowered), then 40-band mel *power* frames of a 25 ms Hann
//! window every 10 ms (Slaney mel scale and area normalisation, frames
//! centred with reflected edges). The frames are cut into partial
//! utterances of 160 frames (1.6 s) every 77 frames, each embedded, and the
//! mean of the partial embeddings, normalised, is the voice's template.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use candor_core::{Priority, VoiceTemplate};
use candor_engine::{ModelHandle, NamedTensor, TensorData};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

/// Id of the model in `models/manifest.toml`.
pub const MODEL: &str = "ge2e-speaker-embedding";
/// Embedding length.
pub const DIM: usize = 256;
/// Sample rate the front end expects.
pub const RATE: usize = 16_000;
/// Mel bands.
pub const MELS: usize = 40;
/// Frames of one partial utterance (1.6 s).
pub const PARTIAL: usize = 160;
/// Frames between two partial utterances (1.3 partials per second).
pub const STEP: usize = 77;
/// Most partial utterances embedded per recording (evenly spread); 24
/// cover 30 s of speech.
pub const MAX_PARTIALS: usize = 24;
/// Least speech, in seconds, for a voice template: shorter speech gives
/// embeddings too unstable to compare.
pub const MIN_SPEECH_S: f64 = 3.0;

const N_FFT: usize = 400;
const HOP: usize = 160;
const BINS: usize = N_FFT / 2 + 1;
/// Level the speech is raised to when quieter, dBFS (as in training).
const TARGET_DBFS: f64 = -30.0;

/// Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa.
fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// The 40 triangular filters over the 201 FFT bins, each scaled to unit
/// area (Slaney normalisation).
fn filters() -> &'static [[f32; BINS]; MELS] {
    static F: OnceLock<Box<[[f32; BINS]; MELS]>> = OnceLock::new();
    F.get_or_init(|| {
        let top = hz_to_mel(RATE as f64 / 2.0);
        let pts: Vec<f64> = (0..MELS + 2)
            .map(|i| mel_to_hz(top * i as f64 / (MELS + 1) as f64))
            .collect();
        let mut w = Box::new([[0f32; BINS]; MELS]);
        for (m, row) in w.iter_mut().enumerate() {
            let (lo, c, hi) = (pts[m], pts[m + 1], pts[m + 2]);
            let norm = 2.0 / (hi - lo);
            for (k, v) in row.iter_mut().enumerate() {
                let f = k as f64 * RATE as f64 / N_FFT as f64;
                let up = (f - lo) / (c - lo);
                let down = (hi - f) / (hi - c);
                *v = (up.min(down).max(0.0) * norm) as f32;
            }
        }
        w
    })
}

fn hann() -> &'static [f32; N_FFT] {
    static W: OnceLock<[f32; N_FFT]> = OnceLock::new();
    W.get_or_init(|| {
        let mut w = [0f32; N_FFT];
        for (i, v) in w.iter_mut().enumerate() {
            *v = (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()) as f32;
        }
        w
    })
}

fn fft() -> Arc<dyn Fft<f32>> {
    static P: OnceLock<Arc<dyn Fft<f32>>> = OnceLock::new();
    P.get_or_init(|| FftPlanner::<f32>::new().plan_fft_forward(N_FFT))
        .clone()
}

/// Mel power frames of `samples` (16 kHz), one per 10 ms, centred: frame
/// `t` covers samples `t·160 − 200 .. t·160 + 200`, the edges reflected.
pub fn mel_frames(samples: &[f32]) -> Vec<[f32; MELS]> {
    mel_frames_of(samples.len(), |i| samples[i], 0..frame_count(samples.len()))
}

/// Frames of a signal of `n` samples.
pub fn frame_count(n: usize) -> usize {
    if n < 2 {
        0
    } else {
        1 + n / HOP
    }
}

/// The mel frames `which` of a signal of `n` samples read through
/// `sample(i)` (`i < n`), so that only the frames needed are computed.
fn mel_frames_of(
    n: usize,
    sample: impl Fn(usize) -> f32,
    which: impl Iterator<Item = usize>,
) -> Vec<[f32; MELS]> {
    if n < 2 {
        return Vec::new();
    }
    let half = (N_FFT / 2) as isize;
    let at = |i: isize| -> f32 {
        // Reflection without repeating the edge sample (numpy "reflect").
        let last = n as isize - 1;
        let mut j = i;
        loop {
            if j < 0 {
                j = -j;
            } else if j > last {
                j = 2 * last - j;
            } else {
                return sample(j as usize);
            }
        }
    };
    let win = hann();
    let fb = filters();
    let plan = fft();
    let mut buf = vec![Complex32::new(0.0, 0.0); N_FFT];
    let mut scratch = vec![Complex32::new(0.0, 0.0); plan.get_inplace_scratch_len()];
    let mut power = [0f32; BINS];
    let mut out = Vec::new();
    for t in which {
        let start = (t * HOP) as isize - half;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = Complex32::new(at(start + i as isize) * win[i], 0.0);
        }
        plan.process_with_scratch(&mut buf, &mut scratch);
        for (p, b) in power.iter_mut().zip(&buf) {
            *p = b.norm_sqr();
        }
        let mut row = [0f32; MELS];
        for (r, f) in row.iter_mut().zip(fb.iter()) {
            *r = f.iter().zip(&power).map(|(a, b)| a * b).sum();
        }
        out.push(row);
    }
    out
}

/// The speech of a recording inside the VAD's segments, joined without a
/// copy: positions in the joined speech map back to the recording.
pub struct Speech<'a> {
    samples: &'a [f32],
    /// (start in the recording, start in the joined speech, length).
    parts: Vec<(usize, usize, usize)>,
    len: usize,
    gain: f32,
}

impl<'a> Speech<'a> {
    /// The speech of `samples` inside `segments` (seconds), with the gain
    /// that raises it to −30 dBFS when quieter.
    pub fn new(samples: &'a [f32], segments: &[(f64, f64)]) -> Self {
        let mut parts = Vec::new();
        let mut len = 0;
        let mut energy = 0f64;
        for &(a, b) in segments {
            let s = ((a.max(0.0) * RATE as f64) as usize).min(samples.len());
            let e = ((b.max(0.0) * RATE as f64) as usize).min(samples.len());
            if e > s {
                parts.push((s, len, e - s));
                len += e - s;
                energy += samples[s..e]
                    .iter()
                    .map(|x| f64::from(*x).powi(2))
                    .sum::<f64>();
            }
        }
        let mut gain = 1.0;
        if len > 0 && energy > 0.0 {
            let dbfs = 20.0 * (energy / len as f64).sqrt().log10();
            if dbfs < TARGET_DBFS {
                gain = 10f64.powf((TARGET_DBFS - dbfs) / 20.0) as f32;
            }
        }
        Speech {
            samples,
            parts,
            len,
            gain,
        }
    }

    /// Samples of joined speech.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sample `i` of the joined speech, levelled.
    pub fn get(&self, i: usize) -> f32 {
        let k = self.parts.partition_point(|p| p.1 <= i).saturating_sub(1);
        let (src, at, _) = self.parts[k];
        self.samples[src + (i - at)] * self.gain
    }

    /// The joined, levelled speech as one buffer (for tests and tools).
    pub fn to_vec(&self) -> Vec<f32> {
        (0..self.len).map(|i| self.get(i)).collect()
    }
}

/// The speech of `samples` inside `segments` (seconds), joined, raised to
/// −30 dBFS when quieter.
pub fn speech_only(samples: &[f32], segments: &[(f64, f64)]) -> Vec<f32> {
    Speech::new(samples, segments).to_vec()
}

/// Start frames of the partial utterances of `frames` frames: every
/// [`STEP`] frames; the last kept when at least 3/4 of it is audio; at
/// most [`MAX_PARTIALS`], evenly spread.
pub fn partial_starts(frames: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..frames.saturating_sub(PARTIAL) + STEP + 1)
        .step_by(STEP)
        .collect();
    if v.len() > 1 {
        let last = *v.last().unwrap_or(&0);
        let covered = frames.saturating_sub(last) as f64 / PARTIAL as f64;
        if covered < 0.75 {
            v.pop();
        }
    }
    if v.len() > MAX_PARTIALS {
        let n = v.len();
        v = (0..MAX_PARTIALS)
            .map(|i| v[i * (n - 1) / (MAX_PARTIALS - 1)])
            .collect();
    }
    v
}

/// The voice template of the speech in `segments`, or `None` when there is
/// less than [`MIN_SPEECH_S`] of it.
pub async fn embed(
    model: &ModelHandle,
    samples: &[f32],
    segments: &[(f64, f64)],
    priority: Priority,
    deadline: Option<Instant>,
) -> Result<Option<VoiceTemplate>, String> {
    // Only the frames of the chosen partial utterances are computed, and
    // the speech is read in place: memory and time stay bounded however
    // long the recording.
    let speech = Speech::new(samples, segments);
    let speech_s = speech.len() as f64 / RATE as f64;
    if speech_s < MIN_SPEECH_S {
        return Ok(None);
    }
    let frames = frame_count(speech.len());
    let starts = partial_starts(frames);
    let mut data = Vec::with_capacity(starts.len() * PARTIAL * MELS);
    for &s in &starts {
        let end = (s + PARTIAL).min(frames);
        for f in mel_frames_of(speech.len(), |i| speech.get(i), s..end) {
            data.extend_from_slice(&f);
        }
        // Past the end: silence, as the encoder's own padding.
        for _ in end..s + PARTIAL {
            data.extend_from_slice(&[0f32; MELS]);
        }
    }
    let input = TensorData::f32_from_vec(&[starts.len(), PARTIAL, MELS], data)
        .ok_or_else(|| "GE2E input shape".to_string())?;
    let mut out = model
        .infer(vec![NamedTensor::new("mels", input)], priority, deadline)
        .await
        .map_err(|e| e.to_string())?;
    let v: Vec<f32> = out
        .take("embedding")
        .and_then(|t| t.as_f32().map(|a| a.iter().copied().collect()))
        .ok_or_else(|| "GE2E: output `embedding` missing".to_string())?;
    if v.len() != starts.len() * DIM {
        return Err(format!("GE2E: output has {} values", v.len()));
    }
    let mut mean = vec![0f32; DIM];
    for row in v.chunks_exact(DIM) {
        for (m, x) in mean.iter_mut().zip(row) {
            *m += x;
        }
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm <= 0.0 {
        return Ok(None);
    }
    let r = model.model_ref();
    let first = segments.first().map(|s| s.0).unwrap_or(0.0);
    let last = segments.last().map(|s| s.1).unwrap_or(0.0);
    Ok(Some(VoiceTemplate {
        embedding: mean.iter().map(|x| x / norm).collect(),
        model: format!("{} {}", r.id, r.version),
        speech_s,
        span_s: [first, last],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_librosa_slaney() {
        // Band 0 rises from 0 Hz to its centre (73.6 Hz), falls to 147 Hz,
        // height 2/147 Hz: bin 1 (40 Hz) sits on the rising edge. Every band
        // has unit area in Hz (bins are 40 Hz apart).
        let f = filters();
        let hz1 = mel_to_hz(hz_to_mel(8000.0) / 41.0);
        let hz2 = mel_to_hz(2.0 * hz_to_mel(8000.0) / 41.0);
        assert!((hz1 - 73.6).abs() < 0.5, "{hz1}");
        let want = 40.0 / hz1 * 2.0 / hz2;
        assert!(
            (f64::from(f[0][1]) - want).abs() < 1e-6,
            "{} vs {want}",
            f[0][1]
        );
        assert_eq!(f[0][0], 0.0);
        for row in f.iter() {
            let area: f64 = row.iter().map(|v| f64::from(*v) * 40.0).sum();
            assert!((area - 1.0).abs() < 0.25, "area {area}");
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
        assert!((mel_to_hz(hz_to_mel(3000.0)) - 3000.0).abs() < 1e-6);
    }

    #[test]
    fn a_tone_lands_in_its_band() {
        let s: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let m = mel_frames(&s);
        assert_eq!(m.len(), 101);
        let row = m[50];
        let best = (0..MELS)
            .max_by(|a, b| row[*a].total_cmp(&row[*b]))
            .unwrap();
        let (lo, hi) = (
            mel_to_hz(hz_to_mel(8000.0) * best as f64 / 41.0),
            mel_to_hz(hz_to_mel(8000.0) * (best + 2) as f64 / 41.0),
        );
        assert!(lo < 1000.0 && 1000.0 < hi, "band {best}: {lo}-{hi} Hz");
    }

    #[test]
    fn partials_cover_and_cap() {
        assert_eq!(partial_starts(100), vec![0]);
        assert_eq!(partial_starts(160), vec![0]);
        // 3 s = 301 frames: starts 0, 77, 154 (154+160=314, 147/160 covered).
        assert_eq!(partial_starts(301), vec![0, 77, 154]);
        let many = partial_starts(100 * 60);
        assert_eq!(many.len(), MAX_PARTIALS);
        assert_eq!(many[0], 0);
        assert!(many.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn frames_read_in_place_equal_frames_of_the_joined_copy() {
        let x: Vec<f32> = (0..48_000)
            .map(|i| ((i as f32 * 0.013).sin() + (i as f32 * 0.0071).cos()) * 0.01)
            .collect();
        let segs = [(0.1, 0.9), (1.2, 2.5), (2.8, 3.0)];
        let joined = speech_only(&x, &segs);
        let sp = Speech::new(&x, &segs);
        assert_eq!(sp.len(), joined.len());
        let all = mel_frames(&joined);
        let some = mel_frames_of(sp.len(), |i| sp.get(i), 40..60);
        assert_eq!(some.len(), 20);
        for (a, b) in some.iter().zip(&all[40..60]) {
            for (p, q) in a.iter().zip(b) {
                assert!((p - q).abs() <= 1e-6 * q.abs().max(1e-9), "{p} vs {q}");
            }
        }
    }

    #[test]
    fn quiet_speech_is_raised_loud_is_kept() {
        let quiet = vec![0.001f32; 32_000];
        let v = speech_only(&quiet, &[(0.0, 1.0)]);
        assert_eq!(v.len(), 16_000);
        assert!((20.0 * f64::from(v[0]).log10() - TARGET_DBFS).abs() < 0.01);
        let loud = vec![0.5f32; 16_000];
        assert_eq!(speech_only(&loud, &[(0.0, 2.0)])[0], 0.5);
    }
}
