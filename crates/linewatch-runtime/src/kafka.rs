//! The Kafka edge: client configuration, the consumer's rebalance hook, dead letters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::PipelineConfig;
use crate::telemetry::Health;

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

/// The producer's config (alerts and dead letters): idempotent, acknowledged by all replicas,
/// and never giving up on a message (`message.timeout.ms = 0`, infinite): through a broker
/// outage librdkafka retries delivery until the broker is back, and idempotence keeps a
/// retried message from being written twice. The pipeline waits for acknowledgements with
/// [`await_ack`], which reports an outage after `kafka.ack_timeout` but never fails on time.
pub fn producer_config(cfg: &PipelineConfig) -> ClientConfig {
    let mut c = client_config(&cfg.kafka.brokers, &BTreeMap::new());
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "0")
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
/// itself must return quickly, so it only queues), reports the brokers down when librdkafka
/// says all are, and logs client errors at most once per [`ERROR_LOG_EVERY`] (an outage
/// would otherwise log one line per retry).
#[derive(Clone, Default)]
pub struct LwContext {
    events: Arc<Mutex<Vec<PartitionEvent>>>,
    health: Option<Arc<Health>>,
    errors: Arc<Mutex<ErrorLog>>,
}

/// How often client errors are logged during a run of them.
pub const ERROR_LOG_EVERY: Duration = Duration::from_secs(30);

/// Client errors since the last one logged.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    /// Whether to log now, and how many were suppressed since the last line.
    fn should_log(&mut self) -> Option<u64> {
        let due = self.last.is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY);
        if due {
            self.last = Some(Instant::now());
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

impl LwContext {
    /// A context that reports broker state to `health`.
    pub fn with_health(health: Arc<Health>) -> Self {
        Self {
            health: Some(health),
            ..Self::default()
        }
    }

    /// Logs a consumer error, at most once per [`ERROR_LOG_EVERY`], with the count of those
    /// not logged since.
    pub fn log_error(&self, error: &dyn std::fmt::Display) {
        let due = match self.errors.lock() {
            Ok(mut l) => l.should_log(),
            Err(poisoned) => poisoned.into_inner().should_log(),
        };
        if let Some(suppressed) = due {
            tracing::warn!(error = %error, suppressed, "Kafka client error (repeats are logged every 30 s)");
        }
    }

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

/// The producer of alerts and dead letters, with the same quiet error reporting.
pub type Producer = FutureProducer<LwContext>;

impl ClientContext for LwContext {
    /// librdkafka's own log lines: warnings and errors through the rate limit (a broker
    /// outage makes one per reconnect attempt), the rest at debug.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        if fac == "CONFWARN" {
            // `kafka.properties` reach every client, so a producer property set there is
            // noted by each consumer: a fact about the configuration, not a client error.
            tracing::info!(target: "librdkafka", "configuration note: {log_message}");
            return;
        }
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning => {
                self.log_error(&format!("librdkafka {fac}: {log_message}"));
            }
            _ => tracing::debug!(target: "librdkafka", "{fac}: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if let KafkaError::Global(RDKafkaErrorCode::PartitionEOF) = error {
            // The end of a partition reached (the re-keying stage asks to be told): not an
            // error.
            tracing::debug!(target: "librdkafka", "{reason}");
            return;
        }
        if let (Some(h), KafkaError::Global(RDKafkaErrorCode::AllBrokersDown)) =
            (&self.health, &error)
        {
            h.broker_unreachable();
        }
        self.log_error(&format!("{error}: {reason}"));
    }
}

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

/// A message handed to the producer (a dead letter, a re-keyed reading), its
/// acknowledgement not yet awaited ([`settle`]).
pub struct PendingDelivery {
    /// `topic/partition@offset` of the message it concerns (for errors).
    pub source: String,
    delivery: DeliveryFuture,
}

impl PendingDelivery {
    /// The delivery of a message concerning `source` (`topic/partition@offset`).
    pub fn new(source: String, delivery: DeliveryFuture) -> Self {
        Self { source, delivery }
    }
}

/// A bad message as a record for `<topic><suffix>`: its original key and payload, the reason
/// code, the detail and the origin in headers. Enqueued without waiting (dead letters go out
/// at the rate the broker accepts them); `Err` carries the producer's refusal, a full queue
/// included (settle what is pending and try again).
#[allow(clippy::too_many_arguments)]
pub fn enqueue_dead_letter(
    producer: &Producer,
    topic: &str,
    suffix: &str,
    partition: i32,
    offset: i64,
    key: Option<&[u8]>,
    payload: &[u8],
    reason: &str,
    detail: &str,
) -> Result<PendingDelivery, KafkaError> {
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
    let delivery = producer.send_result(record).map_err(|(e, _)| e)?;
    Ok(PendingDelivery { source, delivery })
}

