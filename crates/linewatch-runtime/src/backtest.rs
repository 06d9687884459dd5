//! `linewatch backtest`: the stream's own windowing, models and alert hysteresis over labelled
//! CSV files, with no Kafka. Each file is its own experiment: the model trains on the file's
//! anomaly-free head and scores the rest; a row is alerted when the window ending at it is.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Serialize;

use linewatch_window::{ChannelSet, ClosedWindow, WindowConfig, Windower};

use crate::alerter::{Alerter, ScoredWindow};
use crate::config::PipelineConfig;

/// How the head of each file used for training is chosen.
#[derive(Debug, Clone, Copy)]
pub enum TrainSplit {
    Rows(usize),
    Fraction(f64),
}

/// Options of `linewatch backtest`.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    pub csv: Vec<PathBuf>,
    pub sep: u8,
    pub time_col: String,
    pub label_col: String,
    pub ignore_cols: Vec<String>,
    pub split: TrainSplit,
    /// Window length; default 12 sampling intervals.
    pub window_ms: Option<u64>,
    /// Hop; default one sampling interval (a window ends at every row).
    pub slide_ms: Option<u64>,
    pub out: PathBuf,
}

/// Detection figures pooled over rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    /// False alarm rate: FP / (FP + TN).
    pub far: Option<f64>,
    /// Missed alarm rate: FN / (FN + TP).
    pub mar: Option<f64>,
    /// Area under the precision-recall curve of the anomaly score (average precision).
    pub pr_auc: Option<f64>,
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub f_n: u64,
}

/// One file's experiment.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: String,
    pub channels: Vec<String>,
    pub sampling_interval_ms: i64,
    pub window_ms: u64,
    pub slide_ms: u64,
    pub train_rows: usize,
    pub train_windows: usize,
    pub scored_rows: usize,
    pub threshold: f64,
    pub metrics: Metrics,
}

/// `DIR/summary.json`: pooled over all files, with each file's figures beside.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestSummary {
    /// precision, recall, f1, far, mar, pr_auc (and the counts), at the top level.
    #[serde(flatten)]
    pub metrics: Metrics,
    pub files: usize,
    pub rows: usize,
    pub per_file: Vec<FileReport>,
}

/// One CSV row after parsing.
struct Row {
    ts_ms: i64,
    ts_text: String,
    values: Vec<(String, f64)>,
    label: bool,
}

/// A scored row for `rows.csv` and the metrics.
struct RowOut {
    ts_text: String,
    score: Option<f64>,
    alert: bool,
    label: bool,
}

/// Parses a timestamp: RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` (UTC), or epoch seconds / ms
/// (numbers below 1e11 are read as seconds).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = linewatch_window::parse_rfc3339_ms(s) {
        return Some(ms);
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    Some(if v.abs() < 1e11 {
        (v * 1000.0).round() as i64
    } else {
        v.round() as i64
    })
}

fn parse_label(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "1.0" | "true" | "yes" | "anomaly" => Some(true),
        "0" | "0.0" | "false" | "no" | "normal" | "" => Some(false),
        _ => None,
    }
}

fn read_csv(path: &Path, o: &BacktestOptions) -> anyhow::Result<(Vec<String>, Vec<Row>)> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(o.sep)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let find = |name: &str| headers.iter().position(|h| h == name);
    let Some(t_idx) = find(&o.time_col) else {
        bail!(
            "{}: no time column {:?} (columns: {:?})",
            path.display(),
            o.time_col,
            headers
        );
    };
    let Some(l_idx) = find(&o.label_col) else {
        bail!(
            "{}: no label column {:?} (columns: {:?})",
            path.display(),
            o.label_col,
            headers
        );
    };
    let channel_idx: Vec<usize> = (0..headers.len())
        .filter(|&i| i != t_idx && i != l_idx && !o.ignore_cols.iter().any(|c| c == &headers[i]))
        .collect();
    if channel_idx.is_empty() {
        bail!("{}: no sensor columns left", path.display());
    }
    let channels: Vec<String> = channel_idx
        .iter()
        .map(|&i| headers[i].to_string())
        .collect();
    let mut rows = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{} row {}", path.display(), n + 2))?;
        let ts_text = rec.get(t_idx).unwrap_or_default().to_string();
        let ts_ms = parse_time(&ts_text)
            .with_context(|| format!("{} row {}: bad time {ts_text:?}", path.display(), n + 2))?;
        let label = parse_label(rec.get(l_idx).unwrap_or_default())
            .with_context(|| format!("{} row {}: bad label", path.display(), n + 2))?;
        let values = channel_idx
            .iter()
            .zip(&channels)
            .filter_map(|(&i, name)| {
                let v: f64 = rec.get(i)?.parse().ok()?;
                v.is_finite().then(|| (name.clone(), v))
            })
            .collect();
        rows.push(Row {
            ts_ms,
            ts_text,
            values,
            label,
        });
    }
    rows.sort_by_key(|r| r.ts_ms);
    Ok((channels, rows))
}

