//! The Gaussian part of the score model: a shrinkage covariance of the standardised training
//! windows and the whitening map it defines.
//!
//! In standardised space `z`, the Gaussian part is `N(m, Sigma)` with
//! `Sigma = a mu I + (1 - a) S` (`S` the sample covariance, `mu = tr(S) / d`), its score
//! `-P (z - m)` with `P = Sigma^-1`, and its log-density drop from the centre
//! `-0.5 (z - m)^T P (z - m)`: half the squared Mahalanobis distance, Hotelling's T² statistic
//! of the window. The shrinkage intensity `a` is given, or Ledoit & Wolf's (2004, "A
//! well-conditioned estimator for large-dimensional covariance matrices", J. Multivariate Anal.
//! 88, Theorem 1 and Lemmas 3.2-3.4); the score model chooses it for detection by default
//! (`score::Shrinkage`).
//!
//! The whitening map `u = W (z - m)` with `W = Lambda^-1/2 V^T` (`Sigma = V Lambda V^T`) turns
//! the Gaussian part into a standard normal, `W^T W = P`. The RePU residual of the score model
//! lives in `u`, where every direction has unit variance.

use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Relative floor on the eigenvalues of the shrunk covariance (of `mu`): keeps `P` finite
/// when the history is exactly collinear and the shrinkage estimate is 0.
const EIGEN_FLOOR: f64 = 1e-6;

/// The fitted Gaussian part and its whitening map, in standardised space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Whitener {
    /// Centre `m` (standardised units, length `d`).
    pub mean: Vec<f64>,
    /// `W`, row-major `[d, d]`: `u = W (z - m)`.
    pub w: Vec<f64>,
    /// Shrinkage intensity `a` in `[0, 1]` that was used.
    pub shrinkage: f64,
    /// Eigenvalues of the shrunk covariance, descending.
    pub eigenvalues: Vec<f64>,
}

