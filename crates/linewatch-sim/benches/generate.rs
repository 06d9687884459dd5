//! Generation speed: 1M readings (10 machines x 100_000 s at 1 Hz, 4 channels), and the
//! JSON encoding of the readings.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linewatch_sim::{SimConfig, Simulator};

fn cfg() -> SimConfig {
    SimConfig {
        machines: 10,
        warmup_ms: 0,
        ..SimConfig::default()
    }
}

fn generate(c: &mut Criterion) {
    let mut g = c.benchmark_group("simulate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("1M readings", |b| {
        b.iter(|| {
            let mut sim = Simulator::new(cfg()).expect("valid config");
            let start = sim.config().start_ms;
            let mut n = 0usize;
            // 100_000 s in 10 steps, as a producer loop would.
            for step in 1..=10 {
                n += sim.next_events(start + 10_000_000 * step).len();
            }
            black_box(n)
        });
    });
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("100k readings to JSON", |b| {
        let mut sim = Simulator::new(cfg()).expect("valid config");
        let events = sim.next_events(sim.config().start_ms + 10_000_000);
        b.iter(|| {
            let bytes: usize = events.iter().map(|e| e.to_json().len()).sum();
            black_box(bytes)
        });
    });
    g.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
