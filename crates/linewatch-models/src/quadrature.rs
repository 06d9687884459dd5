//! Gauss-Legendre quadrature nodes and weights, computed here by Newton's method on the
//! Legendre polynomial (three-term recurrence), used for the line integral of the score.

use crate::error::{ModelError, Result};

/// Gauss-Legendre rule with `n` nodes on `[-1, 1]`: exact for polynomials of degree `2n - 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussLegendre {
    /// Nodes in increasing order.
    pub nodes: Vec<f64>,
    /// Positive weights summing to 2.
    pub weights: Vec<f64>,
}

/// Largest node count accepted (more is never needed for a smooth line integral).
pub const MAX_NODES: usize = 256;

/// `(P_n(x), P_n'(x))` by the recurrence `k P_k = (2k-1) x P_{k-1} - (k-1) P_{k-2}`.
fn legendre(n: usize, x: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let kf = k as f64;
        let p2 = ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf;
        p0 = p1;
        p1 = p2;
    }
    // P_n'(x) = n (x P_n - P_{n-1}) / (x^2 - 1); nodes are strictly inside (-1, 1).
    let dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
    (p1, dp)
}

impl GaussLegendre {
    /// The `n`-node rule on `[-1, 1]` (`1 <= n <= MAX_NODES`).
    pub fn new(n: usize) -> Result<Self> {
        if n == 0 || n > MAX_NODES {
            return Err(ModelError::InvalidConfig(format!(
                "quadrature nodes must be in 1..={MAX_NODES}, got {n}"
            )));
        }
        let mut nodes = vec![0.0; n];
        let mut weights = vec![0.0; n];
        let nf = n as f64;
        for i in 0..n.div_ceil(2) {
            // Tricomi's initial guess for the i-th largest root, then Newton.
            let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
            for _ in 0..100 {
                let (p, dp) = legendre(n, x);
                let dx = p / dp;
                x -= dx;
                if dx.abs() < 1e-16 {
                    break;
                }
            }
            let (_, dp) = legendre(n, x);
            let w = 2.0 / ((1.0 - x * x) * dp * dp);
            nodes[n - 1 - i] = x;
            nodes[i] = -x;
            weights[n - 1 - i] = w;
            weights[i] = w;
        }
        if n % 2 == 1 {
            // The middle node is exactly 0.
            nodes[n / 2] = 0.0;
        }
        Ok(Self { nodes, weights })
    }

    /// The same rule mapped to `[0, 1]`: `(t_q, w_q)` with `sum_q w_q f(t_q) ~ int_0^1 f`.
    pub fn unit_interval(&self) -> (Vec<f64>, Vec<f64>) {
        let t = self.nodes.iter().map(|x| 0.5 * (x + 1.0)).collect();
        let w = self.weights.iter().map(|w| 0.5 * w).collect();
        (t, w)
    }

    /// `int_a^b f(x) dx` by this rule.
    pub fn integrate(&self, a: f64, b: f64, f: impl Fn(f64) -> f64) -> f64 {
        let (h, m) = (0.5 * (b - a), 0.5 * (b + a));
        self.nodes
            .iter()
            .zip(&self.weights)
            .map(|(x, w)| w * f(m + h * x))
            .sum::<f64>()
            * h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_small_rules() {
        let g2 = GaussLegendre::new(2).unwrap();
        let r = 1.0 / 3f64.sqrt();
        assert!((g2.nodes[0] + r).abs() < 1e-15 && (g2.nodes[1] - r).abs() < 1e-15);
        assert!((g2.weights[0] - 1.0).abs() < 1e-15);
        let g3 = GaussLegendre::new(3).unwrap();
        let r = (0.6f64).sqrt();
        assert!((g3.nodes[0] + r).abs() < 1e-15 && g3.nodes[1] == 0.0);
        assert!((g3.weights[0] - 5.0 / 9.0).abs() < 1e-15);
        assert!((g3.weights[1] - 8.0 / 9.0).abs() < 1e-15);
        let g1 = GaussLegendre::new(1).unwrap();
        assert_eq!(g1.nodes, vec![0.0]);
        assert!((g1.weights[0] - 2.0).abs() < 1e-15);
        assert!(GaussLegendre::new(0).is_err());
        assert!(GaussLegendre::new(MAX_NODES + 1).is_err());
    }

    #[test]
    fn exact_for_degree_2n_minus_1() {
        for n in [1usize, 2, 3, 4, 5, 8, 16, 32, 64] {
            let g = GaussLegendre::new(n).unwrap();
            let wsum: f64 = g.weights.iter().sum();
            assert!((wsum - 2.0).abs() < 1e-13, "n={n} wsum={wsum}");
            assert!(g.nodes.windows(2).all(|w| w[0] < w[1]));
            assert!(g.weights.iter().all(|w| *w > 0.0));
            // int_{-1}^{1} x^k = 2/(k+1) for even k, 0 for odd k.
            for k in 0..(2 * n) {
                let exact = if k % 2 == 0 {
                    2.0 / (k as f64 + 1.0)
                } else {
                    0.0
                };
                let got = g.integrate(-1.0, 1.0, |x| x.powi(k as i32));
                assert!(
                    (got - exact).abs() < 1e-13,
                    "n={n} k={k} got={got} exact={exact}"
                );
            }
            // Not exact one degree higher (sanity: the rule is not trivially exact).
            let k = 2 * n;
            if n > 8 {
                continue;
            }
            let got = g.integrate(-1.0, 1.0, |x| x.powi(k as i32));
            assert!((got - 2.0 / (k as f64 + 1.0)).abs() > 1e-12, "n={n}");
        }
    }

    #[test]
    fn unit_interval_and_smooth_function() {
        let g = GaussLegendre::new(16).unwrap();
        let (t, w) = g.unit_interval();
        let got: f64 = t.iter().zip(&w).map(|(t, w)| w * t.exp()).sum();
        assert!((got - (1f64.exp() - 1.0)).abs() < 1e-14);
        assert!((g.integrate(0.0, std::f64::consts::PI, f64::sin) - 2.0).abs() < 1e-14);
    }
}
