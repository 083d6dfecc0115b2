//! The archive against real faults: a SQLite write lock held by another connection, a crash
//! (the worker dropped) while the catalog is down, a full filesystem (a tmpfs, root only), a
//! closed connection pool for the back-off schedule on paused time.
//!
//! Tests wait on the archive's own health (`ArchiveHealth::wait_for`) or on `Archive::close`,
//! never on a sleep; the only sleeps are on paused (virtual) time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use callvault_catalog::testing::Tmpfs;
use callvault_catalog::{
    Completion, DtmfEvent, DtmfSource, EndReason, LegCompletion, LegCounters, NewLeg,
    NewMetadataRevision, NewParticipant, NewRecording, RecordingState,
};
use sqlx::Connection as _;
use time::macros::datetime;

use super::health::Unhealthy;
use super::spool::{REJECTED_FILE, SPOOL_DIR};
use super::*;

/// Fails the test if `future` takes longer than `secs` (a bug would otherwise hang it).
async fn within<T>(secs: u64, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn participant(id: &str) -> NewParticipant {
    NewParticipant {
        id: id.to_owned(),
        aor: Some(format!("sip:{id}@example.com")),
        name: None,
    }
}

fn leg(position: i64, label: &str, participant: Option<&str>) -> NewLeg {
    NewLeg {
        position,
        label: label.to_owned(),
        participant: participant.map(str::to_owned),
        binding_rule: "label".to_owned(),
        codec: "PCMU".to_owned(),
        sample_rate: 8000,
        path: format!("recordings/x/{position}.wav"),
        added_at_ms: 0,
    }
}

fn metadata_path(id: &str) -> PathBuf {
    PathBuf::from(format!("recordings/2026/11/30/{id}/metadata-1.xml"))
}

/// Everything one call writes, in the recorder's order: the row, its metadata file, a new
/// revision, a stream added mid-call, `digits` key presses, who is on which leg, the end.
/// Out of order, a later command would fail (a digit before the row: not found) or lose data
/// (the completion before the new leg: its counters dropped).
fn call(id: &str, digits: i64, metadata_bytes: usize) -> Vec<ArchiveCommand> {
    let xml = format!("<recording>{}</recording>", "m".repeat(metadata_bytes));
    let mut commands = vec![
        ArchiveCommand::Insert(Box::new(NewRecording {
            mode: callvault_types::RecordingMode::Siprec,
            route: None,
            id: id.to_owned(),
            node_id: "node-a".to_owned(),
            session_id: format!("session-{id}"),
            ingress_call_id: format!("{id}@src.example"),
            egress_call_id: None,
            from: "sip:p1@example.com".to_owned(),
            to: "sip:p2@example.com".to_owned(),
            started_at: datetime!(2026-11-30 10:00 UTC),
            participants: vec![participant("p1"), participant("p2")],
            // Two m-lines with the same label: two legs.
            legs: vec![leg(0, "dup", Some("p1")), leg(1, "dup", Some("p2"))],
            metadata: Some(NewMetadataRevision {
                number: 1,
                received_at: datetime!(2026-11-30 10:00 UTC),
                datamode: Some("complete".to_owned()),
                raw_xml: xml.clone(),
                participants: Vec::new(),
            }),
            correlation_ids: Vec::new(),
            warnings: Vec::new(),
            source_address: "192.0.2.1:5060".to_owned(),
            transport: "udp".to_owned(),
            tenant: None,
        })),
        ArchiveCommand::WriteFile {
            path: metadata_path(id),
            bytes: xml.into_bytes(),
        },
        ArchiveCommand::Revision {
            recording_id: id.to_owned(),
            revision: NewMetadataRevision {
                number: 2,
                received_at: datetime!(2026-11-30 10:00:01 UTC),
                datamode: Some("partial".to_owned()),
                raw_xml: "<recording n='2'/>".to_owned(),
                participants: vec![participant("p3")],
            },
        },
        ArchiveCommand::AddLegs {
            recording_id: id.to_owned(),
            legs: vec![leg(2, "late", None)],
        },
    ];
    for seq in 0..digits {
        commands.push(ArchiveCommand::Dtmf {
            recording_id: id.to_owned(),
            event: DtmfEvent {
                seq,
                digit: (seq % 10).to_string(),
                leg: "dup".to_owned(),
                offset_ms: 2_000 + seq * 100,
                duration_ms: 80,
                source: DtmfSource::Rfc4733,
            },
        });
    }
    commands.push(ArchiveCommand::Associations {
        recording_id: id.to_owned(),
        at_ms: 1_000,
        revision: 2,
        current: vec![
            ("p1".to_owned(), "dup".to_owned()),
            ("p3".to_owned(), "late".to_owned()),
        ],
    });
    commands.push(ArchiveCommand::Complete(Completion {
        final_status: None,
        hung_up_by: None,
        recording_id: id.to_owned(),
        state: RecordingState::Complete,
        ended_at: datetime!(2026-11-30 10:01 UTC),
        duration_ms: 60_000,
        end_reason: EndReason::Bye,
        legs: (0..3)
            .map(|position| LegCompletion {
                position,
                samples: 480_000,
                sha256: Some(format!("sha-{position}")),
                error: None,
                counters: LegCounters {
                    packets: 100 + position as u64,
                    ..LegCounters::default()
                },
            })
            .collect(),
        warnings: Vec::new(),
    }));
    commands
}

/// The catalog holds everything [`call`] wrote, and it went in in order.
async fn assert_recorded(catalog: &Catalog, id: &str, digits: i64) {
    let r = catalog
        .get_recording(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} is not in the catalog"));
    assert_eq!(r.state, RecordingState::Complete, "{id}");
    assert_eq!(r.end_reason, Some(EndReason::Bye));
    assert_eq!(r.metadata_revisions, 2);
    let legs: Vec<_> = r
        .legs
        .iter()
        .map(|l| (l.position, l.label.as_str(), l.counters.packets))
        .collect();
    assert_eq!(legs, [(0, "dup", 100), (1, "dup", 101), (2, "late", 102)]);
    let expected: String = (0..digits).map(|seq| (seq % 10).to_string()).collect();
    let got: String = r.dtmf.iter().map(|d| d.digit.as_str()).collect();
    assert_eq!(got, expected);
    assert!(
        r.associations
            .iter()
            .any(|a| a.participant == "p3" && a.leg == "late" && a.from_ms == 1_000),
        "{:?}",
        r.associations
    );
}

fn spool_files(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_dir.join(SPOOL_DIR)) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("archive-")
        })
        .collect();
    files.sort();
    files
}

