//! The covariance shrinkage of the Gaussian part, and the out-of-fold calibration scores that
//! come with it.
//!
//! Ledoit & Wolf's intensity minimises the expected Frobenius error of the covariance. A
//! detector needs something else: the alarm statistic is `0.5 (z - m)^T P (z - m)` with
//! `P = Sigma^-1`, and shrinking towards `mu I` lifts the smallest eigenvalues of `Sigma`, the
//! directions in which normal operation hardly varies. In a process those are the balances
//! between sensors (mass, energy, control loops), and a fault that breaks a balance shows up
//! there first: the reason PCA monitoring keeps a residual (SPE) statistic beside T²
//! (Jackson & Mudholkar 1979; Qin 2003, "Statistical process monitoring: basics and beyond",
//! J. Chemometrics 17). Too little shrinkage, on the other hand, trusts directions that a short
//! history estimated badly, and the out-of-fold threshold rises until nothing is detected.
//!
//! [`Shrinkage::Auto`] therefore chooses the intensity by what it is for, on normal history
//! only: for each `a` of [`SHRINKAGE_GRID`], the calibration blocks are scored out of fold (as
//! for the threshold), the threshold is their `threshold_quantile`, and the power is the share
//! of (held-out window, feature) pairs that cross it once that one feature is moved by one
//! standard deviation (a single-sensor step, the commonest fault). The `a` of the highest power
//! wins; a tie goes to the larger `a`. No fault data is used.

use std::ops::Range;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use super::ScoreConfig;
use super::fit::gauss_ism_rows;
use crate::error::{ModelError, Result};
use crate::gaussian::{Whitener, centred_covariance, ledoit_wolf};
use crate::standardize::Standardizer;
use crate::train::quantile;

/// Candidate intensities of [`Shrinkage::Auto`], from the sample covariance (0: its
/// eigenvalues floored at `1e-6 mu`) to a scaled identity (1: a Euclidean distance).
pub const SHRINKAGE_GRID: [f64; 7] = [0.0, 1e-4, 1e-3, 1e-2, 0.1, 0.3, 1.0];

/// Held-out rows per calibration block that the power of a candidate is measured on (evenly
/// spaced): bounds the selection's cost on long histories.
const POWER_ROWS_PER_FOLD: usize = 512;

/// Size of the synthetic single-feature step of [`Shrinkage::Auto`], in standard deviations
/// of the feature.
const STEP_STD: f64 = 1.0;

/// How the covariance shrinkage intensity `a` of the Gaussian part is set.
///
/// In configuration files: `"auto"`, `"ledoit_wolf"` or a number in `[0, 1]` (`null`, as
/// written by older checkpoints, reads as `"ledoit_wolf"`); anything else is an error that
/// names the value and the choices.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Shrinkage {
    /// The intensity of [`SHRINKAGE_GRID`] with the highest out-of-fold power against
    /// single-feature steps (see the module documentation).
    #[default]
    Auto,
    /// Ledoit & Wolf (2004), "A well-conditioned estimator for large-dimensional covariance
    /// matrices", J. Multivariate Anal. 88, Theorem 1: the Frobenius-optimal intensity.
    LedoitWolf,
    /// A fixed intensity in `[0, 1]`.
    Fixed(f64),
}

const SHRINKAGE_EXPECTED: &str = "\"auto\", \"ledoit_wolf\" or a number in [0, 1]";

impl Serialize for Shrinkage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::LedoitWolf => s.serialize_str("ledoit_wolf"),
            Self::Fixed(a) => s.serialize_f64(*a),
        }
    }
}

impl<'de> Deserialize<'de> for Shrinkage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ShrinkageVisitor)
    }
}

struct ShrinkageVisitor;

impl ShrinkageVisitor {
    fn fixed<E: serde::de::Error>(a: f64) -> std::result::Result<Shrinkage, E> {
        if (0.0..=1.0).contains(&a) {
            Ok(Shrinkage::Fixed(a))
        } else {
            Err(E::custom(format!("{a}: must be {SHRINKAGE_EXPECTED}")))
        }
    }
}

