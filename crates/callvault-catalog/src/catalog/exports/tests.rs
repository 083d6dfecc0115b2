//! Export packages' states on both engines: a package moves queued → running → ready →
//! expired and never back; one removed while it runs cannot become ready; a node's
//! interrupted packages fail at its next start, another node's do not; tenants see their own.

use crate::catalog::tests::*;
use crate::catalog::*;
use crate::scope::Scope;
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn new_export(id: &str, owner: &str, tenant: Option<&str>, node: &str) -> NewExport {
    NewExport {
        id: id.to_owned(),
        name: format!("Package {id}"),
        owner: owner.to_owned(),
        tenant: tenant.map(str::to_owned),
        node_id: node.to_owned(),
        format: "wav".to_owned(),
        channels: "mixed".to_owned(),
        encrypt_to: None,
        recording_ids: vec!["r1".to_owned(), "r2".to_owned()],
        created_at: T0,
        chosen_by: "ids".to_owned(),
        reason: Some("Legal request".to_owned()),
    }
}

async fn an_export_moves_forward_only_and_is_audited(catalog: &Catalog) {
    let queued = catalog
        .insert_export(&new_export("e1", "alice", None, "n1"), &alice())
        .await
        .unwrap();
    assert_eq!(queued.state, ExportState::Queued);
    assert_eq!(queued.recording_ids, ["r1", "r2"]);
    assert_eq!(queued.progress(), 0.0);
    let audit = catalog
        .audit(
            &Scope::All,
            &AuditQuery {
                action: Some(AuditAction::Export),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].user, "alice");
    assert_eq!(audit[0].reason.as_deref(), Some("Legal request"));
    assert!(audit[0].detail.as_deref().unwrap().contains("e1"));

    assert!(catalog.start_export("e1", 5).await.unwrap());
    assert!(
        !catalog.start_export("e1", 5).await.unwrap(),
        "started once"
    );
    assert!(catalog.export_progress("e1", 2).await.unwrap());
    let running = catalog.export(&Scope::All, "e1").await.unwrap().unwrap();
    assert_eq!(
        (running.state, running.progress()),
        (ExportState::Running, 0.4)
    );
    let finished = FinishedExport {
        files: 5,
        bytes: 1234,
        sha256: "ab".repeat(32),
        finished_at: T0 + time::Duration::minutes(1),
        expires_at: T0 + time::Duration::hours(1),
    };
    assert!(catalog.finish_export("e1", &finished).await.unwrap());
    let ready = catalog.export(&Scope::All, "e1").await.unwrap().unwrap();
    assert_eq!(ready.state, ExportState::Ready);
    assert_eq!(
        (ready.files, ready.bytes, ready.expires_at, ready.progress()),
        (Some(5), Some(1234), Some(finished.expires_at), 1.0)
    );
    // Not before its expiry; then once.
    let before = T0 + time::Duration::minutes(59);
    assert!(!catalog.expire_export("e1", before).await.unwrap());
    assert!(catalog.due_exports("n1", before).await.unwrap().is_empty());
    let after = T0 + time::Duration::hours(1);
    assert_eq!(catalog.due_exports("n1", after).await.unwrap(), ["e1"]);
    assert!(catalog.due_exports("n2", after).await.unwrap().is_empty());
    assert!(catalog.expire_export("e1", after).await.unwrap());
    assert!(!catalog.expire_export("e1", after).await.unwrap());
    assert!(!catalog.fail_export("e1", "late", after).await.unwrap());
    let expired = catalog.export(&Scope::All, "e1").await.unwrap().unwrap();
    assert_eq!(expired.state, ExportState::Expired);

    // A bad name changes nothing.
    let mut bad = new_export("e2", "alice", None, "n1");
    bad.name = "a\u{1b}[2J".to_owned();
    assert!(matches!(
        catalog.insert_export(&bad, &alice()).await,
        Err(crate::Error::InvalidInput { field: "name", .. })
    ));
    assert!(catalog.export(&Scope::All, "e2").await.unwrap().is_none());
}

async fn a_removed_export_never_becomes_ready(catalog: &Catalog) {
    catalog
        .insert_export(&new_export("e1", "alice", None, "n1"), &alice())
        .await
        .unwrap();
    assert!(catalog.start_export("e1", 1).await.unwrap());
    assert!(catalog.remove_export("e1").await.unwrap());
    let finished = FinishedExport {
        files: 1,
        bytes: 1,
        sha256: "00".repeat(32),
        finished_at: T0,
        expires_at: T0 + time::Duration::hours(1),
    };
    assert!(!catalog.export_progress("e1", 1).await.unwrap());
    assert!(!catalog.finish_export("e1", &finished).await.unwrap());
    assert!(catalog.export(&Scope::All, "e1").await.unwrap().is_none());
    assert!(!catalog.remove_export("e1").await.unwrap());
}

async fn a_nodes_interrupted_exports_fail_at_its_start(catalog: &Catalog) {
    for (id, node) in [("a", "n1"), ("b", "n1"), ("c", "n2")] {
        catalog
            .insert_export(&new_export(id, "alice", None, node), &alice())
            .await
            .unwrap();
    }
    assert!(catalog.start_export("a", 3).await.unwrap());
    let mut failed = catalog.fail_interrupted_exports("n1", T0).await.unwrap();
    failed.sort();
    assert_eq!(failed, ["a", "b"]);
    for id in ["a", "b"] {
        let export = catalog.export(&Scope::All, id).await.unwrap().unwrap();
        assert_eq!(export.state, ExportState::Failed);
        assert!(export.error.unwrap().contains("interrupted"));
    }
    let other = catalog.export(&Scope::All, "c").await.unwrap().unwrap();
    assert_eq!(
        other.state,
        ExportState::Queued,
        "another node's is left alone"
    );
}

async fn exports_are_listed_by_owner_within_a_tenant(catalog: &Catalog) {
    catalog
        .insert_export(&new_export("mine", "alice", None, "n1"), &alice())
        .await
        .unwrap();
    catalog
        .insert_export(&new_export("acme", "bob", Some("acme"), "n1"), &alice())
        .await
        .unwrap();
    let ids = |list: Vec<Export>| list.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let all = catalog.exports(&Scope::All, None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        ids(catalog.exports(&Scope::All, Some("alice")).await.unwrap()),
        ["mine"]
    );
    let acme = Scope::Tenant("acme".to_owned());
    assert_eq!(ids(catalog.exports(&acme, None).await.unwrap()), ["acme"]);
    assert!(catalog.export(&acme, "mine").await.unwrap().is_none());
}

on_both_engines!(
    an_export_moves_forward_only_and_is_audited,
    a_removed_export_never_becomes_ready,
    a_nodes_interrupted_exports_fail_at_its_start,
    exports_are_listed_by_owner_within_a_tenant,
);
