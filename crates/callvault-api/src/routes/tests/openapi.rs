//! The OpenAPI document against the router: the same routes, each served.

use std::collections::BTreeSet;

use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::auth::methods;
use super::*;
use crate::openapi::openapi;

/// The contract's endpoints (issue 14) and this API's additions, as (method, path).
const EXPECTED: &[(&str, &str)] = &[
    ("GET", "/api/v1/recordings"),
    ("GET", "/api/v1/recordings/{id}"),
    ("PATCH", "/api/v1/recordings/{id}"),
    ("DELETE", "/api/v1/recordings/{id}"),
    ("GET", "/api/v1/recordings/{id}/legs/{label}/audio"),
    ("GET", "/api/v1/recordings/{id}/audio"),
    ("GET", "/api/v1/recordings/{id}/peaks"),
    ("GET", "/api/v1/recordings/{id}/metadata"),
    ("POST", "/api/v1/recordings/{id}/locks"),
    ("DELETE", "/api/v1/recordings/{id}/locks/{lock_id}"),
    ("POST", "/api/v1/recordings/{id}/annotations"),
    ("PUT", "/api/v1/recordings/{id}/never-expire"),
    ("DELETE", "/api/v1/recordings/{id}/never-expire"),
    ("PUT", "/api/v1/recordings/{id}/restricted"),
    ("DELETE", "/api/v1/recordings/{id}/restricted"),
    ("PUT", "/api/v1/recordings/{id}/transcript"),
    ("GET", "/api/v1/recordings/{id}/transcript"),
    ("POST", "/api/v1/matters"),
    ("GET", "/api/v1/matters"),
    ("GET", "/api/v1/matters/{id}"),
    ("POST", "/api/v1/matters/{id}/release"),
    ("POST", "/api/v1/retention/policies"),
    ("GET", "/api/v1/retention/policies"),
    ("DELETE", "/api/v1/retention/policies/{id}"),
    ("GET", "/api/v1/retention/dry-run"),
    ("POST", "/api/v1/recordings/{id}/pause"),
    ("POST", "/api/v1/recordings/{id}/resume"),
    ("POST", "/api/v1/downloads"),
    ("POST", "/api/v1/exports"),
    ("GET", "/api/v1/exports"),
    ("GET", "/api/v1/exports/{id}"),
    ("DELETE", "/api/v1/exports/{id}"),
    ("GET", "/api/v1/exports/{id}/download"),
    ("POST", "/api/v1/recordings/{id}/share"),
    ("GET", "/api/v1/recordings/{id}/shares"),
    ("DELETE", "/api/v1/shares/{id}"),
    ("GET", "/share/{token}"),
    ("GET", "/share/{token}/audio"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/custom-fields"),
    ("POST", "/api/v1/custom-fields"),
    ("DELETE", "/api/v1/custom-fields/{name}"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/users/{name}/disable"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
    ("POST", "/api/v1/session"),
    ("GET", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/openapi.json"),
];

fn documented() -> BTreeSet<(String, String)> {
    openapi()
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            methods(item)
                .into_iter()
                .map(move |m| (m.to_string(), path.clone()))
        })
        .collect()
}

#[test]
fn the_document_names_exactly_the_contracts_endpoints() {
    let expected: BTreeSet<(String, String)> = EXPECTED
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented(), expected);
    let document = serde_json::to_value(openapi()).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
}

async fn every_documented_route_is_served_and_nothing_else(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    for (method, path) in documented() {
        let concrete = path
            .replace("{id}", "r")
            .replace("{label}", "caller")
            .replace("{lock_id}", "l")
            .replace("{name}", "nobody");
        let method: Method = method.parse().unwrap();
        let reply = h
            .send("admin", method.clone(), &concrete, Some(json!({})))
            .await;
        assert!(
            reply.status != StatusCode::METHOD_NOT_ALLOWED
                && !(reply.status == StatusCode::NOT_FOUND && reply.code() == "no_route"),
            "{method} {path} is documented but not routed: {}",
            reply.status
        );
    }
    // Undocumented paths and methods are not served.
    let reply = h.get("admin", "/api/v1/recordings/r/nothing-here").await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::NOT_FOUND, "no_route")
    );
    let reply = h
        .send("admin", Method::PUT, "/api/v1/recordings/r", None)
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);

    let served = h
        .api
        .call(Call::new(Method::GET, "/api/v1/openapi.json"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(served.json(), serde_json::to_value(openapi()).unwrap());
}

on_both_engines!(every_documented_route_is_served_and_nothing_else);
