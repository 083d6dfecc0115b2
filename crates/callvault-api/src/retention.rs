//! Retention at work: `[retention]` of the configuration, and [`sweep`], which the server's
//! periodic sweeper, `callvault retention run|--dry-run` and `GET /api/v1/retention/dry-run`
//! all call. It reads the catalog's plan ([`Catalog::retention_plan`]: policies, then
//! `[retention] days`), deletes what is due through the same catalog calls as a manual
//! deletion (tombstone and audit entry, actor `policy:<name>` or `retention:config`), removes
//! the files after each commit, then applies `max_bytes` (oldest first) and the audit period.
//! A lock (a user's or a matter's), the "never expire" flag and a live call always win; the
//! catalog checks them again in the deleting transaction, so a lock placed between the plan
//! and the deletion still wins (the item is reported `failed` with why).

use std::path::Path;

use callvault_catalog::{Actor, Catalog, Expiry, Hold, RetentionDefaults, RetentionItem, Scope};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::events::{RecordingChange, RecordingEvents};
use callvault_objects::Objects;

use crate::files::{
    remove_deleted_files, remove_deleted_objects, remove_media_files, remove_media_objects,
};

/// `[retention]` of the configuration file: for deployments without the API's policies (which
/// take precedence for the recordings they match). Off by default.
///
/// ```toml
/// [retention]
/// days = 365                 # recordings no policy matches become tombstones after a year
/// max_bytes = 500_000_000_000  # then the oldest go until the media fit in 500 GB
/// audit_days = 2555          # audit entries kept 7 years (a checkpoint keeps the chain)
/// interval_s = 3600          # how often the server sweeps
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days after its start when a recording no policy matches is deleted (tombstone kept).
    pub days: Option<u32>,
    /// Most bytes of media kept (leg files as the catalog counts them): beyond, the oldest
    /// recordings that may go are deleted until the media fit.
    pub max_bytes: Option<u64>,
    /// Days audit entries are kept (the longest of this and the policies' applies).
    pub audit_days: Option<u32>,
    /// Seconds between two sweeps of the server.
    pub interval_s: u64,
    /// Most recordings one sweep deletes by age (the next sweep goes on).
    pub batch: usize,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            days: None,
            max_bytes: None,
            audit_days: None,
            interval_s: 3600,
            batch: 1000,
        }
    }
}

impl RetentionSettings {
    fn defaults(&self) -> RetentionDefaults {
        RetentionDefaults {
            days: self.days,
            audit_days: self.audit_days,
        }
    }

    /// What cannot work: a zero interval or batch.
    pub fn validate(&self) -> Result<()> {
        if self.interval_s == 0 || self.batch == 0 {
            return Err(crate::Error::Invalid {
                reason: "[retention] interval_s and batch must be at least 1".to_owned(),
            });
        }
        Ok(())
    }
}

/// What happened (or would happen) to one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A dry run: it would be deleted.
    WouldDelete,
    Deleted,
    /// Kept: see `held`.
    Held,
    /// The catalog refused (see `error`): e.g. locked since the plan was made.
    Failed,
}

/// One recording of a [`SweepReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepItem {
    #[serde(flatten)]
    pub item: RetentionItem,
    pub outcome: Outcome,
    pub error: Option<String>,
}

/// What a sweep did, or a dry run would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    pub dry_run: bool,
    /// By age (policies, `[retention] days`), then by `max_bytes` (rule `max_bytes`).
    pub items: Vec<SweepItem>,
    /// The media's size after the sweep (or, dry, after what it would delete).
    pub media_bytes: u64,
    pub max_bytes: Option<u64>,
    /// `max_bytes` cannot be met: what may go is gone and the media are still larger.
    pub over_max_bytes: bool,
    /// Audit entries before this instant are (or would be) pruned.
    #[serde(with = "time::serde::rfc3339::option")]
    pub audit_before: Option<OffsetDateTime>,
    /// How many audit entries were pruned (0 in a dry run).
    pub audit_pruned: i64,
}

