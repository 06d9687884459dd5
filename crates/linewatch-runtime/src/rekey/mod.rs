//! The re-keying stage (`kafka.rekey`): readings produced without the machine as their key
//! (MQTT bridges, Connect sources with a null key) are forwarded to an internal topic, each to
//! the partition of its machine, so that one windower sees all of a machine's readings; as
//! Kafka Streams does with its repartition topics.
//!
//! Each replica runs the stage beside its windowing loop, in a consumer group of its own
//! (`<group id>-rekey`) on the readings topic. A message is forwarded unchanged (key, payload,
//! headers, timestamp) plus two headers naming its source partition and offset; the stage's
//! partitions go out merged by event time ([`Aligner`]), so that a machine's readings reach
//! its windower in order even when the partitions are read at uneven paces. A readings
//! offset is committed only after the broker acknowledged every message forwarded before it,
//! so a crash or a rebalance forwards some messages again (at-least-once), and the windowing
//! side drops those copies by their source offsets ([`ReplayFilter`]): each reading is
//! windowed once.
//!
//! # Layout
//! - this file: the stage's loop (consume, forward, await acknowledgements, commit) and the
//!   internal topic's creation;
//! - `align.rs`: the k-way merge by event time of the partitions the stage reads;
//! - `route.rs`: the pure rules: the machine's partition, the source headers, the filter.

mod align;
mod route;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

pub use align::{Aligner, Release};
pub use route::{
    ReplayFilter, Route, SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER, SourceOffset,
    machine_partition, route_of,
};

use crate::config::PipelineConfig;
use crate::kafka::{self, LwContext, PartitionEvent};
use crate::telemetry::Health;
use crate::telemetry::events::{RekeyForwarded, RekeyLag};
use linewatch_window::ReadingsDecoder;

/// Forwarded messages that may wait for their acknowledgements at once, by count and by
/// payload bytes; past either, the stage waits for them and commits before reading on.
const MAX_PENDING: usize = 10_000;
const MAX_PENDING_BYTES: usize = 32 << 20;
/// How often the stage waits for what it forwarded and commits, when not sooner.
const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// Messages the event-time merge may hold (about 24 MiB of 240-byte readings).
const ALIGN_CAPACITY: usize = 100_000;
/// How long a message waits for the partitions at their end, in case they deliver a burst
/// (a producer catching up writes to every partition within milliseconds).
const ALIGN_GRACE: Duration = Duration::from_millis(500);
/// How long the merge waits for a partition that delivers nothing and is not at its end.
const ALIGN_IDLE: Duration = Duration::from_secs(10);

/// The source header values of a message read from a readings topic.
pub fn source_of(m: &BorrowedMessage<'_>) -> Result<Option<SourceOffset>, String> {
    let Some(headers) = m.headers() else {
        return Ok(None);
    };
    let mut partition = None;
    let mut offset = None;
    for h in headers.iter() {
        match h.key {
            SOURCE_PARTITION_HEADER => partition = h.value,
            SOURCE_OFFSET_HEADER => offset = h.value,
            _ => {}
        }
    }
    SourceOffset::from_headers(partition, offset)
}

