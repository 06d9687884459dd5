//! Readings in the shapes plants already produce: where line, machine, time and values sit in
//! a JSON message (RFC 6901 JSON Pointers), a constant line, the machine from the Kafka
//! message key, a declared timestamp format, and the long format of one value per message
//! (`{"asset":"P-104","tag":"temp","value":71.2,"time":...}`).
//!
//! The contract's own shape with its default mapping goes through the fast single-pass walk
//! ([`super::decode_reading_ref`]); any other mapping parses the message into a JSON tree
//! (rejecting duplicate keys anywhere, as the fast path does) and looks the fields up. Both
//! paths apply the same checks (ids, line length, time range, finite values within
//! [`MAX_ABS_VALUE`], channel count) and fail with the same [`DecodeError`] reasons.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::parse::Fields;
use super::{DecodeError, DecodeLimits, MAX_ABS_VALUE, Reading, common, decode_reading};
use crate::timestamp::parse_rfc3339_ms;

/// The shape of a readings message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One message per reading, its channels in one object (`values`). The default.
    #[default]
    Json,
    /// One message per channel value (`tag`, `value`); values of one machine at one instant
    /// are assembled into one reading ([`crate::LongAssembler`]).
    JsonLong,
    /// Sparkplug B protobuf payloads, the MQTT topic as the message key
    /// ([`super::SparkplugDecoder`]).
    SparkplugB,
    /// Avro records in the Confluent wire format (magic byte 0, schema id, Avro binary), the
    /// schema from a schema registry; fields found as in `json` ([`super::AvroDecoder`]).
    Avro,
    /// Avro records of one channel value each; fields found as in `json_long`.
    AvroLong,
}

impl Format {
    /// Whether a reading comes as one value per message (gathered by
    /// [`crate::LongAssembler`]).
    pub fn is_long(self) -> bool {
        matches!(self, Self::JsonLong | Self::AvroLong)
    }

    /// Whether messages are Avro with a schema registry.
    pub fn is_avro(self) -> bool {
        matches!(self, Self::Avro | Self::AvroLong)
    }
}

/// How the timestamp is written. Declared, never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsFormat {
    /// The contract's: an RFC 3339 string, or an integer of epoch milliseconds.
    #[default]
    Contract,
    /// An RFC 3339 string only.
    Rfc3339,
    /// Epoch seconds, integer or decimal (rounded to the millisecond).
    EpochS,
    /// Epoch milliseconds, an integer.
    EpochMs,
    /// Epoch microseconds, an integer (truncated to the millisecond).
    EpochUs,
    /// Epoch nanoseconds, an integer (truncated to the millisecond).
    EpochNs,
}

/// Where a readings message keeps its fields. Pointers follow RFC 6901 (`/values`,
/// `/meta/asset`, `/a~1b` for the key `a/b`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMap {
    /// Pointer to the line id. Default `/line`; ignored when `line_constant` is set.
    pub line: String,
    /// A line id for every message (for topics that carry none).
    pub line_constant: Option<String>,
    /// Pointer to the machine id. Default `/machine`; ignored with `machine_from_key`.
    pub machine: String,
    /// Take the machine id from the Kafka message key (UTF-8).
    pub machine_from_key: bool,
    /// Pointer to the event time. Default `/ts`.
    pub ts: String,
    /// How the event time is written. Default `contract`.
    pub ts_format: TsFormat,
    /// `json`: pointer to the object of channel -> number. Default `/values`.
    pub values: String,
    /// `json_long`: pointer to the channel name. Default `/tag`.
    pub tag: String,
    /// `json_long`: pointer to the number. Default `/value`.
    pub value: String,
}

impl Default for FieldMap {
    fn default() -> Self {
        Self {
            line: "/line".into(),
            line_constant: None,
            machine: "/machine".into(),
            machine_from_key: false,
            ts: "/ts".into(),
            ts_format: TsFormat::Contract,
            values: "/values".into(),
            tag: "/tag".into(),
            value: "/value".into(),
        }
    }
}

impl FieldMap {
    /// Whether this is the contract's own mapping (the fast path applies).
    pub fn is_contract(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the pointers and the constant line; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (name, p) in [
            ("line", &self.line),
            ("machine", &self.machine),
            ("ts", &self.ts),
            ("values", &self.values),
            ("tag", &self.tag),
            ("value", &self.value),
        ] {
            if !p.starts_with('/') {
                return Err((
                    name,
                    format!("{p:?} is not a JSON Pointer: it starts with '/', e.g. \"/{p}\""),
                ));
            }
        }
        if let Some(line) = &self.line_constant {
            // The checks every decoded line gets (not empty, fits a `line=` folder).
            let f = Fields {
                line: Some(Cow::Borrowed(line)),
                machine: Some(Cow::Borrowed("m")),
                ts: Some(0),
                ..Fields::default()
            };
            let any_time = DecodeLimits {
                min_ts_ms: i64::MIN,
                max_ts_ms: i64::MAX,
                ..DecodeLimits::default()
            };
            common(&f, &any_time).map_err(|e| ("line_constant", e.to_string()))?;
        }
        Ok(())
    }
}

