//! Preparing events against a real catalog (SQLite in a temporary folder): what lands on disk
//! (`recording.json`, the outboxes), and what does not.

use callvault_catalog::{
    Completion, EndReason, LegCompletion, NewLeg, NewParticipant, NewRecording, RecordingState,
};
use time::macros::datetime;

use super::*;

const ID: &str = "0193a4b2-7c1d-7e00-8000-00000000abcd";

fn target(url: &str, events: &[&str]) -> NotifyTarget {
    toml::from_str(&format!(
        "url = {url:?}\nsecret = \"s3cret\"\nevents = {events:?}\n"
    ))
    .unwrap()
}

/// A call's recording, completed in `state` (`Active`: not completed).
async fn catalog_with_a_call(data_dir: &std::path::Path, state: RecordingState) -> Catalog {
    let catalog = Catalog::open(&Catalog::sqlite_url(data_dir)).await.unwrap();
    let folder = format!("recordings/2026/11/30/{ID}");
    std::fs::create_dir_all(data_dir.join(&folder)).unwrap();
    catalog
        .insert_recording(&NewRecording {
            id: ID.to_owned(),
            node_id: "node-a".to_owned(),
            session_id: "s".to_owned(),
            ingress_call_id: "c@src.example".to_owned(),
            egress_call_id: None,
            from: "sip:alice@example.com".to_owned(),
            to: "sip:bob@example.com".to_owned(),
            started_at: datetime!(2026-11-30 10:00 UTC),
            participants: vec![NewParticipant {
                id: "p1".to_owned(),
                aor: Some("sip:alice@example.com".to_owned()),
                name: None,
            }],
            legs: vec![NewLeg {
                position: 0,
                label: "1".to_owned(),
                participant: Some("p1".to_owned()),
                binding_rule: "label".to_owned(),
                codec: "PCMU".to_owned(),
                sample_rate: 8000,
                path: format!("{folder}/1.wav"),
                added_at_ms: 0,
            }],
            metadata: None,
            correlation_ids: Vec::new(),
            warnings: Vec::new(),
            source_address: "127.0.0.1:5060".to_owned(),
            transport: "udp".to_owned(),
            tenant: None,
            mode: callvault_types::RecordingMode::Siprec,
            route: None,
        })
        .await
        .unwrap();
    if state == RecordingState::Active {
        return catalog;
    }
    catalog
        .complete_recording(&Completion {
            recording_id: ID.to_owned(),
            final_status: None,
            hung_up_by: None,
            state,
            ended_at: datetime!(2026-11-30 10:01 UTC),
            duration_ms: 60_000,
            end_reason: EndReason::Bye,
            legs: vec![LegCompletion {
                position: 0,
                samples: 480_000,
                sha256: Some("ab".repeat(32)),
                ..LegCompletion::default()
            }],
            warnings: Vec::new(),
        })
        .await
        .unwrap();
    catalog
}

/// Files directly in `dir` whose name ends with `.json`.
fn json_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_completion_writes_recording_json_and_queues_it_for_the_receivers_that_want_it() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_with_a_call(dir.path(), RecordingState::Complete).await;
    // The receivers are unreachable (port 9, discard): deliveries stay queued.
    let all = target("http://127.0.0.1:9/all", &[]);
    let deletions = target("http://127.0.0.1:9/deletions", &["recording.deleted"]);
    let notifier = Notifier::start(
        dir.path().to_owned(),
        &[all.clone(), deletions.clone()],
        &HooksConfig::default(),
    )
    .unwrap();
    notifier
        .prepare(&catalog, ID, Event::Completed, None)
        .await
        .unwrap();

    let folder = dir.path().join(format!("recordings/2026/11/30/{ID}"));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("recording.json")).unwrap()).unwrap();
    let details = catalog
        .recording_details(&Scope::All, ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(written, serde_json::to_value(&details).unwrap());
    assert_eq!(written["state"], "complete");
    assert_eq!(json_files(&folder), ["recording.json"], "no temporary left");

    let outbox = outbox::Outbox::open(dir.path(), &all.url).unwrap();
    let waiting = outbox.load().unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].key, format!("{ID}.recording.completed"));
    let stored = outbox.read(&waiting[0].key).unwrap();
    let body: serde_json::Value = serde_json::from_str(&stored.body).unwrap();
    assert_eq!(body["event"], "recording.completed");
    assert_eq!(body["recording"], written);
    let other = outbox::Outbox::open(dir.path(), &deletions.url).unwrap();
    assert!(other.load().unwrap().is_empty(), "not an event it wants");

    // A replay (the archive re-applies after a crash) queues nothing twice and rewrites the
    // file whole.
    notifier
        .prepare(&catalog, ID, Event::Completed, None)
        .await
        .unwrap();
    assert_eq!(outbox.load().unwrap().len(), 1);
    assert_eq!(json_files(&folder), ["recording.json"]);
}

