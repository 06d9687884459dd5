//! Sparkplug B payloads (Eclipse Sparkplug Specification 3.0.0), as MQTT-to-Kafka bridges
//! forward them: the protobuf payload as the Kafka message value and the MQTT topic
//! `spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]` as the message key (the
//! default of the HiveMQ Kafka extension and of Kafka Connect's MQTT source connectors).
//!
//! * The line is the group id (or `decode.fields.line_constant`); the machine is the device
//!   id (the edge node id for node messages), the edge node id, or the value of a string
//!   metric ([`SparkplugMachine`]).
//! * Metrics are read by name, or by alias once a birth certificate (NBIRTH, DBIRTH) has
//!   given the alias its name. Data messages may leave out a metric's datatype (the
//!   specification says they should): it is taken from the birth. Births carry current
//!   values too, and are read as readings.
//! * A metric's time is its own timestamp, else the payload's. The metrics of one message
//!   at one instant form one reading; a message may hold several instants (historical
//!   values).
//! * Integers are read exactly by their datatype (two's complement, sign- or zero-extended
//!   by the writer); a value that does not fit its datatype is refused. 64-bit integers
//!   beyond 2^53 round to the nearest f64, as the same number in JSON would.
//! * Non-numeric metrics (boolean, string, date-time, bytes, data sets, templates, arrays)
//!   and null metrics are skipped and counted ([`Skipped`]). Death, command and STATE
//!   messages carry no readings and are counted by their type.
//! * Everything else that cannot be read (not protobuf, not a Sparkplug topic, an alias or
//!   an integer datatype never seen in a birth, a non-finite float) refuses the message with
//!   a [`DecodeError`]; the runtime dead-letters it.

mod value;

use std::collections::{BTreeMap, HashMap};

use prost::Message as _;
use serde::{Deserialize, Serialize};

use super::parse::Fields;
use super::{DecodeError, DecodeLimits, Reading, common, error::echo};
use value::{Read, numeric};

/// The types compiled from `proto/sparkplug_b.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/sparkplug_b.rs"));
}

/// The first element of every Sparkplug B topic.
pub const NAMESPACE: &str = "spBv1.0";

/// Where the machine id of a Sparkplug B message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SparkplugMachine {
    /// The device id; for node messages (NBIRTH, NDATA) the edge node id. The default.
    #[default]
    Device,
    /// The edge node id for every message; a device's metrics become channels
    /// `<device_id>/<metric name>`.
    EdgeNode,
    /// The value of the string metric named by [`SparkplugMap::machine_metric`], remembered
    /// per device from the last message that carried it.
    Metric,
}

/// `[decode.sparkplug]`: how Sparkplug B messages name the machine.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SparkplugMap {
    /// Where the machine id comes from. Default `device`.
    pub machine: SparkplugMachine,
    /// With `machine = "metric"`: the name of the string metric holding the machine id.
    pub machine_metric: Option<String>,
}

impl SparkplugMap {
    /// Checks that `machine = "metric"` names its metric; the error says what is missing.
    pub fn validate(&self) -> Result<(), String> {
        match (self.machine, &self.machine_metric) {
            (SparkplugMachine::Metric, None) => {
                Err("machine = \"metric\" needs machine_metric, the metric's name".into())
            }
            (SparkplugMachine::Metric, Some(m)) if m.is_empty() => {
                Err("machine_metric is empty".into())
            }
            _ => Ok(()),
        }
    }
}

/// The Sparkplug message types (specification 6.2-6.4), from the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Edge node birth certificate.
    NBirth,
    /// Edge node death certificate.
    NDeath,
    /// Device birth certificate.
    DBirth,
    /// Device death certificate.
    DDeath,
    /// Edge node data.
    NData,
    /// Device data.
    DData,
    /// Command to an edge node.
    NCmd,
    /// Command to a device.
    DCmd,
    /// Host application state (`spBv1.0/STATE/<host_id>`).
    State,
}

