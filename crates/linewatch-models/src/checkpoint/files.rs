//! Writing and reading a checkpoint directory: atomic writes, the metadata and weights files,
//! and the typed errors that name the file at fault.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use chrono::Utc;

use crate::error::{CheckpointError, ModelError, Result};

use super::{FORMAT_VERSION, META_FILE, ModelKind, ModelMeta, TrainingInfo, WEIGHTS_FILE};

pub(super) fn ck(path: &Path, source: CheckpointError) -> ModelError {
    ModelError::Checkpoint {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_lowercase()
}

pub(super) fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    write(&tmp)?;
    let f = std::fs::File::open(&tmp).map_err(|e| ck(&tmp, e.into()))?;
    f.sync_all().map_err(|e| ck(&tmp, e.into()))?;
    std::fs::rename(&tmp, path).map_err(|e| ck(path, e.into()))?;
    Ok(())
}

pub(super) fn save_dir(
    dir: &Path,
    tensors: HashMap<String, Tensor>,
    meta: &ModelMeta,
) -> Result<()> {
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

pub(super) fn read_weights(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| ck(&path, e.into()))?;
    candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| ck(&path, CheckpointError::CorruptWeights(e.to_string())))
}

pub(super) fn expect_kind(dir: &Path, meta: &ModelMeta, kind: ModelKind) -> Result<()> {
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

pub(super) fn invalid(dir: &Path, msg: impl Into<String>) -> ModelError {
    ck(
        &dir.join(META_FILE),
        CheckpointError::InvalidMetadata(msg.into()),
    )
}

pub(super) fn base_meta(
    kind: ModelKind,
    device: String,
    names: &[String],
    info: &TrainingInfo,
) -> ModelMeta {
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
