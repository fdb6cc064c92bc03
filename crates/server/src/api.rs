//! Request and response bodies of the HTTP API (also used by `candor scan
//! --json`, so the CLI and the API share one schema).

use candor_core::{AnalysisResult, CaseSummary, Modality, ToProblem};
use candor_detectors::AnalyzerInfo;
use serde::{Deserialize, Serialize};

use crate::error::Problem;

/// One entry of `results`, in the order the inputs were sent.
///
/// Either an [`AnalysisResult`] or, when that input could not be analysed at
/// all (undecodable, unsupported type, over a limit), an [`InputProblem`].
/// One bad input does not fail a request with several inputs: the request
/// answers 200 and the bad input's entry is a problem. Tell them apart by
/// the `status` field, which only problems have (results have `modality`).
/// A request with a single input that fails answers with that problem as
/// `application/problem+json` and its HTTP status instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Item {
    /// The input was analysed (scored or abstained).
    Result(Box<AnalysisResult>),
    /// The input could not be analysed.
    Error(InputProblem),
}

impl Item {
    pub fn as_result(&self) -> Option<&AnalysisResult> {
        match self {
            Item::Result(r) => Some(r),
            Item::Error(_) => None,
        }
    }

    pub fn as_error(&self) -> Option<&InputProblem> {
        match self {
            Item::Result(_) => None,
            Item::Error(e) => Some(e),
        }
    }
}

/// The problem for one input of a request (RFC 9457 fields, plus which input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InputProblem {
    /// Problem type URI, e.g. `urn:candor:problem:unsupported-media-type`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    /// The HTTP status this problem would have on its own.
    pub status: u16,
    pub detail: String,
    /// Machine-readable detail code, e.g. `unknown_type`, `max_upload_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Position of the input in the request (0-based).
    pub index: usize,
    /// File or field name of the input, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl InputProblem {
    pub fn from_error<E: ToProblem + ?Sized>(err: &E, index: usize, name: Option<String>) -> Self {
        let p = Problem::from_error(err);
        InputProblem {
            type_uri: p.type_uri,
            title: p.title,
            status: p.status,
            detail: p.detail,
            code: p.code,
            index,
            name,
        }
    }

    /// The stand-alone problem (for single-input requests and failed jobs).
    pub fn to_problem(&self) -> Problem {
        Problem {
            type_uri: self.type_uri.clone(),
            title: self.title.clone(),
            status: self.status,
            detail: self.detail.clone(),
            instance: None,
            request_id: None,
            code: self.code.clone(),
        }
    }
}

/// Body of a successful analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnalyzeResponse {
    /// Id of the request (also the `X-Request-Id` header).
    pub request_id: String,
    /// One entry per input, in request order.
    pub results: Vec<Item>,
    /// One summary for all inputs of the applicant, computed from the
    /// inputs that were analysed. Present by default when the request has
    /// two or more inputs (`case=true` / `case=false` to force).
    pub case: Option<CaseSummary>,
    /// Other applicants whose face or resume matches these inputs (only
    /// with an `applicant_id` and the identity registry switched on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<candor_identity::Match>,
}

impl AnalyzeResponse {
    /// Assemble a response; `case`: `Some(force)` or `None` for "when ≥ 2
    /// inputs".
    pub fn new(request_id: String, results: Vec<Item>, case: Option<bool>) -> Self {
        let want_case = case.unwrap_or(results.len() >= 2);
        let case = want_case.then(|| {
            let ok: Vec<AnalysisResult> = results
                .iter()
                .filter_map(|i| i.as_result().cloned())
                .collect();
            CaseSummary::from_results(&ok)
        });
        AnalyzeResponse {
            request_id,
            results,
            case,
            matches: Vec::new(),
        }
    }
}

