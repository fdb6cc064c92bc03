//! Prometheus metrics: names, buckets and the process-wide recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests served, by `route` (matched path template), `method`, `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "candor_http_requests_total";
/// Request latency histogram, by `route` and `method`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "candor_http_request_duration_seconds";
/// Requests being served right now.
pub const HTTP_IN_FLIGHT: &str = "candor_http_in_flight_requests";
/// Inputs analysed, by `modality` (`unknown` when it could not be
/// determined) and `outcome` (`scored`, `abstained`, `error`).
pub const ANALYZE_INPUTS_TOTAL: &str = "candor_analyze_inputs_total";
/// Size of each input received, histogram.
pub const ANALYZE_INPUT_BYTES: &str = "candor_analyze_input_bytes";
/// Live audio streams open right now.
pub const STREAMS_ACTIVE: &str = "candor_audio_streams_active";
/// Stream segments, by `outcome` (`scored`, `skipped`, `error`).
pub const STREAM_SEGMENTS_TOTAL: &str = "candor_audio_stream_segments_total";
/// From a segment's last sample arriving to its score being sent.
pub const STREAM_SEGMENT_LATENCY_SECONDS: &str = "candor_audio_stream_segment_latency_seconds";
/// Jobs in the async job store, by `status`.
pub const JOBS: &str = "candor_jobs";
/// Bytes the async job store holds against its budget (inputs of
/// unfinished jobs, responses of finished ones).
pub const JOB_BYTES: &str = "candor_job_bytes";
/// Live audio streams ended, by `outcome` (`completed`, `idle_timeout`,
/// `max_duration`, `client_gone`, `body_error`, `analysis_error`).
pub const STREAMS_TOTAL: &str = "candor_audio_streams_total";
/// Wall-clock length of each live audio stream.
pub const STREAM_DURATION_SECONDS: &str = "candor_audio_stream_duration_seconds";
/// Requests refused at admission or while their body was read, by
/// `reason` (the problem code: `max_concurrent_analyses`, `body_limit`,
/// `max_upload_bytes`, `max_jobs`, `max_job_bytes`, `spill_area`,
/// `max_concurrent_streams`, `body_idle_timeout`, `request_deadline`,
/// `auth_throttled`, ...).
pub const ADMISSION_REFUSED_TOTAL: &str = "candor_admission_refused_total";
/// Bytes read from request bodies (refused requests included).
pub const HTTP_BODY_BYTES_TOTAL: &str = "candor_http_request_body_bytes_total";
/// Inputs moved to the spill area while they arrived.
pub const SPILLED_INPUTS_TOTAL: &str = "candor_spilled_inputs_total";
/// Bytes of inputs in the spill area now.
pub const SPILL_BYTES: &str = "candor_spill_bytes";
/// Requests whose client went away before the response was complete, by
/// `route`.
pub const HTTP_CLIENT_DISCONNECTS_TOTAL: &str = "candor_http_client_disconnects_total";
/// Open client connections.
pub const CONNECTIONS_ACTIVE: &str = "candor_http_connections_active";
/// Connections accepted.
pub const CONNECTIONS_TOTAL: &str = "candor_http_connections_total";
/// Connections closed by the server's timeouts, by `reason`
/// (`header_timeout`, `idle_timeout`, `write_stall`).
pub const CONNECTIONS_TIMED_OUT_TOTAL: &str = "candor_http_connections_timed_out_total";
/// Connections refused at accept, by `reason` (`max_connections`,
/// `max_connections_per_client`).
pub const CONNECTIONS_REFUSED_TOTAL: &str = "candor_http_connections_refused_total";
/// Requests with a missing or wrong API key.
pub const AUTH_FAILURES_TOTAL: &str = "candor_auth_failures_total";
/// Requests and jobs dropped when the server stopped, by `what`
/// (`request`, `job`).
pub const SHUTDOWN_DROPPED_TOTAL: &str = "candor_shutdown_dropped_total";
/// Failed reads and writes of the durable async-job store.
pub const JOB_STORE_ERRORS_TOTAL: &str = "candor_job_store_errors_total";
/// Unfinished async jobs found at start-up and run again.
pub const JOBS_RECOVERED_TOTAL: &str = "candor_jobs_recovered_total";

