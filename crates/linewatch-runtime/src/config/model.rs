//! The training sections: `[model]` (the score model), `[isotonic]` (the defect-probability
//! model) and `[retrain]`, with their checks.

use std::path::PathBuf;
use std::time::Duration;

pub use linewatch_models::Monotone;
use linewatch_window::Stat;
use serde::{Deserialize, Serialize};

use super::{
    CHANNELS_FROM_DATA, ConfigError, PipelineConfig, at_least_one, fraction, invalid, non_negative,
};

/// `[model]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Hidden layer widths of the score network. Default: two layers of
    /// clamp(2 x features, 16, 64) (wider nets overfit score matching on few features).
    pub hidden: Option<Vec<usize>>,
    /// RePU power p (2 or 3). Default 2.
    pub power: u32,
    /// Exact Jacobian trace up to this many features, sliced score matching above. Default 32.
    pub max_exact_dim: usize,
    /// Random projections per row for sliced score matching. Default 4.
    pub projections: usize,
    /// Most training epochs. Default 200.
    pub epochs: usize,
    /// Minibatch rows. Default 256.
    pub batch_size: usize,
    /// AdamW learning rate (peak of a cosine schedule). Default 0.002.
    pub learning_rate: f64,
    /// AdamW weight decay. Default 0.1.
    pub weight_decay: f64,
    /// Share of the newest training rows held out as one contiguous block: early stopping of
    /// the RePU residual, the choice between residual and Gaussian, and (with the residual)
    /// the calibration of the threshold. Default 0.2.
    pub holdout_fraction: f64,
    /// Epochs without held-out improvement before stopping. Default 20.
    pub patience: usize,
    /// Quantile of the calibration anomaly scores (windows the model did not fit, taken as
    /// contiguous time blocks) used as the alert threshold: the nominal share of normal
    /// windows over it. Default 0.99 (the usual 99 % control limit).
    pub threshold_quantile: f64,
    /// Covariance shrinkage of the Gaussian part: "auto" (default: the intensity of
    /// 0, 1e-4, 1e-3, 0.01, 0.1, 0.3, 1 that detects a one-standard-deviation step of a single
    /// feature most often on held-out contiguous blocks of the history, at the calibrated
    /// threshold), "ledoit_wolf" (Ledoit & Wolf 2004) or a fixed number in [0, 1].
    pub shrinkage: linewatch_models::Shrinkage,
    /// The RePU residual beside the Gaussian part: "auto" (trained, kept only when it lowers
    /// the held-out score-matching loss by more than two standard errors), "off" or "always".
    /// Default "auto".
    pub residual: linewatch_models::ResidualMode,
    /// Contiguous blocks for the out-of-fold calibration of a Gaussian model (>= 2). Default 10.
    pub calibration_folds: usize,
    /// Gauss-Legendre nodes for log-density and contributions. Default 16.
    pub quadrature_nodes: usize,
    /// Seed of initialisation, shuffling and projections. Default 7.
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`. Default "auto".
    pub device: linewatch_models::DeviceSpec,
    /// Window statistics the models see, per channel (of mean, std, min, max, last, slope).
    /// `count` is never modelled (discrete: score matching needs a density). Default
    /// ["mean", "std", "slope"]: min, max and last are nearly collinear with mean and std
    /// within a window (near-singular directions of the covariance).
    pub stats: Vec<linewatch_window::Stat>,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            hidden: None,
            power: 2,
            max_exact_dim: 32,
            projections: 4,
            epochs: 200,
            batch_size: 256,
            learning_rate: 2e-3,
            weight_decay: 0.1,
            holdout_fraction: 0.2,
            patience: 20,
            threshold_quantile: 0.99,
            shrinkage: linewatch_models::Shrinkage::Auto,
            residual: linewatch_models::ResidualMode::Auto,
            calibration_folds: 10,
            quadrature_nodes: 16,
            seed: 7,
            device: linewatch_models::DeviceSpec::Auto,
            stats: vec![Stat::Mean, Stat::Std, Stat::Slope],
        }
    }
}

/// One covariate of the isotonic model: a feature column `<channel>__<stat>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Covariate {
    /// Feature column name, e.g. "tool_wear__last".
    pub feature: String,
    /// Declared direction. Default "free".
    #[serde(default = "free")]
    pub monotone: Monotone,
}

fn free() -> Monotone {
    Monotone::Free
}

