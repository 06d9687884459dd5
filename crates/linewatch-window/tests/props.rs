//! Property tests: random out-of-order streams over several machines, checked
//! against a naive reference that keeps every reading and recomputes the
//! features from scratch (two-pass mean/std, direct least squares).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use linewatch_window::*;
use proptest::prelude::*;

const BASE: i64 = 1_800_000_000_000;
const CHANNELS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Push {
        machine: usize,
        step: i64,
        jitter: i64,
        values: Vec<(usize, f64)>,
    },
    FlushIdle,
}

#[derive(Debug, Clone)]
struct Rd {
    ts: i64,
    seq: u64,
    values: Vec<(String, f64)>,
}

#[derive(Default)]
struct RefMachine {
    max_ts: Option<i64>,
    frontier: Option<i64>,
    open: BTreeMap<i64, Vec<Rd>>,
}

#[derive(Debug)]
struct RefWindow {
    machine: String,
    start: i64,
    readings: Vec<Rd>,
    reason: CloseReason,
}

struct Reference {
    size: i64,
    slide: i64,
    lateness: i64,
    idle: i64,
    machines: BTreeMap<String, RefMachine>,
    tombs: BTreeMap<String, i64>,
    stream: Option<i64>,
    closed: Vec<RefWindow>,
}

impl Reference {
    fn push(&mut self, machine: &str, rd: Rd) -> (u32, u32) {
        let ts = rd.ts;
        self.stream = Some(self.stream.map_or(ts, |s| s.max(ts)));
        if !self.machines.contains_key(machine) {
            let frontier = self.tombs.remove(machine);
            self.machines.insert(
                machine.to_owned(),
                RefMachine {
                    frontier,
                    ..RefMachine::default()
                },
            );
        }
        let m = self.machines.get_mut(machine).unwrap();
        let (mut on, mut late) = (0, 0);
        // every window start s (multiple of slide) with s <= ts < s + size
        let mut s = ts.div_euclid(self.slide) * self.slide;
        let mut starts = vec![];
        while s + self.size > ts {
            starts.push(s);
            s -= self.slide;
        }
        starts.reverse();
        for s in starts {
            if m.frontier.is_some_and(|f| s + self.size <= f) {
                late += 1;
            } else {
                m.open.entry(s).or_default().push(rd.clone());
                on += 1;
            }
        }
        if m.max_ts.is_none_or(|x| ts > x) {
            m.max_ts = Some(ts);
            let wm = ts - self.lateness;
            if m.frontier.is_none_or(|f| wm > f) {
                m.frontier = Some(wm);
                let done: Vec<i64> = m
                    .open
                    .keys()
                    .copied()
                    .filter(|s| s + self.size <= wm)
                    .collect();
                for s in done {
                    let readings = m.open.remove(&s).unwrap();
                    self.closed.push(RefWindow {
                        machine: machine.to_owned(),
                        start: s,
                        readings,
                        reason: CloseReason::Watermark,
                    });
                }
            }
        }
        (on, late)
    }

    fn flush_machine(&mut self, name: &str, reason: CloseReason) {
        let m = self.machines.get_mut(name).unwrap();
        for (s, readings) in std::mem::take(&mut m.open) {
            self.closed.push(RefWindow {
                machine: name.to_owned(),
                start: s,
                readings,
                reason,
            });
        }
        if let Some(mx) = m.max_ts {
            let end = mx.div_euclid(self.slide) * self.slide + self.size;
            m.frontier = Some(m.frontier.map_or(end, |f| f.max(end)));
        }
    }

    fn flush_idle(&mut self) {
        let Some(now) = self.stream else { return };
        let idle: Vec<String> = self
            .machines
            .iter()
            .filter(|(_, m)| m.max_ts.is_none_or(|x| now - x > self.idle))
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            self.flush_machine(&k, CloseReason::Idle);
            let m = self.machines.remove(&k).unwrap();
            if let Some(f) = m.frontier {
                self.tombs.insert(k, f);
            }
        }
    }

    fn flush_all(&mut self) {
        let keys: Vec<String> = self.machines.keys().cloned().collect();
        for k in keys {
            self.flush_machine(&k, CloseReason::Flush);
        }
    }

    fn open_min_seq(&self) -> BTreeMap<String, u64> {
        self.machines
            .iter()
            .filter_map(|(k, m)| {
                m.open
                    .values()
                    .flatten()
                    .map(|r| r.seq)
                    .min()
                    .map(|s| (k.clone(), s))
            })
            .collect()
    }
}

