//! End to end with the tables, ack markers and models on S3: the real broker and the S3 API
//! server (moto) that `scripts/test.sh` starts. A SIGKILL while files are being written, a
//! restart, then: every window once and complete, no alert twice, no object left behind that
//! is not a table file, an ack marker or part of a complete model version; the table read
//! back by pyarrow's S3 filesystem equals a local-disk run of the same readings. And two
//! replicas of one pipeline write one S3 table without overwriting each other's files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use common::run::*;
use linewatch_sim::Simulator;
use linewatch_sink::Location;

/// The bucket the test command created (`LINEWATCH_TEST_S3_BUCKET`); fails loudly without it,
/// like the broker tests without a broker.
fn bucket() -> String {
    for var in ["LINEWATCH_TEST_S3_ENDPOINT", "AWS_ENDPOINT"] {
        assert!(
            std::env::var_os(var).is_some(),
            "{var} is not set: run the tests with ./scripts/test.sh, which starts an S3 server"
        );
    }
    std::env::var("LINEWATCH_TEST_S3_BUCKET").unwrap_or_else(|_| "linewatch-test".into())
}

/// A fresh prefix in the test bucket: `s3://bucket/<unique>`.
fn s3_prefix(what: &str) -> String {
    format!("s3://{}/{}", bucket(), common::unique(what))
}

fn write_s3_pipeline(dir: &Path, t: &Topics, prefix: &str) -> (std::path::PathBuf, String) {
    let name = common::unique("s3").replace('-', "_");
    let toml = dir.join("pipeline-s3.toml");
    let text = pipeline_toml_at(
        &name,
        t,
        &format!("{prefix}/out"),
        &format!("{prefix}/out/models"),
    );
    std::fs::write(&toml, text).unwrap();
    (toml, name)
}

/// (machine, window start) -> (n_readings, temp_c mean) of a scores table.
fn windows_of(rows: &[ScoreRow]) -> BTreeMap<(String, i64), (u32, f64)> {
    rows.iter()
        .map(|r| ((r.0.clone(), r.1), (r.3, r.4)))
        .collect()
}

/// The scores table as pyarrow reads it from S3 (`scripts/s3-readback.py`).
fn pyarrow_windows(table_url: &str) -> BTreeMap<(String, i64), (u32, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3-readback.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(table_url)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "s3-readback.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["feature"], "temp_c__mean", "the first feature column");
    v["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                (w[0].as_str().unwrap().to_string(), w[1].as_i64().unwrap()),
                (w[2].as_u64().unwrap() as u32, w[3].as_f64().unwrap()),
            )
        })
        .collect()
}

