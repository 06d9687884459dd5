//! Where tables, ack markers and models live: a local directory or a prefix in an object
//! store (S3, GCS, Azure Blob), behind one type, [`Location`].
//!
//! A location is parsed from what a user writes in `sink.out` or `retrain.models_dir`:
//!
//! | written | store |
//! |---|---|
//! | `./out`, `/data/out`, `file:///data/out` | the local file system |
//! | `s3://bucket/prefix` (also `s3a://`) | Amazon S3 or an S3-compatible server |
//! | `gs://bucket/prefix` | Google Cloud Storage |
//! | `az://container/prefix` (also `abfs://`, `abfss://`) | Azure Blob Storage |
//!
//! Credentials and endpoints come from the environment through the `object_store` crate's
//! `from_env` builders (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, `AWS_ENDPOINT`, web identity,
//! instance metadata; `GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_APPLICATION_CREDENTIALS`;
//! `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, managed identity).
//!
//! Every write is atomic: locally a temporary file, `fsync`, rename and directory `fsync`; on
//! an object store one PUT, or a multipart upload above [`MULTIPART_THRESHOLD`] bytes, which
//! is visible only once completed. A crash therefore never leaves a partial object behind
//! (an interrupted multipart upload leaves invisible parts, which a bucket lifecycle rule
//! aborts).
//!
//! The object-store calls are asynchronous; this module runs them on a small runtime of its
//! own ([`block_on`]) so that the sink's API stays synchronous and may be called from inside
//! or outside a Tokio runtime.

use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use crate::error::{Result, SinkError};
pub(crate) use local::create_dirs_durably;
use local::{list_local, put_local};

/// Objects larger than this (bytes) are uploaded in parts of this size (8 MiB).
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;

/// A directory or file: local, or a key (prefix) in an object store. Cheap to clone.
#[derive(Clone)]
pub struct Location {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Local(PathBuf),
    Object {
        store: Arc<dyn ObjectStore>,
        /// `scheme://bucket`, for display.
        base: Arc<str>,
        path: ObjPath,
    },
}

/// One object found by [`Location::list`].
#[derive(Clone, Debug)]
pub struct Listed {
    /// Where it is.
    pub location: Location,
    /// Its path relative to the listed location, `/`-separated.
    pub relative: String,
    /// Its size in bytes.
    pub size: u64,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backend {
            Backend::Local(p) => write!(f, "{}", p.display()),
            Backend::Object { base, path, .. } => write!(f, "{base}/{path}"),
        }
    }
}

impl PartialEq for Location {
    fn eq(&self, other: &Self) -> bool {
        match (&self.backend, &other.backend) {
            (Backend::Local(a), Backend::Local(b)) => a == b,
            (
                Backend::Object {
                    store: s1,
                    path: p1,
                    ..
                },
                Backend::Object {
                    store: s2,
                    path: p2,
                    ..
                },
            ) => Arc::ptr_eq(s1, s2) && p1 == p2,
            _ => false,
        }
    }
}

impl Eq for Location {}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::local(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::local(p)
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Location::local(p)
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Self {
        l.clone()
    }
}

