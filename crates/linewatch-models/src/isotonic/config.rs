//! The settings of a PDIR model: declared shapes, target kind, training configuration, and
//! the input and target scaling stored in checkpoints.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::mlp::{Init, MlpConfig};
use crate::standardize::Standardizer;
use crate::train::TrainConfig;

/// Declared shape of `g` in one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monotone {
    /// Non-decreasing.
    Increasing,
    /// Non-increasing.
    Decreasing,
    /// Unconstrained.
    Free,
}

impl Monotone {
    pub(super) fn sign(self) -> Option<f64> {
        match self {
            Self::Increasing => Some(1.0),
            Self::Decreasing => Some(-1.0),
            Self::Free => None,
        }
    }
}

/// What the labels are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IsoTarget {
    /// Labels in [0, 1] (defect or not); binary cross-entropy; prediction `sigmoid(g)`.
    #[default]
    Binary,
    /// Real-valued target; squared error (on the standardised target); prediction `g`.
    Continuous,
}

/// Configuration of a PDIR model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IsotonicConfig {
    /// Per input column: increasing, decreasing or free (length = number of inputs).
    pub monotone: Vec<Monotone>,
    /// Label type and loss.
    pub target: IsoTarget,
    /// Weight of the monotonicity penalty.
    pub lambda: f64,
    /// The penalty asks for `s_j dg/dz_j >= margin` (standardised units; 0 = plain PDIR).
    pub margin: f64,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// RePU power.
    pub p: u32,
    /// Weight initialisation.
    pub init: Init,
    /// Optimisation.
    pub train: TrainConfig,
}

impl Default for IsotonicConfig {
    fn default() -> Self {
        Self {
            monotone: vec![Monotone::Increasing],
            target: IsoTarget::Binary,
            lambda: 10.0,
            margin: 0.01,
            hidden: vec![32, 32],
            p: 2,
            init: Init::default(),
            train: TrainConfig {
                max_epochs: 300,
                batch_size: 128,
                lr: 3e-3,
                patience: 30,
                ..TrainConfig::default()
            },
        }
    }
}

impl IsotonicConfig {
    /// Checks ranges.
    pub fn validate(&self, d: usize) -> Result<()> {
        self.train.validate()?;
        if self.monotone.len() != d {
            return Err(ModelError::InvalidConfig(format!(
                "{} monotonicity declarations for {d} inputs",
                self.monotone.len()
            )));
        }
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !(ok(self.lambda) && ok(self.margin)) {
            return Err(ModelError::InvalidConfig(
                "lambda and margin must be finite and >= 0".into(),
            ));
        }
        self.mlp(d).validate()
    }

    /// The network shape for `d` inputs.
    pub fn mlp(&self, d: usize) -> MlpConfig {
        MlpConfig {
            input_dim: d,
            hidden: self.hidden.clone(),
            output_dim: 1,
            p: self.p,
            init: self.init,
        }
    }
}

/// Input and target scaling of a PDIR model (stored in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsoScaling {
    /// Input standardisation.
    pub standardizer: Standardizer,
    /// Smallest standardised training value per input.
    pub lo: Vec<f64>,
    /// Largest standardised training value per input.
    pub hi: Vec<f64>,
    /// Target mean (continuous target; 0 for binary).
    pub y_mean: f64,
    /// Target standard deviation (continuous target; 1 for binary).
    pub y_std: f64,
}

impl IsoScaling {
    /// Checks lengths and finiteness.
    pub fn validate(&self, d: usize) -> std::result::Result<(), String> {
        self.standardizer.validate()?;
        if self.standardizer.dim() != d || self.lo.len() != d || self.hi.len() != d {
            return Err(format!("scaling is not for {d} inputs"));
        }
        if self
            .lo
            .iter()
            .zip(&self.hi)
            .any(|(l, h)| !(l.is_finite() && h.is_finite() && l <= h))
        {
            return Err("input range must be finite with lo <= hi".into());
        }
        if !(self.y_mean.is_finite() && self.y_std.is_finite() && self.y_std > 0.0) {
            return Err("target scaling must be finite with y_std > 0".into());
        }
        Ok(())
    }
}
