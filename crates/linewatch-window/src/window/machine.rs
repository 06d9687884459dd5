//! Per-machine state: the open windows of one machine, its frontier, the
//! tombstone it leaves when evicted, and the sink closed windows go to.

use std::collections::VecDeque;

use crate::features::Acc;

use super::{CloseReason, ClosedWindow, MachineKey, assign};

pub(super) struct Window {
    pub(super) start: i64,
    pub(super) n: u32,
    pub(super) min_seq: u64,
    pub(super) max_seq: u64,
    pub(super) accs: Vec<Acc>,
}

pub(super) struct MachineState {
    pub(super) key: MachineKey,
    pub(super) max_ts: i64,
    /// Every window with `end <= frontier` is closed.
    pub(super) frontier: i64,
    /// Open windows sorted by start.
    pub(super) windows: VecDeque<Window>,
}

#[derive(Clone, Copy)]
pub(super) struct Tombstone {
    pub(super) frontier: i64,
    pub(super) generation: u64,
}

#[derive(Clone, Copy)]
pub(super) struct Geometry {
    pub(super) size: i64,
    pub(super) slide: i64,
    pub(super) per_reading: i64,
    pub(super) lateness: i64,
    pub(super) idle: i64,
}

/// Where closed windows go, and recycled accumulator vectors.
pub(super) struct Sink {
    pub(super) closed: Vec<ClosedWindow>,
    pub(super) pool: Vec<Vec<Acc>>,
    pub(super) windows_open: usize,
    pub(super) windows_closed: u64,
}

const POOL_MAX: usize = 4096;

impl Sink {
    pub(super) fn close_until(
        &mut self,
        st: &mut MachineState,
        g: Geometry,
        frontier: i64,
        why: CloseReason,
    ) {
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
    pub(super) fn flush_machine(&mut self, st: &mut MachineState, g: Geometry, why: CloseReason) {
        while let Some(w) = st.windows.pop_front() {
            self.emit(&st.key, w, g, why);
        }
        if st.max_ts != i64::MIN {
            let last_end = assign::window_start(st.max_ts, g.slide) + g.size;
            st.frontier = st.frontier.max(last_end);
        }
    }
}

/// The open window starting at `start`, created if needed.
#[inline]
pub(super) fn window_mut<'w>(
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
