//! One receiver's deliveries on disk: `DATA/spool/notify/<receiver>/<key>.json`, one file per
//! delivery, written aside, synced and renamed into place (never half a file under its name),
//! deleted once the receiver answered 2xx. `<receiver>` is a digest of the URL, so a changed
//! URL starts a new outbox and never sends an old body to a new address.
//!
//! Like the archive's spool (`archive/spool.rs`) the files are plain JSON an operator can read,
//! and a file that does not parse is moved aside (`*.unreadable`), never retried for ever.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::error;

use super::Event;

/// Under the data directory.
pub const OUTBOX_DIR: &str = "spool/notify";

/// One delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub key: String,
    pub event: Event,
    /// When it was queued (unix ms): deliveries are tried oldest first.
    pub queued_at_ms: i64,
    /// The exact bytes POSTed (and signed), the same on every attempt.
    pub body: String,
}

/// A delivery waiting, as its task keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub key: String,
    pub queued_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

/// The idempotency key: recording id and event (and the lock's id for lock and unlock, as a
/// recording may be locked several times). Also the file's name.
pub fn key(recording_id: &str, event: Event, lock_id: Option<&str>) -> String {
    match lock_id {
        Some(lock) => format!("{recording_id}.{event}.{lock}"),
        None => format!("{recording_id}.{event}"),
    }
}

/// Ids that may become part of a file name: letters, digits, `-` and `_`, at most 128.
pub fn is_safe_key_part(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Outbox {
    /// The outbox of the receiver at `url`, created if needed.
    pub fn open(data_dir: &Path, url: &str) -> io::Result<Outbox> {
        let digest = hex::encode(Sha256::digest(url.as_bytes()));
        let dir = data_dir.join(OUTBOX_DIR).join(&digest[..16]);
        std::fs::create_dir_all(&dir)?;
        Ok(Outbox { dir })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Queues a delivery; `None` when one with this key is already waiting (a replayed event:
    /// the waiting one goes out, once).
    pub fn put(&self, key: &str, event: Event, body: &str) -> io::Result<Option<Queued>> {
        let path = self.path(key);
        if path.exists() {
            return Ok(None);
        }
        let queued_at_ms =
            i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX);
        let stored = Stored {
            key: key.to_owned(),
            event,
            queued_at_ms,
            body: body.to_owned(),
        };
        let temporary = self
            .dir
            .join(format!(".{key}.{}.partial", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temporary)?;
            file.write_all(&serde_json::to_vec(&stored).map_err(io::Error::other)?)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            // The rename itself survives a crash once the folder is synced.
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written.map(|()| {
            Some(Queued {
                key: key.to_owned(),
                queued_at_ms,
            })
        })
    }

    /// Every delivery waiting, oldest first (at start). Unreadable files are moved aside.
    pub fn load(&self) -> io::Result<Vec<Queued>> {
        let mut waiting = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with('.') {
                // A write a crash interrupted before its rename: never queued.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match self.read_path(&path) {
                Ok(stored) => waiting.push(Queued {
                    key: stored.key,
                    queued_at_ms: stored.queued_at_ms,
                }),
                Err(e) => self.set_aside(&path, &e),
            }
        }
        waiting.sort_by(|a, b| (a.queued_at_ms, &a.key).cmp(&(b.queued_at_ms, &b.key)));
        Ok(waiting)
    }

    /// A waiting delivery; `NotFound` once delivered (or removed by hand).
    pub fn read(&self, key: &str) -> io::Result<Stored> {
        let path = self.path(key);
        self.read_path(&path).inspect_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                self.set_aside(&path, e);
            }
        })
    }

    fn read_path(&self, path: &Path) -> io::Result<Stored> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn set_aside(&self, path: &Path, why: &io::Error) {
        error!(file = %path.display(), error = %why, "an unreadable webhook delivery is set aside (renamed *.unreadable)");
        let _ = std::fs::rename(path, path.with_extension("unreadable"));
    }

    /// Delivered: gone. An already missing file is fine.
    pub fn remove(&self, key: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_survives_until_removed_and_a_replay_is_not_queued_twice() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), "http://127.0.0.1:9/hook").unwrap();
        let first = outbox
            .put("r1.recording.completed", Event::Completed, "{\"a\":1}")
            .unwrap()
            .unwrap();
        assert_eq!(
            outbox
                .put("r1.recording.completed", Event::Completed, "{\"a\":2}")
                .unwrap(),
            None
        );
        outbox
            .put("r2.recording.deleted", Event::Deleted, "{}")
            .unwrap()
            .unwrap();
        // As a restart finds it: oldest first, the first body kept.
        let again = Outbox::open(dir.path(), "http://127.0.0.1:9/hook").unwrap();
        let waiting = again.load().unwrap();
        assert_eq!(waiting[0], first);
        assert_eq!(waiting.len(), 2);
        assert_eq!(again.read(&first.key).unwrap().body, "{\"a\":1}");
        again.remove(&first.key).unwrap();
        again.remove(&first.key).unwrap();
        assert_eq!(again.load().unwrap().len(), 1);
        // Another URL is another outbox.
        let other = Outbox::open(dir.path(), "http://127.0.0.1:9/other").unwrap();
        assert!(other.load().unwrap().is_empty());
    }

    #[test]
    fn torn_and_unreadable_files_are_not_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), "http://x/").unwrap();
        std::fs::write(outbox.dir.join(".r.recording.completed.1.partial"), "{").unwrap();
        std::fs::write(outbox.dir.join("r.recording.failed.json"), "not json").unwrap();
        assert!(outbox.load().unwrap().is_empty());
        assert!(outbox.dir.join("r.recording.failed.unreadable").exists());
        assert!(!outbox.dir.join(".r.recording.completed.1.partial").exists());
    }

    #[test]
    fn only_plain_ids_make_keys() {
        assert!(is_safe_key_part("0193a4b2-7c1d-7e00-8000-000000000000"));
        assert!(!is_safe_key_part("../../etc"));
        assert!(!is_safe_key_part(""));
        assert_eq!(key("r", Event::Locked, Some("l1")), "r.recording.locked.l1");
    }
}
