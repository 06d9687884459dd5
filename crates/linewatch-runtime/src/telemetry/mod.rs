//! Metrics (Prometheus text format) and the operations endpoint (`/metrics`, `/healthz`,
//! `/readyz`).
//!
//! Metric names are constants here, used only by [`events`]: the pipeline emits typed events
//! that record through the `metrics` facade, and a process-wide Prometheus recorder renders
//! them. We serve the text from our own axum route
//! rather than the exporter's listener so no TLS or push-gateway stack is pulled in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub mod events;

pub use events::Progress;

pub const CONSUMED: &str = "linewatch_messages_consumed_total";
pub const DECODED: &str = "linewatch_readings_decoded_total";
pub const DEAD_LETTERED: &str = "linewatch_messages_dead_lettered_total";
pub const LATE: &str = "linewatch_readings_late_total";
pub const WINDOWS: &str = "linewatch_windows_total";
pub const ALERTS: &str = "linewatch_alerts_total";
pub const RETRAINS: &str = "linewatch_retrains_total";
pub const CONSUMER_LAG: &str = "linewatch_consumer_lag_messages";
pub const SCORING_LATENCY: &str = "linewatch_scoring_latency_seconds";
pub const CLOSE_TO_ALERT: &str = "linewatch_window_close_to_alert_ack_seconds";
pub const FILES_WRITTEN: &str = "linewatch_parquet_files_written_total";
pub const MODEL_VERSION: &str = "linewatch_model_version";
pub const ANOMALY_RATIO: &str = "linewatch_anomaly_score_ratio";
pub const OPEN_WINDOWS: &str = "linewatch_open_windows";
pub const INSPECTIONS: &str = "linewatch_inspections_total";
pub const BROKER_UP: &str = "linewatch_broker_up";
pub const SINK_UP: &str = "linewatch_sink_up";
pub const SPLIT_MACHINES: &str = "linewatch_machines_on_several_partitions_total";
pub const LONG_REPEATED: &str = "linewatch_long_values_repeated_total";
pub const SPARKPLUG_MESSAGES: &str = "linewatch_sparkplug_messages_total";
pub const SPARKPLUG_SKIPPED: &str = "linewatch_sparkplug_metrics_skipped_total";
pub const REKEY_FORWARDED: &str = "linewatch_rekey_forwarded_total";
pub const REKEY_REPLAYS: &str = "linewatch_rekey_replays_dropped_total";
pub const REKEY_LAG: &str = "linewatch_rekey_lag_messages";

/// How long without a tick of the loop `/healthz` and `/readyz` call a stall.
const STALL: Duration = Duration::from_secs(30);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Describes every metric and starts the counters at 0 (each label value the pipeline knows
/// up front), so that alerting rules and dashboards see every series from the first scrape:
/// `rate()` over a series that appears only at its first event misses that event, and an
/// absent series silences a rule. Histograms and the lag gauge appear at their first value.
fn register() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(CONSUMED, "Messages consumed, by topic");
    describe_counter!(DECODED, "Readings decoded");
    describe_counter!(
        DEAD_LETTERED,
        "Messages sent to a dead-letter topic, by reason"
    );
    describe_counter!(LATE, "Readings that arrived after their window closed");
    describe_counter!(WINDOWS, "Windows closed and scored");
    describe_counter!(
        ALERTS,
        "Alerts opened or resolved, by state, line and machine"
    );
    describe_counter!(RETRAINS, "Retraining jobs, by outcome");
    describe_counter!(FILES_WRITTEN, "Parquet files written, by table");
    describe_counter!(INSPECTIONS, "Inspection labels decoded");
    describe_counter!(
        SPLIT_MACHINES,
        "Machines seen on more than one readings partition"
    );
    describe_counter!(
        LONG_REPEATED,
        "Long-format values that repeated a channel at their machine's instant (dropped)"
    );
    describe_counter!(
        SPARKPLUG_MESSAGES,
        "Sparkplug B messages decoded, by message type (NBIRTH, DDATA, ...)"
    );
    describe_counter!(
        SPARKPLUG_SKIPPED,
        "Sparkplug B metrics skipped: non_numeric (boolean, string, ...) or null"
    );
    describe_counter!(
        REKEY_FORWARDED,
        "Readings messages forwarded to the re-keyed topic (kafka.rekey), by order: \
         event_time, or merge_full (sent before a slow partition caught up)"
    );
    describe_counter!(
        REKEY_REPLAYS,
        "Re-keyed messages dropped as copies forwarded again after a crash or rebalance"
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Messages behind the high watermarks (NaN when unknown)"
    );
    describe_gauge!(
        REKEY_LAG,
        "Readings messages the re-keying stage has not read yet (kafka.rekey; NaN when unknown)"
    );
    describe_gauge!(OPEN_WINDOWS, "Windows open in the windowers");
    describe_gauge!(
        BROKER_UP,
        "1 while the broker answers, 0 while it is unreachable"
    );
    describe_gauge!(
        SINK_UP,
        "1 while sink.out accepts writes, 0 while a write is being retried (disk, object store)"
    );
    describe_gauge!(
        MODEL_VERSION,
        "The serving model version's number (0: warming up)"
    );
    describe_histogram!(
        SCORING_LATENCY,
        Unit::Seconds,
        "Scoring time of a batch of windows"
    );
    describe_histogram!(
        CLOSE_TO_ALERT,
        Unit::Seconds,
        "From a window's close to its alert's acknowledgement"
    );
    describe_histogram!(
        ANOMALY_RATIO,
        "A window's anomaly score over the serving threshold"
    );
    for c in [
        DECODED,
        LATE,
        WINDOWS,
        INSPECTIONS,
        SPLIT_MACHINES,
        LONG_REPEATED,
        REKEY_REPLAYS,
    ] {
        metrics::counter!(c).absolute(0);
    }
    for order in events::RekeyForwarded::ORDERS {
        metrics::counter!(REKEY_FORWARDED, "order" => order).absolute(0);
    }
    for kind in linewatch_window::MessageType::ALL {
        metrics::counter!(SPARKPLUG_MESSAGES, "type" => kind.as_str()).absolute(0);
    }
    for reason in ["non_numeric", "null"] {
        metrics::counter!(SPARKPLUG_SKIPPED, "reason" => reason).absolute(0);
    }
    for reason in linewatch_window::DecodeError::REASONS {
        metrics::counter!(DEAD_LETTERED, "reason" => *reason).absolute(0);
    }
    for outcome in ["accepted", "rejected", "failed"] {
        metrics::counter!(RETRAINS, "outcome" => outcome).absolute(0);
    }
    for table in [
        linewatch_tables::scores::TABLE,
        linewatch_tables::alerts::TABLE,
        linewatch_tables::labels::TABLE,
    ] {
        metrics::counter!(FILES_WRITTEN, "table" => table).absolute(0);
    }
    metrics::gauge!(OPEN_WINDOWS).set(0.0);
    // 0 until the broker first answers (a watermark, an acknowledgement).
    metrics::gauge!(BROKER_UP).set(0.0);
    metrics::gauge!(SINK_UP).set(1.0);
    metrics::gauge!(MODEL_VERSION).set(0.0);
    metrics::gauge!(CONSUMER_LAG).set(f64::NAN);
}

