//! Fault kinds and ground-truth records.

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// The kinds of injected faults. Magnitudes are in units of the channel's normal standard
/// deviation (`scale`) and grow linearly with the severity `s` in `[0, 1]`; see
/// [`FaultConfig`](crate::FaultConfig) for the knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A linear ramp on one channel, from 0 at the start to `s * drift_sd` (default 4 sd,
    /// random sign) at the end. Seen in mean, last and slope.
    Drift,
    /// Short bursts (1..=`spike_max_len` readings) of `+s * spike_sd` (default 8 sd) on one
    /// channel; the first reading of the fault starts a burst, later ones start with
    /// probability `spike_rate`. Seen in max and std.
    Spike,
    /// The sensor repeats the last value it reported before the fault: zero variance. Seen in
    /// std (0) and slope (0). The severity does not change the signal.
    Stuck,
    /// The channel's noise standard deviation is multiplied by `1 + s * (variance_factor - 1)`
    /// (default up to x4). Seen in std, min and max.
    VarianceBurst,
    /// The channel decouples from the latent factors: it is replaced by independent white
    /// noise with the same marginal mean and variance, so it loses its correlation with the
    /// other channels and its temporal smoothness. Seen jointly (mean vs. the other channels)
    /// and in std and slope. The severity does not change the signal.
    BrokenCorrelation,
}

impl FaultKind {
    /// All kinds, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Drift,
        Self::Spike,
        Self::Stuck,
        Self::VarianceBurst,
        Self::BrokenCorrelation,
    ];

    /// The snake_case name used in JSON and TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drift => "drift",
            Self::Spike => "spike",
            Self::Stuck => "stuck",
            Self::VarianceBurst => "variance_burst",
            Self::BrokenCorrelation => "broken_correlation",
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ground truth of one injected fault. The fault is active on `machine` for event times
/// `start_ms <= ts < end_ms` (end exclusive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Machine id, e.g. `m-003`.
    pub machine: String,
    /// What kind of fault.
    pub kind: FaultKind,
    /// The affected channels (one for every kind at present).
    pub channels: Vec<String>,
    /// First event time of the fault, epoch ms (inclusive).
    pub start_ms: i64,
    /// End of the fault, epoch ms (exclusive).
    pub end_ms: i64,
    /// Severity in `[0, 1]`.
    pub severity: f64,
}

impl FaultRecord {
    /// Whether the fault is active at event time `ts_ms` on its machine.
    pub fn contains(&self, ts_ms: i64) -> bool {
        self.start_ms <= ts_ms && ts_ms < self.end_ms
    }

    /// One JSON object on one line (no trailing newline).
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and a unit enum always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Ground truth as JSON Lines: one [`FaultRecord`] object per line, each line ending in `\n`.
pub fn faults_to_jsonl(faults: &[FaultRecord]) -> String {
    let mut out = String::with_capacity(faults.len() * 160);
    for f in faults {
        out.push_str(&f.to_json());
        out.push('\n');
    }
    out
}

/// Parses JSON Lines written by [`faults_to_jsonl`]; blank lines are skipped.
pub fn faults_from_jsonl(text: &str) -> Result<Vec<FaultRecord>, SimError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| SimError::FaultJsonl {
                line: i + 1,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_roundtrip() {
        let faults = vec![
            FaultRecord {
                machine: "m-000".into(),
                kind: FaultKind::VarianceBurst,
                channels: vec!["temp_c".into()],
                start_ms: 10,
                end_ms: 20,
                severity: 0.75,
            },
            FaultRecord {
                machine: "m-001".into(),
                kind: FaultKind::BrokenCorrelation,
                channels: vec!["vib_rms".into()],
                start_ms: 30,
                end_ms: 40,
                severity: 1.0,
            },
        ];
        let text = faults_to_jsonl(&faults);
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains(r#""kind":"variance_burst""#));
        assert_eq!(faults_from_jsonl(&text).unwrap(), faults);
        let bad = format!("{text}\n{{\"machine\":1}}\n");
        assert!(matches!(
            faults_from_jsonl(&bad),
            Err(SimError::FaultJsonl { line: 4, .. })
        ));
    }

    #[test]
    fn contains_is_half_open() {
        let f = FaultRecord {
            machine: "m-000".into(),
            kind: FaultKind::Drift,
            channels: vec![],
            start_ms: 10,
            end_ms: 20,
            severity: 0.5,
        };
        assert!(!f.contains(9));
        assert!(f.contains(10));
        assert!(f.contains(19));
        assert!(!f.contains(20));
    }
}
