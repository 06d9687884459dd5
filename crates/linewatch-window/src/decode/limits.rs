//! The bounds a message must respect ([`DecodeLimits`]) and their defaults.

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
