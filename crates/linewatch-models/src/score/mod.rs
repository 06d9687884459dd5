//! The score model: an estimate of `s(x) = grad_x log p(x)` of normal windows, with per-row
//! anomaly scores, calibrated p-values and an exact per-feature split of the log-density drop.
//!
//! # The model
//! All computations happen in standardised space `z = (x - mean) / std` (see
//! [`Standardizer`]). The score has two parts (see `docs/architecture.md`, "The method"):
//!
//! * a **Gaussian part** with a shrinkage covariance ([`Whitener`], the intensity chosen by
//!   out-of-fold power against single-feature steps, see [`Shrinkage`]): in
//!   whitened coordinates `u = W (z - m)` its score is `-u`;
//! * a **RePU residual** `r(u)` trained by implicit score matching (Hyvarinen 2005) on the
//!   whitened rows, so that the full score is `s_u(u) = -u + r(u)` and
//!   `s_z(z) = W^T s_u(W (z - m))`. The residual is kept only when it lowers the held-out
//!   score-matching loss of a later contiguous block by more than two standard errors, where
//!   the standard error counts `rows / overlap` effective observations (overlapping windows
//!   share readings). A short history therefore gets the Gaussian model; a long one with
//!   non-Gaussian structure (several operating modes) gets the residual.
//!
//! # Per-row outputs
//! * `anomaly_score = log p(x0) - log p(x)`: the log-density drop from the centre `x0` (nats),
//!   `0.5 |u|^2 - int_0^1 r(t u) . u dt` (Gauss-Legendre). For the Gaussian part alone it is
//!   half of Hotelling's T² with the shrinkage covariance. The Hyvarinen score
//!   `0.5 |s|^2 + tr(ds/dz)` weighs each direction by its squared precision, so the
//!   least-variance directions, the worst estimated from a short history, would dominate it;
//!   it stays the training objective ([`ScoreModel::ism_loss`]), not the alarm statistic.
//! * `p_value`: split-conformal p-value of the anomaly score against the calibration scores
//!   ([`ScoreModel::p_values`]).
//! * contributions: `log_density_rel = -anomaly_score` split across the features in
//!   proportion to each feature's conditional evidence
//!   `e_j = s_j^2 / (2 max(-ds_j/dz_j, 1/4))` (standardised units): the log-density gained by
//!   moving feature `j` alone to its most likely value given all the others (exact for a
//!   Gaussian, where `-ds_j/dz_j` is the conditional precision), the likelihood-ratio test for
//!   "sensor `j` alone is off". The contributions sum to the total exactly (in f64).
//!
//! # Calibration and threshold
//! Thresholds come from windows the model did not learn from, taken as contiguous time blocks
//! (never interleaved rows, which are near copies of training windows when windows overlap):
//! for the Gaussian model, out-of-fold scores of `calibration_folds` contiguous blocks, each
//! scored by a model fitted on the other blocks less `overlap` rows at each border (cheap to
//! refit); with the residual, the scores of the newest held-out block, which follows the rows
//! the model was fitted on (refitting a network per fold would multiply the training time).
//! The threshold is the `threshold_quantile` of those scores, and the p-values are ranks
//! among them.

mod eval;
mod fit;
mod shrinkage;
#[cfg(test)]
mod tests;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::gaussian::Whitener;
use crate::mlp::{Init, Mlp, MlpConfig};
use crate::quadrature::GaussLegendre;
use crate::standardize::Standardizer;
use crate::train::TrainConfig;
use fit::thin_sorted;
pub use shrinkage::{SHRINKAGE_GRID, Shrinkage};

/// How the training objective computes `tr(dr/du)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TraceEstimator {
    /// Exact trace with `d` tangents (cost grows with `d`).
    Exact,
    /// Sliced score matching, variance-reduced form `0.5 |s|^2 + mean_k v_k^T (ds/du) v_k` with
    /// `k` Rademacher directions per row (unbiased: `E[v v^T] = I`).
    Sliced {
        /// Directions per row.
        projections: usize,
    },
    /// Exact when `d <= max_exact_dim`, else sliced with `projections` directions.
    Auto {
        /// Largest dimension trained with the exact trace.
        max_exact_dim: usize,
        /// Directions per row when sliced.
        projections: usize,
    },
}

impl Default for TraceEstimator {
    fn default() -> Self {
        Self::Auto {
            max_exact_dim: 32,
            projections: 4,
        }
    }
}

