//! What the recorder writes while a call runs: the recording's start, streams, digits and
//! metadata added mid-call, who is on which leg, and its end. Every write can be replayed (see
//! the crate's notes).

use std::collections::HashSet;

use callvault_types::LegCounters;

use super::{Catalog, counters_json, lock_recording};
use crate::db::{Arg, Tx};
use crate::error::{Error, Result};
use crate::model::{
    Completion, DtmfEvent, NewLeg, NewMetadataRevision, NewParticipant, NewRecording, Pause,
    RecordingState, to_unix_ms,
};
use crate::scope::Scope;

impl Catalog {
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
                 node_id, tenant, mode, route) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', $11, $12, $13, $14)",
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
                    Arg::OptText(rec.tenant.as_deref()),
                    Arg::Text(rec.mode.as_str()),
                    Arg::OptText(rec.route.as_deref()),
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
            tx.run(
                "insert correlation id",
                "INSERT INTO correlation_ids (recording_id, kind, value, position) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (recording_id, kind, value) DO NOTHING",
                &[
                    Arg::Text(&rec.id),
                    Arg::Text(kind),
                    Arg::Text(value),
                    Arg::Int(position),
                ],
            )
            .await?;
        }
        for (position, message) in (0_i64..).zip(&rec.warnings) {
            tx.run(
                "insert recording warning",
                "INSERT INTO recording_warnings (recording_id, position, message) \
                 VALUES ($1, $2, $3)",
                &[Arg::Text(&rec.id), Arg::Int(position), Arg::Text(message)],
            )
            .await?;
        }
        tx.finish("commit new recording").await
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
        if lock_recording(&mut tx, &Scope::All, recording_id)
            .await?
            .deleted
        {
            return ignore_for_tombstone(tx, recording_id, "metadata revision").await;
        }
        insert_metadata_revision(&mut tx, recording_id, rev).await?;
        tx.finish("commit metadata revision").await
    }

    /// Adds streams that appeared mid-call, each at its [`NewLeg::position`] with its
    /// [`NewLeg::added_at_ms`]. A position the recording already has is left as it is (a
    /// replay, or a re-INVITE repeating the streams it keeps); a label it already has is a new
    /// leg. Opens no participant association: mid-call changes of who is on which leg go
    /// through [`Catalog::set_associations`].
    pub async fn add_legs(&self, recording_id: &str, legs: &[NewLeg]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if lock_recording(&mut tx, &Scope::All, recording_id)
            .await?
            .deleted
        {
            return ignore_for_tombstone(tx, recording_id, "legs").await;
        }
        insert_legs(&mut tx, recording_id, legs).await?;
        tx.finish("commit new legs").await
    }

    /// Stores one DTMF digit under its [`DtmfEvent::seq`], and in the same transaction
    /// recomputes the recording's `dtmf_digits` (all its digits in offset order, uppercased)
    /// that [`crate::ListQuery::digits`] searches, so a digit reported late lands in its place.
    /// A `seq` the recording already has changes nothing (a replay).
    pub async fn add_dtmf(&self, recording_id: &str, event: &DtmfEvent) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if lock_recording(&mut tx, &Scope::All, recording_id)
            .await?
            .deleted
        {
            return ignore_for_tombstone(tx, recording_id, "DTMF event").await;
        }
        let inserted = tx
            .run(
                "insert DTMF event",
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
            .await?;
        if inserted > 0 {
            refresh_dtmf_digits(&mut tx, recording_id).await?;
        }
        tx.finish("commit DTMF event").await
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
        if c.state == RecordingState::Deleted {
            return Err(Error::InvalidInput {
                field: "state",
                reason: "a completion cannot delete a recording".to_owned(),
            });
        }
        let mut tx = self.pool.begin().await?;
        if lock_recording(&mut tx, &Scope::All, &c.recording_id)
            .await?
            .deleted
        {
            return ignore_for_tombstone(tx, &c.recording_id, "completion").await;
        }
        tx.run(
            "complete recording",
            "UPDATE recordings SET state = $2, ended_at = $3, duration_ms = $4, \
                 end_reason = $5, final_status = COALESCE($6, final_status), \
                 hung_up_by = COALESCE($7, hung_up_by) WHERE id = $1",
            &[
                Arg::Text(&c.recording_id),
                Arg::Text(c.state.as_str()),
                Arg::Int(to_unix_ms(c.ended_at)),
                Arg::Int(c.duration_ms),
                Arg::Text(c.end_reason.as_str()),
                Arg::OptInt(c.final_status.map(i64::from)),
                Arg::OptText(c.hung_up_by.map(|p| p.as_str())),
            ],
        )
        .await?;
        for leg in &c.legs {
            let updated = tx
                .run(
                    "complete leg",
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
                .await?;
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
                    .run(
                        "add recording warning",
                        "INSERT INTO recording_warnings (recording_id, position, message) \
                         SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM recording_warnings \
                         WHERE recording_id = $1 AND message = $3)",
                        &[
                            Arg::Text(&c.recording_id),
                            Arg::Int(position),
                            Arg::Text(message),
                        ],
                    )
                    .await?;
                position += i64::try_from(added).expect("one INSERT adds at most one row");
            }
        }
        // A recording recorded after a legal matter was created is held by it from here on.
        super::matters::apply_matters(&mut tx, &c.recording_id, c.ended_at).await?;
        tx.finish("commit completion").await
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
        if lock_recording(&mut tx, &Scope::All, recording_id)
            .await?
            .deleted
        {
            return ignore_for_tombstone(tx, recording_id, "associations").await;
        }
        let rows = tx
            .rows(
                "read associations",
                "participant_associations",
                "SELECT seq, participant_id, leg_label, associated_at_ms, disassociated_at_ms \
                 FROM participant_associations WHERE recording_id = $1 ORDER BY seq",
                &[Arg::Text(recording_id)],
            )
            .await?;
        let mut stored = Vec::with_capacity(rows.len());
        for row in &rows {
            stored.push(StoredAssociation {
                seq: row.int("seq")?,
                participant: row.text("participant_id")?,
                leg: row.text("leg_label")?,
                from_ms: row.int("associated_at_ms")?,
                to_ms: row.opt_int("disassociated_at_ms")?,
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
            return tx.finish("end read").await;
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
                tx.run(
                    "remove association",
                    "DELETE FROM participant_associations WHERE recording_id = $1 AND seq = $2",
                    &[Arg::Text(recording_id), Arg::Int(a.seq)],
                )
                .await?;
            } else {
                tx.run(
                    "close association",
                    "UPDATE participant_associations SET disassociated_at_ms = $3 \
                     WHERE recording_id = $1 AND seq = $2",
                    &[Arg::Text(recording_id), Arg::Int(a.seq), Arg::Int(at_ms)],
                )
                .await?;
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
                tx.run(
                    "reopen association",
                    "UPDATE participant_associations SET disassociated_at_ms = NULL \
                     WHERE recording_id = $1 AND seq = $2",
                    &[Arg::Text(recording_id), Arg::Int(a.seq)],
                )
                .await?;
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
        tx.finish("commit associations").await
    }

    /// Stores a paused interval of a live recording under its [`Pause::seq`]: opened with
    /// `to_ms: None` when the pause starts, the same `seq` again with `to_ms` when it ends.
    /// Idempotent: a replay of the opening after the end keeps the end, a replay of the end
    /// changes nothing. An unknown recording is [`Error::NotFound`].
    pub async fn set_pause(&self, recording_id: &str, pause: &Pause) -> Result<()> {
        if pause.to_ms.is_some_and(|to| to < pause.from_ms) {
            return Err(Error::InvalidInput {
                field: "to_ms",
                reason: format!("{:?} ends before it starts", pause),
            });
        }
        let mut tx = self.pool.begin().await?;
        if lock_recording(&mut tx, &Scope::All, recording_id)
            .await?
            .deleted
        {
            return ignore_for_tombstone(tx, recording_id, "pause").await;
        }
        tx.run(
            "store pause",
            "INSERT INTO pauses (recording_id, seq, from_ms, to_ms, paused_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (recording_id, seq) DO UPDATE SET \
             to_ms = COALESCE(pauses.to_ms, excluded.to_ms)",
            &[
                Arg::Text(recording_id),
                Arg::Int(pause.seq),
                Arg::Int(pause.from_ms),
                Arg::OptInt(pause.to_ms),
                Arg::Text(&pause.by),
            ],
        )
        .await?;
        tx.finish("commit pause").await
    }
}

/// A recorder write for a tombstone: only a late replay can bring one (a recording still
/// being recorded cannot be deleted), and it must not bring back what was deleted.
async fn ignore_for_tombstone(tx: Tx, recording_id: &str, what: &'static str) -> Result<()> {
    tracing::debug!(recording_id, what, "write to a deleted recording ignored");
    tx.finish("end write").await
}

/// A `participant_associations` row, as `set_associations` compares it.
struct StoredAssociation {
    seq: i64,
    participant: String,
    leg: String,
    from_ms: i64,
    to_ms: Option<i64>,
}

/// Recomputes `recordings.dtmf_digits` from the recording's DTMF events, in offset order
/// (then arrival order), uppercased. Call with the recording locked.
pub(super) async fn refresh_dtmf_digits(tx: &mut Tx, recording_id: &str) -> Result<()> {
    let mut digits = String::new();
    for row in tx
        .rows(
            "read DTMF digits",
            "dtmf_events",
            "SELECT digit FROM dtmf_events WHERE recording_id = $1 ORDER BY offset_ms, seq",
            &[Arg::Text(recording_id)],
        )
        .await?
    {
        digits.push_str(&row.text("digit")?.to_ascii_uppercase());
    }
    tx.run(
        "store DTMF digits",
        "UPDATE recordings SET dtmf_digits = $2 WHERE id = $1",
        &[Arg::Text(recording_id), Arg::Text(&digits)],
    )
    .await?;
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
    tx.run(
        "open association",
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
    .await?;
    Ok(())
}

/// The position after the last child row of a recording in `table` (which has a `position`).
async fn next_position(tx: &mut Tx, table: &'static str, recording_id: &str) -> Result<i64> {
    let sql = format!("SELECT COALESCE(MAX(position) + 1, 0) FROM {table} WHERE recording_id = $1");
    tx.count("number child rows", &sql, &[Arg::Text(recording_id)])
        .await
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
        tx.run(
            "upsert participant",
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
        .await?;
    }
    Ok(())
}

async fn insert_legs(tx: &mut Tx, recording_id: &str, legs: &[NewLeg]) -> Result<()> {
    // Zero counters until completion, so that NULL means only "a leg of version 1-2 not yet
    // converted" (see `Catalog::backfill_leg_counters`).
    let zero = counters_json(&LegCounters::default());
    for leg in legs {
        tx.run(
            "insert leg",
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
        .await?;
    }
    Ok(())
}

async fn insert_metadata_revision(
    tx: &mut Tx,
    recording_id: &str,
    rev: &NewMetadataRevision,
) -> Result<()> {
    let inserted = tx
        .run(
            "insert metadata revision",
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
        .await?;
    if inserted == 0 {
        // A replay: its participants were merged when it was first stored, and merging them
        // again could undo what a later revision changed.
        return Ok(());
    }
    upsert_participants(tx, recording_id, &rev.participants).await
}

#[cfg(test)]
mod tests;
