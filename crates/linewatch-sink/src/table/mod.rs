//! The partitioned table: atomic writes, listing and reading back.
//!
//! # Layout
//!
//! * this file: [`ParquetTable`], the write path (split rows by partition, encode, store
//!   atomically through [`Location::put`]);
//! * `config.rs`: [`TableConfig`] and the defaults;
//! * `files.rs`: the files of a table: listing, footers, reading back.

mod config;
mod files;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Schema, SchemaRef, TimeUnit};
use chrono::DateTime;
use parquet::arrow::ARROW_SCHEMA_META_KEY;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Result, SinkError};
use crate::file_name::FileName;
use crate::location::Location;
use crate::sanitize::sanitize_partition_value;

pub use config::{
    DEFAULT_LINE_COLUMN, DEFAULT_MAX_ROW_GROUP_ROWS, DEFAULT_ZSTD_LEVEL, TMP_PREFIX, TableConfig,
};
pub use files::{FileInfo, WrittenFile, list_files, read_all, read_file, read_footer_metadata};

use config::{DATE_KEY, LINE_KEY, PartitionKey};

/// A hive-partitioned Parquet table rooted at `OUT/<table>/` (a local directory or an
/// object-store prefix), laid out as `date=YYYY-MM-DD/line=<line>/part-….parquet`.
///
/// Writers of one table must write different Kafka partitions (the replicas of one consumer
/// group do): file names carry the partition, so they never replace each other's files.
/// Locally, opening removes temporary files left by a crash in this table.
#[derive(Debug, Clone)]
pub struct ParquetTable {
    root: Location,
    config: TableConfig,
}

impl ParquetTable {
    /// Opens `out/<config.table>/` (creating the local directory if needed) and removes
    /// local temporary files left by a crash. On an object store nothing is contacted here
    /// and there is nothing to clean: puts are atomic.
    pub fn open(out: impl Into<Location>, config: TableConfig) -> Result<Self> {
        config.validate()?;
        let root = out.into().join(&config.table);
        if let Some(dir) = root.as_local()
            && !dir.is_dir()
        {
            crate::location::create_dirs_durably(dir)?;
        }
        let table = ParquetTable { root, config };
        let removed = table.cleanup_tmp_files()?;
        if removed > 0 {
            tracing::warn!(
                table = %table.config.table,
                removed,
                "removed temporary files left by an interrupted write"
            );
        }
        Ok(table)
    }

    /// The table's root (`OUT/<table>`).
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// The configuration.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Where one partition's files go (values are encoded here); `None` when a value is
    /// too long for one path component (see [`sanitize_partition_value`]).
    pub fn partition_dir(&self, date: &str, line: &str) -> Option<Location> {
        Some(self.root.join(&format!(
            "{DATE_KEY}={}/{LINE_KEY}={}",
            sanitize_partition_value(date).ok()?,
            sanitize_partition_value(line).ok()?
        )))
    }

