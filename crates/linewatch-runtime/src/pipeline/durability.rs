//! The durability protocol as pure decisions: which offset may be committed, which windows a
//! replay skips, what a file's footer records and what a restart resumes from, which alerts
//! must be sent again. No Kafka and no file I/O here: the callers read footers, markers and
//! alert files ([`super::state_io`]) and pass in what they read.
//!
//! The protocol: a readings partition's offset is committed at the oldest reading still held
//! (in an open window, or in a scored row not yet written), so everything before it is in
//! Parquet. Each scores file's footer records, per machine, the start of the last window made
//! durable and the alerter's state, cumulatively; the newest footer (highest flush sequence)
//! is where a new owner resumes. Alerts are written before the scores that would make a replay
//! skip their windows, then produced and acknowledged; a marker file records the last flush
//! whose alerts were acknowledged, and alerts written after it are re-sent after a crash
//! unless the alert topic already holds them.

use std::collections::{HashMap, HashSet};

use linewatch_sink::FileInfo;

use crate::alerter::{Alert, MachineAlertState};

/// Footer key: per machine, the start of the last window made durable (JSON object).
pub const META_DURABLE: &str = "linewatch.durable";
/// Footer key: the alerter's per-machine state (JSON object).
pub const META_ALERTER: &str = "linewatch.alerter";
/// Footer key: the pipeline's name.
pub const META_PIPELINE: &str = "linewatch.pipeline";
/// Footer key: the file's flush sequence number within its Kafka partition.
pub const META_SEQ: &str = "linewatch.flush_seq";

/// Per machine, the start (epoch ms) of the last window that is durable in Parquet.
pub type DurableMap = HashMap<String, i64>;

/// `(alert_id, state)`: what makes an alert message unique on the topic and in the table.
pub type AlertKey = (String, String);

/// The key of an alert message.
pub fn alert_key(a: &Alert) -> AlertKey {
    (a.alert_id.clone(), a.state.as_str().to_string())
}

/// The offset to commit for a partition: one past the last message consumed, but never past
/// the oldest reading still held in an open window (`oldest_open`) or in a scored row not yet
/// written (`oldest_unwritten`), which a restart must read again. `None` before the first
/// message. Inspections partitions hold nothing once their file is written: pass `None`s.
pub fn next_commit_offset(
    last_consumed: Option<i64>,
    oldest_open: Option<u64>,
    oldest_unwritten: Option<u64>,
) -> Option<i64> {
    let mut next = last_consumed? + 1;
    for held in [oldest_open, oldest_unwritten].into_iter().flatten() {
        next = next.min(held as i64);
    }
    Some(next)
}

/// Whether committing `next` moves the partition forward (commits never go back, and an
/// offset already committed is not sent again).
pub fn advances(last_committed: Option<i64>, next: i64) -> bool {
    last_committed.is_none_or(|c| c < next)
}

/// Whether the window of `machine` starting at `start_ms` is already in Parquet (a replay
/// after a crash or a rebalance rebuilds it; it is skipped, not written twice).
pub fn already_durable(durable: &DurableMap, machine: &str, start_ms: i64) -> bool {
    durable.get(machine).is_some_and(|&last| start_ms <= last)
}

/// Records that the window of `machine` starting at `start_ms` becomes durable with the
/// pending file (the map keeps the latest start per machine).
pub fn note_durable(map: &mut DurableMap, machine: &str, start_ms: i64) {
    let e = map.entry(machine.to_string()).or_insert(start_ms);
    *e = (*e).max(start_ms);
}

/// The durable map once a pending file is written: `durable` advanced by `update`.
pub fn merged(durable: &DurableMap, update: &DurableMap) -> DurableMap {
    let mut out = durable.clone();
    for (m, &s) in update {
        note_durable(&mut out, m, s);
    }
    out
}

/// The offsets a partition's file is named after, `(first, last)` with `first <= last`: the
/// messages consumed since the previous file, or, for rows closed without a message in
/// between (idle eviction, shutdown), the oldest reading they hold.
pub fn file_offsets(
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    oldest_row: Option<u64>,
    last_consumed: Option<i64>,
) -> (i64, i64) {
    let first = first_offset
        .or(oldest_row.map(|s| s as i64))
        .or(last_consumed)
        .unwrap_or(0);
    let last = last_offset.or(last_consumed).unwrap_or(first).max(first);
    (first, last)
}

/// The footer of a partition's file number `seq`: the durable map and the alerter's state
/// after it (cumulative, so the newest footer alone is enough to resume).
pub fn footer_metadata(
    pipeline: &str,
    seq: u64,
    durable: &DurableMap,
    alerter: &HashMap<String, MachineAlertState>,
) -> Result<Vec<(String, String)>, serde_json::Error> {
    Ok(vec![
        (META_PIPELINE.to_string(), pipeline.to_string()),
        (META_SEQ.to_string(), seq.to_string()),
        (META_DURABLE.to_string(), serde_json::to_string(durable)?),
        (META_ALERTER.to_string(), serde_json::to_string(alerter)?),
    ])
}

