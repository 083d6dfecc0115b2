//! Users and bearer tokens. An admin manages users; an admin with a tenant only the users of
//! that tenant (and creates users in it). Everyone may list, create and revoke their own tokens;
//! an admin those of the users they manage.

use axum::extract::State;
use callvault_catalog::{NewUser, Permission, Role, Token, User};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{now, tags};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::response::ErrorBody;
use crate::state::ApiState;

/// Whether `caller` may manage `user` (an admin; one with a tenant, only that tenant's users).
fn manages(caller: &Caller, user: &User) -> bool {
    caller.user.role.allows(Permission::ManageUsers)
        && (caller.user.tenant.is_none() || caller.user.tenant == user.tenant)
}

/// The user `name` if the caller manages them, else 404 (as if absent: a tenant's admin
/// learns nothing of other tenants' users).
async fn managed_user(state: &ApiState, caller: &Caller, name: &str) -> Result<User> {
    state
        .catalog()
        .user(name)
        .await?
        .filter(|user| manages(caller, user))
        .ok_or(Error::NotFound { what: "user" })
}

/// Every user the caller manages, by name.
#[utoipa::path(
    get,
    path = "/users",
    tag = tags::ADMIN,
    responses(
        (status = 200, description = "`[{name, role, tenant, created_at, disabled_at}]`", body = serde_json::Value),
        (status = 403, body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Vec<User>>> {
    caller.require(Permission::ManageUsers, "manage users")?;
    let users = state.catalog().users().await?;
    Ok(axum::Json(
        users.into_iter().filter(|u| manages(&caller, u)).collect(),
    ))
}

/// A user to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    /// 1-64 characters of `A-Z a-z 0-9 . _ @ -`.
    name: String,
    /// At least 8 characters (stored as an argon2id hash).
    password: String,
    /// `viewer`, `reviewer`, `compliance` or `admin`.
    #[schema(value_type = String)]
    role: Role,
    /// The tenant whose recordings alone the user sees; an admin with a tenant can only give
    /// their own.
    tenant: Option<String>,
}

/// Adds a user.
#[utoipa::path(
    post,
    path = "/users",
    tag = tags::ADMIN,
    request_body = UserBody,
    responses(
        (status = 201, description = "The user", body = serde_json::Value),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A bad name, a short password", body = ErrorBody),
    )
)]
pub(crate) async fn add(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<UserBody>,
) -> Result<(StatusCode, axum::Json<User>)> {
    caller.require(Permission::ManageUsers, "manage users")?;
    let tenant = match (&caller.user.tenant, body.tenant) {
        (None, tenant) => tenant,
        (Some(own), None) => Some(own.clone()),
        (Some(own), Some(asked)) if asked == *own => Some(asked),
        (Some(_), Some(_)) => {
            return Err(Error::Forbidden {
                role: caller.user.role,
                action: "add users to another tenant",
            });
        }
    };
    let user = state
        .catalog()
        .add_user(
            &NewUser {
                name: body.name,
                password: body.password,
                role: body.role,
                tenant,
            },
            &caller.actor(),
            now(&state),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

/// Disables a user: they can no longer sign in and their tokens stop working.
#[utoipa::path(
    post,
    path = "/users/{name}/disable",
    tag = tags::ADMIN,
    params(("name" = String, Path, description = "User name")),
    responses(
        (status = 200, description = "The user, disabled", body = serde_json::Value),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn disable(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<axum::Json<User>> {
    caller.require(Permission::ManageUsers, "manage users")?;
    let user = managed_user(&state, &caller, &name).await?;
    Ok(axum::Json(
        state
            .catalog()
            .disable_user(&user.name, &caller.actor(), now(&state))
            .await?,
    ))
}

/// Whose tokens to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TokensParams {
    /// A user's tokens (an admin's choice); by default the caller's own, or for an admin every
    /// token of the users they manage.
    user: Option<String>,
}

/// Bearer tokens (never their values): `[{id, user, created_at, revoked_at, last_used_at}]`.
#[utoipa::path(
    get,
    path = "/tokens",
    tag = tags::ADMIN,
    params(TokensParams),
    responses(
        (status = 200, description = "Tokens, oldest first", body = serde_json::Value),
        (status = 404, description = "A user the caller does not manage", body = ErrorBody),
    )
)]
pub(crate) async fn tokens(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<TokensParams>,
) -> Result<axum::Json<Vec<Token>>> {
    let catalog = state.catalog();
    let admin = caller.user.role.allows(Permission::ManageUsers);
    let tokens = match params.user {
        Some(name) if name == caller.user.name => catalog.tokens(Some(&name)).await?,
        Some(name) => {
            let user = managed_user(&state, &caller, &name).await?;
            catalog.tokens(Some(&user.name)).await?
        }
        None if admin => {
            let managed: Vec<String> = catalog
                .users()
                .await?
                .into_iter()
                .filter(|u| manages(&caller, u))
                .map(|u| u.name)
                .collect();
            catalog
                .tokens(None)
                .await?
                .into_iter()
                .filter(|t| managed.contains(&t.user))
                .collect()
        }
        None => catalog.tokens(Some(&caller.user.name)).await?,
    };
    Ok(axum::Json(tokens))
}

/// For whom to create a token.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    /// A user the caller manages; by default the caller.
    user: Option<String>,
}

/// A token just created: the only time its value is shown.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedToken {
    /// `cv_…`: send as `Authorization: Bearer cv_…`.
    token: String,
    id: String,
    user: String,
}

/// Creates a bearer token.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = tags::ADMIN,
    request_body(content = TokenBody, description = "Optional `{\"user\"}`"),
    responses(
        (status = 201, body = CreatedToken),
        (status = 404, description = "A user the caller does not manage", body = ErrorBody),
    )
)]
pub(crate) async fn create_token(
    State(state): State<ApiState>,
    caller: Caller,
    OptionalJson(body): OptionalJson<TokenBody>,
) -> Result<(StatusCode, axum::Json<CreatedToken>)> {
    let user = match body.and_then(|b| b.user) {
        Some(name) if name != caller.user.name => managed_user(&state, &caller, &name).await?.name,
        _ => caller.user.name.clone(),
    };
    let created = state
        .catalog()
        .create_token(&user, &caller.actor(), now(&state))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            token: created.token,
            id: created.info.id,
            user: created.info.user,
        }),
    ))
}

/// Revokes a token (one's own, or of a user one manages).
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = tags::ADMIN,
    params(("id" = String, Path, description = "Token id (`tok_…`)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn revoke_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let catalog = state.catalog();
    let token = catalog
        .tokens(None)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or(Error::NotFound { what: "token" })?;
    if token.user != caller.user.name {
        managed_user(&state, &caller, &token.user)
            .await
            .map_err(|e| match e {
                // Another's token is as absent as an unknown one.
                Error::NotFound { .. } => Error::NotFound { what: "token" },
                other => other,
            })?;
    }
    catalog
        .revoke_token(&token.id, &caller.actor(), now(&state))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
