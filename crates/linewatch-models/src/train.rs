//! The shared training loop: AdamW minibatches, held-out loss, early stopping, best weights.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::mlp::Mlp;
use crate::rng;

/// Optimisation settings shared by all models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Maximum number of passes over the training rows.
    pub max_epochs: usize,
    /// Rows per AdamW step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay (0 disables).
    pub weight_decay: f64,
    /// Learning-rate schedule over `max_epochs`.
    pub lr_schedule: LrSchedule,
    /// Share of rows held out for early stopping (and the alert threshold), in (0, 0.9].
    pub held_out_fraction: f64,
    /// Stop after this many epochs without a held-out improvement larger than `min_delta`.
    pub patience: usize,
    /// Smallest decrease of the held-out loss that counts as an improvement.
    pub min_delta: f64,
    /// Seed of the held-out split, the initial weights, the shuffles and the projections; a
    /// CPU run with the same data and seed is bit-for-bit reproducible.
    pub seed: u64,
    /// Rescale the initial weights on a sample of training rows (see `Mlp::calibrated`).
    pub calibrate_init: bool,
    /// Floating-point precision of weights and arithmetic.
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            max_epochs: 200,
            batch_size: 256,
            lr: 2e-3,
            weight_decay: 0.0,
            lr_schedule: LrSchedule::default(),
            held_out_fraction: 0.2,
            patience: 20,
            min_delta: 0.0,
            seed: 0,
            calibrate_init: true,
            precision: Precision::F32,
        }
    }
}

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// The same rate throughout.
    Constant,
    /// Cosine decay from `lr` to `lr * final_factor` at `max_epochs`.
    Cosine {
        /// Final rate as a share of the peak.
        final_factor: f64,
    },
}

impl Default for LrSchedule {
    fn default() -> Self {
        Self::Cosine { final_factor: 0.05 }
    }
}

/// Floating-point precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit (fast; the default).
    #[default]
    F32,
    /// 64-bit (for checks).
    F64,
}

impl Precision {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F64 => DType::F64,
        }
    }
}

impl TrainConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ModelError::InvalidConfig(m.to_string()));
        if self.max_epochs == 0 || self.batch_size == 0 {
            return bad("max_epochs and batch_size must be >= 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr must be finite and > 0");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay must be finite and >= 0");
        }
        if !(self.held_out_fraction > 0.0 && self.held_out_fraction <= 0.9) {
            return bad("held_out_fraction must be in (0, 0.9]");
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return bad("min_delta must be finite and >= 0");
        }
        if let LrSchedule::Cosine { final_factor } = self.lr_schedule
            && !(final_factor.is_finite() && (0.0..=1.0).contains(&final_factor))
        {
            return bad("cosine final_factor must be in [0, 1]");
        }
        Ok(())
    }

    fn lr_at(&self, epoch: usize) -> f64 {
        match self.lr_schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine { final_factor } => {
                let frac = epoch as f64 / self.max_epochs as f64;
                let c = 0.5 * (1.0 + (std::f64::consts::PI * frac).cos());
                self.lr * (final_factor + (1.0 - final_factor) * c)
            }
        }
    }

    /// Splits `n` rows into (training, held-out) index lists with the configured seed.
    pub(crate) fn split(&self, n: usize, min_train: usize) -> Result<(Vec<usize>, Vec<usize>)> {
        let n_held = ((n as f64 * self.held_out_fraction).round() as usize).max(1);
        if n < n_held + min_train {
            return Err(ModelError::InsufficientData(format!(
                "{n} rows: need at least {} for training and {n_held} held out",
                min_train
            )));
        }
        let mut r = rng::seeded(self.seed ^ 0x5eed_5011);
        let perm = rng::permutation(&mut r, n);
        let held = perm[..n_held].to_vec();
        let train = perm[n_held..].to_vec();
        Ok((train, held))
    }
}

/// What a training run did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Rows used for the gradient steps.
    pub train_rows: usize,
    /// Rows held out.
    pub held_out_rows: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// Epoch (1-based) of the kept weights; 0 = the initial weights.
    pub best_epoch: usize,
    /// Held-out loss of the kept weights.
    pub best_held_out_loss: f64,
    /// Held-out loss of the initial weights.
    pub initial_held_out_loss: f64,
    /// Mean training loss of the first epoch.
    pub first_epoch_train_loss: f64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Device name.
    pub device: String,
    /// `(train, held-out)` loss per epoch.
    pub history: Vec<(f64, f64)>,
}

/// A training set: inputs and optional targets, on the device.
pub(crate) struct Data {
    pub x: Tensor,
    pub y: Option<Tensor>,
}

impl Data {
    fn rows(&self) -> Result<usize> {
        Ok(self.x.dim(0)?)
    }

    fn narrow(&self, start: usize, len: usize) -> Result<(Tensor, Option<Tensor>)> {
        let x = self.x.narrow(0, start, len)?;
        let y = match &self.y {
            Some(y) => Some(y.narrow(0, start, len)?),
            None => None,
        };
        Ok((x, y))
    }
}

/// The per-batch loss: `(net, x, y, rng) -> scalar`; the rng is for random projections.
pub(crate) type LossFn<'a> =
    dyn Fn(&Mlp, &Tensor, Option<&Tensor>, &mut StdRng) -> Result<Tensor> + 'a;