/// One value of the long format: a channel of a machine at an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct LongValue {
    /// Production line id.
    pub line: String,
    /// Machine id.
    pub machine: String,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    /// Channel name.
    pub channel: String,
    /// Finite, with magnitude at most [`MAX_ABS_VALUE`].
    pub value: f64,
}

/// A decoded readings message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A whole reading (`json`).
    Reading(Reading),
    /// One channel value (`json_long`).
    Value(LongValue),
    /// A Sparkplug B message: readings at each of its instants, skipped metrics.
    Sparkplug(super::SparkplugMessage),
}

/// Decodes readings messages of one format and mapping.
#[derive(Debug, Clone)]
pub struct MappedDecoder {
    format: Format,
    map: FieldMap,
    limits: DecodeLimits,
}

impl MappedDecoder {
    /// A decoder of `json` or `json_long` (`sparkplug_b` is [`super::SparkplugDecoder`]'s;
    /// [`super::ReadingsDecoder`] picks); `map` must have passed [`FieldMap::validate`] (a bad
    /// pointer only ever finds nothing, reported as a missing field).
    pub fn new(format: Format, map: FieldMap, limits: DecodeLimits) -> Self {
        Self {
            format,
            map,
            limits,
        }
    }

    /// The format decoded.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Decodes one message; `key` is the Kafka message key.
    ///
    /// # Errors
    /// The message, by the same reasons as [`super::decode_reading`]; a key that is absent or
    /// not UTF-8 with `machine_from_key` is a missing or wrong-typed `machine`; keys that
    /// appear twice in one JSON object are `duplicate_key`.
    pub fn decode(&self, bytes: &[u8], key: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        if self.format == Format::Json && self.map.is_contract() {
            return decode_reading(bytes, &self.limits).map(Decoded::Reading);
        }
        if self.format == Format::SparkplugB || self.format.is_avro() {
            return Err(DecodeError::NotJson(
                "sparkplug_b and avro are read by their own decoders (ReadingsDecoder)".into(),
            ));
        }
        let root = parse_tree(bytes, &self.limits)?;
        self.decode_tree(&root, key)
    }

    /// Reads the fields of a message already parsed into a tree (a JSON message, or an Avro
    /// record converted by [`super::AvroDecoder`]), as [`MappedDecoder::decode`] does.
    ///
    /// # Errors
    /// As [`MappedDecoder::decode`], after parsing.
    pub fn decode_tree(&self, root: &Value, key: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        let m = &self.map;
        let line: Cow<'_, str> = match &m.line_constant {
            Some(l) => Cow::Borrowed(l.as_str()),
            None => Cow::Borrowed(string_at(root, &m.line, "line")?),
        };
        let machine: Cow<'_, str> = if m.machine_from_key {
            let key = key.ok_or(DecodeError::MissingField("machine"))?;
            let key = std::str::from_utf8(key).map_err(|_| DecodeError::WrongType {
                field: "machine",
                expected: "a UTF-8 message key",
                found: "binary key",
            })?;
            Cow::Borrowed(key)
        } else {
            Cow::Borrowed(string_at(root, &m.machine, "machine")?)
        };
        let ts_value = root.pointer(&m.ts).ok_or(DecodeError::MissingField("ts"))?;
        let fields = Fields {
            line: Some(line),
            machine: Some(machine),
            ts: Some(timestamp(ts_value, m.ts_format)?),
            ..Fields::default()
        };
        let ts_ms = common(&fields, &self.limits)?;
        let (line, machine) = (
            fields.line.unwrap_or_default().into_owned(),
            fields.machine.unwrap_or_default().into_owned(),
        );
        match self.format {
            Format::Json | Format::Avro => {
                let values = match root.pointer(&m.values) {
                    None => return Err(DecodeError::MissingField("values")),
                    Some(Value::Object(o)) => o,
                    Some(other) => {
                        return Err(DecodeError::WrongType {
                            field: "values",
                            expected: "an object of channel -> number",
                            found: kind(other),
                        });
                    }
                };
                if values.is_empty() {
                    return Err(DecodeError::EmptyValues);
                }
                if values.len() > self.limits.max_channels {
                    return Err(DecodeError::TooManyChannels {
                        max: self.limits.max_channels,
                    });
                }
                let values = values
                    .iter()
                    .map(|(c, v)| number(c, v).map(|x| (c.clone(), x)))
                    .collect::<Result<_, _>>()?;
                Ok(Decoded::Reading(Reading {
                    line,
                    machine,
                    ts_ms,
                    values,
                }))
            }
            Format::JsonLong | Format::AvroLong | Format::SparkplugB => {
                let channel = string_at(root, &m.tag, "tag")?.to_owned();
                let v = root
                    .pointer(&m.value)
                    .ok_or(DecodeError::MissingField("value"))?;
                let value = number(&channel, v)?;
                Ok(Decoded::Value(LongValue {
                    line,
                    machine,
                    ts_ms,
                    channel,
                    value,
                }))
            }
        }
    }
}