/// Every command in the spool, oldest first.
fn spooled_commands(data_dir: &Path) -> Vec<ArchiveCommand> {
    spool_files(data_dir)
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn rejected_lines(data_dir: &Path) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(data_dir.join(SPOOL_DIR).join(REJECTED_FILE)) {
        Ok(text) => text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Another connection's `BEGIN IMMEDIATE`: SQLite's one write lock, held until dropped or
/// rolled back.
async fn hold_write_lock(data_dir: &Path) -> sqlx::SqliteConnection {
    let mut connection = sqlx::SqliteConnection::connect(&Catalog::sqlite_url(data_dir))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut connection)
        .await
        .unwrap();
    connection
}

async fn release(mut lock: sqlx::SqliteConnection) {
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();
}

async fn sqlite_catalog(data_dir: &Path) -> Catalog {
    Catalog::open(&Catalog::sqlite_url(data_dir)).await.unwrap()
}

/// A catalog whose every write fails at once as transient (its pool is closed), with time
/// paused from here on: opened on real time (sqlx's connect runs a timeout that virtual time
/// would fire while SQLite's thread works).
async fn closed_catalog() -> Catalog {
    let catalog = Catalog::open("sqlite::memory:").await.unwrap();
    catalog.close().await;
    tokio::time::pause();
    catalog
}

/// The back-off schedule, on virtual time: a catalog whose every write fails as transient
/// (its pool is closed) is retried at 50, 100, 200… ms intervals capped at `retry_max`; after
/// `spool_after` the command goes to disk and later ones follow it; the archive turns
/// unhealthy after `unhealthy_after`; nothing is ever skipped.
#[tokio::test]
async fn transient_failures_back_off_to_the_cap_and_go_to_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = closed_catalog().await;
    let (queue, archive, health) = start(catalog, dir.path().into(), ArchiveConfig::default());
    let mut commands = call("r1", 1, 10).into_iter();
    queue.send(commands.next().unwrap());

    // Attempts at 0, 50, 150, 350 and 750 ms; the next at 1550.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let s = health.snapshot();
    assert_eq!((s.failures, s.retries), (5, 4), "{s:?}");
    assert_eq!((s.memory, s.spooled), (1, 0));
    assert!(s.failing_since.is_some());
    assert!(s.last_error.as_deref().unwrap().contains("closed"), "{s:?}");
    assert_eq!(s.unhealthy, None);
    assert!(spool_files(dir.path()).is_empty());

    // At 2 s (spool_after) the pending command goes to disk…
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let s = health.snapshot();
    assert_eq!((s.memory, s.spooled), (0, 1), "{s:?}");
    // …and a later one follows it there at once, after it.
    let second = commands.next().unwrap();
    queue.send(second.clone());
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(health.snapshot().spooled, 2);
    let spooled = spooled_commands(dir.path());
    assert_eq!(spooled.len(), 2);
    assert!(matches!(spooled[0], ArchiveCommand::Insert(_)));
    assert_eq!(spooled[1], second);

    // Attempts at 1550, 3150, 6350 (the delay is capped at 5 s: the next is at 11350).
    tokio::time::sleep_until(Instant::now() + Duration::from_millis(10_500 - 2_101)).await;
    let s = health.snapshot();
    assert_eq!((s.failures, s.retries, s.rejected), (8, 7, 0), "{s:?}");
    assert!(
        matches!(s.unhealthy, Some(Unhealthy::Failing { .. })),
        "failing for 10 s: {s:?}"
    );
    assert!(health.snapshot().unhealthy.is_some());

    // Closing with the catalog still down: everything stays spooled, nothing lost.
    let closed = archive.close(Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(
        closed,
        Closed {
            spooled: 2,
            lost: 0
        }
    );
    assert_eq!(spooled_commands(dir.path()), spooled);
}

/// More commands waiting than `max_backlog`: unhealthy, so new calls are refused.
#[tokio::test]
async fn a_backlog_over_its_bound_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = closed_catalog().await;
    let config = ArchiveConfig {
        spool_after: Duration::from_secs(3600),
        unhealthy_after: Duration::from_secs(3600),
        max_backlog: 2,
        ..ArchiveConfig::default()
    };
    let (queue, _archive, health) = start(catalog, dir.path().into(), config);
    for command in call("r1", 0, 10).into_iter().take(2) {
        queue.send(command);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        health.snapshot().unhealthy.is_none(),
        "{:?}",
        health.snapshot()
    );
    queue.send(call("r2", 0, 10).remove(0));
    assert_eq!(
        health.snapshot().unhealthy,
        Some(Unhealthy::Backlog {
            backlog: 3,
            limit: 2
        })
    );
}

