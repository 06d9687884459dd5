//! Pipeline configuration: one TOML file per production line (`pipelines/*.toml`).
//!
//! Layers, later wins: the defaults written here, then the pipeline file, then environment
//! variables. `LINEWATCH__SECTION__KEY=value` sets any key (`__` nests; the value is read as a
//! TOML scalar when it parses as one, else as a string), e.g.
//! `LINEWATCH__KAFKA__BROKERS=kafka-1:9092`. Under `kafka.properties` a single `_` in the
//! variable's last part becomes a `.`, so `LINEWATCH__KAFKA__PROPERTIES__SASL_PASSWORD=...` sets
//! librdkafka's `sasl.password`: secrets need not live in the file. `LINEWATCH_BROKERS` is a
//! short form of `LINEWATCH__KAFKA__BROKERS`.
//!
//! `validate()` is pure and names the bad key and why; nothing here touches the network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pipeline file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// The whole pipeline file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Name and identity of the pipeline.
    pub pipeline: PipelineSection,
    /// Brokers, topics, consumer group and librdkafka client properties.
    pub kafka: KafkaSection,
    /// Limits applied when decoding reading messages.
    pub decode: DecodeSection,
    /// Event-time windows and the channels that become features.
    pub window: WindowSection,
    /// The score model (implicit score matching) that gives anomaly scores.
    pub model: ModelSection,
    /// The isotonic (monotone) defect-probability model.
    pub isotonic: IsotonicSection,
    /// Alert hysteresis.
    pub alert: AlertSection,
    /// Background retraining, validation and hot swap.
    pub retrain: RetrainSection,
    /// Parquet output.
    pub sink: SinkSection,
    /// The operations endpoint (`/metrics`, `/healthz`).
    pub http: HttpSection,
    /// The line simulator (`linewatch simulate`, `linewatch demo`).
    pub simulate: linewatch_sim::SimConfig,
}

/// `[pipeline]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    /// Pipeline name: part of alert ids, of the models folder and of the default group id.
    /// Default: "default".
    pub name: String,
}

impl Default for PipelineSection {
    fn default() -> Self {
        Self {
            name: "default".into(),
        }
    }
}

/// `[kafka]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSection {
    /// Bootstrap servers, comma separated. Default "127.0.0.1:9092"; env `LINEWATCH_BROKERS`.
    pub brokers: String,
    /// Consumer group id. Default: "linewatch-<pipeline name>".
    pub group_id: Option<String>,
    /// Topic of reading messages. Default "readings".
    pub readings_topic: String,
    /// Topic of inspection labels. Default "inspections"; empty string = no labels.
    pub inspections_topic: String,
    /// Topic the alerts are produced to. Default "alerts".
    pub alerts_topic: String,
    /// Suffix of the dead-letter topic of each input topic. Default ".dlq".
    pub dlq_suffix: String,
    /// How long to wait for the broker to acknowledge alerts and dead letters. Default "30s".
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// librdkafka properties passed through to every client (TLS, SASL, tuning), e.g.
    /// `"security.protocol" = "SASL_SSL"`. Default: none.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSection {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            group_id: None,
            readings_topic: "readings".into(),
            inspections_topic: "inspections".into(),
            alerts_topic: "alerts".into(),
            dlq_suffix: ".dlq".into(),
            ack_timeout: Duration::from_secs(30),
            properties: BTreeMap::new(),
        }
    }
}

/// `[decode]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeSection {
    /// Largest message accepted, in bytes. Default 65536.
    pub max_message_bytes: usize,
    /// Earliest sane event time (RFC 3339). Default "2000-01-01T00:00:00Z".
    pub min_ts: chrono::DateTime<chrono::Utc>,
    /// Latest sane event time (RFC 3339). Default "2100-01-01T00:00:00Z".
    pub max_ts: chrono::DateTime<chrono::Utc>,
    /// Most channels in one reading. Default 256.
    pub max_channels: usize,
}

