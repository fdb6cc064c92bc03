//! `POST /v1/stream/audio`: live interview audio in, segment scores out as
//! they are ready.
//!
//! The request body is raw PCM (chunked transfer encoding; any chunk size),
//! the response is `application/x-ndjson`, written while the body is still
//! arriving: one `{"type":"segment",...}` line per 2 s segment (every 1 s)
//! and, when the body ends, one `{"type":"summary",...}` line with the
//! score of the whole stream. A failure mid-stream is an
//! `{"type":"error","problem":{...}}` line (the status line has already
//! been sent).
//!
//! Streams have their own bounded pool of slots (`max_concurrent_streams`),
//! separate from the analysis slots of uploads: streams can never starve
//! uploads, nor uploads streams. A stream that sends no bytes for
//! `stream_idle_timeout`, or lasts longer than `stream_max_duration`, is
//! ended with an error line.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use candor_core::{Priority, ToProblem};
use candor_detectors::audio::stream::{Encoding, StreamSegment, StreamSummary};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Problem, ServerError};
use crate::metrics as m;
use crate::AppState;

/// Query parameters of the stream route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StreamQuery {
    /// Samples per second of the PCM body: 16000 or 48000 (mono).
    pub sample_rate: Option<u32>,
    /// `pcm_s16le` (default) or `pcm_f32le`.
    pub encoding: Option<String>,
    /// Queue class of the segments' model requests (default `live`).
    pub priority: Option<Priority>,
}

/// One line of the response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamLine {
    Segment(StreamSegment),
    Summary(StreamSummary),
    Error { problem: Problem },
}

fn line(l: &StreamLine) -> axum::body::Bytes {
    let mut s = serde_json::to_string(l).unwrap_or_else(|_| "{\"type\":\"error\"}".into());
    s.push('\n');
    axum::body::Bytes::from(s)
}

