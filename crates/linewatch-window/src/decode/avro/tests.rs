use std::collections::HashMap;

use apache_avro::types::Value as Avro;

use super::*;
use crate::decode::{Reading, decode_reading};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// A wide reading: line, machine, a timestamp-millis and a map of doubles.
const WIDE: &str = r#"{"type":"record","name":"Reading","fields":[
  {"name":"line","type":"string"},
  {"name":"machine","type":"string"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"values","type":{"type":"map","values":"double"}}]}"#;

/// One value per record, a nullable value and the time in micros (a historian's shape).
const LONG: &str = r#"{"type":"record","name":"Tag","fields":[
  {"name":"asset","type":"string"},
  {"name":"tag","type":"string"},
  {"name":"value","type":["null","double"]},
  {"name":"time","type":{"type":"long","logicalType":"timestamp-micros"}}]}"#;

#[derive(Debug, Default)]
struct Registry {
    schemas: HashMap<u32, Result<String, SchemaFetchError>>,
    calls: usize,
}

impl SchemaSource for Registry {
    fn schema(&mut self, id: u32) -> Result<String, SchemaFetchError> {
        self.calls += 1;
        self.schemas
            .get(&id)
            .cloned()
            .unwrap_or_else(|| Err(SchemaFetchError::NotFound(format!("{id}"))))
    }
}

fn registry() -> Registry {
    let mut r = Registry::default();
    r.schemas.insert(1, Ok(WIDE.into()));
    r.schemas.insert(2, Ok(LONG.into()));
    r.schemas.insert(
        3,
        Err(SchemaFetchError::Unavailable("connection refused".into())),
    );
    r.schemas.insert(4, Ok("{not a schema".into()));
    r
}

fn framed(id: u32, schema: &str, value: Avro) -> Vec<u8> {
    let schema = Schema::parse_str(schema).unwrap();
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(apache_avro::to_avro_datum(&schema, value).unwrap());
    out
}

fn wide_value(values: &[(&str, f64)]) -> Avro {
    Avro::Record(vec![
        ("line".into(), Avro::String("press-3".into())),
        ("machine".into(), Avro::String("m-17".into())),
        ("ts".into(), Avro::TimestampMillis(T0)),
        (
            "values".into(),
            Avro::Map(
                values
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), Avro::Double(*v)))
                    .collect(),
            ),
        ),
    ])
}

fn wide_decoder() -> AvroDecoder {
    AvroDecoder::new(
        Format::Avro,
        FieldMap::default(),
        Box::new(registry()),
        DecodeLimits::default(),
    )
}

fn reading(d: Decoded) -> Reading {
    match d {
        Decoded::Reading(r) => r,
        other => panic!("not a reading: {other:?}"),
    }
}

#[test]
fn a_wide_record_is_the_reading_the_same_json_is() {
    let mut d = wide_decoder();
    let msg = framed(1, WIDE, wide_value(&[("temp", 71.25), ("rpm", -3.5)]));
    let mut got = reading(d.decode(&msg, None).unwrap());
    let json = format!(
        r#"{{"line":"press-3","machine":"m-17","ts":{T0},"values":{{"rpm":-3.5,"temp":71.25}}}}"#
    );
    let mut want = decode_reading(json.as_bytes(), &DecodeLimits::default()).unwrap();
    got.values.sort_by(|a, b| a.0.cmp(&b.0));
    want.values.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    // The schema was fetched once and is reused.
    d.decode(&msg, None).unwrap();
    assert_eq!(d.schemas(), 1);
}