impl Default for DecodeSection {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            min_ts: chrono::DateTime::from_timestamp(946_684_800, 0).unwrap_or_default(),
            max_ts: chrono::DateTime::from_timestamp(4_102_444_800, 0).unwrap_or_default(),
            max_channels: 256,
        }
    }
}

/// `[window]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSection {
    /// Window length in event time. Default "10s".
    #[serde(with = "humantime_serde")]
    pub size: Duration,
    /// Hop between window starts; equal to `size` for tumbling windows. Default: `size`.
    #[serde(with = "humantime_serde::option")]
    pub slide: Option<Duration>,
    /// How far behind a machine's newest reading a reading may arrive and still count.
    /// Default "2s".
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// A machine silent this long (in event time of its partition) is flushed and evicted.
    /// Default "5m".
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Channels that become features, in column order. Required (no default).
    pub channels: Vec<String>,
}

impl Default for WindowSection {
    fn default() -> Self {
        Self {
            size: Duration::from_secs(10),
            slide: None,
            allowed_lateness: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(300),
            channels: Vec::new(),
        }
    }
}

/// `[model]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Hidden layer widths of the score network. Default: two layers of
    /// clamp(2 x features, 16, 64) (wider nets overfit score matching on few features).
    pub hidden: Option<Vec<usize>>,
    /// RePU power p (2 or 3). Default 2.
    pub power: u32,
    /// Exact Jacobian trace up to this many features, sliced score matching above. Default 32.
    pub max_exact_dim: usize,
    /// Random projections per row for sliced score matching. Default 4.
    pub projections: usize,
    /// Most training epochs. Default 200.
    pub epochs: usize,
    /// Minibatch rows. Default 256.
    pub batch_size: usize,
    /// AdamW learning rate (peak of a cosine schedule). Default 0.002.
    pub learning_rate: f64,
    /// AdamW weight decay. Default 0.1.
    pub weight_decay: f64,
    /// Share of the newest training rows held out as one contiguous block: early stopping of
    /// the RePU residual, the choice between residual and Gaussian, and (with the residual)
    /// the calibration of the threshold. Default 0.2.
    pub holdout_fraction: f64,
    /// Epochs without held-out improvement before stopping. Default 20.
    pub patience: usize,
    /// Quantile of the calibration anomaly scores (windows the model did not fit, taken as
    /// contiguous time blocks) used as the alert threshold: the nominal share of normal
    /// windows over it. Default 0.99 (the usual 99 % control limit).
    pub threshold_quantile: f64,
    /// Covariance shrinkage of the Gaussian part, in [0, 1]. Default: the Ledoit-Wolf
    /// estimate (more shrinkage for short histories of many features).
    pub shrinkage: Option<f64>,
    /// The RePU residual beside the Gaussian part: "auto" (trained, kept only when it lowers
    /// the held-out score-matching loss by more than two standard errors), "off" or "always".
    /// Default "auto".
    pub residual: linewatch_models::ResidualMode,
    /// Contiguous blocks for the out-of-fold calibration of a Gaussian model (>= 2). Default 10.
    pub calibration_folds: usize,
    /// Gauss-Legendre nodes for log-density and contributions. Default 16.
    pub quadrature_nodes: usize,
    /// Seed of initialisation, shuffling and projections. Default 7.
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`. Default "auto".
    pub device: String,
    /// Window statistics the models see, per channel (of mean, std, min, max, last, slope).
    /// `count` is never modelled (discrete: score matching needs a density). Default
    /// ["mean", "std", "slope"]: min, max and last are nearly collinear with mean and std
    /// within a window, and near-singular directions dominate the Hyvarinen score.
    pub stats: Vec<String>,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            hidden: None,
            power: 2,
            max_exact_dim: 32,
            projections: 4,
            epochs: 200,
            batch_size: 256,
            learning_rate: 2e-3,
            weight_decay: 0.1,
            holdout_fraction: 0.2,
            patience: 20,
            threshold_quantile: 0.99,
            shrinkage: None,
            residual: linewatch_models::ResidualMode::Auto,
            calibration_folds: 10,
            quadrature_nodes: 16,
            seed: 7,
            device: "auto".into(),
            stats: vec!["mean".into(), "std".into(), "slope".into()],
        }
    }
}

/// How a covariate may move the defect probability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Monotone {
    /// Higher value never lowers the defect probability.
    Increasing,
    /// Higher value never raises it.
    Decreasing,
    /// No constraint.
    Free,
}

/// One covariate of the isotonic model: a feature column `<channel>__<stat>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Covariate {
    /// Feature column name, e.g. "tool_wear__last".
    pub feature: String,
    /// Declared direction. Default "free".
    #[serde(default = "free")]
    pub monotone: Monotone,
}

