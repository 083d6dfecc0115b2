//! Browser sign-in and sign-out, and "who am I".

use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use callvault_catalog::{Actor, AuditAction, NewAuditEntry, Role};
use cookie::{Cookie, SameSite};
use http::header::SET_COOKIE;
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{now, tags};
use crate::auth::{Caller, Credential, client_of, permission_names};
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::response::ErrorBody;
use crate::session::SESSION_COOKIE;
use crate::state::ApiState;

/// Credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    username: String,
    password: String,
}

/// Who is signed in, and what they may do.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionInfo {
    user: String,
    /// `viewer`, `reviewer`, `compliance` or `admin`.
    #[schema(value_type = String)]
    role: Role,
    tenant: Option<String>,
    /// E.g. `["view", "play", "annotate"]`.
    permissions: Vec<&'static str>,
    /// For a browser session: send it as `X-Callvault-CSRF` with every request that changes
    /// something. `null` for a bearer token.
    csrf_token: Option<String>,
}

/// The client address of the request (peer IP), as an extractor that never fails.
pub(crate) struct Client(Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Client> {
        Ok(Client(client_of(parts)))
    }
}

fn session_cookie(state: &ApiState, value: String, max_age_s: i64) -> HeaderValue {
    let cookie = Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings().cookie_secure)
        .path("/api")
        .max_age(cookie::time::Duration::seconds(max_age_s))
        .build();
    HeaderValue::try_from(cookie.to_string())
        .expect("a cookie of base64url text and fixed attributes is a valid header value")
}

/// Signs in a browser: sets the session cookie (HttpOnly, SameSite=Strict, Secure when
/// configured) and answers the CSRF token. Rate-limited per client address and per user name.
#[utoipa::path(
    post,
    path = "/session",
    tag = tags::SESSION,
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; `Set-Cookie: callvault_session=…`", body = SessionInfo),
        (status = 401, description = "Wrong user name or password, or a disabled user", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn sign_in(
    State(state): State<ApiState>,
    Client(client): Client,
    Json(body): Json<SignIn>,
) -> Result<Response> {
    state.login_limiter().attempt(client, &body.username)?;
    let catalog = state.catalog();
    let user = catalog
        .verify_password(&body.username, &body.password)
        .await?;
    let attempted: String = body.username.chars().take(64).collect();
    let entry = |detail: &str, tenant: Option<String>| NewAuditEntry {
        at: now(&state),
        actor: Actor::new(attempted.clone(), client.map(|ip| ip.to_string())),
        action: AuditAction::Login,
        recording_id: None,
        reason: None,
        detail: Some(detail.to_owned()),
        tenant,
    };
    let Some(user) = user else {
        catalog
            .append_audit(&entry("failed: wrong user name or password", None))
            .await?;
        return Err(Error::LoginFailed);
    };
    let (id, session) = state
        .sessions()
        .start(&user.name, state.clock().instant())?;
    catalog
        .append_audit(&entry("signed in", user.tenant.clone()))
        .await?;
    let max_age = i64::try_from(state.sessions().lifetime().as_secs()).unwrap_or(i64::MAX);
    let info = SessionInfo {
        permissions: permission_names(user.role),
        user: user.name,
        role: user.role,
        tenant: user.tenant,
        csrf_token: Some(session.csrf),
    };
    let mut response = axum::Json(info).into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, session_cookie(&state, id, max_age));
    Ok(response)
}

/// Who the request's credentials belong to.
#[utoipa::path(
    get,
    path = "/session",
    tag = tags::SESSION,
    responses(
        (status = 200, body = SessionInfo),
        (status = 401, body = ErrorBody),
    )
)]
pub(crate) async fn whoami(caller: Caller) -> axum::Json<SessionInfo> {
    let csrf_token = match caller.credential {
        Credential::Session { session, .. } => Some(session.csrf),
        Credential::Token => None,
    };
    axum::Json(SessionInfo {
        permissions: permission_names(caller.user.role),
        user: caller.user.name,
        role: caller.user.role,
        tenant: caller.user.tenant,
        csrf_token,
    })
}

/// Signs out: ends the session and clears the cookie (a bearer token stays valid: revoke it
/// with `DELETE /api/v1/tokens/{id}`).
#[utoipa::path(
    delete,
    path = "/session",
    tag = tags::SESSION,
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "No CSRF token", body = ErrorBody),
    )
)]
pub(crate) async fn sign_out(State(state): State<ApiState>, caller: Caller) -> Response {
    if let Credential::Session { id, .. } = &caller.credential {
        state.sessions().end(id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, session_cookie(&state, String::new(), 0));
    response
}
