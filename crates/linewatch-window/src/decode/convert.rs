//! Reading the scalars found at a message's pointers (by the one-pass walk or in a tree) as
//! ids, event times and channel values, with one set of checks and error reasons.

use std::borrow::Cow;

use serde_json::Value;

use super::parse::Scalar;
use super::walk::kind;
use super::{DecodeError, MAX_ABS_VALUE, TsFormat};
use crate::timestamp::parse_rfc3339_ms;

/// A tree value as the walk would have read it.
pub(super) fn scalar_of(v: &Value) -> Scalar<'_> {
    match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Scalar::I64(i),
            (None, Some(u), _) => Scalar::U64(u),
            (None, None, Some(f)) => Scalar::F64(f),
            (None, None, None) => Scalar::Null,
        },
        Value::String(s) => Scalar::Str(Cow::Borrowed(s)),
        Value::Array(_) => Scalar::Array,
        Value::Object(_) => Scalar::Object,
    }
}

/// A non-empty string (`None`: the pointer found nothing).
pub(super) fn string<'a>(
    v: Option<Scalar<'a>>,
    field: &'static str,
) -> Result<Cow<'a, str>, DecodeError> {
    match v {
        None => Err(DecodeError::MissingField(field)),
        Some(Scalar::Str(s)) if s.is_empty() => Err(DecodeError::EmptyId(field)),
        Some(Scalar::Str(s)) => Ok(s),
        Some(other) => Err(DecodeError::WrongType {
            field,
            expected: "a string",
            found: kind(&other),
        }),
    }
}

/// A channel value: finite, within [`MAX_ABS_VALUE`].
pub(super) fn number(channel: &str, v: Scalar<'_>) -> Result<f64, DecodeError> {
    let echo = || super::error::echo(channel);
    let x = match v {
        Scalar::I64(i) => i as f64,
        Scalar::U64(u) => u as f64,
        Scalar::F64(x) => x,
        Scalar::Null => return Err(DecodeError::NonFiniteValue { channel: echo() }),
        other => {
            return Err(DecodeError::NonNumericValue {
                channel: echo(),
                found: kind(&other),
            });
        }
    };
    if !x.is_finite() {
        Err(DecodeError::NonFiniteValue { channel: echo() })
    } else if x.abs() > MAX_ABS_VALUE {
        Err(DecodeError::ValueOutOfRange {
            channel: echo(),
            value: x,
        })
    } else {
        Ok(x)
    }
}

/// The event time in epoch milliseconds, read as `format` says.
pub(super) fn timestamp(v: Scalar<'_>, format: TsFormat) -> Result<i64, DecodeError> {
    let bad = |what: String| DecodeError::BadTimestamp(what);
    let not_i64 =
        |n: &dyn std::fmt::Display| bad(format!("{n} is not an integer that fits in i64"));
    let integer = |v: &Scalar<'_>| match *v {
        Scalar::I64(i) => Ok(i),
        Scalar::U64(u) => Err(not_i64(&u)),
        Scalar::F64(f) => Err(not_i64(&f)),
        _ => Err(bad("not a number".into())),
    };
    let is_number = matches!(v, Scalar::I64(_) | Scalar::U64(_) | Scalar::F64(_));
    match (format, &v) {
        (TsFormat::Contract | TsFormat::Rfc3339, Scalar::Str(s)) => {
            parse_rfc3339_ms(s).map_err(DecodeError::BadTimestamp)
        }
        (TsFormat::Contract | TsFormat::EpochMs, _) if is_number => integer(&v),
        (TsFormat::EpochUs, _) if is_number => integer(&v).map(|us| us.div_euclid(1_000)),
        (TsFormat::EpochNs, _) if is_number => integer(&v).map(|ns| ns.div_euclid(1_000_000)),
        (TsFormat::EpochS, Scalar::I64(s)) => s
            .checked_mul(1_000)
            .ok_or_else(|| bad(format!("{s} s is out of range"))),
        (TsFormat::EpochS, _) if is_number => {
            let s = match v {
                Scalar::U64(u) => u as f64,
                Scalar::F64(f) => f,
                _ => f64::NAN,
            };
            if s.is_finite() && (s * 1e3).abs() < 9.0e15 {
                Ok((s * 1e3).round() as i64)
            } else {
                Err(bad(format!("{s} is not a number of epoch seconds")))
            }
        }
        (format, other) => Err(DecodeError::WrongType {
            field: "ts",
            expected: match format {
                TsFormat::Contract => "an RFC 3339 string or integer epoch milliseconds",
                TsFormat::Rfc3339 => "an RFC 3339 string",
                _ => "a number",
            },
            found: kind(other),
        }),
    }
}
