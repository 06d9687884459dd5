//! `linewatch simulate` and `linewatch demo`: the line simulator on Kafka, and the whole
//! pipeline on librdkafka's in-process mock cluster with a summary scored against the
//! simulator's ground truth.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arrow_array::{Array, StringArray, TimestampMillisecondArray};
use rdkafka::ClientContext;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use serde::Serialize;
use tokio::sync::watch;

use linewatch_sim::{AlertSpan, EvalConfig, SimEvent, Simulator};

mod encode;
mod registry;

pub use encode::{ReadingEncoder, SPARKPLUG_EDGE_NODE, avro_schema, wide};
pub use registry::EmbeddedRegistry;

use linewatch_runtime::config::PipelineConfig;
use linewatch_runtime::pipeline::{Pipeline, Progress};
use linewatch_runtime::telemetry::{Health, OpsEndpoint};

/// Counts deliveries of the simulator's producer.
#[derive(Default, Clone)]
pub struct DeliveryCounter {
    pub delivered: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                tracing::warn!(error = %e, "simulator message not delivered");
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// How fast simulated event time runs against the wall clock.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Event-time seconds per wall second.
    Speedup(f64),
    /// As fast as the producer takes them.
    Max,
}

/// What the simulator sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimStats {
    pub readings: u64,
    pub inspections: u64,
    /// Event time reached, epoch ms (exclusive).
    pub event_time_ms: i64,
}

#[allow(clippy::too_many_arguments)] // the demo and `simulate` wire different parts
/// Plays the simulator onto `producer` until `stop` says so (or `max_event_ms` is reached),
/// readings written by `encoder` (the pipeline's format), inspections as contract JSON.
/// While `hold_until_model` holds `false`, event time does not pass the end of the simulator's
/// fault-free warm-up: the demo waits for the first model so no fault falls into warm-up.
pub async fn play(
    sim: &mut Simulator,
    producer: &ThreadedProducer<DeliveryCounter>,
    mut encoder: ReadingEncoder,
    readings_topic: &str,
    inspections_topic: &str,
    pace: Pace,
    mut stop: watch::Receiver<bool>,
    mut model_ready: Option<watch::Receiver<bool>>,
    stats: &watch::Sender<SimStats>,
) -> anyhow::Result<SimStats> {
    let step_ms = 1_000i64;
    let start_ms = sim.config().start_ms;
    let warmup_end = sim.warmup_end_ms();
    let wall0 = Instant::now();
    let mut paused = Duration::ZERO;
    let mut now_ms = start_ms;
    let mut out = SimStats {
        event_time_ms: start_ms,
        ..SimStats::default()
    };
    loop {
        if *stop.borrow() {
            break;
        }
        if let Some(ready) = model_ready.as_mut()
            && now_ms + step_ms > warmup_end
            && !*ready.borrow()
        {
            let waited = Instant::now();
            tokio::select! {
                _ = ready.changed() => {}
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            paused += waited.elapsed();
            continue;
        }
        let until = now_ms + step_ms;
        for e in sim.next_events(until) {
            let (topic, key) = match &e {
                SimEvent::Reading(r) => {
                    out.readings += 1;
                    (readings_topic, r.machine.to_string())
                }
                SimEvent::Inspection(i) => {
                    if inspections_topic.is_empty() {
                        continue;
                    }
                    out.inspections += 1;
                    (inspections_topic, i.machine.to_string())
                }
            };
            let messages = match &e {
                SimEvent::Reading(r) => encoder.encode(r)?,
                SimEvent::Inspection(_) => vec![(key, e.to_json().into_bytes())],
            };
            for (key, payload) in &messages {
                let mut record = BaseRecord::to(topic).key(key).payload(payload);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull,
                            ),
                            r,
                        )) => {
                            record = r;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err((e, _)) => return Err(e).context("producing a simulated message"),
                    }
                }
            }
        }
        now_ms = until;
        out.event_time_ms = now_ms;
        stats.send_replace(out.clone());
        if let Pace::Speedup(x) = pace {
            let target = Duration::from_secs_f64((now_ms - start_ms) as f64 / 1000.0 / x.max(1e-3));
            let elapsed = wall0.elapsed().saturating_sub(paused);
            if target > elapsed {
                tokio::select! {
                    _ = tokio::time::sleep(target - elapsed) => {}
                    _ = stop.changed() => {}
                }
            }
        } else {
            tokio::task::yield_now().await;
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the simulator's producer")?;
    Ok(out)
}

