//! Helpers shared by the backtest test files.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};

use linewatch_runtime::backtest::{BacktestOptions, PcaConfig, load_config};
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
