//! Finding and reading recordings: every filter, keyset pages, the full object, and tenants.

use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::*;

async fn search_applies_every_filter(h: &Harness) {
    h.recording("r-early", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    h.recording(
        "r-late",
        Some("acme"),
        datetime!(2026-11-30 12:00 UTC),
        TWO_LEGS,
    )
    .await;
    h.start("r-live", None, datetime!(2026-11-30 13:00 UTC), TWO_LEGS)
        .await;
    h.catalog
        .add_dtmf(
            "r-late",
            &callvault_catalog::testing::dtmf(0, "5", "caller", 100),
        )
        .await
        .unwrap();
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/r-early/locks",
        Some(json!({"reason": "LegalHold#245"})),
    )
    .await
    .expect(StatusCode::CREATED);

    let found = |query: &'static str| async move {
        let reply = h
            .get("viewer", &format!("/api/v1/recordings?{query}"))
            .await
            .expect(StatusCode::OK);
        ids(&reply.json())
    };
    assert_eq!(found("").await, ["r-live", "r-late", "r-early"]);
    assert_eq!(
        found("since=2026-11-30T10:00:00Z").await,
        ["r-live", "r-late"]
    );
    assert_eq!(found("until=2026-11-30T12:00:00Z").await, ["r-early"]);
    assert_eq!(
        found("since=2026-11-30T11:00:00%2B02:00&until=2026-11-30T12:30:00Z").await,
        ["r-late"]
    );
    assert_eq!(found("party=ALICE-R-LATE").await, ["r-late"]);
    assert_eq!(found("party=bob").await.len(), 3);
    assert_eq!(
        found("call_id=ingress-r-early%40src.example").await,
        ["r-early"]
    );
    assert_eq!(found("session_id=session-r-late").await, ["r-late"]);
    assert_eq!(found("id=session-r-live").await, ["r-live"]);
    assert_eq!(found("digits=5").await, ["r-late"]);
    assert_eq!(found("state=active").await, ["r-live"]);
    assert_eq!(found("state=complete").await, ["r-late", "r-early"]);
    assert_eq!(found("locked=true").await, ["r-early"]);
    assert_eq!(found("locked=false").await, ["r-live", "r-late"]);
    assert_eq!(
        found("min_duration_ms=1000&max_duration_ms=1000").await,
        ["r-late", "r-early"]
    );
    assert_eq!(found("max_duration_ms=999").await, Vec::<String>::new());
    assert_eq!(found("tenant=acme").await, ["r-late"]);
    assert_eq!(found("annotated=false").await.len(), 3);

    // The items carry the contract's fields.
    let page = h
        .get("viewer", "/api/v1/recordings?locked=true")
        .await
        .json();
    let item = &page["items"][0];
    for field in [
        "id",
        "session_id",
        "ingress_call_id",
        "egress_call_id",
        "mode",
        "route",
        "final_status",
        "hung_up_by",
        "from",
        "to",
        "started_at",
        "legs",
        "participants",
        "dtmf",
        "state",
        "tenant",
        "locked",
        "score",
        "annotation_count",
    ] {
        assert!(item.get(field).is_some(), "{field} missing from {item}");
    }
    assert_eq!(item["locked"], true);
    assert_eq!(item["mode"], "siprec");
    assert_eq!(page["next_cursor"], Value::Null);

    for bad in [
        "since=yesterday",
        "state=lost",
        "locked=maybe",
        "limit=501",
        "limit=0",
        "cursor=bogus",
        "digits=x",
        "colour=red",
    ] {
        let reply = h.get("viewer", &format!("/api/v1/recordings?{bad}")).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }
}

async fn cursors_page_through_everything_once(h: &Harness) {
    for i in 0..7 {
        // Three share a start time: the id breaks the tie.
        let at = datetime!(2026-11-30 08:00 UTC) + time::Duration::minutes(i64::from(i / 3 * 10));
        h.recording(&format!("r{i}"), None, at, &TWO_LEGS[..1])
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/recordings?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page = h.get("viewer", &path).await.expect(StatusCode::OK).json();
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 3);
        seen.extend(page_ids);
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/recordings?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
}

async fn details_carry_locks_annotations_and_the_review(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/r/locks",
        Some(json!({"reason": "LegalHold#245"})),
    )
    .await
    .expect(StatusCode::CREATED);
    h.send(
        "reviewer",
        Method::POST,
        "/api/v1/recordings/r/annotations",
        Some(json!({"text": "card number read out", "offset_ms": 4200})),
    )
    .await
    .expect(StatusCode::CREATED);
    h.send(
        "reviewer",
        Method::PATCH,
        "/api/v1/recordings/r",
        Some(
            json!({"score": 4, "complete": true, "categories": ["billing"], "review_seconds": 90}),
        ),
    )
    .await
    .expect(StatusCode::OK);
    let details = h
        .get("viewer", "/api/v1/recordings/r")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(details["id"], "r");
    assert_eq!(details["locks"][0]["reason"], "LegalHold#245");
    assert_eq!(details["locks"][0]["by"], "compliance");
    assert!(details["locks"][0]["id"].is_string() && details["locks"][0]["at"].is_string());
    assert_eq!(details["annotations"][0]["text"], "card number read out");
    assert_eq!(details["annotations"][0]["offset_ms"], 4200);
    assert_eq!(details["annotations"][0]["by"], "reviewer");
    assert_eq!(details["score"], 4);
    assert_eq!(details["complete"], true);
    assert_eq!(details["categories"], json!(["billing"]));
    assert_eq!(details["review_seconds"], 90);
    assert_eq!(details["custom"], json!({}));
    assert_eq!(details["paused"], json!([]));
    assert_eq!(details["locked"], true);
    assert_eq!(details["annotation_count"], 1);
    assert_eq!(details["legs"].as_array().unwrap().len(), 2);

    let missing = h.get("viewer", "/api/v1/recordings/nope").await;
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

