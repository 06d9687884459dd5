//! The model store: versioned model folders under `<models_dir>/<pipeline>/`, and the
//! [`Snapshot`] a version loads into.
//!
//! Layout: `<root>/v000001/score/model.{safetensors,json}` and, once labels allowed it,
//! `<root>/v000001/isotonic/` with `covariates.json`. `<root>` is a folder or an object-store
//! prefix (`retrain.models_dir = "s3://bucket/models"`). Locally a version is written into a
//! temporary folder and renamed into place; on an object store its files are put into a
//! sub-folder of the writer's own, then `_SUCCESS` naming it. Either way readers never see
//! half of one.
//!
//! Both the scorer ([`crate::scoring`]) and the trainer ([`crate::trainer`]) use this module;
//! neither imports the other.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use linewatch_models::checkpoint::TrainingInfo;
use linewatch_models::{IsotonicModel, ScoreModel};
use linewatch_sink::Location;

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

/// The object that completes a version on an object store (written last; Hadoop's and
/// Spark's convention for "this folder is whole"). It holds the name of the sub-folder the
/// version's files are in: two replicas that train at once and pick the same version name
/// each upload into their own sub-folder, and the version is whichever `_SUCCESS` landed
/// last, never a mix of two models' files.
pub const VERSION_COMPLETE: &str = "_SUCCESS";

