//! Alert hysteresis: pure decisions, no I/O.
//!
//! An alert opens after `open_after` consecutive scored windows of a machine over the
//! threshold, and resolves after `resolve_after` consecutive windows under it. Windows without a
//! score (warm-up, before the first model) change nothing. The alert id is a UUID v5 of the
//! pipeline, line, machine, the start of the window that opened the alert and the model version
//! that scored it, so a replay after a crash produces the same id; the `resolved` message
//! carries the id of the alert it closes, so `(alert_id, state)` is unique on the topic.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Namespace of alert ids (a fixed random UUID: ids are stable across versions of linewatch).
const ALERT_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6c1f_0d3a_5e2b_4f7c_9a41_b8d2_e03c_7f15);

/// What one feature contributed to a window's log-density drop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureContribution {
    /// Feature column, `<channel>__<stat>`.
    pub name: String,
    /// Its share of `log p(x) - log p(x0)`: negative values pushed the window towards anomaly.
    pub contribution: f64,
}

/// One scored window as the alerter sees it.
#[derive(Debug, Clone)]
pub struct ScoredWindow<'a> {
    pub line: &'a str,
    pub machine: &'a str,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// None before the first model exists.
    pub anomaly_score: Option<f64>,
    pub threshold: Option<f64>,
    /// Conformal p-value of the anomaly score (None before the first model).
    pub p_value: Option<f64>,
    pub defect_prob: Option<f64>,
    pub model_version: Option<&'a str>,
    /// Largest contributors first.
    pub top_features: &'a [FeatureContribution],
}

/// `open` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Open,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Resolved => "resolved",
        }
    }
}

/// The alert message (contract in `docs/architecture.md`, "Contracts"), also a row of
/// `alerts/` in Parquet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub line: String,
    pub machine: String,
    /// RFC 3339 UTC with milliseconds.
    pub window_start: String,
    pub window_end: String,
    pub state: AlertState,
    pub anomaly_score: f64,
    pub threshold: f64,
    /// Conformal p-value of the anomaly score (share of calibration windows at least as
    /// anomalous, with the finite-sample correction); null from models without one.
    pub p_value: Option<f64>,
    pub defect_prob: Option<f64>,
    pub top_features: Vec<FeatureContribution>,
    pub model_version: String,
    /// Event time of the window that triggered this message, epoch ms (not in the JSON).
    #[serde(skip)]
    pub window_start_ms: i64,
    #[serde(skip)]
    pub window_end_ms: i64,
}

/// Per-machine hysteresis state; serialisable so it survives restarts (stored with the
/// Parquet files that made it durable).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineAlertState {
    pub over: u32,
    pub under: u32,
    /// Id of the open alert, if one is open.
    pub open: Option<String>,
}

/// The alerter of one partition's machines.
#[derive(Debug, Clone)]
pub struct Alerter {
    pipeline: String,
    open_after: u32,
    resolve_after: u32,
    /// `alert.p_value`: when set, a window is over when its p-value is at most this.
    p_value: Option<f64>,
    machines: HashMap<String, MachineAlertState>,
}

/// Whether a scored window counts as over the threshold: `p_value <= alpha` when an alpha
/// (`alert.p_value`) is set, so one setting means the same false-alarm share on every machine
/// and model version; otherwise `anomaly_score > threshold`. A missing p-value under the
/// p-value rule is not over.
pub fn is_over(score: f64, threshold: f64, p_value: Option<f64>, alpha: Option<f64>) -> bool {
    match alpha {
        Some(a) => p_value.is_some_and(|p| p <= a),
        None => score > threshold,
    }
}

pub fn format_ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The deterministic alert id.
pub fn alert_id(
    pipeline: &str,
    line: &str,
    machine: &str,
    window_start_ms: i64,
    model_version: &str,
) -> String {
    let name = format!(
        "{pipeline}\u{1f}{line}\u{1f}{machine}\u{1f}{window_start_ms}\u{1f}{model_version}"
    );
    uuid::Uuid::new_v5(&ALERT_NAMESPACE, name.as_bytes()).to_string()
}