impl Whitener {
    /// Fits the Gaussian part on row-major standardised rows `z` (`d` columns, finite values).
    /// `shrinkage`: `None` = the Ledoit-Wolf estimate, `Some(a)` = fixed `a` in `[0, 1]`.
    ///
    /// Errors: fewer than 2 rows, a non-finite value, or `a` out of range.
    pub fn fit(z: &[f64], d: usize, shrinkage: Option<f64>) -> Result<Self> {
        let n = crate::standardize::check_rows(z, d)?;
        if n < 2 {
            return Err(ModelError::InsufficientData(format!(
                "{n} rows: the Gaussian part needs at least 2"
            )));
        }
        if z.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::InvalidInput(
                "non-finite standardised value".into(),
            ));
        }
        let (mean, xc, s) = centred_covariance(z, n, d);
        let mu = s.trace() / d as f64;
        let a = match shrinkage {
            Some(a) => a,
            None => ledoit_wolf(&xc, &s, mu),
        };
        Self::from_covariance(mean, s, a)
    }

    /// The Gaussian part of a given centre `m` and sample covariance `s` (`[d, d]`, standardised
    /// units, divisor `n`) shrunk by a fixed `a` in `[0, 1]`: `Sigma = a mu I + (1 - a) S`, its
    /// eigenvalues floored at `1e-6 mu`. Lets a caller reuse one covariance for several `a`.
    ///
    /// Errors: `a` out of range, a shape mismatch, or a non-finite whitening map.
    pub(crate) fn from_covariance(mean: Vec<f64>, s: DMatrix<f64>, a: f64) -> Result<Self> {
        let d = mean.len();
        if s.nrows() != d || s.ncols() != d {
            return Err(ModelError::InvalidInput(format!(
                "covariance of shape {}x{} for {d} features",
                s.nrows(),
                s.ncols()
            )));
        }
        if !(0.0..=1.0).contains(&a) {
            return Err(ModelError::InvalidConfig(format!(
                "shrinkage {a} is not in [0, 1]"
            )));
        }
        let mu = s.trace() / d as f64;
        let mut sigma = s * (1.0 - a);
        for j in 0..d {
            sigma[(j, j)] += a * mu;
        }
        let eig = SymmetricEigen::new(sigma);
        let floor = EIGEN_FLOOR * mu.max(f64::MIN_POSITIVE);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&i, &j| eig.eigenvalues[j].total_cmp(&eig.eigenvalues[i]));
        let mut w = Vec::with_capacity(d * d);
        let mut eigenvalues = Vec::with_capacity(d);
        for &k in &order {
            let lam = eig.eigenvalues[k].max(floor);
            eigenvalues.push(lam);
            let inv = 1.0 / lam.sqrt();
            w.extend(eig.eigenvectors.column(k).iter().map(|v| v * inv));
        }
        let out = Self {
            mean,
            w,
            shrinkage: a,
            eigenvalues,
        };
        out.validate().map_err(ModelError::Diverged)?;
        Ok(out)
    }

    /// The identity map (centre 0, `W = I`) for `d` features.
    pub fn identity(d: usize) -> Self {
        let mut w = vec![0.0; d * d];
        for j in 0..d {
            w[j * d + j] = 1.0;
        }
        Self {
            mean: vec![0.0; d],
            w,
            shrinkage: 0.0,
            eigenvalues: vec![1.0; d],
        }
    }

    /// The map of a given precision `P` (row-major `[d, d]`, symmetric positive definite)
    /// around `mean`: `W = Lambda^1/2 V^T` from `P = V Lambda V^T`. Errors when `P` is not
    /// positive definite.
    pub fn from_precision(mean: Vec<f64>, precision: &[f64]) -> Result<Self> {
        let d = mean.len();
        if precision.len() != d * d {
            return Err(ModelError::InvalidInput(format!(
                "precision of {} values for {d} features",
                precision.len()
            )));
        }
        let eig = SymmetricEigen::new(DMatrix::from_row_slice(d, d, precision));
        if eig.eigenvalues.iter().any(|l| !(l.is_finite() && *l > 0.0)) {
            return Err(ModelError::InvalidInput(
                "precision is not positive definite".into(),
            ));
        }
        let mut w = Vec::with_capacity(d * d);
        let mut eigenvalues = Vec::with_capacity(d);
        for k in 0..d {
            let lam = eig.eigenvalues[k];
            eigenvalues.push(1.0 / lam);
            w.extend(eig.eigenvectors.column(k).iter().map(|v| v * lam.sqrt()));
        }
        Ok(Self {
            mean,
            w,
            shrinkage: 0.0,
            eigenvalues,
        })
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Checks shapes and values (used when loading a checkpoint).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let d = self.mean.len();
        if self.w.len() != d * d || self.eigenvalues.len() != d {
            return Err(format!(
                "whitening map of {} values and {} eigenvalues for {d} features",
                self.w.len(),
                self.eigenvalues.len()
            ));
        }
        if self.mean.iter().chain(&self.w).any(|v| !v.is_finite()) {
            return Err("non-finite value in the whitening map".into());
        }
        if !(0.0..=1.0).contains(&self.shrinkage) {
            return Err(format!("shrinkage {} is not in [0, 1]", self.shrinkage));
        }
        Ok(())
    }

    /// `u = W (z - m)` for row-major rows.
    pub fn apply(&self, z: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut out = Vec::with_capacity(z.len());
        let mut c = vec![0.0; d];
        for row in z.chunks_exact(d) {
            for j in 0..d {
                c[j] = row[j] - self.mean[j];
            }
            for k in 0..d {
                let wk = &self.w[k * d..(k + 1) * d];
                out.push(wk.iter().zip(&c).map(|(a, b)| a * b).sum());
            }
        }
        out
    }

    /// `W^T v` for row-major rows `v` (maps a score in `u` to a score in `z`).
    pub fn pull_back(&self, v: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut out = vec![0.0; v.len()];
        for (row, o) in v.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            for k in 0..d {
                let vk = row[k];
                if vk != 0.0 {
                    let wk = &self.w[k * d..(k + 1) * d];
                    for j in 0..d {
                        o[j] += wk[j] * vk;
                    }
                }
            }
        }
        out
    }

    /// Diagonal of the precision `P = W^T W` (the conditional precision of each feature).
    pub fn precision_diag(&self) -> Vec<f64> {
        let d = self.dim();
        (0..d)
            .map(|j| (0..d).map(|k| self.w[k * d + j].powi(2)).sum())
            .collect()
    }
}

/// Column means, centred rows `[n, d]` and sample covariance (divisor `n`) of row-major `z`.
pub(crate) fn centred_covariance(
    z: &[f64],
    n: usize,
    d: usize,
) -> (Vec<f64>, DMatrix<f64>, DMatrix<f64>) {
    let x = DMatrix::from_row_slice(n, d, z);
    let mean: Vec<f64> = (0..d).map(|j| x.column(j).mean()).collect();
    let mut xc = x;
    for (j, m) in mean.iter().enumerate() {
        xc.column_mut(j).add_scalar_mut(-m);
    }
    let s = xc.transpose() * &xc / n as f64;
    (mean, xc, s)
}

