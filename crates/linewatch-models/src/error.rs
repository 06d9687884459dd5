//! The crate's error type.

use std::path::PathBuf;

/// Errors of the models crate.
///
/// Classified by cause: [`ModelError::InvalidConfig`] and [`ModelError::InvalidInput`] are the
/// caller's to fix; [`ModelError::Checkpoint`] means a stored model must not be served;
/// [`ModelError::Tensor`] and [`ModelError::Diverged`] come from the numerics.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// Input rows, labels or weights do not fit the model (shape, non-finite label, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Too few rows to train (or to split into training and held-out parts).
    #[error("not enough data: {0}")]
    InsufficientData(String),
    /// Training produced a non-finite loss before any finite held-out loss was seen.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// A device string that is not `auto`, `cpu`, `cuda` or `cuda:N`.
    #[error("invalid device spec {0:?}: expected auto, cpu, cuda or cuda:N")]
    BadDeviceSpec(String),
    /// The requested device cannot be used (no `cuda` feature, no GPU, ...).
    #[error("device unavailable: {0}")]
    DeviceUnavailable(String),
    /// A checkpoint directory could not be written or read back as a valid model.
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: CheckpointError,
    },
    /// An error from candle (tensor op, device, dtype).
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// What is wrong with a checkpoint (see [`ModelError::Checkpoint`]).
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// `model.json` is not valid JSON for the metadata schema.
    #[error("bad metadata JSON: {0}")]
    BadJson(#[from] serde_json::Error),
    /// The metadata declares a format version this build does not read.
    #[error("unsupported format version {found} (this build reads {supported})")]
    UnsupportedFormat {
        /// Version found in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The checkpoint holds another kind of model than the one asked for.
    #[error("wrong model kind: expected {expected}, found {found}")]
    WrongKind {
        /// Kind asked for.
        expected: String,
        /// Kind found in the metadata.
        found: String,
    },
    /// `model.safetensors` cannot be parsed (truncated, corrupt header, ...).
    #[error("corrupt weights file: {0}")]
    CorruptWeights(String),
    /// A tensor the configuration requires is absent.
    #[error("missing tensor {0:?}")]
    MissingTensor(String),
    /// A tensor's shape disagrees with the configuration.
    #[error("tensor {name:?} has shape {found:?}, configuration requires {expected:?}")]
    ShapeMismatch {
        /// Tensor name.
        name: String,
        /// Shape required by the configuration.
        expected: Vec<usize>,
        /// Shape stored.
        found: Vec<usize>,
    },
    /// Metadata values are inconsistent (lengths, non-finite numbers, bad config).
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),
}

/// Result alias of the crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
