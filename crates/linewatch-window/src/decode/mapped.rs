//! Readings in the shapes plants already produce: where line, machine, time and values sit in
//! a JSON message (RFC 6901 JSON Pointers), a constant line, the machine from the Kafka
//! message key, a declared timestamp format, and the long format of one value per message
//! (`{"asset":"P-104","tag":"temp","value":71.2,"time":...}`).
//!
//! The contract's own shape with its default mapping goes through the fast single-pass walk
//! ([`super::decode_reading_ref`]). The long format, with any mapping, goes through a
//! single-pass walk along its pointers (`walk.rs`: strings borrowed, no tree, duplicate keys
//! rejected anywhere); when every pointer is a top-level key, the byte scanner of
//! `fast/flat.rs` reads the plain messages first. Any other mapping (and a long-format
//! pointer into an array) parses the message into a JSON tree (rejecting duplicate keys
//! anywhere) and looks the fields up. All paths apply the same checks (ids, line length,
//! time range, finite values within [`MAX_ABS_VALUE`], channel count) and fail with the
//! same [`DecodeError`] reasons.

use std::borrow::Cow;

use serde_json::Value;

use super::convert::{number, scalar_of, string, timestamp};
use super::fast::scan_flat;
use super::parse::Fields;
use super::tree::parse_tree;
use super::walk::{Found, PointerTree, Slot, Walked, kind, walk};
use super::{DecodeError, DecodeLimits, Reading, ReadingRef, common};

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

    /// The pointers a message of the long (`long`) or wide format is read through, by field:
    /// line and machine unless they come from elsewhere (`line_constant`,
    /// `machine_from_key`), the time, and `tag` and `value` in the long format (the wide
    /// format's `values` is apart: an object).
    pub(super) fn pointers(&self, long: bool) -> Vec<(Slot, &str)> {
        let mut out = Vec::with_capacity(5);
        if self.line_constant.is_none() {
            out.push((Slot::Line, self.line.as_str()));
        }
        if !self.machine_from_key {
            out.push((Slot::Machine, self.machine.as_str()));
        }
        out.push((Slot::Ts, self.ts.as_str()));
        if long {
            out.push((Slot::Tag, self.tag.as_str()));
            out.push((Slot::Value, self.value.as_str()));
        }
        out
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

/// One value of the long format with its strings borrowed from the message where it can
/// ([`MappedDecoder::decode_long`]): what [`crate::LongAssembler::push_ref`] gathers without
/// allocating per value more than the channel name.
#[derive(Debug, Clone, PartialEq)]
pub struct LongValueRef<'a> {
    /// Production line id.
    pub line: Cow<'a, str>,
    /// Machine id.
    pub machine: Cow<'a, str>,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    /// Channel name.
    pub channel: Cow<'a, str>,
    /// Finite, with magnitude at most [`MAX_ABS_VALUE`].
    pub value: f64,
}

impl LongValueRef<'_> {
    /// The owned value.
    pub fn into_owned(self) -> LongValue {
        LongValue {
            line: self.line.into_owned(),
            machine: self.machine.into_owned(),
            ts_ms: self.ts_ms,
            channel: self.channel.into_owned(),
            value: self.value,
        }
    }
}

impl From<LongValue> for LongValueRef<'static> {
    fn from(v: LongValue) -> Self {
        Self {
            line: Cow::Owned(v.line),
            machine: Cow::Owned(v.machine),
            ts_ms: v.ts_ms,
            channel: Cow::Owned(v.channel),
            value: v.value,
        }
    }
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
    /// The long format's pointers, walked in one pass (`None`: parse a tree).
    walk: Option<PointerTree>,
    /// The walk's keys when every pointer is a top-level key: the byte scanner reads the
    /// plain messages first.
    flat: Option<Vec<(String, Slot)>>,
    /// `json` with the contract's own mapping: read by [`super::decode_reading_ref`].
    contract: bool,
}

