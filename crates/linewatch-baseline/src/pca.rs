//! PCA monitor: fitting, control limits and scoring.

use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize, Serializer};
use statrs::distribution::{ChiSquared, ContinuousCDF, FisherSnedecor, Normal};

use crate::BaselineError;

/// An eigenvalue below this share of the total variance is rounding noise and is stored as 0.
const ZERO_EIGENVALUE: f64 = 1e-12;

/// The SPE limit when no variance is discarded ("0 + tiny"), as a share of the total variance.
/// Rows in the span of the training data then have an SPE of rounding size (far below this),
/// and a row that leaves that span by more than about `sqrt(1e-9 · total)` autoscaled units
/// alarms.
const SPE_FLOOR: f64 = 1e-9;

/// Relative tolerance on the explained-variance share, so that a share reached exactly in
/// exact arithmetic is not missed by one rounding step.
const SHARE_TOLERANCE: f64 = 1e-12;

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

/// How [`PcaMonitor::spe_limit`] was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeLimitMethod {
    /// Jackson & Mudholkar (1979), the normal approximation of the weighted sum of χ²
    /// variables (the usual case).
    JacksonMudholkar,
    /// Box (1954), `g·χ²_h`, used when Jackson & Mudholkar's `h0 <= 0` (or its bracket is not
    /// positive, which can happen for a confidence below 0.5).
    Box,
    /// No variance was discarded (every discarded eigenvalue is 0): the limit is
    /// `1e-9 ×` the total variance, "0 + tiny".
    NoResidual,
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

/// The stored state of a monitor; `PcaMonitor` serializes as exactly this and deserializes
/// through [`Fitted::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fitted {
    d: usize,
    n_train: usize,
    k: usize,
    config: PcaConfig,
    mean: Vec<f64>,
    std: Vec<f64>,
    constant_columns: Vec<usize>,
    imputed_in_fit: Vec<u64>,
    /// All `d`, descending.
    eigenvalues: Vec<f64>,
    /// `k × d`, component-major: component `a` is `loadings[a*d..(a+1)*d]`.
    loadings: Vec<f64>,
    t2_limit: f64,
    spe_limit: f64,
    spe_limit_method: SpeLimitMethod,
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

impl Fitted {
    /// The invariants `score` and the accessors rely on.
    fn check(&self) -> Result<(), BaselineError> {
        let bad = |what: &str| {
            Err(BaselineError::Degenerate(format!(
                "inconsistent monitor: {what}"
            )))
        };
        let d = self.d;
        if self.config.validate().is_err() {
            return bad("config out of range");
        }
        if d == 0 || self.k == 0 || self.k > d {
            return bad("need 1 <= k <= d");
        }
        if self.n_train < (d + 2).max(3) {
            return bad("too few training rows for d");
        }
        if self.mean.len() != d
            || self.std.len() != d
            || self.imputed_in_fit.len() != d
            || self.eigenvalues.len() != d
            || Some(self.loadings.len()) != self.k.checked_mul(d)
        {
            return bad("lengths do not match d and k");
        }
        if !self
            .mean
            .iter()
            .chain(&self.loadings)
            .all(|x| x.is_finite())
        {
            return bad("non-finite mean or loading");
        }
        if !self.std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return bad("standard deviations must be finite and positive");
        }
        if !self.eigenvalues.iter().all(|l| l.is_finite() && *l >= 0.0)
            || self.eigenvalues.windows(2).any(|w| w[0] < w[1])
            || self.eigenvalues[self.k - 1] <= 0.0
        {
            return bad(
                "eigenvalues must be finite, non-negative, descending, the kept ones positive",
            );
        }
        if !self.constant_columns.windows(2).all(|w| w[0] < w[1])
            || self.constant_columns.iter().any(|&j| j >= d)
        {
            return bad("constant columns must be ascending indices below d");
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.t2_limit) || !positive(self.spe_limit) {
            return bad("limits must be finite and positive");
        }
        Ok(())
    }
}

/// Number of rows of a row-major slice with `d` columns.
fn row_count(rows: &[f64], d: usize) -> Result<usize, BaselineError> {
    if d == 0 || !rows.len().is_multiple_of(d) {
        return Err(BaselineError::BadShape { len: rows.len(), d });
    }
    Ok(rows.len() / d)
}

/// The fewest leading eigenvalues (sorted descending, zeros at the end) whose sum reaches
/// `share` of `total`; at least 1, and never a zero eigenvalue.
fn choose_k(eigenvalues: &[f64], share: f64, total: f64) -> usize {
    let target = share * total * (1.0 - SHARE_TOLERANCE);
    let positive = eigenvalues.iter().take_while(|&&l| l > 0.0).count().max(1);
    let mut cum = 0.0;
    for (a, &l) in eigenvalues.iter().enumerate() {
        cum += l;
        if cum >= target {
            return (a + 1).min(positive);
        }
    }
    positive
}

/// T² limit for a new row: `k (n−1)(n+1) / (n (n−k)) · F_{k,n−k}(confidence)`.
fn t2_limit(k: usize, n: usize, confidence: f64) -> Result<f64, BaselineError> {
    let (kf, nf) = (k as f64, n as f64);
    let f = FisherSnedecor::new(kf, nf - kf)
        .map_err(|e| BaselineError::Degenerate(format!("F({k}, {}) distribution: {e}", n - k)))?;
    let limit = kf * (nf - 1.0) * (nf + 1.0) / (nf * (nf - kf)) * f.inverse_cdf(confidence);
    if !(limit.is_finite() && limit > 0.0) {
        return Err(BaselineError::Degenerate(format!(
            "T² limit is {limit} (k = {k}, n = {n})"
        )));
    }
    Ok(limit)
}

