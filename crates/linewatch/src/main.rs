//! `linewatch`: the one binary. Thin: parses the command line, sets up logging and signals,
//! and hands over to `linewatch-runtime` and `linewatch-models`.

#![allow(clippy::print_stdout)] // the binary is the edge that prints results

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use linewatch_runtime::config::PipelineConfig;
use linewatch_runtime::demo::{self, DemoOptions, Pace};

/// The demo pipeline, built in so `linewatch demo` runs from any folder.
const DEMO_TOML: &str = include_str!("../../../pipelines/demo.toml");

/// Defect monitoring for production lines: Kafka readings -> event-time windows -> RePU
/// models -> scores and alerts in Parquet and on Kafka.
#[derive(Debug, Parser)]
#[command(name = "linewatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline against real Kafka brokers (production).
    Run(RunArgs),
    /// Produce simulated readings and inspections (with injected faults) to Kafka.
    Simulate(SimulateArgs),
    /// The whole pipeline with no setup: in-process Kafka, simulated line, Parquet output.
    Demo(DemoArgs),
    /// The stream's windowing and models over labelled CSV files, no Kafka; prints metrics.
    Backtest(BacktestArgs),
    /// One retraining job from the Parquet history (for a scheduler). Exit codes: 0 new
    /// version, 2 rejected by the validation gate, 3 not enough data, 1 error.
    Train(TrainArgs),
    /// Picture of one machine's anomaly score, threshold, alerts and top features.
    Report(ReportArgs),
    /// Benchmarks that print JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The scores table (OUT/scores).
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
    /// Output picture: .png or .svg.
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

#[derive(Debug, Args)]
struct BacktestArgs {
    /// A labelled CSV file to score (repeat for several). Without --train-csv each is its own
    /// experiment (trained on its head); with --train-csv each is scored whole.
    #[arg(long = "csv", required = true)]
    csv: Vec<PathBuf>,
    /// Normal history to fit ONE model (and the PCA baseline) on (repeatable; each file is
    /// windowed on its own, rows in file order then time order); every --csv file is then
    /// scored whole. Must have the same channel columns as the --csv files. Not with
    /// --train-rows / --train-fraction.
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
    /// Label column: 1/0 or true/false (1 = anomalous row).
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
    /// Pipeline file for the model and alert settings (default: built-in defaults); a
    /// [window] channels list is not needed (the CSV's columns are the channels).
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Output folder: rows.csv and summary.json.
    #[arg(long, default_value = "./linewatch-backtest")]
    out: PathBuf,
}

/// The PCA baseline (T² and SPE) fitted beside the model on the same windows and inputs.
#[derive(Debug, Args)]
struct BaselineArgs {
    /// Confidence of the PCA baseline's T² and SPE control limits.
    #[arg(long, default_value_t = 0.99)]
    baseline_confidence: f64,
    /// Share of variance the PCA baseline's components must explain.
    #[arg(long, default_value_t = 0.90)]
    baseline_variance: f64,
}

impl BaselineArgs {
    fn config(&self) -> linewatch_runtime::backtest::PcaConfig {
        linewatch_runtime::backtest::PcaConfig {
            explained_variance: self.baseline_variance,
            confidence: self.baseline_confidence,
        }
    }
}

