//! Checkpoint round trips and every kind of broken checkpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use linewatch_models::checkpoint::{META_FILE, WEIGHTS_FILE};
use linewatch_models::{
    CheckpointError, Direction, IsoTarget, IsotonicConfig, IsotonicModel, ModelError, Monotone,
    Pava, ResidualMode, ScoreConfig, ScoreModel, TrainConfig, TrainingInfo, rng,
};

fn names(d: usize) -> Vec<String> {
    (0..d).map(|j| format!("f{j}")).collect()
}

fn small_score_model() -> (ScoreModel, Vec<f64>) {
    let d = 3;
    let mut r = rng::seeded(1);
    let mut rows = rng::normals(&mut r, 400 * d);
    rows[5] = f64::NAN;
    let cfg = ScoreConfig {
        hidden: Some(vec![8, 8]),
        residual: ResidualMode::Always,
        train: TrainConfig {
            max_epochs: 3,
            batch_size: 64,
            ..Default::default()
        },
        ..Default::default()
    };
    let (m, _) = ScoreModel::train(&rows, &names(d), &cfg, &Device::Cpu).unwrap();
    (m, rows)
}

fn info() -> TrainingInfo {
    TrainingInfo {
        rows: Some(400),
        start: Some("2026-11-28T00:00:00Z".parse().unwrap()),
        end: Some("2026-11-28T12:00:00Z".parse().unwrap()),
        metrics: Some(serde_json::json!({"note": "test"})),
    }
}

