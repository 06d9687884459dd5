//! When to cut a file: a pure policy the runtime consults for each Kafka partition's buffer.

use std::time::Duration;

/// Default [`RollPolicy::max_rows`]: one full row group.
pub const DEFAULT_ROLL_MAX_ROWS: usize = 128 * 1024;
/// Default [`RollPolicy::max_bytes`] (in-memory Arrow size of the buffered batches).
pub const DEFAULT_ROLL_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Default [`RollPolicy::max_age`]: bounds how stale the Parquet output (and the committed
/// offsets, which follow it) may be.
pub const DEFAULT_ROLL_MAX_AGE: Duration = Duration::from_secs(60);

/// Decides when buffered rows should be written as a file. A limit of 0 rows or bytes means
/// "roll as soon as anything is buffered".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollPolicy {
    /// Roll once this many rows are buffered.
    pub max_rows: usize,
    /// Roll once the buffered batches take this many bytes (e.g. the sum of
    /// `RecordBatch::get_array_memory_size`).
    pub max_bytes: usize,
    /// Roll once the oldest buffered row has waited this long.
    pub max_age: Duration,
}

impl Default for RollPolicy {
    fn default() -> Self {
        RollPolicy {
            max_rows: DEFAULT_ROLL_MAX_ROWS,
            max_bytes: DEFAULT_ROLL_MAX_BYTES,
            max_age: DEFAULT_ROLL_MAX_AGE,
        }
    }
}

impl RollPolicy {
    /// True when a non-empty buffer reached any limit. An empty buffer never rolls
    /// (there is nothing to write).
    pub fn should_roll(
        &self,
        buffered_rows: usize,
        buffered_bytes: usize,
        oldest_age: Duration,
    ) -> bool {
        buffered_rows > 0
            && (buffered_rows >= self.max_rows
                || buffered_bytes >= self.max_bytes
                || oldest_age >= self.max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_on_each_limit() {
        let p = RollPolicy {
            max_rows: 100,
            max_bytes: 1000,
            max_age: Duration::from_secs(10),
        };
        let young = Duration::from_secs(1);
        assert!(!p.should_roll(0, 0, Duration::from_secs(3600)));
        assert!(!p.should_roll(0, 5000, Duration::from_secs(3600)));
        assert!(!p.should_roll(99, 999, young));
        assert!(p.should_roll(100, 0, young));
        assert!(p.should_roll(1, 1000, young));
        assert!(p.should_roll(1, 0, Duration::from_secs(10)));
        assert!(!p.should_roll(1, 0, Duration::from_millis(9_999)));
    }

    #[test]
    fn defaults() {
        let p = RollPolicy::default();
        assert_eq!(p.max_rows, 131_072);
        assert!(!p.should_roll(10, 10_000, Duration::from_secs(1)));
        assert!(p.should_roll(10, 10_000, Duration::from_secs(60)));
    }
}