impl Alerter {
    pub fn new(pipeline: &str, open_after: u32, resolve_after: u32) -> Self {
        Self {
            pipeline: pipeline.to_string(),
            open_after: open_after.max(1),
            resolve_after: resolve_after.max(1),
            p_value: None,
            machines: HashMap::new(),
        }
    }

    /// Decides "over" by p-value (`p <= alpha`) instead of the threshold when `alpha` is set.
    pub fn with_p_value(mut self, alpha: Option<f64>) -> Self {
        self.p_value = alpha;
        self
    }

    /// Feeds one scored window (in window order per machine); returns the alert message it
    /// triggers, if any.
    pub fn observe(&mut self, w: &ScoredWindow<'_>) -> Option<Alert> {
        let (Some(score), Some(threshold), Some(version)) =
            (w.anomaly_score, w.threshold, w.model_version)
        else {
            return None;
        };
        if !score.is_finite() {
            return None;
        }
        let st = self.machines.entry(w.machine.to_string()).or_default();
        let over = is_over(score, threshold, w.p_value, self.p_value);
        if over {
            st.over = st.over.saturating_add(1);
            st.under = 0;
        } else {
            st.under = st.under.saturating_add(1);
            st.over = 0;
        }
        let state = match (&st.open, over) {
            (None, true) if st.over >= self.open_after => {
                let id = alert_id(
                    &self.pipeline,
                    w.line,
                    w.machine,
                    w.window_start_ms,
                    version,
                );
                st.open = Some(id.clone());
                Some((id, AlertState::Open))
            }
            (Some(_), false) if st.under >= self.resolve_after => {
                st.open.take().map(|id| (id, AlertState::Resolved))
            }
            _ => None,
        }?;
        Some(Alert {
            alert_id: state.0,
            line: w.line.to_string(),
            machine: w.machine.to_string(),
            window_start: format_ts(w.window_start_ms),
            window_end: format_ts(w.window_end_ms),
            state: state.1,
            anomaly_score: score,
            threshold,
            p_value: w.p_value,
            defect_prob: w.defect_prob,
            top_features: w.top_features.to_vec(),
            model_version: version.to_string(),
            window_start_ms: w.window_start_ms,
            window_end_ms: w.window_end_ms,
        })
    }

    /// Whether the machine has an open alert (its windows are not "normal" for retraining).
    pub fn is_open(&self, machine: &str) -> bool {
        self.machines.get(machine).is_some_and(|s| s.open.is_some())
    }

    /// State to persist.
    pub fn snapshot(&self) -> &HashMap<String, MachineAlertState> {
        &self.machines
    }

