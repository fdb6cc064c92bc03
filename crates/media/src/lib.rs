//! Hostile-input-safe decoders for Candor's three input kinds.
//!
//! * Images (JPEG, PNG, WebP, GIF, BMP, TIFF): header dimensions are checked
//!   against [`Limits`] before any pixel buffer is allocated; EXIF orientation
//!   is applied; forensic metadata (EXIF, XMP, PNG text, JPEG quantisation
//!   tables, C2PA and ICC presence) is extracted.
//! * Audio (WAV, FLAC, MP3, AAC/M4A, MP4 video, Ogg Vorbis/Opus, WebM, MKV):
//!   first audio track, downmixed to mono, resampled with rubato; the
//!   duration limit is enforced while decoding.
//! * Documents (PDF text layer, DOCX, TXT/MD, pasted text): zip-bomb and
//!   decompression-bomb safe; paragraphs are given as character ranges.
//!
//! [`decode`] runs every decoder on a worker thread with a wall-clock budget
//! and contains panics, so no input can crash or hang the caller. Every error
//! is a [`MediaError`], which implements [`candor_core::ToProblem`].

pub mod audio;
pub mod bounded;
pub mod c2pa_read;
pub mod document;
pub mod error;
pub mod image;
pub mod sniff;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

pub use crate::audio::DecodedAudio;
pub use crate::document::{document_from_text, DecodedDocument};
pub use crate::error::MediaError;
pub use crate::image::{DecodedImage, ExifField, ImageMetadata, PngTextChunk, QuantTable};
pub use crate::sniff::{sniff, Hint, Kind, SniffedFormat};
pub use candor_core::Limits;

use crate::bounded::{run_bounded, Deadline};
use crate::error::human_bytes;

/// Options for [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Sample rate audio is resampled to (default 16 000 Hz).
    pub audio_sample_rate: u32,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            audio_sample_rate: 16_000,
        }
    }
}

/// A decoded input.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// A still image.
    Image(DecodedImage),
    /// Mono audio at the requested rate.
    Audio(DecodedAudio),
    /// Extracted document text.
    Document(DecodedDocument),
}

impl Decoded {
    /// The broad class of the input.
    pub fn kind(&self) -> Kind {
        match self {
            Decoded::Image(_) => Kind::Image,
            Decoded::Audio(_) => Kind::Audio,
            Decoded::Document(_) => Kind::Document,
        }
    }

    /// The sniffed format (`jpeg`, `wav`, `pdf`, ...; for audio the container).
    pub fn format(&self) -> &str {
        match self {
            Decoded::Image(i) => i.format,
            Decoded::Audio(a) => &a.container,
            Decoded::Document(d) => d.format,
        }
    }

    /// Non-fatal observations made while decoding.
    pub fn warnings(&self) -> &[String] {
        match self {
            Decoded::Image(i) => &i.warnings,
            Decoded::Audio(a) => &a.warnings,
            Decoded::Document(d) => &d.warnings,
        }
    }

    /// Whether the file ends before the data it declares (a truncated JPEG,
    /// audio shorter than its header states). The decoded part is usable
    /// but is not the whole input.
    pub fn truncated(&self) -> bool {
        match self {
            Decoded::Image(i) => i.truncated,
            Decoded::Audio(a) => a.truncated,
            Decoded::Document(_) => false,
        }
    }

    /// A flat description of the input for results and logs (no pixel,
    /// sample or text content).
    pub fn properties(&self) -> BTreeMap<String, Value> {
        let mut p = BTreeMap::new();
        p.insert("kind".into(), json!(self.kind().as_str()));
        p.insert("format".into(), json!(self.format()));
        match self {
            Decoded::Image(i) => {
                p.insert("width".into(), json!(i.image.width()));
                p.insert("height".into(), json!(i.image.height()));
                p.insert("original_width".into(), json!(i.original_width));
                p.insert("original_height".into(), json!(i.original_height));
                if let Some(o) = i.orientation {
                    p.insert("exif_orientation".into(), json!(o));
                }
                let m = &i.metadata;
                p.insert("exif_fields".into(), json!(m.exif.len()));
                for f in &m.exif {
                    if matches!(f.tag.as_str(), "Software" | "Make" | "Model") {
                        p.insert(
                            format!("exif_{}", f.tag.to_ascii_lowercase()),
                            json!(f.value),
                        );
                    }
                }
                p.insert("has_xmp".into(), json!(m.xmp.is_some()));
                p.insert("png_text_chunks".into(), json!(m.png_text.len()));
                p.insert("jpeg_quant_tables".into(), json!(m.jpeg_quant_tables.len()));
                p.insert("has_c2pa".into(), json!(m.has_c2pa));
                p.insert("has_icc_profile".into(), json!(m.icc_profile));
            }
            Decoded::Audio(a) => {
                p.insert("duration_s".into(), json!(a.duration_s));
                p.insert("sample_rate".into(), json!(a.sample_rate));
                p.insert("codec".into(), json!(a.codec));
                p.insert("original_sample_rate".into(), json!(a.original_sample_rate));
                p.insert("original_channels".into(), json!(a.original_channels));
            }
            Decoded::Document(d) => {
                p.insert("chars".into(), json!(d.text.chars().count()));
                p.insert("paragraphs".into(), json!(d.paragraphs.len()));
                if let Some(n) = d.pages {
                    p.insert("pages".into(), json!(n));
                }
            }
        }
        p
    }
}

/// Enforces `max_upload_bytes`, sniffs, and decodes.
///
/// The decoder runs on a worker thread under `catch_unwind` with a
/// `decode_timeout_ms` wall-clock budget: a decoder that panics yields
/// `UnprocessableInput`/`corrupt`, one that overruns yields
/// `UnprocessableInput`/`decode_timeout`. Synchronous and CPU-bound: async
/// callers should use `spawn_blocking`.
pub fn decode(
    bytes: Arc<[u8]>,
    hint: &Hint,
    limits: &Limits,
    opts: &DecodeOptions,
) -> Result<Decoded, MediaError> {
    if bytes.len() as u64 > limits.max_upload_bytes {
        return Err(MediaError::too_large(
            "max_upload_bytes",
            format!(
                "the upload is {}, the limit is {}",
                human_bytes(bytes.len() as u64),
                human_bytes(limits.max_upload_bytes)
            ),
        ));
    }
    let sniffed = sniff(&bytes, hint)?;
    let limits = limits.clone();
    let opts = *opts;
    let budget = limits.decode_timeout_ms;
    run_bounded(budget, move || {
        decode_sniffed(bytes, sniffed, &limits, &opts, &Deadline::after_ms(budget))
    })
}

/// Decodes an already-sniffed input on the current thread (no timeout and
/// no panic containment; prefer [`decode`]).
pub fn decode_sniffed(
    bytes: Arc<[u8]>,
    sniffed: SniffedFormat,
    limits: &Limits,
    opts: &DecodeOptions,
    deadline: &Deadline,
) -> Result<Decoded, MediaError> {
    match sniffed.kind {
        Kind::Image => {
            image::decode_image(&bytes, sniffed.format, limits, deadline).map(Decoded::Image)
        }
        Kind::Audio => audio::decode_audio(
            bytes,
            sniffed.format,
            limits,
            opts.audio_sample_rate,
            deadline,
        )
        .map(Decoded::Audio),
        Kind::Document => match sniffed.format {
            "pdf" => document::decode_pdf(&bytes, limits, deadline),
            "docx" => document::decode_docx(&bytes, limits, deadline),
            _ => document::decode_text_bytes(&bytes, limits),
        }
        .map(Decoded::Document),
    }
}
