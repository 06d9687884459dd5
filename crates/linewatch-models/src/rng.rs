//! Seeded random numbers (reproducible runs): `StdRng` plus Box-Muller normals.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A reproducible generator for the given seed.
pub fn seeded(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// One standard normal draw (Box-Muller; the second value is discarded for simplicity).
pub fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // u1 in (0, 1] so that ln(u1) is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// `n` standard normal draws.
pub fn normals<R: Rng + ?Sized>(rng: &mut R, n: usize) -> Vec<f64> {
    (0..n).map(|_| normal(rng)).collect()
}

/// A uniformly random permutation of `0..n` (Fisher-Yates).
pub fn permutation<R: Rng + ?Sized>(rng: &mut R, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}
