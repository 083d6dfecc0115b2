//! Legal matters: a named hold (case id, owner, description) with a saved search. Creating a
//! matter locks every recording its search finds within the matter's tenant (tombstones
//! aside), each with a lock naming the matter (`locks.matter_id`); [`apply_matters`] does the
//! same for one recording whenever it completes or gets a transcript, so calls recorded after
//! the matter was created are caught too. Releasing the matter removes exactly its own locks:
//! a user's lock, or another matter's, stays. Restricted recordings are held like any other
//! (the matter searches in its tenant's whole scope, not in its creator's role limits).
//!
//! Every lock a matter places or removes is audited on its recording (`lock` / `unlock`, by
//! `matter:<id>`), and the matter itself (`matter`, create and release).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Catalog;
use super::audit::{AuditAction, NewAuditEntry, append};
use super::locks::{audit_recording, validate_reason};
use super::search::{Owned, SearchQuery, conditions};
use crate::db::{Arg, Row, Tx};
use crate::error::{Error, Result};
use crate::model::to_unix_ms;
use crate::scope::{Actor, Scope};

/// A legal matter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matter {
    pub id: String,
    pub name: String,
    pub case_id: Option<String>,
    pub owner: Option<String>,
    pub description: Option<String>,
    /// The saved search: the filters of `GET /api/v1/recordings`.
    pub filter: SearchQuery,
    /// The tenant whose recordings it holds; `None`: every tenant's.
    pub tenant: Option<String>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub released_at: Option<OffsetDateTime>,
    pub released_by: Option<String>,
    pub release_reason: Option<String>,
    /// How many recordings its locks hold now.
    pub locked_recordings: i64,
}

/// A matter to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMatter {
    /// 1 to 1000 characters.
    pub name: String,
    pub case_id: Option<String>,
    pub owner: Option<String>,
    pub description: Option<String>,
    /// Its `limit` and `cursor` are ignored (a matter holds everything it finds).
    pub filter: SearchQuery,
}

const MATTER_COLUMNS: &str = "id, name, case_id, owner, description, filter, tenant, \
     created_by, created_at, released_at, released_by, release_reason, \
     (SELECT COUNT(DISTINCT recording_id) FROM locks WHERE locks.matter_id = matters.id \
     AND locks.removed_at IS NULL) AS locked_recordings";

fn matter_from_row(row: &Row) -> Result<Matter> {
    Ok(Matter {
        id: row.text("id")?,
        name: row.text("name")?,
        case_id: row.opt_text("case_id")?,
        owner: row.opt_text("owner")?,
        description: row.opt_text("description")?,
        filter: row.json("filter")?,
        tenant: row.opt_text("tenant")?,
        created_by: row.text("created_by")?,
        created_at: row.time("created_at")?,
        released_at: row.opt_time("released_at")?,
        released_by: row.opt_text("released_by")?,
        release_reason: row.opt_text("release_reason")?,
        locked_recordings: row.int("locked_recordings")?,
    })
}

/// The scope a matter searches in: its tenant's recordings, restricted ones included.
fn matter_scope(tenant: Option<&str>) -> Scope {
    match tenant {
        Some(tenant) => Scope::Tenant(tenant.to_owned()),
        None => Scope::All,
    }
}

/// The actor of the locks a matter places and removes.
fn matter_actor(id: &str) -> Actor {
    Actor::new(format!("matter:{id}"), None)
}

/// The ids of the live (not deleted) recordings `filter` finds within `scope`, and, with
/// `only`, only that one.
async fn matching(
    tx: &mut Tx,
    scope: &Scope,
    filter: &SearchQuery,
    only: Option<&str>,
) -> Result<Vec<String>> {
    let owned = Owned::of(&SearchQuery {
        limit: SearchQuery::MAX_LIMIT,
        cursor: None,
        ..filter.clone()
    })?;
    let mut c = conditions(scope, filter, &owned);
    c.and("deleted_at IS NULL");
    if let Some(id) = only {
        let p = c.bind(Arg::Text(id));
        c.and(format!("id = {p}"));
    }
    tx.rows(
        "find the recordings of a matter",
        "recordings",
        &format!("SELECT id FROM recordings{}", c.where_clause()),
        c.args(),
    )
    .await?
    .iter()
    .map(|row| row.text("id"))
    .collect()
}

