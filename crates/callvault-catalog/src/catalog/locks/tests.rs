//! Locks and deletion on both engines: a lock blocks every deletion until removed, a deletion
//! leaves a tombstone that searches still show, and a lock racing a deletion on PostgreSQL
//! never lets both through.

use crate::catalog::tests::*;
use crate::catalog::*;
use crate::error::Error;
use crate::model::*;
use crate::scope::Scope;
use crate::testing::*;
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

async fn lock_blocks_delete_until_every_lock_is_removed(catalog: &Catalog) {
    ended(catalog, "r", Some("acme"), datetime!(2026-11-30 10:00 UTC)).await;
    catalog
        .add_dtmf("r", &dtmf(0, "7", "1", 100))
        .await
        .unwrap();
    let all = Scope::All;
    let first = catalog
        .lock(&all, "r", "LegalHold#245", &alice(), T0)
        .await
        .unwrap();
    assert_eq!(
        (
            first.reason.as_str(),
            first.by.as_str(),
            first.at,
            first.removed_at
        ),
        ("LegalHold#245", "alice", T0, None)
    );
    let second = catalog
        .lock(&all, "r", "Matter 7", &alice(), T0)
        .await
        .unwrap();
    let refused = catalog
        .delete(&all, "r", "retention", &alice(), T0)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Locked { ref id, locks: 2 } if id == "r"),
        "{refused:?}"
    );
    let unlocked = catalog
        .unlock(&all, "r", &first.id, Some("matter closed"), &alice(), T0)
        .await
        .unwrap();
    assert_eq!(unlocked.removed_by.as_deref(), Some("alice"));
    assert_eq!(unlocked.remove_reason.as_deref(), Some("matter closed"));
    let details = catalog.recording_details(&all, "r").await.unwrap().unwrap();
    assert!(details.item.locked, "one lock is still in force");
    assert!(matches!(
        catalog.delete(&all, "r", "retention", &alice(), T0).await,
        Err(Error::Locked { locks: 1, .. })
    ));
    // Unlocking the same lock again, or a lock of no such id: not in force.
    for lock_id in [first.id.as_str(), "no-such-lock"] {
        let err = catalog
            .unlock(&all, "r", lock_id, None, &alice(), T0)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::UnknownLock { .. }), "{err:?}");
    }
    // Nothing was deleted by the refusals.
    assert_eq!(get(catalog, "r").await.dtmf.len(), 1);

    catalog
        .unlock(&all, "r", &second.id, None, &alice(), T0)
        .await
        .unwrap();
    let deleted_at = datetime!(2026-12-02 08:30 UTC);
    let deletion = catalog
        .delete(
            &all,
            "r",
            "customer asked (GDPR art. 17)",
            &alice(),
            deleted_at,
        )
        .await
        .unwrap();
    assert_eq!(deletion.recording_id, "r");
    assert_eq!(deletion.started_at, datetime!(2026-11-30 10:00 UTC));
    assert_eq!(
        deletion.legs,
        [DeletedLeg {
            position: 0,
            label: "1".to_owned(),
            path: "recordings/2026/11/30/rec/0-1.wav".to_owned(),
            sha256: Some("sha-r".to_owned()),
            object_key: None,
        }]
    );

    // The tombstone: ids, times, tenant, node and who/when/why kept; everything else gone.
    let tombstone = catalog.recording_details(&all, "r").await.unwrap().unwrap();
    let item = &tombstone.item;
    let r = &item.recording;
    assert_eq!(r.state, RecordingState::Deleted);
    assert_eq!(
        (r.session_id.as_str(), r.ingress_call_id.as_str()),
        ("session-r", "ingress-r@src.example")
    );
    assert_eq!(r.duration_ms, Some(300_250));
    assert_eq!(r.node_id.as_deref(), Some(NODE));
    assert_eq!((r.from.as_str(), r.to.as_str()), ("", ""));
    assert!(r.participants.is_empty() && r.legs.is_empty() && r.dtmf.is_empty());
    assert!(r.associations.is_empty() && r.metadata_revisions == 0);
    assert_eq!(item.tenant.as_deref(), Some("acme"));
    assert_eq!(item.deleted_at, Some(deleted_at));
    assert_eq!(item.deleted_by.as_deref(), Some("alice"));
    assert_eq!(
        item.delete_reason.as_deref(),
        Some("customer asked (GDPR art. 17)")
    );
    assert!(!item.locked);
    assert_eq!(tombstone.deleted_legs, deletion.legs);
    assert_eq!(tombstone.locks.len(), 2, "the hold's history is kept");
    let json = serde_json::to_value(&tombstone).unwrap();
    assert_eq!(json["state"], "deleted");
    assert_eq!(json["deleted_by"], "alice");
    assert_eq!(raw_i64s(catalog, "SELECT COUNT(*) FROM legs").await, [0]);
    assert_eq!(
        raw_i64s(catalog, "SELECT COUNT(*) FROM dtmf_events").await,
        [0]
    );
    assert_eq!(get(catalog, "r").await.state, RecordingState::Deleted);

    // Still found by a search, as a tombstone, and by the deleted state only.
    let page = catalog.search(&all, &SearchQuery::default()).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].recording.state, RecordingState::Deleted);
    let by_state = |state| SearchQuery {
        state: Some(state),
        ..SearchQuery::default()
    };
    assert_eq!(
        catalog
            .search(&all, &by_state(RecordingState::Deleted))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(
        catalog
            .search(&all, &by_state(RecordingState::Complete))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A tombstone cannot be changed, deleted again, or brought back by a late replay.
    for err in [
        catalog
            .lock(&all, "r", "again", &alice(), T0)
            .await
            .unwrap_err(),
        catalog
            .delete(&all, "r", "again", &alice(), T0)
            .await
            .unwrap_err(),
        catalog
            .annotate(
                &all,
                "r",
                &NewAnnotation {
                    text: "x".to_owned(),
                    offset_ms: None,
                },
                None,
                &alice(),
                T0,
            )
            .await
            .unwrap_err(),
        catalog
            .update_review(
                &all,
                "r",
                &ReviewUpdate {
                    score: Some(Some(3)),
                    ..ReviewUpdate::default()
                },
                None,
                &alice(),
                T0,
            )
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::Deleted { ref id } if id == "r"),
            "{err:?}"
        );
    }
    catalog
        .add_dtmf("r", &dtmf(5, "9", "1", 100))
        .await
        .unwrap();
    catalog
        .add_legs("r", &[leg(4, "late", None)])
        .await
        .unwrap();
    catalog
        .complete_recording(&completion("r", 0, 10, "sha-r"))
        .await
        .unwrap();
    catalog
        .set_pause(
            "r",
            &Pause {
                seq: 0,
                from_ms: 1,
                to_ms: None,
                by: "bob".to_owned(),
            },
        )
        .await
        .unwrap();
    let after = get(catalog, "r").await;
    assert_eq!(after.state, RecordingState::Deleted);
    assert!(after.dtmf.is_empty() && after.legs.is_empty());
    assert!(matches!(
        catalog.insert_recording(&new_recording("r", T0)).await,
        Err(Error::AlreadyExists { .. })
    ));

    // Every change is in the audit trail, with its reason.
    let trail = catalog
        .audit(
            &all,
            &AuditQuery {
                recording_id: Some("r".to_owned()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<_> = trail
        .items
        .iter()
        .rev()
        .map(|e| (e.action, e.reason.as_deref()))
        .collect();
    assert_eq!(
        actions,
        [
            (AuditAction::Lock, Some("LegalHold#245")),
            (AuditAction::Lock, Some("Matter 7")),
            (AuditAction::Unlock, Some("matter closed")),
            (AuditAction::Unlock, None),
            (AuditAction::Delete, Some("customer asked (GDPR art. 17)")),
        ]
    );
    assert!(
        trail
            .items
            .iter()
            .all(|e| e.tenant.as_deref() == Some("acme") && e.user == "alice")
    );
    assert!(
        trail.items[0].detail.as_deref().unwrap().contains("sha-r"),
        "the digests are in the delete entry"
    );
}

async fn what_cannot_be_deleted_or_locked_changes_nothing(catalog: &Catalog) {
    let all = Scope::All;
    catalog
        .insert_recording(&new_recording("live", T0))
        .await
        .unwrap();
    let err = catalog
        .delete(&all, "live", "oops", &alice(), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Active { .. }), "{err:?}");
    // A live recording may be locked (a hold placed during the call).
    catalog
        .lock(&all, "live", "hold", &alice(), T0)
        .await
        .unwrap();
    for (id, reason) in [("nope", "x"), ("live", ""), ("live", "   ")] {
        let lock = catalog
            .lock(&all, id, reason, &alice(), T0)
            .await
            .unwrap_err();
        let delete = catalog
            .delete(&all, id, reason, &alice(), T0)
            .await
            .unwrap_err();
        for err in [lock, delete] {
            assert!(
                matches!(
                    err,
                    Error::NotFound { .. }
                        | Error::InvalidInput {
                            field: "reason",
                            ..
                        }
                ),
                "{id} {reason:?}: {err:?}"
            );
        }
    }
    let trail = catalog.audit(&all, &AuditQuery::default()).await.unwrap();
    assert_eq!(trail.items.len(), 1, "only the one lock is audited");
}

async fn another_tenants_recordings_cannot_be_touched(catalog: &Catalog) {
    ended(catalog, "theirs", Some("globex"), T0).await;
    ended(catalog, "ours", Some("acme"), T0).await;
    ended(catalog, "nobodys", None, T0).await;
    let acme = Scope::Tenant("acme".to_owned());
    for id in ["theirs", "nobodys"] {
        let errors = [
            catalog
                .lock(&acme, id, "hold", &alice(), T0)
                .await
                .unwrap_err(),
            catalog
                .delete(&acme, id, "gone", &alice(), T0)
                .await
                .unwrap_err(),
            catalog
                .unlock(&acme, id, "x", None, &alice(), T0)
                .await
                .unwrap_err(),
            catalog
                .annotate(
                    &acme,
                    id,
                    &NewAnnotation {
                        text: "hi".to_owned(),
                        offset_ms: None,
                    },
                    None,
                    &alice(),
                    T0,
                )
                .await
                .unwrap_err(),
            catalog
                .update_review(
                    &acme,
                    id,
                    &ReviewUpdate {
                        score: Some(Some(1)),
                        ..ReviewUpdate::default()
                    },
                    None,
                    &alice(),
                    T0,
                )
                .await
                .unwrap_err(),
        ];
        for err in errors {
            assert!(matches!(err, Error::NotFound { .. }), "{id}: {err:?}");
        }
        assert_eq!(catalog.recording_details(&acme, id).await.unwrap(), None);
    }
    let lock = catalog
        .lock(&acme, "ours", "hold", &alice(), T0)
        .await
        .unwrap();
    catalog
        .unlock(&acme, "ours", &lock.id, None, &alice(), T0)
        .await
        .unwrap();
    catalog
        .delete(&acme, "ours", "done", &alice(), T0)
        .await
        .unwrap();
    // Nothing of the others changed, and the tenant sees only its own trail.
    assert_eq!(get(catalog, "theirs").await.legs.len(), 1);
    assert_eq!(
        raw_i64s(
            catalog,
            "SELECT COUNT(*) FROM locks WHERE recording_id <> 'ours'"
        )
        .await,
        [0]
    );
    let ours = catalog.audit(&acme, &AuditQuery::default()).await.unwrap();
    assert_eq!(ours.items.len(), 3);
    assert!(
        catalog
            .audit(&Scope::Tenant("globex".to_owned()), &AuditQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

on_both_engines!(
    lock_blocks_delete_until_every_lock_is_removed,
    what_cannot_be_deleted_or_locked_changes_nothing,
    another_tenants_recordings_cannot_be_touched,
);

/// Starts `first` and `second` while another connection holds the recording's row lock, waits
/// until both are blocked on it, and releases it: the two then race for the row.
async fn race_on_the_row<A, B>(
    db: &PostgresDb,
    id: &str,
    first: A,
    second: B,
) -> (A::Output, B::Output)
where
    A: std::future::Future + Send + 'static,
    A::Output: Send + 'static,
    B: std::future::Future + Send + 'static,
    B::Output: Send + 'static,
{
    let holder = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut hold = holder.begin().await.unwrap();
    sqlx::query("SELECT id FROM recordings WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *hold)
        .await
        .unwrap();
    let a = tokio::spawn(first);
    let b = tokio::spawn(second);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(db.name())
        .fetch_one(&holder)
        .await
        .unwrap();
        if waiting >= 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    hold.commit().await.unwrap();
    let outputs = (a.await.unwrap(), b.await.unwrap());
    holder.close().await;
    outputs
}

/// A lock and a deletion of the same recording, on two connections at once (two nodes): one of
/// them wins, never both — a deleted recording with a lock in force would be a held recording
/// whose media is gone.
#[tokio::test]
async fn postgres_lock_racing_a_deletion_never_both_win() {
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    let catalog = Catalog::open(&db.url).await.unwrap();
    let mut outcomes = std::collections::HashSet::new();
    for round in 0..6 {
        let id = format!("race-{round}");
        ended(&catalog, &id, None, T0).await;
        let (locker, deleter) = (catalog.clone(), catalog.clone());
        let (lock_id, delete_id) = (id.clone(), id.clone());
        let (locked, deleted) = race_on_the_row(
            &db,
            &id,
            async move {
                locker
                    .lock(&Scope::All, &lock_id, "hold", &alice(), T0)
                    .await
            },
            async move {
                deleter
                    .delete(&Scope::All, &delete_id, "purge", &alice(), T0)
                    .await
            },
        )
        .await;
        match (&locked, &deleted) {
            (Ok(_), Err(Error::Locked { locks: 1, .. })) => {
                outcomes.insert("lock first");
                assert_eq!(get(&catalog, &id).await.state, RecordingState::Complete);
            }
            (Err(Error::Deleted { .. }), Ok(_)) => {
                outcomes.insert("delete first");
                let details = catalog
                    .recording_details(&Scope::All, &id)
                    .await
                    .unwrap()
                    .unwrap();
                assert!(!details.item.locked && details.locks.is_empty());
            }
            other => panic!("round {round}: both or neither went through: {other:?}"),
        }
    }
    eprintln!("outcomes seen: {outcomes:?}");
    // Two deletions at once: one deletes, the other finds a tombstone; one audit entry.
    ended(&catalog, "twice", None, T0).await;
    let (a, b) = (catalog.clone(), catalog.clone());
    let (first, second) = race_on_the_row(
        &db,
        "twice",
        async move { a.delete(&Scope::All, "twice", "one", &alice(), T0).await },
        async move { b.delete(&Scope::All, "twice", "two", &alice(), T0).await },
    )
    .await;
    assert!(
        matches!(
            (&first, &second),
            (Ok(_), Err(Error::Deleted { .. })) | (Err(Error::Deleted { .. }), Ok(_))
        ),
        "{first:?} {second:?}"
    );
    let trail = catalog
        .audit(
            &Scope::All,
            &AuditQuery {
                recording_id: Some("twice".to_owned()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(trail.items.len(), 1);
    assert!(matches!(
        catalog.verify_audit().await.unwrap(),
        AuditVerification::Intact { .. }
    ));
    catalog.close().await;
    db.drop().await;
}
