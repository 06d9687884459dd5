//! The fast path of the long format's walk (`walk.rs`) when every pointer is a top-level key
//! (`/line`, `/tag`, ...: the default mapping and most others): the byte scanner of
//! `fast.rs` reads an object of scalars in one pass, without serde.
//!
//! It accepts a message only when it has checked all of it, as in `fast.rs`: an object of
//! distinct keys without escapes whose values are scalars (a string without escapes, a
//! number within the f64 range, `true`, `false`, `null`), and nothing but whitespace after
//! it. Each scalar at a configured key is the [`Scalar`] the walk's serde visitor builds
//! from `serde_json`'s reading: an integer within i64 as `I64`, a larger one within u64 as
//! `U64`, `-0` and negative integers below i64 as `F64` (as `serde_json` converts them), any
//! other number as the correctly rounded `F64`. Anything else returns `None`, and the caller
//! walks the message with serde, which reads or refuses it with the reason. A differential
//! property test (`tests.rs` here) holds the two to the same scalars.

use std::borrow::Cow;

use super::super::parse::Scalar;
use super::super::walk::{Found, Slot};
use super::Scanner;

/// At most this many keys are checked for repeats here; a message with more takes the walk.
const MAX_KEYS: usize = 16;

/// Scans `text` (already checked for size and UTF-8) as an object of scalars, filling the
/// slot of each key in `keys` (top-level keys, unescaped); `None` sends it to the walk.
pub(in crate::decode) fn scan_flat<'a>(
    text: &'a str,
    keys: &[(String, Slot)],
) -> Option<Found<'a>> {
    let mut found: Found<'a> = Default::default();
    let mut seen: [&str; MAX_KEYS] = [""; MAX_KEYS];
    let mut n = 0;
    let mut member = |s: &mut Scanner<'a>, key: &'a str| {
        if n == MAX_KEYS || seen[..n].contains(&key) {
            return None;
        }
        seen[n] = key;
        n += 1;
        let value = s.json_scalar()?;
        if let Some((_, slot)) = keys.iter().find(|(k, _)| k == key) {
            found[*slot as usize] = Some(value);
        }
        Some(())
    };
    Scanner::new(text).document(Scanner::string, &mut member)?;
    Some(found)
}

impl<'a> Scanner<'a> {
    /// A scalar as the walk's serde visitor reads it from `serde_json` (see the module
    /// documentation); `None` for an object, an array, an escape, a number of more than 19
    /// digits without a point or exponent, or one beyond the f64 range.
    fn json_scalar(&mut self) -> Option<Scalar<'a>> {
        Some(match self.peek()? {
            b'"' => Scalar::Str(Cow::Borrowed(self.string()?)),
            b'-' | b'0'..=b'9' => {
                let n = self.number()?;
                match (n.integer, n.mantissa) {
                    (true, Some(m)) if !n.negative => {
                        i64::try_from(m).map_or(Scalar::U64(m), Scalar::I64)
                    }
                    (true, Some(m)) => {
                        // serde_json's own rule: `-0` and below i64::MIN become floats.
                        let neg = (m as i64).wrapping_neg();
                        if neg >= 0 {
                            Scalar::F64(-(m as f64))
                        } else {
                            Scalar::I64(neg)
                        }
                    }
                    (true, None) => return None,
                    (false, _) => {
                        let x = Self::float_of(&n)?;
                        // serde_json refuses a number that rounds to infinity.
                        if !x.is_finite() {
                            return None;
                        }
                        Scalar::F64(x)
                    }
                }
            }
            _ => {
                let before = self.i;
                self.scalar()?;
                match self.b[before] {
                    b't' => Scalar::Bool(true),
                    b'f' => Scalar::Bool(false),
                    _ => Scalar::Null,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