/// `[isotonic]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IsotonicSection {
    /// Train the defect-probability model when enough labelled windows exist. Default true.
    pub enabled: bool,
    /// Covariates besides the anomaly score (which is always increasing). Default none.
    pub covariates: Vec<Covariate>,
    /// Weight of the wrong-sign derivative penalty. Default 10.0.
    pub lambda: f64,
    /// Labelled windows needed, with at least `min_positives` defects. Default 200.
    pub min_labels: usize,
    /// Defective labels needed. Default 10.
    pub min_positives: usize,
    /// Hidden widths of the isotonic network. Default [32, 32].
    pub hidden: Vec<usize>,
}

impl Default for IsotonicSection {
    fn default() -> Self {
        Self {
            enabled: true,
            covariates: Vec::new(),
            lambda: 10.0,
            min_labels: 200,
            min_positives: 10,
            hidden: vec![32, 32],
        }
    }
}
/// `[retrain]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainSection {
    /// Retrain in the background while running. Default true.
    pub enabled: bool,
    /// Retrain at most this often (wall clock). Default "10m".
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// ... or after this many new windows, whichever comes first; 0 = only `every`.
    /// Default 0.
    pub every_windows: u64,
    /// Windows needed before the first model is trained (warm-up). Default 500.
    pub min_windows: usize,
    /// Most recent normal windows kept for training. Default 20000.
    pub max_rows: usize,
    /// Windows of a machine within this many windows (before or after) of one over the
    /// threshold or under an open alert stay out of training, so a fault's quieter windows do
    /// not teach the next model that the fault is normal. A window joins the training set
    /// once this many later windows closed. 0: only the abnormal windows stay out. Default 6.
    pub guard_windows: usize,
    /// A candidate is rejected if its held-out loss on a recent slice is worse than the
    /// serving model's by more than this share (0.25 = 25 %). Default 0.25.
    pub max_regression: f64,
    /// Share of the newest rows used as that recent validation slice. Default 0.2.
    pub validation_fraction: f64,
    /// Where versions are stored: `<models>/<pipeline>/<version>/`. Default "./linewatch-out/models".
    pub models_dir: PathBuf,
}

