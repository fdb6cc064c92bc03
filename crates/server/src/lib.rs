//! Candor's HTTP API.
//!
//! An axum router around one shared [`Analyzer`]. This crate knows HTTP
//! (routes, multipart, problem+json, API keys, async jobs, metrics, OpenAPI)
//! and nothing about models or decoders: it only calls the analyzer's public
//! API.
//!
//! * [`router`] builds the routes for an [`AppState`] (tests drive it with
//!   `tower::ServiceExt::oneshot`);
//! * [`serve`] binds, serves and shuts down gracefully on SIGINT/SIGTERM;
//!   [`serve_on`] does the same on a bound listener until a future resolves.
//!
//! Resource control: requests are admitted before their bodies are read
//! (declared length against the limits, a free analysis slot or room in the
//! job store), bodies are read with a running byte count and an idle
//! timeout, large inputs wait on disk in a bounded spill area, streams have
//! their own slots and timeouts, and the accept loop caps connections and
//! times out slow headers, idle connections and stalled responses
//! (`docs/reliability.md`).

mod analyze;
pub mod api;
pub mod applicants;
mod auth;
pub mod batches;
mod body;
mod conn;
pub mod durable;
pub mod error;
pub mod jobs;
mod meta;
pub mod metrics;
mod multipart;
pub mod observe;
mod review;
mod spill;
pub mod stream;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use candor_detectors::Analyzer;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;

pub use api::{AnalyzeResponse, InputProblem, Item};
pub use auth::Caller;
pub use error::{Problem, ServerError, PROBLEM_JSON};

/// Everything the HTTP layer needs to know. The CLI fills it from flags and
/// `CANDOR_*` environment variables (see `candor serve --help` for the
/// trade-offs of each).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: String,
    pub port: u16,
    /// API keys; empty disables authentication.
    pub api_keys: Vec<String>,
    /// Paths served without a key when keys are set (besides `/`, `/docs`
    /// and `/docs/*`, which are always open).
    pub auth_exempt_paths: Vec<String>,
    /// Most inputs (files + text fields) in one request.
    pub max_inputs_per_request: usize,
    /// Most inputs analysed at once across all requests; a synchronous
    /// request that cannot get its slots immediately is answered 429.
    pub max_concurrent_analyses: usize,
    /// Most inputs of one request analysed at once.
    pub request_parallelism: usize,
    /// Deadline of a request that sets no `timeout_ms`.
    pub request_timeout: Duration,
    /// Cap on `timeout_ms`.
    pub max_request_timeout: Duration,
    /// Hard cap on the request body, whatever the per-input limits say.
    pub body_limit_cap_bytes: u64,
    /// Most jobs held by the async job store.
    pub max_jobs: usize,
    /// Bytes the async job store may hold: inputs of unfinished jobs (from
    /// the first byte of their upload) and responses of finished ones.
    pub max_job_bytes: u64,
    /// How long finished jobs stay pollable.
    pub job_ttl: Duration,
    /// How long a reviewer's case (`review=true`: inputs, result and
    /// decisions) is kept.
    pub case_retention: Duration,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// `$CANDOR_HOME`; Swagger UI assets are read from `www/swagger-ui/`.
    pub candor_home: PathBuf,
    /// Most live audio streams at once (their own slots, separate from the
    /// analysis slots of uploads).
    pub max_concurrent_streams: usize,
    /// A stream that sends no audio for this long is ended.
    pub stream_idle_timeout: Duration,
    /// Longest wall-clock life of one stream.
    pub stream_max_duration: Duration,
    /// Time a client has to send a request's headers, from the connection
    /// opening or the request's first byte.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open between requests.
    pub keep_alive_timeout: Duration,
    /// A request body that sends no bytes for this long is answered 408; a
    /// response the client does not read for this long closes the
    /// connection.
    pub body_idle_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// Most open connections from one client address (0 = no cap).
    pub max_connections_per_client: usize,
    /// Directory of the spill area (`None`: a `candor-spill` folder in the
    /// system's temporary directory).
    pub spill_dir: Option<PathBuf>,
    /// Inputs larger than this wait on disk, not in memory.
    pub spill_threshold_bytes: u64,
    /// Most bytes of inputs on disk at once.
    pub spill_max_bytes: u64,
    /// Most bytes of spilled inputs back in memory at once (being
    /// analysed); an input waits for its share before it is read back.
    pub max_loaded_input_bytes: u64,
    /// Longest accepted input name (file name or `name` field), in bytes.
    pub max_file_name_bytes: usize,
    /// Wrong API keys from one address within `auth_failure_window` before
    /// that address is refused until the window ends (0 = no throttling).
    pub auth_max_failures: u32,
    pub auth_failure_window: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            api_keys: Vec::new(),
            auth_exempt_paths: default_exempt_paths(),
            max_inputs_per_request: 16,
            max_concurrent_analyses: 8,
            request_parallelism: 4,
            request_timeout: Duration::from_secs(120),
            max_request_timeout: Duration::from_secs(600),
            body_limit_cap_bytes: 256 * 1024 * 1024,
            max_jobs: 1024,
            max_job_bytes: 1024 * 1024 * 1024,
            job_ttl: Duration::from_secs(3600),
            case_retention: Duration::from_secs(30 * 86_400),
            shutdown_grace: Duration::from_secs(30),
            candor_home: PathBuf::from(".candor"),
            max_concurrent_streams: 4,
            stream_idle_timeout: Duration::from_secs(10),
            stream_max_duration: Duration::from_secs(3 * 3600),
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            body_idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_client: 64,
            spill_dir: None,
            spill_threshold_bytes: 1024 * 1024,
            spill_max_bytes: 4 * 1024 * 1024 * 1024,
            max_loaded_input_bytes: 128 * 1024 * 1024,
            max_file_name_bytes: 255,
            auth_max_failures: 10,
            auth_failure_window: Duration::from_secs(60),
        }
    }
}

