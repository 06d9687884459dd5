use super::proto::payload::{Metric, metric::Value as V};
use super::proto::{DataType, Payload};
use super::*;
use crate::decode::decode_reading;

const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn metric(name: &str, dt: DataType, v: V) -> Metric {
    Metric {
        name: Some(name.into()),
        datatype: Some(dt as u32),
        value: Some(v),
        ..Metric::default()
    }
}

fn payload(metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: Some(T0),
        seq: Some(0),
        metrics,
        ..Payload::default()
    }
    .encode_to_vec()
}

fn decoder() -> SparkplugDecoder {
    SparkplugDecoder::new(SparkplugMap::default(), None, limits())
}

fn decode(
    d: &mut SparkplugDecoder,
    topic: &str,
    bytes: &[u8],
) -> Result<SparkplugMessage, DecodeError> {
    d.decode(bytes, Some(topic.as_bytes()))
}

#[test]
fn a_device_data_message_is_one_reading_of_the_device() {
    let mut d = decoder();
    let msg = payload(vec![
        metric("temp", DataType::Double, V::DoubleValue(71.25)),
        metric("rpm", DataType::UInt16, V::IntValue(1450)),
        metric("offset", DataType::Int32, V::IntValue(-12i32 as u32)),
        metric("flow", DataType::Float, V::FloatValue(0.5)),
    ]);
    let m = decode(&mut d, "spBv1.0/press-3/DDATA/edge-1/m-17", &msg).unwrap();
    assert_eq!(m.kind, MessageType::DData);
    assert_eq!(m.skipped, Skipped::default());
    assert_eq!(
        m.readings,
        vec![Reading {
            line: "press-3".into(),
            machine: "m-17".into(),
            ts_ms: T0 as i64,
            values: vec![
                ("temp".into(), 71.25),
                ("rpm".into(), 1450.0),
                ("offset".into(), -12.0),
                ("flow".into(), 0.5),
            ],
        }]
    );
}

#[test]
fn the_same_reading_as_wide_json() {
    let json = format!(
        r#"{{"line":"press-3","machine":"m-17","ts":{T0},"values":{{"a":1.5,"b":-2e-3,"c":123456.789}}}}"#
    );
    let wide = decode_reading(json.as_bytes(), &limits()).unwrap();
    let (topic, bytes) = encode_ddata(&wide, "edge-1", 300);
    let m = decode(&mut decoder(), &topic, &bytes).unwrap();
    assert_eq!(m.readings, vec![wide]);
}

#[test]
fn aliases_and_datatypes_come_from_the_births() {
    let mut d = decoder();
    let mut birth = metric("Inputs/temp", DataType::Int16, V::IntValue(20));
    birth.alias = Some(7);
    let mut dev_birth = metric("speed", DataType::UInt32, V::LongValue(100));
    dev_birth.alias = Some(8);
    decode(&mut d, "spBv1.0/g/NBIRTH/edge-1", &payload(vec![birth])).unwrap();
    let b = decode(
        &mut d,
        "spBv1.0/g/DBIRTH/edge-1/m-2",
        &payload(vec![dev_birth]),
    )
    .unwrap();
    assert_eq!(
        b.readings[0].values,
        vec![("speed".into(), 100.0)],
        "births are readings"
    );
    // Data by alias only, without datatype (as the specification recommends).
    let by_alias = |alias, v| Metric {
        alias: Some(alias),
        value: Some(v),
        ..Metric::default()
    };
    let m = decode(
        &mut d,
        "spBv1.0/g/NDATA/edge-1",
        &payload(vec![by_alias(7, V::IntValue(-3i32 as u32))]),
    )
    .unwrap();
    assert_eq!(m.readings[0].machine, "edge-1");
    assert_eq!(m.readings[0].values, vec![("Inputs/temp".into(), -3.0)]);
    let m = decode(
        &mut d,
        "spBv1.0/g/DDATA/edge-1/m-2",
        &payload(vec![by_alias(8, V::LongValue(4_000_000_000))]),
    )
    .unwrap();
    assert_eq!(m.readings[0].machine, "m-2");
    assert_eq!(m.readings[0].values, vec![("speed".into(), 4e9)]);
    // By name without datatype: the birth's datatype (Int16) reads the sign.
    let named = Metric {
        name: Some("Inputs/temp".into()),
        value: Some(V::IntValue(0xFFFE)),
        ..Metric::default()
    };
    let m = decode(&mut d, "spBv1.0/g/NDATA/edge-1", &payload(vec![named])).unwrap();
    assert_eq!(m.readings[0].values, vec![("Inputs/temp".into(), -2.0)]);
    // An alias nobody defined, and a new session that voids the old aliases.
    let e = decode(
        &mut d,
        "spBv1.0/g/NDATA/edge-1",
        &payload(vec![by_alias(9, V::DoubleValue(1.0))]),
    );
    assert_eq!(e.unwrap_err().reason(), "sparkplug_unknown_alias");
    decode(&mut d, "spBv1.0/g/NBIRTH/edge-1", &payload(vec![])).unwrap();
    let e = decode(
        &mut d,
        "spBv1.0/g/NDATA/edge-1",
        &payload(vec![by_alias(7, V::IntValue(1))]),
    );
    assert_eq!(e.unwrap_err().reason(), "sparkplug_unknown_alias");
    // Another edge node has its own aliases.
    let e = decode(
        &mut d,
        "spBv1.0/g/NDATA/edge-2",
        &payload(vec![by_alias(8, V::IntValue(1))]),
    );
    assert_eq!(e.unwrap_err().reason(), "sparkplug_unknown_alias");
    assert_eq!(d.sessions(), 2);
}

