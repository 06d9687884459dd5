//! Decoding of the reading and inspection message contracts.
//!
//! The decoder never builds a `serde_json::Value`: a hand-written visitor walks
//! the top-level object once, borrows strings from the input where they hold no
//! escapes, parses `ts` in place (RFC 3339 fast path, chrono fallback) and
//! collects `values` straight into a `Vec`. The first problem found stops the
//! walk and becomes a [`DecodeError`] with a stable [`DecodeError::reason`].

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::timestamp::parse_rfc3339_ms;

/// One sensor reading, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Production line id (`"press-3"`).
    pub line: String,
    /// Machine id within the line (`"m-17"`).
    pub machine: String,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    /// Channel values in message order. Every value is finite.
    pub values: Vec<(String, f64)>,
}

/// One sensor reading borrowing its strings from the message bytes where it can
/// (strings without escapes). This is what the hot path uses; convert with
/// [`ReadingRef::into_owned`] when the reading has to outlive the message.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingRef<'a> {
    /// Production line id.
    pub line: Cow<'a, str>,
    /// Machine id.
    pub machine: Cow<'a, str>,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    /// Channel values in message order. Every value is finite.
    pub values: Vec<(Cow<'a, str>, f64)>,
}

impl ReadingRef<'_> {
    /// Copies every borrowed string into an owned [`Reading`].
    pub fn into_owned(self) -> Reading {
        Reading {
            line: self.line.into_owned(),
            machine: self.machine.into_owned(),
            ts_ms: self.ts_ms,
            values: self
                .values
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v))
                .collect(),
        }
    }
}

/// An inspection label: whether the part made by `machine` around `ts_ms` was
/// defective. It applies to the window of that machine that contains `ts_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Production line id.
    pub line: String,
    /// Machine id.
    pub machine: String,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    /// `true` when the inspected part was defective.
    pub defect: bool,
}

/// Bounds a message must respect to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted message, in bytes.
    pub max_message_bytes: usize,
    /// Earliest accepted event time, epoch ms (inclusive).
    pub min_ts_ms: i64,
    /// Latest accepted event time, epoch ms (inclusive).
    pub max_ts_ms: i64,
    /// Most channels one reading may carry.
    pub max_channels: usize,
}

/// 2000-01-01T00:00:00Z in epoch milliseconds.
pub const YEAR_2000_MS: i64 = 946_684_800_000;
/// 2100-01-01T00:00:00Z in epoch milliseconds.
pub const YEAR_2100_MS: i64 = 4_102_444_800_000;

impl Default for DecodeLimits {
    /// 64 KiB messages, event times in [2000-01-01, 2100-01-01], 256 channels.
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            min_ts_ms: YEAR_2000_MS,
            max_ts_ms: YEAR_2100_MS,
            max_channels: 256,
        }
    }
}

/// Longest piece of message text (channel name, timestamp) echoed in an error.
const ECHO_MAX: usize = 64;

