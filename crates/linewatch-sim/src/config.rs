//! Simulator configuration (embedded in a pipeline TOML under `[simulate]`).
//!
//! Every field has a default, so an empty `[simulate]` table is a valid configuration.
//! Unknown fields are rejected so that typos do not silently fall back to defaults.

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::fault::FaultKind;

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

fn check(ok: bool, field: &'static str, reason: impl FnOnce() -> String) -> Result<(), SimError> {
    if ok {
        Ok(())
    } else {
        Err(SimError::config(field, reason()))
    }
}

fn unit_interval(v: f64, field: &'static str) -> Result<(), SimError> {
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

impl FaultConfig {
    fn validate(&self) -> Result<(), SimError> {
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

impl InspectionConfig {
    fn validate(&self) -> Result<(), SimError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err_field(cfg: &SimConfig) -> &'static str {
        match cfg.validate() {
            Err(SimError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn default_is_valid() {
        SimConfig::default().validate().unwrap();
    }

    #[test]
    fn empty_toml_table_gives_defaults() {
        let cfg: SimConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, SimConfig::default());
    }

    #[test]
    fn embeds_under_simulate_and_rejects_unknown_fields() {
        #[derive(Deserialize)]
        struct Pipeline {
            simulate: SimConfig,
        }
        let p: Pipeline = toml::from_str(
            r#"
            [simulate]
            line = "press-9"
            machines = 2
            channel_count = 6
            ts_format = "epoch_ms"
            [simulate.faults]
            kinds = ["drift", "stuck"]
            [simulate.inspections]
            interval_ms = 30000
            "#,
        )
        .unwrap();
        assert_eq!(p.simulate.line, "press-9");
        assert_eq!(
            p.simulate.faults.kinds,
            vec![FaultKind::Drift, FaultKind::Stuck]
        );
        assert_eq!(p.simulate.ts_format, TsFormat::EpochMs);
        let names: Vec<_> = p
            .simulate
            .effective_channels()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "temp_c",
                "vib_rms",
                "pressure_bar",
                "current_a",
                "ch_004",
                "ch_005"
            ]
        );
        assert!(toml::from_str::<SimConfig>("machine = 3").is_err());
        assert!(toml::from_str::<SimConfig>("[faults]\nmean_gap = 3").is_err());
        assert!(toml::from_str::<SimConfig>("[faults]\nkinds = [\"melt\"]").is_err());
    }

    #[test]
    fn channel_count_can_cut() {
        let cfg = SimConfig {
            channel_count: Some(2),
            ..SimConfig::default()
        };
        assert_eq!(cfg.effective_channels().len(), 2);
        cfg.validate().unwrap();
    }

    #[test]
    fn validation_errors_name_the_field() {
        let d = SimConfig::default;
        let cases: Vec<(SimConfig, &str)> = vec![
            (
                SimConfig {
                    line: " ".into(),
                    ..d()
                },
                "line",
            ),
            (SimConfig { machines: 0, ..d() }, "machines"),
            (
                SimConfig {
                    channel_count: Some(0),
                    ..d()
                },
                "channel_count",
            ),
            (
                SimConfig {
                    channels: vec![
                        ChannelSpec::new("a", 0.0, 1.0),
                        ChannelSpec::new("a", 0.0, 1.0),
                    ],
                    ..d()
                },
                "channels.name",
            ),
            (
                SimConfig {
                    channels: vec![ChannelSpec::new("a", 0.0, 0.0)],
                    ..d()
                },
                "channels.scale",
            ),
            (
                SimConfig {
                    channels: vec![ChannelSpec::new("a", f64::NAN, 1.0)],
                    ..d()
                },
                "channels.level",
            ),
            (
                SimConfig {
                    interval_ms: 0,
                    ..d()
                },
                "interval_ms",
            ),
            (
                SimConfig {
                    jitter_ms: 1000,
                    ..d()
                },
                "jitter_ms",
            ),
            (
                SimConfig {
                    jitter_ms: -1,
                    ..d()
                },
                "jitter_ms",
            ),
            (
                SimConfig {
                    start_ms: -5,
                    ..d()
                },
                "start_ms",
            ),
            (
                SimConfig {
                    factor_loading: 1.0,
                    ..d()
                },
                "factor_loading",
            ),
            (
                SimConfig {
                    factor_ar: f64::NAN,
                    ..d()
                },
                "factor_ar",
            ),
            (
                SimConfig {
                    late_fraction: 1.0,
                    ..d()
                },
                "late_fraction",
            ),
            (
                SimConfig {
                    max_late_ms: 1000,
                    ..d()
                },
                "max_late_ms",
            ),
            (
                SimConfig {
                    warmup_ms: -1,
                    ..d()
                },
                "warmup_ms",
            ),
            (
                SimConfig {
                    decimals: 13,
                    ..d()
                },
                "decimals",
            ),
            (
                SimConfig {
                    faults: FaultConfig {
                        kinds: vec![],
                        ..FaultConfig::default()
                    },
                    ..d()
                },
                "faults.kinds",
            ),
            (
                SimConfig {
                    faults: FaultConfig {
                        mean_gap_ms: 1,
                        ..FaultConfig::default()
                    },
                    ..d()
                },
                "faults.mean_gap_ms",
            ),
            (
                SimConfig {
                    faults: FaultConfig {
                        min_duration_ms: 0,
                        ..FaultConfig::default()
                    },
                    ..d()
                },
                "faults.min_duration_ms",
            ),
            (
                SimConfig {
                    faults: FaultConfig {
                        max_duration_ms: 1,
                        ..FaultConfig::default()
                    },
                    ..d()
                },
                "faults.max_duration_ms",
            ),
            (
                SimConfig {
                    faults: FaultConfig {
                        severity_min: 0.9,
                        severity_max: 0.8,
                        ..FaultConfig::default()
                    },
                    ..d()
                },
                "faults.severity_max",
            ),
            (
                SimConfig {
                    faults: FaultConfig {
                        severity_min: -0.1,
                        ..FaultConfig::default()
                    },
                    ..d()
                },
                "faults.severity_min",
            ),
            (
                SimConfig {
                    faults: FaultConfig {
                        drift_sd: f64::INFINITY,
                        ..FaultConfig::default()
                    },
                    ..d()
                },
                "faults.drift_sd",
            ),
            (
                SimConfig {
                    faults: FaultConfig {
                        variance_factor: 0.5,
                        ..FaultConfig::default()
                    },
                    ..d()
                },
                "faults.variance_factor",
            ),
            (
                SimConfig {
                    faults: FaultConfig {
                        spike_max_len: 0,
                        ..FaultConfig::default()
                    },
                    ..d()
                },
                "faults.spike_max_len",
            ),
            (
                SimConfig {
                    inspections: InspectionConfig {
                        interval_ms: 0,
                        ..InspectionConfig::default()
                    },
                    ..d()
                },
                "inspections.interval_ms",
            ),
            (
                SimConfig {
                    inspections: InspectionConfig {
                        base_rate: 0.5,
                        max_rate: 0.4,
                        ..InspectionConfig::default()
                    },
                    ..d()
                },
                "inspections.max_rate",
            ),
        ];
        for (cfg, field) in cases {
            assert_eq!(err_field(&cfg), field, "{cfg:?}");
        }
    }

    #[test]
    fn disabled_sections_skip_their_checks() {
        let cfg = SimConfig {
            late_fraction: 0.0,
            max_late_ms: 0,
            faults: FaultConfig {
                enabled: false,
                kinds: vec![],
                ..FaultConfig::default()
            },
            inspections: InspectionConfig {
                enabled: false,
                interval_ms: 0,
                ..InspectionConfig::default()
            },
            ..SimConfig::default()
        };
        cfg.validate().unwrap();
    }
}