#[derive(Debug, Args)]
struct DetectArgs {
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

#[derive(Debug, Args)]
struct TrainArgs {
    /// Pipeline file (window channels, model settings, validation gate).
    #[arg(long, short)]
    pipeline: PathBuf,
    /// Output root of a pipeline (holding scores/ and labels/).
    #[arg(long)]
    from: PathBuf,
    /// Models root (versions go to MODELS/<pipeline>/<version>/).
    #[arg(long)]
    models: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Pipeline file (TOML); environment variables LINEWATCH__SECTION__KEY override it.
    #[arg(long, short)]
    pipeline: PathBuf,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// Pipeline file: brokers and topics from [kafka], the line from [simulate].
    #[arg(long, short)]
    pipeline: PathBuf,
    /// Readings per second to produce (wall clock); event time runs accordingly.
    #[arg(long, conflicts_with = "max")]
    rate: Option<f64>,
    /// Produce as fast as the brokers take it.
    #[arg(long)]
    max: bool,
    /// Stop after this long (e.g. "10m"); 0 = run until Ctrl-C.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Write the ground truth of injected faults (JSON Lines) here when stopping.
    #[arg(long)]
    faults_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// How long to run (wall clock).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Output folder (Parquet under scores/ and alerts/, models/, summary.json).
    #[arg(long, default_value = "./linewatch-out")]
    out: PathBuf,
    /// Pipeline file to use instead of the built-in pipelines/demo.toml.
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Simulated seconds per wall-clock second.
    #[arg(long, default_value_t = 300.0, conflicts_with = "max")]
    speedup: f64,
    /// Produce as fast as possible (throughput measurement).
    #[arg(long)]
    max: bool,
    /// No progress display (logs only).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Model quality against ground truth and speed; the last line is one JSON object.
    Models {
        /// Device of every run: cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Detection quality on a data folder (TEP false alarms and detection per fault, NAB F1
    /// and PR-AUC), model and PCA baseline; the last line is one JSON object.
    Detect(DetectArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let quiet_default = matches!(cli.command, Command::Demo(ref d) if !d.no_progress);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if quiet_default { "warn" } else { "info" })
            }),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Run(a) => runtime()?.block_on(run(a)),
        Command::Simulate(a) => runtime()?.block_on(simulate(a)),
        Command::Demo(a) => runtime()?.block_on(run_demo(a)),
        Command::Backtest(a) => backtest(a),
        Command::Train(a) => train(a),
        Command::Report(a) => report(a),
        Command::Bench(BenchCommand::Models { device }) => bench_models(&device),
        Command::Bench(BenchCommand::Detect(a)) => bench_detect(a),
    }
}

