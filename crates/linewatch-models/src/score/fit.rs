//! Fitting a [`ScoreModel`]: the contiguous held-out split, the Gaussian part, the RePU
//! residual and its selection, and the calibration scores behind threshold and p-values.

use candle_core::{DType, Device, Tensor};

use super::shrinkage::{Calibration, Shrinkage};
use super::{MAX_CALIBRATION, ResidualMode, ScoreConfig, ScoreModel, ScoreSummary, eval};
use crate::error::{ModelError, Result};
use crate::gaussian::Whitener;
use crate::mlp::{Directions, Mlp};
use crate::standardize::{Standardizer, check_rows};
use crate::train::{self, Data, TrainReport, quantile};

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
pub(super) fn gauss_ism_rows(u: &[f64], d: usize) -> Vec<f64> {
    u.chunks_exact(d)
        .map(|r| 0.5 * r.iter().map(|v| v * v).sum::<f64>())
        .collect()
}

pub(super) fn to_f64_rows<T: Copy + Into<f64>>(rows: &[T]) -> Vec<f64> {
    rows.iter().map(|&v| v.into()).collect()
}

/// Contiguous block split of `n` time-ordered rows: `(fit, held)` ranges, the newest
/// `held_fraction` held out, `gap` rows between them dropped.
pub(super) fn newest_block(
    n: usize,
    held_fraction: f64,
    gap: usize,
) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let n_held = ((n as f64 * held_fraction).round() as usize).max(1);
    let held_start = n.saturating_sub(n_held);
    (0..held_start.saturating_sub(gap), held_start..n)
}

/// Half-width of the smallest cube around 0 holding the rows `u`, capped by `clip`.
pub(super) fn box_of(u: &[f64], clip: Option<f64>) -> f64 {
    let m = u.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    clip.map_or(m, |c| m.min(c))
}

pub(super) fn clamp_rows(u: &[f64], clip: Option<f64>) -> Vec<f64> {
    match clip {
        Some(c) => u.iter().map(|v| v.clamp(-c, c)).collect(),
        None => u.to_vec(),
    }
}

/// Evenly spaced order statistics of sorted `v`, at most `max` of them (first and last kept).
pub(super) fn thin_sorted(v: Vec<f64>, max: usize) -> Vec<f64> {
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
        // "auto" chooses the shrinkage on contiguous blocks of every row; the same blocks'
        // out-of-fold scores calibrate a Gaussian-only model (built here only when needed).
        let mut calibration = None;
        let a = match cfg.shrinkage {
            Shrinkage::Fixed(a) => Some(a),
            Shrinkage::LedoitWolf => None,
            Shrinkage::Auto => {
                let c = Calibration::new(&rows, d, cfg, gap)?;
                let a = c.choose(&rows, d, cfg)?;
                calibration = Some(c);
                Some(a)
            }
        };
        let gauss = Whitener::fit(&zf, d, a)?;
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
                let cal = match calibration {
                    Some(c) => c,
                    None => Calibration::new(&rows, d, cfg, gap)?,
                }
                .scores(&rows, d, cfg, a)?;
                let st = Standardizer::fit(&rows, d)?;
                let (z, _) = st.transform(&rows, cfg.clip)?;
                let g = Whitener::fit(&z, d, a)?;
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
}
