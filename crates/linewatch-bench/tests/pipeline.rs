//! `linewatch bench pipeline` on a small line: every reading goes through, every window is
//! scored and written, and the Parquet scores read back hold them all.

#![allow(clippy::unwrap_used)]

use linewatch_bench::pipeline::{PipelineOptions, bench_pipeline};

#[test]
fn every_window_of_a_small_line_is_scored_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let o = PipelineOptions {
        readings: 20_000,
        train_readings: 10_000,
        machines: 50,
        channels: 8,
        out: out.clone(),
    };
    let r = bench_pipeline(&o).unwrap();
    assert!(r.readings >= o.readings && r.readings < o.readings + o.machines);
    assert_eq!(r.model_inputs, 32);
    assert!(
        !r.model_residual,
        "10,000 readings are too few for the residual"
    );
    // One reading a second per machine, 10 s tumbling windows: one window per 10 readings,
    // the last ones flushed at the end.
    let expected = r.readings as f64 / 10.0;
    assert!(
        (r.windows as f64 - expected).abs() <= o.machines as f64,
        "{} windows for {} readings",
        r.windows,
        r.readings
    );
    let rows: usize = linewatch_sink::read_all(out.join("scores"))
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, r.windows);
    assert!(r.readings_per_second.is_finite() && r.readings_per_second > 0.0);
    let s = &r.stages;
    assert!(s.decode_window + s.score + s.alert + s.parquet <= r.seconds * 1.01);
}