/// The flush sequence number a footer records, if any.
pub fn footer_seq(footer: &HashMap<String, String>) -> Option<u64> {
    footer.get(META_SEQ).and_then(|s| s.parse().ok())
}

/// What a partition resumes from, read from its scores files' footers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FooterState {
    /// Per machine, the last window already written.
    pub durable: DurableMap,
    /// The alerter's per-machine state when it was written.
    pub alerter: HashMap<String, MachineAlertState>,
    /// The number of the partition's next file (one past the newest footer's).
    pub flush_seq: u64,
}

/// Resumes from the footers with the highest flush sequence (one flush writes one file per
/// hive partition, all with the same sequence: their maps are merged). Footers without a
/// sequence, and values that do not parse, are ignored. No footer: start from nothing.
pub fn restore_from_footers(
    footers: impl IntoIterator<Item = HashMap<String, String>>,
) -> FooterState {
    let mut r = FooterState::default();
    let mut best: Option<u64> = None;
    for kv in footers {
        let Some(seq) = footer_seq(&kv) else {
            continue;
        };
        if best.is_some_and(|b| b > seq) {
            continue;
        }
        if best != Some(seq) {
            r.durable.clear();
            r.alerter.clear();
        }
        best = Some(seq);
        if let Some(m) = kv
            .get(META_DURABLE)
            .and_then(|v| serde_json::from_str::<DurableMap>(v).ok())
        {
            for (machine, s) in m {
                note_durable(&mut r.durable, &machine, s);
            }
        }
        if let Some(m) = kv
            .get(META_ALERTER)
            .and_then(|v| serde_json::from_str::<HashMap<String, MachineAlertState>>(v).ok())
        {
            r.alerter.extend(m);
        }
    }
    r.flush_seq = best.map_or(0, |b| b + 1);
    r
}

/// The alerts already in a partition's alerts files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertHistory {
    /// Every alert written: a replay that raises one again writes and sends nothing.
    pub known: HashSet<AlertKey>,
    /// Alerts written after the last recorded acknowledgement, each once: perhaps never on
    /// the topic.
    pub unacked: Vec<Alert>,
}

/// Sorts the alerts of a partition's files, given as `(flush sequence, alerts)`, by the ack
/// marker `acked_through` (the last flush whose alerts were acknowledged): alerts of later
/// files, of files without a sequence, or all of them without a marker, are unacknowledged.
pub fn alert_history(
    files: impl IntoIterator<Item = (Option<u64>, Vec<Alert>)>,
    acked_through: Option<u64>,
) -> AlertHistory {
    let mut h = AlertHistory::default();
    for (seq, alerts) in files {
        let acked = acked_through.is_some_and(|x| seq.is_some_and(|s| s <= x));
        for a in alerts {
            if h.known.insert(alert_key(&a)) && !acked {
                h.unacked.push(a);
            }
        }
    }
    h
}

/// The unacknowledged alerts the topic does not hold: these are sent again.
pub fn missing_from_topic<'a>(
    unacked: &'a [Alert],
    on_topic: &HashSet<AlertKey>,
) -> Vec<&'a Alert> {
    unacked
        .iter()
        .filter(|a| !on_topic.contains(&alert_key(a)))
        .collect()
}

/// The ack marker once every alert written so far is on the topic: the last file written
/// (`None` before the partition's first file).
pub fn acked_through(next_flush_seq: u64) -> Option<u64> {
    next_flush_seq.checked_sub(1)
}

/// Where partition `p`'s ack marker lives under the output root (`/`-separated).
pub fn acked_marker_key(p: i32) -> String {
    format!("_state/alerts-acked-p{p:05}")
}

/// The flush sequence an ack marker's text records (`None` if it is not a number).
pub fn parse_acked_marker(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The files of partition `p` in the newest two `date=` folders it wrote to: replays never
/// reach further back than that, and startup stays fast however long the table grows.
pub fn recent_files(files: Vec<FileInfo>, p: i32) -> Vec<FileInfo> {
    let mut dates: Vec<&str> = files
        .iter()
        .filter(|f| f.partition == p)
        .map(|f| f.date.as_str())
        .collect();
    dates.sort_unstable();
    dates.dedup();
    let keep: Vec<String> = dates.iter().rev().take(2).map(|d| d.to_string()).collect();
    files
        .into_iter()
        .filter(|f| f.partition == p && keep.contains(&f.date))
        .collect()
}

#[cfg(test)]
mod tests;
