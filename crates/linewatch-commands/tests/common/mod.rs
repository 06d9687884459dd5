//! Helpers shared by the backtest test files.

#![allow(clippy::unwrap_used, dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use linewatch_commands::backtest::{BacktestOptions, PcaConfig, load_config};
use linewatch_runtime::config::PipelineConfig;

/// A small, deterministic Gaussian source (xorshift64* + Box-Muller).
pub struct Gauss(pub u64);

impl Gauss {
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Model settings from a pipeline file without a `[window] channels` list: `epochs` epochs
/// on the CPU, plus `extra` TOML appended.
pub fn config(dir: &Path, epochs: usize, extra: &str) -> PipelineConfig {
    let p = dir.join("bt.toml");
    std::fs::write(
        &p,
        format!("[pipeline]\nname = \"bt\"\n[model]\nepochs = {epochs}\ndevice = \"cpu\"\n{extra}"),
    )
    .unwrap();
    let cfg = load_config(Some(&p)).unwrap();
    assert_eq!(cfg.model.epochs, epochs);
    cfg
}

/// Backtest options with the defaults of the tests: comma separator, decimal point, columns
/// `timestamp` and `label`, default windows and baseline, no head split.
pub fn options(csv: Vec<PathBuf>, train: Vec<PathBuf>, out: PathBuf) -> BacktestOptions {
    BacktestOptions {
        csv,
        train_csv: train,
        sep: b',',
        decimal: b'.',
        time_col: "timestamp".into(),
        label_col: "label".into(),
        ignore_cols: Vec::new(),
        split: None,
        window_ms: None,
        slide_ms: None,
        baseline: PcaConfig::default(),
        out,
    }
}

/// Writes `rows` rows of 3 correlated Gaussian channels, one per second; rows from
/// `shift_from` on have `shift` added to channel `a` and label 1.
pub fn write_gaussian(
    path: &Path,
    channels: &[&str],
    rows: usize,
    seed: u64,
    shift_from: Option<usize>,
    shift: f64,
) {
    let mut g = Gauss(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut s = format!("timestamp,{},label\n", channels.join(","));
    for i in 0..rows {
        let z = g.normal();
        let shifted = shift_from.is_some_and(|k| i >= k);
        let a = 10.0 + z + if shifted { shift } else { 0.0 };
        let b = 5.0 + 0.8 * z + 0.6 * g.normal();
        let c = -2.0 + 0.5 * g.normal();
        write!(s, "{}", 1_700_000_000 + i as u64).unwrap();
        for v in [a, b, c].iter().take(channels.len()) {
            write!(s, ",{v:.5}").unwrap();
        }
        writeln!(s, ",{}", u8::from(shifted)).unwrap();
    }
    std::fs::write(path, s).unwrap();
}
