//! `linewatch bench detect` on a small data folder laid out like `../shared/data`: TEP and
//! NAB figures for the model and the PCA baseline, a folder with NAB only, an empty folder.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;

#[path = "../../linewatch-commands/tests/common/mod.rs"]
mod common;

use common::{Gauss, write_gaussian};
use linewatch_bench::detect::{DetectOptions, bench_detect};
use linewatch_commands::backtest::PcaConfig;
use linewatch_runtime::config::PipelineConfig;

/// Model and alert settings from a pipeline file without a `[window] channels` list.
fn config(dir: &Path) -> PipelineConfig {
    common::config(dir, 60, "[alert]\nopen_after = 3\nresolve_after = 3\n")
}

const CHANNELS: [&str; 3] = ["a", "b", "c"];

/// A univariate NAB-like file: a level of 50 with noise, +6 from `shift_from` on.
fn write_nab(path: &Path, rows: usize, shift_from: usize) {
    let mut g = Gauss(99);
    let mut s = String::from("timestamp,value,anomaly\n");
    for i in 0..rows {
        let on = i >= shift_from;
        let v = 50.0 + g.normal() + if on { 6.0 } else { 0.0 };
        writeln!(
            s,
            "{},{v:.4},{}",
            1_600_000_000 + 300 * i as u64,
            u8::from(on)
        )
        .unwrap();
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn bench_detect_reports_tep_and_nab_for_model_and_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tep = data.join("tep");
    std::fs::create_dir_all(&tep).unwrap();
    let rename = |p: &Path| {
        // TEP files label with `fault`.
        let t = std::fs::read_to_string(p)
            .unwrap()
            .replacen(",label\n", ",fault\n", 1);
        std::fs::write(p, t).unwrap();
    };
    for (name, seed, shift) in [
        ("train-normal.csv", 11, None),
        ("test-normal.csv", 12, None),
        ("fault01.csv", 13, Some(0)),
    ] {
        let p = tep.join(name);
        let rows = if name.starts_with("train") { 500 } else { 240 };
        write_gaussian(&p, &CHANNELS, rows, seed, shift, 4.0);
        rename(&p);
    }
    write_nab(&data.join("nab-level.csv"), 700, 600);
    let cfg = config(dir.path());
    let opts = DetectOptions {
        data: data.clone(),
        out: dir.path().join("out"),
        baseline: PcaConfig::default(),
        nab_train_rows: 400,
    };
    let r = serde_json::to_value(bench_detect(&cfg, &opts).unwrap()).unwrap();
    for who in ["model", "baseline"] {
        let t = &r["tep"][who];
        let far = t["false_alarm_rate"].as_f64().unwrap();
        assert!(far <= 0.10, "{who} TEP false alarms {far}");
        let det = t["detection"]["1"].as_f64().unwrap();
        // Every fault row is shifted; the first 11 rows have no full window, 2 more wait
        // for the hysteresis: at most 227 / 240.
        assert!(
            (0.85..=227.0 / 240.0 + 1e-12).contains(&det),
            "{who} detection {det}"
        );
        assert_eq!(t["mean_detection_excl_3_9_15"].as_f64(), Some(det));
        let n = &r["nab"][who];
        assert!(n["f1"].as_f64().unwrap() > 0.8, "{who} NAB {n}");
        assert!(n["pr_auc"].as_f64().unwrap() > 0.8, "{who} NAB {n}");
    }
    assert!(r["tep"]["baseline"]["t2"]["false_alarm_rate"].is_number());
    assert!(r["tep"]["baseline"]["spe"]["mean_detection_excl_3_9_15"].is_number());
    assert!(dir.path().join("out/tep/summary.json").is_file());
    assert!(dir.path().join("out/nab/rows.csv").is_file());

    // A folder with only NAB files: TEP is skipped, not an error; an empty one is an error.
    std::fs::remove_dir_all(&tep).unwrap();
    let r = serde_json::to_value(bench_detect(&cfg, &opts).unwrap()).unwrap();
    assert!(r["tep"]["skipped"].as_str().unwrap().contains("tep/"));
    assert!(r["nab"]["model"]["f1"].is_number());
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = DetectOptions {
        data: empty,
        ..opts
    };
    assert!(bench_detect(&cfg, &o).is_err());
}
