//! Turning values taken from messages (line names, dates) into hive partition path
//! components that read back as exactly those values.
//!
//! # Scheme
//!
//! [`sanitize_partition_value`] percent-encodes (upper-case hex, `%2F`), byte by byte over
//! the UTF-8 encoding, only what must be encoded:
//! - ASCII control characters, space and `` "#%'*/:<=>?[\]^`{|} `` (what Hive and Spark
//!   escape, plus what Windows and shells cannot take in a name);
//! - a `.` that is the first or the last character or follows another dot, so the output
//!   never contains `..`, never starts with `.` (no hidden directories, which Spark/Hadoop
//!   skip) and never ends with `.`;
//! - the bytes of C1 control characters (U+0080 to U+009F).
//!
//! Every other character, non-ASCII letters included, is kept as its UTF-8 bytes, so a name
//! in any script costs its own length, not three times it. `%` itself is always encoded, so
//! percent-decoding the output, as hive readers do (DuckDB, pyarrow, Polars, Spark), gives
//! back the input exactly.
//!
//! Special cases:
//! - the empty string becomes [`HIVE_NULL_PARTITION`] (`__HIVE_DEFAULT_PARTITION__`, what
//!   Hive and Spark write for null / empty partition values); a literal input equal to that
//!   sentinel has its first `_` encoded (`%5F_HIVE_DEFAULT_PARTITION__`) to stay distinct;
//! - a value whose encoding is longer than [`MAX_PARTITION_VALUE_LEN`] (250) bytes cannot
//!   be one path component `key=<value>` (255 bytes): it is refused with
//!   [`PartitionValueTooLong`], never cut or replaced. The decoder refuses such a line
//!   earlier (`line_too_long`, `linewatch_window::decode::line_path_len` computes the same
//!   length), so the stream never hands one to the writer.
//!
//! The output therefore never contains `/`, `\`, NUL or `..`, is at most 250 bytes, and is
//! injective: [`decode_partition_value`] inverts it.

/// Longest encoded value, in bytes: `key=<value>` must fit the 255 bytes file systems
/// allow per path component, and the longest key, `line=`, takes 5.
pub const MAX_PARTITION_VALUE_LEN: usize = 250;

/// Hive's path value for a null (here: empty) partition value.
pub const HIVE_NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A value whose encoding does not fit one path component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("encoded as {encoded_bytes} bytes, more than the {max} a path component allows")]
pub struct PartitionValueTooLong {
    /// Bytes of the encoded value.
    pub encoded_bytes: usize,
    /// [`MAX_PARTITION_VALUE_LEN`].
    pub max: usize,
}

/// ASCII bytes always percent-encoded (the dot is decided by its position).
fn must_encode_ascii(b: u8) -> bool {
    b.is_ascii_control() || b" \"#%'*/:<=>?[\\]^`{|}.".contains(&b)
}

/// Encodes a partition value for use as `key=<value>` in a path, or refuses it when the
/// encoding is longer than [`MAX_PARTITION_VALUE_LEN`]. Pure; see the [module docs](self).
pub fn sanitize_partition_value(raw: &str) -> Result<String, PartitionValueTooLong> {
    if raw.is_empty() {
        return Ok(HIVE_NULL_PARTITION.to_owned());
    }
    let len = raw.len();
    let mut out = String::with_capacity(len);
    let mut prev_dot = false;
    for (i, c) in raw.char_indices() {
        let keep = if c.is_ascii() {
            !must_encode_ascii(c as u8) || (c == '.' && i > 0 && i + 1 < len && !prev_dot)
        } else {
            !c.is_control()
        };
        if keep {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                push_escaped(&mut out, b);
            }
        }
        prev_dot = c == '.';
    }
    if out == HIVE_NULL_PARTITION {
        out.replace_range(0..1, "%5F");
    }
    if out.len() > MAX_PARTITION_VALUE_LEN {
        return Err(PartitionValueTooLong {
            encoded_bytes: out.len(),
            max: MAX_PARTITION_VALUE_LEN,
        });
    }
    Ok(out)
}