/// Ledoit-Wolf shrinkage intensity towards `mu I` for centred rows `xc` `[n, d]` with sample
/// covariance `s` (divisor `n`): `min(b2, d2) / d2` with `d2 = ||S - mu I||^2` and
/// `b2 = n^-2 sum_i ||x_i x_i^T - S||^2 = n^-2 (sum_i |x_i|^4 - n ||S||^2)`.
pub(crate) fn ledoit_wolf(xc: &DMatrix<f64>, s: &DMatrix<f64>, mu: f64) -> f64 {
    let n = xc.nrows() as f64;
    let s_norm2 = s.norm_squared();
    let mut d2 = s_norm2;
    for j in 0..s.nrows() {
        d2 += -2.0 * mu * s[(j, j)] + mu * mu;
    }
    let fourth: f64 = xc.row_iter().map(|r| r.norm_squared().powi(2)).sum();
    let b2 = ((fourth - n * s_norm2) / (n * n)).max(0.0);
    if d2 <= 0.0 || !d2.is_finite() {
        return 1.0;
    }
    (b2.min(d2) / d2).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    #[test]
    fn whitening_inverts_the_covariance() {
        // 2-D, correlation 0.8, no shrinkage: W^T W must be the inverse sample covariance.
        let mut r = rng::seeded(3);
        let n = 4000;
        let mut z = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let e = rng::normals(&mut r, 2);
            z.push(e[0]);
            z.push(0.8 * e[0] + 0.6 * e[1]);
        }
        let wh = Whitener::fit(&z, 2, Some(0.0)).unwrap();
        let m = DMatrix::from_row_slice(n, 2, &z);
        let mean = [m.column(0).mean(), m.column(1).mean()];
        let mut s = [[0.0; 2]; 2];
        for i in 0..n {
            for a in 0..2 {
                for b in 0..2 {
                    s[a][b] += (z[2 * i + a] - mean[a]) * (z[2 * i + b] - mean[b]) / n as f64;
                }
            }
        }
        let det = s[0][0] * s[1][1] - s[0][1] * s[1][0];
        let p = [
            [s[1][1] / det, -s[0][1] / det],
            [-s[1][0] / det, s[0][0] / det],
        ];
        for a in 0..2 {
            for b in 0..2 {
                let wtw: f64 = (0..2).map(|k| wh.w[k * 2 + a] * wh.w[k * 2 + b]).sum();
                assert!(
                    (wtw - p[a][b]).abs() < 1e-9,
                    "P[{a}][{b}] {wtw} vs {}",
                    p[a][b]
                );
            }
        }
        assert_eq!(wh.precision_diag().len(), 2);
        assert!((wh.precision_diag()[0] - p[0][0]).abs() < 1e-9);
        // Whitened rows have identity covariance.
        let u = wh.apply(&z);
        let c01: f64 = u.chunks_exact(2).map(|r| r[0] * r[1]).sum::<f64>() / n as f64;
        let c00: f64 = u.chunks_exact(2).map(|r| r[0] * r[0]).sum::<f64>() / n as f64;
        assert!(c01.abs() < 1e-9 && (c00 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn ledoit_wolf_shrinks_short_histories_more() {
        // A correlated law (x_j = e_j + 0.8 e_{j-1}): few rows give a noisy sample covariance
        // and strong shrinkage, many rows a reliable one and little.
        let d = 20;
        let mut r = rng::seeded(11);
        let sample = |r: &mut rand::rngs::StdRng, n: usize| -> Vec<f64> {
            let mut out = Vec::with_capacity(n * d);
            for _ in 0..n {
                let e = rng::normals(r, d + 1);
                out.extend((0..d).map(|j| e[j + 1] + 0.8 * e[j]));
            }
            out
        };
        let short = sample(&mut r, 15);
        let long = sample(&mut r, 20_000);
        let a_short = Whitener::fit(&short, d, None).unwrap().shrinkage;
        let a_long = Whitener::fit(&long, d, None).unwrap().shrinkage;
        assert!(a_short > 0.3, "short history shrinkage {a_short}");
        assert!(a_long < 0.02, "long history shrinkage {a_long}");
        // The target itself (independent unit variances) is shrunk to, whatever the length.
        let iid = rng::normals(&mut r, 5_000 * d);
        assert!(Whitener::fit(&iid, d, None).unwrap().shrinkage > 0.9);
        // More features than rows still gives a positive definite map.
        let wide = sample(&mut r, 10);
        let wh = Whitener::fit(&wide, d, None).unwrap();
        assert!(wh.eigenvalues.iter().all(|l| *l > 0.0));
    }

    #[test]
    fn from_precision_and_pull_back_agree() {
        let p = [2.0, -1.0, -1.0, 2.0];
        let wh = Whitener::from_precision(vec![0.0, 0.0], &p).unwrap();
        // W^T W z = P z
        let z = [0.3, -1.2];
        let u = wh.apply(&z);
        let back = wh.pull_back(&u);
        assert!((back[0] - (2.0 * 0.3 + 1.2)).abs() < 1e-12);
        assert!((back[1] - (-0.3 - 2.4)).abs() < 1e-12);
        assert!(Whitener::from_precision(vec![0.0, 0.0], &[1.0, 2.0, 2.0, 1.0]).is_err());
        assert!(Whitener::fit(&[0.0, 1.0], 2, None).is_err());
        assert!(Whitener::fit(&[0.0, 1.0, 1.0, 0.0], 2, Some(1.5)).is_err());
    }
}
