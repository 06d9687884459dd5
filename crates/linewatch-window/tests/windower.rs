//! Scenario tests of the windower and the feature batch, through the public API.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use arrow_array::{Array, Float64Array, StringArray, TimestampMillisecondArray, UInt32Array};
use arrow_schema::{DataType, TimeUnit};
use linewatch_window::*;

/// A window-aligned base time (multiple of 60 s), 2023-11-14.
const T: i64 = 1_700_000_040_000;

fn channels(names: &[&str]) -> Arc<ChannelSet> {
    Arc::new(ChannelSet::new(names).unwrap())
}

fn windower(cfg: WindowConfig) -> Windower {
    Windower::new(cfg, channels(&["a", "b"])).unwrap()
}

fn reading(machine: &str, ts: i64, values: &[(&str, f64)]) -> Reading {
    Reading {
        line: "L".into(),
        machine: machine.into(),
        ts_ms: ts,
        values: values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
    }
}

fn push(w: &mut Windower, machine: &str, ts: i64, seq: u64) -> PushOutcome {
    w.push(&reading(machine, ts, &[("a", 1.0)]), seq).unwrap()
}

#[test]
fn tumbling_assignment_and_boundaries() {
    let mut w = windower(WindowConfig::tumbling(10_000, 0, 60_000));
    assert_eq!(push(&mut w, "m", T, 1).windows, 1);
    assert_eq!(push(&mut w, "m", T + 9_999, 2).windows, 1);
    assert!(w.drain_closed().is_empty());
    // exactly `end` belongs to the next window, and closes the first one
    push(&mut w, "m", T + 10_000, 3);
    let closed = w.drain_closed();
    assert_eq!(closed.len(), 1);
    let c = &closed[0];
    assert_eq!((c.start_ms, c.end_ms, c.n_readings), (T, T + 10_000, 2));
    assert_eq!((c.min_seq, c.max_seq), (1, 2));
    assert_eq!(c.reason, CloseReason::Watermark);
    assert_eq!(&*c.key.machine, "m");
    w.flush_all();
    let closed = w.drain_closed();
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].start_ms, closed[0].n_readings), (T + 10_000, 1));
    assert_eq!(closed[0].reason, CloseReason::Flush);
}

#[test]
fn negative_and_unaligned_times_use_epoch_alignment() {
    let mut w = Windower::new(WindowConfig::tumbling(1_000, 0, 60_000), channels(&["a"])).unwrap();
    push(&mut w, "m", -1, 1);
    push(&mut w, "m", 1_500, 2);
    let c = w.drain_closed();
    assert_eq!((c[0].start_ms, c[0].end_ms), (-1_000, 0));
}

#[test]
fn hopping_assignment() {
    let mut w = windower(WindowConfig::hopping(10_000, 5_000, 0, 60_000));
    let o = push(&mut w, "m", T + 7_000, 1);
    assert_eq!(o.windows, 2);
    assert_eq!(o.lateness(), Lateness::OnTime);
    push(&mut w, "m", T + 15_000, 2);
    let closed = w.drain_closed();
    let spans: Vec<(i64, i64)> = closed.iter().map(|c| (c.start_ms, c.end_ms)).collect();
    assert_eq!(spans, vec![(T, T + 10_000), (T + 5_000, T + 15_000)]);
    assert_eq!(
        WindowConfig::hopping(10_000, 5_000, 0, 1)
            .windows_containing(T + 7_000)
            .collect::<Vec<_>>(),
        spans
    );
}

#[test]
fn watermark_and_lateness() {
    let mut w = windower(WindowConfig::tumbling(10_000, 2_000, 60_000));
    push(&mut w, "m", T + 1_000, 1);
    push(&mut w, "m", T + 11_000, 2); // watermark T+9000: first window stays open
    assert!(w.drain_closed().is_empty());
    let o = push(&mut w, "m", T + 9_500, 3); // within lateness: right window
    assert_eq!(o.lateness(), Lateness::OnTime);
    push(&mut w, "m", T + 12_500, 4); // watermark T+10500 closes the first window
    let closed = w.drain_closed();
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (closed[0].n_readings, closed[0].min_seq, closed[0].max_seq),
        (2, 1, 3)
    );
    let o = push(&mut w, "m", T + 9_900, 5);
    assert!(o.is_late());
    assert_eq!((o.windows, o.late_windows), (0, 1));
    let s = w.stats();
    assert_eq!((s.readings_accepted, s.readings_late), (4, 1));
    assert_eq!(s.windows_open, 1);
    assert_eq!(w.frontier_ms("L", "m"), Some(T + 10_500));
    // another machine is independent
    assert_eq!(
        push(&mut w, "other", T + 100, 6).lateness(),
        Lateness::OnTime
    );
}