    /// Restores persisted state (after a restart or a partition assignment).
    pub fn restore(&mut self, machines: HashMap<String, MachineAlertState>) {
        self.machines.extend(machines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(i: i64, score: f64) -> (i64, f64) {
        (i * 10_000, score)
    }

    fn feed(a: &mut Alerter, scores: &[f64]) -> Vec<(usize, AlertState, String)> {
        let mut out = Vec::new();
        for (i, s) in scores.iter().enumerate() {
            let (start, score) = window(i as i64, *s);
            let w = ScoredWindow {
                line: "l",
                machine: "m",
                window_start_ms: start,
                window_end_ms: start + 10_000,
                anomaly_score: Some(score),
                threshold: Some(1.0),
                p_value: None,
                defect_prob: None,
                model_version: Some("v1"),
                top_features: &[],
            };
            if let Some(alert) = a.observe(&w) {
                out.push((i, alert.state, alert.alert_id));
            }
        }
        out
    }

    #[test]
    fn p_value_rule_decides_over_when_set() {
        // Threshold rule: 5 > 3. P-value rule at 0.01: only p <= 0.01 is over, whatever the
        // score; a missing p-value is not over.
        assert!(is_over(5.0, 3.0, Some(0.5), None));
        assert!(!is_over(5.0, 3.0, Some(0.5), Some(0.01)));
        assert!(is_over(1.0, 3.0, Some(0.01), Some(0.01)));
        assert!(!is_over(9.0, 3.0, None, Some(0.01)));
        let mut a = Alerter::new("p", 2, 1).with_p_value(Some(0.05));
        let w = |start: i64, p: f64| ScoredWindow {
            line: "l",
            machine: "m",
            window_start_ms: start,
            window_end_ms: start + 10,
            anomaly_score: Some(0.0),
            threshold: Some(1.0),
            p_value: Some(p),
            defect_prob: None,
            model_version: Some("v1"),
            top_features: &[],
        };
        assert!(a.observe(&w(0, 0.04)).is_none());
        let open = a
            .observe(&w(10, 0.002))
            .expect("two windows at p <= 0.05 open an alert");
        assert_eq!(open.state, AlertState::Open);
        assert_eq!(open.p_value, Some(0.002));
        let resolved = a
            .observe(&w(20, 0.3))
            .expect("one window above resolves it");
        assert_eq!(resolved.state, AlertState::Resolved);
    }

    #[test]
    fn opens_after_k_over_and_resolves_after_m_under() {
        let mut a = Alerter::new("p", 3, 2);
        // over, over, under (reset), over x3 -> open at index 5; under, under -> resolve at 7.
        let got = feed(&mut a, &[2.0, 2.0, 0.5, 2.0, 2.0, 2.0, 0.5, 0.5, 0.5]);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].1), (5, AlertState::Open));
        assert_eq!((got[1].0, got[1].1), (7, AlertState::Resolved));
        assert_eq!(got[0].2, got[1].2, "resolve names the alert it closes");
    }

    #[test]
    fn one_long_excursion_is_one_alert() {
        let mut a = Alerter::new("p", 2, 2);
        let got = feed(&mut a, &[2.0; 20]);
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let id = alert_id("p", "l", "m", 10, "v1");
        assert_eq!(id, alert_id("p", "l", "m", 10, "v1"));
        assert_ne!(id, alert_id("p", "l", "m", 20, "v1"));
        assert_ne!(id, alert_id("p", "l", "m2", 10, "v1"));
        assert_ne!(id, alert_id("p", "l", "m", 10, "v2"));
        let mut a = Alerter::new("p", 1, 1);
        let mut b = Alerter::new("p", 1, 1);
        assert_eq!(
            feed(&mut a, &[2.0, 0.0, 2.0]),
            feed(&mut b, &[2.0, 0.0, 2.0])
        );
    }

    #[test]
    fn warm_up_windows_change_nothing_and_state_restores() {
        let mut a = Alerter::new("p", 2, 1);
        feed(&mut a, &[2.0]);
        let none = ScoredWindow {
            line: "l",
            machine: "m",
            window_start_ms: 0,
            window_end_ms: 1,
            anomaly_score: None,
            threshold: None,
            p_value: None,
            defect_prob: None,
            model_version: None,
            top_features: &[],
        };
        assert!(a.observe(&none).is_none());
        let mut restored = Alerter::new("p", 2, 1);
        restored.restore(a.snapshot().clone());
        // One more over-threshold window opens the alert in both.
        assert_eq!(feed(&mut a, &[2.0]).len(), 1);
        assert_eq!(feed(&mut restored, &[2.0]).len(), 1);
    }

    #[test]
    fn alert_json_matches_the_contract() {
        let mut a = Alerter::new("p", 1, 1);
        let w = ScoredWindow {
            line: "press-3",
            machine: "m-17",
            window_start_ms: 1_764_331_200_000,
            window_end_ms: 1_764_331_210_000,
            anomaly_score: Some(9.5),
            threshold: Some(3.0),
            p_value: None,
            defect_prob: None,
            model_version: Some("v000001"),
            top_features: &[FeatureContribution {
                name: "temp_c__mean".into(),
                contribution: -4.0,
            }],
        };
        let alert = a.observe(&w).unwrap();
        let v: serde_json::Value = serde_json::to_value(&alert).unwrap();
        for key in [
            "alert_id",
            "line",
            "machine",
            "window_start",
            "window_end",
            "state",
            "anomaly_score",
            "threshold",
            "defect_prob",
            "top_features",
            "model_version",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        assert_eq!(v["state"], "open");
        assert_eq!(v["window_start"], "2025-11-28T12:00:00.000Z");
        assert!(v["defect_prob"].is_null());
        assert_eq!(v["top_features"][0]["name"], "temp_c__mean");
    }
}
