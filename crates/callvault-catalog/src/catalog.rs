//! [`Catalog`]: the recordings catalog's operations, written once for SQLite and PostgreSQL.

use std::collections::HashMap;
use std::path::Path;

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
    /// label or correlation id is stored once. An id already in the catalog is
    /// [`Error::AlreadyExists`] and changes nothing.
    pub async fn insert_recording(&self, rec: &NewRecording) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let inserted = tx
            .execute(
                "INSERT INTO recordings (id, session_id, ingress_call_id, egress_call_id, \
                 from_uri, to_uri, started_at, state, source_address, transport, dtmf_digits) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '')",
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
        // The initial associations: each leg's participant from the start. A repeated label is
        // stored once (the first), so only its first participant counts.
        let revision = i64::from(rec.metadata.is_some());
        let mut seen = std::collections::HashSet::new();
        let mut seq = 0_i64;
        for leg in &rec.legs {
            if !seen.insert(leg.label.as_str()) {
                continue;
            }
            if let Some(participant) = &leg.participant {
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

    /// Stores a metadata document received mid-call as the next revision, and upserts the
    /// participants it names (new ones appended, known ones get any aor/name it adds).
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

    /// Adds streams that appeared mid-call, after the existing legs, each with its
    /// [`NewLeg::added_at_ms`]. A label the recording already has is left as it is (a re-INVITE
    /// repeats the streams it keeps). Opens no participant association: mid-call changes of who
    /// is on which leg go through [`Catalog::set_associations`].
    pub async fn add_legs(&self, recording_id: &str, legs: &[NewLeg]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_recording(&mut tx, recording_id).await?;
        insert_legs(&mut tx, recording_id, legs).await?;
        tx.commit()
            .await
            .map_err(Error::database("commit new legs"))
    }

    /// Stores one DTMF digit, and in the same transaction recomputes the recording's
    /// `dtmf_digits` (all its digits in offset order, uppercased) that [`ListQuery::digits`]
    /// searches, so a digit reported late lands in its place.
    pub async fn add_dtmf(&self, recording_id: &str, event: &DtmfEvent) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_recording(&mut tx, recording_id).await?;
        let seq = tx
            .fetch_i64(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM dtmf_events WHERE recording_id = $1",
                &[Arg::Text(recording_id)],
            )
            .await
            .map_err(Error::database("number DTMF event"))?;
        tx.execute(
            "INSERT INTO dtmf_events (recording_id, seq, digit, leg_label, offset_ms, \
             duration_ms, source) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                Arg::Text(recording_id),
                Arg::Int(seq),
                Arg::Text(&event.digit),
                Arg::Text(&event.leg),
                Arg::Int(event.offset_ms),
                Arg::Int(event.duration_ms),
                Arg::Text(&event.source),
            ],
        )
        .await
        .map_err(Error::database("insert DTMF event"))?;
        refresh_dtmf_digits(&mut tx, recording_id).await?;
        tx.commit()
            .await
            .map_err(Error::database("commit DTMF event"))
    }

    /// Records how a recording ended and each leg's final counters, quality figures and digest.
    ///
    /// `c.state` is normally [`RecordingState::Complete`], [`RecordingState::Interrupted`] or
    /// [`RecordingState::Failed`]; `end_reason` is free text ("bye", "rtp-timeout",
    /// "session-expired", "shutdown"…) stored as given.
    ///
    /// Overwrites, so completing twice leaves the second completion's values and no extra
    /// rows. A leg label the catalog does not know is logged and skipped: the recording's own
    /// end must not be lost over one leg.
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
                    Arg::Text(&c.end_reason),
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
                    "UPDATE legs SET packets = $3, lost = $4, duplicates = $5, \
                     out_of_order = $6, late = $7, samples = $8, sha256 = $9, \
                     jitter_ms = $10, gaps_filled_ms = $11, ssrcs_seen = $12, \
                     codec_changes = $13, unknown_payload = $14, rtcp_packets = $15 \
                     WHERE recording_id = $1 AND label = $2",
                    &[
                        Arg::Text(&c.recording_id),
                        Arg::Text(&leg.label),
                        Arg::Int(leg.packets),
                        Arg::Int(leg.lost),
                        Arg::Int(leg.duplicates),
                        Arg::Int(leg.out_of_order),
                        Arg::Int(leg.late),
                        Arg::Int(leg.samples),
                        Arg::OptText(leg.sha256.as_deref()),
                        // NaN/infinity: unknown (SQLite would store NaN as NULL anyway).
                        Arg::OptFloat(leg.jitter_ms.is_finite().then_some(leg.jitter_ms)),
                        Arg::Int(leg.gaps_filled_ms),
                        Arg::Int(leg.ssrcs_seen),
                        Arg::Int(leg.codec_changes),
                        Arg::Int(leg.unknown_payload),
                        Arg::Int(leg.rtcp_packets),
                    ],
                )
                .await
                .map_err(Error::database("complete leg"))?;
            if updated == 0 {
                tracing::warn!(
                    recording_id = %c.recording_id,
                    label = %leg.label,
                    "completion names a leg the catalog does not have; its counters are dropped"
                );
            }
        }
        tx.commit()
            .await
            .map_err(Error::database("commit completion"))
    }

    /// Marks every `active` recording `interrupted` and returns how many there were.
    ///
    /// Meant for startup, when no call is being recorded yet: anything still `active` was cut
    /// off by the end of an earlier run. With one PostgreSQL catalog shared by several nodes this
    /// would also hit the other nodes' live calls (see the crate docs).
    pub async fn mark_interrupted(&self) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let count = tx
            .execute(
                "UPDATE recordings SET state = $1 WHERE state = $2",
                &[
                    Arg::Text(RecordingState::Interrupted.as_str()),
                    Arg::Text(RecordingState::Active.as_str()),
                ],
            )
            .await
            .map_err(Error::database("mark interrupted recordings"))?;
        tx.commit()
            .await
            .map_err(Error::database("commit interrupted recordings"))?;
        Ok(count)
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
    pub async fn set_associations(
        &self,
        recording_id: &str,
        at_ms: i64,
        revision: i64,
        current: &[(String, String)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_recording(&mut tx, recording_id).await?;
        let open_rows = tx
            .fetch_all(
                "SELECT seq, participant_id, leg_label FROM participant_associations \
                 WHERE recording_id = $1 AND disassociated_at_ms IS NULL ORDER BY seq",
                &[Arg::Text(recording_id)],
            )
            .await
            .map_err(Error::database("read open associations"))?;
        let mut open = std::collections::HashSet::new();
        for row in &open_rows {
            let seq: i64 = row.get("seq").map_err(decode)?;
            let participant: String = row.get("participant_id").map_err(decode)?;
            let leg: String = row.get("leg_label").map_err(decode)?;
            if current.iter().any(|(p, l)| *p == participant && *l == leg) {
                open.insert((participant, leg));
            } else {
                tx.execute(
                    "UPDATE participant_associations SET disassociated_at_ms = $3 \
                     WHERE recording_id = $1 AND seq = $2",
                    &[Arg::Text(recording_id), Arg::Int(seq), Arg::Int(at_ms)],
                )
                .await
                .map_err(Error::database("close association"))?;
            }
        }
        let mut seq = tx
            .fetch_i64(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM participant_associations \
                 WHERE recording_id = $1",
                &[Arg::Text(recording_id)],
            )
            .await
            .map_err(Error::database("number association"))?;
        for (participant, leg) in current {
            if open.insert((participant.clone(), leg.clone())) {
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
     transport FROM recordings";

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
    if legs.is_empty() {
        return Ok(());
    }
    let first = next_position(tx, "legs", recording_id).await?;
    for (position, leg) in (first..).zip(legs) {
        tx.execute(
            "INSERT INTO legs (recording_id, label, position, participant_id, binding_rule, \
             codec, sample_rate, path, added_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (recording_id, label) DO NOTHING",
            &[
                Arg::Text(recording_id),
                Arg::Text(&leg.label),
                Arg::Int(position),
                Arg::OptText(leg.participant.as_deref()),
                Arg::Text(&leg.binding_rule),
                Arg::Text(&leg.codec),
                Arg::Int(i64::from(leg.sample_rate)),
                Arg::Text(&leg.path),
                Arg::Int(leg.added_at_ms),
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
    let revision = tx
        .fetch_i64(
            "SELECT COALESCE(MAX(revision) + 1, 1) FROM metadata_revisions \
             WHERE recording_id = $1",
            &[Arg::Text(recording_id)],
        )
        .await
        .map_err(Error::database("number metadata revision"))?;
    tx.execute(
        "INSERT INTO metadata_revisions (recording_id, revision, received_at, datamode, \
         raw_xml) VALUES ($1, $2, $3, $4, $5)",
        &[
            Arg::Text(recording_id),
            Arg::Int(revision),
            Arg::Int(to_unix_ms(rev.received_at)),
            Arg::OptText(rev.datamode.as_deref()),
            Arg::Text(&rev.raw_xml),
        ],
    )
    .await
    .map_err(Error::database("insert metadata revision"))?;
    upsert_participants(tx, recording_id, &rev.participants).await
}

fn decode(source: sqlx::Error) -> Error {
    Error::Database {
        operation: "decode a catalog row",
        source,
    }
}

fn recording_from_row(row: &DbRow) -> Result<Recording> {
    let state: String = row.get("state").map_err(decode)?;
    let state = state.parse().map_err(|_| Error::Corrupt {
        table: "recordings",
        column: "state",
        value: state,
    })?;
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
        end_reason: row.get("end_reason").map_err(decode)?,
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
        "SELECT recording_id, label, participant_id, binding_rule, codec, sample_rate, path, \
         packets, lost, duplicates, out_of_order, late, sha256, added_at_ms, jitter_ms, \
         gaps_filled_ms, ssrcs_seen, codec_changes, unknown_payload, rtcp_packets FROM legs \
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
        if let Some(i) = of(&recording_id) {
            recordings[i].legs.push(Leg {
                label: row.get("label").map_err(decode)?,
                participant: row.get("participant_id").map_err(decode)?,
                binding_rule: row.get("binding_rule").map_err(decode)?,
                codec: row.get("codec").map_err(decode)?,
                sample_rate,
                path: row.get("path").map_err(decode)?,
                packets: row.get("packets").map_err(decode)?,
                lost: row.get("lost").map_err(decode)?,
                duplicates: row.get("duplicates").map_err(decode)?,
                out_of_order: row.get("out_of_order").map_err(decode)?,
                late: row.get("late").map_err(decode)?,
                sha256: row.get("sha256").map_err(decode)?,
                added_at_ms: row.get("added_at_ms").map_err(decode)?,
                jitter_ms: row.get("jitter_ms").map_err(decode)?,
                gaps_filled_ms: row.get("gaps_filled_ms").map_err(decode)?,
                ssrcs_seen: row.get("ssrcs_seen").map_err(decode)?,
                codec_changes: row.get("codec_changes").map_err(decode)?,
                unknown_payload: row.get("unknown_payload").map_err(decode)?,
                rtcp_packets: row.get("rtcp_packets").map_err(decode)?,
            });
        }
    }

    let sql = format!(
        "SELECT recording_id, digit, leg_label, offset_ms, duration_ms, source FROM dtmf_events \
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
                digit: row.get("digit").map_err(decode)?,
                leg: row.get("leg_label").map_err(decode)?,
                offset_ms: row.get("offset_ms").map_err(decode)?,
                duration_ms: row.get("duration_ms").map_err(decode)?,
                source: row.get("source").map_err(decode)?,
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
mod tests {
    //! Each scenario takes a [`Catalog`], so the same assertions run on SQLite (always) and on
    //! PostgreSQL (when `CALLVAULT_TEST_POSTGRES_URL` names a server we may create databases on).

    use super::*;
    use crate::model::{LegCompletion, NewLeg};
    use std::collections::BTreeSet;
    use std::str::FromStr as _;
    use time::OffsetDateTime;
    use time::macros::datetime;

    struct TestDb {
        catalog: Catalog,
        // Dropped after the catalog: the SQLite file lives in here.
        _dir: tempfile::TempDir,
    }

    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&Catalog::sqlite_url(dir.path()))
            .await
            .unwrap();
        TestDb { catalog, _dir: dir }
    }

    fn participant(id: &str, aor: Option<&str>, name: Option<&str>) -> NewParticipant {
        NewParticipant {
            id: id.to_owned(),
            aor: aor.map(str::to_owned),
            name: name.map(str::to_owned),
        }
    }

    fn leg(label: &str, participant: Option<&str>) -> NewLeg {
        NewLeg {
            label: label.to_owned(),
            participant: participant.map(str::to_owned),
            binding_rule: "metadata".to_owned(),
            codec: "PCMA".to_owned(),
            sample_rate: 8000,
            path: format!("recordings/2026/11/30/rec/{label}.wav"),
            added_at_ms: 0,
        }
    }

    fn new_recording(id: &str, started_at: OffsetDateTime) -> NewRecording {
        NewRecording {
            id: id.to_owned(),
            session_id: format!("session-{id}"),
            ingress_call_id: format!("ingress-{id}@src.example"),
            egress_call_id: None,
            from: "sip:src@sbc.example".to_owned(),
            to: "sip:srs@callvault.example".to_owned(),
            started_at,
            participants: vec![participant("p1", Some("sip:alice@example.com"), None)],
            legs: vec![leg("1", Some("p1"))],
            metadata: None,
            correlation_ids: Vec::new(),
            warnings: Vec::new(),
            source_address: "192.0.2.10:5060".to_owned(),
            transport: "udp".to_owned(),
        }
    }

    fn completion(id: &str, label: &str, packets: i64, sha256: &str) -> Completion {
        Completion {
            recording_id: id.to_owned(),
            state: RecordingState::Complete,
            ended_at: datetime!(2026-11-30 10:05:00.250 UTC),
            duration_ms: 300_250,
            end_reason: "bye".to_owned(),
            legs: vec![LegCompletion {
                label: label.to_owned(),
                packets,
                lost: 3,
                duplicates: 1,
                out_of_order: 2,
                late: 4,
                samples: packets * 160,
                sha256: Some(sha256.to_owned()),
                ..LegCompletion::default()
            }],
        }
    }

    async fn get(catalog: &Catalog, id: &str) -> Recording {
        catalog.get_recording(id).await.unwrap().unwrap()
    }

    async fn insert_then_get_round_trips_every_field(catalog: &Catalog) {
        let rec = NewRecording {
            id: "0193c1a2-0000-7000-8000-000000000001".to_owned(),
            session_id: "ZGVhZGJlZWY=".to_owned(),
            ingress_call_id: "a84b4c76e66710@src.example".to_owned(),
            egress_call_id: Some("egress-1@callvault".to_owned()),
            from: "<sip:src@sbc.example>;tag=1928301774".to_owned(),
            to: "<sip:srs@callvault.example>".to_owned(),
            started_at: datetime!(2026-11-30 10:00:00.123 +01:00),
            participants: vec![
                participant("p1", Some("sip:alice@example.com"), Some("Alice")),
                participant("p2", Some("tel:+15551234"), None),
            ],
            legs: vec![leg("2", Some("p2")), leg("1", Some("p1"))],
            metadata: Some(NewMetadataRevision {
                received_at: datetime!(2026-11-30 09:00:00.124 UTC),
                datamode: Some("complete".to_owned()),
                raw_xml: "<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>".to_owned(),
                // p2 gains a name, p3 is new.
                participants: vec![
                    participant("p2", None, Some("Bob")),
                    participant("p3", None, None),
                ],
            }),
            correlation_ids: vec![
                ("ucid".to_owned(), "00001000011234567890".to_owned()),
                ("cisco-guid".to_owned(), "1234-5678".to_owned()),
                ("ucid".to_owned(), "00001000011234567890".to_owned()),
            ],
            warnings: vec!["label order binding".to_owned(), "no aor for p3".to_owned()],
            source_address: "[2001:db8::1]:5061".to_owned(),
            transport: "tls".to_owned(),
        };
        catalog.insert_recording(&rec).await.unwrap();

        let expected = Recording {
            id: rec.id.clone(),
            session_id: "ZGVhZGJlZWY=".to_owned(),
            ingress_call_id: "a84b4c76e66710@src.example".to_owned(),
            egress_call_id: Some("egress-1@callvault".to_owned()),
            from: "<sip:src@sbc.example>;tag=1928301774".to_owned(),
            to: "<sip:srs@callvault.example>".to_owned(),
            started_at: datetime!(2026-11-30 09:00:00.123 UTC),
            ended_at: None,
            duration_ms: None,
            state: RecordingState::Active,
            end_reason: None,
            participants: vec![
                Participant {
                    id: "p1".to_owned(),
                    aor: Some("sip:alice@example.com".to_owned()),
                    name: Some("Alice".to_owned()),
                },
                Participant {
                    id: "p2".to_owned(),
                    aor: Some("tel:+15551234".to_owned()),
                    name: Some("Bob".to_owned()),
                },
                Participant {
                    id: "p3".to_owned(),
                    aor: None,
                    name: None,
                },
            ],
            legs: ["2", "1"]
                .iter()
                .map(|label| Leg {
                    label: (*label).to_owned(),
                    participant: Some(format!("p{label}")),
                    binding_rule: "metadata".to_owned(),
                    codec: "PCMA".to_owned(),
                    sample_rate: 8000,
                    path: format!("recordings/2026/11/30/rec/{label}.wav"),
                    packets: 0,
                    lost: 0,
                    duplicates: 0,
                    out_of_order: 0,
                    late: 0,
                    sha256: None,
                    added_at_ms: 0,
                    jitter_ms: None,
                    gaps_filled_ms: 0,
                    ssrcs_seen: 0,
                    codec_changes: 0,
                    unknown_payload: 0,
                    rtcp_packets: 0,
                })
                .collect(),
            dtmf: Vec::new(),
            correlation_ids: vec![
                CorrelationId {
                    kind: "ucid".to_owned(),
                    value: "00001000011234567890".to_owned(),
                },
                CorrelationId {
                    kind: "cisco-guid".to_owned(),
                    value: "1234-5678".to_owned(),
                },
            ],
            warnings: vec!["label order binding".to_owned(), "no aor for p3".to_owned()],
            metadata_revisions: 1,
            // Opened from the legs' participants at 0, in leg order.
            associations: vec![
                Association {
                    participant: "p2".to_owned(),
                    leg: "2".to_owned(),
                    from_ms: 0,
                    to_ms: None,
                },
                Association {
                    participant: "p1".to_owned(),
                    leg: "1".to_owned(),
                    from_ms: 0,
                    to_ms: None,
                },
            ],
            source_address: "[2001:db8::1]:5061".to_owned(),
            transport: "tls".to_owned(),
        };
        assert_eq!(get(catalog, &rec.id).await, expected);
        assert_eq!(catalog.get_recording("no-such-id").await.unwrap(), None);
    }

    async fn insert_of_a_known_id_is_already_exists_and_changes_nothing(catalog: &Catalog) {
        let first = new_recording("dup", datetime!(2026-11-30 10:00 UTC));
        catalog.insert_recording(&first).await.unwrap();
        let mut second = new_recording("dup", datetime!(2026-11-30 11:00 UTC));
        second.legs.push(leg("9", None));
        let err = catalog.insert_recording(&second).await.unwrap_err();
        assert!(
            matches!(err, Error::AlreadyExists { ref id } if id == "dup"),
            "{err:?}"
        );
        let stored = get(catalog, "dup").await;
        assert_eq!(stored.started_at, first.started_at);
        assert_eq!(stored.legs.len(), 1);
    }

    async fn list_is_newest_first_and_pages(catalog: &Catalog) {
        // "b" and "c" start in the same millisecond: the id breaks the tie (descending).
        let starts = [
            ("a", datetime!(2026-11-30 08:00 UTC)),
            ("b", datetime!(2026-11-30 09:00 UTC)),
            ("c", datetime!(2026-11-30 09:00 UTC)),
            ("d", datetime!(2026-11-30 07:00 UTC)),
            ("e", datetime!(2026-11-30 10:00 UTC)),
        ];
        for (id, started_at) in starts {
            let mut rec = new_recording(id, started_at);
            // A child per recording that names its parent, to catch children given to the
            // wrong recording by the batched child queries.
            rec.legs = vec![leg(&format!("leg-of-{id}"), None)];
            rec.warnings = vec![format!("warning-of-{id}")];
            catalog.insert_recording(&rec).await.unwrap();
        }
        let ids = |page: &[Recording]| page.iter().map(|r| r.id.clone()).collect::<Vec<_>>();

        let all = catalog
            .list_recordings(&ListQuery::default())
            .await
            .unwrap();
        assert_eq!(ids(&all), ["e", "c", "b", "a", "d"]);
        for r in &all {
            assert_eq!(r.legs.len(), 1);
            assert_eq!(r.legs[0].label, format!("leg-of-{}", r.id));
            assert_eq!(r.warnings, [format!("warning-of-{}", r.id)]);
            assert_eq!(r.participants.len(), 1);
        }

        let page = async |limit, offset| {
            catalog
                .list_recordings(&ListQuery {
                    limit,
                    offset,
                    ..ListQuery::default()
                })
                .await
        };
        assert_eq!(ids(&page(2, 0).await.unwrap()), ["e", "c"]);
        assert_eq!(ids(&page(2, 2).await.unwrap()), ["b", "a"]);
        assert_eq!(ids(&page(2, 4).await.unwrap()), ["d"]);
        assert!(page(2, 5).await.unwrap().is_empty());
        assert!(page(0, 0).await.unwrap().is_empty());
        // Out-of-range paging is clamped, not an error.
        assert_eq!(ids(&page(-1, -7).await.unwrap()), Vec::<String>::new());
        assert_eq!(page(i64::MAX, -7).await.unwrap().len(), 5);
    }

    async fn complete_updates_state_counts_and_digests_once(catalog: &Catalog) {
        let mut rec = new_recording("r", datetime!(2026-11-30 10:00 UTC));
        rec.legs = vec![leg("1", Some("p1")), leg("2", None)];
        catalog.insert_recording(&rec).await.unwrap();

        let mut done = completion("r", "1", 15_000, "ab12");
        done.legs.push(LegCompletion {
            label: "not-a-leg".to_owned(),
            ..done.legs[0].clone()
        });
        catalog.complete_recording(&done).await.unwrap();
        let stored = get(catalog, "r").await;
        assert_eq!(stored.state, RecordingState::Complete);
        assert_eq!(
            stored.ended_at,
            Some(datetime!(2026-11-30 10:05:00.250 UTC))
        );
        assert_eq!(stored.duration_ms, Some(300_250));
        assert_eq!(stored.end_reason.as_deref(), Some("bye"));
        assert_eq!(stored.legs.len(), 2, "an unknown label adds no leg");
        let leg1 = &stored.legs[0];
        assert_eq!(
            (
                leg1.packets,
                leg1.lost,
                leg1.duplicates,
                leg1.out_of_order,
                leg1.late
            ),
            (15_000, 3, 1, 2, 4)
        );
        assert_eq!(leg1.sha256.as_deref(), Some("ab12"));
        assert_eq!(
            (stored.legs[1].packets, stored.legs[1].sha256.as_deref()),
            (0, None)
        );

        // Completing again overwrites; nothing is duplicated.
        catalog
            .complete_recording(&completion("r", "1", 15_001, "cd34"))
            .await
            .unwrap();
        let again = get(catalog, "r").await;
        assert_eq!(again.legs.len(), 2);
        assert_eq!(again.legs[0].packets, 15_001);
        assert_eq!(again.legs[0].sha256.as_deref(), Some("cd34"));

        let err = catalog
            .complete_recording(&completion("nope", "1", 1, "x"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::NotFound { ref id } if id == "nope"),
            "{err:?}"
        );
    }

    async fn mark_interrupted_only_touches_active(catalog: &Catalog) {
        for id in ["live-1", "live-2", "done", "failed"] {
            catalog
                .insert_recording(&new_recording(id, datetime!(2026-11-30 10:00 UTC)))
                .await
                .unwrap();
        }
        catalog
            .complete_recording(&completion("done", "1", 10, "aa"))
            .await
            .unwrap();
        let mut failed = completion("failed", "1", 0, "bb");
        failed.state = RecordingState::Failed;
        catalog.complete_recording(&failed).await.unwrap();

        assert_eq!(catalog.mark_interrupted().await.unwrap(), 2);
        for (id, state) in [
            ("live-1", RecordingState::Interrupted),
            ("live-2", RecordingState::Interrupted),
            ("done", RecordingState::Complete),
            ("failed", RecordingState::Failed),
        ] {
            assert_eq!(get(catalog, id).await.state, state, "{id}");
        }
        assert_eq!(catalog.mark_interrupted().await.unwrap(), 0);
    }

    async fn metadata_revisions_are_counted_and_add_participants(catalog: &Catalog) {
        let rec = new_recording("m", datetime!(2026-11-30 10:00 UTC));
        catalog.insert_recording(&rec).await.unwrap();
        assert_eq!(get(catalog, "m").await.metadata_revisions, 0);

        for (n, participants) in [
            vec![participant("p1", None, Some("Alice"))],
            vec![participant("p9", Some("sip:carol@example.com"), None)],
        ]
        .into_iter()
        .enumerate()
        {
            let rev = NewMetadataRevision {
                received_at: datetime!(2026-11-30 10:01 UTC),
                datamode: Some("partial".to_owned()),
                raw_xml: format!("<recording n='{n}'/>"),
                participants,
            };
            catalog.add_metadata_revision("m", &rev).await.unwrap();
        }
        let stored = get(catalog, "m").await;
        assert_eq!(stored.metadata_revisions, 2);
        assert_eq!(
            stored.participants,
            [
                Participant {
                    id: "p1".to_owned(),
                    aor: Some("sip:alice@example.com".to_owned()),
                    name: Some("Alice".to_owned()),
                },
                Participant {
                    id: "p9".to_owned(),
                    aor: Some("sip:carol@example.com".to_owned()),
                    name: None,
                },
            ]
        );

        let rev = NewMetadataRevision {
            received_at: datetime!(2026-11-30 10:01 UTC),
            datamode: None,
            raw_xml: String::new(),
            participants: Vec::new(),
        };
        let err = catalog
            .add_metadata_revision("nope", &rev)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }

    async fn legs_and_dtmf_added_mid_call(catalog: &Catalog) {
        let mut rec = new_recording("mid", datetime!(2026-11-30 10:00 UTC));
        rec.legs = vec![leg("b", None), leg("a", None)];
        catalog.insert_recording(&rec).await.unwrap();

        // A re-INVITE repeats "a" (kept as it was) and adds "c" and "0".
        let mut repeated = leg("a", Some("p1"));
        repeated.codec = "PCMU".to_owned();
        catalog
            .add_legs("mid", &[repeated, leg("c", None), leg("0", None)])
            .await
            .unwrap();
        let stored = get(catalog, "mid").await;
        let labels: Vec<_> = stored.legs.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["b", "a", "c", "0"]);
        assert_eq!(stored.legs[1].codec, "PCMA");
        assert_eq!(stored.legs[1].participant, None);

        let dtmf = |digit: &str, offset_ms| DtmfEvent {
            digit: digit.to_owned(),
            leg: "a".to_owned(),
            offset_ms,
            duration_ms: 120,
            source: "rfc4733".to_owned(),
        };
        // Reported out of order (INFO arrives before a late RFC 4733 event); stored by offset.
        for event in [dtmf("5", 2_000), dtmf("1", 1_000), dtmf("#", 2_000)] {
            catalog.add_dtmf("mid", &event).await.unwrap();
        }
        assert_eq!(
            get(catalog, "mid").await.dtmf,
            [dtmf("1", 1_000), dtmf("5", 2_000), dtmf("#", 2_000)]
        );

        let err = catalog.add_dtmf("nope", &dtmf("1", 0)).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let err = catalog
            .add_legs("nope", &[leg("x", None)])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }

    async fn json_has_exactly_the_contract_fields(catalog: &Catalog) {
        let mut rec = new_recording("json", datetime!(2026-11-30 10:00:00.5 UTC));
        rec.correlation_ids = vec![("ucid".to_owned(), "42".to_owned())];
        catalog.insert_recording(&rec).await.unwrap();
        catalog
            .add_dtmf(
                "json",
                &DtmfEvent {
                    digit: "7".to_owned(),
                    leg: "1".to_owned(),
                    offset_ms: 10,
                    duration_ms: 100,
                    source: "info".to_owned(),
                },
            )
            .await
            .unwrap();

        let keys = |value: &serde_json::Value| -> BTreeSet<String> {
            value.as_object().unwrap().keys().cloned().collect()
        };
        let set = |names: &[&str]| {
            names
                .iter()
                .map(|n| (*n).to_owned())
                .collect::<BTreeSet<_>>()
        };

        let active = serde_json::to_value(get(catalog, "json").await).unwrap();
        assert_eq!(
            keys(&active),
            set(&[
                "id",
                "session_id",
                "ingress_call_id",
                "egress_call_id",
                "from",
                "to",
                "started_at",
                "ended_at",
                "duration_ms",
                "state",
                "end_reason",
                "participants",
                "legs",
                "dtmf",
                "correlation_ids",
                "warnings",
                "metadata_revisions",
                "associations",
                "source_address",
                "transport",
            ])
        );
        assert_eq!(active["started_at"], "2026-11-30T10:00:00.5Z");
        assert_eq!(active["ended_at"], serde_json::Value::Null);
        assert_eq!(active["state"], "active");
        assert_eq!(
            keys(&active["participants"][0]),
            set(&["id", "aor", "name"])
        );
        assert_eq!(
            keys(&active["legs"][0]),
            set(&[
                "label",
                "participant",
                "binding_rule",
                "codec",
                "sample_rate",
                "path",
                "packets",
                "lost",
                "duplicates",
                "out_of_order",
                "late",
                "sha256",
                "added_at_ms",
                "jitter_ms",
                "gaps_filled_ms",
                "ssrcs_seen",
                "codec_changes",
                "unknown_payload",
                "rtcp_packets",
            ])
        );
        assert_eq!(active["legs"][0]["jitter_ms"], serde_json::Value::Null);
        assert_eq!(
            keys(&active["associations"][0]),
            set(&["participant", "leg", "from_ms", "to_ms"])
        );
        assert_eq!(active["associations"][0]["to_ms"], serde_json::Value::Null);
        assert_eq!(
            keys(&active["dtmf"][0]),
            set(&["digit", "leg", "offset_ms", "duration_ms", "source"])
        );
        assert_eq!(keys(&active["correlation_ids"][0]), set(&["kind", "value"]));

        catalog
            .complete_recording(&completion("json", "1", 1, "ff"))
            .await
            .unwrap();
        let complete = get(catalog, "json").await;
        let value = serde_json::to_value(&complete).unwrap();
        assert_eq!(value["ended_at"], "2026-11-30T10:05:00.25Z");
        assert_eq!(value["state"], "complete");
        assert_eq!(value["legs"][0]["jitter_ms"], 0.0);
        // And the JSON reads back into the same value (scripts post it back, tests compare).
        let back: Recording = serde_json::from_value(value).unwrap();
        assert_eq!(back, complete);
    }

    async fn quality_figures_and_added_at_round_trip(catalog: &Catalog) {
        let mut rec = new_recording("q", datetime!(2026-11-30 10:00 UTC));
        rec.legs = vec![leg("1", Some("p1")), leg("2", None)];
        catalog.insert_recording(&rec).await.unwrap();
        let mut late = leg("3", None);
        late.added_at_ms = 12_345;
        catalog.add_legs("q", &[late]).await.unwrap();

        let stored = get(catalog, "q").await;
        let added: Vec<_> = stored.legs.iter().map(|l| l.added_at_ms).collect();
        assert_eq!(added, [0, 0, 12_345]);
        assert!(stored.legs.iter().all(|l| l.jitter_ms.is_none()));

        let figures = |label: &str, jitter_ms: f64, base: i64| LegCompletion {
            label: label.to_owned(),
            packets: 100,
            jitter_ms,
            gaps_filled_ms: base + 1,
            ssrcs_seen: base + 2,
            codec_changes: base + 3,
            unknown_payload: base + 4,
            rtcp_packets: base + 5,
            ..LegCompletion::default()
        };
        let done = Completion {
            legs: vec![
                figures("1", 3.25, 10),
                figures("2", f64::NAN, 20),
                figures("3", 0.125, 30),
            ],
            ..completion("q", "1", 0, "")
        };
        catalog.complete_recording(&done).await.unwrap();
        let stored = get(catalog, "q").await;
        let got: Vec<_> = stored
            .legs
            .iter()
            .map(|l| {
                (
                    l.jitter_ms,
                    l.gaps_filled_ms,
                    l.ssrcs_seen,
                    l.codec_changes,
                    l.unknown_payload,
                    l.rtcp_packets,
                    l.added_at_ms,
                    l.packets,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some(3.25), 11, 12, 13, 14, 15, 0, 100),
                // A non-finite jitter is stored as unknown.
                (None, 21, 22, 23, 24, 25, 0, 100),
                (Some(0.125), 31, 32, 33, 34, 35, 12_345, 100),
            ]
        );
    }

    async fn complete_accepts_every_end_state_and_reason(catalog: &Catalog) {
        let cases = [
            (RecordingState::Complete, "bye"),
            (RecordingState::Failed, "rtp-timeout"),
            (RecordingState::Interrupted, "session-expired"),
            (RecordingState::Interrupted, "shutdown"),
            (RecordingState::Failed, "some vendor's own reason ✓"),
        ];
        for (n, (state, reason)) in cases.into_iter().enumerate() {
            let id = format!("end-{n}");
            catalog
                .insert_recording(&new_recording(&id, datetime!(2026-11-30 10:00 UTC)))
                .await
                .unwrap();
            let mut done = completion(&id, "1", 1, "aa");
            done.state = state;
            done.end_reason = reason.to_owned();
            catalog.complete_recording(&done).await.unwrap();
            let stored = get(catalog, &id).await;
            assert_eq!(
                (stored.state, stored.end_reason.as_deref()),
                (state, Some(reason))
            );
        }
    }

    async fn associations_follow_join_transfer_and_leave(catalog: &Catalog) {
        let mut rec = new_recording("assoc", datetime!(2026-11-30 10:00 UTC));
        rec.legs = vec![leg("1", Some("p1")), leg("2", Some("p2")), leg("3", None)];
        catalog.insert_recording(&rec).await.unwrap();
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(p, l)| ((*p).to_owned(), (*l).to_owned()))
                .collect()
        };
        let assoc = |participant: &str, leg: &str, from_ms, to_ms| Association {
            participant: participant.to_owned(),
            leg: leg.to_owned(),
            from_ms,
            to_ms,
        };
        assert_eq!(
            get(catalog, "assoc").await.associations,
            [assoc("p1", "1", 0, None), assoc("p2", "2", 0, None)]
        );

        // Revision 2, join: p3 comes in on leg 3 (repeated pairs count once).
        catalog
            .set_associations(
                "assoc",
                1_000,
                2,
                &pairs(&[("p1", "1"), ("p2", "2"), ("p3", "3"), ("p3", "3")]),
            )
            .await
            .unwrap();
        // Revision 3, transfer: p2 leaves leg 2, p4 takes it over.
        catalog
            .set_associations(
                "assoc",
                2_000,
                3,
                &pairs(&[("p3", "3"), ("p4", "2"), ("p1", "1")]),
            )
            .await
            .unwrap();
        // Revision 4, leave: p3 hangs up.
        catalog
            .set_associations("assoc", 3_000, 4, &pairs(&[("p1", "1"), ("p4", "2")]))
            .await
            .unwrap();
        let expected = [
            assoc("p1", "1", 0, None),
            assoc("p2", "2", 0, Some(2_000)),
            assoc("p3", "3", 1_000, Some(3_000)),
            assoc("p4", "2", 2_000, None),
        ];
        assert_eq!(get(catalog, "assoc").await.associations, expected);

        // The same state again changes nothing; rejoining opens a new association.
        catalog
            .set_associations("assoc", 3_500, 5, &pairs(&[("p1", "1"), ("p4", "2")]))
            .await
            .unwrap();
        assert_eq!(get(catalog, "assoc").await.associations, expected);
        catalog
            .set_associations("assoc", 4_000, 6, &pairs(&[("p4", "2"), ("p2", "2")]))
            .await
            .unwrap();
        let stored = get(catalog, "assoc").await.associations;
        assert_eq!(stored.len(), 5);
        assert_eq!(stored[0], assoc("p1", "1", 0, Some(4_000)));
        assert_eq!(stored[4], assoc("p2", "2", 4_000, None));
        // Stored revisions: 0 for the initial offer without metadata, then as given.
        let revisions = raw_i64s(
            catalog,
            "SELECT revision FROM participant_associations WHERE recording_id = 'assoc' \
             ORDER BY seq",
        )
        .await;
        assert_eq!(revisions, [0, 0, 2, 3, 6]);

        let err = catalog
            .set_associations("nope", 0, 1, &pairs(&[("p1", "1")]))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }

    /// The first column of every row of a raw query, as integers.
    async fn raw_i64s(catalog: &Catalog, sql: &str) -> Vec<i64> {
        let mut tx = catalog.pool.begin_read().await.unwrap();
        let rows = tx.fetch_all(sql, &[]).await.unwrap();
        tx.commit().await.unwrap();
        rows.iter()
            .map(|row| match row {
                DbRow::Sqlite(row) => sqlx::Row::get(row, 0),
                DbRow::Postgres(row) => sqlx::Row::get(row, 0),
            })
            .collect()
    }

    fn digits(s: &str) -> ListQuery {
        ListQuery {
            digits: Some(s.to_owned()),
            ..ListQuery::default()
        }
    }

    async fn listed(catalog: &Catalog, query: &ListQuery) -> Vec<String> {
        let mut ids: Vec<_> = catalog
            .list_recordings(query)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    }

    async fn digits_search_in_offset_order_across_legs(catalog: &Catalog) {
        for id in ["d1", "d2", "d3"] {
            let mut rec = new_recording(id, datetime!(2026-11-30 10:00 UTC));
            rec.legs = vec![leg("a", None), leg("b", None)];
            catalog.insert_recording(&rec).await.unwrap();
        }
        let event = |digit: &str, leg: &str, offset_ms| DtmfEvent {
            digit: digit.to_owned(),
            leg: leg.to_owned(),
            offset_ms,
            duration_ms: 80,
            source: "rfc4733".to_owned(),
        };
        // d1, reported out of order on two legs: by offset the digits are "9#15".
        for e in [
            event("1", "a", 300),
            event("9", "b", 100),
            event("5", "b", 400),
            event("#", "a", 200),
        ] {
            catalog.add_dtmf("d1", &e).await.unwrap();
        }
        // d2: "*A!" (a lowercase letter is stored uppercased for the search).
        for e in [event("*", "a", 0), event("a", "b", 5), event("!", "a", 9)] {
            catalog.add_dtmf("d2", &e).await.unwrap();
        }
        // d3 has no digits.

        assert_eq!(listed(catalog, &digits("9#15")).await, ["d1"]);
        assert_eq!(listed(catalog, &digits("#1")).await, ["d1"]);
        assert_eq!(listed(catalog, &digits("5")).await, ["d1"]);
        // Arrival order ("19…") and non-adjacent digits do not match.
        assert!(listed(catalog, &digits("19")).await.is_empty());
        assert!(listed(catalog, &digits("95")).await.is_empty());
        assert_eq!(listed(catalog, &digits("A!")).await, ["d2"]);
        assert_eq!(listed(catalog, &digits("*")).await, ["d2"]);
        assert!(listed(catalog, &digits("0")).await.is_empty());
        assert_eq!(listed(catalog, &digits("")).await, ["d1", "d2", "d3"]);

        for bad in ["%", "_", "1%", "a", "12 ", "E", "\\", "x'--"] {
            let err = catalog.list_recordings(&digits(bad)).await.unwrap_err();
            assert!(
                matches!(err, Error::InvalidQuery { .. }),
                "{bad:?}: {err:?}"
            );
        }

        // The LIKE escaping itself, on the engine: an escaped '_' and '%' match only themselves.
        let mut tx = catalog.pool.begin_read().await.unwrap();
        for (text, expected) in [("_", 0), ("%", 0), ("9#", 1), ("\\", 0)] {
            let pattern = like_contains(text);
            let count = tx
                .fetch_i64(
                    "SELECT COUNT(*) FROM recordings WHERE dtmf_digits LIKE $1 ESCAPE '\\'",
                    &[Arg::Text(&pattern)],
                )
                .await
                .unwrap();
            assert_eq!(count, expected, "{text:?} as {pattern:?}");
        }
        tx.commit().await.unwrap();
    }

    async fn list_filters_by_state_and_call_id(catalog: &Catalog) {
        for id in ["s1", "s2", "s3"] {
            let mut rec = new_recording(id, datetime!(2026-11-30 10:00 UTC));
            if id == "s2" {
                rec.egress_call_id = Some("shared@callvault".to_owned());
            }
            if id == "s3" {
                rec.ingress_call_id = "shared@callvault".to_owned();
            }
            catalog.insert_recording(&rec).await.unwrap();
        }
        catalog
            .complete_recording(&completion("s1", "1", 1, "aa"))
            .await
            .unwrap();
        catalog
            .add_dtmf(
                "s3",
                &DtmfEvent {
                    digit: "7".to_owned(),
                    leg: "1".to_owned(),
                    offset_ms: 1,
                    duration_ms: 80,
                    source: "info".to_owned(),
                },
            )
            .await
            .unwrap();
        let query = |state: Option<RecordingState>, call_id: Option<&str>| ListQuery {
            state,
            call_id: call_id.map(str::to_owned),
            ..ListQuery::default()
        };
        assert_eq!(
            listed(catalog, &query(Some(RecordingState::Active), None)).await,
            ["s2", "s3"]
        );
        assert_eq!(
            listed(catalog, &query(Some(RecordingState::Complete), None)).await,
            ["s1"]
        );
        assert!(
            listed(catalog, &query(Some(RecordingState::Failed), None))
                .await
                .is_empty()
        );
        // Ingress or egress, exactly.
        assert_eq!(
            listed(catalog, &query(None, Some("shared@callvault"))).await,
            ["s2", "s3"]
        );
        assert_eq!(
            listed(catalog, &query(None, Some("ingress-s1@src.example"))).await,
            ["s1"]
        );
        assert!(
            listed(catalog, &query(None, Some("shared@")))
                .await
                .is_empty()
        );
        // Filters combine, and paging applies after filtering.
        assert_eq!(
            listed(
                catalog,
                &query(Some(RecordingState::Complete), Some("shared@callvault"))
            )
            .await,
            Vec::<String>::new()
        );
        let mut combined = query(Some(RecordingState::Active), Some("shared@callvault"));
        combined.digits = Some("7".to_owned());
        assert_eq!(listed(catalog, &combined).await, ["s3"]);
        combined.digits = None;
        combined.limit = 1;
        combined.offset = 1;
        assert_eq!(listed(catalog, &combined).await, ["s2"]);
    }

    async fn metadata_revisions_read_back_in_order(catalog: &Catalog) {
        let mut rec = new_recording("mr", datetime!(2026-11-30 10:00 UTC));
        rec.metadata = Some(NewMetadataRevision {
            received_at: datetime!(2026-11-30 10:00:00.001 UTC),
            datamode: Some("complete".to_owned()),
            raw_xml: "<recording n='1'/>".to_owned(),
            participants: Vec::new(),
        });
        catalog.insert_recording(&rec).await.unwrap();
        for (n, datamode) in [(2, Some("partial")), (3, None)] {
            let rev = NewMetadataRevision {
                received_at: datetime!(2026-11-30 10:00 UTC) + time::Duration::seconds(n),
                datamode: datamode.map(str::to_owned),
                raw_xml: format!("<recording n='{n}'/>"),
                participants: Vec::new(),
            };
            catalog.add_metadata_revision("mr", &rev).await.unwrap();
        }
        let revisions = catalog.metadata_revisions("mr").await.unwrap();
        assert_eq!(
            revisions,
            [
                MetadataRevision {
                    number: 1,
                    received_at: datetime!(2026-11-30 10:00:00.001 UTC),
                    datamode: Some("complete".to_owned()),
                    raw_xml: "<recording n='1'/>".to_owned(),
                },
                MetadataRevision {
                    number: 2,
                    received_at: datetime!(2026-11-30 10:00:02 UTC),
                    datamode: Some("partial".to_owned()),
                    raw_xml: "<recording n='2'/>".to_owned(),
                },
                MetadataRevision {
                    number: 3,
                    received_at: datetime!(2026-11-30 10:00:03 UTC),
                    datamode: None,
                    raw_xml: "<recording n='3'/>".to_owned(),
                },
            ]
        );
        assert_eq!(get(catalog, "mr").await.metadata_revisions, 3);
        let json = serde_json::to_value(&revisions[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "number": 1,
                "received_at": "2026-11-30T10:00:00.001Z",
                "datamode": "complete",
                "raw_xml": "<recording n='1'/>",
            })
        );

        catalog
            .insert_recording(&new_recording("none", datetime!(2026-11-30 10:00 UTC)))
            .await
            .unwrap();
        assert!(catalog.metadata_revisions("none").await.unwrap().is_empty());
        let err = catalog.metadata_revisions("nope").await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }

    async fn concurrent_writers_all_land(catalog: &Catalog) {
        catalog
            .insert_recording(&new_recording("shared", datetime!(2026-11-30 10:00 UTC)))
            .await
            .unwrap();
        // Many sessions write at once, several to the same recording: none may fail with
        // "database is locked" (SQLite) or a duplicate `seq` (PostgreSQL).
        let tasks: Vec<_> = (0..16_i64)
            .map(|n| {
                let catalog = catalog.clone();
                tokio::spawn(async move {
                    let id = format!("call-{n}");
                    catalog
                        .insert_recording(&new_recording(&id, datetime!(2026-11-30 10:00 UTC)))
                        .await
                        .unwrap();
                    for offset_ms in 0..3 {
                        let event = DtmfEvent {
                            digit: n.to_string(),
                            leg: "1".to_owned(),
                            offset_ms: n * 10 + offset_ms,
                            duration_ms: 80,
                            source: "rfc4733".to_owned(),
                        };
                        catalog.add_dtmf("shared", &event).await.unwrap();
                        catalog.add_dtmf(&id, &event).await.unwrap();
                    }
                    catalog
                        .add_legs("shared", &[leg(&format!("extra-{n}"), None)])
                        .await
                        .unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let shared = get(catalog, "shared").await;
        assert_eq!(shared.dtmf.len(), 48);
        assert!(shared.dtmf.is_sorted_by_key(|e| e.offset_ms));
        assert_eq!(shared.legs.len(), 17);
        assert_eq!(get(catalog, "call-7").await.dtmf.len(), 3);
    }

    /// Runs an async scenario on a fresh SQLite catalog.
    macro_rules! sqlite_tests {
        ($($scenario:ident),* $(,)?) => {
            mod on_sqlite {
                $(
                    #[tokio::test]
                    async fn $scenario() {
                        let db = super::sqlite().await;
                        super::$scenario(&db.catalog).await;
                        db.catalog.close().await;
                    }
                )*
            }
        };
    }

    sqlite_tests!(
        insert_then_get_round_trips_every_field,
        insert_of_a_known_id_is_already_exists_and_changes_nothing,
        list_is_newest_first_and_pages,
        complete_updates_state_counts_and_digests_once,
        mark_interrupted_only_touches_active,
        metadata_revisions_are_counted_and_add_participants,
        legs_and_dtmf_added_mid_call,
        json_has_exactly_the_contract_fields,
        quality_figures_and_added_at_round_trip,
        complete_accepts_every_end_state_and_reason,
        associations_follow_join_transfer_and_leave,
        digits_search_in_offset_order_across_legs,
        list_filters_by_state_and_call_id,
        metadata_revisions_read_back_in_order,
        concurrent_writers_all_land,
    );

    /// Runs an async scenario on a fresh PostgreSQL database, created on the server named by
    /// `CALLVAULT_TEST_POSTGRES_URL` and dropped afterwards; skipped (with a note) when unset.
    macro_rules! postgres_tests {
        ($($scenario:ident),* $(,)?) => {
            mod on_postgres {
                $(
                    #[tokio::test]
                    async fn $scenario() {
                        let Some(db) = super::PostgresDb::create().await else {
                            return;
                        };
                        let catalog = Catalog::open(&db.url).await.unwrap();
                        super::$scenario(&catalog).await;
                        catalog.close().await;
                        // Opening again finds the schema current and changes nothing.
                        Catalog::open(&db.url).await.unwrap().close().await;
                        db.drop().await;
                    }
                )*
                use super::super::Catalog;
            }
        };
    }

    postgres_tests!(
        insert_then_get_round_trips_every_field,
        insert_of_a_known_id_is_already_exists_and_changes_nothing,
        list_is_newest_first_and_pages,
        complete_updates_state_counts_and_digests_once,
        mark_interrupted_only_touches_active,
        metadata_revisions_are_counted_and_add_participants,
        legs_and_dtmf_added_mid_call,
        json_has_exactly_the_contract_fields,
        quality_figures_and_added_at_round_trip,
        complete_accepts_every_end_state_and_reason,
        associations_follow_join_transfer_and_leave,
        digits_search_in_offset_order_across_legs,
        list_filters_by_state_and_call_id,
        metadata_revisions_read_back_in_order,
        concurrent_writers_all_land,
    );

    /// A throwaway database on the test PostgreSQL server.
    struct PostgresDb {
        admin_url: String,
        name: String,
        url: String,
    }

    impl PostgresDb {
        const ENV: &str = "CALLVAULT_TEST_POSTGRES_URL";

        async fn create() -> Option<PostgresDb> {
            let Ok(admin_url) = std::env::var(Self::ENV) else {
                // The project's test command always provides a server; only a bare
                // `cargo test` may skip, and never silently in CI.
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{} is not set: CI must run the PostgreSQL catalog tests (use ./scripts/test)",
                    Self::ENV
                );
                eprintln!(
                    "skipped: set {} to run the PostgreSQL catalog tests",
                    Self::ENV
                );
                return None;
            };
            let name = format!("callvault_test_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            let url = with_database(&admin_url, &name);
            Some(PostgresDb {
                admin_url,
                name,
                url,
            })
        }

        async fn drop(self) {
            let admin = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
            sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        }
    }

    /// `url` with its database (path) replaced by `name`, keeping any `?query`.
    fn with_database(url: &str, name: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let authority_start = base.find("://").map_or(0, |i| i + 3);
        let base = match base[authority_start..].find('/') {
            Some(slash) => &base[..authority_start + slash],
            None => base,
        };
        match query {
            Some(query) => format!("{base}/{name}?{query}"),
            None => format!("{base}/{name}"),
        }
    }

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
    }

    /// Creates, at `url`, a catalog as a version-1 build left it: only the first migration,
    /// applied by sqlx's migrator from a folder holding just that file (so `_sqlx_migrations`
    /// records it exactly as in the field), then rows written with version 1's columns only.
    async fn create_version_1_catalog(url: &str) {
        let engine = if url.starts_with("sqlite:") {
            "sqlite"
        } else {
            "postgres"
        };
        let name = "20261130000001_initial.sql";
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(engine)
                .join(name),
            dir.path().join(name),
        )
        .unwrap();
        let migrator = sqlx::migrate::Migrator::new(dir.path().to_path_buf())
            .await
            .unwrap();
        let rows = [
            "INSERT INTO recordings (id, session_id, ingress_call_id, from_uri, to_uri, \
             started_at, ended_at, duration_ms, state, end_reason, source_address, transport) \
             VALUES ('old', 's', 'old@src', 'f', 't', 1796030553000, 1796030563000, 10000, \
             'complete', 'bye', '192.0.2.1:5060', 'udp')",
            "INSERT INTO recordings (id, session_id, ingress_call_id, from_uri, to_uri, \
             started_at, state, source_address, transport) \
             VALUES ('quiet', 's2', 'quiet@src', 'f', 't', 1796030553000, 'active', \
             '192.0.2.1:5060', 'udp')",
            "INSERT INTO participants (recording_id, id, position, aor) \
             VALUES ('old', 'p1', 0, 'sip:alice@example.com')",
            "INSERT INTO legs (recording_id, label, position, participant_id, binding_rule, \
             codec, sample_rate, path, packets, lost, samples, sha256) \
             VALUES ('old', '1', 0, 'p1', 'metadata', 'PCMA', 8000, 'a.wav', 500, 2, 80000, 'ab')",
            "INSERT INTO legs (recording_id, label, position, binding_rule, codec, sample_rate, \
             path) VALUES ('old', '2', 1, 'label order', 'PCMU', 8000, 'b.wav')",
            "INSERT INTO metadata_revisions (recording_id, revision, received_at, raw_xml) \
             VALUES ('old', 1, 1796030553000, '<recording/>')",
            "INSERT INTO dtmf_events (recording_id, seq, digit, leg_label, offset_ms, \
             duration_ms, source) VALUES ('old', 0, '3', '1', 200, 80, 'rfc4733')",
            "INSERT INTO dtmf_events (recording_id, seq, digit, leg_label, offset_ms, \
             duration_ms, source) VALUES ('old', 1, '2', '2', 100, 80, 'rfc4733')",
        ];
        if engine == "sqlite" {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            migrator.run(&pool).await.unwrap();
            for sql in rows {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            for sql in rows {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
    }

    /// Opens a version-1 catalog made by [`create_version_1_catalog`]: the migration to
    /// version 2 runs and the old rows read back with the defaults.
    async fn version_1_rows_read_back_after_migration(url: &str) {
        create_version_1_catalog(url).await;
        let catalog = Catalog::open(url).await.unwrap();
        assert_eq!(
            raw_i64s(
                &catalog,
                "SELECT version FROM _sqlx_migrations ORDER BY version"
            )
            .await,
            [20261130000001, 20261130000002]
        );
        let old = get(&catalog, "old").await;
        assert_eq!(old.state, RecordingState::Complete);
        assert_eq!(old.end_reason.as_deref(), Some("bye"));
        assert_eq!(old.metadata_revisions, 1);
        let legs: Vec<_> = old
            .legs
            .iter()
            .map(|l| {
                (
                    l.label.as_str(),
                    l.packets,
                    l.lost,
                    l.sha256.as_deref(),
                    l.added_at_ms,
                    l.jitter_ms,
                    (l.gaps_filled_ms, l.ssrcs_seen, l.codec_changes),
                    (l.unknown_payload, l.rtcp_packets),
                )
            })
            .collect();
        assert_eq!(
            legs,
            [
                ("1", 500, 2, Some("ab"), 0, None, (0, 0, 0), (0, 0)),
                ("2", 0, 0, None, 0, None, (0, 0, 0), (0, 0)),
            ]
        );
        // The leg's participant became an association from the start.
        assert_eq!(
            old.associations,
            [Association {
                participant: "p1".to_owned(),
                leg: "1".to_owned(),
                from_ms: 0,
                to_ms: None,
            }]
        );
        assert_eq!(
            catalog.metadata_revisions("old").await.unwrap()[0].raw_xml,
            "<recording/>"
        );
        assert!(get(&catalog, "quiet").await.associations.is_empty());
        // The digits of old rows were computed in offset order on open.
        assert_eq!(listed(&catalog, &digits("23")).await, ["old"]);
        assert_eq!(listed(&catalog, &digits("")).await, ["old", "quiet"]);
        // And the new code keeps writing to them.
        catalog
            .add_dtmf(
                "old",
                &DtmfEvent {
                    digit: "4".to_owned(),
                    leg: "1".to_owned(),
                    offset_ms: 300,
                    duration_ms: 80,
                    source: "info".to_owned(),
                },
            )
            .await
            .unwrap();
        assert_eq!(listed(&catalog, &digits("234")).await, ["old"]);
        catalog.close().await;
        // Opening again migrates nothing and finds nothing to backfill.
        let again = Catalog::open(url).await.unwrap();
        assert_eq!(listed(&again, &digits("234")).await, ["old"]);
        again.close().await;
    }

    #[tokio::test]
    async fn sqlite_version_1_database_migrates_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        version_1_rows_read_back_after_migration(&Catalog::sqlite_url(dir.path())).await;
    }

    #[tokio::test]
    async fn postgres_version_1_database_migrates_with_defaults() {
        let Some(db) = PostgresDb::create().await else {
            return;
        };
        version_1_rows_read_back_after_migration(&db.url).await;
        db.drop().await;
    }

    #[test]
    fn like_contains_escapes_the_wildcards_and_the_escape() {
        assert_eq!(like_contains("12#"), "%12#%");
        assert_eq!(like_contains("5%_\\"), "%5\\%\\_\\\\%");
        assert_eq!(like_contains(""), "%%");
        assert_eq!(
            digits_pattern("0123456789*#ABCD!").unwrap(),
            "%0123456789*#ABCD!%"
        );
        for bad in ["abcd", "%", "_", " ", "E", "1\\"] {
            assert!(
                matches!(digits_pattern(bad), Err(Error::InvalidQuery { .. })),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn reopening_keeps_rows_and_does_not_migrate_twice() {
        let dir = tempfile::tempdir().unwrap();
        let url = Catalog::sqlite_url(dir.path());
        let first = Catalog::open(&url).await.unwrap();
        first
            .insert_recording(&new_recording("kept", datetime!(2026-11-30 10:00 UTC)))
            .await
            .unwrap();
        first.close().await;

        let second = Catalog::open(&url).await.unwrap();
        assert_eq!(get(&second, "kept").await.state, RecordingState::Active);
        // The crash-recovery path: the earlier run's live call is now interrupted.
        assert_eq!(second.mark_interrupted().await.unwrap(), 1);
        let Pool::Sqlite(pool) = &second.pool else {
            unreachable!("opened from a sqlite URL")
        };
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(applied, 2);
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(foreign_keys, 1);
        second.close().await;
    }

    #[tokio::test]
    async fn sqlite_url_survives_awkward_folder_names() {
        assert_eq!(
            Catalog::sqlite_url(Path::new("/var/lib/callvault")),
            "sqlite:///var/lib/callvault/callvault.db"
        );
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data ?#%41 dir");
        std::fs::create_dir(&data).unwrap();
        let catalog = Catalog::open(&Catalog::sqlite_url(&data)).await.unwrap();
        catalog.close().await;
        assert!(data.join(SQLITE_FILE_NAME).is_file());
    }

    #[tokio::test]
    async fn in_memory_sqlite_keeps_its_rows_across_connections() {
        let catalog = Catalog::open("sqlite::memory:").await.unwrap();
        catalog
            .insert_recording(&new_recording("mem", datetime!(2026-11-30 10:00 UTC)))
            .await
            .unwrap();
        // Several statements in parallel use several pool connections.
        let reads = (0..4).map(|_| {
            let catalog = catalog.clone();
            async move { catalog.get_recording("mem").await }
        });
        for read in futures_join_all(reads).await {
            assert!(read.unwrap().is_some());
        }
        catalog.close().await;
    }

    /// Polls futures concurrently without a futures-util dependency.
    async fn futures_join_all<F: std::future::Future + Send + 'static>(
        futures: impl Iterator<Item = F>,
    ) -> Vec<F::Output>
    where
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut outputs = Vec::new();
        for handle in handles {
            outputs.push(handle.await.unwrap());
        }
        outputs
    }

    #[tokio::test]
    async fn bad_urls_are_errors() {
        for url in [
            "",
            "mysql://db/callvault",
            "/var/lib/callvault/callvault.db",
        ] {
            let err = Catalog::open(url).await.unwrap_err();
            assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err:?}");
        }
        let err = Catalog::open("sqlite:///tmp/x.db?journal=nope")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
        let err = Catalog::open("postgres://vault:secret@db.example:notaport/callvault")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");

        // The data dir is the caller's to create: a missing one is reported, not created.
        let dir = tempfile::tempdir().unwrap();
        let err = Catalog::open(&Catalog::sqlite_url(&dir.path().join("missing")))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Database { .. }), "{err:?}");
    }

    #[test]
    fn sqlite_and_postgres_migrations_have_the_same_shape() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let read = |engine: &str| {
            let mut files: Vec<_> = std::fs::read_dir(dir.join(engine))
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .collect();
            files.sort();
            files
                .iter()
                .map(|path| {
                    let sql: String = std::fs::read_to_string(path)
                        .unwrap()
                        .lines()
                        .filter(|line| !line.trim_start().starts_with("--"))
                        .collect::<Vec<_>>()
                        .join("\n");
                    (path.file_name().unwrap().to_owned(), sql)
                })
                .collect::<Vec<_>>()
        };
        let sqlite = read("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, read("postgres"));
    }
}