#[test]
fn an_integer_without_any_datatype_is_refused_not_guessed() {
    let untyped = Metric {
        name: Some("count".into()),
        value: Some(V::IntValue(u32::MAX)),
        ..Metric::default()
    };
    let e = decode(
        &mut decoder(),
        "spBv1.0/g/DDATA/e/m",
        &payload(vec![untyped]),
    )
    .unwrap_err();
    assert_eq!(e.reason(), "sparkplug_unknown_datatype");
    // A float carries its type in its field.
    let float = Metric {
        name: Some("x".into()),
        value: Some(V::FloatValue(2.5)),
        ..Metric::default()
    };
    let m = decode(&mut decoder(), "spBv1.0/g/DDATA/e/m", &payload(vec![float])).unwrap();
    assert_eq!(m.readings[0].values, vec![("x".into(), 2.5)]);
}

#[test]
fn one_reading_per_instant_oldest_first() {
    let mut late = metric("a", DataType::Double, V::DoubleValue(1.0));
    late.timestamp = Some(T0 + 1000);
    let mut early = metric("a", DataType::Double, V::DoubleValue(0.5));
    early.timestamp = Some(T0 - 1000);
    early.is_historical = Some(true);
    let mut late_b = metric("b", DataType::Double, V::DoubleValue(2.0));
    late_b.timestamp = Some(T0 + 1000);
    let m = decode(
        &mut decoder(),
        "spBv1.0/g/DDATA/e/m",
        &payload(vec![late, early, late_b]),
    )
    .unwrap();
    let got: Vec<(i64, usize)> = m
        .readings
        .iter()
        .map(|r| (r.ts_ms, r.values.len()))
        .collect();
    assert_eq!(got, vec![(T0 as i64 - 1000, 1), (T0 as i64 + 1000, 2)]);
}

