//! The score model: an estimate of `s(x) = grad_x log p(x)` of normal windows, with per-row
//! anomaly scores, calibrated p-values and an exact per-feature split of the log-density drop.
//!
//! # The model
//! All computations happen in standardised space `z = (x - mean) / std` (see
//! [`Standardizer`]). The score has two parts (see `docs/architecture.md`, "The method"):
//!
//! * a **Gaussian part** with a shrinkage covariance ([`Whitener`]; Ledoit & Wolf 2004): in
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
#[cfg(test)]
mod tests;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::gaussian::Whitener;
use crate::mlp::{Directions, Init, Mlp, MlpConfig};
use crate::quadrature::GaussLegendre;
use crate::standardize::{Standardizer, check_rows};
use crate::train::{self, Data, TrainConfig, TrainReport, quantile};

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
    /// Covariance shrinkage intensity in `[0, 1]`; `None` = Ledoit-Wolf estimate.
    pub shrinkage: Option<f64>,
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
            shrinkage: None,
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
        if !(self.threshold_quantile > 0.0 && self.threshold_quantile < 1.0) {
            return bad("threshold_quantile must be in (0, 1)");
        }
        if let Some(c) = self.clip
            && !(c.is_finite() && c > 0.0)
        {
            return bad("clip must be finite and > 0");
        }
        if let Some(a) = self.shrinkage
            && !(0.0..=1.0).contains(&a)
        {
            return bad("shrinkage must be in [0, 1]");
        }
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

/// Summary of the training run stored with the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreSummary {
    /// Held-out ISM loss (whitened space) of the kept model.
    pub held_out_loss: f64,
    /// Rows the kept model was fitted on.
    pub train_rows: usize,
    /// Rows of the newest contiguous block held out for model selection.
    pub held_out_rows: usize,
    /// Median calibration anomaly score.
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

/// Per-row residual ISM objective in whitened space, `0.5 |r(u) - u|^2 + tr(dr/du)` (exact,
/// or sliced with `k` Rademacher directions); the constant `-d` of `tr(d(-u)/du)` is left out
/// here and in [`gauss_ism_rows`] alike.
pub(crate) fn residual_ism_rows(
    net: &Mlp,
    u: &Tensor,
    sliced: Option<usize>,
    r: &mut rand::rngs::StdRng,
) -> Result<Tensor> {
    match sliced {
        None => {
            let (s, tr) = net.value_and_trace(u)?;
            Ok((((s - u)?.sqr()?.sum(1)? * 0.5)? + tr)?)
        }
        Some(k) => {
            use rand::Rng;
            let (n, d) = u.dims2()?;
            let signs: Vec<f32> = (0..k * n * d)
                .map(|_| if r.random::<bool>() { 1.0 } else { -1.0 })
                .collect();
            let v = Tensor::from_vec(signs, (k, n, d), u.device())?.to_dtype(u.dtype())?;
            let (s, t) = net.jvp(u, Directions::PerRow(&v))?;
            let vjv = (&t * &v)?.sum(2)?.mean(0)?;
            Ok((((s - u)?.sqr()?.sum(1)? * 0.5)? + vjv)?)
        }
    }
}

/// The Gaussian part's per-row ISM objective in whitened space, `0.5 |u|^2` (same constant
/// left out as in [`residual_ism_rows`]).
fn gauss_ism_rows(u: &[f64], d: usize) -> Vec<f64> {
    u.chunks_exact(d)
        .map(|r| 0.5 * r.iter().map(|v| v * v).sum::<f64>())
        .collect()
}

fn to_f64_rows<T: Copy + Into<f64>>(rows: &[T]) -> Vec<f64> {
    rows.iter().map(|&v| v.into()).collect()
}

/// Contiguous block split of `n` time-ordered rows: `(fit, held)` ranges, the newest
/// `held_fraction` held out, `gap` rows between them dropped.
fn newest_block(
    n: usize,
    held_fraction: f64,
    gap: usize,
) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let n_held = ((n as f64 * held_fraction).round() as usize).max(1);
    let held_start = n.saturating_sub(n_held);
    (0..held_start.saturating_sub(gap), held_start..n)
}

