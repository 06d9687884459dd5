//! Fitting the score model and the PCA baseline on training windows, and scoring a file's
//! rows with both through the same alert hysteresis.

use std::path::Path;

use anyhow::{Context as _, bail};
use linewatch_baseline::{PcaConfig, PcaMonitor};
use linewatch_models::ScoreModel;
use linewatch_window::ClosedWindow;

use super::input::Row;
use super::windows::{FileWindows, Geometry};
use linewatch_runtime::alerter::{Alerter, ScoredWindow, is_over};
use linewatch_runtime::config::PipelineConfig;
use linewatch_runtime::scoring::ModelInputs;

/// Fewest training windows a backtest accepts.
const MIN_TRAIN_WINDOWS: usize = 20;

/// The two detectors fitted on the same training windows and model inputs.
pub(super) struct Fitted {
    pub inputs: ModelInputs,
    pub model: ScoreModel,
    /// The PCA monitor, or why it could not be fitted (the backtest goes on without it).
    pub baseline: Result<PcaMonitor, String>,
    pub train_windows: usize,
}

/// Fits both detectors on `rows` (row-major model inputs of `n` training windows).
pub(super) fn fit(
    cfg: &PipelineConfig,
    pca: &PcaConfig,
    inputs: ModelInputs,
    rows: &[f64],
    what: &Path,
    overlap: f64,
) -> anyhow::Result<Fitted> {
    let d = inputs.names().len().max(1);
    let n = rows.len() / d;
    if n < MIN_TRAIN_WINDOWS {
        bail!(
            "{}: only {n} full training windows (at least {MIN_TRAIN_WINDOWS}); use more \
             training rows or a smaller window",
            what.display()
        );
    }
    let model =
        linewatch_runtime::trainer::train_score_model(&cfg.model, rows, inputs.names(), overlap)
            .with_context(|| format!("training the score model on {}", what.display()))?;
    let baseline = PcaMonitor::fit(rows, d, pca).map_err(|e| e.to_string());
    match &baseline {
        Ok(m) => tracing::info!(
            components = m.components(),
            t2_limit = m.t2_limit(),
            spe_limit = m.spe_limit(),
            "PCA baseline fitted"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "PCA baseline could not be fitted; its figures stay empty")
        }
    }
    Ok(Fitted {
        inputs,
        model,
        baseline,
        train_windows: n,
    })
}

/// The model's decision for one window before hysteresis, by the stream's rule
/// ([`is_over`]: `alert.p_value` when set, else the threshold). A non-finite score decides
/// nothing (the alerter skips it).
fn model_over(cfg: &PipelineConfig, score: f64, p_value: f64, threshold: f64) -> Option<bool> {
    score
        .is_finite()
        .then(|| is_over(score, threshold, Some(p_value), cfg.alert.p_value))
}

/// The stream's alert hysteresis (`alert.open_after`, `alert.resolve_after`, through the
/// [`Alerter`]) over per-window decisions; `None` leaves the state as it is. Returns, per
/// window, whether an alert is open after it.
pub(super) fn hysteresis(
    cfg: &PipelineConfig,
    windows: &[&ClosedWindow],
    over: &[Option<bool>],
) -> Vec<bool> {
    let mut alerter = Alerter::new(
        &cfg.pipeline.name,
        cfg.alert.open_after,
        cfg.alert.resolve_after,
    );
    windows
        .iter()
        .zip(over)
        .map(|(w, o)| {
            alerter.observe(&ScoredWindow {
                line: "backtest",
                machine: "file",
                window_start_ms: w.start_ms,
                window_end_ms: w.end_ms,
                anomaly_score: o.map(|o| if o { 1.0 } else { 0.0 }),
                threshold: Some(0.5),
                p_value: None,
                defect_prob: None,
                model_version: Some("backtest"),
                top_features: &[],
            });
            alerter.is_open("file")
        })
        .collect()
}

/// The baseline's view of one row's window.
#[derive(Debug, Clone, Copy)]
pub(super) struct BaseRow {
    pub t2: f64,
    pub spe: f64,
    /// max(T² / T² limit, SPE / SPE limit): the ranking score of the PCA alarm.
    pub rank: f64,
    /// PCA alarm (T² or SPE over its limit), after hysteresis.
    pub alert: bool,
    /// T² alone over its limit, after hysteresis.
    pub t2_alert: bool,
    /// SPE alone over its limit, after hysteresis.
    pub spe_alert: bool,
}

/// One evaluated row.
pub(super) struct RowOut {
    pub ts_text: String,
    pub label: bool,
    /// None when the row's window is partial (not scored).
    pub score: Option<f64>,
    pub p_value: Option<f64>,
    pub alert: bool,
    /// None when the row is not scored or the baseline could not be fitted.
    pub base: Option<BaseRow>,
}

