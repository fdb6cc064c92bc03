//! The accept loop: connection caps and connection timeouts around the
//! router.
//!
//! * At accept: at most `max_connections` open connections, and at most
//!   `max_connections_per_client` from one client address; a connection
//!   over a cap gets a one-line 503/429 answer (best effort, never waited
//!   for) and is closed.
//! * Per connection, a watchdog closes it when
//!   - a request's headers are not complete `header_read_timeout` after
//!     the connection opened or the first byte of the request arrived
//!     (slow headers, half-open connections that send nothing);
//!   - it has been idle between requests for `keep_alive_timeout`;
//!   - a response has not been read by the client for `body_idle_timeout`
//!     (a client that stops reading). While a request is being handled the
//!     handler's own limits apply (body idle timeout, deadlines).
//! * Shutdown: no new connections; open ones are asked to finish their
//!   current request and close.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::metrics as m;

/// Connection limits and timeouts (from [`crate::ServerConfig`]).
#[derive(Debug, Clone)]
pub(crate) struct ConnLimits {
    pub max_connections: usize,
    /// 0 = no per-address cap.
    pub max_connections_per_client: usize,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub body_idle_timeout: Duration,
}

/// What one connection is doing, shared by its socket wrapper, its
/// requests and its watchdog. Times are milliseconds since `epoch`.
struct ConnState {
    epoch: Instant,
    /// Requests being handled (their response bodies included).
    active: AtomicUsize,
    /// When the current request's first byte arrived (0: none pending).
    head_started: AtomicU64,
    /// Last byte read, or last response finished.
    last_activity: AtomicU64,
    /// Since when a write has been waiting for the client (0: none).
    write_blocked: AtomicU64,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            epoch: Instant::now(),
            active: AtomicUsize::new(0),
            head_started: AtomicU64::new(0),
            last_activity: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
        }
    }

    /// Milliseconds since the epoch, at least 1 (0 means "unset").
    fn now(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }
}

/// Marks a request as being handled until dropped (with its response body).
struct ActiveGuard(Arc<ConnState>);

