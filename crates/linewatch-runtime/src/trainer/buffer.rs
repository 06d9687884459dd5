//! The training data of the stream: recent normal windows, the guard band that keeps a
//! fault's quieter windows out, and the labels that reach their windows.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::model_store::Snapshot;

use super::TrainJob;

/// One buffered window.
#[derive(Debug, Clone)]
pub struct TrainRow {
    pub machine: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub features: Vec<f64>,
    pub label: Option<bool>,
}

/// A labelled row for the isotonic model.
#[derive(Debug, Clone)]
pub struct LabelledRow {
    pub features: Vec<f64>,
    pub defect: bool,
}

/// Keeps a fault's quieter windows out of retraining: a window of a machine feeds training
/// only once `guard` later windows of that machine have closed, and only if neither they nor
/// the `guard` windows before it were abnormal (over the threshold or under an open alert).
/// Faults rarely push every window over the threshold; without the band their windows in
/// between teach the next model that the fault is normal. Windows must arrive per machine in
/// order (the windower closes them so). Memory: at most `guard` windows per machine, for the
/// machines of one partition (the state goes with the partition on a rebalance).
#[derive(Debug, Default)]
pub struct GuardBand {
    guard: usize,
    machines: HashMap<String, MachineBand>,
}

#[derive(Debug)]
struct MachineBand {
    /// Windows since the last abnormal one (saturating; starts past the band).
    since_abnormal: usize,
    /// Normal windows waiting for `guard` normal successors.
    pending: VecDeque<TrainRow>,
}

impl GuardBand {
    pub fn new(guard: usize) -> Self {
        Self {
            guard,
            machines: HashMap::new(),
        }
    }

    /// Observes the next window of `row.machine`; returns the windows it confirms as normal
    /// (oldest first).
    pub fn observe(&mut self, row: TrainRow, abnormal: bool) -> Vec<TrainRow> {
        let guard = self.guard;
        let m = self
            .machines
            .entry(row.machine.clone())
            .or_insert_with(|| MachineBand {
                since_abnormal: usize::MAX,
                pending: VecDeque::new(),
            });
        if abnormal {
            m.since_abnormal = 0;
            m.pending.clear();
            return Vec::new();
        }
        m.since_abnormal = m.since_abnormal.saturating_add(1);
        if m.since_abnormal <= guard {
            return Vec::new();
        }
        m.pending.push_back(row);
        let mut out = Vec::new();
        while m.pending.len() > guard {
            if let Some(r) = m.pending.pop_front() {
                out.push(r);
            }
        }
        out
    }
}

/// Recent normal windows (oldest dropped first) and the labels that reached them.
pub struct TrainBuffer {
    rows: VecDeque<TrainRow>,
    max_rows: usize,
    slide_ms: i64,
    /// Labelled rows kept apart (they also include alerted windows: defects live there).
    labelled: VecDeque<LabelledRow>,
    /// Features of recent windows of any kind, by (machine, window start), so labels arriving
    /// after their window was scored still find it.
    recent: HashMap<(String, i64), Vec<f64>>,
    recent_order: VecDeque<(String, i64)>,
    /// Labels whose window has not closed yet (inspections usually arrive before that).
    pending_labels: HashMap<(String, i64), bool>,
    pending_order: VecDeque<(String, i64)>,
    pub windows_seen: u64,
    pub windows_since_train: u64,
}

