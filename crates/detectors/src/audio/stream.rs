//! Live audio: 2 s segments scored as the audio of an interview arrives.
//!
//! The caller pushes raw PCM bytes (16-bit or 32-bit float little-endian,
//! mono, 16 or 48 kHz) in chunks of any size. Each time the audio received
//! covers the next segment (2 s, starting every `hop_s`), that segment is
//! scored on its own (its own speech activity, model and forensics) and
//! returned. At the end the stream's score is the file rule over the
//! segment log-odds, with the file calibration, as for an upload.
//!
//! Memory is bounded: only the last 2 s of audio are kept, and the stream
//! ends with an error past `max_seconds`.

use std::sync::Arc;
use std::time::Instant;

use candor_core::{Abstention, Label, ModelRef, Priority, Thresholds};
use serde::Serialize;

use super::{dsp, speech_abstention, AudioDetector, SEGMENT};
use crate::AnalyzeError;

/// Sample encodings a stream may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Signed 16-bit little-endian.
    PcmS16le,
    /// 32-bit float little-endian.
    PcmF32le,
}

impl Encoding {
    /// Parses `pcm_s16le` / `pcm_f32le`.
    pub fn parse(s: &str) -> Option<Encoding> {
        match s {
            "pcm_s16le" | "s16le" => Some(Encoding::PcmS16le),
            "pcm_f32le" | "f32le" => Some(Encoding::PcmF32le),
            _ => None,
        }
    }

    fn width(self) -> usize {
        match self {
            Encoding::PcmS16le => 2,
            Encoding::PcmF32le => 4,
        }
    }
}

/// Sample rates a stream may use.
pub const STREAM_RATES: [u32; 2] = [16_000, 48_000];

/// One scored (or skipped) segment of a stream.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamSegment {
    pub start_s: f64,
    pub end_s: f64,
    /// Calibrated segment probability; absent when the segment held too
    /// little speech to score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Feature that pushed the score up most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Why the segment was not scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// From the arrival of the segment's last sample to its score (ms).
    pub latency_ms: f64,
}

/// The end of a stream: the whole interview's score so far.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamSummary {
    /// Seconds of audio received.
    pub duration_s: f64,
    /// Seconds of speech in scored segments (each instant counted once).
    pub speech_s: f64,
    pub segments_scored: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abstention: Option<Abstention>,
    pub thresholds: Thresholds,
    /// Thresholds of the per-segment scores.
    pub segment_thresholds: Thresholds,
    pub models: Vec<ModelRef>,
}

/// A live audio stream being scored.
pub struct AudioStream {
    detector: Arc<AudioDetector>,
    priority: Priority,
    encoding: Encoding,
    decimate: Option<Decimator>,
    /// Bytes of an incomplete sample carried to the next push.
    partial: Vec<u8>,
    /// 16 kHz samples from absolute index `buf_start`.
    buf: Vec<f32>,
    buf_start: usize,
    /// Absolute index where the next segment starts.
    next: usize,
    hop: usize,
    total: usize,
    max_samples: usize,
    raws: Vec<f64>,
    speech_s: f64,
    /// Speech activity, advanced as audio arrives.
    vad: crate::speech::StreamingVad,
}

impl AudioStream {
    /// A new stream. `rate` must be one of [`STREAM_RATES`].
    pub fn new(
        detector: Arc<AudioDetector>,
        encoding: Encoding,
        rate: u32,
        max_seconds: f64,
        priority: Priority,
    ) -> Result<AudioStream, String> {
        let decimate = match rate {
            16_000 => None,
            48_000 => Some(Decimator::new()),
            r => {
                return Err(format!(
                    "sample rate {r} Hz is not supported for streams (use one of {STREAM_RATES:?})"
                ))
            }
        };
        let hop = (detector.cfg.hop_s * dsp::RATE as f64).round().max(1.0) as usize;
        Ok(AudioStream {
            detector,
            priority,
            encoding,
            decimate,
            partial: Vec::new(),
            buf: Vec::new(),
            buf_start: 0,
            next: 0,
            hop,
            total: 0,
            max_samples: (max_seconds.max(0.0) * dsp::RATE as f64) as usize,
            raws: Vec::new(),
            speech_s: 0.0,
            vad: crate::speech::StreamingVad::default(),
        })
    }

