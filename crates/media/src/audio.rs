//! Audio decoding: any container/codec Symphonia (plus libopus) reads, first
//! audio track, downmixed to mono and resampled with rubato's FFT resampler.

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint as SymHint;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use crate::bounded::Deadline;
use crate::error::MediaError;
use candor_core::Limits;

/// Highest source sample rate accepted; anything above is treated as corrupt.
const MAX_SOURCE_RATE: u32 = 768_000;
/// Most channels accepted.
const MAX_CHANNELS: usize = 64;
/// Consecutive undecodable packets after which the stream is declared corrupt.
const MAX_CONSECUTIVE_BAD_PACKETS: usize = 64;
/// Fewest bytes of file per second of audio any supported codec needs
/// (64 bit/s: below Opus DTX silence, far below any speech codec). A file
/// declaring or decoding to more audio than its bytes can hold at this rate
/// is refused: its header lies, and decoding it would turn a few kilobytes
/// into hours of samples.
const MIN_BYTES_PER_SECOND: f64 = 8.0;
/// A PCM header may declare at most this many times the sample bytes the
/// file holds before it is refused (less than that is a truncated file).
const MAX_PCM_DECLARED_OVER_ACTUAL: f64 = 2.0;

/// Decoded audio: mono `f32` samples at `sample_rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Mono samples in [-1, 1] (not clipped), resampled to `sample_rate`.
    pub samples: Vec<f32>,
    /// Sample rate of `samples` (the requested `audio_sample_rate`).
    pub sample_rate: u32,
    /// Duration of `samples` in seconds.
    pub duration_s: f64,
    /// Container, e.g. `wav`, `mp4`, `ogg`, `webm`.
    pub container: String,
    /// Codec short name as reported by the decoder, e.g. `aac`, `opus`, `pcm_s16le`.
    pub codec: String,
    /// Sample rate of the source track.
    pub original_sample_rate: u32,
    /// Channel count of the source track.
    pub original_channels: u16,
    /// Non-fatal observations (e.g. "stream ended early").
    pub warnings: Vec<String>,
    /// The file ends before the audio it declares does (the stream stopped
    /// early, or fewer frames decoded than the header states).
    pub truncated: bool,
}

fn codecs() -> &'static CodecRegistry {
    static REG: OnceLock<CodecRegistry> = OnceLock::new();
    REG.get_or_init(|| {
        let mut reg = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut reg);
        reg.register_audio_decoder::<symphonia_adapter_libopus::OpusDecoder>();
        reg
    })
}

fn too_long(seconds: f64, limits: &Limits) -> MediaError {
    MediaError::too_large(
        "max_audio_seconds",
        format!(
            "audio is longer than {:.0} s (at least {:.1} s found), the limit is {:.0} s",
            limits.max_audio_seconds, seconds, limits.max_audio_seconds
        ),
    )
}

fn implausible(message: String) -> MediaError {
    MediaError::unprocessable("implausible_header", message)
}

fn check_rate(rate: u32, limits: &Limits) -> Result<(), MediaError> {
    if rate < limits.min_audio_sample_rate {
        return Err(implausible(format!(
            "the audio declares a sample rate of {rate} Hz; at least {} Hz is needed \
             (speech audio is recorded at 8 kHz or more)",
            limits.min_audio_sample_rate
        )));
    }
    Ok(())
}

/// Most seconds of audio `file_bytes` bytes can plausibly hold.
fn max_plausible_seconds(file_bytes: usize) -> f64 {
    file_bytes as f64 / MIN_BYTES_PER_SECOND
}

/// Checks a declared length against the size of the file. `Ok(true)` means
/// the file holds less than its header declares (truncated).
fn check_declared_length(
    frames: u64,
    rate: u32,
    params: &symphonia::core::codecs::audio::AudioCodecParameters,
    file_bytes: usize,
) -> Result<bool, MediaError> {
    let secs = frames as f64 / f64::from(rate.max(1));
    if secs > max_plausible_seconds(file_bytes) {
        return Err(implausible(format!(
            "the header declares {secs:.1} s of audio, more than a {file_bytes}-byte file can hold"
        )));
    }
    // Uncompressed audio: the declared sample bytes must match the file.
    let (Some(bits), Some(ch)) = (params.bits_per_coded_sample, params.channels.as_ref()) else {
        return Ok(false);
    };
    let declared = frames as f64 * ch.count() as f64 * f64::from(bits) / 8.0;
    if declared > MAX_PCM_DECLARED_OVER_ACTUAL * file_bytes as f64 + 4096.0 {
        return Err(implausible(format!(
            "the header declares {secs:.1} s of uncompressed audio ({declared:.0} bytes of \
             samples), but the file has only {file_bytes} bytes"
        )));
    }
    Ok(declared > file_bytes as f64)
}

