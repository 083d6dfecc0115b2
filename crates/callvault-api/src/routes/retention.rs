//! Retention policies and the dry run: what the sweeper would delete now, and why.

use axum::extract::State;
use callvault_catalog::{Permission, RetentionPolicy, RetentionRule};
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{now, tags};
use crate::auth::Caller;
use crate::error::Result;
use crate::extract::{Json, Path};
use crate::response::ErrorBody;
use crate::retention::{SweepReport, sweep};
use crate::state::ApiState;

/// A policy to add: which recordings (every criterion given must match) and how long.
#[derive(Debug, Deserialize, ToSchema)]
// No deny_unknown_fields here: serde does not support it beside `flatten`; the rule itself
// refuses unknown keys.
pub(crate) struct PolicyBody {
    /// Unique; deletions are audited as `policy:<name>`.
    name: String,
    /// `tenant`, `route`, `participant` (substring of From, To or a participant), `field` +
    /// `value` (a custom field's value); `media_days` (leg files deleted, metadata kept),
    /// `metadata_days` (a tombstone left), `audit_days` (audit trail pruned).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    rule: RetentionRule,
}

/// Adds a retention policy. Where several match a recording, the longest period wins;
/// `[retention] days` applies only to recordings no policy matches. Audited (`retention`).
#[utoipa::path(
    post,
    path = "/retention/policies",
    tag = tags::COMPLIANCE,
    request_body = PolicyBody,
    responses(
        (status = 201, description = "The policy", body = serde_json::Value),
        (status = 403, description = "Needs the manage_retention permission", body = ErrorBody),
        (status = 409, description = "A policy of that name exists", body = ErrorBody),
        (status = 422, description = "No period, or media_days beyond metadata_days", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<PolicyBody>,
) -> Result<(StatusCode, axum::Json<RetentionPolicy>)> {
    caller.require(Permission::ManageRetention, "manage retention policies")?;
    let policy = state
        .catalog()
        .create_retention_policy(&body.name, &body.rule, &caller.actor(), now(&state))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(policy)))
}

/// Every retention policy, by name.
#[utoipa::path(
    get,
    path = "/retention/policies",
    tag = tags::COMPLIANCE,
    responses(
        (status = 200, description = "The policies", body = serde_json::Value),
        (status = 403, body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Vec<RetentionPolicy>>> {
    caller.require(Permission::ManageRetention, "read retention policies")?;
    Ok(axum::Json(state.catalog().retention_policies().await?))
}

/// Removes a retention policy (what it deleted stays deleted). Audited.
#[utoipa::path(
    delete,
    path = "/retention/policies/{id}",
    tag = tags::COMPLIANCE,
    params(("id" = String, Path, description = "Policy id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    caller.require(Permission::ManageRetention, "manage retention policies")?;
    state
        .catalog()
        .delete_retention_policy(&id, &caller.actor(), now(&state))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What retention would delete now, and why: each recording with its rule (a policy's name,
/// `config` or `max_bytes`), `expiry` (`media` or `metadata`), age and period, and
/// `outcome` `would_delete` or `held` (with `held`: `locked`, `never_expire`, `active`).
#[utoipa::path(
    get,
    path = "/retention/dry-run",
    tag = tags::COMPLIANCE,
    responses(
        (status = 200, description = "`{dry_run, items, media_bytes, max_bytes, over_max_bytes, audit_before, audit_pruned}`", body = serde_json::Value),
        (status = 403, body = ErrorBody),
    )
)]
pub(crate) async fn dry_run(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<SweepReport>> {
    caller.require(Permission::ManageRetention, "read the retention plan")?;
    let report = sweep(
        state.catalog(),
        state.data_dir(),
        state.objects(),
        state.retention(),
        state.events(),
        now(&state),
        false,
    )
    .await?;
    Ok(axum::Json(report))
}
