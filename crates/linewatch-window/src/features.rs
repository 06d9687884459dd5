//! Per-window, per-channel feature accumulation.
//!
//! Everything is accumulated in f64 with Welford-style updates (running means
//! and centred second moments), so long windows of large, nearly constant
//! values keep their precision. Time enters as seconds since the window start.

/// One feature of a channel; the batch has one column per (channel, stat). Written and read
/// (serde, [`std::str::FromStr`]) by its column-name suffix: `"mean"`, `"std"`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    /// Arithmetic mean.
    Mean,
    /// Population standard deviation (divides by n, so 0 for one reading).
    Std,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Value at the latest event time in the window; among readings with
    /// that same time, the one that arrived last.
    Last,
    /// Least-squares slope of value against time, in value units per second.
    /// Null when the window holds fewer than 2 distinct times.
    Slope,
    /// Number of values of the channel in the window.
    Count,
}

impl Stat {
    /// All stats, in column order.
    pub const ALL: [Stat; 7] = [
        Stat::Mean,
        Stat::Std,
        Stat::Min,
        Stat::Max,
        Stat::Last,
        Stat::Slope,
        Stat::Count,
    ];

    /// Whether the statistic has a density a score model can learn: every one but `Count`
    /// (a count lives on the integers, where a density and its score do not exist).
    pub fn is_continuous(self) -> bool {
        self != Stat::Count
    }

    /// The column-name suffix: `<channel>__<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::Std => "std",
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Last => "last",
            Stat::Slope => "slope",
            Stat::Count => "count",
        }
    }
}

impl std::str::FromStr for Stat {
    type Err = String;

    /// The statistic named by its column-name suffix (`"mean"`, ..., `"count"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stat::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Stat::ALL.iter().map(|st| st.name()).collect();
                format!("unknown statistic {s:?} (one of {names:?})")
            })
    }
}

/// Features of one channel over one window. Only exists for channels with at
/// least one value in the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelFeatures {
    /// Number of values.
    pub count: u32,
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Value at the latest event time (ties: last arrival).
    pub last: f64,
    /// Slope against time in seconds; `None` with fewer than 2 distinct times.
    pub slope: Option<f64>,
}

impl ChannelFeatures {
    /// The value of one stat (`None` only for an undefined slope).
    pub fn get(&self, stat: Stat) -> Option<f64> {
        match stat {
            Stat::Mean => Some(self.mean),
            Stat::Std => Some(self.std),
            Stat::Min => Some(self.min),
            Stat::Max => Some(self.max),
            Stat::Last => Some(self.last),
            Stat::Slope => self.slope,
            Stat::Count => Some(f64::from(self.count)),
        }
    }
}

/// Running state of one channel in one window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acc {
    n: u32,
    mean_t: f64,
    mean_v: f64,
    m2_t: f64,
    m2_v: f64,
    c_tv: f64,
    min: f64,
    max: f64,
    last: f64,
    last_ts: i64,
}

impl Acc {
    pub(crate) const EMPTY: Acc = Acc {
        n: 0,
        mean_t: 0.0,
        mean_v: 0.0,
        m2_t: 0.0,
        m2_v: 0.0,
        c_tv: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        last: 0.0,
        last_ts: i64::MIN,
    };

    /// Folds value `v` at event time `ts_ms`; `t_s` is seconds since the
    /// window start.
    #[inline]
    pub(crate) fn push(&mut self, t_s: f64, ts_ms: i64, v: f64) {
        self.n += 1;
        let inv_n = 1.0 / f64::from(self.n);
        let dt = t_s - self.mean_t;
        let dv = v - self.mean_v;
        self.mean_t += dt * inv_n;
        self.mean_v += dv * inv_n;
        let dv_after = v - self.mean_v;
        self.m2_t += dt * (t_s - self.mean_t);
        self.m2_v += dv * dv_after;
        self.c_tv += dt * dv_after;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if ts_ms >= self.last_ts {
            self.last_ts = ts_ms;
            self.last = v;
        }
    }

    pub(crate) fn finish(&self) -> Option<ChannelFeatures> {
        if self.n == 0 {
            return None;
        }
        let n = f64::from(self.n);
        let slope = if self.m2_t > 0.0 {
            Some(self.c_tv / self.m2_t)
        } else {
            None
        };
        Some(ChannelFeatures {
            count: self.n,
            mean: self.mean_v,
            std: (self.m2_v / n).max(0.0).sqrt(),
            min: self.min,
            max: self.max,
            last: self.last,
            slope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn hand_computed_values() {
        // values 1, 3, 2, 6 at t = 0, 1, 2, 3 s
        let mut a = Acc::EMPTY;
        for (i, v) in [1.0, 3.0, 2.0, 6.0].into_iter().enumerate() {
            a.push(i as f64, i as i64 * 1000, v);
        }
        let f = a.finish().unwrap();
        assert_eq!(f.count, 4);
        assert!(close(f.mean, 3.0));
        // population variance: (4 + 0 + 1 + 9) / 4 = 3.5
        assert!(close(f.std, 3.5f64.sqrt()));
        assert_eq!((f.min, f.max, f.last), (1.0, 6.0, 6.0));
        // slope: sum((t - 1.5)(v - 3)) / sum((t - 1.5)^2) = (3 + 0 - 0.5 + 4.5) / 5 = 1.4
        assert!(close(f.slope.unwrap(), 1.4));
    }

    #[test]
    fn one_value_and_equal_times() {
        let mut a = Acc::EMPTY;
        a.push(0.5, 500, 7.0);
        let f = a.finish().unwrap();
        assert_eq!(
            (f.count, f.mean, f.std, f.last, f.slope),
            (1, 7.0, 0.0, 7.0, None)
        );
        a.push(0.5, 500, 9.0);
        let f = a.finish().unwrap();
        assert_eq!(f.slope, None);
        assert_eq!(f.last, 9.0, "tie on time: last arrival wins");
        assert!(close(f.std, 1.0));
    }

    #[test]
    fn last_follows_event_time_not_arrival() {
        let mut a = Acc::EMPTY;
        a.push(2.0, 2000, 20.0);
        a.push(1.0, 1000, 10.0);
        assert_eq!(a.finish().unwrap().last, 20.0);
    }

    #[test]
    fn empty_is_none() {
        assert_eq!(Acc::EMPTY.finish(), None);
    }

    #[test]
    fn stable_for_large_offsets() {
        let mut a = Acc::EMPTY;
        let base = 1e9;
        for i in 0..10_000 {
            let v = base + if i % 2 == 0 { 0.001 } else { -0.001 };
            a.push(f64::from(i) * 0.001, i64::from(i), v);
        }
        let f = a.finish().unwrap();
        // the stored values are base +- d with d the f64 rounding of 0.001 at 1e9
        let d = (base + 0.001) - base;
        assert!((f.std - d).abs() < 1e-12, "{} vs {d}", f.std);
        assert!(f.slope.unwrap().abs() < 1e-6);
    }
}
