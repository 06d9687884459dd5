//! Behaviour of the simulator against its documented model.

use std::collections::HashMap;

use linewatch_sim::{
    FaultConfig, FaultKind, FaultRecord, InspectionConfig, SimConfig, SimEvent, SimReading,
    Simulator, TsFormat,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn run(cfg: SimConfig, span_ms: i64) -> (Simulator, Vec<SimEvent>) {
    let mut sim = Simulator::new(cfg).expect("valid config");
    let until = sim.config().start_ms + span_ms;
    let events = sim.next_events(until);
    (sim, events)
}

fn readings(events: &[SimEvent]) -> impl Iterator<Item = &SimReading> {
    events.iter().filter_map(SimEvent::as_reading)
}

fn no_faults(cfg: SimConfig) -> SimConfig {
    SimConfig {
        faults: FaultConfig {
            enabled: false,
            ..cfg.faults.clone()
        },
        ..cfg
    }
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
}

#[test]
fn same_seed_same_events_whatever_the_chunking() {
    let cfg = SimConfig {
        late_fraction: 0.05,
        warmup_ms: 10 * MIN,
        ..SimConfig::default()
    };
    let (sim_a, a) = run(cfg.clone(), 3 * HOUR);
    let (_, b) = run(cfg.clone(), 3 * HOUR);
    assert!(a.len() > 40_000);
    assert!(a == b);

    // Same sequence in uneven steps.
    let mut sim_c = Simulator::new(cfg.clone()).unwrap();
    let start = cfg.start_ms;
    let mut c = Vec::new();
    let mut t = start;
    let mut step = 1;
    while t < start + 3 * HOUR {
        t = (t + step).min(start + 3 * HOUR);
        c.extend(sim_c.next_events(t));
        step = (step * 7 + 13) % 90_001;
    }
    assert!(a == c);
    assert!(sim_a.faults() == sim_c.faults());
    assert!(!sim_a.faults().is_empty());

    // Another seed, another stream.
    let (_, d) = run(SimConfig { seed: 7, ..cfg }, 3 * HOUR);
    assert!(a != d);
}

#[test]
fn machines_are_independent_of_how_many_there_are() {
    let (_, two) = run(
        SimConfig {
            machines: 2,
            ..SimConfig::default()
        },
        HOUR,
    );
    let (_, five) = run(
        SimConfig {
            machines: 5,
            ..SimConfig::default()
        },
        HOUR,
    );
    // Readings and faults; inspections are phased by machine index / machine count.
    let of = |ev: &[SimEvent], m: &str| -> Vec<SimReading> {
        readings(ev).filter(|r| &*r.machine == m).cloned().collect()
    };
    assert!(of(&two, "m-001") == of(&five, "m-001"));
    assert_eq!(of(&five, "m-004").len(), of(&two, "m-000").len());
}

#[test]
fn invalid_config_is_an_error() {
    let err = Simulator::new(SimConfig {
        interval_ms: 0,
        ..SimConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("interval_ms"), "{err}");
}

#[test]
fn readings_have_every_channel_at_the_configured_cadence() {
    let cfg = SimConfig {
        machines: 3,
        channel_count: Some(6),
        late_fraction: 0.0,
        ..SimConfig::default()
    };
    let (sim, events) = run(cfg.clone(), 10 * MIN);
    let names: Vec<&str> = sim.channel_names().collect();
    assert_eq!(
        names,
        [
            "temp_c",
            "vib_rms",
            "pressure_bar",
            "current_a",
            "ch_004",
            "ch_005"
        ]
    );
    assert_eq!(
        sim.machine_ids().collect::<Vec<_>>(),
        ["m-000", "m-001", "m-002"]
    );
    let mut per_machine: HashMap<&str, Vec<i64>> = HashMap::new();
    for r in readings(&events) {
        assert_eq!(&*r.line, "press-3");
        let keys: Vec<&str> = r.values.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, names);
        assert!(r.values.iter().all(|(_, v)| v.is_finite()));
        per_machine.entry(&r.machine).or_default().push(r.ts_ms);
    }
    assert_eq!(per_machine.len(), 3);
    for ts in per_machine.values() {
        assert_eq!(ts.len(), 600);
        for (n, t) in ts.iter().enumerate() {
            let nominal = cfg.start_ms + n as i64 * cfg.interval_ms;
            assert!((nominal..=nominal + cfg.jitter_ms).contains(t));
        }
    }
    // No late readings: the whole stream is in event-time order.
    assert!(events.windows(2).all(|w| w[0].ts_ms() <= w[1].ts_ms()));
}

#[test]
fn normal_channels_have_configured_moments_and_correlation() {
    let cfg = no_faults(SimConfig {
        machines: 1,
        ..SimConfig::default()
    });
    let (sim, events) = run(cfg.clone(), 12 * HOUR);
    let names: Vec<String> = sim.channel_names().map(str::to_owned).collect();
    let col = |j: usize| -> Vec<f64> { readings(&events).map(|r| r.values[j].1).collect() };
    for (j, ch) in cfg.channels.iter().enumerate() {
        let (m, sd) = mean_sd(&col(j));
        // AR(1) with phi = 0.95 has an effective sample size of ~1100 in 43200 samples.
        assert!(
            (m - ch.level).abs() < 0.15 * ch.scale,
            "{}: mean {m}",
            names[j]
        );
        assert!((sd / ch.scale - 1.0).abs() < 0.1, "{}: sd {sd}", names[j]);
    }
    // Channels 0 and 2 share their loadings: correlation 0.8 in theory.
    let r02 = corr(&col(0), &col(2));
    assert!(r02 > 0.5, "corr(temp_c, pressure_bar) = {r02}");
    let r13 = corr(&col(1), &col(3));
    assert!(r13 > 0.5, "corr(vib_rms, current_a) = {r13}");
    // Temporally smooth: lag-1 autocorrelation close to factor_loading * factor_ar = 0.76.
    let c0 = col(0);
    let lag1 = corr(&c0[..c0.len() - 1], &c0[1..]);
    assert!(lag1 > 0.6, "lag-1 autocorrelation {lag1}");

    // Without factors the channels are independent.
    let (_, ev) = run(SimConfig { factors: 0, ..cfg }, 6 * HOUR);
    let a: Vec<f64> = readings(&ev).map(|r| r.values[0].1).collect();
    let b: Vec<f64> = readings(&ev).map(|r| r.values[2].1).collect();
    assert!(corr(&a, &b).abs() < 0.05);
}

/// Long run with many faults of every kind, and the same run with faults off.
fn faulty_and_clean(span_ms: i64) -> (Simulator, Vec<SimEvent>, Vec<SimEvent>) {
    let cfg = SimConfig {
        machines: 6,
        warmup_ms: 20 * MIN,
        late_fraction: 0.02,
        ..SimConfig::default()
    };
    let (sim, faulty) = run(cfg.clone(), span_ms);
    let (_, clean) = run(no_faults(cfg), span_ms);
    (sim, faulty, clean)
}

#[test]
fn faults_never_start_in_warm_up_and_do_not_overlap() {
    let (sim, faulty, clean) = faulty_and_clean(12 * HOUR);
    let faults = sim.faults();
    assert!(faults.len() > 200, "{} faults", faults.len());
    for k in FaultKind::ALL {
        assert!(faults.iter().any(|f| f.kind == k), "no {k} fault");
    }
    let cfg = &sim.config().faults;
    let mut last_end: HashMap<&str, i64> = HashMap::new();
    for f in faults {
        assert!(f.start_ms >= sim.warmup_end_ms() + cfg.min_gap_ms, "{f:?}");
        let d = f.end_ms - f.start_ms;
        assert!((cfg.min_duration_ms..=cfg.max_duration_ms).contains(&d));
        assert!((cfg.severity_min..=cfg.severity_max).contains(&f.severity));
        assert_eq!(f.channels.len(), 1);
        if let Some(prev) = last_end.insert(&f.machine, f.end_ms) {
            assert!(f.start_ms >= prev + cfg.min_gap_ms);
        }
    }
    // Everything before the end of the warm-up is identical to the fault-free run.
    let warm = |ev: &[SimEvent]| -> Vec<SimEvent> {
        ev.iter()
            .filter(|e| e.ts_ms() < sim.warmup_end_ms())
            .cloned()
            .collect()
    };
    assert!(!warm(&faulty).is_empty());
    assert!(warm(&faulty) == warm(&clean));
}

#[test]
fn values_deviate_exactly_inside_the_ground_truth() {
    let (sim, faulty, clean) = faulty_and_clean(12 * HOUR);
    let names: Vec<String> = sim.channel_names().map(str::to_owned).collect();
    let scales: Vec<f64> = sim.config().channels.iter().map(|c| c.scale).collect();
    // Same delivery streams: the two runs emit the same readings in the same order.
    let a: Vec<&SimReading> = readings(&faulty).collect();
    let b: Vec<&SimReading> = readings(&clean).collect();
    assert_eq!(a.len(), b.len());

    // Per fault: (faulty, clean) values of its channel during the fault.
    let mut during: HashMap<(String, i64), (Vec<f64>, Vec<f64>)> = HashMap::new();
    let mut deviating = 0;
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!((&ra.machine, ra.ts_ms), (&rb.machine, rb.ts_ms));
        let active = sim.fault_active(&ra.machine, ra.ts_ms);
        for (j, name) in names.iter().enumerate() {
            let (va, vb) = (ra.values[j].1, rb.values[j].1);
            let in_fault = active.filter(|f| f.channels[0] == *name);
            if va != vb {
                deviating += 1;
                assert!(
                    in_fault.is_some(),
                    "{} {} {name}: {va} vs {vb} outside any fault",
                    ra.machine,
                    ra.ts_ms
                );
            }
            if let Some(f) = in_fault {
                let e = during.entry((f.machine.clone(), f.start_ms)).or_default();
                e.0.push(va);
                e.1.push(vb);
            }
        }
    }
    assert!(deviating > 10_000);

    let mut checked: HashMap<FaultKind, usize> = HashMap::new();
    for f in sim.faults() {
        let Some((fa, fb)) = during.get(&(f.machine.clone(), f.start_ms)) else {
            continue; // not reached by the end of the run
        };
        if fa.len() < 50 {
            continue;
        }
        let j = names.iter().position(|n| *n == f.channels[0]).unwrap();
        let sd = scales[j];
        let s = f.severity;
        let diff: Vec<f64> = fa.iter().zip(fb).map(|(x, y)| (x - y) / sd).collect();
        match f.kind {
            FaultKind::Drift => {
                // Linear ramp to s * 4 sd: the last tenth is at 0.9..1.0 of it.
                let tail = &diff[diff.len() * 9 / 10..];
                let (m, _) = mean_sd(tail);
                assert!(
                    (m.abs() - 0.95 * 4.0 * s).abs() < 0.1,
                    "{f:?}: tail offset {m}"
                );
            }
            FaultKind::Spike => {
                let max = diff.iter().cloned().fold(f64::MIN, f64::max);
                assert!((max - 8.0 * s).abs() < 0.03, "{f:?}: max {max}");
                assert!(diff[0] > 0.0, "a spike fault starts with a burst");
                assert!(diff.iter().all(|d| *d == 0.0 || (d - 8.0 * s).abs() < 0.03));
            }
            FaultKind::Stuck => {
                assert!(fa.iter().all(|v| *v == fa[0]), "{f:?}: not constant");
                let (_, sd_clean) = mean_sd(fb);
                assert!(sd_clean > 0.1 * sd);
            }
            FaultKind::VarianceBurst => {
                // The noise part (sd sqrt(0.2) of scale) grows by s * 3.
                let (_, extra) = mean_sd(&diff);
                let expected = 0.2f64.sqrt() * 3.0 * s;
                assert!(
                    (extra / expected - 1.0).abs() < 0.35,
                    "{f:?}: extra sd {extra} vs {expected}"
                );
            }
            FaultKind::BrokenCorrelation => {
                let r = corr(fa, fb);
                assert!(r.abs() < 0.5, "{f:?}: still correlated {r}");
                let (m, sd_f) = mean_sd(fa);
                assert!((m - sim.config().channels[j].level).abs() < 0.5 * sd);
                assert!((sd_f / sd - 1.0).abs() < 0.4, "{f:?}: sd {sd_f}");
            }
        }
        *checked.entry(f.kind).or_default() += 1;
    }
    for k in FaultKind::ALL {
        assert!(checked.get(&k).copied().unwrap_or(0) >= 10, "{checked:?}");
    }
}

