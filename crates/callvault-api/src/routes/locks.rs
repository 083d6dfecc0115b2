//! Locks (legal holds): while any is in force the recording cannot be deleted.

use axum::extract::State;
use callvault_catalog::{Lock, Permission};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;

use super::recordings::ReasonBody;
use super::{now, tags};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::events::RecordingChange;
use crate::extract::{Json, OptionalJson, Path};
use crate::reason;
use crate::response::ErrorBody;
use crate::settings::ReasonAction;
use crate::state::ApiState;

/// Why the recording is held.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LockBody {
    /// E.g. `LegalHold#245`; 1 to 1000 characters.
    reason: String,
}

/// Puts a lock on a recording (several may be in force).
#[utoipa::path(
    post,
    path = "/recordings/{id}/locks",
    tag = tags::RECORDINGS,
    params(("id" = String, Path, description = "Recording id")),
    request_body = LockBody,
    responses(
        (status = 201, description = "The lock (`id`, `reason`, `by`, `at`, …)", body = serde_json::Value),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody),
        (status = 422, description = "No reason", body = ErrorBody),
    )
)]
pub(crate) async fn lock(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<LockBody>,
) -> Result<(StatusCode, axum::Json<Lock>)> {
    caller.require(Permission::Lock, "lock recordings")?;
    let reason = reason::require(
        state.settings(),
        ReasonAction::Lock,
        &headers,
        Some(body.reason),
    )?
    .ok_or(Error::ReasonRequired(ReasonAction::Lock))?;
    let lock = state
        .catalog()
        .lock(&caller.scope(), &id, &reason, &caller.actor(), now(&state))
        .await?;
    state.events().recording_changed(
        &lock.recording_id,
        RecordingChange::Locked {
            lock_id: lock.id.clone(),
        },
    );
    Ok((StatusCode::CREATED, axum::Json(lock)))
}

/// Removes a lock (kept as history, with who removed it and why).
#[utoipa::path(
    delete,
    path = "/recordings/{id}/locks/{lock_id}",
    tag = tags::RECORDINGS,
    params(
        ("id" = String, Path, description = "Recording id"),
        ("lock_id" = String, Path, description = "Lock id"),
    ),
    request_body(content = ReasonBody, description = "Optional `{\"reason\"}`"),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such recording, or no such lock in force on it", body = ErrorBody),
    )
)]
pub(crate) async fn unlock(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, lock_id)): Path<(String, String)>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<StatusCode> {
    caller.require(Permission::Lock, "unlock recordings")?;
    let reason = reason::require(
        state.settings(),
        ReasonAction::Unlock,
        &headers,
        body.and_then(|b| b.reason),
    )?;
    state
        .catalog()
        .unlock(
            &caller.scope(),
            &id,
            &lock_id,
            reason.as_deref(),
            &caller.actor(),
            now(&state),
        )
        .await?;
    state
        .events()
        .recording_changed(&id, RecordingChange::Unlocked { lock_id });
    Ok(StatusCode::NO_CONTENT)
}