/// Whether `name` is a version name (`v` and six digits).
fn is_version(name: &str) -> bool {
    name.len() == 7 && name.starts_with('v') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Complete versions under `root`, sorted oldest first: folders named `v000001`,
/// `v000002`, ... (locally a version folder appears by rename, so every one is complete;
/// on an object store a version counts once its [`VERSION_COMPLETE`] object exists).
pub fn list_versions(root: &Location) -> anyhow::Result<Vec<(String, Location)>> {
    let mut out = Vec::new();
    if let Some(dir) = root.as_local() {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().to_string();
            if is_version(&name) {
                out.push((name.clone(), root.join(&name)));
            }
        }
    } else {
        for listed in root
            .list()
            .with_context(|| format!("listing the model versions under {root}"))?
        {
            if let Some((name, VERSION_COMPLETE)) = listed.relative.split_once('/')
                && is_version(name)
            {
                out.push((name.to_string(), root.join(name)));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The name the next version under `root` gets (`v000001` when there is none). On an object
/// store an incomplete version (a save cut short) gets its number again and is overwritten.
pub fn next_version(root: &Location) -> anyhow::Result<String> {
    let last = list_versions(root)?
        .last()
        .and_then(|(v, _)| v[1..].parse::<u32>().ok())
        .unwrap_or(0);
    Ok(format!("v{:06}", last + 1))
}

/// Writes a version atomically: locally into a temporary folder, then renamed into place; on
/// an object store every file is put (each atomically), then [`VERSION_COMPLETE`], so
/// readers never see half of one. Returns where the version is.
pub fn save_snapshot(
    root: &Location,
    version: &str,
    score: &ScoreModel,
    iso: Option<&IsotonicModel>,
    covariates: &[usize],
    meta: &TrainingInfo,
) -> anyhow::Result<Location> {
    let write_into = |dir: &Path| -> anyhow::Result<()> {
        score.save(&dir.join("score"), meta)?;
        if let Some(iso) = iso {
            iso.save(&dir.join("isotonic"), meta)?;
            std::fs::write(
                dir.join("isotonic").join("covariates.json"),
                serde_json::to_vec(covariates)?,
            )?;
        }
        Ok(())
    };
    let target = root.join(version);
    if let Some(root_dir) = root.as_local() {
        std::fs::create_dir_all(root_dir)
            .with_context(|| format!("creating {}", root_dir.display()))?;
        let tmp = root_dir.join(format!(".tmp-{version}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        write_into(&tmp)?;
        let dir = root_dir.join(version);
        std::fs::rename(&tmp, &dir).with_context(|| format!("publishing {}", dir.display()))?;
        return Ok(target);
    }
    let staging = Staging::new(version)?;
    write_into(staging.path())?;
    let writer = staging.unique_name();
    for file in Location::local(staging.path()).list()? {
        let bytes = file
            .location
            .get()
            .with_context(|| format!("reading back {}", file.location))?
            .to_vec();
        target
            .join(&format!("{writer}/{}", file.relative))
            .put(bytes)
            .with_context(|| format!("uploading {version}/{}", file.relative))?;
    }
    target
        .join(VERSION_COMPLETE)
        .put(writer.into_bytes())
        .with_context(|| format!("completing {target}"))?;
    Ok(target)
}

/// Loads and checks a version (its features must be the pipeline's). A version on an object
/// store is downloaded into a temporary folder first.
pub fn load_snapshot(
    dir: &Location,
    version: &str,
    feature_names: &[String],
) -> anyhow::Result<Snapshot> {
    if let Some(local) = dir.as_local() {
        return load_local(local, version, feature_names);
    }
    let complete = dir.join(VERSION_COMPLETE).get()?;
    let writer = std::str::from_utf8(&complete)
        .ok()
        .filter(|w| !w.is_empty() && !w.contains(['/', '.']))
        .with_context(|| format!("{dir}/{VERSION_COMPLETE} does not name the version's folder"))?;
    let files = dir.join(writer);
    let staging = Staging::new(version)?;
    for file in files.list().with_context(|| format!("listing {files}"))? {
        let to = staging.path().join(&file.relative);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&to, file.location.get()?)?;
    }
    load_local(staging.path(), version, feature_names)
}

fn load_local(dir: &Path, version: &str, feature_names: &[String]) -> anyhow::Result<Snapshot> {
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

/// A local temporary folder for a version on its way to or from an object store, removed
/// when dropped.
struct Staging(PathBuf);

impl Staging {
    fn new(version: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "linewatch-model-{version}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Staging(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// The folder's name (`linewatch-model-<version>-<pid>-<nanos>`), unique per writer.
    fn unique_name(&self) -> String {
        self.0
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads the newest valid version under `root` (`<root>/<version>/`); invalid ones are skipped
/// with a warning and never served.
pub fn load_newest(root: &Location, feature_names: &[String]) -> anyhow::Result<Option<Snapshot>> {
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
        let root = Location::local(dir.path());
        assert_eq!(next_version(&root).unwrap(), "v000001");
        for v in ["v000002", "v000010", "not-a-version", ".tmp-v000011-1"] {
            std::fs::create_dir_all(dir.path().join(v)).unwrap();
        }
        let names: Vec<String> = list_versions(&root)
            .unwrap()
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(names, vec!["v000002", "v000010"]);
        assert_eq!(next_version(&root).unwrap(), "v000011");
    }

    #[test]
    fn no_folder_means_no_version_and_invalid_versions_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Location::local(dir.path().join("absent"));
        assert!(list_versions(&missing).unwrap().is_empty());
        assert!(load_newest(&missing, &[]).unwrap().is_none());
        // A version folder without a model in it is skipped, not an error.
        std::fs::create_dir_all(dir.path().join("v000001")).unwrap();
        assert!(
            load_newest(&Location::local(dir.path()), &["a".into()])
                .unwrap()
                .is_none()
        );
    }

    fn tiny_model(seed: f64) -> ScoreModel {
        let m = crate::config::ModelSection {
            hidden: Some(vec![4]),
            epochs: 2,
            ..Default::default()
        };
        let rows: Vec<f64> = (0..400).map(|i| ((i as f64) * 0.37 + seed).sin()).collect();
        crate::trainer::train_score_model(&m, &rows, &["a".into(), "b".into()], 1.0).unwrap()
    }

    #[test]
    fn versions_on_an_object_store_appear_whole_and_never_mix_two_writers() {
        let root = Location::in_memory().join("models/press");
        let names = ["a".to_string(), "b".to_string()];
        let meta = TrainingInfo::default();
        let (first, second) = (tiny_model(0.0), tiny_model(1.0));
        assert_eq!(next_version(&root).unwrap(), "v000001");
        // Two replicas pick the same name and upload at once: the version is one of them.
        save_snapshot(&root, "v000001", &first, None, &[], &meta).unwrap();
        save_snapshot(&root, "v000001", &second, None, &[], &meta).unwrap();
        let versions = list_versions(&root).unwrap();
        assert_eq!(versions.len(), 1);
        let loaded = load_snapshot(&versions[0].1, "v000001", &names).unwrap();
        assert_eq!(loaded.threshold(), second.threshold());
        assert_eq!(next_version(&root).unwrap(), "v000002");
        // Files without `_SUCCESS` (a save cut short) are not a version.
        root.join("v000002/w/score/model.json")
            .put(b"{}".to_vec())
            .unwrap();
        assert_eq!(list_versions(&root).unwrap().len(), 1);
        let newest = load_newest(&root, &names).unwrap().unwrap();
        assert_eq!(newest.version, "v000001");
        // The pipeline's features must match.
        assert!(load_snapshot(&versions[0].1, "v000001", &["x".into()]).is_err());
    }

    #[test]
    fn the_isotonic_row_is_the_score_then_the_covariates() {
        let row = iso_input(2.5, &[1.0, 2.0, 3.0], &[2, 0, 7]);
        assert_eq!(&row[..3], &[2.5, 3.0, 1.0]);
        assert!(row[3].is_nan());
    }
}
