//! The values that go into the catalog and the [`Recording`] that comes out of it.
//!
//! [`Recording`] and its parts are a JSON contract (scripts and the dashboard read it): field names
//! and the RFC 3339 timestamps must not change without a version bump of the API.

use std::fmt;
use std::str::FromStr;

use callvault_types::{DtmfSource, EndReason, LegCounters, Party, RecordingMode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// A recording as it starts: everything known when the recording session is answered.
///
/// This and the other inputs (`New*`, [`Completion`], [`LegCompletion`], [`DtmfEvent`]) are
/// serializable because the binary spools them to disk while the catalog is unreachable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRecording {
    /// Chosen by the caller (a UUID); also the name of the recording's folder.
    pub id: String,
    /// The node that records it (`[node] id`): [`crate::Catalog::active_recordings`] finds a
    /// node's own rows by it.
    pub node_id: String,
    /// The SIPREC session id (or the pass-through session's own id).
    pub session_id: String,
    /// Call-ID of the dialog that reached callvault (the recording dialog for SIPREC).
    pub ingress_call_id: String,
    /// Call-ID of the dialog callvault placed itself (pass-through only).
    pub egress_call_id: Option<String>,
    pub from: String,
    pub to: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub participants: Vec<NewParticipant>,
    pub legs: Vec<NewLeg>,
    /// The metadata that came with the INVITE (normally number 1).
    pub metadata: Option<NewMetadataRevision>,
    /// Vendor ids of the recorded call as (kind, value), e.g. ("ucid", "00001…").
    pub correlation_ids: Vec<(String, String)>,
    /// Things tolerated while accepting the session (dialect quirks, ignored streams…).
    pub warnings: Vec<String>,
    /// Where the SIP came from, "ip:port".
    pub source_address: String,
    /// "udp", "tcp" or "tls".
    pub transport: String,
    /// The tenant the recording belongs to (matched by the binary's `[[tenants]]` when the
    /// recording starts); `None`: no tenant, seen only by users without one. Absent in
    /// commands spooled by builds before schema version 4.
    #[serde(default)]
    pub tenant: Option<String>,
    /// SIPREC or pass-through (absent in commands spooled before schema version 6: SIPREC).
    #[serde(default = "siprec")]
    pub mode: RecordingMode,
    /// The `[[routes]]` route of a pass-through call.
    #[serde(default)]
    pub route: Option<String>,
}

fn siprec() -> RecordingMode {
    RecordingMode::Siprec
}

/// A participant as named by the metadata; upserted by `id` within its recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewParticipant {
    pub id: String,
    pub aor: Option<String>,
    pub name: Option<String>,
}

/// One recorded stream, written to its own file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLeg {
    /// The leg's key within its recording, chosen by the caller and never reused: the index of
    /// its m-line in the session (stable for the session's life, as RFC 3264 keeps m-lines).
    pub position: i64,
    /// The SDP label, for display. Labels come from outside and may repeat: two legs with the
    /// same label are two legs.
    pub label: String,
    /// The participant id this stream belongs to, when the metadata says.
    pub participant: Option<String>,
    /// How the stream was bound to its participant (metadata, label order, direction…).
    pub binding_rule: String,
    pub codec: String,
    pub sample_rate: u32,
    /// Relative to the data dir, so the data dir can move.
    pub path: String,
    /// When the stream was added, in milliseconds from the start of the recording: 0 for the
    /// streams of the initial offer, later for streams a re-INVITE/UPDATE added mid-call.
    pub added_at_ms: i64,
}

/// One metadata document as received (INVITE, re-INVITE, UPDATE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMetadataRevision {
    /// Numbered by the caller: 1 for the document of the INVITE, then 2, 3… in the order
    /// received. A number the recording already has is not stored again.
    pub number: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// "complete" or "partial" (RFC 7865 `dataMode`), when the document says.
    pub datamode: Option<String>,
    pub raw_xml: String,
    /// Participants this revision names; new ones are added, known ones updated.
    pub participants: Vec<NewParticipant>,
}

/// How a recording ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub recording_id: String,
    pub state: RecordingState,
    #[serde(with = "time::serde::rfc3339")]
    pub ended_at: OffsetDateTime,
    pub duration_ms: i64,
    pub end_reason: EndReason,
    pub legs: Vec<LegCompletion>,
    /// Added to the recording's warnings (e.g. why a leg's file failed); a message the
    /// recording already has is not added again.
    pub warnings: Vec<String>,
    /// Pass-through: the SIP status the caller got (200 when answered). `None` for SIPREC.
    #[serde(default)]
    pub final_status: Option<u16>,
    /// Pass-through: who ended the answered call.
    #[serde(default)]
    pub hung_up_by: Option<Party>,
}