fn map_open_error(e: SymError, container: &str) -> MediaError {
    match e {
        SymError::Unsupported(what) => MediaError::corrupt(format!(
            "the {container} file could not be read (unsupported or malformed: {what})"
        )),
        SymError::LimitError(what) => MediaError::too_large(
            "max_decompressed_bytes",
            format!("the {container} file exceeds a decoder limit: {what}"),
        ),
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            MediaError::unprocessable(
                "truncated",
                format!("the {container} file is truncated: it ends before its headers do"),
            )
        }
        other => MediaError::corrupt(format!("the {container} file is malformed: {other}")),
    }
}

/// Decodes the first audio track of `bytes` (a `container` as sniffed) to
/// mono at `target_rate`.
pub fn decode_audio(
    bytes: Arc<[u8]>,
    container: &'static str,
    limits: &Limits,
    target_rate: u32,
    deadline: &Deadline,
) -> Result<DecodedAudio, MediaError> {
    if target_rate == 0 || target_rate > MAX_SOURCE_RATE {
        return Err(MediaError::Internal(format!(
            "invalid target sample rate {target_rate}"
        )));
    }
    let mut warnings = Vec::new();
    let file_bytes = bytes.len();
    let mss = MediaSourceStream::new(
        Box::new(Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    let mut hint = SymHint::new();
    let ext = match container {
        "mp4" => "m4a",
        other => other,
    };
    hint.with_extension(ext);
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| map_open_error(e, container))?;

    // First audio track with codec parameters (video containers hold video
    // tracks too).
    let Some(track) = format.tracks().iter().find(|t| {
        t.codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .is_some_and(|a| a.codec != symphonia::core::codecs::audio::CODEC_ID_NULL_AUDIO)
    }) else {
        return Err(MediaError::unprocessable(
            "no_audio_track",
            format!("the {container} file has no audio track"),
        ));
    };
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .cloned()
        .ok_or_else(|| MediaError::unprocessable("no_audio_track", "no audio track"))?;

    // Declared rate and length, when the container states them: reject
    // before decoding.
    if let Some(rate) = params.sample_rate {
        check_rate(rate, limits)?;
    }
    let declared_frames = track.num_frames;
    let mut truncated = false;
    if let (Some(frames), Some(rate)) = (declared_frames, params.sample_rate) {
        if rate > 0 {
            let secs = frames as f64 / f64::from(rate);
            if secs > limits.max_audio_seconds {
                return Err(too_long(secs, limits));
            }
            truncated = check_declared_length(frames, rate, &params, file_bytes)?;
        }
    }

    let codec_name_hint = codecs()
        .get_audio_decoder(params.codec)
        .map(|r| r.codec.info.short_name);
    let mut decoder = codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| unsupported_codec(e, codec_name_hint, container))?;
    let codec = decoder.codec_info().short_name.to_string();

    let mut original_rate: Option<u32> = None;
    let mut original_channels: u16 = params.channels.as_ref().map_or(0, |c| c.count() as u16);
    let mut resampler: Option<MonoResampler> = None;
    let mut frames_in: u64 = 0;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut bad_packets = 0usize;
    let mut consecutive_bad = 0usize;
    let mut good_packets = 0usize;

    loop {
        deadline.check()?;
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(SymError::IoError(io)) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                // Streamed WebM (MediaRecorder) has an unknown-size segment
                // and simply stops; other containers were probably cut short.
                if !matches!(container, "webm" | "mkv") {
                    truncated = true;
                }
                break;
            }
            Err(SymError::ResetRequired) => {
                warnings.push(
                    "the stream changes its track layout; only the first part was used".into(),
                );
                break;
            }
            Err(SymError::DecodeError(msg)) => {
                if good_packets == 0 {
                    return Err(MediaError::corrupt(format!(
                        "the {container} file is malformed: {msg}"
                    )));
                }
                warnings.push(format!(
                    "the stream is damaged after {frames_in} frames ({msg}); the rest was skipped"
                ));
                break;
            }
            Err(SymError::LimitError(what)) => {
                return Err(MediaError::too_large(
                    "max_decompressed_bytes",
                    format!("the {container} file exceeds a decoder limit: {what}"),
                ))
            }
            Err(e) => {
                if good_packets == 0 {
                    return Err(map_open_error(e, container));
                }
                warnings.push(format!("reading stopped early: {e}"));
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                bad_packets += 1;
                consecutive_bad += 1;
                if consecutive_bad > MAX_CONSECUTIVE_BAD_PACKETS {
                    return Err(MediaError::corrupt(format!(
                        "the {codec} audio in this {container} file is corrupt: {bad_packets} packets could not be decoded"
                    )));
                }
                continue;
            }
            Err(e @ SymError::Unsupported(_)) => {
                return Err(unsupported_codec(e, Some(&codec), container));
            }
            Err(e) => {
                return Err(MediaError::corrupt(format!(
                    "the {codec} audio could not be decoded: {e}"
                )))
            }
        };
        consecutive_bad = 0;
        good_packets += 1;
        let frames = buf.frames();
        if frames == 0 {
            continue;
        }
        let spec = buf.spec();
        let rate = spec.rate();
        let channels = spec.channels().count();
        if rate == 0 || rate > MAX_SOURCE_RATE || channels == 0 || channels > MAX_CHANNELS {
            return Err(MediaError::corrupt(format!(
                "the audio declares an impossible format ({rate} Hz, {channels} channels)"
            )));
        }
        check_rate(rate, limits)?;
        let src_rate = *original_rate.get_or_insert(rate);
        if rate != src_rate {
            warnings.push(format!(
                "the sample rate changes mid-stream ({src_rate} Hz to {rate} Hz); decoding stopped there"
            ));
            break;
        }
        original_channels = channels as u16;
        frames_in += frames as u64;
        let secs = frames_in as f64 / f64::from(src_rate);
        if secs > limits.max_audio_seconds {
            return Err(too_long(secs, limits));
        }
        if secs > max_plausible_seconds(file_bytes) {
            return Err(implausible(format!(
                "the file decodes to more than {secs:.1} s of audio, more than its {file_bytes} \
                 bytes can hold; its headers are not plausible"
            )));
        }
        interleaved.clear();
        buf.copy_to_vec_interleaved(&mut interleaved);
        mono.clear();
        let scale = 1.0 / channels as f32;
        mono.extend(interleaved.chunks_exact(channels).map(|frame| {
            let s: f32 = frame.iter().sum::<f32>() * scale;
            if s.is_finite() {
                s
            } else {
                0.0
            }
        }));
        if resampler.is_none() {
            resampler = Some(MonoResampler::new(src_rate, target_rate)?);
        }
        if let Some(r) = resampler.as_mut() {
            r.push(&mono)?;
        }
    }

    let (Some(src_rate), Some(r)) = (original_rate, resampler) else {
        return Err(if good_packets == 0 && bad_packets > 0 {
            MediaError::corrupt(format!(
                "the {codec} audio in this {container} file is corrupt: no packet could be decoded"
            ))
        } else {
            MediaError::unprocessable(
                "no_audio",
                format!("the {container} file's audio track holds no samples (zero length)"),
            )
        });
    };
    if bad_packets > 0 {
        warnings.push(format!("{bad_packets} damaged audio packets were skipped"));
    }
    // Fewer frames than declared (2% and half a second of slack for
    // encoder padding): the file was cut short.
    if let Some(declared) = declared_frames {
        let slack = declared / 50 + u64::from(src_rate / 2);
        truncated |= frames_in + slack < declared;
    }
    if truncated {
        warnings.push(
            "the audio ends before its declared length: the file is truncated, and only the \
             part received was analysed"
                .into(),
        );
    }
    let samples = r.finish()?;
    let duration_s = samples.len() as f64 / f64::from(target_rate);
    Ok(DecodedAudio {
        samples,
        sample_rate: target_rate,
        duration_s,
        container: container.to_string(),
        codec,
        original_sample_rate: src_rate,
        original_channels,
        warnings,
        truncated,
    })
}

