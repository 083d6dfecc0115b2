//! Search: recordings newest first, filtered, a page at a time (keyset pagination), within a
//! [`Scope`]; and one recording in full with its locks, notes, review and pauses.
//!
//! Which index serves which filter (the plans are asserted by `search/tests.rs` on both
//! engines): newest first is `recordings_started_at` scanned backwards, `since`/`until`
//! and the cursor are ranges on it; a tenant's recordings (scope or `tenant`) are
//! `recordings_tenant_started_at`; `call_id` the two Call-ID indexes; `session_id` its
//! index; `id` one lookup per kind of id (primary key, session, both Call-IDs, correlation
//! values) united; `locked` the partial index of locks in force. `party` and `digits` are
//! substring matches no B-tree index can serve: they are checked along the time order, so a
//! page costs what it takes to find `limit` matches (see the crate's Limits).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::Catalog;
use super::locks::{DeletedLeg, LOCK_COLUMNS, Lock, lock_from_row};
use super::read::{RECORDING_COLUMNS, children, load_recordings, state_condition};
use super::review::{ANNOTATION_COLUMNS, Annotation, REVIEW_COLUMNS, review_from_row};
use crate::cursor;
use crate::db::{Arg, Row, Tx};
use crate::error::{Error, Result};
use crate::model::{Pause, Recording, RecordingState, to_unix_ms};
use crate::scope::Scope;
use crate::sql::{Conditions, digits_pattern, like_contains};

/// What to find; filters combine with AND. `Default` finds everything, newest first.
///
/// Serialized, it is a legal matter's saved search (`limit` and `cursor` then mean nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchQuery {
    /// Started at or after this instant.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub since: Option<OffsetDateTime>,
    /// Started before this instant.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<OffsetDateTime>,
    /// A substring (ASCII letters in any case) of From, To, or any participant's AOR or name.
    pub party: Option<String>,
    /// The ingress or egress Call-ID, exactly.
    pub call_id: Option<String>,
    pub session_id: Option<String>,
    /// Any id, exactly: the recording id, session id, either Call-ID, or a vendor correlation
    /// id (UCID, Cisco-Guid…; a tombstone no longer has those).
    pub id: Option<String>,
    /// Contained in the recording's DTMF digits (in time order, all legs): `0-9 * # A-D !`.
    pub digits: Option<String>,
    /// [`RecordingState::Deleted`] finds the tombstones; any other state excludes them.
    pub state: Option<RecordingState>,
    /// With (`true`) or without (`false`) a lock in force.
    pub locked: Option<bool>,
    /// With (`true`) or without (`false`) annotations.
    pub annotated: Option<bool>,
    pub min_duration_ms: Option<i64>,
    pub max_duration_ms: Option<i64>,
    /// One tenant's recordings (for a user without a tenant; within a tenant's scope another
    /// tenant finds nothing).
    pub tenant: Option<String>,
    /// A substring (ASCII letters in any case) of the recording's transcript.
    pub transcript: Option<String>,
    /// Flagged restricted (`true`) or not (`false`); a scope that hides restricted
    /// recordings finds none either way.
    pub restricted: Option<bool>,
    /// Flagged "never expire" (`true`) or not (`false`).
    pub never_expire: Option<bool>,
    /// The `[[routes]]` route of a pass-through call, exactly.
    pub route: Option<String>,
    /// 1 to [`SearchQuery::MAX_LIMIT`]; anything else is [`Error::InvalidQuery`].
    pub limit: u32,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl SearchQuery {
    pub const MAX_LIMIT: u32 = 500;
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            since: None,
            until: None,
            party: None,
            call_id: None,
            session_id: None,
            id: None,
            digits: None,
            state: None,
            locked: None,
            annotated: None,
            min_duration_ms: None,
            max_duration_ms: None,
            tenant: None,
            transcript: None,
            restricted: None,
            never_expire: None,
            route: None,
            limit: 100,
            cursor: None,
        }
    }
}

/// One page of [`Catalog::search`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPage {
    pub items: Vec<RecordingItem>,
    /// Pass as [`SearchQuery::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// A recording as a search lists it: every field of [`Recording`] (the `recordings show
