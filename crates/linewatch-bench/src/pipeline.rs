//! `linewatch bench pipeline`: the whole path of one replica without Kafka, on one thread:
//! contract JSON messages in memory -> decode -> event-time windows -> scoring by a trained
//! model -> alerter -> Parquet files of the scores and alerts tables. It prints readings per
//! second for the whole path and the time of each stage; the broker-bound figure of the same
//! path through Kafka is in the README beside it.
//!
//! The messages come from the line simulator (`machines` machines of `channels` channels, one
//! reading a second each, 10 s tumbling windows); the model is trained first, untimed, on the
//! windows of the first `train_readings` messages (mean, std, slope and last of each channel:
//! 32 model inputs with 8 channels). 100,000 readings (10,000 windows) give the Gaussian model;
//! from about 240,000 (24,000 windows, one effective observation per parameter) the RePU
//! residual is trained and kept, and scoring costs more (the README has both).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use linewatch_runtime::alerter::Alerter;
use linewatch_runtime::config::PipelineConfig;
use linewatch_runtime::model_store::Snapshot;
use linewatch_runtime::output::{ScoredRows, alerts_batch, open_table};
use linewatch_runtime::scoring::{ModelInputs, score_windows, scored_window};
use linewatch_sim::{SimEvent, Simulator};
use linewatch_window::{ChannelSet, ClosedWindow, FeatureSchema, Windower};
use serde::Serialize;

/// Windows gathered before they are scored together (the stream scores what one poll
/// closed).
const SCORE_BATCH: usize = 256;
/// Scored rows per Parquet file.
const FILE_ROWS: usize = 50_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Readings timed (rounded up to whole seconds of the line).
    pub readings: usize,
    /// Readings the model is trained on first, untimed.
    pub train_readings: usize,
    /// Simulated machines.
    pub machines: usize,
    /// Channels per machine.
    pub channels: usize,
    /// Folder for the Parquet tables (emptied first).
    pub out: PathBuf,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            readings: 1_000_000,
            train_readings: 100_000,
            machines: 1_000,
            channels: 8,
            out: PathBuf::from("./linewatch-bench-pipeline"),
        }
    }
}

/// Seconds spent in each stage of the timed pass.
#[derive(Debug, Default, Serialize)]
pub struct StageSeconds {
    /// Decoding and windowing (closing windows included).
    pub decode_window: f64,
    /// Scoring closed windows (features, model, p-values, top features).
    pub score: f64,
    /// The alerter's hysteresis.
    pub alert: f64,
    /// Arrow batches and Parquet files (zstd, fsync, rename).
    pub parquet: f64,
}

/// `linewatch bench pipeline`'s JSON.
#[derive(Debug, Serialize)]
pub struct PipelineReport {
    pub machines: usize,
    pub channels: usize,
    /// Model inputs per window.
    pub model_inputs: usize,
    /// Readings through the timed pass.
    pub readings: usize,
    /// Mean message size, bytes.
    pub message_bytes: f64,
    pub windows: usize,
    pub alerts: usize,
    pub parquet_files: usize,
    /// Windows the model was trained on, and the training time (not in the timed pass).
    pub train_windows: usize,
    pub train_seconds: f64,
    /// Whether the model kept its RePU residual (else the Gaussian part alone scores).
    pub model_residual: bool,
    pub seconds: f64,
    pub stages: StageSeconds,
    /// The figure: readings through the whole path per second, on one thread.
    pub readings_per_second: f64,
}

