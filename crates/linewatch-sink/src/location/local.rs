//! The local file system side of [`Location`]: atomic writes (temporary file, `fsync`,
//! rename, directory `fsync`) and recursive listing.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::Path;

use super::{Listed, Location};
use crate::TMP_PREFIX;
use crate::error::{Result, SinkError};

/// Temporary file, write, `fsync`, rename, directory `fsync` (creating missing parents).
pub(super) fn put_local(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() && !dir.is_dir() {
        create_dirs_durably(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!("{TMP_PREFIX}{name}.partial"));
    let result = (|| -> Result<()> {
        let mut f = File::create(&tmp).map_err(SinkError::io(&tmp))?;
        f.write_all(bytes).map_err(SinkError::io(&tmp))?;
        f.sync_all().map_err(SinkError::io(&tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(SinkError::io(path))?;
        sync_dir(dir)
    })();
    if result.is_err()
        && let Err(rm) = fs::remove_file(&tmp)
        && rm.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %tmp.display(), error = %rm, "could not remove temporary file");
    }
    result
}

pub(super) fn list_local(root: &Path, dir: &Path, out: &mut Vec<Listed>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SinkError::io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(SinkError::io(dir))?;
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            list_local(root, &path, out)?;
        } else if kind.is_file() {
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let Some(relative) = rel
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect::<Option<Vec<_>>>()
                .map(|v| v.join("/"))
            else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(Listed {
                location: Location::local(path),
                relative,
                size,
            });
        }
    }
    Ok(())
}

/// Creates `dir` and fsyncs each parent whose entry list changed.
pub(crate) fn create_dirs_durably(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.is_dir() {
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => cur = p,
            _ => break,
        }
    }
    fs::create_dir_all(dir).map_err(SinkError::io(dir))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Makes a directory's entries (a rename, a new file) durable.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SinkError::io(dir))
}

/// Directories cannot be opened for fsync here; renames are made durable by the OS.
#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}
