//! The file I/O of the durability protocol: reading a partition's footers and alerts files at
//! restore, and the ack marker. What to make of what is read is decided in
//! [`super::durability`].

use std::collections::HashMap;

use linewatch_sink::{FileInfo, Location, ParquetTable, SinkError};

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
    out: &Location,
    p: i32,
) -> Restored {
    let footers = recent_files(scores, p)
        .into_iter()
        .map(|f| footer(&f.location));
    let footer_state = durability::restore_from_footers(footers);
    let acked = read_acked_marker(out, p);
    let alert_files = recent_files(alerts, p).into_iter().filter_map(|f| {
        let seq = durability::footer_seq(&footer(&f.location));
        match linewatch_sink::read_file(&f.location)
            .map_err(anyhow::Error::from)
            .and_then(|batches| output::alerts_from_batches(&batches))
        {
            Ok(alerts) => Some((seq, alerts)),
            Err(e) => {
                tracing::warn!(location = %f.location, error = %e, "unreadable alerts file");
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
fn footer(file: &Location) -> HashMap<String, String> {
    match linewatch_sink::read_footer_metadata(file) {
        Ok(kv) => kv.into_iter().collect(),
        Err(e) => {
            tracing::warn!(location = %file, error = %e, "unreadable footer");
            HashMap::new()
        }
    }
}

/// The last flush of partition `p` whose alerts are recorded as acknowledged (`None` when
/// there is no marker; an unreadable one is logged and read as none, so every alert written
/// is checked against the topic).
fn read_acked_marker(out: &Location, p: i32) -> Option<u64> {
    let marker = out.join(&durability::acked_marker_key(p));
    match marker.get() {
        Ok(bytes) => durability::parse_acked_marker(&String::from_utf8_lossy(&bytes)),
        Err(SinkError::NotFound(_)) => None,
        Err(e) => {
            tracing::warn!(location = %marker, error = %e, "unreadable ack marker");
            None
        }
    }
}

/// Records that the alerts of file `seq` of partition `p` (and all before) are acknowledged
/// (stored atomically: a temporary file renamed locally, one PUT on an object store).
pub(super) fn write_acked_marker(out: &Location, p: i32, seq: u64) -> linewatch_sink::Result<()> {
    out.join(&durability::acked_marker_key(p))
        .put(seq.to_string().into_bytes())
}
