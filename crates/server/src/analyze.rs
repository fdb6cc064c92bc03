//! `POST /v1/analyze`, `POST /v1/analyze/{modality}` and `GET /v1/jobs/{id}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use candor_core::{Modality, Priority};
use candor_detectors::{AnalyzeError, AnalyzeOptions, InputSource, RawInput};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{parse_modality, AnalyzeJson, AnalyzeQuery, AnalyzeResponse, InputProblem, Item};
use crate::auth::Caller;
use crate::body::BodyReader;
use crate::durable::StoredInput;
use crate::error::{Problem, ServerError};
use crate::jobs::{JobAccepted, JobStatus, JobTicket, JobView};
use crate::metrics as m;
use crate::multipart::{self, MultipartReader};
use crate::observe::RequestId;
use crate::spill::{Held, InputBuffer, LoadBudget};
use crate::AppState;

/// Header alternative to the `priority` query parameter.
pub const PRIORITY_HEADER: &str = "x-candor-priority";

/// Options of one analyze call, resolved from query, headers and config
/// (stored with a durable async job).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Plan {
    priority: Priority,
    timeout: Duration,
    is_async: bool,
    case: Option<bool>,
    expected: Option<Modality>,
    /// A reviewer's case: inputs and result kept for the review pages.
    #[serde(default)]
    review: bool,
    #[serde(default)]
    applicant_id: Option<String>,
    /// The identity registry's scope: the caller's API-key digest (hex),
    /// empty without keys.
    #[serde(default)]
    scope: String,
}

fn plan(
    state: &AppState,
    query: Result<Query<AnalyzeQuery>, QueryRejection>,
    headers: &HeaderMap,
    expected: Option<Modality>,
) -> Result<Plan, ServerError> {
    let Query(q) = query.map_err(|e| ServerError::bad_request("query", e.body_text()))?;
    let review = q.review.unwrap_or(false);
    if review && state.inner.durable.is_none() {
        return Err(ServerError::bad_request(
            "review",
            "review=true needs the durable job store (CANDOR_DURABLE_JOBS=true)",
        ));
    }
    let applicant_id = match q.applicant_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(a) if a.chars().count() <= 128 && !a.chars().any(char::is_control) => {
            Some(a.to_owned())
        }
        Some(_) => {
            return Err(ServerError::bad_request(
                "applicant_id",
                "applicant_id must be 1-128 printable characters",
            ))
        }
    };
    let is_async = review || q.is_async.unwrap_or(false);
    let given = match q.priority {
        Some(p) => Some(p),
        None => headers
            .get(PRIORITY_HEADER)
            .map(|v| {
                v.to_str().map(str::to_owned).map_err(|_| {
                    ServerError::bad_request("priority", "invalid X-Candor-Priority header")
                })
            })
            .transpose()?,
    };
    let priority = match given {
        Some(p) => p
            .trim()
            .parse::<Priority>()
            .map_err(|e| ServerError::bad_request("priority", e))?,
        None if review => Priority::Upload,
        None if is_async => Priority::Bulk,
        None => Priority::Upload,
    };
    let cfg = &state.inner.config;
    let timeout = match q.timeout_ms {
        Some(0) => {
            return Err(ServerError::bad_request(
                "timeout_ms",
                "timeout_ms must be at least 1",
            ))
        }
        Some(ms) => Duration::from_millis(ms).min(cfg.max_request_timeout),
        None => cfg.request_timeout.min(cfg.max_request_timeout),
    };
    Ok(Plan {
        priority,
        timeout,
        is_async,
        case: if review { Some(true) } else { q.case },
        expected,
        review,
        applicant_id,
        scope: String::new(),
    })
}