/// Issue 12's fault: another connection holds SQLite's write lock for over 10 s while two
/// calls are archived. The first write waits out SQLite's busy timeout and fails; meanwhile
/// everything goes to the spool; once the lock is released, every row appears, in order.
#[tokio::test]
async fn a_catalog_locked_for_ten_seconds_loses_nothing_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = sqlite_catalog(dir.path()).await;
    let lock = hold_write_lock(dir.path()).await;
    let (queue, archive, mut health) =
        start(catalog.clone(), dir.path().into(), ArchiveConfig::default());
    let commands: Vec<_> = call("call-1", 12, 100)
        .into_iter()
        .chain(call("call-2", 3, 100))
        .collect();
    let count = commands.len() as u64;
    for command in commands {
        queue.send(command);
    }

    // After spool_after (2 s) the commands are on disk, the first one still waiting.
    within(10, "the spill", health.wait_for(|s| s.spooled == count)).await;
    assert_eq!(health.snapshot().memory, 0);
    assert!(!spool_files(dir.path()).is_empty());
    // SQLite gives up after its 10 s busy timeout: transient, retried, not skipped.
    within(20, "SQLITE_BUSY", health.wait_for(|s| s.failures >= 1)).await;
    let s = health.snapshot();
    assert!(s.last_error.as_deref().unwrap().contains("locked"), "{s:?}");
    assert_eq!(s.rejected, 0);
    assert!(s.failing_since.is_some());

    release(lock).await;
    let closed = within(
        60,
        "the close",
        archive.close(Instant::now() + Duration::from_secs(30)),
    )
    .await;
    assert_eq!(
        closed,
        Closed {
            spooled: 0,
            lost: 0
        }
    );
    assert_recorded(&catalog, "call-1", 12).await;
    assert_recorded(&catalog, "call-2", 3).await;
    let s = health.snapshot();
    assert_eq!((s.applied, s.rejected, s.backlog()), (count, 0, 0), "{s:?}");
    assert!(
        spool_files(dir.path()).is_empty(),
        "applied spool files are deleted"
    );
    assert!(rejected_lines(dir.path()).is_empty());
    assert_eq!(
        std::fs::read(dir.path().join(metadata_path("call-1")))
            .unwrap()
            .len(),
        "<recording></recording>".len() + 100
    );
    catalog.close().await;
}

