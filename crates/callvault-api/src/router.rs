//! [`router`]: the whole API, and the dashboard that uses it, as one axum `Router`.

use axum::Router;

use crate::openapi::documented_routes;
use crate::response::no_route;
use crate::state::ApiState;

/// Every route under `/api/v1` and the dashboard's pages and files, ready to serve (or to merge into the binary's router).
///
/// Serve it with connection info so audit entries and the sign-in rate limit see the client's
/// address: `axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())`.
/// Without it they see none (every client then shares one sign-in bucket).
pub fn router(state: ApiState) -> Router {
    let (routes, _document) = documented_routes().split_for_parts();
    routes
        .merge(crate::dashboard::routes())
        .fallback(no_route)
        .with_state(state)
}
