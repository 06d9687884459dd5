use super::*;

fn lim() -> DecodeLimits {
    DecodeLimits::default()
}

fn dec(s: &str) -> Result<Reading, DecodeError> {
    decode_reading(s.as_bytes(), &lim())
}

const GOOD: &str = r#"{"line":"press-3","machine":"m-17","ts":"2026-11-28T12:00:00.123Z","values":{"temp_c":71.2,"vib_rms":0.031}}"#;
const GOOD_TS: i64 = 1_795_867_200_123;

#[test]
fn decodes_the_contract_example() {
    let r = dec(GOOD).unwrap();
    assert_eq!(r.line, "press-3");
    assert_eq!(r.machine, "m-17");
    assert_eq!(r.ts_ms, GOOD_TS);
    assert_eq!(
        r.values,
        vec![("temp_c".to_owned(), 71.2), ("vib_rms".to_owned(), 0.031)]
    );
    let expected = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00.123Z")
        .unwrap()
        .timestamp_millis();
    assert_eq!(expected, GOOD_TS);
}

#[test]
fn borrowed_decode_borrows_plain_strings() {
    let r = decode_reading_ref(GOOD.as_bytes(), &lim()).unwrap();
    assert!(matches!(r.line, Cow::Borrowed(_)));
    assert!(matches!(r.machine, Cow::Borrowed(_)));
    assert!(matches!(r.values[0].0, Cow::Borrowed(_)));
    assert_eq!(r.into_owned(), dec(GOOD).unwrap());
}

#[test]
fn integer_epoch_ms_timestamp() {
    let r = dec(r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1}}"#).unwrap();
    assert_eq!(r.ts_ms, GOOD_TS);
    assert_eq!(r.values, vec![("a".to_owned(), 1.0)]);
}

#[test]
fn offsets_and_fractions() {
    let cases = [
        ("2026-11-28T14:00:00.123+02:00", GOOD_TS),
        ("2026-11-28T07:30:00.123-04:30", GOOD_TS),
        ("2026-11-28T12:00:00.1239Z", GOOD_TS),
        ("2026-11-28T12:00:00.123456789Z", GOOD_TS),
        ("2026-11-28T12:00:00Z", GOOD_TS - 123),
        ("2026-11-28t12:00:00.123z", GOOD_TS),
        ("2026-11-28T12:00:00.12Z", GOOD_TS - 3),
    ];
    for (ts, want) in cases {
        let msg = format!(r#"{{"line":"l","machine":"m","ts":"{ts}","values":{{"a":1}}}}"#);
        assert_eq!(dec(&msg).unwrap().ts_ms, want, "{ts}");
    }
}

#[test]
fn escaped_strings_are_unescaped() {
    let msg = r#"{"li\u006ee":"press\"3","machine":"m\\17","ts":1795867200123,"values":{"t\u00e9mp":2.5,"b":-1e-3}}"#;
    let r = decode_reading_ref(msg.as_bytes(), &lim()).unwrap();
    assert_eq!(r.line, "press\"3");
    assert!(matches!(r.line, Cow::Owned(_)));
    assert_eq!(r.machine, "m\\17");
    assert_eq!(r.values[0].0, "t\u{e9}mp");
    assert_eq!(r.values[1].1, -1e-3);
}

#[test]
fn unknown_fields_are_ignored() {
    let msg = r#"{"v":2,"extra":{"nested":[1,2,{"x":null}]},"line":"l","machine":"m","ts":1795867200123,"values":{"a":1},"defect":"whatever","tail":[true]}"#;
    let r = dec(msg).unwrap();
    assert_eq!(r.values.len(), 1);
}

#[test]
fn number_forms_accepted() {
    let r =
            dec(r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":-3,"b":18446744073709551615,"c":1.5e3,"d":-0.0}}"#)
                .unwrap();
    let v: Vec<f64> = r.values.iter().map(|(_, x)| *x).collect();
    assert_eq!(v, vec![-3.0, 18446744073709551615.0, 1500.0, -0.0]);
}

fn err(s: &str) -> DecodeError {
    dec(s).unwrap_err()
}

#[test]
fn oversized() {
    let l = DecodeLimits {
        max_message_bytes: 10,
        ..lim()
    };
    let e = decode_reading(GOOD.as_bytes(), &l).unwrap_err();
    assert_eq!(
        e,
        DecodeError::Oversized {
            len: GOOD.len(),
            max: 10
        }
    );
    assert_eq!(e.reason(), "oversized");
}

#[test]
fn not_utf8() {
    let mut b = GOOD.as_bytes().to_vec();
    b[10] = 0xff;
    let e = decode_reading(&b, &lim()).unwrap_err();
    assert_eq!(e, DecodeError::NotUtf8 { valid_up_to: 10 });
    assert_eq!(e.reason(), "not_utf8");
}

#[test]
fn not_json() {
    for s in [
        "",
        "{",
        r#"{"line":"l","#,
        r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1}} x"#,
        r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1,}}"#,
        r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":NaN}}"#,
        r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1"#,
    ] {
        let e = err(s);
        assert!(matches!(e, DecodeError::NotJson(_)), "{s}: {e:?}");
        assert_eq!(e.reason(), "not_json");
    }
}

