//! The commands without Kafka: `backtest` (labelled CSV files), `train` (one retraining job
//! from the Parquet history) and `report` (a picture of one machine).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use linewatch_runtime::config::PipelineConfig;

#[derive(Debug, Args)]
pub(crate) struct BacktestArgs {
    /// A labelled CSV file to score (repeat for several). Without --train-csv each is its own
    /// experiment (trained on its head); with --train-csv each is scored whole. A `.jsonl` /
    /// `.ndjson` file is a dump of a readings topic in the pipeline's decode.format (json or
    /// json_long): one series per line and machine, labels from the --label-col key. A path
    /// or an object-store URL (s3://bucket/x.csv, gs://, az://).
    #[arg(long = "csv", required = true)]
    csv: Vec<PathBuf>,
    /// Normal history to fit ONE model (and the PCA baseline) on (repeatable; each file is
    /// windowed on its own, rows in file order then time order); every --csv file is then
    /// scored whole. Must have the same channel columns as the --csv files. Not with
    /// --train-rows / --train-fraction. Paths or object-store URLs, like --csv.
    #[arg(long = "train-csv", conflicts_with_all = ["train_rows", "train_fraction"])]
    train_csv: Vec<PathBuf>,
    /// Field separator.
    #[arg(long, default_value = ",")]
    sep: char,
    /// Decimal mark of the sensor values: "." or "," (`70,125`; give another --sep, e.g.
    /// ';'). Cells that are not numbers are counted per column; a column with no number, or
    /// with more than 10 % of its non-empty cells not numbers, is an error naming it.
    #[arg(long, default_value = ".")]
    decimal: char,
    /// Time column: RFC 3339, "YYYY-MM-DD HH:MM:SS" (UTC) or epoch seconds/milliseconds.
    #[arg(long, default_value = "timestamp")]
    time_col: String,
    /// Label column (JSON Lines: the message's key): 1/0, true/false, yes/no or
    /// anomaly/normal; empty (or absent) = normal.
    #[arg(long, default_value = "label")]
    label_col: String,
    /// A column that is neither a sensor nor the time or label (repeatable).
    #[arg(long = "ignore-col")]
    ignore_col: Vec<String>,
    /// Train on the first N rows of each file (its anomaly-free head). Head split only: not
    /// used (an error) with --train-csv.
    #[arg(long, conflicts_with = "train_fraction")]
    train_rows: Option<usize>,
    /// Train on this share of each file's rows (its head) [default: 0.15]. Head split only:
    /// not used (an error) with --train-csv.
    #[arg(long)]
    train_fraction: Option<f64>,
    /// Window length (e.g. "1h"); default 12 sampling intervals.
    #[arg(long, value_parser = humantime::parse_duration)]
    window: Option<Duration>,
    /// Hop between windows; default the sampling interval, so a window ends at every row.
    #[arg(long, value_parser = humantime::parse_duration)]
    slide: Option<Duration>,
    #[command(flatten)]
    baseline: BaselineArgs,
    /// Pipeline file for the model and alert settings, and for JSON Lines files the
    /// [decode] format and field mapping (default: built-in defaults); a [window] channels
    /// list is not needed (the CSV's columns are the channels).
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Output folder or object-store URL: rows.csv and summary.json.
    #[arg(long, default_value = "./linewatch-backtest")]
    out: PathBuf,
}

/// The PCA baseline (T² and SPE) fitted beside the model on the same windows and inputs.
#[derive(Debug, Args)]
pub(crate) struct BaselineArgs {
    /// Confidence of the PCA baseline's T² and SPE control limits.
    #[arg(long, default_value_t = 0.99)]
    baseline_confidence: f64,
    /// Share of variance the PCA baseline's components must explain.
    #[arg(long, default_value_t = 0.90)]
    baseline_variance: f64,
}

impl BaselineArgs {
    pub(crate) fn config(&self) -> linewatch_commands::backtest::PcaConfig {
        linewatch_commands::backtest::PcaConfig {
            explained_variance: self.baseline_variance,
            confidence: self.baseline_confidence,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Pipeline file (window channels, model settings, validation gate).
    #[arg(long, short)]
    pipeline: PathBuf,
    /// Output root of a pipeline (holding scores/ and labels/): a folder or an object-store
    /// URL (s3://bucket/prefix, gs://, az://).
    #[arg(long)]
    from: PathBuf,
    /// Models root (versions go to MODELS/<pipeline>/<version>/): a folder or a URL.
    #[arg(long)]
    models: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The scores table (OUT/scores): a folder or an object-store URL.
    #[arg(long)]
    scores: PathBuf,
    /// Machine id.
    #[arg(long)]
    machine: String,
    /// First window start to show (RFC 3339), default the first in the table.
    #[arg(long)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Show windows starting before this time (RFC 3339), default all.
    #[arg(long)]
    to: Option<chrono::DateTime<chrono::Utc>>,
    /// Output picture, a local file: .png or .svg.
    #[arg(long)]
    out: PathBuf,
    /// Width in pixels.
    #[arg(long, default_value_t = 1400)]
    width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 900)]
    height: u32,
    /// Features drawn in the contribution panel.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
}

