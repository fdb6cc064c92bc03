//! Errors of the HTTP layer and their RFC 9457 rendering.
//!
//! Every error response the server sends is `application/problem+json`.
//! Handlers return [`ServerError`] (or a [`Problem`] directly); the
//! request middleware ([`crate::observe`]) fills in `instance` and
//! `request_id`, and converts any non-problem error response (axum's own
//! rejections, 405s) into a problem, so callers never see plain text.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use candor_core::{Modality, ProblemKind, ToProblem};
use candor_detectors::AnalyzeError;
use serde::{Deserialize, Serialize};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// RFC 9457 problem details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:candor:problem:<kind>` for Candor's problem kinds; `about:blank`
    /// for plain HTTP errors that have no Candor-specific meaning (e.g. 405).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem kind.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// Path of the request that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Request id (also in the `X-Request-Id` response header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Machine-readable detail code, e.g. `max_upload_bytes`, `max_inputs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl Problem {
    /// A problem of a Candor kind.
    pub fn new(kind: ProblemKind, detail: impl Into<String>, code: Option<&str>) -> Self {
        Problem {
            type_uri: kind.type_uri(),
            title: kind.title().to_owned(),
            status: kind.status(),
            detail: detail.into(),
            instance: None,
            request_id: None,
            code: code.map(str::to_owned),
        }
    }

    /// The problem for any layer's error.
    pub fn from_error<E: ToProblem + ?Sized>(err: &E) -> Self {
        Problem::new(err.problem_kind(), err.to_string(), err.problem_code())
    }

    /// A problem for a bare HTTP status (used for responses produced outside
    /// Candor's handlers, such as axum rejections). Uses the Candor kind
    /// with that status when there is one, `about:blank` otherwise.
    pub fn from_status(status: StatusCode, detail: impl Into<String>) -> Self {
        let kind = match status.as_u16() {
            400 => Some(ProblemKind::BadRequest),
            401 => Some(ProblemKind::Unauthorized),
            404 => Some(ProblemKind::NotFound),
            413 => Some(ProblemKind::PayloadTooLarge),
            415 => Some(ProblemKind::UnsupportedMediaType),
            422 => Some(ProblemKind::UnprocessableInput),
            429 => Some(ProblemKind::Overloaded),
            408 => Some(ProblemKind::RequestTimeout),
            503 => Some(ProblemKind::NotReady),
            504 => Some(ProblemKind::DeadlineExceeded),
            500 => Some(ProblemKind::Internal),
            _ => None,
        };
        match kind {
            Some(k) => Problem::new(k, detail, None),
            None => Problem {
                type_uri: "about:blank".into(),
                title: status.canonical_reason().unwrap_or("Error").to_owned(),
                status: status.as_u16(),
                detail: detail.into(),
                instance: None,
                request_id: None,
                code: None,
            },
        }
    }

    /// HTTP status of this problem.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response();
        let headers = resp.headers_mut();
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"candor\""),
                );
            }
            StatusCode::TOO_MANY_REQUESTS => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT => {
                // The body was not (fully) read: the connection cannot be
                // reused for another request.
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        // The request middleware re-renders the body with `instance` and
        // `request_id` filled in.
        resp.extensions_mut().insert(self);
        resp
    }
}

