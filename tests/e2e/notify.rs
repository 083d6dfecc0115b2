//! Completion webhooks, `recording.json` and the `on_complete` hook on the real binary, with a
//! real HTTP receiver on loopback: the signature a receiver checks, a 500 retried, deliveries
//! that wait out a restart while the receiver is down (none lost), an API lock announced.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::client::{Call, CallSpec, Transport};
use crate::support::http::request;
use crate::support::receiver::{Receiver, StuckReceiver, free_port};
use crate::support::{Server, metric};

const SECRET: &str = "a shared secret for the receiver";

fn notify_toml(port: u16, events: &[&str]) -> String {
    format!(
        "[[notify]]\nurl = \"http://127.0.0.1:{port}/hooks/callvault?token=t0k3n\"\n\
         secret = {SECRET:?}\nevents = {events:?}\nretry_initial_ms = 100\nretry_max_ms = 400\n\
         timeout_ms = 2000\n"
    )
}

/// What a receiver does with `X-Callvault-Signature`: HMAC-SHA256 of the raw body.
fn signature_is_valid(header: &str, body: &[u8]) -> bool {
    let Some(hex_mac) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(mac) = hex::decode(hex_mac) else {
        return false;
    };
    let mut expected = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    expected.update(body);
    expected.verify_slice(&mac).is_ok()
}

async fn a_call(server: &Server) -> String {
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(600), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    call.call_id.clone()
}

