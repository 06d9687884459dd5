//! Typed telemetry events, in the spirit of Vector's `internal_events`: one type per thing
//! that happens in the pipeline, whose `emit` writes its metric (under the names defined once
//! in [`super`]), its log line and its [`Progress`] counter together. A stage says *what*
//! happened; how that is counted and logged lives here.

use std::time::Duration;

use crate::alerter::AlertState;

use super::{
    ALERTS, ANOMALY_RATIO, CLOSE_TO_ALERT, CONSUMED, CONSUMER_LAG, DEAD_LETTERED, DECODED,
    FILES_WRITTEN, INSPECTIONS, LATE, LONG_REPEATED, MODEL_VERSION, OPEN_WINDOWS, REKEY_FORWARDED,
    REKEY_LAG, REKEY_REPLAYS, RETRAINS, SCORING_LATENCY, SPARKPLUG_MESSAGES, SPARKPLUG_SKIPPED,
    SPLIT_MACHINES, WINDOWS,
};

/// Live counters for progress displays and summaries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Messages consumed (readings and inspections).
    pub consumed: u64,
    /// Readings decoded.
    pub readings: u64,
    /// Messages sent to a dead-letter topic.
    pub dead_lettered: u64,
    /// Dead letters by reason code (`not_json`, `value_out_of_range`, ...).
    pub dead_letters_by_reason: std::collections::BTreeMap<String, u64>,
    /// Machines whose readings arrived on more than one readings partition (the keying
    /// contract broken: see `pipeline/keying.rs`).
    pub machines_on_several_partitions: u64,
    /// Long-format values that repeated a channel at their machine's instant (dropped).
    pub long_values_repeated: u64,
    /// Re-keyed messages dropped as copies the re-keying stage forwarded again.
    pub rekey_replays_dropped: u64,
    /// Sparkplug B metrics skipped because they are not numbers (boolean, string, ...).
    pub sparkplug_non_numeric: u64,
    /// Sparkplug B metrics skipped because they are null.
    pub sparkplug_null: u64,
    /// Readings that arrived after their window closed.
    pub late: u64,
    /// Windows closed and scored.
    pub windows: u64,
    /// Alerts opened.
    pub alerts_opened: u64,
    /// Alerts resolved.
    pub alerts_resolved: u64,
    /// Inspections decoded.
    pub inspections: u64,
    /// Retrained models accepted.
    pub retrains: u64,
    /// Retraining jobs rejected by the validation gate or failed.
    pub retrains_rejected: u64,
    /// The version being served.
    pub model_version: Option<String>,
    /// Parquet files written.
    pub files: u64,
    /// Delays from a window's close to its alert's acknowledgement, in seconds.
    pub alert_delays_s: Vec<f64>,
}

/// A message was consumed from `topic` (readings or inspections).
pub struct MessageConsumed<'a> {
    pub topic: &'a str,
}

impl MessageConsumed<'_> {
    pub fn emit(self, progress: &mut Progress) {
        progress.consumed += 1;
        metrics::counter!(CONSUMED, "topic" => self.topic.to_string()).increment(1);
    }
}

/// A reading was decoded.
pub struct ReadingDecoded;

impl ReadingDecoded {
    pub fn emit(self, progress: &mut Progress) {
        progress.readings += 1;
        metrics::counter!(DECODED).increment(1);
    }
}

/// A reading arrived after its window had closed.
pub struct ReadingLate;

impl ReadingLate {
    pub fn emit(self, progress: &mut Progress) {
        metrics::counter!(LATE).increment(1);
        progress.late += 1;
    }
}

/// An inspection (a label) was decoded.
pub struct InspectionDecoded;

impl InspectionDecoded {
    pub fn emit(self, progress: &mut Progress) {
        progress.inspections += 1;
        metrics::counter!(INSPECTIONS).increment(1);
    }
}

/// A machine's readings arrived on a readings partition other than the one(s) it was seen on.
pub struct MachineOnSeveralPartitions<'a> {
    pub machine: &'a str,
    /// Every partition it was seen on, sorted.
    pub partitions: &'a [i32],
}

