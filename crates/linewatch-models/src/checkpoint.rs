//! Checkpoints: a directory with `model.safetensors` (weights) and `model.json` (metadata).
//!
//! Both files are written to a temporary name, fsynced and renamed, weights first, so a
//! directory whose `model.json` exists holds complete weights. Loading checks the format
//! version, the kind, every tensor's presence and shape against the stored configuration,
//! and the metadata values; any failure is a typed [`ModelError::Checkpoint`], never a panic.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CheckpointError, ModelError, Result};
use crate::gaussian::Whitener;
use crate::isotonic::{IsoScaling, IsotonicConfig, IsotonicModel};
use crate::mlp::{Mlp, MlpConfig};
use crate::pava::{Direction, Interpolation, Pava};
use crate::score::{ScoreConfig, ScoreModel, ScoreSummary};
use crate::standardize::Standardizer;

/// Format version written by this build (and the only one it reads).
pub const FORMAT_VERSION: u32 = 2;
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Metadata file name.
pub const META_FILE: &str = "model.json";

/// Kind of model in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// [`ScoreModel`].
    Score,
    /// [`IsotonicModel`] (PDIR).
    Isotonic,
    /// [`Pava`] (1-D fallback).
    Pava,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Score => "score",
            Self::Isotonic => "isotonic",
            Self::Pava => "pava",
        })
    }
}

/// Caller-supplied facts about the training data, stored as given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingInfo {
    /// Rows the model was trained on.
    pub rows: Option<u64>,
    /// Event time of the first training row.
    pub start: Option<DateTime<Utc>>,
    /// Event time of the last training row.
    pub end: Option<DateTime<Utc>>,
    /// Free-form metrics (validation results, ...).
    pub metrics: Option<serde_json::Value>,
}

/// Score-model part of the metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreState {
    /// Model configuration.
    pub config: ScoreConfig,
    /// Standardisation fitted on the training rows.
    pub standardizer: Standardizer,
    /// The Gaussian part (centre and whitening map, standardised space).
    pub gaussian: Whitener,
    /// Calibration anomaly scores, sorted ascending (the p-values' reference).
    pub calibration: Vec<f64>,
    /// Half-width of the cube of whitened inputs the residual is evaluated in.
    #[serde(with = "nonfinite")]
    pub residual_box: f64,
    /// Training summary.
    pub summary: ScoreSummary,
}

/// Isotonic-model part of the metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsoState {
    /// Model configuration.
    pub config: IsotonicConfig,
    /// Input and target scaling.
    pub scaling: IsoScaling,
}

/// PAVA part of the metadata (knots are in the weights file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PavaState {
    /// Direction of the fit.
    pub direction: Direction,
    /// Prediction between knots.
    pub interpolation: Interpolation,
    /// Number of knots.
    pub knots: usize,
}

/// Contents of `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    /// [`FORMAT_VERSION`] at writing.
    pub format_version: u32,
    /// Model kind.
    pub kind: ModelKind,
    /// Version of this crate at writing.
    pub crate_version: String,
    /// Time of writing.
    pub created_at: DateTime<Utc>,
    /// Device the model was trained on.
    pub device: String,
    /// Input feature names in column order.
    pub feature_names: Vec<String>,
    /// Caller-supplied training facts.
    pub training: TrainingInfo,
    /// Held-out loss of the stored weights.
    #[serde(with = "nonfinite")]
    pub held_out_loss: f64,
    /// Alert threshold (score models; `"inf"` = none).
    #[serde(with = "nonfinite")]
    pub threshold: f64,
    /// Network shape (neural models).
    pub network: Option<MlpConfig>,
    /// Weight dtype (`f32` or `f64`).
    pub dtype: Option<String>,
    /// Score-model state.
    pub score: Option<ScoreState>,
    /// Isotonic-model state.
    pub isotonic: Option<IsoState>,
    /// PAVA state.
    pub pava: Option<PavaState>,
}

