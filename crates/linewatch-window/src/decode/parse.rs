//! The single-pass JSON walk: a hand-written serde visitor over the top-level
//! object that fills [`Fields`] and stops at the first problem. A reading of the plain shape
//! is read first by the byte scanner of `fast.rs`; whatever it does not accept comes here.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::echo;
use super::{DecodeError, DecodeLimits, MAX_ABS_VALUE};
use crate::timestamp::parse_rfc3339_ms;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Reading,
    Inspection,
}

#[derive(Default)]
pub(super) struct Fields<'a> {
    pub(super) line: Option<Cow<'a, str>>,
    pub(super) machine: Option<Cow<'a, str>>,
    pub(super) ts: Option<i64>,
    pub(super) values: Option<Vec<(Cow<'a, str>, f64)>>,
    pub(super) defect: Option<bool>,
}

pub(super) fn parse<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
    kind: Kind,
) -> Result<Fields<'a>, DecodeError> {
    let text = checked_text(bytes, limits)?;
    if kind == Kind::Reading
        && let Some(fields) = super::fast::scan_reading(text, limits)
    {
        return Ok(fields);
    }
    serde_walk(text, limits, kind)
}

/// The serde walk of a message's text: reads any message, or refuses it with the reason.
pub(super) fn serde_walk<'a>(
    text: &'a str,
    limits: &DecodeLimits,
    kind: Kind,
) -> Result<Fields<'a>, DecodeError> {
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

/// The message as text: within `max_message_bytes`, valid UTF-8.
pub(super) fn checked_text<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
) -> Result<&'a str, DecodeError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(DecodeError::Oversized {
            len: bytes.len(),
            max: limits.max_message_bytes,
        });
    }
    std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })
}

/// Records `err` as the decode result and aborts the serde walk.
fn fail<E: de::Error>(slot: &mut Option<DecodeError>, err: DecodeError) -> E {
    *slot = Some(err);
    E::custom("rejected")
}

/// A JSON value reduced to what the contract cares about. Arrays and objects
/// are skipped over (their content is not kept).
pub(super) enum Scalar<'a> {
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
    pub(super) fn kind(&self) -> &'static str {
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
pub(super) struct Key<'a>(pub(super) Cow<'a, str>);

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
            if x.abs() > MAX_ABS_VALUE {
                let channel = echo(&channel);
                let err = DecodeError::ValueOutOfRange { channel, value: x };
                return Err(fail(self.slot, err));
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