    /// Removes local `.tmp-*` files anywhere in the table; returns how many (always 0 on an
    /// object store, which has none).
    pub fn cleanup_tmp_files(&self) -> Result<usize> {
        if self.root.as_local().is_none() {
            return Ok(0);
        }
        let mut removed = 0;
        for f in self.root.list()? {
            let tmp = f
                .relative
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(TMP_PREFIX));
            if tmp {
                f.location.delete()?;
                tracing::debug!(path = %f.location, "removed temporary file");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Checks a schema against this table's partition columns.
    pub fn validate_schema(&self, schema: &Schema) -> Result<()> {
        self.config.validate_schema(schema)
    }

    /// Writes the rows of `batches` as one file per (date, line) partition, all named
    /// after `name`, with `kv_metadata` in every file's footer.
    ///
    /// Each file is encoded in memory and stored atomically ([`Location::put`]: locally a
    /// temporary name, fsync, rename over the final name, directory fsync; on an object
    /// store one PUT or a multipart upload), so a rewrite of the same [`FileName`] replaces
    /// the earlier file. When this returns `Ok`, every file is durable and the Kafka offsets
    /// in `name` may be committed. On error, files already stored stay; rewriting the same
    /// `name` later replaces them.
    ///
    /// Batches must share one schema holding the configured line and timestamp columns,
    /// with no nulls in either. Rows keep their order within each file. No rows, no files.
    pub fn write_file(
        &self,
        batches: &[RecordBatch],
        name: &FileName,
        kv_metadata: &[(String, String)],
    ) -> Result<Vec<WrittenFile>> {
        name.validate()?;
        if let Some((key, _)) = kv_metadata.iter().find(|(k, _)| k == ARROW_SCHEMA_META_KEY) {
            return Err(SinkError::ReservedMetadataKey(key.clone()));
        }
        let Some(first) = batches.first() else {
            return Ok(Vec::new());
        };
        let schema = first.schema();
        self.validate_schema(&schema)?;
        if let Some(index) = batches
            .iter()
            .position(|b| b.schema().fields() != schema.fields())
        {
            return Err(SinkError::SchemaMismatch {
                table: self.config.table.clone(),
                index,
            });
        }

        // Partition -> (batch index, row indices), sorted by (date, line).
        let mut parts: BTreeMap<PartitionKey, Vec<(usize, Vec<u32>)>> = BTreeMap::new();
        for (bi, batch) in batches.iter().enumerate() {
            for (key, rows) in self.split_rows(bi, batch)? {
                parts.entry(key).or_default().push((bi, rows));
            }
        }

        let file_schema = self.file_schema(&schema)?;
        let props = self.writer_properties(kv_metadata)?;
        let final_name = name.to_string();
        let mut written = Vec::with_capacity(parts.len());
        for ((date, line), pieces) in parts {
            let mut sub = Vec::with_capacity(pieces.len());
            for (bi, rows) in pieces {
                let batch = &batches[bi];
                let taken = if rows.len() == batch.num_rows() {
                    batch.clone()
                } else {
                    arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))?
                };
                sub.push(self.project(taken, &file_schema)?);
            }
            let target = self
                .root
                .join(&format!("{DATE_KEY}={date}/{LINE_KEY}={line}/{final_name}"));
            let file = write_parquet(target, file_schema.clone(), &sub, &props)?;
            tracing::debug!(
                table = %self.config.table,
                location = %file.location,
                rows = file.rows,
                bytes = file.bytes,
                "parquet file committed"
            );
            written.push(file);
        }
        Ok(written)
    }

    /// Lists this table's data files; see [`list_files`].
    pub fn list_files(&self) -> Result<Vec<FileInfo>> {
        list_files(&self.root)
    }

    /// Groups the rows of one batch by sanitised (date, line).
    fn split_rows(
        &self,
        bi: usize,
        batch: &RecordBatch,
    ) -> Result<BTreeMap<PartitionKey, Vec<u32>>> {
        let cfg = &self.config;
        let missing = |column: &str| SinkError::MissingColumn {
            table: cfg.table.clone(),
            column: column.to_owned(),
        };
        let ts = batch
            .column_by_name(&cfg.timestamp_column)
            .ok_or_else(|| missing(&cfg.timestamp_column))?;
        let line = batch
            .column_by_name(&cfg.line_column)
            .ok_or_else(|| missing(&cfg.line_column))?;
        let days = self.day_numbers(bi, ts.as_ref())?;
        let lines = line_values(line.as_ref());

        let mut date_cache: HashMap<i64, String> = HashMap::new();
        let mut line_cache: HashMap<&str, String> = HashMap::new();
        let mut out: BTreeMap<PartitionKey, Vec<u32>> = BTreeMap::new();
        for (row, day) in days.iter().enumerate() {
            let Some(raw_line) = lines.get(row).copied().flatten() else {
                return Err(SinkError::NullPartitionValue {
                    table: cfg.table.clone(),
                    column: cfg.line_column.clone(),
                    batch: bi,
                    row,
                });
            };
            let date = match date_cache.get(&day.0) {
                Some(d) => d.clone(),
                None => {
                    let d = date_string(day.0).ok_or(SinkError::TimestampOutOfRange {
                        table: cfg.table.clone(),
                        column: cfg.timestamp_column.clone(),
                        value: day.1,
                    })?;
                    date_cache.insert(day.0, d.clone());
                    d
                }
            };
            let line = match line_cache.get(raw_line) {
                Some(l) => l.clone(),
                None => {
                    let l = sanitize_partition_value(raw_line).map_err(|source| {
                        SinkError::PartitionValueTooLong {
                            table: cfg.table.clone(),
                            column: cfg.line_column.clone(),
                            line: raw_line.to_owned(),
                            batch: bi,
                            row,
                            source,
                        }
                    })?;
                    line_cache.insert(raw_line, l.clone());
                    l
                }
            };
            let row_u32 = u32::try_from(row).map_err(|_| {
                SinkError::InvalidConfig(format!("batch {bi} has more than u32::MAX rows"))
            })?;
            out.entry((date, line)).or_default().push(row_u32);
        }
        Ok(out)
    }

