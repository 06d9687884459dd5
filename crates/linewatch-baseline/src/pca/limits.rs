//! The control limits: how many components to keep, the T² limit and the SPE limit.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, FisherSnedecor, Normal};

use crate::BaselineError;

/// The SPE limit when no variance is discarded ("0 + tiny"), as a share of the total variance.
/// Rows in the span of the training data then have an SPE of rounding size (far below this),
/// and a row that leaves that span by more than about `sqrt(1e-9 · total)` autoscaled units
/// alarms.
const SPE_FLOOR: f64 = 1e-9;

/// Relative tolerance on the explained-variance share, so that a share reached exactly in
/// exact arithmetic is not missed by one rounding step.
const SHARE_TOLERANCE: f64 = 1e-12;
/// How [`PcaMonitor::spe_limit`](super::PcaMonitor::spe_limit) was obtained.
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
/// The fewest leading eigenvalues (sorted descending, zeros at the end) whose sum reaches
/// `share` of `total`; at least 1, and never a zero eigenvalue.
pub(super) fn choose_k(eigenvalues: &[f64], share: f64, total: f64) -> usize {
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
pub(super) fn t2_limit(k: usize, n: usize, confidence: f64) -> Result<f64, BaselineError> {
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
/// floor `SPE_FLOOR · total`); see
/// [`PcaMonitor::spe_limit`](super::PcaMonitor::spe_limit).
pub(super) fn spe_limit(
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
