//! `linewatch bench models`: quality against known ground truth and speed, measured afresh on
//! data generated with fixed seeds.
//!
//! * `score_gauss_d8_rel_fisher`: `E|s - grad log p|^2 / E|grad log p|^2` (raw units) on fresh
//!   points of a correlated Gaussian, d = 8 (AR(1) correlation 0.6, scales 0.2..10), model
//!   trained on 10,000 rows.
//! * `score_mixture_d2_rel_fisher`: the same for a two-component Gaussian mixture, d = 2.
//! * `attribution_top1_rate`: the d = 8 model, rows with one coordinate shifted by +3 sd; the
//!   share whose most negative contribution `c_j` (largest share of the log-density drop) is the
//!   shifted coordinate. The same rule applied to the true density is reported beside it
//!   (`attribution_top1_rate_oracle`): the level a perfect score model would reach, short of 1
//!   because the other seven coordinates' own noise sometimes stands out more than the shift.
//! * `iso_1d_*`: `y = f(x) + noise` with a smooth increasing `f`, n = 1,000; MSE to `f` of
//!   PDIR (squared error) and of PAVA.
//! * `iso_4d_*`: `f` increasing in x0, decreasing in x1, free in x2, x3; PDIR, the same net
//!   without the penalty, and a linear least-squares fit; wrong-sign rates on held-out points.
//! * `*_rows_per_s_*`: CPU throughput (threads as candle sees them: `RAYON_NUM_THREADS`).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use linewatch_models::Result;
use linewatch_models::isotonic::{IsoTarget, IsotonicConfig, IsotonicModel, Monotone};
use linewatch_models::pava::{Direction, Pava};
use linewatch_models::rng;
use linewatch_models::score::{ResidualMode, ScoreConfig, ScoreModel};
use linewatch_models::train::{LrSchedule, TrainConfig};

mod truth;
use truth::*;

/// What to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BenchOptions {
    /// Base seed of all generated data.
    pub seed: u64,
    /// Score model configuration for the quality runs.
    pub score: ScoreConfig,
    /// PDIR configuration for the 1-D run (the monotonicity vector is set by the bench).
    pub iso_1d: IsotonicConfig,
    /// PDIR configuration for the 4-D run (the monotonicity vector is set by the bench).
    pub iso_4d: IsotonicConfig,
    /// Skip the quality runs (speed only).
    pub speed_only: bool,
    /// Skip the speed runs.
    pub quality_only: bool,
    /// Rows scored per timing run.
    pub score_rows: usize,
    /// Device of every run (`cpu`, `cuda`, `cuda:N`, `auto`); the data is generated on the
    /// host either way.
    pub device: linewatch_models::DeviceSpec,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            seed: 2024,
            score: ScoreConfig::default(),
            iso_1d: IsotonicConfig {
                target: IsoTarget::Continuous,
                ..IsotonicConfig::default()
            },
            iso_4d: IsotonicConfig {
                target: IsoTarget::Continuous,
                ..IsotonicConfig::default()
            },
            speed_only: false,
            quality_only: false,
            score_rows: 100_000,
            device: linewatch_models::DeviceSpec::Cpu,
        }
    }
}

/// Results (JSON field names are the bench's contract with the README).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BenchReport {
    pub score_gauss_d8_rel_fisher: Option<f64>,
    pub score_gauss_d8_train_seconds: Option<f64>,
    pub score_gauss_d8_epochs: Option<usize>,
    pub score_mixture_d2_rel_fisher: Option<f64>,
    pub score_mixture_d2_train_seconds: Option<f64>,
    pub attribution_top1_rate: Option<f64>,
    pub attribution_top1_rate_oracle: Option<f64>,
    pub attribution_sum_max_abs_error: Option<f64>,
    pub iso_1d_mse_pdir: Option<f64>,
    pub iso_1d_mse_pava: Option<f64>,
    pub iso_1d_mse_ratio_pdir_over_pava: Option<f64>,
    pub iso_4d_mse_pdir: Option<f64>,
    pub iso_4d_mse_unconstrained: Option<f64>,
    pub iso_4d_mse_linear: Option<f64>,
    pub iso_wrong_sign_rate: Option<f64>,
    pub iso_wrong_sign_rate_unconstrained: Option<f64>,
    pub train_rows_per_s_d16: Option<f64>,
    pub score_rows_per_s_d16: Option<f64>,
    pub score_rows_per_s_d64: Option<f64>,
    pub score_with_attribution_rows_per_s_d16: Option<f64>,
    pub threads: usize,
    pub total_seconds: f64,
    pub goals: Vec<Goal>,
}

