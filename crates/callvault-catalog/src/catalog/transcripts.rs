//! Transcripts: text with per-segment offsets, written through the API (typically by an
//! external speech-to-text service answering the `recording.completed` webhook). The plain
//! text is a column of `recordings`, so the search's `transcript` filter is one more
//! `LIKE` on the row (see [`super::SearchQuery::transcript`]); segments are JSON beside it.
//! Writing a transcript replaces the previous one, and applies the open legal matters (a
//! matter searching transcripts catches the recording once its words are known).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Catalog;
use super::audit::AuditAction;
use super::lock_recording;
use super::locks::audit_recording;
use super::matters::apply_matters;
use crate::db::Arg;
use crate::error::{Error, Result};
use crate::model::to_unix_ms;
use crate::scope::{Actor, Scope};

/// One stretch of speech, on the legs' common timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptSegment {
    /// Milliseconds from the start of the recording (offset 0 of every leg).
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    /// Who spoke, as the speech-to-text service names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    /// The leg's label the segment was heard on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<String>,
}

/// A recording's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    pub recording_id: String,
    /// The whole text (what the search matches).
    pub text: String,
    /// In the order given.
    pub segments: Vec<TranscriptSegment>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Largest transcript text kept, in bytes (a few hours of speech).
const MAX_TEXT: usize = 4 * 1024 * 1024;
/// Most segments kept.
const MAX_SEGMENTS: usize = 100_000;

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field: "transcript",
        reason: reason.into(),
    }
}

impl Catalog {
    /// Writes (replacing) a recording's transcript. An empty `text` is the segments' texts
    /// joined by spaces. Segments need `0 <= start_ms <= end_ms`. Unknown or out of scope:
    /// [`Error::NotFound`]; a tombstone: [`Error::Deleted`]. Audited (`transcript`).
    pub async fn set_transcript(
        &self,
        scope: &Scope,
        recording_id: &str,
        text: &str,
        segments: &[TranscriptSegment],
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<Transcript> {
        if segments.len() > MAX_SEGMENTS {
            return Err(invalid(format!("at most {MAX_SEGMENTS} segments")));
        }
        if let Some(bad) = segments
            .iter()
            .position(|s| s.start_ms < 0 || s.end_ms < s.start_ms)
        {
            return Err(invalid(format!(
                "segment {bad}: 0 <= start_ms <= end_ms is required"
            )));
        }
        let text = if text.trim().is_empty() {
            segments
                .iter()
                .map(|s| s.text.trim())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            text.to_owned()
        };
        if text.len() > MAX_TEXT {
            return Err(invalid(format!("at most {MAX_TEXT} bytes of text")));
        }
        let segments_json =
            serde_json::to_string(segments).expect("segments are strings and integers");
        let mut tx = self.pool.begin().await?;
        let recording = lock_recording(&mut tx, scope, recording_id).await?;
        if recording.deleted {
            return Err(Error::Deleted {
                id: recording_id.to_owned(),
            });
        }
        tx.run(
            "write a transcript",
            "UPDATE recordings SET transcript = $2, transcript_segments = $3, \
             transcript_at = $4 WHERE id = $1",
            &[
                Arg::Text(recording_id),
                Arg::Text(&text),
                Arg::Text(&segments_json),
                Arg::Int(to_unix_ms(at)),
            ],
        )
        .await?;
        audit_recording(
            &mut tx,
            by,
            at,
            AuditAction::Transcript,
            recording_id,
            recording.tenant.as_deref(),
            None,
            Some(format!(
                "{} characters, {} segments",
                text.chars().count(),
                segments.len()
            )),
        )
        .await?;
        apply_matters(&mut tx, recording_id, at).await?;
        tx.finish("commit transcript").await?;
        Ok(Transcript {
            recording_id: recording_id.to_owned(),
            text,
            segments: segments.to_vec(),
            updated_at: crate::model::from_unix_ms(to_unix_ms(at), "recordings", "transcript_at")?,
        })
    }

    /// A recording's transcript: `Ok(None)` when it has none. Unknown or out of scope:
    /// [`Error::NotFound`].
    pub async fn transcript(
        &self,
        scope: &Scope,
        recording_id: &str,
    ) -> Result<Option<Transcript>> {
        let mut filter = crate::sql::Conditions::default();
        let p = filter.bind(Arg::Text(recording_id));
        filter.and(format!("id = {p}"));
        scope.restrict_recordings(&mut filter);
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "read a transcript",
                "recordings",
                &format!(
                    "SELECT transcript, transcript_segments, transcript_at FROM recordings{}",
                    filter.where_clause()
                ),
                filter.args(),
            )
            .await?;
        tx.finish("end read").await?;
        let row = rows.first().ok_or_else(|| Error::NotFound {
            id: recording_id.to_owned(),
        })?;
        let (Some(text), Some(at)) = (row.opt_text("transcript")?, row.opt_time("transcript_at")?)
        else {
            return Ok(None);
        };
        Ok(Some(Transcript {
            recording_id: recording_id.to_owned(),
            text,
            segments: row.json("transcript_segments")?,
            updated_at: at,
        }))
    }
}
