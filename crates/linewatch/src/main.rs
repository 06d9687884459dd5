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
    /// A labelled CSV file (repeat for several; each is its own experiment).
    #[arg(long = "csv", required = true)]
    csv: Vec<PathBuf>,
    /// Field separator.
    #[arg(long, default_value = ",")]
    sep: char,
    /// Time column: RFC 3339, "YYYY-MM-DD HH:MM:SS" (UTC) or epoch seconds/milliseconds.
    #[arg(long, default_value = "timestamp")]
    time_col: String,
    /// Label column: 1/0 or true/false (1 = anomalous row).
    #[arg(long, default_value = "label")]
    label_col: String,
    /// A column that is neither a sensor nor the time or label (repeatable).
    #[arg(long = "ignore-col")]
    ignore_col: Vec<String>,
    /// Train on the first N rows of each file (its anomaly-free head).
    #[arg(long, conflicts_with = "train_fraction")]
    train_rows: Option<usize>,
    /// Train on this share of each file's rows (its head).
    #[arg(long, default_value_t = 0.15)]
    train_fraction: f64,
    /// Window length (e.g. "1h"); default 12 sampling intervals.
    #[arg(long, value_parser = humantime::parse_duration)]
    window: Option<Duration>,
    /// Hop between windows; default the sampling interval, so a window ends at every row.
    #[arg(long, value_parser = humantime::parse_duration)]
    slide: Option<Duration>,
    /// Pipeline file for the model and alert settings (default: built-in defaults).
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Output folder: rows.csv and summary.json.
    #[arg(long, default_value = "./linewatch-backtest")]
    out: PathBuf,
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
    Models,
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
        .init();
    match cli.command {
        Command::Run(a) => runtime()?.block_on(run(a)),
        Command::Simulate(a) => runtime()?.block_on(simulate(a)),
        Command::Demo(a) => runtime()?.block_on(run_demo(a)),
        Command::Backtest(a) => backtest(a),
        Command::Train(a) => train(a),
        Command::Report(a) => report(a),
        Command::Bench(BenchCommand::Models) => bench_models(),
    }
}

fn backtest(a: BacktestArgs) -> anyhow::Result<()> {
    use linewatch_runtime::backtest::{BacktestOptions, TrainSplit};
    let cfg = match &a.pipeline {
        Some(p) => PipelineConfig::load(p)?,
        // Model and alert defaults; the channels come from each file.
        None => PipelineConfig::from_toml_with_env(
            "[pipeline]\nname = \"backtest\"\n[window]\nchannels = [\"from-csv\"]\n",
            "defaults",
            std::env::vars(),
        )?,
    };
    if !a.sep.is_ascii() {
        anyhow::bail!("--sep must be a single ASCII character");
    }
    let opts = BacktestOptions {
        csv: a.csv,
        sep: a.sep as u8,
        time_col: a.time_col,
        label_col: a.label_col,
        ignore_cols: a.ignore_col,
        split: match a.train_rows {
            Some(n) => TrainSplit::Rows(n),
            None => TrainSplit::Fraction(a.train_fraction),
        },
        window_ms: a.window.map(|d| d.as_millis() as u64),
        slide_ms: a.slide.map(|d| d.as_millis() as u64),
        out: a.out,
    };
    let summary = linewatch_runtime::backtest::backtest(&cfg, &opts)?;
    let mut line = serde_json::to_value(&summary)?;
    if let Some(o) = line.as_object_mut() {
        o.remove("per_file");
    }
    println!("{line}");
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
        "stopped cleanly"
    );
    Ok(())
}

async fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    let cfg = PipelineConfig::load(&a.pipeline)?;
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
    if let Some(path) = a.faults_out {
        std::fs::write(&path, linewatch_sim::faults_to_jsonl(sim.faults()))
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

fn bench_models() -> anyhow::Result<()> {
    let report = linewatch_models::bench::bench_models(&Default::default())?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
