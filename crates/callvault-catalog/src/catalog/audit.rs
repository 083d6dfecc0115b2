//! The audit trail: append-only and hash-chained.
//!
//! Each entry's `hash` is the SHA-256 (hex) of the previous entry's hash, a newline, and the
//! entry's canonical encoding: the JSON array `[seq, at_ms, user, action, recording_id,
//! tenant, reason, client, detail]` (serde_json: fixed order, every string escaped, so no two
//! entries encode alike). The first entry chains from 64 zeros.
//!
//! Appenders serialise on the one `audit_head` row (seq and hash of the last entry): its
//! `UPDATE` is the first thing an append does after any recording row it locks, so on
//! PostgreSQL concurrent appenders — on any node — wait for each other and each chains from
//! the one before; on SQLite the write lock does the same. An entry is appended in the
//! transaction of the change it records (a lock, a deletion…), so one never lands without
//! the other.
//!
//! [`Catalog::verify_audit`] recomputes the chain and compares the head: a changed field, a
//! removed entry (a gap in `seq`, or fewer entries than the head counts) or an inserted one is
//! named by the first `seq` where the chain breaks. Limit: someone able to rewrite the table
//! *and* the head, recomputing every later hash, is not detected by the chain alone; anchor it
//! by keeping the head hash that `callvault audit verify` prints somewhere they cannot write.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::Catalog;
use crate::cursor;
use crate::db::{Arg, Row, Tx};
use crate::error::{Error, Result};
use crate::model::to_unix_ms;
use crate::scope::{Actor, Scope};
use crate::sql::{Conditions, like_contains};

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    Login,
    Play,
    Download,
    Lock,
    Unlock,
    Delete,
    Annotate,
    /// A review change (score, flag, categories, custom data, review time).
    Update,
    Pause,
    Resume,
    /// User and token management.
    Users,
    /// Custom field definitions.
    Fields,
    /// An export package asked for (its download is a `download`).
    Export,
    /// A share link made.
    Share,
    /// A share link revoked.
    Unshare,
    /// The "never expire" flag set or cleared.
    NeverExpire,
    /// The "restricted" flag set or cleared.
    Restrict,
    /// A transcript written.
    Transcript,
    /// A legal matter created or released.
    Matter,
    /// A retention policy added or removed.
    Retention,
    /// A recording's media deleted by retention (its metadata kept).
    DeleteMedia,
    /// Audit entries older than the audit period pruned (a checkpoint keeps the chain).
    Prune,
}

impl AuditAction {
    pub const ALL: [AuditAction; 22] = [
        AuditAction::Login,
        AuditAction::Play,
        AuditAction::Download,
        AuditAction::Lock,
        AuditAction::Unlock,
        AuditAction::Delete,
        AuditAction::Annotate,
        AuditAction::Update,
        AuditAction::Pause,
        AuditAction::Resume,
        AuditAction::Users,
        AuditAction::Fields,
        AuditAction::Export,
        AuditAction::Share,
        AuditAction::Unshare,
        AuditAction::NeverExpire,
        AuditAction::Restrict,
        AuditAction::Transcript,
        AuditAction::Matter,
        AuditAction::Retention,
        AuditAction::DeleteMedia,
        AuditAction::Prune,
    ];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Login => "login",
            AuditAction::Play => "play",
            AuditAction::Download => "download",
            AuditAction::Lock => "lock",
            AuditAction::Unlock => "unlock",
            AuditAction::Delete => "delete",
            AuditAction::Annotate => "annotate",
            AuditAction::Update => "update",
            AuditAction::Pause => "pause",
            AuditAction::Resume => "resume",
            AuditAction::Users => "users",
            AuditAction::Fields => "fields",
            AuditAction::Export => "export",
            AuditAction::Share => "share",
            AuditAction::Unshare => "unshare",
            AuditAction::NeverExpire => "never_expire",
            AuditAction::Restrict => "restrict",
            AuditAction::Transcript => "transcript",
            AuditAction::Matter => "matter",
            AuditAction::Retention => "retention",
            AuditAction::DeleteMedia => "delete_media",
            AuditAction::Prune => "prune",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given to [`AuditAction::from_str`] is not an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit action {0:?}")]
pub struct UnknownAuditAction(pub String);

impl FromStr for AuditAction {
    type Err = UnknownAuditAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAuditAction(s.to_owned()))
    }
}

