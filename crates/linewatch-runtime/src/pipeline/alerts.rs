//! The alert topic after a crash: re-sending the alerts that were written but perhaps never
//! acknowledged.

use anyhow::Context as _;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::durability::{self, AlertKey};
use super::{Pipeline, state_io};
use crate::kafka;

impl Pipeline {
    /// After a crash: alerts durable in Parquet but perhaps never acknowledged are sent again,
    /// unless the alert topic already holds them (so none is lost and none repeated).
    pub(super) async fn reconcile_alerts(
        &mut self,
        p: i32,
        producer: &FutureProducer,
    ) -> anyhow::Result<()> {
        let Some(st) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        let unacked = std::mem::take(&mut st.unacked);
        let on_topic: std::collections::HashSet<AlertKey> =
            kafka::recent_alert_keys(&self.cfg, 100_000)
                .context("reading the alert topic to reconcile alerts after a restart")?;
        let missing = durability::missing_from_topic(&unacked, &on_topic);
        tracing::info!(
            partition = p,
            candidates = unacked.len(),
            resending = missing.len(),
            "reconciled alerts after restart"
        );
        for a in missing {
            let payload = serde_json::to_string(a)?;
            producer
                .send(
                    FutureRecord::to(&self.cfg.kafka.alerts_topic)
                        .key(&a.machine)
                        .payload(&payload),
                    self.cfg.kafka.ack_timeout,
                )
                .await
                .map_err(|(e, _)| e)
                .context("re-sending an alert")?;
        }
        if let Some(seq) = self
            .parts
            .get(&p)
            .and_then(|st| durability::acked_through(st.flush_seq))
        {
            state_io::write_acked_marker(&self.cfg.sink.out, p, seq)
                .context("recording the alert acknowledgement")?;
        }
        Ok(())
    }
}
