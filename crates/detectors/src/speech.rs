//! Speech activity with the silero VAD model (the audio front end).
//!
//! Silero is a streaming model: each 32 ms chunk (512 samples at 16 kHz) is
//! fed with 64 samples of left context and the recurrent state left by the
//! previous chunk. A file is cut into independent windows of
//! [`WINDOW_CHUNKS`] chunks whose states start from zero; all windows advance
//! together, one chunk per step, as one engine request with the windows on
//! the batch axis. Concurrent files share batches in the engine as well
//! (fp32, unlike the INT8 speech encoder, which runs each request alone;
//! the audio detector's tests check that a file scores the same beside
//! others).
//! The cost of restarting the state every window is a short warm-up at each
//! window start (the model needs a few chunks to settle). A live stream
//! instead carries one state from its start ([`StreamingVad`]), fed as the
//! audio arrives.

use std::time::Instant;

use candor_core::Priority;
use candor_engine::{EngineError, ModelHandle, NamedTensor, TensorData};

/// Sample rate silero is run at here.
pub const RATE: u32 = 16_000;
/// New samples per chunk at 16 kHz.
pub const CHUNK: usize = 512;
/// Left context per chunk at 16 kHz.
pub const CONTEXT: usize = 64;
/// Chunks per independent window (4.096 s).
pub const WINDOW_CHUNKS: usize = 128;

/// Probability at which a chunk starts speech.
const ON: f32 = 0.5;
/// Probability under which speech ends.
const OFF: f32 = 0.35;
/// Gaps shorter than this (s) are bridged.
const MIN_GAP_S: f64 = 0.25;
/// Segments shorter than this (s) are dropped.
const MIN_SEGMENT_S: f64 = 0.25;

/// Speech found in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechActivity {
    /// Speech segments as (start, end) in seconds.
    pub segments: Vec<(f64, f64)>,
    /// Total speech, in seconds.
    pub speech_seconds: f64,
    /// Per-chunk speech probabilities (one per 32 ms).
    pub frame_probs: Vec<f32>,
    /// Time waiting in the engine queue, summed over steps (ms).
    pub queue_ms: f64,
    /// Model execution time, summed over steps (ms).
    pub exec_ms: f64,
}

/// Runs silero over 16 kHz mono `samples`.
pub async fn detect(
    model: &ModelHandle,
    samples: &[f32],
    priority: Priority,
    deadline: Option<Instant>,
) -> Result<SpeechActivity, EngineError> {
    let n_chunks = samples.len() / CHUNK;
    let mut activity = SpeechActivity {
        segments: Vec::new(),
        speech_seconds: 0.0,
        frame_probs: vec![0.0; n_chunks],
        queue_ms: 0.0,
        exec_ms: 0.0,
    };
    if n_chunks == 0 {
        return Ok(activity);
    }
    let windows = n_chunks.div_ceil(WINDOW_CHUNKS);
    let mut state = vec![0f32; 2 * windows * 128];
    let width = CONTEXT + CHUNK;
    for step in 0..WINDOW_CHUNKS.min(n_chunks) {
        let mut input = vec![0f32; windows * width];
        for w in 0..windows {
            let chunk = w * WINDOW_CHUNKS + step;
            if chunk >= n_chunks {
                continue; // padding row for a short last window; output ignored
            }
            let start = chunk * CHUNK;
            let row = &mut input[w * width..(w + 1) * width];
            // Left context: the real preceding samples (zeros at the file start).
            let ctx_from = start.saturating_sub(CONTEXT);
            let ctx = &samples[ctx_from..start];
            row[CONTEXT - ctx.len()..CONTEXT].copy_from_slice(ctx);
            row[CONTEXT..].copy_from_slice(&samples[start..start + CHUNK]);
        }
        let (probs, next) = run_step(model, input, state, windows, priority, deadline).await?;
        state = next.state;
        activity.queue_ms += next.queue_ms;
        activity.exec_ms += next.exec_ms;
        for (w, p) in probs.iter().enumerate() {
            let chunk = w * WINDOW_CHUNKS + step;
            if chunk < n_chunks {
                activity.frame_probs[chunk] = if p.is_finite() { *p } else { 0.0 };
            }
        }
    }
    Ok(SpeechActivity {
        queue_ms: activity.queue_ms,
        exec_ms: activity.exec_ms,
        ..SpeechActivity::from_probs(activity.frame_probs, 0.0)
    })
}

