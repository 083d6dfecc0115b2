//! `callvault drain`: the node leaves its SBC's recording-server group — OPTIONS, new INVITEs
//! and /ready answer 503 — while the call in progress records to its natural end; `drain
//! --cancel` takes calls again.

use std::time::Duration;

use crate::support::Server;
use crate::support::client::{Call, CallSpec, SipClient, Transport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_refuses_new_calls_and_lets_the_live_one_finish() {
    let mut server = Server::start();
    let mut ping = SipClient::connect(Transport::Udp, server.sip).await;
    assert_eq!(ping.options().await.status, 200);
    let mut live = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    live.play(Duration::from_millis(500), &[]).await;

    let drained = server.operator(&["drain"], "");
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    assert!(String::from_utf8_lossy(&drained.stdout).contains("is draining"));
    server.wait_for_log(
        "draining: new calls and OPTIONS get 503",
        Duration::from_secs(5),
    );
    let refused = ping.options().await;
    assert_eq!((refused.status, refused.reason.as_str()), (503, "Draining"));
    assert!(refused.header("Retry-After").is_some());
    let mut turned_away = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(300.0, 900.0),
    )
    .await;
    let answer = turned_away.invite().await;
    assert_eq!(answer.status, 503);
    assert!(answer.header("Retry-After").is_some());
    turned_away.ack_failure(&answer).await;
    let (ready, body) = server.http_get("/ready");
    assert_eq!(ready, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    let (_, health) = server.http_get("/health");
    assert!(health.contains("\"draining\":true"), "{health}");

    // The call in progress is not touched: it goes on, and ends with its own BYE.
    live.play(Duration::from_millis(500), &[]).await;
    assert_eq!(live.bye().await.status, 200);
    let recorded = server.completed(&live.call_id);
    assert_eq!(recorded["state"], "complete");
    assert_eq!(recorded["end_reason"], "bye");
    assert!(
        recorded["duration_ms"].as_u64().unwrap() >= 1000,
        "{recorded}"
    );

    let cancelled = server.operator(&["drain", "--cancel"], "");
    assert!(cancelled.status.success());
    ping.options_until(200, Duration::from_secs(5)).await;
    let (ready, body) = server.http_get("/ready");
    assert_eq!(ready, 200, "{body}");
}

#[test]
fn drain_without_a_running_server_says_so() {
    let server = Server::start();
    let data_dir = server.data_dir.clone();
    let _kept = server.into_dir(); // stopped; the lock file stays, unlocked
    let out = std::process::Command::new(crate::support::BIN)
        .args(["drain", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no callvault is running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