fn naive_features(start: i64, readings: &[Rd], channel: &str) -> Option<ChannelFeatures> {
    let pts: Vec<(usize, i64, f64)> = readings
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.values
                .iter()
                .find(|(c, _)| c == channel)
                .map(|(_, v)| (i, r.ts, *v))
        })
        .collect();
    if pts.is_empty() {
        return None;
    }
    let n = pts.len() as f64;
    let mean = pts.iter().map(|p| p.2).sum::<f64>() / n;
    let var = pts.iter().map(|p| (p.2 - mean).powi(2)).sum::<f64>() / n;
    let min = pts.iter().map(|p| p.2).fold(f64::INFINITY, f64::min);
    let max = pts.iter().map(|p| p.2).fold(f64::NEG_INFINITY, f64::max);
    // latest event time, ties to the latest arrival
    let last = pts.iter().max_by_key(|p| (p.1, p.0)).unwrap().2;
    let ts: Vec<f64> = pts.iter().map(|p| (p.1 - start) as f64 / 1000.0).collect();
    let tm = ts.iter().sum::<f64>() / n;
    let mut distinct: Vec<i64> = pts.iter().map(|p| p.1).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let slope = (distinct.len() >= 2).then(|| {
        let sxy: f64 = ts
            .iter()
            .zip(&pts)
            .map(|(t, p)| (t - tm) * (p.2 - mean))
            .sum();
        let sxx: f64 = ts.iter().map(|t| (t - tm).powi(2)).sum();
        sxy / sxx
    });
    Some(ChannelFeatures {
        count: pts.len() as u32,
        mean,
        std: var.sqrt(),
        min,
        max,
        last,
        slope,
    })
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-9 * scale.max(1.0)
}

fn same_features(got: &ChannelFeatures, want: &ChannelFeatures) -> bool {
    let slope_ok = match (got.slope, want.slope) {
        (None, None) => true,
        (Some(a), Some(b)) => close(a, b, b.abs().max(1e3)),
        _ => false,
    };
    got.count == want.count
        && close(got.mean, want.mean, 100.0)
        && close(got.std, want.std, 100.0)
        && got.min == want.min
        && got.max == want.max
        && got.last == want.last
        && slope_ok
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (
            0usize..4,
            0i64..2_500,
            prop_oneof![3 => Just(0i64), 2 => -6_000i64..0, 1 => -40_000i64..0],
            proptest::collection::vec((0usize..4, -100.0f64..100.0), 0..4),
        )
            .prop_map(|(machine, step, jitter, values)| Op::Push { machine, step, jitter, values }),
        1 => Just(Op::FlushIdle),
    ]
}

fn config() -> impl Strategy<Value = WindowConfig> {
    (
        prop_oneof![
            Just((10_000u64, 10_000u64)),
            Just((10_000, 5_000)),
            Just((12_000, 4_000)),
            Just((6_000, 2_000)),
            Just((1_000, 1_000)),
        ],
        prop_oneof![Just(0u64), 0u64..8_000],
        15_000u64..60_000,
    )
        .prop_map(|((size, slide), lateness, idle)| {
            WindowConfig::hopping(size, slide, lateness, idle)
        })
}

