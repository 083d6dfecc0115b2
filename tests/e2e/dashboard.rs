//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by
//! playwright-core runs `tests/dashboard/dashboard.mjs` against the real binary, with calls
//! recorded over SIPREC in two tenants, a call still live, and users of every role made with
//! the CLI. The script signs in, searches by party and by DTMF, plays, seeks, mutes, annotates,
//! locks, is refused a deletion, unlocks, deletes and sees the tombstone, pauses and resumes the
//! live call, and checks what a viewer and another tenant's user are offered; this test then
//! checks in the catalog that those clicks did what they said.
//!
//! `scripts/setup --tests` installs what it needs (chromium, node, `npm ci` in
//! tests/dashboard); it fails, never skips, when something is missing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::client::{Call, CallSpec, Transport};
use crate::support::http::request;
use crate::support::{BIN, Server};

const PASSWORD: &str = "correct horse battery staple 42";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn add_user(server: &Server, name: &str, role: &str, tenant: Option<&str>) {
    let mut args = vec!["users", "add", name, "--role", role, "--password-stdin"];
    if let Some(tenant) = tenant {
        args.extend(["--tenant", tenant]);
    }
    let out = server.operator(&args, &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "users add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn token(server: &Server, name: &str) -> String {
    let out = server.operator(&["tokens", "create", name], "");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A call from `source` (which decides its tenant) with `caller` as the first party, keying
/// `digits`, ended with BYE; its catalog entry once complete.
async fn recorded_call(server: &Server, source: [u8; 4], caller: &str, digits: &str) -> Value {
    let mut spec = CallSpec::two_parties(440.0, 1000.0);
    spec.streams[0].aor = format!("sip:{caller}@example.com");
    let mut call = Call::new_from(Transport::Udp, server.sip, spec, source.into()).await;
    assert_eq!(call.invite().await.status, 200);
    call.ack().await;
    call.play(Duration::from_millis(1500), &[]).await;
    for digit in digits.chars() {
        call.press(0, digit, Duration::from_millis(120)).await;
        call.play(Duration::from_millis(100), &[]).await;
    }
    call.play(Duration::from_millis(1500), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    server.completed(&call.call_id)
}

/// The id of the live recording of `call_id`, once the catalog has it.
async fn live_id(server: &Server, call_id: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = server
            .list()
            .iter()
            .find(|r| r["ingress_call_id"] == call_id)
        {
            return r["id"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the live call is never catalogued"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_dashboard_finds_plays_annotates_locks_deletes_and_pauses_in_a_real_browser() {
    let tests = repo().join("tests/dashboard");
    assert!(
        tests.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/setup --tests (npm ci in tests/dashboard)"
    );
    let chromium =
        std::env::var("CALLVAULT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/setup --tests (Debian package chromium)"
    );

    let server = Server::start_with(
        "[[tenants]]\nname = \"acme\"\nsource = \"127.0.0.1\"\n\n\
         [[tenants]]\nname = \"globex\"\nsource = \"127.0.0.2\"\n",
    );
    add_user(&server, "ada", "compliance", None);
    add_user(&server, "vic", "viewer", None);
    add_user(&server, "acme-vic", "viewer", Some("acme"));
    add_user(&server, "root", "admin", None);

    let main = recorded_call(&server, [127, 0, 0, 1], "carol", "4821").await;
    let other = recorded_call(&server, [127, 0, 0, 2], "dave", "").await;
    assert_eq!(main["tenant"], "acme");
    assert_eq!(other["tenant"], "globex");
    let mut live = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    live.play(Duration::from_millis(300), &[]).await;
    let live_id = live_id(&server, &live.call_id).await;
    // A custom field for the review form.
    let admin_auth = format!("Bearer {}", token(&server, "root"));
    let defined = request(
        server.http,
        "POST",
        "/api/v1/custom-fields",
        &[("Authorization", admin_auth.as_str())],
        Some(&json!({"name": "queue", "kind": "text"})),
    );
    assert_eq!(
        defined.status,
        201,
        "{}",
        String::from_utf8_lossy(&defined.body)
    );
    let main_id = main["id"].as_str().unwrap().to_owned();
    let other_id = other["id"].as_str().unwrap().to_owned();

    let screenshots = repo().join("target/dashboard-screenshots");
    let spec_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        spec_file.path(),
        json!({
            "url": format!("http://{}", server.http),
            "password": PASSWORD,
            "screenshots": screenshots,
            "chromium": chromium,
            "users": {"compliance": "ada", "viewer": "vic", "tenant": "acme-vic", "admin": "root"},
            "recordings": {
                "main": {"id": main_id, "party": "carol", "digits": "4821"},
                "other_tenant": {"id": other_id},
                "live": {"id": live_id},
            },
        })
        .to_string(),
    )
    .unwrap();

    // The browser runs while the live call goes on sending media (the script pauses it).
    let mut browser = tokio::process::Command::new("node")
        .arg(tests.join("dashboard.mjs"))
        .arg(spec_file.path())
        .current_dir(&tests)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (scripts/setup --tests installs it)");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let status = loop {
        tokio::select! {
            status = browser.wait() => break status.unwrap(),
            () = live.play(Duration::from_millis(200), &[]) => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the browser scenario did not finish in time"
        );
    };
    assert!(
        status.success(),
        "the browser scenario failed ({status}); screenshots in {}",
        screenshots.display()
    );
    live.play(Duration::from_millis(300), &[]).await;
    assert_eq!(live.bye().await.status, 200);

    // What the clicks did, as the catalog has it.
    let auth = format!("Bearer {}", token(&server, "ada"));
    let get = |path: &str| {
        let reply = request(
            server.http,
            "GET",
            &format!("/api/v1{path}"),
            &[("Authorization", auth.as_str())],
            None,
        );
        assert_eq!(reply.status, 200, "{path}");
        reply.json()
    };
    let tombstone = get(&format!("/recordings/{main_id}"));
    assert_eq!(tombstone["state"], "deleted");
    assert_eq!(tombstone["deleted_by"], "ada");
    assert_eq!(tombstone["delete_reason"], "customer request");
    for l in main["legs"].as_array().unwrap() {
        assert!(!server.path_of(l).exists(), "{} removed", l["path"]);
    }
    let audit = get(&format!("/audit?recording_id={main_id}&limit=500"));
    let entries: Vec<(String, Option<String>, Option<String>)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["reason"].as_str().map(str::to_owned),
                e["detail"].as_str().map(str::to_owned),
            )
        })
        .collect();
    for (action, reason) in [
        ("play", None),
        ("lock", Some("LegalHold#245")),
        ("unlock", Some("matter closed")),
        ("delete", Some("customer request")),
    ] {
        assert!(
            entries
                .iter()
                .any(|(a, r, _)| a == action && r.as_deref() == reason),
            "{action} {reason:?} in {entries:?}"
        );
    }
    // The note itself went with the recording; the script saw its marker at 0:01.0, drawn
    // from the catalog's answer after the note was added.
    assert!(
        entries.iter().any(|(a, _, _)| a == "annotate"),
        "{entries:?}"
    );
    let paused = get(&format!("/recordings/{live_id}"));
    let intervals = paused["paused"].as_array().unwrap();
    assert_eq!(intervals.len(), 1, "{paused}");
    assert_eq!(intervals[0]["by"], "ada");
    assert!(
        intervals[0]["to_ms"].as_u64().is_some(),
        "resumed: {paused}"
    );
    // The other tenant's call was reviewed and locked from the list, not deleted.
    let reviewed = get(&format!("/recordings/{other_id}"));
    assert_eq!(reviewed["state"], "complete");
    assert_eq!(reviewed["score"], 4);
    assert_eq!(reviewed["complete"], true);
    assert_eq!(reviewed["review_seconds"], 95);
    assert_eq!(reviewed["categories"], json!(["billing", "escalation"]));
    assert_eq!(reviewed["custom"], json!({"queue": "support-fr"}));
    assert_eq!(reviewed["locked"], true);
    assert_eq!(reviewed["locks"][0]["reason"], "Audit#7");
    // The admin's new user exists.
    let listed = std::process::Command::new(BIN)
        .args(["users", "list", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("grace"));
}
