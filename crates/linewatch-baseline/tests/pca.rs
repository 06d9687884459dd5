//! Tests of the PCA monitor against hand-computed values, sampling properties of its limits,
//! input handling and serialization.

use linewatch_baseline::{BaselineError, PcaConfig, PcaMonitor, PcaScore, SpeLimitMethod};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

fn cfg(explained_variance: f64, confidence: f64) -> PcaConfig {
    PcaConfig {
        explained_variance,
        confidence,
    }
}

#[track_caller]
fn close(got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "got {got}, want {want} (± {tol})"
    );
}

/// Eight rows of two sensors: x1 = 10 + a, x2 = 20 + a + b with
/// a = (1,1,1,1,−1,−1,−1,−1), b = (1,1,−1,−1,1,1,−1,−1), a·b = 0.
///
/// By hand: means (10, 20); Σa² = 8, Σ(a+b)² = 16, so sample stds √(8/7), √(16/7);
/// correlation r = a·(a+b) / √(8·16) = 1/√2; eigenvalues 1 ± 1/√2 with eigenvectors
/// (1, 1)/√2 and (1, −1)/√2; the first holds (1 + 1/√2)/2 = 0.8536 of the variance.
fn two_sensor_rows() -> Vec<f64> {
    let a = [1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0];
    let b = [1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0];
    a.iter()
        .zip(&b)
        .flat_map(|(a, b)| [10.0 + a, 20.0 + a + b])
        .collect()
}

/// A raw row of the two-sensor example whose autoscaled values are (z1, z2).
fn raw(z1: f64, z2: f64) -> [f64; 2] {
    [
        10.0 + z1 * (8.0_f64 / 7.0).sqrt(),
        20.0 + z2 * (16.0_f64 / 7.0).sqrt(),
    ]
}

#[test]
fn hand_computed_two_sensor_example_with_one_component() {
    let m = PcaMonitor::fit(&two_sensor_rows(), 2, &cfg(0.85, 0.99)).unwrap();

    assert_eq!(m.dim(), 2);
    assert_eq!(m.n_train(), 8);
    close(m.mean()[0], 10.0, 1e-12);
    close(m.mean()[1], 20.0, 1e-12);
    close(m.std()[0], 1.0690449676496976, 1e-12); // √(8/7)
    close(m.std()[1], 1.5118578920369088, 1e-12); // √(16/7)
    assert!(m.constant_columns().is_empty());
    assert_eq!(m.imputed_in_fit(), &[0, 0]);

    close(m.eigenvalues()[0], 1.7071067811865475, 1e-12); // 1 + 1/√2
    close(m.eigenvalues()[1], 0.2928932188134524, 1e-12); // 1 − 1/√2
    assert_eq!(m.components(), 1); // 0.8536 ≥ 0.85
    close(m.explained(), 0.8535533905932737, 1e-12);
    let p = m.loadings();
    assert_eq!(p.len(), 2);
    close(p[0].abs(), std::f64::consts::FRAC_1_SQRT_2, 1e-12);
    close(p[1], p[0], 1e-12); // (1, 1)/√2 up to sign

    // 9/8 · F_{1,7}(0.99); F_{1,7}(0.99) = 12.246383348435076 (scipy.stats.f.ppf).
    close(m.t2_limit(), 13.77718126698946, 1e-8);
    // Jackson & Mudholkar with the single discarded eigenvalue λ = 1 − 1/√2: θ_i = λ^i,
    // h0 = 1/3, z_0.99 = 2.3263478740408408 (computed with scipy).
    assert_eq!(m.spe_limit_method(), SpeLimitMethod::JacksonMudholkar);
    close(m.spe_limit(), 1.928928280733918, 1e-8);

    let rows: Vec<f64> = [
        raw(1.0, 1.0),
        raw(1.0, -1.0),
        raw(2.0, 0.0),
        [f64::NAN, raw(0.0, 1.0)[1]],
        raw(3.0, -3.0),
        raw(4.0, 4.0),
    ]
    .concat();
    let s = m.score(&rows).unwrap();
    assert_eq!(s.len(), 6);
    // z = (1, 1): t = √2, T² = 2 / (1 + 1/√2) = 4 − 2√2; on the model line, SPE = 0.
    close(s[0].t2, 1.1715728752538097, 1e-12);
    close(s[0].spe, 0.0, 1e-12);
    // z = (1, −1): t = 0; residual (1, −1), SPE = 2.
    close(s[1].t2, 0.0, 1e-12);
    close(s[1].spe, 2.0, 1e-12);
    // z = (2, 0): t = √2, T² = 4 − 2√2; residual (1, −1), SPE = 2.
    close(s[2].t2, 1.1715728752538097, 1e-12);
    close(s[2].spe, 2.0, 1e-12);
    // z = (NaN → 0, 1): t = 1/√2, T² = 1/(2 + √2) = 1 − √2/2; residual (−1/2, 1/2), SPE = 1/2.
    close(s[3].t2, 0.2928932188134524, 1e-12);
    close(s[3].spe, 0.5, 1e-12);
    assert_eq!(s[3].imputed, 1);
    // Alarms: SPE 2 > 1.93 for the second and third rows.
    let alarms: Vec<bool> = s.iter().map(|x| x.alarm(&m)).collect();
    assert_eq!(alarms, [false, true, true, false, true, true]);
    assert!(
        s.iter()
            .enumerate()
            .all(|(i, x)| (x.imputed == 1) == (i == 3))
    );
    // z = (3, −3): SPE = 18 > 1.93, T² = 0.
    close(s[4].spe, 18.0, 1e-10);
    assert!(s[4].t2 < 1e-12);
    // z = (4, 4): T² = 32 / (1 + 1/√2) = 18.745 > 13.78, SPE = 0.
    close(s[5].t2, 18.745166004060955, 1e-10);
    assert!(s[5].spe < 1e-12);
}