#[test]
fn out_of_order_within_lateness_lands_in_the_right_window() {
    let mut w = windower(WindowConfig::tumbling(10_000, 5_000, 60_000));
    push(&mut w, "m", T + 12_000, 1);
    push(&mut w, "m", T + 7_000, 2);
    push(&mut w, "m", T + 3_000, 3);
    push(&mut w, "m", T + 30_000, 4);
    let closed = w.drain_closed();
    let got: Vec<(i64, u32, u64, u64)> = closed
        .iter()
        .map(|c| (c.start_ms, c.n_readings, c.min_seq, c.max_seq))
        .collect();
    assert_eq!(got, vec![(T, 2, 2, 3), (T + 10_000, 1, 1, 1)]);
}

#[test]
fn partially_late_hopping_reading_goes_into_open_windows_only() {
    let mut w = windower(WindowConfig::hopping(10_000, 5_000, 0, 60_000));
    push(&mut w, "m", T + 12_000, 1); // frontier T+12000: [T, T+10000) closed
    let o = push(&mut w, "m", T + 8_000, 2);
    assert_eq!(o.lateness(), Lateness::PartiallyLate);
    assert_eq!((o.windows, o.late_windows), (1, 1));
    assert_eq!(w.stats().readings_partially_late, 1);
    w.flush_all();
    let closed = w.drain_closed();
    let got: Vec<(i64, u32)> = closed.iter().map(|c| (c.start_ms, c.n_readings)).collect();
    assert_eq!(got, vec![(T + 5_000, 2), (T + 10_000, 1)]);
}

#[test]
fn idle_machines_are_flushed_evicted_and_tombstoned() {
    let mut w = windower(WindowConfig::tumbling(10_000, 0, 30_000));
    push(&mut w, "a", T + 1_000, 1);
    for i in 0..4 {
        push(&mut w, "b", T + i * 10_000, 10 + i as u64);
    }
    assert_eq!(
        w.flush_idle(),
        0,
        "stream time T+30000: a idle for 29000 <= 30000"
    );
    push(&mut w, "b", T + 40_000, 20);
    w.drain_closed();
    // stream time T+40000 - a's T+1000 = 39000 > 30000
    assert_eq!(w.flush_idle(), 1);
    let closed = w.drain_closed();
    assert_eq!(closed.len(), 1);
    assert_eq!(&*closed[0].key.machine, "a");
    assert_eq!(closed[0].reason, CloseReason::Idle);
    let s = w.stats();
    assert_eq!((s.machines, s.tombstones, s.machines_evicted), (1, 1, 1));
    assert_eq!(w.frontier_ms("L", "a"), Some(T + 10_000));
    // coming back: older than what was closed is late, newer starts fresh
    assert!(push(&mut w, "a", T + 5_000, 30).is_late());
    assert_eq!(w.stats().tombstones, 0);
    assert_eq!(
        push(&mut w, "a", T + 10_000, 31).lateness(),
        Lateness::OnTime
    );
    assert_eq!(
        w.open_min_seq()
            .find(|(k, _)| &*k.machine == "a")
            .map(|x| x.1),
        Some(31)
    );
}

#[test]
fn tombstones_are_bounded() {
    let mut cfg = WindowConfig::tumbling(1_000, 0, 1_000);
    cfg.max_tombstones = 3;
    let mut w = windower(cfg);
    for round in 0..4i64 {
        for m in 0..5 {
            push(&mut w, &format!("m{m}"), T + round * 100_000, 1);
        }
        push(&mut w, "clock", T + round * 100_000 + 50_000, 1);
        w.flush_idle();
        assert!(w.stats().tombstones <= 3);
    }
    assert_eq!(w.stats().tombstones, 3);
}

