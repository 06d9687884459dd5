//! The file I/O of the durability protocol: reading a partition's footers and alerts files at
//! restore, and the ack marker. What to make of what is read is decided in
//! [`super::durability`].

use std::collections::HashMap;
use std::path::Path;

use linewatch_sink::{FileInfo, ParquetTable};

use super::durability::{self, AlertHistory, FooterState};
use crate::output;

/// What a readings partition resumes from.
pub(super) struct Restored {
    /// From the newest scores footer: durable windows, alerter state, next file number.
    pub(super) footer: FooterState,
    /// The alerts already written, and those perhaps never acknowledged.
    pub(super) alerts: AlertHistory,
}

/// Restores partition `p` from the footers of its recent scores files and its recent alerts
/// files. Unreadable files are logged and passed over: the partition then starts with less
/// history, never not at all.
pub(super) fn restore_partition(
    scores: &ParquetTable,
    alerts: &ParquetTable,
    out: &Path,
    p: i32,
) -> Restored {
    let footers = recent_files(scores, p).into_iter().map(|f| footer(&f.path));
    let footer_state = durability::restore_from_footers(footers);
    let acked = read_acked_marker(out, p);
    let alert_files = recent_files(alerts, p).into_iter().filter_map(|f| {
        let seq = durability::footer_seq(&footer(&f.path));
        match linewatch_sink::read_file(&f.path)
            .map_err(anyhow::Error::from)
            .and_then(|batches| output::alerts_from_batches(&batches))
        {
            Ok(alerts) => Some((seq, alerts)),
            Err(e) => {
                tracing::warn!(path = %f.path.display(), error = %e, "unreadable alerts file");
                None
            }
        }
    });
    Restored {
        footer: footer_state,
        alerts: durability::alert_history(alert_files, acked),
    }
}

/// Partition `p`'s files in the newest two dates of `table` (none if it cannot be listed).
fn recent_files(table: &ParquetTable, p: i32) -> Vec<FileInfo> {
    match table.list_files() {
        Ok(files) => durability::recent_files(files, p),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list files; starting without history");
            Vec::new()
        }
    }
}

/// A file's footer metadata (empty if unreadable).
fn footer(path: &Path) -> HashMap<String, String> {
    match linewatch_sink::read_footer_metadata(path) {
        Ok(kv) => kv.into_iter().collect(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable footer");
            HashMap::new()
        }
    }
}

/// The last flush of partition `p` whose alerts are recorded as acknowledged.
fn read_acked_marker(out: &Path, p: i32) -> Option<u64> {
    std::fs::read_to_string(durability::acked_marker_path(out, p))
        .ok()
        .and_then(|s| durability::parse_acked_marker(&s))
}

/// Records that the alerts of file `seq` of partition `p` (and all before) are acknowledged
/// (written to a temporary file, then renamed).
pub(super) fn write_acked_marker(out: &Path, p: i32, seq: u64) -> std::io::Result<()> {
    let path = durability::acked_marker_path(out, p);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, seq.to_string())?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}