/// Serde for `f64` fields that may be NaN or infinite (JSON has no such numbers):
/// finite numbers as numbers, others as `"nan"`, `"inf"`, `"-inf"`.
pub(crate) mod nonfinite {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("nan")
        } else if *v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Str(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Num(v) => Ok(v),
            Repr::Str(s) => match s.as_str() {
                "nan" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                _ => Err(serde::de::Error::custom(format!("bad number {s:?}"))),
            },
        }
    }
}

fn ck(path: &Path, source: CheckpointError) -> ModelError {
    ModelError::Checkpoint {
        path: path.to_path_buf(),
        source,
    }
}

fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_lowercase()
}

fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    write(&tmp)?;
    let f = std::fs::File::open(&tmp).map_err(|e| ck(&tmp, e.into()))?;
    f.sync_all().map_err(|e| ck(&tmp, e.into()))?;
    std::fs::rename(&tmp, path).map_err(|e| ck(path, e.into()))?;
    Ok(())
}

fn save_dir(dir: &Path, tensors: HashMap<String, Tensor>, meta: &ModelMeta) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ck(dir, e.into()))?;
    let wpath = dir.join(WEIGHTS_FILE);
    write_atomic(&wpath, |tmp| {
        candle_core::safetensors::save(&tensors, tmp)
            .map_err(|e| ck(tmp, CheckpointError::CorruptWeights(e.to_string())))
    })?;
    let mpath = dir.join(META_FILE);
    let json = serde_json::to_vec_pretty(meta).map_err(|e| ck(&mpath, e.into()))?;
    write_atomic(&mpath, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| ck(tmp, e.into()))?;
        f.write_all(&json).map_err(|e| ck(tmp, e.into()))?;
        Ok(())
    })?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Persist the renames (best effort; not every platform can fsync a directory).
        let _ = d.sync_all();
    }
    tracing::info!(dir = %dir.display(), kind = %meta.kind, "model checkpoint written");
    Ok(())
}

/// Reads and checks `model.json` of a checkpoint directory (format version included).
pub fn read_meta(dir: &Path) -> Result<ModelMeta> {
    let path = dir.join(META_FILE);
    let bytes = std::fs::read(&path).map_err(|e| ck(&path, e.into()))?;
    // Check the version before the full schema, so an old/new format says so clearly.
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| ck(&path, e.into()))?;
    let found = v.get("format_version").and_then(serde_json::Value::as_u64);
    match found {
        Some(f) if f == u64::from(FORMAT_VERSION) => {}
        Some(f) => {
            return Err(ck(
                &path,
                CheckpointError::UnsupportedFormat {
                    found: u32::try_from(f).unwrap_or(u32::MAX),
                    supported: FORMAT_VERSION,
                },
            ));
        }
        None => {
            return Err(ck(
                &path,
                CheckpointError::InvalidMetadata("missing format_version".into()),
            ));
        }
    }
    serde_json::from_value(v).map_err(|e| ck(&path, e.into()))
}

fn read_weights(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| ck(&path, e.into()))?;
    candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| ck(&path, CheckpointError::CorruptWeights(e.to_string())))
}

fn expect_kind(dir: &Path, meta: &ModelMeta, kind: ModelKind) -> Result<()> {
    if meta.kind != kind {
        return Err(ck(
            &dir.join(META_FILE),
            CheckpointError::WrongKind {
                expected: kind.to_string(),
                found: meta.kind.to_string(),
            },
        ));
    }
    Ok(())
}

fn invalid(dir: &Path, msg: impl Into<String>) -> ModelError {
    ck(
        &dir.join(META_FILE),
        CheckpointError::InvalidMetadata(msg.into()),
    )
}

fn base_meta(kind: ModelKind, device: String, names: &[String], info: &TrainingInfo) -> ModelMeta {
    ModelMeta {
        format_version: FORMAT_VERSION,
        kind,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: Utc::now(),
        device,
        feature_names: names.to_vec(),
        training: info.clone(),
        held_out_loss: f64::NAN,
        threshold: f64::INFINITY,
        network: None,
        dtype: None,
        score: None,
        isotonic: None,
        pava: None,
    }
}