fn ck_source(e: ModelError) -> CheckpointError {
    match e {
        ModelError::Checkpoint { source, .. } => source,
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn score_round_trip_is_bit_exact() {
    let (m, rows) = small_score_model();
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path(), &info()).unwrap();
    let back = ScoreModel::load(dir.path(), &Device::Cpu).unwrap();
    let (a, b) = (m.score(&rows).unwrap(), back.score(&rows).unwrap());
    assert_eq!(a, b);
    assert_eq!(m.threshold().to_bits(), back.threshold().to_bits());
    assert_eq!(m.calibration_scores(), back.calibration_scores());
    // A Gaussian-only model round-trips too (no network, empty weights file).
    let cfg = ScoreConfig {
        residual: ResidualMode::Off,
        ..Default::default()
    };
    let (g, _) = ScoreModel::train(&rows, &names(3), &cfg, &Device::Cpu).unwrap();
    let gdir = tempfile::tempdir().unwrap();
    g.save(gdir.path(), &info()).unwrap();
    let gback = ScoreModel::load(gdir.path(), &Device::Cpu).unwrap();
    assert!(gback.residual().is_none());
    assert_eq!(g.score(&rows).unwrap(), gback.score(&rows).unwrap());
    assert_eq!(m.standardizer(), back.standardizer());
    let meta = linewatch_models::read_meta(dir.path()).unwrap();
    assert_eq!(meta.training, info());
    assert_eq!(meta.kind, linewatch_models::ModelKind::Score);
    assert_eq!(meta.device, "cpu");
    assert!(matches!(
        linewatch_models::load_any(dir.path(), &Device::Cpu).unwrap(),
        linewatch_models::AnyModel::Score(_)
    ));
}

#[test]
fn isotonic_and_pava_round_trip() {
    let mut r = rng::seeded(2);
    let x = rng::normals(&mut r, 300 * 2);
    let y: Vec<f64> = x.chunks_exact(2).map(|v| v[0] - 0.5 * v[1]).collect();
    let cfg = IsotonicConfig {
        monotone: vec![Monotone::Increasing, Monotone::Free],
        target: IsoTarget::Continuous,
        hidden: vec![8],
        train: TrainConfig {
            max_epochs: 3,
            ..Default::default()
        },
        ..Default::default()
    };
    let (m, _) = IsotonicModel::train(&x, &y, &names(2), &cfg, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path(), &TrainingInfo::default()).unwrap();
    let back = IsotonicModel::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(m.predict(&x).unwrap(), back.predict(&x).unwrap());

    let p = Pava::fit(
        &[3.0, 1.0, 2.0],
        &[1.0, 0.0, 2.0],
        None,
        Direction::Increasing,
    )
    .unwrap();
    let pdir = tempfile::tempdir().unwrap();
    p.save(pdir.path(), "anomaly_score", &TrainingInfo::default())
        .unwrap();
    assert_eq!(Pava::load(pdir.path()).unwrap(), p);
    // Wrong kind: a PAVA directory is not a score model.
    assert!(matches!(
        ck_source(ScoreModel::load(pdir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::WrongKind { .. }
    ));
    assert!(matches!(
        ck_source(IsotonicModel::load(pdir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::WrongKind { .. }
    ));
}

fn saved() -> (ScoreModel, tempfile::TempDir) {
    let (m, _) = small_score_model();
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path(), &TrainingInfo::default()).unwrap();
    (m, dir)
}

fn edit_json(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(META_FILE);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn broken_checkpoints_are_typed_errors() {
    // Missing directory / files.
    let none = tempfile::tempdir().unwrap();
    assert!(matches!(
        ck_source(ScoreModel::load(none.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::Io(_)
    ));

    // Truncated weights.
    let (_, dir) = saved();
    let w = dir.path().join(WEIGHTS_FILE);
    let bytes = std::fs::read(&w).unwrap();
    for cut in [0, 7, 8, 40, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&w, &bytes[..cut]).unwrap();
        let e = ck_source(ScoreModel::load(dir.path(), &Device::Cpu).unwrap_err());
        assert!(
            matches!(e, CheckpointError::CorruptWeights(_)),
            "cut {cut}: {e:?}"
        );
    }
    // Garbage weights.
    std::fs::write(
        &w,
        b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a safetensors file",
    )
    .unwrap();
    assert!(matches!(
        ck_source(ScoreModel::load(dir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::CorruptWeights(_)
    ));

    // Missing tensor: weights of another (smaller) model under the same names minus one.
    let (m, dir) = saved();
    let mut t: std::collections::HashMap<String, candle_core::Tensor> = m
        .residual()
        .expect("residual kept")
        .weights()
        .into_iter()
        .enumerate()
        .flat_map(|(l, (w, b))| {
            [
                (format!("score.{l}.weight"), w),
                (format!("score.{l}.bias"), b),
            ]
        })
        .collect();
    t.remove("score.1.bias");
    candle_core::safetensors::save(&t, dir.path().join(WEIGHTS_FILE)).unwrap();
    match ck_source(ScoreModel::load(dir.path(), &Device::Cpu).unwrap_err()) {
        CheckpointError::MissingTensor(n) => assert_eq!(n, "score.1.bias"),
        e => panic!("{e:?}"),
    }

    // Shapes that disagree with the configuration.
    let (_, dir) = saved();
    edit_json(dir.path(), |v| {
        v["network"]["hidden"] = serde_json::json!([8, 9]);
        v["score"]["config"]["hidden"] = serde_json::json!([8, 9]);
    });
    assert!(matches!(
        ck_source(ScoreModel::load(dir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::ShapeMismatch { .. }
    ));

    // Network and config disagree.
    let (_, dir) = saved();
    edit_json(dir.path(), |v| {
        v["network"]["hidden"] = serde_json::json!([8, 9])
    });
    assert!(matches!(
        ck_source(ScoreModel::load(dir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::InvalidMetadata(_)
    ));

    // Bad JSON, unknown field, unsupported version, bad values.
    let (_, dir) = saved();
    std::fs::write(dir.path().join(META_FILE), b"{\"format_version\": 1, ").unwrap();
    assert!(matches!(
        ck_source(ScoreModel::load(dir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::BadJson(_)
    ));
    let (_, dir) = saved();
    edit_json(dir.path(), |v| v["surprise"] = serde_json::json!(1));
    assert!(matches!(
        ck_source(ScoreModel::load(dir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::BadJson(_)
    ));
    let (_, dir) = saved();
    edit_json(dir.path(), |v| v["format_version"] = serde_json::json!(99));
    assert!(matches!(
        ck_source(ScoreModel::load(dir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::UnsupportedFormat {
            found: 99,
            supported: 2
        }
    ));
    let (_, dir) = saved();
    edit_json(dir.path(), |v| {
        v["score"]["standardizer"]["std"][0] = serde_json::json!(0.0)
    });
    assert!(matches!(
        ck_source(ScoreModel::load(dir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::InvalidMetadata(_)
    ));
    let (_, dir) = saved();
    edit_json(dir.path(), |v| {
        v["feature_names"] = serde_json::json!(["a", "b"])
    });
    assert!(ScoreModel::load(dir.path(), &Device::Cpu).is_err());
    let (_, dir) = saved();
    edit_json(dir.path(), |v| v["kind"] = serde_json::json!("isotonic"));
    assert!(matches!(
        ck_source(ScoreModel::load(dir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::WrongKind { .. }
    ));
    assert!(matches!(
        ck_source(IsotonicModel::load(dir.path(), &Device::Cpu).unwrap_err()),
        CheckpointError::InvalidMetadata(_)
    ));
}

#[test]
fn models_are_shareable_across_threads() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<ScoreModel>();
    assert_traits::<IsotonicModel>();
    assert_traits::<Pava>();
    let (m, rows) = small_score_model();
    let want = m.anomaly_scores(&rows).unwrap();
    let shared = Arc::new(m);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&shared);
            let rows = rows.clone();
            std::thread::spawn(move || m.anomaly_scores(&rows).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}