#[test]
fn hand_computed_two_sensor_example_keeping_both_components() {
    // 0.8536 < 0.86: both components are kept, nothing is discarded.
    let m = PcaMonitor::fit(&two_sensor_rows(), 2, &cfg(0.86, 0.99)).unwrap();
    assert_eq!(m.components(), 2);
    close(m.explained(), 1.0, 1e-12);
    // 2·7·9/(8·6) · F_{2,6}(0.99); F_{2,6}(0.99) = 10.924766500838333 (scipy.stats.f.ppf).
    close(m.t2_limit(), 28.677512064700622, 1e-8);
    // No discarded variance: "0 + tiny" = 1e-9 × total variance (2).
    assert_eq!(m.spe_limit_method(), SpeLimitMethod::NoResidual);
    close(m.spe_limit(), 2e-9, 1e-20);

    let s = m.score(&[raw(1.0, -1.0), raw(1.0, 1.0)].concat()).unwrap();
    // z = (1, −1): t2 = √2 on the second component, T² = 2 / (1 − 1/√2) = 4 + 2√2.
    close(s[0].t2, 6.828427124746189, 1e-10);
    // z = (1, 1): T² = 4 − 2√2 as before.
    close(s[1].t2, 1.1715728752538097, 1e-12);
    assert!(s.iter().all(|x| x.spe < 1e-20 && !x.alarm(&m)));
}

/// Rows of x = offset + scale ⊙ (A f + noise), f ~ N(0, I₂), noise_j ~ N(0, σ_j²): a known
/// 6-D Gaussian with two strong factors and unequal residual variances.
fn gaussian_rows(rng: &mut StdRng, n: usize) -> Vec<f64> {
    const A: [[f64; 2]; 6] = [
        [1.0, 0.2],
        [0.9, -0.3],
        [0.8, 0.5],
        [0.1, 1.0],
        [-0.4, 0.9],
        [0.5, -0.8],
    ];
    const SIGMA: [f64; 6] = [0.15, 0.25, 0.35, 0.2, 0.3, 0.4];
    const OFFSET: [f64; 6] = [100.0, -5.0, 0.0, 20.0, 3.5, 1000.0];
    const SCALE: [f64; 6] = [1.0, 10.0, 0.01, 2.0, 0.5, 100.0];
    let mut out = Vec::with_capacity(n * 6);
    for _ in 0..n {
        let f: [f64; 2] = [rng.sample(StandardNormal), rng.sample(StandardNormal)];
        for j in 0..6 {
            let e: f64 = rng.sample(StandardNormal);
            let x = A[j][0] * f[0] + A[j][1] * f[1] + SIGMA[j] * e;
            out.push(OFFSET[j] + SCALE[j] * x);
        }
    }
    out
}

