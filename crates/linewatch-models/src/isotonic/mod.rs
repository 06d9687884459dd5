//! PDIR: partially monotone regression with a RePU network.
//!
//! `g` maps (anomaly score, covariates) to a logit; the defect probability is `sigmoid(g)`
//! (binary target) or `g` itself in target units (continuous target). The loss is
//!
//! ```text
//! mean_i loss(y_i, g(z_i)) + lambda * mean_i sum_{j in M} max(0, margin - s_j dg/dz_j (z_i))
//! ```
//!
//! with `s_j = +1` for declared increasing and `-1` for declared decreasing inputs; the
//! derivatives are exact forward-mode tangents (one per constrained input), so the penalty
//! trains with first-order backprop. Inputs are standardised (a positive scaling, so signs of
//! derivatives are unchanged) and clamped to the training range: outside it predictions are
//! flat, which cannot break monotonicity. Missing inputs (NaN) are imputed with the training
//! mean. Monotonicity is *checked* by [`IsotonicModel::check_monotonicity`].

mod config;
#[cfg(test)]
mod tests;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::mlp::{Directions, Mlp};
use crate::standardize::{Standardizer, check_rows};
use crate::train::{self, Data, TrainReport};

pub use config::{IsoScaling, IsoTarget, IsotonicConfig, Monotone};

/// Result of [`IsotonicModel::check_monotonicity`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonotonicityCheck {
    /// Points checked.
    pub points: usize,
    /// Points where at least one declared partial derivative has the wrong sign.
    pub points_wrong: usize,
    /// `points_wrong / points`.
    pub wrong_sign_rate: f64,
    /// Per constrained input: (name, share of points with the wrong sign).
    pub per_feature: Vec<(String, f64)>,
}

/// A trained PDIR model. Cheap to clone, `Send + Sync`; prediction takes `&self`.
#[derive(Clone, Debug)]
pub struct IsotonicModel {
    pub(crate) config: IsotonicConfig,
    pub(crate) feature_names: Vec<String>,
    pub(crate) scaling: IsoScaling,
    pub(crate) net: Mlp,
    pub(crate) held_out_loss: f64,
    pub(crate) trained_on: String,
}

