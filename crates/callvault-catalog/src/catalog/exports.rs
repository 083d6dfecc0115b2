//! Export packages: the durable state of packages built in the background by the API.
//!
//! A row is written when the package is asked for (`queued`, with the recordings chosen then),
//! moved to `running` by the node that builds it, then `ready` (with its size, digest and
//! expiry) or `failed`; a ready package past its expiry becomes `expired`. Every move is a
//! conditional `UPDATE … WHERE state = …`, so a package removed (cancelled) while it is being
//! built, or expired while a download starts, is never brought back: the caller learns from
//! the row count that it lost the race.
//!
//! What becomes of a package whose node stopped while it ran: [`Catalog::fail_interrupted_exports`]
//! marks that node's `queued` and `running` packages `failed` at the node's next start (its
//! partial file is worthless; the user asks again). Resuming was not chosen: a package is cheap
//! to rebuild from the catalog and the files, and a half-written zip cannot be continued.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Catalog;
use super::audit::{AuditAction, NewAuditEntry, append};
use crate::db::{Arg, Row};
use crate::error::{Error, Result};
use crate::model::to_unix_ms;
use crate::scope::{Actor, Scope};
use crate::sql::Conditions;

/// Where an export package is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportState {
    /// Asked for; its build has not started.
    Queued,
    /// Being built.
    Running,
    /// Built: downloadable until it expires.
    Ready,
    /// The build failed (`error` says why), or its node stopped while building it.
    Failed,
    /// Past its expiry: its file is gone.
    Expired,
}

impl ExportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportState::Queued => "queued",
            ExportState::Running => "running",
            ExportState::Ready => "ready",
            ExportState::Failed => "failed",
            ExportState::Expired => "expired",
        }
    }
}

impl fmt::Display for ExportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExportState {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        [
            ExportState::Queued,
            ExportState::Running,
            ExportState::Ready,
            ExportState::Failed,
            ExportState::Expired,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| format!("unknown export state {s:?}"))
    }
}

/// An export package to record ([`Catalog::insert_export`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExport {
    /// Chosen by the caller (it also names the package's file).
    pub id: String,
    /// 1-200 characters, no control characters.
    pub name: String,
    /// The user who asked; the package is built within their scope.
    pub owner: String,
    pub tenant: Option<String>,
    /// The node that builds it (its file lives in that node's data directory).
    pub node_id: String,
    /// `wav` or `mp3` (the API's vocabulary; stored as given).
    pub format: String,
    /// `legs` or `mixed`.
    pub channels: String,
    /// The age recipient the package is encrypted to.
    pub encrypt_to: Option<String>,
    /// The recordings it holds, in order.
    pub recording_ids: Vec<String>,
    pub created_at: OffsetDateTime,
    /// What the audit entry says about how the recordings were chosen (a filter, ids).
    pub chosen_by: String,
    pub reason: Option<String>,
}

/// An export package as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub tenant: Option<String>,
    pub node_id: String,
    pub state: ExportState,
    pub format: String,
    pub channels: String,
    pub encrypt_to: Option<String>,
    pub recording_ids: Vec<String>,
    /// Files written so far, of `total`.
    pub done: i64,
    pub total: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Set when it becomes ready.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Files in the package (ready only).
    pub files: Option<i64>,
    /// Size of the package file (ready only).
    pub bytes: Option<i64>,
    /// Hex SHA-256 of the package file (ready only).
    pub sha256: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Export {
    /// 0 to 1.
    pub fn progress(&self) -> f64 {
        match self.state {
            ExportState::Ready | ExportState::Expired => 1.0,
            _ if self.total <= 0 => 0.0,
            _ => (self.done as f64 / self.total as f64).clamp(0.0, 1.0),
        }
    }
}

/// What a finished build stores ([`Catalog::finish_export`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedExport {
    pub files: i64,
    pub bytes: i64,
    pub sha256: String,
    pub finished_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

const EXPORT_COLUMNS: &str = "id, name, owner, tenant, node_id, state, format, channels, \
     encrypt_to, recording_ids, done, total, created_at, finished_at, expires_at, files, bytes, \
     sha256, error";

