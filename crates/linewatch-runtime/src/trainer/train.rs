//! The one retraining path and the score model's settings from the pipeline file.

use std::sync::Arc;
use std::time::Instant;

use linewatch_models::checkpoint::TrainingInfo;
use linewatch_models::{
    IsotonicConfig, IsotonicModel, ScoreConfig, ScoreModel, TraceEstimator, TrainConfig,
};

use crate::config::ModelSection;
use crate::model_store::{Snapshot, iso_input, next_version, save_snapshot};

use super::{Outcome, TrainJob, TrainSettings};

/// The one retraining path (stream and `linewatch train`): train on all but the newest slice,
/// gate on that slice against the serving model, write a version, return the snapshot.
pub fn train_and_validate(
    cfg: &TrainSettings,
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
    let device = resolve_device(&cfg.model)?;
    let started = Instant::now();
    let flat: Vec<f64> = train_rows.iter().flatten().copied().collect();
    let val_flat: Vec<f64> = val_rows.iter().flatten().copied().collect();
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
        let feats: Vec<f64> = job
            .labelled
            .iter()
            .flat_map(|l| l.features.iter().copied())
            .collect();
        let scores = candidate.anomaly_scores(&feats)?;
        let inputs: Vec<f64> = job
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
            monotone.push(c.monotone);
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
    let root = &cfg.models_root;
    let version = next_version(root)?;
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
    save_snapshot(root, &version, &candidate, iso.as_ref(), &covariates, &meta)?;
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
pub fn resolve_device(m: &ModelSection) -> anyhow::Result<candle_core::Device> {
    Ok(m.device.resolve()?)
}

/// The score model's configuration from the pipeline's `[model]` section; `overlap` is the
/// number of consecutive windows of a machine that share readings (window size / hop).
pub fn score_config(m: &ModelSection, overlap: f64) -> ScoreConfig {
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

/// Trains a score model on row-major rows with the retraining settings (the stream's windows).
pub fn train_score_model_on(
    cfg: &TrainSettings,
    rows: &[f64],
    feature_names: &[String],
    device: &candle_core::Device,
) -> anyhow::Result<ScoreModel> {
    train_score_model_overlap(&cfg.model, rows, feature_names, device, cfg.overlap)
}

/// [`train_score_model_on`] with an explicit window overlap (offline paths whose windows are
/// not the pipeline's).
pub fn train_score_model_overlap(
    m: &ModelSection,
    rows: &[f64],
    feature_names: &[String],
    device: &candle_core::Device,
    overlap: f64,
) -> anyhow::Result<ScoreModel> {
    let (model, report) =
        ScoreModel::train(rows, feature_names, &score_config(m, overlap), device)?;
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
    m: &ModelSection,
    rows: &[f64],
    feature_names: &[String],
    overlap: f64,
) -> anyhow::Result<ScoreModel> {
    let device = resolve_device(m)?;
    train_score_model_overlap(m, rows, feature_names, &device, overlap)
}
