//! Properties over random configurations.

use std::collections::HashMap;

use linewatch_sim::{FaultConfig, SimConfig, SimEvent, Simulator};
use proptest::prelude::*;

fn config() -> impl Strategy<Value = SimConfig> {
    (
        any::<u64>(),
        1usize..4,
        1usize..7,
        0usize..4,
        (200i64..3000, 0.0f64..0.9),
        0.0f64..0.3,
        0i64..600_000,
        any::<bool>(),
    )
        .prop_map(
            |(seed, machines, channels, factors, (interval, jitter_frac), late, warmup, faults)| {
                let jitter_ms = (interval as f64 * jitter_frac) as i64;
                SimConfig {
                    seed,
                    machines,
                    channel_count: Some(channels),
                    factors,
                    interval_ms: interval,
                    jitter_ms,
                    late_fraction: late,
                    max_late_ms: interval + jitter_ms + 1 + 3 * interval,
                    warmup_ms: warmup,
                    faults: FaultConfig {
                        enabled: faults,
                        mean_gap_ms: 60_000,
                        min_gap_ms: 10_000,
                        min_duration_ms: 5_000,
                        max_duration_ms: 60_000,
                        ..FaultConfig::default()
                    },
                    ..SimConfig::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn stream_invariants(cfg in config(), steps in proptest::collection::vec(1i64..400_000, 1..8)) {
        let span: i64 = 1_800_000;
        let start = cfg.start_ms;
        let mut whole = Simulator::new(cfg.clone()).unwrap();
        let all = whole.next_events(start + span);

        // Chunked calls give the same sequence.
        let mut chunked = Simulator::new(cfg.clone()).unwrap();
        let mut got = Vec::new();
        let mut t = start;
        for s in steps.iter().cycle() {
            if t >= start + span { break; }
            t = (t + s).min(start + span);
            got.extend(chunked.next_events(t));
        }
        prop_assert!(got == all);

        let mut per_machine: HashMap<String, usize> = HashMap::new();
        let mut global_max = i64::MIN;
        for e in &all {
            prop_assert!(e.ts_ms() >= start && e.ts_ms() < start + span);
            if let SimEvent::Reading(r) = e {
                prop_assert!(r.values.iter().all(|(_, v)| v.is_finite()));
                prop_assert_eq!(r.values.len(), cfg.channel_count.unwrap_or(4));
                prop_assert!(global_max.saturating_sub(r.ts_ms) <= cfg.max_late_ms);
                global_max = global_max.max(r.ts_ms);
                *per_machine.entry(r.machine.to_string()).or_default() += 1;
            }
            let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
            prop_assert_eq!(json["machine"].as_str(), Some(e.machine()));
        }
        // Every machine samples at the nominal cadence; only late readings near the end
        // are still in flight.
        let expected = (span / cfg.interval_ms) as usize;
        let in_flight = (cfg.max_late_ms / cfg.interval_ms + 1) as usize;
        prop_assert_eq!(per_machine.len(), cfg.machines);
        for n in per_machine.values() {
            prop_assert!(*n <= expected + 1 && *n + in_flight >= expected, "{} vs {}", n, expected);
        }
        for f in whole.faults() {
            prop_assert!(f.start_ms >= whole.warmup_end_ms());
            prop_assert!(f.start_ms < f.end_ms);
            prop_assert!(f.start_ms < start + span);
        }
    }
}
