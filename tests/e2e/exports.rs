//! Export packages and share links on the real binary: a recorded call exported as MP3 by a
//! compliance officer's script (queued, built in the background, downloaded, every file's
//! digest checked against the manifest, the CSV naming the call's Call-ID), and a share link
//! played without an account, audited as the link, then revoked and refused.

use std::io::{Cursor, Read as _};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::api::{recorded_call, user_with_token};
use crate::support::Server;
use crate::support::http::{HttpResponse, request};

fn call(
    server: &Server,
    auth: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> HttpResponse {
    request(
        server.http,
        method,
        path,
        &[("Authorization", auth)],
        body.as_ref(),
    )
}

#[tokio::test]
async fn a_call_is_exported_with_its_manifest_and_shared_until_the_link_is_revoked() {
    let server = Server::start();
    let auth = format!("Bearer {}", user_with_token(&server, "ada", "compliance"));
    let recording = recorded_call(&server).await;
    let id = recording["id"].as_str().unwrap().to_owned();
    let call_id = recording["ingress_call_id"].as_str().unwrap().to_owned();

    let queued = call(
        &server,
        &auth,
        "POST",
        "/api/v1/exports",
        Some(json!({"name": "e2e", "ids": [id], "format": "mp3", "channels": "mixed"})),
    );
    assert_eq!(
        queued.status,
        202,
        "{}",
        String::from_utf8_lossy(&queued.body)
    );
    let export = queued.json()["id"].as_str().unwrap().to_owned();
    // Built in the background: follow it as a client would, until it is ready (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let state = call(
            &server,
            &auth,
            "GET",
            &format!("/api/v1/exports/{export}"),
            None,
        )
        .json();
        match state["state"].as_str().unwrap() {
            "ready" => break state,
            "queued" | "running" => {}
            other => panic!("the export is {other}: {state}"),
        }
        assert!(Instant::now() < deadline, "not ready in 60 s: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready["progress"], 1.0);
    assert_eq!(ready["files"], 4);

    let download = call(
        &server,
        &auth,
        "GET",
        &format!("/api/v1/exports/{export}/download"),
        None,
    );
    assert_eq!(download.status, 200);
    assert_eq!(download.header("content-type"), Some("application/zip"));
    assert_eq!(ready["bytes"], download.body.len());
    assert_eq!(ready["sha256"], hex::encode(Sha256::digest(&download.body)));
    let mut archive = zip::ZipArchive::new(Cursor::new(&download.body)).unwrap();
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        files.push((entry.name().unwrap().into_owned(), content));
    }
    let manifest: Value = serde_json::from_slice(
        &files
            .iter()
            .find(|(n, _)| n == "manifest.json")
            .expect("a manifest")
            .1,
    )
    .unwrap();
    let listed = manifest["files"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{manifest}");
    for entry in listed {
        let (_, content) = files
            .iter()
            .find(|(n, _)| entry["name"] == n.as_str())
            .unwrap_or_else(|| panic!("{entry} is not in the zip"));
        assert_eq!(entry["sha256"], hex::encode(Sha256::digest(content)));
    }
    let (mp3_name, mp3) = files.iter().find(|(n, _)| n.starts_with("audio/")).unwrap();
    assert!(mp3_name.ends_with(".mp3"), "{mp3_name}");
    assert!(
        mp3.starts_with(b"ID3") || (mp3[0] == 0xFF && mp3[1] & 0xE0 == 0xE0),
        "an MPEG audio stream"
    );
    let csv = String::from_utf8(
        files
            .iter()
            .find(|(n, _)| n == "recordings.csv")
            .unwrap()
            .1
            .clone(),
    )
    .unwrap();
    assert!(csv.lines().next().unwrap().starts_with("id,state,deleted"));
    assert!(csv.contains(&call_id), "{csv}");

    // A share link: the page and the audio without an account.
    let made = call(
        &server,
        &auth,
        "POST",
        &format!("/api/v1/recordings/{id}/share"),
        Some(json!({"days": 1, "note": "e2e"})),
    );
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    let made = made.json();
    let url = made["url"].as_str().unwrap();
    let path = &url[url.find("/share/").unwrap()..];
    let page = request(server.http, "GET", path, &[], None);
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("<audio"));
    let audio = request(server.http, "GET", &format!("{path}/audio"), &[], None);
    assert_eq!(audio.status, 200);
    assert_eq!(audio.header("content-type"), Some("audio/wav"));
    assert!(audio.body.starts_with(b"RIFF"));
    let link = made["id"].as_str().unwrap();
    let plays = call(
        &server,
        &auth,
        "GET",
        &format!("/api/v1/audit?recording_id={id}&action=play"),
        None,
    )
    .json();
    assert_eq!(plays["items"][0]["user"], format!("share:{link}"));
    assert_eq!(plays["items"][0]["client"], "127.0.0.1");

    let revoked = call(
        &server,
        &auth,
        "DELETE",
        &format!("/api/v1/shares/{link}"),
        None,
    );
    assert_eq!(revoked.status, 204);
    assert_eq!(request(server.http, "GET", path, &[], None).status, 410);
    assert_eq!(
        request(server.http, "GET", &format!("{path}/audio"), &[], None).status,
        410
    );
}
