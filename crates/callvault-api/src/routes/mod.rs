//! The routes of `/api/v1`, one module per resource, and what they share.
//!
//! Every route is registered through `utoipa-axum`'s `routes!`, which takes the path and
//! method from the handler's `#[utoipa::path]`: the router and the OpenAPI document are built
//! from the same declarations (`openapi.rs` serves the document; a test compares the two).

mod audio;
mod audit;
mod custom_fields;
mod exports;
mod flags;
mod live;
mod locks;
mod matters;
mod recordings;
mod retention;
mod review;
mod session;
mod share_page;
mod shares;
mod transcripts;
mod users;

pub(crate) use audio::leg_audio;

use callvault_catalog::{AuditAction, NewAuditEntry, RecordingDetails};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::state::ApiState;

/// Every route of the API, relative to `/api/v1`, with its documentation.
pub(crate) fn api_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(recordings::search))
        .routes(routes!(
            recordings::details,
            review::update,
            recordings::delete
        ))
        .routes(routes!(recordings::metadata))
        .routes(routes!(audio::leg))
        .routes(routes!(audio::peaks))
        .routes(routes!(audio::mix))
        .routes(routes!(audio::export))
        .routes(routes!(exports::create, exports::list))
        .routes(routes!(exports::details, exports::remove))
        .routes(routes!(exports::download))
        .routes(routes!(shares::create))
        .routes(routes!(shares::list))
        .routes(routes!(shares::revoke))
        .routes(routes!(locks::lock))
        .routes(routes!(locks::unlock))
        .routes(routes!(review::annotate))
        .routes(routes!(flags::never_expire, flags::expire))
        .routes(routes!(flags::restrict, flags::unrestrict))
        .routes(routes!(transcripts::put, transcripts::get))
        .routes(routes!(matters::create, matters::list))
        .routes(routes!(matters::show))
        .routes(routes!(matters::release))
        .routes(routes!(retention::create, retention::list))
        .routes(routes!(retention::remove))
        .routes(routes!(retention::dry_run))
        .routes(routes!(live::pause))
        .routes(routes!(live::resume))
        .routes(routes!(audit::list))
        .routes(routes!(custom_fields::list, custom_fields::define))
        .routes(routes!(custom_fields::remove))
        .routes(routes!(users::list, users::add))
        .routes(routes!(users::disable))
        .routes(routes!(users::tokens, users::create_token))
        .routes(routes!(users::revoke_token))
        .routes(routes!(
            session::sign_in,
            session::whoami,
            session::sign_out
        ))
        .routes(routes!(crate::openapi::document))
}

/// The public share pages (outside `/api/v1`: a link's holder has no account), with their
/// documentation.
pub(crate) fn public_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(share_page::show))
        .routes(routes!(share_page::audio))
}

/// Now, on the API's clock.
fn now(state: &ApiState) -> OffsetDateTime {
    state.clock().now()
}

/// The recording `id` as the caller may see it; 404 when unknown or out of their scope.
async fn recording(state: &ApiState, caller: &Caller, id: &str) -> Result<RecordingDetails> {
    state
        .catalog()
        .recording_details(&caller.scope(), id)
        .await?
        .ok_or(Error::NotFound { what: "recording" })
}

/// The recording `id` unless it is a tombstone (410).
async fn live_recording(state: &ApiState, caller: &Caller, id: &str) -> Result<RecordingDetails> {
    let details = recording(state, caller, id).await?;
    if details.item.deleted_at.is_some() {
        return Err(callvault_catalog::Error::Deleted { id: id.to_owned() }.into());
    }
    Ok(details)
}

/// The recording `id` with its media: 410 for a tombstone, and for a recording whose media
/// retention deleted (`media_deleted`).
async fn media_recording(state: &ApiState, caller: &Caller, id: &str) -> Result<RecordingDetails> {
    let details = live_recording(state, caller, id).await?;
    if details.item.media_deleted_at.is_some() {
        return Err(Error::MediaDeleted);
    }
    Ok(details)
}

/// Appends an audit entry for what the catalog does not record itself (plays, downloads,
/// sign-ins, pauses).
async fn audit(
    state: &ApiState,
    caller: &Caller,
    action: AuditAction,
    recording_id: Option<&str>,
    reason: Option<String>,
    detail: Option<String>,
) -> Result<()> {
    state
        .catalog()
        .append_audit(&NewAuditEntry {
            at: now(state),
            actor: caller.actor(),
            action,
            recording_id: recording_id.map(str::to_owned),
            reason,
            detail,
            tenant: caller.user.tenant.clone(),
        })
        .await?;
    Ok(())
}

/// Tags of the OpenAPI document, by resource.
pub(crate) mod tags {
    pub(crate) const RECORDINGS: &str = "recordings";
    pub(crate) const AUDIO: &str = "audio";
    pub(crate) const AUDIT: &str = "audit";
    pub(crate) const EXPORTS: &str = "exports";
    pub(crate) const SHARES: &str = "share links";
    pub(crate) const ADMIN: &str = "administration";
    pub(crate) const SESSION: &str = "session";
    pub(crate) const COMPLIANCE: &str = "compliance";
}

#[cfg(test)]
mod tests;
