//! Retraining from the loop's side: when to hand a job to the trainer thread, what to do with
//! its outcome, and serving versions another process (`linewatch train`) published.

use std::sync::Arc;

use super::Pipeline;
use crate::model_store;
use crate::telemetry::events::{RetrainAccepted, RetrainFailed, RetrainRejected};
use crate::trainer::Outcome;

impl Pipeline {
    /// Starts a retraining job if one is due (first model, `retrain.every` elapsed, or
    /// `retrain.every_windows` windows seen) and the trainer is idle.
    pub(super) fn maybe_retrain(&mut self) {
        if !self.cfg.retrain.enabled || self.trainer.busy() {
            return;
        }
        if self.buffer.len() < self.cfg.retrain.min_windows {
            return;
        }
        let first = self.models.current().is_none() && self.trainer.last_started().is_none();
        let due_time = self
            .trainer
            .last_started()
            .is_none_or(|t| t.elapsed() >= self.cfg.retrain.every);
        let due_windows = self.cfg.retrain.every_windows > 0
            && self.buffer.windows_since_train >= self.cfg.retrain.every_windows;
        if first || due_time || due_windows {
            let job = self.buffer.job(self.models.current());
            self.buffer.windows_since_train = 0;
            self.trainer.start(job);
        }
    }

    /// Serves a newer version written by another process (e.g. a `linewatch train` job).
    pub(super) fn pick_up_new_version(&mut self) {
        let current = self.models.current().map(|s| s.version.clone());
        let newest = match model_store::list_versions(&self.models_at) {
            Ok(v) => v.into_iter().last(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list model versions");
                return;
            }
        };
        let Some((version, dir)) = newest else { return };
        if current.as_ref().is_some_and(|c| *c >= version) {
            return;
        }
        match model_store::load_snapshot(&dir, &version, self.inputs.names()) {
            Ok(s) => {
                tracing::info!(%version, "serving a model version written by another process");
                self.models.swap(Some(Arc::new(s)));
                self.publish();
            }
            Err(e) => {
                tracing::warn!(%version, error = %e, "newer model version is invalid; not served")
            }
        }
    }

    /// Swaps in an accepted model; counts and logs a rejected or failed job.
    pub(super) fn on_trained(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Accepted(snapshot) => {
                RetrainAccepted {
                    version: &snapshot.version,
                    threshold: snapshot.threshold(),
                }
                .emit(&mut self.progress);
                self.models.swap(Some(snapshot));
            }
            Outcome::Rejected(why) => {
                RetrainRejected { reason: &why }.emit(&mut self.progress);
            }
            Outcome::Failed(why) => {
                RetrainFailed { error: &why }.emit(&mut self.progress);
            }
        }
        self.publish();
    }
}
