//! The engine's error type and its mapping onto [`ProblemKind`].

use std::path::PathBuf;
use std::sync::Arc;

use candor_core::{ProblemKind, ToProblem};

/// Everything that can go wrong in the engine.
///
/// The type is `Clone` so that one backend failure can be answered to every
/// request of a batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The model's queue is full; the request was not enqueued.
    #[error("model `{model}` is overloaded: queue full ({capacity} requests waiting)")]
    Overloaded {
        /// Model id.
        model: String,
        /// Queue capacity that was reached.
        capacity: usize,
    },
    /// The request's deadline passed before it was run.
    #[error("deadline exceeded for model `{model}` after {waited_ms:.1} ms in queue")]
    DeadlineExceeded {
        /// Model id.
        model: String,
        /// Time spent in the queue, in milliseconds.
        waited_ms: f64,
    },
    /// The model is not loaded (not in the manifest, not selected, or its
    /// file is absent).
    #[error("model `{0}` is not loaded")]
    ModelNotLoaded(String),
    /// A model file listed in the manifest does not exist.
    #[error("model file for `{model}` not found at {} (run scripts/setup.sh)", path.display())]
    ModelFileMissing {
        /// Model id.
        model: String,
        /// Where the file was looked for.
        path: PathBuf,
    },
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("ONNX Runtime library not available: {0}")]
    RuntimeMissing(String),
    /// A model file's SHA-256 differs from the manifest.
    #[error("sha256 mismatch for {}: expected {expected}, actual {actual}", path.display())]
    HashMismatch {
        /// The file that was hashed.
        path: PathBuf,
        /// Digest recorded in the manifest.
        expected: String,
        /// Digest of the file on disk.
        actual: String,
    },
    /// The manifest is unreadable or inconsistent.
    #[error("model manifest {}: {message}", path.display())]
    Manifest {
        /// Manifest path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An I/O error while reading a file.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The backend failed to load or run a model.
    #[error("backend failure in model `{model}`: {message}")]
    Backend {
        /// Model id.
        model: String,
        /// The backend's message.
        message: String,
    },
    /// The inputs do not fit the model (names, dtypes, shapes).
    #[error("bad input for model `{model}`: {message}")]
    BadInput {
        /// Model id.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// The model's workers have stopped (engine shutting down).
    #[error("model `{0}` is shutting down")]
    ShuttingDown(String),
    /// A tokenizer could not be built or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

impl EngineError {
    /// Shorthand for [`EngineError::Backend`].
    pub fn backend(model: impl Into<String>, message: impl std::fmt::Display) -> Self {
        EngineError::Backend {
            model: model.into(),
            message: message.to_string(),
        }
    }

    /// Shorthand for [`EngineError::BadInput`].
    pub fn bad_input(model: impl Into<String>, message: impl Into<String>) -> Self {
        EngineError::BadInput {
            model: model.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// Label used for the `outcome` of `candor_engine_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            EngineError::Overloaded { .. } => "overloaded",
            EngineError::DeadlineExceeded { .. } => "deadline",
            _ => "error",
        }
    }
}

impl ToProblem for EngineError {
    fn problem_kind(&self) -> ProblemKind {
        match self {
            EngineError::Overloaded { .. } => ProblemKind::Overloaded,
            EngineError::DeadlineExceeded { .. } => ProblemKind::DeadlineExceeded,
            EngineError::ModelNotLoaded(_)
            | EngineError::ModelFileMissing { .. }
            | EngineError::RuntimeMissing(_)
            | EngineError::ShuttingDown(_) => ProblemKind::NotReady,
            EngineError::BadInput { .. } => ProblemKind::BadRequest,
            EngineError::HashMismatch { .. }
            | EngineError::Manifest { .. }
            | EngineError::Io { .. }
            | EngineError::Backend { .. }
            | EngineError::Tokenizer(_) => ProblemKind::Internal,
        }
    }

    fn problem_code(&self) -> Option<&'static str> {
        Some(match self {
            EngineError::Overloaded { .. } => "queue_full",
            EngineError::DeadlineExceeded { .. } => "deadline",
            EngineError::ModelNotLoaded(_) => "model_not_loaded",
            EngineError::ModelFileMissing { .. } => "model_file_missing",
            EngineError::RuntimeMissing(_) => "runtime_missing",
            EngineError::HashMismatch { .. } => "hash_mismatch",
            EngineError::Manifest { .. } => "manifest",
            EngineError::Io { .. } => "io",
            EngineError::Backend { .. } => "backend",
            EngineError::BadInput { .. } => "bad_input",
            EngineError::ShuttingDown(_) => "shutting_down",
            EngineError::Tokenizer(_) => "tokenizer",
        })
    }
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_contract() {
        let e = EngineError::Overloaded {
            model: "m".into(),
            capacity: 1,
        };
        assert_eq!(e.problem_kind(), ProblemKind::Overloaded);
        let e = EngineError::DeadlineExceeded {
            model: "m".into(),
            waited_ms: 1.0,
        };
        assert_eq!(e.problem_kind(), ProblemKind::DeadlineExceeded);
        assert_eq!(
            EngineError::RuntimeMissing("x".into()).problem_kind(),
            ProblemKind::NotReady
        );
        assert_eq!(
            EngineError::ModelNotLoaded("x".into()).problem_kind(),
            ProblemKind::NotReady
        );
        let e = EngineError::HashMismatch {
            path: "a".into(),
            expected: "1".into(),
            actual: "2".into(),
        };
        assert_eq!(e.problem_kind(), ProblemKind::Internal);
        assert_eq!(
            EngineError::backend("m", "boom").problem_kind(),
            ProblemKind::Internal
        );
        assert_eq!(
            EngineError::bad_input("m", "shape").problem_kind(),
            ProblemKind::BadRequest
        );
    }
}
