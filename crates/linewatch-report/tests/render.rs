//! Renders pictures from a fixture scores table written with linewatch-sink.
//!
//! Set `LINEWATCH_REPORT_KEEP=/some/dir` to keep copies of the rendered pictures there
//! (docs/report-example.png is `m-17.png` from this fixture).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use linewatch_report::{OutputFormat, ReportError, ReportOptions, render};
use linewatch_sink::{FileName, ParquetTable, TableConfig};

const MINUTE: i64 = 60_000;
const FEATURES: [&str; 5] = [
    "temp_c__mean",
    "temp_c__max",
    "vib_rms__mean",
    "vib_rms__std",
    "pressure_bar__mean",
];
/// Window indices with an open alert (inclusive).
const ALERT: (usize, usize) = (240, 264);
/// Window indices missing from the table (a data gap).
const GAP: (usize, usize) = (300, 314);
/// Windows of m-17 (360 one-minute windows minus the gap).
const M17_ROWS: usize = 360 - (GAP.1 - GAP.0 + 1);

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Deterministic noise in [-1, 1].
fn noise(i: usize, salt: u64) -> f64 {
    let mut x = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x % 20_001) as f64 / 10_000.0 - 1.0
}

struct Window {
    start: i64,
    score: Option<f64>,
    threshold: Option<f64>,
    defect: Option<f64>,
    alert: bool,
    version: Option<&'static str>,
    top: Option<String>,
}

