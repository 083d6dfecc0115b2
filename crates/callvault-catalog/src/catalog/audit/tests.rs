//! The audit trail on both engines: appended in order by concurrent writers, filtered and paged,
//! and a row changed or removed in the database is named by `verify_audit`.

use crate::catalog::tests::*;
use crate::catalog::*;
use crate::error::Error;
use crate::scope::{Actor, Scope};
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn entry(n: i64, action: AuditAction, recording: Option<&str>) -> NewAuditEntry {
    NewAuditEntry {
        at: T0 + time::Duration::seconds(n),
        actor: Actor::new(format!("user-{}", n % 2), Some("198.51.100.1".to_owned())),
        action,
        recording_id: recording.map(str::to_owned),
        reason: Some(format!("reason {n}")),
        detail: None,
        tenant: None,
    }
}

async fn appends_chain_and_pages_newest_first(catalog: &Catalog) {
    ended(catalog, "r1", Some("acme"), T0).await;
    assert!(matches!(
        catalog.verify_audit().await.unwrap(),
        AuditVerification::Intact { entries: 0, .. }
    ));
    for n in 1..=7 {
        let action = if n % 3 == 0 {
            AuditAction::Download
        } else {
            AuditAction::Play
        };
        let recording = if n <= 4 {
            Some("r1")
        } else {
            Some("gone-long-ago")
        };
        let appended = catalog
            .append_audit(&entry(n, action, recording))
            .await
            .unwrap();
        assert_eq!(appended.seq, n);
    }
    let login = NewAuditEntry {
        tenant: Some("acme".to_owned()),
        ..entry(8, AuditAction::Login, None)
    };
    catalog.append_audit(&login).await.unwrap();
    let AuditVerification::Intact { entries, head } = catalog.verify_audit().await.unwrap() else {
        panic!("a fresh chain is intact")
    };
    assert_eq!(entries, 8);
    let all = catalog
        .audit(
            &Scope::All,
            &AuditQuery {
                limit: 500,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.items[0].hash, head);
    assert_eq!(
        all.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=8).rev().collect::<Vec<_>>()
    );
    assert_eq!(all.next_cursor, None);
    assert_eq!(all.items[4].reason.as_deref(), Some("reason 4"));
    assert_eq!(all.items[4].client.as_deref(), Some("198.51.100.1"));

    // Pages of three, by cursor.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = catalog
            .audit(
                &Scope::All,
                &AuditQuery {
                    limit: 3,
                    cursor: cursor.clone(),
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|e| e.seq));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (1..=8).rev().collect::<Vec<_>>());

    let seqs = |page: AuditPage| page.items.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let query = |q: AuditQuery| async move { seqs(catalog.audit(&Scope::All, &q).await.unwrap()) };
    assert_eq!(
        query(AuditQuery {
            recording_id: Some("r1".to_owned()),
            ..AuditQuery::default()
        })
        .await,
        [4, 3, 2, 1]
    );
    assert_eq!(
        query(AuditQuery {
            action: Some(AuditAction::Download),
            ..AuditQuery::default()
        })
        .await,
        [6, 3]
    );
    assert_eq!(
        query(AuditQuery {
            reason: Some("REASON 4".to_owned()),
            ..AuditQuery::default()
        })
        .await,
        [4]
    );
    // LIKE's wildcards are matched as themselves.
    for literal in ["%", "_", "reason_4"] {
        assert_eq!(
            query(AuditQuery {
                reason: Some(literal.to_owned()),
                ..AuditQuery::default()
            })
            .await,
            Vec::<i64>::new(),
            "{literal}"
        );
    }
    assert_eq!(
        query(AuditQuery {
            user: Some("user-0".to_owned()),
            ..AuditQuery::default()
        })
        .await,
        [8, 6, 4, 2]
    );
    assert_eq!(
        query(AuditQuery {
            since: Some(T0 + time::Duration::seconds(2)),
            until: Some(T0 + time::Duration::seconds(5)),
            ..AuditQuery::default()
        })
        .await,
        [4, 3, 2]
    );
    // A tenant sees the entries of its recordings and its own login; an entry for a recording
    // that no longer exists belongs to no tenant.
    let acme = catalog
        .audit(&Scope::Tenant("acme".to_owned()), &AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(seqs(acme), [8, 4, 3, 2, 1]);
    for bad in [
        AuditQuery {
            limit: 0,
            ..AuditQuery::default()
        },
        AuditQuery {
            limit: 501,
            ..AuditQuery::default()
        },
        AuditQuery {
            cursor: Some("nope".to_owned()),
            ..AuditQuery::default()
        },
    ] {
        assert!(matches!(
            catalog.audit(&Scope::All, &bad).await,
            Err(Error::InvalidQuery { .. })
        ));
    }
}