impl ActiveGuard {
    fn enter(state: &Arc<ConnState>) -> Self {
        state.active.fetch_add(1, Ordering::AcqRel);
        state.head_started.store(0, Ordering::Release);
        ActiveGuard(Arc::clone(state))
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.last_activity.store(self.0.now(), Ordering::Release);
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request marked active until it is sent.
struct GuardedBody {
    inner: Body,
    _guard: ActiveGuard,
}

impl http_body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting reads and blocked writes for the watchdog.
struct Watched {
    io: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let s = &this.state;
            let now = s.now();
            s.last_activity.store(now, Ordering::Release);
            if s.active.load(Ordering::Acquire) == 0 {
                let _ =
                    s.head_started
                        .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
        r
    }
}

impl Watched {
    fn note_write<T>(&self, r: &Poll<T>) {
        let s = &self.state;
        match r {
            Poll::Pending => {
                let _ = s.write_blocked.compare_exchange(
                    0,
                    s.now(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
            Poll::Ready(_) => s.write_blocked.store(0, Ordering::Release),
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.note_write(&r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.note_write(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.note_write(&r);
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Why the watchdog closed a connection.
fn watchdog(
    state: Arc<ConnState>,
    limits: ConnLimits,
) -> impl Future<Output = &'static str> + Send {
    let ms = |d: Duration| d.as_millis() as u64;
    async move {
        loop {
            let now = state.now();
            let (deadline, reason) = if state.active.load(Ordering::Acquire) == 0 {
                match state.head_started.load(Ordering::Acquire) {
                    // Nothing of a request yet: a fresh connection must
                    // send its headers in time, an idle one may wait.
                    0 => match state.last_activity.load(Ordering::Acquire) {
                        0 => (ms(limits.header_read_timeout), "header_timeout"),
                        t => (t + ms(limits.keep_alive_timeout), "idle_timeout"),
                    },
                    t => (t + ms(limits.header_read_timeout), "header_timeout"),
                }
            } else {
                match state.write_blocked.load(Ordering::Acquire) {
                    0 => (now + ms(limits.body_idle_timeout), ""),
                    t => (t + ms(limits.body_idle_timeout), "write_stall"),
                }
            };
            if !reason.is_empty() && now >= deadline {
                return reason;
            }
            let wait = deadline.saturating_sub(now).clamp(10, 1000);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// Open connections per client address.
#[derive(Default)]
struct PerClient {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

struct ClientSlot {
    owner: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn try_enter(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<ClientSlot> {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if cap > 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            owner: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.owner.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Answers a refused connection with one short response, without waiting
/// for the client, then closes it.
fn refuse(stream: TcpStream, status: &str, detail: &str) {
    let body = format!(
        "{{\"type\":\"urn:candor:problem:overloaded\",\"title\":\"Service overloaded, retry later\",\"status\":{},\"detail\":\"{detail}\"}}",
        &status[..3]
    );
    let msg = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(msg.as_bytes());
}

/// Open connections, to wait for at shutdown.
struct OpenConns {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

struct ConnToken(Arc<OpenConns>);

impl Drop for ConnToken {
    fn drop(&mut self) {
        metrics::gauge!(m::CONNECTIONS_ACTIVE).decrement(1.0);
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting, asks open connections to finish, and waits up to `grace` for
/// them. Returns true when every connection finished in time.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> bool {
    let open = Arc::new(OpenConns {
        count: AtomicUsize::new(0),
        idle: tokio::sync::Notify::new(),
    });
    let per_client = Arc::new(PerClient::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    // The watchdog below times headers and idle connections.
    builder.http1().timer(hyper_util::rt::TokioTimer::new());
    builder.http1().header_read_timeout(None);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.count.load(Ordering::Acquire) >= limits.max_connections {
            metrics::counter!(m::CONNECTIONS_REFUSED_TOTAL, "reason" => "max_connections")
                .increment(1);
            refuse(
                stream,
                "503 Service Unavailable",
                "the server has too many open connections",
            );
            continue;
        }
        let Some(slot) = per_client.try_enter(peer.ip(), limits.max_connections_per_client) else {
            metrics::counter!(m::CONNECTIONS_REFUSED_TOTAL, "reason" => "max_connections_per_client")
                .increment(1);
            refuse(
                stream,
                "429 Too Many Requests",
                "too many open connections from this address",
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        open.count.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!(m::CONNECTIONS_ACTIVE).increment(1.0);
        metrics::counter!(m::CONNECTIONS_TOTAL).increment(1);
        let token = ConnToken(Arc::clone(&open));
        let app = app.clone();
        let limits = limits.clone();
        let builder = builder.clone();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _token = token;
            let state = Arc::new(ConnState::new());
            let io = hyper_util::rt::TokioIo::new(Watched {
                io: stream,
                state: Arc::clone(&state),
            });
            let st = Arc::clone(&state);
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let guard = ActiveGuard::enter(&st);
                    let mut req = req.map(Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let app = app.clone();
                    async move {
                        let resp = app
                            .oneshot(req)
                            .await
                            .unwrap_or_else(|e: Infallible| match e {});
                        Ok::<_, Infallible>(resp.map(|b| GuardedBody {
                            inner: b,
                            _guard: guard,
                        }))
                    }
                });
            let conn = builder.serve_connection(io, svc);
            tokio::pin!(conn);
            let dog = watchdog(Arc::clone(&state), limits);
            tokio::pin!(dog);
            let mut stopping = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    reason = &mut dog => {
                        metrics::counter!(m::CONNECTIONS_TIMED_OUT_TOTAL, "reason" => reason)
                            .increment(1);
                        tracing::debug!(reason, "connection closed by a timeout");
                        break;
                    }
                    r = stop_rx.changed(), if !stopping => {
                        stopping = true;
                        if r.is_ok() {
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all_done = async {
        loop {
            let notified = open.idle.notified();
            if open.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(grace, all_done).await.is_ok()
}

/// The address a listener is bound to, for logs.
pub(crate) fn local_addr(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}
