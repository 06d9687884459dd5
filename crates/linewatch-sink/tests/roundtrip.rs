//! End-to-end tests of the Parquet table: layout, values and types, encoding, metadata,
//! replacement on rewrite, temporary file cleanup, hostile line names.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type, TimestampMillisecondType, UInt32Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use linewatch_sink::{
    FileName, ParquetTable, SinkError, TableConfig, list_files, read_all, read_file,
    read_footer_metadata,
};
use parquet::basic::Compression;
use parquet::file::metadata::ParquetMetaDataReader;

const DAY_MS: i64 = 86_400_000;
/// 2026-11-28T00:00:00Z
const T0: i64 = 1_795_824_000_000;

fn scores_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("line", DataType::Utf8, false),
        Field::new("machine", DataType::Utf8, false),
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
        Field::new("n_readings", DataType::UInt32, false),
        Field::new("temp_c", DataType::Float32, false),
        Field::new("vib_rms", DataType::Float32, false),
        Field::new("anomaly_score", DataType::Float32, false),
        Field::new("defect_prob", DataType::Float32, true),
        Field::new("alert", DataType::Boolean, false),
        Field::new("model_version", DataType::Int64, false),
    ]))
}

/// One row of the expected table, as plain values.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    line: String,
    machine: String,
    window_start: i64,
    n_readings: u32,
    temp_c: f32,
    vib_rms: f32,
    anomaly_score: f32,
    defect_prob: Option<f32>,
    alert: bool,
    model_version: i64,
}

fn make_rows(n: usize, lines: &[&str], days: i64) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let i64i = i64::try_from(i).unwrap();
            Row {
                line: lines[i % lines.len()].to_owned(),
                machine: format!("m-{}", i % 7),
                // Spread over `days` days, at varying times of day.
                window_start: T0
                    + ((i64i / i64::try_from(lines.len()).unwrap()) % days) * DAY_MS
                    + (i64i * 61_000) % DAY_MS,
                n_readings: u32::try_from(i % 50).unwrap() + 1,
                temp_c: 70.0 + i as f32 * 0.25,
                vib_rms: 0.03 + i as f32 * 1e-4,
                anomaly_score: (i as f32).sin(),
                defect_prob: (i % 3 != 0).then_some(i as f32 / n as f32),
                alert: i % 5 == 0,
                model_version: 7 + i64i % 2,
            }
        })
        .collect()
}

fn to_batch(rows: &[Row]) -> RecordBatch {
    let ts = |v: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
    };
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.line))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| &r.machine),
        )),
        ts(rows.iter().map(|r| r.window_start).collect()),
        ts(rows.iter().map(|r| r.window_start + 60_000).collect()),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.n_readings),
        )),
        Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|r| r.temp_c),
        )),
        Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|r| r.vib_rms),
        )),
        Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|r| r.anomaly_score),
        )),
        Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.defect_prob))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.alert)))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.model_version),
        )),
    ];
    RecordBatch::try_new(scores_schema(), cols).unwrap()
}

fn from_batches(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let line = b.column_by_name("line").unwrap().as_string::<i32>();
        let machine = b.column_by_name("machine").unwrap().as_string::<i32>();
        let ws = b
            .column_by_name("window_start")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        let we = b
            .column_by_name("window_end")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        let n = b
            .column_by_name("n_readings")
            .unwrap()
            .as_primitive::<UInt32Type>();
        let f = |name: &str| {
            b.column_by_name(name)
                .unwrap()
                .as_primitive::<Float32Type>()
                .clone()
        };
        let (temp, vib, score, prob) = (
            f("temp_c"),
            f("vib_rms"),
            f("anomaly_score"),
            f("defect_prob"),
        );
        let alert = b.column_by_name("alert").unwrap().as_boolean();
        let mv = b
            .column_by_name("model_version")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert_eq!(we.value(i), ws.value(i) + 60_000);
            out.push(Row {
                line: line.value(i).to_owned(),
                machine: machine.value(i).to_owned(),
                window_start: ws.value(i),
                n_readings: n.value(i),
                temp_c: temp.value(i),
                vib_rms: vib.value(i),
                anomaly_score: score.value(i),
                defect_prob: prob.is_valid(i).then(|| prob.value(i)),
                alert: alert.value(i),
                model_version: mv.value(i),
            });
        }
    }
    out
}

fn sort_rows(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| {
        (&a.line, a.window_start, &a.machine, a.n_readings).cmp(&(
            &b.line,
            b.window_start,
            &b.machine,
            b.n_readings,
        ))
    });
    rows
}

