//! `callvault test-call` against the real server: the id it prints is a recording the catalog
//! holds, with the two tones on their own legs and the digits pressed.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::audio::dominant_frequency;
use crate::support::{BIN, Server, leg};

fn test_call(server: &Server, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["test-call", "--to", &server.sip.to_string()])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "test-call failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the id on stdout: {stdout:?}"
    );
    stdout.trim().to_owned()
}

/// `recordings show ID --json` once the recording is no longer active.
fn completed(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = server.cli(&["show", id, "--json"]);
        if out.status.success() {
            let recording: Value = serde_json::from_slice(&out.stdout).unwrap();
            if recording["state"] != "active" {
                return recording;
            }
        }
        assert!(
            Instant::now() < deadline,
            "recording {id} not completed in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn test_call_prints_a_recording_with_two_tones_and_the_digits() {
    let server = Server::start();
    let id = test_call(&server, &["--seconds", "3"]);
    let recording = completed(&server, &id);
    assert_eq!(recording["state"], "complete");
    assert_eq!(recording["end_reason"], "bye");
    assert_eq!(recording["transport"], "udp");
    assert_eq!(recording["legs"].as_array().unwrap().len(), 2);
    for (label, hz) in [("1", 440.0), ("2", 1000.0)] {
        let leg = leg(&recording, label);
        assert_eq!(leg["codec"], "PCMU");
        let wav = server.wav(leg);
        assert!(
            (2_800..=3_500).contains(&wav.duration_ms()),
            "{} ms",
            wav.duration_ms()
        );
        // After the digits (1 s + 4 × 300 ms), the stream's own tone.
        let found = dominant_frequency(wav.window(2_300, 2_700), 8_000);
        assert!(
            (found - hz).abs() < 20.0,
            "leg {label}: {found} Hz, not {hz}"
        );
    }
    let digits: String = recording["dtmf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["leg"], "1");
            assert_eq!(d["source"], "rfc4733");
            d["digit"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(digits, "1234");
    let participants: Vec<&str> = recording["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["aor"].as_str().unwrap())
        .collect();
    assert_eq!(
        participants,
        ["sip:alice@test-call.invalid", "sip:bob@test-call.invalid"]
    );
}

#[test]
fn test_call_over_tcp_prints_the_id_the_server_gave() {
    let server = Server::start();
    let id = test_call(
        &server,
        &["--seconds", "1", "--transport", "tcp", "--digits", ""],
    );
    let recording = completed(&server, &id);
    assert_eq!(recording["transport"], "tcp");
    assert_eq!(recording["id"], id.as_str());
}

#[test]
fn test_call_against_nothing_fails_with_the_reason() {
    let port = crate::support::receiver::free_port();
    let out = Command::new(BIN)
        .args([
            "test-call",
            "--to",
            &format!("127.0.0.1:{port}"),
            "--transport",
            "tcp",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connecting to 127.0.0.1"), "{stderr}");
    assert!(out.stdout.is_empty());
}
