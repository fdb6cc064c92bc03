//! Operational routes: health, readiness, info, metrics, OpenAPI, docs and
//! the upload page.

use std::path::PathBuf;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use crate::api::{ServerInfo, ServiceInfo, StatusBody};
use crate::error::{Problem, ServerError};
use crate::AppState;

const INDEX_HTML: &str = include_str!("../static/index.html");
const DOCS_HTML: &str = include_str!("../static/docs.html");
const DOCS_MISSING_HTML: &str = include_str!("../static/docs-missing.html");
/// Scripts of the HTML pages, served from `/assets/` (the pages' CSP allows
/// no inline script).
const PAGE_ASSETS: [(&str, &str); 4] = [
    ("index.js", include_str!("../static/index.js")),
    ("docs.js", include_str!("../static/docs.js")),
    ("review.js", include_str!("../static/review/review.js")),
    ("review.css", include_str!("../static/review/review.css")),
];

/// The Swagger UI files `/docs` needs, from the npm package `swagger-ui-dist`
/// (installed by `scripts/setup.sh` under `$CANDOR_HOME/www/swagger-ui/`).
pub const SWAGGER_ASSETS: [&str; 3] = [
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "swagger-ui-standalone-preset.js",
];

/// Liveness: the process is up.
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, description = "Alive.", body = StatusBody)))]
pub(crate) async fn health() -> Json<StatusBody> {
    Json(StatusBody {
        status: "ok".into(),
    })
}

/// Readiness: the analyzer can serve.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses(
        (status = 200, description = "Ready.", body = StatusBody),
        (status = 503, description = "Not ready.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<StatusBody>, ServerError> {
    if state.inner.analyzer.is_ready() {
        Ok(Json(StatusBody {
            status: "ready".into(),
        }))
    } else {
        Err(ServerError::NotReady)
    }
}

/// Service, analyzer and server settings.
#[utoipa::path(get, path = "/info", tag = "ops",
    responses(
        (status = 200, description = "Service information.", body = ServiceInfo),
        (status = 401, description = "API key missing or wrong.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn info(State(state): State<AppState>) -> Json<ServiceInfo> {
    let i = &state.inner;
    let c = &i.config;
    Json(ServiceInfo {
        service: "candor".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        git_commit: option_env!("CANDOR_GIT_COMMIT").map(str::to_owned),
        uptime_seconds: i.started.elapsed().as_secs_f64(),
        analyzer: i.analyzer.info(),
        server: ServerInfo {
            body_limit_bytes: i.body_limit,
            max_inputs_per_request: c.max_inputs_per_request,
            max_concurrent_analyses: c.max_concurrent_analyses,
            request_parallelism: c.request_parallelism,
            default_timeout_ms: c.request_timeout.as_millis() as u64,
            max_timeout_ms: c.max_request_timeout.as_millis() as u64,
            max_jobs: c.max_jobs,
            max_job_bytes: c.max_job_bytes,
            job_ttl_seconds: c.job_ttl.as_secs(),
            max_concurrent_streams: c.max_concurrent_streams,
            stream_idle_timeout_ms: c.stream_idle_timeout.as_millis() as u64,
            stream_max_duration_seconds: c.stream_max_duration.as_secs(),
            header_read_timeout_ms: c.header_read_timeout.as_millis() as u64,
            keep_alive_timeout_ms: c.keep_alive_timeout.as_millis() as u64,
            body_idle_timeout_ms: c.body_idle_timeout.as_millis() as u64,
            max_connections: c.max_connections,
            max_connections_per_client: c.max_connections_per_client,
            spill_threshold_bytes: c.spill_threshold_bytes,
            spill_max_bytes: c.spill_max_bytes,
            max_loaded_input_bytes: c.max_loaded_input_bytes,
            max_file_name_bytes: c.max_file_name_bytes,
            auth_max_failures: c.auth_max_failures,
            auth_failure_window_seconds: c.auth_failure_window.as_secs(),
            auth_enabled: i.auth.enabled(),
            auth_exempt_paths: c.auth_exempt_paths.clone(),
            docs_assets_installed: docs_installed(&swagger_dir(&state)),
        },
    })
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format.", body = String, content_type = "text/plain; version=0.0.4")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    state.inner.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.inner.metrics.render(),
    )
        .into_response()
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 document.", body = Object)))]
pub(crate) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi())
}

fn swagger_dir(state: &AppState) -> PathBuf {
    state
        .inner
        .config
        .candor_home
        .join("www")
        .join("swagger-ui")
}

fn docs_installed(dir: &std::path::Path) -> bool {
    SWAGGER_ASSETS.iter().all(|f| dir.join(f).is_file())
}

/// Swagger UI (served from local files; nothing is fetched from the web).
pub(crate) async fn docs(State(state): State<AppState>) -> Html<&'static str> {
    if docs_installed(&swagger_dir(&state)) {
        Html(DOCS_HTML)
    } else {
        Html(DOCS_MISSING_HTML)
    }
}

/// The three Swagger UI files; anything else is 404.
pub(crate) async fn docs_asset(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ServerError> {
    let Some(name) = SWAGGER_ASSETS.iter().find(|f| **f == file) else {
        return Err(ServerError::NotFound(format!("no docs asset `{file}`")));
    };
    let path = swagger_dir(&state).join(name);
    let bytes = tokio::fs::read(&path).await.map_err(|_| {
        ServerError::NotFound(format!(
            "docs asset `{name}` is not installed (run scripts/setup.sh)"
        ))
    })?;
    let ctype = if name.ends_with(".css") {
        "text/css; charset=utf-8"
    } else {
        "text/javascript; charset=utf-8"
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// A script of the HTML pages; anything else is 404.
pub(crate) async fn page_asset(Path(file): Path<String>) -> Result<Response, ServerError> {
    let Some((_, js)) = PAGE_ASSETS.iter().find(|(n, _)| *n == file) else {
        return Err(ServerError::NotFound(format!("no asset `{file}`")));
    };
    let ctype = if file.ends_with(".css") {
        "text/css; charset=utf-8"
    } else {
        "text/javascript; charset=utf-8"
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        *js,
    )
        .into_response())
}

/// The recruiter upload page.
pub(crate) async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

/// Unknown route.
pub(crate) async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> ServerError {
    ServerError::NotFound(format!("no route for {method} {}", uri.path()))
}