fn free() -> Monotone {
    Monotone::Free
}

/// `[isotonic]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IsotonicSection {
    /// Train the defect-probability model when enough labelled windows exist. Default true.
    pub enabled: bool,
    /// Covariates besides the anomaly score (which is always increasing). Default none.
    pub covariates: Vec<Covariate>,
    /// Weight of the wrong-sign derivative penalty. Default 10.0.
    pub lambda: f64,
    /// Labelled windows needed, with at least `min_positives` defects. Default 200.
    pub min_labels: usize,
    /// Defective labels needed. Default 10.
    pub min_positives: usize,
    /// Hidden widths of the isotonic network. Default [32, 32].
    pub hidden: Vec<usize>,
}

impl Default for IsotonicSection {
    fn default() -> Self {
        Self {
            enabled: true,
            covariates: Vec::new(),
            lambda: 10.0,
            min_labels: 200,
            min_positives: 10,
            hidden: vec![32, 32],
        }
    }
}

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

/// `[retrain]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainSection {
    /// Retrain in the background while running. Default true.
    pub enabled: bool,
    /// Retrain at most this often (wall clock). Default "10m".
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// ... or after this many new windows, whichever comes first; 0 = only `every`.
    /// Default 0.
    pub every_windows: u64,
    /// Windows needed before the first model is trained (warm-up). Default 500.
    pub min_windows: usize,
    /// Most recent normal windows kept for training. Default 20000.
    pub max_rows: usize,
    /// Windows of a machine within this many windows (before or after) of one over the
    /// threshold or under an open alert stay out of training, so a fault's quieter windows do
    /// not teach the next model that the fault is normal. A window joins the training set
    /// once this many later windows closed. 0: only the abnormal windows stay out. Default 6.
    pub guard_windows: usize,
    /// A candidate is rejected if its held-out loss on a recent slice is worse than the
    /// serving model's by more than this share (0.25 = 25 %). Default 0.25.
    pub max_regression: f64,
    /// Share of the newest rows used as that recent validation slice. Default 0.2.
    pub validation_fraction: f64,
    /// Where versions are stored: `<models>/<pipeline>/<version>/`. Default "./linewatch-out/models".
    pub models_dir: PathBuf,
}

