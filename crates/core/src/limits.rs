//! Input limits. Every decoder checks these before allocating, so hostile
//! input ends in a `PayloadTooLarge` / `UnprocessableInput` problem instead of
//! an out-of-memory kill or a hang.

use serde::{Deserialize, Serialize};

/// Limits applied to every input. Defaults suit interview headshots, up to
/// an hour of audio and multi-page resumes on a 2-core, few-GiB machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    /// Largest accepted upload, in bytes (one file or one text field).
    pub max_upload_bytes: u64,
    /// Largest decoded image, in pixels (width × height).
    pub max_pixels: u64,
    /// Largest decoded image side, in pixels.
    pub max_image_side: u32,
    /// Longest audio accepted, in seconds (after decoding).
    pub max_audio_seconds: f64,
    /// Lowest source sample rate accepted, in Hz. A header declaring less is
    /// refused as implausible: speech needs at least 4 kHz, and a tiny file
    /// declaring 1 Hz would otherwise decode to hours of audio.
    #[serde(default = "default_min_audio_sample_rate")]
    pub min_audio_sample_rate: u32,
    /// Most pages read from a PDF.
    pub max_pages: u32,
    /// Most characters of extracted or pasted text.
    pub max_text_chars: u64,
    /// Largest ratio of decompressed to compressed size accepted inside
    /// containers (DOCX zip members, PNG text chunks, PDF streams).
    pub max_decompression_ratio: f64,
    /// Largest total decompressed size inside a container, in bytes.
    pub max_decompressed_bytes: u64,
    /// Wall-clock budget for decoding one input, in milliseconds. Decoding
    /// that runs longer is abandoned with an `UnprocessableInput` problem.
    pub decode_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 64 * 1024 * 1024,
            max_pixels: 40_000_000,
            max_image_side: 16_384,
            max_audio_seconds: 3_600.0,
            min_audio_sample_rate: default_min_audio_sample_rate(),
            max_pages: 50,
            max_text_chars: 200_000,
            max_decompression_ratio: 100.0,
            max_decompressed_bytes: 64 * 1024 * 1024,
            decode_timeout_ms: 30_000,
        }
    }
}

fn default_min_audio_sample_rate() -> u32 {
    4_000
}