impl TrainBuffer {
    pub fn new(max_rows: usize, slide_ms: i64) -> Self {
        Self {
            rows: VecDeque::new(),
            max_rows,
            slide_ms: slide_ms.max(1),
            labelled: VecDeque::new(),
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            pending_labels: HashMap::new(),
            pending_order: VecDeque::new(),
            windows_seen: 0,
            windows_since_train: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Remembers any scored window's features (for late labels), and attaches a label that
    /// arrived before the window closed.
    pub fn remember(&mut self, machine: &str, start_ms: i64, features: &[f64]) {
        let key = (machine.to_string(), start_ms);
        if let Some(defect) = self.pending_labels.remove(&key) {
            self.add_labelled(features.to_vec(), defect);
        }
        if self.recent.insert(key.clone(), features.to_vec()).is_none() {
            self.recent_order.push_back(key);
        }
        while self.recent_order.len() > self.max_rows {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    /// Adds a normal window.
    pub fn push(&mut self, row: TrainRow) {
        self.windows_since_train += 1;
        self.rows.push_back(row);
        while self.rows.len() > self.max_rows {
            self.rows.pop_front();
        }
    }

    /// An inspection result: applies to the window of `machine` that contains `ts_ms`.
    pub fn label(&mut self, machine: &str, ts_ms: i64, defect: bool) {
        let start = linewatch_window::window_start(ts_ms, self.slide_ms);
        let key = (machine.to_string(), start);
        if let Some(f) = self.recent.get(&key) {
            let f = f.clone();
            self.add_labelled(f, defect);
        } else {
            // A defect anywhere in the window makes the window defective.
            match self.pending_labels.entry(key.clone()) {
                std::collections::hash_map::Entry::Occupied(mut o) => *o.get_mut() |= defect,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(defect);
                    self.pending_order.push_back(key);
                }
            }
            while self.pending_order.len() > self.max_rows {
                if let Some(old) = self.pending_order.pop_front() {
                    self.pending_labels.remove(&old);
                }
            }
        }
    }

    fn add_labelled(&mut self, features: Vec<f64>, defect: bool) {
        self.labelled.push_back(LabelledRow { features, defect });
        while self.labelled.len() > self.max_rows {
            self.labelled.pop_front();
        }
    }

    pub fn labelled_len(&self) -> usize {
        self.labelled.len()
    }

    /// A training job from the current contents.
    pub fn job(&self, serving: Option<Arc<Snapshot>>) -> TrainJob {
        TrainJob {
            rows: self.rows.iter().map(|r| r.features.clone()).collect(),
            span_ms: self
                .rows
                .front()
                .zip(self.rows.back())
                .map(|(a, b)| (a.start_ms, b.end_ms)),
            labelled: self.labelled.iter().cloned().collect(),
            serving,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(machine: &str, i: i64) -> TrainRow {
        TrainRow {
            machine: machine.into(),
            start_ms: i * 10,
            end_ms: (i + 1) * 10,
            features: vec![i as f64],
            label: None,
        }
    }

    /// Feeds `pattern` (x = abnormal, . = normal) for one machine; the indices released.
    fn released(guard: usize, pattern: &str) -> Vec<i64> {
        let mut g = GuardBand::new(guard);
        let mut out = Vec::new();
        for (i, c) in pattern.chars().enumerate() {
            for r in g.observe(row("m", i as i64), c == 'x') {
                out.push(r.start_ms / 10);
            }
        }
        out
    }

    #[test]
    fn guard_band_keeps_windows_near_abnormal_ones_out() {
        // No band: every normal window, at once.
        assert_eq!(released(0, "..x..x."), vec![0, 1, 3, 4, 6]);
        // Band of 2: windows 2..=4 before and 2 after each x are out, and the last 2 windows
        // wait for successors that never came.
        //          index: 0123456789012345
        assert_eq!(released(2, "......x.....x..."), vec![0, 1, 2, 3, 9]);
        // An intermittent fault (x, normal, normal, x) taints the windows in between.
        assert_eq!(released(1, "...x..x...."), vec![0, 1, 8, 9]);
        // Machines are independent.
        let mut g = GuardBand::new(1);
        assert!(g.observe(row("a", 0), false).is_empty());
        assert!(g.observe(row("b", 0), true).is_empty());
        let out = g.observe(row("a", 1), false);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].machine.as_str(), out[0].start_ms), ("a", 0));
        assert!(g.observe(row("b", 1), false).is_empty());
    }

    #[test]
    fn labels_reach_their_window_whether_they_arrive_before_or_after_it_closes() {
        let mut b = TrainBuffer::new(100, 10_000);
        // Label first (window 20_000..30_000 still open), then the window is scored.
        b.label("m-1", 25_000, true);
        assert_eq!(b.labelled_len(), 0);
        b.remember("m-1", 20_000, &[1.0, 2.0]);
        assert_eq!(b.labelled_len(), 1);
        // Window first, label later.
        b.remember("m-2", 0, &[3.0, 4.0]);
        b.label("m-2", 9_999, false);
        assert_eq!(b.labelled_len(), 2);
        let job = b.job(None);
        assert_eq!(job.labelled[0].features, vec![1.0, 2.0]);
        assert!(job.labelled[0].defect);
        assert_eq!(job.labelled[1].features, vec![3.0, 4.0]);
        assert!(!job.labelled[1].defect);
        // A label for another machine's window does not attach.
        b.label("m-3", 0, true);
        assert_eq!(b.labelled_len(), 2);
    }

    #[test]
    fn a_defect_anywhere_in_the_window_marks_it_and_memory_stays_bounded() {
        let mut b = TrainBuffer::new(3, 10_000);
        b.label("m", 1_000, false);
        b.label("m", 2_000, true);
        b.label("m", 3_000, false);
        b.remember("m", 0, &[0.0]);
        assert!(b.job(None).labelled[0].defect);
        for i in 0..10 {
            b.push(TrainRow {
                machine: "m".into(),
                start_ms: i * 10_000,
                end_ms: (i + 1) * 10_000,
                features: vec![i as f64],
                label: None,
            });
            b.remember("m", i * 10_000, &[i as f64]);
            b.label("x", i * 10_000, true);
        }
        assert_eq!(b.len(), 3, "oldest normal windows dropped first");
        assert_eq!(b.job(None).rows[0], vec![7.0]);
        assert!(b.pending_labels.len() <= 3 && b.recent.len() <= 3);
    }
}
