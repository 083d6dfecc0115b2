//! The server's own life: stopping with calls up, a second server on the same data directory,
//! and calls that another dialog's mistakes must not end.

use std::time::{Duration, Instant};

use sha2::Digest as _;

use crate::support::audio::dominant_frequency;
use crate::support::client::{Call, CallSpec, Transport};
use crate::support::{Server, leg};

/// Milliseconds of a leg lost to a crash: how long the call had run when the server died,
/// less the audio its file holds.
fn lost_ms(ran: Duration, wav_ms: i64) -> i64 {
    ran.as_millis() as i64 - wav_ms
}

#[tokio::test]
async fn sigterm_sends_every_session_a_bye_refuses_new_calls_and_closes_every_recording() {
    let mut server = Server::start_with("[sip]\nshutdown_grace_secs = 20\n");
    let mut tcp = Call::answered(
        Transport::Tcp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    let mut udp = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(600.0, 1500.0),
    )
    .await;
    // DTMF over INFO is acknowledged in the dialog.
    let info = tcp
        .request_in_dialog(
            "INFO",
            "application/dtmf-relay",
            b"Signal=5\r\nDuration=160\r\n",
        )
        .await;
    assert_eq!(info.status, 200);
    tokio::join!(
        tcp.play(Duration::from_millis(1500), &[]),
        udp.play(Duration::from_millis(1500), &[])
    );
    assert_eq!(tcp.packets_sent().iter().sum::<u64>(), 150);

    server.terminate();
    // Each recording client is told, with why.
    let mut byes = Vec::new();
    for call in [&mut tcp, &mut udp] {
        let bye = call
            .client
            .next_request(Duration::from_secs(10))
            .await
            .expect("a BYE for every session on SIGTERM");
        assert_eq!(bye.method, "BYE");
        assert_eq!(bye.header("Call-ID"), Some(call.call_id.as_str()));
        assert_eq!(
            bye.header("Reason"),
            Some("SIP;cause=503;text=\"shutting down\"")
        );
        byes.push(bye);
    }
    // While it drains (BYEs unanswered), a new call and a ping are refused so the SBC fails over.
    let mut late = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(300.0, 900.0),
    )
    .await;
    let refused = late.invite().await;
    assert_eq!(refused.status, 503);
    assert!(refused.header("Retry-After").is_some());
    late.ack_failure(&refused).await;
    for (call, bye) in [&mut tcp, &mut udp].into_iter().zip(&byes) {
        call.client.send(&bye.response(200, "OK")).await;
    }
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "serve exits cleanly on SIGTERM: {status:?}"
    );

    // Every row is final, every file closed and hashed, nothing recorded of the refused call.
    let list = server.list();
    assert_eq!(list.len(), 2);
    for rec in &list {
        assert_eq!(rec["state"], "interrupted", "{rec}");
        assert_eq!(rec["end_reason"], "shutdown");
        for l in rec["legs"].as_array().unwrap() {
            let digest = l["sha256"].as_str().expect("leg closed and hashed");
            assert_eq!(digest.len(), 64);
            let wav = server.wav(l);
            assert!(wav.duration_ms() >= 1400, "{} ms", wav.duration_ms());
        }
    }
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused_and_changes_nothing() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(500), &[]).await;

    let second = server.serve_again();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another callvault"), "{stderr}");

    // The first server's live call was not marked interrupted and records on.
    let live = server.list();
    assert_eq!(live[0]["state"], "active");
    call.play(Duration::from_millis(500), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    assert_eq!(rec["state"], "complete");
    assert_eq!(rec["end_reason"], "bye");
    assert!(leg(&rec, "1")["packets"].as_i64().unwrap() >= 45);
}

#[tokio::test]
async fn an_invite_reusing_a_live_call_id_cannot_end_that_call() {
    // Shown before: an INVITE reusing a live call's Call-ID, refused and never ACKed, ended the
    // live recording `ack-timeout` once its transaction timed out (64*T1), and the live call's
    // own BYE then got 481. T1 = 100 ms makes that 6.4 s.
    let server = Server::start_with("[sip]\nt1_ms = 100\n");
    let mut live = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    let mut intruder = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(300.0, 900.0),
    )
    .await;
    intruder.call_id = live.call_id.clone();
    let refused = intruder
        .invite_raw("text/plain", b"not a recording offer", "")
        .await;
    assert_eq!(refused.status, 415);
    // Never ACKed: the 415's transaction times out after 64*T1.
    live.play(Duration::from_secs(8), &[]).await;
    assert!(
        live.client
            .next_request(Duration::from_millis(100))
            .await
            .is_none(),
        "no BYE to the live call"
    );
    assert_eq!(live.bye().await.status, 200);
    let rec = server.completed(&live.call_id);
    assert_eq!(rec["end_reason"], "bye");
    assert_eq!(rec["state"], "complete");
}