/// A crash while the catalog is down: the spool written before it is applied by the next
/// start, before anything sent to the new run; and applying the same spool once more (a crash
/// after applying it, before deleting it) changes nothing.
#[tokio::test]
async fn a_crash_while_the_catalog_is_down_is_replayed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = sqlite_catalog(dir.path()).await;
    let lock = hold_write_lock(dir.path()).await;
    let config = ArchiveConfig {
        spool_after: Duration::from_millis(100),
        ..ArchiveConfig::default()
    };
    let (queue, archive, mut health) = start(catalog.clone(), dir.path().into(), config.clone());
    let first = call("before-crash", 4, 100);
    let count = first.len() as u64;
    for command in first {
        queue.send(command);
    }
    within(10, "the spill", health.wait_for(|s| s.spooled == count)).await;
    // Kept aside, to replay it a second time below.
    let saved: Vec<(PathBuf, Vec<u8>)> = spool_files(dir.path())
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    drop(queue);
    drop(archive); // the crash: the worker stops where it is

    let (queue, archive, mut health) = start(catalog.clone(), dir.path().into(), config.clone());
    within(
        10,
        "the spool's opening",
        health.wait_for(|s| s.spooled == count),
    )
    .await;
    assert!(!health.snapshot().startup_replayed);
    for command in call("after-restart", 2, 100) {
        queue.send(command);
    }
    release(lock).await;
    let closed = within(
        60,
        "the close",
        archive.close(Instant::now() + Duration::from_secs(30)),
    )
    .await;
    assert_eq!(
        closed,
        Closed {
            spooled: 0,
            lost: 0
        }
    );
    assert!(health.snapshot().startup_replayed);
    assert_eq!(health.snapshot().rejected, 0);
    assert_recorded(&catalog, "before-crash", 4).await;
    assert_recorded(&catalog, "after-restart", 2).await;
    assert!(spool_files(dir.path()).is_empty());

    // The same spool again: nothing changes, nothing is rejected.
    let before = catalog.get_recording("before-crash").await.unwrap();
    let revisions = catalog.metadata_revisions("before-crash").await.unwrap();
    for (path, bytes) in &saved {
        std::fs::write(path, bytes).unwrap();
    }
    let (_queue, archive, health) = start(catalog.clone(), dir.path().into(), config);
    let closed = within(
        30,
        "the replay",
        archive.close(Instant::now() + Duration::from_secs(20)),
    )
    .await;
    assert_eq!(
        closed,
        Closed {
            spooled: 0,
            lost: 0
        }
    );
    let s = health.snapshot();
    assert_eq!((s.applied, s.rejected), (count, 0), "{s:?}");
    assert_eq!(catalog.get_recording("before-crash").await.unwrap(), before);
    assert_eq!(
        catalog.metadata_revisions("before-crash").await.unwrap(),
        revisions
    );
    assert!(spool_files(dir.path()).is_empty());
    catalog.close().await;
}

