//! `bench models`, `bench detect` and `bench pipeline`: figures as JSON on stdout.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::offline::BaselineArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Model quality against ground truth and speed; the last line is one JSON object.
    Models {
        /// Device of every run: cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Detection quality on a data folder (TEP false alarms and detection per fault, NAB F1
    /// and PR-AUC), model and PCA baseline; the last line is one JSON object.
    Detect(DetectArgs),
    /// The whole path of one replica without Kafka, on one thread: messages in memory ->
    /// decode -> windows -> scoring (32 model inputs) -> alerts -> Parquet; readings/s and
    /// each stage's time as one JSON object.
    Pipeline {
        /// Readings timed (rounded up to whole seconds of the line: every machine reads once
        /// a second).
        #[arg(long, default_value_t = 1_000_000)]
        readings: usize,
        /// Readings the model is trained on first, untimed (from about 240,000 the model
        /// keeps its RePU residual, which scores more slowly than the Gaussian part alone).
        #[arg(long, default_value_t = 100_000)]
        train_readings: usize,
        /// Simulated machines (8 channels each, one reading a second, 10 s windows).
        #[arg(long, default_value_t = 1_000)]
        machines: usize,
        /// Output folder for the Parquet tables (emptied first).
        #[arg(long, default_value = "./linewatch-bench-pipeline")]
        out: PathBuf,
    },
}

pub(crate) fn bench_pipeline(
    readings: usize,
    train_readings: usize,
    machines: usize,
    out: PathBuf,
) -> anyhow::Result<()> {
    let opts = linewatch_bench::pipeline::PipelineOptions {
        readings,
        train_readings,
        machines,
        out,
        ..Default::default()
    };
    let report = linewatch_bench::pipeline::bench_pipeline(&opts)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct DetectArgs {
    /// Data folder: tep/ (train-normal.csv, test-normal.csv, faultNN.csv) and nab-*.csv.
    #[arg(long)]
    data: PathBuf,
    /// Pipeline file for the model and alert settings (default: built-in defaults).
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Output folder: each backtest's rows.csv and summary.json under tep/ and nab/.
    #[arg(long, default_value = "./linewatch-bench-detect")]
    out: PathBuf,
    #[command(flatten)]
    baseline: BaselineArgs,
}

pub(crate) fn bench_detect(a: DetectArgs) -> anyhow::Result<()> {
    use linewatch_bench::detect::{DetectOptions, NAB_TRAIN_ROWS};
    let cfg = linewatch_commands::backtest::load_config(a.pipeline.as_deref())?;
    let opts = DetectOptions {
        data: a.data,
        out: a.out,
        baseline: a.baseline.config(),
        nab_train_rows: NAB_TRAIN_ROWS,
    };
    let report = linewatch_bench::detect::bench_detect(&cfg, &opts)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

pub(crate) fn bench_models(device: &str) -> anyhow::Result<()> {
    let opts = linewatch_bench::models::BenchOptions {
        device: device
            .parse()
            .map_err(|e| anyhow::anyhow!("--device {device:?}: {e}"))?,
        ..Default::default()
    };
    let report = linewatch_bench::models::bench_models(&opts)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
