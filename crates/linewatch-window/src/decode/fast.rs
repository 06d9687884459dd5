//! The fast path of the reading contract: a byte scanner for the plain shape nearly every
//! message has (`{"line":"..","machine":"..","ts":..,"values":{"ch":number,..}}` in any
//! order, JSON whitespace anywhere, strings without escapes), one pass, no serde.
//!
//! It accepts a message only when it has checked all of it: the JSON grammar of every token
//! it reads (RFC 8259: string characters, number syntax), each field once, each channel once,
//! every value a finite number within [`MAX_ABS_VALUE`], at most `max_channels` of them, and
//! nothing but whitespace after the object; other fields are skipped when their value is a
//! scalar (a string without escapes, a number, `true`, `false`, `null`), as the serde walk
//! ignores them. Anything else (an escape, a repeated field, a null value of a channel, an
//! object or array, a number out of range, bad syntax) returns `None`, and the
//! caller decodes the message with the serde walk of `parse.rs`, which reads or refuses it
//! with the reason. So the fast path never decides an error, and what it accepts it reads as
//! the serde walk does: every number correctly rounded to the nearest `f64` (as `serde_json`
//! with `float_roundtrip` reads it), by Clinger's exact fast path or else the standard
//! library's parse. A differential property test (`fast/tests.rs`) holds the two paths to
//! the same bits.
//!
//! Why: the serde walk spent most of its time in generic machinery (visitors, `Scalar`
//! values, per-token dispatch). With this scanner decode + window + batch went from 1.38 to
//! about 2.16 M readings/s on one core (README, Benchmarks).

use std::borrow::Cow;

use super::DecodeLimits;
use super::MAX_ABS_VALUE;
use super::parse::Fields;
use crate::timestamp::parse_rfc3339_ms;

/// Scans `text` (already checked for size and UTF-8) as a plain reading; `None` sends it to
/// the serde walk.
pub(super) fn scan_reading<'a>(text: &'a str, limits: &DecodeLimits) -> Option<Fields<'a>> {
    let mut f = Fields::default();
    Scanner::new(text).document(Scanner::key, |s, key| {
        match key {
            Key::Line => first(&mut f.line, Cow::Borrowed(s.string()?)),
            Key::Machine => first(&mut f.machine, Cow::Borrowed(s.string()?)),
            Key::Ts => {
                let ts = if s.peek()? == b'"' {
                    parse_rfc3339_ms(s.string()?).ok()?
                } else {
                    s.integer()?
                };
                first(&mut f.ts, ts)
            }
            Key::Values => {
                if f.values.is_some() {
                    return None;
                }
                f.values = Some(s.values(limits)?);
                Some(())
            }
            // Another field (a unit, a sequence number): ignored, as the serde walk does,
            // once its syntax is checked; an object or an array goes to the walk.
            Key::Other => s.scalar(),
        }
    })?;
    Some(f)
}

/// The fields of the contract, and any other.
#[derive(Clone, Copy)]
enum Key {
    Line,
    Machine,
    Ts,
    Values,
    Other,
}

/// The contract's keys with their closing quote, as little-endian words and the mask of
/// their bytes, to compare with the eight bytes after a key's opening quote.
const KEYS: [(Key, u64, u64); 4] = [
    key_word(Key::Line, b"line\""),
    key_word(Key::Machine, b"machine\""),
    key_word(Key::Ts, b"ts\""),
    key_word(Key::Values, b"values\""),
];

const fn key_word(key: Key, name: &[u8]) -> (Key, u64, u64) {
    let mut word = 0;
    let mut i = 0;
    while i < name.len() {
        word |= (name[i] as u64) << (8 * i);
        i += 1;
    }
    let mask = match name.len() {
        8 => u64::MAX,
        n => (1 << (8 * n)) - 1,
    };
    (key, word, mask)
}

/// Sets a field met for the first time; `None` when it was set already (a repeated field
/// goes to the serde walk, which says so).
fn first<T>(field: &mut Option<T>, value: T) -> Option<()> {
    field.replace(value).is_none().then_some(())
}

struct Scanner<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
}

/// A JSON number as scanned: its text, and its decimal digits as `mantissa * 10^exp10`
/// when they fit in a u64 (`None`: more than 19 digits).
struct Number<'a> {
    text: &'a str,
    negative: bool,
    integer: bool,
    mantissa: Option<u64>,
    exp10: i64,
}