/// Polls `/metrics` until `name` reaches `at_least` (the server's own count, not a sleep).
fn wait_for_metric(server: &Server, name: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = server.http_get("/metrics");
        if metric(&page, name) >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed below {at_least}:\n{page}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_completion_is_signed_retried_after_a_500_and_written_beside_the_wavs() {
    let receiver = Receiver::start(&[500]);
    let hook_out = tempfile::tempdir().unwrap();
    let out_file = hook_out.path().join("hook.txt");
    let script = "printf '%s\\n' \"$1\" \"$2\" \"$CALLVAULT_EVENT\" \"$CALLVAULT_RECORDING_ID\" \"$CALLVAULT_RECORDING_DIR\" \"$CALLVAULT_RECORDING_STATE\" \"$CALLVAULT_RECORDING_JSON\" > \"$0.tmp\" && mv \"$0.tmp\" \"$0\"; echo hook says hello";
    let toml = format!(
        "{}\n[hooks]\non_complete = [\"/bin/sh\", \"-c\", {script:?}, {:?}]\non_complete_timeout_secs = 20\n",
        notify_toml(receiver.addr.port(), &[]),
        out_file.to_str().unwrap()
    );
    let mut server = Server::start_with(&toml);
    let call_id = a_call(&server).await;
    let recording = server.completed(&call_id);
    let id = recording["id"].as_str().unwrap();

    // First attempt answered 500, the retry 200: the same bytes, key and valid signature.
    let first = receiver.next(Duration::from_secs(20));
    let second = receiver.next(Duration::from_secs(20));
    assert_eq!((first.answered, second.answered), (500, 200));
    assert_eq!(first.path, "/hooks/callvault?token=t0k3n");
    for delivery in [&first, &second] {
        assert_eq!(
            delivery.header("X-Callvault-Event"),
            Some("recording.completed")
        );
        assert_eq!(
            delivery.header("Idempotency-Key"),
            Some(format!("{id}.recording.completed").as_str())
        );
        assert_eq!(delivery.header("Content-Type"), Some("application/json"));
        let signature = delivery.header("X-Callvault-Signature").unwrap();
        assert!(signature_is_valid(signature, &delivery.body), "{signature}");
    }
    assert_eq!(first.body, second.body);
    assert_eq!(second.header("X-Callvault-Attempt"), Some("2"));
    let mut forged = second.body.clone();
    forged[10] ^= 1;
    assert!(!signature_is_valid(
        second.header("X-Callvault-Signature").unwrap(),
        &forged
    ));

    // The body: the event and the recording as `recordings show --json` prints it.
    let body = second.json();
    assert_eq!(body["event"], "recording.completed");
    assert_eq!(body["recording"], recording);
    assert_eq!(body["recording"]["legs"].as_array().unwrap().len(), 2);

    // recording.json beside the WAVs: the same object.
    let wav = server
        .data_dir
        .join(recording["legs"][0]["path"].as_str().unwrap());
    let folder = wav.parent().unwrap();
    let written: Value =
        serde_json::from_slice(&std::fs::read(folder.join("recording.json")).unwrap()).unwrap();
    assert_eq!(written, recording);
    let leftovers: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // The hook ran with the id and the folder, as arguments and in its environment.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !out_file.exists() {
        assert!(
            Instant::now() < deadline,
            "the on_complete hook did not run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let folder = folder.canonicalize().unwrap();
    let lines: Vec<String> = std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let json_path = folder.join("recording.json");
    assert_eq!(
        lines,
        [
            id,
            folder.to_str().unwrap(),
            "recording.completed",
            id,
            folder.to_str().unwrap(),
            "complete",
            json_path.to_str().unwrap(),
        ]
    );
    server.wait_for_log("on_complete: hook says hello", Duration::from_secs(10));
    wait_for_metric(&server, "callvault_hook_runs_total", 1);
    // Counted once the receiver's answer is read (after the receiver has handed it to us).
    wait_for_metric(&server, "callvault_notify_delivered_total", 1);
    let (_, page) = server.http_get("/metrics");
    assert_eq!(metric(&page, "callvault_notify_delivered_total"), 1);
    assert_eq!(metric(&page, "callvault_notify_failed_attempts_total"), 1);
    assert_eq!(metric(&page, "callvault_notify_pending"), 0);
    assert_eq!(metric(&page, "callvault_hook_failures_total"), 0);
    // Nothing else was sent (one event, delivered once it got its 2xx).
    assert!(receiver.try_next(Duration::from_millis(500)).is_none());
}

#[tokio::test]
async fn deliveries_wait_out_a_restart_while_the_receiver_is_down() {
    let port = free_port();
    let toml = notify_toml(port, &["recording.completed", "recording.failed"]);
    let mut server = Server::start_with(&toml);
    let mut calls = Vec::new();
    for _ in 0..3 {
        calls.push(a_call(&server).await);
    }
    let ids: BTreeSet<String> = calls
        .iter()
        .map(|call_id| server.completed(call_id)["id"].as_str().unwrap().to_owned())
        .collect();
    // Every delivery has been tried and refused (nothing listens).
    wait_for_metric(&server, "callvault_notify_failed_attempts_total", 3);
    let (_, page) = server.http_get("/metrics");
    assert_eq!(metric(&page, "callvault_notify_pending"), 3);
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(30)).success());
    let dir = server.into_dir();

    // The receiver comes up, then the server: what was waiting goes out, each once.
    let receiver = Receiver::start_on(port, &[]);
    let server = Server::start_in_with(dir, &toml);
    let mut delivered = BTreeSet::new();
    while delivered.len() < ids.len() {
        let delivery = receiver.next(Duration::from_secs(20));
        assert!(signature_is_valid(
            delivery.header("X-Callvault-Signature").unwrap(),
            &delivery.body
        ));
        let body = delivery.json();
        assert_eq!(body["event"], "recording.completed");
        delivered.insert(body["recording"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(delivered, ids, "nothing lost");
    wait_for_metric(&server, "callvault_notify_delivered_total", 3);
    let (_, page) = server.http_get("/metrics");
    assert_eq!(metric(&page, "callvault_notify_pending"), 0);
    assert!(
        receiver.try_next(Duration::from_millis(500)).is_none(),
        "each once"
    );
}

#[tokio::test]
async fn a_lock_through_the_api_is_announced() {
    let receiver = Receiver::start(&[]);
    let server = Server::start_with(&notify_toml(
        receiver.addr.port(),
        &["recording.locked", "recording.unlocked"],
    ));
    let call_id = a_call(&server).await;
    let id = server.completed(&call_id)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = server.operator(
        &[
            "users",
            "add",
            "ada",
            "--role",
            "compliance",
            "--password-stdin",
        ],
        "correct horse battery staple 42\n",
    );
    assert!(out.status.success());
    let token =
        String::from_utf8(server.operator(&["tokens", "create", "ada"], "").stdout).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let lock = request(
        server.http,
        "POST",
        &format!("/api/v1/recordings/{id}/locks"),
        &[("Authorization", &auth)],
        Some(&json!({"reason": "LegalHold#245"})),
    );
    assert_eq!(lock.status, 201);
    let lock_id = lock.json()["id"].as_str().unwrap().to_owned();

    let delivery = receiver.next(Duration::from_secs(20));
    assert_eq!(
        delivery.header("X-Callvault-Event"),
        Some("recording.locked")
    );
    assert_eq!(
        delivery.header("Idempotency-Key"),
        Some(format!("{id}.recording.locked.{lock_id}").as_str())
    );
    let body = delivery.json();
    assert_eq!(body["recording"]["locked"], true);
    assert_eq!(body["recording"]["locks"][0]["reason"], "LegalHold#245");
    // The completion was not asked for: the lock is the first and only delivery.
    assert!(receiver.try_next(Duration::from_millis(300)).is_none());
}

/// A receiver that takes the request and never answers holds up neither another receiver's
/// deliveries nor the calls: the healthy receiver has its event, and a new call is answered,
/// while the stuck one still holds its connection (its timeout is a minute away).
#[tokio::test]
async fn a_receiver_that_never_answers_costs_only_its_own_deliveries() {
    let stuck = StuckReceiver::start();
    let healthy = Receiver::start(&[]);
    let toml = format!(
        "[[notify]]\nurl = \"http://{}/stuck\"\ntimeout_ms = 60000\n\n{}",
        stuck.addr,
        notify_toml(healthy.addr.port(), &[])
    );
    let server = Server::start_with(&toml);
    let first = a_call(&server).await;
    let id = server.completed(&first)["id"].as_str().unwrap().to_owned();
    let held = stuck.next(Duration::from_secs(20));
    assert_eq!(
        held.header("Idempotency-Key"),
        Some(format!("{id}.recording.completed").as_str())
    );
    let delivered = healthy.next(Duration::from_secs(20));
    assert_eq!(delivered.json()["recording"]["id"], id.as_str());
    // The SIP loop goes on: another call is recorded and announced to the healthy receiver.
    let second = a_call(&server).await;
    let second_id = server.completed(&second)["id"].as_str().unwrap().to_owned();
    let delivered = healthy.next(Duration::from_secs(20));
    assert_eq!(delivered.json()["recording"]["id"], second_id.as_str());
    let (_, page) = server.http_get("/metrics");
    assert_eq!(
        metric(&page, "callvault_notify_failed_attempts_total"),
        0,
        "the stuck POST has not even timed out"
    );
}

/// A crash during a call: the next start repairs the recording (`interrupted`, `crash`) and
/// announces it final like any other, with its `recording.json`.
#[tokio::test]
async fn a_recording_repaired_after_a_crash_is_announced() {
    let receiver = Receiver::start(&[]);
    let toml = notify_toml(receiver.addr.port(), &[]);
    let mut server = Server::start_with(&toml);
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(600), &[]).await;
    let answered = server.wait_for_log("answered: recording", Duration::from_secs(10));
    let id = answered
        .split("recording_id=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let dir = server.into_dir(); // SIGKILL: nothing is closed or announced
    assert!(receiver.try_next(Duration::from_millis(300)).is_none());

    let server = Server::start_in_with(dir, &toml);
    let delivery = receiver.next(Duration::from_secs(30));
    let body = delivery.json();
    assert_eq!(body["event"], "recording.completed");
    assert_eq!(body["recording"]["id"], id.as_str());
    assert_eq!(body["recording"]["state"], "interrupted");
    assert_eq!(body["recording"]["end_reason"], "crash");
    let recording = server.show(&id);
    assert_eq!(body["recording"], recording);
    let wav = server.path_of(&recording["legs"][0]);
    let written: Value = serde_json::from_slice(
        &std::fs::read(wav.parent().unwrap().join("recording.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written, recording);
}

/// SIGHUP re-reads `[[notify]]`: the next event goes to the new receiver, not the removed one.
#[tokio::test]
async fn sighup_switches_receivers_for_the_events_that_follow() {
    let old = Receiver::start(&[]);
    let new = Receiver::start(&[]);
    let mut server = Server::start_with(&notify_toml(old.addr.port(), &[]));
    let config = server.data_dir.parent().unwrap().join("callvault.toml");
    std::fs::write(&config, notify_toml(new.addr.port(), &[])).unwrap();
    server.hangup();
    server.wait_for_log(
        &format!(
            "SIGHUP: webhook receiver http://127.0.0.1:{}/hooks/callvault added",
            new.addr.port()
        ),
        Duration::from_secs(10),
    );
    server.wait_for_log(
        &format!(
            "SIGHUP: webhook receiver http://127.0.0.1:{}/hooks/callvault removed",
            old.addr.port()
        ),
        Duration::from_secs(10),
    );
    let call_id = a_call(&server).await;
    let id = server.completed(&call_id)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        new.next(Duration::from_secs(20)).json()["recording"]["id"],
        id.as_str()
    );
    assert!(old.try_next(Duration::from_millis(300)).is_none());

    // A file that no longer loads changes nothing.
    std::fs::write(&config, "[[notify]]\nurl = \"ftp://nowhere/\"\n").unwrap();
    server.hangup();
    server.wait_for_log(
        "SIGHUP: webhook receivers not reloaded; the current ones stay",
        Duration::from_secs(10),
    );
    let call_id = a_call(&server).await;
    let id = server.completed(&call_id)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        new.next(Duration::from_secs(20)).json()["recording"]["id"],
        id.as_str()
    );
}
