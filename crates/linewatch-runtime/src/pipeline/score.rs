//! Closed windows: those already durable (a replay) are skipped; the rest are scored with the
//! serving model, fed to the alerter and the retraining buffer, and buffered for their file.

use std::time::Instant;

use linewatch_window::ClosedWindow;

use super::Pipeline;
use super::durability;
use crate::alerter::is_over;
use crate::telemetry::events::{AlertRaised, ScoringFailed, WindowScore, WindowsScored};
use crate::trainer::TrainRow;

impl Pipeline {
    /// Scores the windows the windower closed on partition `p` and buffers them for the sink.
    pub(super) fn drain_closed(&mut self, p: i32) {
        let Some(st) = self.parts.get_mut(&p) else {
            return;
        };
        let mut closed: Vec<ClosedWindow> = st.windower.drain_closed();
        if closed.is_empty() {
            return;
        }
        // Windows already durable (a replay after a crash or a rebalance) are skipped.
        closed.retain(|w| !durability::already_durable(&st.durable, &w.key.machine, w.start_ms));
        if closed.is_empty() {
            return;
        }
        let snapshot = self.models.current();
        let started = Instant::now();
        let scored = match crate::scoring::score_windows(
            &self.inputs,
            &closed,
            snapshot.as_deref(),
            self.cfg.alert.top_features,
        ) {
            Ok(s) => s,
            Err(e) => {
                ScoringFailed { error: &e }.emit();
                crate::scoring::unscored(&self.inputs, &closed)
            }
        };
        let n = closed.len() as u64;
        WindowsScored {
            count: n,
            latency: started.elapsed(),
        }
        .emit(&mut self.progress);
        for ((w, row), features) in closed.into_iter().zip(scored.rows).zip(&scored.features) {
            // A window closed before its end was reached (a machine evicted as idle) is scored
            // and written with `complete = false`, but holds only part of its readings: it
            // neither moves the alerter nor feeds retraining.
            if !w.is_complete() {
                let alerted = st.alerter.is_open(&w.key.machine);
                durability::note_durable(
                    &mut st.pending.durable_update,
                    &w.key.machine,
                    w.start_ms,
                );
                st.pending.rows.push(w, row, alerted);
                continue;
            }
            if let (Some(anomaly_score), Some(threshold)) = (row.anomaly_score, row.threshold) {
                WindowScore {
                    anomaly_score,
                    threshold,
                }
                .emit();
            }
            let alert = st.alerter.observe(&crate::scoring::scored_window(&w, &row));
            let alerted = st.alerter.is_open(&w.key.machine);
            if let Some(a) = alert {
                AlertRaised {
                    state: a.state,
                    line: &w.key.line,
                    machine: &w.key.machine,
                }
                .emit(&mut self.progress);
                st.pending.alerts.push((a, Instant::now()));
            }
            self.buffer.remember(&w.key.machine, w.start_ms, features);
            // Normal windows feed retraining, once the guard band confirms them: alerted ones,
            // those over the threshold and their neighbours do not.
            let over = matches!((row.anomaly_score, row.threshold), (Some(s), Some(t))
                if is_over(s, t, row.p_value, self.cfg.alert.p_value));
            let candidate = TrainRow {
                machine: w.key.machine.to_string(),
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                features: features.to_vec(),
                label: None,
            };
            for confirmed in st.guard.observe(candidate, alerted || over) {
                self.buffer.push(confirmed);
            }
            durability::note_durable(&mut st.pending.durable_update, &w.key.machine, w.start_ms);
            st.pending.rows.push(w, row, alerted);
        }
        st.pending.since.get_or_insert_with(Instant::now);
        self.buffer.windows_seen += n;
        self.maybe_retrain();
    }
}