// The loops below work on a local index and store it back once: an index kept in `self`
// across a byte loop is reloaded from memory at every byte (the scanner is twice as slow).
impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            b: text.as_bytes(),
            text,
            i: 0,
        }
    }

    /// The whole text as one [`Scanner::object`], with nothing but whitespace around it.
    #[inline]
    fn document<K>(
        &mut self,
        key: impl FnMut(&mut Self) -> Option<K>,
        value: impl FnMut(&mut Self, K) -> Option<()>,
    ) -> Option<()> {
        self.ws();
        self.object(key, value)?;
        self.ws();
        (self.i == self.b.len()).then_some(())
    }

    /// A non-empty JSON object (RFC 8259 section 4): `{`, members `key : value` separated
    /// by commas, `}`, whitespace between any two tokens; each member's key read by `key`,
    /// its value by `value`. `None` at a syntax error, at whatever `key` or `value` refuses,
    /// and for `{}` (no message these scanners read is empty).
    #[inline]
    fn object<K>(
        &mut self,
        mut key: impl FnMut(&mut Self) -> Option<K>,
        mut value: impl FnMut(&mut Self, K) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            return None;
        }
        loop {
            self.ws();
            let k = key(self)?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            value(self, k)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// JSON whitespace: space, tab, line feed, carriage return.
    #[inline]
    fn ws(&mut self) {
        // Most tokens follow each other directly.
        if self.peek().is_none_or(|c| c > b' ') {
            return;
        }
        let skipped = self.b[self.i.min(self.b.len())..]
            .iter()
            .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
            .unwrap_or(self.b.len() - self.i.min(self.b.len()));
        self.i += skipped;
    }

    /// An object's key: one of the contract's, found by one masked compare of a word each
    /// (a quote ends each, so no longer key matches) when eight bytes follow its opening
    /// quote, else by its string; or any other string.
    fn key(&mut self) -> Option<Key> {
        if self.peek()? == b'"'
            && let Some(word) = self.b.get(self.i + 1..self.i + 9)
        {
            let word = word.try_into().map_or(0, u64::from_le_bytes);
            for (key, name, mask) in KEYS {
                if word & mask == name {
                    // The opening quote, the name and the closing quote.
                    self.i += 1 + (mask.count_ones() / 8) as usize;
                    return Some(key);
                }
            }
        }
        // Near the message's end, or another key.
        Some(match self.string()? {
            "line" => Key::Line,
            "machine" => Key::Machine,
            "ts" => Key::Ts,
            "values" => Key::Values,
            _ => Key::Other,
        })
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let b = self.b;
        // Eight bytes at a time: the lowest flagged byte of a word is the first byte that
        // stops the string, exactly (see `string_stops`); byte by byte in the last seven.
        let mut i = start;
        let end = loop {
            let Some(chunk) = b.get(i..i + 8) else {
                let tail = b.get(i..)?;
                break i + tail
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            };
            let stops = string_stops(u64::from_le_bytes(chunk.try_into().ok()?));
            if stops != 0 {
                break i + (stops.trailing_zeros() / 8) as usize;
            }
            i += 8;
        };
        if b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        // The bounds are ASCII quotes in valid UTF-8, so both are char boundaries.
        self.text.get(start..end)
    }

    /// A JSON number (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`), its digits gathered
    /// on the way.
    fn number(&mut self) -> Option<Number<'a>> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        // Wrapping: with at most 19 digits (the only case the mantissa is used) no overflow.
        let mut mantissa: u64 = 0;
        let mut digits = |i: &mut usize| digit_run(b, i, &mut mantissa);
        let int_start = i;
        let int_digits = digits(&mut i);
        // No digit, or a leading zero followed by more digits.
        if int_digits == 0 || (int_digits > 1 && b[int_start] == b'0') {
            return None;
        }
        let mut frac_digits = 0;
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            integer = false;
            frac_digits = digits(&mut i);
            if frac_digits == 0 {
                return None;
            }
        }
        let mut exp10 = -(frac_digits as i64);
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            integer = false;
            let minus = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let first = i;
            let mut e: i64 = 0;
            while let Some(&c @ b'0'..=b'9') = b.get(i) {
                // Saturates far beyond any f64 exponent; such a number takes the full parse.
                e = (e * 10 + i64::from(c - b'0')).min(1 << 20);
                i += 1;
            }
            if i == first {
                return None;
            }
            exp10 += if minus { -e } else { e };
        }
        self.i = i;
        Some(Number {
            text: self.text.get(start..i)?,
            negative,
            integer,
            // Leading zeros count here: a number of more than 19 digits in all takes the
            // full parse, even when fewer are significant.
            mantissa: (int_digits + frac_digits <= 19).then_some(mantissa),
            exp10,
        })
    }

    /// Skips a scalar value after checking its syntax: a string without escapes, a number,
    /// `true`, `false` or `null`.
    fn scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            c => {
                let word: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    b'n' => b"null",
                    _ => return None,
                };
                let end = self.i + word.len();
                (self.b.get(self.i..end)? == word).then(|| self.i = end)
            }
        }
    }

    /// An integer that fits in i64 (epoch milliseconds). Not `-0`, which `serde_json`
    /// reads as the float -0.0 (and the walk refuses as a timestamp).
    fn integer(&mut self) -> Option<i64> {
        let n = self.number()?;
        if !n.integer || (n.negative && n.mantissa == Some(0)) {
            return None;
        }
        n.text.parse().ok()
    }

    /// A channel value, correctly rounded to f64 as the serde walk reads it (`serde_json`
    /// with `float_roundtrip`; an integer there converts to the nearest f64, `-0` to -0.0):
    /// by one exact operation when the digits fit in 2^53 and the power of ten is at most
    /// 10^22 (both factors then exact f64s, so the one rounding is the correct one: Clinger's
    /// fast path, "How to read floating point numbers accurately", PLDI 1990), else by the
    /// standard library's correctly rounded parse.
    fn value(&mut self) -> Option<f64> {
        self.plain_decimal().or_else(|| self.number_value())
    }

    /// The usual value, `-?[0-9]+(.[0-9]+)?` with at most 19 digits whose mantissa is at
    /// most 2^53 and no exponent, read in one pass with no [`Number`] built; `None` (the
    /// index left where it was) for anything else, which [`Scanner::number_value`] then
    /// reads or refuses.
    #[inline]
    fn plain_decimal(&mut self) -> Option<f64> {
        let b = self.b;
        let mut i = self.i;
        let negative = b.get(i) == Some(&b'-');
        i += usize::from(negative);
        let mut mantissa: u64 = 0;
        let mut digits = |i: &mut usize| digit_run(b, i, &mut mantissa);
        let int_start = i;
        let int_digits = digits(&mut i);
        let frac_digits = if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i)
        } else {
            0
        };
        // A digit before the point, no leading zero, a digit after a point.
        let plain = (int_digits == 1 || (int_digits > 1 && b[int_start] != b'0'))
            && (frac_digits > 0 || b[i - 1] != b'.')
            && int_digits + frac_digits <= 19
            && !matches!(b.get(i), Some(b'e' | b'E'))
            && mantissa <= 1 << 53;
        if !plain {
            return None;
        }
        self.i = i;
        // At most 19 fraction digits: within the exact powers of ten.
        let x = mantissa as f64 / POW10[frac_digits];
        Some(if negative { -x } else { x })
    }

    /// [`Scanner::value`] of any number: Clinger's fast path, else the standard library.
    fn number_value(&mut self) -> Option<f64> {
        let n = self.number()?;
        Self::float_of(&n)
    }

    /// The correctly rounded f64 of a scanned number: Clinger's fast path, else the
    /// standard library's parse (infinite beyond the range).
    fn float_of(n: &Number<'_>) -> Option<f64> {
        match n.mantissa {
            Some(m) if m <= 1 << 53 && (-22..=22).contains(&n.exp10) => {
                let x = if n.exp10 >= 0 {
                    m as f64 * POW10[n.exp10 as usize]
                } else {
                    m as f64 / POW10[(-n.exp10) as usize]
                };
                Some(if n.negative { -x } else { x })
            }
            _ => n.text.parse().ok(),
        }
    }

    /// The `values` object: channel -> finite number within [`MAX_ABS_VALUE`], each channel
    /// once, at most `max_channels`, at least one.
    fn values(&mut self, limits: &DecodeLimits) -> Option<Vec<(Cow<'a, str>, f64)>> {
        let mut out: Vec<(Cow<'a, str>, f64)> = Vec::with_capacity(8);
        self.object(Self::string, |s, channel| {
            let x = s.value()?;
            if !x.is_finite()
                || x.abs() > MAX_ABS_VALUE
                || out.len() >= limits.max_channels
                || out.iter().any(|(c, _)| c.as_ref() == channel)
            {
                return None;
            }
            out.push((Cow::Borrowed(channel), x));
            Some(())
        })?;
        Some(out)
    }
}

/// Reads the ASCII digits of `b` from `*i` on into `mantissa` (times ten plus each digit,
/// wrapping: the callers use it only for at most 19 digits, which do not wrap), moving `*i`
/// past them; how many there were.
#[inline]
fn digit_run(b: &[u8], i: &mut usize, mantissa: &mut u64) -> usize {
    let first = *i;
    while let Some(&c) = b.get(*i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        *i += 1;
    }
    *i - first
}

/// The bytes of `word` (little-endian: its first byte lowest) that stop a string: a
/// quote, a backslash or a byte below 0x20, each flagged by its high bit. The classic SWAR
/// tests ("Bit Twiddling Hacks": a zero byte in `word ^ c`, a byte less than n); a borrow
/// only runs upward from a flagged byte, so bytes above the first flagged one may be
/// flagged wrongly, but the lowest flag is exact.
fn string_stops(word: u64) -> u64 {
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Powers of ten exactly representable as f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

mod flat;

pub(super) use flat::scan_flat;

#[cfg(test)]
mod tests;
