//! [`ReportError`].

use std::path::PathBuf;

use arrow_schema::DataType;

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The output file name does not end in `.png` or `.svg`.
    #[error("unsupported output format for {0}: the file name must end in .png or .svg")]
    UnsupportedFormat(PathBuf),
    /// The options are inconsistent (empty range, zero size, ...).
    #[error("invalid report options: {0}")]
    InvalidOptions(String),
    /// The scores table does not exist (no directory; on an object store, no file).
    #[error("scores table {0} does not exist (no directory, or no Parquet file under the URL)")]
    ScoresRootMissing(PathBuf),
    /// Listing or reading the Parquet table failed.
    #[error("reading the scores table: {0}")]
    Read(#[from] linewatch_sink::SinkError),
    /// A file of the scores table lacks a column the report needs.
    #[error("{path}: missing column {column:?}")]
    MissingColumn {
        /// The Parquet file.
        path: PathBuf,
        /// The column.
        column: &'static str,
    },
    /// A column of the scores table has a type the report cannot read.
    #[error("{path}: column {column:?} has type {found}, expected {expected}")]
    WrongColumnType {
        /// The Parquet file.
        path: PathBuf,
        /// The column.
        column: &'static str,
        /// What the report reads.
        expected: &'static str,
        /// What the file holds.
        found: DataType,
    },
    /// The machine has no scored windows in the requested range.
    #[error("machine {machine:?} has no rows in {root} {range}")]
    NoRows {
        /// The machine asked for.
        machine: String,
        /// The scores table.
        root: PathBuf,
        /// The time range, in words.
        range: String,
    },
    /// The embedded font could not be registered with the plotting library.
    #[error("registering the embedded font: {0}")]
    Font(String),
    /// Drawing or writing the picture failed.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The output file.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },
}
