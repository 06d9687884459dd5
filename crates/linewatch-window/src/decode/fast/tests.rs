//! The fast path against the serde walk: whatever the scanner accepts, the walk reads the
//! same (bit for bit), on generated messages valid and not; and plain messages do take it.

use proptest::prelude::*;

use super::super::parse::{Fields, Kind, serde_walk};
use super::*;

fn same(fast: &Fields<'_>, walk: &Fields<'_>) -> bool {
    let values = |f: &Fields<'_>| {
        f.values.as_ref().map(|v| {
            v.iter()
                .map(|(c, x)| (c.to_string(), x.to_bits()))
                .collect::<Vec<_>>()
        })
    };
    fast.line == walk.line
        && fast.machine == walk.machine
        && fast.ts == walk.ts
        && values(fast) == values(walk)
        && fast.defect == walk.defect
}

/// Asserts the contract between the two paths for one message text.
fn check(text: &str) -> Result<bool, TestCaseError> {
    let limits = DecodeLimits {
        max_channels: 6,
        ..DecodeLimits::default()
    };
    let Some(fast) = scan_reading(text, &limits) else {
        return Ok(false);
    };
    match serde_walk(text, &limits, Kind::Reading) {
        Ok(walk) => prop_assert!(same(&fast, &walk), "{text}"),
        Err(e) => prop_assert!(
            false,
            "fast path accepted what the walk refuses ({e}): {text}"
        ),
    }
    Ok(true)
}

/// Number texts: valid JSON numbers of every form, and near misses.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?",
        1 => "-?[0-9]{1,3}\\.[0-9]{1,3}e-3[0-3][0-9]",
        1 => "[0-9eE.+-]{1,8}",
        1 => Just("null".to_string()),
        1 => Just("\"7\"".to_string()),
        1 => Just("[1]".to_string()),
    ]
}

/// String texts: plain, with escapes, with control characters, not strings.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "\"[a-z0-9_-]{0,20}\"",
        1 => Just("\"a\\\\\"b\"".to_string()),
        1 => Just("\"m\\u0031\"".to_string()),
        1 => Just("\"tab\there\"".to_string()),
        1 => Just("\"\u{e9}t\u{e9}\"".to_string()),
        1 => Just("17".to_string()),
    ]
}

fn ts() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("\"2026-11-28T12:00:12.345Z\"".to_string()),
        1 => Just("\"2026-11-28T12:00:12+01:00\"".to_string()),
        1 => Just("\"yesterday\"".to_string()),
        2 => "-?[0-9]{1,20}",
        1 => number(),
    ]
}

fn ws() -> impl Strategy<Value = String> {
    prop_oneof![6 => Just(String::new()), 1 => "[ \t\n\r]{1,3}", 1 => Just("\u{a0}".to_string())]
}

fn values() -> impl Strategy<Value = String> {
    let channel = prop_oneof![
        6 => "[a-d]".prop_map(|c| format!("\"{c}\"")),
        1 => string(),
    ];
    (
        proptest::collection::vec((channel, number(), ws()), 0..9),
        ws(),
    )
        .prop_map(|(pairs, w)| {
            let body: Vec<String> = pairs
                .into_iter()
                .map(|(c, n, w)| format!("{w}{c}{w}:{w}{n}{w}"))
                .collect();
            format!("{{{w}{}{w}}}", body.join(","))
        })
}

/// Mostly plain readings (each field once, channels distinct, in any order), now and then
/// with a flaw; and anything else.
fn message() -> impl Strategy<Value = String> {
    prop_oneof![3 => plain_message(), 2 => any_message()]
}

