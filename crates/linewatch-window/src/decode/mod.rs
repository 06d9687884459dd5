//! Decoding of the reading and inspection message contracts.
//!
//! The decoder never builds a `serde_json::Value`. A plain reading (each field once,
//! strings without escapes, finite numbers) is read by a byte scanner (`fast.rs`); any other
//! message by the serde walk, which reads or refuses it: a hand-written visitor walks
//! the top-level object once, borrows strings from the input where they hold no
//! escapes, parses `ts` in place (RFC 3339 fast path, chrono fallback) and
//! collects `values` straight into a `Vec`. The first problem found stops the
//! walk and becomes a [`DecodeError`] with a stable [`DecodeError::reason`].
//!
//! # Layout
//!
//! * this file: the message contract ([`Reading`], [`ReadingRef`],
//!   [`Inspection`]) and the `decode_*` entry points;
//! * `limits.rs`: [`DecodeLimits`], and the bounds set by the output:
//!   [`MAX_ABS_VALUE`] (finite window statistics) and [`MAX_LINE_PATH_BYTES`] (the
//!   `line=` folder name);
//! * `error.rs`: [`DecodeError`] and its dead-letter reasons;
//! * `fast.rs`: the byte scanner of plain readings (the hot path), falling back to
//! * `parse.rs`: the JSON walk;
//! * `mapped.rs`: other shapes of readings: a field mapping by JSON Pointers, the machine from
//!   the message key, declared timestamp formats, one value per message ([`MappedDecoder`]);
//! * `sparkplug/`: Sparkplug B protobuf payloads ([`SparkplugDecoder`]);
//! * `avro.rs`: Avro in the Confluent wire format, schemas by id ([`AvroDecoder`]);
//! * `readings.rs`: the decoder of a readings topic in any format ([`ReadingsDecoder`]).

mod avro;
mod convert;
mod error;
mod fast;
mod limits;
mod mapped;
mod parse;
mod readings;
mod sparkplug;
mod tree;
mod walk;

use std::borrow::Cow;

pub use avro::{AvroDecoder, SchemaFetchError, SchemaSource};
pub use error::DecodeError;
pub use limits::{
    DecodeLimits, MAX_ABS_VALUE, MAX_LINE_PATH_BYTES, YEAR_2000_MS, YEAR_2100_MS, line_path_len,
};
pub use mapped::{Decoded, FieldMap, Format, LongValue, LongValueRef, MappedDecoder, TsFormat};
pub use readings::ReadingsDecoder;
pub use sparkplug::{
    MessageType, Skipped, SparkplugDecoder, SparkplugMachine, SparkplugMap, SparkplugMessage,
    encode_ddata as encode_sparkplug_ddata, proto as sparkplug_proto,
};

use parse::{Fields, Kind, parse};

/// One sensor reading, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Production line id (`"press-3"`).
    pub line: String,
    /// Machine id within the line (`"m-17"`).
    pub machine: String,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    /// Channel values in message order. Every value is finite, with magnitude
    /// at most [`MAX_ABS_VALUE`].
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
    /// Channel values in message order. Every value is finite, with magnitude
    /// at most [`MAX_ABS_VALUE`].
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
    // Percent-encoding at most triples a byte (plus 2 for Hive's default-partition name), so
    // a short line needs no count.
    if 3 * line.len() + 2 > MAX_LINE_PATH_BYTES
        && let encoded_bytes = line_path_len(line)
        && encoded_bytes > MAX_LINE_PATH_BYTES
    {
        return Err(DecodeError::LineTooLong {
            line: error::echo(line),
            encoded_bytes,
            max: MAX_LINE_PATH_BYTES,
        });
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

#[cfg(test)]
mod tests;
