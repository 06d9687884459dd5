//! One-dimensional weighted isotonic regression by pool-adjacent-violators (PAVA): the
//! baseline and fallback of the isotonic defect model.
//!
//! Fits `f` monotone in `x` minimising `sum_i w_i (y_i - f(x_i))^2`. Input may be unsorted;
//! tied `x` values are pooled first (their weighted mean with their summed weight), which is
//! exact for this problem because a function takes one value per `x`
//! (`sum_{i in tie} w_i (y_i - f)^2 = W (ybar - f)^2 + const`). Prediction on new `x`
//! interpolates linearly between the fitted knots (or steps), constant outside the range.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Monotone direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Non-decreasing.
    #[default]
    Increasing,
    /// Non-increasing.
    Decreasing,
}

/// Prediction between knots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Linear between neighbouring knots (monotone as well).
    #[default]
    Linear,
    /// The value of the largest knot `<= x` (the first knot's value left of the range).
    Step,
}

/// Weighted non-decreasing isotonic regression of a sequence (the PAVA core, O(n)):
/// the fitted values in the same order. `y` and `w` must have equal length, `w > 0`.
pub fn isotonic_sequence(y: &[f64], w: &[f64]) -> Vec<f64> {
    // Blocks of (weighted sum, weight, count); merge while the last two violate the order.
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(y.len());
    for (&yi, &wi) in y.iter().zip(w) {
        blocks.push((yi * wi, wi, 1));
        while blocks.len() >= 2 {
            let (s1, w1, c1) = blocks[blocks.len() - 1];
            let (s0, w0, c0) = blocks[blocks.len() - 2];
            if s0 / w0 > s1 / w1 {
                blocks.pop();
                let last = blocks.len() - 1;
                blocks[last] = (s0 + s1, w0 + w1, c0 + c1);
            } else {
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(y.len());
    for (s, wt, c) in blocks {
        out.extend(std::iter::repeat_n(s / wt, c));
    }
    out
}

/// A fitted 1-D isotonic regression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pava {
    /// Distinct training `x`, increasing.
    pub knots_x: Vec<f64>,
    /// Fitted value at each knot (monotone in `direction`).
    pub knots_y: Vec<f64>,
    /// Direction of the fit.
    pub direction: Direction,
    /// Prediction between knots.
    pub interpolation: Interpolation,
}

impl Pava {
    /// Fits `y` against `x` (any order, ties allowed) with optional positive weights.
    pub fn fit(x: &[f64], y: &[f64], w: Option<&[f64]>, direction: Direction) -> Result<Self> {
        if x.len() != y.len() || w.is_some_and(|w| w.len() != x.len()) {
            return Err(ModelError::InvalidInput(
                "x, y (and w) must have equal lengths".into(),
            ));
        }
        if x.is_empty() {
            return Err(ModelError::InsufficientData(
                "PAVA needs at least one point".into(),
            ));
        }
        if x.iter().chain(y).any(|v| !v.is_finite()) {
            return Err(ModelError::InvalidInput(
                "PAVA x and y must be finite".into(),
            ));
        }
        if let Some(w) = w
            && w.iter().any(|v| !(v.is_finite() && *v > 0.0))
        {
            return Err(ModelError::InvalidInput(
                "PAVA weights must be finite and > 0".into(),
            ));
        }
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
        let sign = match direction {
            Direction::Increasing => 1.0,
            Direction::Decreasing => -1.0,
        };
        // Pool ties.
        let (mut kx, mut sy, mut sw): (Vec<f64>, Vec<f64>, Vec<f64>) = (vec![], vec![], vec![]);
        for &i in &idx {
            let wi = w.map_or(1.0, |w| w[i]);
            match kx.last() {
                Some(&last) if last == x[i] => {
                    let k = kx.len() - 1;
                    sy[k] += wi * sign * y[i];
                    sw[k] += wi;
                }
                _ => {
                    kx.push(x[i]);
                    sy.push(wi * sign * y[i]);
                    sw.push(wi);
                }
            }
        }
        let ym: Vec<f64> = sy.iter().zip(&sw).map(|(s, w)| s / w).collect();
        let fitted: Vec<f64> = isotonic_sequence(&ym, &sw)
            .into_iter()
            .map(|v| sign * v)
            .collect();
        Ok(Self {
            knots_x: kx,
            knots_y: fitted,
            direction,
            interpolation: Interpolation::default(),
        })
    }

    /// The same fit predicting with another interpolation.
    pub fn with_interpolation(mut self, interpolation: Interpolation) -> Self {
        self.interpolation = interpolation;
        self
    }

    /// Prediction at `x` (NaN for NaN).
    pub fn predict(&self, x: f64) -> f64 {
        let (kx, ky) = (&self.knots_x, &self.knots_y);
        if x.is_nan() || kx.is_empty() {
            return f64::NAN;
        }
        // Index of the first knot > x.
        let i = kx.partition_point(|&k| k <= x);
        if i == 0 {
            return ky[0];
        }
        if i == kx.len() {
            return ky[kx.len() - 1];
        }
        match self.interpolation {
            Interpolation::Step => ky[i - 1],
            Interpolation::Linear => {
                let (x0, x1, y0, y1) = (kx[i - 1], kx[i], ky[i - 1], ky[i]);
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            }
        }
    }

    /// Predictions for many `x`.
    pub fn predict_many(&self, xs: &[f64]) -> Vec<f64> {
        xs.iter().map(|&x| self.predict(x)).collect()
    }

    /// Checks a loaded fit: equal lengths, increasing finite knots, monotone values.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.knots_x.len() != self.knots_y.len() || self.knots_x.is_empty() {
            return Err("PAVA knots must be non-empty with equal lengths".into());
        }
        if self
            .knots_x
            .iter()
            .chain(&self.knots_y)
            .any(|v| !v.is_finite())
        {
            return Err("PAVA knots must be finite".into());
        }
        if self.knots_x.windows(2).any(|w| w[0] >= w[1]) {
            return Err("PAVA knot x must be strictly increasing".into());
        }
        let ok = match self.direction {
            Direction::Increasing => self.knots_y.windows(2).all(|w| w[0] <= w[1]),
            Direction::Decreasing => self.knots_y.windows(2).all(|w| w[0] >= w[1]),
        };
        if !ok {
            return Err("PAVA knot values are not monotone".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The min-max characterisation of the weighted isotonic (non-decreasing) regression:
    /// `f_i = max_{s <= i} min_{t >= i} Av_w(y[s..=t])` (an O(n^3) reference, independent
    /// of PAVA).
    fn brute_force(y: &[f64], w: &[f64]) -> Vec<f64> {
        let n = y.len();
        let av = |s: usize, t: usize| -> f64 {
            let sw: f64 = w[s..=t].iter().sum();
            (s..=t).map(|k| w[k] * y[k]).sum::<f64>() / sw
        };
        (0..n)
            .map(|i| {
                (0..=i)
                    .map(|s| (i..n).map(|t| av(s, t)).fold(f64::INFINITY, f64::min))
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect()
    }

    #[test]
    fn known_examples() {
        assert_eq!(
            isotonic_sequence(&[1.0, 3.0, 2.0, 4.0], &[1.0; 4]),
            vec![1.0, 2.5, 2.5, 4.0]
        );
        assert_eq!(isotonic_sequence(&[3.0, 2.0, 1.0], &[1.0; 3]), vec![2.0; 3]);
        assert_eq!(isotonic_sequence(&[3.0, 1.0], &[1.0, 3.0]), vec![1.5, 1.5]);
        // Unsorted input with ties, decreasing.
        let p = Pava::fit(
            &[2.0, 0.0, 1.0, 1.0],
            &[1.0, 3.0, 4.0, 0.0],
            None,
            Direction::Decreasing,
        )
        .unwrap();
        assert_eq!(p.knots_x, vec![0.0, 1.0, 2.0]);
        assert_eq!(p.knots_y, vec![3.0, 2.0, 1.0]);
        assert_eq!(p.predict(-5.0), 3.0);
        assert_eq!(p.predict(0.5), 2.5);
        assert_eq!(p.predict(9.0), 1.0);
        assert!(p.predict(f64::NAN).is_nan());
        let s = p.clone().with_interpolation(Interpolation::Step);
        assert_eq!(s.predict(0.5), 3.0);
        assert_eq!(s.predict(1.0), 2.0);
        p.validate().unwrap();
        assert!(Pava::fit(&[], &[], None, Direction::Increasing).is_err());
        assert!(Pava::fit(&[1.0], &[f64::NAN], None, Direction::Increasing).is_err());
        assert!(Pava::fit(&[1.0], &[1.0], Some(&[0.0]), Direction::Increasing).is_err());
        assert!(Pava::fit(&[1.0, 2.0], &[1.0], None, Direction::Increasing).is_err());
    }

    fn sse(y: &[f64], w: &[f64], f: &[f64]) -> f64 {
        y.iter()
            .zip(w)
            .zip(f)
            .map(|((y, w), f)| w * (y - f) * (y - f))
            .sum()
    }

    proptest! {
        #[test]
        fn matches_brute_force(
            pts in proptest::collection::vec((0u8..6, -5.0f64..5.0, 0.1f64..3.0), 1..12),
            decreasing in any::<bool>(),
        ) {
            let x: Vec<f64> = pts.iter().map(|p| f64::from(p.0)).collect();
            let y: Vec<f64> = pts.iter().map(|p| p.1).collect();
            let w: Vec<f64> = pts.iter().map(|p| p.2).collect();
            let dir = if decreasing { Direction::Decreasing } else { Direction::Increasing };
            let fit = Pava::fit(&x, &y, Some(&w), dir).unwrap();
            fit.validate().unwrap();
            // Reference on the tie-pooled sorted problem, by the min-max formula.
            let mut ux: Vec<f64> = x.clone();
            ux.sort_by(f64::total_cmp);
            ux.dedup();
            let sign = if decreasing { -1.0 } else { 1.0 };
            let (mut ym, mut wm) = (vec![], vec![]);
            for &u in &ux {
                let (mut s, mut ws) = (0.0, 0.0);
                for i in 0..x.len() {
                    if x[i] == u { s += w[i] * sign * y[i]; ws += w[i]; }
                }
                ym.push(s / ws);
                wm.push(ws);
            }
            let brute: Vec<f64> = brute_force(&ym, &wm).into_iter().map(|v| sign * v).collect();
            prop_assert_eq!(&fit.knots_x, &ux);
            for (a, b) in fit.knots_y.iter().zip(&brute) {
                prop_assert!((a - b).abs() < 1e-9, "pava {:?} brute {:?}", fit.knots_y, brute);
            }
            // And the fit is no worse than random monotone candidates on the original points.
            let fitted: Vec<f64> = x.iter().map(|&v| fit.predict(v)).collect();
            let best = sse(&y, &w, &fitted);
            for shift in [-0.3, -0.1, 0.1, 0.3] {
                // Sum of two sequences monotone in the same direction: monotone.
                let cand: Vec<f64> = fit.knots_y.iter().enumerate().map(|(k, v)| v + shift + sign * shift.abs() * k as f64 * 0.1).collect();
                let cv: Vec<f64> = x.iter().map(|&v| cand[ux.iter().position(|u| *u == v).unwrap()]).collect();
                prop_assert!(best <= sse(&y, &w, &cv) + 1e-9);
            }
        }
    }
}
