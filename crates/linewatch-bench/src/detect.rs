//! `linewatch bench detect`: the backtests of a data folder laid out like the project's
//! development data, as one JSON object.
//!
//! - `tep/`: the Tennessee Eastman development split. One model (and one PCA monitor) is
//!   fitted on `train-normal.csv` (`--train-csv`) and scores `test-normal.csv` and every
//!   `faultNN.csv` whole (label column `fault`). The false-alarm rate is the alerted share of
//!   `test-normal.csv`'s rows, the detection rate of fault NN the alerted share of
//!   `faultNN.csv`'s rows (rows of a file's first, partial windows count as not alerted);
//!   faults 3, 9 and 15 are left out of the mean, as is customary.
//! - `nab-*.csv` at the top level: the NAB series (label column `anomaly`), each trained on
//!   its own anomaly-free head of [`NAB_TRAIN_ROWS`] rows, as the README runs them; F1 and
//!   PR-AUC pooled over the files (the baseline ranks rows by max(T²/limit, SPE/limit)).
//!
//! A part the folder lacks is skipped and said so in the JSON; a folder with neither is an
//! error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Serialize;

use linewatch_commands::backtest::{
    self, BacktestOptions, BacktestSummary, Metrics, PcaConfig, TrainSplit,
};
use linewatch_runtime::config::PipelineConfig;

/// Rows of each NAB file's training head (the anomaly-free head of both shipped files).
pub const NAB_TRAIN_ROWS: usize = 2000;

/// TEP faults reported apart (nearly invisible in these measurements).
pub const TEP_EXCLUDED_FAULTS: [u32; 3] = [3, 9, 15];

/// Options of `linewatch bench detect`.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// The data folder (`tep/`, `nab-*.csv`).
    pub data: PathBuf,
    /// Where each backtest writes its `rows.csv` and `summary.json` (`tep/`, `nab/`).
    pub out: PathBuf,
    /// The PCA baseline's settings.
    pub baseline: PcaConfig,
    /// Training head of each NAB file.
    pub nab_train_rows: usize,
}

/// A part of the benchmark: its figures, or why it was skipped.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Part<T> {
    /// The part ran.
    Ran(T),
    /// The folder lacks it.
    Skipped {
        /// Why.
        skipped: String,
    },
}

/// False alarms and detection of one detector on TEP.
#[derive(Debug, Clone, Serialize)]
pub struct TepFigures {
    /// Alerted share of `test-normal.csv` (None without that file).
    pub false_alarm_rate: Option<f64>,
    /// Alerted share of each `faultNN.csv`, by fault number.
    pub detection: BTreeMap<u32, f64>,
    /// Mean detection over the faults present other than 3, 9 and 15.
    pub mean_detection_excl_3_9_15: Option<f64>,
}

/// One PCA statistic alone on TEP.
#[derive(Debug, Clone, Serialize)]
pub struct TepBrief {
    /// Alerted share of `test-normal.csv`.
    pub false_alarm_rate: Option<f64>,
    /// Mean detection over the faults present other than 3, 9 and 15.
    pub mean_detection_excl_3_9_15: Option<f64>,
}

/// The PCA baseline on TEP: the alarm (T² or SPE), and each statistic alone.
#[derive(Debug, Clone, Serialize)]
pub struct TepBaseline {
    /// T² or SPE over its limit.
    #[serde(flatten)]
    pub alarm: TepFigures,
    /// T² alone.
    pub t2: TepBrief,
    /// SPE alone.
    pub spe: TepBrief,
    /// Principal components kept.
    pub components: Option<usize>,
}

/// The TEP part.
#[derive(Debug, Clone, Serialize)]
pub struct TepReport {
    /// Files scored (test-normal and faults).
    pub files: usize,
    /// Window length and hop used.
    pub window_ms: Option<u64>,
    /// Hop between windows.
    pub slide_ms: Option<u64>,
    /// The score model.
    pub model: TepFigures,
    /// The PCA baseline.
    pub baseline: TepBaseline,
}

