//! Scoring closed windows with the serving model snapshot, and the slot it is hot-swapped in.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use linewatch_window::{ClosedWindow, FeatureSchema, Stat};

use crate::alerter::FeatureContribution;
use crate::model_store::{Snapshot, iso_input};

/// Where the serving snapshot lives; swapped atomically, read without locks.
#[derive(Clone, Default)]
pub struct ModelSlot(Arc<ArcSwapOption<Snapshot>>);

impl ModelSlot {
    /// The serving snapshot (`None` while warming up).
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.0.load_full()
    }

    /// Serves `s` from now on; readers holding the previous one keep it until they drop it.
    pub fn swap(&self, s: Option<Arc<Snapshot>>) {
        self.0.store(s);
    }
}

/// The features the models see: the window features of the configured statistics
/// (`model.stats`), never the `<channel>__count` columns: a count is discrete (a lattice of
/// integers, where a density and its score do not exist) and score matching on it diverges.
/// Every feature stays in the Parquet rows; missing channels reach the model as missing values.
#[derive(Debug, Clone)]
pub struct ModelInputs {
    idx: Vec<usize>,
    names: Vec<String>,
}

impl ModelInputs {
    /// The inputs for the statistics `stats` (`model.stats`) of the window features, in the
    /// schema's column order; `count` is left out whatever `stats` says.
    pub fn new(schema: &FeatureSchema, stats: &[Stat]) -> Self {
        let all = schema.feature_names();
        let idx: Vec<usize> = (0..schema.channels().len())
            .flat_map(|c| {
                Stat::ALL
                    .into_iter()
                    .filter(|s| s.is_continuous() && stats.contains(s))
                    .filter_map(move |s| schema.feature_index(c, s))
            })
            .collect();
        let names = idx.iter().map(|&i| all[i].clone()).collect();
        Self { idx, names }
    }

    /// The model inputs' feature names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// A window's model inputs (NaN where its channel was absent).
    pub fn of(&self, w: &ClosedWindow) -> Vec<f64> {
        let full = w.feature_vector();
        self.idx
            .iter()
            .map(|&i| full.get(i).copied().unwrap_or(f64::NAN))
            .collect()
    }
}

/// Model outputs for one window (all None before the first model).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowScore {
    /// The window's anomaly score: the log-density drop from the training centre (nats).
    pub anomaly_score: Option<f64>,
    /// The serving model's alert threshold.
    pub threshold: Option<f64>,
    /// Conformal p-value of the anomaly score against the model's calibration windows.
    pub p_value: Option<f64>,
    /// `log p(x) - log p(x0)`, from the training centre to the window.
    pub log_density_rel: Option<f64>,
    /// The isotonic model's defect probability (once it exists).
    pub defect_prob: Option<f64>,
    /// The version that scored the window.
    pub model_version: Option<String>,
    /// The features that lowered the log-density most, most negative first.
    pub top_features: Vec<FeatureContribution>,
}

/// Scores of a batch of windows, with their dense features (for the retraining buffer).
pub struct Scored {
    /// One score row per window, in order.
    pub rows: Vec<RowScore>,
    /// Each window's model inputs.
    pub features: Vec<Vec<f64>>,
}

/// What the alerter sees of window `w` scored as `row`.
pub fn scored_window<'a>(
    w: &'a ClosedWindow,
    row: &'a RowScore,
) -> crate::alerter::ScoredWindow<'a> {
    crate::alerter::ScoredWindow {
        line: &w.key.line,
        machine: &w.key.machine,
        window_start_ms: w.start_ms,
        window_end_ms: w.end_ms,
        anomaly_score: row.anomaly_score,
        threshold: row.threshold,
        p_value: row.p_value,
        defect_prob: row.defect_prob,
        model_version: row.model_version.as_deref(),
        top_features: &row.top_features,
    }
}

/// Rows with null scores (warm-up, or a scoring failure).
pub fn unscored(inputs: &ModelInputs, closed: &[ClosedWindow]) -> Scored {
    Scored {
        rows: vec![RowScore::default(); closed.len()],
        features: closed.iter().map(|w| inputs.of(w)).collect(),
    }
}

/// Scores `closed` with `snapshot` (or leaves them unscored without one).
pub fn score_windows(
    inputs: &ModelInputs,
    closed: &[ClosedWindow],
    snapshot: Option<&Snapshot>,
    top_k: usize,
) -> anyhow::Result<Scored> {
    let Some(s) = snapshot else {
        return Ok(unscored(inputs, closed));
    };
    let features: Vec<Vec<f64>> = closed.iter().map(|w| inputs.of(w)).collect();
    let names = inputs.names();
    let flat: Vec<f64> = features.iter().flatten().copied().collect();
    let out = s.score.score(&flat)?;
    let defect = match &s.iso {
        Some(iso) => {
            let inputs: Vec<f64> = features
                .iter()
                .zip(&out.anomaly_score)
                .flat_map(|(f, a)| iso_input(*a, f, &s.iso_covariates))
                .collect();
            Some(iso.predict(&inputs)?)
        }
        None => None,
    };
    let threshold = s.threshold();
    let rows = (0..closed.len())
        .map(|i| RowScore {
            anomaly_score: Some(out.anomaly_score[i]),
            threshold: Some(threshold),
            p_value: out.p_value.get(i).copied(),
            log_density_rel: out.log_density_rel.get(i).copied(),
            defect_prob: defect.as_ref().and_then(|d| d.get(i).copied()),
            model_version: Some(s.version.clone()),
            top_features: top_features(out.contributions_row(i), names, top_k),
        })
        .collect();
    Ok(Scored { rows, features })
}

/// The `k` features with the most negative contributions (they lowered the log-density the
/// most, i.e. pushed the window towards anomaly), most negative first.
pub fn top_features(contrib: &[f64], names: &[String], k: usize) -> Vec<FeatureContribution> {
    let mut order: Vec<usize> = (0..contrib.len().min(names.len()))
        .filter(|&j| contrib[j].is_finite() && contrib[j] < 0.0)
        .collect();
    order.sort_by(|&a, &b| contrib[a].total_cmp(&contrib[b]));
    order
        .into_iter()
        .take(k)
        .map(|j| FeatureContribution {
            name: names[j].clone(),
            contribution: contrib[j],
        })
        .collect()
}
