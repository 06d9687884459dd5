//! RePU multilayer perceptron with exact input derivatives by forward-mode propagation.
//!
//! `sigma_p(x) = max(0, x)^p` (p = 2 or 3) after every hidden layer, a linear output layer.
//! Input derivatives are carried through the layers as ordinary tensor ops:
//!
//! ```text
//! z = W h + b,   h' = sigma_p(z),   T' = sigma_p'(z) * (W T),   sigma_p'(x) = p max(0,x)^(p-1)
//! ```
//!
//! where `T` holds one tangent per direction. Because these are ordinary ops, a loss that
//! contains input derivatives (score matching, monotonicity penalties) is trained with plain
//! first-order backprop; no second-order autograd is involved (candle's second-order
//! gradients are wrong without `CANDLE_GRAD_DO_NOT_DETACH`, see `docs/architecture.md`,
//! "The method").
//!
//! Tangent layout: `[k, n, width]` (direction-major), so that the per-row factor
//! `sigma_p'(z)` of shape `[n, width]` broadcasts on the leading axis (candle's fast
//! broadcast path) and the `W T` products are one `[k*n, in] x [in, out]` matmul.

mod config;
mod forward;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};

use crate::error::{CheckpointError, ModelError, Result};
use crate::rng;

pub use config::{Init, MlpConfig, repu_second_moment};

/// One affine layer: `w` is `[out, in]`, `b` is `[out]`.
#[derive(Clone, Debug)]
struct Layer {
    w: Tensor,
    b: Tensor,
}

/// A RePU network. Cheap to clone (tensors are reference counted), `Send + Sync`; all
/// evaluation takes `&self`.
#[derive(Clone, Debug)]
pub struct Mlp {
    cfg: MlpConfig,
    layers: Vec<Layer>,
}