impl ScoreModel {
    /// Writes the model to `dir` (created if needed). The residual's weights go to
    /// `model.safetensors` (an empty file when the model is Gaussian only); the Gaussian part
    /// and the calibration scores to `model.json`.
    pub fn save(&self, dir: &Path, info: &TrainingInfo) -> Result<()> {
        let mut meta = base_meta(
            ModelKind::Score,
            self.summary.device.clone(),
            &self.feature_names,
            info,
        );
        meta.held_out_loss = self.summary.held_out_loss;
        meta.threshold = self.threshold;
        meta.network = self.net.as_ref().map(|n| n.config().clone());
        meta.dtype = self.net.as_ref().map(|n| dtype_name(n.dtype()));
        meta.score = Some(ScoreState {
            config: self.config.clone(),
            standardizer: self.standardizer.clone(),
            gaussian: self.gauss.clone(),
            calibration: self.calibration.clone(),
            residual_box: self.residual_box,
            summary: self.summary.clone(),
        });
        let tensors = match &self.net {
            Some(n) => n.named_tensors("score").into_iter().collect(),
            None => HashMap::new(),
        };
        save_dir(dir, tensors, &meta)
    }

    /// Loads a score model from `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let meta = read_meta(dir)?;
        expect_kind(dir, &meta, ModelKind::Score)?;
        let st = meta
            .score
            .as_ref()
            .ok_or_else(|| invalid(dir, "missing `score` section"))?;
        let d = meta.feature_names.len();
        st.config
            .validate()
            .map_err(|e| invalid(dir, e.to_string()))?;
        st.standardizer.validate().map_err(|e| invalid(dir, e))?;
        st.gaussian.validate().map_err(|e| invalid(dir, e))?;
        if st.standardizer.dim() != d || st.gaussian.dim() != d {
            return Err(invalid(
                dir,
                "standardisation or Gaussian part differs from the feature count",
            ));
        }
        if meta.threshold.is_nan() {
            return Err(invalid(dir, "threshold is NaN"));
        }
        if st.calibration.iter().any(|c| !c.is_finite())
            || st.calibration.windows(2).any(|w| w[0] > w[1])
        {
            return Err(invalid(dir, "calibration scores must be finite and sorted"));
        }
        if st.summary.residual != meta.network.is_some() {
            return Err(invalid(dir, "`residual` disagrees with `network`"));
        }
        let net = match meta.network.as_ref() {
            Some(net_cfg) => {
                if st.config.mlp(d) != *net_cfg {
                    return Err(invalid(
                        dir,
                        "network shape disagrees with the configuration and feature count",
                    ));
                }
                let tensors = read_weights(dir, device)?;
                Some(
                    Mlp::from_named(net_cfg, &tensors, "score")
                        .map_err(|e| ck(&dir.join(WEIGHTS_FILE), e))?,
                )
            }
            None => None,
        };
        let mut m = Self::assemble(
            st.config.clone(),
            meta.feature_names.clone(),
            st.standardizer.clone(),
            st.gaussian.clone(),
            net,
            meta.threshold,
            st.summary.clone(),
        )
        .map_err(|e| invalid(dir, e.to_string()))?;
        if st.residual_box.is_nan() || st.residual_box <= 0.0 {
            return Err(invalid(dir, "residual_box must be > 0"));
        }
        m.calibration = st.calibration.clone();
        m.residual_box = st.residual_box;
        Ok(m)
    }
}

impl IsotonicModel {
    /// Writes the model to `dir` (created if needed).
    pub fn save(&self, dir: &Path, info: &TrainingInfo) -> Result<()> {
        let mut meta = base_meta(
            ModelKind::Isotonic,
            self.trained_on.clone(),
            &self.feature_names,
            info,
        );
        meta.held_out_loss = self.held_out_loss;
        meta.network = Some(self.net.config().clone());
        meta.dtype = Some(dtype_name(self.net.dtype()));
        meta.isotonic = Some(IsoState {
            config: self.config.clone(),
            scaling: self.scaling.clone(),
        });
        save_dir(
            dir,
            self.net.named_tensors("iso").into_iter().collect(),
            &meta,
        )
    }

