//! Optional API-key authentication.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ServerError;

/// Configured keys, kept only as SHA-256 digests so that comparison takes
/// the same time whatever the key's length or content.
#[derive(Clone)]
pub(crate) struct Auth {
    digests: Arc<Vec<[u8; 32]>>,
    exempt: Arc<Vec<String>>,
}

impl Auth {
    pub(crate) fn new(keys: &[String], exempt: &[String]) -> Self {
        Auth {
            digests: Arc::new(
                keys.iter()
                    .map(|k| k.trim())
                    .filter(|k| !k.is_empty())
                    .map(|k| Sha256::digest(k.as_bytes()).into())
                    .collect(),
            ),
            exempt: Arc::new(exempt.to_vec()),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Paths open without a key: `/`, `/docs` and `/docs/...` always, plus
    /// the configured list (default `/health`, `/ready`, `/metrics`,
    /// `/openapi.json`).
    fn is_exempt(&self, path: &str) -> bool {
        path == "/"
            || path == "/docs"
            || path.starts_with("/docs/")
            || self.exempt.iter().any(|p| p == path)
    }

    /// Constant-time check of a presented key against every configured key
    /// (all are compared; no early exit).
    fn accepts(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut ok = subtle::Choice::from(0u8);
        for k in self.digests.iter() {
            ok |= k.ct_eq(&d);
        }
        ok.into()
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

pub(crate) async fn require_key(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    if !auth.enabled() || auth.is_exempt(req.uri().path()) {
        return next.run(req).await;
    }
    match presented_key(req.headers()) {
        None => ServerError::Unauthorized(
            "an API key is required: send `Authorization: Bearer <key>` or `X-Api-Key: <key>`",
        )
        .into_response(),
        Some(k) if auth.accepts(k) => next.run(req).await,
        Some(_) => ServerError::Unauthorized("the API key is not valid").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_and_exemptions() {
        let a = Auth::new(
            &["s3cret".into(), " other ".into(), "".into()],
            &["/health".into()],
        );
        assert!(a.enabled());
        assert!(a.accepts("s3cret"));
        assert!(a.accepts("other"));
        assert!(!a.accepts("s3cre"));
        assert!(!a.accepts(""));
        assert!(a.is_exempt("/health"));
        assert!(a.is_exempt("/docs/assets/swagger-ui.css"));
        assert!(!a.is_exempt("/v1/analyze"));
        assert!(!Auth::new(&[" ".into()], &[]).enabled());
    }
}
