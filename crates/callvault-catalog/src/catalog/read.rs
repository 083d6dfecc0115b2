//! Recordings read back: one, a page, a node's active ones, and their metadata documents.
//! Every read runs in one snapshot and costs a fixed number of queries: the recordings, then
//! each child table once for all of them (`WHERE recording_id IN (…)`).

use std::collections::HashMap;

use callvault_types::LegCounters;

use super::Catalog;
use crate::db::{Arg, Row, Tx};
use crate::error::{Error, Result};
use crate::model::{
    Association, CorrelationId, DtmfEvent, Leg, ListQuery, MetadataRevision, Participant,
    Recording, RecordingState,
};
use crate::sql::{Conditions, digits_pattern, placeholders};

impl Catalog {
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
            .rows(
                "find active recordings",
                "recordings",
                &sql,
                &[
                    Arg::Text(RecordingState::Active.as_str()),
                    Arg::Text(node_id),
                ],
            )
            .await?;
        let mut recordings = Vec::with_capacity(rows.len());
        // A page's worth at a time: the children are read with one bind per recording.
        for chunk in rows.chunks(usize::try_from(ListQuery::MAX_LIMIT).expect("small constant")) {
            recordings.extend(load_recordings(&mut tx, chunk).await?);
        }
        tx.finish("end read").await?;
        Ok(recordings)
    }

    /// The metadata documents of a recording, oldest (number 1) first; empty when none came.
    /// An unknown recording is [`Error::NotFound`].
    pub async fn metadata_revisions(&self, recording_id: &str) -> Result<Vec<MetadataRevision>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "read metadata revisions",
                "metadata_revisions",
                "SELECT revision, received_at, datamode, raw_xml FROM metadata_revisions \
                 WHERE recording_id = $1 ORDER BY revision",
                &[Arg::Text(recording_id)],
            )
            .await?;
        if rows.is_empty() {
            let exists = tx
                .count(
                    "find recording",
                    "SELECT COUNT(*) FROM recordings WHERE id = $1",
                    &[Arg::Text(recording_id)],
                )
                .await?;
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
                    number: row.int("revision")?,
                    received_at: row.time("received_at")?,
                    datamode: row.opt_text("datamode")?,
                    raw_xml: row.text("raw_xml")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        tx.finish("end read").await?;
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
        let mut filter = Conditions::default();
        if let Some(pattern) = &digits_pattern {
            let p = filter.bind(Arg::Text(pattern));
            filter.and(format!("dtmf_digits LIKE {p} ESCAPE '\\'"));
        }
        if let Some(state) = query.state {
            state_condition(&mut filter, state);
        }
        if let Some(call_id) = &query.call_id {
            let p = filter.bind(Arg::Text(call_id));
            filter.and(format!("(ingress_call_id = {p} OR egress_call_id = {p})"));
        }
        let mut args = filter.args().to_vec();
        args.push(Arg::Int(limit));
        args.push(Arg::Int(offset));
        let sql = format!(
            "{RECORDING_SELECT}{} ORDER BY started_at DESC, id DESC LIMIT ${} OFFSET ${}",
            filter.where_clause(),
            args.len() - 1,
            args.len()
        );
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows("list recordings", "recordings", &sql, &args)
            .await?;
        let recordings = load_recordings(&mut tx, &rows).await?;
        tx.finish("end read").await?;
        Ok(recordings)
    }

    /// One recording with all its children, or `None` if the id is unknown.
    pub async fn get_recording(&self, id: &str) -> Result<Option<Recording>> {
        let mut tx = self.pool.begin_read().await?;
        let sql = format!("{RECORDING_SELECT} WHERE id = $1");
        let rows = tx
            .rows("get recording", "recordings", &sql, &[Arg::Text(id)])
            .await?;
        let recording = load_recordings(&mut tx, &rows).await?.pop();
        tx.finish("end read").await?;
        Ok(recording)
    }
}

