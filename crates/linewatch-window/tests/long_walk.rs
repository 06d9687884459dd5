//! Property test of the long format's one-pass walk: on any message without a repeated key,
//! `MappedDecoder::decode` (the walk, or its fallback) gives exactly what reading the same
//! message as a JSON tree gives (`MappedDecoder::decode_tree`), value or error, for several
//! mappings, timestamp formats and message keys.
#![allow(clippy::unwrap_used)]

use linewatch_window::*;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// A millisecond time inside the accepted range.
const T: i64 = 1_796_025_600_250;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1_000i64..1_000).prop_map(|i| json!(i)),
        (0i64..5_000).prop_map(|d| json!(T + d)),
        (0i64..5_000).prop_map(|d| json!((T + d) / 1_000)),
        (0i64..5_000).prop_map(|d| json!((T + d) * 1_000)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        (-1.0e6f64..1.0e6).prop_map(|x| json!(x)),
        Just(json!(1.0e300)),
        Just(json!(1_796_025_600.25)),
        prop_oneof![
            Just(""),
            Just("press-3"),
            Just("m-17"),
            Just("temp_c"),
            Just("a\"b/c"),
            Just("é ü"),
            Just("line.with.dots"),
            Just("2026-11-30T08:00:00.250Z"),
            Just("2026-11-30 08:00"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

/// A field's value: mostly a scalar, sometimes an object or an array around one.
fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => scalar(),
        1 => scalar().prop_map(|v| json!({ "asset": v, "other": [1, {"x": null}] })),
        1 => scalar().prop_map(|v| json!([v, {"asset": "in-array"}])),
    ]
}

/// A message: a random subset of the fields the mappings point at, plus others.
fn message() -> impl Strategy<Value = Value> {
    let keys = [
        "line", "machine", "ts", "time", "tag", "value", "meta", "extra",
    ];
    proptest::collection::vec((0..keys.len(), field()), 0..9).prop_map(move |fields| {
        let mut m = Map::new();
        for (k, v) in fields {
            m.insert(keys[k].to_string(), v);
        }
        Value::Object(m)
    })
}

fn mapping(variant: u8) -> FieldMap {
    let mut f = FieldMap::default();
    match variant {
        0 => {}
        1 => {
            f.machine = "/meta/asset".into();
            f.ts = "/time".into();
            f.ts_format = TsFormat::EpochS;
        }
        2 => {
            f.machine_from_key = true;
            f.line_constant = Some("press-3".into());
            f.ts_format = TsFormat::EpochUs;
        }
        3 => {
            f.ts_format = TsFormat::Rfc3339;
            f.tag = "/meta/asset".into();
        }
        _ => {
            // A pointer into an array: the walk falls back to the tree.
            f.value = "/meta/0".into();
            f.ts_format = TsFormat::EpochMs;
        }
    }
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_walk_reads_what_the_tree_reads(
        msg in message(),
        variant in 0u8..5,
        key in prop_oneof![
            Just(None),
            Just(Some(b"k-1".to_vec())),
            Just(Some(vec![0xff, 0xfe])),
        ],
    ) {
        let d = MappedDecoder::new(Format::JsonLong, mapping(variant), DecodeLimits::default());
        let text = msg.to_string();
        let walked = d.decode(text.as_bytes(), key.as_deref());
        let tree = d.decode_tree(&msg, key.as_deref());
        prop_assert_eq!(&walked, &tree, "message {}", text);
        // The borrowed value is the owned one.
        if let Ok(Decoded::Value(v)) = walked {
            let b = d.decode_long(text.as_bytes(), key.as_deref()).unwrap();
            prop_assert_eq!(b.into_owned(), v);
        }
    }
}

#[test]
fn some_generated_messages_decode() {
    // The generator reaches the success path for every mapping, not only errors.
    let ok = [
        (
            0,
            json!({"line": "L", "machine": "m", "ts": T, "tag": "a", "value": 1.5}),
        ),
        (
            1,
            json!({"line": "L", "meta": {"asset": "m"}, "time": T / 1_000, "tag": "a", "value": 2}),
        ),
        (2, json!({"ts": T * 1_000, "tag": "a", "value": -3.0})),
        (
            3,
            json!({"line": "L", "machine": "m", "ts": "2026-11-30T08:00:00.250Z", "meta": {"asset": "a"}, "value": 0}),
        ),
        (
            4,
            json!({"line": "L", "machine": "m", "ts": T, "tag": "a", "meta": [7.5]}),
        ),
    ];
    for (variant, msg) in ok {
        let d = MappedDecoder::new(Format::JsonLong, mapping(variant), DecodeLimits::default());
        let got = d.decode(msg.to_string().as_bytes(), Some(b"k-1"));
        assert!(matches!(got, Ok(Decoded::Value(_))), "{variant}: {got:?}");
    }
}
