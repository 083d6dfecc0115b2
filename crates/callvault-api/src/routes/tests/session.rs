//! Browser sign-in: the cookie's attributes, the CSRF token, sign-out, the rate limit, and the
//! audit of sign-ins.

use std::time::Duration;

use callvault_catalog::AuditAction;
use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::*;

fn sign_in(user: &str, password: &str) -> Call {
    Call::new(Method::POST, "/api/v1/session").json(json!({"username": user, "password": password}))
}

/// The `name=value` of a `Set-Cookie`.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn a_browser_signs_in_works_with_its_csrf_token_and_signs_out(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let reply = h
        .api
        .call(sign_in("reviewer", PASSWORD))
        .await
        .expect(StatusCode::OK);
    let set_cookie = reply.header("set-cookie").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api", "Max-Age=28800"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(
        !set_cookie.contains("Secure"),
        "not configured: {set_cookie}"
    );
    let info = reply.json();
    assert_eq!(info["user"], "reviewer");
    assert_eq!(info["role"], "reviewer");
    assert_eq!(info["tenant"], Value::Null);
    assert_eq!(
        info["permissions"],
        json!(["view", "play", "annotate", "write_transcript"])
    );
    let csrf = info["csrf_token"].as_str().unwrap().to_owned();
    let cookie = cookie_pair(&set_cookie);
    assert!(
        !cookie.contains(&csrf),
        "the CSRF token is not in the cookie"
    );

    // Reads need the cookie only.
    let me = h
        .api
        .call(Call::new(Method::GET, "/api/v1/session").header("cookie", &cookie))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(me["csrf_token"], csrf);
    h.api
        .call(
            Call::new(Method::GET, "/api/v1/recordings/r")
                .header("cookie", &format!("theme=dark; {cookie}")),
        )
        .await
        .expect(StatusCode::OK);

    // Changes need the CSRF header too.
    let note = |csrf: Option<&str>| {
        let mut call = Call::new(Method::POST, "/api/v1/recordings/r/annotations")
            .header("cookie", &cookie)
            .json(json!({"text": "checked"}));
        if let Some(csrf) = csrf {
            call = call.header(crate::CSRF_HEADER, csrf);
        }
        h.api.call(call)
    };
    for wrong in [None, Some("not-the-token"), Some("")] {
        let reply = note(wrong).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::FORBIDDEN, "csrf"),
            "{wrong:?}"
        );
    }
    note(Some(&csrf)).await.expect(StatusCode::CREATED);
    let details = h.get("viewer", "/api/v1/recordings/r").await.json();
    assert_eq!(
        details["annotation_count"], 1,
        "only the request with the token changed anything"
    );

    // Sign-out needs the token as well, then the cookie is worthless.
    h.api
        .call(Call::new(Method::DELETE, "/api/v1/session").header("cookie", &cookie))
        .await
        .expect(StatusCode::FORBIDDEN);
    let out = h
        .api
        .call(
            Call::new(Method::DELETE, "/api/v1/session")
                .header("cookie", &cookie)
                .header(crate::CSRF_HEADER, &csrf),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    h.api
        .call(Call::new(Method::GET, "/api/v1/session").header("cookie", &cookie))
        .await
        .expect(StatusCode::UNAUTHORIZED);

    // A bearer token needs no CSRF header, and whoami says so.
    let me = h
        .get("admin", "/api/v1/session")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(me["csrf_token"], Value::Null);
    assert_eq!(
        me["permissions"].as_array().unwrap().len(),
        15,
        "every permission: export, share, restrict, view_restricted, manage_retention and write_transcript included"
    );

    let logins = h.audit(AuditAction::Login).await;
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].user, "reviewer");
    assert_eq!(logins[0].client.as_deref(), Some("192.0.2.7"));
}