impl serde::de::Visitor<'_> for ShrinkageVisitor {
    type Value = Shrinkage;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(SHRINKAGE_EXPECTED)
    }
    fn visit_f64<E: serde::de::Error>(self, a: f64) -> std::result::Result<Shrinkage, E> {
        Self::fixed(a)
    }
    fn visit_i64<E: serde::de::Error>(self, a: i64) -> std::result::Result<Shrinkage, E> {
        Self::fixed(a as f64)
    }
    fn visit_u64<E: serde::de::Error>(self, a: u64) -> std::result::Result<Shrinkage, E> {
        Self::fixed(a as f64)
    }
    fn visit_str<E: serde::de::Error>(self, name: &str) -> std::result::Result<Shrinkage, E> {
        match name {
            "auto" => Ok(Shrinkage::Auto),
            "ledoit_wolf" => Ok(Shrinkage::LedoitWolf),
            other => Err(E::custom(format!(
                "{other:?}: must be {SHRINKAGE_EXPECTED}"
            ))),
        }
    }
    /// `null`, as older checkpoints wrote the Ledoit-Wolf default.
    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Shrinkage, E> {
        Ok(Shrinkage::LedoitWolf)
    }
    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Shrinkage, E> {
        Ok(Shrinkage::LedoitWolf)
    }
}

impl Shrinkage {
    /// Errors when a fixed intensity is outside `[0, 1]`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match *self {
            Self::Fixed(a) if !(0.0..=1.0).contains(&a) => {
                Err(format!("shrinkage {a} must be in [0, 1]"))
            }
            _ => Ok(()),
        }
    }
}

/// One calibration block and the Gaussian statistics of the rows outside it.
struct Fold {
    block: Range<usize>,
    standardizer: Standardizer,
    mean: Vec<f64>,
    cov: DMatrix<f64>,
    /// Ledoit-Wolf's intensity for these rows (used when the configuration asks for it).
    ledoit_wolf: f64,
}

impl Fold {
    /// The fold's Gaussian part with intensity `a` (`None`: its Ledoit-Wolf intensity).
    fn whitener(&self, a: Option<f64>) -> Result<Whitener> {
        let a = a.unwrap_or(self.ledoit_wolf);
        Whitener::from_covariance(self.mean.clone(), self.cov.clone(), a)
    }
}

/// The `calibration_folds` contiguous blocks of the time-ordered rows `[n, d]`, each with the
/// standardisation and sample covariance of the rows outside it, less `gap` rows at each
/// border so that no window shares readings with the block. They calibrate a Gaussian-only
/// model (out-of-fold scores) and choose [`Shrinkage::Auto`]'s intensity; the covariances
/// are computed once for both.
pub(super) struct Calibration {
    folds: Vec<Fold>,
}

impl Calibration {
    /// Errors: a block leaves fewer than 8 rows to fit on.
    pub(super) fn new(rows: &[f64], d: usize, cfg: &ScoreConfig, gap: usize) -> Result<Self> {
        let n = rows.len() / d.max(1);
        let k = cfg.calibration_folds.min(n);
        let mut folds = Vec::with_capacity(k);
        for f in 0..k {
            let (a, b) = (f * n / k, (f + 1) * n / k);
            let mut train_rows = Vec::with_capacity(rows.len());
            train_rows.extend_from_slice(&rows[..a.saturating_sub(gap) * d]);
            train_rows.extend_from_slice(&rows[(b + gap).min(n) * d..]);
            let m = train_rows.len() / d.max(1);
            if m < 8 {
                return Err(ModelError::InsufficientData(format!(
                    "{n} rows: a calibration fold leaves fewer than 8 rows to fit on"
                )));
            }
            let standardizer = Standardizer::fit(&train_rows, d)?;
            let (z, _) = standardizer.transform(&train_rows, cfg.clip)?;
            let (mean, xc, cov) = centred_covariance(&z, m, d);
            let ledoit_wolf = ledoit_wolf(&xc, &cov, cov.trace() / d as f64);
            folds.push(Fold {
                block: a..b,
                standardizer,
                mean,
                cov,
                ledoit_wolf,
            });
        }
        Ok(Self { folds })
    }

