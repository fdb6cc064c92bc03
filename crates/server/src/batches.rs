//! `POST /v1/batches`, `GET /v1/batches/{id}`, `GET /v1/batches/{id}/results`,
//! `GET /v1/batches/{id}/report`, `DELETE /v1/batches/{id}`: bulk
//! re-screening of files the server can read (local disk or a mounted
//! share), queued on the store of `crates/bulk`.

use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use candor_bulk::report::{self, BatchReport, Format};
use candor_bulk::{BatchStatus, ManifestLimits, ManifestReader, NewBatch, Store};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ServerError;
use crate::AppState;

/// What the server needs to accept batches.
#[derive(Clone, Debug)]
pub struct BulkService {
    pub store: Store,
    /// Manifests and the files they list must lie under one of these
    /// directories (canonical paths). Empty: `POST /v1/batches` is refused.
    pub roots: Vec<PathBuf>,
    pub limits: ManifestLimits,
    /// Most items one batch may hold.
    pub max_items: u64,
    /// Most cases a report may list.
    pub max_report_top: usize,
}

/// Body of `POST /v1/batches`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct BatchRequest {
    /// Path, on the server, of a CSV or JSONL manifest (`applicant_id`,
    /// `files`, any other columns) or of a directory with one folder per
    /// applicant. Must lie under one of the server's bulk roots.
    pub manifest: String,
    /// Batch id (1-64 letters, digits, `-`, `_`, `.`); default: derived
    /// from the manifest's path, so a resubmit resumes the same batch.
    #[serde(default)]
    pub batch_id: Option<String>,
    /// Columns the impact report groups by; default: columns named `group:<name>`.
    #[serde(default)]
    pub group_columns: Vec<String>,
    /// `http://` URL that gets a signed POST when the batch completes.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Re-run a finished batch: workers re-score only items whose file or
    /// models changed.
    #[serde(default)]
    pub rescore: bool,
}

/// Answer of `POST /v1/batches` (202: items are added in the background;
/// poll `location`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    pub batch_id: String,
    pub location: String,
}

/// Answer of `DELETE /v1/batches/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchCancelled {
    pub batch_id: String,
    /// Pending items that will not be analysed.
    pub cancelled_items: u64,
}

/// Query of the results route.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    /// `csv` (default) or `jsonl`.
    pub format: Option<String>,
}

/// Query of the report route.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Cases listed, highest risk first (default 50, capped by the server).
    pub top: Option<usize>,
}

fn service(state: &AppState) -> Result<&BulkService, ServerError> {
    state.inner.bulk.as_ref().ok_or_else(|| {
        ServerError::NotFound(
            "bulk batches are not enabled on this server (start it with --queue)".into(),
        )
    })
}

fn owner(caller: Option<Extension<Caller>>) -> Option<String> {
    caller.and_then(|Extension(c)| c.key).map(hex::encode)
}

/// The canonical `path` when it lies under one of `roots`.
fn inside_roots(roots: &[PathBuf], path: &str) -> Result<PathBuf, ServerError> {
    if roots.is_empty() {
        return Err(ServerError::bad_request(
            "bulk_roots",
            "this server accepts no manifests: no bulk root is configured (CANDOR_BULK_ROOTS)",
        ));
    }
    let canon = FsPath::new(path).canonicalize().map_err(|e| {
        ServerError::bad_request("manifest", format!("cannot open the manifest {path}: {e}"))
    })?;
    if roots.iter().any(|r| canon.starts_with(r)) {
        Ok(canon)
    } else {
        Err(ServerError::bad_request(
            "bulk_roots",
            format!("{path} is not under any of the server's bulk roots"),
        ))
    }
}