fn echo(s: &str) -> String {
    if s.len() <= ECHO_MAX {
        return s.to_owned();
    }
    let mut end = ECHO_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Why a message was rejected. Each way a message can be wrong has its own
/// variant; [`DecodeError::reason`] gives a short stable code for each.
///
/// When a message is wrong in several ways, the first problem met while
/// reading it (in document order) is reported; missing fields are checked
/// after the walk, in the order `line`, `machine`, `ts`, `values`/`defect`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is larger than [`DecodeLimits::max_message_bytes`].
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    Oversized {
        /// Message length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message is not valid UTF-8.
    #[error("message is not valid UTF-8 (first bad byte at {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The message is not well-formed JSON.
    #[error("message is not valid JSON: {0}")]
    NotJson(String),
    /// The message is JSON but not an object.
    #[error("message is a JSON {found}, expected an object")]
    NotAnObject {
        /// JSON kind found.
        found: &'static str,
    },
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field appears more than once.
    #[error("field `{0}` appears more than once")]
    DuplicateField(&'static str),
    /// A field has the wrong JSON type.
    #[error("field `{field}` is a {found}, expected {expected}")]
    WrongType {
        /// Field name.
        field: &'static str,
        /// What the contract asks for.
        expected: &'static str,
        /// JSON kind found.
        found: &'static str,
    },
    /// `line` or `machine` is the empty string.
    #[error("field `{0}` is empty")]
    EmptyId(&'static str),
    /// `values` is an empty object.
    #[error("`values` holds no channel")]
    EmptyValues,
    /// `values` holds more channels than [`DecodeLimits::max_channels`].
    #[error("`values` holds more than {max} channels")]
    TooManyChannels {
        /// The limit.
        max: usize,
    },
    /// The same channel appears twice in `values`.
    #[error("channel `{channel}` appears more than once in `values`")]
    DuplicateChannel {
        /// Channel name (truncated to 64 bytes).
        channel: String,
    },
    /// A channel value is `null` or a number too large for an f64.
    #[error("channel `{channel}` is null or not a finite number")]
    NonFiniteValue {
        /// Channel name (truncated to 64 bytes).
        channel: String,
    },
    /// A channel value is not a number (string, boolean, array, object).
    #[error("channel `{channel}` is a {found}, expected a number")]
    NonNumericValue {
        /// Channel name (truncated to 64 bytes).
        channel: String,
        /// JSON kind found.
        found: &'static str,
    },
    /// `ts` is a string that is not RFC 3339, or a number that is not an
    /// integer that fits in i64.
    #[error("bad timestamp: {0}")]
    BadTimestamp(String),
    /// `ts` is outside [`DecodeLimits::min_ts_ms`, `DecodeLimits::max_ts_ms`].
    #[error("timestamp {ts_ms} ms is outside the accepted range")]
    TimestampOutOfRange {
        /// The decoded timestamp.
        ts_ms: i64,
    },
}

impl DecodeError {
    /// Every code [`DecodeError::reason`] can return (for pre-registering
    /// metric label values).
    pub const REASONS: &'static [&'static str] = &[
        "oversized",
        "not_utf8",
        "not_json",
        "not_object",
        "missing_field",
        "duplicate_field",
        "wrong_type",
        "empty_id",
        "empty_values",
        "too_many_channels",
        "duplicate_channel",
        "non_finite_value",
        "non_numeric_value",
        "bad_timestamp",
        "timestamp_out_of_range",
    ];

    /// Short, stable, machine-readable code for the dead-letter header and
    /// metric labels (`snake_case`, one per variant).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::NotUtf8 { .. } => "not_utf8",
            Self::NotJson(_) => "not_json",
            Self::NotAnObject { .. } => "not_object",
            Self::MissingField(_) => "missing_field",
            Self::DuplicateField(_) => "duplicate_field",
            Self::WrongType { .. } => "wrong_type",
            Self::EmptyId(_) => "empty_id",
            Self::EmptyValues => "empty_values",
            Self::TooManyChannels { .. } => "too_many_channels",
            Self::DuplicateChannel { .. } => "duplicate_channel",
            Self::NonFiniteValue { .. } => "non_finite_value",
            Self::NonNumericValue { .. } => "non_numeric_value",
            Self::BadTimestamp(_) => "bad_timestamp",
            Self::TimestampOutOfRange { .. } => "timestamp_out_of_range",
        }
    }
}

/// Decodes a reading message into an owned [`Reading`].
pub fn decode_reading(bytes: &[u8], limits: &DecodeLimits) -> Result<Reading, DecodeError> {
    decode_reading_ref(bytes, limits).map(ReadingRef::into_owned)
}

/// Decodes a reading message, borrowing strings from `bytes` where possible.
/// This is the fast path: one allocation (the values vector) per message
/// unless strings hold JSON escapes.
pub fn decode_reading_ref<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
) -> Result<ReadingRef<'a>, DecodeError> {
    let fields = parse(bytes, limits, Kind::Reading)?;
    let ts_ms = common(&fields, limits)?;
    let values = fields.values.ok_or(DecodeError::MissingField("values"))?;
    if values.is_empty() {
        return Err(DecodeError::EmptyValues);
    }
    Ok(ReadingRef {
        line: fields.line.unwrap_or_default(),
        machine: fields.machine.unwrap_or_default(),
        ts_ms,
        values,
    })
}

