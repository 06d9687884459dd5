//! What the windower hands back: closed windows and why they closed, what a
//! push did with a reading or why it refused it, and the counters.

use crate::features::ChannelFeatures;

use super::MachineKey;
#[cfg(doc)]
use super::{ChannelSet, MAX_ABS_TS_MS, Windower};

/// Why a window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The machine's watermark passed the window end.
    Watermark,
    /// The machine went idle and was evicted ([`Windower::flush_idle`]).
    Idle,
    /// [`Windower::flush_all`] (shutdown).
    Flush,
}

/// A window that will receive no more readings, with its features.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    /// The machine.
    pub key: MachineKey,
    /// Window start, epoch ms (inclusive).
    pub start_ms: i64,
    /// Window end, epoch ms (exclusive).
    pub end_ms: i64,
    /// Readings folded into the window (saturates at `u32::MAX`).
    pub n_readings: u32,
    /// Smallest `seq` of the readings in the window.
    pub min_seq: u64,
    /// Largest `seq` of the readings in the window.
    pub max_seq: u64,
    /// Features per configured channel, in [`ChannelSet`] order; `None` for a
    /// channel with no value in the window.
    pub features: Vec<Option<ChannelFeatures>>,
    /// Why it closed.
    pub reason: CloseReason,
}

impl ClosedWindow {
    /// Whether the window closed because the machine's watermark passed its end, so every
    /// reading on time for it was folded in. A window closed before that (idle eviction,
    /// [`Windower::flush_all`]) may hold only part of its readings: its features (count,
    /// std, slope, even the mean of a drifting channel) are not comparable with full windows'.
    pub fn is_complete(&self) -> bool {
        self.reason == CloseReason::Watermark
    }

    /// Indices (in [`ChannelSet`] order) of channels absent from the window.
    pub fn missing_channels(&self) -> impl Iterator<Item = usize> + '_ {
        self.features
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.is_none().then_some(i))
    }
}

/// What [`Windower::push`] did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushOutcome {
    /// Windows the reading was folded into.
    pub windows: u32,
    /// Windows of the reading that were already closed (skipped).
    pub late_windows: u32,
    /// Values whose channel is not in the [`ChannelSet`] (ignored).
    pub unknown_channels: u32,
}

/// Classification of a reading by [`PushOutcome::lateness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lateness {
    /// All its windows were open.
    OnTime,
    /// Some of its windows were closed; it went into the open ones.
    PartiallyLate,
    /// All its windows were closed; it was not folded anywhere.
    Late,
}

impl PushOutcome {
    /// On time, partially late or late.
    pub fn lateness(&self) -> Lateness {
        match (self.windows, self.late_windows) {
            (_, 0) => Lateness::OnTime,
            (0, _) => Lateness::Late,
            _ => Lateness::PartiallyLate,
        }
    }

    /// True when the reading was folded nowhere.
    pub fn is_late(&self) -> bool {
        self.lateness() == Lateness::Late
    }
}

/// Why [`Windower::push`] refused a reading (the decoder already rejects
/// both; these guard readings built by hand).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// `|ts_ms|` exceeds [`MAX_ABS_TS_MS`].
    #[error("timestamp {ts_ms} ms is outside the supported range")]
    TimestampOutOfRange {
        /// The timestamp.
        ts_ms: i64,
    },
    /// A value is NaN or infinite.
    #[error("channel `{channel}` holds a non-finite value")]
    NonFiniteValue {
        /// The channel.
        channel: String,
    },
}

impl PushError {
    /// Short stable code, as [`crate::DecodeError::reason`].
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TimestampOutOfRange { .. } => "timestamp_out_of_range",
            Self::NonFiniteValue { .. } => "non_finite_value",
        }
    }
}

/// Counters of a [`Windower`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowStats {
    /// Readings folded into at least one window (on time or partially late).
    pub readings_accepted: u64,
    /// Readings folded into no window (all their windows were closed).
    pub readings_late: u64,
    /// Readings folded into some but not all of their windows.
    pub readings_partially_late: u64,
    /// Readings refused by [`Windower::push`] ([`PushError`]).
    pub readings_rejected: u64,
    /// Values of channels outside the [`ChannelSet`] (ignored).
    pub unknown_channel_values: u64,
    /// Windows closed so far.
    pub windows_closed: u64,
    /// Windows open now.
    pub windows_open: usize,
    /// Machines with state now.
    pub machines: usize,
    /// Machines evicted as idle so far.
    pub machines_evicted: u64,
    /// Tombstones held now.
    pub tombstones: usize,
}