#[test]
fn flush_all_closes_everything_in_end_order() {
    let mut w = windower(WindowConfig::hopping(10_000, 5_000, 60_000, 600_000));
    for (i, ts) in [T + 21_000, T + 1_000, T + 12_000].into_iter().enumerate() {
        push(&mut w, "m2", ts, i as u64);
        push(&mut w, "m1", ts, 100 + i as u64);
    }
    assert!(w.drain_closed().is_empty());
    assert_eq!(w.min_unemitted_seq(), Some(0));
    w.flush_all();
    assert_eq!(w.stats().windows_open, 0);
    assert_eq!(
        w.min_unemitted_seq(),
        Some(0),
        "undrained windows still hold seqs"
    );
    let closed = w.drain_closed();
    assert_eq!(w.min_unemitted_seq(), None);
    for m in ["m1", "m2"] {
        let ends: Vec<i64> = closed
            .iter()
            .filter(|c| &*c.key.machine == m)
            .map(|c| c.end_ms)
            .collect();
        assert_eq!(ends.len(), 6);
        assert!(ends.windows(2).all(|p| p[0] < p[1]), "{ends:?}");
    }
    assert!(closed.iter().all(|c| c.reason == CloseReason::Flush));
    assert_eq!(
        &*closed[0].key.machine, "m1",
        "flush visits machines in key order"
    );
    // after a flush, readings into flushed windows are late
    assert!(push(&mut w, "m1", T + 20_000, 7).is_late());
}

#[test]
fn open_min_seq_tracks_open_windows() {
    let mut w = windower(WindowConfig::tumbling(10_000, 0, 600_000));
    push(&mut w, "m", T + 1_000, 5);
    push(&mut w, "m", T + 2_000, 3);
    push(&mut w, "n", T + 2_000, 9);
    let mut v: Vec<(String, u64)> = w
        .open_min_seq()
        .map(|(k, s)| (k.machine.to_string(), s))
        .collect();
    v.sort();
    assert_eq!(v, vec![("m".into(), 3), ("n".into(), 9)]);
    push(&mut w, "m", T + 10_000, 7);
    assert_eq!(w.min_unemitted_seq(), Some(3));
    w.drain_closed();
    assert_eq!(w.min_unemitted_seq(), Some(7));
}

#[test]
fn features_against_hand_computed_values() {
    let mut w = windower(WindowConfig::tumbling(10_000, 10_000, 600_000));
    // a: 1 @0s, 3 @1s, 2 @2s, 6 @3s (pushed out of order); b only twice at the same time
    w.push(&reading("m", T + 2_000, &[("a", 2.0), ("b", 5.0)]), 1)
        .unwrap();
    w.push(&reading("m", T, &[("a", 1.0)]), 2).unwrap();
    w.push(&reading("m", T + 3_000, &[("a", 6.0)]), 3).unwrap();
    w.push(&reading("m", T + 1_000, &[("a", 3.0)]), 4).unwrap();
    w.push(&reading("m", T + 2_000, &[("b", 7.0)]), 5).unwrap();
    w.flush_all();
    let c = w.drain_closed().pop().unwrap();
    assert_eq!(c.n_readings, 5);
    let a = c.features[0].unwrap();
    assert_eq!(a.count, 4);
    assert!((a.mean - 3.0).abs() < 1e-12);
    assert!((a.std - 3.5f64.sqrt()).abs() < 1e-12);
    assert_eq!((a.min, a.max, a.last), (1.0, 6.0, 6.0));
    assert!((a.slope.unwrap() - 1.4).abs() < 1e-12);
    let b = c.features[1].unwrap();
    assert_eq!(
        (b.count, b.mean, b.std, b.last, b.slope),
        (2, 6.0, 1.0, 7.0, None)
    );
}

