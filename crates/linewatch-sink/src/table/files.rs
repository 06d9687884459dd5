//! What a table holds: the files written and listed, their footers, and reading them back,
//! on local disk or in an object store alike.

use std::fs::File;

use arrow_array::RecordBatch;
use parquet::arrow::ARROW_SCHEMA_META_KEY;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{Result, SinkError};
use crate::file_name::FileName;
use crate::location::Location;

#[cfg(doc)]
use super::ParquetTable;
use super::config::{DATE_KEY, LINE_KEY};

/// One file written by [`ParquetTable::write_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Where the file is.
    pub location: Location,
    /// Rows in the file.
    pub rows: usize,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// A data file found by [`list_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Where the file is.
    pub location: Location,
    /// Kafka partition, from the file name.
    pub partition: i32,
    /// First Kafka offset held, from the file name.
    pub first_offset: i64,
    /// Last Kafka offset held (inclusive), from the file name.
    pub last_offset: i64,
    /// The `date=` path value (`YYYY-MM-DD`).
    pub date: String,
    /// The `line=` path value as stored (sanitised; see
    /// [`decode_partition_value`](crate::decode_partition_value)).
    pub line: String,
}

impl FileInfo {
    /// The parsed file name.
    pub fn file_name(&self) -> FileName {
        FileName {
            partition: self.partition,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
        }
    }
}

/// Lists the data files of a table (a local directory or an object-store prefix), parsing
/// their names and partition values. Ignores foreign files, temporary files and anything
/// outside the `date=*/line=*/part-*.parquet` layout. A missing table is an empty one.
/// Sorted by (Kafka partition, first offset, last offset, location).
pub fn list_files(table_root: impl Into<Location>) -> Result<Vec<FileInfo>> {
    let mut out = Vec::new();
    for listed in table_root.into().list()? {
        let parts: Vec<&str> = listed.relative.split('/').collect();
        let [date_dir, line_dir, name] = parts.as_slice() else {
            continue;
        };
        let (Some(date), Some(line), Some(name)) = (
            value_of(date_dir, DATE_KEY),
            value_of(line_dir, LINE_KEY),
            FileName::parse(name),
        ) else {
            continue;
        };
        out.push(FileInfo {
            location: listed.location,
            partition: name.partition,
            first_offset: name.first_offset,
            last_offset: name.last_offset,
            date: date.to_owned(),
            line: line.to_owned(),
        });
    }
    out.sort_by(|a, b| {
        (a.partition, a.first_offset, a.last_offset)
            .cmp(&(b.partition, b.first_offset, b.last_offset))
            .then_with(|| a.location.to_string().cmp(&b.location.to_string()))
    });
    Ok(out)
}

/// `value` of a `key=value` path segment.
fn value_of<'a>(segment: &'a str, key: &str) -> Option<&'a str> {
    segment.strip_prefix(key)?.strip_prefix('=')
}

/// Reads a file's key-value metadata from its footer only (no data pages; on an object
/// store, one or two ranged reads of its tail). The Arrow schema entry the writer adds
/// (`ARROW:schema`) is left out; a key without a value reads as an empty string.
pub fn read_footer_metadata(file: impl Into<Location>) -> Result<Vec<(String, String)>> {
    let file = file.into();
    let meta = read_parquet_metadata(&file)?;
    Ok(meta
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter(|kv| kv.key != ARROW_SCHEMA_META_KEY)
                .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default())
}

/// Bytes fetched from the end of an object in the first footer read (most footers fit).
const FOOTER_PREFETCH: u64 = 64 * 1024;

fn read_parquet_metadata(file: &Location) -> Result<ParquetMetaData> {
    if let Some(path) = file.as_local() {
        let f = File::open(path).map_err(SinkError::io(path))?;
        return ParquetMetaDataReader::new()
            .parse_and_finish(&f)
            .map_err(SinkError::parquet(path.display()));
    }
    // The footer from the tail: one ranged read, a second when the footer is longer.
    let size = file.size()?;
    let mut reader = ParquetMetaDataReader::new();
    let tail = file.get_range(size - size.min(FOOTER_PREFETCH), size)?;
    match reader.try_parse_sized(&tail, size) {
        Ok(()) => {}
        Err(parquet::errors::ParquetError::NeedMoreData(needed)) => {
            let tail = file.get_range(size.saturating_sub(needed as u64), size)?;
            reader
                .try_parse_sized(&tail, size)
                .map_err(SinkError::parquet(file))?;
        }
        Err(e) => return Err(SinkError::parquet(file)(e)),
    }
    reader.finish().map_err(SinkError::parquet(file))
}

/// Reads every batch of one Parquet file (local, or fetched whole from an object store).
pub fn read_file(file: impl Into<Location>) -> Result<Vec<RecordBatch>> {
    let file = file.into();
    let reader = match file.as_local() {
        Some(path) => {
            let f = File::open(path).map_err(SinkError::io(path))?;
            ParquetRecordBatchReaderBuilder::try_new(f).and_then(|b| b.build())
        }
        None => ParquetRecordBatchReaderBuilder::try_new(file.get()?).and_then(|b| b.build()),
    }
    .map_err(SinkError::parquet(&file))?;
    reader
        .map(|b| {
            b.map_err(|e| SinkError::Parquet {
                path: file.to_string(),
                source: e.into(),
            })
        })
        .collect()
}

/// Reads every data file of a table in [`list_files`] order (for tests and tools: it loads
/// everything into memory). Only the columns stored in the files are returned; the hive
/// partition values are in the paths.
pub fn read_all(table_root: impl Into<Location>) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for info in list_files(table_root)? {
        out.extend(read_file(&info.location)?);
    }
    Ok(out)
}
