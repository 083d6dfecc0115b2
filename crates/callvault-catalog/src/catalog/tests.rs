//! The harness every catalog test uses — a fresh catalog on SQLite and on PostgreSQL for each
//! scenario ([`on_both_engines`]), raw SQL for what only an older build or a hand edit would
//! store — and the tests of opening, migrating and the engines' failures.
//!
//! Each scenario takes a [`Catalog`], so the same assertions run on SQLite (always) and on
//! PostgreSQL (when `CALLVAULT_TEST_POSTGRES_URL` names a server we may create databases on).

use super::*;
use crate::db::DbRow;
use crate::model::*;
use crate::scope::Actor;
use crate::testing::*;
use crate::{CatalogUrl, SchemaVersion};
use callvault_types::EndReason;
use std::str::FromStr as _;
use time::macros::datetime;

pub(crate) struct TestDb {
    pub(crate) catalog: Catalog,
    // Dropped after the catalog: the SQLite file lives in here.
    _dir: tempfile::TempDir,
}

pub(crate) async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&Catalog::sqlite_url(dir.path()))
        .await
        .unwrap();
    TestDb { catalog, _dir: dir }
}

pub(crate) async fn get(catalog: &Catalog, id: &str) -> Recording {
    catalog.get_recording(id).await.unwrap().unwrap()
}

/// Runs a raw statement (to set up what only an older build or a hand edit would store).
pub(crate) async fn execute_raw(catalog: &Catalog, sql: &str) {
    let mut tx = catalog.pool.begin().await.unwrap();
    tx.execute(sql, &[]).await.unwrap();
    tx.commit().await.unwrap();
}

/// The first column of every row of a raw query, as integers.
pub(crate) async fn raw_i64s(catalog: &Catalog, sql: &str) -> Vec<i64> {
    let mut tx = catalog.pool.begin_read().await.unwrap();
    let rows = tx.fetch_all(sql, &[]).await.unwrap();
    tx.commit().await.unwrap();
    rows.iter()
        .map(|row| match row {
            DbRow::Sqlite(row) => sqlx::Row::get(row, 0),
            DbRow::Postgres(row) => sqlx::Row::get(row, 0),
        })
        .collect()
}

pub(crate) fn digits(s: &str) -> ListQuery {
    ListQuery {
        digits: Some(s.to_owned()),
        ..ListQuery::default()
    }
}

pub(crate) async fn listed(catalog: &Catalog, query: &ListQuery) -> Vec<String> {
    let mut ids: Vec<_> = catalog
        .list_recordings(query)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    ids
}

pub(crate) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, l)| ((*p).to_owned(), (*l).to_owned()))
        .collect()
}

/// Polls futures concurrently without a futures-util dependency.
pub(crate) async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

/// Runs each async scenario (a function of the calling module taking a `&Catalog`) on a fresh
/// SQLite catalog, and on a fresh PostgreSQL database created on the server named by
/// `CALLVAULT_TEST_POSTGRES_URL` and dropped afterwards (skipped, with a note, when unset).
macro_rules! on_both_engines {
    ($($scenario:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let db = $crate::catalog::tests::sqlite().await;
                    super::$scenario(&db.catalog).await;
                    db.catalog.close().await;
                }
            )*
        }

        mod on_postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(db) = $crate::testing::PostgresDb::create().await else {
                        return;
                    };
                    let catalog = $crate::Catalog::open(&db.url).await.unwrap();
                    super::$scenario(&catalog).await;
                    catalog.close().await;
                    // Opening again finds the schema current and changes nothing.
                    $crate::Catalog::open(&db.url).await.unwrap().close().await;
                    db.drop().await;
                }
            )*
        }
    };
}
pub(crate) use on_both_engines;