/// The message as a JSON tree: size, UTF-8, syntax, an object at the top, no key twice.
fn parse_tree(bytes: &[u8], limits: &DecodeLimits) -> Result<Value, DecodeError> {
    let text = super::parse::checked_text(bytes, limits)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let mut dup = None;
    let value = de
        .deserialize_any(StrictValue { dup: &mut dup })
        .and_then(|v| de.end().map(|()| v));
    let value = match (value, dup) {
        (_, Some(key)) => return Err(DecodeError::DuplicateKey { key }),
        (Err(e), None) => return Err(DecodeError::NotJson(e.to_string())),
        (Ok(v), None) => v,
    };
    match value {
        Value::Object(_) => Ok(value),
        other => Err(DecodeError::NotAnObject {
            found: kind(&other),
        }),
    }
}

/// A non-empty string at `pointer`.
fn string_at<'v>(
    root: &'v Value,
    pointer: &str,
    field: &'static str,
) -> Result<&'v str, DecodeError> {
    match root.pointer(pointer) {
        None => Err(DecodeError::MissingField(field)),
        Some(Value::String(s)) if s.is_empty() => Err(DecodeError::EmptyId(field)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(DecodeError::WrongType {
            field,
            expected: "a string",
            found: kind(other),
        }),
    }
}

/// A channel value: finite, within [`MAX_ABS_VALUE`].
fn number(channel: &str, v: &Value) -> Result<f64, DecodeError> {
    let channel = super::error::echo(channel);
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) if !x.is_finite() => Err(DecodeError::NonFiniteValue { channel }),
            Some(x) if x.abs() > MAX_ABS_VALUE => {
                Err(DecodeError::ValueOutOfRange { channel, value: x })
            }
            Some(x) => Ok(x),
            None => Err(DecodeError::NonFiniteValue { channel }),
        },
        Value::Null => Err(DecodeError::NonFiniteValue { channel }),
        other => Err(DecodeError::NonNumericValue {
            channel,
            found: kind(other),
        }),
    }
}

/// The event time in epoch milliseconds, read as `format` says.
fn timestamp(v: &Value, format: TsFormat) -> Result<i64, DecodeError> {
    let bad = |what: String| DecodeError::BadTimestamp(what);
    let integer = |n: &Number| {
        n.as_i64()
            .ok_or_else(|| bad(format!("{n} is not an integer that fits in i64")))
    };
    match (format, v) {
        (TsFormat::Contract | TsFormat::Rfc3339, Value::String(s)) => {
            parse_rfc3339_ms(s).map_err(DecodeError::BadTimestamp)
        }
        (TsFormat::Contract | TsFormat::EpochMs, Value::Number(n)) => integer(n),
        (TsFormat::EpochUs, Value::Number(n)) => integer(n).map(|us| us.div_euclid(1_000)),
        (TsFormat::EpochNs, Value::Number(n)) => integer(n).map(|ns| ns.div_euclid(1_000_000)),
        (TsFormat::EpochS, Value::Number(n)) => match n.as_i64() {
            Some(s) => s
                .checked_mul(1_000)
                .ok_or_else(|| bad(format!("{s} s is out of range"))),
            None => match n.as_f64() {
                Some(s) if s.is_finite() && (s * 1e3).abs() < 9.0e15 => {
                    Ok((s * 1e3).round() as i64)
                }
                _ => Err(bad(format!("{n} is not a number of epoch seconds"))),
            },
        },
        (format, other) => Err(DecodeError::WrongType {
            field: "ts",
            expected: match format {
                TsFormat::Contract => "an RFC 3339 string or integer epoch milliseconds",
                TsFormat::Rfc3339 => "an RFC 3339 string",
                _ => "a number",
            },
            found: kind(other),
        }),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Builds a [`Value`] like serde_json does, but stops at the first key an object holds twice
/// (a tree would silently keep the last one).
struct StrictValue<'s> {
    dup: &'s mut Option<String>,
}

impl<'de> de::DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue { dup: self.dup })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(StrictValue { dup: self.dup })?;
            if out.contains_key(&k) {
                *self.dup = Some(super::error::echo(&k));
                return Err(de::Error::custom("duplicate key"));
            }
            out.insert(k, v);
        }
        Ok(Value::Object(
            out.into_iter().collect::<Map<String, Value>>(),
        ))
    }
}
