//! PCA monitor: fitting, control limits and scoring.

mod fitted;
mod limits;

use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize, Serializer};

use crate::BaselineError;

use fitted::Fitted;
use limits::{choose_k, spe_limit, t2_limit};

pub use limits::SpeLimitMethod;

/// An eigenvalue below this share of the total variance is rounding noise and is stored as 0.
const ZERO_EIGENVALUE: f64 = 1e-12;
/// Settings of [`PcaMonitor::fit`].
///
/// Deserializes from a table with the two keys below (both optional, unknown keys rejected).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PcaConfig {
    /// Keep the fewest principal components whose eigenvalues reach this share of the total
    /// variance (the sum of all eigenvalues of the correlation matrix). In (0, 1); default 0.90.
    pub explained_variance: f64,
    /// Confidence level of both control limits: on normal data a fresh row exceeds each limit
    /// with probability about `1 - confidence`. In (0, 1); default 0.99.
    pub confidence: f64,
}

impl Default for PcaConfig {
    fn default() -> Self {
        Self {
            explained_variance: 0.90,
            confidence: 0.99,
        }
    }
}

impl PcaConfig {
    /// Checks that both fields lie in the open interval (0, 1).
    ///
    /// # Errors
    /// [`BaselineError::InvalidConfig`] naming the first bad field (NaN is bad).
    pub fn validate(&self) -> Result<(), BaselineError> {
        for (field, value) in [
            ("explained_variance", self.explained_variance),
            ("confidence", self.confidence),
        ] {
            if !(value > 0.0 && value < 1.0) {
                return Err(BaselineError::InvalidConfig { field, value });
            }
        }
        Ok(())
    }
}
/// The two statistics of one row. Units are those of the autoscaled data (each column divided
/// by its training standard deviation), so both are dimensionless.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PcaScore {
    /// Hotelling's T² in the model plane: `Σ_{a<k} t_a² / λ_a` with `t = Pᵀ z`.
    pub t2: f64,
    /// Squared prediction error (Q statistic): `‖z − P Pᵀ z‖²`.
    pub spe: f64,
    /// Number of NaN (missing) cells of the row, imputed at the training mean (`z = 0`).
    pub imputed: u32,
}

impl PcaScore {
    /// True when either statistic exceeds its limit: `t2 > m.t2_limit()` or
    /// `spe > m.spe_limit()`.
    #[must_use]
    pub fn alarm(&self, m: &PcaMonitor) -> bool {
        self.t2 > m.t2_limit() || self.spe > m.spe_limit()
    }
}
/// A fitted PCA process monitor: autoscaling, `k` principal components of the correlation
/// matrix, and the control limits of T² and SPE.
///
/// Serializes (serde) as a plain object of numbers, so it can be stored as JSON; deserializing
/// checks that the parts fit together (lengths, finiteness, order of the eigenvalues) and fails
/// otherwise, so a loaded monitor never panics when scoring. For bit-identical scores after a
/// JSON round trip, parse with `serde_json`'s `float_roundtrip` feature (on in this workspace).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Fitted")]
pub struct PcaMonitor(Fitted);

impl Serialize for PcaMonitor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl TryFrom<Fitted> for PcaMonitor {
    type Error = BaselineError;

    fn try_from(f: Fitted) -> Result<Self, BaselineError> {
        f.check()?;
        Ok(Self(f))
    }
}

