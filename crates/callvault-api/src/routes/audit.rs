//! Reading the audit trail.

use axum::extract::State;
use callvault_catalog::{AuditAction, AuditPage, AuditQuery, Permission};
use serde::Deserialize;
use utoipa::IntoParams;

use super::recordings::parse_time;
use super::tags;
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::Query;
use crate::response::ErrorBody;
use crate::state::ApiState;

/// Filters of `GET /api/v1/audit`; they combine with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    recording_id: Option<String>,
    user: Option<String>,
    /// `login`, `play`, `download`, `lock`, `unlock`, `delete`, `annotate`, `update`,
    /// `pause`, `resume`, `users`, `fields`.
    action: Option<String>,
    /// A substring of the reason (letters in any case).
    reason: Option<String>,
    /// At or after (RFC 3339).
    since: Option<String>,
    /// Before (RFC 3339).
    until: Option<String>,
    /// 1 to 500 (default 100).
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The audit trail, newest first: `{items: [{seq, at, user, action, recording_id, reason,
/// client, …}], next_cursor}`. A tenant's user sees their tenant's entries only.
#[utoipa::path(
    get,
    path = "/audit",
    tag = tags::AUDIT,
    params(AuditParams),
    responses(
        (status = 200, description = "A page of entries", body = serde_json::Value),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<AuditParams>,
) -> Result<axum::Json<AuditPage>> {
    caller.require(Permission::ReadAudit, "read the audit trail")?;
    let action = params
        .action
        .as_deref()
        .map(|a| {
            a.parse::<AuditAction>().map_err(|e| Error::BadRequest {
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let query = AuditQuery {
        recording_id: params.recording_id,
        user: params.user,
        action,
        reason: params.reason,
        since: parse_time("since", params.since.as_deref())?,
        until: parse_time("until", params.until.as_deref())?,
        cursor: params.cursor,
        limit: params.limit.unwrap_or(AuditQuery::default().limit),
    };
    Ok(axum::Json(
        state.catalog().audit(&caller.scope(), &query).await?,
    ))
}
