//! The audit trail through the routes, and `[api] require_reason`.

use callvault_catalog::AuditAction;
use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::settings::ReasonAction;

async fn the_trail_filters_pages_and_stays_within_a_tenant(h: &Harness) {
    h.recording(
        "ours",
        Some("acme"),
        datetime!(2026-11-30 08:00 UTC),
        TWO_LEGS,
    )
    .await;
    h.recording("theirs", None, datetime!(2026-11-30 09:00 UTC), TWO_LEGS)
        .await;
    for id in ["ours", "theirs", "ours"] {
        h.get(
            "compliance",
            &format!("/api/v1/recordings/{id}/legs/caller/audio"),
        )
        .await
        .expect(StatusCode::OK);
        h.clock.advance(std::time::Duration::from_secs(60));
    }
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/ours/locks",
        Some(json!({"reason": "hold"})),
    )
    .await
    .expect(StatusCode::CREATED);

    let plays = h
        .get("compliance", "/api/v1/audit?action=play")
        .await
        .expect(StatusCode::OK)
        .json();
    let items = plays["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let newest = &items[0];
    assert_eq!(newest["action"], "play");
    assert_eq!(newest["user"], "compliance");
    assert_eq!(newest["recording_id"], "ours");
    assert_eq!(newest["client"], "192.0.2.7");
    assert_eq!(newest["at"], "2026-12-01T09:02:00Z");
    assert!(newest["seq"].is_i64() && newest.get("reason").is_some());

    let by_recording = h
        .get("compliance", "/api/v1/audit?recording_id=theirs")
        .await
        .json();
    assert_eq!(by_recording["items"].as_array().unwrap().len(), 1);
    let window = h
        .get(
            "compliance",
            "/api/v1/audit?since=2026-12-01T09:00:30Z&until=2026-12-01T09:01:30Z",
        )
        .await
        .json();
    assert_eq!(window["items"][0]["recording_id"], "theirs");
    assert_eq!(window["items"].as_array().unwrap().len(), 1);
    let by_user = h
        .get("compliance", "/api/v1/audit?user=nobody")
        .await
        .json();
    assert_eq!(by_user["items"], json!([]));
    let by_reason = h.get("compliance", "/api/v1/audit?reason=HOL").await.json();
    let by_reason = by_reason["items"].as_array().unwrap();
    assert_eq!(by_reason.len(), 1, "{by_reason:?}");
    assert_eq!(
        (&by_reason[0]["action"], &by_reason[0]["reason"]),
        (&json!("lock"), &json!("hold"))
    );

    // Pages of two, newest first, each entry once.
    let mut seqs = Vec::new();
    let mut path = "/api/v1/audit?limit=2".to_owned();
    loop {
        let page = h.get("admin", &path).await.expect(StatusCode::OK).json();
        seqs.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/audit?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut sorted = seqs.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seqs, sorted);
    assert!(
        seqs.len() >= 4 + USERS.len() * 2,
        "users, tokens, plays, the lock: {seqs:?}"
    );

    // A tenant's compliance officer sees the entries of its recordings only.
    let acme = h
        .get("acme-compliance", "/api/v1/audit?action=play")
        .await
        .json();
    assert!(
        acme["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["recording_id"] == "ours")
    );
    assert_eq!(acme["items"].as_array().unwrap().len(), 2);

    for bad in ["action=dance", "since=then", "limit=501", "cursor=nope"] {
        h.get("compliance", &format!("/api/v1/audit?{bad}"))
            .await
            .expect(StatusCode::BAD_REQUEST);
    }
    for user in ["viewer", "reviewer"] {
        h.get(user, "/api/v1/audit")
            .await
            .expect(StatusCode::FORBIDDEN);
    }
}

async fn configured_actions_need_a_reason_from_the_list(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    h.start("live", None, datetime!(2026-11-30 09:00 UTC), TWO_LEGS)
        .await;
    h.live.start("live");
    let api = h.api_with(ApiSettings {
        require_reason: vec![
            ReasonAction::Play,
            ReasonAction::Download,
            ReasonAction::Delete,
            ReasonAction::Annotate,
            ReasonAction::Pause,
        ],
        reasons: vec!["Customer complaint".to_owned(), "Quality review".to_owned()],
        ..ApiSettings::default()
    });
    let call = |method: Method, path: &str| Call::new(method, path).bearer(h.token("admin"));
    for request in [
        call(Method::GET, "/api/v1/recordings/r/legs/caller/audio"),
        call(Method::GET, "/api/v1/recordings/r/audio"),
        call(Method::POST, "/api/v1/downloads").json(json!({"ids": ["r"]})),
        call(Method::POST, "/api/v1/recordings/r/annotations").json(json!({"text": "x"})),
        call(Method::POST, "/api/v1/recordings/live/pause"),
        call(Method::GET, "/api/v1/recordings/r/legs/caller/audio")
            .header(crate::REASON_HEADER, "  "),
    ] {
        let reply = api.call(request).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "reason_required")
        );
    }
    let reply = api
        .call(
            call(Method::GET, "/api/v1/recordings/r/legs/caller/audio")
                .header(crate::REASON_HEADER, "curiosity"),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "reason_not_allowed")
    );
    assert!(
        h.audit(AuditAction::Play).await.is_empty(),
        "nothing refused is audited"
    );

    // Header, query parameter, body: each carries it.
    api.call(
        call(Method::GET, "/api/v1/recordings/r/legs/caller/audio")
            .header(crate::REASON_HEADER, "Quality review"),
    )
    .await
    .expect(StatusCode::OK);
    api.call(call(
        Method::GET,
        "/api/v1/recordings/r/audio?reason=Customer%20complaint",
    ))
    .await
    .expect(StatusCode::OK);
    api.call(
        call(Method::POST, "/api/v1/recordings/live/pause")
            .json(json!({"reason": "Quality review"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    // Not listed in require_reason: no reason needed.
    api.call(call(Method::POST, "/api/v1/recordings/live/resume"))
        .await
        .expect(StatusCode::NO_CONTENT);
    api.call(
        call(Method::DELETE, "/api/v1/recordings/r").json(json!({"reason": "Customer complaint"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    let audited = |entries: Vec<callvault_catalog::AuditEntry>| -> Vec<(String, Option<String>, Option<String>)> {
        entries.into_iter().map(|e| (e.user, e.reason, e.client)).collect()
    };
    let client = Some("192.0.2.7".to_owned());
    assert_eq!(
        audited(h.audit(AuditAction::Play).await),
        [(
            "admin".to_owned(),
            Some("Quality review".to_owned()),
            client.clone()
        )]
    );
    assert_eq!(
        audited(h.audit(AuditAction::Download).await),
        [(
            "admin".to_owned(),
            Some("Customer complaint".to_owned()),
            client.clone()
        )]
    );
    assert_eq!(
        audited(h.audit(AuditAction::Pause).await),
        [(
            "admin".to_owned(),
            Some("Quality review".to_owned()),
            client.clone()
        )]
    );
    assert_eq!(
        audited(h.audit(AuditAction::Resume).await),
        [("admin".to_owned(), None, client.clone())]
    );
    assert_eq!(
        audited(h.audit(AuditAction::Delete).await),
        [(
            "admin".to_owned(),
            Some("Customer complaint".to_owned()),
            client
        )]
    );

    // A reason longer than the catalog keeps is refused.
    let too_long = "x".repeat(1001);
    let reply = api
        .call(call(
            Method::GET,
            &format!("/api/v1/recordings/live/legs/caller/audio?reason={too_long}"),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
}

on_both_engines!(
    the_trail_filters_pages_and_stays_within_a_tenant,
    configured_actions_need_a_reason_from_the_list,
);