/// A command that can never apply is dead-lettered with its error and the queue moves on;
/// a replayed insert and an identical metadata file count as applied.
#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_and_does_not_block_the_next_command() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = sqlite_catalog(dir.path()).await;
    let (queue, archive, health) =
        start(catalog.clone(), dir.path().into(), ArchiveConfig::default());
    let mut commands = call("r1", 2, 10);
    let insert = commands[0].clone();
    let ghost_digit = ArchiveCommand::Dtmf {
        recording_id: "ghost".to_owned(),
        event: DtmfEvent {
            seq: 0,
            digit: "1".to_owned(),
            leg: "dup".to_owned(),
            offset_ms: 0,
            duration_ms: 80,
            source: DtmfSource::SipInfo,
        },
    };
    let escape = ArchiveCommand::WriteFile {
        path: PathBuf::from("../outside.xml"),
        bytes: b"x".to_vec(),
    };
    let ArchiveCommand::WriteFile { path, bytes } = commands[1].clone() else {
        unreachable!("the second command of a call is its metadata file");
    };
    let same_file = ArchiveCommand::WriteFile {
        path: path.clone(),
        bytes: bytes.clone(),
    };
    let other_content = ArchiveCommand::WriteFile {
        path: path.clone(),
        bytes: b"<other/>".to_vec(),
    };
    queue.send(ghost_digit.clone());
    queue.send(escape);
    commands.insert(1, insert);
    commands.insert(3, same_file);
    commands.insert(4, other_content.clone());
    let applied = commands.len() as u64 - 1;
    for command in commands {
        queue.send(command);
    }
    let closed = archive
        .close(Instant::now() + Duration::from_secs(30))
        .await;
    assert_eq!(
        closed,
        Closed {
            spooled: 0,
            lost: 0
        }
    );

    assert_recorded(&catalog, "r1", 2).await;
    assert_eq!(std::fs::read(dir.path().join(&path)).unwrap(), bytes);
    assert!(!dir.path().parent().unwrap().join("outside.xml").exists());
    let s = health.snapshot();
    assert_eq!((s.applied, s.rejected), (applied, 3), "{s:?}");
    let rejected = rejected_lines(dir.path());
    assert_eq!(rejected.len(), 3);
    assert_eq!(
        serde_json::from_value::<ArchiveCommand>(rejected[0]["command"].clone()).unwrap(),
        ghost_digit
    );
    assert!(
        rejected[0]["error"].as_str().unwrap().contains("ghost"),
        "{rejected:?}"
    );
    assert!(
        rejected[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a file path inside the data directory")
    );
    assert_eq!(
        serde_json::from_value::<ArchiveCommand>(rejected[2]["command"].clone()).unwrap(),
        other_content
    );
    assert!(
        rejected[2]["error"]
            .as_str()
            .unwrap()
            .contains("other content")
    );
    for line in &rejected {
        assert!(line["rejected_at"].as_str().unwrap().ends_with('Z'));
    }
    catalog.close().await;
}