/// Analyse one or more inputs.
///
/// Send (a) `multipart/form-data` with any mix of file parts and `text`
/// fields, (b) `application/json` with pasted text, or (c) one raw file with
/// its own media type (`image/*`, `audio/*`, `video/*`, `application/pdf`,
/// DOCX, `text/plain`, `application/octet-stream`).
#[utoipa::path(
    post,
    path = "/v1/analyze",
    tag = "analyze",
    params(AnalyzeQuery, ("X-Candor-Priority" = Option<String>, Header, description = "live, upload or bulk")),
    request_body(
        description = "Inputs to analyse: multipart form, JSON text, or one raw file.",
        content(
            (crate::api::AnalyzeForm = "multipart/form-data"),
            (AnalyzeJson = "application/json"),
            (Vec<u8> = "application/octet-stream"),
            ("image/*"),
            ("audio/*"),
            ("video/*"),
            ("application/pdf"),
            ("text/plain")
        )
    ),
    responses(
        (status = 200, description = "Results, one per input in request order. An input that could not be analysed is an `InputProblem` entry when the request has several inputs.", body = AnalyzeResponse),
        (status = 202, description = "`async=true`: job accepted; poll `Location`.", body = JobAccepted),
        (status = 400, description = "Malformed request.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "API key missing or wrong.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit, too many inputs, or the single input exceeds a limit. A declared `Content-Length` over the body limit (or, for a raw body, the per-input limit) is refused before the body is read; a streamed body at the first byte past a limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported content type, or the single input is of an unsupported type.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The single input cannot be processed.", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body stopped arriving (no bytes for the body idle timeout) or was not complete by the request's deadline.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "No analysis slot free, the job store full (jobs or bytes), the spill area full, or too many wrong API keys from this address; refused before the body is read. Retry.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Analyzer not ready.", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "Deadline exceeded.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn analyze(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    query: Result<Query<AnalyzeQuery>, QueryRejection>,
    req: Request,
) -> Result<Response, ServerError> {
    let plan = plan(&state, query, req.headers(), None)?;
    run(state, rid, plan, req).await
}

/// Analyse inputs of one modality (`image`, `audio` or `text`).
///
/// Same as `/v1/analyze`, but an input of another modality is answered as a
/// 415 problem (an `InputProblem` entry when the request has several inputs).
#[utoipa::path(
    post,
    path = "/v1/analyze/{modality}",
    tag = "analyze",
    params(
        ("modality" = String, Path, description = "image, audio or text"),
        AnalyzeQuery,
    ),
    request_body(
        description = "As for /v1/analyze.",
        content(
            (crate::api::AnalyzeForm = "multipart/form-data"),
            (AnalyzeJson = "application/json"),
            (Vec<u8> = "application/octet-stream")
        )
    ),
    responses(
        (status = 200, description = "Results.", body = AnalyzeResponse),
        (status = 202, description = "Job accepted.", body = JobAccepted),
        (status = 404, description = "Unknown modality.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Input of another modality or unsupported type.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Busy; retry.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn analyze_modality(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    Path(modality): Path<String>,
    query: Result<Query<AnalyzeQuery>, QueryRejection>,
    req: Request,
) -> Result<Response, ServerError> {
    let expected = parse_modality(&modality).ok_or_else(|| {
        ServerError::NotFound(format!(
            "unknown modality `{modality}` (expected image, audio or text)"
        ))
    })?;
    let plan = plan(&state, query, req.headers(), Some(expected))?;
    run(state, rid, plan, req).await
}

/// Poll an async job.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "analyze",
    params(("id" = String, Path, description = "job id from the 202 answer")),
    responses(
        (status = 200, description = "The job.", body = JobView),
        (status = 404, description = "Unknown or expired job, or one created with another API key.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ServerError> {
    let owner = caller.and_then(|Extension(c)| c.key);
    let mut found = state.inner.jobs.get(&id, owner);
    if found.is_none() {
        if let Some(d) = &state.inner.durable {
            found = d.get(&id, owner, state.inner.config.job_ttl).await?;
        }
    }
    found
        .map(Json)
        .ok_or_else(|| ServerError::NotFound(format!("no job `{id}` (unknown, or expired)")))
}

/// How the body of an analyze request is read.
enum BodyKind {
    Multipart { boundary: String },
    Json,
    Raw { essence: String },
}

fn refuse(reason: &'static str, e: ServerError) -> ServerError {
    metrics::counter!(m::ADMISSION_REFUSED_TOTAL, "reason" => reason).increment(1);
    e
}

/// Reads the declared `Content-Length`, if any.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ServerError> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ServerError::bad_request("content_length", "invalid Content-Length"))
        })
        .transpose()
}

/// What the content type says about the body, checked before reading it.
fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ServerError> {
    let Some(ctype) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ServerError::UnsupportedMediaType(
            "missing Content-Type: send multipart/form-data, application/json, or a file with its own media type".into(),
        ));
    };
    let essence = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "multipart/form-data" {
        Ok(BodyKind::Multipart {
            boundary: multipart::boundary(ctype)?,
        })
    } else if essence == "application/json" || essence.ends_with("+json") {
        Ok(BodyKind::Json)
    } else if is_raw_type(&essence) {
        Ok(BodyKind::Raw { essence })
    } else {
        Err(ServerError::UnsupportedMediaType(format!(
            "content type `{essence}` is not accepted: send multipart/form-data, application/json, or an image, audio, video or document media type"
        )))
    }
}

