//! The output sections: `[alert]` (hysteresis), `[sink]` (Parquet) and `[http]`, with their
//! checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, PipelineConfig, at_least_one, invalid};

/// `[alert]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSection {
    /// Consecutive windows over the threshold that open an alert. Default 3.
    pub open_after: u32,
    /// Consecutive windows under the threshold that resolve it. Default 3.
    pub resolve_after: u32,
    /// Features named in an alert, by contribution to the log-density drop. Default 3.
    pub top_features: usize,
    /// When set, a window counts as over when its conformal p-value is at most this (in
    /// (0, 0.5]) instead of when its anomaly score exceeds the model's threshold: one setting
    /// that means the same nominal false-alarm share per window on every machine and model
    /// version. Default: unset (the threshold, `model.threshold_quantile`).
    pub p_value: Option<f64>,
}

impl Default for AlertSection {
    fn default() -> Self {
        Self {
            open_after: 3,
            resolve_after: 3,
            top_features: 3,
            p_value: None,
        }
    }
}
/// `[sink]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkSection {
    /// Output root: `scores/` and `alerts/` go under it. Default "./linewatch-out".
    pub out: PathBuf,
    /// Roll a file when a partition's buffer holds this many rows. Default 50000.
    pub max_rows: usize,
    /// ... or this many bytes in memory. Default 64 MiB.
    pub max_bytes: usize,
    /// ... or its oldest row is this old (wall clock). Bounds the delay of offsets and alerts.
    /// Default "5s".
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Rows per Parquet row group. Default 131072.
    pub row_group_rows: usize,
    /// zstd level. Default 3.
    pub zstd_level: i32,
}

impl Default for SinkSection {
    fn default() -> Self {
        Self {
            out: PathBuf::from("./linewatch-out"),
            max_rows: 50_000,
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(5),
            row_group_rows: 128 * 1024,
            zstd_level: 3,
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Address of `/metrics` and `/healthz`; loopback by default. Empty = off.
    /// Default "127.0.0.1:9898".
    pub listen: String,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9898".into(),
        }
    }
}

impl PipelineConfig {
    pub(super) fn validate_alert(&self) -> Result<(), ConfigError> {
        let a = &self.alert;
        if let Some(p) = a.p_value
            && !(p > 0.0 && p <= 0.5)
        {
            return Err(invalid(
                "alert.p_value",
                format!("{p}: must be in (0, 0.5]"),
            ));
        }
        if a.open_after == 0 {
            return Err(invalid(
                "alert.open_after",
                "0: must be >= 1 (windows over the threshold that open an alert)",
            ));
        }
        if a.resolve_after == 0 {
            return Err(invalid(
                "alert.resolve_after",
                "0: must be >= 1 (windows under the threshold that resolve an alert)",
            ));
        }
        at_least_one(
            "alert.top_features",
            a.top_features,
            "alerts would name no feature",
        )?;
        Ok(())
    }

    pub(super) fn validate_sink_and_http(&self) -> Result<(), ConfigError> {
        let s = &self.sink;
        if s.out.as_os_str().is_empty() {
            return Err(invalid("sink.out", "\"\": name a folder"));
        }
        at_least_one("sink.max_rows", s.max_rows, "a file would never hold a row")?;
        at_least_one(
            "sink.max_bytes",
            s.max_bytes,
            "a file would never hold a row",
        )?;
        if s.max_age.is_zero() {
            return Err(invalid("sink.max_age", "0s: must be positive"));
        }
        at_least_one(
            "sink.row_group_rows",
            s.row_group_rows,
            "a row group needs rows",
        )?;
        if !(1..=22).contains(&s.zstd_level) {
            return Err(invalid(
                "sink.zstd_level",
                format!("{}: zstd levels are 1..=22", s.zstd_level),
            ));
        }
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "http.listen",
                format!("{:?} is not host:port", self.http.listen),
            ));
        }
        Ok(())
    }
}
