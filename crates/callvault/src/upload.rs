//! The object storage tier's uploader (`[storage] backend = "s3"`): legs go to the bucket once
//! their recording is final, and their local copies go after `[storage] local_grace_secs`.
//!
//! # How it works
//! - **The queue is the catalog** (`Catalog::pending_uploads`, migration 9): closed legs of
//!   this node's final, kept recordings with no object key yet. Nothing else holds the queue,
//!   so a restart (or `kill -9` in the middle of an upload) simply finds the leg still
//!   pending and uploads it again from its first byte; the abandoned multipart upload is the
//!   bucket's to expire (an S3 lifecycle rule, see the README). Nodes sharing a PostgreSQL
//!   catalog each see their own rows only.
//! - **One task**, woken every `upload_interval_ms`: it never runs on the SIP loop, and the
//!   recorder's hot path and crash rules are untouched (the files are written locally while
//!   the call runs, exactly as with the local backend).
//! - **Checked**: a leg is hashed as it is read and the upload completed only if the digest
//!   is the one the catalog kept when the file closed (`callvault-objects`); a file that no
//!   longer matches is refused for good (`legs.upload_error`), logged and counted, and kept.
//! - **Retried with back-off** per leg: `upload_retry_initial_ms` doubling to
//!   `upload_retry_max_ms`, for as long as it takes; the log says so at the 1st, 2nd, 4th, 8th…
//!   failure.
//! - **Sealed**: when every leg of a recording is up, its `recording.json` (the object of
//!   `recordings show --json`) is put beside them and the recording marked uploaded.
//! - **Local copies** of legs uploaded more than `local_grace_secs` ago are removed (and
//!   marked, so playback knows to read the bucket).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use callvault_catalog::{Catalog, PendingUpload, Scope};
use callvault_objects::Objects;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::notify::record_file;

/// Legs looked at per turn (each turn also seals and cleans up).
const BATCH: i64 = 16;

/// How the uploader runs.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub node_id: String,
    pub data_dir: PathBuf,
    pub interval: Duration,
    pub local_grace: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// Counters for `/metrics`, read at scrape time.
#[derive(Debug, Default)]
pub struct UploadStats {
    /// Legs uploaded and checked.
    pub uploaded_total: AtomicU64,
    pub uploaded_bytes_total: AtomicU64,
    /// Attempts that failed (each is retried).
    pub failed_attempts_total: AtomicU64,
    /// Legs refused for good (the file no longer matches its digest, or is gone).
    pub refused_total: AtomicU64,
    /// Local copies removed after their grace.
    pub local_removed_total: AtomicU64,
    /// Legs waiting, as of the last turn (at most one batch is counted).
    pub pending: AtomicI64,
}

/// One leg's back-off.
struct Backoff {
    failures: u32,
    next: Instant,
}

/// Starts the uploader's task.
pub fn start(catalog: Catalog, objects: Objects, settings: UploadSettings) -> Arc<UploadStats> {
    let stats = Arc::new(UploadStats::default());
    info!(
        bucket = %objects.shown(),
        local_grace_secs = settings.local_grace.as_secs(),
        "recordings are uploaded to object storage once final"
    );
    let uploader = Uploader {
        catalog,
        objects,
        settings,
        stats: Arc::clone(&stats),
        backoff: HashMap::new(),
    };
    tokio::spawn(uploader.run());
    stats
}

struct Uploader {
    catalog: Catalog,
    objects: Objects,
    settings: UploadSettings,
    stats: Arc<UploadStats>,
    backoff: HashMap<(String, i64), Backoff>,
}

impl Uploader {
    async fn run(mut self) {
        let mut ticks = tokio::time::interval(self.settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = self.turn().await {
                // The catalog is down or busy: the next turn tries again.
                warn!(error = %e, "object storage uploader: the catalog could not be read");
            }
        }
    }