/// Live audio: PCM in, segment scores out as newline-delimited JSON.
#[utoipa::path(
    post,
    path = "/v1/stream/audio",
    tag = "analyze",
    params(StreamQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "Raw mono PCM (`encoding`, `sample_rate`), sent as it is recorded"),
    responses(
        (status = 200, description = "Newline-delimited JSON: `segment` lines as segments complete, then one `summary` line", body = StreamLine, content_type = "application/x-ndjson"),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "All live-stream slots are busy", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The audio detector is not installed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn stream_audio(
    State(state): State<AppState>,
    Query(q): Query<StreamQuery>,
    body: Body,
) -> Result<Response, ServerError> {
    let encoding = match q.encoding.as_deref() {
        None => Encoding::PcmS16le,
        Some(e) => Encoding::parse(e).ok_or_else(|| {
            ServerError::bad_request(
                "encoding",
                format!("unknown encoding `{e}` (use pcm_s16le or pcm_f32le)"),
            )
        })?,
    };
    let rate = q.sample_rate.unwrap_or(16_000);
    let priority = q.priority.unwrap_or(Priority::Live);
    let mut stream = match state.analyzer().audio_stream(encoding, rate, priority) {
        Ok(s) => s,
        Err(msg) if msg.starts_with("sample rate") => {
            return Err(ServerError::bad_request("sample_rate", msg))
        }
        Err(msg) => return Err(ServerError::DetectorUnavailable(msg)),
    };
    let cfg = &state.inner.config;
    let permit = state
        .inner
        .stream_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            metrics::counter!(m::ADMISSION_REFUSED_TOTAL, "reason" => "max_concurrent_streams")
                .increment(1);
            ServerError::StreamsBusy {
                limit: cfg.max_concurrent_streams,
            }
        })?;
    let idle = cfg.stream_idle_timeout;
    let max_duration = cfg.stream_max_duration;
    metrics::gauge!(m::STREAMS_ACTIVE).increment(1.0);
    let (tx, rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(64);
    tokio::spawn(async move {
        let _permit = permit;
        let started = Instant::now();
        let end_at = tokio::time::Instant::now() + max_duration;
        let mut data = body.into_data_stream();
        // A client that stops reading its answers stalls the stream like
        // one that stops sending.
        let send = |l: axum::body::Bytes| {
            let tx = tx.clone();
            async move { matches!(tokio::time::timeout(idle, tx.send(l)).await, Ok(Ok(()))) }
        };
        let fail = |e: &dyn ToProblem, detail: String| {
            metrics::counter!(m::STREAM_SEGMENTS_TOTAL, "outcome" => "error").increment(1);
            line(&StreamLine::Error {
                problem: Problem::new(e.problem_kind(), detail, e.problem_code()),
            })
        };
        let timeout_line = |code: &'static str, detail: String| {
            line(&StreamLine::Error {
                problem: Problem::from_error(&ServerError::BodyTimeout {
                    code,
                    message: detail,
                }),
            })
        };
        let outcome: &'static str = 'read: loop {
            let at = (tokio::time::Instant::now() + idle).min(end_at);
            let chunk = match tokio::time::timeout_at(at, data.next()).await {
                Err(_) if at == end_at => {
                    let _ = send(timeout_line(
                        "stream_max_duration",
                        format!(
                            "the stream lasted longer than {:.0} s, the limit; it was ended",
                            max_duration.as_secs_f64()
                        ),
                    ))
                    .await;
                    break 'read "max_duration";
                }
                Err(_) => {
                    let _ = send(timeout_line(
                        "stream_idle_timeout",
                        format!(
                            "no audio arrived for {:.1} s; the stream was ended",
                            idle.as_secs_f64()
                        ),
                    ))
                    .await;
                    break 'read "idle_timeout";
                }
                Ok(None) => break 'read "completed",
                Ok(Some(Err(e))) => {
                    let _ = send(fail(
                        &ServerError::bad_request("body", String::new()),
                        format!("reading the request body failed: {e}"),
                    ))
                    .await;
                    break 'read "body_error";
                }
                Ok(Some(Ok(b))) => b,
            };
            match stream.push(&chunk).await {
                Ok(segments) => {
                    for s in segments {
                        record(&s);
                        if !send(line(&StreamLine::Segment(s))).await {
                            break 'read "client_gone";
                        }
                    }
                }
                Err(e) => {
                    let _ = send(fail(&e, e.to_string())).await;
                    break 'read "analysis_error";
                }
            }
        };
        let outcome = if outcome == "completed" {
            match stream.finish().await {
                Ok((tail, summary)) => {
                    let mut gone = false;
                    for s in tail {
                        record(&s);
                        gone |= !send(line(&StreamLine::Segment(s))).await;
                    }
                    gone |= !send(line(&StreamLine::Summary(summary))).await;
                    if gone {
                        "client_gone"
                    } else {
                        "completed"
                    }
                }
                Err(e) => {
                    let _ = send(fail(&e, e.to_string())).await;
                    "analysis_error"
                }
            }
        } else {
            outcome
        };
        let secs = started.elapsed().as_secs_f64();
        metrics::counter!(m::STREAMS_TOTAL, "outcome" => outcome).increment(1);
        metrics::histogram!(m::STREAM_DURATION_SECONDS).record(secs);
        tracing::info!(outcome, duration_s = secs, "live audio stream ended");
        metrics::gauge!(m::STREAMS_ACTIVE).decrement(1.0);
    });
    let out = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    let mut resp = Body::from_stream(out).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

fn record(s: &StreamSegment) {
    let outcome = if s.score.is_some() {
        "scored"
    } else {
        "skipped"
    };
    metrics::counter!(m::STREAM_SEGMENTS_TOTAL, "outcome" => outcome).increment(1);
    metrics::histogram!(m::STREAM_SEGMENT_LATENCY_SECONDS).record(s.latency_ms / 1e3);
}