impl TraceEstimator {
    /// `None` = exact, `Some(k)` = sliced with `k` directions, for dimension `d`.
    pub fn resolve(&self, d: usize) -> Option<usize> {
        match *self {
            Self::Exact => None,
            Self::Sliced { projections } => Some(projections),
            Self::Auto {
                max_exact_dim,
                projections,
            } => (d > max_exact_dim).then_some(projections),
        }
    }
}

/// Whether the score model has a RePU residual beside its Gaussian part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResidualMode {
    /// Gaussian part only.
    Off,
    /// Trained when the history holds at least one effective observation (`rows / overlap`)
    /// per network parameter, and kept only when it lowers the held-out ISM loss by more than
    /// two standard errors (counted on effective observations).
    #[default]
    Auto,
    /// Trained and kept (for lines known to have several operating modes, and for tests).
    Always,
}

/// Configuration of a score model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreConfig {
    /// Hidden widths of the RePU residual; `None` = two layers of width `clamp(2 d, 16, 64)`.
    /// ISM overfits with too many parameters per row, so the width follows the dimension.
    pub hidden: Option<Vec<usize>>,
    /// RePU power (2 or 3).
    pub p: u32,
    /// Weight initialisation.
    pub init: Init,
    /// Trace in the training objective.
    pub trace: TraceEstimator,
    /// Gauss-Legendre nodes for the residual's share of the log-density drop.
    pub quadrature_nodes: usize,
    /// Alert threshold = this quantile of the calibration anomaly scores.
    pub threshold_quantile: f64,
    /// Clamp standardised inputs to `[-clip, clip]`, and whitened inputs of the residual too
    /// (protects the polynomial network from overflow on wild inputs; `None` disables).
    pub clip: Option<f64>,
    /// How the covariance shrinkage of the Gaussian part is set (default: chosen by
    /// out-of-fold power, see [`Shrinkage`]).
    pub shrinkage: Shrinkage,
    /// Whether the RePU residual is trained and kept.
    pub residual: ResidualMode,
    /// Consecutive training rows that share readings (window size / hop; 1 for tumbling
    /// windows): the gap left between calibration blocks and the divisor of the effective
    /// sample size.
    pub overlap: f64,
    /// Contiguous blocks for the out-of-fold calibration of the Gaussian model (>= 2).
    pub calibration_folds: usize,
    /// Optimisation of the residual; `held_out_fraction` is the share of the newest rows held
    /// out (early stopping, model selection and, with the residual, calibration).
    pub train: TrainConfig,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            hidden: None,
            p: 2,
            init: Init::default(),
            trace: TraceEstimator::default(),
            quadrature_nodes: 16,
            threshold_quantile: 0.99,
            clip: Some(20.0),
            shrinkage: Shrinkage::Auto,
            residual: ResidualMode::Auto,
            overlap: 1.0,
            calibration_folds: 10,
            train: TrainConfig {
                weight_decay: 0.1,
                ..TrainConfig::default()
            },
        }
    }
}

/// The allowed `threshold_quantile`s, the one rule for every caller (the runtime's
/// `model.threshold_quantile` included): below 0.5 the threshold would sit inside the bulk of
/// normal windows and alert on most of them; 1 would never alert.
pub const THRESHOLD_QUANTILES: std::ops::Range<f64> = 0.5..1.0;

impl ScoreConfig {
    /// Hidden widths for `d` features.
    pub fn hidden_for(&self, d: usize) -> Vec<usize> {
        match &self.hidden {
            Some(h) => h.clone(),
            None => vec![(2 * d).clamp(16, 64); 2],
        }
    }

    /// The residual network's shape for `d` features.
    pub fn mlp(&self, d: usize) -> MlpConfig {
        MlpConfig {
            input_dim: d,
            hidden: self.hidden_for(d),
            output_dim: d,
            p: self.p,
            init: self.init,
        }
    }

    /// Checks ranges (the network shape is checked with the dimension).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ModelError::InvalidConfig(m.to_string()));
        self.train.validate()?;
        GaussLegendre::new(self.quadrature_nodes)?;
        if !THRESHOLD_QUANTILES.contains(&self.threshold_quantile) {
            return bad("threshold_quantile must be in [0.5, 1)");
        }
        if let Some(c) = self.clip
            && !(c.is_finite() && c > 0.0)
        {
            return bad("clip must be finite and > 0");
        }
        self.shrinkage
            .validate()
            .map_err(ModelError::InvalidConfig)?;
        if !(self.overlap.is_finite() && self.overlap >= 1.0) {
            return bad("overlap must be finite and >= 1");
        }
        if self.calibration_folds < 2 {
            return bad("calibration_folds must be >= 2");
        }
        if let Some(0) = self.trace.resolve(usize::MAX) {
            return bad("sliced projections must be >= 1");
        }
        Ok(())
    }
}