fn unsupported_codec(e: SymError, codec: Option<&str>, container: &str) -> MediaError {
    let name = codec.unwrap_or("this");
    let detail = e.to_string();
    let message = if name == "aac" || detail.contains("aac") {
        format!(
            "the AAC audio in this {container} file uses a profile that is not supported \
             (HE-AAC/SBR or another extension; only AAC-LC is read): {detail}. \
             Re-export the audio as AAC-LC, MP3, Opus, FLAC or WAV"
        )
    } else if codec.is_none() {
        format!(
            "the audio codec in this {container} file is not supported ({detail}); \
             supported: PCM, FLAC, MP3, AAC-LC, Vorbis, Opus"
        )
    } else {
        format!("the {name} audio in this {container} file cannot be decoded: {detail}")
    };
    MediaError::unprocessable("unsupported_codec", message)
}

/// Streaming mono resampler: feeds rubato's FFT resampler chunk by chunk so
/// the source-rate signal is never held in memory as a whole.
struct MonoResampler {
    inner: Option<Fft<f32>>,
    pending: Vec<f32>,
    out: Vec<f32>,
    chunk_out: Vec<f32>,
    frames_in: u64,
}

const RESAMPLER_CHUNK: usize = 1024;

impl MonoResampler {
    fn new(from: u32, to: u32) -> Result<Self, MediaError> {
        let inner = if from == to {
            None
        } else {
            let r = Fft::<f32>::new(
                from as usize,
                to as usize,
                RESAMPLER_CHUNK,
                1,
                FixedSync::Input,
            )
            .map_err(|e| MediaError::Internal(format!("resampler setup failed: {e}")))?;
            Some(r)
        };
        let chunk_out = vec![0.0; inner.as_ref().map_or(0, |r| r.output_frames_max())];
        Ok(MonoResampler {
            inner,
            pending: Vec::new(),
            out: Vec::new(),
            chunk_out,
            frames_in: 0,
        })
    }