    /// Seconds of audio received so far.
    pub fn duration_s(&self) -> f64 {
        self.total as f64 / dsp::RATE as f64
    }

    /// Adds bytes; returns the segments completed by them.
    pub async fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamSegment>, AnalyzeError> {
        let arrived = Instant::now();
        self.partial.extend_from_slice(bytes);
        let w = self.encoding.width();
        let whole = self.partial.len() / w * w;
        let mut samples: Vec<f32> = self.partial[..whole]
            .chunks_exact(w)
            .map(|c| match self.encoding {
                Encoding::PcmS16le => i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0,
                Encoding::PcmF32le => {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    if v.is_finite() {
                        v
                    } else {
                        0.0
                    }
                }
            })
            .collect();
        self.partial.drain(..whole);
        if let Some(d) = self.decimate.as_mut() {
            samples = d.process(&samples);
        }
        self.total += samples.len();
        if self.total > self.max_samples {
            return Err(AnalyzeError::Media(candor_media::MediaError::too_large(
                "max_audio_seconds",
                format!(
                    "the stream is longer than the {:.0} s limit",
                    self.max_samples as f64 / dsp::RATE as f64
                ),
            )));
        }
        self.buf.extend_from_slice(&samples);
        // The VAD advances with the audio, so a completed segment's speech
        // activity is known when it completes (only the chunks of this push
        // are on its critical path, not the segment's 62).
        if let Some(vad) = self.detector.vad() {
            self.vad.push(vad, &samples, self.priority, None).await?;
        }
        let mut out = Vec::new();
        while self.next + SEGMENT <= self.total {
            out.push(self.score(self.next, self.next + SEGMENT, arrived).await?);
            self.next += self.hop;
        }
        // Keep only what later segments need.
        let keep_from = self.next.min(self.total);
        if keep_from > self.buf_start {
            self.buf.drain(..keep_from - self.buf_start);
            self.buf_start = keep_from;
            self.vad.drop_before(keep_from);
        }
        Ok(out)
    }

    async fn score(
        &mut self,
        start: usize,
        end: usize,
        arrived: Instant,
    ) -> Result<StreamSegment, AnalyzeError> {
        let a = start - self.buf_start;
        let b = (end - self.buf_start).min(self.buf.len());
        let speech = self.vad.activity(start, start + (b - a));
        let r = self
            .detector
            .score_segment(&self.buf[a..b], speech.as_ref(), self.priority, None)
            .await?;
        let th = &self.detector.segment_calibration().thresholds;
        let secs = |i: usize| (i as f64 / dsp::RATE as f64 * 1e3).round() / 1e3;
        let mut seg = StreamSegment {
            start_s: secs(start),
            end_s: secs(end),
            score: None,
            label: None,
            signal: None,
            reason: None,
            latency_ms: 0.0,
        };
        match r {
            Some(s) => {
                self.raws.push(s.raw);
                // Segments overlap: count each instant's speech once.
                let fresh = (end - start).min(self.hop) as f64 / (end - start) as f64;
                self.speech_s += s.speech_s * fresh;
                seg.score = Some((s.probability * 1e4).round() / 1e4);
                seg.label = Some(th.label(s.probability));
                seg.signal = s.dominant.map(str::to_string);
            }
            None => seg.reason = Some("too little speech in this segment".into()),
        }
        seg.latency_ms = arrived.elapsed().as_secs_f64() * 1e3;
        Ok(seg)
    }

