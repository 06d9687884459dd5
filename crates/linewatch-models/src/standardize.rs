//! Per-feature standardisation and the missing-value policy.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Per-feature affine map `z_j = (x_j - mean_j) / std_j`, fitted on the training rows.
///
/// * Missing values: a non-finite input (`NaN`, which is how a missing channel arrives, or
///   `±inf`) is imputed with the training mean, i.e. `z_j = 0` in standardised space. Fitting
///   ignores non-finite values per feature. Callers get the per-row count of imputed values.
/// * Constant features: when a feature's training standard deviation is zero (or below
///   `1e-12 * max(1, |mean|)`, or there is no finite value at all) its `std` is set to 1, so the
///   feature is centred but not scaled, and a warning is logged.
/// * Clipping: when `clip` is set, standardised values are clamped to `[-clip, clip]` so that
///   far-out inputs cannot overflow a high-degree RePU polynomial.
///
/// Units: the map is affine with a constant Jacobian, so a log-density *difference* computed
/// in standardised space equals the difference in raw units exactly
/// (`log p_x(x) = log p_z(z) - sum_j log std_j`). Scores transform as
/// `d/dx_j log p = (d/dz_j log p) / std_j`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standardizer {
    /// Training mean per feature (raw units).
    pub mean: Vec<f64>,
    /// Training standard deviation per feature (raw units, > 0).
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Fits mean and (population) standard deviation per column of a row-major matrix.
    pub fn fit(rows: &[f64], n_cols: usize) -> Result<Self> {
        let n = check_rows(rows, n_cols)?;
        let mut mean = vec![0.0; n_cols];
        let mut std = vec![1.0; n_cols];
        for j in 0..n_cols {
            let (mut cnt, mut s) = (0usize, 0.0);
            for i in 0..n {
                let v = rows[i * n_cols + j];
                if v.is_finite() {
                    cnt += 1;
                    s += v;
                }
            }
            if cnt == 0 {
                tracing::warn!(
                    feature = j,
                    "feature has no finite training value; mean 0, std 1"
                );
                continue;
            }
            let m = s / cnt as f64;
            let mut ss = 0.0;
            for i in 0..n {
                let v = rows[i * n_cols + j];
                if v.is_finite() {
                    ss += (v - m) * (v - m);
                }
            }
            let sd = (ss / cnt as f64).sqrt();
            mean[j] = m;
            std[j] = if sd.is_finite() && sd > 1e-12 * m.abs().max(1.0) {
                sd
            } else {
                tracing::warn!(
                    feature = j,
                    mean = m,
                    "constant feature in training data; std set to 1"
                );
                1.0
            };
        }
        Ok(Self { mean, std })
    }

    /// The identity map for `d` features.
    pub fn identity(d: usize) -> Self {
        Self {
            mean: vec![0.0; d],
            std: vec![1.0; d],
        }
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Checks lengths and values (used when loading a checkpoint).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.mean.len() != self.std.len() {
            return Err(format!(
                "standardisation has {} means and {} stds",
                self.mean.len(),
                self.std.len()
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err("non-finite standardisation mean".into());
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err("standardisation std must be finite and > 0".into());
        }
        Ok(())
    }

    /// Standardises a row-major matrix; returns the values and the per-row count of imputed
    /// (non-finite) inputs. Values are clamped to `[-clip, clip]` when `clip` is given.
    pub fn transform(&self, rows: &[f64], clip: Option<f64>) -> Result<(Vec<f64>, Vec<u32>)> {
        let d = self.dim();
        let n = check_rows(rows, d)?;
        let mut out = Vec::with_capacity(rows.len());
        let mut imputed = vec![0u32; n];
        for (i, row) in rows.chunks_exact(d).enumerate() {
            for j in 0..d {
                let v = row[j];
                let z = if v.is_finite() {
                    let z = (v - self.mean[j]) / self.std[j];
                    match clip {
                        Some(c) => z.clamp(-c, c),
                        None => z,
                    }
                } else {
                    imputed[i] += 1;
                    0.0
                };
                out.push(z);
            }
        }
        Ok((out, imputed))
    }
}

/// Checks that `rows` is a non-empty whole number of rows of `n_cols`; returns the row count.
pub(crate) fn check_rows(rows: &[f64], n_cols: usize) -> Result<usize> {
    if n_cols == 0 {
        return Err(ModelError::InvalidInput("zero features".into()));
    }
    if !rows.len().is_multiple_of(n_cols) {
        return Err(ModelError::InvalidInput(format!(
            "row-major data of length {} is not a multiple of {} features",
            rows.len(),
            n_cols
        )));
    }
    Ok(rows.len() / n_cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_transform_guards() {
        // Column 0 varies, column 1 is constant, column 2 has a NaN.
        let rows = [1.0, 5.0, 1.0, 3.0, 5.0, f64::NAN, 5.0, 5.0, 3.0];
        let s = Standardizer::fit(&rows, 3).unwrap();
        assert_eq!(s.mean, vec![3.0, 5.0, 2.0]);
        assert!((s.std[0] - (8.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(s.std[1], 1.0);
        assert_eq!(s.std[2], 1.0);
        s.validate().unwrap();
        let (z, imp) = s.transform(&rows, None).unwrap();
        assert_eq!(imp, vec![0, 1, 0]);
        assert_eq!(z[5], 0.0);
        assert_eq!(z[1], 0.0);
        let (zc, _) = s.transform(&[1e9, 5.0, f64::INFINITY], Some(10.0)).unwrap();
        assert_eq!(zc, vec![10.0, 0.0, 0.0]);
        assert!(s.transform(&[1.0, 2.0], None).is_err());
        assert!(Standardizer::fit(&[1.0], 0).is_err());
    }
}
