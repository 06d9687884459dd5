//! Evaluation: the forward pass and the forward-mode propagation of input tangents (the
//! layout and the rule are in the module docs).

use candle_core::Tensor;

use crate::error::{ModelError, Result};

use super::{Directions, Layer, Mlp};

impl Mlp {
    pub(super) fn check_input(&self, x: &Tensor) -> Result<usize> {
        match x.dims() {
            [n, d] if *d == self.cfg.input_dim => Ok(*n),
            dims => Err(ModelError::InvalidInput(format!(
                "expected input [n, {}], got {:?}",
                self.cfg.input_dim, dims
            ))),
        }
    }

    /// `(sigma_p(z), sigma_p'(z))`, the derivative only when asked for.
    pub(super) fn act(&self, z: &Tensor, deriv: bool) -> Result<(Tensor, Option<Tensor>)> {
        let r = z.relu()?;
        Ok(match self.cfg.p {
            2 => {
                let h = r.sqr()?;
                let d = if deriv {
                    Some(r.affine(2.0, 0.0)?)
                } else {
                    None
                };
                (h, d)
            }
            _ => {
                let r2 = r.sqr()?;
                let h = (&r2 * &r)?;
                let d = if deriv {
                    Some(r2.affine(3.0, 0.0)?)
                } else {
                    None
                };
                (h, d)
            }
        })
    }

    /// `x W^T + b` for `x` of shape `[m, in]`.
    pub(super) fn affine(layer: &Layer, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&layer.w.t()?)?.broadcast_add(&layer.b)?)
    }

    /// `T W^T` for tangents `[k, n, in]` -> `[k, n, out]`.
    pub(super) fn tangent_linear(layer: &Layer, t: &Tensor) -> Result<Tensor> {
        let (k, n, i) = t.dims3()?;
        let o = layer.w.dim(0)?;
        let t2 = t.reshape((k * n, i))?;
        Ok(t2.matmul(&layer.w.t()?)?.reshape((k, n, o))?)
    }

    /// Values only: `[n, input_dim] -> [n, output_dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let z = Self::affine(layer, &h)?;
            h = if l == last { z } else { self.act(&z, false)?.0 };
        }
        Ok(h)
    }

    /// Hidden tangents after the last RePU layer (or the input tangents when there is no
    /// hidden layer), together with the last hidden activations.
    fn propagate_hidden(&self, x: &Tensor, dirs: Directions<'_>) -> Result<(Tensor, Tensor)> {
        let n = self.check_input(x)?;
        let mut h = x.clone();
        let mut t = match dirs {
            Directions::Shared(v) => {
                let (k, d) = v.dims2()?;
                if d != self.cfg.input_dim {
                    return Err(ModelError::InvalidInput(format!(
                        "directions [{k}, {d}] do not match input dim"
                    )));
                }
                None
            }
            Directions::PerRow(v) => {
                let (_, vn, d) = v.dims3()?;
                if d != self.cfg.input_dim || vn != n {
                    return Err(ModelError::InvalidInput(format!(
                        "per-row directions {:?} do not match input [{n}, {}]",
                        v.dims(),
                        self.cfg.input_dim
                    )));
                }
                Some(v.clone())
            }
        };
        let n_hidden = self.layers.len() - 1;
        for layer in &self.layers[..n_hidden] {
            let z = Self::affine(layer, &h)?;
            let (hn, dz) = self.act(&z, true)?;
            let dz = dz.ok_or_else(|| ModelError::InvalidInput("missing derivative".into()))?;
            let wt = match (&t, dirs) {
                (Some(t), _) => Self::tangent_linear(layer, t)?,
                (None, Directions::Shared(v)) => {
                    // First layer with shared directions: W v is the same for every row.
                    let wv = v.matmul(&layer.w.t()?)?; // [k, out]
                    let (k, o) = wv.dims2()?;
                    wv.unsqueeze(1)?.broadcast_as((k, n, o))?
                }
                (None, Directions::PerRow(_)) => unreachable_dirs()?,
            };
            t = Some(wt.broadcast_mul(&dz.unsqueeze(0)?)?);
            h = hn;
        }
        let t = match (t, dirs) {
            (Some(t), _) => t,
            (None, Directions::Shared(v)) => {
                let (k, d) = v.dims2()?;
                v.unsqueeze(1)?.broadcast_as((k, n, d))?
            }
            (None, Directions::PerRow(_)) => unreachable_dirs()?,
        };
        Ok((h, t))
    }

    /// Values and Jacobian-vector products: returns `(y [n, out], T [k, n, out])` with
    /// `T[a, i, :] = (dy/dx)(x_i) v_a` (shared) or `(dy/dx)(x_i) v[a, i, :]` (per row).
    pub fn jvp(&self, x: &Tensor, dirs: Directions<'_>) -> Result<(Tensor, Tensor)> {
        let (h, t) = self.propagate_hidden(x, dirs)?;
        let out = &self.layers[self.layers.len() - 1];
        let y = Self::affine(out, &h)?;
        let t = Self::tangent_linear(out, &t.contiguous()?)?;
        Ok((y, t))
    }

    /// Values and the full input Jacobian: `(y [n, out], J [n, out, in])`,
    /// `J[i, j, a] = dy_j/dx_a (x_i)`.
    pub fn jacobian(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let eye = Tensor::eye(self.cfg.input_dim, self.dtype(), self.device())?;
        let (y, t) = self.jvp(x, Directions::Shared(&eye))?; // [in, n, out]
        Ok((y, t.permute((1, 2, 0))?.contiguous()?))
    }

    /// Values and the Jacobian diagonal `dy_j/dx_j` per row and coordinate
    /// (`input_dim == output_dim`): `(y [n, d], D [d, n])`, feature-major. One forward pass
    /// with the `d` unit tangents, like the full Jacobian, but without materialising it.
    pub fn value_and_diag(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let d = self.cfg.input_dim;
        if self.cfg.output_dim != d {
            return Err(ModelError::InvalidConfig(format!(
                "a Jacobian diagonal needs a square Jacobian, network is {} -> {}",
                d, self.cfg.output_dim
            )));
        }
        let eye = Tensor::eye(d, self.dtype(), self.device())?;
        let (h, t) = self.propagate_hidden(x, Directions::Shared(&eye))?; // t: [d, n, m]
        let out = &self.layers[self.layers.len() - 1];
        let y = Self::affine(out, &h)?;
        // D[a, i] = sum_m T[a, i, m] W[a, m]: a batched [d, n, m] x [d, m, 1] matmul.
        let diag = t.contiguous()?.matmul(&out.w.unsqueeze(2)?)?.squeeze(2)?;
        Ok((y, diag))
    }

    /// Values and the Jacobian trace `sum_j dy_j/dx_j` per row (`input_dim == output_dim`):
    /// `(y [n, d], tr [n])`.
    pub fn value_and_trace(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (y, diag) = self.value_and_diag(x)?;
        Ok((y, diag.sum(0)?))
    }
}

fn unreachable_dirs<T>() -> Result<T> {
    Err(ModelError::InvalidInput(
        "internal: per-row tangents lost".into(),
    ))
}
