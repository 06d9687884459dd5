//! What the pipeline holds per partition: for a readings partition its windower, alerter,
//! guard band and the scored windows not yet written; for an inspections partition the labels
//! not yet written. A readings partition's state is created from its files' footers when the
//! partition is first seen, and dropped (not flushed) when it is revoked.

use std::collections::HashSet;
use std::time::Instant;

use linewatch_sink::RollPolicy;
use linewatch_window::{FeatureSchema, Inspection, LongAssembler, Windower};

use super::Pipeline;
use super::durability::{AlertKey, DurableMap};
use super::state_io;
use crate::alerter::{Alert, Alerter};
use crate::kafka::PartitionEvent;
use crate::output::ScoredRows;
use crate::trainer::GuardBand;

/// Scored windows of a readings partition waiting for their file.
pub(super) struct Pending {
    /// The rows of the scores table.
    pub(super) rows: ScoredRows,
    /// The alerts they raised, with when their window closed.
    pub(super) alerts: Vec<(Alert, Instant)>,
    /// Offsets of the first and last message consumed since the previous file.
    pub(super) first_offset: Option<i64>,
    pub(super) last_offset: Option<i64>,
    /// When the first row arrived (for the roll policy's age).
    pub(super) since: Option<Instant>,
    /// Per machine, the last window these rows make durable.
    pub(super) durable_update: DurableMap,
}

impl Pending {
    /// An empty buffer.
    pub(super) fn new(schema: &FeatureSchema) -> Self {
        Self {
            rows: ScoredRows::new(schema),
            alerts: Vec::new(),
            first_offset: None,
            last_offset: None,
            since: None,
            durable_update: DurableMap::new(),
        }
    }
}

/// Everything the pipeline holds for one readings partition.
pub(super) struct PartitionState {
    pub(super) windower: Windower,
    /// Long-format values gathered into readings by instant (`decode.format = "json_long"`).
    pub(super) assembler: LongAssembler,
    /// With `kafka.rekey`: drops the copies the re-keying stage forwarded again.
    pub(super) replays: crate::rekey::ReplayFilter,
    pub(super) alerter: Alerter,
    /// Which of this partition's windows may feed retraining.
    pub(super) guard: GuardBand,
    pub(super) pending: Pending,
    /// Per machine, the start of the last window that is durable in Parquet.
    pub(super) durable: DurableMap,
    /// The last offset consumed.
    pub(super) last_consumed: Option<i64>,
    /// The last offset committed (commits only move forward).
    pub(super) last_committed: Option<i64>,
    /// Sequence number of this partition's next file (continues across restarts).
    pub(super) flush_seq: u64,
    /// Alerts durable in Parquet whose acknowledgement by the broker is not recorded (found
    /// at restore after a crash): re-sent unless already on the topic.
    pub(super) unacked: Vec<Alert>,
    /// `(alert_id, state)` of the alerts already in this partition's Parquet files at restore:
    /// a replay that raises them again must not write or send them twice.
    pub(super) known_alerts: HashSet<AlertKey>,
}

/// Label messages of one inspections partition waiting for their file (the `labels/` table).
#[derive(Default)]
pub(super) struct LabelPending {
    pub(super) rows: Vec<Inspection>,
    /// Approximate size in memory, for the roll policy.
    pub(super) bytes: usize,
    pub(super) first_offset: Option<i64>,
    pub(super) last_offset: Option<i64>,
    pub(super) since: Option<Instant>,
}

impl LabelPending {
    /// Buffers one decoded inspection.
    pub(super) fn push(&mut self, ins: Inspection) {
        self.bytes += 32 + ins.line.len() + ins.machine.len();
        self.rows.push(ins);
        self.since.get_or_insert_with(Instant::now);
    }

    /// Records that message `offset` was consumed (decoded or dead-lettered).
    pub(super) fn consumed(&mut self, offset: i64) {
        self.first_offset.get_or_insert(offset);
        self.last_offset = Some(offset);
    }