/// --json` contract) and what managing it adds. A tombstone has `state: "deleted"`, its
/// `deleted_*` fields set, and no children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingItem {
    #[serde(flatten)]
    pub recording: Recording,
    pub tenant: Option<String>,
    /// Whether a lock is in force.
    pub locked: bool,
    pub score: Option<i64>,
    pub annotation_count: i64,
    /// How many times the recording was paused (intervals of silence, card data kept out).
    #[serde(default)]
    pub pause_count: i64,
    /// A pause is in force now (an active recording).
    #[serde(default)]
    pub paused_now: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    pub deleted_by: Option<String>,
    pub delete_reason: Option<String>,
    /// Seen only by roles with the `view_restricted` permission.
    #[serde(default)]
    pub restricted: bool,
    /// Never deleted by retention.
    #[serde(default)]
    pub never_expire: bool,
    /// When retention deleted the media (the metadata stays until its own period).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub media_deleted_at: Option<OffsetDateTime>,
    /// Whether a transcript was written (`GET …/transcript` reads it).
    #[serde(default)]
    pub has_transcript: bool,
}

/// One recording in full: its [`RecordingItem`] and everything about managing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingDetails {
    #[serde(flatten)]
    pub item: RecordingItem,
    /// Every lock, in force or removed, oldest first.
    pub locks: Vec<Lock>,
    /// Oldest first.
    pub annotations: Vec<Annotation>,
    /// The "complete transaction" flag.
    pub complete: Option<bool>,
    pub categories: Vec<String>,
    pub custom: Map<String, Value>,
    pub review_seconds: Option<i64>,
    /// Paused intervals, in order.
    pub paused: Vec<Pause>,
    /// A tombstone's deleted leg files with their digests; empty otherwise.
    pub deleted_legs: Vec<DeletedLeg>,
}

/// The columns of `recordings` a search reads.
fn item_columns() -> String {
    format!(
        "{RECORDING_COLUMNS}, tenant, deleted_by, delete_reason, deleted_legs, restricted, \
         never_expire, media_deleted_at, transcript_at, {REVIEW_COLUMNS}"
    )
}

/// The filters of `query` within `scope`, on `recordings`, with the cursor's position.
pub(super) fn conditions<'a>(
    scope: &'a Scope,
    query: &'a SearchQuery,
    owned: &'a Owned,
) -> Conditions<'a> {
    let mut c = Conditions::default();
    scope.restrict_recordings(&mut c);
    if let Some(tenant) = &query.tenant {
        let p = c.bind(Arg::Text(tenant));
        c.and(format!("tenant = {p}"));
    }
    if let Some(since) = owned.since {
        let p = c.bind(Arg::Int(since));
        c.and(format!("started_at >= {p}"));
    }
    if let Some(until) = owned.until {
        let p = c.bind(Arg::Int(until));
        c.and(format!("started_at < {p}"));
    }
    if let Some((ms, id)) = &owned.after {
        let ms = c.bind(Arg::Int(*ms));
        let id = c.bind(Arg::Text(id));
        c.and(format!("(started_at, id) < ({ms}, {id})"));
    }
    if let Some(call_id) = &query.call_id {
        let p = c.bind(Arg::Text(call_id));
        c.and(format!("(ingress_call_id = {p} OR egress_call_id = {p})"));
    }
    if let Some(session_id) = &query.session_id {
        let p = c.bind(Arg::Text(session_id));
        c.and(format!("session_id = {p}"));
    }
    if let Some(id) = &query.id {
        let p = c.bind(Arg::Text(id));
        // One index lookup per kind of id, united: an OR across columns (and a sub-select)
        // would make both planners scan.
        c.and(format!(
            "id IN (SELECT id FROM recordings WHERE id = {p} \
             UNION SELECT id FROM recordings WHERE session_id = {p} \
             UNION SELECT id FROM recordings WHERE ingress_call_id = {p} \
             UNION SELECT id FROM recordings WHERE egress_call_id = {p} \
             UNION SELECT recording_id FROM correlation_ids WHERE value = {p})"
        ));
    }
    if let Some(pattern) = &owned.digits {
        let p = c.bind(Arg::Text(pattern));
        c.and(format!("dtmf_digits LIKE {p} ESCAPE '\\'"));
    }
    if let Some(pattern) = &owned.party {
        let p = c.bind(Arg::Text(pattern));
        c.and(format!(
            "(LOWER(from_uri) LIKE {p} ESCAPE '\\' OR LOWER(to_uri) LIKE {p} ESCAPE '\\' \
             OR EXISTS (SELECT 1 FROM participants WHERE participants.recording_id = recordings.id \
             AND (LOWER(participants.aor) LIKE {p} ESCAPE '\\' \
             OR LOWER(participants.name) LIKE {p} ESCAPE '\\')))"
        ));
    }
    if let Some(state) = query.state {
        state_condition(&mut c, state);
    }
    if let Some(locked) = query.locked {
        let not = if locked { "" } else { "NOT " };
        c.and(format!(
            "{not}EXISTS (SELECT 1 FROM locks WHERE locks.recording_id = recordings.id \
             AND locks.removed_at IS NULL)"
        ));
    }
    if let Some(annotated) = query.annotated {
        let not = if annotated { "" } else { "NOT " };
        c.and(format!(
            "{not}EXISTS (SELECT 1 FROM annotations \
             WHERE annotations.recording_id = recordings.id)"
        ));
    }
    if let Some(pattern) = &owned.transcript {
        let p = c.bind(Arg::Text(pattern));
        c.and(format!("LOWER(transcript) LIKE {p} ESCAPE '\\'"));
    }
    if let Some(restricted) = query.restricted {
        c.and(format!("restricted = {}", i64::from(restricted)));
    }
    if let Some(never_expire) = query.never_expire {
        c.and(format!("never_expire = {}", i64::from(never_expire)));
    }
    if let Some(route) = &query.route {
        let p = c.bind(Arg::Text(route));
        c.and(format!("route = {p}"));
    }
    if let Some(min) = query.min_duration_ms {
        let p = c.bind(Arg::Int(min));
        c.and(format!("duration_ms >= {p}"));
    }
    if let Some(max) = query.max_duration_ms {
        let p = c.bind(Arg::Int(max));
        c.and(format!("duration_ms <= {p}"));
    }
    c
}

