//! The custom data fields an admin defines (their values are set through the review).

use axum::extract::State;
use callvault_catalog::{CustomField, CustomFieldKind, Permission};
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{now, tags};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{Json, Path};
use crate::response::ErrorBody;
use crate::state::ApiState;

/// Custom fields are shared by every tenant: only an admin without a tenant defines them.
fn require_global_admin(caller: &Caller) -> Result<()> {
    caller.require(Permission::ManageUsers, "define custom fields")?;
    if caller.user.tenant.is_some() {
        return Err(Error::Forbidden {
            role: caller.user.role,
            action: "define custom fields shared by every tenant",
        });
    }
    Ok(())
}

/// Every custom field, by name: `[{name, kind}]`.
#[utoipa::path(
    get,
    path = "/custom-fields",
    tag = tags::ADMIN,
    responses((status = 200, body = Vec<FieldBody>), (status = 401, body = ErrorBody))
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Vec<CustomField>>> {
    caller.require(Permission::View, "view custom fields")?;
    Ok(axum::Json(state.catalog().custom_fields().await?))
}

/// A custom field's definition.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldBody {
    /// 1-64 characters of `A-Z a-z 0-9 _ . -`.
    name: String,
    /// `text`, `number`, `boolean` or `date` (`YYYY-MM-DD`).
    #[schema(value_type = String)]
    kind: CustomFieldKind,
}

/// Defines a custom field (again with the same kind: no change).
#[utoipa::path(
    post,
    path = "/custom-fields",
    tag = tags::ADMIN,
    request_body = FieldBody,
    responses(
        (status = 201, description = "Defined", body = FieldBody),
        (status = 403, body = ErrorBody),
        (status = 422, description = "A bad name, or a name defined with another kind", body = ErrorBody),
    )
)]
pub(crate) async fn define(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<FieldBody>,
) -> Result<(StatusCode, axum::Json<CustomField>)> {
    require_global_admin(&caller)?;
    let field = CustomField {
        name: body.name,
        kind: body.kind,
    };
    state
        .catalog()
        .define_custom_field(&field, &caller.actor(), now(&state))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(field)))
}

/// Removes a custom field's definition (values already stored stay).
#[utoipa::path(
    delete,
    path = "/custom-fields/{name}",
    tag = tags::ADMIN,
    params(("name" = String, Path, description = "Field name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such field", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    require_global_admin(&caller)?;
    state
        .catalog()
        .remove_custom_field(&name, &caller.actor(), now(&state))
        .await
        .map_err(|e| match e {
            callvault_catalog::Error::UnknownCustomField { .. } => Error::NotFound {
                what: "custom field",
            },
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
