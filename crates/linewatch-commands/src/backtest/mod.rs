//! `linewatch backtest`: the stream's own windowing, models and alert hysteresis over labelled
//! CSV files, with no Kafka, and a classical PCA monitor (T² and SPE) beside the model on the
//! same windows and model inputs.
//!
//! Two protocols:
//! - **head split** (default): each file is its own experiment; the model trains on the
//!   file's anomaly-free head (`--train-rows` / `--train-fraction`) and scores the rest;
//! - **separate history** (`--train-csv`, repeatable): one model is fitted on the windows of
//!   the training files (each windowed on its own, rows concatenated in file order then time
//!   order) and scores every `--csv` file whole.
//!
//! A row is scored by the window ending just after it and alerted when an alert is open after
//! that window. Windows that do not lie wholly inside their file's recorded span (the first
//! size/hop - 1 windows of a file, which hold fewer readings than a full window) are neither
//! trained on nor scored: their rows get no score and no alert, and are counted
//! (`partial_windows`, `unscored_rows`).
//!
//! A JSON Lines file (`.jsonl`, `.ndjson`) stands for one series per line and machine
//! (`jsonl.rs`): each is windowed, trained and scored as a CSV file would be.

mod cells;
mod input;
mod jsonl;
mod metrics;
mod report;
mod score;
mod windows;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};

use linewatch_window::{ChannelSet, FeatureSchema};

pub use cells::{CellCounts, CellSample, ColumnCells, MAX_UNPARSEABLE_SHARE, Rejected};
pub use input::parse_time;
use input::{CsvFile, CsvLayout, check_channels, csv_field, median_interval, read_csv};
pub use linewatch_baseline::PcaConfig;
use linewatch_runtime::config::PipelineConfig;
use linewatch_runtime::scoring::ModelInputs;
pub use metrics::{Metrics, metrics};
pub use report::{
    BacktestSummary, BaselineSummary, FileBaseline, FileReport, TrainFile, TrainReport,
    summary_line,
};
use score::{Fitted, RowOut, fit, score_rows};
use windows::{FileWindows, Geometry};

/// How the head of each file used for training is chosen (head-split protocol).
#[derive(Debug, Clone, Copy)]
pub enum TrainSplit {
    /// The first N rows.
    Rows(usize),
    /// This share of the rows.
    Fraction(f64),
}

/// The head split when none is given: the first 15 % of each file.
pub const DEFAULT_SPLIT: TrainSplit = TrainSplit::Fraction(0.15);

/// Options of `linewatch backtest`.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// Labelled files to score.
    pub csv: Vec<PathBuf>,
    /// Normal history to fit on; when non-empty every `csv` file is scored whole.
    pub train_csv: Vec<PathBuf>,
    /// Field separator.
    pub sep: u8,
    /// Decimal mark of the sensor values: `b'.'` or `b','` (`70,125`, with another `sep`).
    pub decimal: u8,
    /// Time column.
    pub time_col: String,
    /// Label column (1 = anomalous row).
    pub label_col: String,
    /// Columns that are neither sensors nor time or label.
    pub ignore_cols: Vec<String>,
    /// Head split (None: [`DEFAULT_SPLIT`]); an error together with `train_csv`.
    pub split: Option<TrainSplit>,
    /// Window length; default 12 sampling intervals.
    pub window_ms: Option<u64>,
    /// Hop; default one sampling interval (a window ends at every row).
    pub slide_ms: Option<u64>,
    /// The PCA baseline's settings.
    pub baseline: PcaConfig,
    /// Output folder (`rows.csv`, `summary.json`).
    pub out: PathBuf,
}

/// One scored file: the model's report, the baseline's, and the rows.
struct FileOutcome {
    report: FileReport,
    baseline: FileBaseline,
    rows: Vec<RowOut>,
}