/// F1 and PR-AUC of one detector on NAB (pooled over the files).
#[derive(Debug, Clone, Serialize)]
pub struct NabFigures {
    /// F1 of the alerts.
    pub f1: Option<f64>,
    /// Area under the precision-recall curve of the ranking score.
    pub pr_auc: Option<f64>,
    /// Precision of the alerts.
    pub precision: Option<f64>,
    /// Recall of the alerts.
    pub recall: Option<f64>,
    /// False alarm rate.
    pub far: Option<f64>,
}

impl From<&Metrics> for NabFigures {
    fn from(m: &Metrics) -> Self {
        Self {
            f1: m.f1,
            pr_auc: m.pr_auc,
            precision: m.precision,
            recall: m.recall,
            far: m.far,
        }
    }
}

/// The NAB part.
#[derive(Debug, Clone, Serialize)]
pub struct NabReport {
    /// The files (names).
    pub files: Vec<String>,
    /// Rows evaluated (after each file's head).
    pub rows: usize,
    /// The score model.
    pub model: NabFigures,
    /// The PCA baseline.
    pub baseline: NabFigures,
}

/// The whole benchmark: the last stdout line of `linewatch bench detect`.
#[derive(Debug, Clone, Serialize)]
pub struct DetectReport {
    /// The data folder.
    pub data: String,
    /// Tennessee Eastman.
    pub tep: Part<TepReport>,
    /// NAB.
    pub nab: Part<NabReport>,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().to_string(),
    )
}

/// The fault number of `faultNN.csv`.
fn fault_number(p: &Path) -> Option<u32> {
    file_name(p)
        .strip_prefix("fault")?
        .strip_suffix(".csv")?
        .parse()
        .ok()
}

