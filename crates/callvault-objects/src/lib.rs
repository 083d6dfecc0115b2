//! The object storage tier: recordings in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW,
//! Wasabi…), behind our own small surface so the rest of callvault never sees `object_store`.
//!
//! # Design
//! - **What it does, and only that**: upload a closed leg file, checked against the SHA-256 the
//!   catalog kept at its close ([`Objects::upload_file`]); put a small document
//!   ([`Objects::put_bytes`]); read any byte range of an object ([`Objects::get_range`], and
//!   [`BlockingObject`] for the API's audio code, which reads files on tokio's blocking pool);
//!   delete a recording's objects ([`Objects::delete_under`]). Queues, retries and back-off are
//!   the caller's (the binary keeps its queue in the catalog).
//! - **Keys mirror the data directory**: a leg at `recordings/2026/12/03/<id>/1.wav` is the
//!   object `<prefix>/recordings/2026/12/03/<id>/1.wav`, so a recording's objects share one
//!   key prefix and an operator finds them the way they find its folder.
//! - **Large files go in parts** ([`PART_SIZE`], S3's minimum being 5 MiB), a few in flight at
//!   once; the file is hashed as it is read, and the upload is completed only when the digest
//!   matches: a file that changed since its close never becomes an object (the multipart upload
//!   is aborted). The digest is also stored with the object (`x-amz-meta-sha256`).
//! - **Credentials** come from the `AWS_*` variables the caller hands over (the binary passes
//!   its environment's; this crate reads none) and otherwise from the AWS chain `object_store`
//!   implements: web identity tokens (EKS), the ECS task role, the EC2 instance profile.
//! - `object_store` retries a failed request twice within 10 s here, not its default three
//!   minutes: the caller's queue retries with its own back-off, and a stalled upload must not
//!   hold its worker for minutes.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

use std::io::Read as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    RetryConfig, WriteMultipart,
};
use sha2::{Digest as _, Sha256};

/// Bytes per part of a multipart upload (and the size above which a file goes in parts).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// The least a [`BlockingObject`] fetches per request (read-ahead for sequential readers).
const READ_AHEAD: u64 = 1024 * 1024;

/// One error type for the crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("object storage settings: {reason}")]
    Settings { reason: String },
    #[error("object {key}: {source}")]
    Store {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("object {key} not found")]
    NotFound { key: String },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file no longer hashes to the digest kept at its close: it was not uploaded.
    #[error("{path} hashes to {actual}, not the {expected} kept at its close: not uploaded")]
    Digest {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("object {key} holds {actual} bytes after its upload, not {expected}")]
    Size {
        key: String,
        expected: u64,
        actual: u64,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn store(key: &Key, source: object_store::Error) -> Error {
        match source {
            object_store::Error::NotFound { .. } => Error::NotFound {
                key: key.to_string(),
            },
            source => Error::Store {
                key: key.to_string(),
                source,
            },
        }
    }

    /// Retrying cannot help: the file changed since its close.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Digest { .. })
    }
}

/// Where the bucket is and how to reach it (`[storage]` with `backend = "s3"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// Key prefix of every object (no leading or trailing `/` needed); may be empty.
    pub prefix: String,
    /// e.g. `eu-west-1`; `None`: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// e.g. `http://127.0.0.1:9000` for MinIO; `None`: AWS's own endpoint for the region.
    pub endpoint: Option<String>,
    /// Allow `http://` endpoints (a local S3 server); off: TLS only.
    pub allow_http: bool,
    /// The `AWS_*` variables of the process (credentials, region, session token, web identity
    /// token file…), as `object_store`'s `AmazonS3Builder::from_env` would read them.
    pub environment: Vec<(String, String)>,
}

/// A bucket and prefix; cheap to clone.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// `s3://bucket/prefix`, for logs.
    shown: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("at", &self.shown).finish()
    }
}

/// What [`Objects::upload_file`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub key: String,
    pub bytes: u64,
    /// Whether it went in parts.
    pub multipart: bool,
}

