//! The HTTP API on the real binary, as a compliance officer's script uses it: a user and a
//! token bootstrapped with the CLI, then a recorded call found, played (with a Range),
//! locked, refused deletion, unlocked, deleted for good (tombstone, files gone, media 410)
//! and the audit trail read and verified; and a live call paused and resumed (silence in the
//! paused interval, no digits kept).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::audio::{dominant_frequency, rms};
use crate::support::client::{Call, CallSpec, Transport};
use crate::support::http::{HttpResponse, request};
use crate::support::{Server, leg};

const PASSWORD: &str = "correct horse battery staple 42";

/// A user with `role` and its bearer token, made with the CLI as an operator would.
pub(crate) fn user_with_token(server: &Server, name: &str, role: &str) -> String {
    let out = server.operator(
        &["users", "add", name, "--role", role, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "users add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.operator(&["tokens", "create", name], "");
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        token.lines().count(),
        1,
        "tokens create prints the token only"
    );
    token.trim().to_owned()
}

struct Api<'a> {
    server: &'a Server,
    auth: String,
}

impl Api<'_> {
    fn call(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> HttpResponse {
        let mut headers = vec![("Authorization", self.auth.as_str())];
        headers.extend_from_slice(extra);
        request(
            self.server.http,
            method,
            &format!("/api/v1{path}"),
            &headers,
            body.as_ref(),
        )
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.call("GET", path, &[], None)
    }
}

pub(crate) async fn recorded_call(server: &Server) -> Value {
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(800), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    server.completed(&call.call_id)
}

#[tokio::test]
async fn play_lock_refused_delete_unlock_delete_leaves_a_tombstone_and_an_audit_trail() {
    let server = Server::start();
    let token = user_with_token(&server, "ada", "compliance");
    let api = Api {
        server: &server,
        auth: format!("Bearer {token}"),
    };
    let recording = recorded_call(&server).await;
    let id = recording["id"].as_str().unwrap().to_owned();
    let call_id = recording["ingress_call_id"].as_str().unwrap();

    // Nothing without a token; a viewer may not delete.
    let anonymous = request(server.http, "GET", "/api/v1/recordings", &[], None);
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["error"]["code"], "unauthenticated");
    let viewer = Api {
        server: &server,
        auth: format!("Bearer {}", user_with_token(&server, "vic", "viewer")),
    };
    let refused = viewer.call(
        "DELETE",
        &format!("/recordings/{id}"),
        &[],
        Some(json!({"reason": "x"})),
    );
    assert_eq!(refused.status, 403);

    // Find it by its Call-ID.
    let found = api.get(&format!("/recordings?call_id={call_id}"));
    assert_eq!(found.status, 200);
    let items = found.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["locked"], false);

    // Play a leg: the whole file, then a seek with Range.
    let first = leg(&recording, "1");
    let on_disk = std::fs::read(server.path_of(first)).unwrap();
    let whole = api.get(&format!("/recordings/{id}/legs/1/audio"));
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("audio/wav"));
    assert_eq!(
        whole.body, on_disk,
        "the closed file is served byte for byte"
    );
    let seek = api.call(
        "GET",
        &format!("/recordings/{id}/legs/1/audio"),
        &[("Range", "bytes=1000-1999")],
        None,
    );
    assert_eq!(seek.status, 206);
    assert_eq!(
        seek.header("content-range"),
        Some(format!("bytes 1000-1999/{}", on_disk.len()).as_str())
    );
    assert_eq!(seek.body, on_disk[1000..2000]);

    // Legal hold: locked, so nobody may delete it.
    let lock = api.call(
        "POST",
        &format!("/recordings/{id}/locks"),
        &[],
        Some(json!({"reason": "LegalHold#245"})),
    );
    assert_eq!(lock.status, 201);
    let lock_id = lock.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get(&format!("/recordings?call_id={call_id}")).json()["items"][0]["locked"],
        true
    );
    let refused = api.call(
        "DELETE",
        &format!("/recordings/{id}"),
        &[],
        Some(json!({"reason": "retention"})),
    );
    assert_eq!(refused.status, 409);
    assert_eq!(refused.json()["error"]["code"], "locked");
    assert!(
        server.path_of(first).exists(),
        "a refused deletion removes nothing"
    );

    // Unlocked, then deleted for good.
    let unlock = api.call(
        "DELETE",
        &format!("/recordings/{id}/locks/{lock_id}"),
        &[],
        Some(json!({"reason": "matter closed"})),
    );
    assert_eq!(unlock.status, 204);
    let deleted = api.call(
        "DELETE",
        &format!("/recordings/{id}"),
        &[],
        Some(json!({"reason": "customer request"})),
    );
    assert_eq!(deleted.status, 204);
    for l in recording["legs"].as_array().unwrap() {
        assert!(!server.path_of(l).exists(), "{} removed", l["path"]);
    }
    let tombstone = api.get(&format!("/recordings/{id}"));
    assert_eq!(tombstone.status, 200);
    let tombstone = tombstone.json();
    assert_eq!(tombstone["state"], "deleted");
    assert_eq!(tombstone["deleted_by"], "ada");
    assert_eq!(tombstone["delete_reason"], "customer request");
    assert_eq!(
        api.get(&format!("/recordings/{id}/legs/1/audio")).status,
        410
    );
    assert_eq!(api.get(&format!("/recordings/{id}/audio")).status, 410);
    let search = api.get(&format!("/recordings?call_id={call_id}")).json();
    assert_eq!(
        search["items"][0]["state"], "deleted",
        "searches still show the tombstone"
    );

    // The audit trail, with who, what and why; and its chain intact.
    let audit = api.get(&format!("/audit?recording_id={id}")).json();
    let actions: Vec<(String, Option<String>)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["user"], "ada");
            (
                e["action"].as_str().unwrap().to_owned(),
                e["reason"].as_str().map(str::to_owned),
            )
        })
        .collect();
    for expected in [
        ("play", None),
        ("lock", Some("LegalHold#245")),
        ("unlock", Some("matter closed")),
        ("delete", Some("customer request")),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, r)| a == expected.0 && r.as_deref() == expected.1),
            "{expected:?} in {actions:?}"
        );
    }
    let verify = server.operator(&["audit", "verify"], "");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[tokio::test]
