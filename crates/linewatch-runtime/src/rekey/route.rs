//! The pure rules of re-keying: which partition of the re-keyed topic a machine's readings
//! go to, how a forwarded message names its source, and how the windowing side drops the
//! copies a replay of the re-keying stage forwards twice.

use std::collections::HashMap;

use linewatch_window::{Decoded, ReadingsDecoder};

/// Header of a re-keyed message: the readings partition it was read from (decimal text).
pub const SOURCE_PARTITION_HEADER: &str = "linewatch.source.partition";
/// Header of a re-keyed message: its offset in that readings partition (decimal text).
pub const SOURCE_OFFSET_HEADER: &str = "linewatch.source.offset";

/// The partition of the re-keyed topic, of `partitions` (> 0), that a machine's readings go
/// to: FNV-1a (64-bit) of `line`, a 0x1F separator and `machine`, modulo `partitions`. A
/// fixed function (not the standard library's hasher, which may change between Rust
/// releases), so replicas of different builds route a machine alike.
pub fn machine_partition(line: &str, machine: &str, partitions: i32) -> i32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let bytes = line
        .bytes()
        .chain(std::iter::once(0x1f))
        .chain(machine.bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    let n = u64::from(partitions.max(1).unsigned_abs());
    // `h % n` < n <= i32::MAX.
    i32::try_from(h % n).unwrap_or(0)
}

/// What routing needs of a readings message: its machine and its event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub line: String,
    pub machine: String,
    /// Event time, epoch ms.
    pub ts_ms: i64,
}

/// The machine and event time of a readings message, as the windowing side will decode
/// them; `None` when it cannot be decoded (it is forwarded anyway, to its source partition's
/// number, and dead-lettered there with the reason) or holds no reading (a Sparkplug birth).
pub fn route_of(
    decoder: &mut ReadingsDecoder,
    payload: &[u8],
    key: Option<&[u8]>,
) -> Option<Route> {
    let route = |line: String, machine: String, ts_ms| Route {
        line,
        machine,
        ts_ms,
    };
    if let Some(reading) = decoder.decode_reading_ref(payload) {
        return reading
            .ok()
            .map(|r| route(r.line.into_owned(), r.machine.into_owned(), r.ts_ms));
    }
    if let Some(long) = decoder.decode_long(payload, key) {
        return long
            .ok()
            .map(|v| route(v.line.into_owned(), v.machine.into_owned(), v.ts_ms));
    }
    match decoder.decode(payload, key).ok()? {
        Decoded::Reading(r) => Some(route(r.line, r.machine, r.ts_ms)),
        Decoded::Value(v) => Some(route(v.line, v.machine, v.ts_ms)),
        Decoded::Sparkplug(m) => m
            .readings
            .into_iter()
            .next()
            .map(|r| route(r.line, r.machine, r.ts_ms)),
    }
}

/// Where a re-keyed message was read from: its readings partition and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOffset {
    pub partition: i32,
    pub offset: i64,
}

impl SourceOffset {
    /// Reads the two source headers' values. `Ok(None)` when neither is present (a message
    /// that did not come through the re-keying stage).
    ///
    /// # Errors
    /// Only one of the two present, or one that is not a decimal number.
    pub fn from_headers(
        partition: Option<&[u8]>,
        offset: Option<&[u8]>,
    ) -> Result<Option<Self>, String> {
        fn number<T: std::str::FromStr>(name: &str, v: &[u8]) -> Result<T, String> {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("header {name} is not a decimal number"))
        }
        match (partition, offset) {
            (None, None) => Ok(None),
            (Some(p), Some(o)) => Ok(Some(Self {
                partition: number(SOURCE_PARTITION_HEADER, p)?,
                offset: number(SOURCE_OFFSET_HEADER, o)?,
            })),
            _ => Err(format!(
                "only one of the headers {SOURCE_PARTITION_HEADER} and {SOURCE_OFFSET_HEADER}"
            )),
        }
    }
}

/// Drops the copies of readings messages that the re-keying stage forwarded twice, for one
/// partition of the re-keyed topic.
///
/// The stage commits a readings offset only after the broker acknowledged every message
/// forwarded before it, so after a crash or a rebalance the next owner forwards again from
/// the committed offset: at-least-once. Within one re-keyed partition the messages of one
/// readings partition arrive in their source order, each owner's in turn (one producer per
/// owner, idempotent, so ordered), and an owner replays from an offset whose predecessors
/// the broker had already acknowledged. Then the first copy of each source offset to arrive
/// comes after only smaller offsets of its source partition, and every later copy after a
/// larger or equal one: keeping exactly the messages above the highest source offset seen so
/// far keeps each message once. Memory: one offset per readings partition.
#[derive(Debug, Default)]
pub struct ReplayFilter {
    highest: HashMap<i32, i64>,
}