impl MachineOnSeveralPartitions<'_> {
    pub fn emit(self, progress: &mut Progress) {
        if self.partitions.len() == 2 {
            progress.machines_on_several_partitions += 1;
            metrics::counter!(SPLIT_MACHINES).increment(1);
        }
        tracing::warn!(
            machine = self.machine,
            partitions = ?self.partitions,
            "readings of one machine on several partitions: its windows are split and written \
             partial. Produce readings with the machine as the message key"
        );
    }
}

/// A readings message was forwarded to the re-keyed topic (the re-keying stage's own task,
/// hence no progress counter): in event-time order, or before a slow partition caught up
/// because the merge was full.
pub struct RekeyForwarded {
    pub aligned: bool,
}

impl RekeyForwarded {
    /// The `order` label values.
    pub const ORDERS: [&'static str; 2] = ["event_time", "merge_full"];

    pub fn emit(self) {
        let order = Self::ORDERS[usize::from(!self.aligned)];
        metrics::counter!(REKEY_FORWARDED, "order" => order).increment(1);
    }
}

/// A re-keyed message was dropped: a copy forwarded again after a crash or a rebalance of
/// the re-keying stage (its source offset was already windowed).
pub struct RekeyReplayDropped {
    pub source_partition: i32,
    pub source_offset: i64,
}

impl RekeyReplayDropped {
    pub fn emit(self, progress: &mut Progress) {
        progress.rekey_replays_dropped += 1;
        metrics::counter!(REKEY_REPLAYS).increment(1);
        tracing::debug!(
            source_partition = self.source_partition,
            source_offset = self.source_offset,
            "re-keyed copy dropped"
        );
    }
}

/// A long-format value repeated a channel already gathered at its machine's instant (dropped).
pub struct LongValueRepeated;

impl LongValueRepeated {
    pub fn emit(self, progress: &mut Progress) {
        progress.long_values_repeated += 1;
        metrics::counter!(LONG_REPEATED).increment(1);
    }
}

/// A Sparkplug B message was decoded: its type, and the metrics it held that are not
/// readings (skipped and counted, never a dead letter).
pub struct SparkplugDecoded {
    pub kind: linewatch_window::MessageType,
    pub skipped: linewatch_window::Skipped,
}

impl SparkplugDecoded {
    pub fn emit(self, progress: &mut Progress) {
        metrics::counter!(SPARKPLUG_MESSAGES, "type" => self.kind.as_str()).increment(1);
        let s = self.skipped;
        if s.non_numeric > 0 {
            progress.sparkplug_non_numeric += u64::from(s.non_numeric);
            metrics::counter!(SPARKPLUG_SKIPPED, "reason" => "non_numeric")
                .increment(u64::from(s.non_numeric));
        }
        if s.null > 0 {
            progress.sparkplug_null += u64::from(s.null);
            metrics::counter!(SPARKPLUG_SKIPPED, "reason" => "null").increment(u64::from(s.null));
        }
    }
}

/// A message could not be used and goes to the dead-letter topic.
pub struct MessageDeadLettered<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub reason: &'a str,
}

impl MessageDeadLettered<'_> {
    pub fn emit(self, progress: &mut Progress) {
        progress.dead_lettered += 1;
        *progress
            .dead_letters_by_reason
            .entry(self.reason.to_string())
            .or_default() += 1;
        metrics::counter!(DEAD_LETTERED, "reason" => self.reason.to_string()).increment(1);
        tracing::debug!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            reason = self.reason,
            "dead letter"
        );
    }
}

/// The messages between the consumer's position and the high watermark, over its partitions.
pub struct ConsumerLag {
    /// `None` when unknown (no partition, no position, the broker did not answer).
    pub messages: Option<i64>,
}

impl ConsumerLag {
    pub fn emit(self) {
        metrics::gauge!(CONSUMER_LAG).set(self.messages.map_or(f64::NAN, |m| m as f64));
    }
}

/// The re-keying stage's lag on the readings topic (with `kafka.rekey` the windowers' lag,
/// [`ConsumerLag`], covers only the re-keyed topic).
pub struct RekeyLag {
    /// `None` when unknown.
    pub messages: Option<i64>,
}