/// Errors of the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The analysis layer refused or failed an input.
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
    /// Malformed request: bad JSON, bad query parameter, broken multipart.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Missing or wrong API key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Unknown route or resource.
    #[error("{0}")]
    NotFound(String),
    /// More inputs than `max_inputs_per_request`.
    #[error("request has more than {max} inputs; at most {max} are accepted per request")]
    TooManyInputs { max: usize },
    /// The request body is larger than the server's body limit.
    #[error("{0}")]
    BodyTooLarge(String),
    /// An input or a field exceeds a configured limit (`code` names it),
    /// found before or while the body is read.
    #[error("{message}")]
    Limit { code: &'static str, message: String },
    /// The client stopped sending: no bytes for longer than an idle
    /// timeout, or the body not complete by the request's deadline.
    #[error("{message}")]
    BodyTimeout { code: &'static str, message: String },
    /// The spill area for large inputs is full.
    #[error(
        "the temporary area for large uploads is full ({used} of {max} bytes in use); retry later"
    )]
    SpillFull { used: u64, max: u64 },
    /// The async job store's memory budget is spent.
    #[error("async jobs already hold {held} of their {max} byte budget; retry later")]
    JobBudgetFull { held: u64, max: u64 },
    /// All live-stream slots are taken.
    #[error("all {limit} live-stream slots are busy; retry later")]
    StreamsBusy { limit: usize },
    /// Too many wrong API keys from this client address.
    #[error("too many wrong API keys from this address; retry in {retry_after_s} s")]
    AuthThrottled { retry_after_s: u64 },
    /// Content type the server does not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An input sent to a per-modality route is of another modality.
    #[error("this route analyses {expected} inputs, but the input is {got}")]
    WrongModality { expected: Modality, got: Modality },
    /// All analysis slots are taken (load shedding).
    #[error("all {limit} analysis slots are busy; retry later")]
    Overloaded { limit: usize },
    /// The job store is full of unfinished jobs.
    #[error("the job store holds {max} unfinished jobs; retry later")]
    JobStoreFull { max: usize },
    /// The analyzer has not finished loading.
    #[error("the analyzer is not ready yet")]
    NotReady,
    /// The detector a route needs is not installed (the reason says why).
    #[error("{0}")]
    DetectorUnavailable(String),
    /// The durable store of async jobs cannot take the job now.
    #[error("{0}; retry later")]
    JobStoreUnavailable(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// I/O error while serving.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The bulk layer refused or failed.
    #[error(transparent)]
    Bulk(#[from] candor_bulk::BulkError),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ToProblem for ServerError {
    fn problem_kind(&self) -> ProblemKind {
        match self {
            ServerError::Analyze(e) => e.problem_kind(),
            ServerError::Bulk(e) => e.problem_kind(),
            ServerError::BadRequest { .. } => ProblemKind::BadRequest,
            ServerError::Unauthorized(_) => ProblemKind::Unauthorized,
            ServerError::NotFound(_) => ProblemKind::NotFound,
            ServerError::TooManyInputs { .. }
            | ServerError::BodyTooLarge(_)
            | ServerError::Limit { .. } => ProblemKind::PayloadTooLarge,
            ServerError::BodyTimeout { .. } => ProblemKind::RequestTimeout,
            ServerError::UnsupportedMediaType(_) | ServerError::WrongModality { .. } => {
                ProblemKind::UnsupportedMediaType
            }
            ServerError::Overloaded { .. }
            | ServerError::JobStoreFull { .. }
            | ServerError::SpillFull { .. }
            | ServerError::JobBudgetFull { .. }
            | ServerError::StreamsBusy { .. }
            | ServerError::AuthThrottled { .. } => ProblemKind::Overloaded,
            ServerError::NotReady
            | ServerError::DetectorUnavailable(_)
            | ServerError::JobStoreUnavailable(_) => ProblemKind::NotReady,
            ServerError::Bind { .. } | ServerError::Io(_) | ServerError::Internal(_) => {
                ProblemKind::Internal
            }
        }
    }

    fn problem_code(&self) -> Option<&'static str> {
        match self {
            ServerError::Analyze(e) => e.problem_code(),
            ServerError::Bulk(e) => e.problem_code(),
            ServerError::BadRequest { code, .. } => Some(code),
            ServerError::Unauthorized(_) => Some("api_key"),
            ServerError::TooManyInputs { .. } => Some("max_inputs"),
            ServerError::BodyTooLarge(_) => Some("body_limit"),
            ServerError::Limit { code, .. } | ServerError::BodyTimeout { code, .. } => Some(code),
            ServerError::SpillFull { .. } => Some("spill_area"),
            ServerError::JobBudgetFull { .. } => Some("max_job_bytes"),
            ServerError::StreamsBusy { .. } => Some("max_concurrent_streams"),
            ServerError::AuthThrottled { .. } => Some("auth_throttled"),
            ServerError::WrongModality { .. } => Some("wrong_modality"),
            ServerError::Overloaded { .. } => Some("max_concurrent_analyses"),
            ServerError::JobStoreFull { .. } => Some("max_jobs"),
            ServerError::DetectorUnavailable(_) => Some("detector_not_installed"),
            ServerError::JobStoreUnavailable(_) => Some("job_store"),
            _ => None,
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        if matches!(
            self,
            ServerError::Internal(_) | ServerError::Io(_) | ServerError::Bind { .. }
        ) || self.problem_kind() == ProblemKind::Internal
        {
            tracing::error!(error = %self, "internal error");
        }
        let retry = match &self {
            ServerError::AuthThrottled { retry_after_s } => Some(*retry_after_s),
            _ => None,
        };
        let mut resp = Problem::from_error(&self).into_response();
        if let Some(s) = retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, s);
        }
        resp
    }
}

impl ServerError {
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ServerError::BadRequest {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_from_error_uses_kind() {
        let p = Problem::from_error(&ServerError::TooManyInputs { max: 2 });
        assert_eq!(p.status, 413);
        assert_eq!(p.type_uri, "urn:candor:problem:payload-too-large");
        assert_eq!(p.code.as_deref(), Some("max_inputs"));
        let v = serde_json::to_value(&p).unwrap();
        assert!(v.get("instance").is_none());
        assert_eq!(v["type"], "urn:candor:problem:payload-too-large");
    }

    #[test]
    fn unmapped_status_is_about_blank() {
        let p = Problem::from_status(StatusCode::METHOD_NOT_ALLOWED, "nope");
        assert_eq!(p.type_uri, "about:blank");
        assert_eq!(p.title, "Method Not Allowed");
        assert_eq!(p.status, 405);
    }
}