/// Starts the consumed-messages counter of each input topic at 0 (the topics are known once
/// the pipeline file is).
pub fn register_topics(topics: &[&str]) {
    for t in topics {
        metrics::counter!(CONSUMED, "topic" => t.to_string()).absolute(0);
    }
}

/// Installs the process-wide Prometheus recorder once; later calls return the same handle.
/// None when another recorder was installed first (then `/metrics` says so).
pub fn prometheus() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(ANOMALY_RATIO.to_string()),
                    &[0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0, 100.0],
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            register();
            Some(handle)
        })
        .clone()
}

/// Liveness shared between the pipeline loop and `/healthz`: the loop stamps its progress.
#[derive(Debug, Default)]
pub struct Health {
    last_tick_ms: AtomicI64,
    /// The broker not answering.
    broker: Outage,
    /// Writes to `sink.out` failing.
    sink: Outage,
}

/// Since when something the pipeline depends on has been failing (epoch ms; 0 while it
/// works).
#[derive(Debug, Default)]
struct Outage(AtomicI64);

impl Outage {
    /// Records the outage; true when it begins now (it was working until now).
    fn begin(&self) -> bool {
        self.0
            .compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Ends the outage; how long it lasted when there was one.
    fn end(&self) -> Option<Duration> {
        let since = self.0.swap(0, Ordering::Relaxed);
        (since > 0).then(|| Duration::from_millis((now_ms() - since).max(0) as u64))
    }

    /// How long it has lasted; `None` while working.
    fn lasting(&self) -> Option<Duration> {
        let since = self.0.load(Ordering::Relaxed);
        (since > 0).then(|| Duration::from_millis((now_ms() - since).max(0) as u64))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Health {
    /// The loop is alive now.
    pub fn tick(&self) {
        self.last_tick_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Healthy when the loop ticked within `stall`.
    pub fn is_healthy(&self, stall: Duration) -> bool {
        let last = self.last_tick_ms.load(Ordering::Relaxed);
        last > 0 && now_ms() - last <= stall.as_millis() as i64
    }

    /// The broker did not answer in time (an acknowledgement waited past
    /// `kafka.ack_timeout`, or no partition's high watermark could be fetched): sets
    /// `linewatch_broker_up` to 0 and keeps the first moment it was seen.
    pub fn broker_unreachable(&self) {
        if self.broker.begin() {
            tracing::warn!(
                "the broker does not answer; waiting for it (/readyz says for how long)"
            );
        }
        metrics::gauge!(BROKER_UP).set(0.0);
    }

    /// The broker answered (an acknowledgement, a watermark): `linewatch_broker_up` is 1.
    pub fn broker_reachable(&self) {
        if let Some(d) = self.broker.end() {
            tracing::info!(down_s = d.as_secs_f64(), "the broker is reachable again");
        }
        metrics::gauge!(BROKER_UP).set(1.0);
    }

    /// How long the broker has been unreachable; `None` while it is reachable.
    pub fn broker_down_for(&self) -> Option<Duration> {
        self.broker.lasting()
    }

    /// A write to `sink.out` failed and is being retried: sets `linewatch_sink_up` to 0 and
    /// keeps the first moment; logs `error` when the outage begins.
    pub fn sink_unavailable(&self, error: &str) {
        if self.sink.begin() {
            tracing::warn!(
                error,
                "writing to sink.out failed; retrying until it succeeds, consuming nothing \
                 meanwhile (/readyz says for how long)"
            );
        }
        metrics::gauge!(SINK_UP).set(0.0);
    }

    /// A write to `sink.out` succeeded: `linewatch_sink_up` is 1.
    pub fn sink_available(&self) {
        if let Some(d) = self.sink.end() {
            tracing::info!(down_s = d.as_secs_f64(), "sink.out accepts writes again");
            metrics::gauge!(SINK_UP).set(1.0);
        }
    }

    /// How long writes to `sink.out` have been failing; `None` while they succeed.
    pub fn sink_down_for(&self) -> Option<Duration> {
        self.sink.lasting()
    }

    /// Readiness: the loop is alive, the broker reachable and `sink.out` writable; otherwise
    /// why not.
    pub fn readiness(&self, stall: Duration) -> Result<(), String> {
        if !self.is_healthy(stall) {
            return Err("stalled: the pipeline loop has not ticked".into());
        }
        if let Some(d) = self.broker_down_for() {
            return Err(format!(
                "degraded: the broker has been unreachable for {:.0} s; waiting, nothing is lost",
                d.as_secs_f64()
            ));
        }
        match self.sink_down_for() {
            Some(d) => Err(format!(
                "degraded: writes to the output (sink.out) have been failing for {:.0} s; \
                 retrying, nothing is committed past them",
                d.as_secs_f64()
            )),
            None => Ok(()),
        }
    }
}

/// The operations endpoint of a pipeline process (`http.listen`), the one setup `run` and
/// `demo` share: started before the pipeline, so the metrics recorder is installed before
/// anything is counted, and stopped after it.
pub struct OpsEndpoint {
    /// The bound address (port 0 in `http.listen` picks a free one).
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl OpsEndpoint {
    /// Serves `/metrics`, `/healthz` and `/readyz` on `listen`; `None` when `listen` is empty
    /// (no endpoint).
    ///
    /// # Errors
    /// `listen` is not a socket address, or it cannot be bound.
    pub async fn start(listen: &str, health: Arc<Health>) -> anyhow::Result<Option<Self>> {
        use anyhow::Context as _;
        if listen.is_empty() {
            return Ok(None);
        }
        let addr: SocketAddr = listen
            .parse()
            .with_context(|| format!("http.listen {listen:?} is not an address"))?;
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let (addr, task) = serve(addr, health, async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await
        .with_context(|| format!("binding the operations endpoint {listen}"))?;
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        Ok(Some(Self { addr, stop, task }))
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Serves `/metrics` and `/healthz` on `addr` until `shutdown` resolves. Returns the bound
/// address (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::routing::get;
    let handle = prometheus();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    match handle {
                        Some(h) => (
                            axum::http::StatusCode::OK,
                            [("content-type", "text/plain; version=0.0.4")],
                            h.render(),
                        ),
                        None => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [("content-type", "text/plain; version=0.0.4")],
                            "metrics recorder unavailable\n".to_string(),
                        ),
                    }
                }
            }),
        )
        .route("/healthz", {
            let health = health.clone();
            get(move || {
                let health = health.clone();
                async move {
                    if health.is_healthy(STALL) {
                        (axum::http::StatusCode::OK, "ok\n")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "stalled\n")
                    }
                }
            })
        })
        .route(
            "/readyz",
            get(move || {
                let health = health.clone();
                async move {
                    match health.readiness(STALL) {
                        Ok(()) => (axum::http::StatusCode::OK, "ready\n".to_string()),
                        Err(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, why + "\n"),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "operations endpoint stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_says_stalled_then_degraded_then_ready() {
        let h = Health::default();
        assert!(h.readiness(STALL).unwrap_err().starts_with("stalled"));
        h.tick();
        assert_eq!(h.readiness(STALL), Ok(()));
        h.broker_unreachable();
        h.broker_unreachable(); // keeps the first moment
        assert!(h.broker_down_for().is_some());
        assert!(h.readiness(STALL).unwrap_err().starts_with("degraded"));
        assert!(h.is_healthy(STALL), "alive while it waits for the broker");
        h.broker_reachable();
        assert_eq!(h.broker_down_for(), None);
        assert_eq!(h.readiness(STALL), Ok(()));
    }
}