impl Default for RetrainSection {
    fn default() -> Self {
        Self {
            enabled: true,
            every: Duration::from_secs(600),
            every_windows: 0,
            min_windows: 500,
            max_rows: 20_000,
            guard_windows: 6,
            max_regression: 0.25,
            validation_fraction: 0.2,
            models_dir: PathBuf::from("./linewatch-out/models"),
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
    /// Reads a pipeline file and applies the process environment on top.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_with_env(&text, &path.display().to_string(), std::env::vars())
    }

    /// Parses TOML text, applies `env` (pairs of name and value) on top, and validates.
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut tree: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        apply_env(&mut tree, env)?;
        let cfg: PipelineConfig =
            toml::Value::Table(tree)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: origin.to_string(),
                    message: e.to_string(),
                })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The consumer group id.
    pub fn group_id(&self) -> String {
        self.kafka
            .group_id
            .clone()
            .unwrap_or_else(|| format!("linewatch-{}", self.pipeline.name))
    }

    /// The hop between windows.
    pub fn slide(&self) -> Duration {
        self.window.slide.unwrap_or(self.window.size)
    }

    /// Where this pipeline's model versions live.
    pub fn models_root(&self) -> PathBuf {
        self.retrain.models_dir.join(&self.pipeline.name)
    }

    /// Checks every value; pure.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = &self.pipeline.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            || name.starts_with('.')
        {
            return Err(invalid(
                "pipeline.name",
                format!("{name:?}: use letters, digits, '-', '_' or '.' (it names a folder)"),
            ));
        }
        if self.kafka.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "empty"));
        }
        if self.kafka.readings_topic.is_empty() {
            return Err(invalid("kafka.readings_topic", "empty"));
        }
        if self.kafka.alerts_topic.is_empty() {
            return Err(invalid("kafka.alerts_topic", "empty"));
        }
        if self.kafka.dlq_suffix.is_empty() {
            return Err(invalid(
                "kafka.dlq_suffix",
                "empty: dead letters would go back to the input topic",
            ));
        }
        for key in ["group.id", "enable.auto.commit", "bootstrap.servers"] {
            if self.kafka.properties.contains_key(key) {
                return Err(invalid(
                    "kafka.properties",
                    format!("{key:?} is set by linewatch itself; use the dedicated key"),
                ));
            }
        }
        if self.decode.max_message_bytes < 64 {
            return Err(invalid("decode.max_message_bytes", "below 64 bytes"));
        }
        if self.decode.min_ts >= self.decode.max_ts {
            return Err(invalid("decode.min_ts", "must be before decode.max_ts"));
        }
        let size = self.window.size.as_millis();
        let slide = self.slide().as_millis();
        if size == 0 {
            return Err(invalid("window.size", "must be positive"));
        }
        if slide == 0 || slide > size || !size.is_multiple_of(slide) {
            return Err(invalid(
                "window.slide",
                format!("must divide window.size ({size} ms) and be positive, got {slide} ms"),
            ));
        }
        if self.window.channels.is_empty() {
            return Err(invalid(
                "window.channels",
                "list the channels to turn into features",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.window.channels {
            if c.is_empty() || !seen.insert(c) {
                return Err(invalid(
                    "window.channels",
                    format!("{c:?} is empty or listed twice"),
                ));
            }
        }
        if self
            .model
            .hidden
            .as_ref()
            .is_some_and(|h| h.is_empty() || h.contains(&0))
        {
            return Err(invalid("model.hidden", "needs at least one positive width"));
        }
        if !(2..=3).contains(&self.model.power) {
            return Err(invalid("model.power", "RePU power must be 2 or 3"));
        }
        if !(0.5..1.0).contains(&self.model.threshold_quantile) {
            return Err(invalid("model.threshold_quantile", "must be in [0.5, 1)"));
        }
        if let Some(a) = self.model.shrinkage
            && !(0.0..=1.0).contains(&a)
        {
            return Err(invalid(
                "model.shrinkage",
                format!("{a}: must be in [0, 1]"),
            ));
        }
        if self.model.calibration_folds < 2 {
            return Err(invalid("model.calibration_folds", "must be >= 2"));
        }
        if !(0.05..=0.5).contains(&self.model.holdout_fraction) {
            return Err(invalid("model.holdout_fraction", "must be in [0.05, 0.5]"));
        }
        if self.model.batch_size == 0 || self.model.epochs == 0 {
            return Err(invalid(
                "model.batch_size",
                "batch_size and epochs must be positive",
            ));
        }
        if !(self.model.learning_rate > 0.0 && self.model.learning_rate.is_finite()) {
            return Err(invalid("model.learning_rate", "must be positive"));
        }
        if !(2..=64).contains(&self.model.quadrature_nodes) {
            return Err(invalid("model.quadrature_nodes", "must be in 2..=64"));
        }
        if self
            .model
            .device
            .parse::<linewatch_models::DeviceSpec>()
            .is_err()
        {
            return Err(invalid(
                "model.device",
                format!("{:?}: use auto, cpu, cuda or cuda:N", self.model.device),
            ));
        }
        const MODEL_STATS: [&str; 6] = ["mean", "std", "min", "max", "last", "slope"];
        if self.model.stats.is_empty()
            || self
                .model
                .stats
                .iter()
                .any(|s| !MODEL_STATS.contains(&s.as_str()))
        {
            return Err(invalid(
                "model.stats",
                format!("{:?}: choose from {MODEL_STATS:?}", self.model.stats),
            ));
        }
        if !(self.isotonic.lambda >= 0.0 && self.isotonic.lambda.is_finite()) {
            return Err(invalid("isotonic.lambda", "must be a finite number >= 0"));
        }
        if let Some(a) = self.alert.p_value
            && !(a > 0.0 && a <= 0.5)
        {
            return Err(invalid(
                "alert.p_value",
                format!("{a}: must be in (0, 0.5]"),
            ));
        }
        if self.alert.open_after == 0 || self.alert.resolve_after == 0 {
            return Err(invalid(
                "alert.open_after",
                "open_after and resolve_after must be >= 1",
            ));
        }
        if self.retrain.every.is_zero() {
            return Err(invalid("retrain.every", "must be positive"));
        }
        if self.retrain.min_windows < 20 {
            return Err(invalid("retrain.min_windows", "needs at least 20 windows"));
        }
        if self.retrain.max_rows < self.retrain.min_windows {
            return Err(invalid(
                "retrain.max_rows",
                "smaller than retrain.min_windows",
            ));
        }
        if !(self.retrain.max_regression >= 0.0 && self.retrain.max_regression.is_finite()) {
            return Err(invalid("retrain.max_regression", "must be >= 0"));
        }
        if !(0.05..=0.5).contains(&self.retrain.validation_fraction) {
            return Err(invalid(
                "retrain.validation_fraction",
                "must be in [0.05, 0.5]",
            ));
        }
        if self.sink.max_rows == 0 || self.sink.max_bytes == 0 || self.sink.max_age.is_zero() {
            return Err(invalid(
                "sink.max_rows",
                "max_rows, max_bytes and max_age must be positive",
            ));
        }
        if self.sink.row_group_rows == 0 {
            return Err(invalid("sink.row_group_rows", "must be positive"));
        }
        if !(1..=22).contains(&self.sink.zstd_level) {
            return Err(invalid("sink.zstd_level", "zstd levels are 1..=22"));
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

/// Applies `LINEWATCH__A__B=v` (and `LINEWATCH_BROKERS`) to the parsed tree.
fn apply_env(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut pairs: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k == "LINEWATCH_BROKERS" || k.starts_with("LINEWATCH__"))
        .collect();
    pairs.sort();
    for (var, value) in pairs {
        let path: Vec<String> = if var == "LINEWATCH_BROKERS" {
            vec!["kafka".into(), "brokers".into()]
        } else {
            let parts: Vec<&str> = var["LINEWATCH__".len()..].split("__").collect();
            if parts.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::Env {
                    var,
                    message: "empty path segment".into(),
                });
            }
            let in_properties = parts.len() == 3
                && parts[0].eq_ignore_ascii_case("kafka")
                && parts[1].eq_ignore_ascii_case("properties");
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let lower = p.to_ascii_lowercase();
                    if in_properties && i == 2 {
                        lower.replace('_', ".")
                    } else {
                        lower
                    }
                })
                .collect()
        };
        let in_properties = path.len() == 3 && path[0] == "kafka" && path[1] == "properties";
        let parsed = if in_properties || path.last().is_some_and(|k| k == "brokers") {
            toml::Value::String(value.clone())
        } else {
            parse_scalar(&value)
        };
        let mut node = &mut *tree;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                node.insert(key.clone(), parsed.clone());
            } else {
                let entry = node
                    .entry(key.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                node = match entry {
                    toml::Value::Table(t) => t,
                    _ => {
                        return Err(ConfigError::Env {
                            var,
                            message: format!("`{key}` is not a section"),
                        });
                    }
                };
            }
        }
    }
    Ok(())
}

