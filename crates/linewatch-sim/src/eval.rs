//! Detection metrics: alerts against ground-truth faults.
//!
//! # Matching rule
//!
//! - A fault on machine `m` with span `[start_ms, end_ms)` is *matched* by the closed interval
//!   `[start_ms, end_ms + tolerance_ms]`. The tolerance (default: 2 windows) allows for
//!   windows that close after the fault ended and for the K-consecutive-windows confirmation.
//! - An alert on machine `m` covers `[open_ms, resolve_ms]`; an alert not yet resolved covers
//!   `[open_ms, max(open_ms, horizon_ms)]`. A `resolve_ms` before `open_ms` is read as
//!   `open_ms`.
//! - An alert is a **true positive** if its interval intersects the matched interval of at
//!   least one fault of the same machine (any fault in the list, whether or not it counts
//!   for recall), and a **false positive** otherwise.
//!   `precision = true-positive alerts / all alerts` (`None` when there are no alerts).
//!   Several alerts on one fault are each a true positive.
//! - A fault **counts** for recall if it was observable before the evaluation horizon: it
//!   ended by then (`end_ms <= horizon_ms`), or it started at least `min_observable_ms`
//!   before it (`start_ms + min_observable_ms <= horizon_ms`).
//!   `recall = counted faults intersected by at least one alert / counted faults`
//!   (`None` when no fault counts).
//! - The **detection delay** of a detected counted fault is
//!   `max(0, open_ms of its earliest intersecting alert - start_ms)`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fault::{FaultKind, FaultRecord};

/// An alert as the evaluation sees it: one machine, opened at `open_ms`, resolved at
/// `resolve_ms` (`None`: still open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSpan {
    /// Machine id.
    pub machine: String,
    /// Event time the alert opened, epoch ms (e.g. the start of its first window).
    pub open_ms: i64,
    /// Event time it was resolved, epoch ms; `None` while open.
    pub resolve_ms: Option<i64>,
}

impl AlertSpan {
    /// A new alert span.
    pub fn new(machine: impl Into<String>, open_ms: i64, resolve_ms: Option<i64>) -> Self {
        Self {
            machine: machine.into(),
            open_ms,
            resolve_ms,
        }
    }
}

/// Parameters of the matching rule (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// How long after a fault's end an alert still matches it, ms. Default 20_000
    /// (2 windows of 10 s).
    pub tolerance_ms: i64,
    /// A fault still running at the horizon counts for recall only if it started at least
    /// this long before the horizon, ms. Default 40_000 (K + 1 = 4 windows of 10 s).
    pub min_observable_ms: i64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self::for_windows(10_000, 3)
    }
}

impl EvalConfig {
    /// The usual settings for windows of `window_ms` and alerts after `k` consecutive windows:
    /// tolerance of 2 windows, minimum observable time of `k + 1` windows.
    pub fn for_windows(window_ms: i64, k: u32) -> Self {
        Self {
            tolerance_ms: window_ms.saturating_mul(2),
            min_observable_ms: window_ms.saturating_mul(i64::from(k) + 1),
        }
    }
}

