//! The zip inside a package: the audio of each recording, `recordings.csv`, `recordings.json`
//! and `manifest.json`, as one [`ZipStream`] (the same streaming writer as the download of
//! several recordings). Every entry's bytes are hashed as they are produced, and the manifest,
//! opened last, lists each file with its size and SHA-256: whoever receives the package can
//! check every file against it (`sha256sum`), and the package's own digest is in the catalog.

use crate::audio::LegAudio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::audio::{
    ChunkSource, ExportFormat, MixLeg, ZipEntry, ZipStream, leg_mp3, leg_source, mix_source,
};
use crate::error::Result;
use crate::export::table::{self, Item};

/// The name of the manifest in the archive.
pub(crate) const MANIFEST: &str = "manifest.json";

/// What one audio file of the package is made of.
pub(crate) enum Audio {
    /// One leg file as it is (WAV) or encoded (MP3).
    Leg(LegAudio),
    /// The legs mixed to mono.
    Mix(Vec<MixLeg>),
}

/// One audio file to write: its name (before the archive makes names unique) and content.
pub(crate) struct AudioFile {
    pub(crate) name: String,
    pub(crate) audio: Audio,
    pub(crate) modified: time::OffsetDateTime,
}

/// A file of the manifest.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FileDigest {
    pub(crate) name: String,
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
}

type Digests = Arc<Mutex<Vec<Option<(u64, String)>>>>;

/// The zip of a package, with its count of files finished so far.
pub(crate) struct Package {
    pub(crate) zip: ZipStream,
    /// Files whose bytes are all written.
    pub(crate) done: Arc<AtomicUsize>,
    /// Files in the archive (the manifest included).
    pub(crate) files: usize,
}

/// A body whose bytes are hashed as they pass; its digest is stored when it ends.
struct Hashed {
    inner: Box<dyn ChunkSource>,
    sha256: Sha256,
    bytes: u64,
    slot: usize,
    digests: Digests,
    done: Arc<AtomicUsize>,
}

impl ChunkSource for Hashed {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.inner.next_chunk()? {
            Some(chunk) => {
                self.sha256.update(&chunk);
                self.bytes += chunk.len() as u64;
                Ok(Some(chunk))
            }
            None => {
                let digest = hex::encode(std::mem::take(&mut self.sha256).finalize());
                lock(&self.digests)[self.slot] = Some((self.bytes, digest));
                self.done.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    fn exact_len(&self) -> Option<u64> {
        self.inner.exact_len()
    }
}

/// Bytes already in memory (the CSV, the JSON, the manifest).
struct InMemory(Option<Bytes>);

impl ChunkSource for InMemory {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(self.0.take())
    }

    fn exact_len(&self) -> Option<u64> {
        Some(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only the thread producing the archive's chunks takes it; a panic there aborts the build.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The package's zip: `audio/…` (one file per recording, or per leg), `recordings.csv`,
/// `recordings.json`, then `manifest.json` with the digest of every file before it.
pub(crate) fn build(
    export: Value,
    items: &[Item],
    audio: Vec<AudioFile>,
    format: ExportFormat,
) -> Result<Package> {
    let csv = Bytes::from(table::csv(items)?);
    let json = Bytes::from(table::json(export.clone(), items));
    let files = audio.len() + 3;
    let digests: Digests = Arc::new(Mutex::new(vec![None; files - 1]));
    let done = Arc::new(AtomicUsize::new(0));
    let names: Arc<OnceLock<Vec<String>>> = Arc::default();
    let hashed = |slot: usize, open: Box<dyn FnOnce() -> Result<Box<dyn ChunkSource>> + Send>| {
        let digests = Arc::clone(&digests);
        let done = Arc::clone(&done);
        move || -> Result<Box<dyn ChunkSource>> {
            Ok(Box::new(Hashed {
                inner: open()?,
                sha256: Sha256::new(),
                bytes: 0,
                slot,
                digests,
                done,
            }))
        }
    };
    let mut entries = Vec::with_capacity(files);
    for (slot, file) in audio.into_iter().enumerate() {
        let open: Box<dyn FnOnce() -> Result<Box<dyn ChunkSource>> + Send> = match file.audio {
            Audio::Mix(legs) => {
                Box::new(move || mix_source(&legs, format, crate::audio::Channels::Mono))
            }
            Audio::Leg(path) => match format {
                ExportFormat::Wav => Box::new(move || leg_source(&path)),
                ExportFormat::Mp3 => {
                    Box::new(move || leg_mp3(path).map(|mp3| Box::new(mp3) as Box<dyn ChunkSource>))
                }
            },
        };
        entries.push(
            ZipEntry::new(file.name, hashed(slot, open))
                .in_folder("audio")
                .modified(file.modified),
        );
    }
    let csv_slot = files - 3;
    entries.push(ZipEntry::new(
        "recordings.csv",
        hashed(
            csv_slot,
            Box::new(move || Ok(Box::new(InMemory(Some(csv))) as Box<dyn ChunkSource>)),
        ),
    ));
    entries.push(ZipEntry::new(
        "recordings.json",
        hashed(
            csv_slot + 1,
            Box::new(move || Ok(Box::new(InMemory(Some(json))) as Box<dyn ChunkSource>)),
        ),
    ));
    let manifest_digests = Arc::clone(&digests);
    let manifest_names = Arc::clone(&names);
    let manifest_done = Arc::clone(&done);
    entries.push(ZipEntry::new(MANIFEST, move || {
        // Opened when every other entry is written: each has its digest by now.
        let names = manifest_names.get().cloned().unwrap_or_default();
        let files: Vec<FileDigest> = lock(&manifest_digests)
            .iter()
            .zip(names)
            .filter_map(|(digest, name)| {
                digest.as_ref().map(|(bytes, sha256)| FileDigest {
                    name,
                    bytes: *bytes,
                    sha256: sha256.clone(),
                })
            })
            .collect();
        let mut bytes = serde_json::to_vec_pretty(&serde_json::json!({
            "export": export,
            "algorithm": "SHA-256",
            "files": files,
        }))
        .expect("JSON values serialize");
        bytes.push(b'\n');
        manifest_done.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(InMemory(Some(Bytes::from(bytes)))) as Box<dyn ChunkSource>)
    }));
    let zip = ZipStream::new(entries);
    let _ = names.set(zip.names().map(str::to_owned).collect());
    Ok(Package { zip, done, files })
}