impl MappedDecoder {
    /// A decoder of `json` or `json_long` (`sparkplug_b` is [`super::SparkplugDecoder`]'s;
    /// [`super::ReadingsDecoder`] picks); `map` must have passed [`FieldMap::validate`] (a bad
    /// pointer only ever finds nothing, reported as a missing field).
    pub fn new(format: Format, map: FieldMap, limits: DecodeLimits) -> Self {
        let walk = (format == Format::JsonLong)
            .then(|| PointerTree::new(&map.pointers(true)))
            .flatten();
        let flat = walk.as_ref().and_then(PointerTree::flat_keys);
        let contract = format == Format::Json && map.is_contract();
        Self {
            format,
            map,
            limits,
            walk,
            flat,
            contract,
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
        if let Some(reading) = self.decode_reading_ref(bytes) {
            return reading.map(|r| Decoded::Reading(r.into_owned()));
        }
        if self.format == Format::SparkplugB || self.format.is_avro() {
            return Err(DecodeError::NotJson(
                "sparkplug_b and avro are read by their own decoders (ReadingsDecoder)".into(),
            ));
        }
        if self.format == Format::JsonLong {
            return self
                .decode_long(bytes, key)
                .map(|v| Decoded::Value(v.into_owned()));
        }
        let root = parse_tree(bytes, &self.limits)?;
        self.decode_tree(&root, key)
    }

    /// Decodes one `json` message of the contract's own mapping borrowed
    /// ([`super::decode_reading_ref`]: strings borrowed from `bytes`, one allocation for the
    /// values); `None` for any other format or mapping (use [`MappedDecoder::decode`]).
    pub fn decode_reading_ref<'a>(
        &self,
        bytes: &'a [u8],
    ) -> Option<Result<ReadingRef<'a>, DecodeError>> {
        self.contract
            .then(|| super::decode_reading_ref(bytes, &self.limits))
    }

    /// Decodes one `json_long` message into a value that borrows its strings from `bytes`
    /// and `key` (escaped strings and `line_constant` are owned): one pass along the
    /// pointers, no JSON tree (a pointer into an array falls back to the tree).
    ///
    /// # Errors
    /// As [`MappedDecoder::decode`]; any other format is `not_json`.
    pub fn decode_long<'a>(
        &self,
        bytes: &'a [u8],
        key: Option<&'a [u8]>,
    ) -> Result<LongValueRef<'a>, DecodeError> {
        if self.format != Format::JsonLong {
            return Err(DecodeError::NotJson(format!(
                "decode_long reads json_long, not {:?}",
                self.format
            )));
        }
        if let Some(tree) = &self.walk {
            let text = super::parse::checked_text(bytes, &self.limits)?;
            let scanned = self.flat.as_deref().and_then(|keys| scan_flat(text, keys));
            let walked = match scanned {
                Some(found) => Walked::Found(found),
                None => walk(text, tree)?,
            };
            if let Walked::Found(mut found) = walked {
                let (line, machine, ts_ms) = self.header(&mut found, key)?;
                return long_value(found, line, machine, ts_ms);
            }
        }
        let root = parse_tree(bytes, &self.limits)?;
        match self.decode_tree(&root, key)? {
            Decoded::Value(v) => Ok(v.into()),
            _ => Err(DecodeError::NotJson("not a long-format value".into())),
        }
    }

    /// Reads the fields of a message already parsed into a tree (a JSON message, or an Avro
    /// record converted by [`super::AvroDecoder`]), as [`MappedDecoder::decode`] does.
    ///
    /// # Errors
    /// As [`MappedDecoder::decode`], after parsing.
    pub fn decode_tree(&self, root: &Value, key: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        let mut found: Found<'_> = Default::default();
        let long = self.format.is_long();
        for (slot, pointer) in self.map.pointers(long) {
            found[slot as usize] = root.pointer(pointer).map(scalar_of);
        }
        let values = if long {
            None
        } else {
            root.pointer(&self.map.values)
        };
        self.decode_found(found, values, key)
    }

    /// Line, machine and checked event time from the scalars found at the pointers (or the
    /// constant line and the message key, as configured).
    fn header<'a>(
        &self,
        found: &mut Found<'a>,
        key: Option<&'a [u8]>,
    ) -> Result<(Cow<'a, str>, Cow<'a, str>, i64), DecodeError> {
        let m = &self.map;
        let line: Cow<'a, str> = match &m.line_constant {
            Some(l) => Cow::Owned(l.clone()),
            None => string(found[Slot::Line as usize].take(), "line")?,
        };
        let machine: Cow<'a, str> = if m.machine_from_key {
            let key = key.ok_or(DecodeError::MissingField("machine"))?;
            let key = std::str::from_utf8(key).map_err(|_| DecodeError::WrongType {
                field: "machine",
                expected: "a UTF-8 message key",
                found: "binary key",
            })?;
            Cow::Borrowed(key)
        } else {
            string(found[Slot::Machine as usize].take(), "machine")?
        };
        let ts_value = found[Slot::Ts as usize]
            .take()
            .ok_or(DecodeError::MissingField("ts"))?;
        let fields = Fields {
            line: Some(line),
            machine: Some(machine),
            ts: Some(timestamp(ts_value, m.ts_format)?),
            ..Fields::default()
        };
        let ts_ms = common(&fields, &self.limits)?;
        Ok((
            fields.line.unwrap_or_default(),
            fields.machine.unwrap_or_default(),
            ts_ms,
        ))
    }

    /// Checks and converts the scalars found at the pointers (and the `values` object of the
    /// wide formats) into a reading or a long-format value.
    fn decode_found<'a>(
        &self,
        mut found: Found<'a>,
        values: Option<&Value>,
        key: Option<&'a [u8]>,
    ) -> Result<Decoded, DecodeError> {
        let (line, machine, ts_ms) = self.header(&mut found, key)?;
        match self.format {
            Format::Json | Format::Avro => {
                let values = match values {
                    None => return Err(DecodeError::MissingField("values")),
                    Some(Value::Object(o)) => o,
                    Some(other) => {
                        return Err(DecodeError::WrongType {
                            field: "values",
                            expected: "an object of channel -> number",
                            found: kind(&scalar_of(other)),
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
                    .map(|(c, v)| number(c, scalar_of(v)).map(|x| (c.clone(), x)))
                    .collect::<Result<_, _>>()?;
                Ok(Decoded::Reading(Reading {
                    line: line.into_owned(),
                    machine: machine.into_owned(),
                    ts_ms,
                    values,
                }))
            }
            Format::JsonLong | Format::AvroLong | Format::SparkplugB => {
                long_value(found, line, machine, ts_ms).map(|v| Decoded::Value(v.into_owned()))
            }
        }
    }
}

/// The channel and value of a long-format message, after its header.
fn long_value<'a>(
    mut found: Found<'a>,
    line: Cow<'a, str>,
    machine: Cow<'a, str>,
    ts_ms: i64,
) -> Result<LongValueRef<'a>, DecodeError> {
    let channel = string(found[Slot::Tag as usize].take(), "tag")?;
    let v = found[Slot::Value as usize]
        .take()
        .ok_or(DecodeError::MissingField("value"))?;
    let value = number(&channel, v)?;
    Ok(LongValueRef {
        line,
        machine,
        ts_ms,
        channel,
        value,
    })
}