/// The end of one leg, matched to the leg by [`NewLeg::position`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LegCompletion {
    pub position: i64,
    /// Samples written to the WAV (stored, not part of the JSON contract).
    pub samples: i64,
    /// Hex SHA-256 of the closed WAV file; `None` when it could not be written.
    pub sha256: Option<String>,
    /// Why the leg's file is missing or incomplete; `None` when it is fine.
    pub error: Option<String>,
    /// Everything the leg counted, stored whole.
    pub counters: LegCounters,
}

/// Where a recording is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    /// Being recorded now (or the node stopped before it could say otherwise).
    Active,
    Complete,
    /// Cut off: the server stopped during the call (end reason `shutdown`), or its node found
    /// it still `active` at the next start (end reason `crash`).
    Interrupted,
    Failed,
    /// A tombstone: its media and metadata were deleted ([`crate::Catalog::delete`]). Never
    /// stored in the `state` column (a tombstone is a row with `deleted_at` set, see migration
    /// 4), so it is not a state a [`Completion`] may give.
    Deleted,
}

impl RecordingState {
    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Active => "active",
            RecordingState::Complete => "complete",
            RecordingState::Interrupted => "interrupted",
            RecordingState::Failed => "failed",
            RecordingState::Deleted => "deleted",
        }
    }
}

impl fmt::Display for RecordingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given to [`RecordingState::from_str`] is not a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown recording state {0:?}")]
pub struct UnknownRecordingState(pub String);

impl FromStr for RecordingState {
    type Err = UnknownRecordingState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(RecordingState::Active),
            "complete" => Ok(RecordingState::Complete),
            "interrupted" => Ok(RecordingState::Interrupted),
            "failed" => Ok(RecordingState::Failed),
            "deleted" => Ok(RecordingState::Deleted),
            other => Err(UnknownRecordingState(other.to_owned())),
        }
    }
}

/// One page of the catalog, newest first, optionally filtered (filters combine with AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Clamped to `0..=ListQuery::MAX_LIMIT`.
    pub limit: i64,
    /// Negative counts as 0.
    pub offset: i64,
    /// Only recordings whose DTMF digits, concatenated in offset order across all legs,
    /// contain this string. Only `0-9 * # A-D !` are allowed (anything else is
    /// [`crate::Error::InvalidQuery`]); `""` matches every recording.
    pub digits: Option<String>,
    /// Only recordings in this state ([`RecordingState::Deleted`]: the tombstones).
    pub state: Option<RecordingState>,
    /// Only recordings whose ingress or egress Call-ID is exactly this.
    pub call_id: Option<String>,
}

impl ListQuery {
    /// The largest page one call returns; bounds the memory and the bind count of a list.
    pub const MAX_LIMIT: i64 = 1000;
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            limit: 100,
            offset: 0,
            digits: None,
            state: None,
            call_id: None,
        }
    }
}

/// The characters a DTMF digit string may hold (RFC 4733 events 0-15, `!` for flash).
pub(crate) fn is_dtmf_digit(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | '!')
}

/// A recording as the catalog knows it (the JSON contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub id: String,
    pub session_id: String,
    pub ingress_call_id: String,
    pub egress_call_id: Option<String>,
    pub from: String,
    pub to: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub duration_ms: Option<i64>,
    pub state: RecordingState,
    pub end_reason: Option<EndReason>,
    /// The node that recorded it; `null` for recordings from before schema version 3.
    pub node_id: Option<String>,
    pub participants: Vec<Participant>,
    /// In the order the legs were added.
    pub legs: Vec<Leg>,
    /// Ordered by offset.
    pub dtmf: Vec<DtmfEvent>,
    pub correlation_ids: Vec<CorrelationId>,
    pub warnings: Vec<String>,
    /// How many metadata documents were received (0 when none came); the documents themselves
    /// are read with [`crate::Catalog::metadata_revisions`].
    pub metadata_revisions: i64,
    /// Which participant was on which leg when, ordered by `from_ms` (then by when the
    /// association was opened).
    pub associations: Vec<Association>,
    pub source_address: String,
    pub transport: String,
    /// `siprec` or `passthrough` (absent from JSON written before schema version 6: SIPREC).
    #[serde(default = "siprec")]
    pub mode: RecordingMode,
    /// The `[[routes]]` route of a pass-through call; `null` for SIPREC.
    pub route: Option<String>,
    /// Pass-through: the SIP status the caller got (200 when answered); `null` for SIPREC and
    /// while the call is being set up.
    pub final_status: Option<u16>,
    /// Pass-through: `caller` or `callee`, whoever ended the answered call; `null` otherwise.
    pub hung_up_by: Option<Party>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: String,
    pub aor: Option<String>,
    pub name: Option<String>,
}

