//! Prints single-core readings/s for decode + windowing + batch building over
//! 1,000 machines x 8 channels of contract JSON (the README figure).
//!
//! `cargo run --release -p linewatch-window --example throughput [-- N]`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use linewatch_window::{
    AvroDecoder, DecodeLimits, Decoded, FeatureSchema, FieldMap, Format, LongAssembler,
    MappedDecoder, SchemaFetchError, SchemaSource, SparkplugDecoder, SparkplugMap, Windower,
    decode_reading, decode_reading_ref, encode_sparkplug_ddata,
};

/// A wide reading in Avro: the contract's field names, values as a map of doubles.
const AVRO_SCHEMA: &str = r#"{"type":"record","name":"Reading","fields":[
  {"name":"line","type":"string"},
  {"name":"machine","type":"string"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"values","type":{"type":"map","values":"double"}}]}"#;

/// The one schema, as a registry would serve it.
#[derive(Debug)]
struct OneSchema;

impl SchemaSource for OneSchema {
    fn schema(&mut self, _: u32) -> Result<String, SchemaFetchError> {
        Ok(AVRO_SCHEMA.to_string())
    }
}

const POLL: usize = 10_000;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let msgs = common::messages(n);
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    let limits = DecodeLimits::default();
    let channels = common::channel_set();
    let schema = FeatureSchema::new(channels.clone());

    // decode only
    let t = Instant::now();
    let mut vals = 0usize;
    for m in &msgs {
        vals += decode_reading_ref(m, &limits).unwrap().values.len();
    }
    let decode_s = t.elapsed().as_secs_f64();
    assert_eq!(vals, n * 8);

    // The bound: serde_json only checking the syntax of the same messages (no value kept).
    let t = Instant::now();
    for m in &msgs {
        let s = std::str::from_utf8(m).unwrap();
        serde_json::from_str::<serde::de::IgnoredAny>(s).unwrap();
    }
    let skip_s = t.elapsed().as_secs_f64();

    // decode + window + batch, as the runtime does it
    let best = (0..3)
        .map(|_| {
            let t = Instant::now();
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
            std::hint::black_box(rows);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);

    println!(
        "messages: {n} ({:.0} bytes avg), 1000 machines x 8 channels, tumbling 10 s windows",
        bytes as f64 / n as f64
    );
    println!(
        "decode only:                 {:>10.0} readings/s ({:.0} MB/s)",
        n as f64 / decode_s,
        bytes as f64 / decode_s / 1e6
    );
    println!(
        "serde_json syntax pass only: {:>10.0} messages/s ({:.0} MB/s; the parser's bound)",
        n as f64 / skip_s,
        bytes as f64 / skip_s / 1e6
    );
    println!(
        "decode + window + batch:     {:>10.0} readings/s (best of 3, one core)",
        n as f64 / best
    );

    // The same readings as Sparkplug B DDATA payloads (Double metrics with names and
    // timestamps), decoded with their topic.
    let spb: Vec<(String, Vec<u8>)> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            encode_sparkplug_ddata(&decode_reading(m, &limits).unwrap(), "edge-1", i as u64)
        })
        .collect();
    let spb_bytes: usize = spb.iter().map(|(_, p)| p.len()).sum();
    let best_spb = (0..3)
        .map(|_| {
            let mut d = SparkplugDecoder::new(SparkplugMap::default(), None, limits.clone());
            let t = Instant::now();
            let mut vals = 0usize;
            for (topic, payload) in &spb {
                let m = d.decode(payload, Some(topic.as_bytes())).unwrap();
                vals += m.readings.iter().map(|r| r.values.len()).sum::<usize>();
            }
            assert_eq!(vals, n * 8);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "sparkplug_b decode only:     {:>10.0} values/s ({:.0} readings/s, {:.0} bytes avg)",
        (n * 8) as f64 / best_spb,
        n as f64 / best_spb,
        spb_bytes as f64 / n as f64
    );

    // The same readings in the long format: one JSON message per channel value (default long
    // mapping), decoded and gathered back into readings.
    let long = common::long_messages(&msgs);
    let long_bytes: usize = long.iter().map(Vec::len).sum();
    let best_long_decode = (0..3)
        .map(|_| {
            let d = MappedDecoder::new(Format::JsonLong, FieldMap::default(), limits.clone());
            let t = Instant::now();
            let mut values = 0usize;
            for m in &long {
                let v = d.decode_long(m, None).unwrap();
                values += usize::from(v.value.is_finite());
            }
            assert_eq!(values, long.len());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "json_long decode only:       {:>10.0} values/s",
        long.len() as f64 / best_long_decode
    );
    let best_long = (0..3)
        .map(|_| {
            let d = MappedDecoder::new(Format::JsonLong, FieldMap::default(), limits.clone());
            let mut a = LongAssembler::new();
            let t = Instant::now();
            let mut readings = 0usize;
            for (seq, m) in long.iter().enumerate() {
                let v = d.decode_long(m, None).unwrap();
                readings += usize::from(a.push_ref(v, seq as u64).reading.is_some());
            }
            readings += a.flush_older_than(i64::MAX).len();
            assert_eq!(readings, n);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "json_long decode + gather:   {:>10.0} values/s ({:.0} readings/s, {:.0} bytes avg)",
        long.len() as f64 / best_long,
        n as f64 / best_long,
        long_bytes as f64 / long.len() as f64
    );

    // The same readings as Avro records in the Confluent wire format.
    use apache_avro::types::Value as Avro;
    let schema = apache_avro::Schema::parse_str(AVRO_SCHEMA).unwrap();
    let avro: Vec<Vec<u8>> = msgs
        .iter()
        .map(|m| {
            let r = decode_reading(m, &limits).unwrap();
            let rec = Avro::Record(vec![
                ("line".into(), Avro::String(r.line)),
                ("machine".into(), Avro::String(r.machine)),
                ("ts".into(), Avro::TimestampMillis(r.ts_ms)),
                (
                    "values".into(),
                    Avro::Map(
                        r.values
                            .into_iter()
                            .map(|(c, v)| (c, Avro::Double(v)))
                            .collect(),
                    ),
                ),
            ]);
            let mut out = vec![0, 0, 0, 0, 1];
            out.extend(apache_avro::to_avro_datum(&schema, rec).unwrap());
            out
        })
        .collect();
    let avro_bytes: usize = avro.iter().map(Vec::len).sum();
    let best_avro = (0..3)
        .map(|_| {
            let mut d = AvroDecoder::new(
                Format::Avro,
                FieldMap::default(),
                Box::new(OneSchema),
                limits.clone(),
            );
            let t = Instant::now();
            let mut vals = 0usize;
            for m in &avro {
                if let Decoded::Reading(r) = d.decode(m, None).unwrap() {
                    vals += r.values.len();
                }
            }
            assert_eq!(vals, n * 8);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "avro decode only:            {:>10.0} values/s ({:.0} readings/s, {:.0} bytes avg)",
        (n * 8) as f64 / best_avro,
        n as f64 / best_avro,
        avro_bytes as f64 / n as f64
    );
}
