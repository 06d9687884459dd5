//! Synthetic workload shared by the criterion bench and the throughput example.

use std::sync::Arc;

use linewatch_window::{ChannelSet, WindowConfig};

/// Machines in the synthetic plant.
pub const MACHINES: usize = 1_000;
/// Channels per reading.
pub const CHANNELS: [&str; 8] = [
    "temp_c",
    "vib_rms",
    "pressure_bar",
    "current_a",
    "speed_rpm",
    "torque_nm",
    "flow_lpm",
    "humidity_pct",
];
/// 2026-11-28T12:00:00Z.
const BASE_MS: i64 = 1_795_867_200_000;

/// The channel set of the workload.
pub fn channel_set() -> Arc<ChannelSet> {
    Arc::new(ChannelSet::new(CHANNELS).unwrap_or_else(|e| panic!("{e}")))
}

/// Tumbling 10 s windows, 2 s lateness, 60 s idle timeout.
pub fn window_config() -> WindowConfig {
    WindowConfig::tumbling(10_000, 2_000, 60_000)
}

/// `n` contract messages: every machine sends one reading per second with 8
/// channels, RFC 3339 timestamps with milliseconds, round-robin over machines.
pub fn messages(n: usize) -> Vec<Vec<u8>> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let m = i % MACHINES;
            let tick = (i / MACHINES) as i64;
            let ts = BASE_MS + tick * 1_000 + (m as i64 % 997);
            let dt = chrono::DateTime::from_timestamp_millis(ts).unwrap_or_default();
            let ts = dt.format("%Y-%m-%dT%H:%M:%S%.3fZ");
            let mut s = format!(
                r#"{{"line":"press-{}","machine":"m-{m}","ts":"{ts}","values":{{"#,
                m % 10
            );
            for (c, name) in CHANNELS.iter().enumerate() {
                let v = 10.0 * (c + 1) as f64 + next() * 5.0;
                if c > 0 {
                    s.push(',');
                }
                s.push_str(&format!(r#""{name}":{v:.4}"#));
            }
            s.push_str("}}");
            s.into_bytes()
        })
        .collect()
}

/// The same readings as `wide` in the long format: one JSON message per channel value, with
/// the default long mapping (`line`, `machine`, `ts` in epoch milliseconds, `tag`, `value`).
pub fn long_messages(wide: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let limits = linewatch_window::DecodeLimits::default();
    wide.iter()
        .flat_map(|m| {
            let r = linewatch_window::decode_reading(m, &limits).unwrap_or_else(|e| panic!("{e}"));
            r.values
                .iter()
                .map(|(tag, v)| {
                    format!(
                        r#"{{"line":"{}","machine":"{}","ts":{},"tag":"{tag}","value":{v}}}"#,
                        r.line, r.machine, r.ts_ms
                    )
                    .into_bytes()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
