//! Why a message is refused: [`DecodeError`], one variant per way a message
//! can be wrong, and its stable [`DecodeError::reason`] (the dead-letter
//! header and metric label).

#[cfg(doc)]
use super::{DecodeLimits, MAX_ABS_VALUE, MAX_LINE_PATH_BYTES, line_path_len};

/// Longest piece of message text (channel name, timestamp) echoed in an error.
const ECHO_MAX: usize = 64;

pub(super) fn echo(s: &str) -> String {
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
    /// `line` cannot be written as one `line=<value>` path component of the
    /// output: its encoded form ([`line_path_len`]) is longer than
    /// [`MAX_LINE_PATH_BYTES`] bytes.
    #[error(
        "line `{line}` needs {encoded_bytes} bytes as a partition folder name, more than {max}"
    )]
    LineTooLong {
        /// The line (truncated to 64 bytes).
        line: String,
        /// Bytes of its encoded form.
        encoded_bytes: usize,
        /// The limit.
        max: usize,
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
    /// A channel value is a finite number whose magnitude exceeds
    /// [`MAX_ABS_VALUE`] (`f32::MAX` ≈ 3.4e38; e.g. the overflow sentinel
    /// `1e300`), beyond which window statistics would overflow.
    #[error("channel `{channel}` holds {value:e}, beyond the range of the features (|x| <= {max:e})", max = super::MAX_ABS_VALUE)]
    ValueOutOfRange {
        /// Channel name (truncated to 64 bytes).
        channel: String,
        /// The value.
        value: f64,
    },
    /// A channel value is not a number (string, boolean, array, object).
    #[error("channel `{channel}` is a {found}, expected a number")]
    NonNumericValue {
        /// Channel name (truncated to 64 bytes).
        channel: String,
        /// JSON kind found.
        found: &'static str,
    },
    /// A key appears twice in one JSON object of a message read through a field mapping
    /// (the contract's own fields are `duplicate_field`).
    #[error("key `{key}` appears more than once in one object")]
    DuplicateKey {
        /// The key (truncated to 64 bytes).
        key: String,
    },
    /// `ts` is a string that is not RFC 3339, or a number that is not an
    /// integer that fits in i64.
    #[error("bad timestamp: {0}")]
    BadTimestamp(String),
    /// A Sparkplug B message whose key is not a Sparkplug B topic
    /// (`spBv1.0/<group>/<type>/<edge node>[/<device>]`).
    #[error("not a Sparkplug B topic: {0}")]
    SparkplugTopic(String),
    /// A Sparkplug B payload that is not a valid protobuf `Payload`.
    #[error("payload is not a Sparkplug B protobuf message: {0}")]
    NotProtobuf(String),
    /// A Sparkplug B metric named only by an alias that no birth certificate read by this
    /// process defined.
    #[error("metric alias {alias} is not defined by a birth certificate seen so far")]
    UnknownAlias {
        /// The alias.
        alias: u64,
    },
    /// A Sparkplug B integer metric whose datatype neither the message nor a birth
    /// certificate gives: its sign cannot be read.
    #[error(
        "integer metric `{channel}` has no datatype here or in a birth certificate seen so far"
    )]
    UnknownDatatype {
        /// Metric name (truncated to 64 bytes).
        channel: String,
    },
    /// An Avro message that is not in the Confluent wire format, or whose datum does not
    /// read with its schema.
    #[error("not an Avro message of the Confluent wire format: {0}")]
    NotAvro(String),
    /// An Avro message whose schema id the registry does not know.
    #[error("schema id {id} is not in the schema registry")]
    AvroUnknownSchema {
        /// The schema id.
        id: u32,
    },
    /// An Avro message whose schema could not be fetched (registry down, refused
    /// credentials); the message itself may be fine.
    #[error("schema id {id} could not be fetched: {why}")]
    AvroSchemaUnavailable {
        /// The schema id.
        id: u32,
        /// What the registry client saw.
        why: String,
    },
    /// An Avro message whose schema linewatch cannot use (not Avro, references, does not
    /// parse).
    #[error("schema id {id} cannot be used: {why}")]
    AvroSchemaUnsupported {
        /// The schema id.
        id: u32,
        /// Why.
        why: String,
    },
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
        "duplicate_key",
        "wrong_type",
        "empty_id",
        "line_too_long",
        "empty_values",
        "too_many_channels",
        "duplicate_channel",
        "non_finite_value",
        "value_out_of_range",
        "non_numeric_value",
        "bad_timestamp",
        "timestamp_out_of_range",
        "sparkplug_topic",
        "not_protobuf",
        "sparkplug_unknown_alias",
        "sparkplug_unknown_datatype",
        "not_avro",
        "avro_unknown_schema",
        "avro_schema_unavailable",
        "avro_schema_unsupported",
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
            Self::DuplicateKey { .. } => "duplicate_key",
            Self::WrongType { .. } => "wrong_type",
            Self::EmptyId(_) => "empty_id",
            Self::LineTooLong { .. } => "line_too_long",
            Self::EmptyValues => "empty_values",
            Self::TooManyChannels { .. } => "too_many_channels",
            Self::DuplicateChannel { .. } => "duplicate_channel",
            Self::NonFiniteValue { .. } => "non_finite_value",
            Self::ValueOutOfRange { .. } => "value_out_of_range",
            Self::NonNumericValue { .. } => "non_numeric_value",
            Self::BadTimestamp(_) => "bad_timestamp",
            Self::TimestampOutOfRange { .. } => "timestamp_out_of_range",
            Self::SparkplugTopic(_) => "sparkplug_topic",
            Self::NotProtobuf(_) => "not_protobuf",
            Self::UnknownAlias { .. } => "sparkplug_unknown_alias",
            Self::UnknownDatatype { .. } => "sparkplug_unknown_datatype",
            Self::NotAvro(_) => "not_avro",
            Self::AvroUnknownSchema { .. } => "avro_unknown_schema",
            Self::AvroSchemaUnavailable { .. } => "avro_schema_unavailable",
            Self::AvroSchemaUnsupported { .. } => "avro_schema_unsupported",
        }
    }
}