#[tokio::test]
async fn kill_9_loses_under_half_a_second_and_the_next_start_repairs_and_closes_the_recording() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    let answered = Instant::now();
    call.play(Duration::from_secs(5), &[]).await;
    // kill -9 mid-call: no chance to close anything.
    let pid = server.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    let ran = answered.elapsed();
    let list = server.list();
    assert_eq!(list[0]["state"], "active");
    let mut as_left = Vec::new();
    for l in list[0]["legs"].as_array().unwrap() {
        // Playable as the crash left it: the header lags the data by at most 50 ms.
        as_left.push(lost_ms(ran, server.wav(l).duration_ms()));
    }

    let restarted = Server::start_in(server.into_dir());
    let rec = restarted.completed(&call.call_id);
    assert_eq!(rec["state"], "interrupted");
    assert_eq!(rec["end_reason"], "crash");
    let mut repaired = Vec::new();
    for (label, hz) in [("1", 440.0), ("2", 1000.0)] {
        let l = leg(&rec, label);
        let path = restarted.path_of(l);
        let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&path).unwrap()));
        assert_eq!(
            l["sha256"], digest,
            "the catalog's digest is the repaired file's"
        );
        let wav = restarted.wav(l);
        let f = dominant_frequency(wav.window(1000, 4000), wav.rate);
        assert!(
            (f - hz).abs() <= 10.0,
            "leg {label} keeps its audio: {f} Hz"
        );
        repaired.push(lost_ms(ran, wav.duration_ms()));
    }
    eprintln!("kill -9 after {ran:?}: lost {as_left:?} ms as left, {repaired:?} ms after repair");
    for lost in repaired {
        assert!(lost <= 500, "a leg lost {lost} ms to kill -9");
    }
}

/// The figure in the README: ten calls (twenty legs) killed 5 s in, as the crash check
/// did. Real time and a release build give the honest number, so it is run by hand:
/// `cargo test --release -p callvault --test e2e -- --ignored --nocapture kill_9_loss_over_ten_calls`
#[tokio::test]
#[ignore = "a measurement: run by hand with --release"]
async fn kill_9_loss_over_ten_calls() {
    let server = Server::start();
    let mut calls = Vec::new();
    for i in 0..10u32 {
        let spec = CallSpec::two_parties(300.0 + 50.0 * f64::from(i), 1000.0 + 50.0 * f64::from(i));
        let call = Call::answered(Transport::Udp, server.sip, spec).await;
        calls.push((call, Instant::now()));
    }
    let mut playing = Vec::new();
    for (mut call, answered) in calls {
        playing.push(tokio::spawn(async move {
            // Each call plays until the kill; 5 s after the first answer.
            call.play(Duration::from_secs(6), &[]).await;
            (call.call_id.clone(), answered)
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = server.pid().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    let killed = Instant::now();
    let mut answered_at = Vec::new();
    for task in playing {
        answered_at.push(task.await.unwrap());
    }
    let mut as_left = Vec::new();
    let by_call: Vec<(serde_json::Value, Instant)> = answered_at
        .iter()
        .map(|(call_id, answered)| {
            let rec = server
                .list()
                .into_iter()
                .find(|r| r["ingress_call_id"] == call_id.as_str())
                .unwrap();
            (rec, *answered)
        })
        .collect();
    for (rec, answered) in &by_call {
        for l in rec["legs"].as_array().unwrap() {
            as_left.push(lost_ms(killed - *answered, server.wav(l).duration_ms()));
        }
    }
    let restarted = Server::start_in(server.into_dir());
    let mut repaired = Vec::new();
    for (call_id, answered) in &answered_at {
        let rec = restarted.completed(call_id);
        for l in rec["legs"].as_array().unwrap() {
            repaired.push(lost_ms(killed - *answered, restarted.wav(l).duration_ms()));
        }
    }
    let summary = |mut v: Vec<i64>| {
        v.sort();
        format!(
            "median {} ms, max {} ms over {} legs",
            v[v.len() / 2],
            v[v.len() - 1],
            v.len()
        )
    };
    eprintln!("kill -9 loss as left: {}", summary(as_left));
    eprintln!(
        "kill -9 loss after the restart's repair: {}",
        summary(repaired)
    );
}
