//! Writes a small `scores` table for checking the layout with an external reader:
//! `cargo run -p linewatch-sink --example write_demo -- /tmp/out`, then e.g.
//! `SELECT * FROM read_parquet('/tmp/out/scores/**/*.parquet', hive_partitioning = true)`.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use linewatch_sink::{FileName, ParquetTable, TableConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "linewatch-out".to_owned());
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("line", DataType::Utf8, false),
        Field::new("machine", DataType::Utf8, false),
        Field::new("window_start", ts, false),
        Field::new("anomaly_score", DataType::Float32, false),
        Field::new("defect_prob", DataType::Float32, true),
        Field::new("alert", DataType::Boolean, false),
    ]));
    // 2026-11-28T23:59:00Z and a minute later (next day).
    let t0 = 1_795_910_340_000_i64;
    let lines = ["press-3", "press/4", "../etc", "Prüf 1", "press-3"];
    let starts = [t0, t0, t0 + 60_000, t0 + 60_000, t0 + 60_000];
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(lines.to_vec())),
        Arc::new(StringArray::from(vec!["m-1", "m-2", "m-3", "m-4", "m-5"])),
        Arc::new(TimestampMillisecondArray::from(starts.to_vec()).with_timezone("UTC")),
        Arc::new(Float32Array::from(vec![0.5, 1.5, 2.5, 3.5, 4.5])),
        Arc::new(Float32Array::from(vec![
            Some(0.1),
            None,
            Some(0.3),
            None,
            None,
        ])),
        Arc::new(BooleanArray::from(vec![false, true, false, true, false])),
    ];
    let batch = RecordBatch::try_new(schema, cols)?;
    let table = ParquetTable::open(
        linewatch_sink::Location::parse(&out)?,
        TableConfig::new("scores", "window_start"),
    )?;
    table.write_file(
        &[batch],
        &FileName::new(0, 0, 4)?,
        &[("linewatch.demo".to_owned(), "1".to_owned())],
    )?;
    Ok(())
}
