//! Helpers shared by the tests that talk to the real broker started by `scripts/test.sh`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

pub mod proxy;
pub mod run;

/// The broker address from `LINEWATCH_TEST_BROKERS`. Tests that need the broker fail loudly
/// when it is absent: run them through `./scripts/test.sh`, which starts one.
pub fn brokers() -> String {
    match std::env::var("LINEWATCH_TEST_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "LINEWATCH_TEST_BROKERS is not set: this test needs a Kafka-compatible broker. \
             Run the suite with ./scripts/test.sh, which starts one."
        ),
    }
}

/// A name unique to this process and call, so reruns never share topics or offsets.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates topics through the Kafka admin API.
pub async fn create_topics(topics: &[(&str, i32)]) {
    create_topics_on(&brokers(), topics).await;
}

/// Creates topics on the broker at `brokers`.
pub async fn create_topics_on(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

pub fn producer() -> FutureProducer {
    producer_on(&brokers())
}

/// A producer for the broker at `brokers`.
pub fn producer_on(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// A producer that puts every message in its own record batch. tansu 0.6.0 serves a fetch
/// only from a record-batch boundary (a consumer positioned inside a batch receives nothing
/// until the next batch), so a test that resumes from a committed offset in the middle of
/// earlier data must produce that data one message per batch.
pub fn producer_unbatched() -> FutureProducer {
    producer_unbatched_on(&brokers())
}

/// [`producer_unbatched`] for the broker at `brokers`.
pub fn producer_unbatched_on(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer")
}

/// Produces (key, payload) pairs and waits for every acknowledgement. Messages are enqueued
/// in chunks without waiting, then the chunk's acknowledgements are awaited.
pub async fn produce(p: &FutureProducer, topic: &str, messages: &[(String, Vec<u8>)]) {
    for chunk in messages.chunks(5000) {
        let mut pending = Vec::with_capacity(chunk.len());
        for (k, v) in chunk {
            let mut record = FutureRecord::to(topic).key(k).payload(v);
            loop {
                match p.send_result(record) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((e, r)) => {
                        assert!(
                            matches!(
                                e,
                                rdkafka::error::KafkaError::MessageProduction(
                                    rdkafka::types::RDKafkaErrorCode::QueueFull
                                )
                            ),
                            "produce: {e}"
                        );
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }
        for f in pending {
            f.await
                .expect("delivery future dropped")
                .map_err(|(e, _)| e)
                .expect("delivery");
        }
    }
}

/// A consumed message: key, payload and headers.
#[derive(Debug, Clone)]
pub struct Received {
    pub partition: i32,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Reads every message of `topic` from the beginning up to the high watermarks as they are now.
pub fn read_all(topic: &str, partitions: i32) -> Vec<Received> {
    read_all_on(&brokers(), topic, partitions)
}

/// Every message of `topic` on the broker at `brokers`.
pub fn read_all_on(brokers: &str, topic: &str, partitions: i32) -> Vec<Received> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut highs = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        highs.insert(p, high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    drop(tpl);
    let mut out = Vec::new();
    let mut next: HashMap<i32, i64> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Until every partition reached its high watermark, then until nothing more arrives for
    // two seconds (a broker may count batch offsets differently from one per message).
    let mut idle_since = std::time::Instant::now();
    loop {
        let reached = highs
            .iter()
            .all(|(p, h)| next.get(p).copied().unwrap_or(0) >= *h);
        if reached && idle_since.elapsed() > Duration::from_secs(2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading {topic}"
        );
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        idle_since = std::time::Instant::now();
        let m = m.expect("kafka error");
        next.insert(m.partition(), m.offset() + 1);
        let mut headers = HashMap::new();
        if let Some(h) = m.headers() {
            for i in 0..h.count() {
                let hdr = h.get(i);
                headers.insert(
                    hdr.key.to_string(),
                    String::from_utf8_lossy(hdr.value.unwrap_or_default()).to_string(),
                );
            }
        }
        out.push(Received {
            partition: m.partition(),
            key: m.key().map(|k| String::from_utf8_lossy(k).to_string()),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    out
}

/// Rows of every Parquet file under `root`, a folder or an object-store prefix (0 when it
/// does not exist).
pub fn parquet_rows(root: impl Into<linewatch_sink::Location>) -> usize {
    linewatch_sink::read_all(root)
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum()
}

/// A scratch folder, kept after the test when `LINEWATCH_TEST_KEEP` is set (for debugging).
pub fn workdir() -> tempfile::TempDir {
    let mut dir = tempfile::tempdir().expect("tempdir");
    if std::env::var_os("LINEWATCH_TEST_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    dir
}