#[test]
fn false_alarm_rates_on_fresh_gaussian_rows_match_the_confidence() {
    let mut rng = StdRng::seed_from_u64(20240611);
    let train = gaussian_rows(&mut rng, 5_000);
    let fresh = gaussian_rows(&mut rng, 20_000);
    // Binomial sd of a rate over 20,000 rows: 0.0007 at p = 0.01, 0.0015 at p = 0.05; the
    // bounds also leave room for the estimation error of 5,000 training rows.
    for (confidence, bound) in [(0.99, 0.005), (0.95, 0.01)] {
        let m = PcaMonitor::fit(&train, 6, &cfg(0.90, confidence)).unwrap();
        assert_eq!(m.components(), 2, "eigenvalues {:?}", m.eigenvalues());
        assert_eq!(m.spe_limit_method(), SpeLimitMethod::JacksonMudholkar);
        let s = m.score(&fresh).unwrap();
        let rate = |f: fn(&PcaScore) -> f64, limit: f64| {
            s.iter().filter(|x| f(x) > limit).count() as f64 / s.len() as f64
        };
        let t2_rate = rate(|x| x.t2, m.t2_limit());
        let spe_rate = rate(|x| x.spe, m.spe_limit());
        let expected = 1.0 - confidence;
        assert!(
            (t2_rate - expected).abs() <= bound,
            "confidence {confidence}: T² rate {t2_rate}, limit {}",
            m.t2_limit()
        );
        assert!(
            (spe_rate - expected).abs() <= bound,
            "confidence {confidence}: SPE rate {spe_rate}, limit {}",
            m.spe_limit()
        );
        let alarms = s.iter().filter(|x| x.alarm(&m)).count() as f64 / s.len() as f64;
        assert!(alarms >= t2_rate.max(spe_rate) && alarms <= t2_rate + spe_rate);
    }
}

#[test]
fn t2_limit_is_exact_for_small_training_sets_when_all_components_are_kept() {
    // With k = d, T² is Hotelling's T² of a new observation with the sample mean and
    // covariance, whose limit k(n−1)(n+1)/(n(n−k)) F is exact. n = 10, d = 3: the limit is
    // 35.87, where the large-sample χ²₃(0.99) = 11.34 would give a rate near 0.08.
    let mut rng = StdRng::seed_from_u64(7);
    let (d, n_train, n_fresh, sets) = (3, 10, 50, 2_000);
    let mut exceed = 0_usize;
    for _ in 0..sets {
        let draw = |rng: &mut StdRng, n: usize| -> Vec<f64> {
            (0..n)
                .flat_map(|_| {
                    let u: [f64; 3] = [
                        rng.sample(StandardNormal),
                        rng.sample(StandardNormal),
                        rng.sample(StandardNormal),
                    ];
                    [u[0], 0.8 * u[0] + 0.6 * u[1], 5.0 + 2.0 * u[2] - u[0]]
                })
                .collect()
        };
        let train = draw(&mut rng, n_train);
        let m = PcaMonitor::fit(&train, d, &cfg(0.999_999, 0.99)).unwrap();
        assert_eq!(m.components(), 3);
        // 3·9·11/(10·7) · F_{3,7}(0.99), F_{3,7}(0.99) = 8.451285053079983 (scipy.stats.f.ppf)
        close(m.t2_limit(), 35.85759515378221, 1e-8);
        let s = m.score(&draw(&mut rng, n_fresh)).unwrap();
        exceed += s.iter().filter(|x| x.t2 > m.t2_limit()).count();
    }
    let rate = exceed as f64 / (sets * n_fresh) as f64;
    assert!((rate - 0.01).abs() <= 0.003, "T² rate {rate}");
}