/// The pipeline settings of a backtest: built-in defaults, or the file at `path`, with the
/// environment on top. A `[window] channels` list is not needed (each CSV's columns are its
/// channels; a list given is ignored).
pub fn load_config(path: Option<&Path>) -> anyhow::Result<PipelineConfig> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            format!("pipeline file {}", p.display()),
        ),
        None => (
            "[pipeline]\nname = \"backtest\"\n".to_string(),
            "the configuration (built-in defaults and LINEWATCH__* variables)".to_string(),
        ),
    };
    let mut tree: toml::Table =
        toml::from_str(&text).with_context(|| format!("{origin}: not valid TOML"))?;
    if let Some(window) = tree
        .entry("window")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
    {
        let listed = window
            .get("channels")
            .and_then(|c| c.as_array())
            .is_some_and(|a| !a.is_empty());
        if !listed {
            // A placeholder for validation; the backtest takes the channels from the CSV.
            window.insert(
                "channels".into(),
                toml::Value::Array(vec![toml::Value::String(
                    linewatch_runtime::config::CHANNELS_FROM_DATA.into(),
                )]),
            );
        }
    }
    let text = toml::to_string(&tree).context("re-encoding the pipeline settings")?;
    Ok(PipelineConfig::from_toml_with_env(
        &text,
        &origin,
        std::env::vars(),
    )?)
}

impl BacktestOptions {
    fn layout(&self) -> CsvLayout<'_> {
        CsvLayout {
            sep: self.sep,
            decimal: self.decimal,
            time_col: &self.time_col,
            label_col: &self.label_col,
            ignore_cols: &self.ignore_cols,
        }
    }
}

fn model_inputs(cfg: &PipelineConfig, channels: &Arc<ChannelSet>) -> ModelInputs {
    ModelInputs::new(&FeatureSchema::new(channels.clone()), &cfg.model.stats)
}

fn interval_of(path: &Path, f: &CsvFile) -> anyhow::Result<i64> {
    median_interval(&f.rows)
        .with_context(|| format!("{}: fewer than two distinct times", path.display()))
}

/// Reads one input: a CSV file is one series, a JSON Lines file (`.jsonl`, `.ndjson`) one
/// series per machine, named `<file>#<line>:<machine>`.
fn load(
    path: &Path,
    cfg: &PipelineConfig,
    o: &BacktestOptions,
) -> anyhow::Result<Vec<(PathBuf, CsvFile)>> {
    if jsonl::is_jsonl(path) {
        jsonl::read_jsonl(path, cfg, &o.label_col)
    } else {
        Ok(vec![(path.to_path_buf(), read_csv(path, &o.layout())?)])
    }
}

/// Head split: the model trains on the series' head and scores the rest.
fn run_head_file(
    path: &Path,
    f: CsvFile,
    cfg: &PipelineConfig,
    o: &BacktestOptions,
    split: TrainSplit,
) -> anyhow::Result<FileOutcome> {
    let rows = &f.rows;
    let interval = interval_of(path, &f)?;
    let g = Geometry::new(interval, o.window_ms, o.slide_ms);
    let head = match split {
        TrainSplit::Rows(n) => n.min(rows.len()),
        TrainSplit::Fraction(x) => ((rows.len() as f64) * x.clamp(0.0, 1.0)) as usize,
    };
    if head < 2 || head >= rows.len() {
        bail!(
            "{}: the training head must leave rows on both sides (head = {head} of {})",
            path.display(),
            rows.len()
        );
    }
    let labelled_in_head = rows[..head].iter().filter(|r| r.label).count();
    if labelled_in_head > 0 {
        tracing::warn!(
            file = %path.display(),
            rows = labelled_in_head,
            "the training head holds labelled anomalous rows; the model will learn them as normal (use --train-rows)"
        );
    }
    let channels = Arc::new(ChannelSet::new(f.channels.iter())?);
    let fw = FileWindows::build(rows, &channels, &g)?;
    // Train on full windows made only of head rows.
    let head_end = g.end_of(rows[head - 1].ts_ms);
    let inputs = model_inputs(cfg, &channels);
    let train: Vec<f64> = fw
        .full()
        .filter(|w| w.end_ms <= head_end && (w.max_seq as usize) < head)
        .flat_map(|w| inputs.of(w))
        .collect();
    let fitted = fit(cfg, &o.baseline, inputs, &train, path, g.overlap())?;
    let out = score_rows(cfg, &fitted, &fw, &rows[head..], &g)?;
    Ok(outcome(
        path,
        f.channels.clone(),
        f.cells.clone(),
        interval,
        &g,
        head,
        fw.partial_windows(),
        &fitted,
        out,
    ))
}

