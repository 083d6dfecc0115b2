//! Every endpoint against every role: refused (403) below the role it needs, let through
//! (whatever the outcome then) from it up.

use callvault_catalog::Role;
use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::*;

/// (method, path with `{id}` for the role's own recording, body, the least role allowed).
fn endpoints() -> Vec<(Method, &'static str, Option<Value>, Role)> {
    use Role::*;
    vec![
        (Method::GET, "/api/v1/recordings", None, Viewer),
        (Method::GET, "/api/v1/recordings/{id}", None, Viewer),
        (
            Method::GET,
            "/api/v1/recordings/{id}/legs/caller/audio",
            None,
            Viewer,
        ),
        (
            Method::GET,
            "/api/v1/recordings/{id}/audio?play=true",
            None,
            Viewer,
        ),
        (Method::GET, "/api/v1/custom-fields", None, Viewer),
        (Method::GET, "/api/v1/session", None, Viewer),
        (Method::GET, "/api/v1/tokens", None, Viewer),
        (Method::POST, "/api/v1/tokens", None, Viewer),
        (
            Method::PATCH,
            "/api/v1/recordings/{id}",
            Some(json!({"score": 3})),
            Reviewer,
        ),
        (
            Method::POST,
            "/api/v1/recordings/{id}/annotations",
            Some(json!({"text": "n"})),
            Reviewer,
        ),
        (
            Method::GET,
            "/api/v1/recordings/{id}/audio",
            None,
            Compliance,
        ),
        (
            Method::GET,
            "/api/v1/recordings/{id}/audio?format=mp3",
            None,
            Compliance,
        ),
        (
            Method::POST,
            "/api/v1/downloads",
            Some(json!({"ids": ["{id}"]})),
            Compliance,
        ),
        (
            Method::POST,
            "/api/v1/recordings/{id}/locks",
            Some(json!({"reason": "hold"})),
            Compliance,
        ),
        (
            Method::DELETE,
            "/api/v1/recordings/{id}/locks/no-such-lock",
            None,
            Compliance,
        ),
        (
            Method::POST,
            "/api/v1/recordings/{id}/pause",
            None,
            Compliance,
        ),
        (
            Method::POST,
            "/api/v1/recordings/{id}/resume",
            None,
            Compliance,
        ),
        (Method::GET, "/api/v1/audit", None, Compliance),
        (
            Method::POST,
            "/api/v1/exports",
            Some(json!({"name": "p", "ids": ["{id}"]})),
            Compliance,
        ),
        (Method::GET, "/api/v1/exports", None, Compliance),
        (
            Method::POST,
            "/api/v1/recordings/{id}/share",
            Some(json!({"days": 1})),
            Compliance,
        ),
        (
            Method::GET,
            "/api/v1/recordings/{id}/shares",
            None,
            Compliance,
        ),
        (Method::GET, "/api/v1/users", None, Admin),
        (
            Method::POST,
            "/api/v1/users",
            Some(json!({"name": "new-{id}", "password": "long enough", "role": "viewer"})),
            Admin,
        ),
        (Method::POST, "/api/v1/users/viewer/disable", None, Admin),
        (
            Method::POST,
            "/api/v1/custom-fields",
            Some(json!({"name": "queue", "kind": "text"})),
            Admin,
        ),
        (Method::DELETE, "/api/v1/custom-fields/queue", None, Admin),
        (
            Method::DELETE,
            "/api/v1/recordings/{id}",
            Some(json!({"reason": "r"})),
            Compliance,
        ),
        (Method::DELETE, "/api/v1/session", None, Viewer),
    ]
}

async fn each_role_does_exactly_what_it_may(h: &Harness) {
    for role in Role::ALL {
        let user = role.as_str();
        let id = format!("r-{user}");
        h.recording(&id, None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
            .await;
        // A lock would stop the deletion at the end; the recording is unlocked again first.
        for (method, path, body, least) in endpoints() {
            let path = path.replace("{id}", &id);
            let body =
                body.map(|b| serde_json::from_str(&b.to_string().replace("{id}", &id)).unwrap());
            if method == Method::DELETE && path == format!("/api/v1/recordings/{id}") {
                let details = h
                    .get("admin", &format!("/api/v1/recordings/{id}"))
                    .await
                    .json();
                for lock in details["locks"].as_array().unwrap() {
                    h.send(
                        "admin",
                        Method::DELETE,
                        &format!(
                            "/api/v1/recordings/{id}/locks/{}",
                            lock["id"].as_str().unwrap()
                        ),
                        None,
                    )
                    .await;
                }
            }
            let reply = h.send(user, method.clone(), &path, body).await;
            if role >= least {
                assert!(
                    !matches!(
                        reply.status,
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                    ) && reply.status != StatusCode::METHOD_NOT_ALLOWED,
                    "{user} {method} {path}: {} {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                );
                assert!(
                    reply.status.is_success()
                        || reply.status == StatusCode::CONFLICT
                        || reply.status == StatusCode::NOT_FOUND,
                    "{user} {method} {path}: {}",
                    reply.status
                );
            } else {
                assert_eq!(
                    (reply.status, reply.code().as_str()),
                    (StatusCode::FORBIDDEN, "forbidden"),
                    "{user} {method} {path}"
                );
            }
        }
        // What was allowed happened; what was refused did not.
        let gone = h
            .get("admin", &format!("/api/v1/recordings/{id}"))
            .await
            .json();
        assert_eq!(
            gone["state"] == "deleted",
            role >= Role::Compliance,
            "{user}"
        );
    }
}

on_both_engines!(each_role_does_exactly_what_it_may);