/// A producer for the simulator.
pub fn sim_producer(cfg: &PipelineConfig) -> anyhow::Result<ThreadedProducer<DeliveryCounter>> {
    linewatch_runtime::kafka::client_config(&cfg.kafka.brokers, &cfg.kafka.properties)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "500000")
        .set("batch.num.messages", "10000")
        .create_with_context(DeliveryCounter::default())
        .context("creating the simulator's producer")
}

/// Options of `linewatch demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub duration: Duration,
    pub out: PathBuf,
    pub pace: Pace,
    pub progress: bool,
}

/// `OUT/summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub readings: u64,
    pub inspections: u64,
    pub windows: u64,
    pub alerts: u64,
    pub alerts_resolved: u64,
    pub retrains: u64,
    pub retrains_rejected: u64,
    pub dead_lettered: u64,
    /// Dead letters by reason code.
    pub dead_letters_by_reason: std::collections::BTreeMap<String, u64>,
    pub late: u64,
    /// Machines whose readings arrived on more than one readings partition.
    pub machines_on_several_partitions: u64,
    /// Long-format values that repeated a channel at their instant (dropped).
    pub long_values_repeated: u64,
    /// Sparkplug B metrics skipped: not numbers (boolean, string, ...), and null.
    pub sparkplug_non_numeric: u64,
    pub sparkplug_null: u64,
    pub faults: usize,
    pub faults_detected: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub mean_detection_delay_s: Option<f64>,
    /// Faults and detections per fault kind.
    pub by_kind: serde_json::Value,
    pub model_version: Option<String>,
    pub wall_seconds: f64,
    pub readings_per_second: f64,
    pub alert_delay_p50_s: Option<f64>,
    pub alert_delay_p99_s: Option<f64>,
    pub event_time_start: String,
    pub event_time_end: String,
}

