//! `save` and `load` of each model kind.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{CheckpointError, Result};
use crate::isotonic::IsotonicModel;
use crate::mlp::Mlp;
use crate::pava::Pava;
use crate::score::ScoreModel;

use super::files::{
    base_meta, ck, dtype_name, expect_kind, invalid, read_meta, read_weights, save_dir,
};
use super::{IsoState, ModelKind, PavaState, ScoreState, TrainingInfo, WEIGHTS_FILE};

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