/// Every object under `prefix` is a table file, an ack marker, or a file of a complete model
/// version; returns how many objects there are.
fn check_no_stray_objects(prefix: &Location, name: &str) -> usize {
    let objects = prefix.list().unwrap();
    let mut versions: HashMap<String, bool> = HashMap::new();
    for o in &objects {
        let parts: Vec<&str> = o.relative.split('/').collect();
        let ok = match parts.as_slice() {
            ["out", "scores" | "alerts" | "labels", date, line, file] => {
                date.starts_with("date=")
                    && line.starts_with("line=")
                    && linewatch_sink::FileName::parse(file).is_some()
            }
            ["out", "_state", marker] => marker
                .strip_prefix("alerts-acked-p")
                .is_some_and(|p| p.len() == 5 && p.bytes().all(|b| b.is_ascii_digit())),
            ["out", "models", n, version, rest @ ..] if *n == name && !rest.is_empty() => {
                let complete = versions.entry((*version).to_string()).or_default();
                *complete |= rest == ["_SUCCESS"];
                true
            }
            _ => false,
        };
        assert!(ok, "stray object {}", o.location);
    }
    assert!(!versions.is_empty(), "no model version on S3");
    for (v, complete) in versions {
        assert!(complete, "model version {v} without _SUCCESS");
    }
    objects.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_writing_to_s3_then_restart_loses_nothing_and_leaves_nothing_behind() {
    let prefix = s3_prefix("crash");
    let t = topics("e2e-s3").await;
    let twin = topics("e2e-s3-local").await;
    let dir = common::workdir();
    let (toml, name) = write_s3_pipeline(dir.path(), &t, &prefix);
    let out = Location::parse(&format!("{prefix}/out")).unwrap();
    // The same readings through a local-disk pipeline, for the comparison at the end.
    let local_dir = dir.path().join("local");
    std::fs::create_dir_all(&local_dir).unwrap();
    let (local_toml, local_out, _) = write_pipeline(&local_dir, "s3twin", &twin);
    let log = dir.path().join("linewatch.log");
    let local_log = dir.path().join("linewatch-local.log");

    let (mut sim, mut expected, r1, _) = warmed_up();
    let p = common::producer_unbatched();
    common::produce(&p, &t.readings, &r1).await;
    common::produce(&p, &twin.readings, &r1).await;

    let mut child = Some(spawn(&toml, &log));
    let local = spawn(&local_toml, &local_log);
    wait_for(
        "the first model on S3",
        &log,
        Duration::from_secs(300),
        || model_exists(&out, &name),
    );

    let mut until = sim.warmup_end_ms();
    let mut last_events = Vec::new();
    let scores = out.join("scores");
    let files = || linewatch_sink::list_files(&scores).map_or(0, |f| f.len());
    for k in 0..6 {
        until += 1_800_000;
        last_events = sim.next_events(until);
        let (chunk, _) = messages(&last_events, &mut expected);
        // Counted before this chunk goes in, so the kill below falls while its files are
        // being written (listing only: reading every file back from S3 takes seconds).
        let before = files();
        common::produce(&p, &t.readings, &chunk).await;
        common::produce(&p, &twin.readings, &chunk).await;
        if k == 2 {
            wait_for(
                "files of the faulty hours on S3",
                &log,
                Duration::from_secs(120),
                || files() > before,
            );
            let mut c = child.take().unwrap();
            c.kill().unwrap(); // SIGKILL: puts in flight are cut off
            c.wait().unwrap();
            // As in e2e_pipeline.rs: wait out the session so tansu hands the partitions over.
            tokio::time::sleep(Duration::from_secs(13)).await;
            child = Some(spawn(&toml, &dir.path().join("linewatch-restarted.log")));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log2 = dir.path().join("linewatch-restarted.log");
    let expected = closed_by_watermark(&expected, &last_events);
    wait_for_windows(&out, &log2, expected.len());
    wait_for_windows(&local_out, &local_log, expected.len());
    terminate(child.take().unwrap(), &log2);
    terminate(local, &local_log);

    check_windows(&out, &expected);
    let alerts = check_alert_topic(&t.alerts);
    assert!(
        alerts.iter().any(|a| a["state"] == "open"),
        "faults raise alerts"
    );
    let on_topic: HashSet<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["alert_id"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        common::parquet_rows(out.join("alerts")),
        on_topic.len(),
        "every alert on the topic is in alerts/ on S3 once"
    );

    let root = Location::parse(&prefix).unwrap();
    let objects = check_no_stray_objects(&root, &name);
    eprintln!("{objects} objects under {prefix}, none stray");

    // pyarrow reads the same windows from S3 as our reader, and as the local-disk run wrote.
    let ours = windows_of(&read_scores(&out));
    let theirs = pyarrow_windows(&format!("{prefix}/out/scores"));
    let local_run = windows_of(&read_scores(&local_out));
    assert_eq!(ours.len(), expected.len());
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        local_run.keys().collect::<Vec<_>>()
    );
    for (k, (n, mean)) in &ours {
        for (what, other) in [("pyarrow", &theirs), ("local disk", &local_run)] {
            let (n2, mean2) = other[k];
            assert_eq!(*n, n2, "{what}: n_readings of {k:?}");
            assert!(
                (mean - mean2).abs() <= 1e-12 * mean.abs().max(1.0),
                "{what}: mean of {k:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_write_one_s3_table_without_overwriting_each_other() {
    let prefix = s3_prefix("replicas");
    let t = topics("e2e-s3-replicas").await;
    let dir = common::workdir();
    let (toml, name) = write_s3_pipeline(dir.path(), &t, &prefix);
    let out = Location::parse(&format!("{prefix}/out")).unwrap();
    let logs = [
        dir.path().join("replica-a.log"),
        dir.path().join("replica-b.log"),
    ];
    // Both join the group before any reading arrives, so the first assignment splits the
    // three partitions between them.
    let a = spawn(&toml, &logs[0]);
    let b = spawn(&toml, &logs[1]);
    let assigned = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .rfind(|l| l.contains("partitions assigned"))
            .map(|l| l.matches(&format!("{}\", ", t.readings)).count())
    };
    // tansu rebalances when the second member joins: wait until the three readings
    // partitions are split between the two.
    wait_for(
        "the readings partitions split between the replicas",
        &logs[1],
        Duration::from_secs(90),
        || {
            let n: Vec<usize> = logs.iter().map(|l| assigned(l).unwrap_or(0)).collect();
            n.iter().sum::<usize>() == 3 && n.iter().all(|&k| k > 0)
        },
    );

    let mut sim = Simulator::new(sim_config()).unwrap();
    let mut expected = BTreeMap::new();
    let events = sim.next_events(sim.warmup_end_ms() + 1_800_000);
    let (r, _) = messages(&events, &mut expected);
    common::produce(&common::producer(), &t.readings, &r).await;
    let expected = closed_by_watermark(&expected, &events);
    wait_for_windows(&out, &logs[0], expected.len());
    terminate(a, &logs[0]);
    terminate(b, &logs[1]);

    check_windows(&out, &expected);
    let files = linewatch_sink::list_files(out.join("scores")).unwrap();
    let names: HashSet<String> = files.iter().map(|f| f.location.to_string()).collect();
    assert_eq!(names.len(), files.len());
    let partitions: HashSet<i32> = files.iter().map(|f| f.partition).collect();
    assert_eq!(partitions.len(), 3, "every readings partition wrote files");
    // Each replica's log names the partitions it wrote; together they are all three, and
    // the replicas' files differ by their partition ids.
    let per_replica: Vec<usize> = logs.iter().map(|l| assigned(l).unwrap_or(0)).collect();
    eprintln!("readings partitions per replica: {per_replica:?}; model store {name}");
    assert_eq!(per_replica.iter().sum::<usize>(), 3, "{per_replica:?}");
    assert!(
        per_replica.iter().all(|&n| n > 0),
        "both replicas own partitions: {per_replica:?}"
    );
}

/// A file above the multipart threshold goes up in parts and reads back whole; its footer
/// reads from the tail with ranged requests.
#[test]
fn a_file_over_the_multipart_threshold_reaches_s3_whole() {
    let root = Location::parse(&s3_prefix("multipart")).unwrap();
    let n = linewatch_sink::MULTIPART_THRESHOLD * 2 + 4321;
    let big: Vec<u8> = (0..n).map(|i| (i * 7 % 253) as u8).collect();
    let f = root.join("big.bin");
    f.put(big.clone()).unwrap();
    assert_eq!(f.size().unwrap(), n as u64);
    assert_eq!(&f.get().unwrap()[..], &big[..]);
    assert_eq!(&f.get_range(5, 9).unwrap()[..], &big[5..9]);
    let listed = root.list().unwrap();
    assert_eq!(listed.len(), 1, "one object, no parts left visible");
}

/// The object store goes away (a TCP proxy in front of the S3 server refuses every
/// connection) while windows are being written: the pipeline stays up, says so on `/readyz`
/// and `linewatch_sink_up`, consumes nothing meanwhile, and once the store is back every
/// window is written once with all its readings and no alert is repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_store_outage_is_waited_out_and_loses_nothing() {
    let prefix = s3_prefix("outage");
    let endpoint = std::env::var("LINEWATCH_TEST_S3_ENDPOINT").unwrap_or_default();
    let upstream: std::net::SocketAddr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("LINEWATCH_TEST_S3_ENDPOINT is http://host:port");
    let proxy = common::proxy::Proxy::start(upstream).await;
    let t = topics("e2e-s3-outage").await;
    let dir = common::workdir();
    let (toml, name) = write_s3_pipeline(dir.path(), &t, &prefix);
    let out = Location::parse(&format!("{prefix}/out")).unwrap();
    let log = dir.path().join("linewatch.log");
    let http: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let (listen, via_proxy) = (http.to_string(), format!("http://{}", proxy.addr()));
    let env = [
        ("LINEWATCH__HTTP__LISTEN", listen.as_str()),
        ("AWS_ENDPOINT", via_proxy.as_str()),
    ];

    let (mut sim, mut expected, r1, _) = warmed_up();
    let p = common::producer_unbatched();
    common::produce(&p, &t.readings, &r1).await;
    let child = spawn_with(&common::brokers(), &toml, &log, &env);
    wait_for(
        "the first model on S3",
        &log,
        Duration::from_secs(300),
        || model_exists(&out, &name),
    );

    let mut until = sim.warmup_end_ms();
    let mut last_events = Vec::new();
    let mut chunk = |expected: &mut BTreeMap<_, _>| {
        until += 1_800_000;
        last_events = sim.next_events(until);
        messages(&last_events, expected).0
    };
    let c = chunk(&mut expected);
    proxy.cut();
    common::produce(&p, &t.readings, &c).await;
    wait_for(
        "/readyz to report the store",
        &log,
        Duration::from_secs(90),
        || {
            http_get(http, "/readyz")
                .is_some_and(|(code, body)| code == 503 && body.contains("sink.out"))
        },
    );
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    assert!(
        metrics.lines().any(|l| l == "linewatch_sink_up 0"),
        "{metrics}"
    );
    let (code, _) = http_get(http, "/healthz").unwrap();
    assert_eq!(code, 200, "alive while it waits for the store");
    let mut child = child;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "linewatch exited during the outage; log:\n{}",
        tail(&log)
    );
    proxy.restore();
    for _ in 0..2 {
        let c = chunk(&mut expected);
        common::produce(&p, &t.readings, &c).await;
    }
    let expected = closed_by_watermark(&expected, &last_events);
    wait_for_windows(&out, &log, expected.len());
    let (code, _) = http_get(http, "/readyz").unwrap();
    assert_eq!(code, 200, "ready again once the store answers");
    terminate(child, &log);
    check_windows(&out, &expected);
    let alerts = check_alert_topic(&t.alerts);
    assert_eq!(common::parquet_rows(out.join("alerts")), alerts.len());
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("sink.out accepts writes again"),
        "{}",
        tail(&log)
    );
}