/// Issue 21: the data dir (catalog included) on a full filesystem. The catalog write fails,
/// the spool cannot be written either: the commands stay in memory and the archive says it is
/// unhealthy. Once space is freed, everything is applied without a restart.
#[tokio::test]
async fn a_full_disk_keeps_commands_in_memory_then_recovers_when_space_is_freed() {
    let Some(disk) = Tmpfs::mount(8) else {
        return;
    };
    let catalog = sqlite_catalog(disk.path()).await;
    let config = ArchiveConfig {
        spool_after: Duration::from_millis(100),
        retry_max: Duration::from_millis(200),
        ..ArchiveConfig::default()
    };
    let (queue, archive, mut health) = start(catalog.clone(), disk.path().into(), config);
    let earlier = call("earlier", 1, 10);
    let earlier_count = earlier.len() as u64;
    for command in earlier {
        queue.send(command);
    }
    within(
        10,
        "the earlier call",
        health.wait_for(|s| s.applied == earlier_count),
    )
    .await;
    let earlier_row = catalog.get_recording("earlier").await.unwrap();

    let filler = disk.fill("filler");
    // Metadata of 2 MiB: the catalog needs new pages for it, the spool and the file too.
    let commands = call("on-full-disk", 3, 2 << 20);
    let count = commands.len() as u64;
    for command in commands {
        queue.send(command);
    }
    within(
        10,
        "the failed spill",
        health.wait_for(|s| s.spool_error.is_some()),
    )
    .await;
    let s = health.snapshot();
    assert_eq!((s.memory, s.spooled, s.rejected), (count, 0, 0), "{s:?}");
    assert!(
        matches!(s.unhealthy, Some(Unhealthy::SpoolUnwritable { .. })),
        "{s:?}"
    );
    assert!(health.snapshot().unhealthy.is_some());
    assert!(
        s.last_error.is_some(),
        "the catalog write failed too: {s:?}"
    );
    assert!(
        catalog
            .get_recording("on-full-disk")
            .await
            .unwrap()
            .is_none()
    );

    std::fs::remove_file(filler).unwrap();
    within(
        30,
        "the recovery",
        health.wait_for(|s| s.backlog() == 0 && s.unhealthy.is_none()),
    )
    .await;
    assert!(health.snapshot().unhealthy.is_none());
    let closed = archive
        .close(Instant::now() + Duration::from_secs(10))
        .await;
    assert_eq!(
        closed,
        Closed {
            spooled: 0,
            lost: 0
        }
    );
    assert_recorded(&catalog, "on-full-disk", 3).await;
    assert_eq!(
        std::fs::read(disk.path().join(metadata_path("on-full-disk")))
            .unwrap()
            .len(),
        "<recording></recording>".len() + (2 << 20)
    );
    assert_eq!(catalog.get_recording("earlier").await.unwrap(), earlier_row);
    assert_eq!(health.snapshot().rejected, 0);
    catalog.close().await;
}

/// A spool line torn by a crash mid-write is not applied: it goes to `rejected.jsonl` as it
/// was, and the lines around it are applied in order.
#[tokio::test]
async fn a_torn_spool_line_is_dead_lettered_and_the_rest_applied() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = sqlite_catalog(dir.path()).await;
    let commands = call("r1", 2, 10);
    let mut text = String::new();
    for command in &commands {
        text.push_str(&serde_json::to_string(command).unwrap());
        text.push('\n');
    }
    let spool = dir.path().join(SPOOL_DIR);
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("archive-0000000001.jsonl"), text).unwrap();
    std::fs::write(
        spool.join("archive-0000000002.jsonl"),
        "{\"Dtmf\":{\"recording_id\":\"r1\",\"ev",
    )
    .unwrap();

    let (_queue, archive, health) =
        start(catalog.clone(), dir.path().into(), ArchiveConfig::default());
    let closed = archive
        .close(Instant::now() + Duration::from_secs(30))
        .await;
    assert_eq!(
        closed,
        Closed {
            spooled: 0,
            lost: 0
        }
    );
    assert_recorded(&catalog, "r1", 2).await;
    let s = health.snapshot();
    assert_eq!((s.applied, s.rejected), (commands.len() as u64, 1), "{s:?}");
    let rejected = rejected_lines(dir.path());
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0]["spool_line"],
        "{\"Dtmf\":{\"recording_id\":\"r1\",\"ev"
    );
    assert!(spool_files(dir.path()).is_empty());
    catalog.close().await;
}
