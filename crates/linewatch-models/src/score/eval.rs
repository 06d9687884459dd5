//! Evaluation of a trained [`ScoreModel`]: anomaly scores, the score field and its Jacobian
//! diagonal, the log-density drop and its per-feature split.

use candle_core::{DType, Tensor};

use super::fit::{clamp_rows, to_f64_rows};
use super::{ScoreBatch, ScoreModel};
use crate::error::{ModelError, Result};
use crate::mlp::Directions;
use crate::standardize::check_rows;
use crate::train;

/// Floor on the conditional precision `-ds_j/dz_j` (standardised units) in the evidence that
/// splits the log-density drop: a Gaussian has `>= 1` there (conditional variance <= marginal).
const CURVATURE_FLOOR: f64 = 0.25;

/// Elements per tangent tensor in one scoring chunk (bounds memory: 2^21 f32 = 8 MiB).
pub(super) const CHUNK_ELEMS: usize = 1 << 21;

impl ScoreModel {
    fn standardize(&self, rows: &[f64]) -> Result<(Vec<f64>, Vec<u32>, usize)> {
        let d = self.n_features();
        let n = check_rows(rows, d)?;
        let (z, imp) = self.standardizer.transform(rows, self.config.clip)?;
        Ok((z, imp, n))
    }

    fn chunk_rows(&self, per_row: usize) -> usize {
        (CHUNK_ELEMS / per_row.max(1)).clamp(1, 1 << 16)
    }

    fn max_width(&self) -> usize {
        self.net
            .as_ref()
            .and_then(|n| n.config().hidden.iter().copied().max())
            .unwrap_or(1)
            .max(self.n_features())
    }

    /// Rows `start..start + len` of row-major `u` (clamped) as a tensor for the residual.
    fn rows_tensor(&self, u: &[f64], start: usize, len: usize) -> Result<Option<Tensor>> {
        let Some(net) = &self.net else {
            return Ok(None);
        };
        let d = self.n_features();
        let uc = clamp_rows(&u[start * d..(start + len) * d], Some(self.residual_box));
        Ok(Some(train::to_tensor(
            &uc,
            len,
            d,
            net.dtype(),
            net.device(),
        )?))
    }

    /// Anomaly scores only (the hot path): `log p(x0) - log p(x)` per row, in nats.
    pub fn anomaly_scores<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<Vec<f64>> {
        let rows = to_f64_rows(rows);
        let (z, _, n) = self.standardize(&rows)?;
        let u = self.gauss.apply(&z);
        let mut out: Vec<f64> = u
            .chunks_exact(self.n_features())
            .map(|r| 0.5 * r.iter().map(|v| v * v).sum::<f64>())
            .collect();
        if self.net.is_some() {
            let res = self.residual_line_integrals(&u, n)?;
            for (o, r) in out.iter_mut().zip(res) {
                *o -= r;
            }
        }
        Ok(out)
    }

    /// Anomaly scores, p-values, `log_density_rel` and per-feature contributions.
    pub fn score<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<ScoreBatch> {
        let rows = to_f64_rows(rows);
        let anomaly_score = self.anomaly_scores(&rows)?;
        let (z, imputed, n) = self.standardize(&rows)?;
        let d = self.n_features();
        let (s, diag) = self.field_std(&z, n)?;
        let mut evidence: Vec<f64> = s
            .iter()
            .zip(&diag)
            .map(|(sj, dj)| sj * sj / (2.0 * (-dj).max(CURVATURE_FLOOR)))
            .collect();
        // A missing input (imputed with the training mean) is never named as a driver.
        for (e, x) in evidence.iter_mut().zip(&rows) {
            if !x.is_finite() {
                *e = 0.0;
            }
        }
        let mut contributions = Vec::with_capacity(n * d);
        for ((a, e), x) in anomaly_score
            .iter()
            .zip(evidence.chunks_exact(d))
            .zip(rows.chunks_exact(d))
        {
            let total = -a;
            let sum: f64 = e.iter().sum();
            if sum.is_finite() && sum > 0.0 {
                contributions.extend(e.iter().map(|ej| total * ej / sum));
            } else {
                // At a stationary point of the field nothing stands out: an even split over
                // the observed inputs (over all of them when none was observed).
                let observed = x.iter().filter(|v| v.is_finite()).count();
                let share = |v: &f64| {
                    if observed == 0 {
                        total / d as f64
                    } else if v.is_finite() {
                        total / observed as f64
                    } else {
                        0.0
                    }
                };
                contributions.extend(x.iter().map(share));
            }
        }
        let log_density_rel = contributions
            .chunks_exact(d)
            .map(|c| c.iter().sum::<f64>())
            .collect();
        let p_value = self.p_values(&anomaly_score);
        Ok(ScoreBatch {
            n_features: d,
            anomaly_score,
            p_value,
            log_density_rel,
            contributions,
            imputed,
        })
    }