#[tokio::test]
async fn an_unknown_recording_is_a_permanent_failure_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_with_a_call(dir.path(), RecordingState::Complete).await;
    let notifier = Notifier::start(
        dir.path().to_owned(),
        &[target("http://127.0.0.1:9/", &[])],
        &HooksConfig::default(),
    )
    .unwrap();
    let missing = "0193a4b2-7c1d-7e00-8000-000000000000";
    assert!(matches!(
        notifier
            .prepare(&catalog, missing, Event::Completed, None)
            .await,
        Err(PrepareError::Permanent(_))
    ));
    assert!(matches!(
        notifier
            .prepare(&catalog, "../../x", Event::Completed, None)
            .await,
        Err(PrepareError::Permanent(_))
    ));
}

#[tokio::test]
async fn a_lock_is_announced_but_rewrites_no_recording_json() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_with_a_call(dir.path(), RecordingState::Failed).await;
    let t = target("http://127.0.0.1:9/", &["recording.locked"]);
    let notifier = Notifier::start(
        dir.path().to_owned(),
        std::slice::from_ref(&t),
        &HooksConfig::default(),
    )
    .unwrap();
    notifier
        .prepare(&catalog, ID, Event::Locked, Some("lock-1"))
        .await
        .unwrap();
    let folder = dir.path().join(format!("recordings/2026/11/30/{ID}"));
    assert!(!folder.join("recording.json").exists());
    let waiting = outbox::Outbox::open(dir.path(), &t.url)
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(waiting[0].key, format!("{ID}.recording.locked.lock-1"));
}

#[tokio::test]
async fn a_recording_the_catalog_still_has_active_is_not_announced_final() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_with_a_call(dir.path(), RecordingState::Active).await;
    let t = target("http://127.0.0.1:9/", &[]);
    let notifier = Notifier::start(
        dir.path().to_owned(),
        std::slice::from_ref(&t),
        &HooksConfig::default(),
    )
    .unwrap();
    assert!(matches!(
        notifier.prepare(&catalog, ID, Event::Completed, None).await,
        Err(PrepareError::Permanent(_))
    ));
    let folder = dir.path().join(format!("recordings/2026/11/30/{ID}"));
    assert!(!folder.join("recording.json").exists());
    let outbox = outbox::Outbox::open(dir.path(), &t.url).unwrap();
    assert!(outbox.load().unwrap().is_empty());
}

#[tokio::test]
async fn a_reload_adds_changes_and_retires_receivers_for_the_events_that_follow() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_with_a_call(dir.path(), RecordingState::Complete).await;
    let a = target("http://127.0.0.1:9/a", &["recording.locked"]);
    let b = target("http://127.0.0.1:9/b", &["recording.locked"]);
    let notifier = Notifier::start(
        dir.path().to_owned(),
        std::slice::from_ref(&a),
        &HooksConfig::default(),
    )
    .unwrap();
    let waiting = |t: &NotifyTarget| -> Vec<String> {
        outbox::Outbox::open(dir.path(), &t.url)
            .unwrap()
            .load()
            .unwrap()
            .into_iter()
            .map(|q| q.key)
            .collect()
    };

    assert_eq!(
        notifier.reload(std::slice::from_ref(&b)).unwrap(),
        [
            "webhook receiver http://127.0.0.1:9/a removed (what was queued for it is still delivered)",
            "webhook receiver http://127.0.0.1:9/b added",
        ]
    );
    notifier
        .prepare(&catalog, ID, Event::Locked, Some("l1"))
        .await
        .unwrap();
    assert!(
        waiting(&a).is_empty(),
        "a retired receiver takes no new event"
    );
    assert_eq!(waiting(&b), [format!("{ID}.recording.locked.l1")]);

    let mut a_again = a.clone();
    a_again.secret = Some("another".to_owned());
    let mut b_changed = b.clone();
    b_changed.events = vec!["recording.unlocked".to_owned()];
    assert_eq!(
        notifier
            .reload(&[a_again.clone(), b_changed.clone()])
            .unwrap(),
        [
            "webhook receiver http://127.0.0.1:9/a added back",
            "webhook receiver http://127.0.0.1:9/b changed",
        ]
    );
    assert!(
        notifier.reload(&[a_again, b_changed]).unwrap().is_empty(),
        "nothing changed"
    );
    notifier
        .prepare(&catalog, ID, Event::Locked, Some("l2"))
        .await
        .unwrap();
    assert_eq!(waiting(&a), [format!("{ID}.recording.locked.l2")]);
    assert_eq!(waiting(&b).len(), 1, "b no longer wants locks");
}
