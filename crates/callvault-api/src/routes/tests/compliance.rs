//! Compliance: retention (dry run against a real run, locks and "never expire" in the way,
//! media-only expiry, `[retention] days`, the audit period), legal matters (held now and at
//! completion, released without touching other locks), restricted recordings, per-role
//! `max_age_days`, transcripts found by the search, and reasons typed beside a pick list.

use std::collections::BTreeMap;

use callvault_catalog::{AuditAction, AuditVerification, Role, Scope};
use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::retention::{RetentionSettings, sweep};
use crate::settings::{ReasonAction, RoleSettings};

/// Old enough for a 30-day period at the tests' T0 (2026-12-01).
const OLD: time::OffsetDateTime = datetime!(2026-10-01 08:00 UTC);
const RECENT: time::OffsetDateTime = datetime!(2026-11-30 08:00 UTC);

fn folder(id: &str, at: time::OffsetDateTime) -> String {
    format!(
        "recordings/{:04}/{:02}/{:02}/{id}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

/// `(recording id, outcome, held)` of a report's items, sorted.
fn outcomes(report: &Value) -> Vec<(String, String, String)> {
    let mut found: Vec<_> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["recording_id"].as_str().unwrap().to_owned(),
                i["outcome"].as_str().unwrap().to_owned(),
                i["held"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

fn row(id: &str, outcome: &str, held: &str) -> (String, String, String) {
    (id.to_owned(), outcome.to_owned(), held.to_owned())
}

async fn retention_dry_run_lists_what_the_run_deletes_and_holds_locked_and_never_expire(
    h: &Harness,
) {
    for id in ["a", "b", "c"] {
        h.recording(id, Some("acme"), OLD, TWO_LEGS).await;
    }
    h.recording("fresh", Some("acme"), RECENT, TWO_LEGS).await;
    h.recording("untenanted", None, OLD, TWO_LEGS).await;
    h.start("live", Some("acme"), OLD, TWO_LEGS).await;
    let policy = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/retention/policies",
            Some(json!({"name": "acme-30", "tenant": "acme", "metadata_days": 30})),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(policy["metadata_days"], 30);
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/retention/policies",
        Some(json!({"name": "acme-30", "metadata_days": 1})),
    )
    .await
    .expect(StatusCode::CONFLICT);
    h.send(
        "viewer",
        Method::POST,
        "/api/v1/retention/policies",
        Some(json!({"name": "x", "metadata_days": 1})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/b/locks",
        Some(json!({"reason": "LegalHold#1"})),
    )
    .await
    .expect(StatusCode::CREATED);
    h.send(
        "compliance",
        Method::PUT,
        "/api/v1/recordings/c/never-expire",
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        h.get("viewer", "/api/v1/recordings?never_expire=true")
            .await
            .json()["items"][0]["id"],
        "c"
    );

    h.get("reviewer", "/api/v1/retention/dry-run")
        .await
        .expect(StatusCode::FORBIDDEN);
    let dry = h
        .get("compliance", "/api/v1/retention/dry-run")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(dry["dry_run"], true);
    // The untenanted recording matches no policy and no [retention] days: kept; the fresh one
    // is too young; the live one is held while it is recorded.
    assert_eq!(
        outcomes(&dry),
        [
            row("a", "would_delete", ""),
            row("b", "held", "locked"),
            row("c", "held", "never_expire"),
            row("live", "held", "active"),
        ]
    );
    let a = dry["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["recording_id"] == "a")
        .unwrap();
    assert_eq!(a["rule"], "acme-30");
    assert_eq!(a["actor"], "policy:acme-30");
    assert_eq!(a["expiry"], "metadata");
    assert_eq!(a["age_days"], 61);
    // A dry run changes nothing.
    assert!(exists(
        &h.path(&format!("{}/0-caller.wav", folder("a", OLD)))
    ));
    assert!(h.audit(AuditAction::Delete).await.is_empty());

    // The real run (the server's sweeper), with [retention] days for what no policy matches.
    let settings = RetentionSettings {
        days: Some(60),
        ..RetentionSettings::default()
    };
    let report = sweep(
        &h.catalog,
        h.data.path(),
        None,
        &settings,
        &*h.events,
        T0,
        true,
    )
    .await
    .unwrap();
    let report = serde_json::to_value(&report).unwrap();
    assert_eq!(
        outcomes(&report),
        [
            row("a", "deleted", ""),
            row("b", "held", "locked"),
            row("c", "held", "never_expire"),
            row("live", "held", "active"),
            row("untenanted", "deleted", ""),
        ]
    );
    let heard: Vec<String> = h
        .events
        .taken()
        .into_iter()
        .filter(|(_, change)| matches!(change, crate::RecordingChange::Deleted))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        heard,
        ["a", "untenanted"],
        "the webhooks hear of each deletion"
    );
    let gone = h.get("viewer", "/api/v1/recordings/a").await.json();
    assert_eq!(gone["state"], "deleted");
    assert_eq!(gone["deleted_by"], "policy:acme-30");
    assert_eq!(gone["delete_reason"], "retention: acme-30 30 days");
    assert!(!exists(&h.path(&folder("a", OLD))));
    assert_eq!(
        h.get("viewer", "/api/v1/recordings/untenanted")
            .await
            .json()["deleted_by"],
        "retention:config"
    );
    for kept in ["b", "c", "fresh", "live"] {
        let r = h
            .get("viewer", &format!("/api/v1/recordings/{kept}"))
            .await
            .json();
        assert_ne!(r["state"], "deleted", "{kept}");
    }
    assert!(exists(
        &h.path(&format!("{}/0-caller.wav", folder("b", OLD)))
    ));
    let deletions: Vec<String> = h
        .audit(AuditAction::Delete)
        .await
        .into_iter()
        .map(|e| e.user)
        .collect();
    assert_eq!(deletions.len(), 2);
    assert!(deletions.contains(&"policy:acme-30".to_owned()));
    assert!(deletions.contains(&"retention:config".to_owned()));

    // Once the flag is cleared and the lock removed, the next run deletes them too.
    h.send(
        "compliance",
        Method::DELETE,
        "/api/v1/recordings/c/never-expire",
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let report = sweep(
        &h.catalog,
        h.data.path(),
        None,
        &settings,
        &*h.events,
        T0,
        true,
    )
    .await
    .unwrap();
    assert!(
        report
            .items
            .iter()
            .any(|i| i.item.recording_id == "c" && i.outcome == crate::retention::Outcome::Deleted)
    );
    // Removing the policy stops it.
    let id = policy["id"].as_str().unwrap();
    h.send(
        "compliance",
        Method::DELETE,
        &format!("/api/v1/retention/policies/{id}"),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert!(
        h.get("compliance", "/api/v1/retention/policies")
            .await
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn a_media_period_removes_the_audio_and_keeps_the_metadata(h: &Harness) {
    h.recording("m", None, OLD, TWO_LEGS).await;
    h.recording("other", None, OLD, TWO_LEGS).await;
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/retention/policies",
        Some(
            json!({"name": "media", "participant": "ALICE-M@", "media_days": 10,
                    "metadata_days": 1000}),
        ),
    )
    .await
    .expect(StatusCode::CREATED);
    let report = sweep(
        &h.catalog,
        h.data.path(),
        None,
        &RetentionSettings::default(),
        &*h.events,
        T0,
        true,
    )
    .await
    .unwrap();
    assert_eq!(report.items.len(), 1, "{report:?}");
    let details = h.get("viewer", "/api/v1/recordings/m").await.json();
    assert_eq!(details["state"], "complete");
    assert!(details["media_deleted_at"].is_string());
    assert_eq!(details["participants"].as_array().unwrap().len(), 2);
    let audio = h
        .get("compliance", "/api/v1/recordings/m/legs/caller/audio")
        .await
        .expect(StatusCode::GONE);
    assert_eq!(audio.code(), "media_deleted");
    assert!(!exists(
        &h.path(&format!("{}/0-caller.wav", folder("m", OLD)))
    ));
    assert!(exists(
        &h.path(&format!("{}/metadata-1.xml", folder("m", OLD)))
    ));
    assert_eq!(
        h.audit(AuditAction::DeleteMedia).await[0].user,
        "policy:media"
    );
    h.get("viewer", "/api/v1/recordings/other/legs/caller/audio")
        .await
        .expect(StatusCode::OK);
    // A second run has nothing more to do until the metadata period.
    let again = sweep(
        &h.catalog,
        h.data.path(),
        None,
        &RetentionSettings::default(),
        &*h.events,
        T0,
        true,
    )
    .await
    .unwrap();
    assert!(again.items.is_empty(), "{again:?}");
}

async fn max_bytes_deletes_the_oldest_first_and_says_when_it_cannot(h: &Harness) {
    for (id, day) in [("d1", 1), ("d2", 2), ("d3", 3)] {
        let at = datetime!(2026-11-01 08:00 UTC) + time::Duration::days(day);
        h.recording(id, None, at, TWO_LEGS).await;
    }
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/d1/locks",
        Some(json!({"reason": "hold"})),
    )
    .await
    .expect(StatusCode::CREATED);
    // Each recording counts two legs of 50 × 160 samples: 2 × (80 + 2 × 8000) bytes.
    let per_recording = 2 * (80 + 2 * 8000);
    let settings = RetentionSettings {
        max_bytes: Some(2 * per_recording),
        ..RetentionSettings::default()
    };
    let report = sweep(
        &h.catalog,
        h.data.path(),
        None,
        &settings,
        &*h.events,
        T0,
        true,
    )
    .await
    .unwrap();
    let deleted: Vec<_> = report
        .items
        .iter()
        .map(|i| i.item.recording_id.as_str())
        .collect();
    assert_eq!(deleted, ["d2"], "the oldest that may go: d1 is locked");
    assert!(!report.over_max_bytes);
    assert_eq!(report.media_bytes, 2 * per_recording);
    let tight = RetentionSettings {
        max_bytes: Some(1),
        ..RetentionSettings::default()
    };
    let report = sweep(
        &h.catalog,
        h.data.path(),
        None,
        &tight,
        &*h.events,
        T0,
        true,
    )
    .await
    .unwrap();
    assert!(report.over_max_bytes, "d1 is locked: it cannot get under");
    assert_eq!(report.media_bytes, per_recording);
    assert_eq!(
        h.get("viewer", "/api/v1/recordings/d1").await.json()["state"],
        "complete"
    );
}

async fn the_audit_period_prunes_old_entries_and_the_chain_still_verifies(h: &Harness) {
    h.recording("r", None, RECENT, TWO_LEGS).await;
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/r/locks",
        Some(json!({"reason": "hold"})),
    )
    .await
    .expect(StatusCode::CREATED);
    let later = T0 + time::Duration::days(20);
    h.clock.advance(std::time::Duration::from_secs(20 * 86_400));
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/r/locks",
        Some(json!({"reason": "second"})),
    )
    .await
    .expect(StatusCode::CREATED);
    let settings = RetentionSettings {
        audit_days: Some(10),
        ..RetentionSettings::default()
    };
    let report = sweep(
        &h.catalog,
        h.data.path(),
        None,
        &settings,
        &*h.events,
        later,
        true,
    )
    .await
    .unwrap();
    // Users, tokens and the first lock (all at T0) go; the second lock stays.
    assert!(report.audit_pruned >= 2, "{report:?}");
    let locks = h.audit(AuditAction::Lock).await;
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].reason.as_deref(), Some("second"));
    assert!(matches!(
        h.catalog.verify_audit().await.unwrap(),
        AuditVerification::Intact { .. }
    ));
    assert_eq!(h.audit(AuditAction::Prune).await.len(), 1);
    // Pruning again finds nothing older.
    let again = sweep(
        &h.catalog,
        h.data.path(),
        None,
        &settings,
        &*h.events,
        later,
        true,
    )
    .await
    .unwrap();
    assert_eq!(again.audit_pruned, 0);
    assert!(matches!(
        h.catalog.verify_audit().await.unwrap(),
        AuditVerification::Intact { .. }
    ));
}

async fn a_matter_holds_what_it_finds_now_and_later_and_its_release_leaves_other_locks(
    h: &Harness,
) {
    h.recording("p1", None, RECENT, TWO_LEGS).await;
    h.recording("p2", None, RECENT, TWO_LEGS).await;
    h.recording("other", None, RECENT, TWO_LEGS).await;
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/p1/locks",
        Some(json!({"reason": "a user's own hold"})),
    )
    .await
    .expect(StatusCode::CREATED);
    h.send(
        "reviewer",
        Method::POST,
        "/api/v1/matters",
        Some(json!({"name": "Smith v. Acme", "filter": {}})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/matters",
        Some(json!({"name": "bad", "filter": {"digits": "x"}})),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    let matter = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/matters",
            Some(
                json!({"name": "Smith v. Acme", "case_id": "CV-2026-17", "owner": "legal",
                        "description": "calls of Alice P.", "filter": {"party": "alice-p"}}),
            ),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(matter["locked_recordings"], 2);
    assert_eq!(matter["filter"]["party"], "alice-p");
    let id = matter["id"].as_str().unwrap().to_owned();

    // A call recorded after the matter was created: held when it completes (the catalog's
    // completion, as the recorder's archive applies it).
    h.start("p3", None, T0, TWO_LEGS).await;
    let live = h.get("viewer", "/api/v1/recordings/p3").await.json();
    assert_eq!(live["locked"], false, "held from its completion on");
    h.catalog
        .complete_recording(&callvault_catalog::testing::completion(
            "p3",
            0,
            50,
            &"ab".repeat(32),
        ))
        .await
        .unwrap();
    let p3 = h.get("viewer", "/api/v1/recordings/p3").await.json();
    assert_eq!(p3["locked"], true);
    assert!(
        p3["locks"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("CV-2026-17")
    );
    assert_eq!(p3["locks"][0]["by"], format!("matter:{id}"));
    assert_eq!(
        h.get("viewer", "/api/v1/recordings/other").await.json()["locked"],
        false
    );
    let refused = h
        .send(
            "admin",
            Method::DELETE,
            "/api/v1/recordings/p2",
            Some(json!({"reason": "tidy"})),
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(refused.code(), "locked");
    // A matter's lock is not removed one recording at a time: only the release removes it.
    let lock_id = p3["locks"][0]["id"].as_str().unwrap();
    assert_eq!(p3["locks"][0]["matter_id"], id.as_str());
    h.send(
        "compliance",
        Method::DELETE,
        &format!("/api/v1/recordings/p3/locks/{lock_id}"),
        Some(json!({"reason": "sneaky"})),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let shown = h
        .get("compliance", &format!("/api/v1/matters/{id}"))
        .await
        .json();
    assert_eq!(shown["locked_recordings"], 3);
    assert_eq!(
        h.get("compliance", "/api/v1/matters").await.json()[0]["id"],
        id
    );

    let released = h
        .send(
            "compliance",
            Method::POST,
            &format!("/api/v1/matters/{id}/release"),
            Some(json!({"reason": "case closed"})),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert!(released["released_at"].is_string());
    assert_eq!(released["locked_recordings"], 0);
    h.send(
        "compliance",
        Method::POST,
        &format!("/api/v1/matters/{id}/release"),
        None,
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    // The user's own lock on p1 stays; p2 and p3 are free.
    assert_eq!(
        h.get("viewer", "/api/v1/recordings/p1").await.json()["locked"],
        true
    );
    for free in ["p2", "p3"] {
        h.send(
            "admin",
            Method::DELETE,
            &format!("/api/v1/recordings/{free}"),
            Some(json!({"reason": "tidy"})),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    }
    let matters: Vec<_> = h
        .audit(AuditAction::Matter)
        .await
        .into_iter()
        .map(|e| e.detail.unwrap_or_default())
        .collect();
    assert_eq!(matters.len(), 2);
    assert!(matters[1].contains("3 lock(s) removed"), "{matters:?}");
    // Released: a new matching call is not held.
    h.recording("p4", None, RECENT, TWO_LEGS).await;
    assert_eq!(
        h.get("viewer", "/api/v1/recordings/p4").await.json()["locked"],
        false
    );
    // Another tenant's user sees no matter of the whole catalog.
    h.get("acme-compliance", &format!("/api/v1/matters/{id}"))
        .await
        .expect(StatusCode::NOT_FOUND);
}

async fn a_restricted_recording_is_invisible_without_the_permission(h: &Harness) {
    h.recording("secret", None, RECENT, TWO_LEGS).await;
    h.recording("plain", None, RECENT, TWO_LEGS).await;
    h.send(
        "reviewer",
        Method::PUT,
        "/api/v1/recordings/secret/restricted",
        None,
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    h.send(
        "compliance",
        Method::PUT,
        "/api/v1/recordings/secret/restricted",
        Some(json!({"reason": "HR investigation"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    for user in ["viewer", "reviewer"] {
        assert_eq!(
            ids(&h.get(user, "/api/v1/recordings").await.json()),
            ["plain"],
            "{user}"
        );
        for path in [
            "/api/v1/recordings/secret",
            "/api/v1/recordings/secret/legs/caller/audio",
            "/api/v1/recordings/secret/metadata",
            "/api/v1/recordings/secret/transcript",
        ] {
            h.get(user, path).await.expect(StatusCode::NOT_FOUND);
        }
    }
    h.send(
        "reviewer",
        Method::POST,
        "/api/v1/recordings/secret/annotations",
        Some(json!({"text": "peek"})),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    let seen = h
        .get("compliance", "/api/v1/recordings/secret")
        .await
        .json();
    assert_eq!(seen["restricted"], true);
    assert_eq!(
        ids(&h
            .get("compliance", "/api/v1/recordings?restricted=true")
            .await
            .json()),
        ["secret"]
    );
    h.get("compliance", "/api/v1/recordings/secret/legs/caller/audio")
        .await
        .expect(StatusCode::OK);
    let session = h.get("compliance", "/api/v1/session").await.json();
    assert!(
        session["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("view_restricted"))
    );
    let entry = &h.audit(AuditAction::Restrict).await[0];
    assert_eq!(entry.reason.as_deref(), Some("HR investigation"));
    assert_eq!(entry.detail.as_deref(), Some("on"));
    h.send(
        "compliance",
        Method::DELETE,
        "/api/v1/recordings/secret/restricted",
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    h.get("reviewer", "/api/v1/recordings/secret")
        .await
        .expect(StatusCode::OK);
}

async fn max_age_days_limits_a_role_to_recent_recordings(h: &Harness) {
    h.recording("old", None, OLD, TWO_LEGS).await;
    h.recording("new", None, RECENT, TWO_LEGS).await;
    let api = h.api_with(ApiSettings {
        roles: BTreeMap::from([(
            Role::Reviewer,
            RoleSettings {
                max_age_days: Some(30),
            },
        )]),
        ..ApiSettings::default()
    });
    let get = |user: &'static str, path: &'static str| {
        let api = api.clone();
        async move {
            api.call(Call::new(Method::GET, path).bearer(h.token(user)))
                .await
        }
    };
    assert_eq!(
        ids(&get("reviewer", "/api/v1/recordings").await.json()),
        ["new"]
    );
    get("reviewer", "/api/v1/recordings/old")
        .await
        .expect(StatusCode::NOT_FOUND);
    get("reviewer", "/api/v1/recordings/old/legs/caller/audio")
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(
        ids(&get("compliance", "/api/v1/recordings").await.json()),
        ["new", "old"]
    );
    // Time passes on the API's clock: the new recording ages out too.
    h.clock.advance(std::time::Duration::from_secs(31 * 86_400));
    assert!(ids(&get("reviewer", "/api/v1/recordings").await.json()).is_empty());
    get("reviewer", "/api/v1/recordings/new")
        .await
        .expect(StatusCode::NOT_FOUND);
}

async fn a_transcript_is_written_read_back_and_found_by_the_search(h: &Harness) {
    h.recording("t", None, RECENT, TWO_LEGS).await;
    h.recording("u", None, RECENT, TWO_LEGS).await;
    // A matter looking for the word: it holds the recording once the words are known.
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/matters",
        Some(json!({"name": "refunds", "filter": {"transcript": "refund"}})),
    )
    .await
    .expect(StatusCode::CREATED);
    h.send(
        "viewer",
        Method::PUT,
        "/api/v1/recordings/t/transcript",
        Some(json!({"text": "x"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    h.send(
        "reviewer",
        Method::PUT,
        "/api/v1/recordings/t/transcript",
        Some(json!({"segments": [{"start_ms": 900, "end_ms": 100, "text": "no"}]})),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    h.get("viewer", "/api/v1/recordings/t/transcript")
        .await
        .expect(StatusCode::NOT_FOUND);
    let written = h
        .send(
            "reviewer",
            Method::PUT,
            "/api/v1/recordings/t/transcript",
            Some(json!({"segments": [
                {"start_ms": 0, "end_ms": 1200, "text": "I want a Refund", "speaker": "Alice",
                 "leg": "caller"},
                {"start_ms": 1300, "end_ms": 2000, "text": "certainly", "leg": "callee"}
            ]})),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(written["text"], "I want a Refund certainly");
    let read = h
        .get("viewer", "/api/v1/recordings/t/transcript")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(read["segments"][0]["speaker"], "Alice");
    assert_eq!(read["segments"][1]["start_ms"], 1300);
    assert_eq!(read["updated_at"], "2026-12-01T09:00:00Z");
    for query in ["q=refund", "transcript=REFUND", "q=a%20refund%20cert"] {
        assert_eq!(
            ids(&h
                .get("viewer", &format!("/api/v1/recordings?{query}"))
                .await
                .json()),
            ["t"],
            "{query}"
        );
    }
    assert!(ids(&h.get("viewer", "/api/v1/recordings?q=invoice").await.json()).is_empty());
    h.get("viewer", "/api/v1/recordings?q=a&transcript=b")
        .await
        .expect(StatusCode::BAD_REQUEST);
    let details = h.get("viewer", "/api/v1/recordings/t").await.json();
    assert_eq!(details["has_transcript"], true);
    assert_eq!(details["locked"], true, "the refunds matter holds it now");
    assert_eq!(h.audit(AuditAction::Transcript).await[0].user, "reviewer");
    // Deleting the recording deletes its transcript with the rest of the metadata.
    h.send(
        "compliance",
        Method::PUT,
        "/api/v1/recordings/u/transcript",
        Some(json!({"text": "refund"})),
    )
    .await
    .expect(StatusCode::OK);
    let matter = &h.get("compliance", "/api/v1/matters").await.json()[0];
    let matter_id = matter["id"].as_str().unwrap();
    h.send(
        "compliance",
        Method::POST,
        &format!("/api/v1/matters/{matter_id}/release"),
        None,
    )
    .await
    .expect(StatusCode::OK);
    h.send(
        "compliance",
        Method::DELETE,
        "/api/v1/recordings/u",
        Some(json!({"reason": "erasure request"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        ids(&h.get("viewer", "/api/v1/recordings?q=refund").await.json()),
        ["t"]
    );
}

async fn a_typed_reason_is_taken_beside_the_pick_list_when_allowed(h: &Harness) {
    h.recording("r", None, RECENT, TWO_LEGS).await;
    let settings = |allow_other_reason| ApiSettings {
        require_reason: vec![ReasonAction::Restrict],
        reasons: vec!["Legal request".to_owned()],
        allow_other_reason,
        ..ApiSettings::default()
    };
    let call = |body: Value| {
        Call::new(Method::PUT, "/api/v1/recordings/r/restricted")
            .bearer(h.token("compliance"))
            .json(body)
    };
    let strict = h.api_with(settings(false));
    assert_eq!(
        strict
            .call(call(json!({"reason": "my own words"})))
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY)
            .code(),
        "reason_not_allowed"
    );
    assert_eq!(
        strict
            .call(call(json!({})))
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY)
            .code(),
        "reason_required"
    );
    let open = h.api_with(settings(true));
    open.call(call(json!({"reason": "my own words"})))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        h.audit(AuditAction::Restrict).await[0].reason.as_deref(),
        Some("my own words")
    );
    let _ = Scope::All;
}

on_both_engines!(
    retention_dry_run_lists_what_the_run_deletes_and_holds_locked_and_never_expire,
    a_media_period_removes_the_audio_and_keeps_the_metadata,
    max_bytes_deletes_the_oldest_first_and_says_when_it_cannot,
    the_audit_period_prunes_old_entries_and_the_chain_still_verifies,
    a_matter_holds_what_it_finds_now_and_later_and_its_release_leaves_other_locks,
    a_restricted_recording_is_invisible_without_the_permission,
    max_age_days_limits_a_role_to_recent_recordings,
    a_transcript_is_written_read_back_and_found_by_the_search,
    a_typed_reason_is_taken_beside_the_pick_list_when_allowed,
);