/// Creates the re-keyed topic when it is missing, with the readings topic's partition count
/// and replication factor, and returns its partition count.
///
/// # Errors
/// The readings topic is unknown to the broker, or the broker refused the topic or did not
/// answer within 10 s.
pub async fn ensure_topic(cfg: &PipelineConfig) -> anyhow::Result<i32> {
    const WAIT: Duration = Duration::from_secs(10);
    // Asking for the metadata of a missing topic must not create it with the broker's default
    // partition count (brokers with auto.create.topics.enable do, for clients that allow it).
    let admin: AdminClient<DefaultClientContext> =
        kafka::client_config(&cfg.kafka.brokers, &cfg.kafka.properties)
            .set("allow.auto.create.topics", "false")
            .create()
            .context("creating the Kafka admin client")?;
    let topic = cfg.rekey_topic();
    let shape = |name: &str| -> anyhow::Result<Option<(i32, i32)>> {
        let md = admin
            .inner()
            .fetch_metadata(Some(name), WAIT)
            .with_context(|| format!("reading the metadata of topic {name}"))?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| {
                let replicas = t.partitions()[0].replicas().len();
                (t.partitions().len() as i32, replicas.max(1) as i32)
            }))
    };
    if let Some((partitions, _)) = shape(&topic)? {
        return Ok(partitions);
    }
    let (partitions, replication) = shape(&cfg.kafka.readings_topic)?.with_context(|| {
        format!(
            "kafka.rekey: the readings topic {} does not exist, so the re-keyed topic {topic} \
             cannot take its partition count",
            cfg.kafka.readings_topic
        )
    })?;
    let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(replication));
    let results = admin
        .create_topics([&new], &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .with_context(|| format!("creating the re-keyed topic {topic}"))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(%topic, partitions, replication, "created the re-keyed topic"),
            // Another replica was first.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("creating the re-keyed topic {t}: {e}"),
        }
    }
    // The broker may take a moment to serve a new topic's metadata.
    for _ in 0..50 {
        if let Some((n, _)) = shape(&topic)? {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the re-keyed topic {topic} was created but its metadata never appeared")
}

/// The re-keying stage of one replica.
pub struct Rekeyer {
    cfg: PipelineConfig,
    decoder: ReadingsDecoder,
    health: Arc<Health>,
    topic: Arc<str>,
    partitions: i32,
    /// Read, routed, waiting for their turn in event time: (re-keyed partition, message).
    aligner: Aligner<(i32, OwnedMessage)>,
    pending: Vec<kafka::PendingDelivery>,
    pending_bytes: usize,
    /// Per readings partition, the offset to commit once `pending` is acknowledged.
    next: HashMap<i32, i64>,
}

impl Rekeyer {
    /// The stage for `cfg`, forwarding to its re-keyed topic of `partitions` partitions
    /// ([`ensure_topic`]); `decoder` reads the machine of each message as the windowing side
    /// will.
    pub fn new(
        cfg: PipelineConfig,
        decoder: ReadingsDecoder,
        health: Arc<Health>,
        partitions: i32,
    ) -> Self {
        let topic = cfg.rekey_topic().into();
        Self {
            cfg,
            decoder,
            health,
            topic,
            partitions,
            aligner: Aligner::new(ALIGN_CAPACITY, ALIGN_GRACE, ALIGN_IDLE),
            pending: Vec::new(),
            pending_bytes: 0,
            next: HashMap::new(),
        }
    }

    /// Forwards readings until `stop` turns true, then waits for what it forwarded and
    /// commits (messages still waiting in the merge are neither forwarded nor committed:
    /// the next owner reads them).
    ///
    /// # Errors
    /// The clients cannot be created, or the broker refused a forwarded message for good
    /// (authorization, an unknown topic): the replica stops rather than skip readings.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let ctx = LwContext::with_health(self.health.clone());
        let mut consumer_cfg = kafka::consumer_config(&self.cfg);
        consumer_cfg
            .set("group.id", format!("{}-rekey", self.cfg.group_id()))
            .set("enable.partition.eof", "true");
        let consumer: StreamConsumer<LwContext> = consumer_cfg
            .create_with_context(ctx.clone())
            .context("creating the re-keying consumer")?;
        let producer: kafka::Producer = kafka::producer_config(&self.cfg)
            .create_with_context(LwContext::with_health(self.health.clone()))
            .context("creating the re-keying producer")?;
        consumer
            .subscribe(&[self.cfg.kafka.readings_topic.as_str()])
            .context("subscribing the re-keying consumer")?;
        tracing::info!(from = %self.cfg.kafka.readings_topic, to = %self.topic,
            partitions = self.partitions, "re-keying readings by machine");
        let mut tick = tokio::time::interval(COMMIT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lag_tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                _ = lag_tick.tick() => RekeyLag {
                    messages: kafka::consumer_lag(&consumer).0,
                }
                .emit(),
                _ = tick.tick() => {
                    self.on_rebalance(ctx.take_events());
                    self.release(&producer, &consumer).await?;
                    self.settle_and_commit(&consumer, CommitMode::Async).await?;
                }
                msg = consumer.recv() => {
                    match msg {
                        Ok(m) => self.read(&m),
                        Err(KafkaError::PartitionEOF(p)) => {
                            self.aligner.at_end(p, std::time::Instant::now());
                        }
                        Err(e) => {
                            ctx.log_error(&e);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    self.release(&producer, &consumer).await?;
                }
            }
        }
        self.settle_and_commit(&consumer, CommitMode::Sync).await?;
        tracing::info!(
            waiting = self.aligner.len(),
            "re-keying stopped: everything forwarded is acknowledged and committed; messages \
             still waiting in the merge are left to the next owner"
        );
        Ok(())
    }

    /// Rebalances: an assigned partition is waited for by the merge; a revoked one's waiting
    /// messages are dropped (never forwarded, so never committed).
    fn on_rebalance(&mut self, events: Vec<PartitionEvent>) {
        let now = std::time::Instant::now();
        for e in events {
            match e {
                PartitionEvent::Assigned(parts) => {
                    for (_, p) in parts {
                        self.aligner.assign(p, now);
                    }
                }
                PartitionEvent::Revoked(parts) => {
                    for (_, p) in parts {
                        let dropped = self.aligner.revoke(p);
                        tracing::debug!(partition = p, dropped, "re-keying: partition revoked");
                    }
                }
            }
        }
    }

    /// Routes one readings message and puts it in the merge.
    fn read(&mut self, m: &BorrowedMessage<'_>) {
        let payload = m.payload().unwrap_or_default();
        let (to, ts) = match route_of(&mut self.decoder, payload, m.key()) {
            Some(r) => (
                machine_partition(&r.line, &r.machine, self.partitions),
                Some(r.ts_ms),
            ),
            // Undecodable: the windowing side dead-letters it with the reason.
            None => (m.partition().rem_euclid(self.partitions), None),
        };
        self.aligner.push(
            m.partition(),
            ts,
            (to, m.detach()),
            std::time::Instant::now(),
        );
    }

    /// Forwards every message the merge lets go now.
    async fn release(
        &mut self,
        producer: &kafka::Producer,
        consumer: &StreamConsumer<LwContext>,
    ) -> anyhow::Result<()> {
        while let Some((_, (to, m), why)) = self.aligner.pop(std::time::Instant::now()) {
            self.forward(to, &m, producer, consumer).await?;
            RekeyForwarded {
                aligned: why == Release::Aligned,
            }
            .emit();
            if self.pending.len() >= MAX_PENDING || self.pending_bytes >= MAX_PENDING_BYTES {
                self.settle_and_commit(consumer, CommitMode::Async).await?;
            }
        }
        Ok(())
    }

    /// Hands one readings message to the producer for re-keyed partition `to`.
    async fn forward(
        &mut self,
        to: i32,
        m: &OwnedMessage,
        producer: &kafka::Producer,
        consumer: &StreamConsumer<LwContext>,
    ) -> anyhow::Result<()> {
        let (p, o) = (m.partition().to_string(), m.offset().to_string());
        let mut headers = OwnedHeaders::new();
        if let Some(hs) = m.headers() {
            for h in hs.iter() {
                if h.key != SOURCE_PARTITION_HEADER && h.key != SOURCE_OFFSET_HEADER {
                    headers = headers.insert(h);
                }
            }
        }
        let headers = headers
            .insert(Header {
                key: SOURCE_PARTITION_HEADER,
                value: Some(&p),
            })
            .insert(Header {
                key: SOURCE_OFFSET_HEADER,
                value: Some(&o),
            });
        let topic = self.topic.clone();
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
            .partition(to)
            .payload(m.payload().unwrap_or_default())
            .headers(headers);
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        if let Some(ts) = m.timestamp().to_millis() {
            record = record.timestamp(ts);
        }
        let source = format!("{}/{}@{}", m.topic(), m.partition(), m.offset());
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    self.pending
                        .push(kafka::PendingDelivery::new(source, delivery));
                    break;
                }
                Err((e, back)) if kafka::is_queue_full(&e) => {
                    record = back;
                    self.settle_and_commit(consumer, CommitMode::Async).await?;
                }
                Err((e, _)) => {
                    return Err(e).with_context(|| format!("forwarding {source} to {topic}"));
                }
            }
        }
        self.pending_bytes += m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len);
        self.next.insert(m.partition(), m.offset() + 1);
        Ok(())
    }

    /// Waits for the acknowledgement of everything forwarded, then commits the readings
    /// offsets past it (`Async` while running, `Sync` at the stop). A commit refused because
    /// the partition moved to another member is logged: the new owner forwards those
    /// messages again and the windowing side drops the copies.
    async fn settle_and_commit(
        &mut self,
        consumer: &StreamConsumer<LwContext>,
        mode: CommitMode,
    ) -> anyhow::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        kafka::settle(pending, &self.health, self.cfg.kafka.ack_timeout)
            .await
            .context("a re-keyed reading was refused by the broker")?;
        if self.next.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &next) in &self.next {
            tpl.add_partition_offset(&self.cfg.kafka.readings_topic, p, Offset::Offset(next))
                .context("building the re-keying commit")?;
        }
        self.next.clear();
        if let Err(e) = consumer.commit(&tpl, mode) {
            tracing::warn!(error = %e, "re-keying commit refused (a rebalance?): the next \
                owner forwards from the last commit, and the copies are dropped");
        }
        Ok(())
    }
}
