//! The crate's error type.

use std::path::PathBuf;

use arrow_schema::{ArrowError, DataType};
use parquet::errors::ParquetError;

/// Result alias for this crate.
pub type Result<T, E = SinkError> = std::result::Result<T, E>;

/// Everything that can go wrong while writing or reading the Parquet tables.
///
/// Classified with [`SinkError::is_retryable`]: I/O failures (disk full, permissions
/// fixed by an operator) may succeed on a later attempt with the same input; the others
/// are caused by the input or the configuration and will fail again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The configuration cannot be used (user error).
    #[error("invalid sink configuration: {0}")]
    InvalidConfig(String),

    /// A batch lacks a column the table needs to partition its rows.
    #[error("table `{table}`: batch has no column `{column}` (required for partitioning)")]
    MissingColumn {
        /// The table being written.
        table: String,
        /// The missing column.
        column: String,
    },

    /// A required column exists but has an unusable type.
    #[error("table `{table}`: column `{column}` has type {found}, expected {expected}")]
    WrongColumnType {
        /// The table being written.
        table: String,
        /// The offending column.
        column: String,
        /// What the sink accepts.
        expected: &'static str,
        /// What the batch holds.
        found: DataType,
    },

    /// The batches handed to one `write_file` call do not share one schema.
    #[error("table `{table}`: batch {index} has a different schema from batch 0")]
    SchemaMismatch {
        /// The table being written.
        table: String,
        /// Index of the first batch that differs.
        index: usize,
    },

    /// A partition column holds a null: the row cannot be placed in a partition.
    #[error("table `{table}`: column `{column}` is null in batch {batch} row {row}")]
    NullPartitionValue {
        /// The table being written.
        table: String,
        /// The partition source column.
        column: String,
        /// Batch index within the call.
        batch: usize,
        /// Row index within the batch.
        row: usize,
    },

    /// A line value cannot be one `line=<value>` path component: its encoding is longer
    /// than [`MAX_PARTITION_VALUE_LEN`](crate::MAX_PARTITION_VALUE_LEN) bytes. The whole
    /// `write_file` call fails (nothing is written under another name); not retryable.
    #[error(
        "table `{table}`: line {line:?} in column `{column}` (batch {batch} row {row}) cannot be \
         a partition folder name: {source}"
    )]
    PartitionValueTooLong {
        /// The table being written.
        table: String,
        /// The partition source column.
        column: String,
        /// The line value, whole.
        line: String,
        /// Batch index within the call.
        batch: usize,
        /// Row index within the batch.
        row: usize,
        /// The encoded length and the limit.
        #[source]
        source: crate::PartitionValueTooLong,
    },

    /// A timestamp is outside the range of calendar dates.
    #[error("table `{table}`: timestamp {value} in column `{column}` is out of range")]
    TimestampOutOfRange {
        /// The table being written.
        table: String,
        /// The timestamp column.
        column: String,
        /// The raw stored value.
        value: i64,
    },

    /// The Kafka partition / offset range cannot name a file.
    #[error("invalid file name: {0}")]
    InvalidFileName(String),

    /// A key-value metadata key collides with one the writer owns.
    #[error("key-value metadata key `{0}` is reserved")]
    ReservedMetadataKey(String),

    /// A file-system operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The Parquet writer or reader failed.
    #[error("Parquet error on {path}: {source}")]
    Parquet {
        /// The file or object involved (a path or URL).
        path: String,
        /// The underlying error.
        #[source]
        source: ParquetError,
    },

    /// An Arrow compute kernel failed (splitting rows by partition).
    #[error("Arrow error: {0}")]
    Arrow(#[from] ArrowError),

    /// A `sink.out` or models location that cannot be used: an unparsable URL, an unknown
    /// scheme, or a store the environment cannot configure.
    #[error("invalid storage location {location:?}: {reason}")]
    InvalidLocation {
        /// As written.
        location: String,
        /// Why.
        reason: String,
    },

    /// No file or object at this location.
    #[error("{0} does not exist")]
    NotFound(String),

    /// An object-store request failed (after the client's own retries).
    #[error("object store error on {location}: {message}")]
    Store {
        /// The object or prefix (URL).
        location: String,
        /// The client's error, whose text already holds its causes (kept as text: chaining
        /// it as a source printed each cause once per level).
        message: String,
    },

    /// The object-store runtime could not start, or one of its tasks panicked.
    #[error("{0}")]
    Runtime(String),
}

impl SinkError {
    /// Whether retrying the same call may succeed (I/O and object-store errors).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Io { .. } | SinkError::Store { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SinkError {
        let path = path.into();
        move |source| SinkError::Io { path, source }
    }

    pub(crate) fn parquet(path: impl std::fmt::Display) -> impl FnOnce(ParquetError) -> SinkError {
        let path = path.to_string();
        move |source| SinkError::Parquet { path, source }
    }
}
