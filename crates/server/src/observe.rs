//! The outermost request middleware: request ids, one tracing span per
//! request, HTTP metrics, the register of requests in flight (logged one by
//! one if the server stops before they finish), disconnect metrics,
//! security headers, and the guarantee that every error response is
//! `application/problem+json`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::{Problem, PROBLEM_JSON};
use crate::metrics as m;

/// Header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest accepted caller-supplied request id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of the current request (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Largest error body read back when converting a non-problem error
/// response into a problem.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Accept the caller's `X-Request-Id` when it is usable: characters outside
/// `[A-Za-z0-9._:-]` are dropped and it is cut to 128 characters. When
/// nothing usable remains, a UUIDv4 is generated.
pub fn request_id_from(headers: &HeaderMap) -> String {
    let given = headers
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
                .take(MAX_REQUEST_ID_LEN)
                .collect::<String>()
        })
        .unwrap_or_default();
    if given.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        given
    }
}

/// A request being served, as logged when the server stops before it ends.
#[derive(Debug, Clone)]
pub struct InFlightRequest {
    pub request_id: String,
    pub method: String,
    pub route: String,
    pub age: Duration,
}

/// The requests being served right now.
#[derive(Default)]
pub struct InFlightRegister {
    next: AtomicU64,
    entries: Mutex<HashMap<u64, (String, String, String, Instant)>>,
}

impl InFlightRegister {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, String, String, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests in flight, oldest first.
    pub fn snapshot(&self) -> Vec<InFlightRequest> {
        let mut v: Vec<InFlightRequest> = self
            .lock()
            .values()
            .map(|(rid, method, route, t)| InFlightRequest {
                request_id: rid.clone(),
                method: method.clone(),
                route: route.clone(),
                age: t.elapsed(),
            })
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.age));
        v
    }
}

/// Registers a request; when dropped before [`Tracked::done`] (the client
/// went away, or the server stopped), counts a disconnect.
struct Tracked {
    register: Arc<InFlightRegister>,
    id: u64,
    route: String,
    done: bool,
}

impl Tracked {
    fn enter(register: &Arc<InFlightRegister>, rid: &str, method: &Method, route: &str) -> Self {
        metrics::gauge!(m::HTTP_IN_FLIGHT).increment(1.0);
        let id = register.next.fetch_add(1, Ordering::Relaxed);
        register.lock().insert(
            id,
            (
                rid.to_owned(),
                method.to_string(),
                route.to_owned(),
                Instant::now(),
            ),
        );
        Tracked {
            register: Arc::clone(register),
            id,
            route: route.to_owned(),
            done: false,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        metrics::gauge!(m::HTTP_IN_FLIGHT).decrement(1.0);
        self.register.lock().remove(&self.id);
        if !self.done {
            metrics::counter!(m::HTTP_CLIENT_DISCONNECTS_TOTAL, "route" => self.route.clone())
                .increment(1);
            tracing::info!(route = %self.route, "client went away before the response");
        }
    }
}

/// Content Security Policy of the HTML pages: scripts and styles only from
/// this server (no inline script), pictures also as `data:` URLs (evidence
/// images), no framing.
pub const HTML_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn security_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(HTML_CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
}

/// Request middleware; see the module docs.
pub async fn observe(
    State(register): State<Arc<InFlightRegister>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let rid = request_id_from(req.headers());
    req.extensions_mut().insert(RequestId(rid.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = %rid,
        method = %method,
        route = %route,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );

    let mut tracked = Tracked::enter(&register, &rid, &method, &route);
    let resp = next.run(req).instrument(span.clone()).await;
    let mut resp = problemize(resp, &method, &path, &rid).await;
    tracked.done = true;
    drop(tracked);
    security_headers(&mut resp);

    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!(
        m::HTTP_REQUESTS_TOTAL,
        "route" => route.clone(),
        "method" => method.to_string(),
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(
        m::HTTP_REQUEST_DURATION_SECONDS,
        "route" => route,
        "method" => method.to_string(),
    )
    .record(elapsed.as_secs_f64());
    let latency_ms = elapsed.as_secs_f64() * 1e3;
    span.record("status", status);
    span.record("latency_ms", latency_ms);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, latency_ms, "request failed");
        } else {
            tracing::info!(status, latency_ms, "request served");
        }
    });
    resp
}

/// Fill `instance` / `request_id` into problem responses, and turn any other
/// error response into a problem.
async fn problemize(resp: Response, method: &Method, path: &str, rid: &str) -> Response {
    let status = resp.status();
    let problem = resp.extensions().get::<Problem>().cloned();
    match problem {
        Some(p) => {
            let (parts, _) = resp.into_parts();
            render(parts, p, path, rid)
        }
        None => {
            let is_problem = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(PROBLEM_JSON));
            if !(status.is_client_error() || status.is_server_error()) || is_problem {
                return resp;
            }
            let (parts, body) = resp.into_parts();
            let text = axum::body::to_bytes(body, MAX_ERROR_BODY)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                .unwrap_or_default();
            let detail = if status == StatusCode::METHOD_NOT_ALLOWED {
                let allow = parts
                    .headers
                    .get(header::ALLOW)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if allow.is_empty() {
                    format!("method {method} is not allowed on {path}")
                } else {
                    format!("method {method} is not allowed on {path} (allowed: {allow})")
                }
            } else if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            };
            let problem = Problem::from_status(status, detail);
            let mut out = problem.clone().into_response();
            // Keep informative headers such as `Allow`.
            for (name, value) in parts.headers.iter() {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    out.headers_mut().insert(name.clone(), value.clone());
                }
            }
            let (parts, _) = out.into_parts();
            render(parts, problem, path, rid)
        }
    }
}

fn render(
    mut parts: axum::http::response::Parts,
    mut problem: Problem,
    path: &str,
    rid: &str,
) -> Response {
    problem.instance.get_or_insert_with(|| path.to_owned());
    problem.request_id = Some(rid.to_owned());
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.extensions.insert(problem);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_sanitised() {
        let mut h = HeaderMap::new();
        h.insert(
            REQUEST_ID_HEADER,
            HeaderValue::from_static("abc-123 <script>"),
        );
        assert_eq!(request_id_from(&h), "abc-123script");
        let long = "a".repeat(300);
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_str(&long).unwrap());
        assert_eq!(request_id_from(&h).len(), MAX_REQUEST_ID_LEN);
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("<>"));
        assert!(uuid::Uuid::parse_str(&request_id_from(&h)).is_ok());
        assert!(uuid::Uuid::parse_str(&request_id_from(&HeaderMap::new())).is_ok());
    }
}
