//! The streaming loop: Kafka in, windows, scores, alerts, Parquet and the alert topic out,
//! offsets committed once both are durable.
//!
//! One tokio task owns all partition state (no locks on the hot path). Per readings partition:
//! a windower, an alerter and a buffer of scored windows not yet written. A buffer is written
//! as one Parquet file per hive partition (named from the Kafka partition and the offsets it
//! covers) when the sink's roll policy says so; then its alerts are produced and acknowledged;
//! only then is the partition's offset committed, at the oldest reading still held in an open
//! window. Each file's footer records, per machine, the last window it made durable and the
//! alerter's state, so a restarted or newly assigned consumer skips windows already written
//! and resumes hysteresis where it stopped: no window twice, no alert id twice.
//!
//! # Layout (the stages of the data flow)
//! - this file: the pipeline's state and the select loop that drives the stages;
//! - `ingest.rs`: a consumed message: decode, window, dead-letter; consumer lag;
//! - `score.rs`: closed windows: skip replays, score, alert hysteresis, retraining buffer;
//! - `retrain.rs`: starting retraining jobs, swapping in the models they (or others) publish;
//! - `flush.rs`: writing due buffers (scores, alerts, labels) and committing offsets;
//! - `alerts.rs`: producing alerts to the alert topic, re-sending them after a crash;
//! - `partition.rs`: the state held per partition, created from the files at assignment;
//! - `durability.rs`: the commit, restore and acknowledgement rules as pure functions;
//! - `state_io.rs`: the file reads and writes those rules are fed from.

mod alerts;
mod durability;
mod flush;
mod ingest;
mod keying;
mod partition;
mod retrain;
mod score;
mod state_io;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::sync::watch;

use crate::config::PipelineConfig;
use crate::kafka::{self, LwContext};
use crate::output;
use crate::scoring::{ModelInputs, ModelSlot};
use crate::telemetry::Health;
pub use crate::telemetry::Progress;
use crate::trainer::{TrainBuffer, TrainSettings, Trainer};

use linewatch_sink::{Location, ParquetTable, RollPolicy};
use linewatch_window::{ChannelSet, DecodeLimits, FeatureSchema, ReadingsDecoder, WindowConfig};

pub use alerts::SendAlertError;
pub use durability::{META_ALERTER, META_DURABLE, META_PIPELINE, META_SEQ};

use partition::{LabelPending, PartitionState};

/// The decoder of the readings topic for `cfg` (with a schema registry client for Avro).
///
/// # Errors
/// The registry client cannot be built, or the format lacks what it needs.
pub(crate) fn readings_decoder(cfg: &PipelineConfig) -> anyhow::Result<ReadingsDecoder> {
    let schemas: Option<Box<dyn linewatch_window::SchemaSource>> = if cfg.decode.format.is_avro() {
        Some(Box::new(crate::registry::RegistryClient::new(
            &cfg.decode.registry,
        )?))
    } else {
        None
    };
    ReadingsDecoder::new(
        cfg.decode.format,
        cfg.decode.fields.clone(),
        cfg.decode.sparkplug.clone(),
        schemas,
        cfg.decode.limits(),
    )
    .map_err(anyhow::Error::msg)
}