/// m-17: 6 h of 1-minute windows from 22:00 crossing midnight; 20 warm-up windows, model
/// v000001 (threshold 8) then v000002 (threshold 12) from window 180, an alert over windows
/// 240..=264 with scores up to ~2000 driven by vib_rms__mean then temp_c__max, a gap.
fn m17_windows() -> Vec<Window> {
    let t0 = ts("2026-11-28T22:00:00Z").timestamp_millis();
    let mut out = Vec::new();
    for i in 0..360 {
        if (GAP.0..=GAP.1).contains(&i) {
            continue;
        }
        let start = t0 + i as i64 * MINUTE;
        if i < 20 {
            out.push(Window {
                start,
                score: None,
                threshold: None,
                defect: None,
                alert: false,
                version: None,
                top: None,
            });
            continue;
        }
        let v2 = i >= 180;
        let alerting = (ALERT.0..=ALERT.1).contains(&i);
        let base = 1.5 + 2.5 * noise(i, 1);
        let score = if alerting {
            let k = (i - ALERT.0) as f64;
            let peak = (ALERT.1 - ALERT.0) as f64 / 2.0;
            // rises to ~2000 and back
            20.0 * 10f64.powf(2.0 * (1.0 - ((k - peak) / peak).powi(2)).max(0.0)) + base
        } else if i == 100 {
            6.0
        } else {
            base
        };
        let top: Vec<(String, f64)> = if alerting {
            vec![
                ("vib_rms__mean".into(), -0.6 * score),
                ("temp_c__max".into(), -0.3 * score),
                ("vib_rms__std".into(), -0.05 * score),
            ]
        } else {
            let mut f: Vec<(String, f64)> = (0..3)
                .map(|j| {
                    let name = FEATURES[(i + 2 * j) % FEATURES.len()];
                    (name.to_owned(), 1.5 * noise(i, 10 + j as u64))
                })
                .collect();
            f.sort_by(|a, b| a.1.total_cmp(&b.1));
            f
        };
        let json = serde_json::to_string(
            &top.iter()
                .map(|(n, c)| serde_json::json!({"name": n, "contribution": c}))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        out.push(Window {
            start,
            score: Some(score),
            threshold: Some(if v2 { 12.0 } else { 8.0 }),
            defect: v2.then(|| 1.0 / (1.0 + (-(score - 12.0) / 4.0).exp())),
            alert: alerting,
            version: Some(if v2 { "v000002" } else { "v000001" }),
            top: Some(json),
        });
    }
    out
}

fn batch(line: &str, machine: &str, windows: &[Window]) -> RecordBatch {
    let ts_type = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let n = windows.len();
    let mut fields = vec![
        Field::new("line", DataType::Utf8, false),
        Field::new("machine", DataType::Utf8, false),
        Field::new("window_start", ts_type.clone(), false),
        Field::new("window_end", ts_type, false),
        Field::new("n_readings", DataType::UInt32, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![line; n])),
        Arc::new(StringArray::from(vec![machine; n])),
        Arc::new(
            TimestampMillisecondArray::from(windows.iter().map(|w| w.start).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMillisecondArray::from(
                windows.iter().map(|w| w.start + MINUTE).collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(UInt32Array::from(vec![60u32; n])),
    ];
    for (j, f) in FEATURES.iter().enumerate() {
        fields.push(Field::new(*f, DataType::Float32, true));
        columns.push(Arc::new(Float32Array::from(
            (0..n)
                .map(|i| 20.0 + noise(i, 100 + j as u64) as f32)
                .collect::<Vec<_>>(),
        )));
    }
    fields.extend([
        Field::new("anomaly_score", DataType::Float64, true),
        Field::new("threshold", DataType::Float64, true),
        Field::new("log_density_rel", DataType::Float64, true),
        Field::new("defect_prob", DataType::Float64, true),
        Field::new("alert", DataType::Boolean, false),
        Field::new("model_version", DataType::Utf8, true),
        Field::new("top_features", DataType::Utf8, true),
    ]);
    columns.extend::<[ArrayRef; 7]>([
        Arc::new(Float64Array::from(
            windows.iter().map(|w| w.score).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            windows.iter().map(|w| w.threshold).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            windows
                .iter()
                .map(|w| w.score.map(|s| -s))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            windows.iter().map(|w| w.defect).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            windows.iter().map(|w| w.alert).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            windows.iter().map(|w| w.version).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            windows.iter().map(|w| w.top.clone()).collect::<Vec<_>>(),
        )),
    ]);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// Writes the fixture table; returns the `scores` directory.
fn fixture(dir: &Path) -> PathBuf {
    let table = ParquetTable::open(dir, TableConfig::new("scores", "window_start")).unwrap();
    let m17 = m17_windows();
    // Two Kafka-partition files: m-17 and, on the same line, a quiet m-18 (warm-up only).
    table
        .write_file(
            &[batch("press-3", "m-17", &m17)],
            &FileName::new(0, 0, 999).unwrap(),
            &[],
        )
        .unwrap();
    let m18: Vec<Window> = (0..30)
        .map(|i| Window {
            start: ts("2026-11-28T23:00:00Z").timestamp_millis() + i * MINUTE,
            score: None,
            threshold: None,
            defect: None,
            alert: false,
            version: None,
            top: None,
        })
        .collect();
    table
        .write_file(
            &[batch("press-3", "m-18", &m18)],
            &FileName::new(1, 0, 99).unwrap(),
            &[],
        )
        .unwrap();
    table.root().as_local().unwrap().to_path_buf()
}

/// Copies a rendered picture to `$LINEWATCH_REPORT_KEEP/` when set.
fn keep(path: &Path) {
    if let (Ok(dir), Some(name)) = (std::env::var("LINEWATCH_REPORT_KEEP"), path.file_name()) {
        fs::copy(path, Path::new(&dir).join(name)).unwrap();
    }
}

fn opts(root: &Path, machine: &str, out: PathBuf) -> ReportOptions {
    ReportOptions::new(root, machine, out)
}

#[test]
fn renders_png_and_svg_with_the_right_summary() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture(dir.path());
    // The table spans two date partitions.
    let dates: Vec<String> = linewatch_sink::list_files(&root)
        .unwrap()
        .into_iter()
        .map(|f| f.date)
        .collect();
    assert!(dates.contains(&"2026-11-28".to_owned()) && dates.contains(&"2026-11-29".to_owned()));

    let png = dir.path().join("m-17.png");
    let summary = render(&opts(&root, "m-17", png.clone())).unwrap();
    assert_eq!(summary.rows, M17_ROWS);
    assert_eq!(summary.alerted_windows, ALERT.1 - ALERT.0 + 1);
    assert_eq!(summary.first, ts("2026-11-28T22:00:00Z"));
    assert_eq!(summary.last, ts("2026-11-29T04:00:00Z"));
    assert_eq!(summary.top_features.len(), 3);
    assert_eq!(
        summary.top_features[..3],
        ["vib_rms__mean", "temp_c__max", "vib_rms__std"]
    );
    assert_eq!(summary.lines, ["press-3"]);
    assert_eq!(summary.model_versions, ["v000001", "v000002"]);
    assert_eq!(summary.format, OutputFormat::Png);

    let bytes = fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap();
    assert_eq!((img.width(), img.height()), (1400, 900));
    // Not a blank picture: plenty of distinct colours (lines, spans, text).
    let rgb = img.to_rgb8();
    let mut colours: Vec<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 50, "only {} colours", colours.len());
    // Some alert red is there.
    assert!(rgb.pixels().any(|p| p.0 == [214, 39, 40]));
    // No temporary file left behind.
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty());

    keep(&png);

    // A small picture lays out too.
    let small = dir.path().join("m-17-small.png");
    let mut o = opts(&root, "m-17", small.clone());
    (o.width, o.height) = (700, 450);
    render(&o).unwrap();
    let img = image::open(&small).unwrap();
    assert_eq!((img.width(), img.height()), (700, 450));
    keep(&small);

    let svg = dir.path().join("m-17.SVG");
    let mut o = opts(&root, "m-17", svg.clone());
    o.top_k = 2;
    let s2 = render(&o).unwrap();
    assert_eq!(s2.format, OutputFormat::Svg);
    assert_eq!(s2.rows, summary.rows);
    assert_eq!(s2.top_features, ["vib_rms__mean", "temp_c__max"]);
    keep(&svg);
    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..60]);
    for needle in [
        "m-17",
        "press-3",
        "vib_rms__mean",
        "temp_c__max",
        "v000002",
        "threshold",
        "time (UTC)",
    ] {
        assert!(text.contains(needle), "svg lacks {needle}");
    }
    assert!(!text.contains("m-18"));
    assert!(
        !text.contains("vib_rms__std"),
        "only the top 2 features are named"
    );
}