async fn a_live_call_paused_and_resumed_records_silence_and_no_digits_meanwhile() {
    let server = Server::start();
    let token = user_with_token(&server, "pci-desk", "compliance");
    let api = Api {
        server: &server,
        auth: format!("Bearer {token}"),
    };
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(1000), &[]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let id = loop {
        let items = api
            .get(&format!("/recordings?call_id={}", call.call_id))
            .json()["items"]
            .clone();
        if let Some(id) = items[0]["id"].as_str() {
            break id.to_owned();
        }
        // The catalog row is written by the archive shortly after the answer: poll for it.
        assert!(
            std::time::Instant::now() < deadline,
            "the live recording is never found"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        api.call("POST", &format!("/recordings/{id}/pause"), &[], None)
            .status,
        204
    );
    let again = api.call("POST", &format!("/recordings/{id}/pause"), &[], None);
    assert_eq!(
        (again.status, again.json()["error"]["code"].clone()),
        (409, json!("already_paused"))
    );
    // The card number: audio and a keyed digit while paused.
    call.play(Duration::from_millis(700), &[]).await;
    call.press(0, '4', Duration::from_millis(200)).await;
    call.play(Duration::from_millis(700), &[]).await;
    assert_eq!(
        api.call("POST", &format!("/recordings/{id}/resume"), &[], None)
            .status,
        204
    );
    call.play(Duration::from_millis(1000), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let recording = server.completed(&call.call_id);
    assert_eq!(
        api.call("POST", &format!("/recordings/{id}/pause"), &[], None)
            .status,
        409,
        "an ended call cannot be paused"
    );

    let details = api.get(&format!("/recordings/{id}")).json();
    let paused = details["paused"].as_array().unwrap();
    assert_eq!(paused.len(), 1, "{details}");
    assert_eq!(paused[0]["by"], "pci-desk");
    let from = paused[0]["from_ms"].as_u64().unwrap();
    let to = paused[0]["to_ms"].as_u64().unwrap();
    assert!(to - from >= 1200, "paused {from}..{to}");
    assert_eq!(
        recording["dtmf"],
        json!([]),
        "no digit kept from the paused interval"
    );
    for (label, hz) in [("1", 440.0), ("2", 1000.0)] {
        let wav = server.wav(leg(&recording, label));
        assert_eq!(
            dominant_frequency(wav.window(200, from - 100), wav.rate),
            hz
        );
        assert_eq!(
            rms(wav.window(from + 100, to - 100)),
            0.0,
            "leg {label} silent while paused"
        );
        assert_eq!(
            dominant_frequency(wav.window(to + 200, to + 800), wav.rate),
            hz
        );
    }
    let audit = api.get(&format!("/audit?recording_id={id}")).json();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"pause") && actions.contains(&"resume"),
        "{actions:?}"
    );
}
