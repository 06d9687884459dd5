//! Inspection label settings (`[simulate.inspections]`) and their checks.

use serde::{Deserialize, Serialize};

use super::{check, unit_interval};
use crate::error::SimError;

/// Inspection label settings (`[simulate.inspections]`).
///
/// Every machine is inspected every `interval_ms` of event time (machine `i` of `n` with a
/// phase of `i * interval_ms / n`, so inspections of different machines do not coincide). An
/// inspection at `ts` finds a defect with probability
/// `base_rate + (max_rate - base_rate) * s`, where `s` is the severity of the fault active on
/// that machine at `ts` (0 when none is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InspectionConfig {
    /// Emit inspection events at all. Default true.
    pub enabled: bool,
    /// Event time between two inspections of one machine, ms (> 0). Default 60_000.
    pub interval_ms: i64,
    /// Defect probability with no active fault, in `[0, 1]`. Default 0.02.
    pub base_rate: f64,
    /// Defect probability during a fault of severity 1, in `[base_rate, 1]`. Default 0.6.
    pub max_rate: f64,
}

impl Default for InspectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 60_000,
            base_rate: 0.02,
            max_rate: 0.6,
        }
    }
}

impl InspectionConfig {
    pub(super) fn validate(&self) -> Result<(), SimError> {
        if !self.enabled {
            return Ok(());
        }
        check(self.interval_ms > 0, "inspections.interval_ms", || {
            format!("must be > 0, got {}", self.interval_ms)
        })?;
        unit_interval(self.base_rate, "inspections.base_rate")?;
        unit_interval(self.max_rate, "inspections.max_rate")?;
        check(
            self.max_rate >= self.base_rate,
            "inspections.max_rate",
            || {
                format!(
                    "must be >= base_rate = {}, got {}",
                    self.base_rate, self.max_rate
                )
            },
        )?;
        Ok(())
    }
}