fn median_interval(rows: &[Row]) -> Option<i64> {
    let mut d: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].ts_ms - w[0].ts_ms)
        .filter(|&d| d > 0)
        .collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable();
    Some(d[d.len() / 2])
}

/// Runs one file's experiment.
fn run_file(
    path: &Path,
    cfg: &PipelineConfig,
    o: &BacktestOptions,
) -> anyhow::Result<(FileReport, Vec<RowOut>)> {
    let (channel_names, rows) = read_csv(path, o)?;
    let interval = median_interval(&rows)
        .with_context(|| format!("{}: fewer than two distinct times", path.display()))?;
    let slide = o.slide_ms.unwrap_or(interval as u64).max(1);
    let mut size = o.window_ms.unwrap_or(12 * interval as u64).max(slide);
    size = size.div_ceil(slide) * slide;
    let head = match o.split {
        TrainSplit::Rows(n) => n.min(rows.len()),
        TrainSplit::Fraction(f) => ((rows.len() as f64) * f.clamp(0.0, 1.0)) as usize,
    };
    if head < 2 || head >= rows.len() {
        bail!(
            "{}: the training head must leave rows on both sides (head = {head} of {})",
            path.display(),
            rows.len()
        );
    }
    let head_end_ms = rows[head - 1].ts_ms;
    let labelled_in_head = rows[..head].iter().filter(|r| r.label).count();
    if labelled_in_head > 0 {
        tracing::warn!(
            file = %path.display(),
            rows = labelled_in_head,
            "the training head holds labelled anomalous rows; the model will learn them as normal (use --train-rows)"
        );
    }

    let channels = Arc::new(ChannelSet::new(channel_names.iter())?);
    // Files are replayed whole: no idle eviction within one (the cap is about 34 years).
    let wcfg = WindowConfig::hopping(size, slide, 0, 1 << 40);
    let mut windower = Windower::new(wcfg, channels)?;
    let mut closed: Vec<ClosedWindow> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        windower.push_parts("backtest", "file", r.ts_ms, &r.values, i as u64)?;
        closed.extend(windower.drain_closed());
    }
    windower.flush_all();
    closed.extend(windower.drain_closed());

    // Train on windows made only of head rows.
    let (train, test): (Vec<&ClosedWindow>, Vec<&ClosedWindow>) = closed
        .iter()
        .partition(|w| w.end_ms <= head_end_ms + 1 && (w.max_seq as usize) < head);
    if train.len() < 20 {
        bail!(
            "{}: only {} training windows in the head; use a longer head or smaller window",
            path.display(),
            train.len()
        );
    }
    let inputs = crate::scoring::ModelInputs::new(
        &linewatch_window::FeatureSchema::new(Arc::new(ChannelSet::new(channel_names.iter())?)),
        &cfg.model.stats,
    );
    let train_rows: Vec<f32> = train.iter().flat_map(|w| inputs.of(w)).collect();
    let model = crate::trainer::train_score_model(cfg, &train_rows, inputs.names())?;
    let threshold = model.threshold();

    // Score the rest, in window order, through the alerter.
    let test_rows: Vec<f32> = test.iter().flat_map(|w| inputs.of(w)).collect();
    let scores = if test.is_empty() {
        Vec::new()
    } else {
        model.anomaly_scores(&test_rows)?
    };
    let mut alerter = Alerter::new(
        &cfg.pipeline.name,
        cfg.alert.open_after,
        cfg.alert.resolve_after,
    );
    let mut by_end: std::collections::HashMap<i64, (f64, bool)> = std::collections::HashMap::new();
    for (w, s) in test.iter().zip(&scores) {
        alerter.observe(&ScoredWindow {
            line: "backtest",
            machine: "file",
            window_start_ms: w.start_ms,
            window_end_ms: w.end_ms,
            anomaly_score: Some(*s),
            threshold: Some(threshold),
            defect_prob: None,
            model_version: Some("backtest"),
            top_features: &[],
        });
        by_end.insert(w.end_ms, (*s, alerter.is_open("file")));
    }
    let slide_i = slide as i64;
    let out: Vec<RowOut> = rows[head..]
        .iter()
        .map(|r| {
            let end = r.ts_ms - r.ts_ms.rem_euclid(slide_i) + slide_i;
            let hit = by_end.get(&end);
            RowOut {
                ts_text: r.ts_text.clone(),
                score: hit.map(|h| h.0),
                alert: hit.is_some_and(|h| h.1),
                label: r.label,
            }
        })
        .collect();
    let report = FileReport {
        file: path.display().to_string(),
        channels: channel_names,
        sampling_interval_ms: interval,
        window_ms: size,
        slide_ms: slide,
        train_rows: head,
        train_windows: train.len(),
        scored_rows: out.len(),
        threshold,
        metrics: metrics(out.iter().map(|r| (r.score, r.alert, r.label))),
    };
    Ok((report, out))
}

