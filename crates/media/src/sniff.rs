//! Format detection: magic bytes first, then the caller's hints.

use crate::error::MediaError;

/// What a caller knows about an input besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hint<'a> {
    /// The uploaded file's name, if any (only its extension is used).
    pub filename: Option<&'a str>,
    /// The declared MIME type, if any (parameters such as `; charset=` are ignored).
    pub content_type: Option<&'a str>,
}

/// The broad class of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A still image.
    Image,
    /// Audio, or the audio track of a video.
    Audio,
    /// A text document (PDF, DOCX, plain text).
    Document,
}

impl Kind {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Audio => "audio",
            Kind::Document => "document",
        }
    }
}

/// The result of [`sniff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SniffedFormat {
    /// Broad class.
    pub kind: Kind,
    /// One of `jpeg`, `png`, `webp`, `gif`, `bmp`, `tiff`, `wav`, `flac`,
    /// `mp3`, `aac`, `mp4`, `ogg`, `webm`, `mkv`, `pdf`, `docx`, `text`.
    pub format: &'static str,
}

const fn fmt(kind: Kind, format: &'static str) -> SniffedFormat {
    SniffedFormat { kind, format }
}

/// Detects the format of `bytes`: magic bytes first, then `hint` (MIME type,
/// then file extension) for formats without a reliable signature.
///
/// Errors with `UnsupportedMediaType` for unknown or unsupported types
/// (including HEIC/AVIF and legacy `.doc`), and with `UnprocessableInput`
/// (`empty_input`) for empty input.
pub fn sniff(bytes: &[u8], hint: &Hint) -> Result<SniffedFormat, MediaError> {
    if bytes.is_empty() {
        return Err(MediaError::unprocessable(
            "empty_input",
            "the input is empty (0 bytes)",
        ));
    }
    if let Some(found) = sniff_magic(bytes)? {
        return Ok(found);
    }
    if let Some(found) = hint.content_type.and_then(from_mime) {
        return Ok(found);
    }
    if let Some(found) = hint.filename.and_then(from_extension) {
        return Ok(found);
    }
    if looks_like_text(bytes) {
        return Ok(fmt(Kind::Document, "text"));
    }
    let declared = hint
        .content_type
        .map(|c| format!(" (declared as `{c}`)"))
        .or_else(|| hint.filename.map(|f| format!(" (file `{f}`)")))
        .unwrap_or_default();
    Err(MediaError::unsupported(format!(
        "unrecognised input type{declared}; supported: JPEG, PNG, WebP, GIF, BMP, TIFF images; \
         WAV, FLAC, MP3, AAC/M4A, MP4, Ogg (Vorbis/Opus), WebM, MKV audio; PDF, DOCX, TXT, MD documents"
    )))
}

fn heic_error() -> MediaError {
    MediaError::Unsupported {
        code: "heic_avif",
        message: "HEIC/HEIF/AVIF images are not supported yet; please upload JPEG, PNG or WebP"
            .into(),
    }
}