fn sorted_files(dir: &Path, keep: impl Fn(&Path) -> bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if p.is_file() && keep(&p) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

fn options(
    o: &DetectOptions,
    csv: Vec<PathBuf>,
    train_csv: Vec<PathBuf>,
    label: &str,
    split: Option<TrainSplit>,
    out: &str,
) -> BacktestOptions {
    BacktestOptions {
        csv,
        train_csv,
        sep: b',',
        decimal: b'.',
        time_col: "timestamp".into(),
        label_col: label.into(),
        ignore_cols: Vec::new(),
        split,
        window_ms: None,
        slide_ms: None,
        baseline: o.baseline,
        out: o.out.join(out),
    }
}

fn mean_excluding(detection: &BTreeMap<u32, f64>) -> Option<f64> {
    let kept: Vec<f64> = detection
        .iter()
        .filter(|(k, _)| !TEP_EXCLUDED_FAULTS.contains(k))
        .map(|(_, v)| *v)
        .collect();
    (!kept.is_empty()).then(|| kept.iter().sum::<f64>() / kept.len() as f64)
}

/// One detector's TEP figures from per-file metrics (`normal`: index of test-normal).
fn tep_figures(
    normal: Option<usize>,
    faults: &[(usize, u32)],
    per_file: impl Fn(usize) -> Option<f64>,
) -> TepFigures {
    let detection: BTreeMap<u32, f64> = faults
        .iter()
        .filter_map(|&(i, n)| Some((n, per_file(i)?)))
        .collect();
    TepFigures {
        false_alarm_rate: normal.and_then(&per_file),
        mean_detection_excl_3_9_15: mean_excluding(&detection),
        detection,
    }
}

fn run_tep(cfg: &PipelineConfig, o: &DetectOptions) -> anyhow::Result<Part<TepReport>> {
    let dir = o.data.join("tep");
    if !dir.is_dir() {
        return Ok(Part::Skipped {
            skipped: format!("no tep/ folder in {}", o.data.display()),
        });
    }
    let train = dir.join("train-normal.csv");
    if !train.is_file() {
        return Ok(Part::Skipped {
            skipped: format!("no {}", train.display()),
        });
    }
    let normal = dir.join("test-normal.csv");
    let mut csv = Vec::new();
    if normal.is_file() {
        csv.push(normal);
    }
    let normal_idx = (!csv.is_empty()).then_some(0);
    let mut faults = Vec::new();
    for p in sorted_files(&dir, |p| fault_number(p).is_some())? {
        if let Some(n) = fault_number(&p) {
            faults.push((csv.len(), n));
            csv.push(p);
        }
    }
    if csv.is_empty() {
        return Ok(Part::Skipped {
            skipped: format!("no test-normal.csv or faultNN.csv in {}", dir.display()),
        });
    }
    let s: BacktestSummary =
        backtest::backtest(cfg, &options(o, csv, vec![train], "fault", None, "tep"))
            .context("TEP backtest")?;
    let b = &s.baseline.per_file;
    let model = tep_figures(normal_idx, &faults, |i| {
        s.per_file.get(i)?.metrics.alerted_share()
    });
    let alarm = tep_figures(normal_idx, &faults, |i| b.get(i)?.metrics.alerted_share());
    let t2 = tep_figures(normal_idx, &faults, |i| b.get(i)?.t2.alerted_share());
    let spe = tep_figures(normal_idx, &faults, |i| b.get(i)?.spe.alerted_share());
    let brief = |f: TepFigures| TepBrief {
        false_alarm_rate: f.false_alarm_rate,
        mean_detection_excl_3_9_15: f.mean_detection_excl_3_9_15,
    };
    Ok(Part::Ran(TepReport {
        files: s.files,
        window_ms: s.per_file.first().map(|f| f.window_ms),
        slide_ms: s.per_file.first().map(|f| f.slide_ms),
        model,
        baseline: TepBaseline {
            alarm,
            t2: brief(t2),
            spe: brief(spe),
            components: b.first().and_then(|f| f.components),
        },
    }))
}

fn run_nab(cfg: &PipelineConfig, o: &DetectOptions) -> anyhow::Result<Part<NabReport>> {
    let files = sorted_files(&o.data, |p| {
        let n = file_name(p);
        n.starts_with("nab-") && n.ends_with(".csv")
    })?;
    if files.is_empty() {
        return Ok(Part::Skipped {
            skipped: format!("no nab-*.csv files in {}", o.data.display()),
        });
    }
    let names = files.iter().map(|p| file_name(p)).collect();
    let split = Some(TrainSplit::Rows(o.nab_train_rows));
    let s = backtest::backtest(cfg, &options(o, files, Vec::new(), "anomaly", split, "nab"))
        .context("NAB backtest")?;
    Ok(Part::Ran(NabReport {
        files: names,
        rows: s.rows,
        model: NabFigures::from(&s.metrics),
        baseline: NabFigures::from(&s.baseline.metrics),
    }))
}

/// Runs the TEP and NAB backtests of `o.data` (each when present).
pub fn bench_detect(cfg: &PipelineConfig, o: &DetectOptions) -> anyhow::Result<DetectReport> {
    let t0 = Instant::now();
    if !o.data.is_dir() {
        bail!("{}: not a folder", o.data.display());
    }
    let tep = run_tep(cfg, o)?;
    let nab = run_nab(cfg, o)?;
    if matches!(tep, Part::Skipped { .. }) && matches!(nab, Part::Skipped { .. }) {
        bail!(
            "{}: nothing to benchmark (expected tep/train-normal.csv with test-normal.csv or \
             faultNN.csv, and/or nab-*.csv files)",
            o.data.display()
        );
    }
    Ok(DetectReport {
        data: o.data.display().to_string(),
        tep,
        nab,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_numbers_and_the_customary_mean() {
        assert_eq!(fault_number(Path::new("x/fault07.csv")), Some(7));
        assert_eq!(fault_number(Path::new("fault21.csv")), Some(21));
        assert_eq!(fault_number(Path::new("test-normal.csv")), None);
        assert_eq!(fault_number(Path::new("faultx.csv")), None);
        let d: BTreeMap<u32, f64> = [(1, 1.0), (3, 0.0), (9, 0.0), (15, 0.0), (2, 0.5)]
            .into_iter()
            .collect();
        assert_eq!(mean_excluding(&d), Some(0.75));
        assert_eq!(mean_excluding(&[(3, 1.0)].into_iter().collect()), None);
    }
}
