//! Per-machine event-time windows with watermarks, lateness and idle eviction.
//!
//! # Semantics
//!
//! * Windows are `[start, start + size)` with `start` a multiple of `slide`
//!   (aligned to the epoch). A reading at `ts` belongs to the `size / slide`
//!   windows whose range holds `ts`; a reading at exactly `end` belongs to the
//!   next window.
//! * State is kept per machine, keyed by `(line, machine)`. The machine's
//!   watermark is the highest event time it has sent minus
//!   `allowed_lateness_ms`. Each machine keeps a *frontier*: every window with
//!   `end <= frontier` is closed. Normally the frontier is the watermark; a
//!   flush moves it further (see below). It never moves back.
//! * A reading is classified against the frontier before its own timestamp
//!   advances the watermark. Windows of the reading that are closed are
//!   skipped: if all of them are closed the reading is *late* (counted,
//!   folded nowhere); if only some are (hopping windows) it is *partially
//!   late* and goes into the open ones only.
//! * Stream time is the highest event time seen over all machines.
//!   [`Windower::flush_idle`] closes every open window of each machine whose
//!   latest event time is more than `idle_timeout_ms` behind stream time and
//!   evicts its state. The caller decides how often to call it (say once per
//!   poll batch); state stays bounded as long as it does.
//! * A flushed machine's frontier becomes the end of the last window that
//!   holds its latest reading, so nothing is ever folded into a window that
//!   was already emitted. Evicted machines leave a *tombstone* (key and
//!   frontier, a few dozen bytes) so that a machine coming back after eviction
//!   treats readings older than what was closed as late. At most
//!   `max_tombstones` are kept, oldest dropped first; a machine whose
//!   tombstone was dropped starts from scratch.
//! * Closed windows of one machine are emitted in order of window end.
//!   Across machines, windows appear in the order they close; flushes visit
//!   machines sorted by key, so output is deterministic for a given input.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use hashbrown::{Equivalent, HashMap};
use serde::{Deserialize, Serialize};

use crate::decode::{Reading, ReadingRef};
use crate::features::{Acc, ChannelFeatures};

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
    pub fn windows_containing(&self, ts_ms: i64) -> impl Iterator<Item = (i64, i64)> + use<> {
        let ok = self.validate().is_ok() && (-MAX_ABS_TS_MS..=MAX_ABS_TS_MS).contains(&ts_ms);
        let (size, slide) = (self.size_ms as i64, self.slide_ms as i64);
        let k = if ok { size / slide } else { 0 };
        let hi = if ok {
            ts_ms.div_euclid(slide) * slide
        } else {
            0
        };
        (0..k).rev().map(move |j| {
            let s = hi - j * slide;
            (s, s + size)
        })
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

/// The ordered list of channels that become features. Readings' other
/// channels are counted and ignored.
#[derive(Debug, Clone)]
pub struct ChannelSet {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, usize>,
}

impl PartialEq for ChannelSet {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl ChannelSet {
    /// A channel set in the given order. Fails on an empty list, an empty
    /// name, or a duplicate.
    pub fn new<I, S>(names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Self {
            names: Vec::new(),
            index: HashMap::new(),
        };
        for name in names {
            let name = name.as_ref();
            if name.is_empty() {
                return Err(ConfigError::EmptyChannelName);
            }
            if out.index.contains_key(name) {
                return Err(ConfigError::DuplicateChannel(name.to_owned()));
            }
            let name: Arc<str> = Arc::from(name);
            out.index.insert(name.clone(), out.names.len());
            out.names.push(name);
        }
        if out.names.is_empty() {
            return Err(ConfigError::NoChannels);
        }
        Ok(out)
    }

    /// Number of channels.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false (a channel set is never empty); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Channel names in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.names.iter().map(|n| &**n)
    }

    /// Name of channel `i`.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).map(|n| &**n)
    }

    /// Position of a channel.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Position of a channel, trying position `hint` first (readings usually
    /// list channels in the configured order, which makes this one compare).
    #[inline]
    fn index_hinted(&self, name: &str, hint: usize) -> Option<usize> {
        match self.names.get(hint) {
            Some(n) if **n == *name => Some(hint),
            _ => self.index.get(name).copied(),
        }
    }
}

/// Identity of a machine: `(line, machine)`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineKey {
    /// Production line id.
    pub line: Arc<str>,
    /// Machine id.
    pub machine: Arc<str>,
}

impl MachineKey {
    /// A key from its parts.
    pub fn new(line: &str, machine: &str) -> Self {
        Self {
            line: Arc::from(line),
            machine: Arc::from(machine),
        }
    }
}

impl fmt::Display for MachineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.line, self.machine)
    }
}