/// Default `auth_exempt_paths`.
pub fn default_exempt_paths() -> Vec<String> {
    ["/health", "/ready", "/metrics", "/openapi.json"]
        .map(String::from)
        .to_vec()
}

/// Bytes of multipart framing and form fields allowed on top of the inputs.
const BODY_OVERHEAD_BYTES: u64 = 64 * 1024;

impl ServerConfig {
    /// Request body limit: per-input upload limit × inputs per request (plus
    /// framing), capped by `body_limit_cap_bytes`.
    pub fn body_limit(&self, max_upload_bytes: u64) -> u64 {
        max_upload_bytes
            .saturating_mul(self.max_inputs_per_request.max(1) as u64)
            .saturating_add(BODY_OVERHEAD_BYTES)
            .min(self.body_limit_cap_bytes)
    }
}

/// Shared state of the router.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    analyzer: Arc<Analyzer>,
    config: ServerConfig,
    permits: Arc<Semaphore>,
    stream_permits: Arc<Semaphore>,
    jobs: Arc<jobs::JobStore>,
    auth: auth::Auth,
    spill: Arc<spill::SpillArea>,
    loaded: Arc<spill::LoadBudget>,
    in_flight: Arc<observe::InFlightRegister>,
    body_limit: u64,
    started: Instant,
    metrics: PrometheusHandle,
    bulk: Option<batches::BulkService>,
    durable: Option<durable::DurableJobs>,
    identity: Option<Arc<candor_identity::Registry>>,
}

/// What the server keeps outside its memory: the bulk queue (for
/// `/v1/batches`) and the durable copy of `?async=true` jobs (so that they
/// survive a restart). Both may be one database.
#[derive(Clone, Debug, Default)]
pub struct Stores {
    pub bulk: Option<batches::BulkService>,
    pub jobs: Option<durable::DurableJobs>,
    /// The identity registry (off unless configured: biometric data).
    pub identity: Option<Arc<candor_identity::Registry>>,
}

/// The default spill directory: `candor-spill-<pid>` in the system's
/// temporary directory (inputs in it are unnamed files, so nothing is left
/// there even if the process is killed).
pub fn default_spill_dir() -> PathBuf {
    std::env::temp_dir().join(format!("candor-spill-{}", std::process::id()))
}