/// Runs the benchmark.
///
/// # Errors
/// Settings that do not make a simulator, a model that does not train, an output folder that
/// cannot be written.
pub fn bench_pipeline(o: &PipelineOptions) -> anyhow::Result<PipelineReport> {
    if o.out.exists() {
        std::fs::remove_dir_all(&o.out).with_context(|| format!("emptying {}", o.out.display()))?;
    }
    let text = format!(
        "[pipeline]\nname = \"bench\"\n\
         [window]\nsize = \"10s\"\nallowed_lateness = \"2s\"\nchannels = [\"placeholder\"]\n\
         [model]\nstats = [\"mean\", \"std\", \"slope\", \"last\"]\ndevice = \"cpu\"\n\
         [sink]\nout = {:?}\n\
         [simulate]\nmachines = {}\nchannel_count = {}\n",
        o.out.display().to_string(),
        o.machines,
        o.channels,
    );
    let mut cfg = PipelineConfig::from_toml_with_env(&text, "bench", std::iter::empty())?;
    let mut sim = Simulator::new(cfg.simulate.clone()).context("simulator settings")?;
    cfg.window.channels = sim
        .config()
        .effective_channels()
        .into_iter()
        .map(|c| c.name)
        .collect();
    let channels = Arc::new(ChannelSet::new(cfg.window.channels.iter())?);
    let schema = FeatureSchema::new(channels.clone());
    let inputs = ModelInputs::new(&schema, &cfg.model.stats);
    let window_cfg = cfg.window_config();
    let limits = cfg.decode.limits();

    // The messages, in memory (making them is not timed).
    let train_n = o.train_readings;
    let mut messages: Vec<Vec<u8>> = Vec::with_capacity(train_n + o.readings);
    let mut until = sim.config().start_ms;
    while messages.len() < train_n + o.readings {
        until += 1_000;
        for e in sim.next_events(until) {
            if let SimEvent::Reading(r) = e {
                messages.push(r.to_json().into_bytes());
            }
        }
    }
    let (train_msgs, timed) = messages.split_at(train_n);
    let message_bytes = timed.iter().map(Vec::len).sum::<usize>() as f64 / timed.len() as f64;

    // The model, untimed.
    let started = Instant::now();
    let mut w = Windower::new(window_cfg.clone(), channels.clone())?;
    for (seq, m) in train_msgs.iter().enumerate() {
        let r = linewatch_window::decode_reading_ref(m, &limits)?;
        w.push_ref(&r, seq as u64)?;
    }
    let train_windows: Vec<ClosedWindow> = w.drain_closed();
    let rows: Vec<f64> = train_windows.iter().flat_map(|w| inputs.of(w)).collect();
    let model =
        linewatch_runtime::trainer::train_score_model(&cfg.model, &rows, inputs.names(), 1.0)?;
    let model_residual = model.summary().residual;
    let snapshot = Snapshot {
        version: "v000001".into(),
        score: model,
        iso: None,
        iso_covariates: Vec::new(),
    };
    let train_seconds = started.elapsed().as_secs_f64();

    // The timed pass.
    let scores = open_table(
        &cfg,
        linewatch_tables::scores::TABLE,
        linewatch_tables::scores::PARTITION_TIME,
    )?;
    let alerts_table = open_table(
        &cfg,
        linewatch_tables::alerts::TABLE,
        linewatch_tables::alerts::PARTITION_TIME,
    )?;
    let mut alerter = Alerter::new("bench", cfg.alert.open_after, cfg.alert.resolve_after);
    let mut w = Windower::new(window_cfg, channels)?;
    let mut pending: Vec<ClosedWindow> = Vec::new();
    let mut rows = ScoredRows::new(&schema);
    let mut alerts = Vec::new();
    let (mut n_windows, mut n_alerts, mut files) = (0usize, 0usize, 0usize);
    let mut st = StageSeconds::default();
    let mut first_seq = 0i64;
    let total = Instant::now();
    let flush = |rows: &mut ScoredRows,
                 alerts: &mut Vec<linewatch_runtime::alerter::Alert>,
                 first: &mut i64,
                 last: i64,
                 st: &mut StageSeconds|
     -> anyhow::Result<usize> {
        let t = Instant::now();
        let mut written = 0;
        if !rows.is_empty() {
            let name = linewatch_sink::FileName::new(0, *first, last)?;
            written += scores.write_file(&[rows.finish()?], &name, &[])?.len();
            if !alerts.is_empty() {
                written += alerts_table
                    .write_file(&[alerts_batch(alerts.iter())?], &name, &[])?
                    .len();
            }
            *rows = ScoredRows::new(&schema);
            alerts.clear();
            *first = last + 1;
        }
        st.parquet += t.elapsed().as_secs_f64();
        Ok(written)
    };
    let mut score = |pending: &mut Vec<ClosedWindow>,
                     rows: &mut ScoredRows,
                     alerts: &mut Vec<linewatch_runtime::alerter::Alert>,
                     st: &mut StageSeconds|
     -> anyhow::Result<(usize, usize)> {
        let t = Instant::now();
        let closed = std::mem::take(pending);
        let scored = score_windows(&inputs, &closed, Some(&snapshot), cfg.alert.top_features)?;
        st.score += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (n, mut opened) = (closed.len(), 0);
        for (win, row) in closed.into_iter().zip(scored.rows) {
            if let Some(a) = alerter.observe(&scored_window(&win, &row)) {
                alerts.push(a);
                opened += 1;
            }
            let open = alerter.is_open(&win.key.machine);
            rows.push(win, row, open);
        }
        st.alert += t.elapsed().as_secs_f64();
        Ok((n, opened))
    };
    let mut t = Instant::now();
    for (seq, m) in timed.iter().enumerate() {
        let r = linewatch_window::decode_reading_ref(m, &limits)?;
        w.push_ref(&r, seq as u64)?;
        if seq % 1_000 == 999 {
            pending.extend(w.drain_closed());
            if pending.len() >= SCORE_BATCH {
                st.decode_window += t.elapsed().as_secs_f64();
                let (a, b) = score(&mut pending, &mut rows, &mut alerts, &mut st)?;
                n_windows += a;
                n_alerts += b;
                if rows.len() >= FILE_ROWS {
                    files += flush(&mut rows, &mut alerts, &mut first_seq, seq as i64, &mut st)?;
                }
                t = Instant::now();
            }
        }
    }
    w.flush_all();
    pending.extend(w.drain_closed());
    st.decode_window += t.elapsed().as_secs_f64();
    let (a, b) = score(&mut pending, &mut rows, &mut alerts, &mut st)?;
    n_windows += a;
    n_alerts += b;
    files += flush(
        &mut rows,
        &mut alerts,
        &mut first_seq,
        timed.len() as i64,
        &mut st,
    )?;
    let seconds = total.elapsed().as_secs_f64();
    Ok(PipelineReport {
        machines: o.machines,
        channels: cfg.window.channels.len(),
        model_inputs: inputs.names().len(),
        readings: timed.len(),
        message_bytes,
        windows: n_windows,
        alerts: n_alerts,
        parquet_files: files,
        train_windows: train_windows.len(),
        train_seconds,
        model_residual,
        seconds,
        stages: st,
        readings_per_second: timed.len() as f64
            / seconds.max(Duration::from_nanos(1).as_secs_f64()),
    })
}