const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
const BYTES_BUCKETS: &[f64] = &[
    1024.0,
    16.0 * 1024.0,
    128.0 * 1024.0,
    1024.0 * 1024.0,
    4.0 * 1024.0 * 1024.0,
    16.0 * 1024.0 * 1024.0,
    64.0 * 1024.0 * 1024.0,
    256.0 * 1024.0 * 1024.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle. The first call installs the global
/// `metrics` recorder; later calls (several routers in tests, the CLI) reuse
/// it. If another recorder was installed first, Candor's metrics go there
/// and `/metrics` shows only what this handle sees (a warning is logged).
pub fn prometheus_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS)
                })
                .expect("static, non-empty bucket lists");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(HTTP_REQUESTS_TOTAL, Unit::Count, "HTTP requests served");
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request latency"
    );
    metrics::describe_gauge!(HTTP_IN_FLIGHT, Unit::Count, "HTTP requests being served");
    metrics::describe_counter!(
        ANALYZE_INPUTS_TOTAL,
        Unit::Count,
        "Inputs analysed, by modality and outcome (scored, abstained, error)"
    );
    metrics::describe_histogram!(ANALYZE_INPUT_BYTES, Unit::Bytes, "Size of each input");
    metrics::describe_gauge!(JOBS, Unit::Count, "Async jobs in the job store, by status");
    metrics::describe_gauge!(STREAMS_ACTIVE, Unit::Count, "Live audio streams open");
    metrics::describe_counter!(
        STREAM_SEGMENTS_TOTAL,
        Unit::Count,
        "Live audio stream segments, by outcome (scored, skipped, error)"
    );
    metrics::describe_gauge!(JOB_BYTES, Unit::Bytes, "Bytes the async job store holds");
    metrics::describe_counter!(
        STREAMS_TOTAL,
        Unit::Count,
        "Live audio streams ended, by outcome"
    );
    metrics::describe_histogram!(
        STREAM_DURATION_SECONDS,
        Unit::Seconds,
        "Wall-clock length of live audio streams"
    );
    metrics::describe_counter!(
        ADMISSION_REFUSED_TOTAL,
        Unit::Count,
        "Requests refused before or while their body was read, by reason"
    );
    metrics::describe_counter!(
        HTTP_BODY_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes read from request bodies"
    );
    metrics::describe_counter!(
        SPILLED_INPUTS_TOTAL,
        Unit::Count,
        "Inputs moved to the spill area"
    );
    metrics::describe_gauge!(SPILL_BYTES, Unit::Bytes, "Bytes in the spill area");
    metrics::describe_counter!(
        HTTP_CLIENT_DISCONNECTS_TOTAL,
        Unit::Count,
        "Requests whose client went away before the response was complete"
    );
    metrics::describe_gauge!(CONNECTIONS_ACTIVE, Unit::Count, "Open client connections");
    metrics::describe_counter!(CONNECTIONS_TOTAL, Unit::Count, "Connections accepted");
    metrics::describe_counter!(
        CONNECTIONS_TIMED_OUT_TOTAL,
        Unit::Count,
        "Connections closed by a server timeout, by reason"
    );
    metrics::describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        Unit::Count,
        "Connections refused at accept, by reason"
    );
    metrics::describe_counter!(
        AUTH_FAILURES_TOTAL,
        Unit::Count,
        "Requests with a missing or wrong API key"
    );
    metrics::describe_counter!(
        SHUTDOWN_DROPPED_TOTAL,
        Unit::Count,
        "Requests and jobs dropped at shutdown"
    );
    metrics::describe_counter!(
        JOB_STORE_ERRORS_TOTAL,
        Unit::Count,
        "Failed reads and writes of the durable async-job store"
    );
    metrics::describe_counter!(
        JOBS_RECOVERED_TOTAL,
        Unit::Count,
        "Unfinished async jobs run again after a restart"
    );
    metrics::describe_histogram!(
        STREAM_SEGMENT_LATENCY_SECONDS,
        Unit::Seconds,
        "Added latency of a live segment score (last sample in -> score out)"
    );
}
