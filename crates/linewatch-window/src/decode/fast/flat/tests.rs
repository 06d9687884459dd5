//! The flat scanner against the serde walk: whatever the scanner accepts, the walk finds
//! the same scalars (numbers bit for bit, of the same kind), on generated long-format
//! messages valid and not; and plain ones do take the scanner.

use proptest::prelude::*;

use super::super::super::mapped::FieldMap;
use super::super::super::walk::{PointerTree, Walked, walk};
use super::*;

/// A scalar as comparable text: its kind and its exact value.
fn show(s: &Option<Scalar<'_>>) -> String {
    match s {
        None => "none".into(),
        Some(Scalar::Null) => "null".into(),
        Some(Scalar::Bool(b)) => format!("bool {b}"),
        Some(Scalar::I64(x)) => format!("i64 {x}"),
        Some(Scalar::U64(x)) => format!("u64 {x}"),
        Some(Scalar::F64(x)) => format!("f64 {:#x}", x.to_bits()),
        Some(Scalar::Str(s)) => format!("str {s:?}"),
        Some(Scalar::Array) => "array".into(),
        Some(Scalar::Object) => "object".into(),
    }
}

fn tree() -> (PointerTree, Vec<(String, Slot)>) {
    let map = FieldMap::default();
    let tree = PointerTree::new(&map.pointers(true)).unwrap_or_default();
    let keys = tree.flat_keys().unwrap_or_default();
    (tree, keys)
}

/// Whether the scanner took `text`; fails when it found other scalars than the walk, or
/// took what the walk refuses.
fn check(text: &str) -> Result<bool, TestCaseError> {
    let (tree, keys) = tree();
    let Some(fast) = scan_flat(text, &keys) else {
        return Ok(false);
    };
    match walk(text, &tree) {
        Ok(Walked::Found(slow)) => {
            let a: Vec<String> = fast.iter().map(show).collect();
            let b: Vec<String> = slow.iter().map(show).collect();
            prop_assert_eq!(a, b, "{}", text);
        }
        Ok(Walked::Fallback) => prop_assert!(false, "the walk fell back: {text}"),
        Err(e) => prop_assert!(false, "the walk refuses ({e}): {text}"),
    }
    Ok(true)
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "-?(0|[1-9][0-9]{0,21})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        2 => "-?(0|[1-9][0-9]{16,19})",
        1 => "[0-9eE.+-]{1,6}",
        3 => "\"[a-z0-9_ -]{0,12}\"",
        1 => Just("\"a\\\"b\"".to_string()),
        1 => prop_oneof![Just("true"), Just("false"), Just("null"), Just("nul"), Just("{}"), Just("[1]"), Just("{\"a\":1,\"a\":2}")].prop_map(String::from),
    ]
}

fn ws() -> impl Strategy<Value = String> {
    prop_oneof![6 => Just(String::new()), 1 => "[ \t\n\r]{1,3}"]
}

/// Objects of the long format's keys and others, each now and then repeated, in any order.
fn message() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("line"),
        Just("machine"),
        Just("ts"),
        Just("tag"),
        Just("value"),
        Just("unit"),
        Just("Tag"),
        Just("value2"),
    ];
    (
        proptest::collection::vec((key, value(), ws()), 0..8),
        ws(),
        prop_oneof![8 => Just(""), 1 => Just(" x"), 1 => Just(",")],
    )
        .prop_map(|(fields, w, tail)| {
            let body: Vec<String> = fields
                .into_iter()
                .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                .collect();
            format!("{w}{{{}}}{w}{tail}", body.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn whatever_the_scanner_accepts_the_walk_finds_the_same(text in message()) {
        check(&text)?;
    }
}

#[test]
fn plain_long_messages_take_the_scanner() {
    for text in [
        r#"{"line":"press-1","machine":"m-7","ts":1795867200123,"tag":"temp_c","value":71.25}"#,
        r#" { "value" : -3 , "tag" : "a" , "unit" : "degC" , "ts" : "2026-11-28T12:00:00Z" , "machine" : "m" , "line" : "l" , "ok" : true , "seq" : null } "#,
        r#"{"tag":"a","value":9223372036854775807,"line":"l","machine":"m","ts":1}"#,
        r#"{"tag":"a","value":9223372036854775808,"line":"l","machine":"m","ts":1}"#,
        r#"{"tag":"a","value":-9223372036854775808,"line":"l","machine":"m","ts":1}"#,
        r#"{"tag":"a","value":-9223372036854775809,"line":"l","machine":"m","ts":1}"#,
        r#"{"tag":"a","value":-0,"line":"l","machine":"m","ts":-0.0}"#,
        r#"{"tag":"a","value":1e308,"line":"l","machine":"m","ts":4.9e-324}"#,
    ] {
        assert!(check(text).unwrap(), "{text}");
    }
}

#[test]
fn what_the_walk_must_decide_goes_to_it() {
    let (_, keys) = tree();
    for text in [
        r#"{"tag":"a","value":1e999,"line":"l","machine":"m","ts":1}"#,
        r#"{"tag":"a","value":12345678901234567890,"line":"l","machine":"m","ts":1}"#,
        r#"{"tag":"a","value":1,"tag":"b","line":"l","machine":"m","ts":1}"#,
        r#"{"tag":"a","value":1,"x":2,"x":3}"#,
        r#"{"tag":"a\u0062","value":1}"#,
        r#"{"tag":"a","value":{"v":1}}"#,
        r#"{"tag":"a","value":[1]}"#,
        r#"{}"#,
        r#"[1]"#,
        r#"{"tag":"a","value":1} x"#,
        r#"{"tag":"a","value":01}"#,
    ] {
        assert!(scan_flat(text, &keys).is_none(), "{text}");
    }
}

/// A pointer below the top level is not flat.
#[test]
fn only_top_level_pointers_are_flat() {
    let map = FieldMap {
        value: "/reading/value".into(),
        ..FieldMap::default()
    };
    let tree = PointerTree::new(&map.pointers(true)).unwrap_or_default();
    assert!(tree.flat_keys().is_none());
}

/// Otherwise the differential test above would compare little.
#[test]
fn the_generated_messages_reach_the_scanner_often() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut accepted, total) = (0, 5_000);
    for _ in 0..total {
        let text = message().new_tree(&mut runner).unwrap().current();
        accepted += usize::from(check(&text).unwrap());
    }
    assert!(accepted * 10 >= total, "{accepted} of {total}");
}
