//! Produce and consume through rdkafka against the broker that `scripts/test.sh` starts, in a
//! consumer group with manual commits, and check the committed offsets: the building block the
//! pipeline's "offsets follow durability" rule stands on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const TOPIC: &str = "lw-roundtrip";

fn consumer(group: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("consumer")
}

/// Reads messages until `n` of those carrying `run` in their payload arrived; returns them as
/// (partition, offset, payload). Other runs' messages on the shared topic are skipped.
async fn consume_n(c: &StreamConsumer, run: &str, n: usize) -> Vec<(i32, i64, String)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.len() < n {
        let msg = tokio::time::timeout_at(deadline, c.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {n} messages", got.len()))
            .expect("kafka error while consuming");
        let payload = String::from_utf8(msg.payload().unwrap_or_default().to_vec()).unwrap();
        if payload.starts_with(run) {
            got.push((msg.partition(), msg.offset(), payload));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_consumer_commits_offsets_manually_and_resumes_there() {
    let brokers = common::brokers();
    let run = common::unique("run");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");

    // 30 messages over 6 keys: the default partitioner spreads keys over the 3 partitions.
    let total = 30;
    let mut produced: HashMap<i32, Vec<i64>> = HashMap::new();
    for i in 0..total {
        let key = format!("m-{}", i % 6);
        let payload = format!("{run}:{i}");
        let delivery = producer
            .send(
                FutureRecord::to(TOPIC).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivery");
        produced
            .entry(delivery.partition)
            .or_default()
            .push(delivery.offset);
    }
    assert!(
        produced.len() >= 2,
        "keys should spread over partitions: {produced:?}"
    );

    // First consumer: read the first half, commit exactly the next offset to read per partition.
    let group = common::unique("lw-group");
    let half = total / 2;
    let mut next_offsets: HashMap<i32, i64> = HashMap::new();
    {
        let c = consumer(&group);
        c.subscribe(&[TOPIC]).unwrap();
        let got = consume_n(&c, &run, half).await;
        let mut tpl = TopicPartitionList::new();
        for (p, o, _) in &got {
            let next = next_offsets.entry(*p).or_insert(0);
            *next = (*next).max(o + 1);
        }
        for (p, o) in &next_offsets {
            tpl.add_partition_offset(TOPIC, *p, Offset::Offset(*o))
                .unwrap();
        }
        c.commit(&tpl, CommitMode::Sync).expect("commit");

        let committed = c
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .expect("committed offsets");
        for (p, o) in &next_offsets {
            let elem = committed
                .find_partition(TOPIC, *p)
                .expect("partition in committed list");
            assert_eq!(
                elem.offset(),
                Offset::Offset(*o),
                "committed offset of partition {p}"
            );
        }
        // Drop the lists returned by the consumer before the consumer (rd_kafka_destroy hang).
        drop(committed);
        drop(tpl);
        c.unsubscribe();
    }

    // Second consumer, same group: resumes at the committed offsets, so it sees exactly the
    // messages the first one did not commit; none twice, none lost.
    let c = consumer(&group);
    c.subscribe(&[TOPIC]).unwrap();
    let rest = consume_n(&c, &run, total - half).await;
    for (p, o, _) in &rest {
        if let Some(next) = next_offsets.get(p) {
            assert!(
                o >= next,
                "partition {p}: offset {o} was already committed (next {next})"
            );
        }
    }
    let mut all: Vec<i64> = rest
        .iter()
        .map(|(_, _, payload)| payload.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        total - half,
        "each remaining message exactly once"
    );

    // Commit the end and check the group's committed offsets equal the high watermarks.
    let mut tpl = TopicPartitionList::new();
    for (p, offsets) in &produced {
        let last = offsets.iter().max().copied().unwrap();
        tpl.add_partition_offset(TOPIC, *p, Offset::Offset(last + 1))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).expect("final commit");
    let committed = c
        .committed_offsets(tpl.clone(), Duration::from_secs(10))
        .unwrap();
    for (p, offsets) in &produced {
        let last = offsets.iter().max().copied().unwrap();
        let (_, high) = c
            .fetch_watermarks(TOPIC, *p, Duration::from_secs(10))
            .unwrap();
        assert!(
            high > last,
            "high watermark {high} past our last offset {last}"
        );
        let elem = committed.find_partition(TOPIC, *p).unwrap();
        assert_eq!(elem.offset(), Offset::Offset(last + 1));
    }
    drop(committed);
    drop(tpl);
}

/// The alert reconciliation after a crash reads the alert topic back to learn which alerts
/// it already holds. Alerts produced together travel in one record batch; all of them must
/// be found, whatever high watermark the broker reports for that batch (tansu 0.6.0 reports
/// one past its first record), or an alert already on the topic would be sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_alert_topic_back_finds_every_alert_of_a_batch() {
    let topic = common::unique("lw-alerts-readback");
    common::create_topics(&[(&topic, 2)]).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("linger.ms", "50")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let mut expected = std::collections::HashSet::new();
    for round in 0..2 {
        let mut deliveries = Vec::new();
        for i in 0..6 {
            let id = format!("alert-{round}-{i}");
            let state = if i % 2 == 0 { "open" } else { "resolved" };
            let payload = serde_json::json!({ "alert_id": id, "state": state }).to_string();
            let record = FutureRecord::to(&topic).key("m-1").payload(&payload);
            deliveries.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("enqueue"),
            );
            expected.insert((id, state.to_string()));
        }
        for d in deliveries {
            d.await
                .expect("delivery future")
                .map_err(|(e, _)| e)
                .expect("delivery");
        }
    }
    let mut cfg = linewatch_runtime::config::PipelineConfig::default();
    cfg.kafka.brokers = common::brokers();
    cfg.kafka.alerts_topic = topic.clone();
    let found = tokio::task::spawn_blocking(move || {
        linewatch_runtime::kafka::recent_alert_keys(&cfg, 100_000)
    })
    .await
    .expect("reader thread")
    .expect("reading the alert topic");
    assert_eq!(found, expected, "alerts found on {topic}");
    // Only the newest messages of each partition when asked for fewer.
    let mut cfg = linewatch_runtime::config::PipelineConfig::default();
    cfg.kafka.brokers = common::brokers();
    cfg.kafka.alerts_topic = topic;
    let newest =
        tokio::task::spawn_blocking(move || linewatch_runtime::kafka::recent_alert_keys(&cfg, 3))
            .await
            .expect("reader thread")
            .expect("reading the alert topic");
    assert!(newest.contains(&("alert-1-5".to_string(), "resolved".to_string())));
    assert!(!newest.contains(&("alert-0-0".to_string(), "open".to_string())));
}