#[test]
fn missing_and_unknown_channels() {
    let chans = channels(&["a", "b", "c"]);
    let mut w = Windower::new(WindowConfig::tumbling(10_000, 0, 600_000), chans.clone()).unwrap();
    let o = w
        .push(&reading("m", T, &[("c", 1.0), ("zz", 2.0), ("a", 3.0)]), 1)
        .unwrap();
    assert_eq!(o.unknown_channels, 1);
    assert_eq!(w.stats().unknown_channel_values, 1);
    w.flush_all();
    let closed = w.drain_closed();
    assert_eq!(closed[0].missing_channels().collect::<Vec<_>>(), vec![1]);

    let schema = FeatureSchema::new(chans);
    let batch = schema.build_batch(&closed).unwrap();
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch.num_columns(), N_KEY_COLUMNS + 21);
    let b_mean = batch.column_by_name("b__mean").unwrap();
    assert_eq!(b_mean.null_count(), 1);
    let a_slope = batch.column_by_name("a__slope").unwrap();
    assert_eq!(a_slope.null_count(), 1, "one time only: slope is null");
    let a_mean = batch
        .column_by_name("a__mean")
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(a_mean.value(0), 3.0);
    let v = closed[0].feature_vector();
    assert_eq!(v.len(), 21);
    assert!(v[7..14].iter().all(|x| x.is_nan()));
    assert_eq!(v[schema.feature_index(2, Stat::Count).unwrap()], 1.0);
}

#[test]
fn batch_schema_and_dense_matrix() {
    let chans = channels(&["temp_c", "vib_rms"]);
    let schema = FeatureSchema::new(chans.clone());
    assert_eq!(
        &schema.feature_names()[..8],
        &[
            "temp_c__mean",
            "temp_c__std",
            "temp_c__min",
            "temp_c__max",
            "temp_c__last",
            "temp_c__slope",
            "temp_c__count",
            "vib_rms__mean"
        ]
    );
    let s = schema.schema();
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    assert_eq!(s.field(0).name(), COL_LINE);
    assert_eq!(s.field(1).name(), COL_MACHINE);
    assert_eq!(s.field(2).data_type(), &ts);
    assert_eq!(s.field(3).data_type(), &ts);
    assert_eq!(s.field(4).data_type(), &DataType::UInt32);
    assert!(
        s.fields()[N_KEY_COLUMNS..]
            .iter()
            .all(|f| f.is_nullable() && f.data_type() == &DataType::Float64)
    );
    assert!(s.fields()[..N_KEY_COLUMNS].iter().all(|f| !f.is_nullable()));

    let mut w = Windower::new(WindowConfig::tumbling(60_000, 0, 600_000), chans).unwrap();
    for i in 0..100i64 {
        let m = format!("m{}", i % 3);
        let r = reading(
            &m,
            T + i * 1_000,
            &[("temp_c", 70.0 + i as f64 * 0.1), ("vib_rms", 0.03)],
        );
        w.push(&r, i as u64).unwrap();
    }
    w.flush_all();
    let closed = w.drain_closed();
    let batch = schema.build_batch(&closed).unwrap();
    assert_eq!(batch.schema(), schema.schema());
    assert_eq!(batch.num_rows(), closed.len());
    let lines = batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let machines = batch
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let starts = batch
        .column(2)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    let n = batch
        .column(4)
        .as_any()
        .downcast_ref::<UInt32Array>()
        .unwrap();
    for (r, c) in closed.iter().enumerate() {
        assert_eq!(lines.value(r), "L");
        assert_eq!(machines.value(r), &*c.key.machine);
        assert_eq!(starts.value(r), c.start_ms);
        assert_eq!(n.value(r), c.n_readings);
    }
    let d1 = schema.dense(&closed).unwrap();
    let d2 = schema.dense_from_batch(&batch).unwrap();
    assert_eq!((d1.n_rows, d1.n_cols), (closed.len(), 14));
    let same = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
    };
    assert!(same(&d1.values, &d2.values));
    assert!(same(d1.row(0).unwrap(), &closed[0].feature_vector()));
    assert!(d1.row(closed.len()).is_none());
    assert_eq!(schema.build_batch(&[]).unwrap().num_rows(), 0);

    let other = FeatureSchema::new(channels(&["x"]));
    assert!(matches!(
        other.build_batch(&closed),
        Err(BatchError::ChannelCountMismatch {
            expected: 1,
            got: 2
        })
    ));
}

