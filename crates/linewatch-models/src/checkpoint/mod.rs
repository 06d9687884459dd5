//! Checkpoints: a directory with `model.safetensors` (weights) and `model.json` (metadata).
//!
//! Both files are written to a temporary name, fsynced and renamed, weights first, so a
//! directory whose `model.json` exists holds complete weights. Loading checks the format
//! version, the kind, every tensor's presence and shape against the stored configuration,
//! and the metadata values; any failure is a typed [`ModelError::Checkpoint`], never a panic.
//!
//! [`ModelError::Checkpoint`]: crate::ModelError::Checkpoint

mod files;
mod meta;
mod models;
pub(crate) mod nonfinite;

use std::path::Path;

use candle_core::Device;

use crate::error::Result;
use crate::isotonic::IsotonicModel;
use crate::pava::Pava;
use crate::score::ScoreModel;

pub use files::read_meta;
pub use meta::{IsoState, ModelKind, ModelMeta, PavaState, ScoreState, TrainingInfo};

/// Format version written by this build (and the only one it reads).
pub const FORMAT_VERSION: u32 = 2;
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Metadata file name.
pub const META_FILE: &str = "model.json";
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
