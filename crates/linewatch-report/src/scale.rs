//! Axis scales and tick marks: value axes (linear, log, symmetric log) and UTC time axes.

use chrono::DateTime;

/// How values map onto a vertical axis. Charts are drawn in the transformed space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum YScale {
    Linear,
    /// `log10(v)`; all values are positive.
    Log10,
    /// `sign(v) * log10(1 + |v| / c)`: linear near zero, logarithmic beyond `c`.
    SymLog {
        c: f64,
    },
}

/// Values whose largest magnitude exceeds the typical (median) one by this factor are drawn
/// on a logarithmic scale, so that a few spikes do not flatten everything else.
const LOG_SPREAD: f64 = 100.0;

impl YScale {
    /// Picks a scale for these values (non-finite ones are ignored).
    pub(crate) fn choose(values: impl IntoIterator<Item = f64>) -> YScale {
        let mut mags: Vec<f64> = Vec::new();
        let mut all_positive = true;
        for v in values.into_iter().filter(|v| v.is_finite()) {
            all_positive &= v > 0.0;
            if v != 0.0 {
                mags.push(v.abs());
            }
        }
        if mags.is_empty() {
            return YScale::Linear;
        }
        mags.sort_by(f64::total_cmp);
        let typical = mags[mags.len() / 2];
        let max = mags[mags.len() - 1];
        if max / typical < LOG_SPREAD {
            return YScale::Linear;
        }
        if all_positive {
            YScale::Log10
        } else {
            YScale::SymLog {
                c: 10f64.powf(typical.log10().floor()),
            }
        }
    }

    pub(crate) fn fwd(&self, v: f64) -> f64 {
        match *self {
            YScale::Linear => v,
            YScale::Log10 => v.max(f64::MIN_POSITIVE).log10(),
            YScale::SymLog { c } => v.signum() * (v.abs() / c).ln_1p() / std::f64::consts::LN_10,
        }
    }

    pub(crate) fn inv(&self, t: f64) -> f64 {
        match *self {
            YScale::Linear => t,
            YScale::Log10 => 10f64.powf(t),
            YScale::SymLog { c } => t.signum() * c * (t.abs() * std::f64::consts::LN_10).exp_m1(),
        }
    }

    /// A word for axis captions.
    pub(crate) fn note(&self) -> &'static str {
        match self {
            YScale::Linear => "",
            YScale::Log10 => " (log scale)",
            YScale::SymLog { .. } => " (symmetric log scale)",
        }
    }

    /// The transformed axis range covering `lo..=hi` (original values) with a margin.
    pub(crate) fn range(&self, lo: f64, hi: f64) -> (f64, f64) {
        let (mut a, mut b) = (self.fwd(lo), self.fwd(hi));
        if !(a.is_finite() && b.is_finite()) {
            return (0.0, 1.0);
        }
        if b - a <= f64::EPSILON * a.abs().max(1.0) {
            let pad = match self {
                YScale::Linear => (a.abs() * 0.1).max(1.0),
                _ => 0.5,
            };
            return (a - pad, b + pad);
        }
        let pad = (b - a) * 0.06;
        a -= pad;
        b += pad;
        (a, b)
    }

    /// Tick positions (transformed) inside `lo..=hi` (transformed).
    pub(crate) fn ticks(&self, lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
        let max_ticks = max_ticks.max(2);
        match *self {
            YScale::Linear => linear_ticks(lo, hi, max_ticks),
            YScale::Log10 => {
                let first = lo.ceil() as i64;
                let last = hi.floor() as i64;
                if last - first < 1 {
                    // Less than two decades visible: 1-2-5 steps in value space.
                    let (a, b) = (self.inv(lo), self.inv(hi));
                    return linear_ticks(a, b, max_ticks)
                        .into_iter()
                        .filter(|v| *v > 0.0)
                        .map(|v| v.log10())
                        .collect();
                }
                let every = ((last - first + 1) as usize).div_ceil(max_ticks).max(1);
                (first..=last)
                    .filter(|k| ((k - first) as usize).is_multiple_of(every))
                    .map(|k| k as f64)
                    .collect()
            }
            YScale::SymLog { c } => {
                // 0 and +-c * 10^k.
                let mut decades: Vec<f64> = Vec::new();
                let max_abs = self.inv(lo.abs().max(hi.abs()));
                let mut v = c;
                while v <= max_abs * (1.0 + 1e-9) && decades.len() < 400 {
                    decades.push(v);
                    v *= 10.0;
                }
                let mut all: Vec<f64> = vec![0.0];
                for d in &decades {
                    all.push(*d);
                    all.push(-*d);
                }
                let mut inside: Vec<f64> = all
                    .into_iter()
                    .map(|v| self.fwd(v))
                    .filter(|t| *t >= lo && *t <= hi)
                    .collect();
                inside.sort_by(f64::total_cmp);
                thin(inside, max_ticks)
            }
        }
    }

    /// Label of a tick given in transformed space.
    pub(crate) fn label(&self, t: f64, ticks: &[f64]) -> String {
        match self {
            YScale::Linear => {
                let step = ticks
                    .windows(2)
                    .map(|w| w[1] - w[0])
                    .fold(f64::INFINITY, f64::min);
                fmt_num(t, step)
            }
            _ => fmt_num(self.inv(t), f64::NAN),
        }
    }
}