/// An entry to append with [`Catalog::append_audit`] (for what the catalog does not change
/// itself: logins, plays, downloads, pauses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: OffsetDateTime,
    pub actor: Actor,
    pub action: AuditAction,
    pub recording_id: Option<String>,
    /// The reason the user gave (required by `[api] require_reason`, a lock's reason…).
    pub reason: Option<String>,
    /// Anything else worth keeping, as text (e.g. a lock's id, the fields of an update).
    pub detail: Option<String>,
    /// The tenant of an entry that names no recording (the acting user's); an entry naming a
    /// recording belongs to the recording's tenant, whatever this says.
    pub tenant: Option<String>,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3… without gaps.
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub user: String,
    pub action: AuditAction,
    pub recording_id: Option<String>,
    pub tenant: Option<String>,
    pub reason: Option<String>,
    pub client: Option<String>,
    pub detail: Option<String>,
    /// This entry's link of the chain (hex SHA-256).
    pub hash: String,
}

/// A page of the audit trail, newest first; filters combine with AND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub recording_id: Option<String>,
    pub user: Option<String>,
    pub action: Option<AuditAction>,
    /// A substring of the entry's reason (letters in any case).
    pub reason: Option<String>,
    /// Entries at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Entries before this instant.
    pub until: Option<OffsetDateTime>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to [`AuditQuery::MAX_LIMIT`]; anything else is [`Error::InvalidQuery`].
    pub limit: u32,
}

impl AuditQuery {
    pub const MAX_LIMIT: u32 = 500;
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            recording_id: None,
            user: None,
            action: None,
            reason: None,
            since: None,
            until: None,
            cursor: None,
            limit: 100,
        }
    }
}

/// One page of [`Catalog::audit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as [`AuditQuery::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// What [`Catalog::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerification {
    /// Every entry chains from the one before and the head names the last.
    Intact {
        entries: i64,
        /// The last entry's hash (64 zeros when there is none): keep it elsewhere to notice a
        /// rewrite of the whole chain later.
        head: String,
    },
    /// The first entry where the chain breaks.
    Broken { seq: i64, problem: AuditProblem },
}

/// How the chain breaks at an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditProblem {
    /// The entry's fields or links do not hash to its stored hash (changed after it was written).
    Changed,
    /// The entry is gone (a gap in the sequence, or the head counts more entries than remain).
    Missing,
    /// The entry is beyond the head: added without the chain knowing.
    Unexpected,
}

impl fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuditProblem::Changed => "changed",
            AuditProblem::Missing => "missing",
            AuditProblem::Unexpected => "not in the chain",
        })
    }
}

/// The hash the first entry chains from.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry's fields as hashed (and as stored).
struct Fields<'a> {
    seq: i64,
    at_ms: i64,
    user: &'a str,
    action: &'a str,
    recording_id: Option<&'a str>,
    tenant: Option<&'a str>,
    reason: Option<&'a str>,
    client: Option<&'a str>,
    detail: Option<&'a str>,
}