impl RekeyLag {
    pub fn emit(self) {
        metrics::gauge!(REKEY_LAG).set(self.messages.map_or(f64::NAN, |m| m as f64));
    }
}

/// Scoring a batch of closed windows failed; they are written unscored.
pub struct ScoringFailed<'a, E: std::fmt::Display> {
    pub error: &'a E,
}

impl<E: std::fmt::Display> ScoringFailed<'_, E> {
    pub fn emit(self) {
        tracing::error!(error = %self.error, "scoring failed; writing rows unscored");
    }
}

/// `count` closed windows were scored in `latency`.
pub struct WindowsScored {
    pub count: u64,
    pub latency: Duration,
}

impl WindowsScored {
    pub fn emit(self, progress: &mut Progress) {
        metrics::histogram!(SCORING_LATENCY).record(self.latency.as_secs_f64());
        progress.windows += self.count;
        metrics::counter!(WINDOWS).increment(self.count);
    }
}

/// A window was scored: its anomaly score over the serving threshold (1 = at the threshold),
/// comparable across machines and model versions.
pub struct WindowScore {
    pub anomaly_score: f64,
    pub threshold: f64,
}

impl WindowScore {
    pub fn emit(self) {
        if self.threshold > 0.0 && self.anomaly_score.is_finite() {
            metrics::histogram!(ANOMALY_RATIO).record(self.anomaly_score / self.threshold);
        }
    }
}

/// The version being served, as its number (`v000007` -> 7; 0 before the first model).
pub struct ServingVersion<'a> {
    pub version: Option<&'a str>,
}

impl ServingVersion<'_> {
    pub fn emit(self) {
        let n = self
            .version
            .and_then(|v| v.strip_prefix('v'))
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        metrics::gauge!(MODEL_VERSION).set(f64::from(n));
    }
}

/// The alerter opened or resolved an alert.
pub struct AlertRaised<'a> {
    pub state: AlertState,
    pub line: &'a str,
    pub machine: &'a str,
}

impl AlertRaised<'_> {
    pub fn emit(self, progress: &mut Progress) {
        match self.state {
            AlertState::Open => progress.alerts_opened += 1,
            AlertState::Resolved => progress.alerts_resolved += 1,
        }
        // By machine: the series exist only for machines that ever alerted.
        metrics::counter!(
            ALERTS,
            "state" => self.state.as_str(),
            "line" => self.line.to_string(),
            "machine" => self.machine.to_string()
        )
        .increment(1);
    }
}

/// An alert was acknowledged by the broker `delay_s` seconds after its window closed.
pub struct AlertAcknowledged {
    pub delay_s: f64,
}

impl AlertAcknowledged {
    pub fn emit(self, progress: &mut Progress) {
        metrics::histogram!(CLOSE_TO_ALERT).record(self.delay_s);
        progress.alert_delays_s.push(self.delay_s);
    }
}

/// The number of windows still open over all partitions.
pub struct OpenWindows {
    pub count: usize,
}

impl OpenWindows {
    pub fn emit(self) {
        metrics::gauge!(OPEN_WINDOWS).set(self.count as f64);
    }
}

/// A Parquet table that has a files metric (`scores`, `alerts`).
#[derive(Debug, Clone, Copy)]
pub enum CountedTable {
    Scores,
    Alerts,
}

impl CountedTable {
    fn as_str(self) -> &'static str {
        match self {
            CountedTable::Scores => linewatch_tables::scores::TABLE,
            CountedTable::Alerts => linewatch_tables::alerts::TABLE,
        }
    }
}

/// `count` Parquet files of `table` were written (one per hive partition).
pub struct ParquetFilesWritten {
    pub table: CountedTable,
    pub count: usize,
}

impl ParquetFilesWritten {
    pub fn emit(self, progress: &mut Progress) {
        progress.files += self.count as u64;
        metrics::counter!(FILES_WRITTEN, "table" => self.table.as_str())
            .increment(self.count as u64);
    }
}

/// A labels file was written. Counted in the progress only: the labels table has never had a
/// `table` value on the files metric, and dashboards may rely on its two values.
pub struct LabelsFileWritten;

