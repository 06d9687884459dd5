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
    /// within a window (near-singular directions of the covariance).
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

    /// Checks every key; pure. The error names the key, the value and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_pipeline_and_kafka()?;
        self.validate_decode_and_window()?;
        self.validate_model()?;
        self.validate_isotonic()?;
        self.validate_alert_and_retrain()?;
        self.validate_sink_and_http()?;
        self.simulate
            .validate()
            .map_err(|e| invalid("simulate", e.to_string()))?;
        Ok(())
    }

    fn validate_pipeline_and_kafka(&self) -> Result<(), ConfigError> {
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
        let k = &self.kafka;
        if k.brokers.trim().is_empty() || k.brokers.split(',').any(|b| b.trim().is_empty()) {
            return Err(invalid(
                "kafka.brokers",
                format!("{:?}: list host:port entries separated by ','", k.brokers),
            ));
        }
        if let Some(g) = &k.group_id
            && g.trim().is_empty()
        {
            return Err(invalid(
                "kafka.group_id",
                format!("{g:?}: empty; leave the key out for linewatch-<pipeline.name>"),
            ));
        }
        topic_name("kafka.readings_topic", &k.readings_topic)?;
        topic_name("kafka.alerts_topic", &k.alerts_topic)?;
        if !k.inspections_topic.is_empty() {
            topic_name("kafka.inspections_topic", &k.inspections_topic)?;
        }
        if k.dlq_suffix.is_empty() {
            return Err(invalid(
                "kafka.dlq_suffix",
                "\"\": dead letters would go back to the input topic",
            ));
        }
        for t in [&k.readings_topic, &k.inspections_topic] {
            if !t.is_empty() {
                topic_name("kafka.dlq_suffix", &format!("{t}{}", k.dlq_suffix))?;
            }
        }
        if k.alerts_topic == k.readings_topic || k.alerts_topic == k.inspections_topic {
            return Err(invalid(
                "kafka.alerts_topic",
                format!(
                    "{:?}: the same topic as an input topic; alerts would be read back as input",
                    k.alerts_topic
                ),
            ));
        }
        if k.inspections_topic == k.readings_topic {
            return Err(invalid(
                "kafka.inspections_topic",
                format!(
                    "{:?}: the same topic as kafka.readings_topic",
                    k.inspections_topic
                ),
            ));
        }
        if k.ack_timeout.is_zero() {
            return Err(invalid(
                "kafka.ack_timeout",
                "0s: must be positive (no acknowledgement could ever arrive in time)",
            ));
        }
        for key in ["group.id", "enable.auto.commit", "bootstrap.servers"] {
            if k.properties.contains_key(key) {
                return Err(invalid(
                    "kafka.properties",
                    format!("{key:?} is set by linewatch itself; use the dedicated key"),
                ));
            }
        }
        if let Some(key) = k.properties.keys().find(|p| p.trim().is_empty()) {
            return Err(invalid(
                "kafka.properties",
                format!("{key:?}: an empty property name"),
            ));
        }
        Ok(())
    }

    fn validate_decode_and_window(&self) -> Result<(), ConfigError> {
        let d = &self.decode;
        if d.max_message_bytes < 64 {
            return Err(invalid(
                "decode.max_message_bytes",
                format!("{}: below 64 bytes", d.max_message_bytes),
            ));
        }
        if d.min_ts >= d.max_ts {
            return Err(invalid(
                "decode.min_ts",
                format!(
                    "{}: must be before decode.max_ts ({})",
                    d.min_ts.to_rfc3339(),
                    d.max_ts.to_rfc3339()
                ),
            ));
        }
        let w = &self.window;
        if w.channels.is_empty() {
            return Err(invalid(
                "window.channels",
                "[]: list the channels to turn into features",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for c in &w.channels {
            if c.is_empty() || !seen.insert(c) {
                return Err(invalid(
                    "window.channels",
                    format!("{c:?} is empty or listed twice"),
                ));
            }
        }
        if d.max_channels < w.channels.len() {
            return Err(invalid(
                "decode.max_channels",
                format!(
                    "{}: a reading with the {} channels of window.channels would be \
                     dead-lettered; must be at least {}",
                    d.max_channels,
                    w.channels.len(),
                    w.channels.len().max(1)
                ),
            ));
        }
        let ms = |v: Duration| u64::try_from(v.as_millis()).unwrap_or(u64::MAX);
        let size = ms(w.size);
        let slide = ms(self.slide());
        if size == 0 {
            return Err(invalid(
                "window.size",
                format!("{:?}: must be at least 1 ms", w.size),
            ));
        }
        if slide == 0 || slide > size || !size.is_multiple_of(slide) {
            return Err(invalid(
                "window.slide",
                format!("must divide window.size ({size} ms) and be positive, got {slide} ms"),
            ));
        }
        let wc = linewatch_window::WindowConfig::hopping(
            size,
            slide,
            ms(w.allowed_lateness),
            ms(w.idle_timeout),
        );
        if let Err(e) = wc.validate() {
            use linewatch_window::ConfigError as W;
            let key = match &e {
                W::TooLong { field, .. } if *field == "allowed_lateness_ms" => {
                    "window.allowed_lateness"
                }
                W::TooLong { field, .. } if *field == "idle_timeout_ms" => "window.idle_timeout",
                W::TooLong { .. } | W::ZeroSize => "window.size",
                W::ZeroIdleTimeout => "window.idle_timeout",
                _ => "window.slide",
            };
            return Err(invalid(key, e.to_string()));
        }
        Ok(())
    }

    fn validate_model(&self) -> Result<(), ConfigError> {
        let m = &self.model;
        if let Some(h) = &m.hidden
            && (h.is_empty() || h.contains(&0))
        {
            return Err(invalid(
                "model.hidden",
                format!("{h:?}: needs at least one layer, every width positive"),
            ));
        }
        if !(2..=3).contains(&m.power) {
            return Err(invalid(
                "model.power",
                format!("{}: RePU power must be 2 or 3", m.power),
            ));
        }
        at_least_one(
            "model.projections",
            m.projections,
            "sliced score matching needs at least one random projection per row",
        )?;
        at_least_one("model.epochs", m.epochs, "no model would ever be trained")?;
        at_least_one("model.batch_size", m.batch_size, "a minibatch needs rows")?;
        at_least_one(
            "model.patience",
            m.patience,
            "training would stop at the first epoch without improvement",
        )?;
        if !(m.learning_rate > 0.0 && m.learning_rate.is_finite()) {
            return Err(invalid(
                "model.learning_rate",
                format!("{}: must be a finite number > 0", m.learning_rate),
            ));
        }
        if !(m.weight_decay >= 0.0 && m.weight_decay.is_finite()) {
            return Err(invalid(
                "model.weight_decay",
                format!(
                    "{}: must be a finite number >= 0 (training rejects anything else, so no \
                     model would ever be trained)",
                    m.weight_decay
                ),
            ));
        }
        fraction("model.holdout_fraction", m.holdout_fraction, 0.05, 0.5)?;
        if !(0.5..1.0).contains(&m.threshold_quantile) {
            return Err(invalid(
                "model.threshold_quantile",
                format!("{}: must be in [0.5, 1)", m.threshold_quantile),
            ));
        }
        if let Some(a) = m.shrinkage {
            fraction("model.shrinkage", a, 0.0, 1.0)?;
        }
        if m.calibration_folds < 2 {
            return Err(invalid(
                "model.calibration_folds",
                format!("{}: must be >= 2", m.calibration_folds),
            ));
        }
        if !(2..=64).contains(&m.quadrature_nodes) {
            return Err(invalid(
                "model.quadrature_nodes",
                format!("{}: must be in 2..=64", m.quadrature_nodes),
            ));
        }
        if m.device.parse::<linewatch_models::DeviceSpec>().is_err() {
            return Err(invalid(
                "model.device",
                format!("{:?}: use auto, cpu, cuda or cuda:N", m.device),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if m.stats.is_empty()
            || m.stats
                .iter()
                .any(|s| !MODEL_STATS.contains(&s.as_str()) || !seen.insert(s))
        {
            return Err(invalid(
                "model.stats",
                format!(
                    "{:?}: choose one or more of {MODEL_STATS:?}, each once",
                    m.stats
                ),
            ));
        }
        Ok(())
    }

    fn validate_isotonic(&self) -> Result<(), ConfigError> {
        let iso = &self.isotonic;
        if iso.hidden.contains(&0) {
            return Err(invalid(
                "isotonic.hidden",
                format!("{:?}: every width must be positive", iso.hidden),
            ));
        }
        if !(iso.lambda >= 0.0 && iso.lambda.is_finite()) {
            return Err(invalid(
                "isotonic.lambda",
                format!("{}: must be a finite number >= 0", iso.lambda),
            ));
        }
        at_least_one(
            "isotonic.min_labels",
            iso.min_labels,
            "the model would be trained on no labels",
        )?;
        at_least_one(
            "isotonic.min_positives",
            iso.min_positives,
            "a defect probability needs defective labels",
        )?;
        if iso.min_positives > iso.min_labels {
            return Err(invalid(
                "isotonic.min_positives",
                format!(
                    "{}: more than isotonic.min_labels ({})",
                    iso.min_positives, iso.min_labels
                ),
            ));
        }
        // The backtest's placeholder channel list (each CSV's columns are its channels).
        let channels_listed = self.window.channels != [CHANNELS_FROM_DATA];
        let mut seen = std::collections::HashSet::new();
        for (i, c) in iso.covariates.iter().enumerate() {
            let f = &c.feature;
            let why = |msg: String| invalid("isotonic.covariates", format!("[{i}] {f:?}: {msg}"));
            let Some((channel, stat)) = f.rsplit_once(linewatch_window::FEATURE_SEPARATOR) else {
                return Err(why(
                    "not a feature name: name one as <channel>__<stat>, e.g. \"temp_c__mean\""
                        .into(),
                ));
            };
            if !seen.insert(f) {
                return Err(why("listed twice".into()));
            }
            if channels_listed && !self.window.channels.iter().any(|w| w == channel) {
                return Err(why(format!(
                    "no such feature: channel {channel:?} is not in window.channels {:?}",
                    self.window.channels
                )));
            }
            if !self.model.stats.iter().any(|s| s == stat) {
                return Err(why(format!(
                    "the model does not see this feature: statistic {stat:?} is not in \
                     model.stats {:?}",
                    self.model.stats
                )));
            }
        }
        Ok(())
    }

    fn validate_alert_and_retrain(&self) -> Result<(), ConfigError> {
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
        let r = &self.retrain;
        if r.every.is_zero() {
            return Err(invalid("retrain.every", "0s: must be positive"));
        }
        if r.min_windows < 20 {
            return Err(invalid(
                "retrain.min_windows",
                format!("{}: needs at least 20 windows", r.min_windows),
            ));
        }
        if r.max_rows < r.min_windows {
            return Err(invalid(
                "retrain.max_rows",
                format!(
                    "{}: smaller than retrain.min_windows ({})",
                    r.max_rows, r.min_windows
                ),
            ));
        }
        if !(r.max_regression >= 0.0 && r.max_regression.is_finite()) {
            return Err(invalid(
                "retrain.max_regression",
                format!("{}: must be a finite number >= 0", r.max_regression),
            ));
        }
        fraction(
            "retrain.validation_fraction",
            r.validation_fraction,
            0.05,
            0.5,
        )?;
        if r.models_dir.as_os_str().is_empty() {
            return Err(invalid("retrain.models_dir", "\"\": name a folder"));
        }
        Ok(())
    }

    fn validate_sink_and_http(&self) -> Result<(), ConfigError> {
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

/// The window statistics a model may see (`count` is never modelled).
const MODEL_STATS: [&str; 6] = ["mean", "std", "min", "max", "last", "slope"];

/// The `window.channels` placeholder that `backtest::load_config` puts in when a pipeline file
/// lists none (the backtest takes the channels from each CSV).
pub(crate) const CHANNELS_FROM_DATA: &str = "from-csv";

fn at_least_one(key: &'static str, v: usize, why: &str) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(invalid(key, format!("0: must be at least 1 ({why})")));
    }
    Ok(())
}

/// `v` in `[lo, hi]` (NaN is outside).
fn fraction(key: &'static str, v: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    if !(lo..=hi).contains(&v) {
        return Err(invalid(key, format!("{v}: must be in [{lo}, {hi}]")));
    }
    Ok(())
}

/// A Kafka topic name: 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
fn topic_name(key: &'static str, t: &str) -> Result<(), ConfigError> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if t.is_empty() || t.len() > 249 || t == "." || t == ".." || !t.chars().all(legal) {
        return Err(invalid(
            key,
            format!(
                "topic {t:?}: a Kafka topic name is 1 to 249 of letters, digits, '.', '_' and '-'"
            ),
        ));
    }
    Ok(())
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

    /// The key of a validation error, or the whole error when it is of another kind.
    fn invalid_key(text: &str) -> String {
        match PipelineConfig::from_toml_with_env(text, "t", env(&[])) {
            Err(ConfigError::Invalid { key, message }) => {
                assert!(!message.is_empty());
                key.to_string()
            }
            Err(e) => format!("not a validation error: {e}"),
            Ok(_) => "accepted".to_string(),
        }
    }

    #[test]
    fn every_setting_that_would_do_nothing_or_worse_is_named() {
        let cases = [
            ("[isotonic]\nhidden = [0]", "isotonic.hidden"),
            ("[isotonic]\nhidden = [32, 0]", "isotonic.hidden"),
            ("[model]\nweight_decay = -1", "model.weight_decay"),
            ("[model]\nweight_decay = nan", "model.weight_decay"),
            ("[model]\nprojections = 0", "model.projections"),
            ("[decode]\nmax_channels = 0", "decode.max_channels"),
            ("[decode]\nmax_channels = 1", "decode.max_channels"),
            (
                "[decode]\nmax_message_bytes = 10",
                "decode.max_message_bytes",
            ),
            ("[model]\nhidden = [0]", "model.hidden"),
            ("[model]\nepochs = 0", "model.epochs"),
            ("[model]\nbatch_size = 0", "model.batch_size"),
            ("[model]\npatience = 0", "model.patience"),
            ("[model]\nlearning_rate = 0.0", "model.learning_rate"),
            ("[model]\nholdout_fraction = 0.9", "model.holdout_fraction"),
            (
                "[model]\nthreshold_quantile = 1.0",
                "model.threshold_quantile",
            ),
            ("[model]\nshrinkage = 1.5", "model.shrinkage"),
            ("[model]\ncalibration_folds = 1", "model.calibration_folds"),
            ("[model]\nquadrature_nodes = 1", "model.quadrature_nodes"),
            ("[model]\nstats = [\"mean\", \"mean\"]", "model.stats"),
            ("[model]\nstats = [\"count\"]", "model.stats"),
            ("[isotonic]\nlambda = -1.0", "isotonic.lambda"),
            ("[isotonic]\nmin_labels = 0", "isotonic.min_labels"),
            ("[isotonic]\nmin_positives = 0", "isotonic.min_positives"),
            (
                "[isotonic]\nmin_labels = 5\nmin_positives = 10",
                "isotonic.min_positives",
            ),
            ("[alert]\nopen_after = 0", "alert.open_after"),
            ("[alert]\nresolve_after = 0", "alert.resolve_after"),
            ("[alert]\ntop_features = 0", "alert.top_features"),
            ("[alert]\np_value = 0.9", "alert.p_value"),
            ("[retrain]\nevery = \"0s\"", "retrain.every"),
            ("[retrain]\nmin_windows = 5", "retrain.min_windows"),
            ("[retrain]\nmax_rows = 100", "retrain.max_rows"),
            ("[retrain]\nmax_regression = -0.5", "retrain.max_regression"),
            (
                "[retrain]\nvalidation_fraction = 0.0",
                "retrain.validation_fraction",
            ),
            ("[retrain]\nmodels_dir = \"\"", "retrain.models_dir"),
            ("[sink]\nmax_rows = 0", "sink.max_rows"),
            ("[sink]\nmax_bytes = 0", "sink.max_bytes"),
            ("[sink]\nmax_age = \"0s\"", "sink.max_age"),
            ("[sink]\nrow_group_rows = 0", "sink.row_group_rows"),
            ("[sink]\nzstd_level = 0", "sink.zstd_level"),
            ("[sink]\nout = \"\"", "sink.out"),
            ("[kafka]\nack_timeout = \"0s\"", "kafka.ack_timeout"),
            ("[kafka]\ngroup_id = \"\"", "kafka.group_id"),
            ("[kafka]\nbrokers = \"k1:9092,\"", "kafka.brokers"),
            ("[kafka]\nalerts_topic = \"readings\"", "kafka.alerts_topic"),
            (
                "[kafka]\nreadings_topic = \"my topic\"",
                "kafka.readings_topic",
            ),
            ("[kafka]\ndlq_suffix = \"/dlq\"", "kafka.dlq_suffix"),
            ("[window]\nidle_timeout = \"0s\"", "window.idle_timeout"),
            ("[window]\nsize = \"0s\"", "window.size"),
            ("[window]\nsize = \"2000s\"\nslide = \"1s\"", "window.slide"),
            ("[simulate]\nmachines = 0", "simulate"),
        ];
        let channels = "channels = [\"temp_c\", \"vib_rms\"]";
        for (section, key) in cases {
            let text = if section.starts_with("[window]") {
                format!("{section}\n{channels}\n")
            } else {
                format!("[window]\n{channels}\n{section}\n")
            };
            assert_eq!(invalid_key(&text), key, "{section}");
        }
    }

    #[test]
    fn a_covariate_must_name_a_feature_the_model_sees() {
        let with = |feature: &str, extra: &str| {
            format!(
                "{MINIMAL}\n{extra}\n[isotonic]\ncovariates = [{{ feature = \"{feature}\", \
                 monotone = \"increasing\" }}]\n"
            )
        };
        let message = |text: &str| match PipelineConfig::from_toml_with_env(text, "t", env(&[])) {
            Err(ConfigError::Invalid { key, message }) => {
                assert_eq!(key, "isotonic.covariates", "{message}");
                message
            }
            other => panic!("{text}: {other:?}"),
        };
        // A channel that is not in window.channels: the feature does not exist.
        let m = message(&with("temp__mean", ""));
        assert!(m.contains("\"temp__mean\""), "{m}");
        assert!(m.contains("window.channels"), "{m}");
        // A statistic the model does not see (default stats: mean, std, slope).
        let m = message(&with("temp_c__last", ""));
        assert!(m.contains("\"temp_c__last\""), "{m}");
        assert!(m.contains("model.stats"), "{m}");
        // Not a feature name at all.
        let m = message(&with("temp_c", ""));
        assert!(m.contains("<channel>__<stat>"), "{m}");
        // With the statistic in model.stats, or a default one, it is accepted.
        let ok = with("temp_c__last", "[model]\nstats = [\"mean\", \"last\"]");
        PipelineConfig::from_toml_with_env(&ok, "t", env(&[])).unwrap();
        PipelineConfig::from_toml_with_env(&with("vib_rms__std", ""), "t", env(&[])).unwrap();
        // The backtest's placeholder list: channels come from the CSV, the stat still counts.
        let placeholder = |f: &str| {
            format!(
                "[window]\nchannels = [\"{CHANNELS_FROM_DATA}\"]\n[isotonic]\n\
                 covariates = [{{ feature = \"{f}\" }}]\n"
            )
        };
        PipelineConfig::from_toml_with_env(&placeholder("x__mean"), "t", env(&[])).unwrap();
        assert_eq!(invalid_key(&placeholder("x__last")), "isotonic.covariates");
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
