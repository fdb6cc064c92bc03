//! The error type of this crate and its mapping onto [`candor_core::ProblemKind`].

use candor_core::{ProblemKind, ToProblem};

/// Why an input could not be decoded.
///
/// Every variant carries a message meant for the end user (it says what was
/// wrong and, for limits, what the limit is) and, except for
/// [`MediaError::Unsupported`], a stable machine-readable code returned by
/// [`ToProblem::problem_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The input exceeds a configured limit (bytes, pixels, seconds, pages,
    /// characters, decompressed size or ratio).
    #[error("{message}")]
    TooLarge {
        /// Which limit: `max_upload_bytes`, `max_pixels`, `max_image_side`,
        /// `max_audio_seconds`, `max_pages`, `max_text_chars`,
        /// `max_decompressed_bytes` or `decompression_ratio`.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The input's type is not one Candor reads.
    #[error("{message}")]
    Unsupported {
        /// `unsupported_media_type`, `heic_avif`, `legacy_office`, ...
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The input has a supported type but cannot be used.
    #[error("{message}")]
    Unprocessable {
        /// `corrupt`, `truncated`, `empty_input`, `no_text`, `encrypted_pdf`,
        /// `image_only_pdf`, `decode_timeout`, `no_audio_track`,
        /// `unsupported_codec`, `invalid_utf8`, `encrypted_docx`, ...
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// An environment failure (e.g. a worker thread could not be started).
    /// Never the caller's fault.
    #[error("internal error while decoding: {0}")]
    Internal(String),
}

impl MediaError {
    /// A [`MediaError::TooLarge`].
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        MediaError::TooLarge {
            code,
            message: message.into(),
        }
    }

    /// A [`MediaError::Unsupported`] with code `unsupported_media_type`.
    pub fn unsupported(message: impl Into<String>) -> Self {
        MediaError::Unsupported {
            code: "unsupported_media_type",
            message: message.into(),
        }
    }

    /// A [`MediaError::Unprocessable`].
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        MediaError::Unprocessable {
            code,
            message: message.into(),
        }
    }

    /// A [`MediaError::Unprocessable`] with code `corrupt`.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::unprocessable("corrupt", message)
    }

    /// The machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::TooLarge { code, .. }
            | MediaError::Unsupported { code, .. }
            | MediaError::Unprocessable { code, .. } => code,
            MediaError::Internal(_) => "internal",
        }
    }
}

impl ToProblem for MediaError {
    fn problem_kind(&self) -> ProblemKind {
        match self {
            MediaError::TooLarge { .. } => ProblemKind::PayloadTooLarge,
            MediaError::Unsupported { .. } => ProblemKind::UnsupportedMediaType,
            MediaError::Unprocessable { .. } => ProblemKind::UnprocessableInput,
            MediaError::Internal(_) => ProblemKind::Internal,
        }
    }

    fn problem_code(&self) -> Option<&'static str> {
        Some(self.code())
    }
}

/// Formats a byte count for messages ("12.3 MiB", "512 B").
pub(crate) fn human_bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f >= KIB * KIB * KIB {
        format!("{:.1} GiB", f / (KIB * KIB * KIB))
    } else if f >= KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else if f >= KIB {
        format!("{:.1} KiB", f / KIB)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_codes() {
        let e = MediaError::too_large("max_pixels", "too big");
        assert_eq!(e.problem_kind(), ProblemKind::PayloadTooLarge);
        assert_eq!(e.problem_code(), Some("max_pixels"));
        assert_eq!(e.to_string(), "too big");
        assert_eq!(
            MediaError::unsupported("x").problem_kind(),
            ProblemKind::UnsupportedMediaType
        );
        assert_eq!(
            MediaError::corrupt("x").problem_kind(),
            ProblemKind::UnprocessableInput
        );
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
