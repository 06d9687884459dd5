//! What a backtest reports: `summary.json` and its parts.

use serde::Serialize;

use super::Metrics;
use super::cells::CellCounts;

/// One scored file's experiment.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file as given.
    pub file: String,
    /// Its sensor columns (file order).
    pub channels: Vec<String>,
    /// Its sensor cells: values, missing (empty) and rejected by reason, per column.
    pub cells: CellCounts,
    /// Median step between its rows.
    pub sampling_interval_ms: i64,
    /// Window length.
    pub window_ms: u64,
    /// Hop between windows.
    pub slide_ms: u64,
    /// Rows the model trained on (the head, or all rows of the `--train-csv` files).
    pub train_rows: usize,
    /// Full windows the model trained on.
    pub train_windows: usize,
    /// Rows evaluated (every row after the head, or every row with `--train-csv`).
    pub scored_rows: usize,
    /// Evaluated rows left without score and alert because their window is partial.
    pub unscored_rows: usize,
    /// Windows of the file that start before its first reading (neither trained on nor
    /// scored).
    pub partial_windows: usize,
    /// The model's alert threshold on the anomaly score.
    pub threshold: f64,
    /// Covariance shrinkage intensity the model's Gaussian part was fitted with (chosen by
    /// `model.shrinkage`).
    pub shrinkage: f64,
    /// Whether the model kept its RePU residual beside the Gaussian part.
    pub residual: bool,
    /// The model's figures over the evaluated rows.
    pub metrics: Metrics,
}

/// The PCA baseline's figures for one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileBaseline {
    /// The file as given.
    pub file: String,
    /// Principal components kept (None when the monitor could not be fitted).
    pub components: Option<usize>,
    /// Control limit of T².
    pub t2_limit: Option<f64>,
    /// Control limit of SPE.
    pub spe_limit: Option<f64>,
    /// Why the monitor could not be fitted, if it could not.
    pub error: Option<String>,
    /// PCA alarm (T² or SPE over its limit, with the model's hysteresis), ranked by
    /// max(T²/limit, SPE/limit).
    #[serde(flatten)]
    pub metrics: Metrics,
    /// T² alone (ranked by T²).
    pub t2: Metrics,
    /// SPE alone (ranked by SPE).
    pub spe: Metrics,
}

/// The PCA baseline beside the model: pooled over all files, and per file.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineSummary {
    /// Share of variance the kept components reach.
    pub explained_variance: f64,
    /// Confidence of the T² and SPE limits.
    pub confidence: f64,
    /// PCA alarm (T² or SPE over its limit), pooled.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// T² alone, pooled.
    pub t2: Metrics,
    /// SPE alone, pooled.
    pub spe: Metrics,
    /// Each file's figures.
    pub per_file: Vec<FileBaseline>,
}

/// One `--train-csv` file.
#[derive(Debug, Clone, Serialize)]
pub struct TrainFile {
    /// The file as given.
    pub file: String,
    /// Its rows.
    pub rows: usize,
    /// Its full windows (trained on).
    pub windows: usize,
    /// Its partial windows (left out).
    pub partial_windows: usize,
    /// Its sensor cells: values, missing (empty) and rejected by reason, per column.
    pub cells: CellCounts,
}

/// The training history of a `--train-csv` run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Each training file.
    pub files: Vec<TrainFile>,
    /// Rows over all training files.
    pub rows: usize,
    /// Windows trained on.
    pub windows: usize,
}

/// `DIR/summary.json`: pooled over all files, with each file's figures beside.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestSummary {
    /// precision, recall, f1, far, mar, pr_auc (and the counts), at the top level.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Files scored.
    pub files: usize,
    /// Rows evaluated.
    pub rows: usize,
    /// Sensor cells of every file read (training and scored): values, missing (empty) and
    /// rejected by reason (`unparseable`, `non_finite`, `out_of_range`).
    pub cells: CellCounts,
    /// The training history with `--train-csv` (null with the head split).
    pub train: Option<TrainReport>,
    /// The PCA baseline's figures.
    pub baseline: BaselineSummary,
    /// Each file's figures.
    pub per_file: Vec<FileReport>,
}

/// The summary without per-file lists, for the one-line printout.
pub fn summary_line(summary: &BacktestSummary) -> anyhow::Result<serde_json::Value> {
    let mut line = serde_json::to_value(summary)?;
    if let Some(o) = line.as_object_mut() {
        o.remove("per_file");
        if let Some(b) = o.get_mut("baseline").and_then(|b| b.as_object_mut()) {
            b.remove("per_file");
        }
    }
    Ok(line)
}
