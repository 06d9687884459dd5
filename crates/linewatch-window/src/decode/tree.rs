//! A message parsed into a `serde_json::Value` tree for the mappings the one-pass walks do
//! not serve, rejecting a key that an object holds twice (a tree would keep the last).

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::convert::scalar_of;
use super::walk::kind;
use super::{DecodeError, DecodeLimits};

/// The message as a JSON tree: size, UTF-8, syntax, an object at the top, no key twice.
pub(super) fn parse_tree(bytes: &[u8], limits: &DecodeLimits) -> Result<Value, DecodeError> {
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
            found: kind(&scalar_of(&other)),
        }),
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