/// Borrowed form of [`MachineKey`] for allocation-free lookups. Hashes
/// exactly like `MachineKey` (derived `Hash` of two `str`s in the same order).
#[derive(Hash)]
struct KeyRef<'a> {
    line: &'a str,
    machine: &'a str,
}

impl Equivalent<MachineKey> for KeyRef<'_> {
    fn equivalent(&self, key: &MachineKey) -> bool {
        *key.line == *self.line && *key.machine == *self.machine
    }
}

impl From<&KeyRef<'_>> for MachineKey {
    fn from(k: &KeyRef<'_>) -> Self {
        MachineKey::new(k.line, k.machine)
    }
}

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

struct Window {
    start: i64,
    n: u32,
    min_seq: u64,
    max_seq: u64,
    accs: Vec<Acc>,
}

struct MachineState {
    key: MachineKey,
    max_ts: i64,
    /// Every window with `end <= frontier` is closed.
    frontier: i64,
    /// Open windows sorted by start.
    windows: VecDeque<Window>,
}

#[derive(Clone, Copy)]
struct Tombstone {
    frontier: i64,
    generation: u64,
}

#[derive(Clone, Copy)]
struct Geometry {
    size: i64,
    slide: i64,
    per_reading: i64,
    lateness: i64,
    idle: i64,
}

/// Where closed windows go, and recycled accumulator vectors.
struct Sink {
    closed: Vec<ClosedWindow>,
    pool: Vec<Vec<Acc>>,
    windows_open: usize,
    windows_closed: u64,
}

const POOL_MAX: usize = 4096;

impl Sink {
    fn close_until(&mut self, st: &mut MachineState, g: Geometry, frontier: i64, why: CloseReason) {
        while let Some(front) = st.windows.front()
            && front.start + g.size <= frontier
        {
            if let Some(w) = st.windows.pop_front() {
                self.emit(&st.key, w, g, why);
            }
        }
    }

    fn emit(&mut self, key: &MachineKey, mut w: Window, g: Geometry, reason: CloseReason) {
        let features = w.accs.iter().map(Acc::finish).collect();
        self.closed.push(ClosedWindow {
            key: key.clone(),
            start_ms: w.start,
            end_ms: w.start + g.size,
            n_readings: w.n,
            min_seq: w.min_seq,
            max_seq: w.max_seq,
            features,
            reason,
        });
        self.windows_open -= 1;
        self.windows_closed += 1;
        if self.pool.len() < POOL_MAX {
            w.accs.fill(Acc::EMPTY);
            self.pool.push(w.accs);
        }
    }

    /// Closes every open window of `st` and moves its frontier past its
    /// latest reading.
    fn flush_machine(&mut self, st: &mut MachineState, g: Geometry, why: CloseReason) {
        while let Some(w) = st.windows.pop_front() {
            self.emit(&st.key, w, g, why);
        }
        if st.max_ts != i64::MIN {
            let last_end = st.max_ts.div_euclid(g.slide) * g.slide + g.size;
            st.frontier = st.frontier.max(last_end);
        }
    }
}

/// Per-machine event-time windowing over [`Reading`]s. Pure: no clock, no
/// I/O; time is the readings' event time.
pub struct Windower {
    cfg: WindowConfig,
    geo: Geometry,
    channels: Arc<ChannelSet>,
    machines: HashMap<MachineKey, MachineState>,
    tombstones: HashMap<MachineKey, Tombstone>,
    tomb_order: VecDeque<(MachineKey, u64)>,
    tomb_generation: u64,
    sink: Sink,
    scratch: Vec<(usize, f64)>,
    stream_time: i64,
    stats: WindowStats,
}

