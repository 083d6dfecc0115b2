//! Locks (legal holds) and deletion. A recording with a lock in force cannot be deleted by
//! anyone or anything; deleting checks that in the transaction that deletes, after locking the
//! recording's row, which `lock` takes too — so on PostgreSQL a lock and a deletion racing on
//! different nodes are ordered by that row lock, and the later one sees the earlier.
//!
//! Deleting keeps a tombstone: the `recordings` row with its ids and times, its tenant and
//! node, who deleted it, when and why, and each leg file's path and SHA-256 (`deleted_legs`);
//! its From/To, digits and review are cleared and every child row (participants, legs, DTMF,
//! metadata revisions, associations, correlation ids, warnings, annotations, pauses) removed.
//! Locks stay, all removed by then, as the history of the hold. The files are the caller's to
//! remove, after the commit: a crash in between leaves files of a tombstone, which the
//! binary's `recordings verify --fix` removes.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Catalog;
use super::audit::{AuditAction, NewAuditEntry, append};
use super::lock_recording;
use crate::db::{Arg, Row, Tx};
use crate::error::{Error, Result};
use crate::model::{RecordingState, to_unix_ms};
use crate::scope::{Actor, Scope};

/// A lock (legal hold) on a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub id: String,
    pub recording_id: String,
    /// Why it is held, e.g. `LegalHold#245`.
    pub reason: String,
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// When it was removed; `None` while it is in force.
    #[serde(with = "time::serde::rfc3339::option")]
    pub removed_at: Option<OffsetDateTime>,
    pub removed_by: Option<String>,
    pub remove_reason: Option<String>,
    /// The legal matter whose hold this is: only releasing the matter removes it.
    #[serde(default)]
    pub matter_id: Option<String>,
}

/// A leg file of a deleted recording, as its tombstone keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedLeg {
    pub position: i64,
    pub label: String,
    /// Relative to the data dir.
    pub path: String,
    /// The file's SHA-256 when it was closed; `None` if it never was.
    pub sha256: Option<String>,
    /// Its key in the object storage bucket, when it was uploaded: the caller removes that
    /// object too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
}

/// What [`Catalog::delete`] removed from the catalog: the files are the caller's to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub recording_id: String,
    /// Where the recording's folder is (`recordings/YYYY/MM/DD/<id>`, by its start in UTC).
    pub started_at: OffsetDateTime,
    pub legs: Vec<DeletedLeg>,
}

/// Longest reason kept, in characters.
const MAX_REASON: usize = 1000;

pub(super) fn validate_reason(field: &'static str, reason: &str) -> Result<()> {
    if reason.trim().is_empty() || reason.chars().count() > MAX_REASON {
        return Err(Error::InvalidInput {
            field,
            reason: format!("1 to {MAX_REASON} characters, not only spaces"),
        });
    }
    Ok(())
}

pub(super) const LOCK_COLUMNS: &str = "id, recording_id, reason, locked_by, locked_at, removed_at, removed_by, remove_reason, \
     matter_id";

pub(super) fn lock_from_row(row: &Row) -> Result<Lock> {
    Ok(Lock {
        id: row.text("id")?,
        recording_id: row.text("recording_id")?,
        reason: row.text("reason")?,
        by: row.text("locked_by")?,
        at: row.time("locked_at")?,
        removed_at: row.opt_time("removed_at")?,
        removed_by: row.opt_text("removed_by")?,
        remove_reason: row.opt_text("remove_reason")?,
        matter_id: row.opt_text("matter_id")?,
    })
}

async fn read_lock(tx: &mut Tx, lock_id: &str) -> Result<Option<Lock>> {
    tx.rows(
        "read lock",
        "locks",
        &format!("SELECT {LOCK_COLUMNS} FROM locks WHERE id = $1"),
        &[Arg::Text(lock_id)],
    )
    .await?
    .first()
    .map(lock_from_row)
    .transpose()
}

/// The audit entry of a change to `recording_id` (of `tenant`), appended in `tx`.
#[allow(clippy::too_many_arguments)] // reason: one entry's fields, named at each call
pub(super) async fn audit_recording(
    tx: &mut Tx,
    by: &Actor,
    at: OffsetDateTime,
    action: AuditAction,
    recording_id: &str,
    tenant: Option<&str>,
    reason: Option<&str>,
    detail: Option<String>,
) -> Result<()> {
    let entry = NewAuditEntry {
        at,
        actor: by.clone(),
        action,
        recording_id: Some(recording_id.to_owned()),
        reason: reason.map(str::to_owned),
        detail,
        tenant: tenant.map(str::to_owned),
    };
    append(tx, &entry, tenant).await?;
    Ok(())
}

