//! The alert topic: producing one alert and waiting for its acknowledgement, and, after a
//! crash, re-sending the alerts that were written but perhaps never acknowledged.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;

use super::durability::{self, AlertKey};
use super::{Pipeline, state_io};
use crate::alerter::Alert;
use crate::kafka;
use crate::telemetry::Health;

/// Why an alert did not reach the alert topic.
#[derive(Debug, thiserror::Error)]
pub enum SendAlertError {
    /// The alert could not be encoded as JSON (nothing was sent: an empty message would be
    /// worse than none).
    #[error("alert {alert_id} could not be encoded as JSON: {source}")]
    Encode {
        /// The alert's id.
        alert_id: String,
        /// The encoder's error.
        source: serde_json::Error,
    },
    /// The broker refused the message (a permanent error), or the producer was dropped.
    #[error("alert {alert_id} not acknowledged by the broker: {source}")]
    NotAcknowledged {
        /// The alert's id.
        alert_id: String,
        /// The producer's error.
        source: KafkaError,
    },
}

/// Produces `alert` to `topic` (key: the machine, value: its JSON) and waits for the broker's
/// acknowledgement as long as it takes ([`kafka::await_ack`]: through an outage the producer
/// retries, idempotently; after `patience` the broker is reported unreachable).
pub(super) async fn send_alert(
    producer: &kafka::Producer,
    topic: &str,
    alert: &Alert,
    health: &Health,
    patience: Duration,
) -> Result<(), SendAlertError> {
    let payload = serde_json::to_string(alert).map_err(|source| SendAlertError::Encode {
        alert_id: alert.alert_id.clone(),
        source,
    })?;
    let not_acked = |source| SendAlertError::NotAcknowledged {
        alert_id: alert.alert_id.clone(),
        source,
    };
    let delivery = loop {
        let record = FutureRecord::to(topic)
            .key(&alert.machine)
            .payload(&payload);
        match producer.send_result(record) {
            Ok(d) => break d,
            Err((e, _)) if kafka::is_queue_full(&e) => {
                health.tick();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err((e, _)) => return Err(not_acked(e)),
        }
    };
    kafka::await_ack(delivery, health, patience, &alert.alert_id)
        .await
        .map_err(not_acked)
}

impl Pipeline {
    /// After a crash: alerts durable in Parquet but perhaps never acknowledged are sent again,
    /// unless the alert topic already holds them (so none is lost and none repeated).
    pub(super) async fn reconcile_alerts(
        &mut self,
        p: i32,
        producer: &kafka::Producer,
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
            send_alert(
                producer,
                &self.cfg.kafka.alerts_topic,
                a,
                &self.health,
                self.cfg.kafka.ack_timeout,
            )
            .await
            .context("re-sending an alert")?;
        }
        if let Some(seq) = self
            .parts
            .get(&p)
            .and_then(|st| durability::acked_through(st.flush_seq))
        {
            let out = &self.out;
            super::flush::until_stored(&self.health, "the ack marker", || {
                state_io::write_acked_marker(out, p, seq)
            })
            .await?;
        }
        Ok(())
    }
}