#[test]
fn not_an_object() {
    for (s, found) in [
        ("[1,2]", "array"),
        ("3", "integer"),
        ("\"x\"", "string"),
        ("null", "null"),
        ("true", "boolean"),
        ("1.5", "float"),
    ] {
        let e = err(s);
        assert_eq!(e, DecodeError::NotAnObject { found }, "{s}");
        assert_eq!(e.reason(), "not_object");
    }
}

#[test]
fn missing_fields() {
    let cases = [
        (
            r#"{"machine":"m","ts":1795867200123,"values":{"a":1}}"#,
            "line",
        ),
        (
            r#"{"line":"l","ts":1795867200123,"values":{"a":1}}"#,
            "machine",
        ),
        (r#"{"line":"l","machine":"m","values":{"a":1}}"#, "ts"),
        (r#"{"line":"l","machine":"m","ts":1795867200123}"#, "values"),
        ("{}", "line"),
    ];
    for (s, field) in cases {
        let e = err(s);
        assert_eq!(e, DecodeError::MissingField(field), "{s}");
        assert_eq!(e.reason(), "missing_field");
    }
}

#[test]
fn duplicate_fields() {
    let e = err(r#"{"line":"l","line":"k","machine":"m","ts":1795867200123,"values":{"a":1}}"#);
    assert_eq!(e, DecodeError::DuplicateField("line"));
    assert_eq!(e.reason(), "duplicate_field");
    let e = err(r#"{"line":"l","machine":"m","ts":1,"ts":2,"values":{"a":1}}"#);
    assert_eq!(e, DecodeError::DuplicateField("ts"));
    let e =
        err(r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1},"values":{"a":1}}"#);
    assert_eq!(e, DecodeError::DuplicateField("values"));
}

#[test]
fn wrong_types() {
    let cases = [
        (
            r#"{"line":3,"machine":"m","ts":1795867200123,"values":{"a":1}}"#,
            "line",
            "integer",
        ),
        (
            r#"{"line":"l","machine":null,"ts":1795867200123,"values":{"a":1}}"#,
            "machine",
            "null",
        ),
        (
            r#"{"line":"l","machine":["m"],"ts":1795867200123,"values":{"a":1}}"#,
            "machine",
            "array",
        ),
        (
            r#"{"line":"l","machine":"m","ts":true,"values":{"a":1}}"#,
            "ts",
            "boolean",
        ),
        (
            r#"{"line":"l","machine":"m","ts":{"ms":1},"values":{"a":1}}"#,
            "ts",
            "object",
        ),
        (
            r#"{"line":"l","machine":"m","ts":1795867200123,"values":[1,2]}"#,
            "values",
            "array",
        ),
        (
            r#"{"line":"l","machine":"m","ts":1795867200123,"values":null}"#,
            "values",
            "null",
        ),
        (
            r#"{"line":"l","machine":"m","ts":1795867200123,"values":"a=1"}"#,
            "values",
            "string",
        ),
    ];
    for (s, field, found) in cases {
        let e = err(s);
        match &e {
            DecodeError::WrongType {
                field: f, found: k, ..
            } => {
                assert_eq!((*f, *k), (field, found), "{s}");
            }
            other => panic!("{s}: {other:?}"),
        }
        assert_eq!(e.reason(), "wrong_type");
    }
}

#[test]
fn empty_ids() {
    let e = err(r#"{"line":"","machine":"m","ts":1795867200123,"values":{"a":1}}"#);
    assert_eq!(e, DecodeError::EmptyId("line"));
    assert_eq!(e.reason(), "empty_id");
    let e = err(r#"{"line":"l","machine":"","ts":1795867200123,"values":{"a":1}}"#);
    assert_eq!(e, DecodeError::EmptyId("machine"));
}

#[test]
fn empty_values() {
    let e = err(r#"{"line":"l","machine":"m","ts":1795867200123,"values":{}}"#);
    assert_eq!(e, DecodeError::EmptyValues);
    assert_eq!(e.reason(), "empty_values");
}

#[test]
fn too_many_channels() {
    let l = DecodeLimits {
        max_channels: 2,
        ..lim()
    };
    let ok = r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1,"b":2}}"#;
    assert!(decode_reading(ok.as_bytes(), &l).is_ok());
    let s = r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1,"b":2,"c":3}}"#;
    let e = decode_reading(s.as_bytes(), &l).unwrap_err();
    assert_eq!(e, DecodeError::TooManyChannels { max: 2 });
    assert_eq!(e.reason(), "too_many_channels");
}

#[test]
fn duplicate_channel() {
    let e = err(r#"{"line":"l","machine":"m","ts":1795867200123,"values":{"a":1,"a":2}}"#);
    assert_eq!(
        e,
        DecodeError::DuplicateChannel {
            channel: "a".into()
        }
    );
    assert_eq!(e.reason(), "duplicate_channel");
}

#[test]
fn non_finite_values() {
    for v in ["1e999", "-1e999", "null", "123456789e400"] {
        let s = format!(
            r#"{{"line":"l","machine":"m","ts":1795867200123,"values":{{"a":1,"temp":{v}}}}}"#
        );
        let e = err(&s);
        assert_eq!(
            e,
            DecodeError::NonFiniteValue {
                channel: "temp".into()
            },
            "{v}"
        );
        assert_eq!(e.reason(), "non_finite_value");
    }
}

fn with_value(v: &str) -> String {
    format!(r#"{{"line":"l","machine":"m","ts":1795867200123,"values":{{"a":1,"temp":{v}}}}}"#)
}

#[test]
fn values_beyond_the_feature_range() {
    // Features are Float32: 1e300 (an overflow sentinel) must never become one.
    for (v, x) in [
        ("1e300", 1e300),
        ("-1e300", -1e300),
        ("3.5e38", 3.5e38),
        ("1e39", 1e39),
    ] {
        let e = err(&with_value(v));
        assert_eq!(
            e,
            DecodeError::ValueOutOfRange {
                channel: "temp".into(),
                value: x
            },
            "{v}"
        );
        assert_eq!(e.reason(), "value_out_of_range");
        assert!(e.to_string().contains("`temp`"), "{e}");
    }
    for (v, x) in [
        ("1e6", 1e6),
        ("-1e6", -1e6),
        ("3.4e38", 3.4e38),
        (
            "340282346638528859811704183484516925440",
            f64::from(f32::MAX),
        ),
        ("-3.4e38", -3.4e38),
    ] {
        let r = dec(&with_value(v)).unwrap();
        assert_eq!(r.values[1].1, x, "{v}");
    }
}

fn with_line(line: &str) -> String {
    format!(r#"{{"line":"{line}","machine":"m","ts":1795867200123,"values":{{"a":1}}}}"#)
}

#[test]
fn long_utf8_line_names_are_accepted_whole() {
    // 97 characters, 11 of them 2-byte: 108 bytes, kept as UTF-8 in the folder name.
    let line = format!("Prüfstraße Nord — Härterei {}", "x".repeat(70));
    assert_eq!(line.chars().count(), 97);
    let r = dec(&with_line(&line)).unwrap();
    assert_eq!(r.line, line);
    assert!(line_path_len(&line) <= MAX_LINE_PATH_BYTES);
}

#[test]
fn line_too_long_for_one_path_component() {
    for (line, bytes) in [
        ("a".repeat(251), 251),
        ("ü".repeat(126), 252),
        ("/".repeat(84), 252),
        (format!("{}.", "a".repeat(248)), 251),
    ] {
        let e = err(&with_line(&line));
        assert_eq!(e.reason(), "line_too_long", "{line}");
        match &e {
            DecodeError::LineTooLong {
                line: l,
                encoded_bytes,
                max,
            } => {
                assert_eq!((*encoded_bytes, *max), (bytes, MAX_LINE_PATH_BYTES));
                assert!(line.starts_with(l.trim_end_matches("...")));
            }
            other => panic!("{other:?}"),
        }
        let msg = format!(r#"{{"line":"{line}","machine":"m","ts":1795867200123,"defect":true}}"#);
        assert_eq!(
            decode_inspection(msg.as_bytes(), &lim())
                .unwrap_err()
                .reason(),
            "line_too_long"
        );
    }
    for line in [
        "a".repeat(250),
        "ü".repeat(125),
        "/".repeat(83),
        "日".repeat(83),
    ] {
        assert!(dec(&with_line(&line)).is_ok(), "{line}");
    }
    assert_eq!(err(&with_line(&"日".repeat(84))).reason(), "line_too_long");
}

#[test]
fn line_path_len_counts_the_encoding() {
    assert_eq!(line_path_len("press-3"), 7);
    assert_eq!(line_path_len("Line_A.v2"), 9);
    assert_eq!(line_path_len("../etc"), 12);
    assert_eq!(line_path_len("a..b"), 6);
    assert_eq!(line_path_len("x=1 y"), 9);
    assert_eq!(line_path_len("Prüf (a+b)"), 13);
    assert_eq!(line_path_len("a\u{85}b"), 8);
    assert_eq!(line_path_len("__HIVE_DEFAULT_PARTITION__"), 28);
}

#[test]
fn non_numeric_values() {
    for (v, found) in [
        ("\"1.5\"", "string"),
        ("true", "boolean"),
        ("[1]", "array"),
        ("{\"x\":1}", "object"),
    ] {
        let s =
            format!(r#"{{"line":"l","machine":"m","ts":1795867200123,"values":{{"temp":{v}}}}}"#);
        let e = err(&s);
        assert_eq!(
            e,
            DecodeError::NonNumericValue {
                channel: "temp".into(),
                found
            },
            "{v}"
        );
        assert_eq!(e.reason(), "non_numeric_value");
    }
}

#[test]
fn bad_timestamps() {
    for ts in [
        "\"yesterday\"",
        "\"2026-11-28 12:00:00\"",
        "\"2026-13-28T12:00:00Z\"",
        "\"2026-02-30T12:00:00Z\"",
        "\"2026-11-28T24:00:00Z\"",
        "\"2026-11-28T12:00:00\"",
        "\"\"",
        "1795867200123.5",
        "1e12",
        "18446744073709551615",
    ] {
        let s = format!(r#"{{"line":"l","machine":"m","ts":{ts},"values":{{"a":1}}}}"#);
        let e = err(&s);
        assert!(matches!(e, DecodeError::BadTimestamp(_)), "{ts}: {e:?}");
        assert_eq!(e.reason(), "bad_timestamp");
    }
}

#[test]
fn timestamp_out_of_range() {
    for (ts, ms) in [
        ("0", 0),
        ("-5", -5),
        ("\"1999-12-31T23:59:59.999Z\"", YEAR_2000_MS - 1),
        ("\"2100-01-01T00:00:00.001Z\"", YEAR_2100_MS + 1),
    ] {
        let s = format!(r#"{{"line":"l","machine":"m","ts":{ts},"values":{{"a":1}}}}"#);
        let e = err(&s);
        assert_eq!(e, DecodeError::TimestampOutOfRange { ts_ms: ms }, "{ts}");
        assert_eq!(e.reason(), "timestamp_out_of_range");
    }
    for ts in ["\"2000-01-01T00:00:00Z\"", "\"2100-01-01T00:00:00Z\""] {
        let s = format!(r#"{{"line":"l","machine":"m","ts":{ts},"values":{{"a":1}}}}"#);
        assert!(dec(&s).is_ok(), "{ts}");
    }
}

#[test]
fn error_text_is_bounded() {
    let long = "x".repeat(10_000);
    let s =
        format!(r#"{{"line":"l","machine":"m","ts":1795867200123,"values":{{"{long}":null}}}}"#);
    let e = err(&s);
    assert!(e.to_string().len() < 200);
}

#[test]
fn every_reason_is_listed() {
    let all = [
        DecodeError::Oversized { len: 1, max: 0 },
        DecodeError::NotUtf8 { valid_up_to: 0 },
        DecodeError::NotJson(String::new()),
        DecodeError::NotAnObject { found: "array" },
        DecodeError::MissingField("line"),
        DecodeError::DuplicateField("line"),
        DecodeError::DuplicateKey { key: "k".into() },
        DecodeError::WrongType {
            field: "line",
            expected: "",
            found: "",
        },
        DecodeError::EmptyId("line"),
        DecodeError::LineTooLong {
            line: "l".into(),
            encoded_bytes: 251,
            max: 250,
        },
        DecodeError::EmptyValues,
        DecodeError::TooManyChannels { max: 1 },
        DecodeError::DuplicateChannel {
            channel: "a".into(),
        },
        DecodeError::NonFiniteValue {
            channel: "a".into(),
        },
        DecodeError::ValueOutOfRange {
            channel: "a".into(),
            value: 1e300,
        },
        DecodeError::NonNumericValue {
            channel: "a".into(),
            found: "",
        },
        DecodeError::BadTimestamp(String::new()),
        DecodeError::TimestampOutOfRange { ts_ms: 0 },
        DecodeError::SparkplugTopic(String::new()),
        DecodeError::NotProtobuf(String::new()),
        DecodeError::UnknownAlias { alias: 1 },
        DecodeError::UnknownDatatype {
            channel: "a".into(),
        },
        DecodeError::NotAvro(String::new()),
        DecodeError::AvroUnknownSchema { id: 1 },
        DecodeError::AvroSchemaUnavailable {
            id: 1,
            why: String::new(),
        },
        DecodeError::AvroSchemaUnsupported {
            id: 1,
            why: String::new(),
        },
    ];
    let reasons: Vec<&str> = all.iter().map(DecodeError::reason).collect();
    assert_eq!(reasons, DecodeError::REASONS);
}

#[test]
fn inspection_messages() {
    let ok = r#"{"line":"press-3","machine":"m-17","ts":"2026-11-28T12:00:00.123Z","defect":true,"values":7}"#;
    let i = decode_inspection(ok.as_bytes(), &lim()).unwrap();
    assert_eq!(
        i,
        Inspection {
            line: "press-3".into(),
            machine: "m-17".into(),
            ts_ms: GOOD_TS,
            defect: true
        }
    );
    let no = r#"{"line":"l","machine":"m","ts":1795867200123,"defect":false}"#;
    assert!(!decode_inspection(no.as_bytes(), &lim()).unwrap().defect);
    let missing = r#"{"line":"l","machine":"m","ts":1795867200123}"#;
    assert_eq!(
        decode_inspection(missing.as_bytes(), &lim()).unwrap_err(),
        DecodeError::MissingField("defect")
    );
    let wrong = r#"{"line":"l","machine":"m","ts":1795867200123,"defect":1}"#;
    assert_eq!(
        decode_inspection(wrong.as_bytes(), &lim())
            .unwrap_err()
            .reason(),
        "wrong_type"
    );
    let empty = r#"{"line":"l","machine":"","ts":1795867200123,"defect":true}"#;
    assert_eq!(
        decode_inspection(empty.as_bytes(), &lim()).unwrap_err(),
        DecodeError::EmptyId("machine")
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = decode_reading(&b, &lim());
        let _ = decode_inspection(&b, &lim());
    }

    #[test]
    fn mutated_messages_never_panic(pos in 0usize..GOOD.len(), byte in proptest::num::u8::ANY) {
        let mut b = GOOD.as_bytes().to_vec();
        b[pos] = byte;
        let _ = decode_reading(&b, &lim());
        b.truncate(pos);
        let _ = decode_reading(&b, &lim());
    }
}

proptest::proptest! {
    /// `common` skips counting a line of at most (MAX_LINE_PATH_BYTES - 2) / 3 bytes: the
    /// encoding at most triples a byte, plus 2 for Hive's default-partition name.
    #[test]
    fn the_encoded_line_is_at_most_three_times_its_bytes_plus_two(line in "\\PC{0,40}|[\\x00-\\x7f\u{80}-\u{9f}]{0,40}") {
        proptest::prop_assert!(line_path_len(&line) <= 3 * line.len() + 2, "{line:?}");
    }
}

#[test]
fn the_hive_default_partition_name_is_the_plus_two() {
    let line = "__HIVE_DEFAULT_PARTITION__";
    assert_eq!(line_path_len(line), line.len() + 2);
}

/// The borrowed read of the contract's JSON is offered for that format and mapping only,
/// and reads what the owned decode reads (refusals included).
#[test]
fn the_borrowed_reading_is_the_contract_s_alone() {
    let json = MappedDecoder::new(Format::Json, FieldMap::default(), lim());
    let borrowed = json.decode_reading_ref(GOOD.as_bytes()).unwrap().unwrap();
    let Ok(Decoded::Reading(owned)) = json.decode(GOOD.as_bytes(), None) else {
        panic!("the contract example decodes");
    };
    assert_eq!(borrowed.into_owned(), owned);
    let bad = br#"{"line":"l","machine":"m","ts":1,"values":{}}"#;
    let refused = json.decode_reading_ref(bad).unwrap().unwrap_err();
    assert_eq!(
        refused.reason(),
        json.decode(bad, None).unwrap_err().reason()
    );

    let long = MappedDecoder::new(Format::JsonLong, FieldMap::default(), lim());
    assert!(long.decode_reading_ref(GOOD.as_bytes()).is_none());
    let mapped = FieldMap {
        line_constant: Some("press-3".into()),
        ..FieldMap::default()
    };
    let mapped = MappedDecoder::new(Format::Json, mapped, lim());
    assert!(mapped.decode_reading_ref(GOOD.as_bytes()).is_none());
}
