//! The contents of `model.json`: the kind, the caller's training facts and each model's part.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::gaussian::Whitener;
use crate::isotonic::{IsoScaling, IsotonicConfig};
use crate::mlp::MlpConfig;
use crate::pava::{Direction, Interpolation};
use crate::score::{ScoreConfig, ScoreSummary};
use crate::standardize::Standardizer;

use super::nonfinite;

/// Kind of model in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// [`ScoreModel`](crate::ScoreModel).
    Score,
    /// [`IsotonicModel`](crate::IsotonicModel) (PDIR).
    Isotonic,
    /// [`Pava`](crate::Pava) (1-D fallback).
    Pava,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Score => "score",
            Self::Isotonic => "isotonic",
            Self::Pava => "pava",
        })
    }
}

/// Caller-supplied facts about the training data, stored as given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingInfo {
    /// Rows the model was trained on.
    pub rows: Option<u64>,
    /// Event time of the first training row.
    pub start: Option<DateTime<Utc>>,
    /// Event time of the last training row.
    pub end: Option<DateTime<Utc>>,
    /// Free-form metrics (validation results, ...).
    pub metrics: Option<serde_json::Value>,
}

/// Score-model part of the metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreState {
    /// Model configuration.
    pub config: ScoreConfig,
    /// Standardisation fitted on the training rows.
    pub standardizer: Standardizer,
    /// The Gaussian part (centre and whitening map, standardised space).
    pub gaussian: Whitener,
    /// Calibration anomaly scores, sorted ascending (the p-values' reference).
    pub calibration: Vec<f64>,
    /// Half-width of the cube of whitened inputs the residual is evaluated in.
    #[serde(with = "nonfinite")]
    pub residual_box: f64,
    /// Training summary.
    pub summary: ScoreSummary,
}

/// Isotonic-model part of the metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsoState {
    /// Model configuration.
    pub config: IsotonicConfig,
    /// Input and target scaling.
    pub scaling: IsoScaling,
}

/// PAVA part of the metadata (knots are in the weights file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PavaState {
    /// Direction of the fit.
    pub direction: Direction,
    /// Prediction between knots.
    pub interpolation: Interpolation,
    /// Number of knots.
    pub knots: usize,
}

/// Contents of `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    /// [`FORMAT_VERSION`](super::FORMAT_VERSION) at writing.
    pub format_version: u32,
    /// Model kind.
    pub kind: ModelKind,
    /// Version of this crate at writing.
    pub crate_version: String,
    /// Time of writing.
    pub created_at: DateTime<Utc>,
    /// Device the model was trained on.
    pub device: String,
    /// Input feature names in column order.
    pub feature_names: Vec<String>,
    /// Caller-supplied training facts.
    pub training: TrainingInfo,
    /// Held-out loss of the stored weights.
    #[serde(with = "nonfinite")]
    pub held_out_loss: f64,
    /// Alert threshold (score models; `"inf"` = none).
    #[serde(with = "nonfinite")]
    pub threshold: f64,
    /// Network shape (neural models).
    pub network: Option<MlpConfig>,
    /// Weight dtype (`f32` or `f64`).
    pub dtype: Option<String>,
    /// Score-model state.
    pub score: Option<ScoreState>,
    /// Isotonic-model state.
    pub isotonic: Option<IsoState>,
    /// PAVA state.
    pub pava: Option<PavaState>,
}
