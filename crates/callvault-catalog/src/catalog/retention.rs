//! Retention: policies that say how long recordings are kept, the plan of what is due (the
//! dry run and the sweeper read the same plan), and the media-only deletion a policy's media
//! period asks for. Deletion itself is [`Catalog::delete`] / [`Catalog::delete_media`], the
//! same path as a user's, so a lock in force (a user's or a legal matter's), a recording
//! still being recorded, and the "never expire" flag always win: such a recording is listed
//! as held, with why, never deleted.
//!
//! **Which period applies.** A policy matches a recording when every criterion it gives
//! matches (tenant exactly, route exactly, participant as a case-insensitive substring of
//! From, To or a participant's AOR or name, custom field equal to a value). When several
//! match, the longest period wins, for the media and for the metadata separately (keeping a
//! record longer than one rule asks is safe; deleting it before another rule allows is not);
//! a policy without a metadata period keeps the metadata for ever. Only when no policy matches
//! does the configured default (`[retention] days`) apply. Ages count from the recording's
//! start.
//!
//! **Media and metadata.** At the media period the leg files go and the catalog keeps the
//! recording's metadata (participants, digits, transcript, review) with `media_deleted_at`
//! set and the files' digests in `deleted_legs`; at the metadata period the recording becomes
//! a tombstone, as a user's deletion leaves it. The tombstone itself is never removed: it is
//! the proof of what existed and who deleted it when, which the audit trail points at, and
//! compliance reviews expect to find.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use super::Catalog;
use super::audit::{AuditAction, NewAuditEntry, append};
use super::locks::{
    Deletion, audit_recording, deletable, deleted_legs, digests, started_at, validate_reason,
};
use super::read::children;
use crate::db::{Arg, Row};
use crate::error::{Error, Result};
use crate::model::{RecordingState, to_unix_ms};
use crate::scope::{Actor, Scope};

/// A retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub id: String,
    /// Unique; its deletions are audited as `policy:<name>`.
    pub name: String,
    #[serde(flatten)]
    pub rule: RetentionRule,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What a policy matches and keeps: every criterion given must match; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionRule {
    pub tenant: Option<String>,
    /// A `[[routes]]` route's name.
    pub route: Option<String>,
    /// A substring (ASCII case ignored) of From, To, or a participant's AOR or name.
    pub participant: Option<String>,
    /// A custom field's name; with `value`, the recording's field must equal it.
    pub field: Option<String>,
    pub value: Option<String>,
    /// Days after its start when a recording's media (leg files) are deleted.
    pub media_days: Option<u32>,
    /// Days after its start when a recording becomes a tombstone.
    pub metadata_days: Option<u32>,
    /// Days the audit trail keeps its entries (the longest of all policies and of
    /// `[retention] audit_days` applies to the whole trail).
    pub audit_days: Option<u32>,
}

/// What retention does to a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    /// Delete the leg files, keep the metadata.
    Media,
    /// Delete everything but the tombstone.
    Metadata,
}

/// Why a due recording is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// A lock is in force (a user's or a legal matter's).
    Locked,
    /// Flagged "never expire".
    NeverExpire,
    /// Still being recorded.
    Active,
}

/// A recording retention would delete now (or would, but for a hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionItem {
    pub recording_id: String,
    pub tenant: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub expiry: Expiry,
    /// The policy's name, or `config` for `[retention] days`.
    pub rule: String,
    /// Who the deletion is audited as: `policy:<name>` or `retention:config`.
    pub actor: String,
    /// Whole days since the start.
    pub age_days: i64,
    /// The period that expired, in days.
    pub period_days: u32,
    /// Set when it is kept anyway.
    pub held: Option<Hold>,
}

/// What retention would do now: the due recordings oldest first, those held among them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPlan {
    pub items: Vec<RetentionItem>,
    /// The audit period in force (the longest configured), in days.
    pub audit_days: Option<u32>,
}

/// The settings retention takes from the configuration (for deployments without policies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionDefaults {
    /// `[retention] days`: recordings no policy matches become tombstones after this.
    pub days: Option<u32>,
    /// `[retention] audit_days`.
    pub audit_days: Option<u32>,
}