impl LabelsFileWritten {
    pub fn emit(self, progress: &mut Progress) {
        progress.files += 1;
    }
}

/// A retrained model passed the validation gate and is now served.
pub struct RetrainAccepted<'a> {
    pub version: &'a str,
    pub threshold: f64,
}

impl RetrainAccepted<'_> {
    pub fn emit(self, progress: &mut Progress) {
        progress.retrains += 1;
        metrics::counter!(RETRAINS, "outcome" => "accepted").increment(1);
        tracing::info!(version = %self.version, threshold = self.threshold, "hot-swapped a new model");
    }
}

/// A retrained model was rejected by the validation gate.
pub struct RetrainRejected<'a, R: std::fmt::Display> {
    pub reason: &'a R,
}

impl<R: std::fmt::Display> RetrainRejected<'_, R> {
    pub fn emit(self, progress: &mut Progress) {
        progress.retrains_rejected += 1;
        metrics::counter!(RETRAINS, "outcome" => "rejected").increment(1);
        tracing::warn!(reason = %self.reason, "retrained model rejected; keeping the serving model");
    }
}

/// A retraining job failed.
pub struct RetrainFailed<'a, E: std::fmt::Display> {
    pub error: &'a E,
}

impl<E: std::fmt::Display> RetrainFailed<'_, E> {
    pub fn emit(self, progress: &mut Progress) {
        progress.retrains_rejected += 1;
        metrics::counter!(RETRAINS, "outcome" => "failed").increment(1);
        tracing::error!(error = %self.error, "retraining failed; keeping the serving model");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_moves_the_progress_counter_it_always_moved() {
        let mut p = Progress::default();
        MessageConsumed { topic: "readings" }.emit(&mut p);
        ReadingDecoded.emit(&mut p);
        ReadingLate.emit(&mut p);
        InspectionDecoded.emit(&mut p);
        MessageDeadLettered {
            topic: "readings",
            partition: 0,
            offset: 7,
            reason: "json",
        }
        .emit(&mut p);
        WindowsScored {
            count: 3,
            latency: Duration::from_millis(1),
        }
        .emit(&mut p);
        for state in [AlertState::Open, AlertState::Resolved] {
            AlertRaised {
                state,
                line: "l",
                machine: "m",
            }
            .emit(&mut p);
        }
        AlertAcknowledged { delay_s: 0.5 }.emit(&mut p);
        ParquetFilesWritten {
            table: CountedTable::Scores,
            count: 2,
        }
        .emit(&mut p);
        LabelsFileWritten.emit(&mut p);
        RetrainAccepted {
            version: "v000001",
            threshold: 1.0,
        }
        .emit(&mut p);
        RetrainRejected { reason: &"gate" }.emit(&mut p);
        RetrainFailed { error: &"nan" }.emit(&mut p);
        // A machine counts once, however many partitions it is found on.
        for partitions in [&[0, 2][..], &[0, 1, 2]] {
            MachineOnSeveralPartitions {
                machine: "m",
                partitions,
            }
            .emit(&mut p);
        }
        for (non_numeric, null) in [(2, 0), (1, 3)] {
            SparkplugDecoded {
                kind: linewatch_window::MessageType::DData,
                skipped: linewatch_window::Skipped { non_numeric, null },
            }
            .emit(&mut p);
        }
        RekeyReplayDropped {
            source_partition: 0,
            source_offset: 7,
        }
        .emit(&mut p);
        let expected = Progress {
            consumed: 1,
            readings: 1,
            dead_lettered: 1,
            dead_letters_by_reason: [("json".to_string(), 1)].into(),
            machines_on_several_partitions: 1,
            long_values_repeated: 0,
            rekey_replays_dropped: 1,
            sparkplug_non_numeric: 3,
            sparkplug_null: 3,
            late: 1,
            windows: 3,
            alerts_opened: 1,
            alerts_resolved: 1,
            inspections: 1,
            retrains: 1,
            retrains_rejected: 2,
            model_version: None,
            files: 3,
            alert_delays_s: vec![0.5],
        };
        assert_eq!(p, expected);
    }
}
