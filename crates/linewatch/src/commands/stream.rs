//! The streaming commands: `run` (production), `simulate` (the line simulator onto Kafka)
//! and `demo` (the whole pipeline on an in-process cluster).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use linewatch_commands::demo::{self, DemoOptions, Pace};
use linewatch_runtime::config::PipelineConfig;
use linewatch_runtime::telemetry::OpsEndpoint;

use super::offline::fmt_opt;
use crate::shutdown_signal;

/// The demo pipeline, built in so `linewatch demo` runs from any folder.
pub(crate) const DEMO_TOML: &str = include_str!("../../../../pipelines/demo.toml");

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Pipeline file (TOML); environment variables LINEWATCH__SECTION__KEY override it.
    #[arg(long, short)]
    pipeline: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
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
pub(crate) struct DemoArgs {
    /// How long to run (wall clock).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Output folder (Parquet under scores/, alerts/ and labels/; models/, summary.json,
    /// faults.jsonl and _state/).
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
    pub(crate) no_progress: bool,
}

pub(crate) async fn run(a: RunArgs) -> anyhow::Result<()> {
    let cfg = PipelineConfig::load(&a.pipeline)?;
    let health = std::sync::Arc::new(linewatch_runtime::telemetry::Health::default());
    // The pipeline first: its checks (outputs writable, a schema registry for Avro) fail
    // before anything is served.
    let listen = cfg.http.listen.clone();
    let (progress_tx, _progress_rx) = tokio::sync::watch::channel(Default::default());
    let pipeline = linewatch_runtime::pipeline::Pipeline::new(cfg, progress_tx, health.clone())?;
    let ops = OpsEndpoint::start(&listen, health).await?;
    let progress = pipeline.run(shutdown_signal()).await?;
    if let Some(ops) = ops {
        ops.stop().await;
    }
    tracing::info!(
        readings = progress.readings,
        windows = progress.windows,
        alerts = progress.alerts_opened,
        late = progress.late,
        dead_lettered = progress.dead_lettered,
        dead_letters_by_reason = ?progress.dead_letters_by_reason,
        machines_on_several_partitions = progress.machines_on_several_partitions,
        long_values_repeated = progress.long_values_repeated,
        rekey_replays_dropped = progress.rekey_replays_dropped,
        sparkplug_non_numeric = progress.sparkplug_non_numeric,
        sparkplug_null = progress.sparkplug_null,
        "stopped cleanly"
    );
    Ok(())
}

pub(crate) async fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
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
    // Avro: the schema registered first, as a producer does (`<topic>-value`).
    let avro_id = match demo::avro_schema(cfg.decode.format) {
        Some(schema) => {
            let client = linewatch_runtime::registry::RegistryClient::new(&cfg.decode.registry)?;
            let subject = format!("{}-value", cfg.kafka.readings_topic);
            let schema = schema.to_owned();
            let id =
                tokio::task::spawn_blocking(move || client.register(&subject, &schema)).await??;
            tracing::info!(id, "simulate: Avro schema registered");
            Some(id)
        }
        None => None,
    };
    let encoder = demo::ReadingEncoder::new(cfg.decode.format, avro_id)?;
    let stats = demo::play(
        &mut sim,
        &producer,
        encoder,
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

pub(crate) async fn run_demo(a: DemoArgs) -> anyhow::Result<()> {
    let cfg = match &a.pipeline {
        Some(p) => PipelineConfig::load(p)?,
        None => PipelineConfig::from_toml_with_env(
            DEMO_TOML,
            "the built-in pipeline file pipelines/demo.toml",
            std::env::vars(),
        )?,
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