fn sniff_magic(b: &[u8]) -> Result<Option<SniffedFormat>, MediaError> {
    let starts = |m: &[u8]| b.starts_with(m);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Some(fmt(Kind::Image, "jpeg")));
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Ok(Some(fmt(Kind::Image, "png")));
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Ok(Some(fmt(Kind::Image, "gif")));
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Ok(Some(fmt(Kind::Image, "tiff")));
    }
    if b.len() >= 12 && starts(b"RIFF") {
        match &b[8..12] {
            b"WEBP" => return Ok(Some(fmt(Kind::Image, "webp"))),
            b"WAVE" => return Ok(Some(fmt(Kind::Audio, "wav"))),
            _ => {}
        }
    }
    if starts(b"BM") && b.len() >= 14 {
        // BMP: "BM", file size, 4 reserved bytes, pixel offset; the DIB header
        // size that follows is one of a few known values.
        if b.len() >= 18 {
            let dib = u32::from_le_bytes([b[14], b[15], b[16], b[17]]);
            if matches!(dib, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124) {
                return Ok(Some(fmt(Kind::Image, "bmp")));
            }
        } else {
            return Ok(Some(fmt(Kind::Image, "bmp")));
        }
    }
    if starts(b"fLaC") {
        return Ok(Some(fmt(Kind::Audio, "flac")));
    }
    if starts(b"OggS") {
        return Ok(Some(fmt(Kind::Audio, "ogg")));
    }
    if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        let head = &b[..b.len().min(64)];
        let is_webm = head.windows(4).any(|w| w == b"webm");
        return Ok(Some(fmt(Kind::Audio, if is_webm { "webm" } else { "mkv" })));
    }
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        let brand = &b[8..12];
        let compat_end = b.len().min(64);
        let brands: Vec<&[u8]> = std::iter::once(brand)
            .chain(b[16.min(compat_end)..compat_end].chunks_exact(4))
            .collect();
        let heif = [
            &b"heic"[..],
            b"heix",
            b"heim",
            b"heis",
            b"hevc",
            b"hevx",
            b"mif1",
            b"msf1",
            b"avif",
            b"avis",
        ];
        if heif.contains(&brand) || (brand != b"isom" && brands.iter().any(|x| heif.contains(x))) {
            return Err(heic_error());
        }
        return Ok(Some(fmt(Kind::Audio, "mp4")));
    }
    if starts(b"ID3") {
        return Ok(Some(fmt(Kind::Audio, "mp3")));
    }
    if b.len() >= 4 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0 {
        let layer = (b[1] >> 1) & 0x3;
        let version = (b[1] >> 3) & 0x3;
        if layer == 0 && version & 0x2 == 0x2 && (b[1] & 0xF6) == 0xF0 {
            return Ok(Some(fmt(Kind::Audio, "aac")));
        }
        let bitrate = b[2] >> 4;
        let rate = (b[2] >> 2) & 0x3;
        if layer != 0 && version != 1 && bitrate != 0xF && rate != 0x3 {
            return Ok(Some(fmt(Kind::Audio, "mp3")));
        }
    }
    if let Some(pos) = find(&b[..b.len().min(1024)], b"%PDF-") {
        let _ = pos;
        return Ok(Some(fmt(Kind::Document, "pdf")));
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        if find(b, b"word/").is_some() {
            return Ok(Some(fmt(Kind::Document, "docx")));
        }
        if find(b, b"xl/").is_some() || find(b, b"ppt/").is_some() {
            return Err(MediaError::unsupported(
                "spreadsheets and presentations are not supported; upload a resume as PDF, DOCX or text",
            ));
        }
        // Could still be a DOCX whose names we missed; let the hints decide.
        return Ok(None);
    }
    if starts(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Err(MediaError::Unsupported {
            code: "legacy_office",
            message: "legacy Microsoft Office files (.doc) are not supported; save the file as DOCX or PDF".into(),
        });
    }
    if starts(b"{\\rtf") {
        return Err(MediaError::unsupported(
            "RTF documents are not supported; save the file as DOCX, PDF or plain text",
        ));
    }
    if starts(&[0xEF, 0xBB, 0xBF]) || starts(&[0xFF, 0xFE]) || starts(&[0xFE, 0xFF]) {
        return Ok(Some(fmt(Kind::Document, "text")));
    }
    Ok(None)
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn from_mime(ct: &str) -> Option<SniffedFormat> {
    let mime = ct.split(';').next()?.trim().to_ascii_lowercase();
    Some(match mime.as_str() {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => fmt(Kind::Image, "jpeg"),
        "image/png" => fmt(Kind::Image, "png"),
        "image/webp" => fmt(Kind::Image, "webp"),
        "image/gif" => fmt(Kind::Image, "gif"),
        "image/bmp" | "image/x-ms-bmp" => fmt(Kind::Image, "bmp"),
        "image/tiff" => fmt(Kind::Image, "tiff"),
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => fmt(Kind::Audio, "wav"),
        "audio/flac" | "audio/x-flac" => fmt(Kind::Audio, "flac"),
        "audio/mpeg" | "audio/mp3" => fmt(Kind::Audio, "mp3"),
        "audio/aac" | "audio/aacp" => fmt(Kind::Audio, "aac"),
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "video/mp4" | "video/quicktime" => {
            fmt(Kind::Audio, "mp4")
        }
        "audio/ogg" | "audio/opus" | "application/ogg" | "video/ogg" => fmt(Kind::Audio, "ogg"),
        "audio/webm" | "video/webm" => fmt(Kind::Audio, "webm"),
        "audio/x-matroska" | "video/x-matroska" => fmt(Kind::Audio, "mkv"),
        "application/pdf" => fmt(Kind::Document, "pdf"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
            fmt(Kind::Document, "docx")
        }
        "text/plain" | "text/markdown" | "text/x-markdown" => fmt(Kind::Document, "text"),
        _ => return None,
    })
}

