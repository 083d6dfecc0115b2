//! [`Catalog`]: the recordings catalog's operations, written once for SQLite and PostgreSQL.
//!
//! The operations are spread over modules named after what they do, each `impl Catalog` block
//! beside the SQL it runs: `write` (what the recorder stores while a call runs), `read`
//! (recordings back, as the CLI and recovery read them), `search` (filtered pages within a
//! scope, one recording in full), `locks` (legal holds and deletion), `review` (annotations,
//! the review, custom fields), `users` (users and tokens), `audit` (the hash-chained trail),
//! `exports` (export packages' state) and `shares` (share links, their tokens hashed).

mod audit;
mod exports;
mod flags;
mod locks;
mod matters;
mod objects;
mod read;
mod retention;
mod review;
mod search;
mod shares;
mod transcripts;
mod users;
mod write;

pub use audit::{
    AuditAction, AuditEntry, AuditPage, AuditProblem, AuditQuery, AuditVerification, NewAuditEntry,
    UnknownAuditAction,
};
pub use exports::{Export, ExportState, FinishedExport, NewExport};
pub use flags::RecordingFlag;
pub use locks::{DeletedLeg, Deletion, Lock};
pub use matters::{Matter, NewMatter};
pub use objects::{LocalCopy, PendingUpload};
pub use retention::{
    Expiry, Hold, MediaUsage, RetentionDefaults, RetentionItem, RetentionPlan, RetentionPolicy,
    RetentionRule,
};
pub use review::{
    Annotation, CustomField, CustomFieldKind, NewAnnotation, Review, ReviewUpdate,
    UnknownCustomFieldKind,
};
pub use search::{RecordingDetails, RecordingItem, SearchPage, SearchQuery};
pub use shares::{NewShare, NewShareLink, ShareLink};
pub use transcripts::{Transcript, TranscriptSegment};
pub use users::{
    Authenticated, NewToken, NewUser, Permission, Role, TOKEN_PREFIX, Token, TokenOptions,
    UnknownRole, User,
};

use std::path::Path;

use callvault_types::LegCounters;

use crate::db::{Arg, Pool, Row, Tx};
use crate::error::{Error, Result};
use crate::model::RecordingState;
use crate::scope::Scope;
use crate::sql::Conditions;

/// File name of the embedded catalog inside the data dir.
pub const SQLITE_FILE_NAME: &str = "callvault.db";

/// The recordings catalog. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Catalog {
    pool: Pool,
}

impl Catalog {
    /// Opens (creating if missing) and migrates the catalog at `url`.
    ///
    /// `sqlite://PATH` opens an embedded database file (its folder must exist) in WAL mode with
    /// foreign keys on; `sqlite::memory:` works for tests. `postgres://…` (or `postgresql://…`)
    /// opens a shared PostgreSQL catalog. Anything else is [`Error::InvalidUrl`].
    pub async fn open(url: &str) -> Result<Catalog> {
        let pool = Pool::open(url).await?;
        let catalog = Catalog { pool };
        catalog.backfill_dtmf_digits().await?;
        catalog.backfill_leg_counters().await?;
        tracing::debug!(url = %crate::error::redact_url(url), "catalog opened");
        Ok(catalog)
    }

    /// Computes `recordings.dtmf_digits` where it is still NULL: rows of schema version 1 that
    /// had DTMF events when version 2 was applied (portable SQL has no ordered string
    /// aggregate, so the migration leaves them to this). Runs once; later opens find none.
    async fn backfill_dtmf_digits(&self) -> Result<()> {
        let mut tx = self.pool.begin_read().await?;
        let ids: Vec<String> = tx
            .rows(
                "find recordings without DTMF digits",
                "recordings",
                "SELECT id FROM recordings WHERE dtmf_digits IS NULL",
                &[],
            )
            .await?
            .iter()
            .map(|row| row.text("id"))
            .collect::<Result<_>>()?;
        tx.finish("end read").await?;
        if ids.is_empty() {
            return Ok(());
        }
        tracing::info!(
            recordings = ids.len(),
            "computing the DTMF digits of recordings from before schema version 2"
        );
        for id in ids {
            let mut tx = self.pool.begin().await?;
            match lock_recording(&mut tx, &Scope::All, &id).await {
                // Deleted meanwhile (another node): nothing to compute.
                Err(Error::NotFound { .. }) => continue,
                other => other?,
            };
            write::refresh_dtmf_digits(&mut tx, &id).await?;
            tx.finish("commit DTMF digits").await?;
        }
        Ok(())
    }

