//! `kafka.rekey` against the test broker (issue 12, case 3): readings produced without the
//! machine as key, spread over every readings partition, are re-keyed through the internal
//! topic and make each window once with all its readings, across a SIGKILL; copies that a
//! replay of the re-keying stage forwards again are dropped once each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::run::*;
use linewatch_runtime::rekey::{SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER, machine_partition};
use linewatch_sim::Simulator;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unkeyed_readings_are_rekeyed_by_machine_and_make_each_window_once_across_a_sigkill() {
    let t = topics("e2e-rekey").await;
    let dir = common::workdir();
    let (toml, out, _) = rekey_pipeline(dir.path(), "rekey", &t);
    let mut sim = Simulator::new(sim_config()).unwrap();
    let mut expected = BTreeMap::new();
    let p = common::producer_unbatched();
    // From the start of the simulated run (its warm-up, then faults).
    let mut until = sim_start_ms(&sim);
    let mut last_events = Vec::new();
    let mut chunks = Vec::new();
    for _ in 0..4 {
        until += 1_800_000;
        last_events = sim.next_events(until);
        chunks.push(messages(&last_events, &mut expected).0);
    }
    // A backlog, as after a stop of the replicas: the stage reads three partitions at uneven
    // paces and merges them by event time.
    for chunk in &chunks {
        produce_spread(&p, &t.readings, chunk).await;
    }
    let log = dir.path().join("run-0.log");
    let mut child = spawn(&toml, &log);
    let total = closed_by_watermark(&expected, &last_events).len();
    wait_for(
        "a third of the windows",
        &log,
        Duration::from_secs(180),
        || common::parquet_rows(out.join("scores")) > total / 3,
    );
    child.kill().unwrap(); // SIGKILL: neither stage flushes or commits
    child.wait().unwrap();
    // tansu may not hand a SIGKILLed member's partitions over before its session expires
    // (README, Testing).
    tokio::time::sleep(Duration::from_secs(13)).await;
    let last_log = dir.path().join("run-1.log");
    let child = spawn(&toml, &last_log);
    wait_for_windows(&out, &last_log, total);
    // Caught up, every partition at its end: then a burst, five minutes of the line produced
    // at once over the three partitions (a bridge reconnecting). The merge waits its grace
    // for the partitions at their end, so the burst is merged too, not let through by one
    // partition's share.
    until += 300_000;
    last_events = sim.next_events(until);
    produce_spread(&p, &t.readings, &messages(&last_events, &mut expected).0).await;
    let expected = closed_by_watermark(&expected, &last_events);
    wait_for_windows(&out, &last_log, expected.len());
    terminate(child, &last_log);
    // Each window once, with exactly its readings: no machine split over partitions.
    check_windows(&out, &expected);
    let summary = stop_summary(&last_log);
    assert!(
        summary.contains("machines_on_several_partitions=0") && summary.contains("late=0"),
        "{summary}"
    );
    let killed = std::fs::read_to_string(&log).unwrap();
    assert!(
        !killed.contains("readings of one machine on several partitions"),
        "a machine split before the kill"
    );
    // The internal topic took the readings topic's partition count.
    let forwarded = common::read_all(&format!("{}-rekeyed", t.readings), 3);
    let mut parts = forwarded.iter().map(|m| m.partition).collect::<Vec<_>>();
    parts.sort_unstable();
    parts.dedup();
    assert_eq!(parts, vec![0, 1, 2]);
}

/// Deterministic replays: the test writes the re-keyed topic itself, as a re-keying stage
/// that crashed and forwarded 40 messages a second time would. The copies fall into windows
/// still open; without the filter those windows would count their readings twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_forwarded_again_by_the_rekeying_stage_are_dropped() {
    let t = topics("e2e-rekey-replay").await;
    let internal = format!("{}-rekeyed", t.readings);
    common::create_topics(&[(&internal, 3)]).await;
    let dir = common::workdir();
    let (toml, out, _) = rekey_pipeline(dir.path(), "replay", &t);
    let mut sim = Simulator::new(sim_config()).unwrap();
    let mut expected = BTreeMap::new();
    let start = sim_start_ms(&sim);
    let events = sim.next_events(start + 600_000);
    let (readings, _) = messages(&events, &mut expected);
    // Source partition 1, offsets 0..n; forwarded in order, with 40 forwarded again after
    // offset 200 (a replay from a commit at 160).
    let mut order: Vec<usize> = (0..=200).collect();
    order.extend(160..200);
    order.extend(201..readings.len());
    let p = common::producer_unbatched();
    for &i in &order {
        let payload: serde_json::Value = serde_json::from_slice(&readings[i].1).unwrap();
        let machine = payload["machine"].as_str().unwrap();
        let line = payload["line"].as_str().unwrap();
        let offset = i.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: SOURCE_PARTITION_HEADER,
                value: Some("1"),
            })
            .insert(Header {
                key: SOURCE_OFFSET_HEADER,
                value: Some(&offset),
            });
        let record = FutureRecord::<(), _>::to(&internal)
            .partition(machine_partition(line, machine, 3))
            .payload(&readings[i].1)
            .headers(headers);
        p.send(record, Duration::from_secs(30)).await.unwrap();
    }
    let log = dir.path().join("run.log");
    let child = spawn(&toml, &log);
    let expected = closed_by_watermark(&expected, &events);
    wait_for_windows(&out, &log, expected.len());
    terminate(child, &log);
    check_windows(&out, &expected);
    let summary = stop_summary(&log);
    assert!(summary.contains("rekey_replays_dropped=40"), "{summary}");
}