    /// Per row: (days since the epoch in UTC, raw value).
    fn day_numbers(&self, bi: usize, ts: &dyn Array) -> Result<Vec<(i64, i64)>> {
        fn days<T: ArrowPrimitiveType<Native = i64>>(
            a: &PrimitiveArray<T>,
            per_day: i64,
        ) -> Vec<Option<(i64, i64)>> {
            a.iter()
                .map(|v| v.map(|v| (v.div_euclid(per_day), v)))
                .collect()
        }
        let vals = match ts.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => {
                days(ts.as_primitive::<TimestampSecondType>(), 86_400)
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                days(ts.as_primitive::<TimestampMillisecondType>(), 86_400_000)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => days(
                ts.as_primitive::<TimestampMicrosecondType>(),
                86_400_000_000,
            ),
            DataType::Timestamp(TimeUnit::Nanosecond, _) => days(
                ts.as_primitive::<TimestampNanosecondType>(),
                86_400_000_000_000,
            ),
            other => {
                return Err(SinkError::WrongColumnType {
                    table: self.config.table.clone(),
                    column: self.config.timestamp_column.clone(),
                    expected: "Timestamp(Millisecond, \"UTC\")",
                    found: other.clone(),
                });
            }
        };
        vals.into_iter()
            .enumerate()
            .map(|(row, v)| {
                v.ok_or_else(|| SinkError::NullPartitionValue {
                    table: self.config.table.clone(),
                    column: self.config.timestamp_column.clone(),
                    batch: bi,
                    row,
                })
            })
            .collect()
    }

    fn file_schema(&self, schema: &SchemaRef) -> Result<SchemaRef> {
        if self.config.keep_partition_columns {
            return Ok(schema.clone());
        }
        let keep: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| schema.field(i).name() != &self.config.line_column)
            .collect();
        Ok(Arc::new(schema.project(&keep)?))
    }

    fn project(&self, batch: RecordBatch, file_schema: &SchemaRef) -> Result<RecordBatch> {
        if self.config.keep_partition_columns {
            return Ok(batch);
        }
        let schema = batch.schema();
        let keep: Vec<usize> = file_schema
            .fields()
            .iter()
            .filter_map(|f| schema.index_of(f.name()).ok())
            .collect();
        Ok(batch.project(&keep)?)
    }

    fn writer_properties(&self, kv: &[(String, String)]) -> Result<WriterProperties> {
        let level = ZstdLevel::try_new(self.config.zstd_level).map_err(|e| {
            SinkError::InvalidConfig(format!("zstd_level {}: {e}", self.config.zstd_level))
        })?;
        let kv: Vec<KeyValue> = kv
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        Ok(WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(self.config.max_row_group_rows.max(1)))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_key_value_metadata((!kv.is_empty()).then_some(kv))
            .build())
    }
}

/// Encodes `batches` as one Parquet file and stores it atomically at `target`.
fn write_parquet(
    target: Location,
    schema: SchemaRef,
    batches: &[RecordBatch],
    props: &WriterProperties,
) -> Result<WrittenFile> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props.clone()))
        .map_err(SinkError::parquet(&target))?;
    for batch in batches {
        writer.write(batch).map_err(SinkError::parquet(&target))?;
    }
    let encoded = writer.into_inner().map_err(SinkError::parquet(&target))?;
    let bytes = encoded.len() as u64;
    target.put(encoded)?;
    Ok(WrittenFile {
        location: target,
        rows,
        bytes,
    })
}

/// Line values of a string column, `None` where null.
fn line_values(a: &dyn Array) -> Vec<Option<&str>> {
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().collect(),
        DataType::Utf8View => a.as_string_view().iter().collect(),
        _ => vec![None; a.len()],
    }
}

/// `YYYY-MM-DD` (sanitised, for years beyond 9999) of a day number since the epoch.
fn date_string(days: i64) -> Option<String> {
    let secs = days.checked_mul(86_400)?;
    let date = DateTime::from_timestamp(secs, 0)?.date_naive();
    sanitize_partition_value(&date.format("%Y-%m-%d").to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_strings() {
        assert_eq!(date_string(0).as_deref(), Some("1970-01-01"));
        assert_eq!(date_string(-1).as_deref(), Some("1969-12-31"));
        // 2026-11-28
        assert_eq!(date_string(20_785).as_deref(), Some("2026-11-28"));
        assert_eq!(date_string(i64::MAX / 86_400_000), None);
    }
}
