//! Decode + windowing + batch building throughput over 1,000 machines x 8
//! channels of contract JSON. Run: `cargo bench -p linewatch-window`.
#![allow(clippy::unwrap_used)]

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linewatch_window::{
    DecodeLimits, FeatureSchema, FieldMap, Format, LongAssembler, MappedDecoder, SparkplugDecoder,
    SparkplugMap, Windower, decode_reading, decode_reading_ref, encode_sparkplug_ddata,
};
use std::hint::black_box;

const N: usize = 200_000;
const POLL: usize = 10_000;

fn pipeline(c: &mut Criterion) {
    let msgs = common::messages(N);
    let limits = DecodeLimits::default();
    let channels = common::channel_set();
    let schema = FeatureSchema::new(channels.clone());

    let mut g = c.benchmark_group("windowing");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);

    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for m in &msgs {
                n += decode_reading_ref(m, &limits).unwrap().values.len();
            }
            black_box(n)
        })
    });

    let spb: Vec<(String, Vec<u8>)> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| encode_sparkplug_ddata(&decode_reading(m, &limits).unwrap(), "e", i as u64))
        .collect();
    g.bench_function("decode_sparkplug_b", |b| {
        let mut d = SparkplugDecoder::new(SparkplugMap::default(), None, limits.clone());
        b.iter(|| {
            let mut n = 0usize;
            for (topic, payload) in &spb {
                n += d
                    .decode(payload, Some(topic.as_bytes()))
                    .unwrap()
                    .readings
                    .len();
            }
            black_box(n)
        })
    });

    g.bench_function("decode_window_batch", |b| {
        b.iter(|| {
            let mut w = Windower::new(common::window_config(), channels.clone()).unwrap();
            let mut rows = 0usize;
            for (seq, m) in msgs.iter().enumerate() {
                let r = decode_reading_ref(m, &limits).unwrap();
                w.push_ref(&r, seq as u64).unwrap();
                if seq % POLL == POLL - 1 {
                    w.flush_idle();
                    let closed = w.drain_closed();
                    if !closed.is_empty() {
                        rows += schema.build_batch(&closed).unwrap().num_rows();
                    }
                }
            }
            w.flush_all();
            rows += schema.build_batch(&w.drain_closed()).unwrap().num_rows();
            black_box(rows)
        })
    });

    let decoded: Vec<_> = msgs
        .iter()
        .map(|m| decode_reading_ref(m, &limits).unwrap())
        .collect();
    g.bench_function("window_only", |b| {
        b.iter(|| {
            let mut w = Windower::new(common::window_config(), channels.clone()).unwrap();
            for (seq, r) in decoded.iter().enumerate() {
                w.push_ref(r, seq as u64).unwrap();
            }
            w.flush_all();
            black_box(w.drain_closed().len())
        })
    });
    g.finish();
}

/// The same readings as one `json_long` message per channel value (default mapping), decoded
/// borrowed and gathered back into readings, as the pipeline does; throughput in values.
fn long_format(c: &mut Criterion) {
    let limits = DecodeLimits::default();
    let long = common::long_messages(&common::messages(N / 8));
    let mut g = c.benchmark_group("long_format");
    g.throughput(Throughput::Elements(long.len() as u64));
    g.sample_size(20);
    let d = MappedDecoder::new(Format::JsonLong, FieldMap::default(), limits);
    g.bench_function("decode_gather_json_long", |b| {
        b.iter(|| {
            let mut a = LongAssembler::new();
            let mut n = 0usize;
            for (seq, m) in long.iter().enumerate() {
                let v = d.decode_long(m, None).unwrap();
                n += usize::from(a.push_ref(v, seq as u64).reading.is_some());
            }
            black_box(n + a.flush_older_than(i64::MAX).len())
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline, long_format);
criterion_main!(benches);