/// A recording that counts towards `[retention] max_bytes`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUsage {
    pub recording_id: String,
    pub started_at: OffsetDateTime,
    /// Its leg files' size as the catalog counts it (80-byte header + 2 bytes per sample).
    pub bytes: u64,
    pub held: Option<Hold>,
}

const POLICY_COLUMNS: &str = "id, name, tenant, route, participant, field, field_value, \
     media_days, metadata_days, audit_days, created_by, created_at";

fn days(row: &Row, column: &'static str) -> Result<Option<u32>> {
    row.opt_int(column)?
        .map(|d| u32::try_from(d).map_err(|_| row.corrupt(column, d)))
        .transpose()
}

fn policy_from_row(row: &Row) -> Result<RetentionPolicy> {
    Ok(RetentionPolicy {
        id: row.text("id")?,
        name: row.text("name")?,
        rule: RetentionRule {
            tenant: row.opt_text("tenant")?,
            route: row.opt_text("route")?,
            participant: row.opt_text("participant")?,
            field: row.opt_text("field")?,
            value: row.opt_text("field_value")?,
            media_days: days(row, "media_days")?,
            metadata_days: days(row, "metadata_days")?,
            audit_days: days(row, "audit_days")?,
        },
        created_by: row.text("created_by")?,
        created_at: row.time("created_at")?,
    })
}

fn invalid(reason: &str) -> Error {
    Error::InvalidInput {
        field: "policy",
        reason: reason.to_owned(),
    }
}

/// What a policy is matched against.
struct Candidate {
    id: String,
    tenant: Option<String>,
    route: Option<String>,
    parties: Vec<String>,
    custom: Map<String, Value>,
    started_at: OffsetDateTime,
    media_deleted: bool,
    held: Option<Hold>,
}

impl RetentionRule {
    fn matches(&self, c: &Candidate) -> bool {
        let same = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        let party = self.participant.as_ref().is_none_or(|p| {
            let p = p.to_ascii_lowercase();
            c.parties
                .iter()
                .any(|s| s.to_ascii_lowercase().contains(&p))
        });
        let field = match (&self.field, &self.value) {
            (None, _) => true,
            (Some(name), None) => c.custom.contains_key(name),
            (Some(name), Some(value)) => match c.custom.get(name) {
                Some(Value::String(s)) => s == value,
                // A number or a flag compares as the JSON it is written as (`3`, `true`).
                Some(other) => serde_json::from_str::<Value>(value).is_ok_and(|v| v == *other),
                None => false,
            },
        };
        same(&self.tenant, &c.tenant) && same(&self.route, &c.route) && party && field
    }

    /// The media period: its own, or else the metadata's (the media go with the metadata).
    fn media_period(&self) -> Option<u32> {
        self.media_days.or(self.metadata_days)
    }
}

/// The longest of the periods (`None`: for ever, the longest of all), with the rule's name.
fn longest<'a>(periods: impl Iterator<Item = (Option<u32>, &'a str)>) -> Option<(u32, &'a str)> {
    let mut best: Option<(u32, &str)> = None;
    for (period, name) in periods {
        match period {
            None => return None,
            Some(days) if best.is_none_or(|(b, _)| days > b) => best = Some((days, name)),
            Some(_) => {}
        }
    }
    best
}

