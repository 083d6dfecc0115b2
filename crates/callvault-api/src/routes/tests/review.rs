//! Annotations, review changes and the custom fields an admin defines.

use callvault_catalog::AuditAction;
use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::*;

async fn reviewers_annotate_and_score(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let note = h
        .send(
            "reviewer",
            Method::POST,
            "/api/v1/recordings/r/annotations",
            Some(json!({"text": "greeting skipped"})),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(note["text"], "greeting skipped");
    assert_eq!(note["offset_ms"], Value::Null);
    assert_eq!(note["by"], "reviewer");
    assert_eq!(note["at"], "2026-12-01T09:00:00Z");
    for bad in [
        json!({"text": ""}),
        json!({"text": "x", "offset_ms": -1}),
        json!({"offset_ms": 3}),
    ] {
        let reply = h
            .send(
                "reviewer",
                Method::POST,
                "/api/v1/recordings/r/annotations",
                Some(bad.clone()),
            )
            .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{bad}"
        );
    }
    for (content_type, body, status, code) in [
        (
            "application/json",
            "{\"text\": ",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "application/json",
            "\"just a string\"",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "text/plain",
            "{\"text\": \"x\"}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ] {
        let reply = h
            .api
            .call(
                Call::new(Method::POST, "/api/v1/recordings/r/annotations")
                    .bearer(h.token("reviewer"))
                    .raw(content_type, body),
            )
            .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{body}"
        );
    }

    let changed = h
        .send(
            "reviewer",
            Method::PATCH,
            "/api/v1/recordings/r",
            Some(json!({"score": 5, "categories": ["sales", "sales", "upsell"]})),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(changed["score"], 5);
    assert_eq!(changed["categories"], json!(["sales", "upsell"]));
    // Absent fields stay; null clears.
    let cleared = h
        .send(
            "reviewer",
            Method::PATCH,
            "/api/v1/recordings/r",
            Some(json!({"score": null, "reason": "rescore"})),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(cleared["score"], Value::Null);
    assert_eq!(cleared["categories"], json!(["sales", "upsell"]));
    for (bad, code) in [
        (json!({"score": 6}), "invalid"),
        (
            json!({"custom": {"queue": "billing"}}),
            "unknown_custom_field",
        ),
        (json!({"colour": "red"}), "invalid"),
        (json!({"reason": 5}), "invalid"),
    ] {
        let reply = h
            .send(
                "reviewer",
                Method::PATCH,
                "/api/v1/recordings/r",
                Some(bad.clone()),
            )
            .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, code),
            "{bad}"
        );
    }

    let updates = h.audit(AuditAction::Update).await;
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[1].reason.as_deref(), Some("rescore"));
    assert_eq!(h.audit(AuditAction::Annotate).await.len(), 1);
}

async fn admins_define_custom_fields_that_reviews_then_accept(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    h.send(
        "admin",
        Method::POST,
        "/api/v1/custom-fields",
        Some(json!({"name": "queue", "kind": "text"})),
    )
    .await
    .expect(StatusCode::CREATED);
    h.send(
        "admin",
        Method::POST,
        "/api/v1/custom-fields",
        Some(json!({"name": "order", "kind": "number"})),
    )
    .await
    .expect(StatusCode::CREATED);
    let conflicting = h
        .send(
            "admin",
            Method::POST,
            "/api/v1/custom-fields",
            Some(json!({"name": "queue", "kind": "date"})),
        )
        .await;
    assert_eq!(conflicting.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = h
        .get("viewer", "/api/v1/custom-fields")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        fields,
        json!([{"name": "order", "kind": "number"}, {"name": "queue", "kind": "text"}])
    );

    let reviewed = h
        .send(
            "reviewer",
            Method::PATCH,
            "/api/v1/recordings/r",
            Some(json!({"custom": {"queue": "billing", "order": 1234}})),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        reviewed["custom"],
        json!({"queue": "billing", "order": 1234})
    );
    let wrong_kind = h
        .send(
            "reviewer",
            Method::PATCH,
            "/api/v1/recordings/r",
            Some(json!({"custom": {"order": "many"}})),
        )
        .await;
    assert_eq!(wrong_kind.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The `queue` field names downloads.
    let api = h.api_with(ApiSettings {
        filename_pattern: "{queue}_{recording_id}".to_owned(),
        ..ApiSettings::default()
    });
    let download = api
        .call(Call::new(Method::GET, "/api/v1/recordings/r/audio").bearer(h.token("compliance")))
        .await;
    assert!(
        download
            .header("content-disposition")
            .contains("filename=\"billing_r.wav\""),
        "{}",
        download.header("content-disposition")
    );

    for user in ["reviewer", "compliance", "acme-admin"] {
        h.send(
            user,
            Method::POST,
            "/api/v1/custom-fields",
            Some(json!({"name": "x", "kind": "text"})),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
        h.send(user, Method::DELETE, "/api/v1/custom-fields/queue", None)
            .await
            .expect(StatusCode::FORBIDDEN);
    }
    h.send("admin", Method::DELETE, "/api/v1/custom-fields/queue", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    h.send("admin", Method::DELETE, "/api/v1/custom-fields/queue", None)
        .await
        .expect(StatusCode::NOT_FOUND);
    let fields = h.get("viewer", "/api/v1/custom-fields").await.json();
    assert_eq!(fields, json!([{"name": "order", "kind": "number"}]));
}

on_both_engines!(
    reviewers_annotate_and_score,
    admins_define_custom_fields_that_reviews_then_accept,
);
