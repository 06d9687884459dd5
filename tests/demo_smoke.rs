//! `linewatch demo` as a newcomer runs it, shortened: the in-process mock cluster, the
//! simulator and the whole pipeline; a zero exit, a summary with the documented keys, and
//! `windows` equal to the rows written under `OUT/scores`. Needs no broker (of the shared
//! helpers it uses only the Parquet and scratch-folder ones).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

fn parquet_rows(root: &std::path::Path) -> u64 {
    common::parquet_rows(root) as u64
}

/// Runs `linewatch demo` for `duration` into `out` with extra environment; its summary (as
/// text, and parsed).
fn demo(
    out: &std::path::Path,
    duration: &str,
    env: &[(&str, &str)],
) -> (String, serde_json::Value) {
    let status = Command::new(env!("CARGO_BIN_EXE_linewatch"))
        .args(["demo", "--duration", duration, "--no-progress", "--out"])
        .arg(out)
        // No fixed HTTP port: tests run side by side.
        .env("LINEWATCH__HTTP__LISTEN", "")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .status()
        .unwrap();
    assert!(status.success(), "demo exited with {status}");
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let s = serde_json::from_str(&text).unwrap();
    (text, s)
}

#[test]
fn short_demo_writes_a_consistent_summary() {
    let dir = common::workdir();
    let out = dir.path().join("out");
    let (text, s) = demo(&out, "30s", &[]);
    for key in [
        "readings",
        "windows",
        "alerts",
        "retrains",
        "precision",
        "recall",
    ] {
        assert!(s.get(key).is_some(), "summary lacks {key}: {text}");
    }
    let readings = s["readings"].as_u64().unwrap();
    let windows = s["windows"].as_u64().unwrap();
    // 20 machines x 1 reading per event second, 300 event seconds per wall second: the hold
    // for the first model (seconds of training) still leaves tens of thousands in 30 s.
    assert!(readings > 20_000, "{readings} readings");
    assert!(windows > 1_000, "{windows} windows");
    assert_eq!(windows, parquet_rows(&out.join("scores")));
    let alerts = s["alerts"].as_u64().unwrap();
    if alerts > 0 {
        // Every opened alert is in Parquet (open and resolve records).
        assert!(parquet_rows(&out.join("alerts")) >= alerts);
    }
    assert!(s["retrains"].as_u64().unwrap() >= 1, "no model was trained");
}

/// An output the run cannot write fails before the run, naming the flag and the path
/// (issue 12: `--faults-out` into a missing folder failed only after everything was produced).
/// No broker is reachable at the address given: the check comes first.
#[test]
fn simulate_checks_its_faults_file_before_producing() {
    let dir = common::workdir();
    let target = dir.path().join("no-such-folder").join("faults.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_linewatch"))
        .args([
            "simulate",
            "--pipeline",
            "pipelines/demo.toml",
            "--duration",
            "60s",
        ])
        .arg("--faults-out")
        .arg(&target)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("LINEWATCH_BROKERS", "127.0.0.1:9")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    // The check made before the run ("creating"), not the write after it ("writing").
    assert!(stderr.contains("creating --faults-out"), "{stderr}");
    assert!(stderr.contains("no-such-folder"), "{stderr}");
}

/// The demo in the long format (issue 13): the simulator writes one message per channel in
/// the default `json_long` mapping, the pipeline gathers them back into readings; the same
/// summary keys, `windows` equal to the Parquet rows, nothing dead-lettered or repeated.
#[test]
fn short_demo_in_the_long_format() {
    let dir = common::workdir();
    let out = dir.path().join("out");
    let (text, s) = demo(&out, "20s", &[("LINEWATCH__DECODE__FORMAT", "json_long")]);
    let windows = s["windows"].as_u64().unwrap();
    assert!(windows > 500, "{text}");
    assert_eq!(windows, parquet_rows(&out.join("scores")));
    assert_eq!(s["dead_lettered"], 0, "{text}");
    assert_eq!(s["long_values_repeated"], 0, "{text}");
    assert!(s["readings"].as_u64().unwrap() > 10_000, "{text}");
}

/// The demo in Sparkplug B (issue 13): the simulator writes one DDATA protobuf message per
/// reading with the MQTT topic as the key, as an MQTT-to-Kafka bridge does; the pipeline reads
/// the group as the line and the device as the machine: windows equal the Parquet rows,
/// nothing dead-lettered or skipped.
#[test]
fn short_demo_in_sparkplug_b() {
    let dir = common::workdir();
    let out = dir.path().join("out");
    let (text, s) = demo(&out, "20s", &[("LINEWATCH__DECODE__FORMAT", "sparkplug_b")]);
    let windows = s["windows"].as_u64().unwrap();
    assert!(windows > 500, "{text}");
    assert_eq!(windows, parquet_rows(&out.join("scores")));
    assert_eq!(s["dead_lettered"], 0, "{text}");
    assert_eq!(s["sparkplug_non_numeric"], 0, "{text}");
    assert!(s["readings"].as_u64().unwrap() > 10_000, "{text}");
}

/// The demo in Avro (issue 13): the demo starts its own schema registry on loopback, the
/// simulator registers its schema there and writes the Confluent wire format; the pipeline
/// fetches the schema: windows equal the Parquet rows, nothing dead-lettered.
#[test]
fn short_demo_in_avro() {
    let dir = common::workdir();
    let out = dir.path().join("out");
    let (text, s) = demo(&out, "20s", &[("LINEWATCH__DECODE__FORMAT", "avro")]);
    let windows = s["windows"].as_u64().unwrap();
    assert!(windows > 500, "{text}");
    assert_eq!(windows, parquet_rows(&out.join("scores")));
    assert_eq!(s["dead_lettered"], 0, "{text}");
    assert!(s["readings"].as_u64().unwrap() > 10_000, "{text}");
}