impl SpeechActivity {
    /// The activity that per-chunk probabilities say, with segment times
    /// shifted by `offset_s` (no engine time).
    fn from_probs(frame_probs: Vec<f32>, offset_s: f64) -> SpeechActivity {
        let segments: Vec<(f64, f64)> = segments(&frame_probs)
            .into_iter()
            .map(|(s, e)| (s + offset_s, e + offset_s))
            .collect();
        // `+ 0.0`: an empty float sum is -0.0, which would print as "-0.00 s".
        let speech_seconds = segments.iter().map(|(s, e)| e - s).sum::<f64>() + 0.0;
        SpeechActivity {
            segments,
            speech_seconds,
            frame_probs,
            queue_ms: 0.0,
            exec_ms: 0.0,
        }
    }
}

/// The recurrent state after a step, and the step's engine time.
struct Stepped {
    state: Vec<f32>,
    queue_ms: f64,
    exec_ms: f64,
}

/// One silero step over `rows` chunks (`input`: rows × (context + chunk)
/// samples; `state`: 2 × rows × 128): each row's speech probability, and the
/// next state.
async fn run_step(
    model: &ModelHandle,
    input: Vec<f32>,
    state: Vec<f32>,
    rows: usize,
    priority: Priority,
    deadline: Option<Instant>,
) -> Result<(Vec<f32>, Stepped), EngineError> {
    let id = || model.spec().id.clone();
    let inputs = vec![
        NamedTensor::new(
            "input",
            TensorData::f32_from_vec(&[rows, CONTEXT + CHUNK], input)
                .ok_or_else(|| EngineError::backend(id(), "vad input shape"))?,
        ),
        NamedTensor::new(
            "state",
            TensorData::f32_from_vec(&[2, rows, 128], state)
                .ok_or_else(|| EngineError::backend(id(), "vad state shape"))?,
        ),
        NamedTensor::new(
            "sr",
            TensorData::i64_from_vec(&[], vec![RATE as i64])
                .ok_or_else(|| EngineError::backend(id(), "vad sr shape"))?,
        ),
    ];
    let mut out = model.infer(inputs, priority, deadline).await?;
    let mut take = |name: &str| {
        out.take(name)
            .and_then(|t| t.as_f32().map(|a| a.iter().copied().collect::<Vec<f32>>()))
            .ok_or_else(|| EngineError::backend(id(), format!("output `{name}` missing")))
    };
    let probs = take("output")?;
    let state = take("stateN")?;
    if probs.len() != rows || state.len() != 2 * rows * 128 {
        return Err(EngineError::backend(
            id(),
            format!(
                "returned {} probabilities and {} state values for {rows} windows",
                probs.len(),
                state.len()
            ),
        ));
    }
    Ok((
        probs,
        Stepped {
            state,
            queue_ms: out.queue_ms,
            exec_ms: out.exec_ms,
        },
    ))
}

/// Silero over a live stream: one recurrent state carried from the first
/// chunk on, advanced as audio arrives (one engine request per 32 ms
/// chunk), so that when a segment completes its speech activity is already
/// known (the file path runs the VAD over the whole file instead; see
/// [`detect`]). Keeps the probabilities of the chunks from
/// [`StreamingVad::drop_before`] on.
#[derive(Debug, Clone)]
pub struct StreamingVad {
    state: Vec<f32>,
    /// The last [`CONTEXT`] samples fed (zeros at the start).
    context: Vec<f32>,
    /// Samples not yet fed (fewer than a chunk).
    pending: Vec<f32>,
    /// Probability per chunk, from chunk `first` on.
    probs: Vec<f32>,
    first: usize,
}

impl Default for StreamingVad {
    fn default() -> Self {
        StreamingVad {
            state: vec![0f32; 2 * 128],
            context: vec![0f32; CONTEXT],
            pending: Vec::new(),
            probs: Vec::new(),
            first: 0,
        }
    }
}