/// Largest JSON body: every allowed text at its longest (4 bytes per
/// character), plus framing.
fn json_limit(state: &AppState) -> u64 {
    let per_text = state
        .analyzer()
        .limits()
        .max_text_chars
        .saturating_mul(4)
        .saturating_add(1024);
    per_text
        .saturating_mul(state.inner.config.max_inputs_per_request as u64)
        .saturating_add(64 * 1024)
        .min(state.inner.body_limit)
}

fn upload_too_large(limit: u64) -> ServerError {
    ServerError::Limit {
        code: "max_upload_bytes",
        message: format!("an input is larger than the per-input limit of {limit} bytes"),
    }
}

fn check_name(state: &AppState, name: Option<String>) -> Result<Option<String>, ServerError> {
    let max = state.inner.config.max_file_name_bytes;
    match name {
        Some(n) if n.len() > max => Err(refuse(
            "file_name",
            ServerError::bad_request(
                "file_name",
                format!(
                    "an input name is {} bytes long; at most {max} bytes are accepted",
                    n.len()
                ),
            ),
        )),
        other => Ok(other),
    }
}

/// Admission, then reading: everything that can refuse a request is checked
/// before its body is read (the declared length against the body and
/// per-input limits, a free analysis slot or room in the job store); then
/// the body is read with a running byte count, refused at the first byte
/// past a limit, large inputs spilled to disk as they arrive.
async fn run(
    state: AppState,
    RequestId(rid): RequestId,
    mut plan: Plan,
    req: Request,
) -> Result<Response, ServerError> {
    if !state.inner.analyzer.is_ready() {
        return Err(ServerError::NotReady);
    }
    let owner = req.extensions().get::<Caller>().and_then(|c| c.key);
    plan.scope = owner.map(hex::encode).unwrap_or_default();
    let (parts, body) = req.into_parts();
    let kind = body_kind(&parts.headers)?;
    let declared = content_length(&parts.headers)?;
    let body_limit = match kind {
        BodyKind::Json => json_limit(&state),
        _ => state.inner.body_limit,
    };
    let max_upload = state.analyzer().limits().max_upload_bytes;
    if let Some(n) = declared {
        if n > body_limit {
            return Err(refuse(
                "body_limit",
                ServerError::BodyTooLarge(format!(
                    "the request body is {n} bytes (Content-Length), the limit is {body_limit} bytes"
                )),
            ));
        }
        if matches!(kind, BodyKind::Raw { .. }) && n > max_upload {
            return Err(refuse("max_upload_bytes", upload_too_large(max_upload)));
        }
    }

    let cfg = &state.inner.config;
    let deadline = tokio::time::Instant::now() + plan.timeout;
    let mut reader = BodyReader::new(body, body_limit, cfg.body_idle_timeout, deadline);
    if plan.is_async {
        let ticket = state.inner.jobs.admit(declared.unwrap_or(0))?;
        reader.charge_to(ticket);
        let (inputs, ticket) = collect_inputs(&state, &parts.headers, kind, reader).await?;
        let Some(ticket) = ticket else {
            return Err(ServerError::Internal("job ticket lost".into()));
        };
        let job_id = state.inner.jobs.create(ticket, owner);
        if let Some(durable) = &state.inner.durable {
            // Written down before the 202: an accepted job survives a restart.
            let stored = StoredPlan {
                request_id: rid.clone(),
                plan: plan.clone(),
            };
            let written = match stored_inputs(&inputs) {
                Ok(list) => {
                    let plan = serde_json::to_string(&stored).unwrap_or_default();
                    durable
                        .persist(
                            &job_id,
                            owner,
                            plan,
                            list,
                            stored.plan.applicant_id.clone(),
                            stored
                                .plan
                                .review
                                .then_some(state.inner.config.case_retention),
                        )
                        .await
                }
                Err(e) => Err(ServerError::JobStoreUnavailable(format!(
                    "cannot read the job's inputs back: {e}"
                ))),
            };
            if let Err(e) = written {
                state.inner.jobs.forget(&job_id);
                return Err(e);
            }
        }
        let location = format!("/v1/jobs/{job_id}");
        spawn_job(state.clone(), job_id.clone(), rid, plan, inputs);
        let body = JobAccepted {
            job_id,
            status: JobStatus::Queued,
            location: location.clone(),
        };
        let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(resp);
    }

    // One slot before reading; more (up to the request's parallelism) after,
    // if free: a request that got in is never refused after its upload.
    let mut permits = state
        .inner
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            refuse(
                "max_concurrent_analyses",
                ServerError::Overloaded {
                    limit: state.inner.config.max_concurrent_analyses,
                },
            )
        })?;
    let (inputs, _) = collect_inputs(&state, &parts.headers, kind, reader).await?;
    let need = slots_needed(&state, inputs.len());
    while permits.num_permits() < need as usize {
        match state.inner.permits.clone().try_acquire_owned() {
            Ok(p) => permits.merge(p),
            Err(_) => break,
        }
    }
    let mut items = analyze_all(&state, inputs, &plan, permits).await;
    let matches = identity_matches(&state, &plan, &mut items).await;
    match finish(rid, items, &plan, matches) {
        Ok(body) => Ok(Json(body).into_response()),
        Err(p) => Ok(p.into_response()),
    }
}