/// Decodes an inspection message `{"line":..,"machine":..,"ts":..,"defect":bool}`.
pub fn decode_inspection(bytes: &[u8], limits: &DecodeLimits) -> Result<Inspection, DecodeError> {
    let fields = parse(bytes, limits, Kind::Inspection)?;
    let ts_ms = common(&fields, limits)?;
    let defect = fields.defect.ok_or(DecodeError::MissingField("defect"))?;
    Ok(Inspection {
        line: fields.line.unwrap_or_default().into_owned(),
        machine: fields.machine.unwrap_or_default().into_owned(),
        ts_ms,
        defect,
    })
}

/// Checks the fields both messages share; returns the timestamp.
fn common(f: &Fields<'_>, limits: &DecodeLimits) -> Result<i64, DecodeError> {
    let line = f.line.as_deref().ok_or(DecodeError::MissingField("line"))?;
    if line.is_empty() {
        return Err(DecodeError::EmptyId("line"));
    }
    let machine = f
        .machine
        .as_deref()
        .ok_or(DecodeError::MissingField("machine"))?;
    if machine.is_empty() {
        return Err(DecodeError::EmptyId("machine"));
    }
    let ts_ms = f.ts.ok_or(DecodeError::MissingField("ts"))?;
    if ts_ms < limits.min_ts_ms || ts_ms > limits.max_ts_ms {
        return Err(DecodeError::TimestampOutOfRange { ts_ms });
    }
    Ok(ts_ms)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reading,
    Inspection,
}

#[derive(Default)]
struct Fields<'a> {
    line: Option<Cow<'a, str>>,
    machine: Option<Cow<'a, str>>,
    ts: Option<i64>,
    values: Option<Vec<(Cow<'a, str>, f64)>>,
    defect: Option<bool>,
}

fn parse<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
    kind: Kind,
) -> Result<Fields<'a>, DecodeError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(DecodeError::Oversized {
            len: bytes.len(),
            max: limits.max_message_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let mut slot = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let result = de
        .deserialize_any(TopVisitor {
            kind,
            limits,
            slot: &mut slot,
        })
        .and_then(|fields| de.end().map(|()| fields));
    match result {
        Ok(fields) => Ok(fields),
        Err(e) => Err(slot.unwrap_or_else(|| DecodeError::NotJson(e.to_string()))),
    }
}

/// Records `err` as the decode result and aborts the serde walk.
fn fail<E: de::Error>(slot: &mut Option<DecodeError>, err: DecodeError) -> E {
    *slot = Some(err);
    E::custom("rejected")
}

/// A JSON value reduced to what the contract cares about. Arrays and objects
/// are skipped over (their content is not kept).
enum Scalar<'a> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "boolean",
            Self::I64(_) | Self::U64(_) => "integer",
            Self::F64(_) => "float",
            Self::Str(_) => "string",
            Self::Array => "array",
            Self::Object => "object",
        }
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

/// An object key, borrowed unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

struct TopVisitor<'s> {
    kind: Kind,
    limits: &'s DecodeLimits,
    slot: &'s mut Option<DecodeError>,
}

impl TopVisitor<'_> {
    fn not_object<T, E: de::Error>(self, found: &'static str) -> Result<T, E> {
        Err(fail(self.slot, DecodeError::NotAnObject { found }))
    }
}