impl fmt::Debug for Windower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Windower")
            .field("cfg", &self.cfg)
            .field("channels", &self.channels.names)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Windower {
    /// A windower for validated `cfg` over `channels`.
    pub fn new(cfg: WindowConfig, channels: Arc<ChannelSet>) -> Result<Self, ConfigError> {
        cfg.validate()?;
        // validate() bounds every duration by 2^40, so these casts are exact.
        let geo = Geometry {
            size: cfg.size_ms as i64,
            slide: cfg.slide_ms as i64,
            per_reading: (cfg.size_ms / cfg.slide_ms) as i64,
            lateness: cfg.allowed_lateness_ms as i64,
            idle: cfg.idle_timeout_ms as i64,
        };
        Ok(Self {
            cfg,
            geo,
            channels,
            machines: HashMap::new(),
            tombstones: HashMap::new(),
            tomb_order: VecDeque::new(),
            tomb_generation: 0,
            sink: Sink {
                closed: Vec::new(),
                pool: Vec::new(),
                windows_open: 0,
                windows_closed: 0,
            },
            scratch: Vec::new(),
            stream_time: i64::MIN,
            stats: WindowStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// The channel set (shared with [`crate::FeatureSchema`]).
    pub fn channels(&self) -> &Arc<ChannelSet> {
        &self.channels
    }

    /// Folds an owned reading; `seq` is the caller's position of the reading
    /// in its source (the Kafka offset).
    pub fn push(&mut self, reading: &Reading, seq: u64) -> Result<PushOutcome, PushError> {
        self.push_parts(
            &reading.line,
            &reading.machine,
            reading.ts_ms,
            &reading.values,
            seq,
        )
    }

    /// Folds a borrowed reading (the allocation-free path).
    pub fn push_ref(
        &mut self,
        reading: &ReadingRef<'_>,
        seq: u64,
    ) -> Result<PushOutcome, PushError> {
        self.push_parts(
            &reading.line,
            &reading.machine,
            reading.ts_ms,
            &reading.values,
            seq,
        )
    }

    /// Folds a reading given by parts.
    pub fn push_parts<S: AsRef<str>>(
        &mut self,
        line: &str,
        machine: &str,
        ts_ms: i64,
        values: &[(S, f64)],
        seq: u64,
    ) -> Result<PushOutcome, PushError> {
        if !(-MAX_ABS_TS_MS..=MAX_ABS_TS_MS).contains(&ts_ms) {
            self.stats.readings_rejected += 1;
            return Err(PushError::TimestampOutOfRange { ts_ms });
        }
        let Self {
            geo,
            channels,
            machines,
            tombstones,
            sink,
            scratch,
            stream_time,
            stats,
            ..
        } = self;
        let g = *geo;

        // Resolve channels once; they are folded into up to size/slide windows.
        scratch.clear();
        let mut unknown = 0u32;
        for (i, (name, v)) in values.iter().enumerate() {
            let name = name.as_ref();
            if !v.is_finite() {
                stats.readings_rejected += 1;
                return Err(PushError::NonFiniteValue {
                    channel: name.to_owned(),
                });
            }
            match channels.index_hinted(name, i) {
                Some(idx) => scratch.push((idx, *v)),
                None => unknown += 1,
            }
        }
        *stream_time = (*stream_time).max(ts_ms);

        let key = KeyRef { line, machine };
        let (_, st) = machines.raw_entry_mut().from_key(&key).or_insert_with(|| {
            let owned = MachineKey::from(&key);
            let frontier = tombstones.remove(&key).map_or(i64::MIN, |t| t.frontier);
            let st = MachineState {
                key: owned.clone(),
                max_ts: i64::MIN,
                frontier,
                windows: VecDeque::new(),
            };
            (owned, st)
        });

        let mut out = PushOutcome {
            unknown_channels: unknown,
            ..PushOutcome::default()
        };
        let hi = ts_ms.div_euclid(g.slide) * g.slide;
        let mut start = hi - (g.per_reading - 1) * g.slide;
        while start <= hi {
            if start + g.size <= st.frontier {
                out.late_windows += 1;
            } else {
                let w = window_mut(&mut st.windows, start, sink, channels.len());
                w.n = w.n.saturating_add(1);
                w.min_seq = w.min_seq.min(seq);
                w.max_seq = w.max_seq.max(seq);
                let t_s = (ts_ms - start) as f64 / 1000.0;
                for &(idx, v) in scratch.iter() {
                    if let Some(acc) = w.accs.get_mut(idx) {
                        acc.push(t_s, ts_ms, v);
                    }
                }
                out.windows += 1;
            }
            start += g.slide;
        }

        if ts_ms > st.max_ts {
            st.max_ts = ts_ms;
            let watermark = ts_ms - g.lateness;
            if watermark > st.frontier {
                st.frontier = watermark;
                sink.close_until(st, g, watermark, CloseReason::Watermark);
            }
        }

        stats.unknown_channel_values += u64::from(unknown);
        match out.lateness() {
            Lateness::OnTime => stats.readings_accepted += 1,
            Lateness::PartiallyLate => {
                stats.readings_accepted += 1;
                stats.readings_partially_late += 1;
            }
            Lateness::Late => stats.readings_late += 1,
        }
        Ok(out)
    }

    /// Takes the windows closed so far (per machine in order of window end).
    pub fn drain_closed(&mut self) -> Vec<ClosedWindow> {
        std::mem::take(&mut self.sink.closed)
    }

    /// Number of closed windows waiting in [`Windower::drain_closed`].
    pub fn pending_closed(&self) -> usize {
        self.sink.closed.len()
    }

    /// Flushes and evicts every machine whose latest event time is more than
    /// `idle_timeout_ms` behind stream time. Returns the number evicted.
    pub fn flush_idle(&mut self) -> usize {
        if self.stream_time == i64::MIN {
            return 0;
        }
        let cutoff = self.stream_time - self.geo.idle;
        let mut idle: Vec<MachineKey> = self
            .machines
            .values()
            .filter(|st| st.max_ts < cutoff)
            .map(|st| st.key.clone())
            .collect();
        idle.sort_unstable();
        for key in &idle {
            if let Some(mut st) = self.machines.remove(key) {
                self.sink
                    .flush_machine(&mut st, self.geo, CloseReason::Idle);
                self.add_tombstone(st.key, st.frontier);
            }
        }
        self.stats.machines_evicted += idle.len() as u64;
        idle.len()
    }

    /// Closes every open window of every machine (shutdown). Machine state is
    /// kept: readings that arrive afterwards for those windows are late.
    pub fn flush_all(&mut self) {
        let mut keys: Vec<MachineKey> = self
            .machines
            .values()
            .filter(|st| !st.windows.is_empty())
            .map(|st| st.key.clone())
            .collect();
        keys.sort_unstable();
        for key in &keys {
            if let Some(st) = self.machines.get_mut(key) {
                self.sink.flush_machine(st, self.geo, CloseReason::Flush);
            }
        }
    }

    fn add_tombstone(&mut self, key: MachineKey, frontier: i64) {
        let cap = self.cfg.max_tombstones;
        if cap == 0 {
            return;
        }
        self.tomb_generation += 1;
        let generation = self.tomb_generation;
        self.tombstones.insert(
            key.clone(),
            Tombstone {
                frontier,
                generation,
            },
        );
        self.tomb_order.push_back((key, generation));
        while self.tombstones.len() > cap {
            let Some((old, g)) = self.tomb_order.pop_front() else {
                break;
            };
            if self.tombstones.get(&old).is_some_and(|t| t.generation == g) {
                self.tombstones.remove(&old);
            }
        }
        // Entries of machines that came back are stale; keep the queue small.
        if self.tomb_order.len() > 2 * cap + 64 {
            let live = &self.tombstones;
            self.tomb_order
                .retain(|(k, g)| live.get(k).is_some_and(|t| t.generation == *g));
        }
    }

    /// Per machine with open windows: the smallest `seq` in them. Offsets at
    /// or above it must not be committed yet.
    pub fn open_min_seq(&self) -> impl Iterator<Item = (&MachineKey, u64)> + '_ {
        self.machines.values().filter_map(|st| {
            st.windows
                .iter()
                .map(|w| w.min_seq)
                .min()
                .map(|m| (&st.key, m))
        })
    }

    /// Smallest `seq` not yet handed out: over open windows and closed windows
    /// still waiting in [`Windower::drain_closed`]. `None` when nothing is
    /// held, so every pushed offset may be committed once the drained windows
    /// are durable.
    pub fn min_unemitted_seq(&self) -> Option<u64> {
        let open = self.open_min_seq().map(|(_, s)| s).min();
        let pending = self.sink.closed.iter().map(|w| w.min_seq).min();
        match (open, pending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Highest event time seen over all machines.
    pub fn stream_time_ms(&self) -> Option<i64> {
        (self.stream_time != i64::MIN).then_some(self.stream_time)
    }

    /// Frontier of a machine: every window ending at or before it is closed
    /// (from live state, else from its tombstone).
    pub fn frontier_ms(&self, line: &str, machine: &str) -> Option<i64> {
        let key = KeyRef { line, machine };
        if let Some(st) = self.machines.get(&key) {
            return (st.frontier != i64::MIN).then_some(st.frontier);
        }
        self.tombstones.get(&key).map(|t| t.frontier)
    }

    /// Counters.
    pub fn stats(&self) -> WindowStats {
        WindowStats {
            windows_closed: self.sink.windows_closed,
            windows_open: self.sink.windows_open,
            machines: self.machines.len(),
            tombstones: self.tombstones.len(),
            ..self.stats
        }
    }
}

/// The open window starting at `start`, created if needed.
#[inline]
fn window_mut<'w>(
    windows: &'w mut VecDeque<Window>,
    start: i64,
    sink: &mut Sink,
    n_channels: usize,
) -> &'w mut Window {
    let len = windows.len();
    let pos = match windows.back() {
        Some(b) if b.start == start => len - 1,
        Some(b) if b.start < start => len,
        _ => windows.partition_point(|w| w.start < start),
    };
    if pos == len || windows[pos].start != start {
        let accs = sink
            .pool
            .pop()
            .filter(|a| a.len() == n_channels)
            .unwrap_or_else(|| vec![Acc::EMPTY; n_channels]);
        windows.insert(
            pos,
            Window {
                start,
                n: 0,
                min_seq: u64::MAX,
                max_seq: 0,
                accs,
            },
        );
        sink.windows_open += 1;
    }
    &mut windows[pos]
}
