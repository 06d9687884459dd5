//! Detection figures pooled over rows: precision, recall, F1, false and missed alarm rates,
//! and the area under the precision-recall curve of a ranking score.

use serde::Serialize;

/// Detection figures pooled over rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    /// TP / (TP + FP); None without alerts.
    pub precision: Option<f64>,
    /// TP / (TP + FN); None without anomalous rows.
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall.
    pub f1: Option<f64>,
    /// False alarm rate: FP / (FP + TN).
    pub far: Option<f64>,
    /// Missed alarm rate: FN / (FN + TP).
    pub mar: Option<f64>,
    /// Area under the precision-recall curve of the ranking score (average precision).
    pub pr_auc: Option<f64>,
    /// Alerted anomalous rows.
    pub tp: u64,
    /// Alerted normal rows.
    pub fp: u64,
    /// Quiet normal rows.
    pub tn: u64,
    /// Quiet anomalous rows.
    pub f_n: u64,
}

impl Metrics {
    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.tp + self.fp + self.tn + self.f_n
    }

    /// Alerted share of all rows counted, whatever their labels (None without rows).
    pub fn alerted_share(&self) -> Option<f64> {
        let n = self.rows();
        (n > 0).then(|| (self.tp + self.fp) as f64 / n as f64)
    }
}

/// Precision, recall, ... over (ranking score, alert, label) rows; a row without a score ranks
/// last.
pub fn metrics(rows: impl Iterator<Item = (Option<f64>, bool, bool)>) -> Metrics {
    let mut m = Metrics::default();
    let mut ranked: Vec<(f64, bool)> = Vec::new();
    for (score, alert, label) in rows {
        match (alert, label) {
            (true, true) => m.tp += 1,
            (true, false) => m.fp += 1,
            (false, false) => m.tn += 1,
            (false, true) => m.f_n += 1,
        }
        ranked.push((
            score.filter(|s| s.is_finite()).unwrap_or(f64::NEG_INFINITY),
            label,
        ));
    }
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    m.precision = ratio(m.tp, m.tp + m.fp);
    m.recall = ratio(m.tp, m.tp + m.f_n);
    m.f1 = match (m.precision, m.recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    m.far = ratio(m.fp, m.fp + m.tn);
    m.mar = ratio(m.f_n, m.f_n + m.tp);
    m.pr_auc = average_precision(&mut ranked);
    m
}

/// Average precision (area under the precision-recall step curve), ties grouped.
pub(super) fn average_precision(ranked: &mut [(f64, bool)]) -> Option<f64> {
    let positives = ranked.iter().filter(|r| r.1).count();
    if positives == 0 {
        return None;
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut seen, mut ap, mut i) = (0usize, 0usize, 0.0, 0usize);
    while i < ranked.len() {
        let mut j = i;
        let mut tp_here = 0;
        while j < ranked.len() && ranked[j].0 == ranked[i].0 {
            tp_here += usize::from(ranked[j].1);
            j += 1;
        }
        tp += tp_here;
        seen += j - i;
        ap += (tp_here as f64 / positives as f64) * (tp as f64 / seen as f64);
        i = j;
    }
    Some(ap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_hand_counts() {
        // scores, alert, label
        let rows = vec![
            (Some(0.9), true, true),
            (Some(0.8), true, false),
            (Some(0.7), false, true),
            (Some(0.1), false, false),
            (Some(0.2), false, false),
        ];
        let m = metrics(rows.into_iter());
        assert_eq!((m.tp, m.fp, m.tn, m.f_n), (1, 1, 2, 1));
        assert_eq!(m.precision, Some(0.5));
        assert_eq!(m.recall, Some(0.5));
        assert_eq!(m.far, Some(1.0 / 3.0));
        assert_eq!(m.mar, Some(0.5));
        assert_eq!(m.alerted_share(), Some(0.4));
        // ranking: + - + - - : AP = 0.5 * (1/1) + 0.5 * (2/3)
        let ap = m.pr_auc.unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn perfect_ranking_has_unit_average_precision() {
        let mut r = vec![(3.0, true), (2.0, true), (1.0, false)];
        assert_eq!(average_precision(&mut r), Some(1.0));
    }
}