fn from_extension(name: &str) -> Option<SniffedFormat> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" | "jpe" | "jfif" => fmt(Kind::Image, "jpeg"),
        "png" => fmt(Kind::Image, "png"),
        "webp" => fmt(Kind::Image, "webp"),
        "gif" => fmt(Kind::Image, "gif"),
        "bmp" => fmt(Kind::Image, "bmp"),
        "tif" | "tiff" => fmt(Kind::Image, "tiff"),
        "wav" | "wave" => fmt(Kind::Audio, "wav"),
        "flac" => fmt(Kind::Audio, "flac"),
        "mp3" => fmt(Kind::Audio, "mp3"),
        "aac" => fmt(Kind::Audio, "aac"),
        "m4a" | "mp4" | "m4v" | "mov" => fmt(Kind::Audio, "mp4"),
        "ogg" | "oga" | "opus" => fmt(Kind::Audio, "ogg"),
        "webm" => fmt(Kind::Audio, "webm"),
        "mkv" | "mka" => fmt(Kind::Audio, "mkv"),
        "pdf" => fmt(Kind::Document, "pdf"),
        "docx" => fmt(Kind::Document, "docx"),
        "txt" | "text" | "md" | "markdown" => fmt(Kind::Document, "text"),
        _ => return None,
    })
}

/// True if the first few KiB are UTF-8 with no NUL and few control characters.
fn looks_like_text(b: &[u8]) -> bool {
    let head = &b[..b.len().min(4096)];
    let s = match std::str::from_utf8(head) {
        Ok(s) => s,
        // A multi-byte character cut at the 4 KiB boundary is fine.
        Err(e) if e.error_len().is_none() && e.valid_up_to() + 4 > head.len() => {
            match std::str::from_utf8(&head[..e.valid_up_to()]) {
                Ok(s) => s,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    if s.is_empty() {
        return false;
    }
    let controls = s
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
        .count();
    !s.contains('\0') && controls * 100 <= s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::{ProblemKind, ToProblem};

    fn no_hint() -> Hint<'static> {
        Hint::default()
    }

    #[test]
    fn magic_bytes() {
        let cases: &[(&[u8], &str)] = &[
            (b"\xFF\xD8\xFF\xE0....", "jpeg"),
            (b"\x89PNG\r\n\x1a\n....", "png"),
            (b"GIF89a......", "gif"),
            (b"RIFF\0\0\0\0WEBPVP8 ", "webp"),
            (b"RIFF\0\0\0\0WAVEfmt ", "wav"),
            (b"fLaC\0\0\0\x22", "flac"),
            (b"OggS\0\x02", "ogg"),
            (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x84webm", "webm"),
            (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska", "mkv"),
            (b"\0\0\0\x20ftypM4A \0\0\0\0", "mp4"),
            (b"ID3\x04\0\0\0\0\0\0", "mp3"),
            (b"\xFF\xFB\x90\x64", "mp3"),
            (b"\xFF\xF1\x50\x80", "aac"),
            (b"%PDF-1.7\n", "pdf"),
            (b"II*\0\x08\0\0\0", "tiff"),
            (b"\xEF\xBB\xBFhello", "text"),
            (b"Jane Doe\nEngineer\n", "text"),
        ];
        for (bytes, want) in cases {
            let got = sniff(bytes, &no_hint()).unwrap();
            assert_eq!(got.format, *want, "{bytes:?}");
        }
    }

    #[test]
    fn heic_is_unsupported_with_clear_message() {
        let e = sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", &no_hint()).unwrap_err();
        assert_eq!(e.problem_kind(), ProblemKind::UnsupportedMediaType);
        assert!(e.to_string().contains("HEIC"));
    }

    #[test]
    fn hints_used_when_no_magic() {
        let h = Hint {
            filename: Some("resume.TXT"),
            content_type: None,
        };
        assert_eq!(sniff(b"\x01\x02\x03", &h).unwrap().format, "text");
        let h = Hint {
            filename: None,
            content_type: Some("image/png; q=1"),
        };
        assert_eq!(sniff(b"\x01\x02\x03", &h).unwrap().format, "png");
    }

    #[test]
    fn unknown_binary_rejected() {
        let e = sniff(&[0u8, 1, 2, 3, 0, 0, 0, 9], &no_hint()).unwrap_err();
        assert_eq!(e.problem_kind(), ProblemKind::UnsupportedMediaType);
        let e = sniff(b"", &no_hint()).unwrap_err();
        assert_eq!(e.problem_kind(), ProblemKind::UnprocessableInput);
        let e = sniff(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", &no_hint()).unwrap_err();
        assert_eq!(e.code(), "legacy_office");
    }
}