async fn a_session_expires_and_ends_with_its_user(h: &Harness) {
    let api = h.api_with(ApiSettings {
        cookie_secure: true,
        session_lifetime_s: 600,
        ..ApiSettings::default()
    });
    let reply = api
        .call(sign_in("acme-viewer", PASSWORD))
        .await
        .expect(StatusCode::OK);
    assert!(reply.header("set-cookie").contains("Secure"));
    assert_eq!(reply.json()["tenant"], "acme");
    let cookie = cookie_pair(reply.header("set-cookie"));
    let whoami = || api.call(Call::new(Method::GET, "/api/v1/session").header("cookie", &cookie));
    h.clock.advance(Duration::from_secs(599));
    whoami().await.expect(StatusCode::OK);
    h.clock.advance(Duration::from_secs(1));
    whoami().await.expect(StatusCode::UNAUTHORIZED);

    // Disabling a user ends their sessions at once.
    let reply = api
        .call(sign_in("viewer", PASSWORD))
        .await
        .expect(StatusCode::OK);
    let cookie = cookie_pair(reply.header("set-cookie"));
    h.send("admin", Method::POST, "/api/v1/users/viewer/disable", None)
        .await
        .expect(StatusCode::OK);
    api.call(Call::new(Method::GET, "/api/v1/session").header("cookie", &cookie))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let refused = api.call(sign_in("viewer", PASSWORD)).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (StatusCode::UNAUTHORIZED, "login_failed")
    );
}

async fn wrong_passwords_are_refused_audited_and_rate_limited(h: &Harness) {
    let api = h.api_with(ApiSettings {
        login_attempts_per_minute_per_client: 3,
        login_attempts_per_minute_per_user: 5,
        ..ApiSettings::default()
    });
    for (user, password) in [
        ("viewer", "wrong password"),
        ("nobody", PASSWORD),
        ("viewer", ""),
    ] {
        let reply = api.call(sign_in(user, password)).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::UNAUTHORIZED, "login_failed")
        );
        assert_eq!(reply.header("set-cookie"), "");
    }
    // The fourth attempt within the minute from this address, right password or not.
    let limited = api.call(sign_in("viewer", PASSWORD)).await;
    assert_eq!(
        (limited.status, limited.code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert_eq!(limited.header("retry-after"), "20");
    // Another address is not limited by this one's bucket.
    api.call(sign_in("viewer", PASSWORD).from([198, 51, 100, 1]))
        .await
        .expect(StatusCode::OK);
    // One token comes back every 20 s.
    h.clock.advance(Duration::from_secs(20));
    api.call(sign_in("viewer", PASSWORD))
        .await
        .expect(StatusCode::OK);
    api.call(sign_in("viewer", PASSWORD))
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);

    // Per user name: five attempts a minute whatever the address.
    h.clock.advance(Duration::from_secs(60));
    for i in 0..5_u8 {
        let reply = api
            .call(sign_in("admin", "guess").from([203, 0, 113, i]))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let limited = api
        .call(sign_in("admin", PASSWORD).from([203, 0, 113, 99]))
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    api.call(sign_in("reviewer", PASSWORD).from([203, 0, 113, 99]))
        .await
        .expect(StatusCode::OK);

    let logins = h.audit(AuditAction::Login).await;
    let summary: Vec<(String, String)> = logins
        .iter()
        .map(|e| (e.user.clone(), e.detail.clone().unwrap()))
        .collect();
    assert_eq!(
        summary.len(),
        3 + 2 + 5 + 1,
        "every attempt that reached a password check: {summary:?}"
    );
    assert_eq!(
        summary[0],
        (
            "viewer".to_owned(),
            "failed: wrong user name or password".to_owned()
        )
    );
    assert_eq!(summary[1].0, "nobody");
    assert_eq!(summary[3], ("viewer".to_owned(), "signed in".to_owned()));
    assert_eq!(logins[3].client.as_deref(), Some("198.51.100.1"));

    for body in [
        json!({"username": "viewer"}),
        json!({"user": "viewer", "password": "x"}),
    ] {
        h.api
            .call(
                Call::new(Method::POST, "/api/v1/session")
                    .json(body)
                    .from([198, 51, 100, 2]),
            )
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
    }
    // A form of another site cannot sign a browser in: the body must be JSON.
    h.api
        .call(
            Call::new(Method::POST, "/api/v1/session")
                .raw(
                    "application/x-www-form-urlencoded",
                    "username=viewer&password=x",
                )
                .from([198, 51, 100, 2]),
        )
        .await
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

on_both_engines!(
    a_browser_signs_in_works_with_its_csrf_token_and_signs_out,
    a_session_expires_and_ends_with_its_user,
    wrong_passwords_are_refused_audited_and_rate_limited,
);