/// Puts matter `matter`'s lock on `recording_id` unless it has one in force already;
/// audited on the recording. Returns whether a lock was added.
async fn hold(
    tx: &mut Tx,
    matter: &Matter,
    recording_id: &str,
    at: OffsetDateTime,
) -> Result<bool> {
    let held = tx
        .count(
            "find a matter's lock",
            "SELECT COUNT(*) FROM locks WHERE recording_id = $1 AND matter_id = $2 \
             AND removed_at IS NULL",
            &[Arg::Text(recording_id), Arg::Text(&matter.id)],
        )
        .await?;
    if held > 0 {
        return Ok(false);
    }
    let lock_id = uuid::Uuid::new_v4().to_string();
    let reason = match &matter.case_id {
        Some(case) => format!("matter {} ({case})", matter.name),
        None => format!("matter {}", matter.name),
    };
    let actor = matter_actor(&matter.id);
    tx.run(
        "add a matter's lock",
        "INSERT INTO locks (id, recording_id, reason, locked_by, locked_at, matter_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            Arg::Text(&lock_id),
            Arg::Text(recording_id),
            Arg::Text(&reason),
            Arg::Text(&actor.user),
            Arg::Int(to_unix_ms(at)),
            Arg::Text(&matter.id),
        ],
    )
    .await?;
    let tenant = tx
        .rows(
            "read the recording's tenant",
            "recordings",
            "SELECT tenant FROM recordings WHERE id = $1",
            &[Arg::Text(recording_id)],
        )
        .await?
        .first()
        .map(|row| row.opt_text("tenant"))
        .transpose()?
        .flatten();
    audit_recording(
        tx,
        &actor,
        at,
        AuditAction::Lock,
        recording_id,
        tenant.as_deref(),
        Some(&reason),
        Some(format!("lock {lock_id}")),
    )
    .await?;
    Ok(true)
}

async fn read_matter(tx: &mut Tx, scope: &Scope, id: &str) -> Result<Option<Matter>> {
    let mut c = crate::sql::Conditions::default();
    let p = c.bind(Arg::Text(id));
    c.and(format!("id = {p}"));
    scope.restrict(&mut c, "tenant");
    tx.rows(
        "read a matter",
        "matters",
        &format!("SELECT {MATTER_COLUMNS} FROM matters{}", c.where_clause()),
        c.args(),
    )
    .await?
    .first()
    .map(matter_from_row)
    .transpose()
}

/// Applies every open matter to `recording_id` (in the caller's transaction, after it locked
/// the recording's row): each matter whose search finds it holds it. Called when a recording
/// completes and when its transcript is written.
pub(super) async fn apply_matters(
    tx: &mut Tx,
    recording_id: &str,
    at: OffsetDateTime,
) -> Result<()> {
    let open = tx
        .rows(
            "read the open matters",
            "matters",
            &format!("SELECT {MATTER_COLUMNS} FROM matters WHERE released_at IS NULL"),
            &[],
        )
        .await?
        .iter()
        .map(matter_from_row)
        .collect::<Result<Vec<_>>>()?;
    for matter in open {
        let scope = matter_scope(matter.tenant.as_deref());
        if !matching(tx, &scope, &matter.filter, Some(recording_id))
            .await?
            .is_empty()
            && hold(tx, &matter, recording_id, at).await?
        {
            tracing::info!(recording_id, matter = %matter.id, "legal matter holds a new recording");
        }
    }
    Ok(())
}

impl Catalog {
    /// Creates a matter in `scope`'s tenant and locks every live recording its filter finds
    /// there (its `locked_recordings` says how many). A filter with a cursor, or invalid
    /// (bad digits): [`Error::InvalidQuery`]. Audited (`matter`, and a `lock` per recording).
    pub async fn create_matter(
        &self,
        scope: &Scope,
        new: &NewMatter,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<Matter> {
        validate_reason("name", &new.name)?;
        for (field, value) in [
            ("case_id", &new.case_id),
            ("owner", &new.owner),
            ("description", &new.description),
        ] {
            if let Some(value) = value {
                validate_reason(field, value)?;
            }
        }
        if new.filter.cursor.is_some() {
            return Err(Error::InvalidQuery {
                reason: "a matter's filter takes no cursor".to_owned(),
            });
        }
        let filter = SearchQuery {
            limit: SearchQuery::default().limit,
            cursor: None,
            ..new.filter.clone()
        };
        let tenant = scope.tenant().map(str::to_owned);
        let id = uuid::Uuid::new_v4().to_string();
        let filter_json = serde_json::to_string(&filter).expect("a search query serializes");
        let mut tx = self.pool.begin().await?;
        tx.take_write_lock().await?;
        tx.run(
            "add a matter",
            "INSERT INTO matters (id, name, case_id, owner, description, filter, tenant, \
             created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                Arg::Text(&id),
                Arg::Text(&new.name),
                Arg::OptText(new.case_id.as_deref()),
                Arg::OptText(new.owner.as_deref()),
                Arg::OptText(new.description.as_deref()),
                Arg::Text(&filter_json),
                Arg::OptText(tenant.as_deref()),
                Arg::Text(&by.user),
                Arg::Int(to_unix_ms(at)),
            ],
        )
        .await?;
        let mut matter = read_matter(&mut tx, &Scope::All, &id)
            .await?
            .ok_or_else(|| Error::UnknownItem {
                what: "matter",
                id: id.clone(),
            })?;
        append(
            &mut tx,
            &NewAuditEntry {
                at,
                actor: by.clone(),
                action: AuditAction::Matter,
                recording_id: None,
                reason: new.case_id.clone(),
                detail: Some(format!("create matter {id} ({}): {filter_json}", new.name)),
                tenant: tenant.clone(),
            },
            tenant.as_deref(),
        )
        .await?;
        let scope = matter_scope(tenant.as_deref());
        for recording_id in matching(&mut tx, &scope, &filter, None).await? {
            hold(&mut tx, &matter, &recording_id, at).await?;
        }
        matter = read_matter(&mut tx, &Scope::All, &id)
            .await?
            .ok_or_else(|| Error::UnknownItem {
                what: "matter",
                id: id.clone(),
            })?;
        tx.finish("commit matter").await?;
        Ok(matter)
    }

