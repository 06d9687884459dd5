//! Window assignment: which windows hold a timestamp.
//!
//! Windows are `[start, start + size)` with `start` a multiple of `slide`
//! (aligned to the epoch); a timestamp at exactly `end` belongs to the next
//! window. This is the one place that rule is written; the [`Windower`]
//! folds readings with it, and callers that attach something to a window
//! (a label, a replayed row) should call it rather than recompute it.
//!
//! [`Windower`]: super::Windower

/// Start of the newest window that holds `ts_ms`: `ts_ms` rounded down to a
/// multiple of `slide_ms` (towards negative infinity for times before the
/// epoch). With tumbling windows (`slide == size`) it is *the* window.
///
/// `slide_ms` must be positive; anything smaller is taken as 1 ms so no input
/// panics.
#[inline]
pub fn window_start(ts_ms: i64, slide_ms: i64) -> i64 {
    let slide = slide_ms.max(1);
    ts_ms.div_euclid(slide) * slide
}

/// `(start, end)` of every window of `size_ms` starting every `slide_ms` that
/// holds `ts_ms`, oldest first: `size / slide` windows, the last starting at
/// [`window_start`]. Empty when `size_ms <= 0`.
///
/// For the windows of a configuration use
/// [`WindowConfig::windows_containing`](super::WindowConfig::windows_containing),
/// which checks the configuration and the timestamp's range first.
pub fn windows_containing(
    ts_ms: i64,
    size_ms: i64,
    slide_ms: i64,
) -> impl Iterator<Item = (i64, i64)> + use<> {
    let slide = slide_ms.max(1);
    let k = if size_ms > 0 { size_ms / slide } else { 0 };
    let hi = if k > 0 { window_start(ts_ms, slide) } else { 0 };
    (0..k).rev().map(move |j| {
        let s = hi - j * slide;
        (s, s + size_ms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_belongs_to_the_window_it_starts_and_not_the_one_it_ends() {
        assert_eq!(window_start(10_000, 5_000), 10_000);
        assert_eq!(window_start(9_999, 5_000), 5_000);
        assert_eq!(window_start(-1, 5_000), -5_000);
        assert_eq!(window_start(7, 0), 7);
    }

    #[test]
    fn hopping_windows_are_listed_oldest_first() {
        let w: Vec<_> = windows_containing(12_000, 10_000, 5_000).collect();
        assert_eq!(w, vec![(5_000, 15_000), (10_000, 20_000)]);
        assert_eq!(windows_containing(12_000, 0, 5_000).count(), 0);
    }
}
