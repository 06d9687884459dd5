//! Fault injection settings (`[simulate.faults]`) and their checks.

use serde::{Deserialize, Serialize};

use super::{check, unit_interval};
use crate::error::SimError;
use crate::fault::FaultKind;

/// Fault injection settings (`[simulate.faults]`).
///
/// Per machine, faults follow one another without overlap: the gap from the end of one fault
/// (or from the end of the warm-up) to the start of the next is
/// `min_gap_ms + Exponential(mean = mean_gap_ms - min_gap_ms)`; the duration is uniform in
/// `[min_duration_ms, max_duration_ms]`; the kind is drawn uniformly from `kinds` (repeat a
/// kind to weight it), the severity uniformly from `[severity_min, severity_max]`, and the
/// affected channel uniformly. Magnitudes scale linearly with severity and are in units of
/// the channel's `scale` (its normal standard deviation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Inject faults at all. Default true.
    pub enabled: bool,
    /// Kinds to draw from, uniformly. Default all five:
    /// `["drift", "spike", "stuck", "variance_burst", "broken_correlation"]`.
    pub kinds: Vec<FaultKind>,
    /// Mean gap between faults of one machine, ms (>= `min_gap_ms`). Default 600_000 (10 min).
    pub mean_gap_ms: i64,
    /// Minimum gap between faults of one machine, ms. Default 120_000 (2 min).
    pub min_gap_ms: i64,
    /// Shortest fault, ms (> 0). Default 60_000 (1 min).
    pub min_duration_ms: i64,
    /// Longest fault, ms (>= `min_duration_ms`). Default 300_000 (5 min).
    pub max_duration_ms: i64,
    /// Smallest severity, in `[0, 1]`. Default 0.5.
    pub severity_min: f64,
    /// Largest severity, in `[severity_min, 1]`. Default 1.0.
    pub severity_max: f64,
    /// `Drift`: offset reached at the end of the linear ramp at severity 1, in sd
    /// (`severity * drift_sd`, random sign). Default 4.0.
    pub drift_sd: f64,
    /// `Spike`: spike height at severity 1, in sd (`severity * spike_sd`, upwards).
    /// Default 8.0.
    pub spike_sd: f64,
    /// `Spike`: probability per reading that a burst starts (the first reading of a spike
    /// fault always starts one), in `[0, 1]`. Default 0.05.
    pub spike_rate: f64,
    /// `Spike`: longest burst, readings (>= 1); lengths are uniform in `1..=spike_max_len`.
    /// Default 3.
    pub spike_max_len: u32,
    /// `VarianceBurst`: factor on the channel's noise at severity 1 (>= 1); at severity `s`
    /// the noise is multiplied by `1 + s * (variance_factor - 1)`. Default 4.0.
    pub variance_factor: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            kinds: FaultKind::ALL.to_vec(),
            mean_gap_ms: 600_000,
            min_gap_ms: 120_000,
            min_duration_ms: 60_000,
            max_duration_ms: 300_000,
            severity_min: 0.5,
            severity_max: 1.0,
            drift_sd: 4.0,
            spike_sd: 8.0,
            spike_rate: 0.05,
            spike_max_len: 3,
            variance_factor: 4.0,
        }
    }
}

impl FaultConfig {
    pub(super) fn validate(&self) -> Result<(), SimError> {
        if !self.enabled {
            return Ok(());
        }
        check(!self.kinds.is_empty(), "faults.kinds", || {
            "must name at least one kind when faults are enabled".into()
        })?;
        check(self.min_gap_ms >= 0, "faults.min_gap_ms", || {
            format!("must be >= 0, got {}", self.min_gap_ms)
        })?;
        check(
            self.mean_gap_ms >= self.min_gap_ms,
            "faults.mean_gap_ms",
            || {
                format!(
                    "must be >= min_gap_ms = {}, got {}",
                    self.min_gap_ms, self.mean_gap_ms
                )
            },
        )?;
        check(self.min_duration_ms > 0, "faults.min_duration_ms", || {
            format!("must be > 0, got {}", self.min_duration_ms)
        })?;
        check(
            self.max_duration_ms >= self.min_duration_ms,
            "faults.max_duration_ms",
            || {
                format!(
                    "must be >= min_duration_ms = {}, got {}",
                    self.min_duration_ms, self.max_duration_ms
                )
            },
        )?;
        unit_interval(self.severity_min, "faults.severity_min")?;
        unit_interval(self.severity_max, "faults.severity_max")?;
        check(
            self.severity_max >= self.severity_min,
            "faults.severity_max",
            || {
                format!(
                    "must be >= severity_min = {}, got {}",
                    self.severity_min, self.severity_max
                )
            },
        )?;
        for (v, field) in [
            (self.drift_sd, "faults.drift_sd"),
            (self.spike_sd, "faults.spike_sd"),
        ] {
            check(v.is_finite() && v >= 0.0, field, || {
                format!("must be finite and >= 0, got {v}")
            })?;
        }
        unit_interval(self.spike_rate, "faults.spike_rate")?;
        check(self.spike_max_len >= 1, "faults.spike_max_len", || {
            "must be >= 1".into()
        })?;
        check(
            self.variance_factor.is_finite() && self.variance_factor >= 1.0,
            "faults.variance_factor",
            || format!("must be finite and >= 1, got {}", self.variance_factor),
        )?;
        Ok(())
    }
}
