//! Errors of the bulk layer.

use candor_core::{ProblemKind, ToProblem};

/// What can go wrong in the bulk layer. Errors of one *item* (a missing or
/// corrupt file, an input the analyzer refuses) are not errors here: they
/// are recorded on the item and the batch goes on.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// The manifest (or directory tree) cannot be used.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The request asks for something the configuration refuses (a path
    /// outside the allowed roots, too many items).
    #[error("{message}")]
    Limit { code: &'static str, message: String },
    /// A bad argument (unknown format, malformed id).
    #[error("{0}")]
    BadRequest(String),
    /// No such batch (or one that belongs to another API key).
    #[error("no batch `{0}`")]
    NotFound(String),
    /// The queue URL cannot be used.
    #[error("queue {url}: {message}")]
    Queue { url: String, message: String },
    /// The database failed (connection lost, constraint, I/O).
    #[error("queue database: {0}")]
    Database(#[from] sqlx::Error),
    /// The queue engine failed.
    #[error("queue engine: {0}")]
    Engine(String),
    /// Reading a manifest or a directory failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl BulkError {
    pub(crate) fn engine(e: impl std::fmt::Display) -> Self {
        BulkError::Engine(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for BulkError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        BulkError::Engine(format!("schema migration: {e}"))
    }
}

impl ToProblem for BulkError {
    fn problem_kind(&self) -> ProblemKind {
        match self {
            BulkError::Manifest(_) => ProblemKind::UnprocessableInput,
            BulkError::Limit { .. } => ProblemKind::PayloadTooLarge,
            BulkError::BadRequest(_) => ProblemKind::BadRequest,
            BulkError::NotFound(_) => ProblemKind::NotFound,
            BulkError::Queue { .. }
            | BulkError::Database(_)
            | BulkError::Engine(_)
            | BulkError::Io { .. } => ProblemKind::Internal,
        }
    }

    fn problem_code(&self) -> Option<&'static str> {
        match self {
            BulkError::Manifest(_) => Some("manifest"),
            BulkError::Limit { code, .. } => Some(code),
            BulkError::BadRequest(_) => Some("bad_request"),
            BulkError::NotFound(_) => Some("unknown_batch"),
            BulkError::Queue { .. } => Some("queue_url"),
            BulkError::Database(_) => Some("queue_database"),
            BulkError::Engine(_) => Some("queue_engine"),
            BulkError::Io { .. } => Some("manifest_io"),
        }
    }
}

pub type Result<T, E = BulkError> = std::result::Result<T, E>;