/// A durable job's plan as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredPlan {
    request_id: String,
    plan: Plan,
}

/// What to write down for each input of an async job.
fn stored_inputs(
    inputs: &[Received],
) -> std::io::Result<Vec<(StoredInput, crate::durable::Source)>> {
    inputs
        .iter()
        .map(|i| {
            Ok(match i {
                Received::File {
                    held,
                    name,
                    content_type,
                } => (
                    StoredInput {
                        kind: "file".into(),
                        file: String::new(),
                        len: held.len(),
                        name: name.clone(),
                        content_type: content_type.clone(),
                    },
                    held.source()?,
                ),
                Received::Text { name, text } => (
                    StoredInput {
                        kind: "text".into(),
                        file: String::new(),
                        len: text.len() as u64,
                        name: name.clone(),
                        content_type: None,
                    },
                    crate::durable::Source::Bytes(Arc::from(text.as_bytes())),
                ),
            })
        })
        .collect()
}

/// Runs an accepted async job in the background: it waits for analysis
/// slots (the job store bounds how many wait), then stores its outcome.
fn spawn_job(state: AppState, id: String, rid: String, plan: Plan, inputs: Vec<Received>) {
    tokio::spawn(async move {
        let need = slots_needed(&state, inputs.len());
        let permits = state.inner.permits.clone().acquire_many_owned(need).await;
        state.inner.jobs.set_running(&id);
        if let Some(d) = &state.inner.durable {
            d.start(&id).await;
        }
        let outcome = match permits {
            Ok(p) => {
                let mut items = analyze_all(&state, inputs, &plan, p).await;
                let matches = identity_matches(&state, &plan, &mut items).await;
                finish(rid, items, &plan, matches).map_err(|p| *p)
            }
            Err(_) => Err(Problem::from_error(&ServerError::Internal(
                "analysis slots closed".into(),
            ))),
        };
        // One finishing time, to the millisecond, for both copies.
        let at = std::time::UNIX_EPOCH
            + Duration::from_millis(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            );
        if let Some(d) = &state.inner.durable {
            d.finish_at(&id, &outcome, plan.review, at).await;
        }
        state.inner.jobs.finish_at(&id, outcome, at);
    });
}