impl ReplayFilter {
    /// Whether the message from `src` is its first copy here (`false`: a replayed copy, to
    /// drop). A message without source headers is always admitted.
    pub fn admit(&mut self, src: Option<SourceOffset>) -> bool {
        let Some(src) = src else {
            return true;
        };
        match self.highest.get_mut(&src.partition) {
            Some(h) if *h >= src.offset => false,
            Some(h) => {
                *h = src.offset;
                true
            }
            None => {
                self.highest.insert(src.partition, src.offset);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(partition: i32, offset: i64) -> Option<SourceOffset> {
        Some(SourceOffset { partition, offset })
    }

    #[test]
    fn a_machine_always_goes_to_the_same_partition_and_machines_spread() {
        let mut counts = [0usize; 3];
        for m in 0..300 {
            let machine = format!("m-{m}");
            let p = machine_partition("press-3", &machine, 3);
            assert_eq!(p, machine_partition("press-3", &machine, 3));
            counts[p as usize] += 1;
        }
        // 300 machines on 3 partitions: each gets a fair share (binomial sd ~8).
        assert!(
            counts.iter().all(|&c| (60..=140).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(machine_partition("l", "m", 1), 0);
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        let a = (0..64)
            .filter(|&n| machine_partition("ab", "c", n + 1) != machine_partition("a", "bc", n + 1))
            .count();
        assert!(a > 0);
    }

    #[test]
    fn the_partition_function_is_fixed() {
        // FNV-1a 64 of "L\x1fM" modulo 1,000,003 (computed independently, in Python), pinned
        // so that a change of the function (which would move machines between partitions
        // across an upgrade) fails here.
        assert_eq!(machine_partition("L", "M", 1_000_003), 397_075);
    }

    #[test]
    fn source_headers_are_read_exactly_or_refused() {
        assert_eq!(SourceOffset::from_headers(None, None), Ok(None));
        assert_eq!(
            SourceOffset::from_headers(Some(b"2"), Some(b"9000000000")),
            Ok(src(2, 9_000_000_000))
        );
        assert!(SourceOffset::from_headers(Some(b"2"), None).is_err());
        assert!(SourceOffset::from_headers(Some(b"x"), Some(b"1")).is_err());
        assert!(SourceOffset::from_headers(Some(b"1"), Some(b"1.5")).is_err());
    }

    #[test]
    fn a_replay_after_a_crash_is_dropped_and_new_offsets_pass() {
        let mut f = ReplayFilter::default();
        // Offsets 10..=14 of partition 0 forwarded, interleaved with partition 1.
        for o in 10..15 {
            assert!(f.admit(src(0, o)));
            assert!(f.admit(src(1, o * 2)));
        }
        // The stage crashed having committed 12: it forwards 12.. again.
        for o in 12..15 {
            assert!(!f.admit(src(0, o)), "offset {o} again");
        }
        assert!(f.admit(src(0, 15)));
        assert!(f.admit(None), "no headers: not from the re-keying stage");
    }

    /// Every interleaving of `a` and `b` that keeps each one's order.
    fn merges(a: &[i64], b: &[i64]) -> Vec<Vec<(char, i64)>> {
        match (a.split_first(), b.split_first()) {
            (None, None) => vec![vec![]],
            (Some((x, rest)), None) => merges(rest, b)
                .into_iter()
                .map(|mut m| {
                    m.insert(0, ('o', *x));
                    m
                })
                .collect(),
            (None, Some((y, rest))) => merges(a, rest)
                .into_iter()
                .map(|mut m| {
                    m.insert(0, ('n', *y));
                    m
                })
                .collect(),
            (Some((x, ra)), Some((y, rb))) => {
                let mut out = Vec::new();
                for mut m in merges(ra, b) {
                    m.insert(0, ('o', *x));
                    out.push(m);
                }
                for mut m in merges(a, rb) {
                    m.insert(0, ('n', *y));
                    out.push(m);
                }
                out
            }
        }
    }

    #[test]
    fn two_owners_interleaved_keep_each_offset_once() {
        // The old owner forwarded 5..=9 and committed 7 (5 and 6 acknowledged before the
        // commit, so before the new owner began); the new owner forwards 7..=12. Every
        // interleaving of the two ordered sequences allowed by that keeps each offset once.
        let old: Vec<i64> = (5..10).collect();
        let new: Vec<i64> = (7..13).collect();
        let mut tried = 0;
        for order in merges(&old, &new) {
            let first_new = order.iter().position(|(who, _)| *who == 'n');
            let acked_before = order
                .iter()
                .take(first_new.unwrap_or(order.len()))
                .filter(|(who, o)| *who == 'o' && *o < 7)
                .count();
            if acked_before < 2 {
                continue;
            }
            tried += 1;
            let mut f = ReplayFilter::default();
            let mut kept: Vec<i64> = order
                .iter()
                .filter(|(_, o)| f.admit(src(0, *o)))
                .map(|(_, o)| *o)
                .collect();
            kept.sort_unstable();
            assert_eq!(kept, (5..13).collect::<Vec<_>>(), "{order:?}");
        }
        assert!(tried >= 50, "only {tried} interleavings tried");
    }
}
