//! The decoder of a readings topic, whatever its [`Format`].

use super::{
    DecodeError, DecodeLimits, Decoded, FieldMap, Format, MappedDecoder, SparkplugDecoder,
    SparkplugMap,
};

/// Decodes the messages of one readings topic: `json` and `json_long` by a field mapping
/// ([`MappedDecoder`]), `sparkplug_b` by [`SparkplugDecoder`] (which keeps the births it
/// has read, hence `&mut self`).
#[derive(Debug)]
pub enum ReadingsDecoder {
    /// `json`, `json_long`.
    Mapped(MappedDecoder),
    /// `sparkplug_b`.
    Sparkplug(SparkplugDecoder),
}

impl ReadingsDecoder {
    /// The decoder for `format`; `fields` and `sparkplug` must have passed their
    /// `validate`. A Sparkplug decoder uses only `fields.line_constant` of the mapping.
    pub fn new(
        format: Format,
        fields: FieldMap,
        sparkplug: SparkplugMap,
        limits: DecodeLimits,
    ) -> Self {
        match format {
            Format::SparkplugB => Self::Sparkplug(SparkplugDecoder::new(
                sparkplug,
                fields.line_constant,
                limits,
            )),
            Format::Json | Format::JsonLong => {
                Self::Mapped(MappedDecoder::new(format, fields, limits))
            }
        }
    }

    /// Decodes one message; `key` is the Kafka message key.
    ///
    /// # Errors
    /// As [`MappedDecoder::decode`] or [`SparkplugDecoder::decode`].
    pub fn decode(&mut self, bytes: &[u8], key: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        match self {
            Self::Mapped(d) => d.decode(bytes, key),
            Self::Sparkplug(d) => d.decode(bytes, key).map(Decoded::Sparkplug),
        }
    }
}