impl Objects {
    /// A client for the bucket of `settings`. Connects to nothing yet.
    pub fn s3(settings: &S3Settings) -> Result<Objects> {
        if settings.bucket.trim().is_empty() {
            return Err(Error::Settings {
                reason: "bucket is empty".to_owned(),
            });
        }
        let mut builder = AmazonS3Builder::new();
        for (name, value) in &settings.environment {
            if let Ok(key) = AmazonS3ConfigKey::from_str(&name.to_ascii_lowercase()) {
                builder = builder.with_config(key, value);
            }
        }
        builder = builder
            .with_bucket_name(&settings.bucket)
            .with_allow_http(settings.allow_http)
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120))
                    .with_allow_http(settings.allow_http),
            );
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &settings.endpoint {
            // A custom endpoint (MinIO, Ceph, moto) takes path-style requests.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| Error::Settings {
            reason: e.to_string(),
        })?;
        let prefix = settings.prefix.trim_matches('/').to_owned();
        Ok(Objects {
            store: Arc::new(store),
            shown: format!("s3://{}/{}", settings.bucket, prefix),
            prefix,
        })
    }

    /// A bucket in memory, for tests.
    pub fn in_memory(prefix: &str) -> Objects {
        let prefix = prefix.trim_matches('/').to_owned();
        Objects {
            store: Arc::new(object_store::memory::InMemory::new()),
            shown: format!("memory://{prefix}"),
            prefix,
        }
    }

    /// `s3://bucket/prefix`, for logs and `check-config`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The key of the object of `relative` (a path relative to the data dir).
    pub fn key_for(&self, relative: &str) -> String {
        let relative = relative.trim_start_matches('/');
        if self.prefix.is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    fn parse_key(key: &str) -> Result<Key> {
        Key::parse(key).map_err(|e| Error::Settings {
            reason: format!("object key {key:?}: {e}"),
        })
    }

    /// Uploads the file at `path` as the object of `relative`, if it hashes to `sha256` (hex):
    /// in one request up to [`PART_SIZE`], in parts above. Checks the object's size after.
    pub async fn upload_file(&self, path: &Path, relative: &str, sha256: &str) -> Result<Uploaded> {
        let key_text = self.key_for(relative);
        let key = Objects::parse_key(&key_text)?;
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || std::fs::File::open(path))
                .await
                .map_err(|e| io(std::io::Error::other(e)))?
                .map_err(io)?
        };
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata("sha256".into()),
            sha256.to_owned().into(),
        );
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut first = true;
        let mut upload: Option<WriteMultipart> = None;
        let mut whole: Option<Bytes> = None;
        loop {
            let (returned, chunk) = tokio::task::spawn_blocking(move || {
                let chunk = read_chunk(&mut file, PART_SIZE);
                (file, chunk)
            })
            .await
            .map_err(|e| io(std::io::Error::other(e)))?;
            file = returned;
            let chunk = chunk.map_err(io)?;
            let done = chunk.len() < PART_SIZE;
            hasher.update(&chunk);
            total += chunk.len() as u64;
            if first && done {
                whole = Some(Bytes::from(chunk));
                break;
            }
            first = false;
            if upload.is_none() {
                let multipart = self
                    .store
                    .put_multipart_opts(
                        &key,
                        PutMultipartOptions {
                            attributes: attributes.clone(),
                            ..PutMultipartOptions::default()
                        },
                    )
                    .await
                    .map_err(|e| Error::store(&key, e))?;
                upload = Some(WriteMultipart::new_with_chunk_size(multipart, PART_SIZE));
            }
            let writer = upload.as_mut().expect("created above");
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                if let Some(writer) = upload.take() {
                    let _ = writer.abort().await;
                }
                return Err(Error::store(&key, e));
            }
            writer.put(Bytes::from(chunk));
            if done {
                break;
            }
        }
        let actual = hex::encode(hasher.finalize());
        if !actual.eq_ignore_ascii_case(sha256) {
            if let Some(writer) = upload {
                let _ = writer.abort().await;
            }
            return Err(Error::Digest {
                path: path.to_owned(),
                expected: sha256.to_owned(),
                actual,
            });
        }
        let multipart = upload.is_some();
        match (upload, whole) {
            (Some(writer), _) => {
                writer.finish().await.map_err(|e| Error::store(&key, e))?;
            }
            (None, Some(bytes)) => {
                self.store
                    .put_opts(
                        &key,
                        PutPayload::from_bytes(bytes),
                        PutOptions {
                            attributes,
                            ..PutOptions::default()
                        },
                    )
                    .await
                    .map_err(|e| Error::store(&key, e))?;
            }
            (None, None) => unreachable!("a file is read at least once"),
        }
        let stored = self.len(&key_text).await?;
        if stored != total {
            return Err(Error::Size {
                key: key_text,
                expected: total,
                actual: stored,
            });
        }
        Ok(Uploaded {
            key: key_text,
            bytes: total,
            multipart,
        })
    }

    /// Stores `bytes` as the object of `relative` (a small document such as `recording.json`).
    pub async fn put_bytes(&self, relative: &str, bytes: impl Into<Bytes>) -> Result<String> {
        let key_text = self.key_for(relative);
        let key = Objects::parse_key(&key_text)?;
        self.store
            .put(&key, PutPayload::from_bytes(bytes.into()))
            .await
            .map_err(|e| Error::store(&key, e))?;
        Ok(key_text)
    }

    /// The object's length; [`Error::NotFound`] when there is none.
    pub async fn len(&self, key: &str) -> Result<u64> {
        let key = Objects::parse_key(key)?;
        let meta = self
            .store
            .head(&key)
            .await
            .map_err(|e| Error::store(&key, e))?;
        Ok(meta.size)
    }

    /// The bytes `range` of the object `key`.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let key = Objects::parse_key(key)?;
        self.store
            .get_range(&key, range)
            .await
            .map_err(|e| Error::store(&key, e))
    }

    /// The whole object (tests and small documents).
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let key = Objects::parse_key(key)?;
        let result = self
            .store
            .get(&key)
            .await
            .map_err(|e| Error::store(&key, e))?;
        result.bytes().await.map_err(|e| Error::store(&key, e))
    }

    /// The object's SHA-256 (hex), read as a stream (`recordings verify`).
    pub async fn sha256(&self, key: &str) -> Result<String> {
        let key = Objects::parse_key(key)?;
        let result = self
            .store
            .get(&key)
            .await
            .map_err(|e| Error::store(&key, e))?;
        let mut stream = result.into_stream();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.try_next().await.map_err(|e| Error::store(&key, e))? {
            hasher.update(&chunk);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// Deletes every object under `relative/` (a recording's folder); returns their keys.
    /// Objects already gone are not an error.
    pub async fn delete_under(&self, relative: &str) -> Result<Vec<String>> {
        let prefix_text = self.key_for(relative.trim_end_matches('/'));
        let prefix = Objects::parse_key(&prefix_text)?;
        let listed: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::store(&prefix, e))?;
        let mut deleted = Vec::with_capacity(listed.len());
        for meta in listed {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    deleted.push(meta.location.to_string());
                }
                Err(e) => return Err(Error::store(&meta.location, e)),
            }
        }
        Ok(deleted)
    }

    /// Deletes one object; gone already is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let key = Objects::parse_key(key)?;
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(&key, e)),
        }
    }
}