/// Locks `recording_id`'s row (see the module notes) and checks that it may be deleted:
/// [`Error::Deleted`], [`Error::Active`] or [`Error::Locked`] otherwise.
pub(super) async fn deletable(
    tx: &mut Tx,
    scope: &Scope,
    recording_id: &str,
) -> Result<super::LockedRecording> {
    // First: the row lock that orders this against `lock` (see the module notes).
    let recording = lock_recording(tx, scope, recording_id).await?;
    if recording.deleted {
        return Err(Error::Deleted {
            id: recording_id.to_owned(),
        });
    }
    if recording.state == RecordingState::Active {
        return Err(Error::Active {
            id: recording_id.to_owned(),
        });
    }
    let locks = tx
        .count(
            "count locks",
            "SELECT COUNT(*) FROM locks WHERE recording_id = $1 AND removed_at IS NULL",
            &[Arg::Text(recording_id)],
        )
        .await?;
    if locks > 0 {
        return Err(Error::Locked {
            id: recording_id.to_owned(),
            locks: u64::try_from(locks).expect("COUNT(*) is not negative"),
        });
    }
    Ok(recording)
}

/// The leg files of `recording_id` as a tombstone keeps them.
pub(super) async fn deleted_legs(tx: &mut Tx, recording_id: &str) -> Result<Vec<DeletedLeg>> {
    tx.rows(
        "read legs",
        "legs",
        "SELECT position, label, path, sha256, object_key FROM legs WHERE recording_id = $1 \
         ORDER BY position",
        &[Arg::Text(recording_id)],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(DeletedLeg {
            position: row.int("position")?,
            label: row.text("label")?,
            path: row.text("path")?,
            sha256: row.opt_text("sha256")?,
            object_key: row.opt_text("object_key")?,
        })
    })
    .collect()
}

