//! Writing and committing, on every tick: idle machines' windows are closed; a partition's
//! buffer is written when the roll policy says so (alerts file, scores file, then its alerts
//! are produced and acknowledged); labels likewise; then each partition's offset is committed
//! as far as what is durable allows ([`super::durability::next_commit_offset`]).

use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use super::alerts::send_alert;
use super::durability;
use super::partition::{LabelPending, Pending};
use super::{Pipeline, state_io};
use crate::kafka::{self, LwContext};
use crate::output;
use crate::telemetry::Health;
use crate::telemetry::events::{
    AlertAcknowledged, CountedTable, LabelsFileWritten, OpenWindows, ParquetFilesWritten,
};
use linewatch_sink::FileName;

impl Pipeline {
    /// Writes due buffers, sends their alerts, commits what is durable. With `force` (the
    /// graceful stop) every buffer is due and the commit is synchronous.
    pub(super) async fn on_tick(
        &mut self,
        consumer: &StreamConsumer<LwContext>,
        producer: &kafka::Producer,
        force: bool,
    ) -> anyhow::Result<()> {
        self.health.tick();
        // No offset is committed past a dead letter the broker has not acknowledged.
        self.settle_dead_letters().await?;
        let mut tpl = TopicPartitionList::new();
        let parts: Vec<i32> = self.parts.keys().copied().collect();
        let mut open_windows = 0usize;
        // (partition, its last commit before this one): restored if the commit fails, so the
        // next tick commits the same offset again even when nothing new was consumed.
        let mut committing: Vec<(i32, Option<i64>)> = Vec::new();
        let lateness_ms = self.cfg.window.allowed_lateness.as_millis() as i64;
        for p in parts {
            let settled = match self.parts.get_mut(&p) {
                Some(st) => st.assembler.flush_settled(lateness_ms),
                None => Vec::new(),
            };
            for (reading, seq) in settled {
                self.window_assembled(p, &reading, seq)?;
            }
            if let Some(st) = self.parts.get_mut(&p)
                && st.windower.flush_idle() > 0
            {
                self.drain_closed(p);
            }
            let due = {
                let Some(st) = self.parts.get(&p) else {
                    continue;
                };
                open_windows += st.windower.stats().windows_open;
                let age = st.pending.since.map(|s| s.elapsed()).unwrap_or_default();
                !st.pending.rows.is_empty()
                    && (force
                        || self.roll.should_roll(
                            st.pending.rows.len(),
                            st.pending.rows.bytes(),
                            age,
                        ))
            };
            if self.parts.get(&p).is_some_and(|st| !st.unacked.is_empty()) {
                self.reconcile_alerts(p, producer).await?;
            }
            if due {
                self.flush_partition(p, producer).await?;
            }
            let Some(st) = self.parts.get_mut(&p) else {
                continue;
            };
            let Some(next) = durability::next_commit_offset(
                st.last_consumed,
                // The oldest reading held: in an open window, or in an instant being gathered.
                [
                    st.windower.min_unemitted_seq(),
                    st.assembler.min_pending_seq(),
                ]
                .into_iter()
                .flatten()
                .min(),
                st.pending.rows.min_seq(),
            ) else {
                continue;
            };
            if durability::advances(st.last_committed, next)
                && tpl
                    .add_partition_offset(&self.windowed_topic, p, Offset::Offset(next))
                    .is_ok()
            {
                committing.push((p, st.last_committed));
                st.last_committed = Some(next);
            }
        }
        OpenWindows {
            count: open_windows,
        }
        .emit();
        self.flush_labels(&mut tpl, force)?;
        if tpl.count() > 0 {
            let mode = if force {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            if let Err(e) = consumer.commit(&tpl, mode) {
                tracing::warn!(error = %e, "offset commit failed; will retry on the next tick");
                for (p, previous) in committing {
                    if let Some(st) = self.parts.get_mut(&p) {
                        st.last_committed = previous;
                    }
                }
            }
        }
        drop(tpl);
        self.publish();
        Ok(())
    }

    /// Writes the due label buffers (the same roll policy as the other tables) and adds their
    /// offsets to `tpl`. A buffer of dead letters only has no rows: its offsets are committed
    /// at once.
    fn flush_labels(&mut self, tpl: &mut TopicPartitionList, force: bool) -> anyhow::Result<()> {
        let label_parts: Vec<i32> = self.label_parts.keys().copied().collect();
        for p in label_parts {
            let Some(lp) = self.label_parts.get_mut(&p) else {
                continue;
            };
            let (Some(first), Some(last)) = (lp.first_offset, lp.last_offset) else {
                continue;
            };
            if !lp.due(&self.roll, force) {
                continue;
            }
            if !lp.rows.is_empty() {
                let batch = output::labels_batch(&lp.rows)?;
                let name = FileName::new(p, first, last)?;
                self.labels.write_file(&[batch], &name, &[])?;
                LabelsFileWritten.emit(&mut self.progress);
            }
            // Everything consumed is in the file: nothing of this partition is held.
            if let Some(next) = durability::next_commit_offset(Some(last), None, None) {
                tpl.add_partition_offset(
                    &self.cfg.kafka.inspections_topic,
                    p,
                    Offset::Offset(next),
                )?;
            }
            *lp = LabelPending::default();
        }
        Ok(())
    }

    /// Writes partition `p`'s buffer (alerts, then scores) and produces its alerts, waiting for
    /// the broker's acknowledgements. After this returns the buffer is durable.
    async fn flush_partition(&mut self, p: i32, producer: &kafka::Producer) -> anyhow::Result<()> {
        let Some(st) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        let (first, last) = durability::file_offsets(
            st.pending.first_offset,
            st.pending.last_offset,
            st.pending.rows.min_seq(),
            st.last_consumed,
        );
        let durable = durability::merged(&st.durable, &st.pending.durable_update);
        let seq = st.flush_seq;
        let meta = durability::footer_metadata(
            &self.cfg.pipeline.name,
            seq,
            &durable,
            st.alerter.snapshot(),
        )?;
        let name = FileName::new(p, first, last)?;
        // Alerts first: once the scores file exists (which skips these windows on replay),
        // their alerts must already be durable.
        let mut alerts = std::mem::take(&mut st.pending.alerts);
        alerts.retain(|(a, _)| !st.known_alerts.contains(&durability::alert_key(a)));
        if !alerts.is_empty() {
            let batch = output::alerts_batch(alerts.iter().map(|(a, _)| a))?;
            let table = &self.alerts;
            let written = until_stored(&self.health, "the alerts file", || {
                table.write_file(std::slice::from_ref(&batch), &name, &meta)
            })
            .await?;
            ParquetFilesWritten {
                table: CountedTable::Alerts,
                count: written.len(),
            }
            .emit(&mut self.progress);
        }
        let batch = st.pending.rows.finish()?;
        let table = &self.scores;
        let written = until_stored(&self.health, "the scores file", || {
            table.write_file(std::slice::from_ref(&batch), &name, &meta)
        })
        .await?;
        ParquetFilesWritten {
            table: CountedTable::Scores,
            count: written.len(),
        }
        .emit(&mut self.progress);
        // Durable in Parquet: now the alert topic.
        let topic = &self.cfg.kafka.alerts_topic;
        let patience = self.cfg.kafka.ack_timeout;
        let health = &*self.health;
        let sends = alerts.iter().map(|(a, closed_at)| async move {
            let sent = send_alert(producer, topic, a, health, patience).await;
            (sent, closed_at.elapsed().as_secs_f64())
        });
        for (sent, delay) in futures::future::join_all(sends).await {
            sent?;
            AlertAcknowledged { delay_s: delay }.emit(&mut self.progress);
        }
        if !alerts.is_empty() {
            let out = &self.out;
            until_stored(&self.health, "the ack marker", || {
                state_io::write_acked_marker(out, p, seq)
            })
            .await?;
        }
        st.durable = durable;
        st.flush_seq = seq + 1;
        st.pending = Pending::new(&self.schema);
        Ok(())
    }
}

/// Runs `write` (of a table file or an ack marker under `sink.out`) until it succeeds. A
/// retryable failure (I/O, or an object-store request that failed through the client's own
/// retries) is waited out: `linewatch_sink_up` 0 and `/readyz` 503 meanwhile, retries after
/// 1 s, doubling to 30 s, the loop alive but consuming nothing, so nothing piles up and no
/// offset is committed past the unwritten rows. Any other error is returned.
pub(super) async fn until_stored<T>(
    health: &Health,
    what: &str,
    mut write: impl FnMut() -> linewatch_sink::Result<T>,
) -> anyhow::Result<T> {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);
    let mut delay = FIRST;
    loop {
        match write() {
            Ok(v) => {
                health.sink_available();
                return Ok(v);
            }
            Err(e) if e.is_retryable() => {
                health.sink_unavailable(&e.to_string());
                tracing::warn!(what, retry_in_s = delay.as_secs(), error = %e, "write failed");
                let until = Instant::now() + delay;
                while Instant::now() < until {
                    health.tick();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                delay = (delay * 2).min(MAX);
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("writing {what}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_failing_write_is_retried_until_it_succeeds_and_the_outage_reported() {
        let health = Health::default();
        let mut calls = 0;
        let started = Instant::now();
        let got = until_stored(&health, "a file", || {
            calls += 1;
            if calls == 1 {
                assert!(health.sink_down_for().is_none());
                Err(linewatch_sink::SinkError::Store {
                    location: "s3://b/k".into(),
                    message: "connection refused".into(),
                })
            } else {
                // Retried after the first delay, with the outage reported meanwhile.
                assert!(health.sink_down_for().is_some());
                assert!(health.readiness(Duration::from_secs(5)).is_err());
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!((got, calls), (7, 2));
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert!(health.sink_down_for().is_none(), "up again after the write");
        assert!(health.readiness(Duration::from_secs(5)).is_ok());
    }

    #[tokio::test]
    async fn a_write_that_cannot_succeed_is_an_error_at_once() {
        let health = Health::default();
        health.tick();
        let e = until_stored(
            &health,
            "the scores file",
            || -> linewatch_sink::Result<()> {
                Err(linewatch_sink::SinkError::InvalidFileName("x".into()))
            },
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("writing the scores file"), "{e}");
        assert!(health.sink_down_for().is_none());
    }
}
