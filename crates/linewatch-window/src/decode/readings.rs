//! The decoder of a readings topic, whatever its [`Format`].

use super::{
    AvroDecoder, DecodeError, DecodeLimits, Decoded, FieldMap, Format, LongValueRef, MappedDecoder,
    ReadingRef, SchemaSource, SparkplugDecoder, SparkplugMap,
};

/// Decodes the messages of one readings topic: `json` and `json_long` by a field mapping
/// ([`MappedDecoder`]), `sparkplug_b` by [`SparkplugDecoder`] (which keeps the births it
/// has read, hence `&mut self`), `avro` and `avro_long` by [`AvroDecoder`].
#[derive(Debug)]
pub enum ReadingsDecoder {
    /// `json`, `json_long`.
    Mapped(MappedDecoder),
    /// `sparkplug_b`.
    Sparkplug(SparkplugDecoder),
    /// `avro`, `avro_long`.
    Avro(AvroDecoder),
}

impl ReadingsDecoder {
    /// The decoder for `format`; `fields` and `sparkplug` must have passed their
    /// `validate`. A Sparkplug decoder uses only `fields.line_constant` of the mapping.
    ///
    /// # Errors
    /// An Avro format without a schema source (a message that names the missing piece).
    pub fn new(
        format: Format,
        fields: FieldMap,
        sparkplug: SparkplugMap,
        schemas: Option<Box<dyn SchemaSource>>,
        limits: DecodeLimits,
    ) -> Result<Self, String> {
        Ok(match format {
            Format::SparkplugB => Self::Sparkplug(SparkplugDecoder::new(
                sparkplug,
                fields.line_constant,
                limits,
            )),
            Format::Avro | Format::AvroLong => {
                let source = schemas.ok_or("the avro formats need a schema registry")?;
                Self::Avro(AvroDecoder::new(format, fields, source, limits))
            }
            Format::Json | Format::JsonLong => {
                Self::Mapped(MappedDecoder::new(format, fields, limits))
            }
        })
    }

    /// Decodes one `json_long` message borrowed ([`MappedDecoder::decode_long`]); `None` for
    /// every other format (use [`ReadingsDecoder::decode`]).
    pub fn decode_long<'a>(
        &self,
        bytes: &'a [u8],
        key: Option<&'a [u8]>,
    ) -> Option<Result<LongValueRef<'a>, DecodeError>> {
        match self {
            Self::Mapped(d) if d.format() == Format::JsonLong => Some(d.decode_long(bytes, key)),
            _ => None,
        }
    }

    /// Decodes one `json` message of the contract's own mapping borrowed
    /// ([`MappedDecoder::decode_reading_ref`]); `None` for every other format and mapping
    /// (use [`ReadingsDecoder::decode`]).
    pub fn decode_reading_ref<'a>(
        &self,
        bytes: &'a [u8],
    ) -> Option<Result<ReadingRef<'a>, DecodeError>> {
        match self {
            Self::Mapped(d) => d.decode_reading_ref(bytes),
            _ => None,
        }
    }

    /// Decodes one message; `key` is the Kafka message key.
    ///
    /// # Errors
    /// As [`MappedDecoder::decode`], [`SparkplugDecoder::decode`] or
    /// [`AvroDecoder::decode`].
    pub fn decode(&mut self, bytes: &[u8], key: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        match self {
            Self::Mapped(d) => d.decode(bytes, key),
            Self::Sparkplug(d) => d.decode(bytes, key).map(Decoded::Sparkplug),
            Self::Avro(d) => d.decode(bytes, key),
        }
    }
}
