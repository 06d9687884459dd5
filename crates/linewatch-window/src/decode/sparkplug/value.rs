//! A metric's value as a number, read exactly by its datatype (specification 6.4.16).

use super::proto::payload::metric::Value as V;
use super::proto::{DataType, payload::Metric};
use crate::decode::MAX_ABS_VALUE;

/// What a metric holds, for a reading.
pub(super) enum Read {
    /// A finite number within [`MAX_ABS_VALUE`].
    Value(f64),
    /// Not a measurement: booleans, strings, date-times, bytes, data sets, templates, arrays.
    NotANumber,
    /// `is_null`, or no value at all.
    Null,
    /// An integer whose datatype is not known: its sign cannot be read.
    UnknownDatatype,
    /// Not finite (NaN, infinities): `non_finite_value`.
    NonFinite,
    /// Beyond [`MAX_ABS_VALUE`] or its datatype: `value_out_of_range`.
    OutOfRange(f64),
}

/// `m`'s value under `datatype` (the metric's own, else its birth's).
pub(super) fn numeric(datatype: Option<u32>, m: &Metric) -> Read {
    if m.is_null == Some(true) {
        return Read::Null;
    }
    let Some(v) = &m.value else {
        return Read::Null;
    };
    let dt = datatype.and_then(|t| DataType::try_from(t as i32).ok());
    match v {
        V::FloatValue(x) => finite(f64::from(*x)),
        V::DoubleValue(x) => finite(*x),
        V::IntValue(u) => integer(dt, u64::from(*u), 32),
        V::LongValue(u) => integer(dt, *u, 64),
        V::BooleanValue(_)
        | V::StringValue(_)
        | V::BytesValue(_)
        | V::DatasetValue(_)
        | V::TemplateValue(_) => Read::NotANumber,
    }
}

fn finite(x: f64) -> Read {
    if !x.is_finite() {
        Read::NonFinite
    } else if x.abs() > MAX_ABS_VALUE {
        Read::OutOfRange(x)
    } else {
        Read::Value(x)
    }
}

/// `raw` (the low `width` bits hold the value) read as `dt`. A signed value may have been
/// sign-extended to the field's width or written zero-extended in its own bits; both are
/// accepted, and anything else that does not fit the datatype is refused.
fn integer(dt: Option<DataType>, raw: u64, width: u32) -> Read {
    // Sign-extended over the field's width.
    let extended: i64 = if width == 32 {
        i64::from(raw as u32 as i32)
    } else {
        raw as i64
    };
    let signed = |bits: u32| -> Option<f64> {
        let (lo, hi) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
        if (lo..=hi).contains(&i128::from(extended)) {
            Some(extended as f64)
        } else if u128::from(raw) < (1u128 << bits) {
            // Zero-extended two's complement of `bits` bits.
            let v = i128::from(raw);
            Some((if v > hi { v - (1i128 << bits) } else { v }) as f64)
        } else {
            None
        }
    };
    let unsigned = |bits: u32| (u128::from(raw) < (1u128 << bits)).then_some(raw as f64);
    let x = match dt {
        Some(DataType::Int8) => signed(8),
        Some(DataType::Int16) => signed(16),
        Some(DataType::Int32) => signed(32),
        Some(DataType::Int64) => signed(64),
        Some(DataType::UInt8) => unsigned(8),
        Some(DataType::UInt16) => unsigned(16),
        Some(DataType::UInt32) => unsigned(32),
        Some(DataType::UInt64) => unsigned(64),
        // A float or double written in an integer field: not a layout the specification has.
        Some(DataType::Float | DataType::Double) => None,
        Some(DataType::Unknown) | None => return Read::UnknownDatatype,
        Some(_) => return Read::NotANumber,
    };
    match x {
        Some(x) => Read::Value(x),
        None => Read::OutOfRange(raw as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dt: DataType, v: V) -> Option<f64> {
        let m = Metric {
            value: Some(v),
            ..Metric::default()
        };
        match numeric(Some(dt as u32), &m) {
            Read::Value(x) => Some(x),
            _ => None,
        }
    }

    #[test]
    fn signed_integers_are_read_whether_sign_or_zero_extended() {
        assert_eq!(read(DataType::Int8, V::IntValue(-5i32 as u32)), Some(-5.0));
        assert_eq!(read(DataType::Int8, V::IntValue(0xFB)), Some(-5.0));
        assert_eq!(read(DataType::Int8, V::IntValue(127)), Some(127.0));
        assert_eq!(read(DataType::Int16, V::IntValue(0xFFFF)), Some(-1.0));
        assert_eq!(
            read(DataType::Int16, V::IntValue(-300i32 as u32)),
            Some(-300.0)
        );
        assert_eq!(
            read(DataType::Int32, V::IntValue(i32::MIN as u32)),
            Some(f64::from(i32::MIN))
        );
        assert_eq!(
            read(DataType::Int64, V::LongValue(-7i64 as u64)),
            Some(-7.0)
        );
        assert_eq!(
            read(DataType::Int32, V::LongValue(-7i64 as u64)),
            Some(-7.0)
        );
        assert_eq!(
            read(DataType::Int32, V::LongValue(0xFFFF_FFFF)),
            Some(-1.0),
            "zero-extended 32-bit -1 in a long field"
        );
    }

    #[test]
    fn unsigned_integers_and_values_beyond_their_type() {
        assert_eq!(read(DataType::UInt8, V::IntValue(255)), Some(255.0));
        assert_eq!(read(DataType::UInt16, V::IntValue(65_535)), Some(65_535.0));
        assert_eq!(
            read(DataType::UInt32, V::LongValue(4_000_000_000)),
            Some(4e9)
        );
        assert_eq!(
            read(DataType::UInt64, V::LongValue(1 << 40)),
            Some(2f64.powi(40))
        );
        // Out of the datatype: refused, never truncated to another number.
        assert_eq!(read(DataType::UInt8, V::IntValue(300)), None);
        assert_eq!(read(DataType::Int8, V::IntValue(200_000)), None);
        assert_eq!(read(DataType::UInt32, V::LongValue(1 << 33)), None);
    }

    #[test]
    fn floats_and_what_is_not_a_number() {
        assert_eq!(read(DataType::Float, V::FloatValue(1.5)), Some(1.5));
        assert_eq!(read(DataType::Double, V::DoubleValue(-2.25)), Some(-2.25));
        assert!(matches!(
            numeric(
                None,
                &Metric {
                    value: Some(V::DoubleValue(f64::NAN)),
                    ..Metric::default()
                }
            ),
            Read::NonFinite
        ));
        let no_type = Metric {
            value: Some(V::IntValue(3)),
            ..Metric::default()
        };
        assert!(matches!(numeric(None, &no_type), Read::UnknownDatatype));
        let boolean = Metric {
            value: Some(V::BooleanValue(true)),
            ..Metric::default()
        };
        assert!(matches!(
            numeric(Some(DataType::Boolean as u32), &boolean),
            Read::NotANumber
        ));
        let date = Metric {
            value: Some(V::LongValue(1_700_000_000_000)),
            ..Metric::default()
        };
        assert!(matches!(
            numeric(Some(DataType::DateTime as u32), &date),
            Read::NotANumber
        ));
        let null = Metric {
            is_null: Some(true),
            value: Some(V::DoubleValue(1.0)),
            ..Metric::default()
        };
        assert!(matches!(numeric(None, &null), Read::Null));
    }
}