    /// Ends the stream: scores the unscored tail (when at least 1 s) and
    /// returns the summary.
    pub async fn finish(mut self) -> Result<(Vec<StreamSegment>, StreamSummary), AnalyzeError> {
        let mut tail = Vec::new();
        let arrived = Instant::now();
        let last_end = if self.raws.is_empty() && self.next == 0 {
            0
        } else {
            self.next - self.hop + SEGMENT
        };
        if self.total >= last_end + dsp::RATE && self.total > 0 {
            let start = self.total.saturating_sub(SEGMENT).max(self.buf_start);
            tail.push(self.score(start, self.total, arrived).await?);
        }
        let d = &self.detector;
        let head = d.head();
        let mut summary = StreamSummary {
            duration_s: self.duration_s(),
            speech_s: (self.speech_s * 100.0).round() / 100.0,
            segments_scored: self.raws.len(),
            score: None,
            label: None,
            abstention: None,
            thresholds: d.calibration().thresholds.clone(),
            segment_thresholds: d.segment_calibration().thresholds.clone(),
            models: d.models(),
        };
        match (
            speech_abstention(self.speech_s, head.min_speech_s),
            head.file_raw(&self.raws),
        ) {
            (Some(ab), _) => summary.abstention = Some(ab),
            (None, None) => {
                summary.abstention = Some(Abstention {
                    code: candor_core::AbstainCode::TooShort,
                    reason: "no segment held enough speech".into(),
                })
            }
            (None, Some(raw)) => {
                let p = d.calibration().apply(raw);
                summary.score = Some((p * 1e4).round() / 1e4);
                summary.label = Some(summary.thresholds.label(p));
            }
        }
        Ok((tail, summary))
    }
}

/// 48 kHz -> 16 kHz: windowed-sinc low-pass at 7.2 kHz, keep every third
/// sample. State is carried between chunks.
struct Decimator {
    taps: Vec<f32>,
    history: Vec<f32>,
    phase: usize,
}

impl Decimator {
    const TAPS: usize = 63;

    fn new() -> Self {
        let m = Self::TAPS as f32 - 1.0;
        let fc = 7_200.0 / 48_000.0;
        let mut taps: Vec<f32> = (0..Self::TAPS)
            .map(|n| {
                let x = n as f32 - m / 2.0;
                let sinc = if x == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * std::f32::consts::PI * fc * x).sin() / (std::f32::consts::PI * x)
                };
                let hann = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / m).cos();
                sinc * hann
            })
            .collect();
        let sum: f32 = taps.iter().sum();
        taps.iter_mut().for_each(|t| *t /= sum);
        Decimator {
            taps,
            history: vec![0.0; Self::TAPS - 1],
            phase: 0,
        }
    }

    fn process(&mut self, input: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(input.len() / 3 + 1);
        for &x in input {
            self.history.push(x);
            if self.phase == 0 {
                let h = &self.history[self.history.len() - Self::TAPS..];
                out.push(
                    h.iter()
                        .zip(self.taps.iter().rev())
                        .map(|(a, b)| a * b)
                        .sum(),
                );
            }
            self.phase = (self.phase + 1) % 3;
        }
        let keep = Self::TAPS - 1;
        let n = self.history.len();
        self.history.drain(..n - keep);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimator_passes_speech_band_and_stops_aliases() {
        let tone = |hz: f32| -> Vec<f32> {
            (0..48_000)
                .map(|n| (2.0 * std::f32::consts::PI * hz * n as f32 / 48_000.0).sin())
                .collect()
        };
        let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        let mut d = Decimator::new();
        // Fed in uneven chunks: state must carry over.
        let t = tone(1_000.0);
        let mut out = d.process(&t[..10_001]);
        out.extend(d.process(&t[10_001..]));
        assert_eq!(out.len(), 16_000);
        assert!(
            (rms(&out[100..]) - 0.707).abs() < 0.02,
            "{}",
            rms(&out[100..])
        );
        let mut d = Decimator::new();
        let out = d.process(&tone(12_000.0));
        assert!(rms(&out[100..]) < 0.01, "alias {}", rms(&out[100..]));
    }

    #[test]
    fn encodings_parse() {
        assert_eq!(Encoding::parse("pcm_s16le"), Some(Encoding::PcmS16le));
        assert_eq!(Encoding::parse("f32le"), Some(Encoding::PcmF32le));
        assert_eq!(Encoding::parse("opus"), None);
    }
}
