//! Errors as HTTP responses: `{"error": {"code": "…", "message": "…"}}` with the status of
//! [`Error::status`]. What the server did wrong is logged in full and answered only as
//! "internal" (500) or "unavailable" (503).

use axum::response::{IntoResponse, Response};
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::error::Error;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ErrorDetail {
    /// Stable, e.g. `locked`, `reason_required`, `not_found`.
    code: &'static str,
    message: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The whole chain, for the operator; the client gets the public message only.
            let mut chain = self.to_string();
            let mut source = std::error::Error::source(&self);
            while let Some(cause) = source {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                source = cause.source();
            }
            tracing::error!(status = status.as_u16(), error = %chain, "API request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.public_message(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Error::RateLimited { retry_after } = &self {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
        }
        if let Error::NotArchived { .. } = &self {
            // The upload follows the call's end within seconds.
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"callvault\""),
            );
        }
        response
    }
}

/// The answer to a path no route serves (so that even it is JSON).
pub(crate) async fn no_route() -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: "no_route",
            message: "no such endpoint; see GET /api/v1/openapi.json".to_owned(),
        },
    };
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}
