//! Bad input to `linewatch backtest` is never a silent wrong number: cells that are not
//! numbers are counted per column and reported, or the file is an error naming the column
//! and showing a cell; `--decimal ,` reads decimal-comma files exactly as dot files.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod common;

use common::Gauss;
use linewatch_commands::backtest::{self, BacktestOptions, TrainSplit};
use linewatch_runtime::config::PipelineConfig;

fn config(dir: &Path) -> PipelineConfig {
    common::config(dir, 40, "")
}

fn options(csv: PathBuf, sep: u8, decimal: u8, out: PathBuf) -> BacktestOptions {
    BacktestOptions {
        sep,
        decimal,
        split: Some(TrainSplit::Rows(200)),
        ..common::options(vec![csv], Vec::new(), out)
    }
}

const ROWS: usize = 400;
const SHIFT_FROM: usize = 300;

/// `ROWS` rows of channels a, b, c (one per second; `a` shifted by 4 and labelled from
/// `SHIFT_FROM`), written with field separator `sep` and decimal mark `decimal`. With
/// `rejected`, column b holds `oops` once, `inf`, `nan` and `1e400` once each, and two empty
/// cells. `extra` adds a column of that name holding text.
fn write_file(path: &Path, sep: char, decimal: char, rejected: bool, extra: Option<&str>) {
    let mut g = Gauss(0x9e37_79b9_7f4a_7c15);
    let mut s = format!("timestamp{sep}a{sep}b{sep}c{sep}label");
    if let Some(e) = extra {
        write!(s, "{sep}{e}").unwrap();
    }
    s.push('\n');
    let num = |v: f64| format!("{v:.5}").replace('.', &decimal.to_string());
    for i in 0..ROWS {
        let z = g.normal();
        let shifted = i >= SHIFT_FROM;
        let a = 10.0 + z + if shifted { 4.0 } else { 0.0 };
        let b = 5.0 + 0.8 * z + 0.6 * g.normal();
        let c = -2.0 + 0.5 * g.normal();
        let b_text = match (rejected, i) {
            (true, 50) => "oops".to_string(),
            (true, 60) => "inf".to_string(),
            (true, 250) => "nan".to_string(),
            (true, 350) => "1e400".to_string(),
            (true, 70 | 320) => String::new(),
            _ => num(b),
        };
        write!(
            s,
            "{}{sep}{}{sep}{b_text}{sep}{}{sep}{}",
            1_700_000_000 + i as u64,
            num(a),
            num(c),
            u8::from(shifted)
        )
        .unwrap();
        if extra.is_some() {
            write!(s, "{sep}{}", ["anna", "bert", "carl"][i % 3]).unwrap();
        }
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn a_decimal_comma_file_read_as_dots_fails_naming_a_column_and_a_cell() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("comma.csv");
    write_file(&csv, ';', ',', false, None);
    let o = options(csv, b';', b'.', d.join("out"));
    let err = format!("{:#}", backtest::backtest(&config(d), &o).unwrap_err());
    assert!(err.contains("column \"a\""), "{err}");
    // The first cell of column a, shown as written.
    let first_a = std::fs::read_to_string(d.join("comma.csv")).unwrap();
    let first_a = first_a.lines().nth(1).unwrap().split(';').nth(1).unwrap();
    assert!(first_a.contains(','), "{first_a}");
    assert!(err.contains(&format!("{first_a:?} on line 2")), "{err}");
    assert!(err.contains("--decimal ,"), "{err}");
    assert!(!d.join("out/summary.json").exists());
}

#[test]
fn the_decimal_mark_cannot_be_the_separator() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("dot.csv");
    write_file(&csv, ',', '.', false, None);
    let o = options(csv, b',', b',', d.join("out"));
    let err = format!("{:#}", backtest::backtest(&config(d), &o).unwrap_err());
    assert!(err.contains("--sep"), "{err}");
}

#[test]
fn a_file_read_with_the_wrong_separator_points_at_sep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("semicolon.csv");
    write_file(&csv, ';', '.', false, None);
    let o = options(csv, b',', b'.', d.join("out"));
    let err = format!("{:#}", backtest::backtest(&config(d), &o).unwrap_err());
    assert!(
        err.contains("no time column") && err.contains("is the separator `--sep`?"),
        "{err}"
    );
    assert!(!err.contains("StringRecord"), "{err}");
}

