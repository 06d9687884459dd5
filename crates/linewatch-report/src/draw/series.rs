//! Rows to drawable geometry: gaps, polylines, spans, threshold steps, version changes.

use crate::load::Row;
use crate::scale::YScale;

/// Largest distance between consecutive windows that is still drawn as connected: three
/// typical window steps (or lengths), so data gaps show as breaks in the lines.
pub(super) fn gap_ms(rows: &[Row]) -> i64 {
    let mut steps: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].start_ms - w[0].start_ms)
        .filter(|d| *d > 0)
        .collect();
    let mut lens: Vec<i64> = rows.iter().map(|r| r.end_ms - r.start_ms).collect();
    steps.sort_unstable();
    lens.sort_unstable();
    let step = steps.get(steps.len() / 2).copied().unwrap_or(0);
    let len = lens.get(lens.len() / 2).copied().unwrap_or(0);
    step.max(len).max(1) * 3
}

pub(super) fn mid(r: &Row) -> f64 {
    (r.start_ms as f64 + r.end_ms as f64) / 2.0
}

/// Runs of consecutive rows (no gap) where `f` gives a value, as polylines.
pub(super) fn polylines(
    rows: &[Row],
    gap: i64,
    f: impl Fn(usize, &Row) -> Option<f64>,
) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    let mut prev_start: Option<i64> = None;
    for (i, r) in rows.iter().enumerate() {
        let connected = prev_start.is_some_and(|p| r.start_ms - p <= gap);
        match f(i, r) {
            Some(v) => {
                if !connected && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                cur.push((mid(r), v));
                prev_start = Some(r.start_ms);
            }
            None => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                prev_start = None;
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Time spans `[start, end]` covered by consecutive rows where `pred` holds.
pub(super) fn spans(rows: &[Row], gap: i64, pred: impl Fn(&Row) -> bool) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut open: Option<(i64, i64)> = None;
    for r in rows {
        if pred(r) {
            open = match open {
                Some((s, e)) if r.start_ms <= e + gap => Some((s, e.max(r.end_ms))),
                Some(done) => {
                    out.push(done);
                    Some((r.start_ms, r.end_ms))
                }
                None => Some((r.start_ms, r.end_ms)),
            };
        } else if let Some(done) = open.take() {
            out.push(done);
        }
    }
    out.extend(open);
    out
}

/// The threshold as a step line: each window's value held until the next window starts.
pub(super) fn threshold_steps(rows: &[Row], gap: i64, y: &YScale) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let Some(t) = r.threshold else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        };
        let next = rows.get(i + 1);
        let right = match next {
            Some(n) if n.threshold.is_some() && n.start_ms - r.start_ms <= gap => {
                n.start_ms.min(r.end_ms.max(n.start_ms))
            }
            _ => r.end_ms,
        };
        let ty = y.fwd(t);
        cur.push((r.start_ms as f64, ty));
        cur.push((right as f64, ty));
        let connected =
            next.is_some_and(|n| n.threshold.is_some() && n.start_ms - r.start_ms <= gap);
        if !connected {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Window starts where the model version changes (to a known version), with the new name.
pub(super) fn version_changes(rows: &[Row]) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut prev: Option<&str> = None;
    for r in rows {
        if let Some(v) = r.model_version.as_deref() {
            if prev.is_some_and(|p| p != v) {
                out.push((r.start_ms, v.to_owned()));
            }
            prev = Some(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start_min: i64, score: Option<f64>, alert: bool, version: Option<&str>) -> Row {
        Row {
            start_ms: start_min * 60_000,
            end_ms: (start_min + 1) * 60_000,
            line: "l".into(),
            score,
            threshold: score.map(|_| 5.0),
            alert,
            model_version: version.map(str::to_owned),
            defect_prob: None,
            top: Vec::new(),
        }
    }

    #[test]
    fn spans_and_polylines_break_at_gaps() {
        let rows = vec![
            row(0, None, false, None),
            row(1, Some(1.0), false, Some("v1")),
            row(2, Some(9.0), true, Some("v1")),
            row(3, Some(8.0), true, Some("v2")),
            // a data gap of 20 minutes
            row(23, Some(7.0), true, Some("v2")),
            row(24, Some(1.0), false, Some("v2")),
        ];
        let gap = gap_ms(&rows);
        assert_eq!(gap, 180_000);
        assert_eq!(
            spans(&rows, gap, |r| r.alert),
            vec![(120_000, 240_000), (23 * 60_000, 24 * 60_000)]
        );
        let lines = polylines(&rows, gap, |_, r| r.score);
        assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!(version_changes(&rows), vec![(180_000, "v2".to_owned())]);
        let steps = threshold_steps(&rows, gap, &YScale::Linear);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].first(), Some(&(60_000.0, 5.0)));
        assert_eq!(steps[0].last(), Some(&(240_000.0, 5.0)));
    }
}