/// SPE limit from the discarded eigenvalues (Jackson & Mudholkar 1979, Box 1954 fallback,
/// floor `SPE_FLOOR · total`); see [`PcaMonitor::spe_limit`].
fn spe_limit(
    discarded: &[f64],
    total: f64,
    confidence: f64,
) -> Result<(f64, SpeLimitMethod), BaselineError> {
    let floor = SPE_FLOOR * total;
    let theta = |i: i32| discarded.iter().map(|l| l.powi(i)).sum::<f64>();
    let (t1, t2, t3) = (theta(1), theta(2), theta(3));
    if t1 <= 0.0 || t2 <= 0.0 {
        return Ok((floor, SpeLimitMethod::NoResidual));
    }
    let h0 = 1.0 - 2.0 * t1 * t3 / (3.0 * t2 * t2);
    if h0 > 0.0 {
        let normal = Normal::new(0.0, 1.0)
            .map_err(|e| BaselineError::Degenerate(format!("normal distribution: {e}")))?;
        let c = normal.inverse_cdf(confidence);
        let bracket = c * (2.0 * t2 * h0 * h0).sqrt() / t1 + 1.0 + t2 * h0 * (h0 - 1.0) / (t1 * t1);
        if bracket > 0.0 {
            let q = t1 * bracket.powf(1.0 / h0);
            if q.is_finite() {
                return Ok((q.max(floor), SpeLimitMethod::JacksonMudholkar));
            }
        }
    }
    let (g, h) = (t2 / t1, t1 * t1 / t2);
    let chi2 = ChiSquared::new(h)
        .map_err(|e| BaselineError::Degenerate(format!("chi-squared({h}) distribution: {e}")))?;
    let q = g * chi2.inverse_cdf(confidence);
    if !q.is_finite() {
        return Err(BaselineError::Degenerate(format!("SPE limit is {q}")));
    }
    Ok((q.max(floor), SpeLimitMethod::Box))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, rel: f64) {
        assert!(
            (got - want).abs() <= rel * want.abs(),
            "got {got}, want {want} (rel {rel})"
        );
    }

    /// Reference values from scipy 1.17 (`scipy.stats.f.ppf`, `chi2.ppf`, `norm.ppf`).
    #[test]
    fn t2_limit_matches_scipy_f_quantiles() {
        // 9/8 · F_{1,7}(0.99), F_{1,7}(0.99) = 12.246383348435076
        close(t2_limit(1, 8, 0.99).unwrap(), 13.77718126698946, 1e-9);
        // 126/48 · F_{2,6}(0.99), F_{2,6}(0.99) = 10.924766500838333
        close(t2_limit(2, 8, 0.99).unwrap(), 28.677512064700622, 1e-9);
    }

    #[test]
    fn spe_limit_jackson_mudholkar_matches_scipy() {
        // One discarded eigenvalue 1 − 1/√2: h0 = 1/3.
        let (q, m) = spe_limit(&[1.0 - 0.5_f64.sqrt()], 2.0, 0.99).unwrap();
        assert_eq!(m, SpeLimitMethod::JacksonMudholkar);
        close(q, 1.928928280733918, 1e-9);
        // Three discarded eigenvalues, two confidence levels.
        let (q, m) = spe_limit(&[0.5, 0.3, 0.2], 5.0, 0.99).unwrap();
        assert_eq!(m, SpeLimitMethod::JacksonMudholkar);
        close(q, 4.217794597705633, 1e-9);
        let (q, _) = spe_limit(&[0.5, 0.3, 0.2], 5.0, 0.95).unwrap();
        close(q, 2.740174713818584, 1e-9);
    }

    #[test]
    fn spe_limit_falls_back_to_box_when_h0_is_not_positive() {
        // [1, 0.1 × 20]: θ1 = 3, θ2 = 1.2, θ3 = 1.02, h0 = 1 − 2·3.06/(3·1.44) = −0.4167.
        // Box: g = 0.4, h = 7.5; 0.4 · χ²_{7.5}(0.99) = 0.4 · 19.28817... = 7.715268839926956.
        let mut ev = vec![1.0];
        ev.extend([0.1; 20]);
        let (q, m) = spe_limit(&ev, 30.0, 0.99).unwrap();
        assert_eq!(m, SpeLimitMethod::Box);
        close(q, 7.715268839926956, 1e-7);
    }

    #[test]
    fn spe_limit_without_residual_variance_is_the_floor() {
        let (q, m) = spe_limit(&[0.0, 0.0], 4.0, 0.99).unwrap();
        assert_eq!(m, SpeLimitMethod::NoResidual);
        assert_eq!(q, 4e-9);
        let (q, m) = spe_limit(&[], 4.0, 0.99).unwrap();
        assert_eq!(m, SpeLimitMethod::NoResidual);
        assert_eq!(q, 4e-9);
    }

    #[test]
    fn choose_k_takes_the_fewest_components() {
        let ev = [1.5, 0.3, 0.2, 0.0];
        assert_eq!(choose_k(&ev, 0.70, 2.0), 1); // 0.75 ≥ 0.70
        assert_eq!(choose_k(&ev, 0.75, 2.0), 1); // exactly reached
        assert_eq!(choose_k(&ev, 0.80, 2.0), 2); // 0.90
        assert_eq!(choose_k(&ev, 0.95, 2.0), 3); // 1.00, never the zero one
        assert_eq!(choose_k(&ev, 0.999_999, 2.0), 3);
    }
}
