//! Pausing and resuming a live recording (card data): the binary's [`crate::LiveRecordings`]
//! does it; the route checks who may, which recording, and audits it.

use axum::extract::State;
use callvault_catalog::{AuditAction, Permission, RecordingState};
use http::{HeaderMap, StatusCode};

use super::recordings::ReasonBody;
use super::{audit, live_recording, tags};
use crate::auth::Caller;
use crate::error::Result;
use crate::extract::{OptionalJson, Path};
use crate::live::LiveError;
use crate::reason;
use crate::response::ErrorBody;
use crate::settings::ReasonAction;
use crate::state::ApiState;

#[derive(Clone, Copy)]
enum Change {
    Pause,
    Resume,
}

async fn change(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
    body: Option<ReasonBody>,
    change: Change,
) -> Result<StatusCode> {
    let (action, audited) = match change {
        Change::Pause => (ReasonAction::Pause, AuditAction::Pause),
        Change::Resume => (ReasonAction::Resume, AuditAction::Resume),
    };
    caller.require(Permission::Pause, "pause or resume recordings")?;
    let reason = reason::require(
        state.settings(),
        action,
        headers,
        body.and_then(|b| b.reason),
    )?;
    let details = live_recording(state, caller, id).await?;
    if details.item.recording.state != RecordingState::Active {
        return Err(LiveError::NotActive.into());
    }
    let live = state.live();
    match change {
        Change::Pause => live.pause(id, &caller.user.name).await?,
        Change::Resume => live.resume(id, &caller.user.name).await?,
    }
    audit(state, caller, audited, Some(id), reason, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses a live recording: every leg records silence (the timeline is kept) and DTMF is not
/// stored until it is resumed; the interval is kept with who paused it.
#[utoipa::path(
    post,
    path = "/recordings/{id}/pause",
    tag = tags::RECORDINGS,
    params(("id" = String, Path, description = "Recording id")),
    request_body(content = ReasonBody, description = "Optional `{\"reason\"}`"),
    responses(
        (status = 204, description = "Paused"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not being recorded on this node (`not_active`), or already paused (`already_paused`)", body = ErrorBody),
    )
)]
pub(crate) async fn pause(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<StatusCode> {
    change(&state, &caller, &id, &headers, body, Change::Pause).await
}

/// Resumes a paused live recording.
#[utoipa::path(
    post,
    path = "/recordings/{id}/resume",
    tag = tags::RECORDINGS,
    params(("id" = String, Path, description = "Recording id")),
    request_body(content = ReasonBody, description = "Optional `{\"reason\"}`"),
    responses(
        (status = 204, description = "Resumed"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not being recorded on this node (`not_active`), or not paused (`not_paused`)", body = ErrorBody),
    )
)]
pub(crate) async fn resume(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<StatusCode> {
    change(&state, &caller, &id, &headers, body, Change::Resume).await
}