impl MessageType {
    /// The topic's spelling (`NBIRTH`, ..., `STATE`): the metric label of the counts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NBirth => "NBIRTH",
            Self::NDeath => "NDEATH",
            Self::DBirth => "DBIRTH",
            Self::DDeath => "DDEATH",
            Self::NData => "NDATA",
            Self::DData => "DDATA",
            Self::NCmd => "NCMD",
            Self::DCmd => "DCMD",
            Self::State => "STATE",
        }
    }

    /// Every type, for pre-registering metric labels.
    pub const ALL: [MessageType; 9] = [
        Self::NBirth,
        Self::NDeath,
        Self::DBirth,
        Self::DDeath,
        Self::NData,
        Self::DData,
        Self::NCmd,
        Self::DCmd,
        Self::State,
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether messages of this type carry readings (births and data).
    pub fn carries_readings(self) -> bool {
        matches!(
            self,
            Self::NBirth | Self::DBirth | Self::NData | Self::DData
        )
    }
}

/// Metrics of one message that were skipped, not refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Booleans, strings, date-times, bytes, files, data sets, templates, arrays.
    pub non_numeric: u32,
    /// Metrics marked `is_null` or holding no value.
    pub null: u32,
}

/// One decoded Sparkplug B message.
#[derive(Debug, Clone, PartialEq)]
pub struct SparkplugMessage {
    /// Its type, from the topic.
    pub kind: MessageType,
    /// Its readings, one per instant, oldest first (none for deaths, commands, STATE).
    pub readings: Vec<Reading>,
    /// Metrics skipped.
    pub skipped: Skipped,
}

/// A parsed topic: `spBv1.0/<group>/<type>/<edge node>[/<device>]`.
struct Topic<'a> {
    group: &'a str,
    kind: MessageType,
    node: &'a str,
    device: Option<&'a str>,
}

fn parse_topic(key: Option<&[u8]>) -> Result<Topic<'_>, DecodeError> {
    let bad = |why: String| DecodeError::SparkplugTopic(why);
    let key = key.ok_or_else(|| bad("the message has no key (the MQTT topic)".into()))?;
    let key = std::str::from_utf8(key).map_err(|_| bad("the key is not UTF-8".into()))?;
    let parts: Vec<&str> = key.split('/').collect();
    if parts.first() != Some(&NAMESPACE) {
        return Err(bad(format!(
            "{:?} does not start with {NAMESPACE}/",
            echo(key)
        )));
    }
    if parts.get(1) == Some(&"STATE") {
        return Ok(Topic {
            group: "",
            kind: MessageType::State,
            node: "",
            device: None,
        });
    }
    let kind = parts
        .get(2)
        .and_then(|t| MessageType::parse(t))
        .ok_or_else(|| bad(format!("{:?} has no known message type", echo(key))))?;
    let device_message = matches!(
        kind,
        MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
    );
    let want = if device_message { 5 } else { 4 };
    if parts.len() != want || parts.iter().any(|p| p.is_empty()) {
        return Err(bad(format!(
            "{:?}: a {} topic has {want} non-empty elements",
            echo(key),
            kind.as_str()
        )));
    }
    Ok(Topic {
        group: parts[1],
        kind,
        node: parts[3],
        device: parts.get(4).copied(),
    })
}

/// What a birth certificate taught about one metric.
#[derive(Debug, Clone)]
struct Known {
    device: Option<String>,
    name: String,
    datatype: u32,
}

/// An edge node's session: aliases and datatypes from its births (specification 6.4.3:
/// aliases are unique per edge node, across its devices), and the remembered machine ids
/// (`machine = "metric"`), per device.
#[derive(Debug, Default)]
struct Session {
    by_alias: HashMap<u64, Known>,
    datatypes: HashMap<(Option<String>, String), u32>,
    machines: HashMap<Option<String>, String>,
}

/// Decodes Sparkplug B messages. Stateful: it remembers what each edge node's births said.
/// A replica only knows the births it has read: where data messages use aliases or leave
/// out integer datatypes, a replica that resumes after the birth refuses them
/// (`sparkplug_unknown_alias`, `sparkplug_unknown_datatype`) until the next birth.
#[derive(Debug)]
pub struct SparkplugDecoder {
    map: SparkplugMap,
    line_constant: Option<String>,
    limits: DecodeLimits,
    sessions: HashMap<(String, String), Session>,
}