#[test]
fn push_refuses_non_finite_and_absurd_times() {
    let mut w = windower(WindowConfig::tumbling(10_000, 0, 60_000));
    let e = w.push(&reading("m", T, &[("a", f64::NAN)]), 1).unwrap_err();
    assert_eq!(e.reason(), "non_finite_value");
    let e = w
        .push(&reading("m", i64::MAX, &[("a", 1.0)]), 1)
        .unwrap_err();
    assert_eq!(e, PushError::TimestampOutOfRange { ts_ms: i64::MAX });
    let e = w
        .push(&reading("m", i64::MIN, &[("a", 1.0)]), 1)
        .unwrap_err();
    assert_eq!(e.reason(), "timestamp_out_of_range");
    assert_eq!(w.stats().readings_rejected, 3);
    assert_eq!(w.stats().machines, 0);
    // extremes of the accepted range do not overflow
    w.push(&reading("m", MAX_ABS_TS_MS, &[("a", 1.0)]), 1)
        .unwrap();
    w.push(&reading("n", -MAX_ABS_TS_MS, &[("a", 1.0)]), 1)
        .unwrap();
    w.flush_idle();
    w.flush_all();
    assert_eq!(w.drain_closed().len(), 2);
}

#[test]
fn config_validation() {
    let ok = WindowConfig::hopping(10_000, 2_500, 0, 1);
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(ok.windows_per_reading(), 4);
    let bad = [
        (WindowConfig::tumbling(0, 0, 1), ConfigError::ZeroSize),
        (WindowConfig::hopping(10, 0, 0, 1), ConfigError::ZeroSlide),
        (
            WindowConfig::hopping(10, 20, 0, 1),
            ConfigError::SlideLargerThanSize {
                size_ms: 10,
                slide_ms: 20,
            },
        ),
        (
            WindowConfig::hopping(10, 3, 0, 1),
            ConfigError::SizeNotMultipleOfSlide {
                size_ms: 10,
                slide_ms: 3,
            },
        ),
        (
            WindowConfig::hopping(1_000_000, 1, 0, 1),
            ConfigError::TooManyWindowsPerReading {
                n: 1_000_000,
                max: 1024,
            },
        ),
        (
            WindowConfig::tumbling(10, 0, 0),
            ConfigError::ZeroIdleTimeout,
        ),
        (
            WindowConfig::tumbling(10, u64::MAX, 1),
            ConfigError::TooLong {
                field: "allowed_lateness_ms",
                value: u64::MAX,
                max: MAX_DURATION_MS,
            },
        ),
    ];
    for (cfg, e) in bad {
        assert_eq!(cfg.validate(), Err(e.clone()));
        assert_eq!(Windower::new(cfg.clone(), channels(&["a"])).unwrap_err(), e);
        assert_eq!(cfg.windows_containing(T).count(), 0);
    }
    assert_eq!(
        ChannelSet::new(Vec::<String>::new()).unwrap_err(),
        ConfigError::NoChannels
    );
    assert_eq!(
        ChannelSet::new(["a", ""]).unwrap_err(),
        ConfigError::EmptyChannelName
    );
    assert_eq!(
        ChannelSet::new(["a", "b", "a"]).unwrap_err(),
        ConfigError::DuplicateChannel("a".into())
    );
    let cs = ChannelSet::new(["x", "y"]).unwrap();
    assert_eq!(cs.index_of("y"), Some(1));
    assert_eq!(cs.names().collect::<Vec<_>>(), vec!["x", "y"]);
}

