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

use std::collections::HashMap;

use crate::{LongValue, Reading};

/// The instant being gathered for one machine.
#[derive(Debug)]
struct Instant {
    line: String,
    machine: String,
    ts_ms: i64,
    values: Vec<(String, f64)>,
    min_seq: u64,
}

impl Instant {
    fn into_reading(self) -> (Reading, u64) {
        let reading = Reading {
            line: self.line,
            machine: self.machine,
            ts_ms: self.ts_ms,
            values: self.values,
        };
        (reading, self.min_seq)
    }
}

/// What [`LongAssembler::push`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Assembled {
    /// Readings complete now, with the smallest offset of their values, oldest first.
    pub readings: Vec<(Reading, u64)>,
    /// Whether the value repeated a channel already gathered at its instant (dropped).
    pub duplicate: bool,
}

/// Gathers long-format values into readings, per machine (`line`, `machine`).
#[derive(Debug, Default)]
pub struct LongAssembler {
    open: HashMap<(String, String), Instant>,
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
        self.newest_ms = Some(self.newest_ms.map_or(v.ts_ms, |n| n.max(v.ts_ms)));
        let mut out = Assembled::default();
        let key = (v.line, v.machine);
        match self.open.get_mut(&key) {
            Some(open) if open.ts_ms == v.ts_ms => {
                if open.values.iter().any(|(c, _)| *c == v.channel) {
                    self.duplicates += 1;
                    out.duplicate = true;
                } else {
                    open.values.push((v.channel, v.value));
                    open.min_seq = open.min_seq.min(seq);
                }
                return out;
            }
            Some(open) if v.ts_ms < open.ts_ms => {
                // An older instant than the one gathered: its own reading.
                let reading = Reading {
                    line: key.0,
                    machine: key.1,
                    ts_ms: v.ts_ms,
                    values: vec![(v.channel, v.value)],
                };
                out.readings.push((reading, seq));
                return out;
            }
            _ => {}
        }
        let next = Instant {
            line: key.0.clone(),
            machine: key.1.clone(),
            ts_ms: v.ts_ms,
            values: vec![(v.channel, v.value)],
            min_seq: seq,
        };
        if let Some(done) = self.open.insert(key, next) {
            out.readings.push(done.into_reading());
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
        let idle: Vec<(String, String)> = self
            .open
            .iter()
            .filter(|(_, i)| i.ts_ms < cutoff_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<(Reading, u64)> = idle
            .into_iter()
            .filter_map(|k| self.open.remove(&k).map(Instant::into_reading))
            .collect();
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