#[test]
fn nan_cells_in_training_are_imputed_with_the_column_mean() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut rows = gaussian_rows(&mut rng, 200);
    for (i, j) in [(0, 1), (5, 1), (17, 4), (199, 0)] {
        rows[i * 6 + j] = f64::NAN;
    }
    let m = PcaMonitor::fit(&rows, 6, &PcaConfig::default()).unwrap();
    assert_eq!(m.imputed_in_fit(), &[1, 2, 0, 0, 1, 0]);

    // The same fit as on the rows with the NaN replaced by hand.
    let mut filled = rows.clone();
    for j in 0..6 {
        let finite: Vec<f64> = rows
            .iter()
            .skip(j)
            .step_by(6)
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        let mean = finite.iter().sum::<f64>() / finite.len() as f64;
        close(m.mean()[j], mean, 1e-9 * mean.abs().max(1.0));
        for x in filled.iter_mut().skip(j).step_by(6) {
            if x.is_nan() {
                *x = mean;
            }
        }
    }
    let by_hand = PcaMonitor::fit(&filled, 6, &PcaConfig::default()).unwrap();
    assert_eq!(by_hand.imputed_in_fit(), &[0; 6]);
    assert_eq!(m.components(), by_hand.components());
    for (a, b) in m.eigenvalues().iter().zip(by_hand.eigenvalues()) {
        close(*a, *b, 1e-9);
    }
    close(m.t2_limit(), by_hand.t2_limit(), 1e-9);
    close(m.spe_limit(), by_hand.spe_limit(), 1e-9);

    // A column with no finite value is named.
    let mut empty = two_sensor_rows();
    for x in empty.iter_mut().skip(1).step_by(2) {
        *x = f64::NAN;
    }
    assert_eq!(
        PcaMonitor::fit(&empty, 2, &PcaConfig::default()).unwrap_err(),
        BaselineError::EmptyColumn { column: 1 }
    );
}

#[test]
fn nan_cells_when_scoring_sit_at_the_training_mean_and_are_counted() {
    let m = PcaMonitor::fit(&two_sensor_rows(), 2, &cfg(0.85, 0.99)).unwrap();
    let s = m
        .score(&[f64::NAN, f64::NAN, 10.0, 20.0, f64::NAN, 20.0])
        .unwrap();
    assert_eq!(s.iter().map(|x| x.imputed).collect::<Vec<_>>(), [2, 0, 1]);
    // Every row is at the training mean: z = 0.
    for x in &s {
        close(x.t2, 0.0, 1e-12);
        close(x.spe, 0.0, 1e-12);
    }
}

#[test]
fn infinite_cells_are_rejected_with_their_row_and_column() {
    let mut rows = two_sensor_rows();
    rows[2 * 2 + 1] = f64::INFINITY;
    assert_eq!(
        PcaMonitor::fit(&rows, 2, &PcaConfig::default()).unwrap_err(),
        BaselineError::InvalidInput {
            row: 2,
            column: 1,
            value: f64::INFINITY
        }
    );
    let m = PcaMonitor::fit(&two_sensor_rows(), 2, &PcaConfig::default()).unwrap();
    assert_eq!(
        m.score(&[10.0, 20.0, f64::NEG_INFINITY, f64::NAN])
            .unwrap_err(),
        BaselineError::InvalidInput {
            row: 1,
            column: 0,
            value: f64::NEG_INFINITY
        }
    );
}

#[test]
fn bad_config_is_rejected() {
    assert!(PcaConfig::default().validate().is_ok());
    assert_eq!(PcaConfig::default(), cfg(0.90, 0.99));
    for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
        match cfg(bad, 0.99).validate() {
            Err(BaselineError::InvalidConfig { field, .. }) => {
                assert_eq!(field, "explained_variance")
            }
            other => panic!("explained_variance {bad}: {other:?}"),
        }
        match cfg(0.9, bad).validate() {
            Err(BaselineError::InvalidConfig { field, .. }) => assert_eq!(field, "confidence"),
            other => panic!("confidence {bad}: {other:?}"),
        }
        assert!(matches!(
            PcaMonitor::fit(&two_sensor_rows(), 2, &cfg(0.9, bad)),
            Err(BaselineError::InvalidConfig { .. })
        ));
    }
}

