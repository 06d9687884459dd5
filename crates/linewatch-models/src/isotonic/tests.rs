use super::*;
use crate::mlp::{Init, MlpConfig};
use crate::rng;
use crate::train::TrainConfig;
use rand::Rng;

#[test]
fn binary_monotone_fit_is_monotone_and_sensible() {
    // P(defect) = sigmoid(3 x0 - 2 x1 + sin(2 x2)): increasing in x0, decreasing in x1.
    let (n, d) = (1200, 3);
    let mut r = rng::seeded(4);
    let x = rng::normals(&mut r, n * d);
    let prob =
        |row: &[f64]| 1.0 / (1.0 + (-(3.0 * row[0] - 2.0 * row[1] + (2.0 * row[2]).sin())).exp());
    let y: Vec<f64> = x
        .chunks_exact(d)
        .map(|row| {
            if r.random::<f64>() < prob(row) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let names: Vec<String> = ["score", "wear", "hours"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cfg = IsotonicConfig {
        monotone: vec![Monotone::Increasing, Monotone::Decreasing, Monotone::Free],
        hidden: vec![16, 16],
        train: TrainConfig {
            max_epochs: 40,
            batch_size: 128,
            lr: 5e-3,
            ..Default::default()
        },
        ..Default::default()
    };
    let (m, _rep) = IsotonicModel::train(&x, &y, &names, &cfg, &Device::Cpu).unwrap();
    let test = rng::normals(&mut r, 500 * d);
    let chk = m.check_monotonicity(&test, 0.0).unwrap();
    assert!(chk.wrong_sign_rate < 0.02, "{chk:?}");
    assert_eq!(chk.per_feature.len(), 2);
    let pred = m.predict(&test).unwrap();
    assert!(pred.iter().all(|p| (0.0..=1.0).contains(p)));
    let mae: f64 = test
        .chunks_exact(d)
        .zip(&pred)
        .map(|(row, p)| (prob(row) - p).abs())
        .sum::<f64>()
        / 500.0;
    assert!(mae < 0.12, "mean absolute error of the probability {mae}");
    // Missing inputs are imputed and predictions stay finite; far inputs are clamped.
    let odd = [f64::NAN, 1e9, -1e9];
    assert!(m.predict(&odd).unwrap()[0].is_finite());
}

#[test]
fn penalty_gradient_matches_finite_differences() {
    // The PDIR loss (with the max(0, -dg/dz) penalty) differentiated by backprop through
    // the tangents agrees with central differences over the weights (f64).
    let d = 2;
    let cfg = MlpConfig {
        input_dim: d,
        hidden: vec![4, 3],
        output_dim: 1,
        p: 2,
        init: Init::default(),
    };
    let net = Mlp::new(&cfg, 3, DType::F64, &Device::Cpu).unwrap();
    let mut r = rng::seeded(2);
    let xs = rng::normals(&mut r, 10 * d);
    let x = Tensor::from_slice(&xs, (10, d), &Device::Cpu).unwrap();
    let v = constraint_dirs(
        &[Monotone::Increasing, Monotone::Decreasing],
        DType::F64,
        &Device::Cpu,
    )
    .unwrap()
    .unwrap();
    let lossf = |m: &Mlp| -> Tensor {
        let (g, t) = m.jvp(&x, Directions::Shared(&v)).unwrap();
        let pen = t
            .neg()
            .unwrap()
            .relu()
            .unwrap()
            .sum(0)
            .unwrap()
            .mean_all()
            .unwrap();
        (softplus(&g).unwrap().mean_all().unwrap() + (pen * 3.0).unwrap()).unwrap()
    };
    let (tnet, vars) = net.trainable().unwrap();
    let grads = lossf(&tnet).backward().unwrap();
    for (vi, var) in vars.iter().enumerate() {
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for e in 0..base.len() {
            let eval = |delta: f64| {
                let mut b = base.clone();
                b[e] += delta;
                let mut ws = net.weights();
                let t = Tensor::from_vec(b, var.as_tensor().shape(), &Device::Cpu).unwrap();
                if vi % 2 == 0 {
                    ws[vi / 2].0 = t
                } else {
                    ws[vi / 2].1 = t
                }
                lossf(&Mlp::from_weights(&cfg, ws).unwrap())
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let fd = (eval(1e-6) - eval(-1e-6)) / 2e-6;
            assert!(
                (fd - g[e]).abs() < 1e-6 * (1.0 + fd.abs()),
                "var {vi} elem {e}: {fd} vs {}",
                g[e]
            );
        }
    }
}

#[test]
fn rejects_bad_labels_and_config() {
    let names = vec!["a".to_string()];
    let x = vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
    let cfg = IsotonicConfig::default();
    assert!(IsotonicModel::train(&x, &[0.0; 7], &names, &cfg, &Device::Cpu).is_err());
    assert!(IsotonicModel::train(&x, &[2.0; 8], &names, &cfg, &Device::Cpu).is_err());
    assert!(IsotonicModel::train(&x, &[f64::NAN; 8], &names, &cfg, &Device::Cpu).is_err());
    let bad = IsotonicConfig {
        monotone: vec![],
        ..Default::default()
    };
    assert!(matches!(
        IsotonicModel::train(&x, &[0.0; 8], &names, &bad, &Device::Cpu),
        Err(ModelError::InvalidConfig(_))
    ));
}