/// Whether the producer refused a message only because its queue is full.
pub fn is_queue_full(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
    )
}

/// Awaits every pending delivery, oldest first (see [`await_ack`]).
///
/// # Errors
/// The first delivery the broker refused, naming the message it concerns.
pub async fn settle(
    pending: Vec<PendingDelivery>,
    health: &Health,
    patience: Duration,
) -> anyhow::Result<()> {
    for p in pending {
        await_ack(p.delivery, health, patience, &p.source)
            .await
            .with_context(|| format!("the message sent for {} was not acknowledged", p.source))?;
    }
    Ok(())
}

/// Waits for one acknowledgement, as long as it takes: the producer retries through an
/// outage (see [`producer_config`]). While it waits the loop counts as alive (`/healthz`);
/// after `patience` (`kafka.ack_timeout`) the broker is reported unreachable
/// (`linewatch_broker_up` 0, `/readyz` 503, one warning), and reachable again on the ack.
///
/// # Errors
/// The broker refused the message (a permanent error such as authorization or an unknown
/// topic), or the producer was dropped.
pub async fn await_ack(
    delivery: DeliveryFuture,
    health: &Health,
    patience: Duration,
    what: &str,
) -> Result<(), KafkaError> {
    tokio::pin!(delivery);
    let started = Instant::now();
    let mut reported = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(1), &mut delivery).await {
            Ok(Ok(Ok(_))) => {
                health.broker_reachable();
                return Ok(());
            }
            Ok(Ok(Err((e, _)))) => return Err(e),
            Ok(Err(_dropped)) => return Err(KafkaError::Canceled),
            Err(_waiting) => {
                health.tick();
                if !reported && started.elapsed() >= patience {
                    reported = true;
                    health.broker_unreachable();
                    tracing::warn!(
                        id = what,
                        waited_s = started.elapsed().as_secs(),
                        "no acknowledgement from the broker yet; delivery is retried until it \
                         arrives, and consumption waits"
                    );
                }
            }
        }
    }
}

/// A consumer's lag: the messages between its position and the high watermarks, over its
/// assigned partitions, and whether the broker answered. The lag is `None` when unknown (no
/// partition assigned, no position yet, a broker that did not answer within 2 s), never 0.
/// Blocks up to 2 s per partition while the broker does not answer.
pub fn consumer_lag<C: ConsumerContext>(
    consumer: &rdkafka::consumer::StreamConsumer<C>,
) -> (Option<i64>, bool) {
    use rdkafka::Offset;
    use rdkafka::consumer::Consumer;
    const WAIT: Duration = Duration::from_secs(2);
    match consumer.position() {
        Ok(position) if position.count() > 0 => {
            let mut total = Some(0i64);
            let mut answered = true;
            for e in position.elements() {
                let Offset::Offset(pos) = e.offset() else {
                    total = None;
                    continue;
                };
                match consumer.fetch_watermarks(e.topic(), e.partition(), WAIT) {
                    Ok((_, high)) => total = total.map(|t| t + (high - pos).max(0)),
                    Err(_) => {
                        answered = false;
                        total = None;
                        break;
                    }
                }
            }
            // Lists returned by the consumer go before it does (rd_kafka_destroy hang).
            drop(position);
            (total, answered)
        }
        _ => (None, consumer.fetch_metadata(None, WAIT).is_ok()),
    }
}

/// How long [`recent_alert_keys`] goes on reading after the reported high watermarks, until
/// no message arrives.
pub const ALERT_READ_QUIET: Duration = Duration::from_secs(1);

/// The `(alert_id, state)` pairs among the newest `max_per_partition` messages of each
/// partition of the alert topic (reads without joining a group, then lets go).
///
/// Reads until every partition reached the high watermark it reported, then on until nothing
/// arrives for [`ALERT_READ_QUIET`]: a broker may report the high watermark as one past the
/// *first* offset of its last record batch (tansu 0.6.0 does), and stopping there would miss
/// the rest of that batch, so a re-send after a crash would repeat an alert already on the
/// topic. Errors: metadata, watermarks or a fetch failing, or 60 s without reaching the end.
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
    let mut last_message = std::time::Instant::now();
    while !ends.is_empty() || last_message.elapsed() < ALERT_READ_QUIET {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("timed out reading the alert topic {topic}");
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        last_message = std::time::Instant::now();
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
