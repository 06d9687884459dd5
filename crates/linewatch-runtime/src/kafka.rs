//! The Kafka edge: client configuration, the consumer's rebalance hook, dead letters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::PipelineConfig;

/// Header naming why a message was dead-lettered (a stable code such as `not_json`).
pub const DLQ_REASON_HEADER: &str = "linewatch.error";
/// Header with the human-readable detail of the error.
pub const DLQ_DETAIL_HEADER: &str = "linewatch.detail";
/// Headers giving the message's origin.
pub const DLQ_SOURCE_HEADER: &str = "linewatch.source";

/// Base client config: brokers plus the pass-through librdkafka properties (TLS, SASL, ...).
pub fn client_config(brokers: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

/// The consumer's config: a group with manual commits (offsets follow durability).
pub fn consumer_config(cfg: &PipelineConfig) -> ClientConfig {
    let mut c = client_config(&cfg.kafka.brokers, &BTreeMap::new());
    c.set("group.id", cfg.group_id())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("statistics.interval.ms", "0");
    for (k, v) in &cfg.kafka.properties {
        c.set(k, v);
    }
    c
}

/// The producer's config (alerts and dead letters): idempotent, acknowledged by all replicas.
pub fn producer_config(cfg: &PipelineConfig) -> ClientConfig {
    let mut c = client_config(&cfg.kafka.brokers, &BTreeMap::new());
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "message.timeout.ms",
            cfg.kafka.ack_timeout.as_millis().to_string(),
        )
        .set("linger.ms", "5");
    for (k, v) in &cfg.kafka.properties {
        c.set(k, v);
    }
    c
}

/// A partition assignment change seen by the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionEvent {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// Consumer context that records rebalances for the pipeline loop to act on (the callback
/// itself must return quickly, so it only queues).
#[derive(Clone, Default)]
pub struct LwContext {
    events: Arc<Mutex<Vec<PartitionEvent>>>,
}

impl LwContext {
    /// Takes the queued rebalance events, oldest first.
    pub fn take_events(&self) -> Vec<PartitionEvent> {
        match self.events.lock() {
            Ok(mut e) => std::mem::take(&mut *e),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    fn push(&self, e: PartitionEvent) {
        match self.events.lock() {
            Ok(mut v) => v.push(e),
            Err(poisoned) => poisoned.into_inner().push(e),
        }
    }
}

impl ClientContext for LwContext {}

impl ConsumerContext for LwContext {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect::<Vec<_>>();
            tracing::info!(?parts, "partitions revoked");
            self.push(PartitionEvent::Revoked(parts));
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect::<Vec<_>>();
                tracing::info!(?parts, "partitions assigned");
                self.push(PartitionEvent::Assigned(parts));
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Sends one bad message to `<topic><suffix>` with the reason in headers, and waits for the
/// broker's acknowledgement (its offset may only be committed after that).
#[allow(clippy::too_many_arguments)]
pub async fn dead_letter(
    producer: &FutureProducer,
    topic: &str,
    suffix: &str,
    partition: i32,
    offset: i64,
    key: Option<&[u8]>,
    payload: &[u8],
    reason: &str,
    detail: &str,
    timeout: Duration,
) -> Result<(), rdkafka::error::KafkaError> {
    let dlq = format!("{topic}{suffix}");
    let source = format!("{topic}/{partition}@{offset}");
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: DLQ_REASON_HEADER,
            value: Some(reason),
        })
        .insert(Header {
            key: DLQ_DETAIL_HEADER,
            value: Some(detail),
        })
        .insert(Header {
            key: DLQ_SOURCE_HEADER,
            value: Some(&source),
        });
    let mut record: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to(&dlq).payload(payload).headers(headers);
    if let Some(k) = key {
        record = record.key(k);
    }
    producer
        .send(record, timeout)
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

/// The `(alert_id, state)` pairs among the newest `max_per_partition` messages of each
/// partition of the alert topic (reads without joining a group, then lets go).
pub fn recent_alert_keys(
    cfg: &PipelineConfig,
    max_per_partition: i64,
) -> anyhow::Result<std::collections::HashSet<(String, String)>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};

    let topic = &cfg.kafka.alerts_topic;
    let mut c = client_config(&cfg.kafka.brokers, &cfg.kafka.properties);
    c.set("group.id", format!("{}-reconcile", cfg.group_id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = c.create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    drop(metadata);
    let mut ends = std::collections::HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(
                topic,
                p,
                Offset::Offset((high - max_per_partition).max(low)),
            )?;
        }
    }
    let mut keys = std::collections::HashSet::new();
    if ends.is_empty() {
        return Ok(keys);
    }
    consumer.assign(&tpl)?;
    drop(tpl);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("timed out reading the alert topic {topic}");
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default())
            && let (Some(id), Some(state)) = (v["alert_id"].as_str(), v["state"].as_str())
        {
            keys.insert((id.to_string(), state.to_string()));
        }
        if ends
            .get(&m.partition())
            .is_some_and(|&h| m.offset() + 1 >= h)
        {
            ends.remove(&m.partition());
        }
    }
    Ok(keys)
}