impl Catalog {
    /// Adds a policy. A name taken: [`Error::PolicyExists`]; no period, or a media period
    /// longer than the metadata's: [`Error::InvalidInput`]. Audited (`retention`).
    pub async fn create_retention_policy(
        &self,
        name: &str,
        rule: &RetentionRule,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<RetentionPolicy> {
        validate_reason("name", name)?;
        if rule.media_days.is_none() && rule.metadata_days.is_none() && rule.audit_days.is_none() {
            return Err(invalid("give media_days, metadata_days or audit_days"));
        }
        if let (Some(media), Some(metadata)) = (rule.media_days, rule.metadata_days)
            && media > metadata
        {
            return Err(invalid("media_days cannot exceed metadata_days"));
        }
        if rule.value.is_some() && rule.field.is_none() {
            return Err(invalid("a value needs its field"));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.pool.begin().await?;
        tx.take_write_lock().await?;
        let taken = tx
            .count(
                "find a policy by name",
                "SELECT COUNT(*) FROM retention_policies WHERE name = $1",
                &[Arg::Text(name)],
            )
            .await?;
        if taken > 0 {
            return Err(Error::PolicyExists {
                name: name.to_owned(),
            });
        }
        let day = |d: Option<u32>| d.map(i64::from);
        tx.run(
            "add a retention policy",
            "INSERT INTO retention_policies (id, name, tenant, route, participant, field, \
             field_value, media_days, metadata_days, audit_days, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                Arg::Text(&id),
                Arg::Text(name),
                Arg::OptText(rule.tenant.as_deref()),
                Arg::OptText(rule.route.as_deref()),
                Arg::OptText(rule.participant.as_deref()),
                Arg::OptText(rule.field.as_deref()),
                Arg::OptText(rule.value.as_deref()),
                Arg::OptInt(day(rule.media_days)),
                Arg::OptInt(day(rule.metadata_days)),
                Arg::OptInt(day(rule.audit_days)),
                Arg::Text(&by.user),
                Arg::Int(to_unix_ms(at)),
            ],
        )
        .await?;
        let detail = serde_json::to_string(rule).expect("a rule serializes");
        append(
            &mut tx,
            &NewAuditEntry {
                at,
                actor: by.clone(),
                action: AuditAction::Retention,
                recording_id: None,
                reason: None,
                detail: Some(format!("add policy {name} ({id}): {detail}")),
                tenant: None,
            },
            None,
        )
        .await?;
        let policy = tx
            .rows(
                "read a retention policy",
                "retention_policies",
                &format!("SELECT {POLICY_COLUMNS} FROM retention_policies WHERE id = $1"),
                &[Arg::Text(&id)],
            )
            .await?
            .first()
            .map(policy_from_row)
            .transpose()?
            .ok_or_else(|| Error::UnknownItem {
                what: "retention policy",
                id: id.clone(),
            })?;
        tx.finish("commit retention policy").await?;
        Ok(policy)
    }

    /// Every policy, by name.
    pub async fn retention_policies(&self) -> Result<Vec<RetentionPolicy>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "read retention policies",
                "retention_policies",
                &format!("SELECT {POLICY_COLUMNS} FROM retention_policies ORDER BY name"),
                &[],
            )
            .await?;
        tx.finish("end read").await?;
        rows.iter().map(policy_from_row).collect()
    }

    /// Removes a policy (recordings it already deleted stay deleted). Unknown:
    /// [`Error::UnknownItem`]. Audited (`retention`).
    pub async fn delete_retention_policy(
        &self,
        id: &str,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<RetentionPolicy> {
        let mut tx = self.pool.begin().await?;
        tx.take_write_lock().await?;
        let policy = tx
            .rows(
                "read a retention policy",
                "retention_policies",
                &format!("SELECT {POLICY_COLUMNS} FROM retention_policies WHERE id = $1"),
                &[Arg::Text(id)],
            )
            .await?
            .first()
            .map(policy_from_row)
            .transpose()?
            .ok_or_else(|| Error::UnknownItem {
                what: "retention policy",
                id: id.to_owned(),
            })?;
        tx.run(
            "remove a retention policy",
            "DELETE FROM retention_policies WHERE id = $1",
            &[Arg::Text(id)],
        )
        .await?;
        append(
            &mut tx,
            &NewAuditEntry {
                at,
                actor: by.clone(),
                action: AuditAction::Retention,
                recording_id: None,
                reason: None,
                detail: Some(format!("remove policy {} ({id})", policy.name)),
                tenant: None,
            },
            None,
        )
        .await?;
        tx.finish("commit retention policy removal").await?;
        Ok(policy)
    }

    /// What retention would do at `now`: every live recording whose media or metadata period
    /// has passed (see the module notes), oldest first, at most `limit` of them, each with the
    /// rule that decided and, when it is kept anyway, the hold.
    pub async fn retention_plan(
        &self,
        now: OffsetDateTime,
        defaults: RetentionDefaults,
        limit: usize,
    ) -> Result<RetentionPlan> {
        let policies = self.retention_policies().await?;
        let audit_days = policies
            .iter()
            .filter_map(|p| p.rule.audit_days)
            .chain(defaults.audit_days)
            .max();
        // The shortest period of any rule bounds which recordings can be due at all.
        let shortest = policies
            .iter()
            .filter_map(|p| p.rule.media_period())
            .chain(defaults.days)
            .min();
        let Some(shortest) = shortest else {
            return Ok(RetentionPlan {
                items: Vec::new(),
                audit_days,
            });
        };
        let cutoff = now - Duration::days(i64::from(shortest));
        let mut items = Vec::new();
        let mut after: Option<(i64, String)> = None;
        // Pages along the start time, so a large backlog of recordings that are old enough but
        // due under no rule cannot hide the due ones behind a limit.
        'pages: loop {
            let page = self.candidates(cutoff, after.as_ref(), 500).await?;
            let Some(last) = page.last() else { break };
            after = Some((to_unix_ms(last.started_at), last.id.clone()));
            for candidate in &page {
                if let Some(item) = plan_one(candidate, &policies, defaults, now)
                    && !(item.expiry == Expiry::Media && candidate.media_deleted)
                {
                    items.push(item);
                    if items.len() >= limit {
                        break 'pages;
                    }
                }
            }
            if page.len() < 500 {
                break;
            }
        }
        Ok(RetentionPlan { items, audit_days })
    }

    /// One page of the live recordings started before `cutoff` (after the keyset `after`),
    /// oldest first, with what the policies match on.
    async fn candidates(
        &self,
        cutoff: OffsetDateTime,
        after: Option<&(i64, String)>,
        page: i64,
    ) -> Result<Vec<Candidate>> {
        let mut tx = self.pool.begin_read().await?;
        let (after_ms, after_id) = after.map_or((i64::MIN, ""), |(ms, id)| (*ms, id.as_str()));
        let rows = tx
            .rows(
                "find recordings due for retention",
                "recordings",
                "SELECT id, tenant, route, from_uri, to_uri, custom, started_at, state, \
                 never_expire, media_deleted_at, CAST(CASE WHEN EXISTS (SELECT 1 FROM locks WHERE \
                 locks.recording_id = recordings.id AND locks.removed_at IS NULL) THEN 1 \
                 ELSE 0 END AS BIGINT) AS locked \
                 FROM recordings WHERE deleted_at IS NULL AND started_at < $1 \
                 AND (started_at, id) > ($2, $3) ORDER BY started_at, id LIMIT $4",
                &[
                    Arg::Int(to_unix_ms(cutoff)),
                    Arg::Int(after_ms),
                    Arg::Text(after_id),
                    Arg::Int(page),
                ],
            )
            .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.text("id")).collect::<Result<_>>()?;
        let mut parties: HashMap<usize, Vec<String>> = HashMap::new();
        for (i, row) in children(
            &mut tx,
            &ids,
            "read participants",
            "participants",
            "recording_id, aor, name",
            "",
        )
        .await?
        {
            let entry = parties.entry(i).or_default();
            entry.extend(row.opt_text("aor")?);
            entry.extend(row.opt_text("name")?);
        }
        tx.finish("end read").await?;
        rows.iter()
            .enumerate()
            .map(|(i, row)| {
                let mut found = parties.remove(&i).unwrap_or_default();
                found.push(row.text("from_uri")?);
                found.push(row.text("to_uri")?);
                Ok(Candidate {
                    id: row.text("id")?,
                    tenant: row.opt_text("tenant")?,
                    route: row.opt_text("route")?,
                    parties: found,
                    custom: row.json("custom")?,
                    started_at: row.time("started_at")?,
                    media_deleted: row.opt_int("media_deleted_at")?.is_some(),
                    held: hold_of(row)?,
                })
            })
            .collect()
    }

    /// Deletes a recording's media only: the leg files are the caller's to remove (returned
    /// as by [`Catalog::delete`]), the catalog keeps every row, sets `media_deleted_at` and
    /// keeps the files' digests in `deleted_legs`. Refused as [`Catalog::delete`] is (locks,
    /// active, tombstone); media already deleted: [`Error::InvalidInput`]. Audited
    /// (`delete_media`).
    pub async fn delete_media(
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
        let already = tx
            .count(
                "read media deletion",
                "SELECT COUNT(*) FROM recordings WHERE id = $1 AND media_deleted_at IS NOT NULL",
                &[Arg::Text(recording_id)],
            )
            .await?;
        if already > 0 {
            return Err(Error::InvalidInput {
                field: "recording",
                reason: "its media are already deleted".to_owned(),
            });
        }
        let legs = deleted_legs(&mut tx, recording_id).await?;
        tx.run(
            "mark the media deleted",
            "UPDATE recordings SET media_deleted_at = $2, deleted_legs = $3 WHERE id = $1",
            &[
                Arg::Text(recording_id),
                Arg::Int(to_unix_ms(at)),
                Arg::Text(&serde_json::to_string(&legs).expect("legs serialize")),
            ],
        )
        .await?;
        audit_recording(
            &mut tx,
            by,
            at,
            AuditAction::DeleteMedia,
            recording_id,
            recording.tenant.as_deref(),
            Some(reason),
            Some(digests(&legs)),
        )
        .await?;
        let started_at = started_at(&mut tx, recording_id).await?;
        tx.finish("commit media deletion").await?;
        Ok(Deletion {
            recording_id: recording_id.to_owned(),
            started_at,
            legs,
        })
    }

    /// The recordings whose media count towards `[retention] max_bytes` (live, media not
    /// deleted), oldest first, with their size and hold.
    pub async fn media_usage(&self) -> Result<Vec<MediaUsage>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "measure the media",
                "recordings",
                "SELECT id, started_at, state, never_expire, \
                 (SELECT CAST(COALESCE(SUM(80 + 2 * samples), 0) AS BIGINT) FROM legs \
                 WHERE legs.recording_id = recordings.id) AS bytes, \
                 CAST(CASE WHEN EXISTS (SELECT 1 FROM locks WHERE locks.recording_id = \
                 recordings.id AND locks.removed_at IS NULL) THEN 1 ELSE 0 END AS BIGINT) \
                 AS locked \
                 FROM recordings WHERE deleted_at IS NULL AND media_deleted_at IS NULL \
                 ORDER BY started_at, id",
                &[],
            )
            .await?;
        tx.finish("end read").await?;
        rows.iter()
            .map(|row| {
                Ok(MediaUsage {
                    recording_id: row.text("id")?,
                    started_at: row.time("started_at")?,
                    bytes: row.count("bytes")?,
                    held: hold_of(row)?,
                })
            })
            .collect()
    }
}

