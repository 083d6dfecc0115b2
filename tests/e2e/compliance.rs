//! Compliance on the real binary: a legal matter opened through the API before a call is
//! recorded holds that call once it completes (the catalog's completion, as the recorder's
//! archive writes it) and not a call its filter does not find; `callvault retention
//! --dry-run` then lists the matter's call as held and the other as due under `[retention]
//! days`, `retention run` deletes only the other, and after the matter's release the next run
//! deletes the first too.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::Server;
use crate::support::client::{Call, CallSpec, Transport};
use crate::support::http::request;

const PASSWORD: &str = "correct horse battery staple 42";

async fn call_of(server: &Server, play: Duration) -> Value {
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(play, &[]).await;
    assert_eq!(call.bye().await.status, 200);
    server.completed(&call.call_id)
}

fn retention(server: &Server, args: &[&str]) -> (bool, Value) {
    let config = server.config_path();
    let mut all = vec!["retention"];
    all.extend_from_slice(args);
    all.extend(["--json", "--config", config.to_str().unwrap()]);
    let out = server.operator(&all, "");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "retention {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

fn outcome_of<'a>(report: &'a Value, id: &str) -> Option<(&'a str, &'a str)> {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["recording_id"] == id)
        .map(|i| {
            (
                i["outcome"].as_str().unwrap(),
                i["held"].as_str().unwrap_or(""),
            )
        })
}

#[tokio::test]
async fn a_matter_holds_a_call_recorded_after_it_and_retention_goes_around_it() {
    // days = 0: every ended recording is due at once, unless something holds it.
    let server = Server::start_with("[retention]\ndays = 0\ninterval_s = 3600\n");
    let out = server.operator(
        &[
            "users",
            "add",
            "lee",
            "--role",
            "compliance",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success());
    let out = server.operator(&["tokens", "create", "lee"], "");
    let auth = format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim());
    let api = |method: &str, path: &str, body: Option<Value>| {
        request(
            server.http,
            method,
            &format!("/api/v1{path}"),
            &[("Authorization", auth.as_str())],
            body.as_ref(),
        )
    };

    // The matter exists before either call: long calls only.
    let matter = api(
        "POST",
        "/matters",
        Some(json!({"name": "Long calls", "case_id": "CV-1", "filter": {"min_duration_ms": 1500}})),
    );
    assert_eq!(
        matter.status,
        201,
        "{}",
        String::from_utf8_lossy(&matter.body)
    );
    let matter = matter.json();
    assert_eq!(matter["locked_recordings"], 0);
    let matter_id = matter["id"].as_str().unwrap().to_owned();

    let long = call_of(&server, Duration::from_millis(2000)).await;
    let short = call_of(&server, Duration::from_millis(300)).await;
    let long_id = long["id"].as_str().unwrap().to_owned();
    let short_id = short["id"].as_str().unwrap().to_owned();
    let details = api("GET", &format!("/recordings/{long_id}"), None).json();
    assert_eq!(details["locked"], true, "{details}");
    assert_eq!(details["locks"][0]["by"], format!("matter:{matter_id}"));
    assert_eq!(
        api("GET", &format!("/recordings/{short_id}"), None).json()["locked"],
        false
    );

    let (ok, dry) = retention(&server, &["--dry-run"]);
    assert!(ok);
    assert_eq!(outcome_of(&dry, &long_id), Some(("held", "locked")));
    assert_eq!(outcome_of(&dry, &short_id), Some(("would_delete", "")));
    let api_dry = api("GET", "/retention/dry-run", None).json();
    assert_eq!(outcome_of(&api_dry, &short_id), Some(("would_delete", "")));

    let (ok, run) = retention(&server, &["run"]);
    assert!(ok, "{run}");
    assert_eq!(outcome_of(&run, &short_id), Some(("deleted", "")));
    let short_now = api("GET", &format!("/recordings/{short_id}"), None).json();
    assert_eq!(short_now["state"], "deleted");
    assert_eq!(short_now["deleted_by"], "retention:config");
    assert!(!server.path_of(&short["legs"][0]).exists());
    assert_eq!(
        api("GET", &format!("/recordings/{long_id}"), None).json()["state"],
        "complete"
    );

    let released = api(
        "POST",
        &format!("/matters/{matter_id}/release"),
        Some(json!({"reason": "case closed"})),
    );
    assert_eq!(released.status, 200);
    let (ok, run) = retention(&server, &["run"]);
    assert!(ok, "{run}");
    assert_eq!(outcome_of(&run, &long_id), Some(("deleted", "")));
    let out = server.operator(&["audit", "verify"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
