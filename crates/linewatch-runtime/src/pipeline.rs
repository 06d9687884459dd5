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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::alerter::{Alert, AlertState, Alerter, MachineAlertState, ScoredWindow};
use crate::config::PipelineConfig;
use crate::kafka::{self, LwContext, PartitionEvent};
use crate::output::{self, ScoredRows};
use crate::scoring::{ModelInputs, ModelSlot};
use crate::telemetry::{self as tm, Health};
use crate::trainer::{GuardBand, TrainBuffer, TrainRow, Trainer};

use linewatch_sink::{FileName, ParquetTable, RollPolicy};
use linewatch_window::{
    ChannelSet, ClosedWindow, DecodeLimits, FeatureSchema, WindowConfig, Windower,
};

/// Footer key: per machine, the start of the last window made durable (JSON object).
pub const META_DURABLE: &str = "linewatch.durable";
/// Footer key: the alerter's per-machine state (JSON object).
pub const META_ALERTER: &str = "linewatch.alerter";
/// Footer key: the pipeline's name.
pub const META_PIPELINE: &str = "linewatch.pipeline";
/// Footer key: the file's flush sequence number within its Kafka partition.
pub const META_SEQ: &str = "linewatch.flush_seq";

/// Live counters for progress displays and summaries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub consumed: u64,
    pub readings: u64,
    pub dead_lettered: u64,
    pub late: u64,
    pub windows: u64,
    pub alerts_opened: u64,
    pub alerts_resolved: u64,
    pub inspections: u64,
    pub retrains: u64,
    pub retrains_rejected: u64,
    pub model_version: Option<String>,
    pub files: u64,
    /// Delays from a window's close to its alert's acknowledgement, in seconds.
    pub alert_delays_s: Vec<f64>,
}

/// A scored window waiting for its file.
struct Pending {
    rows: ScoredRows,
    alerts: Vec<(Alert, Instant)>,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    since: Option<Instant>,
    durable_update: HashMap<String, i64>,
}

impl Pending {
    fn new(schema: &FeatureSchema) -> Self {
        Self {
            rows: ScoredRows::new(schema),
            alerts: Vec::new(),
            first_offset: None,
            last_offset: None,
            since: None,
            durable_update: HashMap::new(),
        }
    }
}

/// Everything the pipeline holds for one readings partition.
struct PartitionState {
    windower: Windower,
    alerter: Alerter,
    /// Which of this partition's windows may feed retraining.
    guard: GuardBand,
    pending: Pending,
    /// Per machine, the start of the last window that is durable in Parquet.
    durable: HashMap<String, i64>,
    /// Next offset to commit once everything before it is durable.
    last_consumed: Option<i64>,
    last_committed: Option<i64>,
    /// Sequence number of this partition's next file (continues across restarts).
    flush_seq: u64,
    /// Alerts durable in Parquet whose acknowledgement by the broker is not recorded (found
    /// at restore after a crash): re-sent unless already on the topic.
    unacked: Vec<Alert>,
    /// `(alert_id, state)` of the alerts already in this partition's Parquet files at restore:
    /// a replay that raises them again must not write or send them twice.
    known_alerts: std::collections::HashSet<(String, String)>,
}

/// Label messages waiting for their file (the `labels/` table), per inspections partition.
#[derive(Default)]
struct LabelPending {
    rows: Vec<linewatch_window::Inspection>,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    since: Option<Instant>,
}

