//! Problem kinds: the shared vocabulary for failures.
//!
//! Each layer (media, engine, detectors, server) has its own `thiserror`
//! error type. Each implements [`ToProblem`] so the HTTP layer can render an
//! RFC 9457 `application/problem+json` body, and the CLI a clear message,
//! without knowing the layer's internals.

use serde::Serialize;

/// What went wrong, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// The request is malformed (missing field, bad parameter).
    BadRequest,
    /// Missing or wrong API key.
    Unauthorized,
    /// Unknown route or resource (e.g. job id).
    NotFound,
    /// The input is larger than a configured limit (bytes, pixels, seconds,
    /// pages, characters, decompressed size).
    PayloadTooLarge,
    /// The input's type is not one Candor reads.
    UnsupportedMediaType,
    /// The input has a supported type but cannot be used: corrupt, truncated,
    /// encrypted, image-only PDF, suspicious compression ratio, ...
    UnprocessableInput,
    /// The engine's queue is full; retry later (HTTP 429).
    Overloaded,
    /// The request's deadline passed before it was served.
    DeadlineExceeded,
    /// The client did not send its request (or stream) in time: no bytes
    /// for longer than an idle timeout, or the body not complete by the
    /// request's deadline (HTTP 408).
    RequestTimeout,
    /// The service is starting or a required model is not loaded.
    NotReady,
    /// A bug or an environment failure. Never the caller's fault.
    Internal,
}

impl ProblemKind {
    /// HTTP status code for this kind.
    pub fn status(self) -> u16 {
        match self {
            ProblemKind::BadRequest => 400,
            ProblemKind::Unauthorized => 401,
            ProblemKind::NotFound => 404,
            ProblemKind::PayloadTooLarge => 413,
            ProblemKind::UnsupportedMediaType => 415,
            ProblemKind::UnprocessableInput => 422,
            ProblemKind::Overloaded => 429,
            ProblemKind::DeadlineExceeded => 504,
            ProblemKind::RequestTimeout => 408,
            ProblemKind::NotReady => 503,
            ProblemKind::Internal => 500,
        }
    }

    /// Stable slug; the problem `type` URI is `urn:candor:problem:<slug>`.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "bad-request",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::NotFound => "not-found",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
            ProblemKind::UnprocessableInput => "unprocessable-input",
            ProblemKind::Overloaded => "overloaded",
            ProblemKind::DeadlineExceeded => "deadline-exceeded",
            ProblemKind::RequestTimeout => "request-timeout",
            ProblemKind::NotReady => "not-ready",
            ProblemKind::Internal => "internal",
        }
    }

    /// Problem `type` URI (RFC 9457 §3.1.1).
    pub fn type_uri(self) -> String {
        format!("urn:candor:problem:{}", self.slug())
    }

    /// Short human-readable summary (RFC 9457 `title`).
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "Bad request",
            ProblemKind::Unauthorized => "Unauthorized",
            ProblemKind::NotFound => "Not found",
            ProblemKind::PayloadTooLarge => "Input exceeds a configured limit",
            ProblemKind::UnsupportedMediaType => "Unsupported input type",
            ProblemKind::UnprocessableInput => "Input cannot be processed",
            ProblemKind::Overloaded => "Service overloaded, retry later",
            ProblemKind::DeadlineExceeded => "Deadline exceeded",
            ProblemKind::RequestTimeout => "Request not received in time",
            ProblemKind::NotReady => "Service not ready",
            ProblemKind::Internal => "Internal error",
        }
    }
}

/// Implemented by every layer's error type.
pub trait ToProblem: std::error::Error {
    /// The caller-facing kind of this error.
    fn problem_kind(&self) -> ProblemKind;

    /// Optional machine-readable detail code (e.g. `max_pixels`,
    /// `encrypted_pdf`) added to the problem body as `code`.
    fn problem_code(&self) -> Option<&'static str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_distinct_per_kind_family() {
        assert_eq!(ProblemKind::PayloadTooLarge.status(), 413);
        assert_eq!(ProblemKind::UnprocessableInput.status(), 422);
        assert_eq!(ProblemKind::Overloaded.status(), 429);
        assert_eq!(
            ProblemKind::UnsupportedMediaType.type_uri(),
            "urn:candor:problem:unsupported-media-type"
        );
    }
}