fn open(dir: &Path) -> ParquetTable {
    ParquetTable::open(dir, TableConfig::new("scores", "window_start")).unwrap()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn two_dates_two_lines_make_four_files_with_exact_values_and_types() {
    let dir = tempfile::tempdir().unwrap();
    let table = open(dir.path());
    let rows = make_rows(1000, &["press-3", "press-4"], 2);
    // Two input batches: files must gather rows from both.
    let batches = [to_batch(&rows[..400]), to_batch(&rows[400..])];
    let name = FileName::new(2, 100, 1099).unwrap();
    let written = table.write_file(&batches, &name, &[]).unwrap();

    assert_eq!(written.len(), 4);
    assert_eq!(written.iter().map(|w| w.rows).sum::<usize>(), 1000);
    let fname = "part-00002-00000000000000000100-00000000000000001099.parquet";
    let mut rel: Vec<String> = written
        .iter()
        .map(|w| {
            assert!(w.bytes > 0);
            let path = w.location.as_local().unwrap();
            assert_eq!(fs::metadata(path).unwrap().len(), w.bytes);
            path.strip_prefix(dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    rel.sort();
    assert_eq!(
        rel,
        vec![
            format!("scores/date=2026-11-28/line=press-3/{fname}"),
            format!("scores/date=2026-11-28/line=press-4/{fname}"),
            format!("scores/date=2026-11-29/line=press-3/{fname}"),
            format!("scores/date=2026-11-29/line=press-4/{fname}"),
        ]
    );

    // Every file holds only rows of its partition, in input order.
    for w in &written {
        let got = from_batches(&read_file(&w.location).unwrap());
        let p = w.location.to_string();
        let expect: Vec<Row> = rows
            .iter()
            .filter(|r| {
                let day = if r.window_start < T0 + DAY_MS {
                    "2026-11-28"
                } else {
                    "2026-11-29"
                };
                p.contains(&format!("date={day}/line={}/", r.line))
            })
            .cloned()
            .collect();
        assert_eq!(got.len(), w.rows);
        assert_eq!(got, expect);
    }

    // Read back everything: same schema (types incl. timezone and nullability) and values.
    let all = read_all(table.root()).unwrap();
    for b in &all {
        assert_eq!(b.schema().fields(), scores_schema().fields());
    }
    assert_eq!(sort_rows(from_batches(&all)), sort_rows(rows.clone()));
    let nulls: usize = all
        .iter()
        .map(|b| b.column_by_name("defect_prob").unwrap().null_count())
        .sum();
    assert_eq!(
        nulls,
        rows.iter().filter(|r| r.defect_prob.is_none()).count()
    );
    assert!(nulls > 0);

    // list_files parses names and partitions.
    let files = list_files(table.root()).unwrap();
    assert_eq!(files.len(), 4);
    for f in &files {
        assert_eq!(f.file_name(), name);
        assert!(["2026-11-28", "2026-11-29"].contains(&f.date.as_str()));
        assert!(["press-3", "press-4"].contains(&f.line.as_str()));
    }
}

#[test]
fn zstd_row_groups_statistics_and_footer_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TableConfig::new("scores", "window_start");
    cfg.max_row_group_rows = 100;
    cfg.zstd_level = 7;
    let table = ParquetTable::open(dir.path(), cfg).unwrap();
    let rows = make_rows(250, &["l1"], 1);
    let meta_in = kv(&[
        ("linewatch.last_durable_window", r#"{"m-1":1795824060000}"#),
        ("linewatch.alerter_state", "{}"),
        ("empty", ""),
    ]);
    let written = table
        .write_file(
            &[to_batch(&rows)],
            &FileName::new(0, 0, 249).unwrap(),
            &meta_in,
        )
        .unwrap();
    assert_eq!(written.len(), 1);
    let path = written[0].location.as_local().unwrap();

    assert_eq!(read_footer_metadata(path).unwrap(), meta_in);

    let file = fs::File::open(path).unwrap();
    let meta = ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .unwrap();
    let sizes: Vec<i64> = meta.row_groups().iter().map(|rg| rg.num_rows()).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    for rg in meta.row_groups() {
        for col in rg.columns() {
            assert!(
                matches!(col.compression(), Compression::ZSTD(_)),
                "{:?}",
                col.compression()
            );
            assert!(
                col.statistics().is_some(),
                "no statistics for {}",
                col.column_path()
            );
        }
    }
}

#[test]
fn rewriting_the_same_name_replaces_and_other_names_add() {
    let dir = tempfile::tempdir().unwrap();
    let table = open(dir.path());
    let rows = make_rows(300, &["a", "b"], 2);
    let batch = to_batch(&rows);
    let name = FileName::new(1, 0, 299).unwrap();
    let first = table
        .write_file(std::slice::from_ref(&batch), &name, &kv(&[("v", "1")]))
        .unwrap();
    let second = table
        .write_file(std::slice::from_ref(&batch), &name, &kv(&[("v", "2")]))
        .unwrap();
    assert_eq!(
        first.iter().map(|w| &w.location).collect::<Vec<_>>(),
        second.iter().map(|w| &w.location).collect::<Vec<_>>()
    );
    let total: usize = read_all(table.root())
        .unwrap()
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(total, 300, "rewrite must replace, not duplicate");
    for w in &second {
        assert_eq!(
            read_footer_metadata(&w.location).unwrap(),
            kv(&[("v", "2")])
        );
    }
    assert_eq!(list_files(table.root()).unwrap().len(), 4);

    // The next range is a new file next to the first.
    table
        .write_file(&[batch], &FileName::new(1, 300, 599).unwrap(), &[])
        .unwrap();
    let total: usize = read_all(table.root())
        .unwrap()
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(total, 600);
    let files = list_files(table.root()).unwrap();
    assert_eq!(files.len(), 8);
    assert!(files[..4].iter().all(|f| f.first_offset == 0));
    assert!(files[4..].iter().all(|f| f.first_offset == 300));
}

#[test]
fn leftover_temporary_files_are_removed_on_open_and_foreign_files_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let table = open(dir.path());
    let rows = make_rows(10, &["a"], 1);
    let written = table
        .write_file(&[to_batch(&rows)], &FileName::new(0, 0, 9).unwrap(), &[])
        .unwrap();
    let pdir = written[0]
        .location
        .as_local()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();

    // A crash between create and rename leaves this behind.
    let tmp =
        pdir.join(".tmp-part-00000-00000000000000000010-00000000000000000019.parquet.partial");
    fs::write(&tmp, b"half a parquet file").unwrap();
    // Files that are not ours stay and are not listed.
    let foreign = pdir.join("notes.txt");
    fs::write(&foreign, b"hello").unwrap();
    let stray = dir.path().join("scores").join("README");
    fs::write(&stray, b"hi").unwrap();
    fs::create_dir_all(dir.path().join("scores/other=1")).unwrap();
    assert_eq!(list_files(table.root()).unwrap().len(), 1);

    let reopened = open(dir.path());
    assert!(!tmp.exists(), "temporary file must be removed on open");
    assert!(foreign.exists() && stray.exists());
    assert!(written[0].location.as_local().unwrap().exists());
    assert_eq!(reopened.list_files().unwrap().len(), 1);
    assert_eq!(read_all(reopened.root()).unwrap()[0].num_rows(), 10);
    // Nothing left that a `*.parquet` glob could pick up but a reader could not read.
    assert_eq!(reopened.cleanup_tmp_files().unwrap(), 0);
}

#[test]
fn hostile_line_names_stay_inside_the_table_root() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let table = ParquetTable::open(&out, TableConfig::new("alerts", "window_start")).unwrap();
    let hostile = [
        "../etc",
        "../../../../tmp/pwn",
        "/abs/path",
        "..",
        ".",
        "",
        "a\\b",
        "line=x/date=y",
        "ünïcödé line",
        "%2E%2E",
        "__HIVE_DEFAULT_PARTITION__",
    ];
    // Long but within one path component: 60 x 4 = 240 encoded bytes.
    let long = "x/".repeat(60);
    let mut names: Vec<&str> = hostile.to_vec();
    names.push(&long);
    let rows = make_rows(names.len() * 3, &names, 1);
    let written = table
        .write_file(&[to_batch(&rows)], &FileName::new(0, 0, 99).unwrap(), &[])
        .unwrap();
    assert_eq!(
        written.len(),
        names.len(),
        "each distinct line gets its own directory"
    );
    let root = fs::canonicalize(table.root().as_local().unwrap()).unwrap();
    for w in &written {
        let p = fs::canonicalize(w.location.as_local().unwrap()).unwrap();
        assert!(
            p.starts_with(&root),
            "{} escaped {}",
            p.display(),
            root.display()
        );
        // Exactly table/date=../line=../file
        let rel = p.strip_prefix(&root).unwrap();
        assert_eq!(rel.components().count(), 3, "{}", rel.display());
    }
    // Nothing was created outside out/.
    let entries: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
    // The rows keep their raw line value.
    let back = sort_rows(from_batches(&read_all(table.root()).unwrap()));
    assert_eq!(back, sort_rows(rows));
}

/// The `line=` folder value, percent-decoded as hive readers do.
fn folder_line(path: &Path) -> String {
    let dir = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let value = dir.strip_prefix("line=").unwrap();
    linewatch_sink::decode_partition_value(value).unwrap()
}

#[test]
fn every_line_folder_decodes_to_the_exact_line_name() {
    let dir = tempfile::tempdir().unwrap();
    let table = open(dir.path());
    // 97 characters, 11 of them 2-byte: once cut and hashed, now kept whole.
    let long = format!("Prüfstraße Nord — Härterei {}", "x".repeat(70));
    assert_eq!(long.chars().count(), 97);
    let longest = "日".repeat(83); // 249 bytes
    let names = [
        long.as_str(),
        longest.as_str(),
        "Line 3 / Halle (B+C), 50%",
        "a.b..c.",
        "ünïcödé",
    ];
    let rows = make_rows(names.len() * 2, &names, 1);
    let written = table
        .write_file(&[to_batch(&rows)], &FileName::new(0, 0, 9).unwrap(), &[])
        .unwrap();
    assert_eq!(written.len(), names.len());
    let mut seen: Vec<String> = written
        .iter()
        .map(|w| folder_line(w.location.as_local().unwrap()))
        .collect();
    seen.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
    for w in &written {
        let comp = w
            .location
            .as_local()
            .unwrap()
            .parent()
            .unwrap()
            .file_name()
            .unwrap();
        assert!(comp.len() <= 255, "{comp:?}");
    }
}

#[test]
fn a_line_too_long_for_one_folder_name_fails_the_write_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let table = open(dir.path());
    let long = "ü".repeat(126); // 252 bytes > 250
    let rows = make_rows(4, &["ok", long.as_str()], 1);
    let e = table
        .write_file(&[to_batch(&rows)], &FileName::new(0, 0, 3).unwrap(), &[])
        .unwrap_err();
    match &e {
        linewatch_sink::SinkError::PartitionValueTooLong {
            line,
            column,
            source,
            ..
        } => {
            assert_eq!(line, &long);
            assert_eq!(column, "line");
            assert_eq!((source.encoded_bytes, source.max), (252, 250));
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.is_retryable());
    assert!(e.to_string().contains(&long), "{e}");
    // Nothing was written under another name.
    assert!(table.list_files().unwrap().is_empty());
}

#[test]
fn partition_column_can_be_left_out_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TableConfig::new("scores", "window_start");
    cfg.keep_partition_columns = false;
    let table = ParquetTable::open(dir.path(), cfg).unwrap();
    let written = table
        .write_file(
            &[to_batch(&make_rows(20, &["a", "b"], 1))],
            &FileName::new(0, 0, 19).unwrap(),
            &[],
        )
        .unwrap();
    assert_eq!(written.len(), 2);
    for b in read_all(table.root()).unwrap() {
        assert!(b.column_by_name("line").is_none());
        assert!(b.column_by_name("window_start").is_some());
        assert_eq!(b.num_columns(), scores_schema().fields().len() - 1);
    }
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let table = open(dir.path());
    let name = FileName::new(0, 0, 0).unwrap();

    // No rows, no files.
    assert!(table.write_file(&[], &name, &[]).unwrap().is_empty());
    let empty = RecordBatch::new_empty(scores_schema());
    assert!(table.write_file(&[empty], &name, &[]).unwrap().is_empty());

    // Missing and mistyped columns.
    let only_line = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(vec!["a"]))],
    )
    .unwrap();
    let err = table.write_file(&[only_line], &name, &[]).unwrap_err();
    assert!(matches!(&err, SinkError::MissingColumn { column, .. } if column == "window_start"));
    assert!(err.to_string().contains("window_start"), "{err}");

    let wrong = Schema::new(vec![
        Field::new("line", DataType::Int64, false),
        Field::new("window_start", DataType::Int64, false),
    ]);
    let err = table.validate_schema(&wrong).unwrap_err();
    assert!(matches!(&err, SinkError::WrongColumnType { column, .. } if column == "line"));
    let wrong_ts = Schema::new(vec![
        Field::new("line", DataType::Utf8, false),
        Field::new("window_start", DataType::Int64, false),
    ]);
    assert!(matches!(
        table.validate_schema(&wrong_ts),
        Err(SinkError::WrongColumnType { .. })
    ));
    assert!(table.validate_schema(&scores_schema()).is_ok());

    // Nulls in partition columns.
    let nullable = Arc::new(Schema::new(vec![
        Field::new("line", DataType::Utf8, true),
        Field::new(
            "window_start",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
    ]));
    let null_line = RecordBatch::try_new(
        nullable.clone(),
        vec![
            Arc::new(StringArray::from(vec![Some("a"), None])),
            Arc::new(TimestampMillisecondArray::from(vec![T0, T0]).with_timezone("UTC")),
        ],
    )
    .unwrap();
    assert!(matches!(
        table.write_file(&[null_line], &name, &[]),
        Err(SinkError::NullPartitionValue { row: 1, .. })
    ));
    let null_ts = RecordBatch::try_new(
        nullable,
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(TimestampMillisecondArray::from(vec![None::<i64>]).with_timezone("UTC")),
        ],
    )
    .unwrap();
    assert!(matches!(
        table.write_file(&[null_ts], &name, &[]),
        Err(SinkError::NullPartitionValue { .. })
    ));

    // Out-of-range timestamp.
    let far = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("line", DataType::Utf8, false),
            Field::new(
                "window_start",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(TimestampMillisecondArray::from(vec![i64::MAX])),
        ],
    )
    .unwrap();
    assert!(matches!(
        table.write_file(&[far], &name, &[]),
        Err(SinkError::TimestampOutOfRange { .. })
    ));

    // Schema mismatch between batches.
    let a = to_batch(&make_rows(2, &["a"], 1));
    let b = a.project(&[0, 2]).unwrap();
    assert!(matches!(
        table.write_file(&[a.clone(), b], &name, &[]),
        Err(SinkError::SchemaMismatch { index: 1, .. })
    ));

    // Reserved metadata key and invalid names.
    assert!(matches!(
        table.write_file(
            std::slice::from_ref(&a),
            &name,
            &kv(&[("ARROW:schema", "x")])
        ),
        Err(SinkError::ReservedMetadataKey(_))
    ));
    let bad = FileName {
        partition: 0,
        first_offset: 5,
        last_offset: 1,
    };
    assert!(matches!(
        table.write_file(&[a], &bad, &[]),
        Err(SinkError::InvalidFileName(_))
    ));

    // Nothing was written by any of the failures, and no temporary files remain.
    assert!(list_files(table.root()).unwrap().is_empty());
    assert_eq!(table.cleanup_tmp_files().unwrap(), 0);
}

