//! Simulator configuration (embedded in a pipeline TOML under `[simulate]`).
//!
//! Every field has a default, so an empty `[simulate]` table is a valid configuration.
//! Unknown fields are rejected so that typos do not silently fall back to defaults.
//!
//! # Layout
//!
//! * this file: [`SimConfig`] (machines, channels, timing, output) and the checks shared
//!   by every section;
//! * `faults.rs`: [`FaultConfig`] (`[simulate.faults]`);
//! * `inspections.rs`: [`InspectionConfig`] (`[simulate.inspections]`).

use serde::{Deserialize, Serialize};

use crate::error::SimError;

mod faults;
mod inspections;

pub use faults::FaultConfig;
pub use inspections::InspectionConfig;

/// 2026-11-28T12:00:00Z in epoch milliseconds: the default start of simulated event time.
pub const DEFAULT_START_MS: i64 = 1_795_867_200_000;

/// Largest epoch-ms timestamp we accept as a start (9999-12-31T23:59:59.999Z), so every
/// timestamp stays representable in RFC 3339.
const MAX_START_MS: i64 = 253_402_300_799_999;

/// How timestamps are written in JSON messages. Both forms are allowed by the reading and
/// inspection contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsFormat {
    /// RFC 3339, UTC, millisecond precision: `2026-11-28T12:00:00.123Z`.
    #[default]
    Rfc3339,
    /// Integer epoch milliseconds: `1795867200123`.
    EpochMs,
}

/// One sensor channel: its name and its behaviour in normal operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// Channel name, the key in the reading's `values` object.
    pub name: String,
    /// Mean value in normal operation. Default 0.0.
    #[serde(default)]
    pub level: f64,
    /// Standard deviation in normal operation (> 0). Default 1.0.
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

impl ChannelSpec {
    /// A channel with the given name, level and scale.
    pub fn new(name: impl Into<String>, level: f64, scale: f64) -> Self {
        Self {
            name: name.into(),
            level,
            scale,
        }
    }
}

fn default_channels() -> Vec<ChannelSpec> {
    vec![
        ChannelSpec::new("temp_c", 70.0, 1.5),
        ChannelSpec::new("vib_rms", 0.03, 0.004),
        ChannelSpec::new("pressure_bar", 5.0, 0.2),
        ChannelSpec::new("current_a", 12.0, 0.8),
    ]
}

/// Configuration of the line simulator.
///
/// The signal of machine `m`, channel `j` at sample `t` is
/// `x_j(t) = level_j + scale_j * z_j(t)` with the standardised
/// `z_j(t) = sum_k L_jk f_k(t) + sqrt(1 - sum_k L_jk^2) e_j(t)`: `f_k` are unit-variance AR(1)
/// latent factors (`f(t) = factor_ar * f(t-1) + sqrt(1 - factor_ar^2) * eta`), `e_j` is
/// independent standard normal noise, and `L` gives every channel the share
/// `factor_loading` of its variance from the factors (channel `j` loads on factor
/// `j mod factors` with weight 1 and on the next factor with weight 0.3, the row then scaled
/// to squared norm `factor_loading`). So in normal operation the
/// channels have exactly mean `level` and standard deviation `scale`, are correlated, and are
/// temporally smooth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Production line name, the `line` field of every message. Default `"press-3"`.
    pub line: String,
    /// Number of machines; their ids are `m-000`, `m-001`, ... Default 4.
    pub machines: usize,
    /// Channels (name, level, scale). Default: `temp_c` (70, 1.5), `vib_rms` (0.03, 0.004),
    /// `pressure_bar` (5.0, 0.2), `current_a` (12.0, 0.8).
    pub channels: Vec<ChannelSpec>,
    /// Number of channels to simulate. `None` (default): all of `channels`. Fewer: the first
    /// ones. More: the rest are generated as `ch_004`, `ch_005`, ... (by index) with level 0.0
    /// and scale 1.0.
    pub channel_count: Option<usize>,
    /// Nominal sampling interval of every machine, event-time milliseconds. Default 1000.
    pub interval_ms: i64,
    /// Each reading's timestamp is the nominal time plus a uniform jitter in
    /// `[0, jitter_ms]`; must be below `interval_ms`. Default 50.
    pub jitter_ms: i64,
    /// Event time of the first sample, epoch milliseconds. Default 2026-11-28T12:00:00Z.
    pub start_ms: i64,
    /// Seed of all randomness; same config and seed give the identical event sequence.
    /// Default 42.
    pub seed: u64,
    /// Number of latent AR(1) factors shared by the channels (0: independent channels).
    /// Default 2.
    pub factors: usize,
    /// Share of each channel's variance that comes from the factors, in `[0, 1)`.
    /// Default 0.8: with 2 factors and the default 4 channels, channels 0 and 2 (and 1 and 3)
    /// share their loadings and correlate at 0.8; neighbours correlate at about 0.44.
    pub factor_loading: f64,
    /// AR(1) coefficient of the factors per sample, in `[0, 1)`; larger is smoother.
    /// Default 0.95.
    pub factor_ar: f64,
    /// Fraction of readings delivered late, in `[0, 1)`. A late reading is emitted after at
    /// least the next reading of the same machine (out of order). Default 0.01.
    pub late_fraction: f64,
    /// Largest delivery delay of a late reading, ms; must exceed `interval_ms + jitter_ms`
    /// when `late_fraction > 0`. Windowers should allow at least this lateness. Default 5000.
    pub max_late_ms: i64,
    /// Warm-up at the start of the stream with no faults (normal data for training), ms.
    /// Default 1_800_000 (30 min).
    pub warmup_ms: i64,
    /// Values are rounded to this many decimals, like a real sensor's resolution (0..=12).
    /// Default 4.
    pub decimals: u32,
    /// Timestamp format of JSON messages (`"rfc3339"` or `"epoch_ms"`). Default `"rfc3339"`.
    pub ts_format: TsFormat,
    /// Fault injection.
    pub faults: FaultConfig,
    /// Inspection labels.
    pub inspections: InspectionConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            line: "press-3".to_owned(),
            machines: 4,
            channels: default_channels(),
            channel_count: None,
            interval_ms: 1000,
            jitter_ms: 50,
            start_ms: DEFAULT_START_MS,
            seed: 42,
            factors: 2,
            factor_loading: 0.8,
            factor_ar: 0.95,
            late_fraction: 0.01,
            max_late_ms: 5000,
            warmup_ms: 1_800_000,
            decimals: 4,
            ts_format: TsFormat::Rfc3339,
            faults: FaultConfig::default(),
            inspections: InspectionConfig::default(),
        }
    }
}

