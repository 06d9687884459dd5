//! Retraining: the buffer of recent normal windows and labels, the background trainer thread,
//! the validation gate, versioned checkpoints. The scorer never waits for it: a job is handed
//! to a thread and the result comes back as a message; the loop swaps it in atomically.
//!
//! `linewatch train` runs the same [`train_and_validate`] on rows read from Parquet.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use linewatch_models::checkpoint::TrainingInfo;
use linewatch_models::{
    IsotonicConfig, IsotonicModel, ScoreConfig, ScoreModel, TraceEstimator, TrainConfig,
};

use crate::config::{Monotone, PipelineConfig};
use crate::model_store::{Snapshot, iso_input, next_version, save_snapshot};

/// One buffered window.
#[derive(Debug, Clone)]
pub struct TrainRow {
    pub machine: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub features: Vec<f32>,
    pub label: Option<bool>,
}

/// A labelled row for the isotonic model.
#[derive(Debug, Clone)]
pub struct LabelledRow {
    pub features: Vec<f32>,
    pub defect: bool,
}

/// Keeps a fault's quieter windows out of retraining: a window of a machine feeds training
/// only once `guard` later windows of that machine have closed, and only if neither they nor
/// the `guard` windows before it were abnormal (over the threshold or under an open alert).
/// Faults rarely push every window over the threshold; without the band their windows in
/// between teach the next model that the fault is normal. Windows must arrive per machine in
/// order (the windower closes them so). Memory: at most `guard` windows per machine, for the
/// machines of one partition (the state goes with the partition on a rebalance).
#[derive(Debug, Default)]
pub struct GuardBand {
    guard: usize,
    machines: HashMap<String, MachineBand>,
}

#[derive(Debug)]
struct MachineBand {
    /// Windows since the last abnormal one (saturating; starts past the band).
    since_abnormal: usize,
    /// Normal windows waiting for `guard` normal successors.
    pending: VecDeque<TrainRow>,
}

impl GuardBand {
    pub fn new(guard: usize) -> Self {
        Self {
            guard,
            machines: HashMap::new(),
        }
    }

    /// Observes the next window of `row.machine`; returns the windows it confirms as normal
    /// (oldest first).
    pub fn observe(&mut self, row: TrainRow, abnormal: bool) -> Vec<TrainRow> {
        let guard = self.guard;
        let m = self
            .machines
            .entry(row.machine.clone())
            .or_insert_with(|| MachineBand {
                since_abnormal: usize::MAX,
                pending: VecDeque::new(),
            });
        if abnormal {
            m.since_abnormal = 0;
            m.pending.clear();
            return Vec::new();
        }
        m.since_abnormal = m.since_abnormal.saturating_add(1);
        if m.since_abnormal <= guard {
            return Vec::new();
        }
        m.pending.push_back(row);
        let mut out = Vec::new();
        while m.pending.len() > guard {
            if let Some(r) = m.pending.pop_front() {
                out.push(r);
            }
        }
        out
    }
}

/// Recent normal windows (oldest dropped first) and the labels that reached them.
pub struct TrainBuffer {
    rows: VecDeque<TrainRow>,
    max_rows: usize,
    slide_ms: i64,
    /// Labelled rows kept apart (they also include alerted windows: defects live there).
    labelled: VecDeque<LabelledRow>,
    /// Features of recent windows of any kind, by (machine, window start), so labels arriving
    /// after their window was scored still find it.
    recent: HashMap<(String, i64), Vec<f32>>,
    recent_order: VecDeque<(String, i64)>,
    /// Labels whose window has not closed yet (inspections usually arrive before that).
    pending_labels: HashMap<(String, i64), bool>,
    pending_order: VecDeque<(String, i64)>,
    pub windows_seen: u64,
    pub windows_since_train: u64,
}