/// The same table on an object store (in memory here; `tests/` runs it against a real S3
/// server): files land under the same keys, footers read from the tail, a rewrite replaces,
/// and the rows read back equal the local table's.
#[test]
fn an_object_store_table_holds_what_a_local_one_holds() {
    let dir = tempfile::tempdir().unwrap();
    let local = open(dir.path());
    let store = linewatch_sink::Location::in_memory().join("plant/out");
    let remote = ParquetTable::open(&store, TableConfig::new("scores", "window_start")).unwrap();
    let rows = make_rows(600, &["press-3", "press-4"], 2);
    let meta = kv(&[("linewatch.flush_seq", "7")]);
    for table in [&local, &remote] {
        let name = FileName::new(3, 0, 599).unwrap();
        table
            .write_file(&[to_batch(&rows)], &name, &kv(&[("v", "1")]))
            .unwrap();
        table.write_file(&[to_batch(&rows)], &name, &meta).unwrap();
    }
    let names = |t: &ParquetTable| -> Vec<(i32, i64, i64, String, String)> {
        t.list_files()
            .unwrap()
            .into_iter()
            .map(|f| (f.partition, f.first_offset, f.last_offset, f.date, f.line))
            .collect()
    };
    assert_eq!(names(&local), names(&remote));
    assert_eq!(names(&remote).len(), 4, "a rewrite replaces");
    for f in remote.list_files().unwrap() {
        assert!(
            f.location
                .to_string()
                .starts_with("memory://plant/out/scores/date=")
        );
        assert_eq!(read_footer_metadata(&f.location).unwrap(), meta);
    }
    let rows_of = |t: &ParquetTable| from_batches(&read_all(t.root()).unwrap());
    assert_eq!(rows_of(&local), rows_of(&remote));
    assert_eq!(rows_of(&remote).len(), 600);
    assert_eq!(remote.cleanup_tmp_files().unwrap(), 0);
    // A footer longer than the first ranged read (64 KiB) takes a second one.
    let big = kv(&[("linewatch.durable", &"m".repeat(200_000))]);
    let written = remote
        .write_file(&[to_batch(&rows)], &FileName::new(4, 0, 599).unwrap(), &big)
        .unwrap();
    for w in &written {
        assert_eq!(read_footer_metadata(&w.location).unwrap(), big);
    }
}