/// Half-width of the smallest cube around 0 holding the rows `u`, capped by `clip`.
fn box_of(u: &[f64], clip: Option<f64>) -> f64 {
    let m = u.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    clip.map_or(m, |c| m.min(c))
}

fn clamp_rows(u: &[f64], clip: Option<f64>) -> Vec<f64> {
    match clip {
        Some(c) => u.iter().map(|v| v.clamp(-c, c)).collect(),
        None => u.to_vec(),
    }
}

/// Evenly spaced order statistics of sorted `v`, at most `max` of them (first and last kept).
fn thin_sorted(v: Vec<f64>, max: usize) -> Vec<f64> {
    if v.len() <= max || max < 2 {
        return v;
    }
    let n = v.len();
    (0..max)
        .map(|k| v[(k as f64 * (n - 1) as f64 / (max - 1) as f64).round() as usize])
        .collect()
}

impl ScoreModel {
    /// Trains a score model on normal rows (row-major, `feature_names.len()` columns; `f32` or
    /// `f64`), **in time order** (the newest block is held out, calibration blocks are
    /// contiguous). Missing values (NaN) are imputed with the training mean. Returns the model
    /// and the residual's training report (zero epochs when the residual is off).
    ///
    /// With [`ResidualMode::Auto`] the residual is trained only when the fitting rows hold at
    /// least one effective observation (`rows / overlap`) per network parameter, and kept only
    /// when it wins on the held-out block.
    ///
    /// Errors: bad configuration or shapes; too few rows for the held-out block, the
    /// calibration folds and their borders ([`ModelError::InsufficientData`]).
    pub fn train<T: Copy + Into<f64>>(
        rows: &[T],
        feature_names: &[String],
        cfg: &ScoreConfig,
        device: &Device,
    ) -> Result<(Self, TrainReport)> {
        cfg.validate()?;
        let started = std::time::Instant::now();
        let d = feature_names.len();
        let rows = to_f64_rows(rows);
        let n = check_rows(&rows, d)?;
        let gap = cfg.overlap.ceil() as usize - 1;
        let (fit, held) = newest_block(n, cfg.train.held_out_fraction, gap);
        if fit.len() < 8 || held.len() < 2 {
            return Err(ModelError::InsufficientData(format!(
                "{n} rows: need at least 8 for fitting, 2 held out and {gap} between them"
            )));
        }
        let fit_raw = &rows[fit.start * d..fit.end * d];
        let held_raw = &rows[held.start * d..held.end * d];
        let standardizer = Standardizer::fit(fit_raw, d)?;
        let (zf, _) = standardizer.transform(fit_raw, cfg.clip)?;
        let (zh, _) = standardizer.transform(held_raw, cfg.clip)?;
        let gauss = Whitener::fit(&zf, d, cfg.shrinkage)?;
        let uf = gauss.apply(&zf);
        let uh = gauss.apply(&zh);
        let gauss_held = gauss_ism_rows(&uh, d);
        let gauss_loss = gauss_held.iter().sum::<f64>() / gauss_held.len() as f64;
        let mut report = TrainReport {
            train_rows: fit.len(),
            held_out_rows: held.len(),
            epochs_run: 0,
            best_epoch: 0,
            best_held_out_loss: gauss_loss,
            initial_held_out_loss: gauss_loss,
            first_epoch_train_loss: f64::NAN,
            stopped_early: false,
            seconds: 0.0,
            device: crate::device::device_name(device),
            history: Vec::new(),
        };
        // The residual, kept only when it beats the Gaussian part on the held-out block.
        let mut kept = None;
        // Capacity follows the effective sample size: the residual is tried only when the
        // history holds at least one effective observation per parameter.
        let n_params = cfg.mlp(d).n_params();
        let n_eff_fit = fit.len() as f64 / cfg.overlap;
        let try_residual = match cfg.residual {
            ResidualMode::Off => false,
            ResidualMode::Always => true,
            ResidualMode::Auto => {
                let enough = n_eff_fit >= n_params as f64;
                if !enough {
                    tracing::info!(
                        effective_rows = n_eff_fit,
                        parameters = n_params,
                        "score model: too short a history for the RePU residual; Gaussian part only"
                    );
                }
                enough
            }
        };
        if try_residual {
            let (net, rep) = Self::train_residual(cfg, d, &uf, &uh, device)?;
            let res_held = Self::residual_ism_per_row(&net, cfg, &uh, box_of(&uf, cfg.clip), d)?;
            let diff: Vec<f64> = gauss_held
                .iter()
                .zip(&res_held)
                .map(|(g, r)| g - r)
                .collect();
            let m = diff.iter().sum::<f64>() / diff.len() as f64;
            let var = diff.iter().map(|x| (x - m).powi(2)).sum::<f64>() / diff.len() as f64;
            let n_eff = (diff.len() as f64 / cfg.overlap).max(1.0);
            let se = (var / n_eff).sqrt();
            let accept = cfg.residual == ResidualMode::Always || (m.is_finite() && m > 2.0 * se);
            tracing::info!(
                gaussian_loss = gauss_loss,
                residual_loss = gauss_loss - m,
                gain = m,
                standard_error = se,
                kept = accept,
                "score model: RePU residual against the Gaussian part on the held-out block"
            );
            report = rep;
            report.best_held_out_loss = if accept { gauss_loss - m } else { gauss_loss };
            if accept {
                kept = Some(net);
            }
        }
        let effective_rows = n as f64 / cfg.overlap;
        let summary = |train_rows: usize, held_out_loss: f64| ScoreSummary {
            held_out_loss,
            train_rows,
            held_out_rows: held.len(),
            held_out_median_score: f64::NAN,
            device: report.device.clone(),
            residual: false,
            shrinkage: 0.0,
            calibration_rows: 0,
            effective_rows,
        };
        let (mut model, calibration) = match kept {
            Some(net) => {
                // Fitted on the older rows, early-stopped and calibrated on the newest block:
                // refitting a network per fold would multiply the training time by the folds.
                let mut s = summary(fit.len(), report.best_held_out_loss);
                s.residual = true;
                s.shrinkage = gauss.shrinkage;
                let mut m = Self::assemble(
                    cfg.clone(),
                    feature_names.to_vec(),
                    standardizer,
                    gauss,
                    Some(net),
                    f64::INFINITY,
                    s,
                )?;
                m.residual_box = box_of(&uf, cfg.clip);
                let cal = m.anomaly_scores(held_raw)?;
                (m, cal)
            }
            None => {
                // The Gaussian part on every row (cheap, and the most data), calibrated by
                // out-of-fold scores of contiguous blocks.
                let cal = Self::gaussian_out_of_fold(&rows, d, cfg, gap)?;
                let st = Standardizer::fit(&rows, d)?;
                let (z, _) = st.transform(&rows, cfg.clip)?;
                let g = Whitener::fit(&z, d, cfg.shrinkage)?;
                let mut s = summary(n, gauss_loss);
                s.shrinkage = g.shrinkage;
                let m = Self::assemble(
                    cfg.clone(),
                    feature_names.to_vec(),
                    st,
                    g,
                    None,
                    f64::INFINITY,
                    s,
                )?;
                (m, cal)
            }
        };
        let mut cal: Vec<f64> = calibration.into_iter().filter(|s| s.is_finite()).collect();
        cal.sort_by(f64::total_cmp);
        model.threshold = quantile(&cal, cfg.threshold_quantile).unwrap_or(f64::INFINITY);
        model.summary.held_out_median_score = quantile(&cal, 0.5).unwrap_or(f64::NAN);
        model.summary.calibration_rows = cal.len();
        model.calibration = thin_sorted(cal, MAX_CALIBRATION);
        report.seconds = started.elapsed().as_secs_f64();
        Ok((model, report))
    }