fn plain_message() -> impl Strategy<Value = String> {
    let valid = "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?";
    let value = prop_oneof![12 => valid, 1 => number()];
    let values = proptest::collection::btree_map("[a-f]", (value, ws()), 1..7).prop_map(|m| {
        let body: Vec<String> = m
            .into_iter()
            .map(|(c, (v, w))| format!("{w}\"{c}\"{w}:{w}{v}{w}"))
            .collect();
        format!("{{{}}}", body.join(","))
    });
    let id = prop_oneof![8 => "\"[a-z0-9_-]{1,8}\"", 1 => string()];
    // Now and then another field with a scalar value (a unit, a sequence number).
    let extra = prop_oneof![
        3 => Just(None),
        1 => prop_oneof![number(), string(), Just("true".to_string()), Just("null".to_string())]
            .prop_map(Some),
    ];
    (id.clone(), id, ts(), values, ws(), any::<u8>(), extra).prop_map(
        |(l, m, t, v, w, order, extra)| {
            let mut fields = vec![
                format!("\"line\":{l}"),
                format!("\"machine\":{m}"),
                format!("\"ts\":{t}"),
                format!("\"values\"{w}:{v}"),
            ];
            fields.rotate_left(usize::from(order % 4));
            if order & 0x80 != 0 {
                fields.swap(0, 1);
            }
            if let Some(x) = extra {
                fields.insert(usize::from(order % 5), format!("\"seq\":{x}"));
            }
            format!("{{{}}}", fields.join(&format!(",{w}")))
        },
    )
}