impl Fields<'_> {
    fn hash(&self, prev_hash: &str) -> String {
        let canonical = serde_json::to_string(&(
            self.seq,
            self.at_ms,
            self.user,
            self.action,
            self.recording_id,
            self.tenant,
            self.reason,
            self.client,
            self.detail,
        ))
        .expect("strings and integers always serialize");
        let mut hasher = Sha256::new();
        hasher.update(prev_hash.as_bytes());
        hasher.update(b"\n");
        hasher.update(canonical.as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// Appends `entry` in `tx`, after every row lock the caller needs (see the module notes).
/// `tenant` is the entry's tenant as resolved by the caller.
pub(super) async fn append(
    tx: &mut Tx,
    entry: &NewAuditEntry,
    tenant: Option<&str>,
) -> Result<AuditEntry> {
    tx.run(
        "advance the audit head",
        "UPDATE audit_head SET seq = seq + 1 WHERE id = 0",
        &[],
    )
    .await?;
    let head = tx
        .rows(
            "read the audit head",
            "audit_head",
            "SELECT seq, hash FROM audit_head WHERE id = 0",
            &[],
        )
        .await?;
    let head = head.first().ok_or_else(|| Error::Corrupt {
        table: "audit_head",
        column: "id",
        value: "no row".to_owned(),
    })?;
    let seq = head.int("seq")?;
    let prev_hash = head.text("hash")?;
    let at_ms = to_unix_ms(entry.at);
    let fields = Fields {
        seq,
        at_ms,
        user: &entry.actor.user,
        action: entry.action.as_str(),
        recording_id: entry.recording_id.as_deref(),
        tenant,
        reason: entry.reason.as_deref(),
        client: entry.actor.client.as_deref(),
        detail: entry.detail.as_deref(),
    };
    let hash = fields.hash(&prev_hash);
    tx.run(
        "append an audit entry",
        "INSERT INTO audit (seq, occurred_at, user_name, action, recording_id, tenant, reason, \
         client, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            Arg::Int(seq),
            Arg::Int(at_ms),
            Arg::Text(fields.user),
            Arg::Text(fields.action),
            Arg::OptText(fields.recording_id),
            Arg::OptText(tenant),
            Arg::OptText(fields.reason),
            Arg::OptText(fields.client),
            Arg::OptText(fields.detail),
            Arg::Text(&prev_hash),
            Arg::Text(&hash),
        ],
    )
    .await?;
    tx.run(
        "move the audit head",
        "UPDATE audit_head SET hash = $1 WHERE id = 0",
        &[Arg::Text(&hash)],
    )
    .await?;
    Ok(AuditEntry {
        seq,
        at: crate::model::from_unix_ms(at_ms, "audit", "occurred_at")?,
        user: entry.actor.user.clone(),
        action: entry.action,
        recording_id: entry.recording_id.clone(),
        tenant: tenant.map(str::to_owned),
        reason: entry.reason.clone(),
        client: entry.actor.client.clone(),
        detail: entry.detail.clone(),
        hash,
    })
}

const AUDIT_COLUMNS: &str = "seq, occurred_at, user_name, action, recording_id, tenant, reason, \
     client, detail, prev_hash, hash";

fn entry_from_row(row: &Row) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: row.int("seq")?,
        at: row.time("occurred_at")?,
        user: row.text("user_name")?,
        action: row.parse("action")?,
        recording_id: row.opt_text("recording_id")?,
        tenant: row.opt_text("tenant")?,
        reason: row.opt_text("reason")?,
        client: row.opt_text("client")?,
        detail: row.opt_text("detail")?,
        hash: row.text("hash")?,
    })
}

impl Catalog {
    /// Appends one entry (for what the catalog does not change itself: a login, a play, a
    /// download, a pause). With a `recording_id` the entry belongs to that recording's tenant;
    /// the recording need not exist (audit entries outlive recordings).
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry> {
        let mut tx = self.pool.begin().await?;
        tx.take_write_lock().await?;
        let tenant = match &entry.recording_id {
            Some(id) => tx
                .rows(
                    "read the recording's tenant",
                    "recordings",
                    "SELECT tenant FROM recordings WHERE id = $1",
                    &[Arg::Text(id)],
                )
                .await?
                .first()
                .map(|row| row.opt_text("tenant"))
                .transpose()?
                .flatten(),
            None => entry.tenant.clone(),
        };
        let appended = append(&mut tx, entry, tenant.as_deref()).await?;
        tx.finish("commit audit entry").await?;
        Ok(appended)
    }