impl StreamingVad {
    /// Chunks whose probability is known (counted from the stream start).
    pub fn chunks(&self) -> usize {
        self.first + self.probs.len()
    }

    /// Feeds 16 kHz samples; runs the model on every chunk they complete.
    pub async fn push(
        &mut self,
        model: &ModelHandle,
        samples: &[f32],
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<(), EngineError> {
        self.pending.extend_from_slice(samples);
        let mut used = 0;
        while self.pending.len() - used >= CHUNK {
            let chunk = &self.pending[used..used + CHUNK];
            let mut input = Vec::with_capacity(CONTEXT + CHUNK);
            input.extend_from_slice(&self.context);
            input.extend_from_slice(chunk);
            self.context.copy_from_slice(&chunk[CHUNK - CONTEXT..]);
            used += CHUNK;
            let state = std::mem::take(&mut self.state);
            let (p, next) = run_step(model, input, state, 1, priority, deadline).await?;
            self.state = next.state;
            self.probs.push(if p[0].is_finite() { p[0] } else { 0.0 });
        }
        self.pending.drain(..used);
        Ok(())
    }

    /// Forgets the probabilities of chunks that end before sample `sample`.
    pub fn drop_before(&mut self, sample: usize) {
        let chunk = (sample / CHUNK).min(self.chunks());
        if chunk > self.first {
            self.probs.drain(..chunk - self.first);
            self.first = chunk;
        }
    }

    /// Speech activity of samples `start..end` (counted from the stream
    /// start), in seconds from `start`, from the chunks that lie inside it
    /// (a chunk straddling either edge is left out). `None` when a chunk
    /// inside it has not been fed yet or was dropped.
    pub fn activity(&self, start: usize, end: usize) -> Option<SpeechActivity> {
        let (c0, c1) = (start.div_ceil(CHUNK), end / CHUNK);
        if c0 < self.first || c1 > self.chunks() {
            return None;
        }
        let frame_probs = self.probs[c0.min(c1) - self.first..c1 - self.first].to_vec();
        let offset = (c0 * CHUNK - start) as f64 / RATE as f64;
        Some(SpeechActivity::from_probs(frame_probs, offset))
    }
}

/// Turns per-chunk probabilities into speech segments with hysteresis,
/// bridging short gaps and dropping short blips.
pub fn segments(probs: &[f32]) -> Vec<(f64, f64)> {
    let dt = CHUNK as f64 / RATE as f64;
    let mut raw: Vec<(f64, f64)> = Vec::new();
    let mut start: Option<usize> = None;
    for (i, &p) in probs.iter().enumerate() {
        match start {
            None if p >= ON => start = Some(i),
            Some(s) if p < OFF => {
                raw.push((s as f64 * dt, i as f64 * dt));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        raw.push((s as f64 * dt, probs.len() as f64 * dt));
    }
    let mut merged: Vec<(f64, f64)> = Vec::new();
    for seg in raw {
        match merged.last_mut() {
            Some(last) if seg.0 - last.1 < MIN_GAP_S => last.1 = seg.1,
            _ => merged.push(seg),
        }
    }
    merged.retain(|(s, e)| e - s >= MIN_SEGMENT_S);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_bridges_gaps_and_drops_blips() {
        let dt = CHUNK as f64 / RATE as f64;
        // 20 chunks speech, 3 chunks dip to 0.4 (above OFF: stays speech),
        // 5 chunks silence (0.16 s gap: bridged), 20 speech, 40 silence,
        // 2-chunk blip (0.064 s: dropped), silence.
        let mut p = vec![0.9f32; 20];
        p.extend([0.4; 3]);
        p.extend([0.1; 5]);
        p.extend([0.9; 20]);
        p.extend([0.05; 40]);
        p.extend([0.9; 2]);
        p.extend([0.05; 10]);
        let s = segments(&p);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!((s[0].0 - 0.0).abs() < 1e-9);
        assert!((s[0].1 - 48.0 * dt).abs() < 1e-9);
    }

    #[test]
    fn silence_has_no_segments() {
        assert!(segments(&[0.01; 100]).is_empty());
        assert!(segments(&[]).is_empty());
    }
}