#[test]
fn config_from_json_denies_unknown_fields() {
    let cfg: WindowConfig =
        serde_json::from_str(r#"{"size_ms":60000,"slide_ms":60000,"idle_timeout_ms":300000}"#)
            .unwrap();
    assert_eq!(cfg, WindowConfig::tumbling(60_000, 0, 300_000));
    assert!(
        serde_json::from_str::<WindowConfig>(
            r#"{"size_ms":1,"slide_ms":1,"idle_timeout_ms":1,"x":1}"#
        )
        .is_err()
    );
}

#[test]
fn decode_then_window_borrowed_path() {
    let limits = DecodeLimits::default();
    let chans = channels(&["temp_c", "vib_rms"]);
    let mut w = Windower::new(WindowConfig::tumbling(1_000, 0, 60_000), chans.clone()).unwrap();
    let msgs = [
        r#"{"line":"press-3","machine":"m-17","ts":"2026-11-28T12:00:00.123Z","values":{"temp_c":71.2,"vib_rms":0.031}}"#,
        r#"{"line":"press-3","machine":"m-17","ts":"2026-11-28T12:00:00.623Z","values":{"vib_rms":0.035,"temp_c":71.4}}"#,
        r#"{"line":"press-3","machine":"m-17","ts":1795867201000,"values":{"temp_c":72.0}}"#,
    ];
    for (i, m) in msgs.iter().enumerate() {
        let r = decode_reading_ref(m.as_bytes(), &limits).unwrap();
        w.push_ref(&r, i as u64).unwrap();
    }
    let closed = w.drain_closed();
    assert_eq!(closed.len(), 1);
    let t = closed[0].features[0].unwrap();
    assert_eq!(t.count, 2);
    assert!((t.mean - 71.3).abs() < 1e-9);
    assert!((t.slope.unwrap() - 0.4).abs() < 1e-9, "0.2 over 0.5 s");
    let batch = FeatureSchema::new(chans).build_batch(&closed).unwrap();
    assert_eq!(batch.num_rows(), 1);
}

/// A meter at 1e9 ± 0.5 (issue 11, case 3): Float32 would quantise every feature to
/// steps of 64 units; the batch, the dense matrix and the feature vector keep the
/// f64 values, so the window's mean, spread and slope are what the readings say.
#[test]
fn large_offsets_keep_their_precision_in_every_feature_form() {
    let offset = 1.0e9;
    let deltas = [-0.5, 0.25, 0.5, -0.25];
    let mut w = Windower::new(
        WindowConfig::tumbling(10_000, 0, 60_000),
        channels(&["meter"]),
    )
    .unwrap();
    for (i, d) in deltas.iter().enumerate() {
        let r = reading("m", T + i as i64 * 1_000, &[("meter", offset + d)]);
        w.push(&r, i as u64).unwrap();
    }
    w.flush_all();
    let closed = w.drain_closed();
    let schema = FeatureSchema::new(channels(&["meter"]));
    let batch = schema.build_batch(&closed).unwrap();
    let dense = schema.dense_from_batch(&batch).unwrap();
    let vector = closed[0].feature_vector();
    let mean_i = schema.feature_index(0, Stat::Mean).unwrap();
    let std_i = schema.feature_index(0, Stat::Std).unwrap();
    let last_i = schema.feature_index(0, Stat::Last).unwrap();
    let want_std = (deltas.iter().map(|d| d * d).sum::<f64>() / 4.0).sqrt();
    for v in [&dense.values[..], &vector[..]] {
        assert!((v[mean_i] - offset).abs() < 1e-6, "mean {}", v[mean_i]);
        assert!((v[std_i] - want_std).abs() < 1e-6, "std {}", v[std_i]);
        assert_eq!(v[last_i], offset - 0.25);
    }
    // Tables written before features were Float64 still read back, exactly as stored.
    let cols: Vec<(String, arrow_array::ArrayRef)> = schema
        .feature_names()
        .iter()
        .map(|n| {
            let a = arrow_array::Float32Array::from(vec![Some(2.5f32)]);
            (n.clone(), Arc::new(a) as arrow_array::ArrayRef)
        })
        .collect();
    let old = arrow_array::RecordBatch::try_from_iter(cols).unwrap();
    let dense = schema.dense_from_batch(&old).unwrap();
    assert!(dense.values.iter().all(|&v| v == 2.5));
    let no_std = old.project(&[mean_i]).unwrap();
    let err = schema.dense_from_batch(&no_std).unwrap_err();
    assert!(err.to_string().contains("meter__std"), "{err}");
}