/// A leg as the catalog knows it (part of the JSON contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leg {
    /// The leg's key within its recording: the index of its m-line in the session.
    pub position: i64,
    pub label: String,
    pub participant: Option<String>,
    pub binding_rule: String,
    pub codec: String,
    pub sample_rate: u32,
    pub path: String,
    pub sha256: Option<String>,
    /// Milliseconds from the start of the recording to when the leg was added.
    pub added_at_ms: i64,
    /// Why the leg's file is missing or incomplete; `null` when it is fine.
    pub error: Option<String>,
    /// Its key in the object storage bucket once uploaded (`[storage] backend = "s3"`);
    /// absent while the leg is on the recording node's disk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    /// All zero (and `jitter_ms` null) until the leg is completed; flattened into the leg's
    /// JSON (`"packets": …, "lost": …`).
    #[serde(flatten)]
    pub counters: LegCounters,
}

/// A participant heard on a leg from `from_ms` until `to_ms` (milliseconds from the start of
/// the recording); `to_ms` is `None` while the association is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    pub participant: String,
    /// The leg's label.
    pub leg: String,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
}

/// One stored metadata document, as read by [`crate::Catalog::metadata_revisions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataRevision {
    /// 1 for the document of the INVITE, then 2, 3… in the order received.
    pub number: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub datamode: Option<String>,
    pub raw_xml: String,
}

/// A DTMF digit: an input of [`crate::Catalog::add_dtmf`] and part of a [`Recording`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtmfEvent {
    /// Numbered by the caller within its recording (0, 1, 2… in the order detected); a number
    /// the recording already has is not stored again.
    pub seq: i64,
    pub digit: String,
    /// Label of the leg it was detected on (empty for SIP INFO, which names no stream).
    pub leg: String,
    /// From the start of the recording (the legs' common timeline).
    pub offset_ms: i64,
    pub duration_ms: i64,
    pub source: DtmfSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrelationId {
    pub kind: String,
    pub value: String,
}

/// A paused interval of a live recording (card data: every leg records silence meanwhile):
/// an input of [`crate::Catalog::set_pause`] and part of [`crate::RecordingDetails`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// Numbered by the caller within its recording (0, 1, 2… in the order paused), like DTMF
    /// events: the key that makes a replayed write recognisable.
    pub seq: i64,
    /// Milliseconds from the start of the recording (the legs' common timeline).
    pub from_ms: i64,
    /// `None` while the pause lasts.
    pub to_ms: Option<i64>,
    /// Who paused it (a user name).
    pub by: String,
}

/// A timestamp as stored: unix milliseconds (floored, so sub-millisecond precision is dropped).
pub(crate) fn to_unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000))
        .expect("OffsetDateTime's range (±9999 years) fits in i64 milliseconds")
}

/// A stored timestamp back as UTC.
pub(crate) fn from_unix_ms(
    ms: i64,
    table: &'static str,
    column: &'static str,
) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|_| {
        Error::Corrupt {
            table,
            column,
            value: ms.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn state_names_round_trip_through_str_and_serde() {
        for state in [
            RecordingState::Active,
            RecordingState::Complete,
            RecordingState::Interrupted,
            RecordingState::Failed,
            RecordingState::Deleted,
        ] {
            assert_eq!(state.as_str().parse::<RecordingState>(), Ok(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::String(state.as_str().to_owned())
            );
        }
        assert_eq!(
            "Active".parse::<RecordingState>(),
            Err(UnknownRecordingState("Active".to_owned()))
        );
    }

    #[test]
    fn unix_ms_round_trips_and_floors_sub_millisecond_time() {
        let t = datetime!(2026-11-30 11:22:33.456_789 +02:00);
        let ms = to_unix_ms(t);
        assert_eq!(ms, 1_796_030_553_456);
        let back = from_unix_ms(ms, "recordings", "started_at").unwrap();
        assert_eq!(back, datetime!(2026-11-30 09:22:33.456 UTC));
        assert_eq!(back.offset(), time::UtcOffset::UTC);

        // Before 1970 flooring must go down, not towards zero.
        assert_eq!(to_unix_ms(datetime!(1969-12-31 23:59:59.999_5 UTC)), -1);
    }

    #[test]
    fn out_of_range_stored_timestamp_is_corrupt_not_a_panic() {
        let err = from_unix_ms(i64::MAX, "recordings", "ended_at").unwrap_err();
        assert!(matches!(
            err,
            Error::Corrupt {
                table: "recordings",
                column: "ended_at",
                ..
            }
        ));
    }

    #[test]
    fn list_query_defaults_to_a_hundred_from_the_top() {
        assert_eq!(
            ListQuery::default(),
            ListQuery {
                limit: 100,
                offset: 0,
                digits: None,
                state: None,
                call_id: None,
            }
        );
    }
}
