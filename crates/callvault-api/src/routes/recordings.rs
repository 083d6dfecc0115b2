//! Finding recordings, reading one, and deleting one (its tombstone stays).

use axum::extract::State;
use axum::response::IntoResponse;
use callvault_catalog::{Permission, RecordingState, SearchPage, SearchQuery};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use super::{live_recording, now, recording, tags};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::events::RecordingChange;
use crate::extract::{OptionalJson, Path, Query};
use crate::files::{remove_deleted_files, remove_deleted_objects};
use crate::reason;
use crate::response::ErrorBody;
use crate::settings::ReasonAction;
use crate::state::ApiState;

/// Filters of `GET /api/v1/recordings` (and the `filter` of `POST /api/v1/exports`, without
/// `limit` and `cursor`); they combine with AND.
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// Started at or after (RFC 3339).
    since: Option<String>,
    /// Started before (RFC 3339).
    until: Option<String>,
    /// Substring (case-insensitive) of From, To, or any participant's AOR or name.
    party: Option<String>,
    /// Ingress or egress Call-ID, exactly.
    call_id: Option<String>,
    session_id: Option<String>,
    /// Any id, exactly: recording id, session id, a Call-ID or a vendor correlation id.
    id: Option<String>,
    /// Contained in the recording's DTMF digits (`0-9 * # A-D`).
    digits: Option<String>,
    /// `active`, `complete`, `interrupted`, `failed`, or `deleted` (the tombstones).
    state: Option<String>,
    /// With (`true`) or without (`false`) a lock in force.
    locked: Option<bool>,
    /// With (`true`) or without (`false`) annotations.
    annotated: Option<bool>,
    min_duration_ms: Option<i64>,
    max_duration_ms: Option<i64>,
    /// One tenant's recordings (a tenant's user finds only their own).
    tenant: Option<String>,
    /// Words in the transcript: a substring, ASCII letters in any case.
    transcript: Option<String>,
    /// The same as `transcript`.
    q: Option<String>,
    /// Flagged restricted (`true`) or not (`false`); only roles that may view restricted
    /// recordings ever find restricted ones.
    restricted: Option<bool>,
    /// Flagged "never expire" (`true`) or not (`false`).
    never_expire: Option<bool>,
    /// A pass-through call's route, exactly.
    route: Option<String>,
    /// 1 to 500 (default 100).
    pub(super) limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub(super) cursor: Option<String>,
}