/// Submit a batch.
///
/// The manifest is checked (readable, under a bulk root, a valid header)
/// before the answer; its items are then added in the background, in
/// chunks, each chunk with its queue tasks in one transaction. Every file
/// it lists must also lie under a bulk root (others become item errors).
#[utoipa::path(
    post,
    path = "/v1/batches",
    tag = "bulk",
    request_body = BatchRequest,
    responses(
        (status = 202, description = "Batch accepted; items are being added. Poll `Location`.", body = BatchAccepted),
        (status = 400, description = "Malformed request, or a manifest outside the bulk roots.", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Bulk batches are not enabled on this server.", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The manifest cannot be used.", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_batch(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    body: Result<Json<BatchRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ServerError> {
    let svc = service(&state)?.clone();
    let Json(req) = body.map_err(|e| ServerError::bad_request("json", e.body_text()))?;
    let path = inside_roots(&svc.roots, &req.manifest)?;
    let batch_id = match req.batch_id.clone() {
        Some(id) => id,
        None => candor_bulk::store::batch_id_for(&path),
    };
    let limits = svc.limits.clone();
    let p = path.clone();
    let reader = tokio::task::spawn_blocking(move || ManifestReader::open(&p, limits))
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))??;
    let new = NewBatch {
        batch_id: batch_id.clone(),
        name: Some(path.display().to_string()),
        owner: owner(caller),
        group_columns: req.group_columns.clone(),
        webhook_url: req.webhook_url.clone(),
        rescore: req.rescore,
    };
    if let Some(url) = &new.webhook_url {
        candor_bulk::webhook::check_url(url)?;
    }
    // Creates the batch now (so it can be polled at once, and a cancelled
    // or foreign batch id is refused here).
    svc.store
        .begin_batch(&NewBatch {
            rescore: false,
            ..new.clone()
        })
        .await?;
    let reader = RootedReader {
        inner: reader,
        roots: svc.roots.clone(),
    };
    tokio::spawn(async move {
        let r = candor_bulk::submit(
            &svc.store,
            &new,
            reader.into_checked(),
            svc.max_items,
            |_| {},
        )
        .await;
        if let Err(e) = r {
            tracing::warn!(batch = %new.batch_id, code = candor_core::ToProblem::problem_code(&e).unwrap_or("none"), "batch submit stopped");
            tracing::debug!(batch = %new.batch_id, error = %e, "batch submit stopped (detail)");
            let _ = svc
                .store
                .set_submit_error(&new.batch_id, &e.to_string())
                .await;
        }
    });
    let location = format!("/v1/batches/{batch_id}");
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(BatchAccepted {
            batch_id,
            location: location.clone(),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// A manifest reader whose items must lie under the bulk roots: an item
/// outside them keeps a path no worker will open (it is recorded as an
/// error), so a manifest cannot make the server read arbitrary files.
struct RootedReader {
    inner: ManifestReader,
    roots: Vec<PathBuf>,
}

impl RootedReader {
    fn into_checked(self) -> ManifestReader {
        let roots = self.roots;
        self.inner.with_filter(move |item| {
            let ok = FsPath::new(&item.path)
                .canonicalize()
                .map(|c| roots.iter().any(|r| c.starts_with(r)))
                // A file that does not exist yet stays as it is: the worker
                // records it missing.
                .unwrap_or_else(|_| roots.iter().any(|r| FsPath::new(&item.path).starts_with(r)));
            if !ok {
                item.path = format!("outside-bulk-roots:{}", item.path);
            }
        })
    }
}

/// A batch's counts, rate and ETA.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}",
    tag = "bulk",
    params(("id" = String, Path, description = "batch id")),
    responses(
        (status = 200, description = "The batch.", body = BatchStatus),
        (status = 404, description = "Unknown batch, or one created with another API key.", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_batch(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<BatchStatus>, ServerError> {
    let svc = service(&state)?;
    Ok(Json(svc.store.status(&id, owner(caller).as_deref()).await?))
}

/// A batch's item rows, streamed as CSV or JSONL.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}/results",
    tag = "bulk",
    params(("id" = String, Path, description = "batch id"), ResultsQuery),
    responses(
        (status = 200, description = "One row per item in applicant order: CSV (`text/csv`, the manifest's columns appended) or JSONL (`application/x-ndjson`, the full stored result).", content_type = "text/csv"),
        (status = 404, description = "Unknown batch.", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_results(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Result<Response, ServerError> {
    let svc = service(&state)?;
    let format: Format = q
        .format
        .as_deref()
        .unwrap_or("csv")
        .parse()
        .map_err(|e: String| ServerError::bad_request("format", e))?;
    let store = svc.store.clone();
    store.batch(&id, owner(caller).as_deref()).await?;
    struct Cursor {
        store: Store,
        id: String,
        after: Option<(String, String)>,
        free: Option<Vec<String>>,
        done: bool,
    }
    let cursor = Cursor {
        store,
        id,
        after: None,
        free: None,
        done: false,
    };
    let stream = futures_util::stream::unfold(cursor, move |mut c| async move {
        if c.done {
            return None;
        }
        let page = c
            .store
            .items_page(
                &c.id,
                c.after.as_ref().map(|(a, i)| (a.as_str(), i.as_str())),
                report::PAGE,
            )
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                c.done = true;
                tracing::warn!(error = %e, "results stream broken off");
                return Some((Err(std::io::Error::other(e.to_string())), c));
            }
        };
        let last = page.last()?;
        c.after = Some((last.applicant_id.clone(), last.item_id.clone()));
        let mut buf = String::new();
        if c.free.is_none() {
            let cols: Vec<String> = page[0].columns.keys().cloned().collect();
            if format == Format::Csv {
                buf.push_str(&report::csv_header(&cols));
            }
            c.free = Some(cols);
        }
        let free = c.free.clone().unwrap_or_default();
        for it in &page {
            match format {
                Format::Csv => buf.push_str(&report::csv_row(it, &free)),
                Format::Jsonl => buf.push_str(&report::jsonl_row(it)),
            }
        }
        Some((Ok(bytes::Bytes::from(buf)), c))
    });
    let ctype = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Jsonl => "application/x-ndjson",
    };
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(ctype))],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Per-applicant cases ranked by risk, and the impact report.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}/report",
    tag = "bulk",
    params(("id" = String, Path, description = "batch id"), ReportQuery),
    responses(
        (status = 200, description = "The report.", body = BatchReport),
        (status = 404, description = "Unknown batch.", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_report(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Json<BatchReport>, ServerError> {
    let svc = service(&state)?;
    let top = q.top.unwrap_or(50).min(svc.max_report_top);
    Ok(Json(
        report::report(&svc.store, &id, owner(caller).as_deref(), top).await?,
    ))
}

/// Cancel a batch: none of its pending items is started from now on.
#[utoipa::path(
    delete,
    path = "/v1/batches/{id}",
    tag = "bulk",
    params(("id" = String, Path, description = "batch id")),
    responses(
        (status = 200, description = "Cancelled.", body = BatchCancelled),
        (status = 404, description = "Unknown batch.", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_batch(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<BatchCancelled>, ServerError> {
    let svc = service(&state)?;
    let n = svc.store.cancel(&id, owner(caller).as_deref()).await?;
    Ok(Json(BatchCancelled {
        batch_id: id,
        cancelled_items: n,
    }))
}
