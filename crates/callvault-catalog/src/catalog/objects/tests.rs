//! The upload queue on both engines: only this node's closed legs of final, kept recordings;
//! marks are idempotent; a deletion keeps the object's key in the tombstone.

use crate::catalog::tests::*;
use crate::catalog::*;
use crate::scope::Scope;
use crate::testing::*;
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

async fn only_this_nodes_final_closed_legs_are_queued_until_marked(catalog: &Catalog) {
    ended(catalog, "done", None, datetime!(2026-11-30 10:00 UTC)).await;
    // Still recording: not queued.
    catalog
        .insert_recording(&new_recording("live", datetime!(2026-11-30 10:01 UTC)))
        .await
        .unwrap();
    // Another node's: never queued here.
    let mut other = new_recording("theirs", datetime!(2026-11-30 09:00 UTC));
    other.node_id = "node-b".to_owned();
    catalog.insert_recording(&other).await.unwrap();
    catalog
        .complete_recording(&completion("theirs", 0, 10, "sha-theirs"))
        .await
        .unwrap();

    let pending = catalog.pending_uploads(NODE, 10).await.unwrap();
    assert_eq!(
        pending,
        vec![PendingUpload {
            recording_id: "done".to_owned(),
            position: 0,
            path: "recordings/2026/11/30/rec/0-1.wav".to_owned(),
            sha256: "sha-done".to_owned(),
        }]
    );
    assert!(
        catalog
            .recordings_to_seal(NODE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let other_node = catalog.pending_uploads("node-b", 10).await.unwrap();
    assert_eq!(other_node.len(), 1);
    assert_eq!(other_node[0].recording_id, "theirs");

    let key = "callvault/recordings/2026/11/30/rec/0-1.wav";
    for _ in 0..2 {
        assert!(catalog.mark_uploaded("done", 0, key, T0).await.unwrap());
    }
    assert!(catalog.pending_uploads(NODE, 10).await.unwrap().is_empty());
    assert_eq!(
        get(catalog, "done").await.legs[0].object_key.as_deref(),
        Some(key)
    );
    assert_eq!(
        catalog.recordings_to_seal(NODE, 10).await.unwrap(),
        vec!["done"]
    );
    catalog.mark_recording_uploaded("done", T0).await.unwrap();
    assert!(
        catalog
            .recordings_to_seal(NODE, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The local copy goes only once the grace has passed since the upload.
    let before = T0 - time::Duration::seconds(1);
    assert!(
        catalog
            .local_copies_to_remove(NODE, before, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let copies = catalog.local_copies_to_remove(NODE, T0, 10).await.unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].path, "recordings/2026/11/30/rec/0-1.wav");
    catalog.mark_local_removed("done", 0, T0).await.unwrap();
    assert!(
        catalog
            .local_copies_to_remove(NODE, T0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        catalog
            .local_copies_to_remove("node-b", T0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The tombstone keeps where the leg was in the bucket.
    let deletion = catalog
        .delete(&Scope::All, "done", "retention", &alice(), T0)
        .await
        .unwrap();
    assert_eq!(deletion.legs[0].object_key.as_deref(), Some(key));
    let tombstone = catalog
        .recording_details(&Scope::All, "done")
        .await
        .unwrap()
        .unwrap();
    let json = serde_json::to_value(&tombstone).unwrap();
    assert_eq!(json["deleted_legs"][0]["object_key"], key, "{json}");
    // An upload that finishes after the deletion learns that its leg is gone.
    assert!(!catalog.mark_uploaded("done", 0, key, T0).await.unwrap());
}

async fn a_refused_leg_leaves_the_queue_and_a_deleted_recording_is_never_queued(catalog: &Catalog) {
    ended(catalog, "bad", None, datetime!(2026-11-30 10:00 UTC)).await;
    ended(catalog, "gone", None, datetime!(2026-11-30 11:00 UTC)).await;
    catalog
        .delete(&Scope::All, "gone", "retention", &alice(), T0)
        .await
        .unwrap();
    catalog
        .mark_upload_refused("bad", 0, "the file no longer matches its SHA-256")
        .await
        .unwrap();
    assert!(catalog.pending_uploads(NODE, 10).await.unwrap().is_empty());
    // Its other files (recording.json) still go: the refusal is on the leg.
    assert_eq!(
        catalog.recordings_to_seal(NODE, 10).await.unwrap(),
        vec!["bad"]
    );
}

on_both_engines!(
    only_this_nodes_final_closed_legs_are_queued_until_marked,
    a_refused_leg_leaves_the_queue_and_a_deleted_recording_is_never_queued,
);
