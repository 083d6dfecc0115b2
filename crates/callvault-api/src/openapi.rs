//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` declarations that
//! also register the routes (see `routes`), and served at `GET /api/v1/openapi.json`.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, SecurityRequirement};
use utoipa_axum::router::OpenApiRouter;

use crate::routes::{api_routes, public_routes, tags};
use crate::state::ApiState;

/// The API's prefix.
pub const PREFIX: &str = "/api/v1";

/// Every route of the API with its documentation, under [`PREFIX`].
pub(crate) fn documented_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(base())
        .nest(PREFIX, api_routes())
        .merge(public_routes())
}

fn base() -> OpenApi {
    let mut doc = OpenApi::new(
        InfoBuilder::new()
            .title("callvault API")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(
                "Search, play, download, lock, annotate, delete and pause recordings; users, \
                 tokens and the audit trail. Authenticate with `Authorization: Bearer TOKEN` \
                 or the session cookie of `POST /api/v1/session` (then send its `csrf_token` \
                 as `X-Callvault-CSRF` with every request that changes something). Errors are \
                 `{\"error\": {\"code\", \"message\"}}`.",
            ))
            .build(),
        utoipa::openapi::Paths::new(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
            crate::session::SESSION_COOKIE,
        ))),
    );
    doc.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("session", Vec::<String>::new()),
    ]);
    doc
}

/// The document, built once.
pub fn openapi() -> &'static OpenApi {
    static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(|| documented_routes().into_openapi());
    &DOCUMENT
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = tags::SESSION,
    security(()),
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json"))
)]
pub(crate) async fn document() -> Response {
    axum::Json(openapi()).into_response()
}
