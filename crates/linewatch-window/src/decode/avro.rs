//! Avro readings in the Confluent wire format: byte 0 is the magic byte `0`, bytes 1-4 the
//! schema id (big-endian), the rest one Avro binary datum written with that schema. The
//! schema text comes from a [`SchemaSource`] (the runtime's is a schema-registry client) and
//! is parsed once per id. The record is turned into a JSON-like tree and its fields are found
//! by the same [`FieldMap`] as JSON messages (`/machine`, `/values`, `/tag`, ...), with the
//! same checks and reasons.
//!
//! Avro to tree: records and maps are objects, a union is its branch, `int`/`long` (and the
//! date and time logical types, in their own units) are integers, `float`/`double` numbers
//! (NaN and infinities are refused as `non_finite_value`), strings and enum symbols strings;
//! bytes, fixed, decimals, durations and UUIDs are not numbers (`non_numeric_value` where a
//! number is expected).

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use serde_json::{Map, Number, Value};

use super::{DecodeError, DecodeLimits, Decoded, FieldMap, Format, MappedDecoder};

/// Why a schema could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaFetchError {
    /// The registry does not know the id (HTTP 404): the message is bad, not the registry.
    #[error("no schema with this id: {0}")]
    NotFound(String),
    /// The registry could not be asked or did not answer usefully (network, 5xx, 401):
    /// the message may be fine; replay it from the dead letters once the registry is back.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The registry holds a schema linewatch cannot use (not Avro, or with references).
    #[error("unsupported schema: {0}")]
    Unsupported(String),
}

/// Where Avro writer schemas come from, by Confluent schema id: the JSON text of the schema.
/// Called once per id the decoder has not parsed yet (successes are cached by the decoder).
pub trait SchemaSource: Send + std::fmt::Debug {
    /// The schema text of `id`.
    ///
    /// # Errors
    /// [`SchemaFetchError`]: unknown id, registry unavailable, unsupported schema.
    fn schema(&mut self, id: u32) -> Result<String, SchemaFetchError>;
}

/// Decodes `avro` and `avro_long` messages.
#[derive(Debug)]
pub struct AvroDecoder {
    fields: MappedDecoder,
    source: Box<dyn SchemaSource>,
    schemas: HashMap<u32, Arc<Schema>>,
    limits: DecodeLimits,
}

impl AvroDecoder {
    /// A decoder of `format` (`avro` or `avro_long`; another format is read as `avro`) whose
    /// fields are found by `map` (passed [`FieldMap::validate`]), schemas from `source`.
    pub fn new(
        format: Format,
        map: FieldMap,
        source: Box<dyn SchemaSource>,
        limits: DecodeLimits,
    ) -> Self {
        let format = if format.is_long() {
            Format::AvroLong
        } else {
            Format::Avro
        };
        Self {
            fields: MappedDecoder::new(format, map, limits.clone()),
            source,
            schemas: HashMap::new(),
            limits,
        }
    }

    /// Schemas parsed so far.
    pub fn schemas(&self) -> usize {
        self.schemas.len()
    }

    /// Decodes one message; `key` is the Kafka message key.
    ///
    /// # Errors
    /// `oversized`; `not_avro` (no magic byte, too short, a datum that does not match its
    /// schema or leaves bytes over); `avro_unknown_schema`, `avro_schema_unavailable`,
    /// `avro_schema_unsupported` (from the source, or a schema that does not parse); then the
    /// reasons of the JSON formats for the fields.
    pub fn decode(&mut self, bytes: &[u8], key: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        if bytes.len() > self.limits.max_message_bytes {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                max: self.limits.max_message_bytes,
            });
        }
        let (id, mut datum) = match bytes {
            [0, a, b, c, d, rest @ ..] => (u32::from_be_bytes([*a, *b, *c, *d]), rest),
            [0, ..] => {
                return Err(DecodeError::NotAvro(
                    "shorter than its 5-byte header".into(),
                ));
            }
            [m, ..] => {
                return Err(DecodeError::NotAvro(format!(
                    "magic byte {m}, expected 0 (the Confluent wire format)"
                )));
            }
            [] => return Err(DecodeError::NotAvro("empty message".into())),
        };
        let schema = self.schema(id)?;
        let value = apache_avro::from_avro_datum(&schema, &mut datum, None)
            .map_err(|e| DecodeError::NotAvro(format!("schema {id}: {e}")))?;
        if !datum.is_empty() {
            return Err(DecodeError::NotAvro(format!(
                "schema {id}: {} bytes left after the record",
                datum.len()
            )));
        }
        let tree = to_tree(value);
        if !tree.is_object() {
            return Err(DecodeError::NotAnObject {
                found: "non-record Avro value",
            });
        }
        self.fields.decode_tree(&tree, key)
    }

    fn schema(&mut self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        if let Some(s) = self.schemas.get(&id) {
            return Ok(Arc::clone(s));
        }
        let text = self.source.schema(id).map_err(|e| match e {
            SchemaFetchError::NotFound(_) => DecodeError::AvroUnknownSchema { id },
            SchemaFetchError::Unavailable(why) => DecodeError::AvroSchemaUnavailable { id, why },
            SchemaFetchError::Unsupported(why) => DecodeError::AvroSchemaUnsupported { id, why },
        })?;
        let schema = Schema::parse_str(&text).map_err(|e| DecodeError::AvroSchemaUnsupported {
            id,
            why: e.to_string(),
        })?;
        let schema = Arc::new(schema);
        self.schemas.insert(id, Arc::clone(&schema));
        Ok(schema)
    }
}

/// An Avro value as a JSON-like tree (module docs).
fn to_tree(v: Avro) -> Value {
    let float = |x: f64| Number::from_f64(x).map_or(Value::Null, Value::Number);
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => Value::from(i),
        Avro::Long(i)
        | Avro::TimeMicros(i)
        | Avro::TimestampMillis(i)
        | Avro::TimestampMicros(i)
        | Avro::TimestampNanos(i)
        | Avro::LocalTimestampMillis(i)
        | Avro::LocalTimestampMicros(i)
        | Avro::LocalTimestampNanos(i) => Value::from(i),
        Avro::Float(x) => float(f64::from(x)),
        Avro::Double(x) => float(x),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s),
        Avro::Union(_, inner) => to_tree(*inner),
        Avro::Array(items) => Value::Array(items.into_iter().map(to_tree).collect()),
        Avro::Map(m) => Value::Object(m.into_iter().map(|(k, v)| (k, to_tree(v))).collect()),
        Avro::Record(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, to_tree(v)))
                .collect::<Map<String, Value>>(),
        ),
        // Bytes, fixed, decimals, durations, UUIDs: not readings. An array keeps them from
        // ever being read as a number or an id.
        _ => Value::Array(Vec::new()),
    }
}

#[cfg(test)]
mod tests;