/// Waits for the re-keying stage's task to end (forever when there is none); its error, or
/// the panic that ended it.
async fn stage_ended(
    stage: &mut Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<()> {
    match stage {
        Some(task) => task.await.context("the re-keying stage panicked")?,
        None => std::future::pending().await,
    }
}

/// The pipeline's state, owned by one task.
pub struct Pipeline {
    cfg: PipelineConfig,
    schema: FeatureSchema,
    inputs: ModelInputs,
    channels: Arc<ChannelSet>,
    limits: DecodeLimits,
    /// Readings messages: the contract, or the configured format and field mapping.
    decoder: ReadingsDecoder,
    /// The topic the windowers read: `kafka.readings_topic`, or the re-keyed readings.
    windowed_topic: String,
    window_cfg: WindowConfig,
    roll: RollPolicy,
    /// `sink.out`: the tables and the ack markers (`_state/`).
    out: Location,
    /// `retrain.models_dir/<pipeline>`: the model versions.
    models_at: Location,
    scores: ParquetTable,
    alerts: ParquetTable,
    labels: ParquetTable,
    parts: HashMap<i32, PartitionState>,
    label_parts: HashMap<i32, LabelPending>,
    models: ModelSlot,
    trainer: Trainer,
    buffer: TrainBuffer,
    progress: Progress,
    progress_tx: watch::Sender<Progress>,
    health: Arc<Health>,
    keying: keying::MachinePartitions,
    /// Dead letters sent, their acknowledgements not yet awaited, and their payload bytes.
    dead_letters: Vec<kafka::PendingDelivery>,
    dead_letter_bytes: usize,
    /// Lag ticks in a row whose broker queries failed (two make the broker unreachable).
    lag_failures: u32,
}

impl Pipeline {
    /// Builds the stages from a validated config; loads the newest valid model version.
    pub fn new(
        cfg: PipelineConfig,
        progress_tx: watch::Sender<Progress>,
        health: Arc<Health>,
    ) -> anyhow::Result<Self> {
        let channels =
            Arc::new(ChannelSet::new(cfg.window.channels.iter()).context("window.channels")?);
        let schema = FeatureSchema::new(channels.clone());
        let inputs = ModelInputs::new(&schema, &cfg.model.stats);
        let window_cfg = cfg.window_config();
        window_cfg.validate().context("window config")?;
        let limits = cfg.decode.limits();
        let out = cfg.out_location().context("sink.out")?;
        let models_at = cfg.models_location().context("retrain.models_dir")?;
        crate::preflight::ensure_writable(&out, "sink.out")?;
        crate::preflight::ensure_writable(&models_at, "retrain.models_dir")?;
        let decoder = readings_decoder(&cfg)?;
        let windowed_topic = cfg.windowed_topic();
        use linewatch_tables::{alerts, labels, scores};
        let scores = output::open_table(&cfg, scores::TABLE, scores::PARTITION_TIME)?;
        let alerts = output::open_table(&cfg, alerts::TABLE, alerts::PARTITION_TIME)?;
        let labels = output::open_table(&cfg, labels::TABLE, labels::PARTITION_TIME)?;
        let roll = RollPolicy {
            max_rows: cfg.sink.max_rows,
            max_bytes: cfg.sink.max_bytes,
            max_age: cfg.sink.max_age,
        };
        let models = ModelSlot::default();
        match crate::model_store::load_newest(&models_at, inputs.names()) {
            Ok(Some(snapshot)) => {
                tracing::info!(version = %snapshot.version, "serving the newest valid model");
                models.swap(Some(Arc::new(snapshot)));
            }
            Ok(None) => tracing::info!("no model yet: warming up (rows get null scores)"),
            Err(e) => tracing::warn!(error = %e, "could not read the model store; warming up"),
        }
        let trainer = Trainer::spawn(
            TrainSettings::of(&cfg, models_at.clone()),
            inputs.names().to_vec(),
        )?;
        let buffer = TrainBuffer::new(cfg.retrain.max_rows, cfg.slide().as_millis() as i64);
        let progress = Progress {
            model_version: models.current().map(|s| s.version.clone()),
            ..Progress::default()
        };
        Ok(Self {
            cfg,
            schema,
            inputs,
            channels,
            decoder,
            windowed_topic,
            limits,
            window_cfg,
            roll,
            out,
            models_at,
            scores,
            alerts,
            labels,
            parts: HashMap::new(),
            label_parts: HashMap::new(),
            models,
            trainer,
            buffer,
            progress,
            progress_tx,
            health,
            keying: keying::MachinePartitions::default(),
            dead_letters: Vec::new(),
            dead_letter_bytes: 0,
            lag_failures: 0,
        })
    }

    /// The model slot (tests and the demo read the serving version from it).
    pub fn models(&self) -> ModelSlot {
        self.models.clone()
    }

    /// Runs until `shutdown` resolves, then writes the closed windows, acknowledges their
    /// alerts and commits (graceful stop). Open windows are not closed: the commit stops at
    /// their oldest reading, and the next owner completes them.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<Progress> {
        let ctx = LwContext::with_health(self.health.clone());
        let consumer: StreamConsumer<LwContext> = kafka::consumer_config(&self.cfg)
            .create_with_context(ctx.clone())
            .context("creating the Kafka consumer")?;
        let producer: kafka::Producer = kafka::producer_config(&self.cfg)
            .create_with_context(LwContext::with_health(self.health.clone()))
            .context("creating the Kafka producer")?;
        // With `kafka.rekey`, a re-keying stage forwards the readings to the windowed topic.
        let (rekey_stop, rekey_stopped) = watch::channel(false);
        let mut rekey = if self.cfg.kafka.rekey {
            let partitions = crate::rekey::ensure_topic(&self.cfg).await?;
            let stage = crate::rekey::Rekeyer::new(
                self.cfg.clone(),
                readings_decoder(&self.cfg)?,
                self.health.clone(),
                partitions,
            );
            Some(tokio::spawn(stage.run(rekey_stopped)))
        } else {
            None
        };
        let mut topics = vec![self.windowed_topic.as_str()];
        if !self.cfg.kafka.inspections_topic.is_empty() {
            topics.push(self.cfg.kafka.inspections_topic.as_str());
        }
        consumer.subscribe(&topics).context("subscribing")?;
        crate::telemetry::register_topics(&topics);
        tracing::info!(?topics, group = %self.cfg.group_id(), "consuming");

        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lag_tick = tokio::time::interval(Duration::from_secs(5));
        let mut models_tick = tokio::time::interval(Duration::from_secs(10));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(outcome) = self.trainer.next_outcome() => self.on_trained(outcome),
                _ = tick.tick() => {
                    self.on_rebalance(ctx.take_events());
                    self.on_tick(&consumer, &producer, false).await?;
                }
                _ = lag_tick.tick() => ingest::report_lag(&consumer, &self.health, &mut self.lag_failures),
                _ = models_tick.tick() => self.pick_up_new_version(),
                ended = stage_ended(&mut rekey) => {
                    ended?;
                    anyhow::bail!("the re-keying stage stopped on its own");
                }
                msg = consumer.recv() => match msg {
                    Ok(m) => self.on_message(&m, &producer).await?,
                    Err(e) => {
                        ctx.log_error(&e);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        // Open windows stay open: closing them now would write them with only the readings
        // seen so far (partial windows score as anomalies), and the rest of their readings
        // would be skipped after the restart. The commit stops at the oldest reading they
        // hold, so the next owner of the partition replays and completes them.
        tracing::info!("shutting down: writing closed windows, committing; open windows stay open");
        rekey_stop.send_replace(true);
        if rekey.is_some() {
            stage_ended(&mut rekey).await?;
        }
        self.on_rebalance(ctx.take_events());
        self.on_tick(&consumer, &producer, true).await?;
        self.trainer.stop();
        self.publish();
        drop(producer);
        Ok(self.progress)
    }

    /// Sends the current counters to the progress watchers.
    fn publish(&mut self) {
        self.progress.model_version = self.models.current().map(|s| s.version.clone());
        crate::telemetry::events::ServingVersion {
            version: self.progress.model_version.as_deref(),
        }
        .emit();
        self.progress_tx.send_replace(self.progress.clone());
    }
}
