//! Share links: a link to one recording for someone without an account.
//!
//! A link's token is 32 bytes from the operating system's random number generator, written
//! base64url (43 characters). Like a bearer token, only its SHA-256 is stored: the token exists
//! in clear only in the answer to whoever made the link, so a leaked catalog (or a backup of it)
//! opens no recording. The link's `id` (`shr_` and 16 hex digits) is what lists, revocations
//! and the audit trail name it by. A plain hash is enough for a 256-bit secret, and it lets a
//! request's token be found by an index lookup.
//!
//! Made and revoked within the maker's scope, audited (`share`, `unshare`) on the recording in
//! the same transaction.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::audit::AuditAction;
use super::locks::audit_recording;
use super::{Catalog, lock_recording};
use crate::db::{Arg, Row};
use crate::error::{Error, Result};
use crate::model::to_unix_ms;
use crate::scope::{Actor, Scope};

/// A share link as the catalog keeps it (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLink {
    /// `shr_` and 16 hex digits.
    pub id: String,
    pub recording_id: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Whether the holder may download the audio (otherwise it is served for playing only).
    pub allow_download: bool,
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
}

/// A share link to make ([`Catalog::create_share`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShareLink {
    pub recording_id: String,
    pub expires_at: OffsetDateTime,
    pub allow_download: bool,
    /// Up to 1000 characters, no control characters but newlines and tabs.
    pub note: Option<String>,
}

/// A link just made: the only time its token exists outside its holder. `Debug` does not
/// show it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewShare {
    /// 43 base64url characters: put it in the link, it cannot be read back.
    pub token: String,
    pub link: ShareLink,
}

impl fmt::Debug for NewShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewShare")
            .field("token", &"***")
            .field("link", &self.link)
            .finish()
    }
}

const SHARE_COLUMNS: &str = "id, recording_id, created_by, created_at, expires_at, \
     allow_download, note, revoked_at, revoked_by";
const MAX_NOTE: usize = 1000;

fn share_from_row(row: &Row) -> Result<ShareLink> {
    Ok(ShareLink {
        id: row.text("id")?,
        recording_id: row.text("recording_id")?,
        created_by: row.text("created_by")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        allow_download: row.int("allow_download")? != 0,
        note: row.opt_text("note")?,
        revoked_at: row.opt_time("revoked_at")?,
        revoked_by: row.opt_text("revoked_by")?,
    })
}

/// The stored form of a token.
fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes).map_err(|source| Error::Random { source })?;
    Ok(bytes)
}

impl Catalog {
    /// Makes a link to a recording within `scope`: unknown or out of scope
    /// [`Error::NotFound`], a tombstone [`Error::Deleted`], an expiry not after `at` or a bad
    /// note [`Error::InvalidInput`]. Audited (`share`, naming the link).
    pub async fn create_share(
        &self,
        scope: &Scope,
        link: &NewShareLink,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<NewShare> {
        if link.expires_at <= at {
            return Err(Error::InvalidInput {
                field: "expires_at",
                reason: "must be in the future".to_owned(),
            });
        }
        if let Some(note) = &link.note {
            let ok = note.chars().count() <= MAX_NOTE
                && !note
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t');
            if !ok {
                return Err(Error::InvalidInput {
                    field: "note",
                    reason: format!("at most {MAX_NOTE} characters, no control characters"),
                });
            }
        }
        let token = URL_SAFE_NO_PAD.encode(random::<32>()?);
        let id = format!("shr_{}", hex::encode(random::<8>()?));
        let mut tx = self.pool.begin().await?;
        let recording = lock_recording(&mut tx, scope, &link.recording_id).await?;
        if recording.deleted {
            return Err(Error::Deleted {
                id: link.recording_id.clone(),
            });
        }
        tx.run(
            "insert share link",
            "INSERT INTO share_links (id, token_sha256, recording_id, created_by, created_at, \
             expires_at, allow_download, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                Arg::Text(&id),
                Arg::Text(&token_digest(&token)),
                Arg::Text(&link.recording_id),
                Arg::Text(&by.user),
                Arg::Int(to_unix_ms(at)),
                Arg::Int(to_unix_ms(link.expires_at)),
                Arg::Int(i64::from(link.allow_download)),
                Arg::OptText(link.note.as_deref()),
            ],
        )
        .await?;
        let expires = link
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let detail = format!(
            "link {id} until {expires}, {}",
            if link.allow_download {
                "download allowed"
            } else {
                "play only"
            }
        );
        audit_recording(
            &mut tx,
            by,
            at,
            AuditAction::Share,
            &link.recording_id,
            recording.tenant.as_deref(),
            link.note.as_deref(),
            Some(detail),
        )
        .await?;
        tx.finish("commit share link").await?;
        let link = self
            .share_link(scope, &id)
            .await?
            .ok_or_else(|| Error::Corrupt {
                table: "share_links",
                column: "id",
                value: "the inserted row is missing".to_owned(),
            })?;
        Ok(NewShare { token, link })
    }

