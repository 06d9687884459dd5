//! Turning values taken from messages (line names, dates) into safe hive partition
//! path components.
//!
//! # Scheme
//!
//! [`sanitize_partition_value`] percent-encodes, byte by byte over the UTF-8 encoding,
//! everything except `[A-Za-z0-9_-]` and "harmless" dots, with upper-case hex (`%2F`).
//! A dot is kept only when it is neither the first nor the last character and does not
//! follow another dot, so the output never contains `..`, never starts with `.` (no hidden
//! directories, which Spark/Hadoop skip) and never ends with `.`. `%` itself is always
//! encoded, so percent-decoding the output gives back the input exactly: hive readers
//! (DuckDB, Spark, Polars) URL-decode partition values, which makes percent-encoding the
//! faithful choice, unlike replacing characters with `_`.
//!
//! Special cases:
//! - the empty string becomes [`HIVE_NULL_PARTITION`] (`__HIVE_DEFAULT_PARTITION__`, what
//!   Hive and Spark write for null / empty partition values); a literal input equal to that
//!   sentinel has its first `_` encoded (`%5F_HIVE_DEFAULT_PARTITION__`) to stay distinct;
//! - an encoding longer than [`MAX_PARTITION_VALUE_LEN`] bytes is cut (never inside a `%XX`
//!   triple) and suffixed with `--` and 16 hex digits of a stable 64-bit FNV-1a hash of the
//!   raw value. Such values no longer decode to the input (the rows keep the full value in
//!   their `line` column); distinct long inputs still map to distinct outputs except with
//!   negligible probability.
//!
//! The output therefore always matches `^[A-Za-z0-9._%-]{1,128}$`, contains no `/`, `\`,
//! NUL or `..`, and is injective for inputs whose encoding fits the bound.

/// Longest sanitised value, in bytes (file systems allow 255 per path component).
pub const MAX_PARTITION_VALUE_LEN: usize = 128;