impl AppState {
    /// The state for `config` (the spill directory is made when first
    /// needed; [`serve_on`] makes it at start-up).
    pub fn new(config: ServerConfig, analyzer: Arc<Analyzer>) -> Self {
        Self::with_stores(config, analyzer, Stores::default())
    }

    /// The state for `config`, with `/v1/batches` and async jobs backed by
    /// `stores`.
    pub fn with_stores(mut config: ServerConfig, analyzer: Arc<Analyzer>, stores: Stores) -> Self {
        config.max_inputs_per_request = config.max_inputs_per_request.max(1);
        config.max_concurrent_analyses = config.max_concurrent_analyses.max(1);
        config.max_concurrent_streams = config.max_concurrent_streams.max(1);
        config.request_parallelism = config.request_parallelism.max(1);
        config.max_connections = config.max_connections.max(1);
        let body_limit = config.body_limit(analyzer.limits().max_upload_bytes);
        let spill_dir = config.spill_dir.clone().unwrap_or_else(default_spill_dir);
        let spill = spill::SpillArea::new(spill_dir, config.spill_max_bytes);
        // Install the recorder before anything records (the job store
        // publishes its gauges when it is created).
        let metrics = metrics::prometheus_handle();
        AppState {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.max_concurrent_analyses)),
                stream_permits: Arc::new(Semaphore::new(config.max_concurrent_streams)),
                jobs: Arc::new(jobs::JobStore::new(
                    config.max_jobs,
                    config.max_job_bytes,
                    config.job_ttl,
                )),
                auth: auth::Auth::new(
                    &config.api_keys,
                    &config.auth_exempt_paths,
                    auth::Throttle::new(config.auth_max_failures, config.auth_failure_window),
                ),
                spill: Arc::new(spill),
                loaded: Arc::new(spill::LoadBudget::new(config.max_loaded_input_bytes)),
                in_flight: Arc::new(observe::InFlightRegister::default()),
                body_limit,
                started: Instant::now(),
                metrics,
                analyzer,
                config,
                bulk: stores.bulk,
                durable: stores.jobs,
                identity: stores.identity,
            }),
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub fn analyzer(&self) -> &Arc<Analyzer> {
        &self.inner.analyzer
    }

    /// Runs again the unfinished async jobs of the durable store (what
    /// [`serve_on_with_stores`] does at start-up).
    pub async fn resume_jobs(&self) {
        analyze::resume_jobs(self.clone()).await;
    }

    /// The request body limit in force.
    pub fn body_limit(&self) -> u64 {
        self.inner.body_limit
    }
}