/// Per-row results of [`ScoreModel::score`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreBatch {
    /// Features per row.
    pub n_features: usize,
    /// Anomaly score per row: `log p(x0) - log p(x)` in nats (larger = more anomalous).
    pub anomaly_score: Vec<f64>,
    /// Conformal p-value per row (see [`ScoreModel::p_values`]).
    pub p_value: Vec<f64>,
    /// `log p(x) - log p(x0)` per row (`-anomaly_score`).
    pub log_density_rel: Vec<f64>,
    /// Row-major `[rows, features]` contributions, each row summing to its `log_density_rel`.
    pub contributions: Vec<f64>,
    /// Per row, how many inputs were missing (non-finite) and imputed with the training mean.
    pub imputed: Vec<u32>,
}

impl ScoreBatch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.anomaly_score.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.anomaly_score.is_empty()
    }

    /// Contributions of row `i` (empty slice when not computed or out of range).
    pub fn contributions_row(&self, i: usize) -> &[f64] {
        let d = self.n_features;
        self.contributions.get(i * d..(i + 1) * d).unwrap_or(&[])
    }

    /// The `k` features of row `i` with the most negative contributions (largest share of the
    /// log-density drop), as `(feature index, contribution)`, most negative first. Only
    /// negative contributions are listed.
    pub fn top_features(&self, i: usize, k: usize) -> Vec<(usize, f64)> {
        let mut v: Vec<(usize, f64)> = self
            .contributions_row(i)
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, c)| *c < 0.0)
            .collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1));
        v.truncate(k);
        v
    }
}

/// Summary of the training run stored with the model (in `model.json`; non-finite numbers
/// as strings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSummary {
    /// Held-out ISM loss (whitened space) of the kept model.
    #[serde(with = "crate::checkpoint::nonfinite")]
    pub held_out_loss: f64,
    /// Rows the kept model was fitted on.
    pub train_rows: usize,
    /// Rows of the newest contiguous block held out for model selection.
    pub held_out_rows: usize,
    /// Median calibration anomaly score.
    #[serde(with = "crate::checkpoint::nonfinite")]
    pub held_out_median_score: f64,
    /// Device the model was trained on.
    pub device: String,
    /// Whether the RePU residual was kept.
    pub residual: bool,
    /// Covariance shrinkage intensity of the Gaussian part.
    pub shrinkage: f64,
    /// Calibration windows behind the threshold and the p-values.
    pub calibration_rows: usize,
    /// Training rows divided by the overlap: roughly independent observations.
    pub effective_rows: f64,
}

/// A trained score model. Cheap to clone, `Send + Sync`; scoring takes `&self`.
#[derive(Clone, Debug)]
pub struct ScoreModel {
    pub(crate) config: ScoreConfig,
    pub(crate) feature_names: Vec<String>,
    pub(crate) standardizer: Standardizer,
    pub(crate) gauss: Whitener,
    pub(crate) net: Option<Mlp>,
    /// The residual is evaluated at whitened inputs clamped to `[-box, box]`, the smallest
    /// cube holding its training rows: a RePU network extrapolates polynomially, so outside
    /// the data the residual stays constant along clamped coordinates and the Gaussian part,
    /// which grows quadratically, decides how unlikely a far-out window is.
    pub(crate) residual_box: f64,
    pub(crate) threshold: f64,
    pub(crate) summary: ScoreSummary,
    /// Anomaly scores of the calibration windows, sorted ascending (finite values only).
    pub(crate) calibration: Vec<f64>,
    quad_t: Vec<f64>,
    quad_w: Vec<f64>,
}

/// Most calibration scores kept with a model (evenly spaced order statistics beyond it).
pub const MAX_CALIBRATION: usize = 10_000;

