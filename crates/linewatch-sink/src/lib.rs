//! # linewatch-sink
//!
//! Durable Parquet output for linewatch: scores and alerts as hive-partitioned tables
//! (`OUT/scores/`, `OUT/alerts/`) laid out as
//! `date=YYYY-MM-DD/line=<line>/part-<partition>-<first offset>-<last offset>.parquet`,
//! readable by DuckDB, Polars and Spark
//! (`read_parquet('OUT/scores/**/*.parquet', hive_partitioning = true)`).
//!
//! ## Role
//!
//! - [`Location`] is where a table lives: a local directory or a prefix in an object store
//!   (`s3://`, `gs://`, `az://`, through the `object_store` crate), with atomic puts.
//! - [`ParquetTable::write_file`] splits Arrow [`RecordBatch`](arrow_array::RecordBatch)es
//!   by partition and writes one zstd-compressed file per partition, atomically: locally a
//!   temporary name, `fsync`, rename, directory `fsync`; on an object store one PUT (or a
//!   multipart upload for a large file), visible only once complete. A file's name comes from the Kafka partition
//!   and offset range it holds ([`FileName`]), so a rewrite after a crash replaces rather
//!   than duplicates. Its rename is what releases the offsets it holds for commit.
//! - Key-value metadata goes into each file's footer (the runtime keeps per-machine
//!   progress there) and is read back cheaply with [`read_footer_metadata`].
//! - [`RollPolicy`] is the pure decision of when buffered rows become a file.
//! - [`sanitize_partition_value`] makes values from messages safe path components that
//!   decode back to exactly the value (or refuses one too long for a path component).
//! - [`list_files`], [`read_all`] and [`read_file`] read tables back (recovery, tests,
//!   tools).
//!
//! ## Neighbours
//!
//! Upstream, `linewatch-runtime` builds the score and alert batches (their schemas are
//! its business; this crate only needs a Utf8 `line` column and a timestamp column, see
//! [`TableConfig::validate_schema`]), buffers closed windows per Kafka partition, asks
//! [`RollPolicy::should_roll`], calls [`ParquetTable::write_file`] and commits offsets once
//! it returns. The windower (`linewatch-window`) and models (`linewatch-models`) never see
//! this crate. Downstream readers are DuckDB, Polars, Spark and `linewatch train`.
//!
//! ## Layout
//!
//! - `location`: [`Location`], local or object-store storage, atomic puts, listing.
//! - `table`: [`ParquetTable`], [`TableConfig`], writing, listing and reading.
//! - `file_name`: [`FileName`], the offset-derived file names.
//! - `sanitize`: partition value encoding.
//! - `roll`: [`RollPolicy`].
//! - `error`: [`SinkError`].

mod error;
mod file_name;
pub mod location;
mod roll;
mod sanitize;
mod table;

pub use error::{Result, SinkError};
pub use file_name::FileName;
pub use location::{Listed, Location, MULTIPART_THRESHOLD};
pub use roll::{DEFAULT_ROLL_MAX_AGE, DEFAULT_ROLL_MAX_BYTES, DEFAULT_ROLL_MAX_ROWS, RollPolicy};
pub use sanitize::{
    HIVE_NULL_PARTITION, MAX_PARTITION_VALUE_LEN, PartitionValueTooLong, decode_partition_value,
    sanitize_partition_value,
};
pub use table::{
    DEFAULT_LINE_COLUMN, DEFAULT_MAX_ROW_GROUP_ROWS, DEFAULT_ZSTD_LEVEL, FileInfo, ParquetTable,
    TMP_PREFIX, TableConfig, WrittenFile, list_files, read_all, read_file, read_footer_metadata,
};