/// Keeps about `max` evenly spread ticks, always keeping 0 when present.
fn thin(ticks: Vec<f64>, max: usize) -> Vec<f64> {
    if ticks.len() <= max {
        return ticks;
    }
    let every = ticks.len().div_ceil(max);
    let zero = ticks.iter().position(|t| *t == 0.0).unwrap_or(0);
    ticks
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i.abs_diff(zero).is_multiple_of(every))
        .map(|(_, t)| t)
        .collect()
}

/// 1-2-5 ticks in `lo..=hi`.
pub(crate) fn linear_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / max_ticks.max(2) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    // Tolerate rounding: -0.3 / 0.1 is -2.9999999999999996.
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            if v.abs() < step * 1e-9 { 0.0 } else { v }
        })
        .collect()
}

/// Compact number: enough decimals for `step` (NaN: for a lone value), exponent form for
/// very large or very small magnitudes.
pub(crate) fn fmt_num(v: f64, step: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        return "0".to_owned();
    }
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.0e}");
        return s;
    }
    let decimals = if step.is_finite() && step > 0.0 {
        (-step.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        (2.0 - a.log10().floor()).clamp(0.0, 4.0) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Candidate tick steps, all dividing a UTC day (or whole days).
const TIME_STEPS: [i64; 22] = [
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    15 * SECOND,
    30 * SECOND,
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
    28 * DAY,
];

/// A time axis: tick positions (ms since the epoch) and how to label them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimeAxis {
    pub ticks: Vec<i64>,
    pub step: i64,
}

impl TimeAxis {
    /// Ticks at round UTC times in `lo..=hi`, at most about `max_ticks` of them.
    pub(crate) fn new(lo: i64, hi: i64, max_ticks: usize) -> TimeAxis {
        let span = (hi - lo).max(1);
        let max_ticks = max_ticks.max(2) as i64;
        let step = TIME_STEPS
            .iter()
            .copied()
            .find(|s| span / s <= max_ticks)
            .unwrap_or_else(|| {
                let days = span / DAY / max_ticks + 1;
                days * DAY
            });
        let first = lo.div_euclid(step) + i64::from(lo.rem_euclid(step) != 0);
        let last = hi.div_euclid(step);
        let ticks = (first..=last).map(|k| k * step).collect();
        TimeAxis { ticks, step }
    }

    /// `HH:MM` (or `HH:MM:SS`) within a day; the date at midnight and for day steps.
    pub(crate) fn label(&self, ms: i64) -> String {
        let Some(t) = DateTime::from_timestamp_millis(ms) else {
            return String::new();
        };
        if self.step >= DAY {
            t.format("%Y-%m-%d").to_string()
        } else if ms.rem_euclid(DAY) == 0 {
            t.format("%b %d").to_string()
        } else if self.step < MINUTE {
            t.format("%H:%M:%S").to_string()
        } else {
            t.format("%H:%M").to_string()
        }
    }
}

/// A UTC time for titles: `YYYY-MM-DD HH:MM` (with seconds when not on a minute).
pub(crate) fn fmt_time(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) if ms.rem_euclid(MINUTE) == 0 => t.format("%Y-%m-%d %H:%M").to_string(),
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn scale_choice() {
        assert_eq!(YScale::choose([1.0, 2.0, 3.0, 50.0]), YScale::Linear);
        assert_eq!(YScale::choose([1.0, 2.0, 3.0, 5000.0]), YScale::Log10);
        assert_eq!(
            YScale::choose([-1.0, 2.0, 3.0, 5000.0]),
            YScale::SymLog { c: 1.0 }
        );
        assert_eq!(YScale::choose([f64::NAN]), YScale::Linear);
        assert_eq!(YScale::choose([0.0, 0.0]), YScale::Linear);
    }

    #[test]
    fn transforms_invert() {
        for s in [YScale::Linear, YScale::Log10, YScale::SymLog { c: 0.1 }] {
            for v in [0.5, 3.0, 1234.5] {
                let back = s.inv(s.fwd(v));
                assert!(
                    (back - v).abs() < 1e-9 * v.abs().max(1.0),
                    "{s:?} {v} {back}"
                );
            }
        }
        let s = YScale::SymLog { c: 1.0 };
        assert!((s.inv(s.fwd(-250.0)) + 250.0).abs() < 1e-9);
        assert_eq!(s.fwd(0.0), 0.0);
    }

    #[test]
    fn value_ticks() {
        assert_eq!(
            linear_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let t = linear_ticks(-0.3, 0.3, 6);
        let want = [-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3];
        assert_eq!(t.len(), want.len(), "{t:?}");
        assert!(
            t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{t:?}"
        );
        let log = YScale::Log10;
        assert_eq!(log.ticks(-0.2, 3.3, 8), vec![0.0, 1.0, 2.0, 3.0]);
        let sym = YScale::SymLog { c: 1.0 };
        let (lo, hi) = sym.range(-5.0, 5000.0);
        let labels: Vec<String> = sym
            .ticks(lo, hi, 10)
            .iter()
            .map(|t| sym.label(*t, &[]))
            .collect();
        assert_eq!(labels, ["-10", "-1", "0", "1", "10", "100", "1000"]);
        assert_eq!(fmt_num(0.1 + 0.2, 0.1), "0.3");
        assert_eq!(fmt_num(2.5e6, f64::NAN), "2e6");
        assert_eq!(fmt_num(1000.0, f64::NAN), "1000");
    }

    #[test]
    fn time_ticks() {
        let lo = ms("2026-11-28T22:03:00Z");
        let hi = ms("2026-11-29T04:00:00Z");
        let axis = TimeAxis::new(lo, hi, 8);
        assert_eq!(axis.step, HOUR);
        let labels: Vec<String> = axis.ticks.iter().map(|t| axis.label(*t)).collect();
        assert_eq!(
            labels,
            ["23:00", "Nov 29", "01:00", "02:00", "03:00", "04:00"]
        );
        let week = TimeAxis::new(ms("2026-11-01T00:00:00Z"), ms("2026-11-15T00:00:00Z"), 8);
        assert_eq!(week.step, 2 * DAY);
        assert_eq!(week.label(week.ticks[0]), "2026-11-01");
        let short = TimeAxis::new(ms("2026-11-28T12:00:00Z"), ms("2026-11-28T12:01:00Z"), 8);
        assert_eq!(short.label(short.ticks[1]), "12:00:10");
        assert_eq!(fmt_time(ms("2026-11-28T12:00:00Z")), "2026-11-28 12:00");
    }
}
