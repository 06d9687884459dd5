//! `linewatch backtest` on JSON Lines (issue 13): a dump of a readings topic, in the wide or
//! the long format, backtests each machine exactly as its own CSV file does; a line the stream
//! would dead-letter is an error naming the line and the reason.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod common;

use common::{options, write_gaussian};
use linewatch_commands::backtest::{self, BacktestOptions, BacktestSummary, TrainSplit};

const CHANNELS: [&str; 3] = ["a", "b", "c"];

/// (timestamp s, [a, b, c], label) of a CSV written by `write_gaussian`.
fn csv_rows(path: &Path) -> Vec<(i64, Vec<String>, bool)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1..4].iter().map(|s| (*s).to_string()).collect(),
                f[4] == "1",
            )
        })
        .collect()
}

/// The machines' CSV rows as one JSON Lines dump, interleaved in time: wide messages with
/// epoch-millisecond times, or one message per channel value.
fn dump(machines: &[(&str, &Path)], long: bool, out: &Path) {
    let rows: Vec<_> = machines.iter().map(|(m, p)| (*m, csv_rows(p))).collect();
    let mut s = String::new();
    for i in 0..rows[0].1.len() {
        for (m, r) in &rows {
            let (ts, values, label) = &r[i];
            let ms = ts * 1000;
            if long {
                for (c, v) in CHANNELS.iter().zip(values) {
                    writeln!(
                        s,
                        r#"{{"line":"press-3","machine":"{m}","ts":{ms},"tag":"{c}","value":{v},"label":{label}}}"#
                    )
                    .unwrap();
                }
            } else {
                let vals: Vec<String> = CHANNELS
                    .iter()
                    .zip(values)
                    .map(|(c, v)| format!(r#""{c}":{v}"#))
                    .collect();
                writeln!(
                    s,
                    r#"{{"line":"press-3","machine":"{m}","ts":{ms},"values":{{{}}},"label":{}}}"#,
                    vals.join(","),
                    u8::from(*label)
                )
                .unwrap();
            }
        }
    }
    std::fs::write(out, s).unwrap();
}

fn head_split(inputs: Vec<PathBuf>, out: PathBuf) -> BacktestOptions {
    let mut o = options(inputs, Vec::new(), out);
    o.split = Some(TrainSplit::Rows(150));
    o
}

/// (metrics, threshold, scored rows) of each series.
fn figures(s: &BacktestSummary) -> Vec<String> {
    s.per_file
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {:?}",
                f.threshold,
                f.scored_rows,
                f.channels.join("|"),
                serde_json::to_string(&f.metrics).unwrap()
            )
        })
        .collect()
}

#[test]
fn each_machine_of_a_dump_backtests_as_its_own_csv_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (d.join("a.csv"), d.join("b.csv"));
    write_gaussian(&a, &CHANNELS, 400, 2, Some(250), 4.0);
    write_gaussian(&b, &CHANNELS, 400, 3, None, 0.0);
    let cfg = common::config(d, 60, "");
    let from_csv =
        backtest::backtest(&cfg, &head_split(vec![a.clone(), b.clone()], d.join("o1"))).unwrap();
    assert!(
        from_csv.metrics.recall.unwrap_or(0.0) > 0.5,
        "the shift is found"
    );

    let wide = d.join("dump.jsonl");
    dump(&[("m-a", &a), ("m-b", &b)], false, &wide);
    let from_wide = backtest::backtest(&cfg, &head_split(vec![wide], d.join("o2"))).unwrap();
    assert_eq!(from_wide.files, 2);
    let names: Vec<&str> = from_wide.per_file.iter().map(|f| f.file.as_str()).collect();
    assert!(names[0].ends_with("dump.jsonl#press-3:m-a"), "{names:?}");
    assert!(names[1].ends_with("dump.jsonl#press-3:m-b"), "{names:?}");
    assert_eq!(figures(&from_wide), figures(&from_csv));

    let long = d.join("dump.ndjson");
    dump(&[("m-a", &a), ("m-b", &b)], true, &long);
    // Three of m-b's values given again (a producer's retry): dropped and counted.
    let text = std::fs::read_to_string(&long).unwrap();
    let again: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(r#""machine":"m-b""#))
        .take(3)
        .collect();
    std::fs::write(&long, format!("{text}{}\n", again.join("\n"))).unwrap();
    let mut cfg_long = cfg.clone();
    cfg_long.decode.format = linewatch_window::Format::JsonLong;
    let from_long = backtest::backtest(&cfg_long, &head_split(vec![long], d.join("o3"))).unwrap();
    assert_eq!(figures(&from_long), figures(&from_csv));
    assert_eq!(from_long.cells.values, from_csv.cells.values);
    assert_eq!(from_long.cells.repeated, 3);
    let per_file: Vec<u64> = from_long
        .per_file
        .iter()
        .map(|f| f.cells.repeated)
        .collect();
    assert_eq!(per_file, [0, 3]);
}

#[test]
fn a_line_the_stream_would_dead_letter_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = d.join("a.csv");
    write_gaussian(&a, &CHANNELS, 300, 2, None, 0.0);
    let dump_path = d.join("dump.jsonl");
    dump(&[("m-a", &a)], false, &dump_path);
    let mut text = std::fs::read_to_string(&dump_path).unwrap();
    text.push_str(
        "{\"line\":\"press-3\",\"machine\":\"m-a\",\"ts\":1700000999000,\"values\":{\"a\":\"n/a\"}}\n",
    );
    std::fs::write(&dump_path, text).unwrap();
    let cfg = common::config(d, 60, "");
    let e = backtest::backtest(&cfg, &head_split(vec![dump_path], d.join("o")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 301"), "{e}");
    assert!(e.contains("non_numeric_value"), "{e}");
    // A label that is not one: the line and the accepted forms.
    let bad_label = d.join("label.jsonl");
    dump(&[("m-a", &a)], false, &bad_label);
    let text =
        std::fs::read_to_string(&bad_label)
            .unwrap()
            .replacen("\"label\":0", "\"label\":2", 1);
    std::fs::write(&bad_label, text).unwrap();
    let e = backtest::backtest(&cfg, &head_split(vec![bad_label], d.join("o")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1:") && e.contains("yes/no"), "{e}");
    // A label given twice in one message: which one holds is not guessed.
    let twice = d.join("twice.jsonl");
    dump(&[("m-a", &a)], false, &twice);
    let text = std::fs::read_to_string(&twice).unwrap().replacen(
        "\"label\":0}",
        "\"label\":0,\"label\":1}",
        1,
    );
    std::fs::write(&twice, text).unwrap();
    let e = backtest::backtest(&cfg, &head_split(vec![twice], d.join("o")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1:") && e.contains("appears twice"), "{e}");
    // Sparkplug or Avro dumps are not JSON Lines.
    let mut spb = cfg.clone();
    spb.decode.format = linewatch_window::Format::SparkplugB;
    let e = backtest::backtest(&spb, &head_split(vec![d.join("dump.jsonl")], d.join("o")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"json\" or \"json_long\""), "{e}");
}
