//! The ground truth the models benchmark measures against: Gaussian and mixture densities
//! with their exact scores, test functions for the isotonic models, and small linear algebra.

use linewatch_models::rng;

pub(super) fn names(d: usize) -> Vec<String> {
    (0..d).map(|j| format!("x{j}")).collect()
}

/// A Gaussian with mean `mu` and covariance `L L^T`, with its precision matrix.
pub(super) struct Gauss {
    /// Mean.
    pub(super) mu: Vec<f64>,
    /// Lower Cholesky factor of the covariance.
    pub(super) l: Vec<Vec<f64>>,
    /// Precision matrix (inverse covariance).
    pub(super) prec: Vec<Vec<f64>>,
}

impl Gauss {
    /// AR(1) correlation `rho` with per-feature scales.
    pub(super) fn ar1(mu: Vec<f64>, scale: &[f64], rho: f64) -> Self {
        let d = mu.len();
        let cov: Vec<Vec<f64>> = (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| scale[i] * scale[j] * rho.powi((i as i32 - j as i32).abs()))
                    .collect()
            })
            .collect();
        let l = cholesky(&cov);
        let prec = invert(&cov);
        Self { mu, l, prec }
    }

    pub(super) fn sample(&self, n: usize, r: &mut rand::rngs::StdRng) -> Vec<f64> {
        let d = self.mu.len();
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let e = rng::normals(r, d);
            for i in 0..d {
                out.push(self.mu[i] + (0..=i).map(|k| self.l[i][k] * e[k]).sum::<f64>());
            }
        }
        out
    }

    /// `-P (x - mu)`.
    pub(super) fn score(&self, x: &[f64]) -> Vec<f64> {
        let d = self.mu.len();
        (0..d)
            .map(|i| {
                -(0..d)
                    .map(|k| self.prec[i][k] * (x[k] - self.mu[k]))
                    .sum::<f64>()
            })
            .collect()
    }
}

pub(super) fn cholesky(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            l[i][j] = if i == j {
                s.max(0.0).sqrt()
            } else {
                s / l[j][j]
            };
        }
    }
    l
}

pub(super) fn invert(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.iter()
                .copied()
                .chain((0..n).map(|j| f64::from(u8::from(i == j))))
                .collect()
        })
        .collect();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&x, &y| m[x][c].abs().total_cmp(&m[y][c].abs()))
            .unwrap_or(c);
        m.swap(c, p);
        let pv = m[c][c];
        m[c].iter_mut().for_each(|v| *v /= pv);
        for r in 0..n {
            if r != c {
                let f = m[r][c];
                let row_c = m[c].clone();
                m[r].iter_mut().zip(&row_c).for_each(|(a, b)| *a -= f * b);
            }
        }
    }
    m.into_iter().map(|r| r[n..].to_vec()).collect()
}

pub(super) fn rel_fisher(est: &[f64], truth: &[f64]) -> f64 {
    let num: f64 = est.iter().zip(truth).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = truth.iter().map(|b| b * b).sum();
    num / den
}

/// The d = 8 Gaussian of the bench.
pub(super) fn gauss_d8() -> Gauss {
    let scale = [0.5, 1.0, 2.0, 5.0, 0.2, 1.0, 3.0, 10.0];
    let mu = vec![1.0, -2.0, 0.0, 10.0, 0.5, 3.0, -1.0, 50.0];
    Gauss::ar1(mu, &scale, 0.6)
}

/// Two-component mixture in d = 2: weights, Gaussians.
pub(super) fn mixture_d2() -> (Vec<f64>, Vec<Gauss>) {
    let mk = |mu: [f64; 2], cov: [[f64; 2]; 2]| {
        let c: Vec<Vec<f64>> = cov.iter().map(|r| r.to_vec()).collect();
        Gauss {
            mu: mu.to_vec(),
            l: cholesky(&c),
            prec: invert(&c),
        }
    };
    (
        vec![0.4, 0.6],
        vec![
            mk([-1.5, -1.0], [[0.6, 0.2], [0.2, 0.5]]),
            mk([1.5, 1.0], [[0.5, -0.15], [-0.15, 0.8]]),
        ],
    )
}

pub(super) fn mixture_sample(
    w: &[f64],
    comps: &[Gauss],
    n: usize,
    r: &mut rand::rngs::StdRng,
) -> Vec<f64> {
    use rand::Rng;
    let mut out = Vec::with_capacity(n * 2);
    for _ in 0..n {
        let k = usize::from(r.random::<f64>() >= w[0]);
        out.extend(comps[k].sample(1, r));
    }
    out
}

pub(super) fn mixture_score(w: &[f64], comps: &[Gauss], x: &[f64]) -> Vec<f64> {
    // Responsibilities from log densities (stable).
    let logs: Vec<f64> = comps
        .iter()
        .zip(w)
        .map(|(g, wk)| {
            let dx = [x[0] - g.mu[0], x[1] - g.mu[1]];
            let q: f64 = (0..2)
                .map(|a| (0..2).map(|b| dx[a] * g.prec[a][b] * dx[b]).sum::<f64>())
                .sum();
            let det_p = g.prec[0][0] * g.prec[1][1] - g.prec[0][1] * g.prec[1][0];
            wk.ln() + 0.5 * det_p.ln() - 0.5 * q
        })
        .collect();
    let m = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = logs.iter().map(|l| (l - m).exp()).sum();
    let mut s = [0.0, 0.0];
    for (g, l) in comps.iter().zip(&logs) {
        let rk = (l - m).exp() / z;
        let sk = g.score(x);
        s[0] += rk * sk[0];
        s[1] += rk * sk[1];
    }
    s.to_vec()
}

/// Smooth increasing test function on [0, 1].
pub(super) fn f1(x: f64) -> f64 {
    1.0 / (1.0 + (-8.0 * (x - 0.5)).exp()) + 0.3 * x
}

/// Increasing in x0, decreasing in x1, free in x2, x3 (inputs in [-1, 1]).
pub(super) fn f4(x: &[f64]) -> f64 {
    x[0] + (2.0 * x[0]).tanh() * 0.5 - (2.0 * x[1]).tanh()
        + (std::f64::consts::PI * x[2]).sin() * 0.7
        + 0.5 * x[3] * x[3]
}

pub(super) fn mse(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len() as f64
}

/// Linear least squares with intercept (normal equations).
pub(super) fn linear_fit(x: &[f64], y: &[f64], d: usize) -> Vec<f64> {
    let k = d + 1;
    let mut a = vec![vec![0.0; k]; k];
    let mut b = vec![0.0; k];
    for (row, yi) in x.chunks_exact(d).zip(y) {
        let v: Vec<f64> = std::iter::once(1.0).chain(row.iter().copied()).collect();
        for i in 0..k {
            b[i] += v[i] * yi;
            for j in 0..k {
                a[i][j] += v[i] * v[j];
            }
        }
    }
    let inv = invert(&a);
    (0..k)
        .map(|i| (0..k).map(|j| inv[i][j] * b[j]).sum())
        .collect()
}