    /// Loads an isotonic model from `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let meta = read_meta(dir)?;
        expect_kind(dir, &meta, ModelKind::Isotonic)?;
        let st = meta
            .isotonic
            .as_ref()
            .ok_or_else(|| invalid(dir, "missing `isotonic` section"))?;
        let net_cfg = meta
            .network
            .as_ref()
            .ok_or_else(|| invalid(dir, "missing `network`"))?;
        let d = meta.feature_names.len();
        st.config
            .validate(d)
            .map_err(|e| invalid(dir, e.to_string()))?;
        if st.config.mlp(d) != *net_cfg {
            return Err(invalid(
                dir,
                "network shape disagrees with the configuration and feature count",
            ));
        }
        st.scaling.validate(d).map_err(|e| invalid(dir, e))?;
        let tensors = read_weights(dir, device)?;
        let net = Mlp::from_named(net_cfg, &tensors, "iso")
            .map_err(|e| ck(&dir.join(WEIGHTS_FILE), e))?;
        Ok(Self {
            config: st.config.clone(),
            feature_names: meta.feature_names.clone(),
            scaling: st.scaling.clone(),
            net,
            held_out_loss: meta.held_out_loss,
            trained_on: meta.device.clone(),
        })
    }
}

impl Pava {
    /// Writes the fit to `dir`: knots as f64 tensors `pava.x`, `pava.y`.
    pub fn save(&self, dir: &Path, feature_name: &str, info: &TrainingInfo) -> Result<()> {
        let mut meta = base_meta(
            ModelKind::Pava,
            "cpu".into(),
            &[feature_name.to_string()],
            info,
        );
        meta.pava = Some(PavaState {
            direction: self.direction,
            interpolation: self.interpolation,
            knots: self.knots_x.len(),
        });
        meta.dtype = Some("f64".into());
        let n = self.knots_x.len();
        let mut t = HashMap::new();
        t.insert(
            "pava.x".to_string(),
            Tensor::from_slice(&self.knots_x, n, &Device::Cpu)?,
        );
        t.insert(
            "pava.y".to_string(),
            Tensor::from_slice(&self.knots_y, n, &Device::Cpu)?,
        );
        save_dir(dir, t, &meta)
    }

    /// Loads a fit from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let meta = read_meta(dir)?;
        expect_kind(dir, &meta, ModelKind::Pava)?;
        let st = meta
            .pava
            .as_ref()
            .ok_or_else(|| invalid(dir, "missing `pava` section"))?;
        let tensors = read_weights(dir, &Device::Cpu)?;
        let wpath = dir.join(WEIGHTS_FILE);
        let get = |name: &str| -> Result<Vec<f64>> {
            let t = tensors
                .get(name)
                .ok_or_else(|| ck(&wpath, CheckpointError::MissingTensor(name.into())))?;
            if t.dims() != [st.knots] || t.dtype() != DType::F64 {
                return Err(ck(
                    &wpath,
                    CheckpointError::ShapeMismatch {
                        name: name.into(),
                        expected: vec![st.knots],
                        found: t.dims().to_vec(),
                    },
                ));
            }
            Ok(t.to_vec1::<f64>()?)
        };
        let p = Self {
            knots_x: get("pava.x")?,
            knots_y: get("pava.y")?,
            direction: st.direction,
            interpolation: st.interpolation,
        };
        p.validate().map_err(|e| invalid(dir, e))?;
        Ok(p)
    }
}

/// Any model kind, as found in a checkpoint.
#[derive(Clone, Debug)]
pub enum AnyModel {
    /// Score model.
    Score(Box<ScoreModel>),
    /// PDIR model.
    Isotonic(Box<IsotonicModel>),
    /// PAVA fit.
    Pava(Pava),
}

/// Loads whatever model `dir` holds.
pub fn load_any(dir: &Path, device: &Device) -> Result<AnyModel> {
    Ok(match read_meta(dir)?.kind {
        ModelKind::Score => AnyModel::Score(Box::new(ScoreModel::load(dir, device)?)),
        ModelKind::Isotonic => AnyModel::Isotonic(Box::new(IsotonicModel::load(dir, device)?)),
        ModelKind::Pava => AnyModel::Pava(Pava::load(dir)?),
    })
}