/// Restricts `filter` to recordings in `state`: a tombstone is a row with `deleted_at` set,
/// whatever its `state` column says (see migration 4).
pub(super) fn state_condition(filter: &mut Conditions<'_>, state: RecordingState) {
    if state == RecordingState::Deleted {
        filter.and("deleted_at IS NOT NULL");
    } else {
        let p = filter.bind(Arg::Text(state.as_str()));
        filter.and(format!("state = {p} AND deleted_at IS NULL"));
    }
}

/// The columns of `recordings` that [`recording_from_row`] reads.
pub(super) const RECORDING_COLUMNS: &str = "id, session_id, ingress_call_id, egress_call_id, \
     from_uri, to_uri, started_at, ended_at, duration_ms, state, end_reason, source_address, \
     transport, node_id, deleted_at, mode, route, final_status, hung_up_by";

/// `SELECT` [`RECORDING_COLUMNS`] `FROM recordings`.
pub(super) const RECORDING_SELECT: &str = "SELECT id, session_id, ingress_call_id, \
     egress_call_id, from_uri, to_uri, started_at, ended_at, duration_ms, state, end_reason, \
     source_address, transport, node_id, deleted_at, mode, route, final_status, hung_up_by \
     FROM recordings";

/// A `recordings` row, without its children.
pub(super) fn recording_from_row(row: &Row) -> Result<Recording> {
    Ok(Recording {
        id: row.text("id")?,
        session_id: row.text("session_id")?,
        ingress_call_id: row.text("ingress_call_id")?,
        egress_call_id: row.opt_text("egress_call_id")?,
        from: row.text("from_uri")?,
        to: row.text("to_uri")?,
        started_at: row.time("started_at")?,
        ended_at: row.opt_time("ended_at")?,
        duration_ms: row.opt_int("duration_ms")?,
        state: if row.opt_int("deleted_at")?.is_some() {
            RecordingState::Deleted
        } else {
            row.parse("state")?
        },
        end_reason: row.opt_parse("end_reason")?,
        node_id: row.opt_text("node_id")?,
        participants: Vec::new(),
        legs: Vec::new(),
        dtmf: Vec::new(),
        correlation_ids: Vec::new(),
        warnings: Vec::new(),
        metadata_revisions: 0,
        associations: Vec::new(),
        source_address: row.text("source_address")?,
        transport: row.text("transport")?,
        mode: row.parse("mode")?,
        route: row.opt_text("route")?,
        final_status: row
            .opt_int("final_status")?
            .and_then(|status| u16::try_from(status).ok()),
        hung_up_by: row.opt_parse("hung_up_by")?,
    })
}

/// Rows of a child table for a set of recordings, in one query: `columns` must start with
/// `recording_id`. Returns (index of the recording in `ids`, row) pairs in query order.
pub(super) async fn children(
    tx: &mut Tx,
    ids: &[String],
    operation: &'static str,
    table: &'static str,
    columns: &str,
    tail: &str,
) -> Result<Vec<(usize, Row)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let args: Vec<Arg<'_>> = ids.iter().map(|id| Arg::Text(id)).collect();
    // Explicit ids rather than a sub-select repeating the page query: the children are then
    // exactly those of the recordings already read. At most a page's worth of binds.
    let sql = format!(
        "SELECT {columns} FROM {table} WHERE recording_id IN ({}) {tail}",
        placeholders(1, ids.len())
    );
    let mut found = Vec::new();
    for row in tx.rows(operation, table, &sql, &args).await? {
        let recording_id = row.text("recording_id")?;
        if let Some(&i) = index.get(recording_id.as_str()) {
            found.push((i, row));
        }
    }
    Ok(found)
}