/// Mean loss over `data` in chunks, with a fixed-seed rng (comparable between epochs).
pub(crate) fn eval_loss(
    net: &Mlp,
    data: &Data,
    chunk: usize,
    seed: u64,
    loss: &LossFn<'_>,
) -> Result<f64> {
    let n = data.rows()?;
    let mut r = rng::seeded(seed);
    let mut total = 0.0;
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let (x, y) = data.narrow(start, len)?;
        let l = loss(net, &x, y.as_ref(), &mut r)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        total += l * len as f64;
        start += len;
    }
    Ok(total / n as f64)
}

/// Trains `init` with AdamW; returns the weights with the best held-out loss.
pub(crate) fn fit(
    init: &Mlp,
    train: &Data,
    held: &Data,
    cfg: &TrainConfig,
    device: &Device,
    loss: &LossFn<'_>,
) -> Result<(Mlp, TrainReport)> {
    cfg.validate()?;
    let started = Instant::now();
    let n = train.rows()?;
    let eval_chunk = cfg.batch_size.max(1024);
    let eval_seed = cfg.seed ^ 0xe7a1;
    let (net, vars) = init.trainable()?;
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: cfg.lr_at(0),
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let mut r = rng::seeded(cfg.seed ^ 0x7a11);
    let initial = eval_loss(&net, held, eval_chunk, eval_seed, loss)?;
    let mut best = init.snapshot()?;
    let mut best_loss = if initial.is_finite() {
        initial
    } else {
        f64::INFINITY
    };
    let mut best_epoch = 0;
    let mut history = Vec::new();
    let mut first_train = f64::NAN;
    let mut stopped_early = false;
    let mut epochs_run = 0;
    for epoch in 0..cfg.max_epochs {
        opt.set_learning_rate(cfg.lr_at(epoch));
        let perm: Vec<u32> = rng::permutation(&mut r, n)
            .into_iter()
            .map(|i| i as u32)
            .collect();
        let perm = Tensor::from_vec(perm, n, device)?;
        let xs = train.x.index_select(&perm, 0)?;
        let ys = match &train.y {
            Some(y) => Some(y.index_select(&perm, 0)?),
            None => None,
        };
        let shuffled = Data { x: xs, y: ys };
        let mut sum = Tensor::zeros((), DType::F64, device)?;
        let mut start = 0;
        while start < n {
            let len = cfg.batch_size.min(n - start);
            let (x, y) = shuffled.narrow(start, len)?;
            let l = loss(&net, &x, y.as_ref(), &mut r)?;
            opt.backward_step(&l)?;
            sum = (sum + (l.detach().to_dtype(DType::F64)? * len as f64)?)?;
            start += len;
        }
        let train_loss = sum.to_scalar::<f64>()? / n as f64;
        epochs_run = epoch + 1;
        if epoch == 0 {
            first_train = train_loss;
        }
        if !train_loss.is_finite() {
            tracing::warn!(
                epoch,
                "non-finite training loss; keeping the best weights so far"
            );
            history.push((train_loss, f64::NAN));
            break;
        }
        let held_loss = eval_loss(&net, held, eval_chunk, eval_seed, loss)?;
        history.push((train_loss, held_loss));
        tracing::debug!(epoch, train_loss, held_loss, "epoch");
        if held_loss.is_finite() && held_loss < best_loss - cfg.min_delta {
            best_loss = held_loss;
            best_epoch = epoch + 1;
            best = net.snapshot()?;
        } else if epoch + 1 - best_epoch >= cfg.patience {
            stopped_early = true;
            break;
        }
    }
    if !best_loss.is_finite() {
        return Err(ModelError::Diverged("no finite held-out loss".into()));
    }
    let report = TrainReport {
        train_rows: n,
        held_out_rows: held.rows()?,
        epochs_run,
        best_epoch,
        best_held_out_loss: best_loss,
        initial_held_out_loss: initial,
        first_epoch_train_loss: first_train,
        stopped_early,
        seconds: started.elapsed().as_secs_f64(),
        device: crate::device::device_name(device),
        history,
    };
    tracing::info!(
        epochs = report.epochs_run,
        best_epoch = report.best_epoch,
        held_out_loss = report.best_held_out_loss,
        seconds = report.seconds,
        "training finished"
    );
    Ok((best, report))
}

/// Gathers rows `idx` of a row-major matrix.
pub(crate) fn gather_rows(data: &[f64], d: usize, idx: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        out.extend_from_slice(&data[i * d..(i + 1) * d]);
    }
    out
}

/// A `[n, d]` tensor of the given dtype from row-major f64 values.
pub(crate) fn to_tensor(
    data: &[f64],
    n: usize,
    d: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    Ok(match dtype {
        DType::F64 => Tensor::from_slice(data, (n, d), device)?,
        _ => {
            let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
            Tensor::from_vec(v, (n, d), device)?.to_dtype(dtype)?
        }
    })
}

/// Quantile with linear interpolation between order statistics (type 7); NaNs ignored.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let h = q * (v.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    Some(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_type7() {
        let v = [3.0, 1.0, 2.0, 4.0, f64::NAN];
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(4.0));
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert!((quantile(&v, 0.9).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&v, 1.5), None);
    }

    #[test]
    fn schedule_and_split() {
        let cfg = TrainConfig {
            max_epochs: 10,
            lr: 1.0,
            ..Default::default()
        };
        assert_eq!(cfg.lr_at(0), 1.0);
        assert!(cfg.lr_at(9) < 0.1);
        let (tr, he) = cfg.split(100, 10).unwrap();
        assert_eq!((tr.len(), he.len()), (80, 20));
        let mut all: Vec<usize> = tr.iter().chain(&he).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(cfg.split(5, 10).is_err());
        assert!(
            TrainConfig {
                held_out_fraction: 0.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            TrainConfig {
                lr: f64::NAN,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
