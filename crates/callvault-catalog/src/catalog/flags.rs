//! Per-recording flags a compliance user sets: "never expire" (retention never deletes it,
//! Oracle ISR's flag) and "restricted" (only roles with the `view_restricted` permission see
//! it; see [`crate::Scope::Limited`]). Each change is audited in its own transaction.

use time::OffsetDateTime;

use super::Catalog;
use super::audit::AuditAction;
use super::lock_recording;
use super::locks::{audit_recording, validate_reason};
use crate::db::Arg;
use crate::error::{Error, Result};
use crate::scope::{Actor, Scope};

/// A flag of [`Catalog::set_flag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingFlag {
    NeverExpire,
    Restricted,
}

impl RecordingFlag {
    fn column(self) -> &'static str {
        match self {
            RecordingFlag::NeverExpire => "never_expire",
            RecordingFlag::Restricted => "restricted",
        }
    }

    fn action(self) -> AuditAction {
        match self {
            RecordingFlag::NeverExpire => AuditAction::NeverExpire,
            RecordingFlag::Restricted => AuditAction::Restrict,
        }
    }
}

impl Catalog {
    /// Sets (`on`) or clears a flag of a recording. Unknown or out of scope:
    /// [`Error::NotFound`]; a tombstone: [`Error::Deleted`]. Audited (`never_expire` or
    /// `restrict`, detail `on`/`off`) even when the flag already had that value: the request
    /// was made.
    #[allow(clippy::too_many_arguments)] // reason: one change's fields, named at each call
    pub async fn set_flag(
        &self,
        scope: &Scope,
        recording_id: &str,
        flag: RecordingFlag,
        on: bool,
        reason: Option<&str>,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<()> {
        if let Some(reason) = reason {
            validate_reason("reason", reason)?;
        }
        let mut tx = self.pool.begin().await?;
        let recording = lock_recording(&mut tx, scope, recording_id).await?;
        if recording.deleted {
            return Err(Error::Deleted {
                id: recording_id.to_owned(),
            });
        }
        tx.run(
            "set a recording's flag",
            &format!("UPDATE recordings SET {} = $2 WHERE id = $1", flag.column()),
            &[Arg::Text(recording_id), Arg::Int(i64::from(on))],
        )
        .await?;
        audit_recording(
            &mut tx,
            by,
            at,
            flag.action(),
            recording_id,
            recording.tenant.as_deref(),
            reason,
            Some(if on { "on" } else { "off" }.to_owned()),
        )
        .await?;
        tx.finish("commit flag").await
    }
}