/// A time parameter (RFC 3339); 400 naming `name` otherwise.
pub(super) fn parse_time(name: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>> {
    value
        .map(|text| {
            OffsetDateTime::parse(text, &Rfc3339).map_err(|_| Error::BadRequest {
                reason: format!("{name} must be an RFC 3339 time, e.g. 2026-11-30T10:00:00Z"),
            })
        })
        .transpose()
}

impl SearchParams {
    pub(super) fn query(self) -> Result<SearchQuery> {
        let state = self
            .state
            .as_deref()
            .map(|s| {
                s.parse::<RecordingState>().map_err(|e| Error::BadRequest {
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        Ok(SearchQuery {
            since: parse_time("since", self.since.as_deref())?,
            until: parse_time("until", self.until.as_deref())?,
            party: self.party,
            call_id: self.call_id,
            session_id: self.session_id,
            id: self.id,
            digits: self.digits,
            state,
            locked: self.locked,
            annotated: self.annotated,
            min_duration_ms: self.min_duration_ms,
            max_duration_ms: self.max_duration_ms,
            tenant: self.tenant,
            transcript: match (self.transcript, self.q) {
                (Some(_), Some(_)) => {
                    return Err(Error::BadRequest {
                        reason: "give transcript or q, not both".to_owned(),
                    });
                }
                (words, q) => words.or(q),
            },
            restricted: self.restricted,
            never_expire: self.never_expire,
            route: self.route,
            limit: self.limit.unwrap_or(SearchQuery::default().limit),
            cursor: self.cursor,
        })
    }
}

/// Finds recordings, newest first, a page at a time (tombstones included unless `state`
/// excludes them).
#[utoipa::path(
    get,
    path = "/recordings",
    tag = tags::RECORDINGS,
    params(SearchParams),
    responses(
        (status = 200, description = "A page: `{items, next_cursor}`; items carry every field of `recordings show --json` plus `tenant`, `locked`, `score`, `annotation_count`, and for tombstones `deleted_at`, `deleted_by`, `delete_reason`", body = serde_json::Value),
        (status = 400, description = "A parameter that does not parse, a limit above 500, a foreign cursor", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(crate) async fn search(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<SearchParams>,
) -> Result<axum::Json<SearchPage>> {
    caller.require(Permission::View, "view recordings")?;
    let query = params.query()?;
    let page = state.catalog().search(&caller.scope(), &query).await?;
    Ok(axum::Json(page))
}

/// One recording in full: the search item plus `locks`, `annotations`, `complete`,
/// `categories`, `custom`, `review_seconds`, `paused`; a tombstone is answered too.
#[utoipa::path(
    get,
    path = "/recordings/{id}",
    tag = tags::RECORDINGS,
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 200, description = "The recording (or its tombstone)", body = serde_json::Value),
        (status = 404, description = "Unknown, or another tenant's", body = ErrorBody),
    )
)]
pub(crate) async fn details(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<callvault_catalog::RecordingDetails>> {
    caller.require(Permission::View, "view recordings")?;
    Ok(axum::Json(recording(&state, &caller, &id).await?))
}

/// A reason in a body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    /// Why; required for deletion, and where `[api] require_reason` lists the action.
    pub(crate) reason: Option<String>,
}

/// Deletes a recording's media and metadata for good, keeping a tombstone (who, when, why,
/// each file's SHA-256) that the recording's GET and searches still show.
#[utoipa::path(
    delete,
    path = "/recordings/{id}",
    tag = tags::RECORDINGS,
    params(("id" = String, Path, description = "Recording id")),
    request_body(content = ReasonBody, description = "`{\"reason\"}` (required)"),
    responses(
        (status = 204, description = "Deleted: the files are gone, the tombstone stays"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Locked (`locked`) or still being recorded (`active`)", body = ErrorBody),
        (status = 410, description = "Already deleted", body = ErrorBody),
        (status = 422, description = "No reason", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReasonBody>,
) -> Result<impl IntoResponse> {
    caller.require(Permission::Delete, "delete recordings")?;
    let given = reason::given(&headers, body.and_then(|b| b.reason))?;
    let reason = reason::check(state.settings(), ReasonAction::Delete, given)?
        .ok_or(Error::ReasonRequired(ReasonAction::Delete))?;
    let deletion = state
        .catalog()
        .delete(&caller.scope(), &id, &reason, &caller.actor(), now(&state))
        .await?;
    let data_dir = state.data_dir().to_owned();
    let objects_removed = match state.objects() {
        Some(objects) => Some(remove_deleted_objects(objects, &deletion).await),
        None => None,
    };
    let removed = tokio::task::spawn_blocking(move || remove_deleted_files(&data_dir, &deletion))
        .await
        .map_err(Error::BodyTask)?;
    match objects_removed {
        Some(Ok(keys)) if !keys.is_empty() => {
            tracing::info!(recording_id = %id, objects = keys.len(),
                "a deleted recording's objects were removed from the bucket");
        }
        Some(Err(error)) => tracing::error!(recording_id = %id, %error,
            "a deleted recording's objects could not all be removed from the bucket \
             (their keys are in the tombstone's deleted_legs)"),
        _ => {}
    }
    // The catalog has committed the tombstone: the deletion stands. A file that could not be
    // removed is the operator's to see (`recordings verify --fix` removes it later).
    for (path, error) in &removed.failed {
        tracing::error!(recording_id = %id, path = %path.display(), %error,
            "a deleted recording's file could not be removed");
    }
    state
        .events()
        .recording_changed(&id, RecordingChange::Deleted);
    Ok(StatusCode::NO_CONTENT)
}

/// One metadata document as received.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct MetadataRevisionBody {
    /// 1 for the INVITE's, then one per re-INVITE or UPDATE that carried metadata.
    number: i64,
    /// RFC 3339.
    received_at: String,
    /// `complete` or `partial`, as the document said.
    datamode: Option<String>,
    /// The RFC 7865 XML, exactly as received.
    raw_xml: String,
}

/// Every SIPREC metadata revision of a recording, oldest first (the first from the INVITE).
#[utoipa::path(
    get,
    path = "/recordings/{id}/metadata",
    tag = tags::RECORDINGS,
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 200, description = "The revisions, oldest first", body = Vec<MetadataRevisionBody>),
        (status = 404, description = "Unknown, or another tenant's", body = ErrorBody),
        (status = 410, description = "Deleted: its metadata went with it", body = ErrorBody),
    )
)]
pub(crate) async fn metadata(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<MetadataRevisionBody>>> {
    caller.require(Permission::View, "view recordings")?;
    // Scope and tombstone first: the catalog's revision query knows no tenant.
    live_recording(&state, &caller, &id).await?;
    let revisions = state.catalog().metadata_revisions(&id).await?;
    Ok(axum::Json(
        revisions
            .into_iter()
            .map(|r| MetadataRevisionBody {
                number: r.number,
                received_at: r.received_at.format(&Rfc3339).unwrap_or_default(),
                datamode: r.datamode,
                raw_xml: r.raw_xml,
            })
            .collect(),
    ))
}