#[test]
fn stuck_value_is_the_last_value_before_the_fault() {
    let cfg = SimConfig {
        machines: 2,
        late_fraction: 0.0,
        warmup_ms: 5 * MIN,
        faults: FaultConfig {
            kinds: vec![FaultKind::Stuck],
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    };
    let (sim, events) = run(cfg, 3 * HOUR);
    let mut n = 0;
    for f in sim.faults() {
        let series: Vec<(i64, f64)> = readings(&events)
            .filter(|r| *r.machine == f.machine)
            .map(|r| (r.ts_ms, r.value(&f.channels[0]).unwrap()))
            .collect();
        let Some(i) = series.iter().position(|(t, _)| *t >= f.start_ms) else {
            continue;
        };
        if i == 0 || series[i].0 >= f.end_ms {
            continue;
        }
        assert_eq!(series[i].1, series[i - 1].1);
        n += 1;
    }
    assert!(n >= 5);
}

#[test]
fn fault_list_grows_with_time_and_lookup_works() {
    let mut sim = Simulator::new(SimConfig {
        machines: 2,
        warmup_ms: 0,
        ..SimConfig::default()
    })
    .unwrap();
    let start = sim.config().start_ms;
    assert!(sim.faults().is_empty());
    let _ = sim.next_events(start + HOUR);
    let n1 = sim.faults().len();
    let _ = sim.next_events(start + 4 * HOUR);
    let n2 = sim.faults().len();
    assert!(n1 >= 1 && n2 > n1, "{n1} {n2}");
    // Every started fault has started before the time simulated so far.
    assert!(sim.faults().iter().all(|f| f.start_ms < start + 4 * HOUR));
    let f: FaultRecord = sim.faults()[0].clone();
    assert_eq!(sim.fault_active(&f.machine, f.start_ms), Some(&f));
    assert_eq!(sim.fault_active(&f.machine, f.end_ms - 1), Some(&f));
    assert_ne!(sim.fault_active(&f.machine, f.end_ms), Some(&f));
    assert_eq!(sim.fault_active(&f.machine, f.start_ms - 1), None);
    assert_eq!(sim.fault_active("m-999", f.start_ms), None);
    assert_eq!(sim.fault_active(&f.machine, i64::MIN), None);
}

#[test]
fn defects_are_more_frequent_during_faults() {
    let cfg = SimConfig {
        machines: 8,
        warmup_ms: 0,
        channel_count: Some(1),
        factors: 1,
        ..SimConfig::default()
    };
    let (sim, events) = run(cfg, 48 * HOUR);
    let (mut n_in, mut d_in, mut n_out, mut d_out) = (0usize, 0usize, 0usize, 0usize);
    let mut sev_sum = 0.0;
    for i in events.iter().filter_map(SimEvent::as_inspection) {
        match sim.fault_active(&i.machine, i.ts_ms) {
            Some(f) => {
                n_in += 1;
                d_in += usize::from(i.defect);
                sev_sum += f.severity;
            }
            None => {
                n_out += 1;
                d_out += usize::from(i.defect);
            }
        }
    }
    // Inspections at phase + k * 1 min, k >= 1, before 48 h.
    assert_eq!(n_in + n_out, 8 * (48 * 60 - 1));
    let rate_in = d_in as f64 / n_in as f64;
    let rate_out = d_out as f64 / n_out as f64;
    let expected_in = 0.02 + 0.58 * sev_sum / n_in as f64;
    assert!(n_in > 1000, "{n_in} inspections during faults");
    assert!((rate_out - 0.02).abs() < 0.01, "outside: {rate_out}");
    assert!(
        (rate_in - expected_in).abs() < 0.05,
        "inside: {rate_in} vs {expected_in}"
    );
    assert!(rate_in > 5.0 * rate_out);
}

#[test]
fn inspections_can_be_switched_off_and_are_staggered() {
    let cfg = SimConfig {
        machines: 4,
        ..SimConfig::default()
    };
    let (_, events) = run(cfg.clone(), 10 * MIN);
    let times: Vec<(String, i64)> = events
        .iter()
        .filter_map(SimEvent::as_inspection)
        .map(|i| (i.machine.to_string(), i.ts_ms - cfg.start_ms))
        .take(5)
        .collect();
    assert_eq!(
        times,
        [
            ("m-000".to_string(), 60_000),
            ("m-001".to_string(), 75_000),
            ("m-002".to_string(), 90_000),
            ("m-003".to_string(), 105_000),
            ("m-000".to_string(), 120_000),
        ]
    );
    let (_, events) = run(
        SimConfig {
            inspections: InspectionConfig {
                enabled: false,
                ..InspectionConfig::default()
            },
            ..cfg
        },
        10 * MIN,
    );
    assert!(events.iter().all(|e| e.as_inspection().is_none()));
}

#[test]
fn json_matches_the_contracts() {
    let cfg = SimConfig {
        machines: 2,
        ..SimConfig::default()
    };
    let (sim, events) = run(cfg, 5 * MIN);
    let names: Vec<&str> = sim.channel_names().collect();
    let mut saw = (false, false);
    for e in &events {
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(v["line"], "press-3");
        assert_eq!(v["machine"], e.machine());
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-28T12:00:00.123Z".len());
        assert!(ts.ends_with('Z'));
        let parsed = chrono::DateTime::parse_from_rfc3339(ts).unwrap();
        assert_eq!(parsed.timestamp_millis(), e.ts_ms());
        match e {
            SimEvent::Reading(r) => {
                saw.0 = true;
                let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
                assert_eq!(keys.len(), 4);
                for k in ["line", "machine", "ts", "values"] {
                    assert!(obj.contains_key(k));
                }
                let values = v["values"].as_object().unwrap();
                assert_eq!(values.len(), names.len());
                for (name, x) in &r.values {
                    let parsed = values[name.as_ref()].as_f64().unwrap();
                    assert!((parsed - x).abs() <= 1e-12 * x.abs().max(1.0));
                }
            }
            SimEvent::Inspection(i) => {
                saw.1 = true;
                assert_eq!(obj.len(), 4);
                assert_eq!(v["defect"], i.defect);
            }
        }
        let v: serde_json::Value =
            serde_json::from_str(&e.to_json_with(TsFormat::EpochMs)).unwrap();
        assert_eq!(v["ts"].as_i64(), Some(e.ts_ms()));
    }
    assert_eq!(saw, (true, true));
    assert!(
        events[0]
            .to_json()
            .starts_with(r#"{"line":"press-3","machine":"#)
    );
}

#[test]
fn out_of_order_fraction_and_bound_are_respected() {
    let cfg = SimConfig {
        machines: 5,
        late_fraction: 0.05,
        max_late_ms: 4000,
        ..SimConfig::default()
    };
    let (_, events) = run(cfg.clone(), 6 * HOUR);
    let mut max_seen: HashMap<&str, i64> = HashMap::new();
    let (mut total, mut out_of_order) = (0usize, 0usize);
    let mut global_max = i64::MIN;
    for r in readings(&events) {
        total += 1;
        let m = max_seen.entry(&r.machine).or_insert(i64::MIN);
        if r.ts_ms < *m {
            out_of_order += 1;
        }
        *m = (*m).max(r.ts_ms);
        // Emitted at most max_late_ms after its event time: nothing emitted before it is
        // later than that.
        assert!(global_max.saturating_sub(r.ts_ms) <= cfg.max_late_ms);
        global_max = global_max.max(r.ts_ms);
    }
    let frac = out_of_order as f64 / total as f64;
    // A late reading can hide behind an even later one: slightly under 5 %.
    assert!(
        (0.04..=0.055).contains(&frac),
        "out-of-order fraction {frac}"
    );
}

#[test]
fn more_channels_than_named_get_generated_names_and_unit_scale() {
    let cfg = no_faults(SimConfig {
        machines: 1,
        channel_count: Some(12),
        factors: 3,
        ..SimConfig::default()
    });
    let (sim, events) = run(cfg, 4 * HOUR);
    assert_eq!(sim.channel_names().len(), 12);
    assert_eq!(sim.channel_names().last(), Some("ch_011"));
    let col: Vec<f64> = readings(&events).map(|r| r.values[11].1).collect();
    let (m, sd) = mean_sd(&col);
    assert!(m.abs() < 0.25 && (sd - 1.0).abs() < 0.15, "{m} {sd}");
}

#[test]
fn simulator_can_move_to_a_producer_task() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Simulator>();
    assert_send_sync::<SimEvent>();
}
