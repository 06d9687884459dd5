//! How a table is laid out and encoded: [`TableConfig`], its defaults and the path keys.

use arrow_schema::{DataType, Schema};
use parquet::basic::ZstdLevel;

use crate::error::{Result, SinkError};
use crate::sanitize::sanitize_partition_value;

/// Default zstd level: fast to write, a good ratio for float features.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Default row group size in rows, sized for analytical scans (DuckDB / Polars / Spark
/// parallelise over row groups; ~128k rows of ~30 columns is a few MB compressed).
pub const DEFAULT_MAX_ROW_GROUP_ROWS: usize = 128 * 1024;
/// Default name of the column that gives the `line=` partition.
pub const DEFAULT_LINE_COLUMN: &str = "line";
/// Prefix of in-progress files. Hidden (leading dot) and not ending in `.parquet`, so
/// neither Spark/Hadoop nor a `**/*.parquet` glob picks them up.
pub const TMP_PREFIX: &str = ".tmp-";

pub(super) const DATE_KEY: &str = "date";

/// Sanitised (date, line) path values of one partition.
pub(super) type PartitionKey = (String, String);
pub(super) const LINE_KEY: &str = "line";

/// How a table is laid out and encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    /// Table directory name under the output root, e.g. `scores` or `alerts`.
    /// Must be a plain name: `[A-Za-z0-9_-]` (after an optional inner `.`), not empty.
    pub table: String,
    /// Timestamp column whose UTC date gives the `date=` partition, e.g. `window_start`.
    pub timestamp_column: String,
    /// Utf8 column whose value gives the `line=` partition (default `line`).
    pub line_column: String,
    /// zstd compression level, 1..=22 (default 3).
    pub zstd_level: i32,
    /// Maximum rows per row group, > 0 (default 131072).
    pub max_row_group_rows: usize,
    /// Keep the `line` column inside the files as well as in the path (default true).
    ///
    /// The contract says every row has `line`; a single file read without hive
    /// partitioning still carries it. DuckDB and Spark accept a column that is both in
    /// the file and in the path (the path value wins); readers that reject duplicates
    /// (older DataFusion) can turn this off.
    pub keep_partition_columns: bool,
}

impl TableConfig {
    /// A config with the defaults for everything but the table name and timestamp column.
    pub fn new(table: impl Into<String>, timestamp_column: impl Into<String>) -> Self {
        TableConfig {
            table: table.into(),
            timestamp_column: timestamp_column.into(),
            line_column: DEFAULT_LINE_COLUMN.to_owned(),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            max_row_group_rows: DEFAULT_MAX_ROW_GROUP_ROWS,
            keep_partition_columns: true,
        }
    }

    /// Pure validation of the settings.
    pub fn validate(&self) -> Result<()> {
        let plain = self
            .table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !plain || sanitize_partition_value(&self.table).ok().as_ref() != Some(&self.table) {
            return Err(SinkError::InvalidConfig(format!(
                "table name {:?} must be a non-empty plain name ([A-Za-z0-9._-], no leading, \
                 trailing or double dot)",
                self.table
            )));
        }
        if self.timestamp_column.is_empty() || self.line_column.is_empty() {
            return Err(SinkError::InvalidConfig(
                "timestamp_column and line_column must be set".to_owned(),
            ));
        }
        if self.max_row_group_rows == 0 {
            return Err(SinkError::InvalidConfig(
                "max_row_group_rows must be > 0".to_owned(),
            ));
        }
        ZstdLevel::try_new(self.zstd_level).map_err(|e| {
            SinkError::InvalidConfig(format!("zstd_level {}: {e}", self.zstd_level))
        })?;
        Ok(())
    }

    /// Checks that `schema` has the columns this table partitions by: the line column as a
    /// string (Utf8, LargeUtf8 or Utf8View) and the timestamp column as a Timestamp (any
    /// unit; the date is taken in UTC).
    pub fn validate_schema(&self, schema: &Schema) -> Result<()> {
        let line = self.find(schema, &self.line_column)?;
        if !matches!(
            line.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            return Err(self.wrong_type(line, "Utf8"));
        }
        let ts = self.find(schema, &self.timestamp_column)?;
        if !matches!(ts.data_type(), DataType::Timestamp(_, _)) {
            return Err(self.wrong_type(ts, "Timestamp(Millisecond, \"UTC\")"));
        }
        Ok(())
    }

    pub(super) fn find<'a>(
        &self,
        schema: &'a Schema,
        column: &str,
    ) -> Result<&'a arrow_schema::Field> {
        schema
            .field_with_name(column)
            .map_err(|_| SinkError::MissingColumn {
                table: self.table.clone(),
                column: column.to_owned(),
            })
    }

    pub(super) fn wrong_type(
        &self,
        field: &arrow_schema::Field,
        expected: &'static str,
    ) -> SinkError {
        SinkError::WrongColumnType {
            table: self.table.clone(),
            column: field.name().clone(),
            expected,
            found: field.data_type().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(
            TableConfig::new("scores", "window_start")
                .validate()
                .is_ok()
        );
        for bad in ["", "..", "a/b", ".hidden", "x y"] {
            assert!(TableConfig::new(bad, "ts").validate().is_err(), "{bad}");
        }
        let mut c = TableConfig::new("scores", "window_start");
        c.max_row_group_rows = 0;
        assert!(c.validate().is_err());
        let mut c = TableConfig::new("scores", "window_start");
        c.zstd_level = 99;
        assert!(matches!(c.validate(), Err(SinkError::InvalidConfig(_))));
    }
}
