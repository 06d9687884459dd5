//! `linewatch`: the one binary. Thin: parses the command line, sets up logging and signals,
//! and hands over to `linewatch-runtime` and `linewatch-models`.

#![allow(clippy::print_stdout)] // the binary is the edge that prints results

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use commands::bench::{BenchCommand, bench_detect, bench_models, bench_pipeline};
use commands::offline::{BacktestArgs, ReportArgs, TrainArgs, backtest, report, train};
use commands::stream::{DemoArgs, RunArgs, SimulateArgs, run, run_demo, simulate};

mod commands;

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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let quiet_default = matches!(cli.command, Command::Demo(ref d) if !d.no_progress);
    let default_filter =
        || tracing_subscriber::EnvFilter::new(if quiet_default { "warn" } else { "info" });
    // An unset RUST_LOG means the default; one that does not parse is said, not ignored.
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match tracing_subscriber::EnvFilter::try_new(&v) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("linewatch: RUST_LOG={v:?} is not a log filter ({e}); using the default");
                default_filter()
            }
        },
        _ => default_filter(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
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
        Command::Bench(BenchCommand::Pipeline {
            readings,
            train_readings,
            machines,
            out,
        }) => bench_pipeline(readings, train_readings, machines, out),
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
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