/// Directions along which to propagate tangents.
#[derive(Clone, Copy, Debug)]
pub enum Directions<'a> {
    /// The same `k` directions for every row: a `[k, input_dim]` tensor.
    Shared(&'a Tensor),
    /// Per-row directions: a `[k, n, input_dim]` tensor.
    PerRow(&'a Tensor),
}

impl Mlp {
    /// A freshly initialised network; weights drawn in f64 from `StdRng::seed_from_u64(seed)`
    /// and converted to `dtype`.
    pub fn new(cfg: &MlpConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut r = rng::seeded(seed);
        let mp = repu_second_moment(cfg.p);
        let mut layers = Vec::new();
        for (l, (out, inp)) in cfg.layer_shapes().into_iter().enumerate() {
            let fan_in = inp as f64;
            let (w, b): (Vec<f64>, Vec<f64>) = match cfg.init {
                Init::RepuVariancePreserving => {
                    let sd = if l == 0 {
                        1.0 / fan_in.sqrt()
                    } else {
                        1.0 / (mp * fan_in).sqrt()
                    };
                    let w = rng::normals(&mut r, out * inp)
                        .into_iter()
                        .map(|g| g * sd)
                        .collect();
                    (w, vec![0.0; out])
                }
                Init::Normal { std_factor } => {
                    let sd = std_factor / fan_in.sqrt();
                    let w = rng::normals(&mut r, out * inp)
                        .into_iter()
                        .map(|g| g * sd)
                        .collect();
                    (w, vec![0.0; out])
                }
                Init::KaimingUniform => {
                    use rand::Rng;
                    let bw = (6.0 / fan_in).sqrt();
                    let bb = 1.0 / fan_in.sqrt();
                    let w = (0..out * inp).map(|_| r.random_range(-bw..bw)).collect();
                    let b = (0..out).map(|_| r.random_range(-bb..bb)).collect();
                    (w, b)
                }
            };
            layers.push(Layer {
                w: Tensor::from_vec(w, (out, inp), device)?.to_dtype(dtype)?,
                b: Tensor::from_vec(b, out, device)?.to_dtype(dtype)?,
            });
        }
        Ok(Self {
            cfg: cfg.clone(),
            layers,
        })
    }

    /// Builds a network from given weights `(w [out,in], b [out])`, input side first.
    pub fn from_weights(cfg: &MlpConfig, weights: Vec<(Tensor, Tensor)>) -> Result<Self> {
        cfg.validate()?;
        let shapes = cfg.layer_shapes();
        if weights.len() != shapes.len() {
            return Err(ModelError::InvalidConfig(format!(
                "{} layers given, configuration has {}",
                weights.len(),
                shapes.len()
            )));
        }
        let mut layers = Vec::new();
        for ((w, b), (o, i)) in weights.into_iter().zip(shapes) {
            if w.dims() != [o, i] || b.dims() != [o] {
                return Err(ModelError::InvalidConfig(format!(
                    "layer weights {:?}/{:?} do not match ({o}, {i})",
                    w.dims(),
                    b.dims()
                )));
            }
            layers.push(Layer { w, b });
        }
        Ok(Self {
            cfg: cfg.clone(),
            layers,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MlpConfig {
        &self.cfg
    }

    /// Element type of the weights.
    pub fn dtype(&self) -> DType {
        self.layers[0].w.dtype()
    }

    /// Device holding the weights.
    pub fn device(&self) -> &Device {
        self.layers[0].w.device()
    }

    /// The same network on another device (a copy of the weights).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    w: l.w.to_device(device)?,
                    b: l.b.to_device(device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: self.cfg.clone(),
            layers,
        })
    }

    /// Weights `(w, b)` per layer (shared tensors, no copy).
    pub fn weights(&self) -> Vec<(Tensor, Tensor)> {
        self.layers
            .iter()
            .map(|l| (l.w.clone(), l.b.clone()))
            .collect()
    }

    /// A deep, detached copy (used to keep the best weights during training).
    pub(crate) fn snapshot(&self) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    w: l.w.detach().copy()?,
                    b: l.b.detach().copy()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: self.cfg.clone(),
            layers,
        })
    }

    /// Trainable variables (fresh copies) and a network reading them.
    pub(crate) fn trainable(&self) -> Result<(Self, Vec<Var>)> {
        let mut vars = Vec::new();
        let mut layers = Vec::new();
        for l in &self.layers {
            let w = Var::from_tensor(&l.w.detach().copy()?)?;
            let b = Var::from_tensor(&l.b.detach().copy()?)?;
            layers.push(Layer {
                w: w.as_tensor().clone(),
                b: b.as_tensor().clone(),
            });
            vars.push(w);
            vars.push(b);
        }
        Ok((
            Self {
                cfg: self.cfg.clone(),
                layers,
            },
            vars,
        ))
    }

    /// Names and tensors for a checkpoint: `{prefix}.{l}.weight`, `{prefix}.{l}.bias`.
    pub(crate) fn named_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            v.push((format!("{prefix}.{l}.weight"), layer.w.clone()));
            v.push((format!("{prefix}.{l}.bias"), layer.b.clone()));
        }
        v
    }

    /// Reads the tensors written by [`Mlp::named_tensors`], checking names and shapes.
    pub(crate) fn from_named(
        cfg: &MlpConfig,
        map: &HashMap<String, Tensor>,
        prefix: &str,
    ) -> std::result::Result<Self, CheckpointError> {
        cfg.validate()
            .map_err(|e| CheckpointError::InvalidMetadata(e.to_string()))?;
        let mut layers = Vec::new();
        let mut dtype = None;
        for (l, (o, i)) in cfg.layer_shapes().into_iter().enumerate() {
            let get =
                |name: String, shape: Vec<usize>| -> std::result::Result<Tensor, CheckpointError> {
                    let t = map
                        .get(&name)
                        .ok_or_else(|| CheckpointError::MissingTensor(name.clone()))?;
                    if t.dims() != shape.as_slice() {
                        return Err(CheckpointError::ShapeMismatch {
                            name,
                            expected: shape,
                            found: t.dims().to_vec(),
                        });
                    }
                    Ok(t.clone())
                };
            let w = get(format!("{prefix}.{l}.weight"), vec![o, i])?;
            let b = get(format!("{prefix}.{l}.bias"), vec![o])?;
            for t in [&w, &b] {
                if !matches!(t.dtype(), DType::F32 | DType::F64)
                    || dtype.is_some_and(|d| d != t.dtype())
                {
                    return Err(CheckpointError::InvalidMetadata(format!(
                        "unexpected weight dtype {:?}",
                        t.dtype()
                    )));
                }
                dtype = Some(t.dtype());
            }
            layers.push(Layer { w, b });
        }
        Ok(Self {
            cfg: cfg.clone(),
            layers,
        })
    }

    /// Data-dependent rescaling of the initial weights (in the spirit of LSUV): layer by layer,
    /// scales `W` (and `b`) so that the mean over the rows of `x` and the units of the squared
    /// pre-activation is 1 (the output layer included). It corrects the drift that the
    /// non-attracting fixed point of [`Init::RepuVariancePreserving`] and finite width cause,
    /// and bounds the initial loss, which is a mean over rows. Deterministic given `x`.
    pub fn calibrated(&self, x: &Tensor) -> Result<Self> {
        self.check_input(x)?;
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let z = Self::affine(layer, &h)?;
            let med = z
                .sqr()?
                .mean_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            let scale = if med.is_finite() && med > 1e-30 {
                1.0 / med.sqrt()
            } else {
                1.0
            };
            let layer = Layer {
                w: layer.w.affine(scale, 0.0)?,
                b: layer.b.affine(scale, 0.0)?,
            };
            if l < last {
                let z = Self::affine(&layer, &h)?;
                h = self.act(&z, false)?.0;
            }
            layers.push(layer);
        }
        Ok(Self {
            cfg: self.cfg.clone(),
            layers,
        })
    }
}