/// The detail of a deletion's audit entry: each file's path and digest.
pub(super) fn digests(legs: &[DeletedLeg]) -> String {
    legs.iter()
        .map(|l| format!("{}={}", l.path, l.sha256.as_deref().unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where a recording's folder is: its start.
pub(super) async fn started_at(tx: &mut Tx, recording_id: &str) -> Result<OffsetDateTime> {
    tx.rows(
        "read recording",
        "recordings",
        "SELECT started_at FROM recordings WHERE id = $1",
        &[Arg::Text(recording_id)],
    )
    .await?
    .first()
    .map(|row| row.time("started_at"))
    .transpose()?
    .ok_or_else(|| Error::NotFound {
        id: recording_id.to_owned(),
    })
}

impl Catalog {
    /// Puts a lock on a recording (several may be in force at once). Unknown or out of scope:
    /// [`Error::NotFound`]; a tombstone: [`Error::Deleted`]. Audited (`lock`).
    pub async fn lock(
        &self,
        scope: &Scope,
        recording_id: &str,
        reason: &str,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<Lock> {
        validate_reason("reason", reason)?;
        let mut tx = self.pool.begin().await?;
        let recording = lock_recording(&mut tx, scope, recording_id).await?;
        if recording.deleted {
            return Err(Error::Deleted {
                id: recording_id.to_owned(),
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        tx.run(
            "add lock",
            "INSERT INTO locks (id, recording_id, reason, locked_by, locked_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                Arg::Text(&id),
                Arg::Text(recording_id),
                Arg::Text(reason),
                Arg::Text(&by.user),
                Arg::Int(to_unix_ms(at)),
            ],
        )
        .await?;
        audit_recording(
            &mut tx,
            by,
            at,
            AuditAction::Lock,
            recording_id,
            recording.tenant.as_deref(),
            Some(reason),
            Some(format!("lock {id}")),
        )
        .await?;
        let lock = read_lock(&mut tx, &id)
            .await?
            .ok_or_else(|| Error::UnknownLock {
                recording_id: recording_id.to_owned(),
                lock_id: id.clone(),
            })?;
        tx.finish("commit lock").await?;
        Ok(lock)
    }

    /// Removes a lock, keeping it as history (`removed_at`, `removed_by`, `remove_reason`).
    /// A lock not in force on this recording: [`Error::UnknownLock`]; a legal matter's lock:
    /// [`Error::InvalidInput`] (releasing the matter removes it). Audited (`unlock`).
    pub async fn unlock(
        &self,
        scope: &Scope,
        recording_id: &str,
        lock_id: &str,
        reason: Option<&str>,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<Lock> {
        if let Some(reason) = reason {
            validate_reason("reason", reason)?;
        }
        let mut tx = self.pool.begin().await?;
        let recording = lock_recording(&mut tx, scope, recording_id).await?;
        if let Some(matter) = read_lock(&mut tx, lock_id)
            .await?
            .filter(|l| l.recording_id == recording_id && l.removed_at.is_none())
            .and_then(|l| l.matter_id)
        {
            return Err(Error::InvalidInput {
                field: "lock",
                reason: format!("the hold of legal matter {matter}: release the matter instead"),
            });
        }
        let removed = tx
            .run(
                "remove lock",
                "UPDATE locks SET removed_at = $3, removed_by = $4, remove_reason = $5 \
                 WHERE id = $1 AND recording_id = $2 AND removed_at IS NULL",
                &[
                    Arg::Text(lock_id),
                    Arg::Text(recording_id),
                    Arg::Int(to_unix_ms(at)),
                    Arg::Text(&by.user),
                    Arg::OptText(reason),
                ],
            )
            .await?;
        let unknown = || Error::UnknownLock {
            recording_id: recording_id.to_owned(),
            lock_id: lock_id.to_owned(),
        };
        if removed == 0 {
            return Err(unknown());
        }
        audit_recording(
            &mut tx,
            by,
            at,
            AuditAction::Unlock,
            recording_id,
            recording.tenant.as_deref(),
            reason,
            Some(format!("lock {lock_id}")),
        )
        .await?;
        let lock = read_lock(&mut tx, lock_id).await?.ok_or_else(unknown)?;
        tx.finish("commit unlock").await?;
        Ok(lock)
    }

    /// Deletes a recording's media and metadata from the catalog, keeping its tombstone (see
    /// the module notes), and returns the files for the caller to remove.
    ///
    /// Refused, changing nothing, with [`Error::Locked`] while any lock is in force,
    /// [`Error::Active`] while it is being recorded, [`Error::Deleted`] if it already is;
    /// unknown or out of scope: [`Error::NotFound`]. Audited (`delete`, with the reason).
    pub async fn delete(
        &self,
        scope: &Scope,
        recording_id: &str,
        reason: &str,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<Deletion> {
        validate_reason("reason", reason)?;
        let mut tx = self.pool.begin().await?;
        let recording = deletable(&mut tx, scope, recording_id).await?;
        let legs = deleted_legs(&mut tx, recording_id).await?;
        for table in [
            "participants",
            "legs",
            "dtmf_events",
            "metadata_revisions",
            "participant_associations",
            "correlation_ids",
            "recording_warnings",
            "annotations",
            "pauses",
        ] {
            tx.run(
                "delete a recording's rows",
                &format!("DELETE FROM {table} WHERE recording_id = $1"),
                &[Arg::Text(recording_id)],
            )
            .await?;
        }
        let deleted_legs =
            serde_json::to_string(&legs).expect("deleted legs are strings and integers");
        tx.run(
            "keep the tombstone",
            "UPDATE recordings SET deleted_at = $2, deleted_by = $3, delete_reason = $4, \
             deleted_legs = $5, from_uri = '', to_uri = '', dtmf_digits = '', score = NULL, \
             complete_transaction = NULL, categories = '[]', custom = '{}', \
             review_seconds = NULL, transcript = NULL, transcript_segments = NULL, \
             transcript_at = NULL WHERE id = $1",
            &[
                Arg::Text(recording_id),
                Arg::Int(to_unix_ms(at)),
                Arg::Text(&by.user),
                Arg::Text(reason),
                Arg::Text(&deleted_legs),
            ],
        )
        .await?;
        audit_recording(
            &mut tx,
            by,
            at,
            AuditAction::Delete,
            recording_id,
            recording.tenant.as_deref(),
            Some(reason),
            Some(digests(&legs)),
        )
        .await?;
        let started_at = started_at(&mut tx, recording_id).await?;
        tx.finish("commit deletion").await?;
        Ok(Deletion {
            recording_id: recording_id.to_owned(),
            started_at,
            legs,
        })
    }
}

#[cfg(test)]
mod tests;
