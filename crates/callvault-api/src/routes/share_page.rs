//! What a share link's holder sees, without an account: `GET /share/{token}` (a minimal page
//! with a player) and `GET /share/{token}/audio` (the legs mixed to mono, as WAV with `Range`
//! for seeking; `?download=1` for a download, refused 403 unless the link allows it).
//!
//! The token is the only credential: unknown is 404; revoked, expired, or a recording deleted
//! since is 410. Each client address has its own rate limit (`[api]
//! share_requests_per_minute_per_client`, 429 beyond): the token has 256 bits, so guessing is
//! hopeless anyway, but a link handed around must not become a way to load the server. Every
//! play from the first byte (and every download) is audited with `share:<link id>` as the
//! user and the client's address. Answers carry `Cache-Control: no-store` and `Referrer-Policy:
//! no-referrer`, so the token in the URL stays out of caches and other sites' logs; the page
//! has a CSP that allows only its own audio.

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use callvault_catalog::{Actor, AuditAction, NewAuditEntry, RecordingDetails, Scope, ShareLink};
use http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, CONTENT_TYPE, RANGE,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use utoipa::IntoParams;

use super::audio::{blocking, file_name, mix_legs, starts_playback};
use super::tags;
use crate::audio::{Channels, ExportFormat, content_disposition, mix_response};
use crate::error::{Error, Result};
use crate::extract::{Path, Query};
use crate::response::ErrorBody;
use crate::state::ApiState;

/// The page's Content-Security-Policy: nothing but its own audio.
const PAGE_POLICY: &str = "default-src 'none'; media-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Whether to download.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ShareAudioParams {
    /// `1` or `true`: as an attachment (only where the link allows downloads; 403 otherwise).
    download: Option<String>,
}

/// The link of `token` and its recording, if both still stand.
async fn resolve(
    state: &ApiState,
    client: Option<std::net::IpAddr>,
    token: &str,
) -> Result<(ShareLink, RecordingDetails)> {
    state.share_limiter().check(client)?;
    // Tokens are 43 base64url characters: anything else is unknown without asking.
    let plausible = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let link = match plausible {
        true => state.catalog().share_by_token(token).await?,
        false => None,
    }
    .ok_or(Error::NotFound { what: "share link" })?;
    if link.revoked_at.is_some() {
        return Err(Error::Gone {
            what: "share link",
            how: "been revoked",
        });
    }
    if state.clock().now() >= link.expires_at {
        return Err(Error::Gone {
            what: "share link",
            how: "expired",
        });
    }
    let details = state
        .catalog()
        .recording_details(&Scope::All, &link.recording_id)
        .await?
        .ok_or(Error::NotFound { what: "recording" })?;
    if details.item.deleted_at.is_some() {
        return Err(callvault_catalog::Error::Deleted {
            id: link.recording_id.clone(),
        }
        .into());
    }
    Ok((link, details))
}

fn private(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// Text put in the page, escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(token: &str, link: &ShareLink, details: &RecordingDetails) -> String {
    let recording = &details.item.recording;
    let started = recording.started_at.format(&Rfc3339).unwrap_or_default();
    let expires = link.expires_at.format(&Rfc3339).unwrap_or_default();
    let duration = recording
        .duration_ms
        .map(|ms| format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60))
        .unwrap_or_default();
    let audio = format!("/share/{}/audio", escape(token));
    let download = if link.allow_download {
        format!("<p><a href=\"{audio}?download=1\" download>Download</a></p>\n")
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>Shared recording</title>\n</head>\n\
         <body>\n<main>\n<h1>Shared recording</h1>\n\
         <p>Recorded {started}{}. This link works until {expires}.</p>\n\
         <audio controls preload=\"metadata\" src=\"{audio}\">Your browser cannot play this \
         recording.</audio>\n{download}</main>\n</body>\n</html>\n",
        if duration.is_empty() {
            String::new()
        } else {
            format!(", {duration} long")
        },
        started = escape(&started),
        expires = escape(&expires),
    )
}

/// The client's address (see `auth::client_of`), for the rate limit and the audit.
pub(crate) struct Client(Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Client> {
        Ok(Client(crate::auth::client_of(parts)))
    }
}

/// The page of a share link: the recording's time and length, a player, and a download link
/// where the link allows it. No account needed: the token is the credential.
#[utoipa::path(
    get,
    path = "/share/{token}",
    tag = tags::SHARES,
    security(()),
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 200, description = "The page", content_type = "text/html"),
        (status = 404, description = "No such link", body = ErrorBody),
        (status = 410, description = "Revoked, expired, or the recording is deleted", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<ApiState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Response> {
    let (link, details) = resolve(&state, client, &token).await?;
    let mut response = page(&token, &link, &details).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    private(headers);
    Ok(response)
}

/// The shared recording's legs mixed to mono (WAV, with `Range` for seeking), `inline`; with
/// `download=1` an attachment, where the link allows it.
#[utoipa::path(
    get,
    path = "/share/{token}/audio",
    tag = tags::SHARES,
    security(()),
    params(("token" = String, Path, description = "The link's token"), ShareAudioParams),
    responses(
        (status = 200, description = "The mix", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "audio/wav", body = Vec<u8>),
        (status = 403, description = "A download from a play-only link", body = ErrorBody),
        (status = 404, description = "No such link", body = ErrorBody),
        (status = 410, description = "Revoked, expired, or the recording is deleted", body = ErrorBody),
        (status = 416, description = "The range is past the end"),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    )
)]
pub(crate) async fn audio(
    State(state): State<ApiState>,
    method: Method,
    Client(client): Client,
    Path(token): Path<String>,
    Query(params): Query<ShareAudioParams>,
    headers: HeaderMap,
) -> Result<Response> {
    let (link, details) = resolve(&state, client, &token).await?;
    let download = matches!(params.download.as_deref(), Some("1" | "true"));
    if download && !link.allow_download {
        return Err(Error::DownloadNotAllowed);
    }
    let legs = mix_legs(&state, &details)?;
    let range = headers.get(RANGE).cloned();
    let starts = starts_playback(&method, range.as_ref());
    let mut response =
        blocking(move || mix_response(&legs, ExportFormat::Wav, Channels::Mono, range.as_ref()))
            .await?;
    let name = file_name(&state, &details, None, "wav");
    let disposition = if download {
        content_disposition(&name)
    } else {
        // `content_disposition` says attachment; a player gets the same name inline.
        let value = content_disposition(&name);
        let text = value
            .to_str()
            .unwrap_or("attachment")
            .replacen("attachment", "inline", 1);
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("inline"))
    };
    let out = response.headers_mut();
    out.insert(CONTENT_DISPOSITION, disposition);
    private(out);
    if starts && response.status() != StatusCode::RANGE_NOT_SATISFIABLE {
        let action = if download {
            AuditAction::Download
        } else {
            AuditAction::Play
        };
        state
            .catalog()
            .append_audit(&NewAuditEntry {
                at: state.clock().now(),
                actor: Actor::new(
                    format!("share:{}", link.id),
                    client.map(|ip| ip.to_string()),
                ),
                action,
                recording_id: Some(link.recording_id.clone()),
                reason: None,
                detail: Some(format!("through share link {}", link.id)),
                tenant: None,
            })
            .await?;
    }
    Ok(response.map(Body::new))
}