#[test]
fn a_text_column_left_in_the_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("with_operator.csv");
    write_file(&csv, ',', '.', false, Some("operator"));
    let mut o = options(csv, b',', b'.', d.join("out"));
    // A misspelled --ignore-col leaves the text column in.
    o.ignore_cols = vec!["operater".into()];
    let err = format!("{:#}", backtest::backtest(&config(d), &o).unwrap_err());
    assert!(err.contains("column \"operator\" has no number"), "{err}");
    assert!(err.contains("\"anna\" on line 2"), "{err}");
    assert!(err.contains("--ignore-col"), "{err}");
    for sensor in ["\"a\"", "\"b\"", "\"c\""] {
        assert!(!err.contains(sensor), "{err}");
    }
}

#[test]
fn decimal_commas_read_exactly_as_dots_and_rejected_cells_are_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d);
    let mut runs = Vec::new();
    for (name, sep, decimal) in [("dot", ',', '.'), ("comma", ';', ',')] {
        std::fs::create_dir_all(d.join(name)).unwrap();
        // The same file name, so that rows.csv can be compared whole.
        let csv = d.join(name).join("line.csv");
        write_file(&csv, sep, decimal, true, None);
        let out = d.join(name).join("out");
        let o = options(csv, sep as u8, decimal as u8, out.clone());
        let summary = backtest::backtest(&cfg, &o).unwrap();
        let rows = std::fs::read_to_string(out.join("rows.csv")).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        runs.push((summary, rows, json));
    }
    let (dot, comma) = (&runs[0], &runs[1]);
    // The same windows and scores, row by row, and the same summary.
    assert_eq!(dot.1, comma.1);
    assert_eq!(
        backtest::summary_line(&dot.0).unwrap(),
        backtest::summary_line(&comma.0).unwrap()
    );
    assert!(dot.0.metrics.recall.unwrap() > 0.5, "{:?}", dot.0.metrics);
    for (_, _, json) in &runs {
        let file = &json["per_file"][0]["cells"];
        assert_eq!(file["values"], 3 * ROWS - 6, "{file}");
        assert_eq!(file["missing"], 2, "{file}");
        assert_eq!(file["rejected"]["unparseable"], 1, "{file}");
        assert_eq!(file["rejected"]["non_finite"], 3, "{file}");
        let cols = file["columns"].as_array().unwrap();
        assert_eq!(cols.len(), 1, "{file}");
        assert_eq!(cols[0]["column"], "b");
        assert_eq!(cols[0]["sample"]["text"], "oops");
        assert_eq!(cols[0]["sample"]["line"], 52);
        // Pooled over the run, at the top level (and so in the printed line).
        assert_eq!(json["cells"]["rejected"], file["rejected"]);
        assert_eq!(json["cells"]["missing"], 2);
        assert!(json["cells"].get("columns").is_none());
    }
}

/// A meter channel at `offset ± 0.5` with a 15-unit level shift from `SHIFT_FROM` (labelled),
/// beside a plain channel.
fn write_meter(path: &Path, offset: f64) {
    let mut g = Gauss(0x2545_f491_4f6c_dd1d);
    let mut s = String::from("timestamp,meter,flow,label\n");
    for i in 0..ROWS {
        let shifted = i >= SHIFT_FROM;
        let meter = offset + (0.2 * g.normal()).clamp(-0.5, 0.5) + if shifted { 15.0 } else { 0.0 };
        let flow = 3.0 + 0.1 * g.normal();
        writeln!(
            s,
            "{},{meter:.6},{flow:.6},{}",
            1_700_000_000 + i as u64,
            u8::from(shifted)
        )
        .unwrap();
    }
    std::fs::write(path, s).unwrap();
}

/// Issue 11, case 3: a meter at 1e9 ± 0.5 is detected as it is at offset 0. With Float32
/// features its mean was quantised to steps of 64 units, the channel looked constant in
/// training, and recall fell to 0.14.
#[test]
fn a_large_offset_changes_nothing_in_detection() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d);
    let mut runs = Vec::new();
    for offset in [0.0, 1.0e9] {
        let name = format!("offset{offset}");
        std::fs::create_dir_all(d.join(&name)).unwrap();
        let csv = d.join(&name).join("meter.csv");
        write_meter(&csv, offset);
        let o = options(csv, b',', b'.', d.join(&name).join("out"));
        runs.push(backtest::backtest(&cfg, &o).unwrap());
    }
    let (zero, large) = (&runs[0].metrics, &runs[1].metrics);
    assert!(zero.recall.unwrap() > 0.9, "{zero:?}");
    assert_eq!(zero.recall, large.recall, "{zero:?} {large:?}");
    assert_eq!(zero.far, large.far, "{zero:?} {large:?}");
}