impl ScoreModel {
    /// Builds a model from parts (used by checkpoint loading and tests).
    pub(crate) fn assemble(
        config: ScoreConfig,
        feature_names: Vec<String>,
        standardizer: Standardizer,
        gauss: Whitener,
        net: Option<Mlp>,
        threshold: f64,
        summary: ScoreSummary,
    ) -> Result<Self> {
        let d = feature_names.len();
        let net_ok = net
            .as_ref()
            .is_none_or(|n| n.config().input_dim == d && n.config().output_dim == d);
        if standardizer.dim() != d || gauss.dim() != d || !net_ok {
            return Err(ModelError::InvalidConfig(format!(
                "score model parts disagree: {} names, {} standardised features, {} whitened, residual shape ok: {net_ok}",
                d,
                standardizer.dim(),
                gauss.dim(),
            )));
        }
        let (quad_t, quad_w) = GaussLegendre::new(config.quadrature_nodes)?.unit_interval();
        let residual_box = config.clip.unwrap_or(f64::INFINITY);
        Ok(Self {
            config,
            feature_names,
            standardizer,
            gauss,
            net,
            residual_box,
            threshold,
            summary,
            calibration: Vec::new(),
            quad_t,
            quad_w,
        })
    }

    /// A model from given parts: standardisation (identity when `None`), Gaussian part and an
    /// optional residual network on whitened inputs (e.g. hand-set ones for tests). The
    /// threshold is +inf and there are no calibration scores until set.
    pub fn from_parts(
        feature_names: Vec<String>,
        standardizer: Option<Standardizer>,
        gauss: Whitener,
        residual: Option<Mlp>,
    ) -> Result<Self> {
        let d = feature_names.len();
        let mut cfg = ScoreConfig::default();
        if let Some(net) = &residual {
            cfg.hidden = Some(net.config().hidden.clone());
            cfg.p = net.config().p;
            cfg.init = net.config().init;
        }
        let device = residual.as_ref().map_or_else(
            || "cpu".to_string(),
            |n| crate::device::device_name(n.device()),
        );
        let summary = ScoreSummary {
            held_out_loss: f64::NAN,
            train_rows: 0,
            held_out_rows: 0,
            held_out_median_score: f64::NAN,
            device,
            residual: residual.is_some(),
            shrinkage: gauss.shrinkage,
            calibration_rows: 0,
            effective_rows: 0.0,
        };
        Self::assemble(
            cfg,
            feature_names,
            standardizer.unwrap_or_else(|| Standardizer::identity(d)),
            gauss,
            residual,
            f64::INFINITY,
            summary,
        )
    }

    /// Sets the calibration scores (any order; non-finite ones dropped) behind the p-values.
    pub fn set_calibration(&mut self, scores: &[f64]) {
        let mut cal: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
        cal.sort_by(f64::total_cmp);
        self.summary.calibration_rows = cal.len();
        self.calibration = thin_sorted(cal, MAX_CALIBRATION);
    }

    /// Conformal p-value of each anomaly score against the calibration scores:
    /// `(1 + #{c >= s}) / (n + 1)` with `n` calibration windows (Vovk, Gammerman & Shafer
    /// 2005, split conformal; the `+1` is the finite-sample correction that makes
    /// `P(p <= a) <= a` for a new window exchangeable with the calibration ones). A NaN score
    /// gets a NaN p-value; without calibration scores every p-value is 1.
    pub fn p_values(&self, scores: &[f64]) -> Vec<f64> {
        let n = self.calibration.len();
        scores
            .iter()
            .map(|&s| {
                if s.is_nan() {
                    return f64::NAN;
                }
                let below = self.calibration.partition_point(|&c| c < s);
                (1 + n - below) as f64 / (n + 1) as f64
            })
            .collect()
    }

    /// The calibration scores (sorted ascending) that p-values are computed against.
    pub fn calibration_scores(&self) -> &[f64] {
        &self.calibration
    }

    /// Feature names, in column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The alert threshold on the anomaly score.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Sets the alert threshold.
    pub fn set_threshold(&mut self, t: f64) {
        self.threshold = t;
    }

    /// Configuration.
    pub fn config(&self) -> &ScoreConfig {
        &self.config
    }

    /// Standardisation fitted on the training rows.
    pub fn standardizer(&self) -> &Standardizer {
        &self.standardizer
    }

    /// The Gaussian part (standardised space).
    pub fn gaussian(&self) -> &Whitener {
        &self.gauss
    }

    /// Training summary.
    pub fn summary(&self) -> &ScoreSummary {
        &self.summary
    }

    /// Half-width of the cube of whitened inputs the residual is evaluated in.
    pub fn residual_box(&self) -> f64 {
        self.residual_box
    }

    /// The RePU residual on whitened inputs, when it was kept.
    pub fn residual(&self) -> Option<&Mlp> {
        self.net.as_ref()
    }

    /// The same model with its weights on another device.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let mut m = self.clone();
        m.net = match &self.net {
            Some(n) => Some(n.to_device(device)?),
            None => None,
        };
        Ok(m)
    }
}