fn run(cfg: WindowConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let chans = Arc::new(ChannelSet::new(CHANNELS).unwrap());
    let mut w = Windower::new(cfg.clone(), chans).unwrap();
    let mut r = Reference {
        size: cfg.size_ms as i64,
        slide: cfg.slide_ms as i64,
        lateness: cfg.allowed_lateness_ms as i64,
        idle: cfg.idle_timeout_ms as i64,
        machines: BTreeMap::new(),
        tombs: BTreeMap::new(),
        stream: None,
        closed: vec![],
    };
    let k = cfg.windows_per_reading() as u32;
    let mut clocks = [BASE; 4];
    let mut got_closed: Vec<ClosedWindow> = vec![];
    let (mut pushed, mut late, mut folded) = (0u64, 0u64, 0u64);
    for (seq, op) in ops.into_iter().enumerate() {
        let seq = seq as u64;
        match op {
            Op::Push {
                machine,
                step,
                jitter,
                values,
            } => {
                clocks[machine] += step;
                let ts = clocks[machine] + jitter;
                let name = format!("m{machine}");
                let values: Vec<(String, f64)> = values
                    .into_iter()
                    .map(|(c, v)| (["a", "b", "c", "zz"][c].to_owned(), v))
                    .filter({
                        let mut seen = vec![];
                        move |(c, _)| {
                            let fresh = !seen.contains(c);
                            seen.push(c.clone());
                            fresh
                        }
                    })
                    .collect();
                let reading = Reading {
                    line: "L".into(),
                    machine: name.clone(),
                    ts_ms: ts,
                    values: values.clone(),
                };
                let out = w.push(&reading, seq).unwrap();
                let (on, lt) = r.push(
                    &name,
                    Rd {
                        ts,
                        seq,
                        values: values.clone(),
                    },
                );
                prop_assert_eq!((out.windows, out.late_windows), (on, lt));
                prop_assert_eq!(out.windows + out.late_windows, k);
                prop_assert_eq!(
                    out.unknown_channels as usize,
                    values.iter().filter(|v| v.0 == "zz").count()
                );
                pushed += 1;
                folded += u64::from(out.windows);
                if out.is_late() {
                    late += 1;
                }
            }
            Op::FlushIdle => {
                w.flush_idle();
                r.flush_idle();
            }
        }
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        for (key, s) in w.open_min_seq() {
            got.insert(key.machine.to_string(), s);
        }
        prop_assert_eq!(got, r.open_min_seq());
        got_closed.extend(w.drain_closed());
    }
    w.flush_all();
    r.flush_all();
    got_closed.extend(w.drain_closed());
    prop_assert_eq!(w.stats().windows_open, 0);
    prop_assert_eq!(w.min_unemitted_seq(), None);

    prop_assert_eq!(got_closed.len(), r.closed.len());
    for (g, want) in got_closed.iter().zip(&r.closed) {
        prop_assert_eq!(&*g.key.machine, want.machine.as_str());
        prop_assert_eq!(g.start_ms, want.start);
        prop_assert_eq!(g.end_ms, want.start + r.size);
        prop_assert_eq!(g.reason, want.reason);
        prop_assert_eq!(g.n_readings as usize, want.readings.len());
        prop_assert_eq!(
            g.min_seq,
            want.readings.iter().map(|x| x.seq).min().unwrap()
        );
        prop_assert_eq!(
            g.max_seq,
            want.readings.iter().map(|x| x.seq).max().unwrap()
        );
        for (ci, c) in CHANNELS.iter().enumerate() {
            let expect = naive_features(want.start, &want.readings, c);
            match (&g.features[ci], &expect) {
                (None, None) => {}
                (Some(a), Some(b)) => prop_assert!(same_features(a, b), "{c}: {a:?} vs {b:?}"),
                _ => prop_assert!(false, "{c}: {:?} vs {expect:?}", g.features[ci]),
            }
        }
    }
    // conservation
    let total: u64 = got_closed.iter().map(|c| u64::from(c.n_readings)).sum();
    prop_assert_eq!(total, folded);
    let s = w.stats();
    prop_assert_eq!(s.readings_accepted + s.readings_late, pushed);
    prop_assert_eq!(s.readings_late, late);
    if k == 1 {
        prop_assert_eq!(total + late, pushed, "tumbling: in = windowed + late");
    }
    // closed windows per machine in order of end
    for m in 0..4 {
        let name = format!("m{m}");
        let ends: Vec<i64> = got_closed
            .iter()
            .filter(|c| *c.key.machine == *name)
            .map(|c| c.end_ms)
            .collect();
        prop_assert!(ends.windows(2).all(|p| p[0] < p[1]), "{name}: {ends:?}");
    }
    // the batch holds one row per window and agrees with the features
    let schema = FeatureSchema::new(w.channels().clone());
    let batch = schema.build_batch(&got_closed).unwrap();
    prop_assert_eq!(batch.num_rows(), got_closed.len());
    let dense = schema.dense_from_batch(&batch).unwrap();
    for (i, c) in got_closed.iter().enumerate() {
        let v = c.feature_vector();
        let row = dense.row(i).unwrap();
        prop_assert!(
            v.iter()
                .zip(row)
                .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()))
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn windower_matches_reference(cfg in config(), ops in proptest::collection::vec(op(), 1..300)) {
        run(cfg, ops)?;
    }

    #[test]
    fn on_time_readings_land_in_exactly_size_over_slide_windows(
        cfg in config(),
        steps in proptest::collection::vec(0i64..3_000, 1..200),
    ) {
        let chans = Arc::new(ChannelSet::new(["a"]).unwrap());
        let mut w = Windower::new(cfg.clone(), chans).unwrap();
        let mut ts = BASE;
        let mut n = 0u64;
        for (i, s) in steps.iter().enumerate() {
            ts += s;
            let out = w.push_parts("L", "m", ts, &[("a", i as f64)], i as u64).unwrap();
            prop_assert_eq!(out.lateness(), Lateness::OnTime);
            prop_assert_eq!(u64::from(out.windows), cfg.windows_per_reading());
            n += 1;
        }
        w.flush_all();
        let total: u64 = w.drain_closed().iter().map(|c| u64::from(c.n_readings)).sum();
        prop_assert_eq!(total, n * cfg.windows_per_reading());
    }
}