fn any_message() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        4 => string().prop_map(|s| format!("\"line\":{s}")),
        4 => string().prop_map(|s| format!("\"machine\":{s}")),
        4 => ts().prop_map(|s| format!("\"ts\":{s}")),
        6 => values().prop_map(|s| format!("\"values\":{s}")),
        1 => Just("\"extra\":[1,{\"a\":2}]".to_string()),
        1 => number().prop_map(|n| format!("\"seq\":{n}")),
        1 => string().prop_map(|s| format!("\"unit\":{s}")),
        1 => prop_oneof![Just("true"), Just("false"), Just("nul"), Just("truex")]
            .prop_map(|w| format!("\"ok\":{w}")),
        1 => Just("\"defect\":true".to_string()),
        1 => Just("\"li\\u006ee\":\"x\"".to_string()),
    ];
    (
        proptest::collection::vec((field, ws()), 0..7),
        ws(),
        prop_oneof![8 => Just(String::new()), 1 => Just("x".to_string()), 1 => Just(",".to_string())],
    )
        .prop_map(|(fields, w, tail)| {
            let body: Vec<String> = fields.into_iter().map(|(f, w)| format!("{w}{f}{w}")).collect();
            format!("{w}{{{}}}{w}{tail}", body.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn whatever_the_fast_path_accepts_the_walk_reads_the_same(text in message()) {
        check(&text)?;
    }

    #[test]
    fn a_byte_changed_in_a_plain_message_never_splits_the_paths(
        pos in 0usize..150,
        byte in proptest::sample::select(b"{}[]\":,.-+eE0123456789 \\\tnulx".to_vec()),
    ) {
        let plain = r#"{"line":"press-5","machine":"m-345","ts":"2026-11-28T12:00:12.345Z","values":{"a":10.3479,"b":-2.5e3,"c":7,"d":0.000123}}"#;
        let mut b = plain.as_bytes().to_vec();
        let pos = pos.min(b.len() - 1);
        b[pos] = byte;
        if let Ok(text) = std::str::from_utf8(&b) {
            check(text)?;
        }
    }
}

#[test]
fn plain_messages_take_the_fast_path() {
    for text in [
        r#"{"line":"press-5","machine":"m-345","ts":"2026-11-28T12:00:12.345Z","values":{"temp_c":10.3479,"vib_rms":22.6995}}"#,
        " {\n \"values\" : { \"a\" : -0 , \"b\" : 1E+2 } , \"ts\" : 1795867212345 , \"machine\" : \"m\" , \"line\" : \"l\" }\n",
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":12345678901234567890123,"b":4.9e-324,"c":0.1e-30}}"#,
        r#"{"seq":1e999,"line":"l","unit":"degC","machine":"m","ok":true,"ts":1,"values":{"a":1},"z":null}"#,
        // Keys that start as the contract's do, and a key too near the end for a word.
        r#"{"values":{"a":1},"linex":"x","machine":"m","tsx":2,"line":"l","valuesx":3,"ts":1}"#,
        r#"{"line":"l","values":{"a":0},"machine":"m","ts":0}"#,
        // Past the plain decimal's reach (2^53 + 1, 19 digits above 2^53, 20 digits), and
        // within it.
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":9007199254740993,"b":1234567890.123456789,"c":0.12345678901234567890,"d":-0.0,"e":0.5}}"#,
    ] {
        assert!(check(text).unwrap(), "{text}");
    }
}

/// A message of `names` as channels, each valued 1.
fn with_channels(names: &[String]) -> String {
    let values: Vec<String> = names.iter().map(|n| format!("\"{n}\":1")).collect();
    format!(
        r#"{{"line":"l","machine":"m","ts":1,"values":{{{}}}}}"#,
        values.join(",")
    )
}

/// Repeated channels are found whatever their length, position and shared prefixes, past
/// the prefixes kept too, and names that share their first eight bytes are not repeats.
#[test]
fn repeated_channels_are_found_and_shared_prefixes_are_not_repeats() {
    let limits = DecodeLimits::default();
    let names: Vec<String> = (0..24).map(|i| format!("sensor_temp_{i}")).collect();
    let read = |names: &[String]| {
        scan_reading(&with_channels(names), &limits).map(|f| f.values.map_or(0, |v| v.len()))
    };
    assert_eq!(read(&names), Some(24));
    for repeat in [0, 5, 15, 16, 23] {
        for at in [repeat + 1, names.len()] {
            let mut repeated = names.clone();
            repeated.insert(at, names[repeat].clone());
            assert_eq!(read(&repeated), None, "{repeated:?}");
        }
    }
    let short: Vec<String> = ["a", "b", "ab", "ba", "a"].map(String::from).to_vec();
    assert_eq!(read(&short), None);
    assert_eq!(read(&short[..4]), Some(4));
}

#[test]
fn what_needs_a_reason_goes_to_the_walk() {
    let limits = DecodeLimits::default();
    for text in [
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":1e999}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":null}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":1,"a":2}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{}}"#,
        r#"{"line":"l","machine":"m","ts":1.5,"values":{"a":1}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":01}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":00.5}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":.5}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":-.5}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":5.}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":-}}"#,
        r#"{"line":"l","line":"m","ts":1,"values":{"a":1}}"#,
        r#"{"line":"l\u0041","machine":"m","ts":1,"values":{"a":1}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":1}} x"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":1},"other":{"b":2}}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":1},"other":[2]}"#,
        r#"{"line":"l","machine":"m","ts":1,"values":{"a":1},"line":"l"}"#,
    ] {
        assert!(scan_reading(text, &limits).is_none(), "{text}");
    }
}

#[test]
fn the_generated_messages_reach_the_fast_path_often() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut accepted, mut total) = (0, 0);
    for _ in 0..20_000 {
        let text = message().new_tree(&mut runner).unwrap().current();
        total += 1;
        accepted += usize::from(check(&text).unwrap());
    }
    // Otherwise the differential test above would compare little.
    assert!(accepted * 10 >= total, "{accepted} of {total}");
}

/// The first stop of a string in a word against a byte loop, for every byte value at every
/// position after plain bytes.
#[test]
fn string_stops_find_the_first_stop_exactly() {
    let stops = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
    for fill in [b"abcdefgh", b"\"\\\x00\x1f\xff\x80\x20\x7f"] {
        for at in 0..8 {
            for c in 0..=255u8 {
                let mut w = *fill;
                for (k, b) in w.iter_mut().enumerate().take(at) {
                    *b = b"a\xc3\xa9~ Z\x7f!"[k];
                }
                w[at] = c;
                let first = w.iter().position(|&b| stops(b)).map_or(8, |p| p as u32);
                let got = super::string_stops(u64::from_le_bytes(w)).trailing_zeros() / 8;
                assert_eq!(got, first, "{w:?}");
            }
        }
    }
}