pub(super) fn check(
    ok: bool,
    field: &'static str,
    reason: impl FnOnce() -> String,
) -> Result<(), SimError> {
    if ok {
        Ok(())
    } else {
        Err(SimError::config(field, reason()))
    }
}

pub(super) fn unit_interval(v: f64, field: &'static str) -> Result<(), SimError> {
    check((0.0..=1.0).contains(&v), field, || {
        format!("must be in [0, 1], got {v}")
    })
}

fn unit_interval_open(v: f64, field: &'static str) -> Result<(), SimError> {
    check((0.0..1.0).contains(&v), field, || {
        format!("must be in [0, 1), got {v}")
    })
}

impl SimConfig {
    /// The effective channel list: `channels` cut or extended to `channel_count`.
    pub fn effective_channels(&self) -> Vec<ChannelSpec> {
        let n = self.channel_count.unwrap_or(self.channels.len());
        (0..n)
            .map(|i| {
                self.channels
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| ChannelSpec::new(format!("ch_{i:03}"), 0.0, 1.0))
            })
            .collect()
    }

    /// Machine ids, `m-000`, `m-001`, ...
    pub fn machine_ids(&self) -> Vec<String> {
        (0..self.machines).map(|i| format!("m-{i:03}")).collect()
    }

    /// Checks every field; the simulator only runs on a valid config.
    pub fn validate(&self) -> Result<(), SimError> {
        check(!self.line.trim().is_empty(), "line", || {
            "must not be empty".into()
        })?;
        check((1..=100_000).contains(&self.machines), "machines", || {
            format!("must be in 1..=100000, got {}", self.machines)
        })?;
        let channels = self.effective_channels();
        check(
            (1..=10_000).contains(&channels.len()),
            "channel_count",
            || format!("need 1..=10000 channels, got {}", channels.len()),
        )?;
        let mut seen = std::collections::HashSet::new();
        for c in &channels {
            check(!c.name.trim().is_empty(), "channels.name", || {
                "channel names must not be empty".into()
            })?;
            check(seen.insert(c.name.as_str()), "channels.name", || {
                format!("duplicate channel name `{}`", c.name)
            })?;
            check(c.level.is_finite(), "channels.level", || {
                format!("`{}`: level must be finite, got {}", c.name, c.level)
            })?;
            check(
                c.scale.is_finite() && c.scale > 0.0,
                "channels.scale",
                || {
                    format!(
                        "`{}`: scale must be finite and > 0, got {}",
                        c.name, c.scale
                    )
                },
            )?;
        }
        check(self.interval_ms > 0, "interval_ms", || {
            format!("must be > 0, got {}", self.interval_ms)
        })?;
        check(
            (0..self.interval_ms).contains(&self.jitter_ms),
            "jitter_ms",
            || {
                format!(
                    "must be in [0, interval_ms = {}), got {}",
                    self.interval_ms, self.jitter_ms
                )
            },
        )?;
        check(
            (0..=MAX_START_MS).contains(&self.start_ms),
            "start_ms",
            || format!("must be in [0, {MAX_START_MS}], got {}", self.start_ms),
        )?;
        check(self.factors <= 1000, "factors", || {
            format!("must be <= 1000, got {}", self.factors)
        })?;
        unit_interval_open(self.factor_loading, "factor_loading")?;
        unit_interval_open(self.factor_ar, "factor_ar")?;
        unit_interval_open(self.late_fraction, "late_fraction")?;
        check(self.max_late_ms >= 0, "max_late_ms", || {
            format!("must be >= 0, got {}", self.max_late_ms)
        })?;
        if self.late_fraction > 0.0 {
            check(
                self.max_late_ms > self.interval_ms + self.jitter_ms,
                "max_late_ms",
                || {
                    format!(
                        "must exceed interval_ms + jitter_ms = {} when late_fraction > 0, got {}",
                        self.interval_ms + self.jitter_ms,
                        self.max_late_ms
                    )
                },
            )?;
        }
        check(self.warmup_ms >= 0, "warmup_ms", || {
            format!("must be >= 0, got {}", self.warmup_ms)
        })?;
        check(self.decimals <= 12, "decimals", || {
            format!("must be <= 12, got {}", self.decimals)
        })?;
        self.faults.validate()?;
        self.inspections.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
