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
    metrics::describe_histogram!(
        STREAM_SEGMENT_LATENCY_SECONDS,
        Unit::Seconds,
        "Added latency of a live segment score (last sample in -> score out)"
    );
}
