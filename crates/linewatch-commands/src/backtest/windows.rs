//! The windows of one file: geometry from the sampling interval, the stream's windower over
//! the rows, and which windows lie wholly inside the file's recorded span.

use std::collections::BTreeMap;
use std::sync::Arc;

use linewatch_window::{ChannelSet, ClosedWindow, WindowConfig, Windower};

use super::input::Row;

/// Window length and hop of a backtest, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    pub size_ms: u64,
    pub slide_ms: u64,
}

impl Geometry {
    /// Hop `slide_ms` (default: the sampling interval), length `window_ms` (default 12
    /// intervals) rounded up to a whole number of hops.
    pub fn new(interval_ms: i64, window_ms: Option<u64>, slide_ms: Option<u64>) -> Self {
        let interval = interval_ms.max(1) as u64;
        let slide = slide_ms.unwrap_or(interval).max(1);
        let size = window_ms.unwrap_or(12 * interval).max(slide);
        Self {
            size_ms: size.div_ceil(slide) * slide,
            slide_ms: slide,
        }
    }

    /// End of the window whose last hop holds a reading at `ts_ms`: a row is scored (and
    /// alerted) by the window ending just after it.
    pub fn end_of(&self, ts_ms: i64) -> i64 {
        let slide = self.slide_ms as i64;
        linewatch_window::window_start(ts_ms, slide) + slide
    }

    /// Windows that share readings with a given one: size / hop.
    pub fn overlap(&self) -> f64 {
        self.size_ms as f64 / self.slide_ms as f64
    }
}

/// The closed windows of one file (one machine, so one window per end time).
pub(super) struct FileWindows {
    by_end: BTreeMap<i64, ClosedWindow>,
    /// Start of the hop that holds the first reading.
    span_start: i64,
    /// End of the window ending just after the last reading.
    span_end: i64,
}

impl FileWindows {
    /// Replays `rows` (in time order; `seq` = row index) through the stream's windower.
    pub fn build(rows: &[Row], channels: &Arc<ChannelSet>, g: &Geometry) -> anyhow::Result<Self> {
        // Files are replayed whole: no idle eviction within one (the cap is about 34 years).
        let wcfg = WindowConfig::hopping(g.size_ms, g.slide_ms, 0, 1 << 40);
        let mut windower = Windower::new(wcfg, channels.clone())?;
        let mut by_end = BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            windower.push_parts("backtest", "file", r.ts_ms, &r.values, i as u64)?;
            by_end.extend(windower.drain_closed().into_iter().map(|w| (w.end_ms, w)));
        }
        windower.flush_all();
        by_end.extend(windower.drain_closed().into_iter().map(|w| (w.end_ms, w)));
        let (span_start, span_end) = match (rows.first(), rows.last()) {
            (Some(a), Some(b)) => (g.end_of(a.ts_ms) - g.slide_ms as i64, g.end_of(b.ts_ms)),
            _ => (0, 0),
        };
        Ok(Self {
            by_end,
            span_start,
            span_end,
        })
    }

    /// Whether the window lies wholly inside the recorded span (it could hold a full
    /// window's readings).
    fn is_full(&self, w: &ClosedWindow) -> bool {
        w.start_ms >= self.span_start && w.end_ms <= self.span_end
    }

    /// Windows that end inside the span but start before the first reading: they hold fewer
    /// readings than a full window and are neither trained on nor scored (size / hop - 1 of
    /// them in a regular file).
    pub fn partial_windows(&self) -> usize {
        self.by_end
            .values()
            .filter(|w| w.start_ms < self.span_start && w.end_ms <= self.span_end)
            .count()
    }

    /// The full windows, in time order.
    pub fn full(&self) -> impl Iterator<Item = &ClosedWindow> {
        self.by_end.values().filter(|w| self.is_full(w))
    }

    /// The full window ending at `end_ms`, if there is one.
    pub fn full_at(&self, end_ms: i64) -> Option<&ClosedWindow> {
        self.by_end.get(&end_ms).filter(|w| self.is_full(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, step_ms: i64) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                ts_ms: 1_000_000 + i as i64 * step_ms,
                ts_text: String::new(),
                values: vec![("a".to_string(), i as f64)],
                label: false,
            })
            .collect()
    }

    #[test]
    fn the_first_size_over_hop_minus_one_windows_are_partial() {
        let g = Geometry::new(1000, None, None);
        assert_eq!((g.size_ms, g.slide_ms), (12_000, 1000));
        let channels = Arc::new(ChannelSet::new(["a"]).unwrap());
        let r = rows(40, 1000);
        let fw = FileWindows::build(&r, &channels, &g).unwrap();
        assert_eq!(fw.partial_windows(), 11);
        // one full window per row from the 12th on, each with 12 readings
        let full: Vec<&ClosedWindow> = fw.full().collect();
        assert_eq!(full.len(), 40 - 11);
        assert!(full.iter().all(|w| w.n_readings == 12));
        assert!(fw.full_at(g.end_of(r[10].ts_ms)).is_none());
        assert!(fw.full_at(g.end_of(r[11].ts_ms)).is_some());
    }

    #[test]
    fn window_rounds_up_to_whole_hops() {
        let g = Geometry::new(1000, Some(5000), Some(2000));
        assert_eq!((g.size_ms, g.slide_ms), (6000, 2000));
        assert_eq!(g.overlap(), 3.0);
        assert_eq!(g.end_of(3999), 4000);
        assert_eq!(g.end_of(4000), 6000);
    }
}
