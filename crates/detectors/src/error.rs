//! Errors of the analysis layer.

use candor_core::{ProblemKind, ToProblem};

/// Why an input could not be analysed at all. (A detector that cannot
/// decide does not error: it abstains inside an `AnalysisResult`.)
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The input was rejected before decoding (size, emptiness, type).
    #[error("{message}")]
    Input {
        kind: ProblemKind,
        code: &'static str,
        message: String,
    },
    /// The request's deadline passed.
    #[error("deadline exceeded after {elapsed_ms:.0} ms")]
    Deadline { elapsed_ms: f64 },
    /// Something broke inside Candor.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ToProblem for AnalyzeError {
    fn problem_kind(&self) -> ProblemKind {
        match self {
            AnalyzeError::Input { kind, .. } => *kind,
            AnalyzeError::Deadline { .. } => ProblemKind::DeadlineExceeded,
            AnalyzeError::Internal(_) => ProblemKind::Internal,
        }
    }

    fn problem_code(&self) -> Option<&'static str> {
        match self {
            AnalyzeError::Input { code, .. } => Some(code),
            AnalyzeError::Deadline { .. } => Some("deadline"),
            AnalyzeError::Internal(_) => None,
        }
    }
}
