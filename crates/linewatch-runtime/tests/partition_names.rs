//! The decoder refuses a line (`line_too_long`) exactly when the sink could not write it as
//! one `line=` folder: `line_path_len` and `sanitize_partition_value` must agree.

use linewatch_sink::{MAX_PARTITION_VALUE_LEN, sanitize_partition_value};
use linewatch_window::{MAX_LINE_PATH_BYTES, line_path_len};

#[test]
fn decoder_line_limit_matches_the_sink_encoding() {
    assert_eq!(MAX_LINE_PATH_BYTES, MAX_PARTITION_VALUE_LEN);
    // Every char class the encoding distinguishes, at every position (first, inner, last).
    let alphabet: Vec<char> = (0u8..=0x7f)
        .map(char::from)
        .chain(['ü', '日', '\u{85}', '\u{9f}', '\u{a0}', '😀', '\u{2028}'])
        .collect();
    let mut cases: Vec<String> = vec![
        String::new(),
        "__HIVE_DEFAULT_PARTITION__".into(),
        "a..b".into(),
        "...".into(),
        format!("Prüfstraße Nord — Härterei {}", "x".repeat(70)),
    ];
    for &a in &alphabet {
        for &b in &['.', 'x', 'ü'] {
            cases.push(format!("{a}{b}{a}"));
            cases.push(format!("{b}{a}"));
            cases.push(a.to_string());
        }
    }
    for n in [82, 83, 84, 124, 125, 126, 249, 250, 251] {
        for c in ['x', 'ü', '/', '日', '.'] {
            cases.push(c.to_string().repeat(n));
        }
    }
    for s in &cases {
        let len = line_path_len(s);
        match sanitize_partition_value(s) {
            Ok(out) if !s.is_empty() => assert_eq!(out.len(), len, "{s:?} -> {out:?}"),
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.encoded_bytes, len, "{s:?}");
                assert!(len > MAX_LINE_PATH_BYTES, "{s:?}");
            }
        }
    }
}