#[test]
fn a_long_record_with_a_union_value_and_micros() {
    let map = FieldMap {
        line_constant: Some("plant-b".into()),
        machine: "/asset".into(),
        ts: "/time".into(),
        ts_format: crate::TsFormat::EpochUs,
        ..FieldMap::default()
    };
    let mut d = AvroDecoder::new(
        Format::AvroLong,
        map,
        Box::new(registry()),
        DecodeLimits::default(),
    );
    let value = |v: Avro| {
        Avro::Record(vec![
            ("asset".into(), Avro::String("P-104".into())),
            ("tag".into(), Avro::String("temp_c".into())),
            ("value".into(), v),
            ("time".into(), Avro::TimestampMicros(T0 * 1000 + 999)),
        ])
    };
    let msg = framed(2, LONG, value(Avro::Union(1, Box::new(Avro::Double(71.2)))));
    match d.decode(&msg, None).unwrap() {
        Decoded::Value(v) => {
            assert_eq!(
                (
                    v.line.as_str(),
                    v.machine.as_str(),
                    v.ts_ms,
                    v.channel.as_str(),
                    v.value
                ),
                ("plant-b", "P-104", T0, "temp_c", 71.2)
            );
        }
        other => panic!("not a long value: {other:?}"),
    }
    // A null value is not a number: refused, never a zero.
    let msg = framed(2, LONG, value(Avro::Union(0, Box::new(Avro::Null))));
    assert_eq!(
        d.decode(&msg, None).unwrap_err().reason(),
        "non_finite_value"
    );
}

#[test]
fn each_kind_of_bad_message_has_its_reason() {
    let mut d = wide_decoder();
    let ok = framed(1, WIDE, wide_value(&[("a", 1.0)]));
    let reason = |d: &mut AvroDecoder, bytes: &[u8]| d.decode(bytes, None).unwrap_err().reason();
    assert_eq!(reason(&mut d, b""), "not_avro");
    assert_eq!(reason(&mut d, br#"{"line":"x"}"#), "not_avro");
    assert_eq!(reason(&mut d, &[0, 0, 0]), "not_avro");
    assert_eq!(reason(&mut d, &ok[..ok.len() - 3]), "not_avro");
    let mut longer = ok.clone();
    longer.push(7);
    assert_eq!(reason(&mut d, &longer), "not_avro");
    let with_id = |id: u32| {
        let mut m = ok.clone();
        m[1..5].copy_from_slice(&id.to_be_bytes());
        m
    };
    assert_eq!(reason(&mut d, &with_id(9)), "avro_unknown_schema");
    assert_eq!(reason(&mut d, &with_id(3)), "avro_schema_unavailable");
    assert_eq!(reason(&mut d, &with_id(4)), "avro_schema_unsupported");
    let nan = framed(1, WIDE, wide_value(&[("a", f64::NAN)]));
    assert_eq!(reason(&mut d, &nan), "non_finite_value");
    let huge = framed(1, WIDE, wide_value(&[("a", 1e300)]));
    assert_eq!(reason(&mut d, &huge), "value_out_of_range");
    let empty = framed(1, WIDE, wide_value(&[]));
    assert_eq!(reason(&mut d, &empty), "empty_values");
    let small = DecodeLimits {
        max_message_bytes: 8,
        ..DecodeLimits::default()
    };
    let mut d_small = AvroDecoder::new(
        Format::Avro,
        FieldMap::default(),
        Box::new(registry()),
        small,
    );
    assert_eq!(reason(&mut d_small, &ok), "oversized");
}

#[test]
fn an_unavailable_registry_is_asked_again_on_the_next_message() {
    let mut r = registry();
    r.schemas
        .insert(1, Err(SchemaFetchError::Unavailable("timed out".into())));
    let mut d = AvroDecoder::new(
        Format::Avro,
        FieldMap::default(),
        Box::new(r),
        DecodeLimits::default(),
    );
    let ok = framed(1, WIDE, wide_value(&[("a", 1.0)]));
    assert_eq!(
        d.decode(&ok, None).unwrap_err().reason(),
        "avro_schema_unavailable"
    );
    assert_eq!(
        d.decode(&ok, None).unwrap_err().reason(),
        "avro_schema_unavailable"
    );
    assert_eq!(d.schemas(), 0, "failures are not cached");
}
