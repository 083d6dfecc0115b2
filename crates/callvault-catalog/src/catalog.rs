//! [`Catalog`]: the recordings catalog's operations, written once for SQLite and PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use callvault_types::LegCounters;

use crate::db::{Arg, DbRow, Pool, Tx};
use crate::error::{Error, Result};
use crate::model::{
    Association, Completion, CorrelationId, DtmfEvent, Leg, ListQuery, MetadataRevision, NewLeg,
    NewMetadataRevision, NewParticipant, NewRecording, Participant, Recording, RecordingState,
    from_unix_ms, is_dtmf_digit, to_unix_ms,
};

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
            .fetch_all("SELECT id FROM recordings WHERE dtmf_digits IS NULL", &[])
            .await
            .map_err(Error::database("find recordings without DTMF digits"))?
            .iter()
            .map(|row| row.get("id").map_err(decode))
            .collect::<Result<_>>()?;
        tx.commit().await.map_err(Error::database("end read"))?;
        if ids.is_empty() {
            return Ok(());
        }
        tracing::info!(
            recordings = ids.len(),
            "computing the DTMF digits of recordings from before schema version 2"
        );
        for id in ids {
            let mut tx = self.pool.begin().await?;
            match lock_recording(&mut tx, &id).await {
                // Deleted meanwhile (another node): nothing to compute.
                Err(Error::NotFound { .. }) => continue,
                other => other?,
            }
            refresh_dtmf_digits(&mut tx, &id).await?;
            tx.commit()
                .await
                .map_err(Error::database("commit DTMF digits"))?;
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
                .fetch_all(
                    "SELECT recording_id, position, packets, lost, duplicates, out_of_order, \
                     late, jitter_ms, gaps_filled_ms, ssrcs_seen, codec_changes, \
                     unknown_payload, rtcp_packets FROM legs WHERE counters IS NULL LIMIT $1",
                    &[Arg::Int(BATCH)],
                )
                .await
                .map_err(Error::database("find legs without counters"))?;
            if rows.is_empty() {
                tx.commit().await.map_err(Error::database("end read"))?;
                return Ok(());
            }
            if !announced {
                tracing::info!("storing the counters of legs from before schema version 3");
                announced = true;
            }
            for row in &rows {
                let recording_id: String = row.get("recording_id").map_err(decode)?;
                let position: i64 = row.get("position").map_err(decode)?;
                let counters = legacy_counters(row)?;
                tx.execute(
                    "UPDATE legs SET counters = $3 \
                     WHERE recording_id = $1 AND position = $2 AND counters IS NULL",
                    &[
                        Arg::Text(&recording_id),
                        Arg::Int(position),
                        Arg::Text(&counters_json(&counters)),
                    ],
                )
                .await
                .map_err(Error::database("store leg counters"))?;
            }
            tx.commit()
                .await
                .map_err(Error::database("commit leg counters"))?;
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

    /// Records a new, `active` recording with everything known at its start, in one transaction.
    ///
    /// Participants of `rec.participants` and of `rec.metadata` are merged by id; a repeated leg
    /// position or correlation id is stored once (the first). Each leg with a participant opens
    /// an association from 0. An id already in the catalog is [`Error::AlreadyExists`] and
    /// changes nothing (so a replayed insert is recognised as applied).
    pub async fn insert_recording(&self, rec: &NewRecording) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let inserted = tx
            .execute(
                "INSERT INTO recordings (id, session_id, ingress_call_id, egress_call_id, \
                 from_uri, to_uri, started_at, state, source_address, transport, dtmf_digits, \
                 node_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', $11)",
                &[
                    Arg::Text(&rec.id),
                    Arg::Text(&rec.session_id),
                    Arg::Text(&rec.ingress_call_id),
                    Arg::OptText(rec.egress_call_id.as_deref()),
                    Arg::Text(&rec.from),
                    Arg::Text(&rec.to),
                    Arg::Int(to_unix_ms(rec.started_at)),
                    Arg::Text(RecordingState::Active.as_str()),
                    Arg::Text(&rec.source_address),
                    Arg::Text(&rec.transport),
                    Arg::Text(&rec.node_id),
                ],
            )
            .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(Error::AlreadyExists { id: rec.id.clone() });
            }
            Err(source) => {
                return Err(Error::Database {
                    operation: "insert recording",
                    source,
                });
            }
        }
        upsert_participants(&mut tx, &rec.id, &rec.participants).await?;
        insert_legs(&mut tx, &rec.id, &rec.legs).await?;
        if let Some(metadata) = &rec.metadata {
            insert_metadata_revision(&mut tx, &rec.id, metadata).await?;
        }
        // The initial associations: each leg's participant from the start (a repeated
        // participant/label pair once: associations name legs by label, for display).
        let revision = rec.metadata.as_ref().map_or(0, |m| m.number);
        let mut seen_positions = HashSet::new();
        let mut opened = HashSet::new();
        let mut seq = 0_i64;
        for leg in &rec.legs {
            if !seen_positions.insert(leg.position) {
                continue;
            }
            if let Some(participant) = &leg.participant
                && opened.insert((participant.as_str(), leg.label.as_str()))
            {
                open_association(&mut tx, &rec.id, seq, participant, &leg.label, 0, revision)
                    .await?;
                seq += 1;
            }
        }
        for (position, (kind, value)) in (0_i64..).zip(&rec.correlation_ids) {
            tx.execute(
                "INSERT INTO correlation_ids (recording_id, kind, value, position) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (recording_id, kind, value) DO NOTHING",
                &[
                    Arg::Text(&rec.id),
                    Arg::Text(kind),
                    Arg::Text(value),
                    Arg::Int(position),
                ],
            )
            .await
            .map_err(Error::database("insert correlation id"))?;
        }
        for (position, message) in (0_i64..).zip(&rec.warnings) {
            tx.execute(
                "INSERT INTO recording_warnings (recording_id, position, message) \
                 VALUES ($1, $2, $3)",
                &[Arg::Text(&rec.id), Arg::Int(position), Arg::Text(message)],
            )
            .await
            .map_err(Error::database("insert recording warning"))?;
        }
        tx.commit()
            .await
            .map_err(Error::database("commit new recording"))
    }

    /// Stores a metadata document received mid-call under its [`NewMetadataRevision::number`],
    /// and upserts the participants it names (new ones appended, known ones get any aor/name it
    /// adds). A number the recording already has changes nothing (a replay).
    pub async fn add_metadata_revision(
        &self,
        recording_id: &str,
        rev: &NewMetadataRevision,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_recording(&mut tx, recording_id).await?;
        insert_metadata_revision(&mut tx, recording_id, rev).await?;
        tx.commit()
            .await
            .map_err(Error::database("commit metadata revision"))
    }

    /// Adds streams that appeared mid-call, each at its [`NewLeg::position`] with its
    /// [`NewLeg::added_at_ms`]. A position the recording already has is left as it is (a
    /// replay, or a re-INVITE repeating the streams it keeps); a label it already has is a new
    /// leg. Opens no participant association: mid-call changes of who is on which leg go
    /// through [`Catalog::set_associations`].
    pub async fn add_legs(&self, recording_id: &str, legs: &[NewLeg]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_recording(&mut tx, recording_id).await?;
        insert_legs(&mut tx, recording_id, legs).await?;
        tx.commit()
            .await
            .map_err(Error::database("commit new legs"))
    }

    /// Stores one DTMF digit under its [`DtmfEvent::seq`], and in the same transaction
    /// recomputes the recording's `dtmf_digits` (all its digits in offset order, uppercased)
    /// that [`ListQuery::digits`] searches, so a digit reported late lands in its place. A
    /// `seq` the recording already has changes nothing (a replay).
    pub async fn add_dtmf(&self, recording_id: &str, event: &DtmfEvent) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_recording(&mut tx, recording_id).await?;
        let inserted = tx
            .execute(
                "INSERT INTO dtmf_events (recording_id, seq, digit, leg_label, offset_ms, \
                 duration_ms, source) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (recording_id, seq) DO NOTHING",
                &[
                    Arg::Text(recording_id),
                    Arg::Int(event.seq),
                    Arg::Text(&event.digit),
                    Arg::Text(&event.leg),
                    Arg::Int(event.offset_ms),
                    Arg::Int(event.duration_ms),
                    Arg::Text(event.source.as_str()),
                ],
            )
            .await
            .map_err(Error::database("insert DTMF event"))?;
        if inserted > 0 {
            refresh_dtmf_digits(&mut tx, recording_id).await?;
        }
        tx.commit()
            .await
            .map_err(Error::database("commit DTMF event"))
    }

    /// Records how a recording ended, each leg's digest, error and counters (matched by
    /// [`crate::LegCompletion::position`]), and appends `c.warnings` to the recording's warnings.
    ///
    /// `c.state` is normally [`RecordingState::Complete`], [`RecordingState::Interrupted`] or
    /// [`RecordingState::Failed`]. Overwrites, so completing twice leaves the second
    /// completion's values and no extra rows (a warning the recording already has is not added
    /// again). A leg position the catalog does not know is logged and skipped: the recording's
    /// own end must not be lost over one leg.
    pub async fn complete_recording(&self, c: &Completion) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let updated = tx
            .execute(
                "UPDATE recordings SET state = $2, ended_at = $3, duration_ms = $4, \
                 end_reason = $5 WHERE id = $1",
                &[
                    Arg::Text(&c.recording_id),
                    Arg::Text(c.state.as_str()),
                    Arg::Int(to_unix_ms(c.ended_at)),
                    Arg::Int(c.duration_ms),
                    Arg::Text(c.end_reason.as_str()),
                ],
            )
            .await
            .map_err(Error::database("complete recording"))?;
        if updated == 0 {
            return Err(Error::NotFound {
                id: c.recording_id.clone(),
            });
        }
        for leg in &c.legs {
            let updated = tx
                .execute(
                    "UPDATE legs SET samples = $3, sha256 = $4, error = $5, counters = $6 \
                     WHERE recording_id = $1 AND position = $2",
                    &[
                        Arg::Text(&c.recording_id),
                        Arg::Int(leg.position),
                        Arg::Int(leg.samples),
                        Arg::OptText(leg.sha256.as_deref()),
                        Arg::OptText(leg.error.as_deref()),
                        Arg::Text(&counters_json(&leg.counters)),
                    ],
                )
                .await
                .map_err(Error::database("complete leg"))?;
            if updated == 0 {
                tracing::warn!(
                    recording_id = %c.recording_id,
                    position = leg.position,
                    "completion names a leg the catalog does not have; its counters are dropped"
                );
            }
        }
        if !c.warnings.is_empty() {
            let mut position =
                next_position(&mut tx, "recording_warnings", &c.recording_id).await?;
            for message in &c.warnings {
                // Not again if already there: a replayed completion adds nothing.
                let added = tx
                    .execute(
                        "INSERT INTO recording_warnings (recording_id, position, message) \
                         SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM recording_warnings \
                         WHERE recording_id = $1 AND message = $3)",
                        &[
                            Arg::Text(&c.recording_id),
                            Arg::Int(position),
                            Arg::Text(message),
                        ],
                    )
                    .await
                    .map_err(Error::database("add recording warning"))?;
                position += i64::try_from(added).expect("one INSERT adds at most one row");
            }
        }
        tx.commit()
            .await
            .map_err(Error::database("commit completion"))
    }

    /// The recordings still `active` that `node_id` must repair at its start: its own rows,
    /// and rows with no node (recorded before schema version 3), oldest first.
    ///
    /// Meant for a node's start, before it takes calls: an `active` row of its own is a call
    /// an earlier run of the node was recording when it stopped (crash, kill -9, power cut).
    /// The caller repairs the files and completes each row ([`RecordingState::Interrupted`],
    /// [`callvault_types::EndReason::Crash`]). Rows of other nodes are never returned, so
    /// nodes sharing a PostgreSQL catalog (and a second instance started by mistake on a node
    /// id in use) never touch each other's live calls.
    pub async fn active_recordings(&self, node_id: &str) -> Result<Vec<Recording>> {
        let sql = format!(
            "{RECORDING_SELECT} WHERE state = $1 AND (node_id = $2 OR node_id IS NULL) \
             ORDER BY started_at, id"
        );
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .fetch_all(
                &sql,
                &[
                    Arg::Text(RecordingState::Active.as_str()),
                    Arg::Text(node_id),
                ],
            )
            .await
            .map_err(Error::database("find active recordings"))?;
        let mut recordings = Vec::with_capacity(rows.len());
        // A page's worth at a time: the children are read with one bind per recording.
        for chunk in rows.chunks(usize::try_from(ListQuery::MAX_LIMIT).expect("small constant")) {
            recordings.extend(load_recordings(&mut tx, chunk).await?);
        }
        tx.commit().await.map_err(Error::database("end read"))?;
        Ok(recordings)
    }

    /// Opens and closes participant ↔ leg associations to match `current`, the complete list
    /// of (participant id, leg label) pairs in effect from `at_ms` (milliseconds from the start
    /// of the recording), as stated by metadata revision `revision`.
    ///
    /// In one transaction: every open association not in `current` is closed at `at_ms`, and
    /// every pair of `current` not already open is opened at `at_ms`. Pairs that stay are left
    /// as they are (their `from_ms` does not move); a repeated pair counts once. The participant
    /// and leg are not checked against the recording's participants and legs (metadata may name
    /// a leg before its stream is added). An unknown recording is [`Error::NotFound`].
    ///
    /// Replays change nothing: a change older than the latest one stored (`at_ms` before it) is
    /// ignored, and changes at the same `at_ms` leave no zero-length association behind (one
    /// opened and closed at the same instant is removed; one closed and reopened at the same
    /// instant stays open), so the last change at an instant is the one that holds however
    /// often a run of changes is applied.
    pub async fn set_associations(
        &self,
        recording_id: &str,
        at_ms: i64,
        revision: i64,
        current: &[(String, String)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_recording(&mut tx, recording_id).await?;
        let rows = tx
            .fetch_all(
                "SELECT seq, participant_id, leg_label, associated_at_ms, disassociated_at_ms \
                 FROM participant_associations WHERE recording_id = $1 ORDER BY seq",
                &[Arg::Text(recording_id)],
            )
            .await
            .map_err(Error::database("read associations"))?;
        let mut stored = Vec::with_capacity(rows.len());
        for row in &rows {
            stored.push(StoredAssociation {
                seq: row.get("seq").map_err(decode)?,
                participant: row.get("participant_id").map_err(decode)?,
                leg: row.get("leg_label").map_err(decode)?,
                from_ms: row.get("associated_at_ms").map_err(decode)?,
                to_ms: row.get("disassociated_at_ms").map_err(decode)?,
            });
        }
        let latest = stored
            .iter()
            .map(|a| a.to_ms.unwrap_or(a.from_ms).max(a.from_ms))
            .max();
        if latest.is_some_and(|latest| at_ms < latest) {
            tracing::debug!(
                recording_id,
                at_ms,
                "association change older than the stored ones: a replay"
            );
            return tx.commit().await.map_err(Error::database("end read"));
        }
        let wanted: HashSet<(&str, &str)> = current
            .iter()
            .map(|(p, l)| (p.as_str(), l.as_str()))
            .collect();
        let mut open = HashSet::new();
        for a in stored.iter().filter(|a| a.to_ms.is_none()) {
            let pair = (a.participant.as_str(), a.leg.as_str());
            if wanted.contains(&pair) {
                open.insert(pair);
            } else if a.from_ms == at_ms {
                // Opened at this very instant and closed again: it never held.
                tx.execute(
                    "DELETE FROM participant_associations WHERE recording_id = $1 AND seq = $2",
                    &[Arg::Text(recording_id), Arg::Int(a.seq)],
                )
                .await
                .map_err(Error::database("remove association"))?;
            } else {
                tx.execute(
                    "UPDATE participant_associations SET disassociated_at_ms = $3 \
                     WHERE recording_id = $1 AND seq = $2",
                    &[Arg::Text(recording_id), Arg::Int(a.seq), Arg::Int(at_ms)],
                )
                .await
                .map_err(Error::database("close association"))?;
            }
        }
        let mut seq = stored.iter().map(|a| a.seq + 1).max().unwrap_or(0);
        for (participant, leg) in current {
            if !open.insert((participant.as_str(), leg.as_str())) {
                continue;
            }
            // Closed at this very instant by an earlier change: it holds on, reopen it.
            let reopened = stored
                .iter()
                .find(|a| a.to_ms == Some(at_ms) && a.participant == *participant && a.leg == *leg);
            if let Some(a) = reopened {
                tx.execute(
                    "UPDATE participant_associations SET disassociated_at_ms = NULL \
                     WHERE recording_id = $1 AND seq = $2",
                    &[Arg::Text(recording_id), Arg::Int(a.seq)],
                )
                .await
                .map_err(Error::database("reopen association"))?;
            } else {
                open_association(
                    &mut tx,
                    recording_id,
                    seq,
                    participant,
                    leg,
                    at_ms,
                    revision,
                )
                .await?;
                seq += 1;
            }
        }
        tx.commit()
            .await
            .map_err(Error::database("commit associations"))
    }

    /// The metadata documents of a recording, oldest (number 1) first; empty when none came.
    /// An unknown recording is [`Error::NotFound`].
    pub async fn metadata_revisions(&self, recording_id: &str) -> Result<Vec<MetadataRevision>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .fetch_all(
                "SELECT revision, received_at, datamode, raw_xml FROM metadata_revisions \
                 WHERE recording_id = $1 ORDER BY revision",
                &[Arg::Text(recording_id)],
            )
            .await
            .map_err(Error::database("read metadata revisions"))?;
        if rows.is_empty() {
            let exists = tx
                .fetch_i64(
                    "SELECT COUNT(*) FROM recordings WHERE id = $1",
                    &[Arg::Text(recording_id)],
                )
                .await
                .map_err(Error::database("find recording"))?;
            if exists == 0 {
                return Err(Error::NotFound {
                    id: recording_id.to_owned(),
                });
            }
        }
        let revisions = rows
            .iter()
            .map(|row| {
                Ok(MetadataRevision {
                    number: row.get("revision").map_err(decode)?,
                    received_at: from_unix_ms(
                        row.get("received_at").map_err(decode)?,
                        "metadata_revisions",
                        "received_at",
                    )?,
                    datamode: row.get("datamode").map_err(decode)?,
                    raw_xml: row.get("raw_xml").map_err(decode)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await.map_err(Error::database("end read"))?;
        Ok(revisions)
    }

    /// One page of recordings, newest first (`started_at` descending, then `id` descending),
    /// restricted by the query's filters.
    ///
    /// Costs eight queries whatever the page size: the page, then each child table once for all
    /// of the page's recordings. A `digits` filter with a character that is not a DTMF digit is
    /// [`Error::InvalidQuery`].
    pub async fn list_recordings(&self, query: &ListQuery) -> Result<Vec<Recording>> {
        let limit = query.limit.clamp(0, ListQuery::MAX_LIMIT);
        let offset = query.offset.max(0);
        let digits_pattern = query.digits.as_deref().map(digits_pattern).transpose()?;
        let mut conditions = Vec::new();
        let mut args = Vec::new();
        if let Some(pattern) = &digits_pattern {
            args.push(Arg::Text(pattern));
            conditions.push(format!("dtmf_digits LIKE ${} ESCAPE '\\'", args.len()));
        }
        if let Some(state) = query.state {
            args.push(Arg::Text(state.as_str()));
            conditions.push(format!("state = ${}", args.len()));
        }
        if let Some(call_id) = &query.call_id {
            args.push(Arg::Text(call_id));
            let n = args.len();
            conditions.push(format!("(ingress_call_id = ${n} OR egress_call_id = ${n})"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        args.push(Arg::Int(limit));
        args.push(Arg::Int(offset));
        let sql = format!(
            "{RECORDING_SELECT}{filter} ORDER BY started_at DESC, id DESC LIMIT ${} OFFSET ${}",
            args.len() - 1,
            args.len()
        );
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .fetch_all(&sql, &args)
            .await
            .map_err(Error::database("list recordings"))?;
        let recordings = load_recordings(&mut tx, &rows).await?;
        tx.commit().await.map_err(Error::database("end read"))?;
        Ok(recordings)
    }

    /// One recording with all its children, or `None` if the id is unknown.
    pub async fn get_recording(&self, id: &str) -> Result<Option<Recording>> {
        let mut tx = self.pool.begin_read().await?;
        let sql = format!("{RECORDING_SELECT} WHERE id = $1");
        let rows = tx
            .fetch_all(&sql, &[Arg::Text(id)])
            .await
            .map_err(Error::database("get recording"))?;
        let recording = load_recordings(&mut tx, &rows).await?.pop();
        tx.commit().await.map_err(Error::database("end read"))?;
        Ok(recording)
    }

    /// Waits for the pool's connections to close (SQLite then checkpoints its WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

const RECORDING_SELECT: &str = "SELECT id, session_id, ingress_call_id, egress_call_id, \
     from_uri, to_uri, started_at, ended_at, duration_ms, state, end_reason, source_address, \
     transport, node_id FROM recordings";

/// A `participant_associations` row, as `set_associations` compares it.
struct StoredAssociation {
    seq: i64,
    participant: String,
    leg: String,
    from_ms: i64,
    to_ms: Option<i64>,
}

/// A leg's counters as stored in `legs.counters`.
fn counters_json(counters: &LegCounters) -> String {
    // A NaN jitter serializes as null, i.e. unknown, which is what it means.
    serde_json::to_string(counters).expect("LegCounters has only numbers and string keys")
}

/// The counters of a leg of schema versions 1-2, from its old per-counter columns.
fn legacy_counters(row: &DbRow) -> Result<LegCounters> {
    let count = |column: &'static str| -> Result<u64> {
        let value: i64 = row.get(column).map_err(decode)?;
        u64::try_from(value).map_err(|_| Error::Corrupt {
            table: "legs",
            column,
            value: value.to_string(),
        })
    };
    Ok(LegCounters {
        packets: count("packets")?,
        lost: count("lost")?,
        duplicates: count("duplicates")?,
        out_of_order: count("out_of_order")?,
        late: count("late")?,
        unknown_payload: count("unknown_payload")?,
        rtcp_packets: count("rtcp_packets")?,
        jitter_ms: row.get("jitter_ms").map_err(decode)?,
        gaps_filled_ms: count("gaps_filled_ms")?,
        ssrcs_seen: count("ssrcs_seen")?,
        codec_changes: count("codec_changes")?,
        ..LegCounters::default()
    })
}

/// A stored name parsed back into its type; an unknown one is [`Error::Corrupt`].
fn parse_stored<T: std::str::FromStr>(
    value: String,
    table: &'static str,
    column: &'static str,
) -> Result<T> {
    value.parse().map_err(|_| Error::Corrupt {
        table,
        column,
        value,
    })
}

/// Checks the recording exists and, with a write on its row, takes the write lock up front
/// (see [`Pool::begin`]).
async fn lock_recording(tx: &mut Tx, recording_id: &str) -> Result<()> {
    let found = tx
        .execute(
            "UPDATE recordings SET state = state WHERE id = $1",
            &[Arg::Text(recording_id)],
        )
        .await
        .map_err(Error::database("lock recording"))?;
    if found == 0 {
        return Err(Error::NotFound {
            id: recording_id.to_owned(),
        });
    }
    Ok(())
}

/// The `LIKE` pattern of a digits search: `%digits%`, with `\`, `%` and `_` escaped (`ESCAPE
/// '\'`). Validation already rejects them; the escaping keeps the pattern literal regardless.
fn digits_pattern(digits: &str) -> Result<String> {
    if let Some(bad) = digits.chars().find(|c| !is_dtmf_digit(*c)) {
        return Err(Error::InvalidQuery {
            reason: format!("{bad:?} is not a DTMF digit (expected 0-9 * # A-D !)"),
        });
    }
    Ok(like_contains(digits))
}

/// `%text%` for `LIKE … ESCAPE '\'`, matching `text` literally.
fn like_contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Recomputes `recordings.dtmf_digits` from the recording's DTMF events, in offset order
/// (then arrival order), uppercased. Call with the recording locked.
async fn refresh_dtmf_digits(tx: &mut Tx, recording_id: &str) -> Result<()> {
    let mut digits = String::new();
    for row in tx
        .fetch_all(
            "SELECT digit FROM dtmf_events WHERE recording_id = $1 ORDER BY offset_ms, seq",
            &[Arg::Text(recording_id)],
        )
        .await
        .map_err(Error::database("read DTMF digits"))?
    {
        let digit: String = row.get("digit").map_err(decode)?;
        digits.push_str(&digit.to_ascii_uppercase());
    }
    tx.execute(
        "UPDATE recordings SET dtmf_digits = $2 WHERE id = $1",
        &[Arg::Text(recording_id), Arg::Text(&digits)],
    )
    .await
    .map_err(Error::database("store DTMF digits"))?;
    Ok(())
}

async fn open_association(
    tx: &mut Tx,
    recording_id: &str,
    seq: i64,
    participant: &str,
    leg: &str,
    at_ms: i64,
    revision: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO participant_associations (recording_id, seq, participant_id, leg_label, \
         associated_at_ms, revision) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            Arg::Text(recording_id),
            Arg::Int(seq),
            Arg::Text(participant),
            Arg::Text(leg),
            Arg::Int(at_ms),
            Arg::Int(revision),
        ],
    )
    .await
    .map_err(Error::database("open association"))?;
    Ok(())
}

/// The position after the last child row of a recording in `table` (which has a `position`).
async fn next_position(tx: &mut Tx, table: &'static str, recording_id: &str) -> Result<i64> {
    let sql = format!("SELECT COALESCE(MAX(position) + 1, 0) FROM {table} WHERE recording_id = $1");
    tx.fetch_i64(&sql, &[Arg::Text(recording_id)])
        .await
        .map_err(Error::database("number child rows"))
}

async fn upsert_participants(
    tx: &mut Tx,
    recording_id: &str,
    participants: &[NewParticipant],
) -> Result<()> {
    if participants.is_empty() {
        return Ok(());
    }
    let first = next_position(tx, "participants", recording_id).await?;
    // Upserts keep their old position, so positions may have gaps; only their order matters.
    for (position, p) in (first..).zip(participants) {
        tx.execute(
            "INSERT INTO participants (recording_id, id, position, aor, name) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (recording_id, id) DO UPDATE SET \
             aor = COALESCE(excluded.aor, participants.aor), \
             name = COALESCE(excluded.name, participants.name)",
            &[
                Arg::Text(recording_id),
                Arg::Text(&p.id),
                Arg::Int(position),
                Arg::OptText(p.aor.as_deref()),
                Arg::OptText(p.name.as_deref()),
            ],
        )
        .await
        .map_err(Error::database("upsert participant"))?;
    }
    Ok(())
}

async fn insert_legs(tx: &mut Tx, recording_id: &str, legs: &[NewLeg]) -> Result<()> {
    // Zero counters until completion, so that NULL means only "a leg of version 1-2 not yet
    // converted" (see `Catalog::backfill_leg_counters`).
    let zero = counters_json(&LegCounters::default());
    for leg in legs {
        tx.execute(
            "INSERT INTO legs (recording_id, position, label, participant_id, binding_rule, \
             codec, sample_rate, path, added_at_ms, counters) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (recording_id, position) DO NOTHING",
            &[
                Arg::Text(recording_id),
                Arg::Int(leg.position),
                Arg::Text(&leg.label),
                Arg::OptText(leg.participant.as_deref()),
                Arg::Text(&leg.binding_rule),
                Arg::Text(&leg.codec),
                Arg::Int(i64::from(leg.sample_rate)),
                Arg::Text(&leg.path),
                Arg::Int(leg.added_at_ms),
                Arg::Text(&zero),
            ],
        )
        .await
        .map_err(Error::database("insert leg"))?;
    }
    Ok(())
}

async fn insert_metadata_revision(
    tx: &mut Tx,
    recording_id: &str,
    rev: &NewMetadataRevision,
) -> Result<()> {
    let inserted = tx
        .execute(
            "INSERT INTO metadata_revisions (recording_id, revision, received_at, datamode, \
             raw_xml) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (recording_id, revision) DO NOTHING",
            &[
                Arg::Text(recording_id),
                Arg::Int(rev.number),
                Arg::Int(to_unix_ms(rev.received_at)),
                Arg::OptText(rev.datamode.as_deref()),
                Arg::Text(&rev.raw_xml),
            ],
        )
        .await
        .map_err(Error::database("insert metadata revision"))?;
    if inserted == 0 {
        // A replay: its participants were merged when it was first stored, and merging them
        // again could undo what a later revision changed.
        return Ok(());
    }
    upsert_participants(tx, recording_id, &rev.participants).await
}

fn decode(source: sqlx::Error) -> Error {
    Error::Database {
        operation: "decode a catalog row",
        source,
    }
}

fn recording_from_row(row: &DbRow) -> Result<Recording> {
    let state = parse_stored(row.get("state").map_err(decode)?, "recordings", "state")?;
    let end_reason = row
        .get::<Option<String>>("end_reason")
        .map_err(decode)?
        .map(|reason| parse_stored(reason, "recordings", "end_reason"))
        .transpose()?;
    let ended_at = row
        .get::<Option<i64>>("ended_at")
        .map_err(decode)?
        .map(|ms| from_unix_ms(ms, "recordings", "ended_at"))
        .transpose()?;
    Ok(Recording {
        id: row.get("id").map_err(decode)?,
        session_id: row.get("session_id").map_err(decode)?,
        ingress_call_id: row.get("ingress_call_id").map_err(decode)?,
        egress_call_id: row.get("egress_call_id").map_err(decode)?,
        from: row.get("from_uri").map_err(decode)?,
        to: row.get("to_uri").map_err(decode)?,
        started_at: from_unix_ms(
            row.get("started_at").map_err(decode)?,
            "recordings",
            "started_at",
        )?,
        ended_at,
        duration_ms: row.get("duration_ms").map_err(decode)?,
        state,
        end_reason,
        node_id: row.get("node_id").map_err(decode)?,
        participants: Vec::new(),
        legs: Vec::new(),
        dtmf: Vec::new(),
        correlation_ids: Vec::new(),
        warnings: Vec::new(),
        metadata_revisions: 0,
        associations: Vec::new(),
        source_address: row.get("source_address").map_err(decode)?,
        transport: row.get("transport").map_err(decode)?,
    })
}

/// Turns `recordings` rows into full [`Recording`]s, reading each child table once for all of
/// them (`WHERE recording_id IN (…)`), in the order of `rows`.
async fn load_recordings(tx: &mut Tx, rows: &[DbRow]) -> Result<Vec<Recording>> {
    let mut recordings = rows
        .iter()
        .map(recording_from_row)
        .collect::<Result<Vec<_>>>()?;
    if recordings.is_empty() {
        return Ok(recordings);
    }
    let index: HashMap<String, usize> = recordings
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    let ids: Vec<String> = recordings.iter().map(|r| r.id.clone()).collect();
    let args: Vec<Arg<'_>> = ids.iter().map(|id| Arg::Text(id)).collect();
    // Explicit ids rather than a sub-select repeating the page query: the children are then
    // exactly those of the recordings already read. At most MAX_LIMIT binds.
    let placeholders = (1..=ids.len())
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let of = |recording_id: &String| index.get(recording_id).copied();

    let sql = format!(
        "SELECT recording_id, id, aor, name FROM participants \
         WHERE recording_id IN ({placeholders}) ORDER BY recording_id, position"
    );
    for row in tx
        .fetch_all(&sql, &args)
        .await
        .map_err(Error::database("read participants"))?
    {
        let recording_id: String = row.get("recording_id").map_err(decode)?;
        if let Some(i) = of(&recording_id) {
            recordings[i].participants.push(Participant {
                id: row.get("id").map_err(decode)?,
                aor: row.get("aor").map_err(decode)?,
                name: row.get("name").map_err(decode)?,
            });
        }
    }

    let sql = format!(
        "SELECT recording_id, position, label, participant_id, binding_rule, codec, \
         sample_rate, path, sha256, added_at_ms, error, counters FROM legs \
         WHERE recording_id IN ({placeholders}) ORDER BY recording_id, position"
    );
    for row in tx
        .fetch_all(&sql, &args)
        .await
        .map_err(Error::database("read legs"))?
    {
        let recording_id: String = row.get("recording_id").map_err(decode)?;
        let sample_rate: i64 = row.get("sample_rate").map_err(decode)?;
        let sample_rate = u32::try_from(sample_rate).map_err(|_| Error::Corrupt {
            table: "legs",
            column: "sample_rate",
            value: sample_rate.to_string(),
        })?;
        let counters = match row.get::<Option<String>>("counters").map_err(decode)? {
            Some(json) => serde_json::from_str(&json).map_err(|_| Error::Corrupt {
                table: "legs",
                column: "counters",
                value: json,
            })?,
            // Only a leg of version 1-2 another node added after this one's open.
            None => LegCounters::default(),
        };
        if let Some(i) = of(&recording_id) {
            recordings[i].legs.push(Leg {
                position: row.get("position").map_err(decode)?,
                label: row.get("label").map_err(decode)?,
                participant: row.get("participant_id").map_err(decode)?,
                binding_rule: row.get("binding_rule").map_err(decode)?,
                codec: row.get("codec").map_err(decode)?,
                sample_rate,
                path: row.get("path").map_err(decode)?,
                sha256: row.get("sha256").map_err(decode)?,
                added_at_ms: row.get("added_at_ms").map_err(decode)?,
                error: row.get("error").map_err(decode)?,
                counters,
            });
        }
    }

    let sql = format!(
        "SELECT recording_id, seq, digit, leg_label, offset_ms, duration_ms, source \
         FROM dtmf_events \
         WHERE recording_id IN ({placeholders}) ORDER BY recording_id, offset_ms, seq"
    );
    for row in tx
        .fetch_all(&sql, &args)
        .await
        .map_err(Error::database("read DTMF events"))?
    {
        let recording_id: String = row.get("recording_id").map_err(decode)?;
        if let Some(i) = of(&recording_id) {
            recordings[i].dtmf.push(DtmfEvent {
                seq: row.get("seq").map_err(decode)?,
                digit: row.get("digit").map_err(decode)?,
                leg: row.get("leg_label").map_err(decode)?,
                offset_ms: row.get("offset_ms").map_err(decode)?,
                duration_ms: row.get("duration_ms").map_err(decode)?,
                source: parse_stored(row.get("source").map_err(decode)?, "dtmf_events", "source")?,
            });
        }
    }

    let sql = format!(
        "SELECT recording_id, kind, value FROM correlation_ids \
         WHERE recording_id IN ({placeholders}) ORDER BY recording_id, position"
    );
    for row in tx
        .fetch_all(&sql, &args)
        .await
        .map_err(Error::database("read correlation ids"))?
    {
        let recording_id: String = row.get("recording_id").map_err(decode)?;
        if let Some(i) = of(&recording_id) {
            recordings[i].correlation_ids.push(CorrelationId {
                kind: row.get("kind").map_err(decode)?,
                value: row.get("value").map_err(decode)?,
            });
        }
    }

    let sql = format!(
        "SELECT recording_id, message FROM recording_warnings \
         WHERE recording_id IN ({placeholders}) ORDER BY recording_id, position"
    );
    for row in tx
        .fetch_all(&sql, &args)
        .await
        .map_err(Error::database("read warnings"))?
    {
        let recording_id: String = row.get("recording_id").map_err(decode)?;
        if let Some(i) = of(&recording_id) {
            recordings[i]
                .warnings
                .push(row.get("message").map_err(decode)?);
        }
    }

    let sql = format!(
        "SELECT recording_id, COUNT(*) AS revisions FROM metadata_revisions \
         WHERE recording_id IN ({placeholders}) GROUP BY recording_id"
    );
    for row in tx
        .fetch_all(&sql, &args)
        .await
        .map_err(Error::database("count metadata revisions"))?
    {
        let recording_id: String = row.get("recording_id").map_err(decode)?;
        if let Some(i) = of(&recording_id) {
            recordings[i].metadata_revisions = row.get("revisions").map_err(decode)?;
        }
    }

    let sql = format!(
        "SELECT recording_id, participant_id, leg_label, associated_at_ms, disassociated_at_ms \
         FROM participant_associations WHERE recording_id IN ({placeholders}) \
         ORDER BY recording_id, associated_at_ms, seq"
    );
    for row in tx
        .fetch_all(&sql, &args)
        .await
        .map_err(Error::database("read associations"))?
    {
        let recording_id: String = row.get("recording_id").map_err(decode)?;
        if let Some(i) = of(&recording_id) {
            recordings[i].associations.push(Association {
                participant: row.get("participant_id").map_err(decode)?,
                leg: row.get("leg_label").map_err(decode)?,
                from_ms: row.get("associated_at_ms").map_err(decode)?,
                to_ms: row.get("disassociated_at_ms").map_err(decode)?,
            });
        }
    }

    Ok(recordings)
}

#[cfg(test)]
mod tests;