/// The OpenAPI document served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Candor",
        description = "Tells recruiters when an applicant's headshot, interview audio or resume text was likely made or altered by AI. Labels are routes to human review, never a decision about a person. Every error is an RFC 9457 `application/problem+json` body (schema `Problem`). When API keys are configured, send `Authorization: Bearer <key>` or `X-Api-Key: <key>`.",
    ),
    paths(
        analyze::analyze,
        analyze::analyze_modality,
        analyze::get_job,
        batches::create_batch,
        batches::get_batch,
        batches::get_results,
        batches::get_report,
        batches::delete_batch,
        applicants::get_matches,
        applicants::delete_applicant,
        stream::stream_audio,
        meta::health,
        meta::ready,
        meta::info,
        meta::metrics,
        meta::openapi,
    ),
    components(schemas(
        Problem,
        Item,
        InputProblem,
        AnalyzeResponse,
        api::AnalyzeJson,
        api::TextInput,
        api::AnalyzeForm,
        api::StatusBody,
        api::ServiceInfo,
        api::ServerInfo,
        jobs::JobView,
        jobs::JobAccepted,
        jobs::JobStatus,
        batches::BatchRequest,
        batches::BatchAccepted,
        batches::BatchCancelled,
        candor_bulk::BatchStatus,
        applicants::ApplicantMatches,
        applicants::ApplicantErased,
        candor_identity::Match,
        candor_bulk::BatchRow,
        candor_bulk::BatchReport,
        candor_bulk::report::BatchCase,
        candor_bulk::report::ImpactTable,
        candor_bulk::report::ImpactRow,
        stream::StreamLine,
        candor_detectors::audio::stream::StreamSegment,
        candor_detectors::audio::stream::StreamSummary,
    )),
    modifiers(&SecurityAddon),
    tags(
        (name = "analyze", description = "Analyse images, audio/video and resume text"),
        (name = "bulk", description = "Re-screen stored files in durable batches"),
        (name = "identity", description = "One person behind several applicant names (off unless configured)"),
        (name = "ops", description = "Health, readiness, info, metrics, API description"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    tracing::error!(panic = msg, "handler panicked");
    axum::response::IntoResponse::into_response(Problem::new(
        candor_core::ProblemKind::Internal,
        "the server hit a bug while handling this request",
        Some("panic"),
    ))
}

/// The router for `state`: all routes, with request ids, tracing, metrics,
/// API keys, body limit and panic catching.
pub fn router(state: AppState) -> Router {
    build(state, None)
}

fn build(state: AppState, extra: Option<Router<AppState>>) -> Router {
    let body_limit = usize::try_from(state.inner.body_limit).unwrap_or(usize::MAX);
    let mut r = Router::new()
        .route("/", get(meta::index))
        .route("/health", get(meta::health))
        .route("/ready", get(meta::ready))
        .route("/info", get(meta::info))
        .route("/metrics", get(meta::metrics))
        .route("/openapi.json", get(meta::openapi))
        .route("/docs", get(meta::docs))
        .route("/docs/assets/{file}", get(meta::docs_asset))
        .route("/assets/{file}", get(meta::page_asset))
        .route("/v1/analyze", post(analyze::analyze))
        .route("/v1/analyze/{modality}", post(analyze::analyze_modality))
        .route("/v1/jobs/{id}", get(analyze::get_job))
        .route("/v1/batches", post(batches::create_batch))
        .route(
            "/v1/batches/{id}",
            get(batches::get_batch).delete(batches::delete_batch),
        )
        .route("/v1/batches/{id}/results", get(batches::get_results))
        .route("/v1/batches/{id}/report", get(batches::get_report))
        .route("/v1/applicants/{id}/matches", get(applicants::get_matches))
        .route(
            "/v1/applicants/{id}",
            axum::routing::delete(applicants::delete_applicant),
        )
        .route("/review", get(review::cases_page))
        .route("/review/login", get(review::login_page).post(review::login))
        .route("/review/logout", post(review::logout))
        .route("/review/cases/{id}", get(review::case_page))
        .route("/review/cases/{id}/inputs/{n}", get(review::case_input))
        .route("/review/cases/{id}/review", post(review::post_review))
        .route("/review/reviews.csv", get(review::reviews_csv))
        .route("/review/reviews.jsonl", get(review::reviews_jsonl))
        .route("/review/reviews.scores.jsonl", get(review::reviews_scores))
        .route("/review/batches", get(review::batches_page))
        .route("/review/batches/{id}", get(review::batch_page))
        .route("/review/batches/{id}/events", get(review::batch_events))
        .route(
            "/v1/stream/audio",
            // A stream's length is bounded by max_audio_seconds, not by the
            // body limit of uploads.
            post(stream::stream_audio).layer(DefaultBodyLimit::disable()),
        );
    if let Some(extra) = extra {
        r = r.merge(extra);
    }
    r.fallback(meta::not_found)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.inner.auth.clone(),
            auth::require_key,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.inner.in_flight.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// Bind, serve until SIGINT/SIGTERM, then stop accepting and give in-flight
/// requests `shutdown_grace` to finish. Requests still running after the
/// grace, and async jobs not finished, are logged one by one and dropped
/// (without a durable job store; with one, they run at the next start).
pub async fn serve(config: ServerConfig, analyzer: Arc<Analyzer>) -> Result<(), ServerError> {
    serve_with_stores(config, analyzer, Stores::default()).await
}

/// [`serve`], with `/v1/batches` and async jobs backed by `stores`.
pub async fn serve_with_stores(
    config: ServerConfig,
    analyzer: Arc<Analyzer>,
    stores: Stores,
) -> Result<(), ServerError> {
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.clone(),
            source,
        })?;
    serve_on_with_stores(listener, config, analyzer, stores, shutdown_signal()).await
}

