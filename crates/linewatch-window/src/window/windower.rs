//! The [`Windower`]: folds readings into their machines' windows, advances
//! watermarks, evicts idle machines and hands out closed windows.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::decode::{Reading, ReadingRef};

use super::keys::KeyRef;
use super::machine::{Geometry, MachineState, Sink, Tombstone, window_mut};
use super::{
    ChannelSet, CloseReason, ClosedWindow, ConfigError, Lateness, MAX_ABS_TS_MS, MachineKey,
    PushError, PushOutcome, WindowConfig, WindowStats, assign,
};

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
        let hi = assign::window_start(ts_ms, g.slide);
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