/// The values a query's binds borrow that are computed from it.
pub(super) struct Owned {
    since: Option<i64>,
    until: Option<i64>,
    after: Option<(i64, String)>,
    digits: Option<String>,
    party: Option<String>,
    transcript: Option<String>,
}

impl Owned {
    pub(super) fn of(query: &SearchQuery) -> Result<Owned> {
        if !(1..=SearchQuery::MAX_LIMIT).contains(&query.limit) {
            return Err(Error::InvalidQuery {
                reason: format!("limit must be 1 to {}", SearchQuery::MAX_LIMIT),
            });
        }
        Ok(Owned {
            since: query.since.map(to_unix_ms),
            until: query.until.map(to_unix_ms),
            after: query
                .cursor
                .as_deref()
                .map(cursor::parse_recordings)
                .transpose()?,
            digits: query.digits.as_deref().map(digits_pattern).transpose()?,
            party: query
                .party
                .as_deref()
                .map(|party| like_contains(&party.to_lowercase())),
            transcript: query
                .transcript
                .as_deref()
                .map(|words| like_contains(&words.to_lowercase())),
        })
    }
}

/// The SQL of one page of `query` (for the plan tests too), with its binds.
pub(super) fn page_sql<'a>(
    scope: &'a Scope,
    query: &'a SearchQuery,
    owned: &'a Owned,
) -> (String, Vec<Arg<'a>>) {
    let filter = conditions(scope, query, owned);
    let mut args = filter.args().to_vec();
    args.push(Arg::Int(i64::from(query.limit) + 1));
    let sql = format!(
        "SELECT {} FROM recordings{} ORDER BY started_at DESC, id DESC LIMIT ${}",
        item_columns(),
        filter.where_clause(),
        args.len()
    );
    (sql, args)
}

/// Page rows into items: their recordings with children, whether locked, how many notes and
/// pauses.
async fn load_items(tx: &mut Tx, rows: &[Row]) -> Result<Vec<RecordingItem>> {
    let recordings = load_recordings(tx, rows).await?;
    let ids: Vec<String> = recordings.iter().map(|r| r.id.clone()).collect();
    let locked: HashSet<usize> = children(
        tx,
        &ids,
        "read locks",
        "locks",
        "DISTINCT recording_id",
        "AND removed_at IS NULL",
    )
    .await?
    .into_iter()
    .map(|(i, _)| i)
    .collect();
    let mut annotation_counts = HashMap::new();
    for (i, row) in children(
        tx,
        &ids,
        "count annotations",
        "annotations",
        "recording_id, COUNT(*) AS notes",
        "GROUP BY recording_id",
    )
    .await?
    {
        annotation_counts.insert(i, row.int("notes")?);
    }
    let mut pauses = HashMap::new();
    for (i, row) in children(
        tx,
        &ids,
        "count pauses",
        "pauses",
        "recording_id, COUNT(*) AS pauses, \
         SUM(CASE WHEN to_ms IS NULL THEN 1 ELSE 0 END) AS open_pauses",
        "GROUP BY recording_id",
    )
    .await?
    {
        pauses.insert(i, (row.int("pauses")?, row.int("open_pauses")? > 0));
    }
    recordings
        .into_iter()
        .zip(rows)
        .enumerate()
        .map(|(i, (recording, row))| {
            Ok(RecordingItem {
                recording,
                tenant: row.opt_text("tenant")?,
                locked: locked.contains(&i),
                score: row.opt_int("score")?,
                annotation_count: annotation_counts.get(&i).copied().unwrap_or(0),
                pause_count: pauses.get(&i).map_or(0, |p| p.0),
                paused_now: pauses.get(&i).is_some_and(|p| p.1),
                deleted_at: row.opt_time("deleted_at")?,
                deleted_by: row.opt_text("deleted_by")?,
                delete_reason: row.opt_text("delete_reason")?,
                restricted: row.opt_flag("restricted")?.unwrap_or(false),
                never_expire: row.opt_flag("never_expire")?.unwrap_or(false),
                media_deleted_at: row.opt_time("media_deleted_at")?,
                has_transcript: row.opt_int("transcript_at")?.is_some(),
            })
        })
        .collect()
}