impl TrainBuffer {
    pub fn new(max_rows: usize, slide_ms: i64) -> Self {
        Self {
            rows: VecDeque::new(),
            max_rows,
            slide_ms: slide_ms.max(1),
            labelled: VecDeque::new(),
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            pending_labels: HashMap::new(),
            pending_order: VecDeque::new(),
            windows_seen: 0,
            windows_since_train: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Remembers any scored window's features (for late labels), and attaches a label that
    /// arrived before the window closed.
    pub fn remember(&mut self, machine: &str, start_ms: i64, features: &[f32]) {
        let key = (machine.to_string(), start_ms);
        if let Some(defect) = self.pending_labels.remove(&key) {
            self.add_labelled(features.to_vec(), defect);
        }
        if self.recent.insert(key.clone(), features.to_vec()).is_none() {
            self.recent_order.push_back(key);
        }
        while self.recent_order.len() > self.max_rows {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    /// Adds a normal window.
    pub fn push(&mut self, row: TrainRow) {
        self.windows_since_train += 1;
        self.rows.push_back(row);
        while self.rows.len() > self.max_rows {
            self.rows.pop_front();
        }
    }

    /// An inspection result: applies to the window of `machine` that contains `ts_ms`.
    pub fn label(&mut self, machine: &str, ts_ms: i64, defect: bool) {
        let start = ts_ms.div_euclid(self.slide_ms) * self.slide_ms;
        let key = (machine.to_string(), start);
        if let Some(f) = self.recent.get(&key) {
            let f = f.clone();
            self.add_labelled(f, defect);
        } else {
            // A defect anywhere in the window makes the window defective.
            match self.pending_labels.entry(key.clone()) {
                std::collections::hash_map::Entry::Occupied(mut o) => *o.get_mut() |= defect,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(defect);
                    self.pending_order.push_back(key);
                }
            }
            while self.pending_order.len() > self.max_rows {
                if let Some(old) = self.pending_order.pop_front() {
                    self.pending_labels.remove(&old);
                }
            }
        }
    }

    fn add_labelled(&mut self, features: Vec<f32>, defect: bool) {
        self.labelled.push_back(LabelledRow { features, defect });
        while self.labelled.len() > self.max_rows {
            self.labelled.pop_front();
        }
    }

    pub fn labelled_len(&self) -> usize {
        self.labelled.len()
    }

    /// A training job from the current contents.
    pub fn job(&self, serving: Option<Arc<Snapshot>>) -> TrainJob {
        TrainJob {
            rows: self.rows.iter().map(|r| r.features.clone()).collect(),
            span_ms: self
                .rows
                .front()
                .zip(self.rows.back())
                .map(|(a, b)| (a.start_ms, b.end_ms)),
            labelled: self.labelled.iter().cloned().collect(),
            serving,
        }
    }
}

/// What a retraining works from.
pub struct TrainJob {
    /// Normal windows' features, oldest first.
    pub rows: Vec<Vec<f32>>,
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
    pub fn spawn(cfg: PipelineConfig, feature_names: Vec<String>) -> anyhow::Result<Self> {
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

/// The one retraining path (stream and `linewatch train`): train on all but the newest slice,
/// gate on that slice against the serving model, write a version, return the snapshot.
pub fn train_and_validate(
    cfg: &PipelineConfig,
    feature_names: &[String],
    job: TrainJob,
) -> anyhow::Result<Outcome> {
    let n = job.rows.len();
    if n < cfg.retrain.min_windows {
        return Ok(Outcome::Rejected(format!(
            "{n} windows, fewer than retrain.min_windows = {}",
            cfg.retrain.min_windows
        )));
    }
    let n_val = ((n as f64) * cfg.retrain.validation_fraction).round() as usize;
    let (train_rows, val_rows) = job.rows.split_at(n - n_val);
    let device = resolve_device(cfg)?;
    let started = Instant::now();
    let flat: Vec<f32> = train_rows.iter().flatten().copied().collect();
    let val_flat: Vec<f32> = val_rows.iter().flatten().copied().collect();
    let candidate = train_score_model_on(cfg, &flat, feature_names, &device)?;
    let cand_loss = candidate.ism_loss(&val_flat)?;
    let threshold = candidate.threshold();
    if !cand_loss.is_finite() || !threshold.is_finite() {
        return Ok(Outcome::Rejected(format!(
            "non-finite validation loss ({cand_loss}) or threshold ({threshold})"
        )));
    }
    let serving_loss = match &job.serving {
        Some(serving) => Some(serving.score.ism_loss(&val_flat)?),
        None => None,
    };
    if let Some(serving_loss) = serving_loss
        && serving_loss.is_finite()
        && cand_loss > serving_loss + cfg.retrain.max_regression * serving_loss.abs()
    {
        return Ok(Outcome::Rejected(format!(
            "validation loss {cand_loss:.4} worse than the serving model's {serving_loss:.4} by more than {:.0} %",
            cfg.retrain.max_regression * 100.0
        )));
    }
    // The isotonic model, once there are enough labels, on the candidate's anomaly scores.
    let covariates: Vec<usize> = cfg
        .isotonic
        .covariates
        .iter()
        .filter_map(|c| feature_names.iter().position(|f| f == &c.feature))
        .collect();
    let positives = job.labelled.iter().filter(|l| l.defect).count();
    let iso = if cfg.isotonic.enabled
        && job.labelled.len() >= cfg.isotonic.min_labels
        && positives >= cfg.isotonic.min_positives
    {
        let feats: Vec<f32> = job
            .labelled
            .iter()
            .flat_map(|l| l.features.iter().copied())
            .collect();
        let scores = candidate.anomaly_scores(&feats)?;
        let inputs: Vec<f32> = job
            .labelled
            .iter()
            .zip(&scores)
            .flat_map(|(l, a)| iso_input(*a, &l.features, &covariates))
            .collect();
        let targets: Vec<f64> = job
            .labelled
            .iter()
            .map(|l| if l.defect { 1.0 } else { 0.0 })
            .collect();
        let mut monotone = vec![linewatch_models::Monotone::Increasing];
        let mut names = vec!["anomaly_score".to_string()];
        for c in cfg
            .isotonic
            .covariates
            .iter()
            .filter(|c| feature_names.contains(&c.feature))
        {
            names.push(c.feature.clone());
            monotone.push(match c.monotone {
                Monotone::Increasing => linewatch_models::Monotone::Increasing,
                Monotone::Decreasing => linewatch_models::Monotone::Decreasing,
                Monotone::Free => linewatch_models::Monotone::Free,
            });
        }
        let defaults = IsotonicConfig::default();
        let icfg = IsotonicConfig {
            hidden: cfg.isotonic.hidden.clone(),
            lambda: cfg.isotonic.lambda,
            monotone,
            train: TrainConfig {
                seed: cfg.model.seed,
                ..defaults.train.clone()
            },
            ..defaults
        };
        match IsotonicModel::train(&inputs, &targets, &names, &icfg, &device) {
            Ok((m, _)) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "isotonic model not trained; serving without defect probability");
                None
            }
        }
    } else {
        None
    };
    let root = cfg.models_root();
    let version = next_version(&root)?;
    let ts = |ms: i64| chrono::DateTime::from_timestamp_millis(ms);
    let meta = TrainingInfo {
        rows: Some(train_rows.len() as u64),
        start: job.span_ms.and_then(|(a, _)| ts(a)),
        end: job.span_ms.and_then(|(_, b)| ts(b)),
        metrics: Some(serde_json::json!({
            "validation_loss": cand_loss,
            "validation_rows": val_rows.len(),
            "serving_validation_loss": serving_loss,
            "labelled_rows": job.labelled.len(),
        })),
    };
    save_snapshot(
        &root,
        &version,
        &candidate,
        iso.as_ref(),
        &covariates,
        &meta,
    )?;
    tracing::info!(
        version,
        rows = train_rows.len(),
        validation_loss = cand_loss,
        threshold,
        isotonic = iso.is_some(),
        seconds = started.elapsed().as_secs_f64(),
        "model version written"
    );
    Ok(Outcome::Accepted(Arc::new(Snapshot {
        version,
        score: candidate,
        iso,
        iso_covariates: covariates,
    })))
}

/// The device from `model.device`.
pub fn resolve_device(cfg: &PipelineConfig) -> anyhow::Result<candle_core::Device> {
    let spec = cfg.model.device.parse::<linewatch_models::DeviceSpec>()?;
    Ok(spec.resolve()?)
}

/// The score model's configuration from the pipeline's `[model]` section; `overlap` is the
/// number of consecutive windows of a machine that share readings (window size / hop).
pub fn score_config(cfg: &PipelineConfig, overlap: f64) -> ScoreConfig {
    let m = &cfg.model;
    let defaults = ScoreConfig::default();
    ScoreConfig {
        shrinkage: m.shrinkage,
        residual: m.residual,
        calibration_folds: m.calibration_folds,
        overlap: overlap.max(1.0),
        hidden: m.hidden.clone(),
        p: m.power,
        trace: TraceEstimator::Auto {
            max_exact_dim: m.max_exact_dim,
            projections: m.projections,
        },
        quadrature_nodes: m.quadrature_nodes,
        threshold_quantile: m.threshold_quantile,
        train: TrainConfig {
            max_epochs: m.epochs,
            batch_size: m.batch_size,
            lr: m.learning_rate,
            weight_decay: m.weight_decay,
            held_out_fraction: m.holdout_fraction,
            patience: m.patience,
            seed: m.seed,
            ..defaults.train.clone()
        },
        ..defaults
    }
}

/// Trains a score model on row-major rows with the pipeline's settings.
pub fn train_score_model_on(
    cfg: &PipelineConfig,
    rows: &[f32],
    feature_names: &[String],
    device: &candle_core::Device,
) -> anyhow::Result<ScoreModel> {
    let hop = cfg.window.slide.unwrap_or(cfg.window.size);
    let overlap = cfg.window.size.as_millis() as f64 / hop.as_millis().max(1) as f64;
    train_score_model_overlap(cfg, rows, feature_names, device, overlap)
}

/// [`train_score_model_on`] with an explicit window overlap (offline paths whose windows are
/// not the pipeline's).
pub fn train_score_model_overlap(
    cfg: &PipelineConfig,
    rows: &[f32],
    feature_names: &[String],
    device: &candle_core::Device,
    overlap: f64,
) -> anyhow::Result<ScoreModel> {
    let (model, report) =
        ScoreModel::train(rows, feature_names, &score_config(cfg, overlap), device)?;
    let s = model.summary();
    tracing::info!(
        residual = s.residual,
        shrinkage = s.shrinkage,
        calibration_rows = s.calibration_rows,
        effective_rows = s.effective_rows,
        threshold = model.threshold(),
        rows = report.train_rows,
        held_out = report.held_out_rows,
        epochs = report.epochs_run,
        held_out_loss = report.best_held_out_loss,
        seconds = report.seconds,
        device = %report.device,
        "score model trained"
    );
    Ok(model)
}

/// Same, on the configured device. `overlap` is the number of consecutive rows that share
/// readings (window size / hop; 1 for tumbling windows).
pub fn train_score_model(
    cfg: &PipelineConfig,
    rows: &[f32],
    feature_names: &[String],
    overlap: f64,
) -> anyhow::Result<ScoreModel> {
    let device = resolve_device(cfg)?;
    train_score_model_overlap(cfg, rows, feature_names, &device, overlap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(machine: &str, i: i64) -> TrainRow {
        TrainRow {
            machine: machine.into(),
            start_ms: i * 10,
            end_ms: (i + 1) * 10,
            features: vec![i as f32],
            label: None,
        }
    }

    /// Feeds `pattern` (x = abnormal, . = normal) for one machine; the indices released.
    fn released(guard: usize, pattern: &str) -> Vec<i64> {
        let mut g = GuardBand::new(guard);
        let mut out = Vec::new();
        for (i, c) in pattern.chars().enumerate() {
            for r in g.observe(row("m", i as i64), c == 'x') {
                out.push(r.start_ms / 10);
            }
        }
        out
    }

    #[test]
    fn guard_band_keeps_windows_near_abnormal_ones_out() {
        // No band: every normal window, at once.
        assert_eq!(released(0, "..x..x."), vec![0, 1, 3, 4, 6]);
        // Band of 2: windows 2..=4 before and 2 after each x are out, and the last 2 windows
        // wait for successors that never came.
        //          index: 0123456789012345
        assert_eq!(released(2, "......x.....x..."), vec![0, 1, 2, 3, 9]);
        // An intermittent fault (x, normal, normal, x) taints the windows in between.
        assert_eq!(released(1, "...x..x...."), vec![0, 1, 8, 9]);
        // Machines are independent.
        let mut g = GuardBand::new(1);
        assert!(g.observe(row("a", 0), false).is_empty());
        assert!(g.observe(row("b", 0), true).is_empty());
        let out = g.observe(row("a", 1), false);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].machine.as_str(), out[0].start_ms), ("a", 0));
        assert!(g.observe(row("b", 1), false).is_empty());
    }

    #[test]
    fn labels_reach_their_window_whether_they_arrive_before_or_after_it_closes() {
        let mut b = TrainBuffer::new(100, 10_000);
        // Label first (window 20_000..30_000 still open), then the window is scored.
        b.label("m-1", 25_000, true);
        assert_eq!(b.labelled_len(), 0);
        b.remember("m-1", 20_000, &[1.0, 2.0]);
        assert_eq!(b.labelled_len(), 1);
        // Window first, label later.
        b.remember("m-2", 0, &[3.0, 4.0]);
        b.label("m-2", 9_999, false);
        assert_eq!(b.labelled_len(), 2);
        let job = b.job(None);
        assert_eq!(job.labelled[0].features, vec![1.0, 2.0]);
        assert!(job.labelled[0].defect);
        assert_eq!(job.labelled[1].features, vec![3.0, 4.0]);
        assert!(!job.labelled[1].defect);
        // A label for another machine's window does not attach.
        b.label("m-3", 0, true);
        assert_eq!(b.labelled_len(), 2);
    }

    #[test]
    fn a_defect_anywhere_in_the_window_marks_it_and_memory_stays_bounded() {
        let mut b = TrainBuffer::new(3, 10_000);
        b.label("m", 1_000, false);
        b.label("m", 2_000, true);
        b.label("m", 3_000, false);
        b.remember("m", 0, &[0.0]);
        assert!(b.job(None).labelled[0].defect);
        for i in 0..10 {
            b.push(TrainRow {
                machine: "m".into(),
                start_ms: i * 10_000,
                end_ms: (i + 1) * 10_000,
                features: vec![i as f32],
                label: None,
            });
            b.remember("m", i * 10_000, &[i as f32]);
            b.label("x", i * 10_000, true);
        }
        assert_eq!(b.len(), 3, "oldest normal windows dropped first");
        assert_eq!(b.job(None).rows[0], vec![7.0]);
        assert!(b.pending_labels.len() <= 3 && b.recent.len() <= 3);
    }
}