/// [`on_both_engines`] for scenarios that run only when asked (`--ignored`): benchmarks.
macro_rules! on_both_engines_ignored {
    ($($scenario:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                #[ignore = "a benchmark: run with --ignored --nocapture"]
                async fn $scenario() {
                    let db = $crate::catalog::tests::sqlite().await;
                    super::$scenario(&db.catalog).await;
                    db.catalog.close().await;
                }
            )*
        }

        mod on_postgres {
            $(
                #[tokio::test]
                #[ignore = "a benchmark: run with --ignored --nocapture"]
                async fn $scenario() {
                    let Some(db) = $crate::testing::PostgresDb::create().await else {
                        return;
                    };
                    let catalog = $crate::Catalog::open(&db.url).await.unwrap();
                    super::$scenario(&catalog).await;
                    catalog.close().await;
                    db.drop().await;
                }
            )*
        }
    };
}
pub(crate) use on_both_engines_ignored;

/// Creates, at `url`, a catalog as a build of schema `version` left it: only the first
/// `version` migrations, applied by sqlx's migrator from a folder holding just those files (so
/// `_sqlx_migrations` records them exactly as in the field), then rows written with that
/// version's columns only.
async fn create_old_catalog(url: &str, version: usize) {
    let engine = if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    let mut names: Vec<_> = std::fs::read_dir(&source)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    let dir = tempfile::tempdir().unwrap();
    for name in &names[..version] {
        std::fs::copy(source.join(name), dir.path().join(name)).unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path().to_path_buf())
        .await
        .unwrap();
    let mut rows = vec![
        "INSERT INTO recordings (id, session_id, ingress_call_id, from_uri, to_uri, \
         started_at, ended_at, duration_ms, state, end_reason, source_address, transport) \
         VALUES ('old', 's', 'old@src', 'f', 't', 1796030553000, 1796030563000, 10000, \
         'complete', 'bye', '192.0.2.1:5060', 'udp')",
        "INSERT INTO recordings (id, session_id, ingress_call_id, from_uri, to_uri, \
         started_at, state, source_address, transport) \
         VALUES ('quiet', 's2', 'quiet@src', 'f', 't', 1796030553000, 'active', \
         '192.0.2.1:5060', 'udp')",
        "INSERT INTO participants (recording_id, id, position, aor) \
         VALUES ('old', 'p1', 0, 'sip:alice@example.com')",
        "INSERT INTO legs (recording_id, label, position, participant_id, binding_rule, \
         codec, sample_rate, path, packets, lost, samples, sha256) \
         VALUES ('old', '1', 0, 'p1', 'metadata', 'PCMA', 8000, 'a.wav', 500, 2, 80000, 'ab')",
        "INSERT INTO legs (recording_id, label, position, binding_rule, codec, sample_rate, \
         path) VALUES ('old', '2', 1, 'label order', 'PCMU', 8000, 'b.wav')",
        "INSERT INTO metadata_revisions (recording_id, revision, received_at, raw_xml) \
         VALUES ('old', 1, 1796030553000, '<recording/>')",
        "INSERT INTO dtmf_events (recording_id, seq, digit, leg_label, offset_ms, \
         duration_ms, source) VALUES ('old', 0, '3', '1', 200, 80, 'rfc4733')",
        "INSERT INTO dtmf_events (recording_id, seq, digit, leg_label, offset_ms, \
         duration_ms, source) VALUES ('old', 1, '2', '2', 100, 80, 'rfc4733')",
    ];
    if version >= 2 {
        // A version-2 build wrote the quality figures and the digits column too.
        rows.extend([
            "INSERT INTO recordings (id, session_id, ingress_call_id, from_uri, to_uri, \
             started_at, ended_at, duration_ms, state, end_reason, source_address, transport, \
             dtmf_digits) VALUES ('v2', 's3', 'v2@src', 'f', 't', 1796030554000, \
             1796030564000, 10000, 'failed', 'rtp-timeout', '192.0.2.1:5060', 'udp', '')",
            "INSERT INTO legs (recording_id, label, position, binding_rule, codec, \
             sample_rate, path, packets, lost, duplicates, out_of_order, late, samples, \
             sha256, added_at_ms, jitter_ms, gaps_filled_ms, ssrcs_seen, codec_changes, \
             unknown_payload, rtcp_packets) VALUES ('v2', 'a', 0, 'order', 'PCMU', 8000, \
             'v2a.wav', 1000, 1, 2, 3, 4, 160000, 'cd', 250, 3.25, 40, 1, 2, 5, 7)",
        ]);
    }
    if engine == "sqlite" {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        migrator.run(&pool).await.unwrap();
        for sql in rows {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run(&pool).await.unwrap();
        for sql in rows {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
}

/// Opens a catalog made by [`create_old_catalog`]: the migrations to version 3 run and the
/// old rows read back with the defaults, their counters computed from the old columns.
async fn old_rows_read_back_after_migration(url: &str, version: usize) {
    create_old_catalog(url, version).await;
    let catalog = Catalog::open(url).await.unwrap();
    assert_eq!(
        raw_i64s(
            &catalog,
            "SELECT version FROM _sqlx_migrations ORDER BY version"
        )
        .await,
        [
            20261130000001,
            20261130000002,
            20261130000003,
            20261130000004,
            20261130000005,
            20261203000006,
            20261203000007,
            20261203000008,
            20261203000009
        ]
    );
    let old = get(&catalog, "old").await;
    assert_eq!(old.state, RecordingState::Complete);
    assert_eq!(old.end_reason, Some(EndReason::Bye));
    assert_eq!(old.node_id, None);
    assert_eq!(old.metadata_revisions, 1);
    let legs: Vec<_> = old
        .legs
        .iter()
        .map(|l| {
            (
                l.position,
                l.label.as_str(),
                l.sha256.as_deref(),
                l.added_at_ms,
                l.error.as_deref(),
                l.counters.clone(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            (
                0,
                "1",
                Some("ab"),
                0,
                None,
                LegCounters {
                    packets: 500,
                    lost: 2,
                    ..LegCounters::default()
                }
            ),
            (1, "2", None, 0, None, LegCounters::default()),
        ]
    );
    if version == 1 {
        // The leg's participant became an association from the start (migration 2).
        assert_eq!(
            old.associations,
            [Association {
                participant: "p1".to_owned(),
                leg: "1".to_owned(),
                from_ms: 0,
                to_ms: None,
            }]
        );
    }
    assert_eq!(
        catalog.metadata_revisions("old").await.unwrap()[0].raw_xml,
        "<recording/>"
    );
    assert!(get(&catalog, "quiet").await.associations.is_empty());
    // The digits of old rows were computed in offset order on open.
    assert_eq!(listed(&catalog, &digits("23")).await, ["old"]);
    if version >= 2 {
        let v2 = get(&catalog, "v2").await;
        assert_eq!(v2.end_reason, Some(EndReason::RtpTimeout));
        assert_eq!(v2.legs[0].added_at_ms, 250);
        assert_eq!(
            v2.legs[0].counters,
            LegCounters {
                packets: 1000,
                lost: 1,
                duplicates: 2,
                out_of_order: 3,
                late: 4,
                jitter_ms: Some(3.25),
                gaps_filled_ms: 40,
                ssrcs_seen: 1,
                codec_changes: 2,
                unknown_payload: 5,
                rtcp_packets: 7,
                ..LegCounters::default()
            }
        );
    }
    assert_eq!(
        raw_i64s(&catalog, "SELECT COUNT(*) FROM legs WHERE counters IS NULL").await,
        [0]
    );
    // A row of no node is repaired by whichever node asks (the NULL rule).
    let active: Vec<_> = catalog
        .active_recordings("any-node")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(active, ["quiet"]);
    // And the new code keeps writing to them: a new digit, a new leg with a known label.
    catalog
        .add_dtmf("old", &dtmf(2, "4", "1", 300))
        .await
        .unwrap();
    assert_eq!(listed(&catalog, &digits("234")).await, ["old"]);
    catalog
        .add_legs("old", &[leg(1, "x", None), leg(2, "2", None)])
        .await
        .unwrap();
    let labels: Vec<_> = get(&catalog, "old")
        .await
        .legs
        .into_iter()
        .map(|l| (l.position, l.label))
        .collect();
    assert_eq!(
        labels,
        [
            (0, "1".to_owned()),
            (1, "2".to_owned()),
            (2, "2".to_owned())
        ]
    );
    catalog.close().await;
    // Opening again migrates nothing and finds nothing to backfill.
    let again = Catalog::open(url).await.unwrap();
    assert_eq!(listed(&again, &digits("234")).await, ["old"]);
    again.close().await;
}

#[tokio::test]
async fn sqlite_version_1_database_migrates_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    old_rows_read_back_after_migration(&Catalog::sqlite_url(dir.path()), 1).await;
}

#[tokio::test]
async fn sqlite_version_2_database_migrates_with_counters() {
    let dir = tempfile::tempdir().unwrap();
    old_rows_read_back_after_migration(&Catalog::sqlite_url(dir.path()), 2).await;
}

#[tokio::test]
async fn postgres_version_1_database_migrates_with_defaults() {
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    old_rows_read_back_after_migration(&db.url, 1).await;
    db.drop().await;
}

#[tokio::test]
async fn postgres_version_2_database_migrates_with_counters() {
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    old_rows_read_back_after_migration(&db.url, 2).await;
    db.drop().await;
}

/// The issue-12 fault: another connection holds SQLite's write lock. A write waits out the
/// busy timeout (10 s) and fails as transient; reads go on meanwhile (WAL); once the lock is
/// released the same write succeeds.
#[tokio::test]
async fn sqlite_write_lock_held_elsewhere_is_transient() {
    use sqlx::Connection as _;
    let db = sqlite().await;
    let catalog = &db.catalog;
    catalog
        .insert_recording(&new_recording("r", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    let mut other = sqlx::SqliteConnection::connect(&Catalog::sqlite_url(db._dir.path()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    let err = catalog
        .add_dtmf("r", &dtmf(0, "1", "1", 0))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let Error::Database {
        source: sqlx::Error::Database(source),
        ..
    } = &err
    else {
        panic!("expected SQLITE_BUSY, got {err:?}");
    };
    assert_eq!(source.code().as_deref(), Some("5"), "{source}");
    assert_eq!(get(catalog, "r").await.dtmf.len(), 0, "reads go on");

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    catalog.add_dtmf("r", &dtmf(0, "1", "1", 0)).await.unwrap();
    assert_eq!(get(catalog, "r").await.dtmf.len(), 1);
    other.close().await.unwrap();
    db.catalog.close().await;
}

/// Issue 21: the SQLite catalog on a full disk. Writes fail as transient; reads keep working,
/// for the running catalog and for a new one (what `recordings list` opens); once space is
/// back, writes succeed and nothing stored before changed.
#[tokio::test]
async fn sqlite_on_a_full_disk_keeps_reading_and_recovers() {
    let Some(disk) = Tmpfs::mount(8) else {
        return;
    };
    let url = Catalog::sqlite_url(disk.path());
    let catalog = Catalog::open(&url).await.unwrap();
    catalog
        .insert_recording(&new_recording("before", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    let before = get(&catalog, "before").await;
    let filler = disk.fill("filler");

    // A write that needs new pages (SQLite may reuse WAL space for a small one).
    let mut big = new_recording("big", datetime!(2026-11-30 10:01 UTC));
    big.warnings = vec!["x".repeat(2 << 20)];
    let err = catalog.insert_recording(&big).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    assert_eq!(get(&catalog, "before").await, before);
    assert_eq!(listed(&catalog, &ListQuery::default()).await, ["before"]);
    let reader = Catalog::open(&url).await.unwrap();
    assert_eq!(get(&reader, "before").await, before);
    assert_eq!(listed(&reader, &ListQuery::default()).await, ["before"]);
    reader.close().await;

    std::fs::remove_file(filler).unwrap();
    catalog.insert_recording(&big).await.unwrap();
    assert_eq!(get(&catalog, "big").await.warnings[0].len(), 2 << 20);
    assert_eq!(get(&catalog, "before").await, before);
    catalog.close().await;
}

/// A completion the archive retries while commits fail: its warning is large enough that its
/// COMMIT needs new pages (SQLite could otherwise reuse space the WAL already has).
fn completion_needing_space(id: &str) -> Completion {
    let mut c = completion(id, 0, 50, "ab12");
    c.state = RecordingState::Failed;
    c.end_reason = EndReason::WriteFailed;
    c.warnings = vec!["n".repeat(100_000)];
    c
}

/// The archive's retries of one write while every COMMIT fails: each attempt fails as
/// transient; none reports a write that was not made.
async fn retries_fail_while_commits_fail(catalog: &Catalog, c: &Completion) {
    for attempt in 0..8 {
        let err = catalog
            .complete_recording(c)
            .await
            .expect_err("a write reported done while its commit cannot succeed");
        assert!(err.is_transient(), "attempt {attempt}: {err:?}");
    }
}

/// Once commits can succeed again: the next writes go through at their first attempt and are
/// durable (a new catalog on the same database sees them).
async fn next_writes_go_through(catalog: &Catalog, url: &str, c: &Completion) {
    catalog.complete_recording(c).await.unwrap();
    // The backlog the archive has once space is back, each write tried once.
    for seq in 0..4 {
        catalog
            .insert_recording(&new_recording(
                &format!("after-{seq}"),
                datetime!(2026-11-30 10:02 UTC),
            ))
            .await
            .unwrap();
        catalog
            .add_dtmf(&c.recording_id, &dtmf(seq, "5", "1", 10))
            .await
            .unwrap();
    }
    let fresh = Catalog::open(url).await.unwrap();
    let completed = get(&fresh, &c.recording_id).await;
    assert_eq!(completed.state, RecordingState::Failed);
    assert_eq!(completed.warnings, c.warnings);
    assert_eq!(completed.dtmf.len(), 4);
    assert_eq!(listed(&fresh, &ListQuery::default()).await.len(), 5);
    fresh.close().await;
}

/// Issue 21, the moment space is back. SQLite rolls a transaction back by itself when its
/// COMMIT fails for lack of space; the pool must not keep a connection that believes
/// otherwise (it would hold SQLite's write lock on its next use, so every other writer waits
/// out the busy timeout and fails "database is locked", and its own writes would never
/// commit). So: the retries fail as transient, and once the filler is deleted nothing holds
/// the write lock and the next writes go through at once.
#[tokio::test]
async fn sqlite_full_disk_failed_commits_leave_nothing_locked() {
    use sqlx::{ConnectOptions as _, Connection as _};
    let Some(disk) = Tmpfs::mount(8) else {
        return;
    };
    let url = Catalog::sqlite_url(disk.path());
    let catalog = Catalog::open(&url).await.unwrap();
    catalog
        .insert_recording(&new_recording("r", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    let c = completion_needing_space("r");
    let filler = disk.fill("filler");
    retries_fail_while_commits_fail(&catalog, &c).await;

    std::fs::remove_file(filler).unwrap();
    // Another writer gets the write lock (tried without a busy timeout): nobody keeps it. The
    // last failed transaction's rollback runs when its connection goes back to the pool, which
    // happens beside this test, so the lock is polled for a short while — far less than the
    // 10 s busy timeout a writer would wait out, and for ever without the fix.
    let mut other = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .busy_timeout(std::time::Duration::ZERO)
        .connect()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await {
            Ok(_) => break,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(error) => panic!("the write lock is still held after space is back: {error}"),
        }
    }
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();

    next_writes_go_through(&catalog, &url, &c).await;
    catalog.close().await;
}

/// The same on PostgreSQL, whose disk we cannot fill here: a deferred constraint trigger
/// fails every COMMIT with `disk_full` (SQLSTATE 53100) while `test_disk.is_full` is set. Once it
/// is cleared, no catalog session is left inside a transaction and the next writes go
/// through at once.
#[tokio::test]
async fn postgres_failed_commits_leave_nothing_locked() {
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    let catalog = Catalog::open(&db.url).await.unwrap();
    catalog
        .insert_recording(&new_recording("r", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE test_disk (is_full BOOLEAN NOT NULL); \
         INSERT INTO test_disk VALUES (true); \
         CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF (SELECT is_full FROM test_disk) THEN \
             RAISE EXCEPTION 'could not extend file: No space left on device' \
               USING ERRCODE = 'disk_full'; \
           END IF; RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER test_disk_full AFTER INSERT OR UPDATE ON recordings \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_disk_full();",
    )
    .execute(&admin)
    .await
    .unwrap();
    let c = completion_needing_space("r");
    retries_fail_while_commits_fail(&catalog, &c).await;

    sqlx::query("UPDATE test_disk SET is_full = false")
        .execute(&admin)
        .await
        .unwrap();
    let in_transaction: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(
        in_transaction, 0,
        "a catalog session left inside a transaction"
    );

    next_writes_go_through(&catalog, &db.url, &c).await;
    admin.close().await;
    catalog.close().await;
    db.drop().await;
}

/// A PostgreSQL server that closes the connection under a statement (a restart, a failover,
/// an administrator): the error is transient, and the next call reconnects.
#[tokio::test]
async fn postgres_connection_terminated_by_the_server_is_transient() {
    use sqlx::Connection as _;
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    let catalog = Catalog::open(&db.url).await.unwrap();
    catalog
        .insert_recording(&new_recording("r", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    // Another client holds the recording's row, so the catalog's write waits on it…
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM recordings WHERE id = 'r' FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let write = {
        let catalog = catalog.clone();
        tokio::spawn(async move { catalog.add_dtmf("r", &dtmf(0, "1", "1", 0)).await })
    };
    // …until the server terminates the waiting backend.
    let admin = db.admin().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let terminated: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(db.name())
        .fetch_all(&admin)
        .await
        .unwrap();
        if terminated.contains(&true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the write never waited on the lock"
        );
        tokio::task::yield_now().await;
    }
    let err = write.await.unwrap().unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    catalog.add_dtmf("r", &dtmf(0, "1", "1", 0)).await.unwrap();
    assert_eq!(get(&catalog, "r").await.dtmf.len(), 1);
    holder.close().await.unwrap();
    admin.close().await;
    catalog.close().await;
    db.drop().await;
}

/// No server listening (PostgreSQL down or still starting): transient, after the pool's
/// short acquire timeout, and the URL's password is not in the message.
#[tokio::test]
async fn postgres_refusing_connections_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = Catalog::open(&format!(
        "postgres://vault:s3cret@127.0.0.1:{port}/callvault"
    ))
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
}

#[tokio::test]
async fn reopening_keeps_rows_and_does_not_migrate_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = Catalog::sqlite_url(dir.path());
    let first = Catalog::open(&url).await.unwrap();
    first
        .insert_recording(&new_recording("kept", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    first.close().await;

    let second = Catalog::open(&url).await.unwrap();
    assert_eq!(get(&second, "kept").await.state, RecordingState::Active);
    // The crash-recovery path: the earlier run's live call is found by its node.
    let active = second.active_recordings(NODE).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, "kept");
    let Pool::Sqlite(pool) = &second.pool else {
        unreachable!("opened from a sqlite URL")
    };
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(applied, 9);
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    second.close().await;
}

#[tokio::test]
async fn sqlite_url_survives_awkward_folder_names() {
    assert_eq!(
        Catalog::sqlite_url(Path::new("/var/lib/callvault")),
        "sqlite:///var/lib/callvault/callvault.db"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data ?#%41 dir");
    std::fs::create_dir(&data).unwrap();
    let catalog = Catalog::open(&Catalog::sqlite_url(&data)).await.unwrap();
    catalog.close().await;
    assert!(data.join(SQLITE_FILE_NAME).is_file());
}

#[tokio::test]
async fn in_memory_sqlite_keeps_its_rows_across_connections() {
    let catalog = Catalog::open("sqlite::memory:").await.unwrap();
    catalog
        .insert_recording(&new_recording("mem", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    // Several statements in parallel use several pool connections.
    let reads = (0..4).map(|_| {
        let catalog = catalog.clone();
        async move { catalog.get_recording("mem").await }
    });
    for read in futures_join_all(reads).await {
        assert!(read.unwrap().is_some());
    }
    catalog.close().await;
}

#[tokio::test]
async fn bad_urls_are_errors() {
    for url in [
        "",
        "mysql://db/callvault",
        "/var/lib/callvault/callvault.db",
    ] {
        let err = Catalog::open(url).await.unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err:?}");
    }
    let err = Catalog::open("sqlite:///tmp/x.db?journal=nope")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    let err = Catalog::open("postgres://vault:secret@db.example:notaport/callvault")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");

    // The data dir is the caller's to create: a missing one is reported, not created.
    let dir = tempfile::tempdir().unwrap();
    let err = Catalog::open(&Catalog::sqlite_url(&dir.path().join("missing")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
}

/// `schema_version` on one engine: nothing there, an old catalog, a current one; the check
/// itself creates and migrates nothing.
async fn schema_version_reads_without_changing(url: &str) {
    assert_eq!(
        Catalog::schema_version(url).await.unwrap(),
        SchemaVersion::Missing
    );
    create_old_catalog(url, 3).await;
    assert_eq!(
        Catalog::schema_version(url).await.unwrap(),
        SchemaVersion::Known {
            version: 3,
            latest: 9
        }
    );
    // Still version 3: looking did not migrate.
    assert_eq!(
        Catalog::schema_version(url).await.unwrap(),
        SchemaVersion::Known {
            version: 3,
            latest: 9
        }
    );
    let catalog = Catalog::open(url).await.unwrap();
    assert_eq!(
        Catalog::schema_version(url).await.unwrap(),
        SchemaVersion::Known {
            version: 9,
            latest: 9
        }
    );
    // A newer build's migration, then one that failed part-way.
    execute_raw(
        &catalog,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT 20991231000001, 'from the future', TRUE, checksum, 1 FROM _sqlx_migrations \
         WHERE version = 20261130000001",
    )
    .await;
    assert_eq!(
        Catalog::schema_version(url).await.unwrap(),
        SchemaVersion::Newer { latest: 9 }
    );
    execute_raw(
        &catalog,
        "UPDATE _sqlx_migrations SET success = FALSE WHERE version = 20991231000001",
    )
    .await;
    assert_eq!(
        Catalog::schema_version(url).await.unwrap(),
        SchemaVersion::Failed {
            version: 20991231000001
        }
    );
    catalog.close().await;
    // Closed (SQLite has checkpointed and removed its WAL files): still readable.
    assert_eq!(
        Catalog::schema_version(url).await.unwrap(),
        SchemaVersion::Failed {
            version: 20991231000001
        }
    );
}

#[tokio::test]
async fn sqlite_schema_version_reads_without_changing() {
    let dir = tempfile::tempdir().unwrap();
    let url = Catalog::sqlite_url(dir.path());
    schema_version_reads_without_changing(&url).await;
    // A data dir that does not exist is not created by looking at it.
    let missing = dir.path().join("missing");
    assert_eq!(
        Catalog::schema_version(&Catalog::sqlite_url(&missing))
            .await
            .unwrap(),
        SchemaVersion::Missing
    );
    assert!(!missing.exists());
}

#[tokio::test]
async fn postgres_schema_version_reads_without_changing() {
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    schema_version_reads_without_changing(&db.url).await;
    db.drop().await;
}

#[tokio::test]
async fn schema_version_of_an_unreachable_server_hides_the_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = Catalog::schema_version(&format!(
        "postgres://vault:s3cret@127.0.0.1:{port}/callvault"
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
}

#[test]
fn urls_parse_without_connecting() {
    assert_eq!(
        Catalog::parse_url("postgres://vault:p%23ss@db.example:5433/callvault").unwrap(),
        CatalogUrl::Postgres {
            host: "db.example".to_owned(),
            port: 5433,
            database: Some("callvault".to_owned())
        }
    );
    assert_eq!(
        Catalog::parse_url(&Catalog::sqlite_url(Path::new("/var/lib/callvault"))).unwrap(),
        CatalogUrl::Sqlite {
            file: Some(Path::new("/var/lib/callvault").join(SQLITE_FILE_NAME))
        }
    );
    assert_eq!(
        Catalog::parse_url("sqlite::memory:").unwrap(),
        CatalogUrl::Sqlite { file: None }
    );
    // A password with '#', '/' or '?' not percent-encoded cuts the URL short: refused, and
    // the error does not hold it.
    for url in [
        "postgres://vault:p#ss@db.example/callvault",
        "postgres://vault:p/ss@db.example/callvault",
        "postgres://vault:p?ss@db.example/callvault",
        "mysql://vault:pa55@db.example/callvault",
    ] {
        let err = Catalog::parse_url(url).unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err:?}");
        if url.starts_with("postgres") {
            assert!(err.to_string().contains("percent-encoded: %23"), "{err}");
        }
        // (Distinct secrets: the hint itself says "password".)
        for secret in ["p#ss", "p/ss", "p?ss", "pa55"] {
            assert!(!format!("{err:?}").contains(secret), "{err:?}");
        }
    }
}

#[test]
fn sqlite_and_postgres_migrations_have_the_same_shape() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let read = |engine: &str| {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(engine))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| {
                let sql: String = std::fs::read_to_string(path)
                    .unwrap()
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                (path.file_name().unwrap().to_owned(), sql)
            })
            .collect::<Vec<_>>()
    };
    let sqlite = read("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, read("postgres"));
}

/// The actor of the management scenarios.
pub(crate) fn alice() -> Actor {
    Actor::new("alice", Some("192.0.2.7".to_owned()))
}

/// An ended recording of `tenant` with one leg whose file has digest `sha-<id>`.
pub(crate) async fn ended(
    catalog: &Catalog,
    id: &str,
    tenant: Option<&str>,
    started_at: time::OffsetDateTime,
) {
    let mut rec = new_recording(id, started_at);
    rec.tenant = tenant.map(str::to_owned);
    catalog.insert_recording(&rec).await.unwrap();
    catalog
        .complete_recording(&completion(id, 0, 10, &format!("sha-{id}")))
        .await
        .unwrap();
}

/// The first column of every row of a raw query, as text.
pub(crate) async fn raw_texts(catalog: &Catalog, sql: &str) -> Vec<String> {
    let mut tx = catalog.pool.begin_read().await.unwrap();
    let rows = tx.fetch_all(sql, &[]).await.unwrap();
    tx.commit().await.unwrap();
    rows.iter()
        .map(|row| match row {
            DbRow::Sqlite(row) => sqlx::Row::get(row, 0),
            DbRow::Postgres(row) => sqlx::Row::get(row, 0),
        })
        .collect()
}

/// Whether the catalog runs on PostgreSQL.
pub(crate) fn is_postgres(catalog: &Catalog) -> bool {
    matches!(catalog.pool, Pool::Postgres(_))
}