fn export_from_row(row: &Row) -> Result<Export> {
    Ok(Export {
        id: row.text("id")?,
        name: row.text("name")?,
        owner: row.text("owner")?,
        tenant: row.opt_text("tenant")?,
        node_id: row.text("node_id")?,
        state: row.parse("state")?,
        format: row.text("format")?,
        channels: row.text("channels")?,
        encrypt_to: row.opt_text("encrypt_to")?,
        recording_ids: row.json("recording_ids")?,
        done: row.int("done")?,
        total: row.int("total")?,
        created_at: row.time("created_at")?,
        finished_at: row.opt_time("finished_at")?,
        expires_at: row.opt_time("expires_at")?,
        files: row.opt_int("files")?,
        bytes: row.opt_int("bytes")?,
        sha256: row.opt_text("sha256")?,
        error: row.opt_text("error")?,
    })
}

/// The longest export name, in characters.
const MAX_NAME: usize = 200;

impl Catalog {
    /// Records a package asked for (`queued`) and audits it (`export`, naming the package, how
    /// its recordings were chosen and how many), in one transaction.
    pub async fn insert_export(&self, export: &NewExport, by: &Actor) -> Result<Export> {
        let name_ok = !export.name.trim().is_empty()
            && export.name.chars().count() <= MAX_NAME
            && !export.name.chars().any(char::is_control);
        if !name_ok {
            return Err(Error::InvalidInput {
                field: "name",
                reason: format!("1-{MAX_NAME} characters, none of them control characters"),
            });
        }
        let ids = serde_json::to_string(&export.recording_ids)
            .expect("a list of strings always serializes");
        let created_ms = to_unix_ms(export.created_at);
        let mut tx = self.pool.begin().await?;
        tx.run(
            "insert export",
            "INSERT INTO exports (id, name, owner, tenant, node_id, state, format, channels, \
             encrypt_to, recording_ids, done, total, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, 0, 0, $10)",
            &[
                Arg::Text(&export.id),
                Arg::Text(&export.name),
                Arg::Text(&export.owner),
                Arg::OptText(export.tenant.as_deref()),
                Arg::Text(&export.node_id),
                Arg::Text(&export.format),
                Arg::Text(&export.channels),
                Arg::OptText(export.encrypt_to.as_deref()),
                Arg::Text(&ids),
                Arg::Int(created_ms),
            ],
        )
        .await?;
        let detail = format!(
            "export {} {:?}: {} recording(s) chosen by {}, {} {}{}",
            export.id,
            export.name,
            export.recording_ids.len(),
            export.chosen_by,
            export.format,
            export.channels,
            if export.encrypt_to.is_some() {
                ", encrypted"
            } else {
                ""
            }
        );
        let entry = NewAuditEntry {
            at: export.created_at,
            actor: by.clone(),
            action: AuditAction::Export,
            recording_id: None,
            reason: export.reason.clone(),
            detail: Some(detail),
            tenant: export.tenant.clone(),
        };
        append(&mut tx, &entry, export.tenant.as_deref()).await?;
        let rows = tx
            .rows(
                "read export",
                "exports",
                &format!("SELECT {EXPORT_COLUMNS} FROM exports WHERE id = $1"),
                &[Arg::Text(&export.id)],
            )
            .await?;
        let stored = rows
            .first()
            .map(export_from_row)
            .transpose()?
            .ok_or_else(|| Error::Corrupt {
                table: "exports",
                column: "id",
                value: "the inserted row is missing".to_owned(),
            })?;
        tx.finish("commit export").await?;
        Ok(stored)
    }

    /// One package within `scope` (a tenant's user sees only its tenant's), or `None`.
    pub async fn export(&self, scope: &Scope, id: &str) -> Result<Option<Export>> {
        let mut filter = Conditions::default();
        let p = filter.bind(Arg::Text(id));
        filter.and(format!("id = {p}"));
        scope.restrict(&mut filter, "tenant");
        let sql = format!(
            "SELECT {EXPORT_COLUMNS} FROM exports{}",
            filter.where_clause()
        );
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows("read export", "exports", &sql, filter.args())
            .await?;
        tx.finish("end read").await?;
        rows.first().map(export_from_row).transpose()
    }

    /// The packages within `scope`, of `owner` only when given, newest first.
    pub async fn exports(&self, scope: &Scope, owner: Option<&str>) -> Result<Vec<Export>> {
        let mut filter = Conditions::default();
        scope.restrict(&mut filter, "tenant");
        if let Some(owner) = owner {
            let p = filter.bind(Arg::Text(owner));
            filter.and(format!("owner = {p}"));
        }
        let sql = format!(
            "SELECT {EXPORT_COLUMNS} FROM exports{} ORDER BY created_at DESC, id DESC",
            filter.where_clause()
        );
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows("list exports", "exports", &sql, filter.args())
            .await?;
        tx.finish("end read").await?;
        rows.iter().map(export_from_row).collect()
    }