impl SparkplugDecoder {
    /// A decoder; `map` must have passed [`SparkplugMap::validate`], `line_constant`
    /// [`super::FieldMap::validate`].
    pub fn new(map: SparkplugMap, line_constant: Option<String>, limits: DecodeLimits) -> Self {
        Self {
            map,
            line_constant,
            limits,
            sessions: HashMap::new(),
        }
    }

    /// Edge nodes with a session (births seen).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Decodes one message; `key` is the Kafka message key, the MQTT topic.
    ///
    /// # Errors
    /// `oversized`; `sparkplug_topic` (no key, not UTF-8, not a Sparkplug B topic);
    /// `not_protobuf`; `missing_field` (a metric without name or alias, no timestamp, no
    /// machine); `sparkplug_unknown_alias`; `sparkplug_unknown_datatype` (an integer whose
    /// datatype neither the message nor a birth gives); `value_out_of_range` (an integer
    /// beyond its datatype, or beyond [`super::MAX_ABS_VALUE`]); `non_finite_value`;
    /// `duplicate_channel` (one channel twice at one instant); `too_many_channels`; and the
    /// id and time checks of every format (`empty_id`, `line_too_long`,
    /// `timestamp_out_of_range`).
    pub fn decode(
        &mut self,
        bytes: &[u8],
        key: Option<&[u8]>,
    ) -> Result<SparkplugMessage, DecodeError> {
        if bytes.len() > self.limits.max_message_bytes {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                max: self.limits.max_message_bytes,
            });
        }
        let topic = parse_topic(key)?;
        let empty = |kind| SparkplugMessage {
            kind,
            readings: Vec::new(),
            skipped: Skipped::default(),
        };
        if !topic.kind.carries_readings() {
            // Deaths, commands and host state: nothing to read (STATE is not even protobuf).
            return Ok(empty(topic.kind));
        }
        let payload =
            proto::Payload::decode(bytes).map_err(|e| DecodeError::NotProtobuf(e.to_string()))?;
        let session_key = (topic.group.to_owned(), topic.node.to_owned());
        if topic.kind == MessageType::NBirth {
            // A new session of the edge node: its old aliases and datatypes are void.
            self.sessions.remove(&session_key);
        }
        let session = self.sessions.entry(session_key).or_default();
        let device = topic.device.map(str::to_owned);
        let birth = matches!(topic.kind, MessageType::NBirth | MessageType::DBirth);
        let mut skipped = Skipped::default();
        let mut at: BTreeMap<i64, Vec<(String, f64)>> = BTreeMap::new();
        for m in &payload.metrics {
            let (name, dev) = match (&m.name, m.alias) {
                (Some(n), _) if !n.is_empty() => (n.clone(), device.clone()),
                (_, Some(alias)) => match session.by_alias.get(&alias) {
                    Some(k) => (k.name.clone(), k.device.clone()),
                    None => return Err(DecodeError::UnknownAlias { alias }),
                },
                _ => return Err(DecodeError::MissingField("name")),
            };
            let datatype = match m.datatype.filter(|&t| t != 0) {
                Some(t) => {
                    if birth {
                        session.datatypes.insert((dev.clone(), name.clone()), t);
                        if let Some(alias) = m.alias {
                            session.by_alias.insert(
                                alias,
                                Known {
                                    device: dev.clone(),
                                    name: name.clone(),
                                    datatype: t,
                                },
                            );
                        }
                    }
                    Some(t)
                }
                None => session
                    .datatypes
                    .get(&(dev.clone(), name.clone()))
                    .copied()
                    .or_else(|| {
                        m.alias
                            .and_then(|a| session.by_alias.get(&a))
                            .map(|k| k.datatype)
                    }),
            };
            if self.map.machine == SparkplugMachine::Metric
                && self.map.machine_metric.as_deref() == Some(name.as_str())
                && let Some(proto::payload::metric::Value::StringValue(s)) = &m.value
            {
                session.machines.insert(dev.clone(), s.clone());
            }
            let x = match numeric(datatype, m) {
                Read::Value(x) => x,
                Read::NotANumber => {
                    skipped.non_numeric += 1;
                    continue;
                }
                Read::Null => {
                    skipped.null += 1;
                    continue;
                }
                Read::UnknownDatatype => {
                    return Err(DecodeError::UnknownDatatype {
                        channel: echo(&name),
                    });
                }
                Read::NonFinite => {
                    return Err(DecodeError::NonFiniteValue {
                        channel: echo(&name),
                    });
                }
                Read::OutOfRange(value) => {
                    return Err(DecodeError::ValueOutOfRange {
                        channel: echo(&name),
                        value,
                    });
                }
            };
            let ts = m
                .timestamp
                .or(payload.timestamp)
                .ok_or(DecodeError::MissingField("ts"))?;
            let ts = i64::try_from(ts).map_err(|_| {
                DecodeError::BadTimestamp(format!("{ts} ms does not fit a signed 64-bit integer"))
            })?;
            let channel = match (self.map.machine, &dev) {
                (SparkplugMachine::EdgeNode, Some(d)) => format!("{d}/{name}"),
                _ => name,
            };
            at.entry(ts).or_default().push((channel, x));
        }
        let machine = match self.map.machine {
            SparkplugMachine::Device => topic.device.unwrap_or(topic.node).to_owned(),
            SparkplugMachine::EdgeNode => topic.node.to_owned(),
            SparkplugMachine::Metric => match session.machines.get(&device) {
                Some(m) => m.clone(),
                None if at.is_empty() => String::new(),
                None => return Err(DecodeError::MissingField("machine")),
            },
        };
        let line = self
            .line_constant
            .clone()
            .unwrap_or_else(|| topic.group.to_owned());
        let mut readings = Vec::with_capacity(at.len());
        for (ts_ms, values) in at {
            let fields = Fields {
                line: Some(line.as_str().into()),
                machine: Some(machine.as_str().into()),
                ts: Some(ts_ms),
                ..Fields::default()
            };
            common(&fields, &self.limits)?;
            if values.len() > self.limits.max_channels {
                return Err(DecodeError::TooManyChannels {
                    max: self.limits.max_channels,
                });
            }
            let mut seen = std::collections::HashSet::with_capacity(values.len());
            if let Some((c, _)) = values.iter().find(|(c, _)| !seen.insert(c.as_str())) {
                return Err(DecodeError::DuplicateChannel { channel: echo(c) });
            }
            readings.push(Reading {
                line: line.clone(),
                machine: machine.clone(),
                ts_ms,
                values,
            });
        }
        Ok(SparkplugMessage {
            kind: topic.kind,
            readings,
            skipped,
        })
    }
}

/// Encodes a reading as the DDATA message a Sparkplug B edge node `node` would publish for
/// device `reading.machine` of group `reading.line`, every value a Double with its name (no
/// aliases): the topic (the Kafka key a bridge writes) and the payload. For simulators and
/// tests; `seq` is the edge node's message counter (taken modulo 256).
pub fn encode_ddata(reading: &Reading, node: &str, seq: u64) -> (String, Vec<u8>) {
    let topic = format!(
        "{NAMESPACE}/{}/DDATA/{node}/{}",
        reading.line, reading.machine
    );
    let ts = u64::try_from(reading.ts_ms).ok();
    let payload = proto::Payload {
        timestamp: ts,
        seq: Some(seq % 256),
        metrics: reading
            .values
            .iter()
            .map(|(name, x)| proto::payload::Metric {
                name: Some(name.clone()),
                timestamp: ts,
                datatype: Some(proto::DataType::Double as u32),
                value: Some(proto::payload::metric::Value::DoubleValue(*x)),
                ..proto::payload::Metric::default()
            })
            .collect(),
        ..proto::Payload::default()
    };
    (topic, payload.encode_to_vec())
}

#[cfg(test)]
mod tests;
