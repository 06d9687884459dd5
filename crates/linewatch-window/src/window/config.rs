//! Window geometry and timing ([`WindowConfig`]), its limits and why a
//! configuration is refused ([`ConfigError`]).

use serde::{Deserialize, Serialize};

use super::assign;
#[cfg(doc)]
use super::{ChannelSet, Windower};

/// Largest accepted `size_ms`, `allowed_lateness_ms` and `idle_timeout_ms`
/// (2^40 ms, about 35 years); keeps all window arithmetic far from overflow.
pub const MAX_DURATION_MS: u64 = 1 << 40;
/// Largest accepted `size_ms / slide_ms` (windows one reading falls into).
pub const MAX_WINDOWS_PER_READING: u64 = 1024;
/// Event times accepted by [`Windower::push`]: `|ts_ms| <= MAX_ABS_TS_MS`
/// (2^60 ms, far beyond any calendar).
pub const MAX_ABS_TS_MS: i64 = 1 << 60;

fn default_max_tombstones() -> usize {
    65_536
}

/// Window geometry and timing. Durations are milliseconds of event time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length.
    pub size_ms: u64,
    /// Distance between window starts; equal to `size_ms` for tumbling
    /// windows, smaller (and dividing `size_ms`) for hopping windows.
    pub slide_ms: u64,
    /// How far behind a machine's latest event time a reading may be and
    /// still be folded into its window.
    #[serde(default)]
    pub allowed_lateness_ms: u64,
    /// A machine whose latest event time is this far behind stream time has
    /// its windows flushed and its state evicted by [`Windower::flush_idle`].
    pub idle_timeout_ms: u64,
    /// Most tombstones (frontiers of evicted machines) kept.
    #[serde(default = "default_max_tombstones")]
    pub max_tombstones: usize,
}

impl WindowConfig {
    /// Tumbling windows of `size_ms`.
    pub fn tumbling(size_ms: u64, allowed_lateness_ms: u64, idle_timeout_ms: u64) -> Self {
        Self::hopping(size_ms, size_ms, allowed_lateness_ms, idle_timeout_ms)
    }

    /// Hopping windows of `size_ms` starting every `slide_ms`.
    pub fn hopping(
        size_ms: u64,
        slide_ms: u64,
        allowed_lateness_ms: u64,
        idle_timeout_ms: u64,
    ) -> Self {
        Self {
            size_ms,
            slide_ms,
            allowed_lateness_ms,
            idle_timeout_ms,
            max_tombstones: default_max_tombstones(),
        }
    }

    /// Checks the geometry: `size > 0`, `slide > 0`, `slide <= size`,
    /// `size % slide == 0`, bounded durations and windows per reading.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.size_ms == 0 {
            return Err(ConfigError::ZeroSize);
        }
        if self.slide_ms == 0 {
            return Err(ConfigError::ZeroSlide);
        }
        if self.slide_ms > self.size_ms {
            return Err(ConfigError::SlideLargerThanSize {
                size_ms: self.size_ms,
                slide_ms: self.slide_ms,
            });
        }
        if !self.size_ms.is_multiple_of(self.slide_ms) {
            return Err(ConfigError::SizeNotMultipleOfSlide {
                size_ms: self.size_ms,
                slide_ms: self.slide_ms,
            });
        }
        for (field, value) in [
            ("size_ms", self.size_ms),
            ("allowed_lateness_ms", self.allowed_lateness_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
        ] {
            if value > MAX_DURATION_MS {
                return Err(ConfigError::TooLong {
                    field,
                    value,
                    max: MAX_DURATION_MS,
                });
            }
        }
        let per = self.size_ms / self.slide_ms;
        if per > MAX_WINDOWS_PER_READING {
            return Err(ConfigError::TooManyWindowsPerReading {
                n: per,
                max: MAX_WINDOWS_PER_READING,
            });
        }
        if self.idle_timeout_ms == 0 {
            return Err(ConfigError::ZeroIdleTimeout);
        }
        Ok(())
    }

    /// Number of windows each reading falls into (`size / slide`).
    pub fn windows_per_reading(&self) -> u64 {
        self.size_ms / self.slide_ms.max(1)
    }

    /// `(start, end)` of every window that holds `ts_ms`, oldest first (for
    /// attaching an inspection label to its windows). Empty for a config
    /// that does not validate.
    ///
    /// The rule itself is [`super::assign::windows_containing`]; this is it
    /// for a validated configuration.
    pub fn windows_containing(&self, ts_ms: i64) -> impl Iterator<Item = (i64, i64)> + use<> {
        let ok = self.validate().is_ok() && (-MAX_ABS_TS_MS..=MAX_ABS_TS_MS).contains(&ts_ms);
        let (size, slide) = if ok {
            (self.size_ms as i64, self.slide_ms as i64)
        } else {
            (0, 1)
        };
        assign::windows_containing(ts_ms, size, slide)
    }
}

/// Why a [`WindowConfig`] or [`ChannelSet`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `size_ms` is 0.
    #[error("window size_ms must be > 0")]
    ZeroSize,
    /// `slide_ms` is 0.
    #[error("window slide_ms must be > 0")]
    ZeroSlide,
    /// `slide_ms > size_ms`.
    #[error("window slide_ms ({slide_ms}) must not exceed size_ms ({size_ms})")]
    SlideLargerThanSize {
        /// Window size.
        size_ms: u64,
        /// Slide.
        slide_ms: u64,
    },
    /// `size_ms` is not a multiple of `slide_ms`.
    #[error("window size_ms ({size_ms}) must be a multiple of slide_ms ({slide_ms})")]
    SizeNotMultipleOfSlide {
        /// Window size.
        size_ms: u64,
        /// Slide.
        slide_ms: u64,
    },
    /// A duration exceeds [`MAX_DURATION_MS`].
    #[error("{field} = {value} exceeds the maximum of {max} ms")]
    TooLong {
        /// Field name.
        field: &'static str,
        /// Value given.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// `size_ms / slide_ms` exceeds [`MAX_WINDOWS_PER_READING`].
    #[error("size_ms / slide_ms = {n} windows per reading exceeds the maximum of {max}")]
    TooManyWindowsPerReading {
        /// Windows per reading.
        n: u64,
        /// The limit.
        max: u64,
    },
    /// `idle_timeout_ms` is 0.
    #[error("idle_timeout_ms must be > 0")]
    ZeroIdleTimeout,
    /// The channel list is empty.
    #[error("the channel list is empty")]
    NoChannels,
    /// A channel name is empty.
    #[error("a channel name is empty")]
    EmptyChannelName,
    /// A channel name appears twice.
    #[error("channel `{0}` is listed twice")]
    DuplicateChannel(String),
}