    /// Trains the residual on whitened rows, early-stopped on the held-out block. The output
    /// layer starts at 1 % of its calibrated scale, so training starts near the Gaussian.
    fn train_residual(
        cfg: &ScoreConfig,
        d: usize,
        uf: &[f64],
        uh: &[f64],
        device: &Device,
    ) -> Result<(Mlp, TrainReport)> {
        let mcfg = cfg.mlp(d);
        mcfg.validate()?;
        let dtype = cfg.train.precision.dtype();
        let bx = Some(box_of(uf, cfg.clip));
        let uf = clamp_rows(uf, bx);
        let uh = clamp_rows(uh, bx);
        let xt = train::to_tensor(&uf, uf.len() / d, d, dtype, device)?;
        let xh = train::to_tensor(&uh, uh.len() / d, d, dtype, device)?;
        let mut net = Mlp::new(&mcfg, cfg.train.seed, dtype, device)?;
        if cfg.train.calibrate_init {
            let m = (uf.len() / d).min(2048);
            net = net.calibrated(&xt.narrow(0, 0, m)?)?;
        }
        let mut weights = net.weights();
        if let Some((w, b)) = weights.last_mut() {
            *w = (&*w * 0.01)?;
            *b = (&*b * 0.01)?;
        }
        let net = Mlp::from_weights(&mcfg, weights)?;
        let sliced = cfg.trace.resolve(d);
        let loss = move |net: &Mlp,
                         x: &Tensor,
                         _y: Option<&Tensor>,
                         r: &mut rand::rngs::StdRng|
              -> Result<Tensor> {
            Ok(residual_ism_rows(net, x, sliced, r)?.mean_all()?)
        };
        train::fit(
            &net,
            &Data { x: xt, y: None },
            &Data { x: xh, y: None },
            &cfg.train,
            device,
            &loss,
        )
    }

