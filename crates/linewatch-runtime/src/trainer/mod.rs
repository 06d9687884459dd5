//! Retraining: the buffer of recent normal windows and labels, the background trainer thread,
//! the validation gate, versioned checkpoints. The scorer never waits for it: a job is handed
//! to a thread and the result comes back as a message; the loop swaps it in atomically.
//!
//! `linewatch train` runs the same [`train_and_validate`] on rows read from Parquet.

mod buffer;
mod train;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use crate::config::{IsotonicSection, ModelSection, PipelineConfig, RetrainSection};
use crate::model_store::Snapshot;

pub use buffer::{GuardBand, LabelledRow, TrainBuffer, TrainRow};
pub use train::{
    resolve_device, score_config, train_and_validate, train_score_model, train_score_model_on,
    train_score_model_overlap,
};

/// What retraining needs from the pipeline file: its training sections, the stream's window
/// overlap and where versions go (the trainer thread holds this, not the whole configuration).
#[derive(Debug, Clone)]
pub struct TrainSettings {
    /// `[model]`.
    pub model: ModelSection,
    /// `[isotonic]`.
    pub isotonic: IsotonicSection,
    /// `[retrain]`.
    pub retrain: RetrainSection,
    /// Consecutive windows of a machine that share readings (window size / hop; 1 for
    /// tumbling windows): the effective sample size divides by it.
    pub overlap: f64,
    /// Where versions are written: `retrain.models_dir/<pipeline.name>` (a folder or an
    /// object-store prefix).
    pub models_root: linewatch_sink::Location,
}

impl TrainSettings {
    /// The settings of the pipeline `cfg`, writing versions to `models_root`
    /// ([`PipelineConfig::models_location`]).
    pub fn of(cfg: &PipelineConfig, models_root: linewatch_sink::Location) -> Self {
        let hop = cfg.slide().as_millis().max(1) as f64;
        Self {
            model: cfg.model.clone(),
            isotonic: cfg.isotonic.clone(),
            retrain: cfg.retrain.clone(),
            overlap: (cfg.window.size.as_millis() as f64 / hop).max(1.0),
            models_root,
        }
    }
}

/// What a retraining works from.
pub struct TrainJob {
    /// Normal windows' features, oldest first.
    pub rows: Vec<Vec<f64>>,
    /// Event-time span of those windows.
    pub span_ms: Option<(i64, i64)>,
    pub labelled: Vec<LabelledRow>,
    pub serving: Option<Arc<Snapshot>>,
}

/// How a retraining ended.
pub enum Outcome {
    Accepted(Arc<Snapshot>),
    Rejected(String),
    Failed(String),
}

/// The background trainer: one job at a time on its own thread.
pub struct Trainer {
    jobs: std::sync::mpsc::Sender<TrainJob>,
    outcomes: tokio::sync::mpsc::UnboundedReceiver<Outcome>,
    busy: bool,
    last_started: Option<Instant>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Trainer {
    pub fn spawn(cfg: TrainSettings, feature_names: Vec<String>) -> anyhow::Result<Self> {
        let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<TrainJob>();
        let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("linewatch-trainer".into())
            .spawn(move || {
                while let Ok(job) = jobs_rx.recv() {
                    let outcome = match train_and_validate(&cfg, &feature_names, job) {
                        Ok(o) => o,
                        Err(e) => Outcome::Failed(format!("{e:#}")),
                    };
                    if out_tx.send(outcome).is_err() {
                        break;
                    }
                }
            })
            .context("spawning the trainer thread")?;
        Ok(Self {
            jobs: jobs_tx,
            outcomes: out_rx,
            busy: false,
            last_started: None,
            thread: Some(thread),
        })
    }

    pub fn busy(&self) -> bool {
        self.busy
    }

    pub fn last_started(&self) -> Option<Instant> {
        self.last_started
    }

    pub fn start(&mut self, job: TrainJob) {
        tracing::info!(
            rows = job.rows.len(),
            labelled = job.labelled.len(),
            "retraining in the background"
        );
        if self.jobs.send(job).is_ok() {
            self.busy = true;
            self.last_started = Some(Instant::now());
        }
    }

    /// The next finished job (pending forever when none is running).
    pub async fn next_outcome(&mut self) -> Option<Outcome> {
        if !self.busy {
            return std::future::pending().await;
        }
        let o = self.outcomes.recv().await;
        self.busy = false;
        o
    }

    /// Stops taking jobs. A running job is not waited for: shutdown must not hang on a long
    /// training, and a version is only ever published by an atomic rename, so one cut short
    /// leaves nothing half-written behind.
    pub fn stop(&mut self) {
        let (tx, _) = std::sync::mpsc::channel();
        self.jobs = tx;
        if let Some(t) = self.thread.take()
            && t.is_finished()
        {
            let _ = t.join();
        }
    }
}
