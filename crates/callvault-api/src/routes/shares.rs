//! Share links, as their makers manage them: made for one recording (`share` permission:
//! compliance, admin), listed per recording, revoked. What the link's holder sees is the
//! public page in `crate::share_page`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use callvault_catalog::{NewShareLink, Permission, ShareLink};
use http::header::HOST;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{live_recording, now, recording, tags};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{Json, Path};
use crate::response::ErrorBody;
use crate::state::ApiState;

/// A link to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewShareBody {
    /// How long it works: 1 to `[api] share_max_days` days.
    days: u32,
    /// Whether its holder may download the audio; otherwise play only.
    #[serde(default)]
    allow_download: bool,
    /// For whom or why (kept with the link and in the audit trail; never shown to the holder).
    note: Option<String>,
}

/// A link just made: `url` holds its secret and is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NewShareReply {
    id: String,
    /// The link to give: `…/share/TOKEN` (a page with a player).
    url: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    expires_at: time::OffsetDateTime,
    allow_download: bool,
    recording_id: String,
}

/// A link as listed (never its token).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ShareBody {
    id: String,
    recording_id: String,
    created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    expires_at: time::OffsetDateTime,
    allow_download: bool,
    note: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    revoked_at: Option<time::OffsetDateTime>,
    revoked_by: Option<String>,
    /// Neither revoked nor expired.
    active: bool,
}

impl ShareBody {
    fn new(link: ShareLink, now: time::OffsetDateTime) -> ShareBody {
        ShareBody {
            active: link.revoked_at.is_none() && now < link.expires_at,
            id: link.id,
            recording_id: link.recording_id,
            created_by: link.created_by,
            created_at: link.created_at,
            expires_at: link.expires_at,
            allow_download: link.allow_download,
            note: link.note,
            revoked_at: link.revoked_at,
            revoked_by: link.revoked_by,
        }
    }
}

/// Where people reach this server: `[api] public_url`, else `http://` and the request's Host.
fn base_url(state: &ApiState, headers: &HeaderMap) -> Result<String> {
    let configured = state.settings().public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .ok_or_else(|| Error::BadRequest {
            reason: "no usable Host header: set [api] public_url".to_owned(),
        })?;
    Ok(format!("http://{host}"))
}

/// Makes a link to the recording for someone without an account: a page with a player,
/// working for `days` days unless revoked. Audited (`share`).
#[utoipa::path(
    post,
    path = "/recordings/{id}/share",
    tag = tags::SHARES,
    params(("id" = String, Path, description = "Recording id")),
    request_body = NewShareBody,
    responses(
        (status = 201, description = "The link (its URL is shown only now)", body = NewShareReply),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, description = "The recording is deleted", body = ErrorBody),
        (status = 422, description = "`days` out of 1 to `[api] share_max_days`, or a bad note", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<NewShareBody>,
) -> Result<Response> {
    caller.require(Permission::Share, "make share links")?;
    let max = state.settings().share_max_days;
    if !(1..=max).contains(&body.days) {
        return Err(Error::Invalid {
            reason: format!("days must be 1 to {max}"),
        });
    }
    let base = base_url(&state, &headers)?;
    live_recording(&state, &caller, &id).await?;
    let at = now(&state);
    let made = state
        .catalog()
        .create_share(
            &caller.scope(),
            &NewShareLink {
                recording_id: id.clone(),
                expires_at: at + time::Duration::days(i64::from(body.days)),
                allow_download: body.allow_download,
                note: body.note,
            },
            &caller.actor(),
            at,
        )
        .await?;
    let reply = NewShareReply {
        url: format!("{base}/share/{}", made.token),
        id: made.link.id,
        expires_at: made.link.expires_at,
        allow_download: made.link.allow_download,
        recording_id: made.link.recording_id,
    };
    Ok((StatusCode::CREATED, axum::Json(reply)).into_response())
}

/// The recording's links (revoked and expired ones too), oldest first.
#[utoipa::path(
    get,
    path = "/recordings/{id}/shares",
    tag = tags::SHARES,
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 200, body = [ShareBody]),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<ShareBody>>> {
    caller.require(Permission::Share, "see share links")?;
    recording(&state, &caller, &id).await?;
    let at = now(&state);
    let links = state.catalog().shares_of(&caller.scope(), &id).await?;
    Ok(axum::Json(
        links.into_iter().map(|l| ShareBody::new(l, at)).collect(),
    ))
}

/// Revokes a link: its page and audio answer 410 from now on. Audited (`unshare`).
#[utoipa::path(
    delete,
    path = "/shares/{id}",
    tag = tags::SHARES,
    params(("id" = String, Path, description = "Link id (`shr_…`)")),
    responses(
        (status = 204, description = "Revoked (or already revoked)"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    caller.require(Permission::Share, "revoke share links")?;
    let scope = caller.scope();
    if state.catalog().share_link(&scope, &id).await?.is_none() {
        return Err(Error::NotFound { what: "share link" });
    }
    state
        .catalog()
        .revoke_share(&scope, &id, &caller.actor(), now(&state))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