    /// Exact per-row residual ISM on whitened rows (f64 out).
    fn residual_ism_per_row(
        net: &Mlp,
        cfg: &ScoreConfig,
        u: &[f64],
        bx: f64,
        d: usize,
    ) -> Result<Vec<f64>> {
        let u = clamp_rows(u, Some(bx));
        let n = u.len() / d;
        let chunk = (eval::CHUNK_ELEMS
            / (d * cfg.hidden_for(d).iter().copied().max().unwrap_or(1).max(d)))
        .clamp(1, 1 << 16);
        let mut out = Vec::with_capacity(n);
        let mut r = crate::rng::seeded(0);
        for start in (0..n).step_by(chunk) {
            let len = chunk.min(n - start);
            let x = train::to_tensor(
                &u[start * d..(start + len) * d],
                len,
                d,
                net.dtype(),
                net.device(),
            )?;
            let h = residual_ism_rows(net, &x, None, &mut r)?;
            out.extend(h.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        Ok(out)
    }

    /// Out-of-fold anomaly scores of the Gaussian model over `calibration_folds` contiguous
    /// blocks of the time-ordered rows: each block is scored by a model (standardisation and
    /// shrinkage covariance) fitted on the rows outside it, less `gap` rows at each border so
    /// that no window shares readings with the block.
    fn gaussian_out_of_fold(
        rows: &[f64],
        d: usize,
        cfg: &ScoreConfig,
        gap: usize,
    ) -> Result<Vec<f64>> {
        let n = rows.len() / d;
        let k = cfg.calibration_folds.min(n);
        let mut out = Vec::with_capacity(n);
        for f in 0..k {
            let (a, b) = (f * n / k, (f + 1) * n / k);
            let mut train_rows = Vec::with_capacity(rows.len());
            train_rows.extend_from_slice(&rows[..a.saturating_sub(gap) * d]);
            train_rows.extend_from_slice(&rows[(b + gap).min(n) * d..]);
            if train_rows.len() / d < 8 {
                return Err(ModelError::InsufficientData(format!(
                    "{n} rows: a calibration fold leaves fewer than 8 rows to fit on"
                )));
            }
            let st = Standardizer::fit(&train_rows, d)?;
            let (z, _) = st.transform(&train_rows, cfg.clip)?;
            let g = Whitener::fit(&z, d, cfg.shrinkage)?;
            let (zf, _) = st.transform(&rows[a * d..b * d], cfg.clip)?;
            out.extend(gauss_ism_rows(&g.apply(&zf), d));
        }
        Ok(out)
    }

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