async fn verify_names_the_first_changed_or_removed_entry(catalog: &Catalog) {
    for n in 1..=6 {
        catalog
            .append_audit(&entry(n, AuditAction::Play, Some("r")))
            .await
            .unwrap();
    }
    // A field changed by hand.
    execute_raw(
        catalog,
        "UPDATE audit SET reason = 'nothing to see' WHERE seq = 4",
    )
    .await;
    execute_raw(
        catalog,
        "UPDATE audit SET user_name = 'mallory' WHERE seq = 5",
    )
    .await;
    assert_eq!(
        catalog.verify_audit().await.unwrap(),
        AuditVerification::Broken {
            seq: 4,
            problem: AuditProblem::Changed
        }
    );
    execute_raw(
        catalog,
        "UPDATE audit SET reason = 'reason 4' WHERE seq = 4",
    )
    .await;
    execute_raw(
        catalog,
        "UPDATE audit SET user_name = 'user-1' WHERE seq = 5",
    )
    .await;
    assert!(matches!(
        catalog.verify_audit().await.unwrap(),
        AuditVerification::Intact { entries: 6, .. }
    ));
    // A time or a link changed.
    execute_raw(
        catalog,
        "UPDATE audit SET occurred_at = occurred_at + 1 WHERE seq = 2",
    )
    .await;
    assert_eq!(
        catalog.verify_audit().await.unwrap(),
        AuditVerification::Broken {
            seq: 2,
            problem: AuditProblem::Changed
        }
    );
    execute_raw(
        catalog,
        "UPDATE audit SET occurred_at = occurred_at - 1 WHERE seq = 2",
    )
    .await;
    // An entry removed from the middle, then the last one.
    execute_raw(catalog, "DELETE FROM audit WHERE seq = 3").await;
    assert_eq!(
        catalog.verify_audit().await.unwrap(),
        AuditVerification::Broken {
            seq: 3,
            problem: AuditProblem::Missing
        }
    );
    execute_raw(catalog, "DELETE FROM audit WHERE seq > 2").await;
    assert_eq!(
        catalog.verify_audit().await.unwrap(),
        AuditVerification::Broken {
            seq: 3,
            problem: AuditProblem::Missing
        }
    );
}

async fn concurrent_appenders_chain_one_after_the_other(catalog: &Catalog) {
    let tasks: Vec<_> = (0..8_i64)
        .map(|task| {
            let catalog = catalog.clone();
            tokio::spawn(async move {
                for k in 0..5 {
                    catalog
                        .append_audit(&entry(task * 5 + k, AuditAction::Play, None))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        raw_i64s(catalog, "SELECT seq FROM audit ORDER BY seq").await,
        (1..=40).collect::<Vec<_>>()
    );
    assert!(matches!(
        catalog.verify_audit().await.unwrap(),
        AuditVerification::Intact { entries: 40, .. }
    ));
}

on_both_engines!(
    appends_chain_and_pages_newest_first,
    verify_names_the_first_changed_or_removed_entry,
    concurrent_appenders_chain_one_after_the_other,
);

#[test]
fn action_names_round_trip() {
    for action in AuditAction::ALL {
        assert_eq!(action.as_str().parse::<AuditAction>(), Ok(action));
        assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
    }
}