/// Runs again the unfinished async jobs this server had accepted before it
/// stopped (see [`crate::durable`]), once the analyzer is ready.
pub(crate) async fn resume_jobs(state: AppState) {
    let Some(durable) = state.inner.durable.clone() else {
        return;
    };
    let cfg = &state.inner.config;
    let found = match durable.recover(cfg.job_ttl, cfg.max_request_timeout).await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "cannot read unfinished async jobs");
            return;
        }
    };
    if found.is_empty() {
        return;
    }
    while !state.inner.analyzer.is_ready() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in found {
        let stored: StoredPlan = match serde_json::from_str(&r.plan) {
            Ok(p) => p,
            Err(e) => {
                let p = Problem::from_error(&ServerError::Internal(format!(
                    "the job's stored plan is unreadable: {e}"
                )));
                durable.finish(&r.job_id, &Err(p), false).await;
                continue;
            }
        };
        let inputs = r
            .inputs
            .into_iter()
            .map(|(i, path)| match i.kind.as_str() {
                "text" => match std::fs::read(&path).map(String::from_utf8) {
                    Ok(Ok(text)) => Ok(Received::Text { name: i.name, text }),
                    _ => Err(()),
                },
                _ => Ok(Received::File {
                    held: Held::Stored { path, len: i.len },
                    name: i.name,
                    content_type: i.content_type,
                }),
            })
            .collect::<Result<Vec<_>, ()>>();
        let Ok(inputs) = inputs else {
            let p = Problem::from_error(&ServerError::Internal(
                "the job's stored text is unreadable".into(),
            ));
            durable.finish(&r.job_id, &Err(p), stored.plan.review).await;
            continue;
        };
        state
            .inner
            .jobs
            .restore(&r.job_id, r.owner, r.bytes, r.created_at);
        metrics::counter!(m::JOBS_RECOVERED_TOTAL).increment(1);
        tracing::info!(job_id = %r.job_id, inputs = inputs.len(), "async job resumed after a restart");
        spawn_job(
            state.clone(),
            r.job_id,
            stored.request_id,
            stored.plan,
            inputs,
        );
    }
}

fn slots_needed(state: &AppState, inputs: usize) -> u32 {
    inputs
        .min(state.inner.config.request_parallelism)
        .min(state.inner.config.max_concurrent_analyses)
        .max(1) as u32
}

/// The response body, or the problem when a single-input request failed.
fn finish(
    rid: String,
    items: Vec<Item>,
    plan: &Plan,
    matches: Vec<candor_identity::Match>,
) -> Result<AnalyzeResponse, Box<Problem>> {
    if let [Item::Error(e)] = items.as_slice() {
        return Err(Box::new(e.to_problem()));
    }
    let mut r = AnalyzeResponse::new(rid, items, plan.case);
    r.matches = matches;
    Ok(r)
}