/// [`serve`] on a bound listener, until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    analyzer: Arc<Analyzer>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    serve_on_with_stores(listener, config, analyzer, Stores::default(), shutdown).await
}

/// [`serve_on`], with `/v1/batches` and async jobs backed by `stores`;
/// unfinished async jobs of the store run again.
pub async fn serve_on_with_stores(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    analyzer: Arc<Analyzer>,
    stores: Stores,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let grace = config.shutdown_grace;
    let limits = conn::ConnLimits {
        max_connections: config.max_connections.max(1),
        max_connections_per_client: config.max_connections_per_client,
        header_read_timeout: config.header_read_timeout,
        keep_alive_timeout: config.keep_alive_timeout,
        body_idle_timeout: config.body_idle_timeout,
    };
    let state = AppState::with_stores(config, analyzer, stores);
    state.inner.spill.ensure_dir()?;
    tokio::spawn(analyze::resume_jobs(state.clone()));
    tracing::info!(
        address = %conn::local_addr(&listener).map_or_else(|| "?".to_owned(), |a| a.to_string()),
        body_limit_bytes = state.body_limit(),
        auth = state.inner.auth.enabled(),
        spill_dir = %state.inner.spill.dir().display(),
        "candor listening"
    );
    let app = router(state.clone());
    let shutdown = async move {
        shutdown.await;
        tracing::info!(
            grace_s = grace.as_secs_f64(),
            "shutting down: no new connections"
        );
    };
    let clean = conn::serve(listener, app, limits, shutdown, grace).await;
    if !clean {
        tracing::warn!("shutdown grace period over; dropping what is still running");
    }
    for r in state.inner.in_flight.snapshot() {
        ::metrics::counter!(crate::metrics::SHUTDOWN_DROPPED_TOTAL, "what" => "request")
            .increment(1);
        tracing::warn!(
            request_id = %r.request_id,
            method = %r.method,
            route = %r.route,
            age_s = r.age.as_secs_f64(),
            "request dropped at shutdown"
        );
    }
    for j in state.inner.jobs.unfinished_jobs() {
        if state.inner.durable.is_some() {
            tracing::info!(
                job_id = %j.job_id,
                status = ?j.status,
                "async job left for the next start"
            );
            continue;
        }
        ::metrics::counter!(crate::metrics::SHUTDOWN_DROPPED_TOTAL, "what" => "job").increment(1);
        tracing::warn!(
            job_id = %j.job_id,
            status = ?j.status,
            age_s = j.age.as_secs_f64(),
            "async job dropped at shutdown"
        );
    }
    // Spilled inputs are unnamed files; only the directory is left.
    if state.inner.config.spill_dir.is_none() {
        let _ = std::fs::remove_dir(state.inner.spill.dir());
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use candor_detectors::AnalyzerConfig;
    use tower::ServiceExt;

    #[tokio::test]
    async fn panics_become_problems() {
        let state = AppState::new(
            ServerConfig::default(),
            Arc::new(Analyzer::new(AnalyzerConfig::default())),
        );
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let app = build(state, Some(Router::new().route("/boom", get(boom))));
        let resp = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.headers()["content-type"], PROBLEM_JSON);
        assert!(resp.headers().contains_key("x-request-id"));
        let b = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let p: Problem = serde_json::from_slice(&b).unwrap();
        assert_eq!(p.type_uri, "urn:candor:problem:internal");
        assert_eq!(p.instance.as_deref(), Some("/boom"));
        assert!(p.request_id.is_some());
    }

    #[test]
    fn body_limit_is_capped() {
        let c = ServerConfig {
            max_inputs_per_request: 4,
            body_limit_cap_bytes: 1_000_000,
            ..Default::default()
        };
        assert_eq!(c.body_limit(1000), 4000 + BODY_OVERHEAD_BYTES);
        assert_eq!(c.body_limit(u64::MAX), 1_000_000);
    }
}