/// `--train-csv`: one model from the training files, every `--csv` file scored whole.
fn run_with_history(
    cfg: &PipelineConfig,
    o: &BacktestOptions,
) -> anyhow::Result<(TrainReport, Vec<FileOutcome>)> {
    let mut files = Vec::with_capacity(o.train_csv.len());
    for path in &o.train_csv {
        files.extend(load(path, cfg, o)?);
    }
    let Some((first_path, first)) = files.first() else {
        bail!("give at least one --train-csv file");
    };
    // The first training file sets the channels, the windows and the model inputs.
    let first_path: &Path = first_path;
    let names = first.channels.clone();
    let g = Geometry::new(interval_of(first_path, first)?, o.window_ms, o.slide_ms);
    let channels = Arc::new(ChannelSet::new(names.iter())?);
    let inputs = model_inputs(cfg, &channels);
    let d = inputs.names().len().max(1);
    let mut train_files = Vec::with_capacity(files.len());
    let mut train_rows: Vec<f64> = Vec::new();
    let mut rows_total = 0;
    for (path, f) in &files {
        check_channels(path, &f.channels, &names, first_path)?;
        let labelled = f.rows.iter().filter(|r| r.label).count();
        if labelled > 0 {
            tracing::warn!(file = %path.display(), rows = labelled, "a training file holds labelled anomalous rows; the model will learn them as normal");
        }
        let fw = FileWindows::build(&f.rows, &channels, &g)?;
        let before = train_rows.len();
        train_rows.extend(fw.full().flat_map(|w| inputs.of(w)));
        rows_total += f.rows.len();
        train_files.push(TrainFile {
            file: path.display().to_string(),
            rows: f.rows.len(),
            windows: (train_rows.len() - before) / d,
            partial_windows: fw.partial_windows(),
            cells: f.cells.clone(),
        });
    }
    let what = if files.len() == 1 {
        first_path.to_path_buf()
    } else {
        PathBuf::from(format!("{} training series", files.len()))
    };
    // Every scored file is read and checked before the (slow) training.
    let mut scored = Vec::with_capacity(o.csv.len());
    for input in &o.csv {
        for (path, f) in load(input, cfg, o)? {
            check_channels(&path, &f.channels, &names, first_path)?;
            let interval = interval_of(&path, &f)?;
            if Geometry::new(interval, o.window_ms, o.slide_ms).size_ms != g.size_ms {
                tracing::warn!(file = %path.display(), interval_ms = interval, "sampled unlike the training files; scored with the training files' windows");
            }
            scored.push((path, f, interval));
        }
    }
    let fitted = fit(cfg, &o.baseline, inputs, &train_rows, &what, g.overlap())?;
    let mut outcomes = Vec::with_capacity(scored.len());
    for (path, f, interval) in scored {
        let fw = FileWindows::build(&f.rows, &channels, &g)?;
        let out = score_rows(cfg, &fitted, &fw, &f.rows, &g)?;
        outcomes.push(outcome(
            &path,
            f.channels,
            f.cells,
            interval,
            &g,
            rows_total,
            fw.partial_windows(),
            &fitted,
            out,
        ));
    }
    let report = TrainReport {
        files: train_files,
        rows: rows_total,
        windows: fitted.train_windows,
    };
    Ok((report, outcomes))
}

#[allow(clippy::too_many_arguments)]
fn outcome(
    path: &Path,
    channels: Vec<String>,
    cells: CellCounts,
    interval: i64,
    g: &Geometry,
    train_rows: usize,
    partial_windows: usize,
    fitted: &Fitted,
    rows: Vec<RowOut>,
) -> FileOutcome {
    let file = path.display().to_string();
    let report = FileReport {
        file: file.clone(),
        channels,
        cells,
        sampling_interval_ms: interval,
        window_ms: g.size_ms,
        slide_ms: g.slide_ms,
        train_rows,
        train_windows: fitted.train_windows,
        scored_rows: rows.len(),
        unscored_rows: rows.iter().filter(|r| r.score.is_none()).count(),
        partial_windows,
        threshold: fitted.model.threshold(),
        shrinkage: fitted.model.summary().shrinkage,
        residual: fitted.model.summary().residual,
        metrics: metrics(rows.iter().map(|r| (r.score, r.alert, r.label))),
    };
    let (components, t2_limit, spe_limit, error) = match &fitted.baseline {
        Ok(m) => (
            Some(m.components()),
            Some(m.t2_limit()),
            Some(m.spe_limit()),
            None,
        ),
        Err(e) => (None, None, None, Some(e.clone())),
    };
    let [b, t2, spe] = baseline_metrics(|| rows.iter());
    let baseline = FileBaseline {
        file,
        components,
        t2_limit,
        spe_limit,
        error,
        metrics: b,
        t2,
        spe,
    };
    FileOutcome {
        report,
        baseline,
        rows,
    }
}

