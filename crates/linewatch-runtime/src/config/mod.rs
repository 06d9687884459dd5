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

mod input;
mod load;
mod model;
mod output;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use input::{DecodeSection, KafkaSection, PipelineSection, RegistrySection, WindowSection};
pub use model::{Covariate, IsotonicSection, ModelSection, Monotone, RetrainSection};
pub use output::{AlertSection, HttpSection, SinkSection};

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `origin` names where the text came from (`pipeline file X`, or the built-in defaults).
    #[error("{origin} is not valid: {message}")]
    Parse { origin: String, message: String },
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

impl PipelineConfig {
    /// The consumer group id.
    pub fn group_id(&self) -> String {
        self.kafka
            .group_id
            .clone()
            .unwrap_or_else(|| format!("linewatch-{}", self.pipeline.name))
    }

    /// The internal topic of re-keyed readings (`kafka.rekey_topic`, default
    /// `<group id>-readings-repartition`, as Kafka Streams names its repartition topics).
    pub fn rekey_topic(&self) -> String {
        self.kafka
            .rekey_topic
            .clone()
            .unwrap_or_else(|| format!("{}-readings-repartition", self.group_id()))
    }

    /// The topic the windowers consume: the readings topic, or with `kafka.rekey` the
    /// re-keyed readings.
    pub fn windowed_topic(&self) -> String {
        if self.kafka.rekey {
            self.rekey_topic()
        } else {
            self.kafka.readings_topic.clone()
        }
    }

    /// The hop between windows.
    pub fn slide(&self) -> Duration {
        self.window.slide.unwrap_or(self.window.size)
    }

    /// The windower's settings from `[window]` (size, hop, allowed lateness, idle timeout, in
    /// ms; a duration beyond u64 ms saturates, which the windower's checks refuse).
    pub fn window_config(&self) -> linewatch_window::WindowConfig {
        let ms = |v: Duration| u64::try_from(v.as_millis()).unwrap_or(u64::MAX);
        linewatch_window::WindowConfig::hopping(
            ms(self.window.size),
            ms(self.slide()),
            ms(self.window.allowed_lateness),
            ms(self.window.idle_timeout),
        )
    }

    /// Where this pipeline's model versions live, as written: `retrain.models_dir/<name>`.
    pub fn models_root(&self) -> PathBuf {
        self.retrain.models_dir.join(&self.pipeline.name)
    }

    /// [`Self::models_root`] as a storage location (a folder, or an object-store prefix when
    /// `retrain.models_dir` is a URL such as `s3://bucket/models`).
    ///
    /// # Errors
    /// An unknown scheme, a malformed URL, or a store the environment cannot configure.
    pub fn models_location(&self) -> Result<linewatch_sink::Location, linewatch_sink::SinkError> {
        linewatch_sink::Location::from_path_or_url(&self.retrain.models_dir)
            .map(|l| l.join(&self.pipeline.name))
    }

    /// `sink.out` as a storage location (a folder, or an object-store prefix for a URL).
    ///
    /// # Errors
    /// As [`Self::models_location`].
    pub fn out_location(&self) -> Result<linewatch_sink::Location, linewatch_sink::SinkError> {
        linewatch_sink::Location::from_path_or_url(&self.sink.out)
    }

    /// Checks every key; pure. The error names the key, the value and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_pipeline_and_kafka()?;
        self.validate_decode_and_window()?;
        self.validate_model()?;
        self.validate_isotonic()?;
        self.validate_alert()?;
        self.validate_retrain()?;
        self.validate_sink_and_http()?;
        self.simulate
            .validate()
            .map_err(|e| invalid("simulate", e.to_string()))?;
        Ok(())
    }
}

/// The `window.channels` placeholder that `backtest::load_config` puts in when a pipeline file
/// lists none (the backtest takes the channels from each CSV).
pub const CHANNELS_FROM_DATA: &str = "from-csv";

fn at_least_one(key: &'static str, v: usize, why: &str) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(invalid(key, format!("0: must be at least 1 ({why})")));
    }
    Ok(())
}

/// `v` finite and `>= 0`.
fn non_negative(key: &'static str, v: f64) -> Result<(), ConfigError> {
    if !(v >= 0.0 && v.is_finite()) {
        return Err(invalid(key, format!("{v}: must be a finite number >= 0")));
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