/// The hold of a row with `state`, `never_expire` and `locked`.
fn hold_of(row: &Row) -> Result<Option<Hold>> {
    Ok(if row.int("locked")? != 0 {
        Some(Hold::Locked)
    } else if row.opt_flag("never_expire")? == Some(true) {
        Some(Hold::NeverExpire)
    } else if row.parse::<RecordingState>("state")? == RecordingState::Active {
        Some(Hold::Active)
    } else {
        None
    })
}

/// What retention does to one recording at `now`, if anything.
fn plan_one(
    c: &Candidate,
    policies: &[RetentionPolicy],
    defaults: RetentionDefaults,
    now: OffsetDateTime,
) -> Option<RetentionItem> {
    let age_days = (now - c.started_at).whole_days();
    let matching: Vec<&RetentionPolicy> = policies.iter().filter(|p| p.rule.matches(c)).collect();
    let (metadata, media) = if matching.is_empty() {
        let days = defaults.days?;
        (Some((days, "config")), Some((days, "config")))
    } else {
        (
            longest(
                matching
                    .iter()
                    .map(|p| (p.rule.metadata_days, p.name.as_str())),
            ),
            longest(
                matching
                    .iter()
                    .map(|p| (p.rule.media_period(), p.name.as_str())),
            ),
        )
    };
    let due = |days: u32| age_days >= i64::from(days);
    let (expiry, (period_days, rule)) = match (
        metadata.filter(|(days, _)| due(*days)),
        media.filter(|(days, _)| due(*days)),
    ) {
        (Some(metadata), _) => (Expiry::Metadata, metadata),
        (None, Some(media)) => (Expiry::Media, media),
        (None, None) => return None,
    };
    let actor = if rule == "config" && matching.is_empty() {
        "retention:config".to_owned()
    } else {
        format!("policy:{rule}")
    };
    Some(RetentionItem {
        recording_id: c.id.clone(),
        tenant: c.tenant.clone(),
        started_at: c.started_at,
        expiry,
        rule: rule.to_owned(),
        actor,
        age_days,
        period_days,
        held: c.held,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-01 00:00 UTC);

    fn policy(name: &str, rule: RetentionRule) -> RetentionPolicy {
        RetentionPolicy {
            id: name.to_owned(),
            name: name.to_owned(),
            rule,
            created_by: "t".to_owned(),
            created_at: NOW,
        }
    }

    fn candidate(tenant: Option<&str>, age_days: i64) -> Candidate {
        Candidate {
            id: "r".to_owned(),
            tenant: tenant.map(str::to_owned),
            route: None,
            parties: vec!["sip:Alice@example.com".to_owned()],
            custom: serde_json::from_str(r#"{"queue": "sales", "vip": true}"#).unwrap(),
            started_at: NOW - Duration::days(age_days),
            media_deleted: false,
            held: None,
        }
    }

    fn plan(
        c: &Candidate,
        policies: &[RetentionPolicy],
        days: Option<u32>,
    ) -> Option<(Expiry, String)> {
        plan_one(
            c,
            policies,
            RetentionDefaults {
                days,
                audit_days: None,
            },
            NOW,
        )
        .map(|i| (i.expiry, i.actor))
    }

    #[test]
    fn the_longest_matching_period_wins_and_the_default_only_where_no_policy_matches() {
        let short = policy(
            "short",
            RetentionRule {
                metadata_days: Some(30),
                ..RetentionRule::default()
            },
        );
        let acme_long = policy(
            "acme-long",
            RetentionRule {
                tenant: Some("acme".to_owned()),
                media_days: Some(35),
                metadata_days: Some(365),
                ..RetentionRule::default()
            },
        );
        let keep_vip = policy(
            "vip",
            RetentionRule {
                field: Some("vip".to_owned()),
                value: Some("true".to_owned()),
                media_days: Some(10),
                ..RetentionRule::default()
            },
        );
        let both = [short.clone(), acme_long.clone()];
        // Not acme: only `short` matches, 40 days > 30.
        assert_eq!(
            plan(&candidate(None, 40), &both, None),
            Some((Expiry::Metadata, "policy:short".to_owned()))
        );
        // Acme: the longest wins, so at 40 days only the media go, at 400 everything.
        assert_eq!(
            plan(&candidate(Some("acme"), 40), &both, None),
            Some((Expiry::Media, "policy:acme-long".to_owned()))
        );
        assert_eq!(
            plan(&candidate(Some("acme"), 400), &both, None),
            Some((Expiry::Metadata, "policy:acme-long".to_owned()))
        );
        assert_eq!(plan(&candidate(Some("acme"), 32), &both, None), None);
        // A matching policy without a metadata period keeps the metadata for ever; the media
        // go after the longest media period (short's, whose media go with its metadata).
        assert_eq!(
            plan(&candidate(None, 4000), &[short.clone(), keep_vip], None),
            Some((Expiry::Media, "policy:short".to_owned()))
        );
        // [retention] days applies only where no policy matches.
        assert_eq!(
            plan(
                &candidate(None, 40),
                std::slice::from_ref(&acme_long),
                Some(35)
            ),
            Some((Expiry::Metadata, "retention:config".to_owned()))
        );
        assert_eq!(
            plan(&candidate(Some("acme"), 40), &[acme_long], Some(35)),
            Some((Expiry::Media, "policy:acme-long".to_owned()))
        );
        assert_eq!(plan(&candidate(None, 40), &[], None), None);
    }

    #[test]
    fn criteria_match_participants_in_any_case_and_field_values_as_json() {
        let c = candidate(None, 1);
        let rule = |r: RetentionRule| r.matches(&c);
        assert!(rule(RetentionRule {
            participant: Some("alice@".to_owned()),
            ..RetentionRule::default()
        }));
        assert!(!rule(RetentionRule {
            participant: Some("bob".to_owned()),
            ..RetentionRule::default()
        }));
        assert!(rule(RetentionRule {
            field: Some("queue".to_owned()),
            value: Some("sales".to_owned()),
            ..RetentionRule::default()
        }));
        assert!(!rule(RetentionRule {
            field: Some("vip".to_owned()),
            value: Some("false".to_owned()),
            ..RetentionRule::default()
        }));
        assert!(!rule(RetentionRule {
            tenant: Some("acme".to_owned()),
            ..RetentionRule::default()
        }));
    }
}