const TS_EXPECTED: &str = "an RFC 3339 string or integer epoch milliseconds";

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        self.not_object("boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.not_object("integer")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.not_object("integer")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.not_object("float")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        self.not_object("string")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.not_object("null")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.not_object("array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut f = Fields::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "line" => {
                    let v = map.next_value::<Scalar<'de>>()?;
                    f.line = Some(id_field(self.slot, "line", f.line.is_some(), v)?);
                }
                "machine" => {
                    let v = map.next_value::<Scalar<'de>>()?;
                    f.machine = Some(id_field(self.slot, "machine", f.machine.is_some(), v)?);
                }
                "ts" => {
                    if f.ts.is_some() {
                        return Err(fail(self.slot, DecodeError::DuplicateField("ts")));
                    }
                    let v = map.next_value::<Scalar<'de>>()?;
                    f.ts = Some(ts_field(v).map_err(|e| fail(self.slot, e))?);
                }
                "values" if self.kind == Kind::Reading => {
                    if f.values.is_some() {
                        return Err(fail(self.slot, DecodeError::DuplicateField("values")));
                    }
                    f.values = Some(map.next_value_seed(ValuesSeed {
                        limits: self.limits,
                        slot: &mut *self.slot,
                    })?);
                }
                "defect" if self.kind == Kind::Inspection => {
                    if f.defect.is_some() {
                        return Err(fail(self.slot, DecodeError::DuplicateField("defect")));
                    }
                    match map.next_value::<Scalar<'de>>()? {
                        Scalar::Bool(b) => f.defect = Some(b),
                        other => {
                            let err = DecodeError::WrongType {
                                field: "defect",
                                expected: "a boolean",
                                found: other.kind(),
                            };
                            return Err(fail(self.slot, err));
                        }
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(f)
    }
}

fn id_field<'de, E: de::Error>(
    slot: &mut Option<DecodeError>,
    field: &'static str,
    seen: bool,
    v: Scalar<'de>,
) -> Result<Cow<'de, str>, E> {
    if seen {
        return Err(fail(slot, DecodeError::DuplicateField(field)));
    }
    match v {
        Scalar::Str(s) => Ok(s),
        other => Err(fail(
            slot,
            DecodeError::WrongType {
                field,
                expected: "a string",
                found: other.kind(),
            },
        )),
    }
}

fn ts_field(v: Scalar<'_>) -> Result<i64, DecodeError> {
    match v {
        Scalar::Str(s) => parse_rfc3339_ms(&s).map_err(DecodeError::BadTimestamp),
        Scalar::I64(ms) => Ok(ms),
        Scalar::U64(ms) => i64::try_from(ms).map_err(|_| {
            DecodeError::BadTimestamp(format!("{ms} does not fit in i64 milliseconds"))
        }),
        Scalar::F64(x) => Err(DecodeError::BadTimestamp(format!(
            "{x} is not an integer number of epoch milliseconds"
        ))),
        other => Err(DecodeError::WrongType {
            field: "ts",
            expected: TS_EXPECTED,
            found: other.kind(),
        }),
    }
}