impl PcaMonitor {
    /// Fits the monitor on rows of normal operation.
    ///
    /// `rows` is row-major, `n × d` (`rows.len() == n * d`). Steps:
    /// 1. a NaN cell (missing sensor) is replaced by the mean of its column's finite values;
    ///    the counts are kept ([`imputed_in_fit`](Self::imputed_in_fit));
    /// 2. autoscaling: column mean and sample standard deviation (divisor `n − 1`); a constant
    ///    column gets standard deviation 1 and `z = 0`, and is listed in
    ///    [`constant_columns`](Self::constant_columns);
    /// 3. the correlation matrix `C = ZᵀZ / (n − 1)` and its symmetric eigendecomposition
    ///    (nalgebra `SymmetricEigen`), eigenvalues sorted in descending order;
    /// 4. `k` = the fewest leading components whose eigenvalues reach
    ///    `cfg.explained_variance` of the total;
    /// 5. the limits [`t2_limit`](Self::t2_limit) and [`spe_limit`](Self::spe_limit) at
    ///    `cfg.confidence`.
    ///
    /// # Errors
    /// - [`BaselineError::InvalidConfig`] from [`PcaConfig::validate`];
    /// - [`BaselineError::BadShape`] when `d == 0` or `rows.len()` is not a multiple of `d`;
    /// - [`BaselineError::InsufficientData`] when `n < max(3, d + 2)`;
    /// - [`BaselineError::InvalidInput`] for a ±inf cell (first one, by row then column);
    /// - [`BaselineError::EmptyColumn`] for a column whose cells are all NaN;
    /// - [`BaselineError::Degenerate`] when every column is constant, the eigendecomposition
    ///   fails, or a limit is not finite.
    pub fn fit(rows: &[f64], d: usize, cfg: &PcaConfig) -> Result<Self, BaselineError> {
        cfg.validate()?;
        let n = row_count(rows, d)?;
        let needed = (d + 2).max(3);
        if n < needed {
            return Err(BaselineError::InsufficientData { rows: n, d, needed });
        }

        // Column means over the finite cells; ±inf rejected.
        let mut sum = vec![0.0_f64; d];
        let mut finite = vec![0_u64; d];
        for (i, row) in rows.chunks_exact(d).enumerate() {
            for (j, &x) in row.iter().enumerate() {
                if x.is_nan() {
                    continue;
                }
                if x.is_infinite() {
                    return Err(BaselineError::InvalidInput {
                        row: i,
                        column: j,
                        value: x,
                    });
                }
                sum[j] += x;
                finite[j] += 1;
            }
        }
        let mut mean = Vec::with_capacity(d);
        for (j, (&s, &c)) in sum.iter().zip(&finite).enumerate() {
            if c == 0 {
                return Err(BaselineError::EmptyColumn { column: j });
            }
            mean.push(s / c as f64);
        }
        // Second pass: refine the mean (removes most rounding of the first pass), then the
        // sum of squares. Imputed cells sit at the mean and add 0 to both.
        let mut corr = vec![0.0_f64; d];
        for row in rows.chunks_exact(d) {
            for ((c, &x), &m) in corr.iter_mut().zip(row).zip(&mean) {
                if !x.is_nan() {
                    *c += x - m;
                }
            }
        }
        for ((m, c), &cnt) in mean.iter_mut().zip(&corr).zip(&finite) {
            *m += c / cnt as f64;
        }
        let mut ss = vec![0.0_f64; d];
        for row in rows.chunks_exact(d) {
            for ((s, &x), &m) in ss.iter_mut().zip(row).zip(&mean) {
                if !x.is_nan() {
                    *s += (x - m) * (x - m);
                }
            }
        }
        let denom = (n - 1) as f64;
        let mut std = Vec::with_capacity(d);
        let mut constant_columns = Vec::new();
        for (j, (&s, &m)) in ss.iter().zip(&mean).enumerate() {
            let sd = (s / denom).sqrt();
            if sd == 0.0 || sd <= 1e-12 * m.abs() {
                constant_columns.push(j);
                std.push(1.0);
            } else {
                std.push(sd);
            }
        }
        let imputed_in_fit: Vec<u64> = finite.iter().map(|&c| n as u64 - c).collect();

        // Autoscaled data; imputed cells and constant columns are exactly 0.
        let z = DMatrix::from_fn(n, d, |i, j| {
            let x = rows[i * d + j];
            if x.is_nan() || constant_columns.binary_search(&j).is_ok() {
                0.0
            } else {
                (x - mean[j]) / std[j]
            }
        });
        let c = z.tr_mul(&z) / denom;
        drop(z);

        let eig = SymmetricEigen::try_new(c, f64::EPSILON, 1000 + 100 * d).ok_or_else(|| {
            BaselineError::Degenerate("the eigendecomposition did not converge".into())
        })?;
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let mut eigenvalues: Vec<f64> =
            order.iter().map(|&a| eig.eigenvalues[a].max(0.0)).collect();
        if eigenvalues.iter().any(|l| !l.is_finite()) {
            return Err(BaselineError::Degenerate(
                "the correlation matrix has a non-finite eigenvalue".into(),
            ));
        }
        let raw_total: f64 = eigenvalues.iter().sum();
        for l in &mut eigenvalues {
            if *l < ZERO_EIGENVALUE * raw_total {
                *l = 0.0;
            }
        }
        let total: f64 = eigenvalues.iter().sum();
        if total <= 0.0 {
            return Err(BaselineError::Degenerate(
                "every column is constant: no variance to model".into(),
            ));
        }

        let k = choose_k(&eigenvalues, cfg.explained_variance, total);
        let mut loadings = Vec::with_capacity(k * d);
        for &a in order.iter().take(k) {
            loadings.extend(eig.eigenvectors.column(a).iter());
        }

        let t2_limit = t2_limit(k, n, cfg.confidence)?;
        let (spe_limit, spe_limit_method) = spe_limit(&eigenvalues[k..], total, cfg.confidence)?;

        let fitted = Fitted {
            d,
            n_train: n,
            k,
            config: *cfg,
            mean,
            std,
            constant_columns,
            imputed_in_fit,
            eigenvalues,
            loadings,
            t2_limit,
            spe_limit,
            spe_limit_method,
        };
        fitted.check()?;
        Ok(Self(fitted))
    }