/// Hive's path value for a null (here: empty) partition value.
pub const HIVE_NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Length of the hash suffix added to over-long values: `--` and 16 hex digits.
const HASH_SUFFIX_LEN: usize = 18;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Sanitises a partition value for use as `key=<value>` in a path. Pure and total; see the
/// [module docs](self) for the scheme.
pub fn sanitize_partition_value(raw: &str) -> String {
    if raw.is_empty() {
        return HIVE_NULL_PARTITION.to_owned();
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut prev_dot = false;
    for (i, &b) in bytes.iter().enumerate() {
        let keep = b.is_ascii_alphanumeric()
            || b == b'_'
            || b == b'-'
            || (b == b'.' && i > 0 && i + 1 < bytes.len() && !prev_dot);
        if keep {
            out.push(char::from(b));
        } else {
            push_escaped(&mut out, b);
        }
        prev_dot = b == b'.';
    }
    if out == HIVE_NULL_PARTITION {
        out.replace_range(0..1, "%5F");
    }
    if out.len() > MAX_PARTITION_VALUE_LEN {
        let mut cut = MAX_PARTITION_VALUE_LEN - HASH_SUFFIX_LEN;
        // Never split a `%XX` triple (hex digits are never `%`).
        let b = out.as_bytes();
        if b[cut - 1] == b'%' {
            cut -= 1;
        } else if b[cut - 2] == b'%' {
            cut -= 2;
        }
        out.truncate(cut);
        out.push_str(&format!("--{:016x}", fnv1a64(bytes)));
    }
    out
}

/// Percent-decodes a path value (the inverse of [`sanitize_partition_value`] for values
/// that were not cut). Returns `None` on a malformed escape or invalid UTF-8.
/// [`HIVE_NULL_PARTITION`] decodes to the empty string.
pub fn decode_partition_value(value: &str) -> Option<String> {
    if value == HIVE_NULL_PARTITION {
        return Some(String::new());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_val(*bytes.get(i + 1)?)?;
            let lo = hex_val(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// 64-bit FNV-1a: small, stable across Rust releases (unlike `DefaultHasher`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn well_formed(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_PARTITION_VALUE_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'%'))
            && !s.contains("..")
            && !s.starts_with('.')
            && !s.ends_with('.')
    }

    #[test]
    fn examples() {
        assert_eq!(sanitize_partition_value("press-3"), "press-3");
        assert_eq!(sanitize_partition_value("Line_A.v2"), "Line_A.v2");
        assert_eq!(sanitize_partition_value("../etc"), "%2E%2E%2Fetc");
        assert_eq!(sanitize_partition_value(".."), "%2E%2E");
        assert_eq!(sanitize_partition_value("."), "%2E");
        assert_eq!(sanitize_partition_value("a..b"), "a.%2Eb");
        assert_eq!(sanitize_partition_value("a."), "a%2E");
        assert_eq!(sanitize_partition_value("a/b\\c"), "a%2Fb%5Cc");
        assert_eq!(sanitize_partition_value("x=1 y"), "x%3D1%20y");
        assert_eq!(sanitize_partition_value("100%"), "100%25");
        assert_eq!(sanitize_partition_value("nul\0"), "nul%00");
        assert_eq!(sanitize_partition_value("Prüf"), "Pr%C3%BCf");
        assert_eq!(sanitize_partition_value(""), HIVE_NULL_PARTITION);
        assert_eq!(
            sanitize_partition_value(HIVE_NULL_PARTITION),
            "%5F_HIVE_DEFAULT_PARTITION__"
        );
        assert_eq!(
            decode_partition_value("%5F_HIVE_DEFAULT_PARTITION__").as_deref(),
            Some(HIVE_NULL_PARTITION)
        );
    }

    #[test]
    fn long_values_are_bounded_and_distinct() {
        let a = "x".repeat(500);
        let b = format!("{}y", "x".repeat(499));
        let sa = sanitize_partition_value(&a);
        let sb = sanitize_partition_value(&b);
        assert!(well_formed(&sa), "{sa}");
        assert!(well_formed(&sb), "{sb}");
        assert_ne!(sa, sb);
        // A cut never splits an escape.
        for n in 0..8 {
            let s = format!("{}{}", "a".repeat(n), "/".repeat(200));
            let out = sanitize_partition_value(&s);
            assert!(well_formed(&out), "{out}");
            let stem = out.rsplit_once("--").map(|(p, _)| p).unwrap_or(&out);
            assert!(decode_partition_value(stem).is_some(), "{out}");
        }
    }

    #[test]
    fn decode_rejects_malformed() {
        assert_eq!(decode_partition_value("%"), None);
        assert_eq!(decode_partition_value("%2"), None);
        assert_eq!(decode_partition_value("%zz"), None);
        assert_eq!(decode_partition_value("%FF"), None); // not UTF-8
        assert_eq!(decode_partition_value("").as_deref(), Some(""));
    }

    proptest! {
        #[test]
        fn output_is_always_safe(raw in any::<String>()) {
            let out = sanitize_partition_value(&raw);
            prop_assert!(well_formed(&out), "{:?} -> {:?}", raw, out);
        }

        #[test]
        fn output_is_always_safe_on_dots_and_slashes(raw in "[./a%_-]{0,300}") {
            let out = sanitize_partition_value(&raw);
            prop_assert!(well_formed(&out), "{:?} -> {:?}", raw, out);
        }

        #[test]
        fn decoding_inverts_short_values(raw in "\\PC{1,10}") {
            let out = sanitize_partition_value(&raw);
            prop_assert_eq!(decode_partition_value(&out), Some(raw));
        }

        #[test]
        fn injective_on_ascii(a in "[ -~]{0,40}", b in "[ -~]{0,40}") {
            prop_assume!(a != b);
            prop_assert_ne!(sanitize_partition_value(&a), sanitize_partition_value(&b));
        }
    }
}
