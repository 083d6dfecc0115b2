//! Per-recording flags: "never expire" (retention never deletes it) and "restricted" (only
//! roles with the `view_restricted` permission see it).

use axum::extract::State;
use callvault_catalog::{Permission, RecordingFlag};
use http::{HeaderMap, StatusCode};

use super::recordings::ReasonBody;
use super::{now, tags};
use crate::auth::Caller;
use crate::error::Result;
use crate::extract::{OptionalJson, Path};
use crate::reason;
use crate::response::ErrorBody;
use crate::settings::ReasonAction;
use crate::state::ApiState;

async fn set(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    flag: RecordingFlag,
    on: bool,
    reason: Option<String>,
) -> Result<StatusCode> {
    state
        .catalog()
        .set_flag(
            &caller.scope(),
            id,
            flag,
            on,
            reason.as_deref(),
            &caller.actor(),
            now(state),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Flags a recording "never expire": no retention policy, `[retention] days` or `max_bytes`
/// deletes it (a user still can, unless it is locked).
#[utoipa::path(
    put,
    path = "/recordings/{id}/never-expire",
    tag = tags::COMPLIANCE,
    params(("id" = String, Path, description = "Recording id")),
    request_body(content = ReasonBody, description = "Optional `{\"reason\"}`"),
    responses(
        (status = 204, description = "Flagged"),
        (status = 403, description = "Needs the manage_retention permission", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody),
    )
)]
pub(crate) async fn never_expire(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<StatusCode> {
    caller.require(
        Permission::ManageRetention,
        "flag recordings never to expire",
    )?;
    let reason = reason::given(&headers, body.and_then(|b| b.reason))?;
    set(
        &state,
        &caller,
        &id,
        RecordingFlag::NeverExpire,
        true,
        reason,
    )
    .await
}

/// Clears a recording's "never expire" flag: retention applies to it again.
#[utoipa::path(
    delete,
    path = "/recordings/{id}/never-expire",
    tag = tags::COMPLIANCE,
    params(("id" = String, Path, description = "Recording id")),
    request_body(content = ReasonBody, description = "Optional `{\"reason\"}`"),
    responses(
        (status = 204, description = "Cleared"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody),
    )
)]
pub(crate) async fn expire(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<StatusCode> {
    caller.require(Permission::ManageRetention, "clear the never-expire flag")?;
    let reason = reason::given(&headers, body.and_then(|b| b.reason))?;
    set(
        &state,
        &caller,
        &id,
        RecordingFlag::NeverExpire,
        false,
        reason,
    )
    .await
}

/// Flags a recording restricted: from now on only roles with the `view_restricted`
/// permission find it, play it or read it; for everyone else it is 404, as if absent.
#[utoipa::path(
    put,
    path = "/recordings/{id}/restricted",
    tag = tags::COMPLIANCE,
    params(("id" = String, Path, description = "Recording id")),
    request_body(content = ReasonBody, description = "`{\"reason\"}` (required when `[api] require_reason` lists `restrict`)"),
    responses(
        (status = 204, description = "Restricted"),
        (status = 403, description = "Needs the restrict permission", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub(crate) async fn restrict(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<StatusCode> {
    caller.require(Permission::Restrict, "restrict recordings")?;
    let reason = reason::require(
        state.settings(),
        ReasonAction::Restrict,
        &headers,
        body.and_then(|b| b.reason),
    )?;
    set(
        &state,
        &caller,
        &id,
        RecordingFlag::Restricted,
        true,
        reason,
    )
    .await
}

/// Clears a recording's restricted flag: every role that may view recordings sees it again.
#[utoipa::path(
    delete,
    path = "/recordings/{id}/restricted",
    tag = tags::COMPLIANCE,
    params(("id" = String, Path, description = "Recording id")),
    request_body(content = ReasonBody, description = "`{\"reason\"}` (required when `[api] require_reason` lists `restrict`)"),
    responses(
        (status = 204, description = "No longer restricted"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub(crate) async fn unrestrict(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<StatusCode> {
    caller.require(Permission::Restrict, "restrict recordings")?;
    let reason = reason::require(
        state.settings(),
        ReasonAction::Restrict,
        &headers,
        body.and_then(|b| b.reason),
    )?;
    set(
        &state,
        &caller,
        &id,
        RecordingFlag::Restricted,
        false,
        reason,
    )
    .await
}
