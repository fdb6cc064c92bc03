//! `POST /v1/analyze`, `POST /v1/analyze/{modality}` and `GET /v1/jobs/{id}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use candor_core::{Modality, Priority};
use candor_detectors::{AnalyzeError, AnalyzeOptions, InputSource, RawInput};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{parse_modality, AnalyzeJson, AnalyzeQuery, AnalyzeResponse, InputProblem, Item};
use crate::error::{Problem, ServerError};
use crate::jobs::{JobAccepted, JobStatus, JobView};
use crate::metrics as m;
use crate::observe::RequestId;
use crate::AppState;

/// Header alternative to the `priority` query parameter.
pub const PRIORITY_HEADER: &str = "x-candor-priority";

/// Options of one analyze call, resolved from query, headers and config.
#[derive(Debug, Clone)]
struct Plan {
    priority: Priority,
    timeout: Duration,
    is_async: bool,
    case: Option<bool>,
    expected: Option<Modality>,
}

fn plan(
    state: &AppState,
    query: Result<Query<AnalyzeQuery>, QueryRejection>,
    headers: &HeaderMap,
    expected: Option<Modality>,
) -> Result<Plan, ServerError> {
    let Query(q) = query.map_err(|e| ServerError::bad_request("query", e.body_text()))?;
    let is_async = q.is_async.unwrap_or(false);
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
        case: q.case,
        expected,
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
        (status = 413, description = "Body over the limit, too many inputs, or the single input exceeds a limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported content type, or the single input is of an unsupported type.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The single input cannot be processed.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "All analysis slots or job slots are busy; retry.", body = Problem, content_type = "application/problem+json"),
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
        (status = 404, description = "Unknown or expired job.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ServerError> {
    state
        .inner
        .jobs
        .get(&id)
        .map(Json)
        .ok_or_else(|| ServerError::NotFound(format!("no job `{id}` (unknown, or expired)")))
}

async fn run(
    state: AppState,
    RequestId(rid): RequestId,
    plan: Plan,
    req: Request,
) -> Result<Response, ServerError> {
    if !state.inner.analyzer.is_ready() {
        return Err(ServerError::NotReady);
    }
    let inputs = collect_inputs(&state, req).await?;
    let need = inputs
        .len()
        .min(state.inner.config.request_parallelism)
        .min(state.inner.config.max_concurrent_analyses)
        .max(1) as u32;

    if plan.is_async {
        let job_id = state.inner.jobs.create()?;
        let location = format!("/v1/jobs/{job_id}");
        let st = state.clone();
        let id = job_id.clone();
        tokio::spawn(async move {
            // Jobs wait for slots instead of being shed: the job store bounds them.
            let permits = st.inner.permits.clone().acquire_many_owned(need).await;
            st.inner.jobs.set_running(&id);
            let outcome = match permits {
                Ok(p) => {
                    let items = analyze_all(&st, inputs, &plan, p).await;
                    finish(rid, items, &plan)
                }
                Err(_) => Err(Box::new(Problem::from_error(&ServerError::Internal(
                    "analysis slots closed".into(),
                )))),
            };
            st.inner.jobs.finish(&id, outcome.map_err(|p| *p));
        });
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

    let permits = state
        .inner
        .permits
        .clone()
        .try_acquire_many_owned(need)
        .map_err(|_| ServerError::Overloaded {
            limit: state.inner.config.max_concurrent_analyses,
        })?;
    let items = analyze_all(&state, inputs, &plan, permits).await;
    match finish(rid, items, &plan) {
        Ok(body) => Ok(Json(body).into_response()),
        Err(p) => Ok(p.into_response()),
    }
}

/// The response body, or the problem when a single-input request failed.
fn finish(rid: String, items: Vec<Item>, plan: &Plan) -> Result<AnalyzeResponse, Box<Problem>> {
    if let [Item::Error(e)] = items.as_slice() {
        return Err(Box::new(e.to_problem()));
    }
    Ok(AnalyzeResponse::new(rid, items, plan.case))
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
/// request order. Records the per-input metrics.
async fn analyze_all(
    state: &AppState,
    inputs: Vec<InputSource>,
    plan: &Plan,
    permits: OwnedSemaphorePermit,
) -> Vec<Item> {
    let parallel = Arc::new(Semaphore::new(permits.num_permits().max(1)));
    let deadline = Instant::now() + plan.timeout;
    let opts = AnalyzeOptions {
        priority: plan.priority,
        deadline: Some(deadline),
    };
    let mut handles = Vec::with_capacity(inputs.len());
    let mut meta = Vec::with_capacity(inputs.len());
    for input in inputs {
        let analyzer = state.inner.analyzer.clone();
        let parallel = parallel.clone();
        let opts = opts.clone();
        let size = match &input {
            InputSource::File(r) => r.bytes.len(),
            InputSource::Text { text, .. } => text.len(),
        };
        metrics::histogram!(m::ANALYZE_INPUT_BYTES).record(size as f64);
        meta.push(input.name().map(str::to_owned));
        handles.push(tokio::spawn(async move {
            let _slot = parallel.acquire_owned().await;
            let started = Instant::now();
            match tokio::time::timeout_at(deadline.into(), analyzer.analyze(input, &opts)).await {
                Ok(r) => r,
                Err(_) => Err(AnalyzeError::Deadline {
                    elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
                }),
            }
        }));
    }
    let guard = AbortOnDrop(handles.iter().map(|h| h.abort_handle()).collect());
    let mut items = Vec::with_capacity(handles.len());
    for (index, (handle, name)) in handles.into_iter().zip(meta).enumerate() {
        let outcome = match handle.await {
            Ok(r) => r.map_err(ServerError::from),
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
                tracing::info!(index, error = %e, "input not analysed");
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

fn body_error(status: StatusCode, text: String) -> ServerError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ServerError::BodyTooLarge(format!(
            "request body exceeds the server's body limit ({text})"
        ))
    } else {
        ServerError::bad_request("body", text)
    }
}

async fn collect_inputs(state: &AppState, req: Request) -> Result<Vec<InputSource>, ServerError> {
    let max = state.inner.config.max_inputs_per_request;
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_owned());
    let Some(ctype) = ctype else {
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

    let inputs = if essence == "multipart/form-data" {
        collect_multipart(state, req, max).await?
    } else if essence == "application/json" || essence.ends_with("+json") {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        let body: AnalyzeJson = serde_json::from_slice(&bytes)
            .map_err(|e| ServerError::bad_request("json", format!("invalid JSON body: {e}")))?;
        match (body.text, body.inputs) {
            (Some(text), None) => vec![InputSource::Text {
                name: body.name,
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
                    .map(|t| InputSource::Text {
                        name: t.name,
                        text: t.text,
                    })
                    .collect()
            }
            _ => {
                return Err(ServerError::bad_request(
                    "json",
                    "give exactly one of `text` or `inputs`",
                ))
            }
        }
    } else if is_raw_type(&essence) {
        let name = disposition_filename(req.headers());
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        vec![InputSource::File(RawInput {
            bytes: Arc::from(&bytes[..]),
            name,
            content_type: Some(essence),
        })]
    } else {
        return Err(ServerError::UnsupportedMediaType(format!(
            "content type `{essence}` is not accepted: send multipart/form-data, application/json, or an image, audio, video or document media type"
        )));
    };
    if inputs.is_empty() {
        return Err(ServerError::bad_request(
            "no_inputs",
            "the request holds no inputs: add file parts or a non-empty `text` field",
        ));
    }
    Ok(inputs)
}

async fn collect_multipart(
    state: &AppState,
    req: Request,
    max: usize,
) -> Result<Vec<InputSource>, ServerError> {
    let mut mp = Multipart::from_request(req, state)
        .await
        .map_err(|e| ServerError::bad_request("multipart", e.body_text()))?;
    let mut inputs = Vec::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(body_error(e.status(), e.body_text())),
        };
        let field_name = field.name().map(str::to_owned);
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let is_file = file_name.is_some()
            || content_type
                .as_deref()
                .is_some_and(|c| !c.starts_with("text/plain"));
        let is_text = !is_file && field_name.as_deref() == Some("text");
        if !is_file && !is_text {
            return Err(ServerError::bad_request(
                "multipart",
                format!(
                    "unexpected form field `{}`: send files as file parts and pasted text in fields named `text`",
                    field_name.unwrap_or_default()
                ),
            ));
        }
        if inputs.len() >= max {
            return Err(ServerError::TooManyInputs { max });
        }
        let data = field
            .bytes()
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        if is_file {
            let name = file_name.filter(|n| !n.is_empty());
            if data.is_empty() && name.is_none() {
                // A file input left empty in a browser form.
                continue;
            }
            inputs.push(InputSource::File(RawInput {
                bytes: Arc::from(&data[..]),
                name: name.or(field_name),
                content_type,
            }));
        } else {
            let text = String::from_utf8(data.to_vec()).map_err(|_| {
                ServerError::bad_request("multipart", "the `text` field is not valid UTF-8")
            })?;
            if text.trim().is_empty() {
                continue;
            }
            inputs.push(InputSource::Text { name: None, text });
        }
    }
    Ok(inputs)
}