    async fn turn(&mut self) -> callvault_catalog::Result<()> {
        let node = self.settings.node_id.clone();
        let pending = self.catalog.pending_uploads(&node, BATCH).await?;
        self.stats.pending.store(
            i64::try_from(pending.len()).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        for leg in pending {
            let key = (leg.recording_id.clone(), leg.position);
            if self
                .backoff
                .get(&key)
                .is_some_and(|b| b.next > Instant::now())
            {
                continue;
            }
            self.upload(leg).await?;
        }
        for recording_id in self.catalog.recordings_to_seal(&node, BATCH).await? {
            self.seal(&recording_id).await?;
        }
        let cutoff = OffsetDateTime::now_utc()
            - time::Duration::try_from(self.settings.local_grace).unwrap_or(time::Duration::MAX);
        for copy in self
            .catalog
            .local_copies_to_remove(&node, cutoff, BATCH * 4)
            .await?
        {
            let path = self.settings.data_dir.join(&copy.path);
            let removed = tokio::task::spawn_blocking(move || std::fs::remove_file(path))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(recording_id = %copy.recording_id, path = %copy.path, error = %e,
                        "an uploaded leg's local copy could not be removed");
                    continue;
                }
            }
            self.catalog
                .mark_local_removed(&copy.recording_id, copy.position, OffsetDateTime::now_utc())
                .await?;
            self.stats
                .local_removed_total
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn upload(&mut self, leg: PendingUpload) -> callvault_catalog::Result<()> {
        let path = self.settings.data_dir.join(&leg.path);
        let key = (leg.recording_id.clone(), leg.position);
        match self
            .objects
            .upload_file(&path, &leg.path, &leg.sha256)
            .await
        {
            Ok(uploaded) => {
                let kept = self
                    .catalog
                    .mark_uploaded(
                        &leg.recording_id,
                        leg.position,
                        &uploaded.key,
                        OffsetDateTime::now_utc(),
                    )
                    .await?;
                if !kept {
                    // Deleted while it was uploading: the deletion removed the objects it
                    // knew of; this one is ours to remove.
                    info!(recording_id = %leg.recording_id, key = %uploaded.key,
                        "recording deleted during its upload: the object is removed");
                    if let Err(e) = self.objects.delete(&uploaded.key).await {
                        error!(recording_id = %leg.recording_id, key = %uploaded.key, error = %e,
                            "the object of a deleted recording could not be removed");
                    }
                    self.backoff.remove(&key);
                    return Ok(());
                }
                if let Some(backoff) = self.backoff.remove(&key) {
                    info!(recording_id = %leg.recording_id, position = leg.position,
                        failures = backoff.failures, "leg uploaded after failed attempts");
                }
                self.stats.uploaded_total.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .uploaded_bytes_total
                    .fetch_add(uploaded.bytes, Ordering::Relaxed);
                info!(recording_id = %leg.recording_id, position = leg.position,
                    key = %uploaded.key, bytes = uploaded.bytes, multipart = uploaded.multipart,
                    "leg uploaded to object storage");
            }
            Err(e) if e.is_permanent() || is_missing_file(&e) => {
                error!(recording_id = %leg.recording_id, position = leg.position, error = %e,
                    "leg not uploaded, and not retried: the local file is kept as it is");
                self.catalog
                    .mark_upload_refused(&leg.recording_id, leg.position, &e.to_string())
                    .await?;
                self.backoff.remove(&key);
                self.stats.refused_total.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats
                    .failed_attempts_total
                    .fetch_add(1, Ordering::Relaxed);
                let backoff = self.backoff.entry(key).or_insert(Backoff {
                    failures: 0,
                    next: Instant::now(),
                });
                backoff.failures += 1;
                let wait = retry_delay(
                    backoff.failures,
                    self.settings.retry_initial,
                    self.settings.retry_max,
                );
                backoff.next = Instant::now() + wait;
                if backoff.failures.is_power_of_two() {
                    warn!(recording_id = %leg.recording_id, position = leg.position,
                        failures = backoff.failures, retry_in_ms = wait.as_millis() as u64,
                        error = %e, "leg upload failed; retrying");
                }
            }
        }
        Ok(())
    }

    /// Puts `recording.json` beside the uploaded legs and marks the recording uploaded.
    async fn seal(&mut self, recording_id: &str) -> callvault_catalog::Result<()> {
        let Some(details) = self
            .catalog
            .recording_details(&Scope::All, recording_id)
            .await?
        else {
            return Ok(());
        };
        let folder = record_file::folder(std::path::Path::new(""), &details);
        let relative = folder.join(record_file::NAME);
        let json = record_file::contents(&details);
        match self
            .objects
            .put_bytes(&relative.to_string_lossy(), json)
            .await
        {
            Ok(_) => {
                self.catalog
                    .mark_recording_uploaded(recording_id, OffsetDateTime::now_utc())
                    .await
            }
            Err(e) => {
                // Tried again at the next turn.
                self.stats
                    .failed_attempts_total
                    .fetch_add(1, Ordering::Relaxed);
                warn!(%recording_id, error = %e, "recording.json could not be uploaded; retrying");
                Ok(())
            }
        }
    }
}

fn is_missing_file(e: &callvault_objects::Error) -> bool {
    matches!(e, callvault_objects::Error::Io { source, .. }
        if source.kind() == std::io::ErrorKind::NotFound)
}

/// `initial` doubled for each failure after the first, at most `max`.
fn retry_delay(failures: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    initial.saturating_mul(1 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_up_to_its_maximum() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(300));
        let waits: Vec<u64> = (1..=11)
            .map(|n| retry_delay(n, initial, max).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(retry_delay(u32::MAX, initial, max), max);
    }
}