/// The PCA alarm, T² alone and SPE alone over the rows `rows()` yields.
fn baseline_metrics<'a, I>(rows: impl Fn() -> I) -> [Metrics; 3]
where
    I: Iterator<Item = &'a RowOut>,
{
    let pick = |f: fn(&score::BaseRow) -> (f64, bool)| {
        metrics(rows().map(|r| match &r.base {
            Some(b) => {
                let (s, a) = f(b);
                (Some(s), a, r.label)
            }
            None => (None, false, r.label),
        }))
    };
    [
        pick(|b| (b.rank, b.alert)),
        pick(|b| (b.t2, b.t2_alert)),
        pick(|b| (b.spe, b.spe_alert)),
    ]
}

/// Runs every file, writes `rows.csv` and `summary.json` under `out`, returns the summary.
pub fn backtest(cfg: &PipelineConfig, o: &BacktestOptions) -> anyhow::Result<BacktestSummary> {
    if o.csv.is_empty() {
        bail!("give at least one --csv file");
    }
    if !o.train_csv.is_empty() && o.split.is_some() {
        bail!(
            "--train-rows / --train-fraction choose a training head inside each --csv file; \
             with --train-csv every --csv file is scored whole: give one or the other"
        );
    }
    o.baseline.validate().context("baseline settings")?;
    let out = linewatch_sink::Location::from_path_or_url(&o.out).context("--out")?;
    linewatch_runtime::preflight::ensure_writable(&out, "--out")?;

    let (train, outcomes) = if o.train_csv.is_empty() {
        let split = o.split.unwrap_or(DEFAULT_SPLIT);
        let mut v = Vec::with_capacity(o.csv.len());
        for input in &o.csv {
            for (path, f) in load(input, cfg, o)? {
                v.push(run_head_file(&path, f, cfg, o, split)?);
            }
        }
        (None, v)
    } else {
        let (t, v) = run_with_history(cfg, o)?;
        (Some(t), v)
    };

    let rows_path = out.join("rows.csv");
    let mut w: Vec<u8> = Vec::new();
    writeln!(
        w,
        "file,timestamp,anomaly_score,alert,label,p_value,baseline_alert"
    )?;
    let opt = |v: Option<f64>| v.map_or_else(String::new, |s| format!("{s}"));
    for fo in &outcomes {
        let path = Path::new(&fo.report.file);
        let name = path.file_name().map_or_else(
            || fo.report.file.clone(),
            |n| n.to_string_lossy().to_string(),
        );
        for r in &fo.rows {
            writeln!(
                w,
                "{},{},{},{},{},{},{}",
                csv_field(&name),
                csv_field(&r.ts_text),
                opt(r.score),
                u8::from(r.alert),
                u8::from(r.label),
                opt(r.p_value),
                u8::from(r.base.is_some_and(|b| b.alert)),
            )?;
        }
        tracing::info!(
            file = %name,
            rows = fo.rows.len(),
            precision = ?fo.report.metrics.precision,
            recall = ?fo.report.metrics.recall,
            far = ?fo.report.metrics.far,
            baseline_recall = ?fo.baseline.metrics.recall,
            baseline_far = ?fo.baseline.metrics.far,
            "file done"
        );
    }
    rows_path
        .put(w)
        .with_context(|| format!("writing {rows_path}"))?;

    let all_rows = || outcomes.iter().flat_map(|fo| fo.rows.iter());
    let [b, t2, spe] = baseline_metrics(all_rows);
    let cells = CellCounts::pooled(
        train
            .iter()
            .flat_map(|t| t.files.iter().map(|f| &f.cells))
            .chain(outcomes.iter().map(|fo| &fo.report.cells)),
    );
    let summary = BacktestSummary {
        metrics: metrics(all_rows().map(|r| (r.score, r.alert, r.label))),
        files: outcomes.len(),
        rows: all_rows().count(),
        cells,
        train,
        baseline: BaselineSummary {
            explained_variance: o.baseline.explained_variance,
            confidence: o.baseline.confidence,
            metrics: b,
            t2,
            spe,
            per_file: outcomes.iter().map(|fo| fo.baseline.clone()).collect(),
        },
        per_file: outcomes.into_iter().map(|fo| fo.report).collect(),
    };
    let summary_path = out.join("summary.json");
    summary_path
        .put(serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("writing {summary_path}"))?;
    Ok(summary)
}
