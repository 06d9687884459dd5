//! `linewatch backtest --train-csv`, the partial-window rule, the PCA baseline beside the
//! model and channel checks, on small synthetic CSV files (`linewatch bench detect` is tested
//! in `crates/linewatch-bench/tests/detect.rs`).

#![allow(clippy::unwrap_used)]

use std::path::Path;

mod common;

use common::{options, write_gaussian};
use linewatch_commands::backtest::{self, BacktestSummary, TrainSplit, load_config};
use linewatch_runtime::config::PipelineConfig;

/// Model and alert settings from a pipeline file without a `[window] channels` list.
fn config(dir: &Path) -> PipelineConfig {
    common::config(dir, 60, "[alert]\nopen_after = 3\nresolve_after = 3\n")
}

/// Default windows: 12 samples, hop 1; the first 11 windows of a file are partial.
const PARTIAL: usize = 11;
const CHANNELS: [&str; 3] = ["a", "b", "c"];

/// rows.csv as (file, score, p_value, alert, baseline_alert, label) per row.
#[allow(clippy::type_complexity)]
fn rows_csv(out: &Path) -> Vec<(String, Option<f64>, Option<f64>, bool, bool, bool)> {
    let text = std::fs::read_to_string(out.join("rows.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("file,timestamp,anomaly_score,alert,label,p_value,baseline_alert")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 7, "{l}");
            let num = |s: &str| (!s.is_empty()).then(|| s.parse::<f64>().unwrap());
            (
                f[0].to_string(),
                num(f[2]),
                num(f[5]),
                f[3] == "1",
                f[6] == "1",
                f[4] == "1",
            )
        })
        .collect()
}

fn share(v: impl Iterator<Item = bool>) -> f64 {
    let (mut n, mut k) = (0usize, 0usize);
    for b in v {
        n += 1;
        k += usize::from(b);
    }
    k as f64 / n.max(1) as f64
}

#[test]
fn train_csv_fits_once_and_scores_every_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (train, normal, shifted) = (
        d.join("train.csv"),
        d.join("normal.csv"),
        d.join("shift.csv"),
    );
    write_gaussian(&train, &CHANNELS, 700, 1, None, 0.0);
    write_gaussian(&normal, &CHANNELS, 400, 2, None, 0.0);
    write_gaussian(&shifted, &CHANNELS, 400, 3, Some(200), 4.0);
    let out = d.join("out");
    let cfg = config(d);
    let s: BacktestSummary = backtest::backtest(
        &cfg,
        &options(vec![normal, shifted], vec![train.clone()], out.clone()),
    )
    .unwrap();

    // One training history: every full window of the training file, none of its partial ones.
    let t = s.train.as_ref().unwrap();
    assert_eq!((t.rows, t.windows), (700, 700 - PARTIAL));
    assert_eq!(t.files[0].partial_windows, PARTIAL);
    assert_eq!((s.files, s.rows), (2, 800));
    for f in &s.per_file {
        assert_eq!(
            f.scored_rows, 400,
            "every row of a scored file is evaluated"
        );
        assert_eq!((f.partial_windows, f.unscored_rows), (PARTIAL, PARTIAL));
        assert_eq!((f.train_rows, f.train_windows), (700, 700 - PARTIAL));
    }
    // The same model for both files.
    assert_eq!(s.per_file[0].threshold, s.per_file[1].threshold);

    let rows = rows_csv(&out);
    assert_eq!(rows.len(), 800);
    let (normal_rows, shift_rows) = rows.split_at(400);
    for file_rows in [normal_rows, shift_rows] {
        // The partial-window rule: the first size/hop - 1 rows get no score and no alert.
        for r in &file_rows[..PARTIAL] {
            assert!(r.1.is_none() && r.2.is_none() && !r.3 && !r.4, "{r:?}");
        }
        for r in &file_rows[PARTIAL..] {
            let p = r.2.unwrap();
            assert!(r.1.unwrap().is_finite() && p > 0.0 && p <= 1.0, "{r:?}");
        }
    }

    // Few false alarms on a fresh normal run; the shifted rows are caught by both detectors
    // (from one window after the shift is complete, plus the hysteresis).
    let far_model = share(normal_rows.iter().map(|r| r.3));
    let far_pca = share(normal_rows.iter().map(|r| r.4));
    assert!(far_model <= 0.10, "model false alarms {far_model}");
    assert!(far_pca <= 0.10, "PCA false alarms {far_pca}");
    let caught_model = share(shift_rows[215..].iter().map(|r| r.3));
    let caught_pca = share(shift_rows[215..].iter().map(|r| r.4));
    assert!(caught_model >= 0.95, "model detection {caught_model}");
    assert!(caught_pca >= 0.95, "PCA detection {caught_pca}");
    assert!(shift_rows[..200].iter().map(|r| r.5).all(|l| !l));

    // The baseline sits beside the model in summary.json, pooled and per file.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    for key in [
        "precision",
        "recall",
        "f1",
        "far",
        "mar",
        "pr_auc",
        "files",
        "rows",
        "per_file",
    ] {
        assert!(json.get(key).is_some(), "summary lacks {key}");
    }
    let b = &json["baseline"];
    assert_eq!(b["confidence"].as_f64(), Some(0.99));
    assert_eq!(b["explained_variance"].as_f64(), Some(0.90));
    let pooled_far = b["far"].as_f64().unwrap();
    assert!((pooled_far - s.baseline.metrics.far.unwrap()).abs() < 1e-12);
    assert!(b["recall"].as_f64().unwrap() > 0.8);
    for stat in ["t2", "spe"] {
        assert!(b[stat]["far"].as_f64().is_some(), "{stat}.far");
        assert!(b[stat]["recall"].as_f64().is_some(), "{stat}.recall");
    }
    let per_file = b["per_file"].as_array().unwrap();
    assert_eq!(per_file.len(), 2);
    for f in per_file {
        assert!(f["components"].as_u64().unwrap() >= 1);
        assert!(f["t2_limit"].as_f64().unwrap() > 0.0);
        assert!(f["spe_limit"].as_f64().unwrap() > 0.0);
        assert!(f["error"].is_null());
    }
    // Pooled counts of the baseline equal the rows.csv column.
    let alerted = rows.iter().filter(|r| r.4).count() as u64;
    assert_eq!(s.baseline.metrics.tp + s.baseline.metrics.fp, alerted);
    let line = backtest::summary_line(&s).unwrap();
    assert!(line.get("per_file").is_none() && line["baseline"].get("per_file").is_none());
    assert!(line["baseline"]["f1"].is_number());
}