    /// Scores rows: T² and SPE of each, in autoscaled units (see [`PcaScore`]).
    ///
    /// `rows` is row-major with [`dim`](Self::dim) columns; an empty slice gives an empty
    /// vector. A NaN cell is imputed at the training mean (`z = 0`) and counted in
    /// [`PcaScore::imputed`]. A cell of a constant training column enters `z` as
    /// `x − mean` (standard deviation 1), so a change there shows in SPE in raw units squared.
    ///
    /// # Errors
    /// - [`BaselineError::BadShape`] when `rows.len()` is not a multiple of `dim()`;
    /// - [`BaselineError::InvalidInput`] for a ±inf cell (first one, by row then column).
    pub fn score(&self, rows: &[f64]) -> Result<Vec<PcaScore>, BaselineError> {
        let f = &self.0;
        let d = f.d;
        let n = row_count(rows, d)?;
        let mut out = Vec::with_capacity(n);
        let mut z = vec![0.0_f64; d];
        let mut resid = vec![0.0_f64; d];
        for (i, row) in rows.chunks_exact(d).enumerate() {
            let mut imputed = 0_u32;
            for (j, (((zj, &x), &m), &s)) in
                z.iter_mut().zip(row).zip(&f.mean).zip(&f.std).enumerate()
            {
                *zj = if x.is_nan() {
                    imputed = imputed.saturating_add(1);
                    0.0
                } else if x.is_infinite() {
                    return Err(BaselineError::InvalidInput {
                        row: i,
                        column: j,
                        value: x,
                    });
                } else {
                    (x - m) / s
                };
            }
            resid.copy_from_slice(&z);
            let mut t2 = 0.0;
            for (p, &lambda) in f.loadings.chunks_exact(d).zip(&f.eigenvalues) {
                let t: f64 = p.iter().zip(&z).map(|(p, z)| p * z).sum();
                t2 += t * t / lambda;
                for (r, p) in resid.iter_mut().zip(p) {
                    *r -= t * p;
                }
            }
            let spe = resid.iter().map(|r| r * r).sum();
            out.push(PcaScore { t2, spe, imputed });
        }
        Ok(out)
    }

    /// Number of retained principal components `k` (1 ≤ k ≤ d).
    #[must_use]
    pub fn components(&self) -> usize {
        self.0.k
    }