    /// Computes `legs.counters` where it is still NULL: legs of schema versions 1-2, whose
    /// counters are in the old per-counter columns. Runs once (in batches, so a large catalog
    /// is not one huge transaction); later opens find none, and the loader reads only
    /// `counters`.
    async fn backfill_leg_counters(&self) -> Result<()> {
        const BATCH: i64 = 1000;
        let mut announced = false;
        loop {
            let mut tx = self.pool.begin().await?;
            let rows = tx
                .rows(
                    "find legs without counters",
                    "legs",
                    "SELECT recording_id, position, packets, lost, duplicates, out_of_order, \
                     late, jitter_ms, gaps_filled_ms, ssrcs_seen, codec_changes, \
                     unknown_payload, rtcp_packets FROM legs WHERE counters IS NULL LIMIT $1",
                    &[Arg::Int(BATCH)],
                )
                .await?;
            if rows.is_empty() {
                return tx.finish("end read").await;
            }
            if !announced {
                tracing::info!("storing the counters of legs from before schema version 3");
                announced = true;
            }
            for row in &rows {
                let recording_id = row.text("recording_id")?;
                let position = row.int("position")?;
                let counters = legacy_counters(row)?;
                tx.run(
                    "store leg counters",
                    "UPDATE legs SET counters = $3 \
                     WHERE recording_id = $1 AND position = $2 AND counters IS NULL",
                    &[
                        Arg::Text(&recording_id),
                        Arg::Int(position),
                        Arg::Text(&counters_json(&counters)),
                    ],
                )
                .await?;
            }
            tx.finish("commit leg counters").await?;
        }
    }

    /// The URL of the embedded catalog in `data_dir` (`DATA/callvault.db`).
    pub fn sqlite_url(data_dir: &Path) -> String {
        let path = data_dir.join(SQLITE_FILE_NAME);
        let mut url = String::from("sqlite://");
        // sqlx percent-decodes the path and cuts it at '?': escape what would be misread.
        for c in path.to_string_lossy().chars() {
            match c {
                '%' => url.push_str("%25"),
                '?' => url.push_str("%3F"),
                '#' => url.push_str("%23"),
                c => url.push(c),
            }
        }
        url
    }

    /// Waits for the pool's connections to close (SQLite then checkpoints its WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A leg's counters as stored in `legs.counters`.
fn counters_json(counters: &LegCounters) -> String {
    // A NaN jitter serializes as null, i.e. unknown, which is what it means.
    serde_json::to_string(counters)
        .expect("LegCounters has only numbers, lists of numbers and string keys")
}

/// The counters of a leg of schema versions 1-2, from its old per-counter columns.
fn legacy_counters(row: &Row) -> Result<LegCounters> {
    Ok(LegCounters {
        packets: row.count("packets")?,
        lost: row.count("lost")?,
        duplicates: row.count("duplicates")?,
        out_of_order: row.count("out_of_order")?,
        late: row.count("late")?,
        unknown_payload: row.count("unknown_payload")?,
        rtcp_packets: row.count("rtcp_packets")?,
        jitter_ms: row.opt_float("jitter_ms")?,
        gaps_filled_ms: row.count("gaps_filled_ms")?,
        ssrcs_seen: row.count("ssrcs_seen")?,
        codec_changes: row.count("codec_changes")?,
        ..LegCounters::default()
    })
}

/// A recording's row as [`lock_recording`] found it.
pub(super) struct LockedRecording {
    /// The stored state (what the recording ended in, for a tombstone too).
    state: RecordingState,
    tenant: Option<String>,
    /// A tombstone.
    deleted: bool,
}

/// Checks the recording exists within `scope` and, with a write on its row, takes the write
/// lock up front (see [`Pool::begin`]): on PostgreSQL the row stays locked until the
/// transaction ends, so what is read next (its locks, its state) cannot change under the
/// caller. Out of scope or unknown: [`Error::NotFound`].
async fn lock_recording(tx: &mut Tx, scope: &Scope, recording_id: &str) -> Result<LockedRecording> {
    let mut filter = Conditions::default();
    let id = filter.bind(Arg::Text(recording_id));
    filter.and(format!("id = {id}"));
    scope.restrict_recordings(&mut filter);
    let sql = format!(
        "UPDATE recordings SET state = state{}",
        filter.where_clause()
    );
    let found = tx.run("lock recording", &sql, filter.args()).await?;
    if found == 0 {
        return Err(Error::NotFound {
            id: recording_id.to_owned(),
        });
    }
    let rows = tx
        .rows(
            "read recording",
            "recordings",
            "SELECT state, tenant, deleted_at FROM recordings WHERE id = $1",
            &[Arg::Text(recording_id)],
        )
        .await?;
    let row = rows.first().ok_or_else(|| Error::NotFound {
        id: recording_id.to_owned(),
    })?;
    Ok(LockedRecording {
        state: row.parse("state")?,
        tenant: row.opt_text("tenant")?,
        deleted: row.opt_int("deleted_at")?.is_some(),
    })
}

#[cfg(test)]
mod tests;
