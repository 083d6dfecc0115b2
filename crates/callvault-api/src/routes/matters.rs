//! Legal matters: a named hold with a saved search; every recording it finds, now and later,
//! is locked by the matter until it is released.

use axum::extract::State;
use callvault_catalog::{Matter, NewMatter, Permission};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;

use super::recordings::{ReasonBody, SearchParams};
use super::{now, tags};
use crate::auth::Caller;
use crate::error::Result;
use crate::extract::{Json, OptionalJson, Path};
use crate::reason;
use crate::response::ErrorBody;
use crate::settings::ReasonAction;
use crate::state::ApiState;

/// A matter to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatterBody {
    /// 1 to 1000 characters.
    name: String,
    case_id: Option<String>,
    owner: Option<String>,
    description: Option<String>,
    /// The filters of `GET /api/v1/recordings`, as a JSON object (e.g. `{"party": "alice",
    /// "since": "2026-11-01T00:00:00Z"}`); `{}` holds every recording of the caller's tenant.
    #[schema(value_type = Object)]
    filter: SearchParams,
}

/// Opens a legal matter: every recording its filter finds (in the caller's tenant) is locked
/// by it at once, and every recording that completes later and matches too. Audited.
#[utoipa::path(
    post,
    path = "/matters",
    tag = tags::COMPLIANCE,
    request_body = MatterBody,
    responses(
        (status = 201, description = "The matter, with `locked_recordings`", body = serde_json::Value),
        (status = 400, description = "A filter that does not parse", body = ErrorBody),
        (status = 403, description = "Needs the manage_retention permission", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<MatterBody>,
) -> Result<(StatusCode, axum::Json<Matter>)> {
    caller.require(Permission::ManageRetention, "open legal matters")?;
    let new = NewMatter {
        name: body.name,
        case_id: body.case_id,
        owner: body.owner,
        description: body.description,
        filter: body.filter.query()?,
    };
    // The matter holds within the caller's tenant, never beyond; its role limits (restricted,
    // max age) do not narrow a hold.
    let matter = state
        .catalog()
        .create_matter(&caller.user.scope(), &new, &caller.actor(), now(&state))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(matter)))
}

/// The legal matters (of the caller's tenant), newest first, open and released.
#[utoipa::path(
    get,
    path = "/matters",
    tag = tags::COMPLIANCE,
    responses(
        (status = 200, description = "The matters", body = serde_json::Value),
        (status = 403, body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Vec<Matter>>> {
    caller.require(Permission::ManageRetention, "read legal matters")?;
    Ok(axum::Json(
        state.catalog().matters(&caller.user.scope()).await?,
    ))
}

/// One legal matter.
#[utoipa::path(
    get,
    path = "/matters/{id}",
    tag = tags::COMPLIANCE,
    params(("id" = String, Path, description = "Matter id")),
    responses(
        (status = 200, description = "The matter", body = serde_json::Value),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Matter>> {
    caller.require(Permission::ManageRetention, "read legal matters")?;
    Ok(axum::Json(
        state.catalog().matter(&caller.user.scope(), &id).await?,
    ))
}

/// Releases a legal matter: its locks are removed (kept as history); a user's lock or another
/// matter's on the same recordings stays. Audited.
#[utoipa::path(
    post,
    path = "/matters/{id}/release",
    tag = tags::COMPLIANCE,
    params(("id" = String, Path, description = "Matter id")),
    request_body(content = ReasonBody, description = "`{\"reason\"}` (required when `[api] require_reason` lists `release`)"),
    responses(
        (status = 200, description = "The released matter", body = serde_json::Value),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Already released, or no reason where one is required", body = ErrorBody),
    )
)]
pub(crate) async fn release(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<axum::Json<Matter>> {
    caller.require(Permission::ManageRetention, "release legal matters")?;
    let reason = reason::require(
        state.settings(),
        ReasonAction::Release,
        &headers,
        body.and_then(|b| b.reason),
    )?;
    let matter = state
        .catalog()
        .release_matter(
            &caller.user.scope(),
            &id,
            reason.as_deref(),
            &caller.actor(),
            now(&state),
        )
        .await?;
    Ok(axum::Json(matter))
}