    /// A page of the audit trail within `scope` (a tenant sees the entries of its recordings
    /// and its users), newest first.
    pub async fn audit(&self, scope: &Scope, query: &AuditQuery) -> Result<AuditPage> {
        if !(1..=AuditQuery::MAX_LIMIT).contains(&query.limit) {
            return Err(Error::InvalidQuery {
                reason: format!("limit must be 1 to {}", AuditQuery::MAX_LIMIT),
            });
        }
        let after = query
            .cursor
            .as_deref()
            .map(cursor::parse_audit)
            .transpose()?;
        let since = query.since.map(to_unix_ms);
        let until = query.until.map(to_unix_ms);
        let mut filter = Conditions::default();
        scope.restrict(&mut filter, "tenant");
        if let Some(id) = &query.recording_id {
            let p = filter.bind(Arg::Text(id));
            filter.and(format!("recording_id = {p}"));
        }
        if let Some(user) = &query.user {
            let p = filter.bind(Arg::Text(user));
            filter.and(format!("user_name = {p}"));
        }
        if let Some(action) = query.action {
            let p = filter.bind(Arg::Text(action.as_str()));
            filter.and(format!("action = {p}"));
        }
        let reason = query
            .reason
            .as_deref()
            .map(|r| like_contains(&r.to_lowercase()));
        if let Some(reason) = &reason {
            // No index serves a substring: the other filters and the page limit bound the scan.
            let p = filter.bind(Arg::Text(reason));
            filter.and(format!("LOWER(reason) LIKE {p} ESCAPE '\\'"));
        }
        if let Some(since) = since {
            let p = filter.bind(Arg::Int(since));
            filter.and(format!("occurred_at >= {p}"));
        }
        if let Some(until) = until {
            let p = filter.bind(Arg::Int(until));
            filter.and(format!("occurred_at < {p}"));
        }
        if let Some(after) = after {
            let p = filter.bind(Arg::Int(after));
            filter.and(format!("seq < {p}"));
        }
        let limit = i64::from(query.limit);
        let mut args = filter.args().to_vec();
        args.push(Arg::Int(limit + 1));
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit{} ORDER BY seq DESC LIMIT ${}",
            filter.where_clause(),
            args.len()
        );
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows("read the audit trail", "audit", &sql, &args)
            .await?;
        tx.finish("end read").await?;
        let mut items = rows
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if items.len() > usize::try_from(limit).expect("at most 500") {
            items.truncate(usize::try_from(limit).expect("at most 500"));
            items.last().map(|e| cursor::audit(e.seq))
        } else {
            None
        };
        Ok(AuditPage { items, next_cursor })
    }

    /// Recomputes the whole chain in one snapshot: [`AuditVerification::Intact`], or the first
    /// entry where it breaks (see the module notes for what that catches).
    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        const BATCH: i64 = 1000;
        let mut tx = self.pool.begin_read().await?;
        // After pruning, the chain starts from the checkpoint: the last pruned entry's seq and
        // hash (see `prune_audit`).
        let (mut expected, mut prev_hash) = match tx
            .rows(
                "read the audit checkpoint",
                "audit_checkpoint",
                "SELECT seq, hash FROM audit_checkpoint WHERE id = 0",
                &[],
            )
            .await?
            .first()
        {
            Some(row) => (row.int("seq")? + 1, row.text("hash")?),
            None => (1_i64, GENESIS.to_owned()),
        };
        loop {
            let rows = tx
                .rows(
                    "read the audit trail",
                    "audit",
                    &format!(
                        "SELECT {AUDIT_COLUMNS} FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2"
                    ),
                    &[Arg::Int(expected), Arg::Int(BATCH)],
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let Ok(seq) = row.int("seq") else {
                    return Ok(broken(expected, AuditProblem::Changed));
                };
                if seq != expected {
                    return Ok(broken(expected, AuditProblem::Missing));
                }
                // A value that does not even decode was changed too.
                let Ok((hash, stored_prev, computed)) = rehash(row, seq, &prev_hash) else {
                    return Ok(broken(seq, AuditProblem::Changed));
                };
                if stored_prev != prev_hash || hash != computed {
                    return Ok(broken(seq, AuditProblem::Changed));
                }
                prev_hash = hash;
                expected += 1;
            }
        }
        let head = tx
            .rows(
                "read the audit head",
                "audit_head",
                "SELECT seq, hash FROM audit_head WHERE id = 0",
                &[],
            )
            .await?;
        tx.finish("end read").await?;
        let last = expected - 1;
        let (head_seq, head_hash) = match head.first() {
            Some(row) => (row.int("seq")?, row.text("hash")?),
            None => (0, GENESIS.to_owned()),
        };
        if head_seq > last {
            return Ok(broken(last + 1, AuditProblem::Missing));
        }
        if head_seq < last {
            return Ok(broken(head_seq + 1, AuditProblem::Unexpected));
        }
        if head_hash != prev_hash {
            return Ok(broken(last, AuditProblem::Changed));
        }
        Ok(AuditVerification::Intact {
            entries: last,
            head: prev_hash,
        })
    }
}