    /// Number of columns `d` of a row.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.0.d
    }

    /// Number of training rows `n`.
    #[must_use]
    pub fn n_train(&self) -> usize {
        self.0.n_train
    }

    /// The configuration the monitor was fitted with.
    #[must_use]
    pub fn config(&self) -> &PcaConfig {
        &self.0.config
    }

    /// All `d` eigenvalues of the training correlation matrix, descending (variances of the
    /// principal components in autoscaled units; they sum to `d` minus the number of constant
    /// columns). Values below `1e-12` of the total are rounding noise and stored as 0.
    #[must_use]
    pub fn eigenvalues(&self) -> &[f64] {
        &self.0.eigenvalues
    }

    /// Share of the total variance held by the `k` retained components, in (0, 1].
    #[must_use]
    pub fn explained(&self) -> f64 {
        let total: f64 = self.0.eigenvalues.iter().sum();
        self.0.eigenvalues[..self.0.k].iter().sum::<f64>() / total
    }

    /// The retained loadings `P`, `k × d` component-major: component `a` (unit length, sign
    /// arbitrary) is `loadings()[a * d..(a + 1) * d]`.
    #[must_use]
    pub fn loadings(&self) -> &[f64] {
        &self.0.loadings
    }

    /// Training column means, raw units (`d` values).
    #[must_use]
    pub fn mean(&self) -> &[f64] {
        &self.0.mean
    }

    /// Training column sample standard deviations (divisor `n − 1`), raw units (`d` values);
    /// 1 for a constant column.
    #[must_use]
    pub fn std(&self) -> &[f64] {
        &self.0.std
    }

    /// Indices of the columns that were constant in training (ascending). They carry no
    /// variance in the model; any later change in them shows in SPE.
    #[must_use]
    pub fn constant_columns(&self) -> &[usize] {
        &self.0.constant_columns
    }

    /// Per column, how many training cells were NaN and imputed with the column mean.
    #[must_use]
    pub fn imputed_in_fit(&self) -> &[u64] {
        &self.0.imputed_in_fit
    }

    /// Upper control limit of T² for a new row (Tracy, Young & Mason 1992, "Multivariate
    /// control charts for individual observations", J. Quality Technology 24(2):88–95;
    /// MacGregor & Kourti 1995, "Statistical process control of multivariate processes",
    /// Control Engineering Practice 3(3):403–414):
    ///
    /// `k (n − 1)(n + 1) / (n (n − k)) · F_{k, n−k}(confidence)`
    ///
    /// with `n` training rows and `k` components; `F_{a,b}(p)` is the `p`-quantile of the F
    /// distribution (statrs).
    #[must_use]
    pub fn t2_limit(&self) -> f64 {
        self.0.t2_limit
    }

    /// Upper control limit of SPE (Q) at the configured confidence.
    ///
    /// With `θ_i = Σ λ_j^i` over the discarded eigenvalues (`j ≥ k`),
    /// `h0 = 1 − 2 θ1 θ3 / (3 θ2²)` and `c` the standard normal `confidence`-quantile
    /// (Jackson & Mudholkar 1979, "Control procedures for residuals associated with principal
    /// component analysis", Technometrics 21(3):341–349):
    ///
    /// `Q = θ1 [ c √(2 θ2 h0²) / θ1 + 1 + θ2 h0 (h0 − 1) / θ1² ]^(1/h0)`
    ///
    /// When `h0 ≤ 0` (or the bracket is not positive) the formula does not apply and Box's
    /// (1954) approximation is used instead ("Some theorems on quadratic forms applied in the
    /// study of analysis of variance problems, I", Ann. Math. Statist. 25(2):290–302):
    /// `Q = g · χ²_h(confidence)` with `g = θ2 / θ1`, `h = θ1² / θ2`. When `θ1 = 0` (no variance
    /// discarded: `k = d`, or the discarded eigenvalues are all zero, e.g. constant or exactly
    /// collinear columns) the limit is "0 + tiny": `1e-9 ×` the total variance. Every limit is
    /// at least that floor. [`spe_limit_method`](Self::spe_limit_method) says which case applied.
    #[must_use]
    pub fn spe_limit(&self) -> f64 {
        self.0.spe_limit
    }

    /// Which formula gave [`spe_limit`](Self::spe_limit).
    #[must_use]
    pub fn spe_limit_method(&self) -> SpeLimitMethod {
        self.0.spe_limit_method
    }
}
/// Number of rows of a row-major slice with `d` columns.
fn row_count(rows: &[f64], d: usize) -> Result<usize, BaselineError> {
    if d == 0 || !rows.len().is_multiple_of(d) {
        return Err(BaselineError::BadShape { len: rows.len(), d });
    }
    Ok(rows.len() / d)
}