/// Looks each input's templates up in the identity registry and enrols
/// them under the request's applicant (when both exist); the templates are
/// taken out of the results here, so nothing downstream can serialise or
/// log them.
async fn identity_matches(
    state: &AppState,
    plan: &Plan,
    items: &mut [Item],
) -> Vec<candor_identity::Match> {
    let mut out = Vec::new();
    for (index, item) in items.iter_mut().enumerate() {
        let Item::Result(r) = item else { continue };
        let Some(t) = r.identity.take() else { continue };
        let (Some(reg), Some(applicant)) = (&state.inner.identity, &plan.applicant_id) else {
            continue;
        };
        match reg
            .enroll_and_match(
                &plan.scope,
                applicant,
                &r.input.sha256,
                r.input.name.as_deref(),
                &t,
            )
            .await
        {
            Ok(ms) => out.extend(ms.into_iter().map(|mut m| {
                m.input_index = Some(index);
                m
            })),
            Err(e) => {
                metrics::counter!(m::JOB_STORE_ERRORS_TOTAL).increment(1);
                tracing::warn!(index, error = %e, "identity registry lookup failed");
                r.warnings
                    .push("the identity registry could not be consulted for this input".into());
            }
        }
    }
    out
}

/// Aborts the spawned analyses when the request goes away.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Analyse every input, at most `permits.num_permits()` at once, keeping
/// request order. A spilled input is read back into memory only when its
/// turn comes. Records the per-input metrics.
async fn analyze_all(
    state: &AppState,
    inputs: Vec<Received>,
    plan: &Plan,
    permits: OwnedSemaphorePermit,
) -> Vec<Item> {
    let parallel = Arc::new(Semaphore::new(permits.num_permits().max(1)));
    let deadline = Instant::now() + plan.timeout;
    let opts = AnalyzeOptions {
        priority: plan.priority,
        deadline: Some(deadline),
        identity: state.inner.identity.is_some() && plan.applicant_id.is_some(),
    };
    let mut handles = Vec::with_capacity(inputs.len());
    let mut meta = Vec::with_capacity(inputs.len());
    for input in inputs {
        let analyzer = state.inner.analyzer.clone();
        let parallel = parallel.clone();
        let opts = opts.clone();
        metrics::histogram!(m::ANALYZE_INPUT_BYTES).record(input.len() as f64);
        meta.push(input.name().map(str::to_owned));
        let loaded = Arc::clone(&state.inner.loaded);
        handles.push(tokio::spawn(async move {
            let _slot = parallel.acquire_owned().await;
            let started = Instant::now();
            let (input, _memory) = input.into_source(&loaded).await?;
            match tokio::time::timeout_at(deadline.into(), analyzer.analyze(input, &opts)).await {
                Ok(r) => r.map_err(ServerError::from),
                Err(_) => Err(ServerError::from(AnalyzeError::Deadline {
                    elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
                })),
            }
        }));
    }
    let guard = AbortOnDrop(handles.iter().map(|h| h.abort_handle()).collect());
    let mut items = Vec::with_capacity(handles.len());
    for (index, (handle, name)) in handles.into_iter().zip(meta).enumerate() {
        let outcome = match handle.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Internal(format!("analysis task failed: {e}"))),
        };
        let outcome = outcome.and_then(|r| match plan.expected {
            Some(want) if r.modality != want => Err(ServerError::WrongModality {
                expected: want,
                got: r.modality,
            }),
            _ => Ok(r),
        });
        let item = match outcome {
            Ok(r) => {
                let label = if r.score.is_some() {
                    "scored"
                } else {
                    "abstained"
                };
                metrics::counter!(m::ANALYZE_INPUTS_TOTAL, "modality" => r.modality.as_str(), "outcome" => label)
                    .increment(1);
                Item::Result(Box::new(r))
            }
            Err(e) => {
                let modality = match &e {
                    ServerError::WrongModality { got, .. } => got.as_str(),
                    _ => "unknown",
                };
                metrics::counter!(m::ANALYZE_INPUTS_TOTAL, "modality" => modality, "outcome" => "error")
                    .increment(1);
                // The detail may quote the applicant's file name: INFO gets
                // the machine-readable code only.
                let code = candor_core::ToProblem::problem_code(&e).unwrap_or("none");
                tracing::info!(index, code, "input not analysed");
                tracing::debug!(index, error = %e, "input not analysed (detail)");
                Item::Error(InputProblem::from_error(&e, index, name))
            }
        };
        items.push(item);
    }
    drop(guard);
    drop(permits);
    items
}

