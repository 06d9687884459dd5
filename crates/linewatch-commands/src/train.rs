//! `linewatch train`: one retraining job from the Parquet history, on the same path and gate as
//! the in-stream retrainer ([`linewatch_runtime::trainer::train_and_validate`]), for a scheduler.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use arrow_array::{
    Array, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use linewatch_tables::{self as tables, labels as L, read, scores as S};

use linewatch_runtime::config::PipelineConfig;
use linewatch_runtime::trainer::{GuardBand, LabelledRow, Outcome, TrainJob, TrainRow};
use linewatch_sink::Location;

/// How a `train` run ended; the process exit code follows it.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainResult {
    /// A new version was written (exit 0).
    NewVersion(String),
    /// The candidate failed the validation gate (exit 2).
    Rejected(String),
    /// Not enough normal windows in the history (exit 3).
    NoData(String),
}

impl TrainResult {
    pub fn exit_code(&self) -> i32 {
        match self {
            TrainResult::NewVersion(_) => 0,
            TrainResult::Rejected(_) => 2,
            TrainResult::NoData(_) => 3,
        }
    }
}

/// What `linewatch train` read from the history and what it left out, by reason (printed as
/// JSON with the outcome, so nothing is dropped silently).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrainCounts {
    /// Rows of the scores table read.
    pub windows_read: usize,
    /// Windows closed before their end (`complete = false`): not trained on.
    pub incomplete: usize,
    /// Windows under an open alert or over their threshold: not trained on.
    pub abnormal: usize,
    /// Normal windows the guard band did not confirm: within `retrain.guard_windows` windows
    /// of an abnormal one, or among the newest `guard_windows` of their machine (no later
    /// windows vouch for them yet). Not trained on.
    pub guard_band: usize,
    /// The oldest normal windows beyond `retrain.max_rows`: not trained on.
    pub beyond_max_rows: usize,
    /// Windows the job trains and validates on.
    pub trained_on: usize,
    /// Rows of the labels table read.
    pub labels_read: usize,
    /// Labels whose machine has no complete window at their time in the scores table.
    pub labels_without_window: usize,
}