/// Percent-decodes a path value (the inverse of [`sanitize_partition_value`]). Returns
/// `None` on a malformed escape or invalid UTF-8.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(s: &str) -> String {
        sanitize_partition_value(s).unwrap()
    }

    fn well_formed(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_PARTITION_VALUE_LEN
            && !s.chars().any(|c| {
                c.is_control() || c.is_ascii() && c != '%' && must_encode_ascii(c as u8) && c != '.'
            })
            && !s.contains("..")
            && !s.starts_with('.')
            && !s.ends_with('.')
    }

    #[test]
    fn examples() {
        assert_eq!(enc("press-3"), "press-3");
        assert_eq!(enc("Line_A.v2"), "Line_A.v2");
        assert_eq!(enc("../etc"), "%2E%2E%2Fetc");
        assert_eq!(enc(".."), "%2E%2E");
        assert_eq!(enc("."), "%2E");
        assert_eq!(enc("a..b"), "a.%2Eb");
        assert_eq!(enc("a."), "a%2E");
        assert_eq!(enc("a/b\\c"), "a%2Fb%5Cc");
        assert_eq!(enc("x=1 y"), "x%3D1%20y");
        assert_eq!(enc("100%"), "100%25");
        assert_eq!(enc("nul\0"), "nul%00");
        assert_eq!(enc("Prüf"), "Prüf");
        assert_eq!(enc("a\u{85}b"), "a%C2%85b");
        assert_eq!(enc("(a+b),c;d@e~f!g$h&i"), "(a+b),c;d@e~f!g$h&i");
        assert_eq!(
            enc("a:b*c?d<e>f|g\"h'i#j[k]l^m`n{o}p"),
            "a%3Ab%2Ac%3Fd%3Ce%3Ef%7Cg%22h%27i%23j%5Bk%5Dl%5Em%60n%7Bo%7Dp"
        );
        assert_eq!(enc(""), HIVE_NULL_PARTITION);
        assert_eq!(enc(HIVE_NULL_PARTITION), "%5F_HIVE_DEFAULT_PARTITION__");
        assert_eq!(
            decode_partition_value("%5F_HIVE_DEFAULT_PARTITION__").as_deref(),
            Some(HIVE_NULL_PARTITION)
        );
    }

    #[test]
    fn a_97_character_utf8_name_reads_back_whole() {
        let line = format!("Prüfstraße Nord — Härterei {}", "x".repeat(70));
        assert_eq!(line.chars().count(), 97);
        let out = enc(&line);
        assert!(well_formed(&out), "{out}");
        assert_eq!(decode_partition_value(&out).as_deref(), Some(line.as_str()));
    }

    #[test]
    fn values_too_long_for_one_component_are_refused_not_cut() {
        assert_eq!(enc(&"x".repeat(250)).len(), 250);
        for (raw, bytes) in [
            ("x".repeat(251), 251),
            ("ü".repeat(126), 252),
            ("/".repeat(84), 252),
            ("x".repeat(500), 500),
        ] {
            assert_eq!(
                sanitize_partition_value(&raw),
                Err(PartitionValueTooLong {
                    encoded_bytes: bytes,
                    max: MAX_PARTITION_VALUE_LEN
                })
            );
        }
        assert_eq!(enc(&"ü".repeat(125)).len(), 250);
        assert_eq!(enc(&"/".repeat(83)).len(), 249);
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
        fn output_is_safe_and_reads_back(raw in any::<String>()) {
            match sanitize_partition_value(&raw) {
                Ok(out) => {
                    prop_assert!(well_formed(&out), "{:?} -> {:?}", raw, out);
                    prop_assert_eq!(decode_partition_value(&out), Some(raw));
                }
                Err(e) => prop_assert!(e.encoded_bytes > MAX_PARTITION_VALUE_LEN),
            }
        }

        #[test]
        fn output_is_safe_on_dots_and_slashes(raw in "[./a%_-]{0,300}") {
            if let Ok(out) = sanitize_partition_value(&raw) {
                prop_assert!(well_formed(&out), "{:?} -> {:?}", raw, out);
                prop_assert_eq!(decode_partition_value(&out), Some(raw));
            }
        }

        #[test]
        fn decoding_inverts_long_values(raw in "\\PC{1,120}") {
            if let Ok(out) = sanitize_partition_value(&raw) {
                prop_assert_eq!(decode_partition_value(&out), Some(raw));
            }
        }

        #[test]
        fn injective_on_ascii(a in "[ -~]{0,40}", b in "[ -~]{0,40}") {
            prop_assume!(a != b);
            prop_assert_ne!(enc(&a), enc(&b));
        }
    }
}