    /// The link whose token is `token`, whatever its state (revoked, expired), or `None`.
    pub async fn share_by_token(&self, token: &str) -> Result<Option<ShareLink>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "find share link",
                "share_links",
                &format!("SELECT {SHARE_COLUMNS} FROM share_links WHERE token_sha256 = $1"),
                &[Arg::Text(&token_digest(token))],
            )
            .await?;
        tx.finish("end read").await?;
        rows.first().map(share_from_row).transpose()
    }

    /// One link, if its recording is within `scope`.
    pub async fn share_link(&self, scope: &Scope, id: &str) -> Result<Option<ShareLink>> {
        let (sql, args) = scoped(scope, "share_links.id = $1", id);
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows("read share link", "share_links", &sql, &args)
            .await?;
        tx.finish("end read").await?;
        rows.first().map(share_from_row).transpose()
    }

    /// Every link of a recording within `scope` (revoked and expired ones too), oldest first.
    pub async fn shares_of(&self, scope: &Scope, recording_id: &str) -> Result<Vec<ShareLink>> {
        let (sql, args) = scoped(scope, "share_links.recording_id = $1", recording_id);
        let sql = format!("{sql} ORDER BY share_links.created_at, share_links.id");
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows("list share links", "share_links", &sql, &args)
            .await?;
        tx.finish("end read").await?;
        rows.iter().map(share_from_row).collect()
    }

    /// Revokes a link (revoking twice keeps the first time). Unknown or out of scope:
    /// [`Error::NotFound`]. Audited (`unshare`) when it was in force.
    pub async fn revoke_share(
        &self,
        scope: &Scope,
        id: &str,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<ShareLink> {
        let found = self
            .share_link(scope, id)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
        let mut tx = self.pool.begin().await?;
        let recording = lock_recording(&mut tx, scope, &found.recording_id).await?;
        let revoked = tx
            .run(
                "revoke share link",
                "UPDATE share_links SET revoked_at = $2, revoked_by = $3 \
                 WHERE id = $1 AND revoked_at IS NULL",
                &[Arg::Text(id), Arg::Int(to_unix_ms(at)), Arg::Text(&by.user)],
            )
            .await?;
        if revoked > 0 {
            audit_recording(
                &mut tx,
                by,
                at,
                AuditAction::Unshare,
                &found.recording_id,
                recording.tenant.as_deref(),
                None,
                Some(format!("link {id}")),
            )
            .await?;
        }
        tx.finish("commit share revocation").await?;
        self.share_link(scope, id)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })
    }
}

/// `SELECT` of links matching `condition` (on `$1` = `value`) whose recording is in `scope`.
fn scoped<'a>(scope: &'a Scope, condition: &str, value: &'a str) -> (String, Vec<Arg<'a>>) {
    let columns = SHARE_COLUMNS
        .split(", ")
        .map(|c| format!("share_links.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut args = vec![Arg::Text(value)];
    let tenant = match scope.tenant() {
        Some(tenant) => {
            args.push(Arg::Text(tenant));
            " AND recordings.tenant = $2"
        }
        None => "",
    };
    (
        format!(
            "SELECT {columns} FROM share_links JOIN recordings \
             ON recordings.id = share_links.recording_id WHERE {condition}{tenant}"
        ),
        args,
    )
}

#[cfg(test)]
mod tests;