/// Turns `recordings` rows into full [`Recording`]s, reading each child table once for all of
/// them (`WHERE recording_id IN (…)`), in the order of `rows`.
pub(super) async fn load_recordings(tx: &mut Tx, rows: &[Row]) -> Result<Vec<Recording>> {
    let mut recordings = rows
        .iter()
        .map(recording_from_row)
        .collect::<Result<Vec<_>>>()?;
    let ids: Vec<String> = recordings.iter().map(|r| r.id.clone()).collect();

    for (i, row) in children(
        tx,
        &ids,
        "read participants",
        "participants",
        "recording_id, id, aor, name",
        "ORDER BY recording_id, position",
    )
    .await?
    {
        recordings[i].participants.push(Participant {
            id: row.text("id")?,
            aor: row.opt_text("aor")?,
            name: row.opt_text("name")?,
        });
    }

    for (i, row) in children(
        tx,
        &ids,
        "read legs",
        "legs",
        "recording_id, position, label, participant_id, binding_rule, codec, sample_rate, \
         path, sha256, added_at_ms, error, counters, object_key",
        "ORDER BY recording_id, position",
    )
    .await?
    {
        let sample_rate = row.int("sample_rate")?;
        let sample_rate =
            u32::try_from(sample_rate).map_err(|_| row.corrupt("sample_rate", sample_rate))?;
        let counters = match row.opt_text("counters")? {
            Some(_) => row.json("counters")?,
            // Only a leg of version 1-2 another node added after this one's open.
            None => LegCounters::default(),
        };
        recordings[i].legs.push(Leg {
            position: row.int("position")?,
            label: row.text("label")?,
            participant: row.opt_text("participant_id")?,
            binding_rule: row.text("binding_rule")?,
            codec: row.text("codec")?,
            sample_rate,
            path: row.text("path")?,
            sha256: row.opt_text("sha256")?,
            added_at_ms: row.int("added_at_ms")?,
            error: row.opt_text("error")?,
            object_key: row.opt_text("object_key")?,
            counters,
        });
    }

    for (i, row) in children(
        tx,
        &ids,
        "read DTMF events",
        "dtmf_events",
        "recording_id, seq, digit, leg_label, offset_ms, duration_ms, source",
        "ORDER BY recording_id, offset_ms, seq",
    )
    .await?
    {
        recordings[i].dtmf.push(DtmfEvent {
            seq: row.int("seq")?,
            digit: row.text("digit")?,
            leg: row.text("leg_label")?,
            offset_ms: row.int("offset_ms")?,
            duration_ms: row.int("duration_ms")?,
            source: row.parse("source")?,
        });
    }

    for (i, row) in children(
        tx,
        &ids,
        "read correlation ids",
        "correlation_ids",
        "recording_id, kind, value",
        "ORDER BY recording_id, position",
    )
    .await?
    {
        recordings[i].correlation_ids.push(CorrelationId {
            kind: row.text("kind")?,
            value: row.text("value")?,
        });
    }

    for (i, row) in children(
        tx,
        &ids,
        "read warnings",
        "recording_warnings",
        "recording_id, message",
        "ORDER BY recording_id, position",
    )
    .await?
    {
        recordings[i].warnings.push(row.text("message")?);
    }

    for (i, row) in children(
        tx,
        &ids,
        "count metadata revisions",
        "metadata_revisions",
        "recording_id, COUNT(*) AS revisions",
        "GROUP BY recording_id",
    )
    .await?
    {
        recordings[i].metadata_revisions = row.int("revisions")?;
    }

    for (i, row) in children(
        tx,
        &ids,
        "read associations",
        "participant_associations",
        "recording_id, participant_id, leg_label, associated_at_ms, disassociated_at_ms",
        "ORDER BY recording_id, associated_at_ms, seq",
    )
    .await?
    {
        recordings[i].associations.push(Association {
            participant: row.text("participant_id")?,
            leg: row.text("leg_label")?,
            from_ms: row.int("associated_at_ms")?,
            to_ms: row.opt_int("disassociated_at_ms")?,
        });
    }

    Ok(recordings)
}

#[cfg(test)]
mod tests;
