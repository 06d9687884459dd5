//! The model store: versioned model folders under `<models_dir>/<pipeline>/`, and the
//! [`Snapshot`] a version loads into.
//!
//! Layout: `<root>/v000001/score/model.{safetensors,json}` and, once labels allowed it,
//! `<root>/v000001/isotonic/` with `covariates.json`. A version is written into a temporary
//! folder and renamed into place, so readers never see half of one.
//!
//! Both the scorer ([`crate::scoring`]) and the trainer ([`crate::trainer`]) use this module;
//! neither imports the other.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use linewatch_models::checkpoint::TrainingInfo;
use linewatch_models::{IsotonicModel, ScoreModel};

/// One model version as served: the score model and, once labels allowed it, the isotonic one.
pub struct Snapshot {
    /// The version's folder name (`v000001`, ...).
    pub version: String,
    /// The score model (anomaly score, threshold, contributions).
    pub score: ScoreModel,
    /// The isotonic model (defect probability), once enough labels arrived.
    pub iso: Option<IsotonicModel>,
    /// Feature columns (indices into the window features) that are the isotonic covariates.
    pub iso_covariates: Vec<usize>,
}

impl Snapshot {
    /// The score model's alert threshold.
    pub fn threshold(&self) -> f64 {
        self.score.threshold()
    }
}

/// The isotonic model's input row: the anomaly score, then the covariates (NaN where a
/// covariate index is out of range). The trainer builds training rows and the scorer serving
/// rows with it, so both agree with the covariates saved beside the model.
pub fn iso_input(anomaly: f64, features: &[f64], covariates: &[usize]) -> Vec<f64> {
    let mut v = Vec::with_capacity(1 + covariates.len());
    v.push(anomaly);
    v.extend(
        covariates
            .iter()
            .map(|&j| features.get(j).copied().unwrap_or(f64::NAN)),
    );
    v
}

/// Versions under `root`, sorted oldest first: folders named `v000001`, `v000002`, ...
pub fn list_versions(root: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.len() == 7 && name.starts_with('v') && name[1..].bytes().all(|b| b.is_ascii_digit())
        {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The name the next version under `root` gets (`v000001` when there is none).
pub fn next_version(root: &Path) -> anyhow::Result<String> {
    let last = list_versions(root)?
        .last()
        .and_then(|(v, _)| v[1..].parse::<u32>().ok())
        .unwrap_or(0);
    Ok(format!("v{:06}", last + 1))
}

/// Writes a version atomically: into a temporary folder, then renamed into place.
pub fn save_snapshot(
    root: &Path,
    version: &str,
    score: &ScoreModel,
    iso: Option<&IsotonicModel>,
    covariates: &[usize],
    meta: &TrainingInfo,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let tmp = root.join(format!(".tmp-{version}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    score.save(&tmp.join("score"), meta)?;
    if let Some(iso) = iso {
        iso.save(&tmp.join("isotonic"), meta)?;
        std::fs::write(
            tmp.join("isotonic").join("covariates.json"),
            serde_json::to_vec(covariates)?,
        )?;
    }
    let dir = root.join(version);
    std::fs::rename(&tmp, &dir).with_context(|| format!("publishing {}", dir.display()))?;
    Ok(dir)
}

/// Loads and checks a version (its features must be the pipeline's).
pub fn load_snapshot(
    dir: &Path,
    version: &str,
    feature_names: &[String],
) -> anyhow::Result<Snapshot> {
    let device = linewatch_models::device::DeviceSpec::Cpu.resolve()?;
    let score = ScoreModel::load(&dir.join("score"), &device)?;
    if score.feature_names() != feature_names {
        anyhow::bail!("model features differ from the pipeline's window features");
    }
    let iso_dir = dir.join("isotonic");
    let (iso, iso_covariates) = if iso_dir.exists() {
        let covariates: Vec<usize> =
            serde_json::from_slice(&std::fs::read(iso_dir.join("covariates.json"))?)?;
        (Some(IsotonicModel::load(&iso_dir, &device)?), covariates)
    } else {
        (None, Vec::new())
    };
    Ok(Snapshot {
        version: version.to_string(),
        score,
        iso,
        iso_covariates,
    })
}

/// Loads the newest valid version under `root` (`<root>/<version>/`); invalid ones are skipped
/// with a warning and never served.
pub fn load_newest(root: &Path, feature_names: &[String]) -> anyhow::Result<Option<Snapshot>> {
    for (version, dir) in list_versions(root)?.into_iter().rev() {
        match load_snapshot(&dir, &version, feature_names) {
            Ok(s) => return Ok(Some(s)),
            Err(e) => tracing::warn!(version, error = %e, "skipping invalid model version"),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_listed_in_order_and_numbered_on() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_version(dir.path()).unwrap(), "v000001");
        for v in ["v000002", "v000010", "not-a-version", ".tmp-v000011-1"] {
            std::fs::create_dir_all(dir.path().join(v)).unwrap();
        }
        let names: Vec<String> = list_versions(dir.path())
            .unwrap()
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(names, vec!["v000002", "v000010"]);
        assert_eq!(next_version(dir.path()).unwrap(), "v000011");
    }

    #[test]
    fn no_folder_means_no_version_and_invalid_versions_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        assert!(list_versions(&missing).unwrap().is_empty());
        assert!(load_newest(&missing, &[]).unwrap().is_none());
        // A version folder without a model in it is skipped, not an error.
        std::fs::create_dir_all(dir.path().join("v000001")).unwrap();
        assert!(load_newest(dir.path(), &["a".into()]).unwrap().is_none());
    }

    #[test]
    fn the_isotonic_row_is_the_score_then_the_covariates() {
        let row = iso_input(2.5, &[1.0, 2.0, 3.0], &[2, 0, 7]);
        assert_eq!(&row[..3], &[2.5, 3.0, 1.0]);
        assert!(row[3].is_nan());
    }
}