    /// The score `s_z(z)` and the Jacobian diagonal `ds_j/dz_j` in standardised space for
    /// row-major `z`, both row-major `[n, d]`.
    pub(super) fn field_std(&self, z: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        let d = self.n_features();
        let u = self.gauss.apply(z);
        let p_diag = self.gauss.precision_diag();
        let mut s_u: Vec<f64> = u.iter().map(|v| -v).collect();
        let mut diag: Vec<f64> = (0..n * d).map(|k| -p_diag[k % d]).collect();
        if let Some(net) = &self.net {
            // Directions v_j = W e_j (column j of W), one per feature: v_j^T J_r v_j is the
            // residual's share of ds_j/dz_j, since ds_z/dz = W^T (-I + J_r) W.
            let mut v = vec![0.0; d * d];
            for j in 0..d {
                for k in 0..d {
                    v[j * d + k] = self.gauss.w[k * d + j];
                }
            }
            let vt = train::to_tensor(&v, d, d, net.dtype(), net.device())?;
            let chunk = self.chunk_rows(d * self.max_width());
            for start in (0..n).step_by(chunk) {
                let len = chunk.min(n - start);
                let Some(x) = self.rows_tensor(&u, start, len)? else {
                    break;
                };
                let (r, t) = net.jvp(&x, Directions::Shared(&vt))?; // [len, d], [d, len, d]
                let q = t.broadcast_mul(&vt.unsqueeze(1)?)?.sum(2)?; // [d, len]
                let r = r.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
                let q = q
                    .t()?
                    .to_dtype(DType::F64)?
                    .flatten_all()?
                    .to_vec1::<f64>()?;
                let base = start * d;
                for k in 0..len * d {
                    s_u[base + k] += r[k];
                    diag[base + k] += q[k];
                }
            }
        }
        Ok((self.gauss.pull_back(&s_u), diag))
    }

    /// `int_0^1 r(t u) . u dt` per row (Gauss-Legendre on [0, 1]), the residual's share of
    /// `log p(x) - log p(x0)`.
    fn residual_line_integrals(&self, u: &[f64], n: usize) -> Result<Vec<f64>> {
        let Some(net) = &self.net else {
            return Ok(vec![0.0; n]);
        };
        let d = self.n_features();
        let q = self.quad_t.len();
        let dev = net.device();
        let dtype = net.dtype();
        let chunk = self.chunk_rows(q * self.max_width());
        let t = Tensor::from_slice(&self.quad_t, (q, 1, 1), dev)?.to_dtype(dtype)?;
        let w = Tensor::from_slice(&self.quad_w, (q, 1, 1), dev)?.to_dtype(dtype)?;
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(chunk) {
            let len = chunk.min(n - start);
            let uc = &u[start * d..(start + len) * d];
            let x = train::to_tensor(uc, len, d, dtype, dev)?;
            let pts = x.unsqueeze(0)?.broadcast_mul(&t)?.reshape((q * len, d))?;
            let pts = pts.clamp(-self.residual_box, self.residual_box)?;
            let r = net.forward(&pts)?.reshape((q, len, d))?;
            let avg = r.broadcast_mul(&w)?.sum(0)?; // [len, d]: int_0^1 r(t u) dt
            let avg = avg.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            out.extend(
                avg.chunks_exact(d)
                    .zip(uc.chunks_exact(d))
                    .map(|(a, ur)| a.iter().zip(ur).map(|(a, uv)| a * uv).sum::<f64>()),
            );
        }
        Ok(out)
    }

    /// The estimated score `grad_x log p(x)` in raw units (`s_j(z) / std_j`), row-major.
    pub fn score_vectors<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<Vec<f64>> {
        let rows = to_f64_rows(rows);
        let (z, _, n) = self.standardize(&rows)?;
        let d = self.n_features();
        let (s, _) = self.field_std(&z, n)?;
        Ok(s.iter()
            .enumerate()
            .map(|(k, v)| v / self.standardizer.std[k % d])
            .collect())
    }

    /// Hyvarinen scores `0.5 |s(z)|^2 + tr(ds/dz)(z)` per row in standardised space (the
    /// implicit score-matching objective per row; exact trace).
    pub fn hyvarinen_scores<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<Vec<f64>> {
        let rows = to_f64_rows(rows);
        let (z, _, n) = self.standardize(&rows)?;
        let d = self.n_features();
        let (s, diag) = self.field_std(&z, n)?;
        Ok(s.chunks_exact(d)
            .zip(diag.chunks_exact(d))
            .map(|(s, g)| 0.5 * s.iter().map(|v| v * v).sum::<f64>() + g.iter().sum::<f64>())
            .collect())
    }

    /// Mean ISM objective over the rows (exact trace, standardised space), e.g. for the
    /// validation gate of a retrained model.
    pub fn ism_loss<T: Copy + Into<f64>>(&self, rows: &[T]) -> Result<f64> {
        let s = self.hyvarinen_scores(rows)?;
        if s.is_empty() {
            return Err(ModelError::InvalidInput("no rows".into()));
        }
        Ok(s.iter().sum::<f64>() / s.len() as f64)
    }
}
