//! `linewatch train`: one retraining job from the Parquet history, on the same path and gate as
//! the in-stream retrainer ([`crate::trainer::train_and_validate`]), for a scheduler.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};

use crate::config::PipelineConfig;
use crate::trainer::{GuardBand, LabelledRow, Outcome, TrainJob, TrainRow};

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

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> anyhow::Result<&'a T> {
    b.column_by_name(name)
        .with_context(|| format!("scores file without column {name}"))?
        .as_any()
        .downcast_ref::<T>()
        .with_context(|| format!("column {name} has an unexpected type"))
}

/// A feature column's values, NaN where null. Float64 is what the pipeline writes; Float32 is
/// what scores tables written before features were f64 hold, read exactly as stored.
fn feature_values(b: &RecordBatch, name: &str) -> anyhow::Result<Vec<f64>> {
    let a: &ArrayRef = b
        .column_by_name(name)
        .with_context(|| format!("scores file without column {name}"))?;
    let any = a.as_any();
    let at = |i: usize, v: f64| if a.is_null(i) { f64::NAN } else { v };
    if let Some(c) = any.downcast_ref::<Float64Array>() {
        Ok((0..c.len()).map(|i| at(i, c.value(i))).collect())
    } else if let Some(c) = any.downcast_ref::<Float32Array>() {
        Ok((0..c.len()).map(|i| at(i, f64::from(c.value(i)))).collect())
    } else {
        anyhow::bail!("column {name} is {}, not Float64 or Float32", a.data_type())
    }
}

/// Normal windows (no open alert, not over their threshold, none such within
/// `retrain.guard_windows` of them) from `<from>/scores`, newest `retrain.max_rows` of them,
/// and labelled windows from `<from>/labels`.
pub fn job_from_parquet(
    cfg: &PipelineConfig,
    from: &Path,
    feature_names: &[String],
) -> anyhow::Result<TrainJob> {
    let scores = from.join("scores");
    if !scores.exists() {
        anyhow::bail!(
            "{} does not exist (expected the scores table under --from)",
            scores.display()
        );
    }
    // (window_start, machine, features, normal)
    let mut rows: Vec<(i64, String, i64, Vec<f64>, bool)> = Vec::new();
    for b in linewatch_sink::read_all(&scores)? {
        let machine = col::<StringArray>(&b, "machine")?;
        let start = col::<TimestampMillisecondArray>(&b, "window_start")?;
        let end = col::<TimestampMillisecondArray>(&b, "window_end")?;
        let alert = col::<BooleanArray>(&b, "alert")?;
        let score = col::<Float64Array>(&b, "anomaly_score")?;
        let threshold = col::<Float64Array>(&b, "threshold")?;
        // Windows closed before their end (idle eviction) hold part of their readings and are
        // not trained on; files written before the column existed are read whole.
        let complete = match b.column_by_name("complete") {
            Some(_) => Some(col::<BooleanArray>(&b, "complete")?),
            None => None,
        };
        let features: Vec<Vec<f64>> = feature_names
            .iter()
            .map(|f| feature_values(&b, f))
            .collect::<anyhow::Result<_>>()
            .context("the scores table's features differ from the pipeline's window.channels")?;
        for i in 0..b.num_rows() {
            if complete.is_some_and(|c| !c.value(i)) {
                continue;
            }
            let over =
                !score.is_null(i) && !threshold.is_null(i) && score.value(i) > threshold.value(i);
            let normal = !alert.value(i) && !over;
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
    let labels = from.join("labels");
    if labels.exists() {
        let index: HashMap<(&str, i64), &Vec<f64>> =
            rows.iter().map(|r| ((r.1.as_str(), r.0), &r.3)).collect();
        for b in linewatch_sink::read_all(&labels)? {
            let machine = col::<StringArray>(&b, "machine")?;
            let ts = col::<TimestampMillisecondArray>(&b, "ts")?;
            let defect = col::<BooleanArray>(&b, "defect")?;
            for i in 0..b.num_rows() {
                let start = linewatch_window::window_start(ts.value(i), slide);
                if let Some(f) = index.get(&(machine.value(i), start)) {
                    labelled.push(LabelledRow {
                        features: (*f).clone(),
                        defect: defect.value(i),
                    });
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
    let keep = normal.len().saturating_sub(cfg.retrain.max_rows);
    let normal = &normal[keep..];
    Ok(TrainJob {
        rows: normal.iter().map(|r| r.features.clone()).collect(),
        span_ms: normal
            .first()
            .zip(normal.last())
            .map(|(a, b)| (a.start_ms, b.end_ms)),
        labelled,
        serving: None,
    })
}

/// One retraining job: history from `from`, versions under `models` (replacing
/// `retrain.models_dir`), gated against the newest valid version there.
pub fn train_from_parquet(
    mut cfg: PipelineConfig,
    from: &Path,
    models: &Path,
) -> anyhow::Result<TrainResult> {
    cfg.retrain.models_dir = models.to_path_buf();
    let channels = Arc::new(linewatch_window::ChannelSet::new(
        cfg.window.channels.iter(),
    )?);
    let inputs = crate::scoring::ModelInputs::new(
        &linewatch_window::FeatureSchema::new(channels),
        &cfg.model.stats,
    );
    let feature_names = inputs.names().to_vec();
    let mut job = job_from_parquet(&cfg, from, &feature_names)?;
    if job.rows.len() < cfg.retrain.min_windows {
        return Ok(TrainResult::NoData(format!(
            "{} normal windows under {}, retrain.min_windows is {}",
            job.rows.len(),
            from.display(),
            cfg.retrain.min_windows
        )));
    }
    job.serving =
        crate::model_store::load_newest(&cfg.models_root(), &feature_names)?.map(Arc::new);
    if let Some(s) = &job.serving {
        tracing::info!(version = %s.version, "gating against the serving version");
    }
    match crate::trainer::train_and_validate(
        &crate::trainer::TrainSettings::of(&cfg),
        &feature_names,
        job,
    )? {
        Outcome::Accepted(s) => Ok(TrainResult::NewVersion(s.version.clone())),
        Outcome::Rejected(why) => Ok(TrainResult::Rejected(why)),
        Outcome::Failed(why) => Err(anyhow::anyhow!(why)),
    }
}
