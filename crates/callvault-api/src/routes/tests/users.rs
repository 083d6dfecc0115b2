//! Users and tokens through the routes: admins manage users (a tenant's admin only its own),
//! everyone their own tokens.

use http::{Method, StatusCode};
use serde_json::json;

use super::*;

fn names(users: &Value) -> Vec<String> {
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn admins_add_list_and_disable_users(h: &Harness) {
    let added = h
        .send("admin", Method::POST, "/api/v1/users", Some(json!({"name": "carol", "password": "long enough", "role": "reviewer", "tenant": "globex"})))
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(
        (
            added["name"].as_str(),
            added["role"].as_str(),
            added["tenant"].as_str()
        ),
        (Some("carol"), Some("reviewer"), Some("globex"))
    );
    assert!(added.get("password").is_none() && added.get("password_hash").is_none());
    let taken = h
        .send(
            "admin",
            Method::POST,
            "/api/v1/users",
            Some(json!({"name": "carol", "password": "long enough", "role": "viewer"})),
        )
        .await;
    assert_eq!(
        (taken.status, taken.code().as_str()),
        (StatusCode::CONFLICT, "exists")
    );
    for bad in [
        json!({"name": "dave", "password": "short", "role": "viewer"}),
        json!({"name": "dave", "password": "long enough", "role": "owner"}),
        json!({"name": "cli:dave", "password": "long enough", "role": "viewer"}),
    ] {
        h.send("admin", Method::POST, "/api/v1/users", Some(bad.clone()))
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let all = h
        .get("admin", "/api/v1/users")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(names(&all).len(), USERS.len() + 1);

    // A tenant's admin: its own tenant only.
    let acme = h.get("acme-admin", "/api/v1/users").await.json();
    assert_eq!(
        names(&acme),
        ["acme-admin", "acme-compliance", "acme-viewer"]
    );
    let defaulted = h
        .send(
            "acme-admin",
            Method::POST,
            "/api/v1/users",
            Some(json!({"name": "erin", "password": "long enough", "role": "admin"})),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(
        defaulted["tenant"], "acme",
        "a tenant's admin adds users to its tenant"
    );
    h.send("acme-admin", Method::POST, "/api/v1/users", Some(json!({"name": "frank", "password": "long enough", "role": "viewer", "tenant": "globex"})))
        .await
        .expect(StatusCode::FORBIDDEN);
    for other in ["carol", "viewer", "nobody"] {
        h.send(
            "acme-admin",
            Method::POST,
            &format!("/api/v1/users/{other}/disable"),
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    }

    // Disabling stops the user's tokens.
    h.get("acme-viewer", "/api/v1/recordings")
        .await
        .expect(StatusCode::OK);
    let disabled = h
        .send(
            "acme-admin",
            Method::POST,
            "/api/v1/users/acme-viewer/disable",
            None,
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(disabled["disabled_at"], "2026-12-01T09:00:00Z");
    h.get("acme-viewer", "/api/v1/recordings")
        .await
        .expect(StatusCode::UNAUTHORIZED);

    for user in ["viewer", "reviewer", "compliance"] {
        h.get(user, "/api/v1/users")
            .await
            .expect(StatusCode::FORBIDDEN);
        h.send(
            user,
            Method::POST,
            "/api/v1/users",
            Some(json!({"name": "x1", "password": "long enough", "role": "admin"})),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
        h.send(user, Method::POST, "/api/v1/users/viewer/disable", None)
            .await
            .expect(StatusCode::FORBIDDEN);
    }
}

async fn everyone_manages_their_own_tokens_and_admins_those_of_their_users(h: &Harness) {
    let created = h
        .send("viewer", Method::POST, "/api/v1/tokens", None)
        .await
        .expect(StatusCode::CREATED)
        .json();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cv_"));
    assert_eq!(created["user"], "viewer");
    let id = created["id"].as_str().unwrap().to_owned();
    h.api
        .call(Call::new(Method::GET, "/api/v1/session").bearer(&token))
        .await
        .expect(StatusCode::OK);

    let own = h
        .get("viewer", "/api/v1/tokens")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(own.as_array().unwrap().len(), 2);
    assert!(
        own.as_array()
            .unwrap()
            .iter()
            .all(|t| t["user"] == "viewer" && t.get("token").is_none())
    );
    h.get("viewer", "/api/v1/tokens?user=reviewer")
        .await
        .expect(StatusCode::NOT_FOUND);
    h.send(
        "viewer",
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"user": "reviewer"})),
    )
    .await
    .expect(StatusCode::NOT_FOUND);

    // Another user's token is not the viewer's to revoke; the admin's it is.
    let reviewers = h.get("admin", "/api/v1/tokens?user=reviewer").await.json();
    let reviewer_token = reviewers[0]["id"].as_str().unwrap().to_owned();
    h.send(
        "viewer",
        Method::DELETE,
        &format!("/api/v1/tokens/{reviewer_token}"),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    h.send(
        "viewer",
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    h.api
        .call(Call::new(Method::GET, "/api/v1/session").bearer(&token))
        .await
        .expect(StatusCode::UNAUTHORIZED);

    // Admins: every token of their users; a tenant's admin, its tenant's.
    let all = h.get("admin", "/api/v1/tokens").await.json();
    assert_eq!(all.as_array().unwrap().len(), USERS.len() + 1);
    let acme = h.get("acme-admin", "/api/v1/tokens").await.json();
    assert_eq!(acme.as_array().unwrap().len(), 3);
    h.send(
        "acme-admin",
        Method::DELETE,
        &format!("/api/v1/tokens/{reviewer_token}"),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    let minted = h
        .send(
            "admin",
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"user": "reviewer"})),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(minted["user"], "reviewer");
    h.send(
        "admin",
        Method::DELETE,
        &format!("/api/v1/tokens/{reviewer_token}"),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    h.get("reviewer", "/api/v1/session")
        .await
        .expect(StatusCode::UNAUTHORIZED);
    h.api
        .call(Call::new(Method::GET, "/api/v1/session").bearer(minted["token"].as_str().unwrap()))
        .await
        .expect(StatusCode::OK);
}

on_both_engines!(
    admins_add_list_and_disable_users,
    everyone_manages_their_own_tokens_and_admins_those_of_their_users,
);