/// Runs the demo: mock cluster, simulator, pipeline; writes `OUT/summary.json`.
pub async fn demo(mut cfg: PipelineConfig, opts: DemoOptions) -> anyhow::Result<Summary> {
    prepare_out(&opts.out)?;
    cfg.sink.out = opts.out.clone();
    cfg.retrain.models_dir = opts.out.join("models");
    let cluster = rdkafka::mocking::MockCluster::new(1).context("starting the mock cluster")?;
    cfg.kafka.brokers = cluster.bootstrap_servers();
    for (topic, parts) in [
        (cfg.kafka.readings_topic.clone(), 3),
        (cfg.kafka.inspections_topic.clone(), 3),
        (cfg.kafka.alerts_topic.clone(), 1),
        (
            format!("{}{}", cfg.kafka.readings_topic, cfg.kafka.dlq_suffix),
            1,
        ),
        (
            format!("{}{}", cfg.kafka.inspections_topic, cfg.kafka.dlq_suffix),
            1,
        ),
    ] {
        if !topic.is_empty() {
            cluster
                .create_topic(&topic, parts, 1)
                .with_context(|| format!("topic {topic}"))?;
        }
    }
    tracing::info!(brokers = %cfg.kafka.brokers, out = %opts.out.display(), "demo: mock cluster up");
    // The Avro formats read their schemas from a registry: the demo brings its own.
    let mut avro_id = None;
    let _registry = match avro_schema(cfg.decode.format) {
        Some(schema) => {
            let registry = EmbeddedRegistry::start().await?;
            cfg.decode.registry.url = Some(registry.url().to_owned());
            avro_id = Some(registry.register(schema));
            tracing::info!(url = registry.url(), "demo: schema registry up");
            Some(registry)
        }
        None => None,
    };
    let encoder = ReadingEncoder::new(cfg.decode.format, avro_id)?;

    let (progress_tx, progress_rx) = watch::channel(Progress::default());
    let health = Arc::new(Health::default());
    // The endpoint first (the same setup as `run`); a busy port is no reason to stop a demo.
    let ops = match OpsEndpoint::start(&cfg.http.listen, health.clone()).await {
        Ok(ops) => ops,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "metrics endpoint not started");
            None
        }
    };
    let pipeline = Pipeline::new(cfg.clone(), progress_tx, health)?;
    let (stop_pipeline_tx, mut stop_pipeline_rx) = watch::channel(false);
    let pipeline_task = tokio::spawn(pipeline.run(async move {
        let _ = stop_pipeline_rx.wait_for(|s| *s).await;
    }));

    // The simulator, gated on the first model.
    let mut sim = Simulator::new(cfg.simulate.clone()).context("simulator config")?;
    let producer = sim_producer(&cfg)?;
    let (model_tx, model_rx) = watch::channel(false);
    let (stop_sim_tx, stop_sim_rx) = watch::channel(false);
    let (sim_stats_tx, _sim_stats_rx) = watch::channel(SimStats::default());
    let readings_topic = cfg.kafka.readings_topic.clone();
    let inspections_topic = cfg.kafka.inspections_topic.clone();
    let pace = opts.pace;
    let sim_task = tokio::spawn(async move {
        let r = play(
            &mut sim,
            &producer,
            encoder,
            &readings_topic,
            &inspections_topic,
            pace,
            stop_sim_rx,
            Some(model_rx),
            &sim_stats_tx,
        )
        .await;
        (sim, r)
    });

    let bar = if opts.progress {
        let bar = indicatif::ProgressBar::new(opts.duration.as_secs().max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64);
    let mut rate = 0.0;
    while started.elapsed() < opts.duration {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let p = progress_rx.borrow().clone();
        if p.model_version.is_some() {
            model_tx.send_replace(true);
        }
        if last.0.elapsed() >= Duration::from_secs(1) {
            rate = (p.readings - last.1) as f64 / last.0.elapsed().as_secs_f64();
            last = (Instant::now(), p.readings);
        }
        if let Some(bar) = &bar {
            bar.set_position(started.elapsed().as_secs());
            bar.set_message(format!(
                "{:>8.0} readings/s | {} readings | {} windows | {} alerts | model {}",
                rate,
                p.readings,
                p.windows,
                p.alerts_opened,
                p.model_version.as_deref().unwrap_or("warming up"),
            ));
        }
        if pipeline_task.is_finished() {
            break;
        }
    }
    // Stop the simulator, let the pipeline drain what was produced, then stop it gracefully.
    stop_sim_tx.send_replace(true);
    let (sim, sim_result) = sim_task.await.context("simulator task")?;
    let sim_stats = sim_result?;
    let produced = sim_stats.readings + sim_stats.inspections;
    // Drain: until everything produced was consumed, at most 60 s, and no longer than 5 s
    // without progress (an overloaded mock broker can stall its fetches for good).
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    let mut last_progress = (Instant::now(), progress_rx.borrow().consumed);
    loop {
        let consumed = progress_rx.borrow().consumed;
        if consumed >= produced || pipeline_task.is_finished() {
            break;
        }
        if consumed > last_progress.1 {
            last_progress = (Instant::now(), consumed);
        }
        if Instant::now() >= drain_deadline || last_progress.0.elapsed() > Duration::from_secs(5) {
            tracing::warn!(
                consumed,
                produced,
                "demo: stopping before the pipeline consumed everything the simulator produced"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_pipeline_tx.send_replace(true);
    let progress = pipeline_task.await.context("pipeline task")??;
    if let Some(ops) = ops {
        ops.stop().await;
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let wall = started.elapsed().as_secs_f64();

    let summary = summarize(&cfg, &opts.out, &sim, &sim_stats, &progress, wall)?;
    std::fs::write(
        opts.out.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    let faults_path = opts.out.join("faults.jsonl");
    std::fs::write(&faults_path, linewatch_sim::faults_to_jsonl(sim.faults()))?;
    drop(cluster);
    Ok(summary)
}

/// Removes a previous demo's output folders (only the ones the demo writes).
fn prepare_out(out: &Path) -> anyhow::Result<()> {
    use linewatch_tables::{alerts, labels, scores};
    for sub in [scores::TABLE, alerts::TABLE, labels::TABLE, "models"] {
        let p = out.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("clearing {}", p.display()))?;
        }
    }
    for f in ["summary.json", "faults.jsonl"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    linewatch_runtime::preflight::ensure_writable_dir(out, "--out")?;
    Ok(())
}

/// Alerts read back from `OUT/alerts`: spans per alert id.
pub fn read_alert_spans(out: &Path) -> anyhow::Result<Vec<AlertSpan>> {
    use std::collections::BTreeMap;
    let mut spans: BTreeMap<String, AlertSpan> = BTreeMap::new();
    let root = out.join(linewatch_tables::alerts::TABLE);
    if !root.exists() {
        return Ok(Vec::new());
    }
    for batch in linewatch_sink::read_all(&root)? {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .with_context(|| format!("alerts file without {name}"))
        };
        let ids = col(linewatch_tables::alerts::ALERT_ID)?
            .as_any()
            .downcast_ref::<StringArray>()
            .context("alert_id type")?;
        let machines = col("machine")?
            .as_any()
            .downcast_ref::<StringArray>()
            .context("machine type")?;
        let states = col(linewatch_tables::alerts::STATE)?
            .as_any()
            .downcast_ref::<StringArray>()
            .context("state type")?;
        let starts = col("window_start")?
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .context("window_start type")?;
        for i in 0..batch.num_rows() {
            if ids.is_null(i) {
                continue;
            }
            let id = ids.value(i).to_string();
            let e = spans
                .entry(id)
                .or_insert_with(|| AlertSpan::new(machines.value(i), i64::MAX, None));
            if states.value(i) == "open" {
                e.open_ms = e.open_ms.min(starts.value(i));
            } else {
                e.resolve_ms = Some(starts.value(i));
            }
        }
    }
    Ok(spans
        .into_values()
        .filter(|s| s.open_ms != i64::MAX)
        .collect())
}

/// Number of rows under `OUT/scores`.
pub fn count_rows(root: &Path) -> anyhow::Result<u64> {
    if !root.exists() {
        return Ok(0);
    }
    Ok(linewatch_sink::read_all(root)?
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum())
}

fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s.get(i).copied()
}

fn summarize(
    cfg: &PipelineConfig,
    out: &Path,
    sim: &Simulator,
    stats: &SimStats,
    progress: &Progress,
    wall: f64,
) -> anyhow::Result<Summary> {
    let windows = count_rows(&out.join(linewatch_tables::scores::TABLE))?;
    let alerts = read_alert_spans(out)?;
    let eval_cfg =
        EvalConfig::for_windows(cfg.window.size.as_millis() as i64, cfg.alert.open_after);
    let report = linewatch_sim::evaluate(sim.faults(), &alerts, stats.event_time_ms, &eval_cfg);
    Ok(Summary {
        readings: progress.readings,
        inspections: progress.inspections,
        windows,
        alerts: alerts.len() as u64,
        alerts_resolved: alerts.iter().filter(|a| a.resolve_ms.is_some()).count() as u64,
        retrains: progress.retrains,
        retrains_rejected: progress.retrains_rejected,
        dead_lettered: progress.dead_lettered,
        dead_letters_by_reason: progress.dead_letters_by_reason.clone(),
        late: progress.late,
        machines_on_several_partitions: progress.machines_on_several_partitions,
        long_values_repeated: progress.long_values_repeated,
        sparkplug_non_numeric: progress.sparkplug_non_numeric,
        sparkplug_null: progress.sparkplug_null,
        faults: report.faults_counted,
        faults_detected: report.faults_detected,
        precision: report.precision,
        recall: report.recall,
        mean_detection_delay_s: report.mean_delay_ms.map(|d| d / 1000.0),
        by_kind: serde_json::to_value(&report.by_kind)?,
        model_version: progress.model_version.clone(),
        wall_seconds: wall,
        readings_per_second: progress.readings as f64 / wall.max(1e-9),
        alert_delay_p50_s: quantile(&progress.alert_delays_s, 0.5),
        alert_delay_p99_s: quantile(&progress.alert_delays_s, 0.99),
        event_time_start: linewatch_runtime::alerter::format_ts(sim.config().start_ms),
        event_time_end: linewatch_runtime::alerter::format_ts(stats.event_time_ms),
    })
}
