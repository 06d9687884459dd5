//! Readings in other shapes (issue 13): field mappings by JSON Pointer, the machine from the
//! message key, declared timestamp formats, and the long format gathered into readings that
//! make the same windows as wide readings.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use linewatch_window::*;

const T: i64 = 1_764_331_200_000; // 2025-11-28T12:00:00Z

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn wide(d: &MappedDecoder, msg: &str, key: Option<&str>) -> Result<Reading, DecodeError> {
    match d.decode(msg.as_bytes(), key.map(str::as_bytes))? {
        Decoded::Reading(r) => Ok(r),
        other => panic!("not a reading from a wide decoder: {other:?}"),
    }
}

fn long(d: &MappedDecoder, msg: &str, key: Option<&str>) -> Result<LongValue, DecodeError> {
    match d.decode(msg.as_bytes(), key.map(str::as_bytes))? {
        Decoded::Value(v) => Ok(v),
        other => panic!("not a value from a long decoder: {other:?}"),
    }
}

#[test]
fn the_default_mapping_is_the_contract() {
    let d = MappedDecoder::new(Format::Json, FieldMap::default(), limits());
    let msg = format!(r#"{{"line":"L","machine":"m","ts":{T},"values":{{"a":1.5}}}}"#);
    let r = wide(&d, &msg, None).unwrap();
    assert_eq!(r, decode_reading(msg.as_bytes(), &limits()).unwrap());
    assert!(FieldMap::default().is_contract());
}

#[test]
fn pointers_a_constant_line_and_the_machine_from_the_key() {
    let map = FieldMap {
        line_constant: Some("press-3".into()),
        machine_from_key: true,
        ts: "/meta/time".into(),
        ts_format: TsFormat::EpochS,
        values: "/data".into(),
        ..FieldMap::default()
    };
    map.validate().unwrap();
    let d = MappedDecoder::new(Format::Json, map, limits());
    let msg = r#"{"meta":{"time":1764331200.25},"data":{"temp":71.2,"rpm":1500}}"#;
    let r = wide(&d, msg, Some("P-104")).unwrap();
    assert_eq!((r.line.as_str(), r.machine.as_str()), ("press-3", "P-104"));
    assert_eq!(r.ts_ms, T + 250);
    let mut values = r.values.clone();
    values.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(values, vec![("rpm".into(), 1500.0), ("temp".into(), 71.2)]);
    // No key: the machine is missing.
    let e = wide(&d, msg, None).unwrap_err();
    assert_eq!(e.reason(), "missing_field");
}

#[test]
fn timestamp_formats_are_declared_never_guessed() {
    let cases = [
        (TsFormat::EpochMs, format!("{T}"), Ok(T)),
        (TsFormat::EpochS, format!("{}", T / 1000), Ok(T)),
        (TsFormat::EpochUs, format!("{}", T * 1000 + 999), Ok(T)),
        (
            TsFormat::EpochNs,
            format!("{}", T * 1_000_000 + 999_999),
            Ok(T),
        ),
        (
            TsFormat::Rfc3339,
            "\"2025-11-28T12:00:00Z\"".to_string(),
            Ok(T),
        ),
        (
            TsFormat::Contract,
            "\"2025-11-28T13:00:00+01:00\"".to_string(),
            Ok(T),
        ),
        // Declared as seconds, a millisecond number is out of range, not reinterpreted.
        (
            TsFormat::EpochS,
            format!("{T}"),
            Err("timestamp_out_of_range"),
        ),
        (TsFormat::Rfc3339, format!("{T}"), Err("wrong_type")),
        (
            TsFormat::EpochMs,
            "\"2025-11-28T12:00:00Z\"".to_string(),
            Err("wrong_type"),
        ),
        (
            TsFormat::EpochMs,
            "1.5e12".to_string(),
            Err("bad_timestamp"),
        ),
    ];
    for (fmt, ts, want) in cases {
        let map = FieldMap {
            ts_format: fmt,
            ..FieldMap::default()
        };
        let d = MappedDecoder::new(Format::Json, map, limits());
        let msg = format!(r#"{{"line":"L","machine":"m","ts":{ts},"values":{{"a":1}}}}"#);
        let got = wide(&d, &msg, None)
            .map(|r| r.ts_ms)
            .map_err(|e| e.reason());
        assert_eq!(got, want, "{fmt:?} {ts}");
    }
}

#[test]
fn mapped_messages_fail_with_the_contract_reasons() {
    let map = FieldMap {
        line: "/site/line".into(),
        ..FieldMap::default()
    };
    let d = MappedDecoder::new(Format::Json, map, limits());
    let ok = format!(r#"{{"site":{{"line":"L"}},"machine":"m","ts":{T},"values":{{"a":1}}}}"#);
    assert!(wide(&d, &ok, None).is_ok());
    let cases = [
        (
            format!(r#"{{"machine":"m","ts":{T},"values":{{"a":1}}}}"#),
            "missing_field",
        ),
        (
            format!(r#"{{"site":{{"line":7}},"machine":"m","ts":{T},"values":{{"a":1}}}}"#),
            "wrong_type",
        ),
        (
            format!(r#"{{"site":{{"line":""}},"machine":"m","ts":{T},"values":{{"a":1}}}}"#),
            "empty_id",
        ),
        (
            format!(r#"{{"site":{{"line":"L"}},"machine":"m","ts":{T},"values":{{}}}}"#),
            "empty_values",
        ),
        (
            format!(r#"{{"site":{{"line":"L"}},"machine":"m","ts":{T},"values":{{"a":"x"}}}}"#),
            "non_numeric_value",
        ),
        (
            format!(r#"{{"site":{{"line":"L"}},"machine":"m","ts":{T},"values":{{"a":1e300}}}}"#),
            "value_out_of_range",
        ),
        (
            format!(r#"{{"site":{{"line":"L"}},"machine":"m","ts":{T},"values":{{"a":null}}}}"#),
            "non_finite_value",
        ),
        (
            format!(r#"{{"site":{{"line":"L"}},"machine":"m","ts":{T},"values":{{"a":1,"a":2}}}}"#),
            "duplicate_key",
        ),
        (
            format!(
                r#"{{"site":{{"line":"L","line":"M"}},"machine":"m","ts":{T},"values":{{"a":1}}}}"#
            ),
            "duplicate_key",
        ),
        ("[1,2]".to_string(), "not_object"),
        ("{not json".to_string(), "not_json"),
        (
            r#"{"site":{"line":"L"},"machine":"m","ts":946684799999,"values":{"a":1}}"#.to_string(),
            "timestamp_out_of_range",
        ),
    ];
    for (msg, reason) in cases {
        let got = wide(&d, &msg, None).map_err(|e| e.reason());
        assert_eq!(got.err(), Some(reason), "{msg}");
    }
    let too_long = FieldMap {
        line_constant: Some("x".repeat(300)),
        ..FieldMap::default()
    };
    assert_eq!(too_long.validate().unwrap_err().0, "line_constant");
    let not_pointer = FieldMap {
        values: "values".into(),
        ..FieldMap::default()
    };
    assert_eq!(not_pointer.validate().unwrap_err().0, "values");
}

/// One machine's readings of channels a and b, every second, as wide messages and as long
/// ones (one per channel), through the windower: the same windows and features.
#[test]
fn long_values_make_the_same_windows_as_wide_readings() {
    let channels = Arc::new(ChannelSet::new(["a", "b"]).unwrap());
    let cfg = WindowConfig::tumbling(10_000, 0, 600_000);
    let map = FieldMap {
        line_constant: Some("L".into()),
        machine: "/asset".into(),
        ts: "/time".into(),
        ..FieldMap::default()
    };
    let d_long = MappedDecoder::new(Format::JsonLong, map, limits());
    let mut by_wide = Windower::new(cfg.clone(), channels.clone()).unwrap();
    let mut by_long = Windower::new(cfg, channels).unwrap();
    let mut asm = LongAssembler::new();
    let mut seq = 0u64;
    for i in 0..35i64 {
        let (a, b) = (i as f64 * 0.5, 100.0 - i as f64);
        let ts = T + i * 1_000;
        let w = format!(r#"{{"line":"L","machine":"P-1","ts":{ts},"values":{{"a":{a},"b":{b}}}}}"#);
        by_wide
            .push(&decode_reading(w.as_bytes(), &limits()).unwrap(), seq)
            .unwrap();
        for (tag, v) in [("a", a), ("b", b)] {
            let m = format!(r#"{{"asset":"P-1","time":{ts},"tag":"{tag}","value":{v}}}"#);
            let value = long(&d_long, &m, None).unwrap();
            if let Some((r, s)) = asm.push(value, seq).reading {
                by_long.push(&r, s).unwrap();
            }
            seq += 1;
        }
        // A channel seen twice at one instant: counted, dropped.
        if i == 7 {
            let m = format!(r#"{{"asset":"P-1","time":{ts},"tag":"a","value":999}}"#);
            assert!(asm.push(long(&d_long, &m, None).unwrap(), seq).duplicate);
        }
    }
    assert_eq!(asm.duplicates(), 1);
    // The last instant is still being gathered; its oldest offset holds back the commit.
    assert_eq!(asm.open_instants(), 1);
    assert_eq!(asm.min_pending_seq(), Some(68));
    for (r, s) in asm.flush_older_than(i64::MAX) {
        by_long.push(&r, s).unwrap();
    }
    by_wide.flush_all();
    by_long.flush_all();
    let (w, l) = (by_wide.drain_closed(), by_long.drain_closed());
    assert_eq!(w.len(), 4);
    assert_eq!(w.len(), l.len());
    for (x, y) in w.iter().zip(&l) {
        assert_eq!((x.start_ms, x.n_readings), (y.start_ms, y.n_readings));
        assert_eq!(x.features, y.features);
    }
}

#[test]
fn an_older_instant_is_its_own_reading() {
    let mut asm = LongAssembler::new();
    let v = |ts: i64, ch: &str| LongValue {
        line: "L".into(),
        machine: "m".into(),
        ts_ms: ts,
        channel: ch.into(),
        value: 1.0,
    };
    assert!(asm.push(v(T, "a"), 0).reading.is_none());
    let out = asm.push(v(T - 1_000, "b"), 1).reading.unwrap();
    assert_eq!((out.0.ts_ms, out.1), (T - 1_000, 1));
    let out = asm.push(v(T + 1_000, "a"), 2).reading.unwrap();
    assert_eq!((out.0.ts_ms, out.0.values.len()), (T, 1));
    assert_eq!(asm.min_pending_seq(), Some(2));
}

#[test]
fn borrowed_values_gather_like_owned_ones_and_repeats_are_dropped() {
    // Two machines interleaved, one repeated channel, one idle flush: the borrowed path
    // (`decode_long` + `push_ref`) gathers exactly what the owned path does.
    let d = MappedDecoder::new(
        Format::JsonLong,
        FieldMap::default(),
        DecodeLimits::default(),
    );
    let msg = |m: &str, ts: i64, tag: &str, v: f64| {
        format!(r#"{{"line":"L","machine":"{m}","ts":{ts},"tag":"{tag}","value":{v}}}"#)
    };
    let msgs = [
        msg("m1", T, "a", 1.0),
        msg("m2", T, "a", 2.0),
        msg("m1", T, "b", 3.0),
        msg("m1", T, "b", 9.0),
        msg("m2", T, "b", 4.0),
        msg("m1", T + 1_000, "a", 5.0),
    ];
    let (mut owned, mut borrowed) = (LongAssembler::new(), LongAssembler::new());
    let (mut out_o, mut out_b) = (Vec::new(), Vec::new());
    for (seq, m) in msgs.iter().enumerate() {
        let Decoded::Value(v) = d.decode(m.as_bytes(), None).unwrap() else {
            panic!("a long value");
        };
        let o = owned.push(v, seq as u64);
        let b = borrowed.push_ref(d.decode_long(m.as_bytes(), None).unwrap(), seq as u64);
        assert_eq!(o, b);
        out_o.extend(o.reading);
        out_b.extend(b.reading);
    }
    assert_eq!((owned.duplicates(), borrowed.duplicates()), (1, 1));
    assert_eq!(borrowed.open_instants(), 2);
    out_o.extend(owned.flush_older_than(T + 1));
    out_b.extend(borrowed.flush_older_than(T + 1));
    assert_eq!(out_o, out_b);
    let m1: Vec<_> = out_b.iter().filter(|(r, _)| r.machine == "m1").collect();
    assert_eq!(m1.len(), 1);
    assert_eq!(
        (m1[0].0.values.clone(), m1[0].1),
        (vec![("a".to_string(), 1.0), ("b".to_string(), 3.0)], 0)
    );
    assert_eq!(borrowed.min_pending_seq(), Some(5));
}
