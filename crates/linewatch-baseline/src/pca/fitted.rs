//! The stored state of a monitor and the invariants a loaded one is checked against.

use serde::{Deserialize, Serialize};

use crate::BaselineError;

use super::{PcaConfig, SpeLimitMethod};

/// The stored state of a monitor; `PcaMonitor` serializes as exactly this and deserializes
/// through [`Fitted::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Fitted {
    pub(super) d: usize,
    pub(super) n_train: usize,
    pub(super) k: usize,
    pub(super) config: PcaConfig,
    pub(super) mean: Vec<f64>,
    pub(super) std: Vec<f64>,
    pub(super) constant_columns: Vec<usize>,
    pub(super) imputed_in_fit: Vec<u64>,
    /// All `d`, descending.
    pub(super) eigenvalues: Vec<f64>,
    /// `k × d`, component-major: component `a` is `loadings[a*d..(a+1)*d]`.
    pub(super) loadings: Vec<f64>,
    pub(super) t2_limit: f64,
    pub(super) spe_limit: f64,
    pub(super) spe_limit_method: SpeLimitMethod,
}
impl Fitted {
    /// The invariants `score` and the accessors rely on.
    pub(super) fn check(&self) -> Result<(), BaselineError> {
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