fn backtest(a: BacktestArgs) -> anyhow::Result<()> {
    use linewatch_runtime::backtest::{self, BacktestOptions, TrainSplit};
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
        "linewatch backtest: {} rows of {} files; model: precision {}, recall {}, F1 {}, false \
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

fn bench_detect(a: DetectArgs) -> anyhow::Result<()> {
    use linewatch_runtime::bench_detect::{DetectOptions, NAB_TRAIN_ROWS};
    let cfg = linewatch_runtime::backtest::load_config(a.pipeline.as_deref())?;
    let opts = DetectOptions {
        data: a.data,
        out: a.out,
        baseline: a.baseline.config(),
        nab_train_rows: NAB_TRAIN_ROWS,
    };
    let report = linewatch_runtime::bench_detect::bench_detect(&cfg, &opts)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn report(a: ReportArgs) -> anyhow::Result<()> {
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

fn train(a: TrainArgs) -> anyhow::Result<()> {
    use linewatch_runtime::offline::{TrainResult, train_from_parquet};
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
        Ok(r) => {
            let code = r.exit_code();
            match &r {
                TrainResult::NewVersion(v) => eprintln!("linewatch train: new version {v}"),
                TrainResult::Rejected(why) => {
                    eprintln!("linewatch train: rejected by the validation gate: {why}")
                }
                TrainResult::NoData(why) => eprintln!("linewatch train: not enough data: {why}"),
            }
            std::process::exit(code);
        }
        Err(e) => {
            eprintln!("linewatch train: error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown signal received");
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let cfg = PipelineConfig::load(&a.pipeline)?;
    let health = std::sync::Arc::new(linewatch_runtime::telemetry::Health::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http = if cfg.http.listen.is_empty() {
        None
    } else {
        let mut rx = stop_rx.clone();
        let (addr, task) = linewatch_runtime::telemetry::serve(
            cfg.http.listen.parse()?,
            health.clone(),
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        )
        .await
        .with_context(|| format!("binding the operations endpoint {}", cfg.http.listen))?;
        tracing::info!(%addr, "serving /metrics and /healthz");
        Some(task)
    };
    let (progress_tx, _progress_rx) = tokio::sync::watch::channel(Default::default());
    let pipeline = linewatch_runtime::pipeline::Pipeline::new(cfg, progress_tx, health)?;
    let progress = pipeline.run(shutdown_signal()).await?;
    stop_tx.send_replace(true);
    if let Some(t) = http {
        let _ = t.await;
    }
    drop(stop_rx);
    tracing::info!(
        readings = progress.readings,
        windows = progress.windows,
        alerts = progress.alerts_opened,
        late = progress.late,
        dead_lettered = progress.dead_lettered,
        dead_letters_by_reason = ?progress.dead_letters_by_reason,
        machines_on_several_partitions = progress.machines_on_several_partitions,
        "stopped cleanly"
    );
    Ok(())
}

async fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    let cfg = PipelineConfig::load(&a.pipeline)?;
    // Opened before the run, so a missing folder or a read-only file fails now, not after
    // everything was produced.
    let faults_file = match &a.faults_out {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("creating --faults-out {}", path.display()))?,
        ),
        None => None,
    };
    let mut sim = linewatch_sim::Simulator::new(cfg.simulate.clone())?;
    let producer = demo::sim_producer(&cfg)?;
    let per_event_s = cfg.simulate.interval_ms as f64 / 1000.0;
    let machines = cfg.simulate.machines as f64;
    let pace = match (a.max, a.rate) {
        (true, _) => Pace::Max,
        // rate readings/s = machines / interval * speedup
        (false, Some(rate)) => Pace::Speedup(rate * per_event_s / machines.max(1.0)),
        (false, None) => Pace::Speedup(1.0),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (stats_tx, stats_rx) = tokio::sync::watch::channel(demo::SimStats::default());
    let duration = a.duration;
    tokio::spawn(async move {
        if duration.is_zero() {
            shutdown_signal().await;
        } else {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = tokio::time::sleep(duration) => {}
            }
        }
        stop_tx.send_replace(true);
    });
    let stats = demo::play(
        &mut sim,
        &producer,
        &cfg.kafka.readings_topic,
        &cfg.kafka.inspections_topic,
        pace,
        stop_rx,
        None,
        &stats_tx,
    )
    .await?;
    drop(stats_rx);
    if let (Some(mut file), Some(path)) = (faults_file, &a.faults_out) {
        use std::io::Write as _;
        file.write_all(linewatch_sim::faults_to_jsonl(sim.faults()).as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let line = serde_json::to_string(&stats)?;
    println!("{line}");
    Ok(())
}

async fn run_demo(a: DemoArgs) -> anyhow::Result<()> {
    let cfg = match &a.pipeline {
        Some(p) => PipelineConfig::load(p)?,
        None => {
            PipelineConfig::from_toml_with_env(DEMO_TOML, "pipelines/demo.toml", std::env::vars())?
        }
    };
    let opts = DemoOptions {
        duration: a.duration,
        out: a.out.clone(),
        pace: if a.max {
            Pace::Max
        } else {
            Pace::Speedup(a.speedup)
        },
        progress: !a.no_progress,
    };
    let summary = demo::demo(cfg, opts).await?;
    eprintln!(
        "linewatch demo: {} readings, {} windows, {} alerts, {} retrains; precision {}, recall {} \
         against {} injected faults. Parquet under {}, summary in {}",
        summary.readings,
        summary.windows,
        summary.alerts,
        summary.retrains,
        fmt_opt(summary.precision),
        fmt_opt(summary.recall),
        summary.faults,
        a.out.display(),
        a.out.join("summary.json").display(),
    );
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{x:.3}"))
}

fn bench_models(device: &str) -> anyhow::Result<()> {
    let opts = linewatch_models::bench::BenchOptions {
        device: device
            .parse()
            .map_err(|e| anyhow::anyhow!("--device {device:?}: {e}"))?,
        ..Default::default()
    };
    let report = linewatch_models::bench::bench_models(&opts)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