/// Scores `rows` (a time-ordered run of the file windowed in `fw`): each row by the full
/// window ending just after it; rows whose window is partial get no score and no alert.
pub(super) fn score_rows(
    cfg: &PipelineConfig,
    f: &Fitted,
    fw: &FileWindows,
    rows: &[Row],
    g: &Geometry,
) -> anyhow::Result<Vec<RowOut>> {
    // The distinct full windows of these rows, in time order.
    let mut windows: Vec<&ClosedWindow> = Vec::new();
    let row_win: Vec<Option<usize>> = rows
        .iter()
        .map(|r| {
            let w = fw.full_at(g.end_of(r.ts_ms))?;
            if windows.last().is_none_or(|l| l.end_ms != w.end_ms) {
                windows.push(w);
            }
            Some(windows.len() - 1)
        })
        .collect();
    let flat: Vec<f64> = windows.iter().flat_map(|w| f.inputs.of(w)).collect();
    let (scores, p_values) = if windows.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let s = f.model.anomaly_scores(&flat)?;
        let p = f.model.p_values(&s);
        (s, p)
    };
    let threshold = f.model.threshold();
    let over: Vec<Option<bool>> = scores
        .iter()
        .zip(&p_values)
        .map(|(&s, &p)| model_over(cfg, s, p, threshold))
        .collect();
    let alert = hysteresis(cfg, &windows, &over);

    let base: Vec<Option<BaseRow>> = match &f.baseline {
        Ok(m) if !windows.is_empty() => {
            let ps = m.score(&flat).context("PCA baseline scoring")?;
            let (tl, sl) = (m.t2_limit(), m.spe_limit());
            let decide = |pick: &dyn Fn(&linewatch_baseline::PcaScore) -> bool| {
                let over: Vec<Option<bool>> = ps.iter().map(|s| Some(pick(s))).collect();
                hysteresis(cfg, &windows, &over)
            };
            let a = decide(&|s| s.alarm(m));
            let a_t2 = decide(&|s| s.t2 > tl);
            let a_spe = decide(&|s| s.spe > sl);
            ps.iter()
                .enumerate()
                .map(|(i, s)| {
                    Some(BaseRow {
                        t2: s.t2,
                        spe: s.spe,
                        rank: (s.t2 / tl).max(s.spe / sl),
                        alert: a[i],
                        t2_alert: a_t2[i],
                        spe_alert: a_spe[i],
                    })
                })
                .collect()
        }
        _ => vec![None; windows.len()],
    };

    Ok(rows
        .iter()
        .zip(row_win)
        .map(|(r, wi)| RowOut {
            ts_text: r.ts_text.clone(),
            label: r.label,
            score: wi.map(|i| scores[i]),
            p_value: wi.map(|i| p_values[i]),
            alert: wi.is_some_and(|i| alert[i]),
            base: wi.and_then(|i| base[i]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(open_after: u32, resolve_after: u32) -> PipelineConfig {
        PipelineConfig::from_toml_with_env(
            &format!(
                "[window]\nchannels = [\"a\"]\n[alert]\nopen_after = {open_after}\nresolve_after = {resolve_after}\n"
            ),
            "test",
            Vec::new(),
        )
        .unwrap()
    }

    #[test]
    fn hysteresis_opens_after_and_resolves_after() {
        let cfg = cfg(2, 2);
        // decisions: . x x x . . x . (None keeps the state)
        let over = [
            Some(false),
            Some(true),
            Some(true),
            None,
            Some(true),
            Some(false),
            Some(false),
            Some(true),
        ];
        let open = decisions_to_open(&cfg, &over);
        assert_eq!(
            open,
            vec![false, false, true, true, true, true, false, false]
        );
    }

    /// `hysteresis` with windows that only carry times.
    fn decisions_to_open(cfg: &PipelineConfig, over: &[Option<bool>]) -> Vec<bool> {
        let g = Geometry::new(1000, Some(1000), Some(1000));
        let channels = std::sync::Arc::new(linewatch_window::ChannelSet::new(["a"]).unwrap());
        let rows: Vec<Row> = (0..over.len())
            .map(|i| Row {
                ts_ms: i as i64 * 1000,
                ts_text: String::new(),
                values: vec![("a".to_string(), 0.0)],
                label: false,
            })
            .collect();
        let fw = FileWindows::build(&rows, &channels, &g).unwrap();
        let ws: Vec<&ClosedWindow> = fw.full().collect();
        assert_eq!(ws.len(), over.len());
        hysteresis(cfg, &ws, over)
    }
}