/// Media types accepted as a raw body (one input).
fn is_raw_type(essence: &str) -> bool {
    essence.starts_with("image/")
        || essence.starts_with("audio/")
        || essence.starts_with("video/")
        || matches!(
            essence,
            "application/pdf"
                | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
                | "application/msword"
                | "application/octet-stream"
                | "text/plain"
                | "text/markdown"
                | "application/ogg"
        )
}

/// `filename="..."` from a `Content-Disposition` header, if any.
fn disposition_filename(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    v.split(';').find_map(|p| {
        let p = p.trim();
        p.strip_prefix("filename=")
            .map(|f| f.trim_matches('"').to_owned())
            .filter(|f| !f.is_empty())
    })
}

/// An input as received: bytes (in memory or spilled) or pasted text.
pub(crate) enum Received {
    File {
        held: Held,
        name: Option<String>,
        content_type: Option<String>,
    },
    Text {
        name: Option<String>,
        text: String,
    },
}

impl Received {
    fn name(&self) -> Option<&str> {
        match self {
            Received::File { name, .. } | Received::Text { name, .. } => name.as_deref(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Received::File { held, .. } => held.len(),
            Received::Text { text, .. } => text.len() as u64,
        }
    }

    /// The analyzer's input. A spilled input is read back into memory
    /// only once its bytes fit in the budget for loaded inputs; the permit
    /// returned holds them until the analysis ends.
    async fn into_source(
        self,
        budget: &LoadBudget,
    ) -> Result<(InputSource, Option<OwnedSemaphorePermit>), ServerError> {
        Ok(match self {
            Received::File {
                held,
                name,
                content_type,
            } => {
                let permit = match &held {
                    Held::Memory(_) => None,
                    Held::Spilled { len, .. } | Held::Stored { len, .. } => {
                        Some(budget.acquire(*len).await?)
                    }
                };
                let source = InputSource::File(RawInput {
                    bytes: held.load().await?,
                    name,
                    content_type,
                });
                (source, permit)
            }
            Received::Text { name, text } => (InputSource::Text { name, text }, None),
        })
    }
}

/// An input's bytes, refused at the first byte past `max`.
struct Sink {
    buf: InputBuffer,
    max: u64,
}

impl Sink {
    fn new(state: &AppState, max: u64) -> Self {
        Sink {
            buf: InputBuffer::new(
                Arc::clone(&state.inner.spill),
                state.inner.config.spill_threshold_bytes,
            ),
            max,
        }
    }

