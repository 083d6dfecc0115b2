//! Pause and resume through the routes, against the in-memory live recorder.

use callvault_catalog::AuditAction;
use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::*;

async fn a_live_recording_pauses_and_resumes_once_each(h: &Harness) {
    h.start("live", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    h.live.start("live");
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/live/pause",
        Some(json!({"reason": "card entry"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(h.live.state("live"), Some((true, "compliance".to_owned())));
    let again = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/recordings/live/pause",
            None,
        )
        .await;
    assert_eq!(
        (again.status, again.code().as_str()),
        (StatusCode::CONFLICT, "already_paused")
    );
    h.send(
        "admin",
        Method::POST,
        "/api/v1/recordings/live/resume",
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(h.live.state("live"), Some((false, "admin".to_owned())));
    let again = h
        .send(
            "admin",
            Method::POST,
            "/api/v1/recordings/live/resume",
            None,
        )
        .await;
    assert_eq!(
        (again.status, again.code().as_str()),
        (StatusCode::CONFLICT, "not_paused")
    );

    let pauses = h.audit(AuditAction::Pause).await;
    assert_eq!(pauses.len(), 1, "a refused pause is not audited");
    assert_eq!(
        (pauses[0].user.as_str(), pauses[0].reason.as_deref()),
        ("compliance", Some("card entry"))
    );
    assert_eq!(pauses[0].recording_id.as_deref(), Some("live"));
    assert_eq!(pauses[0].client.as_deref(), Some("192.0.2.7"));
    let resumes = h.audit(AuditAction::Resume).await;
    assert_eq!(resumes.len(), 1);
    assert_eq!(resumes[0].user, "admin");
}

async fn only_a_recording_being_recorded_can_pause(h: &Harness) {
    h.recording("ended", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    // Ended: 409, even if the live recorder (wrongly) still knew it.
    h.live.start("ended");
    let reply = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/recordings/ended/pause",
            None,
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::CONFLICT, "not_active")
    );
    assert_eq!(h.live.state("ended"), Some((false, String::new())));
    // Active in the catalog but not recorded here (another node): 409 too.
    h.start("elsewhere", None, datetime!(2026-11-30 09:00 UTC), TWO_LEGS)
        .await;
    let reply = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/recordings/elsewhere/resume",
            None,
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::CONFLICT, "not_active")
    );
    // Unknown: 404.
    let reply = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/recordings/nope/pause",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // Reviewers may not.
    h.live.start("elsewhere");
    h.send(
        "reviewer",
        Method::POST,
        "/api/v1/recordings/elsewhere/pause",
        None,
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    assert_eq!(h.live.state("elsewhere"), Some((false, String::new())));
}

on_both_engines!(
    a_live_recording_pauses_and_resumes_once_each,
    only_a_recording_being_recorded_can_pause,
);
