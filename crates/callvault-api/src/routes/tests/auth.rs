//! Requests without valid credentials: 401 everywhere but the two public endpoints.

use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::openapi::openapi;

async fn nothing_is_served_without_valid_credentials(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let revoked = h
        .catalog
        .create_token(
            "viewer",
            &callvault_catalog::Actor::new("cli:test", None),
            T0,
        )
        .await
        .unwrap();
    h.catalog
        .revoke_token(
            &revoked.info.id,
            &callvault_catalog::Actor::new("cli:test", None),
            T0,
        )
        .await
        .unwrap();
    let bad_credentials: [Option<(&str, String)>; 6] = [
        None,
        Some(("authorization", "Bearer cv_not-a-token".to_owned())),
        Some(("authorization", format!("Bearer {}", revoked.token))),
        Some(("authorization", format!("Basic {}", h.token("admin")))),
        Some(("authorization", "Bearer".to_owned())),
        Some(("cookie", "callvault_session=made-up".to_owned())),
    ];
    for (path, item) in openapi().paths.paths.iter() {
        let path = path
            .replace("{id}", "r")
            .replace("{label}", "caller")
            .replace("{lock_id}", "l")
            .replace("{name}", "viewer");
        for method in methods(item) {
            // The share pages are public: their token is the credential (see `shares`).
            if (method == Method::POST && path == "/api/v1/session")
                || path == "/api/v1/openapi.json"
                || path.starts_with("/share/")
            {
                continue;
            }
            for credential in &bad_credentials {
                let mut call = Call::new(method.clone(), &path).json(json!({}));
                if let Some((name, value)) = credential {
                    call = call.header(name, value);
                }
                let reply = h.api.call(call).await;
                assert_eq!(
                    (reply.status, reply.code().as_str()),
                    (StatusCode::UNAUTHORIZED, "unauthenticated"),
                    "{method} {path} with {credential:?}"
                );
                assert_eq!(
                    reply.header("www-authenticate"),
                    "Bearer realm=\"callvault\""
                );
            }
        }
    }
    // A bad bearer token is refused even beside a good session cookie.
    let signed_in = h
        .api
        .call(
            Call::new(Method::POST, "/api/v1/session")
                .json(json!({"username": "viewer", "password": PASSWORD})),
        )
        .await
        .expect(StatusCode::OK);
    let cookie = signed_in
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    h.api
        .call(
            Call::new(Method::GET, "/api/v1/session")
                .header("cookie", &cookie)
                .bearer("cv_wrong"),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
    h.api
        .call(Call::new(Method::GET, "/api/v1/openapi.json"))
        .await
        .expect(StatusCode::OK);
}

/// The methods of a path item of the document.
pub(super) fn methods(item: &utoipa::openapi::PathItem) -> Vec<Method> {
    [
        (&item.get, Method::GET),
        (&item.post, Method::POST),
        (&item.put, Method::PUT),
        (&item.patch, Method::PATCH),
        (&item.delete, Method::DELETE),
        (&item.head, Method::HEAD),
        (&item.options, Method::OPTIONS),
        (&item.trace, Method::TRACE),
    ]
    .into_iter()
    .filter(|(operation, _)| operation.is_some())
    .map(|(_, method)| method)
    .collect()
}

on_both_engines!(nothing_is_served_without_valid_credentials);
