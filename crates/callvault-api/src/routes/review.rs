//! What reviewers add: annotations, and changes to the review (score, flag, categories,
//! custom data, review time).

use axum::extract::State;
use callvault_catalog::{Annotation, NewAnnotation, Permission, RecordingDetails, ReviewUpdate};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{now, recording, tags};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{Json, Path};
use crate::reason;
use crate::response::ErrorBody;
use crate::settings::ReasonAction;
use crate::state::ApiState;

/// A note to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnnotationBody {
    /// 1 to 10,000 characters.
    text: String,
    /// Milliseconds into the audio the note is about.
    offset_ms: Option<i64>,
    reason: Option<String>,
}

/// Adds a note to a recording, optionally at an offset into its audio.
#[utoipa::path(
    post,
    path = "/recordings/{id}/annotations",
    tag = tags::RECORDINGS,
    params(("id" = String, Path, description = "Recording id")),
    request_body = AnnotationBody,
    responses(
        (status = 201, description = "The annotation (`id`, `text`, `offset_ms`, `by`, `at`)", body = serde_json::Value),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub(crate) async fn annotate(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<AnnotationBody>,
) -> Result<(StatusCode, axum::Json<Annotation>)> {
    caller.require(Permission::Annotate, "annotate recordings")?;
    let reason = reason::require(
        state.settings(),
        ReasonAction::Annotate,
        &headers,
        body.reason,
    )?;
    let note = NewAnnotation {
        text: body.text,
        offset_ms: body.offset_ms,
    };
    let annotation = state
        .catalog()
        .annotate(
            &caller.scope(),
            &id,
            &note,
            reason.as_deref(),
            &caller.actor(),
            now(&state),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(annotation)))
}

/// A change of the review: any of the fields; `null` clears `score`, `complete` and
/// `review_seconds`; `categories` replaces the list; `custom` is merged key by key (`null`
/// removes a key), each value checked against its field's kind.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // reason: the OpenAPI schema of the body; it is read as a map
pub(crate) struct ReviewBody {
    /// 1 to 5.
    score: Option<i64>,
    /// The "complete transaction" flag.
    complete: Option<bool>,
    categories: Option<Vec<String>>,
    #[schema(value_type = Object)]
    custom: Option<Map<String, Value>>,
    review_seconds: Option<i64>,
    reason: Option<String>,
}

/// Changes part of a recording's review and answers the whole recording.
#[utoipa::path(
    patch,
    path = "/recordings/{id}",
    tag = tags::RECORDINGS,
    params(("id" = String, Path, description = "Recording id")),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "The recording with its review changed", body = serde_json::Value),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody),
        (status = 422, description = "A value out of range, an undefined custom field", body = ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(mut body): Json<Map<String, Value>>,
) -> Result<axum::Json<RecordingDetails>> {
    caller.require(Permission::Annotate, "update reviews")?;
    // The reason travels beside the fields; the rest must be exactly a review update.
    let in_body = match body.remove("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(reason)) => Some(reason),
        Some(_) => {
            return Err(Error::Invalid {
                reason: "reason must be a string".to_owned(),
            });
        }
    };
    let update: ReviewUpdate =
        serde_json::from_value(Value::Object(body)).map_err(|e| Error::Invalid {
            reason: e.to_string(),
        })?;
    let reason = reason::require(state.settings(), ReasonAction::Update, &headers, in_body)?;
    state
        .catalog()
        .update_review(
            &caller.scope(),
            &id,
            &update,
            reason.as_deref(),
            &caller.actor(),
            now(&state),
        )
        .await?;
    Ok(axum::Json(recording(&state, &caller, &id).await?))
}
