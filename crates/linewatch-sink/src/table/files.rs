//! What a table holds: the files written and listed, their footers, and reading them back.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::ARROW_SCHEMA_META_KEY;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaDataReader;

use crate::error::{Result, SinkError};
use crate::file_name::FileName;

#[cfg(doc)]
use super::ParquetTable;
use super::config::{DATE_KEY, LINE_KEY};

/// One file written by [`ParquetTable::write_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Final path of the file.
    pub path: PathBuf,
    /// Rows in the file.
    pub rows: usize,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// A data file found by [`list_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Path of the file.
    pub path: PathBuf,
    /// Kafka partition, from the file name.
    pub partition: i32,
    /// First Kafka offset held, from the file name.
    pub first_offset: i64,
    /// Last Kafka offset held (inclusive), from the file name.
    pub last_offset: i64,
    /// The `date=` path value (`YYYY-MM-DD`).
    pub date: String,
    /// The `line=` path value as on disk (sanitised; see
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

pub(super) struct PartitionDir {
    pub(super) path: PathBuf,
    pub(super) date: String,
    pub(super) line: String,
}

/// `date=*/line=*` directories under `root` (symlinks are not followed).
pub(super) fn partition_dirs(root: &Path) -> Result<Vec<PartitionDir>> {
    let mut out = Vec::new();
    for (date_path, date) in subdirs_with_key(root, DATE_KEY)? {
        for (path, line) in subdirs_with_key(&date_path, LINE_KEY)? {
            out.push(PartitionDir {
                path,
                date: date.clone(),
                line,
            });
        }
    }
    Ok(out)
}

pub(super) fn subdirs_with_key(dir: &Path, key: &str) -> Result<Vec<(PathBuf, String)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SinkError::io(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(SinkError::io(dir))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(value) = name
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
        {
            out.push((entry.path(), value.to_owned()));
        }
    }
    Ok(out)
}

/// Lists the data files of a table directory, parsing their names and partition values.
/// Ignores foreign files, temporary files and directories outside the
/// `date=*/line=*` layout. A missing directory is an empty table. Sorted by
/// (Kafka partition, first offset, last offset, path).
pub fn list_files(table_root: impl AsRef<Path>) -> Result<Vec<FileInfo>> {
    let mut out = Vec::new();
    for dir in partition_dirs(table_root.as_ref())? {
        for entry in fs::read_dir(&dir.path).map_err(SinkError::io(&dir.path))? {
            let entry = entry.map_err(SinkError::io(&dir.path))?;
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let Some(name) = entry.file_name().to_str().and_then(FileName::parse) else {
                continue;
            };
            out.push(FileInfo {
                path: entry.path(),
                partition: name.partition,
                first_offset: name.first_offset,
                last_offset: name.last_offset,
                date: dir.date.clone(),
                line: dir.line.clone(),
            });
        }
    }
    out.sort_by(|a, b| {
        (a.partition, a.first_offset, a.last_offset, &a.path).cmp(&(
            b.partition,
            b.first_offset,
            b.last_offset,
            &b.path,
        ))
    });
    Ok(out)
}

/// Reads a file's key-value metadata from its footer only (no data pages). The Arrow
/// schema entry the writer adds (`ARROW:schema`) is left out; a key without a value reads
/// as an empty string.
pub fn read_footer_metadata(path: impl AsRef<Path>) -> Result<Vec<(String, String)>> {
    let path = path.as_ref();
    let file = File::open(path).map_err(SinkError::io(path))?;
    let meta = ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(SinkError::parquet(path))?;
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

/// Reads every batch of one Parquet file.
pub fn read_file(path: impl AsRef<Path>) -> Result<Vec<RecordBatch>> {
    let path = path.as_ref();
    let file = File::open(path).map_err(SinkError::io(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(SinkError::parquet(path))?;
    reader
        .map(|b| {
            b.map_err(|e| SinkError::Parquet {
                path: path.to_path_buf(),
                source: e.into(),
            })
        })
        .collect()
}

/// Reads every data file of a table in [`list_files`] order (for tests and tools: it loads
/// everything into memory). Only the columns stored in the files are returned; the hive
/// partition values are in the paths.
pub fn read_all(table_root: impl AsRef<Path>) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for info in list_files(table_root)? {
        out.extend(read_file(&info.path)?);
    }
    Ok(out)
}