    fn push(&mut self, samples: &[f32]) -> Result<(), MediaError> {
        self.frames_in += samples.len() as u64;
        let Some(r) = self.inner.as_mut() else {
            self.out.extend_from_slice(samples);
            return Ok(());
        };
        self.pending.extend_from_slice(samples);
        let mut start = 0;
        loop {
            let need = r.input_frames_next();
            if self.pending.len() - start < need {
                break;
            }
            let produced = run_chunk(
                r,
                &self.pending[start..start + need],
                &mut self.chunk_out,
                None,
            )?;
            self.out.extend_from_slice(&self.chunk_out[..produced]);
            start += need;
        }
        self.pending.drain(..start);
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<f32>, MediaError> {
        let Some(mut r) = self.inner.take() else {
            return Ok(self.out);
        };
        let ratio = r.resample_ratio();
        let expected = (self.frames_in as f64 * ratio).ceil() as usize;
        let delay = r.output_delay();
        let wanted = expected + delay;
        // Flush: the partial tail, then silence until the delayed output is out.
        let mut tail = std::mem::take(&mut self.pending);
        let mut guard = 0;
        while self.out.len() < wanted && guard < 64 {
            guard += 1;
            let need = r.input_frames_next();
            let valid = tail.len().min(need);
            let mut chunk = vec![0.0f32; need];
            chunk[..valid].copy_from_slice(&tail[..valid]);
            tail.drain(..valid);
            let idx = Indexing::new().partial_len(valid);
            let produced = run_chunk(&mut r, &chunk, &mut self.chunk_out, Some(&idx))?;
            self.out.extend_from_slice(&self.chunk_out[..produced]);
        }
        let mut out = self.out;
        let delay = delay.min(out.len());
        out.drain(..delay);
        out.truncate(expected);
        Ok(out)
    }
}

fn run_chunk(
    r: &mut Fft<f32>,
    input: &[f32],
    out: &mut [f32],
    idx: Option<&Indexing>,
) -> Result<usize, MediaError> {
    let fail = |e: &dyn std::fmt::Display| MediaError::Internal(format!("resampling failed: {e}"));
    let inp = InterleavedSlice::new(input, 1, input.len()).map_err(|e| fail(&e))?;
    let len = out.len();
    let mut outp = InterleavedSlice::new_mut(out, 1, len).map_err(|e| fail(&e))?;
    let (_, produced) = r
        .process_into_buffer(&inp, &mut outp, idx)
        .map_err(|e| fail(&e))?;
    Ok(produced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampler_preserves_length_and_frequency() {
        let from = 44_100u32;
        let to = 16_000u32;
        let n = from as usize * 2;
        let f = 440.0f32;
        let input: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * f * i as f32 / from as f32).sin() * 0.5)
            .collect();
        let mut r = MonoResampler::new(from, to).unwrap();
        for c in input.chunks(777) {
            r.push(c).unwrap();
        }
        let out = r.finish().unwrap();
        let expected = (n as f64 * f64::from(to) / f64::from(from)).ceil() as usize;
        assert_eq!(out.len(), expected);
        // Zero crossings of a 440 Hz tone over 2 s: about 1760.
        let crossings = out
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((1740..1780).contains(&crossings), "{crossings}");
        // Amplitude kept (no delay-induced leading silence in the middle).
        let peak = out[4000..28000].iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((0.45..0.55).contains(&peak), "{peak}");
        // Start aligned: no long leading silence.
        assert!(out[..200].iter().any(|s| s.abs() > 0.1));
    }

    #[test]
    fn passthrough_when_rates_match() {
        let mut r = MonoResampler::new(16_000, 16_000).unwrap();
        r.push(&[0.1, 0.2, 0.3]).unwrap();
        assert_eq!(r.finish().unwrap(), vec![0.1, 0.2, 0.3]);
    }
}