fn softplus(g: &Tensor) -> Result<Tensor> {
    // log(1 + e^g) = max(g, 0) + log(1 + e^-|g|), stable for any g.
    Ok((g.relu()? + (g.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// `[k, d]` signed unit directions of the constrained inputs.
fn constraint_dirs(mono: &[Monotone], dtype: DType, device: &Device) -> Result<Option<Tensor>> {
    let d = mono.len();
    let mut v = Vec::new();
    let mut k = 0;
    for (j, m) in mono.iter().enumerate() {
        if let Some(s) = m.sign() {
            let mut row = vec![0.0; d];
            row[j] = s;
            v.extend(row);
            k += 1;
        }
    }
    if k == 0 {
        return Ok(None);
    }
    Ok(Some(Tensor::from_vec(v, (k, d), device)?.to_dtype(dtype)?))
}

impl IsotonicModel {
    /// Trains on row-major inputs `rows` (`feature_names.len()` columns) and labels `y`
    /// (`[0, 1]` for a binary target).
    pub fn train<T: Copy + Into<f64>>(
        rows: &[T],
        y: &[f64],
        feature_names: &[String],
        cfg: &IsotonicConfig,
        device: &Device,
    ) -> Result<(Self, TrainReport)> {
        let d = feature_names.len();
        cfg.validate(d)?;
        let rows: Vec<f64> = rows.iter().map(|&v| v.into()).collect();
        let n = check_rows(&rows, d)?;
        if y.len() != n {
            return Err(ModelError::InvalidInput(format!(
                "{} labels for {n} rows",
                y.len()
            )));
        }
        if y.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::InvalidInput("labels must be finite".into()));
        }
        if cfg.target == IsoTarget::Binary && y.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(ModelError::InvalidInput(
                "binary labels must be in [0, 1]".into(),
            ));
        }
        let (train_idx, held_idx) = cfg.train.split(n, 4)?;
        let xt_raw = train::gather_rows(&rows, d, &train_idx);
        let xh_raw = train::gather_rows(&rows, d, &held_idx);
        let yt: Vec<f64> = train_idx.iter().map(|&i| y[i]).collect();
        let yh: Vec<f64> = held_idx.iter().map(|&i| y[i]).collect();
        let standardizer = Standardizer::fit(&xt_raw, d)?;
        let (zt, _) = standardizer.transform(&xt_raw, None)?;
        let mut lo = vec![f64::INFINITY; d];
        let mut hi = vec![f64::NEG_INFINITY; d];
        for row in zt.chunks_exact(d) {
            for j in 0..d {
                lo[j] = lo[j].min(row[j]);
                hi[j] = hi[j].max(row[j]);
            }
        }
        let (y_mean, y_std) = match cfg.target {
            IsoTarget::Binary => (0.0, 1.0),
            IsoTarget::Continuous => {
                let m = yt.iter().sum::<f64>() / yt.len() as f64;
                let v = yt.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / yt.len() as f64;
                (
                    m,
                    if v.sqrt() > 1e-12 * m.abs().max(1.0) {
                        v.sqrt()
                    } else {
                        1.0
                    },
                )
            }
        };
        let scaling = IsoScaling {
            standardizer,
            lo,
            hi,
            y_mean,
            y_std,
        };
        let dtype = cfg.train.precision.dtype();
        let prep = |raw: &[f64], ys: &[f64]| -> Result<Data> {
            let z = scaled_inputs(&scaling, raw)?;
            let m = ys.len();
            let yv: Vec<f64> = ys.iter().map(|v| (v - y_mean) / y_std).collect();
            Ok(Data {
                x: train::to_tensor(&z, m, d, dtype, device)?,
                y: Some(train::to_tensor(&yv, m, 1, dtype, device)?),
            })
        };
        let train_data = prep(&xt_raw, &yt)?;
        let held_data = prep(&xh_raw, &yh)?;
        let mcfg = cfg.mlp(d);
        let mut net = Mlp::new(&mcfg, cfg.train.seed, dtype, device)?;
        if cfg.train.calibrate_init {
            net = net.calibrated(&train_data.x.narrow(0, 0, train_idx.len().min(2048))?)?;
        }
        let dirs = constraint_dirs(&cfg.monotone, dtype, device)?;
        let (target, lambda, margin) = (cfg.target, cfg.lambda, cfg.margin);
        let loss = move |net: &Mlp,
                         x: &Tensor,
                         y: Option<&Tensor>,
                         _r: &mut rand::rngs::StdRng|
              -> Result<Tensor> {
            let y = y.ok_or_else(|| ModelError::InvalidInput("missing labels".into()))?;
            let (g, pen) = match (&dirs, lambda > 0.0) {
                (Some(v), true) => {
                    let (g, t) = net.jvp(x, Directions::Shared(v))?; // t: [k, n, 1]
                    let pen = (t.neg()? + margin)?.relu()?.sum(0)?.mean_all()?;
                    (g, Some(pen))
                }
                _ => (net.forward(x)?, None),
            };
            let data = match target {
                IsoTarget::Binary => (softplus(&g)? - (&g * y)?)?.mean_all()?,
                IsoTarget::Continuous => (&g - y)?.sqr()?.mean_all()?,
            };
            Ok(match pen {
                Some(p) => (data + (p * lambda)?)?,
                None => data,
            })
        };
        let (net, report) = train::fit(&net, &train_data, &held_data, &cfg.train, device, &loss)?;
        let model = Self {
            config: cfg.clone(),
            feature_names: feature_names.to_vec(),
            scaling,
            net,
            held_out_loss: report.best_held_out_loss,
            trained_on: report.device.clone(),
        };
        Ok((model, report))
    }

    /// Feature names, in column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Configuration.
    pub fn config(&self) -> &IsotonicConfig {
        &self.config
    }

    /// Held-out loss of the kept weights.
    pub fn held_out_loss(&self) -> f64 {
        self.held_out_loss
    }

    /// The same model with its weights on another device.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let mut m = self.clone();
        m.net = self.net.to_device(device)?;
        Ok(m)
    }

    fn logits(&self, rows: &[f64]) -> Result<(Vec<f64>, Option<Vec<f64>>, usize)> {
        let d = self.feature_names.len();
        let n = check_rows(rows, d)?;
        let z = scaled_inputs(&self.scaling, rows)?;
        let x = train::to_tensor(&z, n, d, self.net.dtype(), self.net.device())?;
        let dirs = constraint_dirs(&self.config.monotone, self.net.dtype(), self.net.device())?;
        Ok(match dirs {
            Some(v) => {
                let (g, t) = self.net.jvp(&x, Directions::Shared(&v))?;
                let t = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?; // [k, n]
                (
                    g.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
                    Some(t),
                    n,
                )
            }
            None => (
                self.net
                    .forward(&x)?
                    .to_dtype(DType::F64)?
                    .flatten_all()?
                    .to_vec1::<f64>()?,
                None,
                n,
            ),
        })
    }

    /// Predictions: defect probability `sigmoid(g)` (binary) or the target value (continuous).
    pub fn predict<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<Vec<f64>> {
        let rows: Vec<f64> = rows.iter().map(|&v| v.into()).collect();
        let d = self.feature_names.len();
        let n = check_rows(&rows, d)?;
        let z = scaled_inputs(&self.scaling, &rows)?;
        let x = train::to_tensor(&z, n, d, self.net.dtype(), self.net.device())?;
        let g = self
            .net
            .forward(&x)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        Ok(g.into_iter().map(|g| self.link(g)).collect())
    }

    fn link(&self, g: f64) -> f64 {
        match self.config.target {
            IsoTarget::Binary => 1.0 / (1.0 + (-g).exp()),
            IsoTarget::Continuous => g * self.scaling.y_std + self.scaling.y_mean,
        }
    }

    /// Share of the given points where a declared monotone partial derivative of `g` has the
    /// wrong sign (`s_j dg/dz_j < -tol`, evaluated at the clamped standardised point; the sign
    /// is the same in raw units since the scaling is positive).
    pub fn check_monotonicity<T: Copy + Into<f64>>(
        &self,
        rows: &[T],
        tol: f64,
    ) -> Result<MonotonicityCheck> {
        let rows: Vec<f64> = rows.iter().map(|&v| v.into()).collect();
        let (_, t, n) = self.logits(&rows)?;
        let constrained: Vec<usize> = self
            .config
            .monotone
            .iter()
            .enumerate()
            .filter(|(_, m)| m.sign().is_some())
            .map(|(j, _)| j)
            .collect();
        let t = t.unwrap_or_default();
        let mut any = vec![false; n];
        let mut per_feature = Vec::new();
        for (a, &j) in constrained.iter().enumerate() {
            let mut wrong = 0usize;
            for i in 0..n {
                // Tangents are along s_j e_j, so a wrong sign is a negative value.
                if t[a * n + i] < -tol {
                    wrong += 1;
                    any[i] = true;
                }
            }
            per_feature.push((
                self.feature_names[j].clone(),
                wrong as f64 / n.max(1) as f64,
            ));
        }
        let points_wrong = any.iter().filter(|b| **b).count();
        Ok(MonotonicityCheck {
            points: n,
            points_wrong,
            wrong_sign_rate: points_wrong as f64 / n.max(1) as f64,
            per_feature,
        })
    }
}

/// Standardise, impute missing with 0 (the training mean), clamp to the training range.
fn scaled_inputs(s: &IsoScaling, rows: &[f64]) -> Result<Vec<f64>> {
    let d = s.standardizer.dim();
    let (mut z, _) = s.standardizer.transform(rows, None)?;
    for (k, v) in z.iter_mut().enumerate() {
        let j = k % d;
        *v = v.clamp(s.lo[j], s.hi[j]);
    }
    Ok(z)
}