#[test]
fn head_split_skips_the_partial_windows_at_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("one.csv");
    write_gaussian(&f, &CHANNELS, 500, 4, Some(400), 4.0);
    let out = d.join("out");
    let mut o = options(vec![f], Vec::new(), out.clone());
    o.split = Some(TrainSplit::Rows(300));
    let s = backtest::backtest(&config(d), &o).unwrap();
    let r = &s.per_file[0];
    // Full windows made only of head rows: those ending at rows 11..=299.
    assert_eq!((r.train_rows, r.train_windows), (300, 300 - PARTIAL));
    assert_eq!(
        (r.partial_windows, r.unscored_rows, r.scored_rows),
        (PARTIAL, 0, 200)
    );
    assert!(s.train.is_none());
    let rows = rows_csv(&out);
    assert_eq!(rows.len(), 200);
    assert!(rows.iter().all(|r| r.1.is_some()));
    assert!(share(rows[115..].iter().map(|r| r.3)) >= 0.95);
    assert!(share(rows[115..].iter().map(|r| r.4)) >= 0.95);
    assert!(s.baseline.per_file[0].components.is_some());
}

#[test]
fn scored_files_must_have_the_training_channels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (train, other) = (d.join("train.csv"), d.join("other.csv"));
    write_gaussian(&train, &CHANNELS, 100, 5, None, 0.0);
    write_gaussian(&other, &["a", "b", "z"], 100, 6, None, 0.0);
    let err = backtest::backtest(
        &config(d),
        &options(vec![other], vec![train], d.join("out")),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("other.csv"), "{err}");
    assert!(err.contains("missing [\"c\"]"), "{err}");
    assert!(err.contains("extra [\"z\"]"), "{err}");
}

#[test]
fn train_csv_and_a_head_split_together_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("f.csv");
    write_gaussian(&f, &CHANNELS, 50, 7, None, 0.0);
    let mut o = options(vec![f.clone()], vec![f], d.join("out"));
    o.split = Some(TrainSplit::Fraction(0.5));
    let err = backtest::backtest(&config(d), &o).unwrap_err().to_string();
    assert!(err.contains("--train-csv"), "{err}");
}

#[test]
fn pipeline_files_need_no_window_channels() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.toml");
    std::fs::write(&p, "[model]\nstats = [\"mean\"]\n").unwrap();
    let cfg = load_config(Some(&p)).unwrap();
    assert_eq!(cfg.model.stats, vec![linewatch_window::Stat::Mean]);
    // A bad key is still named.
    std::fs::write(&p, "[model]\npower = 4\n").unwrap();
    let err = format!("{:#}", load_config(Some(&p)).unwrap_err());
    assert!(err.contains("model.power"), "{err}");
    assert!(load_config(None).is_ok());
}