impl Catalog {
    /// One page of the recordings within `scope` that match `query`, newest first
    /// (`started_at`, then `id`, descending), tombstones included unless a state excludes
    /// them. Costs a fixed number of queries whatever the page size.
    ///
    /// A limit out of range, a cursor this catalog did not give out, or digits that are not
    /// DTMF digits: [`Error::InvalidQuery`].
    pub async fn search(&self, scope: &Scope, query: &SearchQuery) -> Result<SearchPage> {
        let owned = Owned::of(query)?;
        let (sql, args) = page_sql(scope, query, &owned);
        let mut tx = self.pool.begin_read().await?;
        let mut rows = tx
            .rows("search recordings", "recordings", &sql, &args)
            .await?;
        let limit = usize::try_from(query.limit).expect("at most 500");
        let more = rows.len() > limit;
        rows.truncate(limit);
        let items = load_items(&mut tx, &rows).await?;
        tx.finish("end read").await?;
        let next_cursor = if more {
            items.last().map(|item| {
                cursor::recordings(to_unix_ms(item.recording.started_at), &item.recording.id)
            })
        } else {
            None
        };
        Ok(SearchPage { items, next_cursor })
    }

    /// One recording in full, or `None` when it is unknown or outside `scope` (the two are not
    /// told apart). Tombstones are returned.
    pub async fn recording_details(
        &self,
        scope: &Scope,
        recording_id: &str,
    ) -> Result<Option<RecordingDetails>> {
        let mut filter = Conditions::default();
        let p = filter.bind(Arg::Text(recording_id));
        filter.and(format!("id = {p}"));
        scope.restrict_recordings(&mut filter);
        let sql = format!(
            "SELECT {} FROM recordings{}",
            item_columns(),
            filter.where_clause()
        );
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows("read recording", "recordings", &sql, filter.args())
            .await?;
        let Some(row) = rows.first() else {
            tx.finish("end read").await?;
            return Ok(None);
        };
        let review = review_from_row(row)?;
        let deleted_legs: Vec<DeletedLeg> = match row.opt_text("deleted_legs")? {
            Some(_) => row.json("deleted_legs")?,
            None => Vec::new(),
        };
        let item = load_items(&mut tx, &rows)
            .await?
            .pop()
            .expect("one row gives one item");
        let id = [recording_id.to_owned()];
        let locks = children(
            &mut tx,
            &id,
            "read locks",
            "locks",
            LOCK_COLUMNS,
            "ORDER BY locked_at, id",
        )
        .await?
        .iter()
        .map(|(_, row)| lock_from_row(row))
        .collect::<Result<Vec<_>>>()?;
        let annotations = children(
            &mut tx,
            &id,
            "read annotations",
            "annotations",
            ANNOTATION_COLUMNS,
            "ORDER BY created_at, id",
        )
        .await?
        .iter()
        .map(|(_, row)| super::review::annotation_from_row(row))
        .collect::<Result<Vec<_>>>()?;
        let paused = children(
            &mut tx,
            &id,
            "read pauses",
            "pauses",
            "recording_id, seq, from_ms, to_ms, paused_by",
            "ORDER BY seq",
        )
        .await?
        .iter()
        .map(|(_, row)| {
            Ok(Pause {
                seq: row.int("seq")?,
                from_ms: row.int("from_ms")?,
                to_ms: row.opt_int("to_ms")?,
                by: row.text("paused_by")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        tx.finish("end read").await?;
        Ok(Some(RecordingDetails {
            item,
            locks,
            annotations,
            complete: review.complete,
            categories: review.categories,
            custom: review.custom,
            review_seconds: review.review_seconds,
            paused,
            deleted_legs,
        }))
    }
}

#[cfg(test)]
mod tests;
