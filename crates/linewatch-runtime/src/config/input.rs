//! The input sections: `[pipeline]`, `[kafka]`, `[decode]` and `[window]`, with their checks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, PipelineConfig, invalid, topic_name};

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
    /// After this long without the broker's acknowledgement of an alert or a dead letter, the
    /// broker is reported unreachable (`linewatch_broker_up` 0, `/readyz` 503). Delivery itself
    /// never gives up: the pipeline waits out an outage of any length. Default "30s".
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// librdkafka properties passed through to every client (TLS, SASL, tuning), e.g.
    /// `"security.protocol" = "SASL_SSL"`. Default: none.
    pub properties: BTreeMap<String, String>,
    /// Re-key the readings by machine before windowing, for producers that do not key by
    /// machine (MQTT bridges, Connect sources with a null key): each replica also runs a
    /// re-keying stage that forwards every readings message to
    /// [`rekey_topic`](Self::rekey_topic), on the partition of its machine, and the windows
    /// are made from that topic. Not for `sparkplug_b` (aliases are per edge node).
    /// Default false.
    pub rekey: bool,
    /// The internal topic of the re-keyed readings (created with the readings topic's
    /// partition count and replication when missing). Default
    /// "<group id>-readings-repartition".
    pub rekey_topic: Option<String>,
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
            rekey: false,
            rekey_topic: None,
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
    /// Shape of a readings message: "json" (one reading per message, its channels in one
    /// object; the default), "json_long" (one channel value per message, gathered by
    /// machine and instant into readings), "sparkplug_b" (Sparkplug B protobuf payloads,
    /// the MQTT topic as the message key), "avro" or "avro_long" (Avro records in the
    /// Confluent wire format, schemas from `registry`, fields found as in json / json_long).
    pub format: linewatch_window::Format,
    /// Where the fields are, as JSON Pointers, and how the time is written: `line`,
    /// `line_constant`, `machine`, `machine_from_key`, `ts`, `ts_format` (contract, rfc3339,
    /// epoch_s, epoch_ms, epoch_us, epoch_ns), `values` (json), `tag` and `value` (json_long).
    /// Default: the contract (`/line`, `/machine`, `/ts`, `/values`).
    pub fields: linewatch_window::FieldMap,
    /// `sparkplug_b`: where the machine id comes from: `machine` = "device" (the device id,
    /// the edge node id for node messages; the default), "edge_node" (channels become
    /// `<device>/<metric>`) or "metric" (the string metric named by `machine_metric`). The
    /// line is the group id unless `fields.line_constant` is set.
    pub sparkplug: linewatch_window::SparkplugMap,
    /// `avro`, `avro_long`: the schema registry.
    pub registry: RegistrySection,
}

impl DecodeSection {
    /// The decoders' limits from these settings.
    pub fn limits(&self) -> linewatch_window::DecodeLimits {
        linewatch_window::DecodeLimits {
            max_message_bytes: self.max_message_bytes,
            min_ts_ms: self.min_ts.timestamp_millis(),
            max_ts_ms: self.max_ts.timestamp_millis(),
            max_channels: self.max_channels,
        }
    }
}

/// `[decode.registry]`: a Confluent-compatible schema registry (the Avro formats).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySection {
    /// Base URL, `http://` or `https://` (e.g. "http://schema-registry:8081"). Required by the
    /// Avro formats (`run` refuses to start without it; `demo` starts a registry of its own).
    pub url: Option<String>,
    /// HTTP basic-authentication user (Confluent Cloud: the API key).
    pub username: Option<String>,
    /// Its password (Confluent Cloud: the API secret); better set from the environment,
    /// `LINEWATCH__DECODE__REGISTRY__PASSWORD`.
    pub password: Option<String>,
    /// Longest wait for one schema (the consumer loop waits, once per new schema id).
    /// Default "5s".
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl std::fmt::Debug for RegistrySection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("RegistrySection")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for RegistrySection {
    fn default() -> Self {
        Self {
            url: None,
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
        }
    }
}

impl Default for DecodeSection {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            min_ts: chrono::DateTime::from_timestamp(946_684_800, 0).unwrap_or_default(),
            max_ts: chrono::DateTime::from_timestamp(4_102_444_800, 0).unwrap_or_default(),
            max_channels: 256,
            format: linewatch_window::Format::Json,
            fields: linewatch_window::FieldMap::default(),
            sparkplug: linewatch_window::SparkplugMap::default(),
            registry: RegistrySection::default(),
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
impl PipelineConfig {
    pub(super) fn validate_pipeline_and_kafka(&self) -> Result<(), ConfigError> {
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
        self.validate_rekey()?;
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

    /// `kafka.rekey` and `kafka.rekey_topic`.
    fn validate_rekey(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        if let Some(t) = &k.rekey_topic {
            topic_name("kafka.rekey_topic", t)?;
        }
        if !k.rekey {
            return Ok(());
        }
        let topic = self.rekey_topic();
        topic_name("kafka.rekey_topic", &topic)?;
        if [&k.readings_topic, &k.inspections_topic, &k.alerts_topic].contains(&&topic) {
            return Err(invalid(
                "kafka.rekey_topic",
                format!("{topic:?}: the same topic as another [kafka] topic"),
            ));
        }
        if self.decode.format == linewatch_window::Format::SparkplugB {
            return Err(invalid(
                "kafka.rekey",
                "true with decode.format = \"sparkplug_b\": Sparkplug aliases and births belong \
                 to an edge node, across its devices, so re-keying by machine would part them; \
                 key the bridge's Kafka messages by edge node (its MQTT topic) instead",
            ));
        }
        Ok(())
    }

    pub(super) fn validate_decode_and_window(&self) -> Result<(), ConfigError> {
        let d = &self.decode;
        if let Err((field, why)) = d.fields.validate() {
            let key = match field {
                "line" => "decode.fields.line",
                "line_constant" => "decode.fields.line_constant",
                "machine" => "decode.fields.machine",
                "ts" => "decode.fields.ts",
                "values" => "decode.fields.values",
                "tag" => "decode.fields.tag",
                "value" => "decode.fields.value",
                _ => "decode.fields",
            };
            return Err(invalid(key, why));
        }
        if let Err(why) = d.sparkplug.validate() {
            return Err(invalid("decode.sparkplug", why));
        }
        // Unset with an Avro format is refused when the pipeline starts (`linewatch demo`
        // brings its own registry).
        if let Some(u) = &d.registry.url {
            let host = u
                .strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"))
                .map(|rest| rest.split('/').next().unwrap_or_default());
            if host.is_none_or(str::is_empty) {
                return Err(invalid(
                    "decode.registry.url",
                    format!(
                        "{u:?}: must be http:// or https:// and a host, e.g. \"http://schema-registry:8081\""
                    ),
                ));
            }
        }
        if d.registry.timeout.is_zero() {
            return Err(invalid("decode.registry.timeout", "0s: must be positive"));
        }
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
        let wc = self.window_config();
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
}
