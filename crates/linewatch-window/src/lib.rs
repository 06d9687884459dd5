//! The windowing core of linewatch: pure decisions, no I/O.
//!
//! This crate turns raw reading messages into rows of window features:
//!
//! 1. [`decode_reading`] / [`decode_reading_ref`] / [`decode_inspection`]
//!    check a message against the contract (UTF-8 JSON, RFC 3339 or epoch-ms
//!    `ts`, finite values) and say precisely why one is refused
//!    ([`DecodeError::reason`] is the dead-letter header and metric label).
//! 2. [`Windower`] keeps per-machine event-time windows (tumbling or hopping,
//!    aligned to the epoch) with a per-machine watermark, allowed lateness,
//!    idle eviction and per-window `seq` bookkeeping so the caller commits
//!    only offsets whose windows are durable.
//!    Which windows hold a timestamp is decided in one place:
//!    [`window_start`] and [`windows_containing`].
//! 3. Each closed window carries per-channel features ([`ChannelFeatures`]:
//!    mean, population std, min, max, last, slope, count).
//! 4. [`FeatureSchema`] defines, in one place, the Arrow schema of the feature
//!    table and builds `RecordBatch`es (and dense row-major matrices).
//!
//! # Neighbours
//!
//! * `linewatch-runtime` wires this crate to Kafka: it decodes each message,
//!   dead-letters refusals, pushes readings with their offset as `seq`, calls
//!   [`Windower::flush_idle`] on a schedule, drains closed windows into
//!   batches, and commits offsets below [`Windower::min_unemitted_seq`] once
//!   the batches are durable.
//! * `linewatch-models` consumes the `RecordBatch` (or [`DenseFeatures`]) to
//!   score windows; `linewatch-sink` writes the same columns to Parquet.
//!
//! Nothing here reads a clock, a file or a socket, and no input panics.

mod assemble;
mod batch;
mod decode;
mod features;
mod timestamp;
mod window;

pub use assemble::{Assembled, LongAssembler};
pub use batch::{
    BatchError, COL_LINE, COL_MACHINE, COL_N_READINGS, COL_WINDOW_END, COL_WINDOW_START,
    DenseFeatures, FEATURE_SEPARATOR, FeatureSchema, N_KEY_COLUMNS,
};
pub use decode::{
    AvroDecoder, DecodeError, DecodeLimits, Decoded, FieldMap, Format, Inspection, LongValue,
    LongValueRef, MAX_ABS_VALUE, MAX_LINE_PATH_BYTES, MappedDecoder, MessageType, Reading,
    ReadingRef, ReadingsDecoder, SchemaFetchError, SchemaSource, Skipped, SparkplugDecoder,
    SparkplugMachine, SparkplugMap, SparkplugMessage, TsFormat, YEAR_2000_MS, YEAR_2100_MS,
    decode_inspection, decode_reading, decode_reading_ref, encode_sparkplug_ddata, line_path_len,
    sparkplug_proto,
};
pub use features::{ChannelFeatures, Stat};
pub use timestamp::parse_rfc3339_ms;
pub use window::{
    ChannelSet, CloseReason, ClosedWindow, ConfigError, Lateness, MAX_ABS_TS_MS, MAX_DURATION_MS,
    MAX_WINDOWS_PER_READING, MachineKey, PushError, PushOutcome, WindowConfig, WindowStats,
    Windower, window_start, windows_containing,
};