#[test]
fn what_is_not_a_measurement_is_skipped_and_counted() {
    let mut null = metric("t", DataType::Double, V::DoubleValue(0.0));
    null.is_null = Some(true);
    let msg = payload(vec![
        metric("on", DataType::Boolean, V::BooleanValue(true)),
        metric("recipe", DataType::String, V::StringValue("A".into())),
        metric("since", DataType::DateTime, V::LongValue(T0)),
        null,
        metric("p", DataType::Double, V::DoubleValue(3.0)),
    ]);
    let m = decode(&mut decoder(), "spBv1.0/g/DDATA/e/m", &msg).unwrap();
    assert_eq!(
        m.skipped,
        Skipped {
            non_numeric: 3,
            null: 1
        }
    );
    assert_eq!(m.readings[0].values, vec![("p".into(), 3.0)]);
    // Only skipped metrics: no reading, no error.
    let m = decode(
        &mut decoder(),
        "spBv1.0/g/DDATA/e/m",
        &payload(vec![metric(
            "on",
            DataType::Boolean,
            V::BooleanValue(false),
        )]),
    )
    .unwrap();
    assert!(m.readings.is_empty());
    // Deaths, commands and host state carry no readings; STATE is not even protobuf.
    for (topic, kind) in [
        ("spBv1.0/g/NDEATH/e", MessageType::NDeath),
        ("spBv1.0/g/DDEATH/e/m", MessageType::DDeath),
        ("spBv1.0/g/DCMD/e/m", MessageType::DCmd),
        ("spBv1.0/STATE/host-1", MessageType::State),
    ] {
        let m = decode(&mut decoder(), topic, br#"{"online":true}"#).unwrap();
        assert_eq!((m.kind, m.readings.len()), (kind, 0), "{topic}");
    }
}

#[test]
fn each_kind_of_bad_message_has_its_reason() {
    let ok = payload(vec![metric("a", DataType::Double, V::DoubleValue(1.0))]);
    let mut d = decoder();
    let reason = |d: &mut SparkplugDecoder, key: Option<&str>, bytes: &[u8]| {
        d.decode(bytes, key.map(str::as_bytes))
            .unwrap_err()
            .reason()
    };
    assert_eq!(reason(&mut d, None, &ok), "sparkplug_topic");
    assert_eq!(
        reason(&mut d, Some("plant/g/DDATA/e/m"), &ok),
        "sparkplug_topic"
    );
    assert_eq!(
        reason(&mut d, Some("spBv1.0/g/DDATA/e"), &ok),
        "sparkplug_topic"
    );
    assert_eq!(
        reason(&mut d, Some("spBv1.0/g/XDATA/e/m"), &ok),
        "sparkplug_topic"
    );
    assert_eq!(
        reason(&mut d, Some("spBv1.0/g/NDATA/e/m"), &ok),
        "sparkplug_topic"
    );
    let topic = Some("spBv1.0/g/DDATA/e/m");
    assert_eq!(reason(&mut d, topic, b"\xff\xff\xff"), "not_protobuf");
    assert_eq!(
        reason(
            &mut d,
            topic,
            &payload(vec![metric(
                "a",
                DataType::Double,
                V::DoubleValue(f64::NAN)
            )])
        ),
        "non_finite_value"
    );
    assert_eq!(
        reason(
            &mut d,
            topic,
            &payload(vec![metric("a", DataType::Double, V::DoubleValue(1e300))])
        ),
        "value_out_of_range"
    );
    assert_eq!(
        reason(
            &mut d,
            topic,
            &payload(vec![metric("a", DataType::UInt8, V::IntValue(256))])
        ),
        "value_out_of_range"
    );
    let twice = payload(vec![
        metric("a", DataType::Double, V::DoubleValue(1.0)),
        metric("a", DataType::Double, V::DoubleValue(2.0)),
    ]);
    assert_eq!(reason(&mut d, topic, &twice), "duplicate_channel");
    let nameless = payload(vec![Metric {
        value: Some(V::DoubleValue(1.0)),
        ..Metric::default()
    }]);
    assert_eq!(reason(&mut d, topic, &nameless), "missing_field");
    let no_time = Payload {
        metrics: vec![metric("a", DataType::Double, V::DoubleValue(1.0))],
        ..Payload::default()
    }
    .encode_to_vec();
    assert_eq!(reason(&mut d, topic, &no_time), "missing_field");
    let mut ancient = metric("a", DataType::Double, V::DoubleValue(1.0));
    ancient.timestamp = Some(1000);
    assert_eq!(
        reason(&mut d, topic, &payload(vec![ancient])),
        "timestamp_out_of_range"
    );
    let small = DecodeLimits {
        max_message_bytes: 8,
        ..limits()
    };
    let mut d_small = SparkplugDecoder::new(SparkplugMap::default(), None, small);
    assert_eq!(reason(&mut d_small, topic, &ok), "oversized");
}

#[test]
fn the_machine_from_the_edge_node_or_a_metric_and_a_constant_line() {
    let msg = payload(vec![
        metric("asset", DataType::String, V::StringValue("P-104".into())),
        metric("a", DataType::Double, V::DoubleValue(1.0)),
    ]);
    let map = SparkplugMap {
        machine: SparkplugMachine::EdgeNode,
        machine_metric: None,
    };
    let mut d = SparkplugDecoder::new(map, Some("line-9".into()), limits());
    let m = decode(&mut d, "spBv1.0/g/DDATA/edge-1/dev-a", &msg).unwrap();
    let r = &m.readings[0];
    assert_eq!((r.line.as_str(), r.machine.as_str()), ("line-9", "edge-1"));
    assert_eq!(r.values, vec![("dev-a/a".into(), 1.0)]);

    let map = SparkplugMap {
        machine: SparkplugMachine::Metric,
        machine_metric: Some("asset".into()),
    };
    assert!(map.validate().is_ok());
    let mut d = SparkplugDecoder::new(map, None, limits());
    let m = decode(&mut d, "spBv1.0/g/DDATA/edge-1/dev-a", &msg).unwrap();
    assert_eq!(m.readings[0].machine, "P-104");
    // Remembered for the messages that leave it out (report by exception).
    let only_a = payload(vec![metric("a", DataType::Double, V::DoubleValue(2.0))]);
    let m = decode(&mut d, "spBv1.0/g/DDATA/edge-1/dev-a", &only_a).unwrap();
    assert_eq!(m.readings[0].machine, "P-104");
    // Never seen for another device: refused.
    let e = decode(&mut d, "spBv1.0/g/DDATA/edge-1/dev-b", &only_a).unwrap_err();
    assert_eq!(e.to_string(), "missing field `machine`");
    let incomplete = SparkplugMap {
        machine: SparkplugMachine::Metric,
        machine_metric: None,
    };
    assert!(incomplete.validate().is_err());
}
