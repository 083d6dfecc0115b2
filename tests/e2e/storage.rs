//! Storage in trouble: a catalog locked by someone else, a disk that fills during a call.
//! Nothing recorded before is changed, nothing is silently lost, and the server recovers by
//! itself.

use std::time::Duration;

use callvault_catalog::testing::Tmpfs;
use sha2::Digest as _;
use sqlx::Connection as _;

use crate::support::client::{Call, CallSpec, SipClient, Transport};
use crate::support::{Server, leg};

fn digest(path: &std::path::Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test]
async fn a_catalog_locked_for_ten_seconds_loses_nothing() {
    // Shown before: the SQLite write lock held 12 s during a call → answered 200, then zero
    // catalog rows (the write failed and was forgotten).
    let server = Server::start();
    let url = callvault_catalog::Catalog::sqlite_url(&server.data_dir);
    let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .unwrap();
    let locked_at = std::time::Instant::now();

    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_secs(2), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    // Still locked: the recording's rows wait in the archive (retried, then spooled).
    assert!(locked_at.elapsed() < Duration::from_secs(10));
    tokio::time::sleep_until((locked_at + Duration::from_secs(10)).into()).await;
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    drop(locker);

    let rec = server.completed(&call.call_id);
    assert_eq!(rec["state"], "complete");
    for label in ["1", "2"] {
        let l = leg(&rec, label);
        assert!(l["packets"].as_i64().unwrap() >= 95, "{l}");
        assert_eq!(l["sha256"], digest(&server.path_of(l)));
    }
}

#[tokio::test]
async fn a_full_disk_ends_the_call_failed_refuses_new_ones_and_recovers_by_itself() {
    let Some(disk) = Tmpfs::mount(8) else { return };
    let server = Server::start_with_data_dir(
        disk.path().join("data"),
        "[storage]\nmin_free_bytes = 1048576\n",
    );
    let mut ping = SipClient::connect(Transport::Udp, server.sip).await;
    assert_eq!(ping.options().await.status, 200);

    // A recording made before the disk fills: it must not change.
    let mut before = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    before.play(Duration::from_secs(1), &[]).await;
    assert_eq!(before.bye().await.status, 200);
    let earlier = server.completed(&before.call_id);
    let earlier_digests: Vec<String> = earlier["legs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| digest(&server.path_of(l)))
        .collect();

    // The disk fills during a call.
    let mut during = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(600.0, 1500.0),
    )
    .await;
    during.play(Duration::from_millis(500), &[]).await;
    let filler = disk.fill("filler");
    during.play(Duration::from_millis(500), &[]).await;
    let bye = during
        .client
        .next_request(Duration::from_secs(5))
        .await
        .expect("a BYE when the call's files cannot be written");
    assert_eq!(bye.method, "BYE");
    assert!(
        bye.header("Reason").unwrap_or("").contains("cause=500"),
        "{:?}",
        bye.header("Reason")
    );
    during.client.send(&bye.response(200, "OK")).await;

    // New calls are refused (an SBC's group fails over): OPTIONS and INVITE 503.
    let refused = ping.options_until(503, Duration::from_secs(5)).await;
    assert!(refused.header("Retry-After").is_some());
    let mut turned_away = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(300.0, 900.0),
    )
    .await;
    let answer = turned_away.invite().await;
    assert_eq!(answer.status, 503);
    turned_away.ack_failure(&answer).await;
    let (ready, body) = server.http_get("/ready");
    assert_eq!(ready, 503, "{body}");

    // Space comes back: no restart needed.
    std::fs::remove_file(&filler).unwrap();
    ping.options_until(200, Duration::from_secs(15)).await;
    let mut after = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(350.0, 1200.0),
    )
    .await;
    after.play(Duration::from_secs(1), &[]).await;
    assert_eq!(after.bye().await.status, 200);
    let recorded = server.completed(&after.call_id);
    assert_eq!(recorded["state"], "complete");

    // The call the disk cut is in the catalog, failed, with why; its files end at their last
    // good sample and hash as catalogued.
    let failed = server.completed(&during.call_id);
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert_eq!(failed["end_reason"], "write-failed");
    let warnings = failed["warnings"].to_string();
    assert!(
        warnings.contains("No space left") || warnings.contains("space"),
        "{warnings}"
    );
    for l in failed["legs"].as_array().unwrap() {
        assert_eq!(l["sha256"], digest(&server.path_of(l)), "{l}");
        server.wav(l);
    }
    // Nothing recorded before the episode changed.
    for (l, was) in earlier["legs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&earlier_digests)
    {
        assert_eq!(&digest(&server.path_of(l)), was);
        assert_eq!(&l["sha256"], was);
    }
    assert!(
        server
            .list()
            .iter()
            .all(|r| r["ingress_call_id"] != turned_away.call_id)
    );
}