impl Catalog {
    /// Prunes the audit entries that occurred before `before`, oldest first and only as a
    /// prefix of the chain (an entry is kept if any older-numbered entry is kept), and keeps a
    /// checkpoint — the last pruned entry's seq and hash — from which [`Catalog::verify_audit`]
    /// checks the rest, so the chain stays verifiable. The pruning itself is audited
    /// (`prune`, naming the checkpoint). Returns how many entries went.
    pub async fn prune_audit(
        &self,
        before: OffsetDateTime,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        // The head's row lock first, as an append takes it: no entry lands meanwhile.
        tx.run(
            "lock the audit head",
            "UPDATE audit_head SET seq = seq WHERE id = 0",
            &[],
        )
        .await?;
        let head = tx
            .count(
                "read the audit head",
                "SELECT seq FROM audit_head WHERE id = 0",
                &[],
            )
            .await?;
        let first_kept = tx
            .rows(
                "find the first entry to keep",
                "audit",
                "SELECT MIN(seq) AS seq FROM audit WHERE occurred_at >= $1",
                &[Arg::Int(to_unix_ms(before))],
            )
            .await?
            .first()
            .map(|row| row.opt_int("seq"))
            .transpose()?
            .flatten();
        let cut = first_kept.map_or(head, |seq| seq - 1);
        let Some(last) = tx
            .rows(
                "read the last entry to prune",
                "audit",
                "SELECT hash FROM audit WHERE seq = $1",
                &[Arg::Int(cut)],
            )
            .await?
            .first()
            .map(|row| row.text("hash"))
            .transpose()?
        else {
            // Nothing older, or already pruned up to there.
            tx.finish("end prune").await?;
            return Ok(0);
        };
        let pruned = tx
            .run(
                "prune audit entries",
                "DELETE FROM audit WHERE seq <= $1",
                &[Arg::Int(cut)],
            )
            .await?;
        tx.run(
            "keep the audit checkpoint",
            "INSERT INTO audit_checkpoint (id, seq, hash, pruned_at) VALUES (0, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
             pruned_at = excluded.pruned_at",
            &[Arg::Int(cut), Arg::Text(&last), Arg::Int(to_unix_ms(at))],
        )
        .await?;
        let pruned = i64::try_from(pruned).unwrap_or(i64::MAX);
        append(
            &mut tx,
            &NewAuditEntry {
                at,
                actor: by.clone(),
                action: AuditAction::Prune,
                recording_id: None,
                reason: None,
                detail: Some(format!(
                    "{pruned} entries before {} pruned; the chain continues from entry {cut} \
                     (hash {last})",
                    to_unix_ms(before)
                )),
                tenant: None,
            },
            None,
        )
        .await?;
        tx.finish("commit prune").await?;
        Ok(pruned)
    }
}

fn broken(seq: i64, problem: AuditProblem) -> AuditVerification {
    AuditVerification::Broken { seq, problem }
}

/// (stored hash, stored prev_hash, the hash the row's fields give chained from `prev_hash`).
fn rehash(row: &Row, seq: i64, prev_hash: &str) -> Result<(String, String, String)> {
    let user = row.text("user_name")?;
    let action = row.text("action")?;
    let recording_id = row.opt_text("recording_id")?;
    let tenant = row.opt_text("tenant")?;
    let reason = row.opt_text("reason")?;
    let client = row.opt_text("client")?;
    let detail = row.opt_text("detail")?;
    let fields = Fields {
        seq,
        at_ms: row.int("occurred_at")?,
        user: &user,
        action: &action,
        recording_id: recording_id.as_deref(),
        tenant: tenant.as_deref(),
        reason: reason.as_deref(),
        client: client.as_deref(),
        detail: detail.as_deref(),
    };
    Ok((
        row.text("hash")?,
        row.text("prev_hash")?,
        fields.hash(prev_hash),
    ))
}

#[cfg(test)]
mod tests;
