//! Where a leg lives: the object storage tier's upload queue and its bookkeeping.
//!
//! The catalog is the queue (migration 9): a node asks for the closed legs of its own final,
//! kept recordings that are not in the bucket yet ([`Catalog::pending_uploads`]), uploads
//! them, and marks each one ([`Catalog::mark_uploaded`]); once every leg is there and the
//! recording's `recording.json` too, [`Catalog::mark_recording_uploaded`]. What is still to
//! upload survives any crash, and a node never sees another node's rows (they are filtered by
//! `node_id`, as the crash repair is). Every mark is idempotent: replaying one changes nothing.

use time::OffsetDateTime;

use super::Catalog;
use crate::db::Arg;
use crate::error::Result;
use crate::model::{RecordingState, to_unix_ms};

/// A closed leg of a final recording, waiting for its upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub recording_id: String,
    pub position: i64,
    /// Relative to the data dir (and, under the configured prefix, the object's key).
    pub path: String,
    /// The digest kept at the file's close: the upload must hash to it.
    pub sha256: String,
}

/// A leg in the bucket whose local copy may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCopy {
    pub recording_id: String,
    pub position: i64,
    pub path: String,
}

impl Catalog {
    /// Up to `limit` legs `node_id` has to upload, oldest recording first: closed (a
    /// SHA-256), of a final recording that is not deleted, not in the bucket, not refused.
    pub async fn pending_uploads(&self, node_id: &str, limit: i64) -> Result<Vec<PendingUpload>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "find legs to upload",
                "legs",
                "SELECT l.recording_id, l.position, l.path, l.sha256 FROM legs l \
                 JOIN recordings r ON r.id = l.recording_id \
                 WHERE r.node_id = $1 AND r.uploaded_at IS NULL AND r.state <> $2 \
                 AND r.deleted_at IS NULL AND l.object_key IS NULL \
                 AND l.upload_error IS NULL AND l.sha256 IS NOT NULL \
                 ORDER BY r.started_at, l.recording_id, l.position LIMIT $3",
                &[
                    Arg::Text(node_id),
                    Arg::Text(RecordingState::Active.as_str()),
                    Arg::Int(limit),
                ],
            )
            .await?;
        tx.finish("end read").await?;
        rows.iter()
            .map(|row| {
                Ok(PendingUpload {
                    recording_id: row.text("recording_id")?,
                    position: row.int("position")?,
                    path: row.text("path")?,
                    sha256: row.text("sha256")?,
                })
            })
            .collect()
    }

    /// The leg is in the bucket under `object_key`, its digest checked. Returns whether the
    /// leg is still in the catalog: `false` when its recording was deleted while the upload
    /// ran (the caller then removes the object it just made, which the deletion could not
    /// know of). A replay keeps the first key and time.
    pub async fn mark_uploaded(
        &self,
        recording_id: &str,
        position: i64,
        object_key: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let kept = tx
            .run(
                "mark a leg uploaded",
                "UPDATE legs SET object_key = COALESCE(object_key, $3), \
             uploaded_at = COALESCE(uploaded_at, $4) WHERE recording_id = $1 AND position = $2",
                &[
                    Arg::Text(recording_id),
                    Arg::Int(position),
                    Arg::Text(object_key),
                    Arg::Int(to_unix_ms(at)),
                ],
            )
            .await?;
        tx.finish("commit upload").await?;
        Ok(kept > 0)
    }

    /// The leg cannot be uploaded (its file no longer matches its digest): it is left out of
    /// [`Catalog::pending_uploads`] from now on, and `error` is kept.
    pub async fn mark_upload_refused(
        &self,
        recording_id: &str,
        position: i64,
        error: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        tx.run(
            "mark a leg's upload refused",
            "UPDATE legs SET upload_error = $3 WHERE recording_id = $1 AND position = $2",
            &[
                Arg::Text(recording_id),
                Arg::Int(position),
                Arg::Text(error),
            ],
        )
        .await?;
        tx.finish("commit upload refusal").await
    }

    /// Final recordings of `node_id`, not deleted, whose every leg is uploaded (or refused)
    /// but that are not marked uploaded yet: their `recording.json` goes next. Oldest first.
    pub async fn recordings_to_seal(&self, node_id: &str, limit: i64) -> Result<Vec<String>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "find recordings whose legs are uploaded",
                "recordings",
                "SELECT r.id FROM recordings r WHERE r.node_id = $1 AND r.uploaded_at IS NULL \
                 AND r.state <> $2 AND r.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM legs l \
                 WHERE l.recording_id = r.id AND l.object_key IS NULL \
                 AND l.upload_error IS NULL AND l.sha256 IS NOT NULL) \
                 ORDER BY r.started_at, r.id LIMIT $3",
                &[
                    Arg::Text(node_id),
                    Arg::Text(RecordingState::Active.as_str()),
                    Arg::Int(limit),
                ],
            )
            .await?;
        tx.finish("end read").await?;
        rows.iter().map(|row| row.text("id")).collect()
    }

    /// Every leg of the recording and its `recording.json` are in the bucket.
    pub async fn mark_recording_uploaded(
        &self,
        recording_id: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        tx.run(
            "mark a recording uploaded",
            "UPDATE recordings SET uploaded_at = $2 WHERE id = $1 AND uploaded_at IS NULL",
            &[Arg::Text(recording_id), Arg::Int(to_unix_ms(at))],
        )
        .await?;
        tx.finish("commit recording upload").await
    }

    /// Legs of `node_id` uploaded before `uploaded_before` whose local copy is still there.
    pub async fn local_copies_to_remove(
        &self,
        node_id: &str,
        uploaded_before: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<LocalCopy>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "find local copies to remove",
                "legs",
                "SELECT l.recording_id, l.position, l.path FROM legs l \
                 JOIN recordings r ON r.id = l.recording_id \
                 WHERE r.node_id = $1 AND l.object_key IS NOT NULL \
                 AND l.local_removed_at IS NULL AND l.uploaded_at <= $2 \
                 ORDER BY l.uploaded_at, l.recording_id, l.position LIMIT $3",
                &[
                    Arg::Text(node_id),
                    Arg::Int(to_unix_ms(uploaded_before)),
                    Arg::Int(limit),
                ],
            )
            .await?;
        tx.finish("end read").await?;
        rows.iter()
            .map(|row| {
                Ok(LocalCopy {
                    recording_id: row.text("recording_id")?,
                    position: row.int("position")?,
                    path: row.text("path")?,
                })
            })
            .collect()
    }

    /// The node removed its local copy of the leg.
    pub async fn mark_local_removed(
        &self,
        recording_id: &str,
        position: i64,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        tx.run(
            "mark a local copy removed",
            "UPDATE legs SET local_removed_at = $3 WHERE recording_id = $1 AND position = $2 \
             AND local_removed_at IS NULL",
            &[
                Arg::Text(recording_id),
                Arg::Int(position),
                Arg::Int(to_unix_ms(at)),
            ],
        )
        .await?;
        tx.finish("commit local removal").await
    }
}

#[cfg(test)]
mod tests;