/// One goal and whether it is met.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Goal {
    pub metric: String,
    pub goal: String,
    pub value: Option<f64>,
    pub met: bool,
}

fn time_best<F: FnMut() -> Result<()>>(reps: usize, mut f: F) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Runs the model benchmark on the CPU.
pub fn bench_models(opts: &BenchOptions) -> Result<BenchReport> {
    let started = Instant::now();
    let dev = opts.device.resolve()?;
    let mut rep = BenchReport {
        threads: candle_core::utils::get_num_threads(),
        ..Default::default()
    };
    let seed = opts.seed;

    if !opts.speed_only {
        // --- score model on a correlated Gaussian, d = 8 ---
        let g = gauss_d8();
        let mut r = rng::seeded(seed);
        let train = g.sample(10_000, &mut r);
        let (model, tr) = ScoreModel::train(&train, &names(8), &opts.score, &dev)?;
        rep.score_gauss_d8_train_seconds = Some(tr.seconds);
        rep.score_gauss_d8_epochs = Some(tr.epochs_run);
        let test = g.sample(5_000, &mut r);
        let est = model.score_vectors(&test)?;
        let truth: Vec<f64> = test.chunks_exact(8).flat_map(|x| g.score(x)).collect();
        rep.score_gauss_d8_rel_fisher = Some(rel_fisher(&est, &truth));

        // --- attribution: +3 sd shift of one coordinate ---
        let n_att = 4_000;
        let mut rows = g.sample(n_att, &mut r);
        let sd: Vec<f64> = (0..8)
            .map(|i| (0..=i).map(|k| g.l[i][k] * g.l[i][k]).sum::<f64>().sqrt())
            .collect();
        for i in 0..n_att {
            rows[i * 8 + i % 8] += 3.0 * sd[i % 8];
        }
        let out = model.score(&rows)?;
        let (mut hit, mut hit_oracle, mut max_err) = (0usize, 0usize, 0.0f64);
        let argmin = |c: &[f64]| {
            (0..c.len())
                .min_by(|&a, &b| c[a].total_cmp(&c[b]))
                .unwrap_or(0)
        };
        for i in 0..n_att {
            let c = out.contributions_row(i);
            if argmin(c) == i % 8 {
                hit += 1;
            }
            let sum: f64 = c.iter().sum();
            max_err = max_err.max((sum - out.log_density_rel[i]).abs());
            // The same rule on the true density, from its centre mu: total
            // -0.5 dx^T P dx split by e_j = s_j^2 / (2 P_jj) (the floor never binds here).
            let x = &rows[i * 8..(i + 1) * 8];
            let s = g.score(x);
            let total: f64 = (0..8).map(|j| 0.5 * s[j] * (x[j] - g.mu[j])).sum();
            let e: Vec<f64> = (0..8).map(|j| s[j] * s[j] / (2.0 * g.prec[j][j])).collect();
            let e_sum: f64 = e.iter().sum();
            let co: Vec<f64> = e.iter().map(|ej| total * ej / e_sum).collect();
            if argmin(&co) == i % 8 {
                hit_oracle += 1;
            }
        }
        rep.attribution_top1_rate = Some(hit as f64 / n_att as f64);
        rep.attribution_top1_rate_oracle = Some(hit_oracle as f64 / n_att as f64);
        rep.attribution_sum_max_abs_error = Some(max_err);

        // --- score model on a 2-component mixture, d = 2 ---
        let (w, comps) = mixture_d2();
        let mut r = rng::seeded(seed + 1);
        let train = mixture_sample(&w, &comps, 10_000, &mut r);
        let (model, tr) = ScoreModel::train(&train, &names(2), &opts.score, &dev)?;
        rep.score_mixture_d2_train_seconds = Some(tr.seconds);
        let test = mixture_sample(&w, &comps, 5_000, &mut r);
        let est = model.score_vectors(&test)?;
        let truth: Vec<f64> = test
            .chunks_exact(2)
            .flat_map(|x| mixture_score(&w, &comps, x))
            .collect();
        rep.score_mixture_d2_rel_fisher = Some(rel_fisher(&est, &truth));

        // --- isotonic 1-D: PDIR vs PAVA ---
        use rand::Rng;
        let mut r = rng::seeded(seed + 2);
        let n = 1_000;
        let x: Vec<f64> = (0..n).map(|_| r.random::<f64>()).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|&v| f1(v) + 0.25 * rng::normal(&mut r))
            .collect();
        let xt: Vec<f64> = (0..5_000).map(|_| r.random::<f64>()).collect();
        let ft: Vec<f64> = xt.iter().map(|&v| f1(v)).collect();
        let pava = Pava::fit(&x, &y, None, Direction::Increasing)?;
        let mse_pava = mse(&pava.predict_many(&xt), &ft);
        let cfg = IsotonicConfig {
            monotone: vec![Monotone::Increasing],
            ..opts.iso_1d.clone()
        };
        let (m1, _) = IsotonicModel::train(&x, &y, &names(1), &cfg, &dev)?;
        let mse_pdir = mse(&m1.predict(&xt)?, &ft);
        rep.iso_1d_mse_pava = Some(mse_pava);
        rep.iso_1d_mse_pdir = Some(mse_pdir);
        rep.iso_1d_mse_ratio_pdir_over_pava = Some(mse_pdir / mse_pava);

        // --- isotonic 4-D: PDIR vs unconstrained vs linear ---
        let n = 2_000;
        let d = 4;
        let draw = |r: &mut rand::rngs::StdRng, n: usize| -> Vec<f64> {
            (0..n * d).map(|_| r.random::<f64>() * 2.0 - 1.0).collect()
        };
        let x = draw(&mut r, n);
        let y: Vec<f64> = x
            .chunks_exact(d)
            .map(|row| f4(row) + 0.3 * rng::normal(&mut r))
            .collect();
        let xt = draw(&mut r, 5_000);
        let ft: Vec<f64> = xt.chunks_exact(d).map(f4).collect();
        let mono = vec![
            Monotone::Increasing,
            Monotone::Decreasing,
            Monotone::Free,
            Monotone::Free,
        ];
        let cfg = IsotonicConfig {
            monotone: mono.clone(),
            ..opts.iso_4d.clone()
        };
        let (m4, _) = IsotonicModel::train(&x, &y, &names(d), &cfg, &dev)?;
        rep.iso_4d_mse_pdir = Some(mse(&m4.predict(&xt)?, &ft));
        rep.iso_wrong_sign_rate = Some(m4.check_monotonicity(&xt, 0.0)?.wrong_sign_rate);
        let cfg0 = IsotonicConfig { lambda: 0.0, ..cfg };
        let (m0, _) = IsotonicModel::train(&x, &y, &names(d), &cfg0, &dev)?;
        rep.iso_4d_mse_unconstrained = Some(mse(&m0.predict(&xt)?, &ft));
        rep.iso_wrong_sign_rate_unconstrained =
            Some(m0.check_monotonicity(&xt, 0.0)?.wrong_sign_rate);
        let beta = linear_fit(&x, &y, d);
        let lin: Vec<f64> = xt
            .chunks_exact(d)
            .map(|row| beta[0] + (0..d).map(|j| beta[j + 1] * row[j]).sum::<f64>())
            .collect();
        rep.iso_4d_mse_linear = Some(mse(&lin, &ft));
    }

    if !opts.quality_only {
        // --- speed: d = 16 training and scoring, d = 64 scoring (residual [64, 64]) ---
        let mut r = rng::seeded(seed + 3);
        let d = 16;
        let train = rng::normals(&mut r, 10_000 * d);
        let epochs = 3;
        // The residual is kept whatever it gains, so the network path is what is timed.
        let cfg = ScoreConfig {
            hidden: Some(vec![64, 64]),
            residual: ResidualMode::Always,
            train: TrainConfig {
                max_epochs: epochs,
                patience: usize::MAX / 2,
                lr_schedule: LrSchedule::Constant,
                ..opts.score.train.clone()
            },
            ..opts.score.clone()
        };
        let (m16, tr) = ScoreModel::train(&train, &names(d), &cfg, &dev)?;
        rep.train_rows_per_s_d16 = Some((tr.train_rows * tr.epochs_run) as f64 / tr.seconds);
        let rows = rng::normals(&mut r, opts.score_rows * d);
        let secs = time_best(3, || m16.anomaly_scores(&rows).map(|_| ()))?;
        rep.score_rows_per_s_d16 = Some(opts.score_rows as f64 / secs);
        let n_att = opts.score_rows / 10;
        let secs = time_best(2, || m16.score(&rows[..n_att * d]).map(|_| ()))?;
        rep.score_with_attribution_rows_per_s_d16 = Some(n_att as f64 / secs);
        let d = 64;
        let train = rng::normals(&mut r, 2_000 * d);
        let cfg1 = ScoreConfig {
            train: TrainConfig {
                max_epochs: 1,
                ..cfg.train.clone()
            },
            ..cfg.clone()
        };
        let (m64, _) = ScoreModel::train(&train, &names(d), &cfg1, &dev)?;
        let n64 = opts.score_rows / 4;
        let rows = rng::normals(&mut r, n64 * d);
        let secs = time_best(3, || m64.anomaly_scores(&rows).map(|_| ()))?;
        rep.score_rows_per_s_d64 = Some(n64 as f64 / secs);
    }

    rep.total_seconds = started.elapsed().as_secs_f64();
    let goal = |metric: &str, g: &str, v: Option<f64>, ok: fn(f64) -> bool| Goal {
        metric: metric.into(),
        goal: g.into(),
        value: v,
        met: v.is_some_and(ok),
    };
    let per_core = rep
        .score_rows_per_s_d16
        .map(|v| v / rep.threads.max(1) as f64);
    rep.goals = vec![
        goal(
            "score_gauss_d8_rel_fisher",
            "< 0.05",
            rep.score_gauss_d8_rel_fisher,
            |v| v < 0.05,
        ),
        goal(
            "score_mixture_d2_rel_fisher",
            "< 0.10",
            rep.score_mixture_d2_rel_fisher,
            |v| v < 0.10,
        ),
        goal(
            "attribution_top1_rate",
            ">= 0.95",
            rep.attribution_top1_rate,
            |v| v >= 0.95,
        ),
        goal(
            "iso_1d_mse_ratio_pdir_over_pava",
            "<= 1.2",
            rep.iso_1d_mse_ratio_pdir_over_pava,
            |v| v <= 1.2,
        ),
        goal(
            "iso_wrong_sign_rate",
            "< 0.01",
            rep.iso_wrong_sign_rate,
            |v| v < 0.01,
        ),
        goal(
            "score_rows_per_s_d16 / threads",
            ">= 50000",
            per_core,
            |v| v >= 50_000.0,
        ),
    ];
    Ok(rep)
}