/// The pipeline's state, owned by one task.
pub struct Pipeline {
    cfg: PipelineConfig,
    schema: FeatureSchema,
    inputs: ModelInputs,
    channels: Arc<ChannelSet>,
    limits: DecodeLimits,
    window_cfg: WindowConfig,
    roll: RollPolicy,
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
        let window_cfg = WindowConfig::hopping(
            cfg.window.size.as_millis() as u64,
            cfg.slide().as_millis() as u64,
            cfg.window.allowed_lateness.as_millis() as u64,
            cfg.window.idle_timeout.as_millis() as u64,
        );
        window_cfg.validate().context("window config")?;
        let limits = DecodeLimits {
            max_message_bytes: cfg.decode.max_message_bytes,
            min_ts_ms: cfg.decode.min_ts.timestamp_millis(),
            max_ts_ms: cfg.decode.max_ts.timestamp_millis(),
            max_channels: cfg.decode.max_channels,
        };
        let scores = output::open_table(&cfg, "scores", "window_start")?;
        let alerts = output::open_table(&cfg, "alerts", "window_start")?;
        let labels = output::open_table(&cfg, "labels", "ts")?;
        let roll = RollPolicy {
            max_rows: cfg.sink.max_rows,
            max_bytes: cfg.sink.max_bytes,
            max_age: cfg.sink.max_age,
        };
        let models = ModelSlot::default();
        match crate::model_store::load_newest(&cfg.models_root(), inputs.names()) {
            Ok(Some(snapshot)) => {
                tracing::info!(version = %snapshot.version, "serving the newest valid model");
                models.swap(Some(Arc::new(snapshot)));
            }
            Ok(None) => tracing::info!("no model yet: warming up (rows get null scores)"),
            Err(e) => tracing::warn!(error = %e, "could not read the models folder; warming up"),
        }
        let trainer = Trainer::spawn(cfg.clone(), inputs.names().to_vec())?;
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
            limits,
            window_cfg,
            roll,
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
        })
    }

    /// The model slot (tests and the demo read the serving version from it).
    pub fn models(&self) -> ModelSlot {
        self.models.clone()
    }

    /// Runs until `shutdown` resolves, then closes every window, writes, acknowledges and
    /// commits (graceful stop).
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<Progress> {
        let ctx = LwContext::default();
        let consumer: StreamConsumer<LwContext> = kafka::consumer_config(&self.cfg)
            .create_with_context(ctx.clone())
            .context("creating the Kafka consumer")?;
        let producer: FutureProducer = kafka::producer_config(&self.cfg)
            .create()
            .context("creating the Kafka producer")?;
        let mut topics = vec![self.cfg.kafka.readings_topic.as_str()];
        if !self.cfg.kafka.inspections_topic.is_empty() {
            topics.push(self.cfg.kafka.inspections_topic.as_str());
        }
        consumer.subscribe(&topics).context("subscribing")?;
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
                _ = lag_tick.tick() => report_lag(&consumer),
                _ = models_tick.tick() => self.pick_up_new_version(),
                msg = consumer.recv() => match msg {
                    Ok(m) => self.on_message(&m, &producer).await?,
                    Err(e) => {
                        tracing::warn!(error = %e, "consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        tracing::info!("shutting down: closing windows, writing, committing");
        self.on_rebalance(ctx.take_events());
        let parts: Vec<i32> = self.parts.keys().copied().collect();
        for p in parts {
            if let Some(st) = self.parts.get_mut(&p) {
                st.windower.flush_all();
            }
            self.drain_closed(p);
        }
        self.on_tick(&consumer, &producer, true).await?;
        self.trainer.stop();
        self.publish();
        drop(producer);
        Ok(self.progress)
    }

    fn publish(&mut self) {
        self.progress.model_version = self.models.current().map(|s| s.version.clone());
        self.progress_tx.send_replace(self.progress.clone());
    }

    fn on_rebalance(&mut self, events: Vec<PartitionEvent>) {
        for e in events {
            if let PartitionEvent::Revoked(parts) = e {
                for (topic, p) in parts {
                    if topic == self.cfg.kafka.readings_topic {
                        // Dropped, not flushed: nothing of it was committed past what is
                        // durable, so the new owner rebuilds these windows from the committed
                        // offset and skips those already written (no double counting).
                        if self.parts.remove(&p).is_some() {
                            tracing::info!(partition = p, "dropped state of revoked partition");
                        }
                    } else {
                        self.label_parts.remove(&p);
                    }
                }
            }
        }
    }

    fn partition(&mut self, p: i32) -> &mut PartitionState {
        if !self.parts.contains_key(&p) {
            let restored = restore_partition(&self.scores, &self.alerts, &self.cfg.sink.out, p);
            let mut alerter = Alerter::new(
                &self.cfg.pipeline.name,
                self.cfg.alert.open_after,
                self.cfg.alert.resolve_after,
            );
            alerter.restore(restored.alerter);
            tracing::info!(
                partition = p,
                machines = restored.durable.len(),
                next_file = restored.flush_seq,
                unacked_alerts = restored.unacked.len(),
                "partition state restored"
            );
            // The config was validated in `new`.
            let windower = Windower::new(self.window_cfg.clone(), self.channels.clone())
                .expect("window config validated at start");
            self.parts.insert(
                p,
                PartitionState {
                    windower,
                    alerter,
                    guard: GuardBand::new(self.cfg.retrain.guard_windows),
                    pending: Pending::new(&self.schema),
                    durable: restored.durable,
                    last_consumed: None,
                    last_committed: None,
                    flush_seq: restored.flush_seq,
                    unacked: restored.unacked,
                    known_alerts: restored.known_alerts,
                },
            );
        }
        // Just inserted if absent.
        self.parts.get_mut(&p).expect("partition state present")
    }

    async fn on_message(
        &mut self,
        m: &BorrowedMessage<'_>,
        producer: &FutureProducer,
    ) -> anyhow::Result<()> {
        self.health.tick();
        self.progress.consumed += 1;
        metrics::counter!(tm::CONSUMED, "topic" => m.topic().to_string()).increment(1);
        let payload = m.payload().unwrap_or_default();
        let (p, offset) = (m.partition(), m.offset());
        if m.topic() == self.cfg.kafka.readings_topic {
            match linewatch_window::decode_reading(payload, &self.limits) {
                Ok(reading) => {
                    self.progress.readings += 1;
                    metrics::counter!(tm::DECODED).increment(1);
                    let st = self.partition(p);
                    match st.windower.push(&reading, offset as u64) {
                        Ok(outcome) => {
                            if outcome.is_late() {
                                metrics::counter!(tm::LATE).increment(1);
                                self.progress.late += 1;
                            }
                            self.drain_closed(p);
                        }
                        Err(e) => {
                            self.dead_letter(m, producer, e.reason(), &e.to_string())
                                .await?;
                        }
                    }
                }
                Err(e) => {
                    self.dead_letter(m, producer, e.reason(), &e.to_string())
                        .await?;
                }
            }
            let st = self.partition(p);
            st.last_consumed = Some(offset);
            if st.pending.first_offset.is_none() {
                st.pending.first_offset = Some(offset);
            }
            st.pending.last_offset = Some(offset);
        } else {
            match linewatch_window::decode_inspection(payload, &self.limits) {
                Ok(ins) => {
                    self.progress.inspections += 1;
                    metrics::counter!(tm::INSPECTIONS).increment(1);
                    self.buffer.label(&ins.machine, ins.ts_ms, ins.defect);
                    let lp = self.label_parts.entry(p).or_default();
                    lp.rows.push(ins);
                    lp.since.get_or_insert_with(Instant::now);
                }
                Err(e) => {
                    self.dead_letter(m, producer, e.reason(), &e.to_string())
                        .await?;
                }
            }
            let lp = self.label_parts.entry(p).or_default();
            lp.first_offset.get_or_insert(offset);
            lp.last_offset = Some(offset);
        }
        Ok(())
    }

    async fn dead_letter(
        &mut self,
        m: &BorrowedMessage<'_>,
        producer: &FutureProducer,
        reason: &str,
        detail: &str,
    ) -> anyhow::Result<()> {
        self.progress.dead_lettered += 1;
        metrics::counter!(tm::DEAD_LETTERED, "reason" => reason.to_string()).increment(1);
        tracing::debug!(
            topic = m.topic(),
            partition = m.partition(),
            offset = m.offset(),
            reason,
            "dead letter"
        );
        kafka::dead_letter(
            producer,
            m.topic(),
            &self.cfg.kafka.dlq_suffix,
            m.partition(),
            m.offset(),
            m.key(),
            m.payload().unwrap_or_default(),
            reason,
            detail,
            self.cfg.kafka.ack_timeout,
        )
        .await
        .with_context(|| {
            format!(
                "dead-lettering {}/{}@{}",
                m.topic(),
                m.partition(),
                m.offset()
            )
        })
    }

    /// Scores the windows the windower closed on partition `p` and buffers them for the sink.
    fn drain_closed(&mut self, p: i32) {
        let Some(st) = self.parts.get_mut(&p) else {
            return;
        };
        let mut closed: Vec<ClosedWindow> = st.windower.drain_closed();
        if closed.is_empty() {
            return;
        }
        // Windows already durable (a replay after a crash or a rebalance) are skipped.
        closed.retain(|w| {
            st.durable
                .get(&*w.key.machine)
                .is_none_or(|&last| w.start_ms > last)
        });
        if closed.is_empty() {
            return;
        }
        let snapshot = self.models.current();
        let started = Instant::now();
        let scored = match crate::scoring::score_windows(
            &self.inputs,
            &closed,
            snapshot.as_deref(),
            self.cfg.alert.top_features,
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "scoring failed; writing rows unscored");
                crate::scoring::unscored(&self.inputs, &closed)
            }
        };
        metrics::histogram!(tm::SCORING_LATENCY).record(started.elapsed().as_secs_f64());
        let n = closed.len() as u64;
        self.progress.windows += n;
        metrics::counter!(tm::WINDOWS).increment(n);
        for ((w, row), features) in closed.into_iter().zip(scored.rows).zip(&scored.features) {
            let alert = st.alerter.observe(&ScoredWindow {
                line: &w.key.line,
                machine: &w.key.machine,
                window_start_ms: w.start_ms,
                window_end_ms: w.end_ms,
                anomaly_score: row.anomaly_score,
                threshold: row.threshold,
                defect_prob: row.defect_prob,
                model_version: row.model_version.as_deref(),
                top_features: &row.top_features,
            });
            let alerted = st.alerter.is_open(&w.key.machine);
            if let Some(a) = alert {
                match a.state {
                    AlertState::Open => self.progress.alerts_opened += 1,
                    AlertState::Resolved => self.progress.alerts_resolved += 1,
                }
                metrics::counter!(tm::ALERTS, "state" => a.state.as_str()).increment(1);
                st.pending.alerts.push((a, Instant::now()));
            }
            self.buffer.remember(&w.key.machine, w.start_ms, features);
            // Normal windows feed retraining, once the guard band confirms them: alerted ones,
            // those over the threshold and their neighbours do not.
            let over = matches!((row.anomaly_score, row.threshold), (Some(s), Some(t)) if s > t);
            let candidate = TrainRow {
                machine: w.key.machine.to_string(),
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                features: features.to_vec(),
                label: None,
            };
            for confirmed in st.guard.observe(candidate, alerted || over) {
                self.buffer.push(confirmed);
            }
            let e = st
                .pending
                .durable_update
                .entry(w.key.machine.to_string())
                .or_insert(w.start_ms);
            *e = (*e).max(w.start_ms);
            st.pending.rows.push(w, row, alerted);
        }
        st.pending.since.get_or_insert_with(Instant::now);
        self.buffer.windows_seen += n;
        self.maybe_retrain();
    }

    fn maybe_retrain(&mut self) {
        if !self.cfg.retrain.enabled || self.trainer.busy() {
            return;
        }
        if self.buffer.len() < self.cfg.retrain.min_windows {
            return;
        }
        let first = self.models.current().is_none() && self.trainer.last_started().is_none();
        let due_time = self
            .trainer
            .last_started()
            .is_none_or(|t| t.elapsed() >= self.cfg.retrain.every);
        let due_windows = self.cfg.retrain.every_windows > 0
            && self.buffer.windows_since_train >= self.cfg.retrain.every_windows;
        if first || due_time || due_windows {
            let job = self.buffer.job(self.models.current());
            self.buffer.windows_since_train = 0;
            self.trainer.start(job);
        }
    }

    /// Serves a newer version written by another process (e.g. a `linewatch train` job).
    fn pick_up_new_version(&mut self) {
        let current = self.models.current().map(|s| s.version.clone());
        let newest = match crate::model_store::list_versions(&self.cfg.models_root()) {
            Ok(v) => v.into_iter().last(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list model versions");
                return;
            }
        };
        let Some((version, dir)) = newest else { return };
        if current.as_ref().is_some_and(|c| *c >= version) {
            return;
        }
        match crate::model_store::load_snapshot(&dir, &version, self.inputs.names()) {
            Ok(s) => {
                tracing::info!(%version, "serving a model version written by another process");
                self.models.swap(Some(Arc::new(s)));
                self.publish();
            }
            Err(e) => {
                tracing::warn!(%version, error = %e, "newer model version is invalid; not served")
            }
        }
    }

    fn on_trained(&mut self, outcome: crate::trainer::Outcome) {
        match outcome {
            crate::trainer::Outcome::Accepted(snapshot) => {
                self.progress.retrains += 1;
                metrics::counter!(tm::RETRAINS, "outcome" => "accepted").increment(1);
                tracing::info!(version = %snapshot.version, threshold = snapshot.threshold(), "hot-swapped a new model");
                self.models.swap(Some(snapshot));
            }
            crate::trainer::Outcome::Rejected(why) => {
                self.progress.retrains_rejected += 1;
                metrics::counter!(tm::RETRAINS, "outcome" => "rejected").increment(1);
                tracing::warn!(reason = %why, "retrained model rejected; keeping the serving model");
            }
            crate::trainer::Outcome::Failed(why) => {
                self.progress.retrains_rejected += 1;
                metrics::counter!(tm::RETRAINS, "outcome" => "failed").increment(1);
                tracing::error!(error = %why, "retraining failed; keeping the serving model");
            }
        }
        self.publish();
    }

    /// Writes due buffers, sends their alerts, commits what is durable.
    async fn on_tick(
        &mut self,
        consumer: &StreamConsumer<LwContext>,
        producer: &FutureProducer,
        force: bool,
    ) -> anyhow::Result<()> {
        self.health.tick();
        let mut tpl = TopicPartitionList::new();
        let parts: Vec<i32> = self.parts.keys().copied().collect();
        let mut open_windows = 0usize;
        for p in parts {
            if let Some(st) = self.parts.get_mut(&p)
                && st.windower.flush_idle() > 0
            {
                self.drain_closed(p);
            }
            let due = {
                let Some(st) = self.parts.get(&p) else {
                    continue;
                };
                open_windows += st.windower.stats().windows_open;
                let age = st.pending.since.map(|s| s.elapsed()).unwrap_or_default();
                !st.pending.rows.is_empty()
                    && (force
                        || self.roll.should_roll(
                            st.pending.rows.len(),
                            st.pending.rows.bytes(),
                            age,
                        ))
            };
            if self.parts.get(&p).is_some_and(|st| !st.unacked.is_empty()) {
                self.reconcile_alerts(p, producer).await?;
            }
            if due {
                self.flush_partition(p, producer).await?;
            }
            let Some(st) = self.parts.get_mut(&p) else {
                continue;
            };
            let Some(last) = st.last_consumed else {
                continue;
            };
            // Everything before the oldest reading still held (open windows, or scored rows not
            // yet written) is durable.
            let mut next = last + 1;
            if let Some(s) = st.windower.min_unemitted_seq() {
                next = next.min(s as i64);
            }
            if let Some(s) = st.pending.rows.min_seq() {
                next = next.min(s as i64);
            }
            commit_at(&mut tpl, &self.cfg.kafka.readings_topic, p, st, next);
        }
        metrics::gauge!(tm::OPEN_WINDOWS).set(open_windows as f64);
        // Labels: write, then commit.
        let label_parts: Vec<i32> = self.label_parts.keys().copied().collect();
        for p in label_parts {
            let due = self.label_parts.get(&p).is_some_and(|lp| {
                lp.last_offset.is_some()
                    && (force
                        || lp
                            .since
                            .is_some_and(|s| s.elapsed() >= self.cfg.sink.max_age)
                        || lp.rows.is_empty())
            });
            if !due {
                continue;
            }
            if let Some(lp) = self.label_parts.get_mut(&p) {
                let (Some(first), Some(last)) = (lp.first_offset, lp.last_offset) else {
                    continue;
                };
                if !lp.rows.is_empty() {
                    let batch = output::labels_batch(&lp.rows)?;
                    let name = FileName::new(p, first, last)?;
                    self.labels.write_file(&[batch], &name, &[])?;
                    self.progress.files += 1;
                }
                tpl.add_partition_offset(
                    &self.cfg.kafka.inspections_topic,
                    p,
                    Offset::Offset(last + 1),
                )?;
                *lp = LabelPending::default();
            }
        }
        if tpl.count() > 0 {
            let mode = if force {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            if let Err(e) = consumer.commit(&tpl, mode) {
                tracing::warn!(error = %e, "offset commit failed; will retry on the next tick");
            }
        }
        drop(tpl);
        self.publish();
        Ok(())
    }

    /// Writes partition `p`'s buffer (scores, then alerts) and produces its alerts, waiting for
    /// the broker's acknowledgements. After this returns the buffer is durable.
    async fn flush_partition(&mut self, p: i32, producer: &FutureProducer) -> anyhow::Result<()> {
        let Some(st) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        // Rows closed without a message in between (idle eviction, shutdown) cover no new
        // offsets: name their file after the readings they hold.
        let first = st
            .pending
            .first_offset
            .or(st.pending.rows.min_seq().map(|s| s as i64))
            .or(st.last_consumed)
            .unwrap_or(0);
        let last = st
            .pending
            .last_offset
            .or(st.last_consumed)
            .unwrap_or(first)
            .max(first);
        let mut durable = st.durable.clone();
        for (m, s) in &st.pending.durable_update {
            let e = durable.entry(m.clone()).or_insert(*s);
            *e = (*e).max(*s);
        }
        let seq = st.flush_seq;
        let meta = vec![
            (META_PIPELINE.to_string(), self.cfg.pipeline.name.clone()),
            (META_SEQ.to_string(), seq.to_string()),
            (META_DURABLE.to_string(), serde_json::to_string(&durable)?),
            (
                META_ALERTER.to_string(),
                serde_json::to_string(st.alerter.snapshot())?,
            ),
        ];
        let name = FileName::new(p, first, last)?;
        // Alerts first: once the scores file exists (which skips these windows on replay),
        // their alerts must already be durable.
        let mut alerts = std::mem::take(&mut st.pending.alerts);
        alerts.retain(|(a, _)| {
            !st.known_alerts
                .contains(&(a.alert_id.clone(), a.state.as_str().to_string()))
        });
        if !alerts.is_empty() {
            let batch = output::alerts_batch(alerts.iter().map(|(a, _)| a))?;
            let written = self.alerts.write_file(&[batch], &name, &meta)?;
            self.progress.files += written.len() as u64;
            metrics::counter!(tm::FILES_WRITTEN, "table" => "alerts")
                .increment(written.len() as u64);
        }
        let batch = st.pending.rows.finish()?;
        let written = self.scores.write_file(&[batch], &name, &meta)?;
        self.progress.files += written.len() as u64;
        metrics::counter!(tm::FILES_WRITTEN, "table" => "scores").increment(written.len() as u64);
        // Durable in Parquet: now the alert topic.
        let topic = self.cfg.kafka.alerts_topic.clone();
        let timeout = self.cfg.kafka.ack_timeout;
        let sends = alerts.iter().map(|(a, closed_at)| {
            let payload = serde_json::to_string(a).unwrap_or_default();
            let key = a.machine.clone();
            let topic = topic.clone();
            async move {
                let r = producer
                    .send(
                        FutureRecord::to(&topic).key(&key).payload(&payload),
                        timeout,
                    )
                    .await
                    .map_err(|(e, _)| e);
                (r, closed_at.elapsed().as_secs_f64())
            }
        });
        for (r, delay) in futures::future::join_all(sends).await {
            r.context("alert not acknowledged by the broker")?;
            metrics::histogram!(tm::CLOSE_TO_ALERT).record(delay);
            self.progress.alert_delays_s.push(delay);
        }
        if !alerts.is_empty() {
            write_acked_marker(&self.cfg.sink.out, p, seq)?;
        }
        st.durable = durable;
        st.flush_seq = seq + 1;
        st.pending = Pending::new(&self.schema);
        Ok(())
    }
}

fn commit_at(
    tpl: &mut TopicPartitionList,
    topic: &str,
    p: i32,
    st: &mut PartitionState,
    next: i64,
) {
    if st.last_committed.is_some_and(|c| c >= next) {
        return;
    }
    if tpl
        .add_partition_offset(topic, p, Offset::Offset(next))
        .is_ok()
    {
        st.last_committed = Some(next);
    }
}

/// What a partition resumes from.
struct Restored {
    durable: HashMap<String, i64>,
    alerter: HashMap<String, MachineAlertState>,
    flush_seq: u64,
    unacked: Vec<Alert>,
    /// `(alert_id, state)` of the alerts already in this partition's Parquet files at restore:
    /// a replay that raises them again must not write or send them twice.
    known_alerts: std::collections::HashSet<(String, String)>,
}

/// The files of partition `p` in the newest two `date=` folders it wrote to: replays never
/// reach further back than that, and startup stays fast however long the table grows.
fn recent_files(table: &ParquetTable, p: i32) -> Vec<linewatch_sink::FileInfo> {
    let files = match table.list_files() {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list files; starting without history");
            return Vec::new();
        }
    };
    let mut dates: Vec<&str> = files
        .iter()
        .filter(|f| f.partition == p)
        .map(|f| f.date.as_str())
        .collect();
    dates.sort_unstable();
    dates.dedup();
    let keep: Vec<String> = dates.iter().rev().take(2).map(|d| d.to_string()).collect();
    files
        .into_iter()
        .filter(|f| f.partition == p && keep.contains(&f.date))
        .collect()
}

