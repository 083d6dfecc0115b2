//! Locks and deletion: a lock blocks deletion until removed; a deletion removes the files and
//! leaves a tombstone that the GET and searches show, while media answers 410.

use callvault_catalog::AuditAction;
use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::*;

async fn a_locked_recording_is_deleted_only_once_every_lock_is_removed(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let folder = "recordings/2026/11/30/r";
    let first = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/recordings/r/locks",
            Some(json!({"reason": "LegalHold#245"})),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(first["reason"], "LegalHold#245");
    assert_eq!(first["by"], "compliance");
    assert_eq!(first["recording_id"], "r");
    let second = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/recordings/r/locks",
            Some(json!({"reason": "Matter 7"})),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    let search = h
        .get("viewer", "/api/v1/recordings?locked=true")
        .await
        .json();
    assert_eq!(ids(&search), ["r"]);

    let refused = h
        .send(
            "admin",
            Method::DELETE,
            "/api/v1/recordings/r",
            Some(json!({"reason": "retention"})),
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(refused.code(), "locked");
    assert!(exists(&h.path(&format!("{folder}/0-caller.wav"))));

    let first_id = first["id"].as_str().unwrap();
    h.send(
        "compliance",
        Method::DELETE,
        &format!("/api/v1/recordings/r/locks/{first_id}"),
        Some(json!({"reason": "matter closed"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    // Removing it again, or a lock that never was: not in force.
    for lock in [first_id, "no-such-lock"] {
        let reply = h
            .send(
                "compliance",
                Method::DELETE,
                &format!("/api/v1/recordings/r/locks/{lock}"),
                None,
            )
            .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
    h.send(
        "compliance",
        Method::DELETE,
        "/api/v1/recordings/r",
        Some(json!({"reason": "retention"})),
    )
    .await
    .expect(StatusCode::CONFLICT);
    // Unlocked without a body: the reason is optional.
    h.send(
        "compliance",
        Method::DELETE,
        &format!(
            "/api/v1/recordings/r/locks/{}",
            second["id"].as_str().unwrap()
        ),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    let no_reason = h
        .send("compliance", Method::DELETE, "/api/v1/recordings/r", None)
        .await;
    assert_eq!(
        (no_reason.status, no_reason.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "reason_required")
    );
    h.send(
        "compliance",
        Method::DELETE,
        "/api/v1/recordings/r",
        Some(json!({"reason": "customer asked (GDPR art. 17)"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    // The files are gone, metadata included, and the tombstone stays.
    assert!(
        !exists(&h.path(folder)),
        "the recording's folder is removed"
    );
    let tombstone = h
        .get("viewer", "/api/v1/recordings/r")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(tombstone["state"], "deleted");
    assert_eq!(tombstone["deleted_by"], "compliance");
    assert_eq!(tombstone["delete_reason"], "customer asked (GDPR art. 17)");
    assert_eq!(tombstone["deleted_at"], "2026-12-01T09:00:00Z");
    assert_eq!(tombstone["legs"], json!([]));
    assert_eq!(tombstone["deleted_legs"][0]["sha256"], "cd".repeat(32));
    let search = h
        .get("viewer", "/api/v1/recordings?state=deleted")
        .await
        .json();
    assert_eq!(ids(&search), ["r"]);
    assert_eq!(search["items"][0]["deleted_by"], "compliance");

    // Media and changes answer 410 now.
    for (user, method, path, body) in [
        (
            "viewer",
            Method::GET,
            "/api/v1/recordings/r/legs/caller/audio",
            None,
        ),
        (
            "compliance",
            Method::GET,
            "/api/v1/recordings/r/audio",
            None,
        ),
        (
            "compliance",
            Method::GET,
            "/api/v1/recordings/r/audio?format=mp3",
            None,
        ),
        (
            "compliance",
            Method::POST,
            "/api/v1/downloads",
            Some(json!({"ids": ["r"]})),
        ),
        (
            "compliance",
            Method::POST,
            "/api/v1/recordings/r/locks",
            Some(json!({"reason": "too late"})),
        ),
        (
            "compliance",
            Method::DELETE,
            "/api/v1/recordings/r",
            Some(json!({"reason": "again"})),
        ),
        (
            "reviewer",
            Method::POST,
            "/api/v1/recordings/r/annotations",
            Some(json!({"text": "x"})),
        ),
        (
            "reviewer",
            Method::PATCH,
            "/api/v1/recordings/r",
            Some(json!({"score": 2})),
        ),
        (
            "compliance",
            Method::POST,
            "/api/v1/recordings/r/pause",
            None,
        ),
    ] {
        let reply = h.send(user, method.clone(), path, body).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::GONE, "deleted"),
            "{method} {path}"
        );
    }

    let deletions = h.audit(AuditAction::Delete).await;
    assert_eq!(deletions.len(), 1);
    assert_eq!(
        deletions[0].reason.as_deref(),
        Some("customer asked (GDPR art. 17)")
    );
    assert_eq!(deletions[0].client.as_deref(), Some("192.0.2.7"));
    let locks: Vec<_> = h
        .audit(AuditAction::Lock)
        .await
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(
        locks,
        [
            Some("LegalHold#245".to_owned()),
            Some("Matter 7".to_owned())
        ]
    );
    let unlocks: Vec<_> = h
        .audit(AuditAction::Unlock)
        .await
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(unlocks, [Some("matter closed".to_owned()), None]);
}

async fn a_recording_still_being_recorded_cannot_be_deleted(h: &Harness) {
    h.start("live", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let reply = h
        .send(
            "compliance",
            Method::DELETE,
            "/api/v1/recordings/live",
            Some(json!({"reason": "oops"})),
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(reply.code(), "active");
    assert!(exists(&h.path("recordings/2026/11/30/live/0-caller.wav")));
    // The reason may come in the header too.
    h.recording("ended", None, datetime!(2026-11-30 09:00 UTC), TWO_LEGS)
        .await;
    h.api
        .call(
            Call::new(Method::DELETE, "/api/v1/recordings/ended")
                .bearer(h.token("compliance"))
                .header(crate::REASON_HEADER, "retention"),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(!exists(&h.path("recordings/2026/11/30/ended")));
}

async fn a_lock_needs_a_reason(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    for body in [json!({}), json!({"reason": "   "})] {
        let reply = h
            .send(
                "compliance",
                Method::POST,
                "/api/v1/recordings/r/locks",
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let missing = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/recordings/nope/locks",
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// Locks, unlocks and deletions the catalog committed are told to the listener (the binary's
/// webhooks), each once, in order; refused ones are not.
async fn committed_changes_are_told_to_the_listener(h: &Harness) {
    use crate::RecordingChange;
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let lock = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/recordings/r/locks",
            Some(json!({"reason": "LegalHold#245"})),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    let lock_id = lock["id"].as_str().unwrap().to_owned();
    h.send(
        "admin",
        Method::DELETE,
        "/api/v1/recordings/r",
        Some(json!({"reason": "retention"})),
    )
    .await
    .expect(StatusCode::CONFLICT);
    h.send(
        "viewer",
        Method::POST,
        "/api/v1/recordings/r/locks",
        Some(json!({"reason": "not allowed"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    assert_eq!(
        h.events.taken(),
        [(
            "r".to_owned(),
            RecordingChange::Locked {
                lock_id: lock_id.clone()
            }
        )]
    );
    h.send(
        "compliance",
        Method::DELETE,
        &format!("/api/v1/recordings/r/locks/{lock_id}"),
        Some(json!({"reason": "matter closed"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    h.send(
        "admin",
        Method::DELETE,
        "/api/v1/recordings/r",
        Some(json!({"reason": "customer request"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        h.events.taken(),
        [
            ("r".to_owned(), RecordingChange::Unlocked { lock_id }),
            ("r".to_owned(), RecordingChange::Deleted),
        ]
    );
}

on_both_engines!(
    committed_changes_are_told_to_the_listener,
    a_locked_recording_is_deleted_only_once_every_lock_is_removed,
    a_recording_still_being_recorded_cannot_be_deleted,
    a_lock_needs_a_reason,
);
