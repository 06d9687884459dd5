//! Checks a run makes before it starts, so that an output it cannot write fails at once with
//! the path and the reason, not after the whole run (issue 12: `--faults-out` into a missing
//! folder failed only after everything was produced).

use std::path::Path;

use anyhow::Context as _;

/// Creates `dir` (and its parents) if needed and proves it writable by creating and removing
/// a probe file in it. `what` names the setting or flag in the error (`sink.out`, `--out`).
///
/// # Errors
/// The folder cannot be created (a file of that name, no permission, a read-only file
/// system) or a file cannot be created in it.
pub fn ensure_writable_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{what}: cannot create the folder {}", dir.display()))?;
    let probe = dir.join(format!(".linewatch-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .with_context(|| format!("{what}: the folder {} is not writable", dir.display()))?;
    std::fs::remove_file(&probe)
        .with_context(|| format!("{what}: cannot remove {}", probe.display()))?;
    Ok(())
}

/// [`ensure_writable_dir`] for a location that may be an object-store prefix: there, a
/// probe object (`_state/write-check-<pid>`) is put and deleted, which proves the
/// credentials, the bucket and the permissions before the run starts.
///
/// # Errors
/// As [`ensure_writable_dir`]; for an object store, the put or the delete failing.
pub fn ensure_writable(location: &linewatch_sink::Location, what: &str) -> anyhow::Result<()> {
    if let Some(dir) = location.as_local() {
        return ensure_writable_dir(dir, what);
    }
    let probe = location.join(&format!("_state/write-check-{}", std::process::id()));
    probe
        .put(b"linewatch write check".to_vec())
        .with_context(|| format!("{what}: cannot write to {location}"))?;
    probe
        .delete()
        .with_context(|| format!("{what}: cannot delete {probe}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_missing_folder_is_created_and_left_clean() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b");
        ensure_writable_dir(&out, "--out").unwrap();
        assert!(out.is_dir());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    }

    #[test]
    fn a_file_in_the_way_is_an_error_naming_the_setting_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("taken");
        std::fs::write(&file, b"x").unwrap();
        let err = format!(
            "{:#}",
            ensure_writable_dir(&file.join("out"), "sink.out").unwrap_err()
        );
        assert!(
            err.starts_with("sink.out: cannot create the folder"),
            "{err}"
        );
        assert!(err.contains("taken"), "{err}");
    }
}