#[test]
fn range_filters_rows_and_prunes_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture(dir.path());
    // A corrupt file in a partition outside the range: never opened when pruned.
    let bad = root.join("date=2026-11-27").join("line=press-3");
    fs::create_dir_all(&bad).unwrap();
    let name = FileName::new(0, 5000, 5000).unwrap().to_string();
    fs::write(bad.join(name), b"not parquet").unwrap();

    let mut o = opts(&root, "m-17", dir.path().join("r.svg"));
    o.from = Some(ts("2026-11-29T01:00:00Z"));
    o.to = Some(ts("2026-11-29T02:00:00Z"));
    let s = render(&o).unwrap();
    keep(&o.out);
    // Windows 180..240: 60 rows, v000002 only, no alert; features ranked over all rows.
    assert_eq!(s.rows, 60);
    assert_eq!(s.alerted_windows, 0);
    assert_eq!(s.first, ts("2026-11-29T01:00:00Z"));
    assert_eq!(s.last, ts("2026-11-29T02:00:00Z"));
    assert_eq!(s.model_versions, ["v000002"]);
    assert_eq!(s.top_features.len(), 5);

    // Crossing midnight, starting late on the 28th.
    o.from = Some(ts("2026-11-28T23:30:00Z"));
    o.to = Some(ts("2026-11-29T00:30:00Z"));
    assert_eq!(render(&o).unwrap().rows, 60);

    // The whole table opens the corrupt file.
    o.from = None;
    o.to = None;
    assert!(matches!(render(&o), Err(ReportError::Read(_))));
}