fn footer(path: &std::path::Path) -> HashMap<String, String> {
    match linewatch_sink::read_footer_metadata(path) {
        Ok(kv) => kv.into_iter().collect(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable footer");
            HashMap::new()
        }
    }
}

/// Restores partition `p` from the footer of its newest scores file (highest flush sequence:
/// its durable map and alerter state are cumulative), and finds alerts written after the last
/// recorded acknowledgement.
fn restore_partition(
    scores: &ParquetTable,
    alerts: &ParquetTable,
    out: &std::path::Path,
    p: i32,
) -> Restored {
    let mut r = Restored {
        durable: HashMap::new(),
        alerter: HashMap::new(),
        flush_seq: 0,
        unacked: Vec::new(),
        known_alerts: std::collections::HashSet::new(),
    };
    let mut best: Option<u64> = None;
    for f in recent_files(scores, p) {
        let kv = footer(&f.path);
        let Some(seq) = kv.get(META_SEQ).and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        if best.is_some_and(|b| b > seq) {
            continue;
        }
        if best != Some(seq) {
            r.durable.clear();
            r.alerter.clear();
        }
        best = Some(seq);
        if let Some(m) = kv
            .get(META_DURABLE)
            .and_then(|v| serde_json::from_str::<HashMap<String, i64>>(v).ok())
        {
            for (machine, s) in m {
                let e = r.durable.entry(machine).or_insert(s);
                *e = (*e).max(s);
            }
        }
        if let Some(m) = kv
            .get(META_ALERTER)
            .and_then(|v| serde_json::from_str::<HashMap<String, MachineAlertState>>(v).ok())
        {
            r.alerter.extend(m);
        }
    }
    r.flush_seq = best.map_or(0, |b| b + 1);
    let acked = read_acked_marker(out, p);
    for f in recent_files(alerts, p) {
        let kv = footer(&f.path);
        let seq = kv.get(META_SEQ).and_then(|s| s.parse::<u64>().ok());
        match linewatch_sink::read_file(&f.path)
            .map_err(anyhow::Error::from)
            .and_then(|batches| output::alerts_from_batches(&batches))
        {
            Ok(alerts) => {
                for a in alerts {
                    let key = (a.alert_id.clone(), a.state.as_str().to_string());
                    if r.known_alerts.insert(key) && acked.is_none_or(|x| seq.is_none_or(|s| s > x))
                    {
                        r.unacked.push(a);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(path = %f.path.display(), error = %e, "unreadable alerts file")
            }
        }
    }
    r
}

fn acked_marker_path(out: &std::path::Path, p: i32) -> std::path::PathBuf {
    out.join("_state").join(format!("alerts-acked-p{p:05}"))
}

fn read_acked_marker(out: &std::path::Path, p: i32) -> Option<u64> {
    std::fs::read_to_string(acked_marker_path(out, p))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Records that the alerts of file `seq` of partition `p` (and all before) are acknowledged.
fn write_acked_marker(out: &std::path::Path, p: i32, seq: u64) -> anyhow::Result<()> {
    let path = acked_marker_path(out, p);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, seq.to_string())?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

impl Pipeline {
    /// After a crash: alerts durable in Parquet but perhaps never acknowledged are sent again,
    /// unless the alert topic already holds them (so none is lost and none repeated).
    async fn reconcile_alerts(&mut self, p: i32, producer: &FutureProducer) -> anyhow::Result<()> {
        let Some(st) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        let unacked = std::mem::take(&mut st.unacked);
        let on_topic = kafka::recent_alert_keys(&self.cfg, 100_000)
            .context("reading the alert topic to reconcile alerts after a restart")?;
        let missing: Vec<&Alert> = unacked
            .iter()
            .filter(|a| !on_topic.contains(&(a.alert_id.clone(), a.state.as_str().to_string())))
            .collect();
        tracing::info!(
            partition = p,
            candidates = unacked.len(),
            resending = missing.len(),
            "reconciled alerts after restart"
        );
        for a in missing {
            let payload = serde_json::to_string(a)?;
            producer
                .send(
                    FutureRecord::to(&self.cfg.kafka.alerts_topic)
                        .key(&a.machine)
                        .payload(&payload),
                    self.cfg.kafka.ack_timeout,
                )
                .await
                .map_err(|(e, _)| e)
                .context("re-sending an alert")?;
        }
        if let Some(st) = self.parts.get(&p)
            && st.flush_seq > 0
        {
            write_acked_marker(&self.cfg.sink.out, p, st.flush_seq - 1)?;
        }
        Ok(())
    }
}

fn report_lag(consumer: &StreamConsumer<LwContext>) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let Ok(position) = consumer.position() else {
        return;
    };
    let mut total = 0i64;
    for e in position.elements() {
        if let Offset::Offset(pos) = e.offset()
            && let Ok((_, high)) =
                consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_millis(500))
        {
            total += (high - pos).max(0);
        }
    }
    metrics::gauge!(tm::CONSUMER_LAG).set(total as f64);
    // Lists returned by the consumer go before it does (rd_kafka_destroy hang).
    drop(position);
    drop(assignment);
}