    /// The matters of `scope`'s tenant (all of them for [`Scope::All`]), newest first.
    pub async fn matters(&self, scope: &Scope) -> Result<Vec<Matter>> {
        let mut c = crate::sql::Conditions::default();
        scope.restrict(&mut c, "tenant");
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "read matters",
                "matters",
                &format!(
                    "SELECT {MATTER_COLUMNS} FROM matters{} ORDER BY created_at DESC, id",
                    c.where_clause()
                ),
                c.args(),
            )
            .await?;
        tx.finish("end read").await?;
        rows.iter().map(matter_from_row).collect()
    }

    /// One matter, or [`Error::UnknownItem`] when unknown or another tenant's.
    pub async fn matter(&self, scope: &Scope, id: &str) -> Result<Matter> {
        let mut tx = self.pool.begin_read().await?;
        let matter = read_matter(&mut tx, scope, id).await?;
        tx.finish("end read").await?;
        matter.ok_or_else(|| Error::UnknownItem {
            what: "matter",
            id: id.to_owned(),
        })
    }

    /// Releases a matter: its locks are removed (kept as history), other locks stay. Released
    /// already: [`Error::InvalidInput`]. Audited (`matter`, and an `unlock` per recording).
    pub async fn release_matter(
        &self,
        scope: &Scope,
        id: &str,
        reason: Option<&str>,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<Matter> {
        if let Some(reason) = reason {
            validate_reason("reason", reason)?;
        }
        let mut tx = self.pool.begin().await?;
        tx.take_write_lock().await?;
        let matter = read_matter(&mut tx, scope, id)
            .await?
            .ok_or_else(|| Error::UnknownItem {
                what: "matter",
                id: id.to_owned(),
            })?;
        if matter.released_at.is_some() {
            return Err(Error::InvalidInput {
                field: "matter",
                reason: "already released".to_owned(),
            });
        }
        tx.run(
            "release a matter",
            "UPDATE matters SET released_at = $2, released_by = $3, release_reason = $4 \
             WHERE id = $1",
            &[
                Arg::Text(id),
                Arg::Int(to_unix_ms(at)),
                Arg::Text(&by.user),
                Arg::OptText(reason),
            ],
        )
        .await?;
        let locks = tx
            .rows(
                "read a matter's locks",
                "locks",
                "SELECT locks.id AS id, locks.recording_id AS recording_id, recordings.tenant \
                 AS tenant FROM locks JOIN recordings ON recordings.id = locks.recording_id \
                 WHERE locks.matter_id = $1 AND locks.removed_at IS NULL ORDER BY locks.id",
                &[Arg::Text(id)],
            )
            .await?;
        for row in &locks {
            let lock_id = row.text("id")?;
            let recording_id = row.text("recording_id")?;
            tx.run(
                "remove a matter's lock",
                "UPDATE locks SET removed_at = $2, removed_by = $3, remove_reason = $4 \
                 WHERE id = $1",
                &[
                    Arg::Text(&lock_id),
                    Arg::Int(to_unix_ms(at)),
                    Arg::Text(&by.user),
                    Arg::Text(&format!("matter {} released", matter.name)),
                ],
            )
            .await?;
            audit_recording(
                &mut tx,
                by,
                at,
                AuditAction::Unlock,
                &recording_id,
                row.opt_text("tenant")?.as_deref(),
                reason,
                Some(format!("lock {lock_id} of matter {id}")),
            )
            .await?;
        }
        append(
            &mut tx,
            &NewAuditEntry {
                at,
                actor: by.clone(),
                action: AuditAction::Matter,
                recording_id: None,
                reason: reason.map(str::to_owned),
                detail: Some(format!(
                    "release matter {id} ({}): {} lock(s) removed",
                    matter.name,
                    locks.len()
                )),
                tenant: matter.tenant.clone(),
            },
            matter.tenant.as_deref(),
        )
        .await?;
        let released = read_matter(&mut tx, &Scope::All, id)
            .await?
            .ok_or_else(|| Error::UnknownItem {
                what: "matter",
                id: id.to_owned(),
            })?;
        tx.finish("commit release").await?;
        Ok(released)
    }
}
