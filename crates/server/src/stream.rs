//! `POST /v1/stream/audio`: live interview audio in, segment scores out as
//! they are ready.
//!
//! The request body is raw PCM (chunked transfer encoding; any chunk size),
//! the response is `application/x-ndjson`, written while the body is still
//! arriving: one `{"type":"segment",...}` line per 2 s segment (every 1 s)
//! and, when the body ends, one `{"type":"summary",...}` line with the
//! score of the whole stream. A failure mid-stream is an
//! `{"type":"error","problem":{...}}` line (the status line has already
//! been sent). A stream holds one analysis slot for its lifetime.

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
        (status = 429, description = "All analysis slots are busy", body = Problem, content_type = "application/problem+json"),
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
    let permit = state
        .inner
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| ServerError::Overloaded {
            limit: state.inner.config.max_concurrent_analyses,
        })?;
    metrics::gauge!(m::STREAMS_ACTIVE).increment(1.0);
    let (tx, rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(64);
    tokio::spawn(async move {
        let _permit = permit;
        let mut data = body.into_data_stream();
        let fail = |e: &dyn ToProblem, detail: String| {
            metrics::counter!(m::STREAM_SEGMENTS_TOTAL, "outcome" => "error").increment(1);
            line(&StreamLine::Error {
                problem: Problem::new(e.problem_kind(), detail, e.problem_code()),
            })
        };
        let mut ok = true;
        'read: while let Some(chunk) = data.next().await {
            let bytes = match chunk {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx
                        .send(fail(
                            &ServerError::bad_request("body", String::new()),
                            format!("reading the request body failed: {e}"),
                        ))
                        .await;
                    ok = false;
                    break;
                }
            };
            match stream.push(&bytes).await {
                Ok(segments) => {
                    for s in segments {
                        record(&s);
                        if tx.send(line(&StreamLine::Segment(s))).await.is_err() {
                            ok = false; // client went away
                            break 'read;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(fail(&e, e.to_string())).await;
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            match stream.finish().await {
                Ok((tail, summary)) => {
                    for s in tail {
                        record(&s);
                        let _ = tx.send(line(&StreamLine::Segment(s))).await;
                    }
                    let _ = tx.send(line(&StreamLine::Summary(summary))).await;
                }
                Err(e) => {
                    let _ = tx.send(fail(&e, e.to_string())).await;
                }
            }
        }
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
