//! File names derived from the Kafka partition and offset range a file holds.

use std::fmt;

use crate::error::{Result, SinkError};

/// Identity of one output file: the Kafka partition and the inclusive offset range of the
/// records whose rows it holds.
///
/// Rendered as `part-{partition:05}-{first_offset:020}-{last_offset:020}.parquet`;
/// zero-padding makes lexical order equal numeric order. Rewriting the same range after a
/// crash produces the same name in the same partition directory and so *replaces* the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName {
    /// Kafka partition (>= 0).
    pub partition: i32,
    /// First offset held (>= 0).
    pub first_offset: i64,
    /// Last offset held, inclusive (>= `first_offset`).
    pub last_offset: i64,
}

const PREFIX: &str = "part-";
const SUFFIX: &str = ".parquet";

impl FileName {
    /// Builds a validated name.
    pub fn new(partition: i32, first_offset: i64, last_offset: i64) -> Result<Self> {
        let name = FileName {
            partition,
            first_offset,
            last_offset,
        };
        name.validate()?;
        Ok(name)
    }

    /// Checks partition >= 0, offsets >= 0 and first <= last.
    pub fn validate(&self) -> Result<()> {
        if self.partition < 0 || self.first_offset < 0 || self.first_offset > self.last_offset {
            return Err(SinkError::InvalidFileName(format!(
                "partition {} offsets {}..={} (need partition >= 0, 0 <= first <= last)",
                self.partition, self.first_offset, self.last_offset
            )));
        }
        Ok(())
    }

    /// Parses a file name written by [`FileName`]'s `Display`; `None` for anything else
    /// (foreign files, temporary files, non-canonical padding).
    pub fn parse(s: &str) -> Option<Self> {
        let body = s.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
        let mut it = body.split('-');
        let partition = parse_digits::<i32>(it.next()?)?;
        let first_offset = parse_digits::<i64>(it.next()?)?;
        let last_offset = parse_digits::<i64>(it.next()?)?;
        if it.next().is_some() {
            return None;
        }
        let name = FileName {
            partition,
            first_offset,
            last_offset,
        };
        (name.validate().is_ok() && name.to_string() == s).then_some(name)
    }

    /// Whether the two offset ranges share a Kafka partition and at least one offset.
    pub fn overlaps(&self, other: &FileName) -> bool {
        self.partition == other.partition
            && self.first_offset <= other.last_offset
            && other.first_offset <= self.last_offset
    }
}

fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{:05}-{:020}-{:020}{SUFFIX}",
            self.partition, self.first_offset, self.last_offset
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn renders_zero_padded() {
        let n = FileName::new(3, 42, 1041).unwrap();
        assert_eq!(
            n.to_string(),
            "part-00003-00000000000000000042-00000000000000001041.parquet"
        );
        assert_eq!(FileName::parse(&n.to_string()), Some(n));
    }

    #[test]
    fn rejects_invalid() {
        assert!(FileName::new(-1, 0, 0).is_err());
        assert!(FileName::new(0, -1, 0).is_err());
        assert!(FileName::new(0, 5, 4).is_err());
        assert!(FileName::new(0, 5, 5).is_ok());
        for s in [
            "part-3-42-1041.parquet",
            "part-00003-00000000000000000042-00000000000000001041.parquet.tmp",
            ".tmp-part-00003-00000000000000000042-00000000000000001041.parquet",
            "part-00003-00000000000000000042-00000000000000001041-x.parquet",
            "part-0000a-00000000000000000042-00000000000000001041.parquet",
            "part-00003-00000000000000000050-00000000000000000042.parquet",
            "data_0.parquet",
            "",
        ] {
            assert_eq!(FileName::parse(s), None, "{s}");
        }
    }

    #[test]
    fn overlap() {
        let a = FileName::new(1, 10, 20).unwrap();
        assert!(a.overlaps(&FileName::new(1, 20, 30).unwrap()));
        assert!(!a.overlaps(&FileName::new(1, 21, 30).unwrap()));
        assert!(!a.overlaps(&FileName::new(2, 10, 20).unwrap()));
    }

    proptest! {
        #[test]
        fn round_trip_and_order(p in 0..100_000i32, a in 0..i64::MAX, len in 0..1_000_000i64,
                                q in 0..100_000i32, b in 0..i64::MAX) {
            let n1 = FileName::new(p, a, a.saturating_add(len)).unwrap();
            let n2 = FileName::new(q, b, b).unwrap();
            prop_assert_eq!(FileName::parse(&n1.to_string()), Some(n1));
            // Lexical order of names == numeric order of (partition, first, last).
            prop_assert_eq!(n1.to_string().cmp(&n2.to_string()), n1.cmp(&n2));
        }
    }
}
