//! Transcripts: written by an external speech-to-text service (typically on the
//! `recording.completed` webhook, with a token of a role that may write transcripts), read
//! back with the recording, found by the search's `transcript` (or `q`) filter.

use axum::extract::State;
use callvault_catalog::{Permission, Transcript, TranscriptSegment};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{now, tags};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{Json, Path};
use crate::response::ErrorBody;
use crate::state::ApiState;

/// A transcript to write (it replaces the previous one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TranscriptBody {
    /// The whole text; empty or absent: the segments' texts joined by spaces.
    #[serde(default)]
    text: String,
    /// Stretches of speech on the legs' timeline: `{start_ms, end_ms, text, speaker?, leg?}`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    segments: Vec<TranscriptSegment>,
}

/// Writes a recording's transcript (replacing any earlier one); audited (`transcript`).
#[utoipa::path(
    put,
    path = "/recordings/{id}/transcript",
    tag = tags::COMPLIANCE,
    params(("id" = String, Path, description = "Recording id")),
    request_body = TranscriptBody,
    responses(
        (status = 200, description = "The transcript as stored: `{recording_id, text, segments, updated_at}`", body = serde_json::Value),
        (status = 403, description = "Needs the write_transcript permission (reviewer and up)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody),
        (status = 422, description = "A segment ending before it starts, too long a text", body = ErrorBody),
    )
)]
pub(crate) async fn put(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<TranscriptBody>,
) -> Result<axum::Json<Transcript>> {
    caller.require(Permission::WriteTranscript, "write transcripts")?;
    let transcript = state
        .catalog()
        .set_transcript(
            &caller.scope(),
            &id,
            &body.text,
            &body.segments,
            &caller.actor(),
            now(&state),
        )
        .await?;
    Ok(axum::Json(transcript))
}

/// A recording's transcript.
#[utoipa::path(
    get,
    path = "/recordings/{id}/transcript",
    tag = tags::COMPLIANCE,
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 200, description = "`{recording_id, text, segments, updated_at}`", body = serde_json::Value),
        (status = 404, description = "Unknown, out of scope,, or no transcript yet", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Transcript>> {
    caller.require(Permission::View, "view recordings")?;
    state
        .catalog()
        .transcript(&caller.scope(), &id)
        .await?
        .map(axum::Json)
        .ok_or(Error::NotFound { what: "transcript" })
}
