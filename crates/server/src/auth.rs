//! Optional API-key authentication, with throttling of wrong keys per
//! client address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ServerError;
use crate::metrics as m;

/// Most client addresses whose failures are remembered at once.
const MAX_TRACKED_CLIENTS: usize = 65_536;

/// Who is calling: the digest of the API key they presented (when keys are
/// configured). A request extension; async jobs are visible only to the
/// key that created them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub key: Option<[u8; 32]>,
}

/// Configured keys, kept only as SHA-256 digests so that comparison takes
/// the same time whatever the key's length or content.
#[derive(Clone)]
pub(crate) struct Auth {
    digests: Arc<Vec<[u8; 32]>>,
    exempt: Arc<Vec<String>>,
    throttle: Arc<Throttle>,
}

/// Failed attempts per client address in a fixed window: past
/// `max_failures`, every request from that address is refused (429) until
/// the window ends.
pub(crate) struct Throttle {
    max_failures: u32,
    window: Duration,
    clients: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Throttle {
    pub(crate) fn new(max_failures: u32, window: Duration) -> Self {
        Throttle {
            max_failures,
            window,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds until `ip` may try again, when it is locked out.
    fn locked_for(&self, ip: IpAddr) -> Option<u64> {
        if self.max_failures == 0 {
            return None;
        }
        let map = self.lock();
        let (start, n) = map.get(&ip)?;
        let left = self.window.checked_sub(start.elapsed())?;
        (*n >= self.max_failures).then(|| left.as_secs().max(1))
    }

    fn fail(&self, ip: IpAddr) {
        if self.max_failures == 0 {
            return;
        }
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED_CLIENTS && !map.contains_key(&ip) {
            let window = self.window;
            map.retain(|_, (start, _)| start.elapsed() < window);
        }
        if map.len() >= MAX_TRACKED_CLIENTS && !map.contains_key(&ip) {
            // Still full of live windows: count the newcomer with everyone
            // else who does not fit.
            let bucket = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            let e = map.entry(bucket).or_insert((Instant::now(), 0));
            e.1 = e.1.saturating_add(1);
            return;
        }
        let e = map.entry(ip).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= self.window {
            *e = (Instant::now(), 0);
        }
        e.1 = e.1.saturating_add(1);
    }

    fn succeed(&self, ip: IpAddr) {
        self.lock().remove(&ip);
    }
}

impl Auth {
    pub(crate) fn new(keys: &[String], exempt: &[String], throttle: Throttle) -> Self {
        Auth {
            digests: Arc::new(
                keys.iter()
                    .map(|k| k.trim())
                    .filter(|k| !k.is_empty())
                    .map(|k| Sha256::digest(k.as_bytes()).into())
                    .collect(),
            ),
            exempt: Arc::new(exempt.to_vec()),
            throttle: Arc::new(throttle),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Paths open without a key: `/`, `/docs`, `/docs/...` and `/assets/...`
    /// always, plus the configured list (default `/health`, `/ready`,
    /// `/metrics`, `/openapi.json`).
    fn is_exempt(&self, path: &str) -> bool {
        path == "/"
            || path == "/review/login"
            || path == "/docs"
            || path.starts_with("/docs/")
            || path.starts_with("/assets/")
            || self.exempt.iter().any(|p| p == path)
    }

    /// The sign-in page's check of `key` from `ip`: counted by the same
    /// throttle as wrong keys on the API.
    pub(crate) fn sign_in(&self, ip: IpAddr, key: &str) -> Result<bool, ServerError> {
        if let Some(retry_after_s) = self.throttle.locked_for(ip) {
            return Err(ServerError::AuthThrottled { retry_after_s });
        }
        if self.accepts(key).is_some() {
            self.throttle.succeed(ip);
            Ok(true)
        } else {
            self.throttle.fail(ip);
            metrics::counter!(m::AUTH_FAILURES_TOTAL).increment(1);
            Ok(false)
        }
    }

    /// Constant-time check of a presented key against every configured key
    /// (all are compared; no early exit). Returns the key's digest.
    fn accepts(&self, presented: &str) -> Option<[u8; 32]> {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut ok = subtle::Choice::from(0u8);
        for k in self.digests.iter() {
            ok |= k.ct_eq(&d);
        }
        bool::from(ok).then_some(d)
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

/// The client's address (unspecified when the router runs without a
/// listener, as in tests).
pub(crate) fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

pub(crate) async fn require_key(
    State(auth): State<Auth>,
    mut req: Request,
    next: Next,
) -> Response {
    if !auth.enabled() || auth.is_exempt(req.uri().path()) {
        req.extensions_mut().insert(Caller { key: None });
        return next.run(req).await;
    }
    let ip = client_ip(&req);
    if let Some(retry_after_s) = auth.throttle.locked_for(ip) {
        metrics::counter!(m::ADMISSION_REFUSED_TOTAL, "reason" => "auth_throttled").increment(1);
        return ServerError::AuthThrottled { retry_after_s }.into_response();
    }
    let cookie = crate::review::cookie_key(req.headers());
    let presented = presented_key(req.headers()).or(cookie.as_deref());
    if presented.is_none() && req.uri().path().starts_with("/review") {
        // A person at a browser: the sign-in page, not a problem document.
        return axum::response::Redirect::to("/review/login").into_response();
    }
    let outcome = match presented {
        None => Err(ServerError::Unauthorized(
            "an API key is required: send `Authorization: Bearer <key>` or `X-Api-Key: <key>` (or sign in at /review/login)",
        )),
        Some(k) => auth
            .accepts(k)
            .ok_or(ServerError::Unauthorized("the API key is not valid")),
    };
    match outcome {
        Ok(digest) => {
            auth.throttle.succeed(ip);
            req.extensions_mut().insert(Caller { key: Some(digest) });
            next.run(req).await
        }
        Err(e) => {
            auth.throttle.fail(ip);
            metrics::counter!(m::AUTH_FAILURES_TOTAL).increment(1);
            e.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_and_exemptions() {
        let t = || Throttle::new(10, Duration::from_secs(60));
        let a = Auth::new(
            &["s3cret".into(), " other ".into(), "".into()],
            &["/health".into()],
            t(),
        );
        assert!(a.enabled());
        assert!(a.accepts("s3cret").is_some());
        assert!(a.accepts("other").is_some());
        assert_ne!(a.accepts("s3cret"), a.accepts("other"));
        assert!(a.accepts("s3cre").is_none());
        assert!(a.accepts("").is_none());
        assert!(a.is_exempt("/health"));
        assert!(a.is_exempt("/docs/assets/swagger-ui.css"));
        assert!(a.is_exempt("/assets/index.js"));
        assert!(!a.is_exempt("/v1/analyze"));
        assert!(!Auth::new(&[" ".into()], &[], t()).enabled());
    }

    #[test]
    fn failures_lock_an_address_out_for_the_window() {
        let t = Throttle::new(3, Duration::from_millis(200));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..2 {
            t.fail(ip);
        }
        assert_eq!(t.locked_for(ip), None);
        t.fail(ip);
        assert_eq!(t.locked_for(ip), Some(1));
        assert_eq!(t.locked_for(other), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(t.locked_for(ip), None, "window over");
        t.fail(other);
        t.succeed(other);
        assert_eq!(t.lock().get(&other), None);
        let off = Throttle::new(0, Duration::from_secs(1));
        for _ in 0..100 {
            off.fail(ip);
        }
        assert_eq!(off.locked_for(ip), None);
    }
}
