//! Who is asking: a bearer token or the session cookie, resolved to a catalog user for every
//! request ([`Caller`]), and what their role lets them do.
//!
//! A bearer token is checked by the catalog (unknown, revoked, or of a disabled user: 401). A
//! session cookie names a session of this process; its user is read again from the catalog
//! each time, so disabling a user or changing their role takes effect at their next request.
//! When an `Authorization` header is present it alone counts (a bad token is 401 even with a
//! good cookie beside it).
//!
//! CSRF: a cookie-authenticated request with an unsafe method (anything but GET, HEAD,
//! OPTIONS) must carry `X-Callvault-CSRF` equal to the session's CSRF token, which sign-in
//! returns in its body (and `GET /api/v1/session` again), never in a cookie. Another site can
//! make a browser send the cookie (were SameSite=Strict ever bypassed, or by a sibling
//! subdomain) but cannot read that token, nor set a custom header without a CORS preflight,
//! which this API never grants. Bearer requests need no token: no browser adds the header by
//! itself.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use callvault_catalog::{Actor, Limits, Permission, Role, Scope, User};
use http::header::{AUTHORIZATION, COOKIE};
use http::request::Parts;
use http::{HeaderMap, Method};

use crate::error::{Error, Result};
use crate::session::{CSRF_HEADER, SESSION_COOKIE, Session, same_secret};
use crate::state::ApiState;

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: User,
    /// The peer's address (the TCP connection's; see the crate notes about proxies).
    pub(crate) client: Option<IpAddr>,
    /// How they proved it.
    pub(crate) credential: Credential,
    /// What they may see: their tenant, and their role's limits (restricted recordings,
    /// `max_age_days`), resolved when the request arrived.
    scope: Scope,
}

#[derive(Debug, Clone)]
pub(crate) enum Credential {
    Token,
    Session { id: String, session: Session },
}

impl Caller {
    /// Refuses (403) unless the caller's role allows `permission`; `action` names it in the
    /// message ("delete recordings").
    pub(crate) fn require(&self, permission: Permission, action: &'static str) -> Result<()> {
        if self.user.role.allows(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden {
                role: self.user.role,
                action,
            })
        }
    }

    /// The recordings the caller may see and touch.
    pub(crate) fn scope(&self) -> Scope {
        self.scope.clone()
    }

    /// The caller as an audit entry names them.
    pub(crate) fn actor(&self) -> Actor {
        Actor::new(&self.user.name, self.client.map(|ip| ip.to_string()))
    }
}

/// The client address of a request, when the server was started with connection info
/// (`into_make_service_with_connect_info::<SocketAddr>()`).
pub(crate) fn client_of(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

/// The value of the session cookie, if the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(std::result::Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

/// `Authorization: Bearer TOKEN` → the token; another scheme or a malformed value is 401.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| Error::Unauthenticated)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(Error::Unauthenticated),
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The scope of `user` at `now`: their tenant's recordings, without restricted ones unless
/// their role may view them, and only the last `max_age_days` when their role is so limited.
pub(crate) fn scope_of(user: &User, state: &ApiState) -> Scope {
    let restricted = user.role.allows(Permission::ViewRestricted);
    let started_since = state
        .settings()
        .max_age_days(user.role)
        .map(|days| state.clock().now() - time::Duration::days(i64::from(days)));
    if restricted && started_since.is_none() {
        return user.scope();
    }
    Scope::Limited(Limits {
        tenant: user.tenant.clone(),
        restricted,
        started_since,
    })
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller> {
        let client = client_of(parts);
        if let Some(token) = bearer(&parts.headers)? {
            let found = state
                .catalog()
                .authenticate(token, state.clock().now())
                .await?
                .ok_or(Error::Unauthenticated)?;
            return Ok(Caller {
                scope: scope_of(&found.user, state),
                user: found.user,
                client,
                credential: Credential::Token,
            });
        }
        let id = session_cookie(&parts.headers).ok_or(Error::Unauthenticated)?;
        let session = state
            .sessions()
            .get(&id, state.clock().instant())
            .ok_or(Error::Unauthenticated)?;
        let user = state
            .catalog()
            .user(&session.user)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(Error::Unauthenticated)?;
        if !is_safe(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same_secret(sent, &session.csrf) {
                return Err(Error::Csrf);
            }
        }
        Ok(Caller {
            scope: scope_of(&user, state),
            user,
            client,
            credential: Credential::Session { id, session },
        })
    }
}

/// Every permission a role has, by name (for `GET /api/v1/session`).
pub(crate) fn permission_names(role: Role) -> Vec<&'static str> {
    [
        (Permission::View, "view"),
        (Permission::Play, "play"),
        (Permission::Annotate, "annotate"),
        (Permission::Download, "download"),
        (Permission::Lock, "lock"),
        (Permission::Delete, "delete"),
        (Permission::Pause, "pause"),
        (Permission::ReadAudit, "read_audit"),
        (Permission::ManageUsers, "manage_users"),
        (Permission::Export, "export"),
        (Permission::Share, "share"),
        (Permission::Restrict, "restrict"),
        (Permission::ViewRestricted, "view_restricted"),
        (Permission::ManageRetention, "manage_retention"),
        (Permission::WriteTranscript, "write_transcript"),
    ]
    .into_iter()
    .filter(|(p, _)| role.allows(*p))
    .map(|(_, name)| name)
    .collect()
}