    /// `queued` → `running`, with the number of files it will hold; false when the package
    /// is no longer queued (removed meanwhile).
    pub async fn start_export(&self, id: &str, total: i64) -> Result<bool> {
        self.move_export(
            "start export",
            "UPDATE exports SET state = 'running', total = $2 WHERE id = $1 AND state = 'queued'",
            &[Arg::Text(id), Arg::Int(total)],
        )
        .await
    }

    /// Files written so far (while running); false when the package is no longer running.
    pub async fn export_progress(&self, id: &str, done: i64) -> Result<bool> {
        self.move_export(
            "store export progress",
            "UPDATE exports SET done = $2 WHERE id = $1 AND state = 'running'",
            &[Arg::Text(id), Arg::Int(done)],
        )
        .await
    }

    /// `running` → `ready`; false when the package is no longer running (removed meanwhile:
    /// the caller removes its file).
    pub async fn finish_export(&self, id: &str, finished: &FinishedExport) -> Result<bool> {
        self.move_export(
            "finish export",
            "UPDATE exports SET state = 'ready', done = total, files = $2, bytes = $3, \
             sha256 = $4, finished_at = $5, expires_at = $6 \
             WHERE id = $1 AND state = 'running'",
            &[
                Arg::Text(id),
                Arg::Int(finished.files),
                Arg::Int(finished.bytes),
                Arg::Text(&finished.sha256),
                Arg::Int(to_unix_ms(finished.finished_at)),
                Arg::Int(to_unix_ms(finished.expires_at)),
            ],
        )
        .await
    }

    /// `queued` or `running` → `failed` with `error`; false when it was neither.
    pub async fn fail_export(&self, id: &str, error: &str, at: OffsetDateTime) -> Result<bool> {
        self.move_export(
            "fail export",
            "UPDATE exports SET state = 'failed', error = $2, finished_at = $3 \
             WHERE id = $1 AND state IN ('queued', 'running')",
            &[Arg::Text(id), Arg::Text(error), Arg::Int(to_unix_ms(at))],
        )
        .await
    }

    /// `ready` → `expired` once `now` is at or past its expiry; false otherwise.
    pub async fn expire_export(&self, id: &str, now: OffsetDateTime) -> Result<bool> {
        self.move_export(
            "expire export",
            "UPDATE exports SET state = 'expired' \
             WHERE id = $1 AND state = 'ready' AND expires_at <= $2",
            &[Arg::Text(id), Arg::Int(to_unix_ms(now))],
        )
        .await
    }

    /// The ids of `node_id`'s ready packages whose expiry is at or before `now`.
    pub async fn due_exports(&self, node_id: &str, now: OffsetDateTime) -> Result<Vec<String>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "find expired exports",
                "exports",
                "SELECT id FROM exports WHERE state = 'ready' AND expires_at <= $1 \
                 AND node_id = $2",
                &[Arg::Int(to_unix_ms(now)), Arg::Text(node_id)],
            )
            .await?;
        tx.finish("end read").await?;
        rows.iter().map(|row| row.text("id")).collect()
    }

    /// Marks `node_id`'s `queued` and `running` packages `failed` (its previous run stopped
    /// while building them); returns their ids.
    pub async fn fail_interrupted_exports(
        &self,
        node_id: &str,
        at: OffsetDateTime,
    ) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let rows = tx
            .rows(
                "find interrupted exports",
                "exports",
                "SELECT id FROM exports WHERE node_id = $1 AND state IN ('queued', 'running')",
                &[Arg::Text(node_id)],
            )
            .await?;
        let ids = rows
            .iter()
            .map(|row| row.text("id"))
            .collect::<Result<Vec<_>>>()?;
        tx.run(
            "fail interrupted exports",
            "UPDATE exports SET state = 'failed', error = 'interrupted: the server stopped while \
             building it', finished_at = $2 WHERE node_id = $1 AND state IN ('queued', 'running')",
            &[Arg::Text(node_id), Arg::Int(to_unix_ms(at))],
        )
        .await?;
        tx.finish("commit interrupted exports").await?;
        Ok(ids)
    }

    /// Forgets a package (cancelled or removed by its owner); false when it was unknown. The
    /// audit entry of its creation stays.
    pub async fn remove_export(&self, id: &str) -> Result<bool> {
        self.move_export(
            "remove export",
            "DELETE FROM exports WHERE id = $1",
            &[Arg::Text(id)],
        )
        .await
    }

    async fn move_export(
        &self,
        operation: &'static str,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = tx.run(operation, sql, args).await?;
        tx.finish(operation).await?;
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests;