/// Reads up to `size` bytes (less only at the end of the file).
fn read_chunk(file: &mut std::fs::File, size: usize) -> std::io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(size);
    file.by_ref().take(size as u64).read_to_end(&mut chunk)?;
    Ok(chunk)
}

/// An object read with blocking calls, for code that runs on tokio's blocking pool (the API's
/// WAV reader): each read that the last fetched window does not cover fetches at least
/// [`READ_AHEAD`] bytes from there on, so a sequential reader costs one request per MiB.
pub struct BlockingObject {
    objects: Objects,
    key: String,
    len: u64,
    runtime: tokio::runtime::Handle,
    /// The last window fetched: its first byte's offset and its bytes. Locked only by the one
    /// reader of a response (never contended), so reads can take `&self` as a file's do.
    window: Mutex<(u64, Bytes)>,
}

impl std::fmt::Debug for BlockingObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingObject")
            .field("key", &self.key)
            .field("len", &self.len)
            .finish()
    }
}

impl BlockingObject {
    /// Finds the object's length. Must be called off the runtime's workers (inside
    /// `spawn_blocking`), with `runtime` the runtime's handle.
    pub fn open(objects: &Objects, key: &str, runtime: tokio::runtime::Handle) -> Result<Self> {
        let len = runtime.block_on(objects.len(key))?;
        Ok(BlockingObject {
            objects: objects.clone(),
            key: key.to_owned(),
            len,
            runtime,
            window: Mutex::new((0, Bytes::new())),
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Fills `buf` from `offset`; past the end is [`std::io::ErrorKind::UnexpectedEof`].
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the object's end",
            ));
        }
        if buf.is_empty() {
            return Ok(());
        }
        let mut window = self
            .window
            .lock()
            .expect("the window's lock is never held across a panic");
        let (start, bytes) = &*window;
        let covered = offset >= *start && end <= *start + bytes.len() as u64;
        if !covered {
            let fetch_end = end.max(offset + READ_AHEAD).min(self.len);
            let fetched = self
                .runtime
                .block_on(self.objects.get_range(&self.key, offset..fetch_end))
                .map_err(std::io::Error::other)?;
            if (fetched.len() as u64) < end - offset {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the object is shorter than it was",
                ));
            }
            *window = (offset, fetched);
        }
        let (start, bytes) = &*window;
        let from = (offset - start) as usize;
        buf.copy_from_slice(&bytes[from..from + buf.len()]);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