/// Applies retention at `now` (`run`), or says what it would do (`!run`). `events` hears of
/// every recording it turns into a tombstone (the webhooks' `recording.deleted`).
pub async fn sweep(
    catalog: &Catalog,
    data_dir: &Path,
    objects: Option<&Objects>,
    settings: &RetentionSettings,
    events: &dyn RecordingEvents,
    now: OffsetDateTime,
    run: bool,
) -> Result<SweepReport> {
    let plan = catalog
        .retention_plan(now, settings.defaults(), settings.batch)
        .await?;
    let mut report = SweepReport {
        dry_run: !run,
        max_bytes: settings.max_bytes,
        ..SweepReport::default()
    };
    let mut gone = std::collections::HashSet::new();
    for item in plan.items {
        let (outcome, error) = if item.held.is_some() {
            (Outcome::Held, None)
        } else if !run {
            (Outcome::WouldDelete, None)
        } else {
            match apply(catalog, data_dir, objects, &item, events, now).await {
                Ok(()) => (Outcome::Deleted, None),
                Err(e) => (Outcome::Failed, Some(e.public_message())),
            }
        };
        if matches!(outcome, Outcome::Deleted | Outcome::WouldDelete) {
            gone.insert(item.recording_id.clone());
        }
        report.items.push(SweepItem {
            item,
            outcome,
            error,
        });
    }
    let usage = catalog.media_usage().await?;
    // Dry, what the age rules would delete is not counted: it would be gone.
    let usage: Vec<_> = usage
        .into_iter()
        .filter(|u| !gone.contains(&u.recording_id))
        .collect();
    let mut total: u64 = usage.iter().map(|u| u.bytes).sum();
    if let Some(max) = settings.max_bytes {
        for u in usage.iter().filter(|u| u.held.is_none()) {
            if total <= max {
                break;
            }
            let item = RetentionItem {
                recording_id: u.recording_id.clone(),
                tenant: None,
                started_at: u.started_at,
                expiry: Expiry::Metadata,
                rule: "max_bytes".to_owned(),
                actor: "retention:config".to_owned(),
                age_days: (now - u.started_at).whole_days(),
                period_days: 0,
                held: None,
            };
            let (outcome, error) = if run {
                match apply(catalog, data_dir, objects, &item, events, now).await {
                    Ok(()) => (Outcome::Deleted, None),
                    Err(e) => (Outcome::Failed, Some(e.public_message())),
                }
            } else {
                (Outcome::WouldDelete, None)
            };
            if outcome != Outcome::Failed {
                total = total.saturating_sub(u.bytes);
            }
            report.items.push(SweepItem {
                item,
                outcome,
                error,
            });
        }
        if total > max {
            report.over_max_bytes = true;
            let held = usage.iter().filter(|u| u.held.is_some()).count();
            tracing::error!(
                media_bytes = total,
                max_bytes = max,
                held_recordings = held,
                "retention cannot bring the media under [retention] max_bytes: every recording \
                 that may go is gone, the rest are locked, never-expire or being recorded"
            );
        }
    }
    report.media_bytes = total;
    if let Some(days) = plan.audit_days {
        let before = now - time::Duration::days(i64::from(days));
        report.audit_before = Some(before);
        if run {
            report.audit_pruned = catalog
                .prune_audit(before, &Actor::new("retention:audit", None), now)
                .await?;
        }
    }
    Ok(report)
}

/// Deletes one due recording through the same catalog call a user's deletion makes, then its
/// files.
async fn apply(
    catalog: &Catalog,
    data_dir: &Path,
    objects: Option<&Objects>,
    item: &RetentionItem,
    events: &dyn RecordingEvents,
    now: OffsetDateTime,
) -> Result<()> {
    let actor = Actor::new(item.actor.clone(), None);
    let reason = if item.rule == "max_bytes" {
        "retention: over [retention] max_bytes, oldest first".to_owned()
    } else {
        format!("retention: {} {} days", item.rule, item.period_days)
    };
    let (deletion, media_only) = match item.expiry {
        Expiry::Metadata => (
            catalog
                .delete(&Scope::All, &item.recording_id, &reason, &actor, now)
                .await?,
            false,
        ),
        Expiry::Media => (
            catalog
                .delete_media(&Scope::All, &item.recording_id, &reason, &actor, now)
                .await?,
            true,
        ),
    };
    // The catalog has committed: the bucket's copies go first (with [storage] backend = "s3"),
    // then the local files; a failure leaves the keys in the tombstone and is logged.
    if let Some(objects) = objects {
        let outcome = if media_only {
            remove_media_objects(objects, &deletion).await
        } else {
            remove_deleted_objects(objects, &deletion).await
        };
        if let Err(error) = outcome {
            tracing::error!(recording_id = %item.recording_id, %error,
                "objects of a recording deleted by retention could not be removed from the bucket");
        }
    }
    let data_dir = data_dir.to_owned();
    let removed = tokio::task::spawn_blocking(move || {
        if media_only {
            remove_media_files(&data_dir, &deletion)
        } else {
            remove_deleted_files(&data_dir, &deletion)
        }
    })
    .await
    .map_err(crate::Error::BodyTask)?;
    for (path, error) in &removed.failed {
        tracing::error!(recording_id = %item.recording_id, path = %path.display(), %error,
            "a file of a recording deleted by retention could not be removed");
    }
    if !media_only {
        events.recording_changed(&item.recording_id, RecordingChange::Deleted);
    }
    tracing::info!(recording_id = %item.recording_id, rule = %item.rule,
        expiry = ?item.expiry, "retention deleted a recording's {}",
        if media_only { "media" } else { "media and metadata" });
    Ok(())
}

/// Whether an item is kept, in words (for the CLI).
pub fn hold_text(hold: Hold) -> &'static str {
    match hold {
        Hold::Locked => "locked",
        Hold::NeverExpire => "never expire",
        Hold::Active => "being recorded",
    }
}
