//! Runs the models benchmark and prints its JSON report as the last line.
//!
//! `cargo run --release -p linewatch-bench --example bench_models`
//! Options (JSON of `BenchOptions`, partial allowed) may be given in `LWM_BENCH_OPTS`;
//! logs with `RUST_LOG=info`. For a single-core figure: `RAYON_NUM_THREADS=1 taskset -c 0 ...`.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use linewatch_bench::models::{BenchOptions, bench_models};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let opts: BenchOptions = match std::env::var("LWM_BENCH_OPTS") {
        Ok(s) if !s.trim().is_empty() => serde_json::from_str(&s)?,
        _ => BenchOptions::default(),
    };
    let report = bench_models(&opts)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