    async fn push(&mut self, chunk: &[u8]) -> Result<(), ServerError> {
        if self.buf.len() + chunk.len() as u64 > self.max {
            return Err(refuse("max_upload_bytes", upload_too_large(self.max)));
        }
        self.buf.push(chunk).await
    }
}

/// Reads the inputs of a request; gives back the job ticket the reader was
/// charging, if any.
async fn collect_inputs(
    state: &AppState,
    headers: &HeaderMap,
    kind: BodyKind,
    mut reader: BodyReader,
) -> Result<(Vec<Received>, Option<JobTicket>), ServerError> {
    let max = state.inner.config.max_inputs_per_request;
    let inputs = match kind {
        BodyKind::Multipart { boundary } => {
            let mut mp = MultipartReader::new(reader, &boundary);
            let inputs = collect_multipart(state, &mut mp, max).await?;
            reader = mp.into_body();
            inputs
        }
        BodyKind::Json => {
            let bytes = reader.read_all().await?;
            let body: AnalyzeJson = serde_json::from_slice(&bytes)
                .map_err(|e| ServerError::bad_request("json", format!("invalid JSON body: {e}")))?;
            match (body.text, body.inputs) {
                (Some(text), None) => vec![Received::Text {
                    name: check_name(state, body.name)?,
                    text,
                }],
                (None, Some(list)) => {
                    if body.name.is_some() {
                        return Err(ServerError::bad_request(
                            "json",
                            "`name` belongs inside each entry of `inputs`",
                        ));
                    }
                    if list.len() > max {
                        return Err(ServerError::TooManyInputs { max });
                    }
                    list.into_iter()
                        .map(|t| {
                            Ok(Received::Text {
                                name: check_name(state, t.name)?,
                                text: t.text,
                            })
                        })
                        .collect::<Result<_, ServerError>>()?
                }
                _ => {
                    return Err(ServerError::bad_request(
                        "json",
                        "give exactly one of `text` or `inputs`",
                    ))
                }
            }
        }
        BodyKind::Raw { essence } => {
            let name = check_name(state, disposition_filename(headers))?;
            let mut sink = Sink::new(state, state.analyzer().limits().max_upload_bytes);
            while let Some(c) = reader.next().await? {
                sink.push(&c).await?;
            }
            vec![Received::File {
                held: sink.buf.finish().await?,
                name,
                content_type: Some(essence),
            }]
        }
    };
    if inputs.is_empty() {
        return Err(ServerError::bad_request(
            "no_inputs",
            "the request holds no inputs: add file parts or a non-empty `text` field",
        ));
    }
    Ok((inputs, reader.take_ticket()))
}

async fn collect_multipart(
    state: &AppState,
    mp: &mut MultipartReader,
    max: usize,
) -> Result<Vec<Received>, ServerError> {
    let limits = state.analyzer().limits();
    let max_upload = limits.max_upload_bytes;
    let max_text = limits.max_text_chars.saturating_mul(4);
    let mut inputs = Vec::new();
    while let Some(head) = mp.next_part().await? {
        let is_file = head.file_name.is_some()
            || head
                .content_type
                .as_deref()
                .is_some_and(|c| !c.starts_with("text/plain"));
        let is_text = !is_file && head.name.as_deref() == Some("text");
        if !is_file && !is_text {
            return Err(ServerError::bad_request(
                "multipart",
                format!(
                    "unexpected form field `{}`: send files as file parts and pasted text in fields named `text`",
                    head.name.unwrap_or_default()
                ),
            ));
        }
        if inputs.len() >= max {
            return Err(refuse("max_inputs", ServerError::TooManyInputs { max }));
        }
        if is_file {
            let name = check_name(state, head.file_name.filter(|n| !n.is_empty()))?;
            let field = check_name(state, head.name)?;
            let mut sink = Sink::new(state, max_upload);
            while let Some(c) = mp.next_chunk().await? {
                sink.push(&c).await?;
            }
            if sink.buf.len() == 0 && name.is_none() {
                // A file input left empty in a browser form.
                continue;
            }
            inputs.push(Received::File {
                held: sink.buf.finish().await?,
                name: name.or(field),
                content_type: head.content_type,
            });
        } else {
            let mut data = Vec::new();
            while let Some(c) = mp.next_chunk().await? {
                if (data.len() + c.len()) as u64 > max_text {
                    return Err(refuse(
                        "max_text_chars",
                        ServerError::Limit {
                            code: "max_text_chars",
                            message: format!(
                                "a `text` field is longer than {max_text} bytes, more than \
                                 the text limit of {} characters can take",
                                limits.max_text_chars
                            ),
                        },
                    ));
                }
                data.extend_from_slice(&c);
            }
            let text = String::from_utf8(data).map_err(|_| {
                ServerError::bad_request("multipart", "the `text` field is not valid UTF-8")
            })?;
            if text.trim().is_empty() {
                continue;
            }
            inputs.push(Received::Text { name: None, text });
        }
    }
    Ok(inputs)
}