/// Precision, recall, ... over (score, alert, label) rows.
pub fn metrics(rows: impl Iterator<Item = (Option<f64>, bool, bool)>) -> Metrics {
    let mut m = Metrics::default();
    let mut ranked: Vec<(f64, bool)> = Vec::new();
    for (score, alert, label) in rows {
        match (alert, label) {
            (true, true) => m.tp += 1,
            (true, false) => m.fp += 1,
            (false, false) => m.tn += 1,
            (false, true) => m.f_n += 1,
        }
        ranked.push((
            score.filter(|s| s.is_finite()).unwrap_or(f64::NEG_INFINITY),
            label,
        ));
    }
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    m.precision = ratio(m.tp, m.tp + m.fp);
    m.recall = ratio(m.tp, m.tp + m.f_n);
    m.f1 = match (m.precision, m.recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    m.far = ratio(m.fp, m.fp + m.tn);
    m.mar = ratio(m.f_n, m.f_n + m.tp);
    m.pr_auc = average_precision(&mut ranked);
    m
}

/// Average precision (area under the precision-recall step curve), ties grouped.
fn average_precision(ranked: &mut [(f64, bool)]) -> Option<f64> {
    let positives = ranked.iter().filter(|r| r.1).count();
    if positives == 0 {
        return None;
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut seen, mut ap, mut i) = (0usize, 0usize, 0.0, 0usize);
    while i < ranked.len() {
        let mut j = i;
        let mut tp_here = 0;
        while j < ranked.len() && ranked[j].0 == ranked[i].0 {
            tp_here += usize::from(ranked[j].1);
            j += 1;
        }
        tp += tp_here;
        seen += j - i;
        ap += (tp_here as f64 / positives as f64) * (tp as f64 / seen as f64);
        i = j;
    }
    Some(ap)
}

/// Runs every file, writes `rows.csv` and `summary.json` under `out`, returns the summary.
pub fn backtest(cfg: &PipelineConfig, o: &BacktestOptions) -> anyhow::Result<BacktestSummary> {
    if o.csv.is_empty() {
        bail!("give at least one --csv file");
    }
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let rows_path = o.out.join("rows.csv");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&rows_path)
            .with_context(|| format!("creating {}", rows_path.display()))?,
    );
    writeln!(w, "file,timestamp,anomaly_score,alert,label")?;
    let mut per_file = Vec::new();
    let mut pooled: Vec<(Option<f64>, bool, bool)> = Vec::new();
    for path in &o.csv {
        let (report, rows) = run_file(path, cfg, o)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        );
        for r in &rows {
            let score = r.score.map_or_else(String::new, |s| format!("{s}"));
            writeln!(
                w,
                "{},{},{},{},{}",
                csv_field(&name),
                csv_field(&r.ts_text),
                score,
                u8::from(r.alert),
                u8::from(r.label)
            )?;
            pooled.push((r.score, r.alert, r.label));
        }
        tracing::info!(file = %name, rows = rows.len(), precision = ?report.metrics.precision, recall = ?report.metrics.recall, "file done");
        per_file.push(report);
    }
    w.flush()?;
    let summary = BacktestSummary {
        metrics: metrics(pooled.iter().copied()),
        files: per_file.len(),
        rows: pooled.len(),
        per_file,
    };
    std::fs::write(
        o.out.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(summary)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_documented_form() {
        assert_eq!(parse_time("2013-12-02 21:15:00"), Some(1_386_018_900_000));
        assert_eq!(parse_time("2013-12-02T21:15:00Z"), Some(1_386_018_900_000));
        assert_eq!(parse_time("1386018900"), Some(1_386_018_900_000));
        assert_eq!(parse_time("1386018900000"), Some(1_386_018_900_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn metrics_match_hand_counts() {
        // scores, alert, label
        let rows = vec![
            (Some(0.9), true, true),
            (Some(0.8), true, false),
            (Some(0.7), false, true),
            (Some(0.1), false, false),
            (Some(0.2), false, false),
        ];
        let m = metrics(rows.into_iter());
        assert_eq!((m.tp, m.fp, m.tn, m.f_n), (1, 1, 2, 1));
        assert_eq!(m.precision, Some(0.5));
        assert_eq!(m.recall, Some(0.5));
        assert_eq!(m.far, Some(1.0 / 3.0));
        assert_eq!(m.mar, Some(0.5));
        // ranking: + - + - - : AP = 0.5 * (1/1) + 0.5 * (2/3)
        let ap = m.pr_auc.unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn perfect_ranking_has_unit_average_precision() {
        let mut r = vec![(3.0, true), (2.0, true), (1.0, false)];
        assert_eq!(average_precision(&mut r), Some(1.0));
    }
}