pub(crate) fn backtest(a: BacktestArgs) -> anyhow::Result<()> {
    use linewatch_commands::backtest::{self, BacktestOptions, TrainSplit};
    let cfg = backtest::load_config(a.pipeline.as_deref())?;
    if !a.sep.is_ascii() {
        anyhow::bail!("--sep must be a single ASCII character");
    }
    if !matches!(a.decimal, '.' | ',') {
        anyhow::bail!("--decimal must be '.' or ','");
    }
    let opts = BacktestOptions {
        csv: a.csv,
        train_csv: a.train_csv,
        sep: a.sep as u8,
        decimal: a.decimal as u8,
        time_col: a.time_col,
        label_col: a.label_col,
        ignore_cols: a.ignore_col,
        split: match (a.train_rows, a.train_fraction) {
            (Some(n), _) => Some(TrainSplit::Rows(n)),
            (None, Some(f)) => Some(TrainSplit::Fraction(f)),
            (None, None) => None,
        },
        window_ms: a.window.map(|d| d.as_millis() as u64),
        slide_ms: a.slide.map(|d| d.as_millis() as u64),
        baseline: a.baseline.config(),
        out: a.out,
    };
    let summary = backtest::backtest(&cfg, &opts)?;
    let b = &summary.baseline;
    eprintln!(
        "linewatch backtest: {} rows of {} series (a CSV file, or one machine of a JSON Lines file); model: precision {}, recall {}, F1 {}, false \
         alarms {}, PR-AUC {}; PCA (T² or SPE): precision {}, recall {}, F1 {}, false alarms \
         {}, PR-AUC {}; T² alone: recall {}, false alarms {}; SPE alone: recall {}, false \
         alarms {}. Rows in {}",
        summary.rows,
        summary.files,
        fmt_opt(summary.metrics.precision),
        fmt_opt(summary.metrics.recall),
        fmt_opt(summary.metrics.f1),
        fmt_opt(summary.metrics.far),
        fmt_opt(summary.metrics.pr_auc),
        fmt_opt(b.metrics.precision),
        fmt_opt(b.metrics.recall),
        fmt_opt(b.metrics.f1),
        fmt_opt(b.metrics.far),
        fmt_opt(b.metrics.pr_auc),
        fmt_opt(b.t2.recall),
        fmt_opt(b.t2.far),
        fmt_opt(b.spe.recall),
        fmt_opt(b.spe.far),
        opts.out.join("rows.csv").display(),
    );
    println!("{}", backtest::summary_line(&summary)?);
    Ok(())
}

pub(crate) fn train(a: TrainArgs) -> anyhow::Result<()> {
    use linewatch_commands::train::{TrainResult, train_from_parquet};
    let cfg = PipelineConfig::load(&a.pipeline)?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(format!(
        "retraining {} from {}",
        cfg.pipeline.name,
        a.from.display()
    ));
    let result = train_from_parquet(cfg, &a.from, &a.models);
    bar.finish_and_clear();
    match result {
        Ok((r, counts)) => {
            let code = r.exit_code();
            let (outcome, detail) = match &r {
                TrainResult::NewVersion(v) => {
                    eprintln!("linewatch train: new version {v}");
                    ("new_version", v)
                }
                TrainResult::Rejected(why) => {
                    eprintln!("linewatch train: rejected by the validation gate: {why}");
                    ("rejected", why)
                }
                TrainResult::NoData(why) => {
                    eprintln!("linewatch train: not enough data: {why}");
                    ("no_data", why)
                }
            };
            // One JSON line: the outcome and what was read and left out, by reason.
            let mut line = serde_json::to_value(&counts)?;
            line["outcome"] = outcome.into();
            line["detail"] = detail.as_str().into();
            println!("{line}");
            std::process::exit(code);
        }
        Err(e) => {
            eprintln!("linewatch train: error: {e:#}");
            std::process::exit(1);
        }
    }
}

pub(crate) fn report(a: ReportArgs) -> anyhow::Result<()> {
    let mut opts = linewatch_report::ReportOptions::new(a.scores, a.machine, a.out);
    opts.from = a.from;
    opts.to = a.to;
    opts.width = a.width;
    opts.height = a.height;
    opts.top_k = a.top_k;
    let summary = linewatch_report::render(&opts)?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

pub(crate) fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{x:.3}"))
}