/// A value from the environment as TOML: `3`, `true`, `[64, 64]`, `"x"`, else a plain string.
fn parse_scalar(value: &str) -> toml::Value {
    let doc = format!("v = {value}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.to_string())),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [pipeline]
        name = "press-3"
        [window]
        channels = ["temp_c", "vib_rms"]
    "#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_fill_everything_not_given() {
        let cfg = PipelineConfig::from_toml_with_env(MINIMAL, "t", env(&[])).unwrap();
        assert_eq!(cfg.pipeline.name, "press-3");
        assert_eq!(cfg.group_id(), "linewatch-press-3");
        assert_eq!(cfg.window.size, Duration::from_secs(10));
        assert_eq!(cfg.slide(), Duration::from_secs(10));
        assert_eq!(cfg.alert.open_after, 3);
        assert_eq!(
            cfg.models_root(),
            PathBuf::from("./linewatch-out/models/press-3")
        );
    }

    #[test]
    fn environment_overrides_file_and_reaches_client_properties() {
        let cfg = PipelineConfig::from_toml_with_env(
            MINIMAL,
            "t",
            env(&[
                ("LINEWATCH_BROKERS", "k1:9092,k2:9092"),
                ("LINEWATCH__ALERT__OPEN_AFTER", "5"),
                ("LINEWATCH__WINDOW__SIZE", "30s"),
                ("LINEWATCH__KAFKA__PROPERTIES__SASL_PASSWORD", "s3cret"),
                ("LINEWATCH__MODEL__HIDDEN", "[32, 16]"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(cfg.alert.open_after, 5);
        assert_eq!(cfg.window.size, Duration::from_secs(30));
        assert_eq!(cfg.kafka.properties.get("sasl.password").unwrap(), "s3cret");
        assert_eq!(cfg.model.hidden, Some(vec![32, 16]));
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = PipelineConfig::from_toml_with_env(
            &format!("{MINIMAL}\n[alert]\nopen_afterr = 3\n"),
            "t",
            env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("open_afterr"), "{err}");
    }

    #[test]
    fn validation_names_the_key_and_why() {
        let cases = [
            ("[window]\nchannels = []\n", "window.channels"),
            (
                "[window]\nchannels = [\"a\"]\nsize = \"10s\"\nslide = \"3s\"\n",
                "window.slide",
            ),
            ("[window]\nchannels = [\"a\", \"a\"]\n", "window.channels"),
            (
                "[window]\nchannels = [\"a\"]\n[model]\npower = 4\n",
                "model.power",
            ),
            (
                "[window]\nchannels = [\"a\"]\n[model]\ndevice = \"tpu\"\n",
                "model.device",
            ),
            (
                "[window]\nchannels = [\"a\"]\n[kafka.properties]\n\"group.id\" = \"x\"\n",
                "kafka.properties",
            ),
            (
                "[window]\nchannels = [\"a\"]\n[http]\nlisten = \"nonsense\"\n",
                "http.listen",
            ),
            (
                "[pipeline]\nname = \"../x\"\n[window]\nchannels = [\"a\"]\n",
                "pipeline.name",
            ),
        ];
        for (text, key) in cases {
            let err = PipelineConfig::from_toml_with_env(text, "t", env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text:?} -> {err}");
        }
    }

    #[test]
    fn shipped_pipelines_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                PipelineConfig::from_toml_with_env(&text, &path.display().to_string(), env(&[]))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 2, "demo.toml and a realistic line at least");
    }
}