    /// Whether to write (and commit) now: with `force`, when the roll policy of the other
    /// tables says so, or when only dead letters were consumed (nothing to write, offsets to
    /// commit). Never before a message was consumed.
    pub(super) fn due(&self, roll: &RollPolicy, force: bool) -> bool {
        let age = self.since.map(|s| s.elapsed()).unwrap_or_default();
        self.last_offset.is_some()
            && (force || self.rows.is_empty() || roll.should_roll(self.rows.len(), self.bytes, age))
    }
}

impl Pipeline {
    /// Drops the state of revoked partitions.
    pub(super) fn on_rebalance(&mut self, events: Vec<PartitionEvent>) {
        for e in events {
            if let PartitionEvent::Revoked(parts) = e {
                for (topic, p) in parts {
                    if topic == self.windowed_topic {
                        // Dropped, not flushed: nothing of it was committed past what is
                        // durable, so the new owner rebuilds these windows from the committed
                        // offset and skips those already written (no double counting).
                        if self.parts.remove(&p).is_some() {
                            tracing::info!(partition = p, "dropped state of revoked partition");
                        }
                    } else {
                        self.label_parts.remove(&p);
                    }
                }
            }
        }
    }

    /// Readings partition `p`'s state, restored from its files when first seen.
    pub(super) fn partition(&mut self, p: i32) -> anyhow::Result<&mut PartitionState> {
        if !self.parts.contains_key(&p) {
            let st = self.restore_partition(p)?;
            self.parts.insert(p, st);
        }
        self.parts
            .get_mut(&p)
            .ok_or_else(|| anyhow::anyhow!("state of partition {p} vanished"))
    }

    fn restore_partition(&self, p: i32) -> anyhow::Result<PartitionState> {
        let restored = state_io::restore_partition(&self.scores, &self.alerts, &self.out, p);
        let mut alerter = Alerter::new(
            &self.cfg.pipeline.name,
            self.cfg.alert.open_after,
            self.cfg.alert.resolve_after,
        )
        .with_p_value(self.cfg.alert.p_value);
        alerter.restore(restored.footer.alerter);
        tracing::info!(
            partition = p,
            machines = restored.footer.durable.len(),
            next_file = restored.footer.flush_seq,
            unacked_alerts = restored.alerts.unacked.len(),
            "partition state restored"
        );
        let windower = Windower::new(self.window_cfg.clone(), self.channels.clone())?;
        Ok(PartitionState {
            windower,
            assembler: LongAssembler::new(),
            replays: crate::rekey::ReplayFilter::default(),
            alerter,
            guard: GuardBand::new(self.cfg.retrain.guard_windows),
            pending: Pending::new(&self.schema),
            durable: restored.footer.durable,
            last_consumed: None,
            last_committed: None,
            flush_seq: restored.footer.flush_seq,
            unacked: restored.alerts.unacked,
            known_alerts: restored.alerts.known,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn inspection() -> Inspection {
        Inspection {
            line: "l".into(),
            machine: "m".into(),
            ts_ms: 0,
            defect: false,
        }
    }

    #[test]
    fn labels_roll_like_the_other_tables() {
        let roll = RollPolicy {
            max_rows: 3,
            max_bytes: usize::MAX,
            max_age: Duration::from_secs(3600),
        };
        let mut lp = LabelPending::default();
        assert!(!lp.due(&roll, true), "nothing consumed, nothing to do");
        lp.consumed(7);
        assert!(lp.due(&roll, false), "dead letters only: commit at once");
        for offset in 8..10 {
            lp.push(inspection());
            lp.consumed(offset);
        }
        assert!(!lp.due(&roll, false), "2 rows, young: wait");
        assert!(lp.due(&roll, true), "graceful stop");
        lp.push(inspection());
        assert!(lp.due(&roll, false), "max_rows reached");
        let by_bytes = RollPolicy {
            max_bytes: lp.bytes,
            max_rows: usize::MAX,
            ..roll
        };
        assert!(lp.due(&by_bytes, false), "max_bytes reached");
        assert_eq!((lp.first_offset, lp.last_offset), (Some(7), Some(9)));
    }
}
