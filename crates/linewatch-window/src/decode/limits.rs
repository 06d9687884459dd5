//! The bounds a message must respect ([`DecodeLimits`]) and their defaults, and
//! the fixed bounds that come from the output ([`MAX_ABS_VALUE`],
//! [`MAX_LINE_PATH_BYTES`]).

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

/// Largest magnitude a channel value may have, `f32::MAX` ≈ 3.4e38. Window
/// features are computed and stored in f64, but their second moments (a
/// window's sum of squares, a model's squared standardised distance) overflow
/// f64 for values near 1e154 and above, and no physical sensor reads beyond
/// 1e38: such a value is an overflow sentinel (`1e300`) or a glitch, never a
/// measurement. A reading beyond it is refused (`value_out_of_range`).
pub const MAX_ABS_VALUE: f64 = f32::MAX as f64;

/// Longest encoded `line` value, in bytes: the output folder `line=<value>`
/// must fit the 255-byte limit on one path component (ext4, XFS, APFS; NTFS
/// counts 255 UTF-16 units, never more than the bytes), and `line=` takes 5.
/// A reading whose line is longer once encoded ([`line_path_len`]) is refused
/// (`line_too_long`). Plain ASCII names may hold 250 characters, names in
/// other scripts 62 to 125 (3 or 2 bytes per character).
pub const MAX_LINE_PATH_BYTES: usize = 250;

/// Bytes of `line` once encoded as a hive partition value by the Parquet sink
/// (`linewatch_sink::sanitize_partition_value`; the two must agree, and a
/// runtime test checks they do).
///
/// The encoding percent-encodes, byte by byte, only what must be: ASCII
/// control characters, space and ``"#%'*/:<=>?[\]^`{|}``, a `.` that is
/// first, last or follows another `.`, and the bytes of C1 control characters
/// (U+0080 to U+009F); every other character, including non-ASCII letters, is
/// kept as its UTF-8 bytes. The literal `__HIVE_DEFAULT_PARTITION__` has its
/// first `_` encoded.
pub fn line_path_len(line: &str) -> usize {
    let len = line.len();
    let mut n = 0;
    let mut prev_dot = false;
    for (i, c) in line.char_indices() {
        let kept = if c.is_ascii() {
            !must_encode_ascii(c as u8) || (c == '.' && i > 0 && i + 1 < len && !prev_dot)
        } else {
            !c.is_control()
        };
        n += if kept { c.len_utf8() } else { 3 * c.len_utf8() };
        prev_dot = c == '.';
    }
    if line == "__HIVE_DEFAULT_PARTITION__" {
        n += 2;
    }
    n
}

/// ASCII bytes always percent-encoded in a partition value (the dot is decided
/// by its position).
fn must_encode_ascii(b: u8) -> bool {
    MUST_ENCODE[usize::from(b & 0x7f)]
}

/// [`must_encode_ascii`] as a table (it runs for every character of every line id).
const MUST_ENCODE: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = (i as u8).is_ascii_control();
        i += 1;
    }
    let special = b" \"#%'*/:<=>?[\\]^`{|}.";
    let mut j = 0;
    while j < special.len() {
        t[special[j] as usize] = true;
        j += 1;
    }
    t
};
