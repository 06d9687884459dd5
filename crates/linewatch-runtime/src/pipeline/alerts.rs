//! The alert topic: producing one alert and waiting for its acknowledgement, and, after a
//! crash, re-sending the alerts that were written but perhaps never acknowledged.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::durability::{self, AlertKey};
use super::{Pipeline, state_io};
use crate::alerter::Alert;
use crate::kafka;

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
    /// The broker did not acknowledge the message within the timeout.
    #[error("alert {alert_id} not acknowledged by the broker: {source}")]
    NotAcknowledged {
        /// The alert's id.
        alert_id: String,
        /// The producer's error.
        source: KafkaError,
    },
}

/// Produces `alert` to `topic` (key: the machine, value: its JSON) and waits for the broker's
/// acknowledgement.
pub(super) async fn send_alert(
    producer: &FutureProducer,
    topic: &str,
    alert: &Alert,
    timeout: Duration,
) -> Result<(), SendAlertError> {
    let payload = serde_json::to_string(alert).map_err(|source| SendAlertError::Encode {
        alert_id: alert.alert_id.clone(),
        source,
    })?;
    producer
        .send(
            FutureRecord::to(topic)
                .key(&alert.machine)
                .payload(&payload),
            timeout,
        )
        .await
        .map(|_| ())
        .map_err(|(source, _)| SendAlertError::NotAcknowledged {
            alert_id: alert.alert_id.clone(),
            source,
        })
}

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
            send_alert(
                producer,
                &self.cfg.kafka.alerts_topic,
                a,
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
            state_io::write_acked_marker(&self.cfg.sink.out, p, seq)
                .context("recording the alert acknowledgement")?;
        }
        Ok(())
    }
}
