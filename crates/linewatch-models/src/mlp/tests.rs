use super::*;

fn cpu() -> Device {
    Device::Cpu
}

fn rand_input(n: usize, d: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut r = rng::seeded(seed);
    rng::normals(&mut r, n * d)
        .into_iter()
        .map(|v| v * scale)
        .collect()
}

/// A random net with random (non-zero) biases, so that the finite-difference check also
/// covers bias paths and inputs away from the origin.
fn random_net(cfg: &MlpConfig, seed: u64) -> Mlp {
    let net = Mlp::new(cfg, seed, DType::F64, &cpu()).unwrap();
    let mut r = rng::seeded(seed + 1000);
    let weights = net
        .weights()
        .into_iter()
        .map(|(w, b)| {
            let o = b.dim(0).unwrap();
            let bv: Vec<f64> = rng::normals(&mut r, o)
                .into_iter()
                .map(|v| 0.3 * v)
                .collect();
            (w, Tensor::from_vec(bv, o, &cpu()).unwrap())
        })
        .collect();
    Mlp::from_weights(cfg, weights).unwrap()
}

fn fd_jacobian(net: &Mlp, x: &[f64], d: usize, eps: f64) -> Vec<Vec<f64>> {
    // Returns J[j][a] for a single row x.
    let f = |xv: &[f64]| -> Vec<f64> {
        let t = Tensor::from_slice(xv, (1, d), &cpu()).unwrap();
        net.forward(&t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    };
    let out = net.config().output_dim;
    let mut j = vec![vec![0.0; d]; out];
    for a in 0..d {
        let mut xp = x.to_vec();
        let mut xm = x.to_vec();
        xp[a] += eps;
        xm[a] -= eps;
        let (fp, fm) = (f(&xp), f(&xm));
        for jj in 0..out {
            j[jj][a] = (fp[jj] - fm[jj]) / (2.0 * eps);
        }
    }
    j
}

#[test]
fn jacobian_and_jvp_match_finite_differences() {
    for p in [2u32, 3] {
        for (seed, hidden) in [
            (1u64, vec![7, 5]),
            (2, vec![6]),
            (3, vec![5, 4, 6]),
            (4, vec![]),
        ] {
            let (d, out) = (4, 3);
            let cfg = MlpConfig {
                input_dim: d,
                hidden,
                output_dim: out,
                p,
                init: Init::default(),
            };
            let net = random_net(&cfg, seed);
            let n = 6;
            let xs = rand_input(n, d, seed + 7, 1.0);
            let x = Tensor::from_slice(&xs, (n, d), &cpu()).unwrap();
            let (y, jac) = net.jacobian(&x).unwrap();
            let y2 = net.forward(&x).unwrap();
            let dy = (&y - &y2)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(dy < 1e-12);
            let jac = jac.to_vec3::<f64>().unwrap();
            // Random directions, per row and shared.
            let k = 3;
            let vs = rand_input(k * n, d, seed + 11, 1.0);
            let v = Tensor::from_slice(&vs, (k, n, d), &cpu()).unwrap();
            let (_, jv) = net.jvp(&x, Directions::PerRow(&v)).unwrap();
            let jv = jv.to_vec3::<f64>().unwrap();
            let vsh = Tensor::from_slice(&vs[..k * d], (k, d), &cpu()).unwrap();
            let (_, jvs) = net.jvp(&x, Directions::Shared(&vsh)).unwrap();
            let jvs = jvs.to_vec3::<f64>().unwrap();
            for i in 0..n {
                let fd = fd_jacobian(&net, &xs[i * d..(i + 1) * d], d, 1e-5);
                for j in 0..out {
                    for a in 0..d {
                        let (e, g) = (fd[j][a], jac[i][j][a]);
                        assert!(
                            (e - g).abs() <= 1e-6 * (1.0 + e.abs()),
                            "p={p} J[{i}][{j}][{a}] fd={e} fwd={g}"
                        );
                    }
                    for kk in 0..k {
                        let want: f64 = (0..d).map(|a| fd[j][a] * vs[(kk * n + i) * d + a]).sum();
                        let got = jv[kk][i][j];
                        assert!((want - got).abs() <= 1e-6 * (1.0 + want.abs()), "jvp p={p}");
                        let want: f64 = (0..d).map(|a| fd[j][a] * vs[kk * d + a]).sum();
                        let got = jvs[kk][i][j];
                        assert!(
                            (want - got).abs() <= 1e-6 * (1.0 + want.abs()),
                            "shared jvp p={p}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn trace_and_diagonal_match_jacobian() {
    for p in [2u32, 3] {
        for hidden in [vec![8, 6], vec![5], vec![]] {
            let d = 5;
            let cfg = MlpConfig {
                input_dim: d,
                hidden,
                output_dim: d,
                p,
                init: Init::default(),
            };
            let net = random_net(&cfg, 9);
            let xs = rand_input(7, d, 3, 1.0);
            let x = Tensor::from_slice(&xs, (7, d), &cpu()).unwrap();
            let (y1, tr) = net.value_and_trace(&x).unwrap();
            let (y2, jac) = net.jacobian(&x).unwrap();
            let jac = jac.to_vec3::<f64>().unwrap();
            let tr = tr.to_vec1::<f64>().unwrap();
            let (_, diag) = net.value_and_diag(&x).unwrap();
            let diag = diag.to_vec2::<f64>().unwrap();
            for i in 0..7 {
                let want: f64 = (0..d).map(|a| jac[i][a][a]).sum();
                assert!((want - tr[i]).abs() < 1e-12 * (1.0 + want.abs()));
                for a in 0..d {
                    let j = jac[i][a][a];
                    assert!((j - diag[a][i]).abs() < 1e-12 * (1.0 + j.abs()));
                }
            }
            assert_eq!(y1.to_vec2::<f64>().unwrap(), y2.to_vec2::<f64>().unwrap());
        }
    }
}

#[test]
fn closed_form_hand_set_network() {
    // y = 0.5 * sigma_p(x1 + 2 x2 - 1) - sigma_p(-x1 + 1) + 0.25 ; 2 -> 2 hidden -> 1.
    for p in [2u32, 3] {
        let cfg = MlpConfig {
            input_dim: 2,
            hidden: vec![2],
            output_dim: 1,
            p,
            init: Init::default(),
        };
        let w1 = Tensor::new(&[[1.0f64, 2.0], [-1.0, 0.0]], &cpu()).unwrap();
        let b1 = Tensor::new(&[-1.0f64, 1.0], &cpu()).unwrap();
        let w2 = Tensor::new(&[[0.5f64, -1.0]], &cpu()).unwrap();
        let b2 = Tensor::new(&[0.25f64], &cpu()).unwrap();
        let net = Mlp::from_weights(&cfg, vec![(w1, b1), (w2, b2)]).unwrap();
        let pts = [[1.0, 1.0], [0.5, -0.2], [2.0, 0.3], [-1.0, 2.0]];
        let flat: Vec<f64> = pts.iter().flatten().copied().collect();
        let x = Tensor::from_slice(&flat, (4, 2), &cpu()).unwrap();
        let (y, jac) = net.jacobian(&x).unwrap();
        let y = y.to_vec2::<f64>().unwrap();
        let jac = jac.to_vec3::<f64>().unwrap();
        let pf = p as f64;
        let s = |u: f64| u.max(0.0).powi(p as i32);
        let ds = |u: f64| pf * u.max(0.0).powi(p as i32 - 1);
        for (i, [x1, x2]) in pts.iter().enumerate() {
            let (u1, u2) = (x1 + 2.0 * x2 - 1.0, -x1 + 1.0);
            let want = 0.5 * s(u1) - s(u2) + 0.25;
            let dx1 = 0.5 * ds(u1) + ds(u2);
            let dx2 = 0.5 * ds(u1) * 2.0;
            assert!((y[i][0] - want).abs() < 1e-14, "p={p} i={i}");
            assert!((jac[i][0][0] - dx1).abs() < 1e-14, "p={p} i={i}");
            assert!((jac[i][0][1] - dx2).abs() < 1e-14, "p={p} i={i}");
        }
    }
}

#[test]
fn backprop_through_tangents_matches_finite_differences() {
    // Loss with input derivatives (the ISM objective): L(theta) = mean_i 0.5|s|^2 + tr(ds/dx).
    // Its gradient w.r.t. the weights by first-order backprop must match central
    // differences of L over the weights.
    for p in [2u32, 3] {
        let d = 3;
        let cfg = MlpConfig {
            input_dim: d,
            hidden: vec![5, 4],
            output_dim: d,
            p,
            init: Init::default(),
        };
        let net = random_net(&cfg, 21);
        let xs = rand_input(8, d, 5, 1.0);
        let x = Tensor::from_slice(&xs, (8, d), &cpu()).unwrap();
        let loss_of = |net: &Mlp| -> Tensor {
            let (y, tr) = net.value_and_trace(&x).unwrap();
            ((y.sqr().unwrap().sum(1).unwrap() * 0.5).unwrap() + tr)
                .unwrap()
                .mean_all()
                .unwrap()
        };
        // Also a JVP-based loss with per-row directions (sliced form).
        let vs = rand_input(2 * 8 * d, 1, 77, 1.0);
        let v = Tensor::from_slice(&vs, (2, 8, d), &cpu()).unwrap();
        let sliced_of = |net: &Mlp| -> Tensor {
            let (y, t) = net.jvp(&x, Directions::PerRow(&v)).unwrap();
            let vjv = (&t * &v).unwrap().sum(2).unwrap().mean(0).unwrap();
            ((y.sqr().unwrap().sum(1).unwrap() * 0.5).unwrap() + vjv)
                .unwrap()
                .mean_all()
                .unwrap()
        };
        for lossf in [&loss_of as &dyn Fn(&Mlp) -> Tensor, &sliced_of] {
            let (tnet, vars) = net.trainable().unwrap();
            let loss = lossf(&tnet);
            let grads = loss.backward().unwrap();
            let mut checked = 0;
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
                    let h = 1e-6;
                    let eval = |delta: f64| -> f64 {
                        let mut b = base.clone();
                        b[e] += delta;
                        let mut ws = net.weights();
                        let t = Tensor::from_vec(b, var.as_tensor().shape(), &cpu()).unwrap();
                        if vi % 2 == 0 {
                            ws[vi / 2].0 = t;
                        } else {
                            ws[vi / 2].1 = t;
                        }
                        let m = Mlp::from_weights(&cfg, ws).unwrap();
                        lossf(&m).to_scalar::<f64>().unwrap()
                    };
                    let fd = (eval(h) - eval(-h)) / (2.0 * h);
                    assert!(
                        (fd - g[e]).abs() <= 1e-6 * (1.0 + fd.abs()),
                        "p={p} var {vi} elem {e}: fd {fd} backprop {}",
                        g[e]
                    );
                    checked += 1;
                }
            }
            assert_eq!(checked, cfg.n_params());
        }
    }
}

/// Per layer: the median over rows of the per-row mean-square pre-activation, and of the
/// per-row mean over units of the squared input-gradient norm of a pre-activation.
fn layer_moments(net: &Mlp, x: &Tensor) -> Vec<(f64, f64, f64)> {
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (n, d) = x.dims2().unwrap();
    let eye = Tensor::eye(d, DType::F64, &cpu()).unwrap();
    let mut h = x.clone();
    let mut t: Option<Tensor> = None;
    let mut out = Vec::new();
    for (l, layer) in net.layers.iter().enumerate() {
        let z = Mlp::affine(layer, &h).unwrap();
        let wt = match &t {
            Some(t) => Mlp::tangent_linear(layer, t).unwrap(),
            None => {
                let o = layer.w.dim(0).unwrap();
                let wv = eye.matmul(&layer.w.t().unwrap()).unwrap();
                wv.unsqueeze(1)
                    .unwrap()
                    .broadcast_as((d, n, o))
                    .unwrap()
                    .contiguous()
                    .unwrap()
            }
        };
        let zms = median(z.sqr().unwrap().mean(1).unwrap().to_vec1::<f64>().unwrap());
        let zmean = z
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let tms = median(
            wt.sqr()
                .unwrap()
                .mean(2)
                .unwrap()
                .sum(0)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap(),
        );
        out.push((zms, zmean, tms));
        if l + 1 < net.layers.len() {
            let (hn, dz) = net.act(&z, true).unwrap();
            t = Some(
                wt.broadcast_mul(&dz.unwrap().unsqueeze(0).unwrap())
                    .unwrap(),
            );
            h = hn;
        }
    }
    out
}

#[test]
fn init_keeps_moments_bounded_through_four_layers() {
    // Standardised (standard normal) inputs, d = 32, four hidden layers of width 64 and the
    // output layer, analytic init only (no data-dependent calibration). Values: median and
    // mean over rows of the per-row mean-square pre-activation; derivatives: median per-row
    // mean over units of |dz/dx|^2.
    let (n, d) = (512, 32);
    let xs = rand_input(n, d, 42, 1.0);
    let x = Tensor::from_slice(&xs, (n, d), &cpu()).unwrap();
    for p in [2u32, 3] {
        let cfg = MlpConfig {
            input_dim: d,
            hidden: vec![64; 4],
            output_dim: d,
            p,
            init: Init::default(),
        };
        let net = Mlp::new(&cfg, 7, DType::F64, &cpu()).unwrap();
        // p = 2: all four hidden layers and the output; p = 3 (degree 3^l): the default depth
        // of two hidden layers and the output.
        let layers = if p == 2 { 5 } else { 3 };
        for (l, (zmed, zmean, tms)) in layer_moments(&net, &x).into_iter().enumerate().take(layers)
        {
            assert!(
                (0.1..2.0).contains(&zmed),
                "p={p} layer {l}: median E[z^2] {zmed}"
            );
            assert!(
                (0.5..5.0).contains(&tms),
                "p={p} layer {l}: median |dz/dx|^2 {tms}"
            );
            if l < 3 && p == 2 {
                assert!(
                    (0.5..2.0).contains(&zmean),
                    "p={p} layer {l}: mean E[z^2] {zmean}"
                );
            }
        }
    }
    let (n, d) = (512, 8);
    let xs = rand_input(n, d, 42, 1.0);
    let x = Tensor::from_slice(&xs, (n, d), &cpu()).unwrap();
    // The ReLU-tuned Kaiming scale explodes: degree-16 growth at the fourth layer.
    let cfg = MlpConfig {
        input_dim: d,
        hidden: vec![64; 4],
        output_dim: d,
        p: 2,
        init: Init::KaimingUniform,
    };
    let net = Mlp::new(&cfg, 7, DType::F64, &cpu()).unwrap();
    let m = layer_moments(&net, &x);
    assert!(m[3].0 > 1e3 && m[3].2 > 1e3, "{m:?}");
}

#[test]
fn rejects_bad_config_and_input() {
    let mut cfg = MlpConfig {
        input_dim: 2,
        hidden: vec![3],
        output_dim: 2,
        p: 4,
        init: Init::default(),
    };
    assert!(Mlp::new(&cfg, 0, DType::F32, &cpu()).is_err());
    cfg.p = 2;
    cfg.hidden = vec![0];
    assert!(Mlp::new(&cfg, 0, DType::F32, &cpu()).is_err());
    cfg.hidden = vec![3];
    let net = Mlp::new(&cfg, 0, DType::F32, &cpu()).unwrap();
    let bad = Tensor::zeros((4, 3), DType::F32, &cpu()).unwrap();
    assert!(matches!(
        net.forward(&bad),
        Err(ModelError::InvalidInput(_))
    ));
    assert_eq!(repu_second_moment(2), 1.5);
    assert_eq!(repu_second_moment(3), 7.5);
    assert_eq!(repu_second_moment(1), 0.5);
}

#[test]
fn seeded_init_is_reproducible() {
    let cfg = MlpConfig {
        input_dim: 3,
        hidden: vec![4],
        output_dim: 2,
        p: 2,
        init: Init::default(),
    };
    let a = Mlp::new(&cfg, 5, DType::F32, &cpu()).unwrap();
    let b = Mlp::new(&cfg, 5, DType::F32, &cpu()).unwrap();
    let c = Mlp::new(&cfg, 6, DType::F32, &cpu()).unwrap();
    let flat = |m: &Mlp| {
        m.weights()[0]
            .0
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(flat(&a), flat(&b));
    assert_ne!(flat(&a), flat(&c));
}
