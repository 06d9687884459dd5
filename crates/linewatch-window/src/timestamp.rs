//! RFC 3339 timestamps to epoch milliseconds.
//!
//! The common form `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM)` is parsed by
//! hand; anything else (lowercase `t`/`z`, a space separator, leap seconds,
//! more than 9 fraction digits, ...) falls back to chrono's
//! `DateTime::parse_from_rfc3339`. Both agree on every input (property test
//! below). Fractions below the millisecond are truncated toward the past, as
//! chrono's `timestamp_millis` does.

const MS_PER_DAY: i64 = 86_400_000;

/// Parses an RFC 3339 timestamp into epoch milliseconds UTC.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    if let Some(ms) = fast(s.as_bytes()) {
        return Ok(ms);
    }
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(dt) => Ok(dt.timestamp_millis()),
        Err(e) => Err(format!("{e}: {:?}", truncated(s))),
    }
}

fn truncated(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[inline]
fn digit(b: u8) -> Option<i64> {
    if b.is_ascii_digit() {
        Some(i64::from(b - b'0'))
    } else {
        None
    }
}

#[inline]
fn two(b: &[u8], i: usize) -> Option<i64> {
    Some(digit(*b.get(i)?)? * 10 + digit(*b.get(i + 1)?)?)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The hand-written fast path; `None` means "let chrono decide".
fn fast(b: &[u8]) -> Option<i64> {
    let head: &[u8; 20] = b.get(..20)?.try_into().ok()?;
    // The fourteen digits of `YYYY-MM-DDTHH:MM:SS` are checked together, without a branch
    // between them, then read in pairs.
    const DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    let not_digit = DIGITS
        .iter()
        .fold(false, |bad, &i| bad | (head[i].wrapping_sub(b'0') > 9));
    if not_digit
        || head[4] != b'-'
        || head[7] != b'-'
        || head[10] != b'T'
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    let pair = |i: usize| {
        i64::from(head[i].wrapping_sub(b'0')) * 10 + i64::from(head[i + 1].wrapping_sub(b'0'))
    };
    let year = pair(0) * 100 + pair(2);
    let month = pair(5);
    let day = pair(8);
    let hour = pair(11);
    let minute = pair(14);
    let second = pair(17);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                frac_ms = frac_ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for _ in n..3 {
            frac_ms *= 10;
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = two(b, i + 1)?;
            let om = two(b, i + 4)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let day_ms = ((hour * 60 + minute) * 60 + second) * 1000 + frac_ms;
    Some(days_from_civil(year, month, day) * MS_PER_DAY + day_ms - offset_min * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chrono_ms(s: &str) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_millis())
    }

    #[test]
    fn known_values() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59.999Z"), Ok(-1));
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T12:00:00.123Z"),
            Ok(1_795_867_200_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00+00:00"),
            Ok(951_782_400_000)
        );
        assert!(parse_rfc3339_ms("2001-02-29T00:00:00Z").is_err());
        assert!(parse_rfc3339_ms("garbage").is_err());
    }

    #[test]
    fn fast_path_is_taken_for_the_common_form() {
        assert_eq!(fast(b"2026-11-28T12:00:00.123Z"), Some(1_795_867_200_123));
        assert_eq!(fast(b"2026-11-28T14:00:00+02:00"), Some(1_795_867_200_000));
        assert_eq!(fast(b"2026-11-28t12:00:00Z"), None);
        assert_eq!(fast(b"2016-12-31T23:59:60Z"), None);
    }

    #[test]
    fn leap_second_and_lowercase_fall_back_to_chrono() {
        for s in [
            "2016-12-31T23:59:60Z",
            "2026-11-28t12:00:00z",
            "2026-11-28 12:00:00Z",
            "2026-11-28T12:00:00.1234567891Z",
        ] {
            assert_eq!(parse_rfc3339_ms(s).ok(), chrono_ms(s), "{s}");
        }
    }

    fn ts_string() -> impl Strategy<Value = String> {
        (
            0i64..10_000,
            0i64..14,
            0i64..33,
            0i64..25,
            0i64..61,
            0i64..61,
            proptest::option::of("[0-9]{1,11}"),
            prop_oneof![
                Just("Z".to_owned()),
                Just("z".to_owned()),
                (any::<bool>(), 0i64..25, 0i64..61).prop_map(|(neg, h, m)| format!(
                    "{}{h:02}:{m:02}",
                    if neg { '-' } else { '+' }
                )),
            ],
            prop_oneof![Just('T'), Just('t'), Just(' ')],
        )
            .prop_map(|(y, mo, d, h, mi, s, frac, tz, sep)| {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{tz}")
            })
    }

    proptest! {
        #[test]
        fn agrees_with_chrono(s in ts_string()) {
            let got = parse_rfc3339_ms(&s).ok();
            prop_assert_eq!(got, chrono_ms(&s), "{}", s);
            if let Some(ms) = fast(s.as_bytes()) {
                prop_assert_eq!(Some(ms), chrono_ms(&s));
            }
        }

        #[test]
        fn agrees_with_chrono_on_noise(s in "[0-9T:Z+.-]{15,32}") {
            prop_assert_eq!(parse_rfc3339_ms(&s).ok(), chrono_ms(&s), "{}", s);
        }

        #[test]
        fn roundtrips_chrono_formatting(ms in -2_000_000_000_000i64..10_000_000_000_000i64, off in -1439i32..1440) {
            let tz = chrono::FixedOffset::east_opt(off * 60).unwrap();
            let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap().with_timezone(&tz);
            let s = dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            prop_assert_eq!(fast(s.as_bytes()), Some(ms), "{}", s);
        }
    }
}