impl Location {
    /// A local directory or file.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Location {
            backend: Backend::Local(path.into()),
        }
    }

    /// A setting that holds a path or a URL (`sink.out = "s3://…"` read into a `PathBuf`):
    /// parsed as a URL when it contains `://`, taken as a local path otherwise (also when it
    /// is not UTF-8). Errors as [`Location::parse`].
    pub fn from_path_or_url(path: &Path) -> Result<Self> {
        match path.to_str() {
            Some(text) if text.contains("://") => Location::parse(text),
            _ if path.as_os_str().is_empty() => Err(SinkError::InvalidLocation {
                location: String::new(),
                reason: "empty".into(),
            }),
            _ => Ok(Location::local(path)),
        }
    }

    /// The root of a fresh in-memory object store (`memory://`): for tests, which exercise
    /// the object-store code paths without a server.
    pub fn in_memory() -> Self {
        Location {
            backend: Backend::Object {
                store: Arc::new(object_store::memory::InMemory::new()),
                base: Arc::from("memory:/"),
                path: ObjPath::default(),
            },
        }
    }

    /// Parses a local path or a `file://`, `s3://`, `s3a://`, `gs://`, `az://`, `abfs://` or
    /// `abfss://` URL (see the module docs). Builds the store client, which reads its
    /// credentials from the environment; nothing is contacted yet.
    ///
    /// Errors: [`SinkError::InvalidLocation`] for an unparsable URL, an unknown scheme or
    /// a store the environment cannot configure (e.g. no region for S3).
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: String| SinkError::InvalidLocation {
            location: text.to_owned(),
            reason,
        };
        let Some((scheme, _)) = text.split_once("://") else {
            if text.trim().is_empty() {
                return Err(invalid("empty".into()));
            }
            return Ok(Location::local(text));
        };
        let url = url::Url::parse(text).map_err(|e| invalid(e.to_string()))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "file" {
            let path = url
                .to_file_path()
                .map_err(|()| invalid("not an absolute local path".into()))?;
            return Ok(Location::local(path));
        }
        let bucket = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("no bucket or container".into()))?;
        let store: Arc<dyn ObjectStore> = match scheme.as_str() {
            "s3" | "s3a" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(text)
                    .build()
                    .map_err(|e| invalid(e.to_string()))?,
            ),
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(text)
                    .build()
                    .map_err(|e| invalid(e.to_string()))?,
            ),
            "az" | "abfs" | "abfss" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(text)
                    .build()
                    .map_err(|e| invalid(e.to_string()))?,
            ),
            other => {
                return Err(invalid(format!(
                    "unknown scheme `{other}` (expected a path or file://, s3://, gs://, az://)"
                )));
            }
        };
        let path = ObjPath::from_url_path(url.path()).map_err(|e| invalid(e.to_string()))?;
        Ok(Location {
            backend: Backend::Object {
                store,
                base: Arc::from(format!("{scheme}://{bucket}")),
                path,
            },
        })
    }

    /// The local path, when this location is on the local file system.
    pub fn as_local(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Local(p) => Some(p),
            Backend::Object { .. } => None,
        }
    }

    /// `relative` (`/`-separated, no `.` or `..` segments) below this location.
    pub fn join(&self, relative: &str) -> Location {
        let parts = relative.split('/').filter(|s| !s.is_empty());
        match &self.backend {
            Backend::Local(p) => {
                let mut p = p.clone();
                for s in parts {
                    p.push(s);
                }
                Location::local(p)
            }
            Backend::Object { store, base, path } => {
                let mut path = path.clone();
                for s in parts {
                    path = path.child(s);
                }
                Location {
                    backend: Backend::Object {
                        store: store.clone(),
                        base: base.clone(),
                        path,
                    },
                }
            }
        }
    }

    /// The last segment (file or folder name).
    pub fn name(&self) -> Option<String> {
        match &self.backend {
            Backend::Local(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
            Backend::Object { path, .. } => path.filename().map(str::to_owned),
        }
    }

    /// Makes sure a local directory exists (object stores have no directories).
    pub fn create_dir_all(&self) -> Result<()> {
        if let Backend::Local(p) = &self.backend {
            fs::create_dir_all(p).map_err(SinkError::io(p))?;
        }
        Ok(())
    }

    /// Writes `bytes` here atomically: readers see the old content or all of the new one,
    /// and a crash leaves no partial object (see the module docs). Creates local parent
    /// directories.
    pub fn put(&self, bytes: Vec<u8>) -> Result<()> {
        match &self.backend {
            Backend::Local(p) => put_local(p, &bytes),
            Backend::Object { store, path, .. } => {
                let (store, path) = (store.clone(), path.clone());
                block_on(async move {
                    if bytes.len() <= MULTIPART_THRESHOLD {
                        store.put(&path, PutPayload::from(bytes)).await.map(|_| ())
                    } else {
                        let upload = store.put_multipart(&path).await?;
                        let mut writer =
                            WriteMultipart::new_with_chunk_size(upload, MULTIPART_THRESHOLD);
                        writer.write(&bytes);
                        writer.finish().await.map(|_| ())
                    }
                })?
                .map_err(|e| self.store_error(e))
            }
        }
    }

    /// The whole content. A missing object or file is [`SinkError::NotFound`].
    pub fn get(&self) -> Result<Bytes> {
        match &self.backend {
            Backend::Local(p) => match fs::read(p) {
                Ok(v) => Ok(Bytes::from(v)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(SinkError::NotFound(self.to_string()))
                }
                Err(e) => Err(SinkError::io(p)(e)),
            },
            Backend::Object { store, path, .. } => {
                let (store, path) = (store.clone(), path.clone());
                block_on(async move { store.get(&path).await?.bytes().await })?
                    .map_err(|e| self.store_error(e))
            }
        }
    }

    /// Bytes `start..end` of the content, `end` at most the size.
    pub fn get_range(&self, start: u64, end: u64) -> Result<Bytes> {
        match &self.backend {
            Backend::Local(p) => {
                use std::io::{Read as _, Seek as _, SeekFrom};
                let mut f = File::open(p).map_err(SinkError::io(p))?;
                f.seek(SeekFrom::Start(start)).map_err(SinkError::io(p))?;
                let mut buf = vec![0u8; end.saturating_sub(start) as usize];
                f.read_exact(&mut buf).map_err(SinkError::io(p))?;
                Ok(Bytes::from(buf))
            }
            Backend::Object { store, path, .. } => {
                let (store, path) = (store.clone(), path.clone());
                block_on(async move { store.get_range(&path, start..end).await })?
                    .map_err(|e| self.store_error(e))
            }
        }
    }

    /// The size in bytes.
    pub fn size(&self) -> Result<u64> {
        match &self.backend {
            Backend::Local(p) => Ok(fs::metadata(p).map_err(SinkError::io(p))?.len()),
            Backend::Object { store, path, .. } => {
                let (store, path) = (store.clone(), path.clone());
                Ok(block_on(async move { store.head(&path).await })?
                    .map_err(|e| self.store_error(e))?
                    .size)
            }
        }
    }

    /// Deletes the file or object (a missing one is not an error).
    pub fn delete(&self) -> Result<()> {
        match &self.backend {
            Backend::Local(p) => match fs::remove_file(p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(SinkError::io(p)(e)),
            },
            Backend::Object { store, path, .. } => {
                let (store, path) = (store.clone(), path.clone());
                match block_on(async move { store.delete(&path).await })? {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.store_error(e)),
                }
            }
        }
    }

    /// Every file or object below this location, recursively, sorted by relative path. A
    /// missing directory or prefix lists as empty. Local symlinks are not followed; local
    /// temporary files (`.tmp-*`) are listed like any file.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut out = match &self.backend {
            Backend::Local(root) => {
                let mut out = Vec::new();
                list_local(root, root, &mut out)?;
                out
            }
            Backend::Object { store, base, path } => {
                let (s, prefix) = (store.clone(), path.clone());
                let metas: Vec<object_store::ObjectMeta> =
                    block_on(async move { s.list(Some(&prefix)).try_collect().await })?
                        .map_err(|e| self.store_error(e))?;
                let root_parts = path.parts().count();
                metas
                    .into_iter()
                    .map(|m| {
                        let relative = m
                            .location
                            .parts()
                            .skip(root_parts)
                            .map(|p| p.as_ref().to_owned())
                            .collect::<Vec<_>>()
                            .join("/");
                        Listed {
                            location: Location {
                                backend: Backend::Object {
                                    store: store.clone(),
                                    base: base.clone(),
                                    path: m.location,
                                },
                            },
                            relative,
                            size: m.size,
                        }
                    })
                    .collect()
            }
        };
        out.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(out)
    }

    fn store_error(&self, source: object_store::Error) -> SinkError {
        match source {
            object_store::Error::NotFound { .. } => SinkError::NotFound(self.to_string()),
            source => {
                // The text, then each cause the text does not already hold (the client's
                // outer errors often say only "HTTP error: builder error").
                let mut message = source.to_string();
                let mut cause = std::error::Error::source(&source);
                while let Some(c) = cause {
                    let text = c.to_string();
                    if !message.contains(&text) {
                        message.push_str(": ");
                        message.push_str(&text);
                    }
                    cause = c.source();
                }
                if message.contains("URL scheme is not allowed") {
                    message.push_str(" (an http:// endpoint needs AWS_ALLOW_HTTP=true)");
                }
                SinkError::Store {
                    location: self.to_string(),
                    message,
                }
            }
        }
    }
}

/// Runs an object-store future to completion on the sink's own I/O runtime (two worker
/// threads, started on first use) and waits for its result on a plain channel, blocking the
/// calling thread, which may be a Tokio worker: the future never runs there, and nothing of
/// the caller's runtime (its cooperative budget, its driver) is involved in the wait.
///
/// Errors: [`SinkError::Runtime`] if the runtime cannot start or the task panicked.
pub fn block_on<F, T>(future: F) -> Result<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    let rt = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("linewatch-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| SinkError::Runtime(format!("the object-store runtime did not start: {e}")))?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        // The receiver waits for this send; it is gone only if the caller's thread died.
        let _ = tx.send(future.await);
    });
    rx.recv().map_err(|_| {
        SinkError::Runtime("an object-store task ended without a result (it panicked)".into())
    })
}

mod local;
#[cfg(test)]
mod tests;