fn col<'a, T: Array + 'static>(b: &'a RecordBatch, name: &str) -> anyhow::Result<&'a T> {
    read::column::<T>(b, name).context("reading the history")
}

/// Normal windows (no open alert, not over their threshold, none such within
/// `retrain.guard_windows` of them) from `<from>/scores`, newest `retrain.max_rows` of them,
/// and labelled windows from `<from>/labels`. `from` is a folder or an object-store URL
/// (`s3://bucket/prefix`).
pub fn job_from_parquet(
    cfg: &PipelineConfig,
    from: &Path,
    feature_names: &[String],
) -> anyhow::Result<(TrainJob, TrainCounts)> {
    let mut counts = TrainCounts::default();
    let from = Location::from_path_or_url(from).context("--from")?;
    let scores = from.join(tables::scores::TABLE);
    // A local table's folder exists from the pipeline's first start, so a missing one is a
    // wrong --from. An object store has no folders: a prefix the pipeline has not written
    // to yet reads as a table of no windows (exit 3, not enough data), like an empty folder.
    if scores.as_local().is_some_and(|dir| !dir.exists()) {
        anyhow::bail!("{scores} does not exist (expected the scores table under --from)");
    }
    // (window_start, machine, features, normal)
    let mut rows: Vec<(i64, String, i64, Vec<f64>, bool)> = Vec::new();
    for b in linewatch_sink::read_all(&scores)? {
        let machine = col::<StringArray>(&b, S::MACHINE)?;
        let start = col::<TimestampMillisecondArray>(&b, S::WINDOW_START)?;
        let end = col::<TimestampMillisecondArray>(&b, S::WINDOW_END)?;
        let alert = col::<BooleanArray>(&b, S::ALERT)?;
        let score = col::<Float64Array>(&b, S::ANOMALY_SCORE)?;
        let threshold = col::<Float64Array>(&b, S::THRESHOLD)?;
        let p_value = read::optional::<Float64Array>(&b, S::P_VALUE)?;
        // Windows closed before their end (idle eviction) hold part of their readings and are
        // not trained on; files written before the column existed are read whole.
        let complete = read::optional::<BooleanArray>(&b, S::COMPLETE)?;
        let features: Vec<Vec<f64>> = feature_names
            .iter()
            .map(|f| read::floats(&b, f))
            .collect::<Result<_, _>>()
            .context("the scores table's features differ from the pipeline's window.channels")?;
        counts.windows_read += b.num_rows();
        for i in 0..b.num_rows() {
            if complete.is_some_and(|c| !c.value(i)) {
                counts.incomplete += 1;
                continue;
            }
            // The stream's rule (`alert.p_value` included); null scores are warm-up windows.
            let p = p_value.filter(|p| !p.is_null(i)).map(|p| p.value(i));
            let over = !score.is_null(i)
                && !threshold.is_null(i)
                && linewatch_runtime::alerter::is_over(
                    score.value(i),
                    threshold.value(i),
                    p,
                    cfg.alert.p_value,
                );
            let normal = !alert.value(i) && !over;
            if !normal {
                counts.abnormal += 1;
            }
            let f: Vec<f64> = features.iter().map(|c| c[i]).collect();
            rows.push((
                start.value(i),
                machine.value(i).to_string(),
                end.value(i),
                f,
                normal,
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    let slide = cfg.slide().as_millis() as i64;
    // Labels: an inspection applies to the window of its machine that contains its time.
    let mut labelled = Vec::new();
    let labels = from.join(tables::labels::TABLE);
    if labels.as_local().is_none_or(Path::exists) {
        let index: HashMap<(&str, i64), &Vec<f64>> =
            rows.iter().map(|r| ((r.1.as_str(), r.0), &r.3)).collect();
        for b in linewatch_sink::read_all(&labels)? {
            let machine = col::<StringArray>(&b, S::MACHINE)?;
            let ts = col::<TimestampMillisecondArray>(&b, L::TS)?;
            let defect = col::<BooleanArray>(&b, L::DEFECT)?;
            counts.labels_read += b.num_rows();
            for i in 0..b.num_rows() {
                let start = linewatch_window::window_start(ts.value(i), slide);
                match index.get(&(machine.value(i), start)) {
                    Some(f) => labelled.push(LabelledRow {
                        features: (*f).clone(),
                        defect: defect.value(i),
                    }),
                    None => counts.labels_without_window += 1,
                }
            }
        }
    }
    // The same guard band as the stream: rows are in window order, so per machine too.
    let mut guard = GuardBand::new(cfg.retrain.guard_windows);
    let mut normal = Vec::new();
    for (start_ms, machine, end_ms, features, is_normal) in rows {
        let row = TrainRow {
            machine,
            start_ms,
            end_ms,
            features,
            label: None,
        };
        normal.extend(guard.observe(row, !is_normal));
    }
    let normal_read = counts.windows_read - counts.incomplete - counts.abnormal;
    counts.guard_band = normal_read - normal.len();
    let keep = normal.len().saturating_sub(cfg.retrain.max_rows);
    counts.beyond_max_rows = keep;
    let normal = &normal[keep..];
    counts.trained_on = normal.len();
    let job = TrainJob {
        rows: normal.iter().map(|r| r.features.clone()).collect(),
        span_ms: normal
            .first()
            .zip(normal.last())
            .map(|(a, b)| (a.start_ms, b.end_ms)),
        labelled,
        serving: None,
    };
    Ok((job, counts))
}

/// One retraining job: history from `from`, versions under `models` (replacing
/// `retrain.models_dir`), gated against the newest valid version there. Both are folders or
/// object-store URLs. Returns how it ended
/// and what was read and left out.
pub fn train_from_parquet(
    mut cfg: PipelineConfig,
    from: &Path,
    models: &Path,
) -> anyhow::Result<(TrainResult, TrainCounts)> {
    cfg.retrain.models_dir = models.to_path_buf();
    let channels = Arc::new(linewatch_window::ChannelSet::new(
        cfg.window.channels.iter(),
    )?);
    let inputs = linewatch_runtime::scoring::ModelInputs::new(
        &linewatch_window::FeatureSchema::new(channels),
        &cfg.model.stats,
    );
    let feature_names = inputs.names().to_vec();
    let (mut job, counts) = job_from_parquet(&cfg, from, &feature_names)?;
    if job.rows.len() < cfg.retrain.min_windows {
        let why = format!(
            "{} normal windows under {}, retrain.min_windows is {}",
            job.rows.len(),
            from.display(),
            cfg.retrain.min_windows
        );
        return Ok((TrainResult::NoData(why), counts));
    }
    let models_at = cfg.models_location().context("--models")?;
    job.serving =
        linewatch_runtime::model_store::load_newest(&models_at, &feature_names)?.map(Arc::new);
    if let Some(s) = &job.serving {
        tracing::info!(version = %s.version, "gating against the serving version");
    }
    let result = match linewatch_runtime::trainer::train_and_validate(
        &linewatch_runtime::trainer::TrainSettings::of(&cfg, models_at),
        &feature_names,
        job,
    )? {
        Outcome::Accepted(s) => TrainResult::NewVersion(s.version.clone()),
        Outcome::Rejected(why) => TrainResult::Rejected(why),
        Outcome::Failed(why) => return Err(anyhow::anyhow!(why)),
    };
    Ok((result, counts))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use linewatch_window::{Inspection, Reading, WindowConfig, Windower};

    use super::*;
    use linewatch_runtime::output::{ScoredRows, labels_batch, open_table};
    use linewatch_runtime::scoring::RowScore;
    use linewatch_tables::{labels as L, scores as S};

    /// One machine, 40 tumbling 10 s windows of one reading each: window 20 over its
    /// threshold, the last one closed early (idle eviction), labels at windows 5 and 99.
    #[test]
    fn the_history_read_and_left_out_is_counted_by_reason() {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[pipeline]\nname = \"t\"\n[window]\nsize = \"10s\"\nchannels = [\"x\"]\n\
             [retrain]\nguard_windows = 2\nmin_windows = 20\nmax_rows = 30\n[sink]\nout = {:?}\n",
            dir.path().display().to_string()
        );
        let cfg = PipelineConfig::from_toml_with_env(&toml, "t", std::iter::empty()).unwrap();
        let channels = Arc::new(linewatch_window::ChannelSet::new(["x"]).unwrap());
        let schema = linewatch_window::FeatureSchema::new(channels.clone());
        let mut w = Windower::new(WindowConfig::tumbling(10_000, 0, 600_000), channels).unwrap();
        let t0 = 1_764_000_000_000i64;
        for i in 0..40i64 {
            let r = Reading {
                line: "L".into(),
                machine: "m".into(),
                ts_ms: t0 + i * 10_000,
                values: vec![("x".into(), i as f64)],
            };
            w.push(&r, i as u64).unwrap();
        }
        let mut closed = w.drain_closed();
        w.flush_all();
        closed.extend(w.drain_closed());
        assert_eq!(closed.len(), 40);
        assert!(!closed[39].is_complete());
        let mut rows = ScoredRows::new(&schema);
        for (i, c) in closed.into_iter().enumerate() {
            let score = RowScore {
                anomaly_score: Some(if i == 20 { 9.0 } else { 1.0 }),
                threshold: Some(5.0),
                ..RowScore::default()
            };
            rows.push(c, score, false);
        }
        let scores = open_table(&cfg, S::TABLE, S::PARTITION_TIME).unwrap();
        let name = linewatch_sink::FileName::new(0, 0, 39).unwrap();
        scores
            .write_file(&[rows.finish().unwrap()], &name, &[])
            .unwrap();
        let label = |k: i64| Inspection {
            line: "L".into(),
            machine: "m".into(),
            ts_ms: t0 + k * 10_000 + 500,
            defect: false,
        };
        let labels = open_table(&cfg, L::TABLE, L::PARTITION_TIME).unwrap();
        let batch = labels_batch(&[label(5), label(99)]).unwrap();
        labels.write_file(&[batch], &name, &[]).unwrap();

        let names = vec!["x__mean".to_string()];
        let (job, counts) = job_from_parquet(&cfg, dir.path(), &names).unwrap();
        let want = TrainCounts {
            windows_read: 40,
            incomplete: 1,
            abnormal: 1,
            // 18, 19 and 21, 22 beside the abnormal window; 37, 38 not yet vouched for.
            guard_band: 6,
            beyond_max_rows: 2,
            trained_on: 30,
            labels_read: 2,
            labels_without_window: 1,
        };
        assert_eq!(counts, want);
        assert_eq!(job.rows.len(), 30);
        assert_eq!(job.labelled.len(), 1);
    }
}