struct ValuesSeed<'s> {
    limits: &'s DecodeLimits,
    slot: &'s mut Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for ValuesSeed<'_> {
    type Value = Vec<(Cow<'de, str>, f64)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValuesSeed<'_> {
    fn wrong<T, E: de::Error>(self, found: &'static str) -> Result<T, E> {
        Err(fail(
            self.slot,
            DecodeError::WrongType {
                field: "values",
                expected: "an object of channel -> number",
                found,
            },
        ))
    }
}

impl<'de> Visitor<'de> for ValuesSeed<'_> {
    type Value = Vec<(Cow<'de, str>, f64)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of channel -> number")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        self.wrong("boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.wrong("integer")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.wrong("integer")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.wrong("float")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        self.wrong("string")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.wrong("null")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.wrong("array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: Vec<(Cow<'de, str>, f64)> = Vec::with_capacity(8);
        while let Some(Key(channel)) = map.next_key::<Key<'de>>()? {
            if out.len() >= self.limits.max_channels {
                let max = self.limits.max_channels;
                return Err(fail(self.slot, DecodeError::TooManyChannels { max }));
            }
            let v = match map.next_value::<Scalar<'de>>() {
                Ok(v) => v,
                Err(e) => {
                    // serde_json rejects numbers that overflow f64 (`1e999`)
                    // with this message; that is a non-finite value, not bad
                    // JSON syntax.
                    if e.to_string().starts_with("number out of range") {
                        let channel = echo(&channel);
                        return Err(fail(self.slot, DecodeError::NonFiniteValue { channel }));
                    }
                    return Err(e);
                }
            };
            let x = match v {
                Scalar::F64(x) => x,
                Scalar::I64(x) => x as f64,
                Scalar::U64(x) => x as f64,
                Scalar::Null => f64::NAN,
                other => {
                    let err = DecodeError::NonNumericValue {
                        channel: echo(&channel),
                        found: other.kind(),
                    };
                    return Err(fail(self.slot, err));
                }
            };
            if !x.is_finite() {
                let channel = echo(&channel);
                return Err(fail(self.slot, DecodeError::NonFiniteValue { channel }));
            }
            if out.iter().any(|(c, _)| *c == channel) {
                let channel = echo(&channel);
                return Err(fail(self.slot, DecodeError::DuplicateChannel { channel }));
            }
            out.push((channel, x));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> DecodeLimits {
        DecodeLimits::default()
    }

    fn dec(s: &str) -> Result<Reading, DecodeError> {
        decode_reading(s.as_bytes(), &lim())
    }

    const GOOD: &str = r#"{"line":"press-3","machine":"m-17","ts":"2026-11-28T12:00:00.123Z","values":{"temp_c":71.2,"vib_rms":0.031}}"#;
    const GOOD_TS: i64 = 1_795_867_200_123;

    #[test]
    fn decodes_the_contract_example() {
        let r = dec(GOOD).unwrap();
        assert_eq!(r.line, "press-3");
        assert_eq!(r.machine, "m-17");
        assert_eq!(r.ts_ms, GOOD_TS);
        assert_eq!(
            r.values,
            vec![("temp_c".to_owned(), 71.2), ("vib_rms".to_owned(), 0.031)]
        );
        let expected = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00.123Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(expected, GOOD_TS);
    }

    #[test]
    fn borrowed_decode_borrows_plain_strings() {
        let r = decode_reading_ref(GOOD.as_bytes(), &lim()).unwrap();
        assert!(matches!(r.line, Cow::Borrowed(_)));
        assert!(matches!(r.machine, Cow::Borrowed(_)));
        assert!(matches!(r.values[0].0, Cow::Borrowed(_)));
        assert_eq!(r.into_owned(), dec(GOOD).unwrap());
    }

    #[test]
    fn integer_epoch_ms_timestamp() {
        let r = dec(r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1}}"#).unwrap();
        assert_eq!(r.ts_ms, GOOD_TS);
        assert_eq!(r.values, vec![("a".to_owned(), 1.0)]);
    }

    #[test]
    fn offsets_and_fractions() {
        let cases = [
            ("2026-11-28T14:00:00.123+02:00", GOOD_TS),
            ("2026-11-28T07:30:00.123-04:30", GOOD_TS),
            ("2026-11-28T12:00:00.1239Z", GOOD_TS),
            ("2026-11-28T12:00:00.123456789Z", GOOD_TS),
            ("2026-11-28T12:00:00Z", GOOD_TS - 123),
            ("2026-11-28t12:00:00.123z", GOOD_TS),
            ("2026-11-28T12:00:00.12Z", GOOD_TS - 3),
        ];
        for (ts, want) in cases {
            let msg = format!(r#"{{"line":"l","machine":"m","ts":"{ts}","values":{{"a":1}}}}"#);
            assert_eq!(dec(&msg).unwrap().ts_ms, want, "{ts}");
        }
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let msg = r#"{"li\u006ee":"press\"3","machine":"m\\17","ts":1795867200123,"values":{"t\u00e9mp":2.5,"b":-1e-3}}"#;
        let r = decode_reading_ref(msg.as_bytes(), &lim()).unwrap();
        assert_eq!(r.line, "press\"3");
        assert!(matches!(r.line, Cow::Owned(_)));
        assert_eq!(r.machine, "m\\17");
        assert_eq!(r.values[0].0, "t\u{e9}mp");
        assert_eq!(r.values[1].1, -1e-3);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let msg = r#"{"v":2,"extra":{"nested":[1,2,{"x":null}]},"line":"l","machine":"m","ts":1795867200123,"values":{"a":1},"defect":"whatever","tail":[true]}"#;
        let r = dec(msg).unwrap();
        assert_eq!(r.values.len(), 1);
    }

    #[test]
    fn number_forms_accepted() {
        let r =
            dec(r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":-3,"b":18446744073709551615,"c":1.5e3,"d":-0.0}}"#)
                .unwrap();
        let v: Vec<f64> = r.values.iter().map(|(_, x)| *x).collect();
        assert_eq!(v, vec![-3.0, 18446744073709551615.0, 1500.0, -0.0]);
    }

    fn err(s: &str) -> DecodeError {
        dec(s).unwrap_err()
    }

    #[test]
    fn oversized() {
        let l = DecodeLimits {
            max_message_bytes: 10,
            ..lim()
        };
        let e = decode_reading(GOOD.as_bytes(), &l).unwrap_err();
        assert_eq!(
            e,
            DecodeError::Oversized {
                len: GOOD.len(),
                max: 10
            }
        );
        assert_eq!(e.reason(), "oversized");
    }

    #[test]
    fn not_utf8() {
        let mut b = GOOD.as_bytes().to_vec();
        b[10] = 0xff;
        let e = decode_reading(&b, &lim()).unwrap_err();
        assert_eq!(e, DecodeError::NotUtf8 { valid_up_to: 10 });
        assert_eq!(e.reason(), "not_utf8");
    }

    #[test]
    fn not_json() {
        for s in [
            "",
            "{",
            r#"{"line":"l","#,
            r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1}} x"#,
            r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1,}}"#,
            r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":NaN}}"#,
            r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1"#,
        ] {
            let e = err(s);
            assert!(matches!(e, DecodeError::NotJson(_)), "{s}: {e:?}");
            assert_eq!(e.reason(), "not_json");
        }
    }

    #[test]
    fn not_an_object() {
        for (s, found) in [
            ("[1,2]", "array"),
            ("3", "integer"),
            ("\"x\"", "string"),
            ("null", "null"),
            ("true", "boolean"),
            ("1.5", "float"),
        ] {
            let e = err(s);
            assert_eq!(e, DecodeError::NotAnObject { found }, "{s}");
            assert_eq!(e.reason(), "not_object");
        }
    }

    #[test]
    fn missing_fields() {
        let cases = [
            (
                r#"{"machine":"m","ts":1795867200123,"values":{"a":1}}"#,
                "line",
            ),
            (
                r#"{"line":"l","ts":1795867200123,"values":{"a":1}}"#,
                "machine",
            ),
            (r#"{"line":"l","machine":"m","values":{"a":1}}"#, "ts"),
            (r#"{"line":"l","machine":"m","ts":1795867200123}"#, "values"),
            ("{}", "line"),
        ];
        for (s, field) in cases {
            let e = err(s);
            assert_eq!(e, DecodeError::MissingField(field), "{s}");
            assert_eq!(e.reason(), "missing_field");
        }
    }

    #[test]
    fn duplicate_fields() {
        let e = err(r#"{"line":"l","line":"k","machine":"m","ts":1795867200123,"values":{"a":1}}"#);
        assert_eq!(e, DecodeError::DuplicateField("line"));
        assert_eq!(e.reason(), "duplicate_field");
        let e = err(r#"{"line":"l","machine":"m","ts":1,"ts":2,"values":{"a":1}}"#);
        assert_eq!(e, DecodeError::DuplicateField("ts"));
        let e = err(
            r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1},"values":{"a":1}}"#,
        );
        assert_eq!(e, DecodeError::DuplicateField("values"));
    }

    #[test]
    fn wrong_types() {
        let cases = [
            (
                r#"{"line":3,"machine":"m","ts":1795867200123,"values":{"a":1}}"#,
                "line",
                "integer",
            ),
            (
                r#"{"line":"l","machine":null,"ts":1795867200123,"values":{"a":1}}"#,
                "machine",
                "null",
            ),
            (
                r#"{"line":"l","machine":["m"],"ts":1795867200123,"values":{"a":1}}"#,
                "machine",
                "array",
            ),
            (
                r#"{"line":"l","machine":"m","ts":true,"values":{"a":1}}"#,
                "ts",
                "boolean",
            ),
            (
                r#"{"line":"l","machine":"m","ts":{"ms":1},"values":{"a":1}}"#,
                "ts",
                "object",
            ),
            (
                r#"{"line":"l","machine":"m","ts":1795867200123,"values":[1,2]}"#,
                "values",
                "array",
            ),
            (
                r#"{"line":"l","machine":"m","ts":1795867200123,"values":null}"#,
                "values",
                "null",
            ),
            (
                r#"{"line":"l","machine":"m","ts":1795867200123,"values":"a=1"}"#,
                "values",
                "string",
            ),
        ];
        for (s, field, found) in cases {
            let e = err(s);
            match &e {
                DecodeError::WrongType {
                    field: f, found: k, ..
                } => {
                    assert_eq!((*f, *k), (field, found), "{s}");
                }
                other => panic!("{s}: {other:?}"),
            }
            assert_eq!(e.reason(), "wrong_type");
        }
    }

    #[test]
    fn empty_ids() {
        let e = err(r#"{"line":"","machine":"m","ts":1795867200123,"values":{"a":1}}"#);
        assert_eq!(e, DecodeError::EmptyId("line"));
        assert_eq!(e.reason(), "empty_id");
        let e = err(r#"{"line":"l","machine":"","ts":1795867200123,"values":{"a":1}}"#);
        assert_eq!(e, DecodeError::EmptyId("machine"));
    }

    #[test]
    fn empty_values() {
        let e = err(r#"{"line":"l","machine":"m","ts":1795867200123,"values":{}}"#);
        assert_eq!(e, DecodeError::EmptyValues);
        assert_eq!(e.reason(), "empty_values");
    }

    #[test]
    fn too_many_channels() {
        let l = DecodeLimits {
            max_channels: 2,
            ..lim()
        };
        let ok = r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1,"b":2}}"#;
        assert!(decode_reading(ok.as_bytes(), &l).is_ok());
        let s = r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1,"b":2,"c":3}}"#;
        let e = decode_reading(s.as_bytes(), &l).unwrap_err();
        assert_eq!(e, DecodeError::TooManyChannels { max: 2 });
        assert_eq!(e.reason(), "too_many_channels");
    }

    #[test]
    fn duplicate_channel() {
        let e = err(r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1,"a":2}}"#);
        assert_eq!(
            e,
            DecodeError::DuplicateChannel {
                channel: "a".into()
            }
        );
        assert_eq!(e.reason(), "duplicate_channel");
    }

    #[test]
    fn non_finite_values() {
        for v in ["1e999", "-1e999", "null", "123456789e400"] {
            let s = format!(
                r#"{{"line":"l","machine":"m","ts":1795867200123,"values":{{"a":1,"temp":{v}}}}}"#
            );
            let e = err(&s);
            assert_eq!(
                e,
                DecodeError::NonFiniteValue {
                    channel: "temp".into()
                },
                "{v}"
            );
            assert_eq!(e.reason(), "non_finite_value");
        }
    }

    #[test]
    fn non_numeric_values() {
        for (v, found) in [
            ("\"1.5\"", "string"),
            ("true", "boolean"),
            ("[1]", "array"),
            ("{\"x\":1}", "object"),
        ] {
            let s = format!(
                r#"{{"line":"l","machine":"m","ts":1795867200123,"values":{{"temp":{v}}}}}"#
            );
            let e = err(&s);
            assert_eq!(
                e,
                DecodeError::NonNumericValue {
                    channel: "temp".into(),
                    found
                },
                "{v}"
            );
            assert_eq!(e.reason(), "non_numeric_value");
        }
    }

    #[test]
    fn bad_timestamps() {
        for ts in [
            "\"yesterday\"",
            "\"2026-11-28 12:00:00\"",
            "\"2026-13-28T12:00:00Z\"",
            "\"2026-02-30T12:00:00Z\"",
            "\"2026-11-28T24:00:00Z\"",
            "\"2026-11-28T12:00:00\"",
            "\"\"",
            "1795867200123.5",
            "1e12",
            "18446744073709551615",
        ] {
            let s = format!(r#"{{"line":"l","machine":"m","ts":{ts},"values":{{"a":1}}}}"#);
            let e = err(&s);
            assert!(matches!(e, DecodeError::BadTimestamp(_)), "{ts}: {e:?}");
            assert_eq!(e.reason(), "bad_timestamp");
        }
    }

    #[test]
    fn timestamp_out_of_range() {
        for (ts, ms) in [
            ("0", 0),
            ("-5", -5),
            ("\"1999-12-31T23:59:59.999Z\"", YEAR_2000_MS - 1),
            ("\"2100-01-01T00:00:00.001Z\"", YEAR_2100_MS + 1),
        ] {
            let s = format!(r#"{{"line":"l","machine":"m","ts":{ts},"values":{{"a":1}}}}"#);
            let e = err(&s);
            assert_eq!(e, DecodeError::TimestampOutOfRange { ts_ms: ms }, "{ts}");
            assert_eq!(e.reason(), "timestamp_out_of_range");
        }
        for ts in ["\"2000-01-01T00:00:00Z\"", "\"2100-01-01T00:00:00Z\""] {
            let s = format!(r#"{{"line":"l","machine":"m","ts":{ts},"values":{{"a":1}}}}"#);
            assert!(dec(&s).is_ok(), "{ts}");
        }
    }

    #[test]
    fn error_text_is_bounded() {
        let long = "x".repeat(10_000);
        let s = format!(
            r#"{{"line":"l","machine":"m","ts":1795867200123,"values":{{"{long}":null}}}}"#
        );
        let e = err(&s);
        assert!(e.to_string().len() < 200);
    }

    #[test]
    fn every_reason_is_listed() {
        let all = [
            DecodeError::Oversized { len: 1, max: 0 },
            DecodeError::NotUtf8 { valid_up_to: 0 },
            DecodeError::NotJson(String::new()),
            DecodeError::NotAnObject { found: "array" },
            DecodeError::MissingField("line"),
            DecodeError::DuplicateField("line"),
            DecodeError::WrongType {
                field: "line",
                expected: "",
                found: "",
            },
            DecodeError::EmptyId("line"),
            DecodeError::EmptyValues,
            DecodeError::TooManyChannels { max: 1 },
            DecodeError::DuplicateChannel {
                channel: "a".into(),
            },
            DecodeError::NonFiniteValue {
                channel: "a".into(),
            },
            DecodeError::NonNumericValue {
                channel: "a".into(),
                found: "",
            },
            DecodeError::BadTimestamp(String::new()),
            DecodeError::TimestampOutOfRange { ts_ms: 0 },
        ];
        let reasons: Vec<&str> = all.iter().map(DecodeError::reason).collect();
        assert_eq!(reasons, DecodeError::REASONS);
    }

    #[test]
    fn inspection_messages() {
        let ok = r#"{"line":"press-3","machine":"m-17","ts":"2026-11-28T12:00:00.123Z","defect":true,"values":7}"#;
        let i = decode_inspection(ok.as_bytes(), &lim()).unwrap();
        assert_eq!(
            i,
            Inspection {
                line: "press-3".into(),
                machine: "m-17".into(),
                ts_ms: GOOD_TS,
                defect: true
            }
        );
        let no = r#"{"line":"l","machine":"m","ts":1795867200123,"defect":false}"#;
        assert!(!decode_inspection(no.as_bytes(), &lim()).unwrap().defect);
        let missing = r#"{"line":"l","machine":"m","ts":1795867200123}"#;
        assert_eq!(
            decode_inspection(missing.as_bytes(), &lim()).unwrap_err(),
            DecodeError::MissingField("defect")
        );
        let wrong = r#"{"line":"l","machine":"m","ts":1795867200123,"defect":1}"#;
        assert_eq!(
            decode_inspection(wrong.as_bytes(), &lim())
                .unwrap_err()
                .reason(),
            "wrong_type"
        );
        let empty = r#"{"line":"l","machine":"","ts":1795867200123,"defect":true}"#;
        assert_eq!(
            decode_inspection(empty.as_bytes(), &lim()).unwrap_err(),
            DecodeError::EmptyId("machine")
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode_reading(&b, &lim());
            let _ = decode_inspection(&b, &lim());
        }

        #[test]
        fn mutated_messages_never_panic(pos in 0usize..GOOD.len(), byte in proptest::num::u8::ANY) {
            let mut b = GOOD.as_bytes().to_vec();
            b[pos] = byte;
            let _ = decode_reading(&b, &lim());
            b.truncate(pos);
            let _ = decode_reading(&b, &lim());
        }
    }
}
