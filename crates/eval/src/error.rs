//! Errors of the evaluation layer.

use std::path::PathBuf;

/// Everything that can go wrong while loading sets, computing metrics,
/// fitting calibrations or writing reports.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest row is malformed. `line` is 1-based.
    #[error("{path}:{line}: {message}")]
    Manifest {
        /// The manifest file (or `<memory>`).
        path: String,
        /// 1-based line number of the offending row.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A manifest or directory held no items at all.
    #[error("{0}: labelled set is empty")]
    EmptySet(String),
    /// The requested split has no usable rows.
    #[error("no scored rows in split `{split}`; cannot fit a calibration")]
    NoRowsInSplit {
        /// The split that was asked for.
        split: String,
    },
    /// The requested split holds only one class.
    #[error(
        "split `{split}` has {n_authentic} authentic and {n_manipulated} manipulated scored rows; both classes are needed"
    )]
    OneClass {
        /// The split that was asked for.
        split: String,
        /// Authentic scored rows in it.
        n_authentic: usize,
        /// Manipulated scored rows in it.
        n_manipulated: usize,
    },
    /// A calibration was asked to be fitted on the test split.
    #[error("refusing to fit a calibration on the `test` split: use `calib` (or `train`)")]
    FitOnTestSplit,
    /// Input values are out of range (NaN scores, bad targets, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A plot could not be drawn or encoded.
    #[error("plot {name}: {message}")]
    Plot {
        /// File name of the plot.
        name: String,
        /// What failed.
        message: String,
    },
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