/// Query parameters of the analyze routes.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyzeQuery {
    /// `live`, `upload` (default for synchronous calls) or `bulk` (default
    /// for `async=true`). Also settable with the `X-Candor-Priority` header;
    /// the query parameter wins.
    pub priority: Option<String>,
    /// Deadline for the whole request in milliseconds, capped by the
    /// server's maximum. Default: the server's request timeout.
    pub timeout_ms: Option<u64>,
    /// `true`: answer `202 Accepted` with a job to poll instead of waiting.
    #[serde(rename = "async")]
    pub is_async: Option<bool>,
    /// Include (`true`) or omit (`false`) the `case` summary. Default:
    /// included when the request has two or more inputs.
    pub case: Option<bool>,
    /// `true`: a reviewer's case. Implies `async=true` and `case=true`;
    /// the inputs and the result are kept (for the configured case
    /// retention, not only the job TTL) so that the review pages at
    /// `/review/cases/{job_id}` can show them. Needs the durable job store.
    pub review: Option<bool>,
    /// The applicant the inputs belong to (1-128 printable characters),
    /// shown on the case page and in review exports.
    pub applicant_id: Option<String>,
}

/// JSON body: one pasted text (`text`, optional `name`) or several
/// (`inputs`). Exactly one of `text` and `inputs` must be given.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeJson {
    /// Pasted resume text.
    pub text: Option<String>,
    /// Name shown in results for `text`.
    pub name: Option<String>,
    /// Several pasted texts.
    pub inputs: Option<Vec<TextInput>>,
}

/// One pasted text.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextInput {
    pub text: String,
    pub name: Option<String>,
}

/// Documentation-only schema of the multipart form.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct AnalyzeForm {
    /// Any number of file parts (images, audio/video, PDF/DOCX/TXT); part
    /// names are free, file names are kept in the results.
    #[schema(value_type = Vec<String>, format = Binary)]
    pub files: Vec<Vec<u8>>,
    /// Pasted resume text; may be repeated. Empty `text` fields are ignored.
    pub text: Option<String>,
}

/// `GET /health`, `GET /ready` body.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusBody {
    pub status: String,
}

/// Server-side limits and settings shown by `/info`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServerInfo {
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: u64,
    pub max_inputs_per_request: usize,
    /// Inputs analysed at once across all requests; beyond it requests get 429.
    pub max_concurrent_analyses: usize,
    /// Inputs of one request analysed at once.
    pub request_parallelism: usize,
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    pub max_jobs: usize,
    /// Bytes the job store may hold (inputs of unfinished jobs, responses
    /// of finished ones).
    pub max_job_bytes: u64,
    pub job_ttl_seconds: u64,
    /// Live audio streams at once (their own slots).
    pub max_concurrent_streams: usize,
    pub stream_idle_timeout_ms: u64,
    pub stream_max_duration_seconds: u64,
    pub header_read_timeout_ms: u64,
    pub keep_alive_timeout_ms: u64,
    pub body_idle_timeout_ms: u64,
    pub max_connections: usize,
    /// 0: no per-address cap.
    pub max_connections_per_client: usize,
    /// Inputs larger than this wait on disk.
    pub spill_threshold_bytes: u64,
    pub spill_max_bytes: u64,
    /// Bytes of spilled inputs back in memory at once (being analysed).
    pub max_loaded_input_bytes: u64,
    pub max_file_name_bytes: usize,
    /// Wrong API keys per address and window before it is refused (0: off).
    pub auth_max_failures: u32,
    pub auth_failure_window_seconds: u64,
    /// Whether API keys are required.
    pub auth_enabled: bool,
    /// Paths served without an API key (besides `/` and `/docs`).
    pub auth_exempt_paths: Vec<String>,
    /// Whether the Swagger UI assets are installed for `/docs`.
    pub docs_assets_installed: bool,
}

/// `GET /info` body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceInfo {
    pub service: String,
    pub version: String,
    /// Git commit the binary was built from, when the build provided it
    /// (`CANDOR_GIT_COMMIT` at build time).
    pub git_commit: Option<String>,
    pub uptime_seconds: f64,
    pub analyzer: AnalyzerInfo,
    pub server: ServerInfo,
}

/// Modality names accepted in `/v1/analyze/{modality}`.
pub fn parse_modality(s: &str) -> Option<Modality> {
    Modality::ALL.into_iter().find(|m| m.as_str() == s)
}