impl Default for RetrainSection {
    fn default() -> Self {
        Self {
            enabled: true,
            every: Duration::from_secs(600),
            every_windows: 0,
            min_windows: 500,
            max_rows: 20_000,
            guard_windows: 6,
            max_regression: 0.25,
            validation_fraction: 0.2,
            models_dir: PathBuf::from("./linewatch-out/models"),
        }
    }
}
/// The window statistics a model may see (`count` is never modelled).
impl PipelineConfig {
    pub(super) fn validate_model(&self) -> Result<(), ConfigError> {
        let m = &self.model;
        if let Some(h) = &m.hidden
            && (h.is_empty() || h.contains(&0))
        {
            return Err(invalid(
                "model.hidden",
                format!("{h:?}: needs at least one layer, every width positive"),
            ));
        }
        if !(2..=3).contains(&m.power) {
            return Err(invalid(
                "model.power",
                format!("{}: RePU power must be 2 or 3", m.power),
            ));
        }
        at_least_one(
            "model.projections",
            m.projections,
            "sliced score matching needs at least one random projection per row",
        )?;
        at_least_one("model.epochs", m.epochs, "no model would ever be trained")?;
        at_least_one("model.batch_size", m.batch_size, "a minibatch needs rows")?;
        at_least_one(
            "model.patience",
            m.patience,
            "training would stop at the first epoch without improvement",
        )?;
        if !(m.learning_rate > 0.0 && m.learning_rate.is_finite()) {
            return Err(invalid(
                "model.learning_rate",
                format!("{}: must be a finite number > 0", m.learning_rate),
            ));
        }
        if !(m.weight_decay >= 0.0 && m.weight_decay.is_finite()) {
            return Err(invalid(
                "model.weight_decay",
                format!(
                    "{}: must be a finite number >= 0 (training rejects anything else, so no \
                     model would ever be trained)",
                    m.weight_decay
                ),
            ));
        }
        fraction("model.holdout_fraction", m.holdout_fraction, 0.05, 0.5)?;
        if !linewatch_models::score::THRESHOLD_QUANTILES.contains(&m.threshold_quantile) {
            return Err(invalid(
                "model.threshold_quantile",
                format!("{}: must be in [0.5, 1)", m.threshold_quantile),
            ));
        }
        if let linewatch_models::Shrinkage::Fixed(a) = m.shrinkage {
            fraction("model.shrinkage", a, 0.0, 1.0)?;
        }
        if m.calibration_folds < 2 {
            return Err(invalid(
                "model.calibration_folds",
                format!("{}: must be >= 2", m.calibration_folds),
            ));
        }
        if !(2..=64).contains(&m.quadrature_nodes) {
            return Err(invalid(
                "model.quadrature_nodes",
                format!("{}: must be in 2..=64", m.quadrature_nodes),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if m.stats.is_empty()
            || m.stats
                .iter()
                .any(|s| !s.is_continuous() || !seen.insert(*s))
        {
            let names: Vec<&str> = m.stats.iter().map(|s| s.name()).collect();
            let allowed: Vec<&str> = Stat::ALL
                .iter()
                .filter(|s| s.is_continuous())
                .map(|s| s.name())
                .collect();
            return Err(invalid(
                "model.stats",
                format!(
                    "{names:?}: choose one or more of {allowed:?}, each once (count is \
                     discrete: it has no density to learn)"
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn validate_isotonic(&self) -> Result<(), ConfigError> {
        let iso = &self.isotonic;
        if iso.hidden.contains(&0) {
            return Err(invalid(
                "isotonic.hidden",
                format!("{:?}: every width must be positive", iso.hidden),
            ));
        }
        non_negative("isotonic.lambda", iso.lambda)?;
        at_least_one(
            "isotonic.min_labels",
            iso.min_labels,
            "the model would be trained on no labels",
        )?;
        at_least_one(
            "isotonic.min_positives",
            iso.min_positives,
            "a defect probability needs defective labels",
        )?;
        if iso.min_positives > iso.min_labels {
            return Err(invalid(
                "isotonic.min_positives",
                format!(
                    "{}: more than isotonic.min_labels ({})",
                    iso.min_positives, iso.min_labels
                ),
            ));
        }
        // The backtest's placeholder channel list (each CSV's columns are its channels).
        let channels_listed = self.window.channels != [CHANNELS_FROM_DATA];
        let mut seen = std::collections::HashSet::new();
        for (i, c) in iso.covariates.iter().enumerate() {
            let f = &c.feature;
            let why = |msg: String| invalid("isotonic.covariates", format!("[{i}] {f:?}: {msg}"));
            let Some((channel, stat)) = f.rsplit_once(linewatch_window::FEATURE_SEPARATOR) else {
                return Err(why(
                    "not a feature name: name one as <channel>__<stat>, e.g. \"temp_c__mean\""
                        .into(),
                ));
            };
            if !seen.insert(f) {
                return Err(why("listed twice".into()));
            }
            if channels_listed && !self.window.channels.iter().any(|w| w == channel) {
                return Err(why(format!(
                    "no such feature: channel {channel:?} is not in window.channels {:?}",
                    self.window.channels
                )));
            }
            let stat = stat.parse::<Stat>().map_err(why)?;
            if !self.model.stats.contains(&stat) {
                let names: Vec<&str> = self.model.stats.iter().map(|s| s.name()).collect();
                return Err(why(format!(
                    "the model does not see this feature: statistic {:?} is not in \
                     model.stats {names:?}",
                    stat.name()
                )));
            }
        }
        Ok(())
    }
    pub(super) fn validate_retrain(&self) -> Result<(), ConfigError> {
        let r = &self.retrain;
        if r.every.is_zero() {
            return Err(invalid("retrain.every", "0s: must be positive"));
        }
        if r.min_windows < 20 {
            return Err(invalid(
                "retrain.min_windows",
                format!("{}: needs at least 20 windows", r.min_windows),
            ));
        }
        if r.max_rows < r.min_windows {
            return Err(invalid(
                "retrain.max_rows",
                format!(
                    "{}: smaller than retrain.min_windows ({})",
                    r.max_rows, r.min_windows
                ),
            ));
        }
        non_negative("retrain.max_regression", r.max_regression)?;
        fraction(
            "retrain.validation_fraction",
            r.validation_fraction,
            0.05,
            0.5,
        )?;
        if r.models_dir.as_os_str().is_empty() {
            return Err(invalid("retrain.models_dir", "\"\": name a folder"));
        }
        Ok(())
    }
}
