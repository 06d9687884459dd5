//! The long format's readings: values of one machine that arrive one channel per message are
//! gathered by instant into one reading, so they land in the same windows, with the same
//! `n_readings` and features, as a wide reading of those channels would.
//!
//! A machine's instant is complete when a value of a later instant arrives for that machine
//! (producers write an instant's channels together; a value for an instant older than the
//! one being gathered is passed on as its own one-channel reading, where the windower counts
//! it late if its window has closed). A channel seen twice at one instant is counted and its
//! repeat dropped. Offsets: a gathered reading carries the smallest offset of its values, and
//! [`LongAssembler::min_pending_seq`] holds back the commit while an instant is open, so a
//! restart replays it whole.

use hashbrown::HashMap;

use crate::window::KeyRef;
use crate::{LongValue, LongValueRef, MachineKey, Reading};

/// The instant being gathered for one machine.
#[derive(Debug)]
struct Instant {
    ts_ms: i64,
    values: Vec<(String, f64)>,
    min_seq: u64,
}

impl Instant {
    fn into_reading(self, line: &str, machine: &str) -> (Reading, u64) {
        let reading = Reading {
            line: line.to_owned(),
            machine: machine.to_owned(),
            ts_ms: self.ts_ms,
            values: self.values,
        };
        (reading, self.min_seq)
    }
}

/// What [`LongAssembler::push`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Assembled {
    /// The reading complete now (at most one per value: the instant this value closed, or
    /// the value alone when it is older than its machine's instant), with the smallest offset
    /// of its values.
    pub reading: Option<(Reading, u64)>,
    /// Whether the value repeated a channel already gathered at its instant (dropped).
    pub duplicate: bool,
}

/// Gathers long-format values into readings, per machine (`line`, `machine`).
#[derive(Debug, Default)]
pub struct LongAssembler {
    /// The instant being gathered per machine (looked up by borrowed ids, without
    /// allocating).
    open: HashMap<MachineKey, Instant>,
    duplicates: u64,
    /// The newest event time pushed (the partition's stream time).
    newest_ms: Option<i64>,
}

impl LongAssembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value read at offset `seq`.
    pub fn push(&mut self, v: LongValue, seq: u64) -> Assembled {
        self.push_ref(v.into(), seq)
    }

    /// Adds one value read at offset `seq`, its ids borrowed: only a new machine, a new
    /// instant and a gathered channel allocate.
    pub fn push_ref(&mut self, v: LongValueRef<'_>, seq: u64) -> Assembled {
        self.newest_ms = Some(self.newest_ms.map_or(v.ts_ms, |n| n.max(v.ts_ms)));
        let mut out = Assembled::default();
        let key = KeyRef {
            line: &v.line,
            machine: &v.machine,
        };
        let channel = v.channel.into_owned();
        let instant = |channel: String| Instant {
            ts_ms: v.ts_ms,
            values: vec![(channel, v.value)],
            min_seq: seq,
        };
        let Some(open) = self.open.get_mut(&key) else {
            self.open.insert(MachineKey::from(&key), instant(channel));
            return out;
        };
        if open.ts_ms == v.ts_ms {
            if open.values.iter().any(|(c, _)| *c == channel) {
                self.duplicates += 1;
                out.duplicate = true;
            } else {
                open.values.push((channel, v.value));
                open.min_seq = open.min_seq.min(seq);
            }
        } else if v.ts_ms < open.ts_ms {
            // An older instant than the one gathered: its own reading.
            out.reading = Some(instant(channel).into_reading(&v.line, &v.machine));
        } else {
            // The machine's next instant likely holds as many channels as this one.
            let mut next = instant(channel);
            next.values.reserve(open.values.len().saturating_sub(1));
            let done = std::mem::replace(open, next);
            out.reading = Some(done.into_reading(&v.line, &v.machine));
        }
        out
    }

    /// The smallest offset of a value still being gathered (the commit must not pass it).
    pub fn min_pending_seq(&self) -> Option<u64> {
        self.open.values().map(|i| i.min_seq).min()
    }

    /// Hands over the open instants of machines whose newest value is older than `cutoff_ms`
    /// (idle machines, so their last reading reaches the windower before it evicts them).
    pub fn flush_older_than(&mut self, cutoff_ms: i64) -> Vec<(Reading, u64)> {
        let mut out = Vec::new();
        self.open.retain(|key, i| {
            if i.ts_ms < cutoff_ms {
                let done = std::mem::replace(
                    i,
                    Instant {
                        ts_ms: 0,
                        values: Vec::new(),
                        min_seq: 0,
                    },
                );
                out.push(done.into_reading(&key.line, &key.machine));
                false
            } else {
                true
            }
        });
        out.sort_by_key(|(r, _)| r.ts_ms);
        out
    }

    /// Hands over the instants older than the newest event time pushed minus `lateness_ms`
    /// (`window.allowed_lateness`): their machines moved on or fell silent, and a value that
    /// late would be late for its window too.
    pub fn flush_settled(&mut self, lateness_ms: i64) -> Vec<(Reading, u64)> {
        match self.newest_ms {
            Some(n) => self.flush_older_than(n.saturating_sub(lateness_ms)),
            None => Vec::new(),
        }
    }

    /// Values dropped because their channel was already gathered at their instant.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Machines with an instant being gathered.
    pub fn open_instants(&self) -> usize {
        self.open.len()
    }
}
