//! Metrics (Prometheus text format) and the operations endpoint (`/metrics`, `/healthz`).
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
pub const OPEN_WINDOWS: &str = "linewatch_open_windows";
pub const INSPECTIONS: &str = "linewatch_inspections_total";
pub const SPLIT_MACHINES: &str = "linewatch_machines_on_several_partitions_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls return the same handle.
/// None when another recorder was installed first (then `/metrics` says so).
pub fn prometheus() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .ok()?;
            builder.install_recorder().ok()
        })
        .clone()
}

/// Liveness shared between the pipeline loop and `/healthz`: the loop stamps its progress.
#[derive(Debug, Default)]
pub struct Health {
    last_tick_ms: AtomicI64,
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
        .route(
            "/healthz",
            get(move || {
                let health = health.clone();
                async move {
                    if health.is_healthy(Duration::from_secs(30)) {
                        (axum::http::StatusCode::OK, "ok\n")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "stalled\n")
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