/// Counts for one fault kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    /// Faults of this kind that count for recall.
    pub faults: usize,
    /// Of these, the ones matched by at least one alert.
    pub detected: usize,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// All alerts.
    pub alerts: usize,
    /// Alerts matching a fault.
    pub true_positive_alerts: usize,
    /// Alerts matching no fault.
    pub false_positive_alerts: usize,
    /// Faults that count for recall.
    pub faults_counted: usize,
    /// Counted faults matched by at least one alert.
    pub faults_detected: usize,
    /// `true_positive_alerts / alerts`; `None` without alerts.
    pub precision: Option<f64>,
    /// `faults_detected / faults_counted`; `None` without counted faults.
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall, when both exist (0 when both are 0).
    pub f1: Option<f64>,
    /// Mean detection delay over detected counted faults, ms.
    pub mean_delay_ms: Option<f64>,
    /// Counted and detected faults per kind.
    pub by_kind: BTreeMap<FaultKind, KindCounts>,
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Scores `alerts` against the ground truth `faults` with the rule in the [module docs](self),
/// for data observed up to `horizon_ms` (exclusive end of the evaluated event time).
pub fn evaluate(
    faults: &[FaultRecord],
    alerts: &[AlertSpan],
    horizon_ms: i64,
    cfg: &EvalConfig,
) -> EvalReport {
    let alert_span = |a: &AlertSpan| {
        let end = a.resolve_ms.unwrap_or(horizon_ms).max(a.open_ms);
        (a.open_ms, end)
    };
    let fault_span = |f: &FaultRecord| (f.start_ms, f.end_ms.saturating_add(cfg.tolerance_ms));
    let overlaps = |(a0, a1): (i64, i64), (b0, b1): (i64, i64)| a0 <= b1 && b0 <= a1;

    // Faults by machine, so each alert only looks at its own machine's faults.
    let mut by_machine: BTreeMap<&str, Vec<&FaultRecord>> = BTreeMap::new();
    for f in faults {
        by_machine.entry(f.machine.as_str()).or_default().push(f);
    }

    let true_positive_alerts = alerts
        .iter()
        .filter(|a| {
            by_machine
                .get(a.machine.as_str())
                .is_some_and(|fs| fs.iter().any(|f| overlaps(alert_span(a), fault_span(f))))
        })
        .count();

    let mut by_kind: BTreeMap<FaultKind, KindCounts> = BTreeMap::new();
    let mut faults_counted = 0;
    let mut faults_detected = 0;
    let mut delay_sum = 0.0;
    for f in faults {
        let counts = f.end_ms <= horizon_ms
            || f.start_ms.saturating_add(cfg.min_observable_ms) <= horizon_ms;
        if !counts {
            continue;
        }
        faults_counted += 1;
        let entry = by_kind.entry(f.kind).or_default();
        entry.faults += 1;
        let first_open = alerts
            .iter()
            .filter(|a| a.machine == f.machine && overlaps(alert_span(a), fault_span(f)))
            .map(|a| a.open_ms)
            .min();
        if let Some(open) = first_open {
            faults_detected += 1;
            entry.detected += 1;
            delay_sum += open.saturating_sub(f.start_ms).max(0) as f64;
        }
    }

    let precision = ratio(true_positive_alerts, alerts.len());
    let recall = ratio(faults_detected, faults_counted);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    EvalReport {
        alerts: alerts.len(),
        true_positive_alerts,
        false_positive_alerts: alerts.len() - true_positive_alerts,
        faults_counted,
        faults_detected,
        precision,
        recall,
        f1,
        mean_delay_ms: (faults_detected > 0).then(|| delay_sum / faults_detected as f64),
        by_kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(machine: &str, kind: FaultKind, start_ms: i64, end_ms: i64) -> FaultRecord {
        FaultRecord {
            machine: machine.into(),
            kind,
            channels: vec!["temp_c".into()],
            start_ms,
            end_ms,
            severity: 1.0,
        }
    }

    const CFG: EvalConfig = EvalConfig {
        tolerance_ms: 100,
        min_observable_ms: 50,
    };

    #[test]
    fn defaults_follow_windows() {
        assert_eq!(
            EvalConfig::for_windows(30_000, 2),
            EvalConfig {
                tolerance_ms: 60_000,
                min_observable_ms: 90_000
            }
        );
    }

    #[test]
    fn overlap_with_tolerance_and_same_machine_only() {
        let faults = [fault("m-000", FaultKind::Drift, 1000, 2000)];
        let cases = [
            // (alert, true positive?)
            (AlertSpan::new("m-000", 1500, Some(1600)), true), // inside
            (AlertSpan::new("m-000", 500, Some(1000)), true),  // touches the start
            (AlertSpan::new("m-000", 500, Some(999)), false),  // ends just before
            (AlertSpan::new("m-000", 2100, Some(3000)), true), // opens at end + tolerance
            (AlertSpan::new("m-000", 2101, Some(3000)), false), // opens after it
            (AlertSpan::new("m-000", 0, Some(5000)), true),    // covers it
            (AlertSpan::new("m-001", 1500, Some(1600)), false), // other machine
            (AlertSpan::new("m-000", 1500, None), true),       // still open
            (AlertSpan::new("m-000", 900, Some(10)), false),   // resolve < open: a point
        ];
        for (a, tp) in cases {
            let r = evaluate(&faults, std::slice::from_ref(&a), 10_000, &CFG);
            assert_eq!(r.true_positive_alerts == 1, tp, "{a:?}");
            assert_eq!(r.faults_detected == 1, tp, "{a:?}");
        }
    }

    #[test]
    fn open_alert_extends_to_horizon() {
        let faults = [fault("m-000", FaultKind::Spike, 5000, 6000)];
        let a = [AlertSpan::new("m-000", 1000, None)];
        assert_eq!(evaluate(&faults, &a, 4000, &CFG).true_positive_alerts, 0);
        assert_eq!(evaluate(&faults, &a, 5000, &CFG).true_positive_alerts, 1);
    }

    #[test]
    fn precision_recall_and_delay() {
        let faults = [
            fault("m-000", FaultKind::Drift, 1000, 2000),
            fault("m-000", FaultKind::Stuck, 5000, 6000),
            fault("m-001", FaultKind::Spike, 1000, 1500),
            fault("m-001", FaultKind::Drift, 8000, 9000),
        ];
        let alerts = [
            AlertSpan::new("m-000", 1200, Some(1400)), // TP, delay 200
            AlertSpan::new("m-000", 1300, Some(2050)), // TP (same fault again)
            AlertSpan::new("m-000", 3000, Some(3100)), // FP
            AlertSpan::new("m-001", 900, Some(1100)),  // TP, delay 0 (opened before)
        ];
        let r = evaluate(&faults, &alerts, 10_000, &CFG);
        assert_eq!(r.alerts, 4);
        assert_eq!(r.true_positive_alerts, 3);
        assert_eq!(r.false_positive_alerts, 1);
        assert_eq!(r.faults_counted, 4);
        assert_eq!(r.faults_detected, 2);
        assert_eq!(r.precision, Some(0.75));
        assert_eq!(r.recall, Some(0.5));
        let f1 = r.f1.unwrap();
        assert!((f1 - 2.0 * 0.75 * 0.5 / 1.25).abs() < 1e-12);
        assert_eq!(r.mean_delay_ms, Some(100.0));
        assert_eq!(
            r.by_kind[&FaultKind::Drift],
            KindCounts {
                faults: 2,
                detected: 1
            }
        );
        assert_eq!(
            r.by_kind[&FaultKind::Stuck],
            KindCounts {
                faults: 1,
                detected: 0
            }
        );
        // The report is JSON for `linewatch backtest`.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["by_kind"]["spike"]["detected"], 1);
    }

    #[test]
    fn faults_near_the_horizon_count_only_when_observable() {
        let faults = [
            fault("m-000", FaultKind::Drift, 1000, 2000), // ended: counts
            fault("m-000", FaultKind::Drift, 9900, 20_000), // started 100 before: counts
            fault("m-000", FaultKind::Drift, 9960, 20_000), // started 40 before: not
            fault("m-000", FaultKind::Drift, 12_000, 13_000), // after the horizon: not
        ];
        let r = evaluate(&faults, &[], 10_000, &CFG);
        assert_eq!(r.faults_counted, 2);
        assert_eq!(r.recall, Some(0.0));
        assert_eq!(r.precision, None);
        assert_eq!(r.f1, None);
        assert_eq!(r.mean_delay_ms, None);
        // An alert on an uncounted fault is still a true positive.
        let a = [AlertSpan::new("m-000", 9970, None)];
        let r = evaluate(&faults, &a, 10_000, &CFG);
        assert_eq!(r.precision, Some(1.0));
        assert_eq!(r.faults_detected, 1);
    }

    #[test]
    fn empty_inputs() {
        let r = evaluate(&[], &[], 0, &EvalConfig::default());
        assert_eq!(r.precision, None);
        assert_eq!(r.recall, None);
        let r = evaluate(&[], &[AlertSpan::new("m-000", 0, Some(1))], 10, &CFG);
        assert_eq!(r.precision, Some(0.0));
        assert_eq!(r.f1, None);
    }
}