async fn a_tenant_sees_and_touches_only_its_own_recordings(h: &Harness) {
    h.recording(
        "ours",
        Some("acme"),
        datetime!(2026-11-30 08:00 UTC),
        TWO_LEGS,
    )
    .await;
    h.recording(
        "theirs",
        Some("globex"),
        datetime!(2026-11-30 09:00 UTC),
        TWO_LEGS,
    )
    .await;
    h.recording("nobodys", None, datetime!(2026-11-30 10:00 UTC), TWO_LEGS)
        .await;

    let all = h.get("viewer", "/api/v1/recordings").await.json();
    assert_eq!(ids(&all), ["nobodys", "theirs", "ours"]);
    let acme = h.get("acme-viewer", "/api/v1/recordings").await.json();
    assert_eq!(ids(&acme), ["ours"]);
    // Asking for another tenant within one's own finds nothing, and leaks nothing.
    let other = h
        .get("acme-viewer", "/api/v1/recordings?tenant=globex")
        .await
        .json();
    assert_eq!(ids(&other), Vec::<String>::new());
    let by_id = h
        .get("acme-viewer", "/api/v1/recordings?id=theirs")
        .await
        .json();
    assert_eq!(ids(&by_id), Vec::<String>::new());

    h.get("acme-viewer", "/api/v1/recordings/ours")
        .await
        .expect(StatusCode::OK);
    // Another tenant's recording is absent, whatever is asked of it.
    for id in ["theirs", "nobodys"] {
        for (user, method, path, body) in [
            (
                "acme-viewer",
                Method::GET,
                format!("/api/v1/recordings/{id}"),
                None,
            ),
            (
                "acme-viewer",
                Method::GET,
                format!("/api/v1/recordings/{id}/legs/caller/audio"),
                None,
            ),
            (
                "acme-compliance",
                Method::GET,
                format!("/api/v1/recordings/{id}/audio"),
                None,
            ),
            (
                "acme-compliance",
                Method::POST,
                format!("/api/v1/recordings/{id}/locks"),
                Some(json!({"reason": "x"})),
            ),
            (
                "acme-compliance",
                Method::DELETE,
                format!("/api/v1/recordings/{id}"),
                Some(json!({"reason": "x"})),
            ),
            (
                "acme-compliance",
                Method::POST,
                format!("/api/v1/recordings/{id}/pause"),
                None,
            ),
            (
                "acme-admin",
                Method::PATCH,
                format!("/api/v1/recordings/{id}"),
                Some(json!({"score": 1})),
            ),
            (
                "acme-admin",
                Method::POST,
                format!("/api/v1/recordings/{id}/annotations"),
                Some(json!({"text": "x"})),
            ),
            (
                "acme-compliance",
                Method::POST,
                "/api/v1/downloads".to_owned(),
                Some(json!({"ids": [id]})),
            ),
        ] {
            let reply = h.send(user, method.clone(), &path, body).await;
            assert_eq!(
                (reply.status, reply.code().as_str()),
                (StatusCode::NOT_FOUND, "not_found"),
                "{user} {method} {path}"
            );
        }
    }
    assert!(exists(&h.path("recordings/2026/11/30/theirs/0-caller.wav")));
    let theirs = h.get("admin", "/api/v1/recordings/theirs").await.json();
    assert_eq!(theirs["locked"], false);
    assert_eq!(theirs["annotation_count"], 0);
}

async fn every_metadata_revision_is_read_in_order_within_the_tenant(h: &Harness) {
    h.recording("r", Some("acme"), datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    for (number, datamode) in [(2, "partial"), (1, "complete")] {
        h.catalog
            .add_metadata_revision(
                "r",
                &callvault_catalog::NewMetadataRevision {
                    number,
                    received_at: datetime!(2026-11-30 08:00 UTC) + time::Duration::seconds(number),
                    datamode: Some(datamode.to_owned()),
                    raw_xml: format!("<recording n=\"{number}\"/>"),
                    participants: Vec::new(),
                },
            )
            .await
            .unwrap();
    }
    let revisions = h
        .get("acme-viewer", "/api/v1/recordings/r/metadata")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        revisions,
        json!([
            {"number": 1, "received_at": "2026-11-30T08:00:01Z", "datamode": "complete",
             "raw_xml": "<recording n=\"1\"/>"},
            {"number": 2, "received_at": "2026-11-30T08:00:02Z", "datamode": "partial",
             "raw_xml": "<recording n=\"2\"/>"},
        ])
    );
    // Outside the tenant it does not exist; deleted, its metadata went with it.
    h.recording("theirs", None, datetime!(2026-11-30 09:00 UTC), TWO_LEGS)
        .await;
    h.get("acme-viewer", "/api/v1/recordings/theirs/metadata")
        .await
        .expect(StatusCode::NOT_FOUND);
    h.get("viewer", "/api/v1/recordings/theirs/metadata")
        .await
        .expect(StatusCode::OK);
    h.send(
        "compliance",
        Method::DELETE,
        "/api/v1/recordings/r",
        Some(json!({"reason": "test"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    h.get("viewer", "/api/v1/recordings/r/metadata")
        .await
        .expect(StatusCode::GONE);
}

on_both_engines!(
    every_metadata_revision_is_read_in_order_within_the_tenant,
    search_applies_every_filter,
    cursors_page_through_everything_once,
    details_carry_locks_annotations_and_the_review,
    a_tenant_sees_and_touches_only_its_own_recordings,
);