#[test]
fn errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture(dir.path());

    let out = dir.path().join("x.png");
    let err = render(&opts(&root, "m-99", out.clone())).unwrap_err();
    assert!(matches!(err, ReportError::NoRows { .. }), "{err}");
    assert!(err.to_string().contains("m-99"), "{err}");
    assert!(!out.exists());

    let mut o = opts(&root, "m-17", out.clone());
    o.from = Some(ts("2027-01-01T00:00:00Z"));
    let err = render(&o).unwrap_err();
    assert!(matches!(err, ReportError::NoRows { .. }), "{err}");
    assert!(err.to_string().contains("2027-01-01"), "{err}");

    for bad in ["x.jpg", "x", "x.png.txt"] {
        let p = dir.path().join(bad);
        let err = render(&opts(&root, "m-17", p.clone())).unwrap_err();
        assert!(matches!(err, ReportError::UnsupportedFormat(_)), "{err}");
        assert!(!p.exists());
    }

    let mut o = opts(&root, "m-17", out.clone());
    o.from = Some(ts("2026-11-29T00:00:00Z"));
    o.to = Some(ts("2026-11-29T00:00:00Z"));
    assert!(matches!(render(&o), Err(ReportError::InvalidOptions(_))));
    let mut o = opts(&root, "m-17", out.clone());
    o.width = 0;
    assert!(matches!(render(&o), Err(ReportError::InvalidOptions(_))));

    let err = render(&opts(&dir.path().join("nope"), "m-17", out.clone())).unwrap_err();
    assert!(matches!(err, ReportError::ScoresRootMissing(_)), "{err}");

    // Output directory missing: a drawing error, not a panic.
    let err = render(&opts(&root, "m-17", dir.path().join("no/such/dir/x.png"))).unwrap_err();
    assert!(matches!(err, ReportError::Draw { .. }), "{err}");
}

#[test]
fn warm_up_only_machine_renders() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture(dir.path());
    for name in ["m-18.png", "m-18.svg"] {
        let out = dir.path().join(name);
        let mut o = opts(&root, "m-18", out.clone());
        o.width = 640;
        o.height = 400;
        let s = render(&o).unwrap();
        assert_eq!(s.rows, 30);
        assert_eq!(s.alerted_windows, 0);
        assert!(s.top_features.is_empty());
        assert!(s.model_versions.is_empty());
        assert!(fs::metadata(&out).unwrap().len() > 0);
        keep(&out);
    }
}

/// Values the report cannot draw as they are (NaN and infinite numbers, a `top_features`
/// text that is not the documented JSON) are counted in the summary, by reason, never
/// dropped silently; the clean machine's summary counts nothing.
#[test]
fn unusable_values_are_counted_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture(dir.path());
    let s = render(&opts(&root, "m-17", dir.path().join("clean.png"))).unwrap();
    assert_eq!(s.unusable, linewatch_report::Unusable::default());

    let t0 = ts("2026-11-30T08:00:00Z").timestamp_millis();
    let bad: Vec<Window> = (0..6)
        .map(|i| Window {
            start: t0 + i * MINUTE,
            score: Some(match i {
                1 => f64::NAN,
                2 => f64::INFINITY,
                _ => 1.0,
            }),
            threshold: Some(if i == 3 { f64::NEG_INFINITY } else { 8.0 }),
            defect: None,
            alert: false,
            version: Some("v000003"),
            top: match i {
                4 => Some("not json".to_owned()),
                5 => Some(r#"[{"name":"temp_c__mean","contribution":-1.5}]"#.to_owned()),
                _ => None,
            },
        })
        .collect();
    let table = ParquetTable::open(dir.path(), TableConfig::new("scores", "window_start")).unwrap();
    table
        .write_file(
            &[batch("press-3", "m-19", &bad)],
            &FileName::new(2, 0, 9).unwrap(),
            &[],
        )
        .unwrap();
    let s = render(&opts(&root, "m-19", dir.path().join("m-19.png"))).unwrap();
    assert_eq!(s.rows, 6);
    assert_eq!(s.unusable.non_finite_values, 3);
    assert_eq!(s.unusable.unreadable_top_features, 1);
    assert_eq!(s.top_features, vec!["temp_c__mean".to_owned()]);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["unusable"]["non_finite_values"], 3, "{json}");
}