#[test]
fn too_few_rows_and_bad_shapes_are_rejected() {
    let rows = two_sensor_rows();
    // d = 2 needs 4 rows.
    assert_eq!(
        PcaMonitor::fit(&rows[..6], 2, &PcaConfig::default()).unwrap_err(),
        BaselineError::InsufficientData {
            rows: 3,
            d: 2,
            needed: 4
        }
    );
    assert!(PcaMonitor::fit(&rows[..8], 2, &PcaConfig::default()).is_ok());
    // d = 1 needs 3 rows.
    assert_eq!(
        PcaMonitor::fit(&[1.0, 2.0], 1, &PcaConfig::default()).unwrap_err(),
        BaselineError::InsufficientData {
            rows: 2,
            d: 1,
            needed: 3
        }
    );
    assert_eq!(
        PcaMonitor::fit(&rows[..7], 2, &PcaConfig::default()).unwrap_err(),
        BaselineError::BadShape { len: 7, d: 2 }
    );
    assert_eq!(
        PcaMonitor::fit(&rows, 0, &PcaConfig::default()).unwrap_err(),
        BaselineError::BadShape { len: 16, d: 0 }
    );
    let m = PcaMonitor::fit(&rows, 2, &PcaConfig::default()).unwrap();
    assert_eq!(
        m.score(&[1.0, 2.0, 3.0]).unwrap_err(),
        BaselineError::BadShape { len: 3, d: 2 }
    );
    assert!(m.score(&[]).unwrap().is_empty());
}

#[test]
fn constant_columns_are_reported_and_changes_in_them_show_in_spe() {
    // The two-sensor example with a third, constant sensor at 7.5.
    let rows: Vec<f64> = two_sensor_rows()
        .chunks(2)
        .flat_map(|r| [r[0], 7.5, r[1]])
        .collect();
    let m = PcaMonitor::fit(&rows, 3, &cfg(0.85, 0.99)).unwrap();
    assert_eq!(m.constant_columns(), &[1]);
    assert_eq!(m.std()[1], 1.0);
    // Same spectrum as without the constant column, plus a zero.
    close(m.eigenvalues()[0], 1.7071067811865475, 1e-12);
    close(m.eigenvalues()[1], 0.2928932188134524, 1e-12);
    assert_eq!(m.eigenvalues()[2], 0.0);
    assert_eq!(m.components(), 1);
    let [x1, x2] = raw(1.0, 1.0);
    let s = m.score(&[x1, 7.5, x2, x1, 9.5, x2]).unwrap();
    close(s[0].spe, 0.0, 1e-12);
    close(s[1].spe, 4.0, 1e-12); // (9.5 − 7.5)² in raw units
    close(s[1].t2, s[0].t2, 1e-12);

    let all_constant = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0];
    assert!(matches!(
        PcaMonitor::fit(&all_constant, 2, &PcaConfig::default()),
        Err(BaselineError::Degenerate(_))
    ));
}

#[test]
fn serde_round_trip_gives_identical_scores() {
    let mut rng = StdRng::seed_from_u64(11);
    let m = PcaMonitor::fit(&gaussian_rows(&mut rng, 1_000), 6, &PcaConfig::default()).unwrap();
    let json = serde_json::to_string(&m).unwrap();
    let back: PcaMonitor = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
    let mut fresh = gaussian_rows(&mut rng, 500);
    fresh[7] = f64::NAN;
    let (a, b) = (m.score(&fresh).unwrap(), back.score(&fresh).unwrap());
    assert_eq!(a.len(), 500);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.t2.to_bits(), y.t2.to_bits());
        assert_eq!(x.spe.to_bits(), y.spe.to_bits());
        assert_eq!(x.imputed, y.imputed);
    }
    assert_eq!(back.t2_limit().to_bits(), m.t2_limit().to_bits());
    assert_eq!(back.spe_limit().to_bits(), m.spe_limit().to_bits());

    // A stored monitor whose parts do not fit together is refused when loading.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["loadings"].as_array_mut().unwrap().pop();
    assert!(serde_json::from_value::<PcaMonitor>(v).is_err());
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["k"] = serde_json::json!(0);
    assert!(serde_json::from_value::<PcaMonitor>(v).is_err());

    // The config reads from a table with defaults and no unknown keys.
    let c: PcaConfig = serde_json::from_str(r#"{"confidence": 0.95}"#).unwrap();
    assert_eq!(c, cfg(0.90, 0.95));
    assert!(serde_json::from_str::<PcaConfig>(r#"{"confidnce": 0.95}"#).is_err());
}
