//! Errors of the analysis layer.

use candor_core::{ProblemKind, ToProblem};
use candor_engine::EngineError;
use candor_media::MediaError;

/// Why an input could not be analysed at all. (A detector that cannot
/// decide does not error: it abstains inside an `AnalysisResult`.)
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The input could not be decoded (too large, wrong type, corrupt...).
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The model engine refused or failed (overloaded, not ready...).
    #[error(transparent)]
    Engine(#[from] EngineError),
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
            AnalyzeError::Media(e) => e.problem_kind(),
            AnalyzeError::Engine(e) => e.problem_kind(),
            AnalyzeError::Deadline { .. } => ProblemKind::DeadlineExceeded,
            AnalyzeError::Internal(_) => ProblemKind::Internal,
        }
    }

    fn problem_code(&self) -> Option<&'static str> {
        match self {
            AnalyzeError::Media(e) => e.problem_code(),
            AnalyzeError::Engine(e) => e.problem_code(),
            AnalyzeError::Deadline { .. } => Some("deadline"),
            AnalyzeError::Internal(_) => None,
        }
    }
}