    /// The intensity [`Shrinkage::Auto`] chooses on these blocks (see [`select`]).
    pub(super) fn choose(&self, rows: &[f64], d: usize, cfg: &ScoreConfig) -> Result<f64> {
        select(rows, d, cfg, &self.folds)
    }

    /// Out-of-fold anomaly score of every row, each by the model of the rows outside its
    /// block, with intensity `a` (`None`: each fold's Ledoit-Wolf intensity).
    pub(super) fn scores(
        &self,
        rows: &[f64],
        d: usize,
        cfg: &ScoreConfig,
        a: Option<f64>,
    ) -> Result<Vec<f64>> {
        let mut scores = Vec::with_capacity(rows.len() / d.max(1));
        for f in &self.folds {
            let g = f.whitener(a)?;
            let (z, _) = f
                .standardizer
                .transform(&rows[f.block.start * d..f.block.end * d], cfg.clip)?;
            scores.extend(gauss_ism_rows(&g.apply(&z), d));
        }
        Ok(scores)
    }
}

/// The [`SHRINKAGE_GRID`] intensity of the highest out-of-fold power against one-standard-
/// deviation steps of single features, at the calibrated threshold (ties: the larger `a`).
fn select(rows: &[f64], d: usize, cfg: &ScoreConfig, folds: &[Fold]) -> Result<f64> {
    // Held-out rows of each block, standardised by the fold's own model (at most
    // POWER_ROWS_PER_FOLD, evenly spaced).
    let mut held = Vec::with_capacity(folds.len());
    for f in folds {
        let len = f.block.len();
        let take = len.min(POWER_ROWS_PER_FOLD);
        let mut sample = Vec::with_capacity(take * d);
        for i in 0..take {
            let r = f.block.start + i * len / take;
            sample.extend_from_slice(&rows[r * d..(r + 1) * d]);
        }
        held.push(f.standardizer.transform(&sample, cfg.clip)?.0);
    }
    let mut best = (f64::NEG_INFINITY, 1.0);
    let mut powers = Vec::with_capacity(SHRINKAGE_GRID.len());
    for &a in SHRINKAGE_GRID.iter().rev() {
        let mut base = Vec::new();
        let mut shifted = Vec::new();
        for (f, z) in folds.iter().zip(&held) {
            let g = f.whitener(Some(a))?;
            let u = g.apply(z);
            let b = gauss_ism_rows(&u, d);
            // Moving feature j by delta moves u by delta W e_j (column j of W), so the score
            // becomes base + delta u.W e_j + 0.5 delta^2 |W e_j|^2.
            let w = DMatrix::from_row_slice(d, d, &g.w);
            let col_sq: Vec<f64> = (0..d).map(|j| w.column(j).norm_squared()).collect();
            let um = DMatrix::from_row_slice(b.len(), d, &u);
            let uw = um * &w;
            for (r, br) in b.iter().enumerate() {
                for (j, cs) in col_sq.iter().enumerate() {
                    shifted.push(br + STEP_STD * uw[(r, j)] + 0.5 * STEP_STD * STEP_STD * cs);
                }
            }
            base.extend(b);
        }
        let Some(th) = quantile(&base, cfg.threshold_quantile) else {
            continue;
        };
        let power = shifted.iter().filter(|&&s| s > th).count() as f64 / shifted.len() as f64;
        powers.push((a, power));
        if power > best.0 {
            best = (power, a);
        }
    }
    tracing::info!(
        shrinkage = best.1,
        power = best.0,
        candidates = ?powers,
        "score model: covariance shrinkage chosen by out-of-fold power against single-feature steps"
    );
    Ok(best.1)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::rng;
    use crate::score::{ResidualMode, ScoreModel};

    fn names(d: usize) -> Vec<String> {
        (0..d).map(|j| format!("f{j}")).collect()
    }

    /// `n` rows of 10 independent N(0, 1) features and two balances,
    /// `f10 = f0 + f1` and `f11 = f2 - f3`, each up to N(0, 0.01^2) noise.
    fn balanced_rows(n: usize, seed: u64, step_f10: f64) -> Vec<f64> {
        let mut r = rng::seeded(seed);
        let mut out = Vec::with_capacity(n * 12);
        for _ in 0..n {
            let x = rng::normals(&mut r, 12);
            out.extend_from_slice(&x[..10]);
            out.push(x[0] + x[1] + 0.01 * x[10] + step_f10);
            out.push(x[2] - x[3] + 0.01 * x[11]);
        }
        out
    }

    fn train(rows: &[f64], d: usize, shrinkage: Shrinkage) -> ScoreModel {
        let cfg = ScoreConfig {
            shrinkage,
            residual: ResidualMode::Off,
            ..ScoreConfig::default()
        };
        ScoreModel::train(rows, &names(d), &cfg, &Device::Cpu)
            .unwrap()
            .0
    }

    fn alarm_rate(m: &ScoreModel, rows: &[f64]) -> f64 {
        let a = m.anomaly_scores(rows).unwrap();
        a.iter().filter(|s| **s > m.threshold()).count() as f64 / a.len() as f64
    }

    #[test]
    fn reads_names_numbers_and_old_nulls() {
        let read = |s: &str| serde_json::from_str::<Shrinkage>(s);
        assert_eq!(read("\"auto\"").unwrap(), Shrinkage::Auto);
        assert_eq!(read("\"ledoit_wolf\"").unwrap(), Shrinkage::LedoitWolf);
        assert_eq!(read("0.25").unwrap(), Shrinkage::Fixed(0.25));
        assert_eq!(read("null").unwrap(), Shrinkage::LedoitWolf);
        for bad in ["1.5", "-0.1", "\"oas\"", "true", "[0.1]"] {
            let e = read(bad).unwrap_err().to_string();
            assert!(
                e.contains("\"auto\", \"ledoit_wolf\" or a number in [0, 1]"),
                "{bad}: {e}"
            );
        }
        for s in [
            Shrinkage::Auto,
            Shrinkage::LedoitWolf,
            Shrinkage::Fixed(0.1),
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(read(&json).unwrap(), s);
        }
    }

    #[test]
    fn auto_keeps_a_balance_that_ledoit_wolf_shrinks_away() {
        // 300 rows with two sensor balances. A 1-sd step in f10 alone (std sqrt 2) breaks the
        // first balance by 140 times its noise: the model must see it, and still raise about
        // the nominal 1 % on fresh normal rows.
        let d = 12;
        let history = balanced_rows(300, 3, 0.0);
        let auto = train(&history, d, Shrinkage::Auto);
        let lw = train(&history, d, Shrinkage::LedoitWolf);
        let (a_auto, a_lw) = (auto.summary().shrinkage, lw.summary().shrinkage);
        let normal = balanced_rows(20_000, 11, 0.0);
        let broken = balanced_rows(20_000, 12, 2f64.sqrt());
        let (fa_auto, fa_lw) = (alarm_rate(&auto, &normal), alarm_rate(&lw, &normal));
        let (det_auto, det_lw) = (alarm_rate(&auto, &broken), alarm_rate(&lw, &broken));
        eprintln!("a {a_auto} / {a_lw}; FA {fa_auto} / {fa_lw}; detection {det_auto} / {det_lw}");
        assert!(a_auto <= 1e-3 && a_lw > 0.0, "a {a_auto} / {a_lw}");
        assert!(
            (0.001..=0.04).contains(&fa_auto),
            "auto false alarms {fa_auto}"
        );
        assert!(det_auto > 0.99, "auto detection {det_auto}");
        assert!(det_lw < 0.5 * det_auto, "Ledoit-Wolf detection {det_lw}");
    }

    #[test]
    fn auto_shrinks_a_history_shorter_than_its_dimension() {
        // 40 rows of 60 independent features: every fold's sample covariance is singular, and
        // trusting its null space would put every held-out row over any threshold.
        let d = 60;
        let mut r = rng::seeded(8);
        let history = rng::normals(&mut r, 40 * d);
        let m = train(&history, d, Shrinkage::Auto);
        let a = m.summary().shrinkage;
        let fa = alarm_rate(&m, &rng::normals(&mut r, 5_000 * d));
        eprintln!("a {a}; FA {fa}");
        assert!(a >= 0.1, "a {a}");
        assert!(fa <= 0.06, "false alarms {fa}");
    }
}
