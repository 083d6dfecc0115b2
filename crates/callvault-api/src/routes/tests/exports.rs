//! Export packages through the routes: a package of a search filter holding a locked and a
//! deleted recording (its CSV rows, the manifest's digests checked against the zip's files,
//! the mixed audio), downloaded until it expires on the API's clock and refused after; one
//! encrypted to an age recipient that its identity opens; one cancelled; who may see what.

use std::io::{Cursor, Read as _};

use callvault_catalog::AuditAction;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use time::macros::datetime;

use super::*;
use crate::testing::{decode_wav, dominant};

/// Asks for a package as `user`; waits until its build has ended; returns its final state.
async fn built(h: &Harness, user: &str, body: Value) -> Value {
    let queued = h
        .send(user, Method::POST, "/api/v1/exports", Some(body))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(queued["state"], "queued");
    assert_eq!(queued["progress"], 0.0);
    let id = queued["id"].as_str().unwrap().to_owned();
    crate::routes::exports::finished(h.api.state(), &id).await;
    h.get(user, &format!("/api/v1/exports/{id}"))
        .await
        .expect(StatusCode::OK)
        .json()
}

/// Every file of a zip, by name, in archive order.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut content = Vec::new();
            file.read_to_end(&mut content).unwrap();
            (file.name().unwrap().into_owned(), content)
        })
        .collect()
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &files
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} is not in the package"))
        .1
}

/// The manifest lists every other file with its exact size and SHA-256.
fn check_manifest(files: &[(String, Vec<u8>)]) {
    let manifest: Value = serde_json::from_slice(file(files, "manifest.json")).unwrap();
    let listed = manifest["files"].as_array().unwrap();
    assert_eq!(listed.len(), files.len() - 1, "{manifest}");
    for (name, content) in files.iter().filter(|(n, _)| n != "manifest.json") {
        let entry = listed
            .iter()
            .find(|f| f["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing from the manifest"));
        assert_eq!(entry["bytes"], content.len());
        assert_eq!(
            entry["sha256"],
            hex::encode(Sha256::digest(content)),
            "{name}"
        );
    }
}

/// The rows of a CSV, each a map from the header's names.
fn csv_rows(bytes: &[u8]) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

async fn a_filtered_package_holds_locked_and_deleted_recordings_until_it_expires(h: &Harness) {
    let day = datetime!(2026-11-30 08:00 UTC);
    h.recording("a", None, day, TWO_LEGS).await;
    h.recording("b", None, day + time::Duration::hours(1), TWO_LEGS)
        .await;
    h.recording("c", None, day + time::Duration::hours(2), TWO_LEGS)
        .await;
    h.recording("old", None, datetime!(2026-11-20 08:00 UTC), TWO_LEGS)
        .await;
    h.catalog
        .add_dtmf(
            "a",
            &callvault_catalog::testing::dtmf(0, "5", "caller", 300),
        )
        .await
        .unwrap();
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/b/locks",
        Some(json!({"reason": "LegalHold#245"})),
    )
    .await
    .expect(StatusCode::CREATED);
    h.send(
        "reviewer",
        Method::POST,
        "/api/v1/recordings/b/annotations",
        Some(json!({"text": "=cmd|' /C calc'!A0", "offset_ms": 500})),
    )
    .await
    .expect(StatusCode::CREATED);
    h.send(
        "compliance",
        Method::DELETE,
        "/api/v1/recordings/c",
        Some(json!({"reason": "customer request"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    // Not for a viewer; a recipient that is not one is refused before anything is stored.
    h.send(
        "viewer",
        Method::POST,
        "/api/v1/exports",
        Some(json!({"name": "x"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    let bad = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/exports",
            Some(json!({"name": "x", "encrypt_to": "age1nope"})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.code(), "invalid");
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/exports",
        Some(json!({"name": "x", "ids": ["a"], "filter": {}})),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(h.audit(AuditAction::Export).await.is_empty());

    let ready = built(
        h,
        "compliance",
        json!({
            "name": "Case 42",
            "filter": {"since": "2026-11-30T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
            "format": "wav",
            "channels": "mixed",
            "reason": "Legal request",
        }),
    )
    .await;
    assert_eq!(ready["state"], "ready", "{ready}");
    assert_eq!(ready["progress"], 1.0);
    assert_eq!(ready["recordings"], 3);
    // Two mixes (the tombstone has no audio), the CSV, the JSON, the manifest.
    assert_eq!(ready["files"], 5);
    let expires = T0 + time::Duration::hours(1);
    assert_eq!(
        ready["expires_at"],
        expires
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let id = ready["id"].as_str().unwrap().to_owned();
    let on_disk = h.path(&format!("exports/{id}.zip"));
    assert!(on_disk.is_file());

    let download = h
        .get("compliance", &format!("/api/v1/exports/{id}/download"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(download.header("content-type"), "application/zip");
    assert!(
        download
            .header("content-disposition")
            .contains("Case_42.zip"),
        "{}",
        download.header("content-disposition")
    );
    assert_eq!(ready["bytes"], download.body.len());
    assert_eq!(ready["sha256"], hex::encode(Sha256::digest(&download.body)));
    // A range of it, for a resumed download.
    let part = h
        .api
        .call(
            Call::new(Method::GET, &format!("/api/v1/exports/{id}/download"))
                .bearer(h.token("compliance"))
                .header("range", "bytes=10-19"),
        )
        .await
        .expect(StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, download.body[10..20]);

    let files = unzip(&download.body);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(
        names[..2]
            .iter()
            .all(|n| n.starts_with("audio/") && n.ends_with(".wav"))
    );
    assert_eq!(
        &names[2..],
        ["recordings.csv", "recordings.json", "manifest.json"]
    );
    check_manifest(&files);

    // Each mix is the call: both parties' tones, mono.
    for (_, wav) in files.iter().filter(|(n, _)| n.starts_with("audio/")) {
        let decoded = decode_wav(wav);
        assert_eq!(decoded.channels.len(), 1);
        let (_, ratio) = dominant(&decoded.channels[0], decoded.rate, &[440.0, 2000.0]);
        assert!(ratio > 10.0, "the caller is heard");
        let (_, ratio) = dominant(&decoded.channels[0], decoded.rate, &[1000.0, 2000.0]);
        assert!(ratio > 10.0, "the callee is heard");
    }

    // One row per recording, oldest first: the tombstone marked deleted without audio, the
    // locked one exported as any other, the formula in a note defused.
    let rows = csv_rows(file(&files, "recordings.csv"));
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let (a, b, c) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(a["deleted"], "false");
    assert_eq!(a["dtmf_digits"], "5");
    assert_eq!(a["session_id"], "session-a");
    assert_eq!(a["ingress_call_id"], "ingress-a@src.example");
    assert!(a["participants"].contains("Alice <sip:alice@example.com>"));
    assert!(a["files"].starts_with("audio/"));
    assert_eq!(b["locked"], "true");
    assert!(b["locks"].contains("LegalHold#245"), "{}", b["locks"]);
    assert!(b["annotations"].contains("cmd|"));
    assert!(!b["annotations"].starts_with('='));
    assert!(b["files"].starts_with("audio/"));
    assert_eq!(c["deleted"], "true");
    assert_eq!(c["state"], "deleted");
    assert_eq!(c["deleted_by"], "compliance");
    assert_eq!(c["delete_reason"], "customer request");
    assert_eq!(c["files"], "");
    // The JSON has every field of each recording as the API gives it.
    let json: Value = serde_json::from_slice(file(&files, "recordings.json")).unwrap();
    let recordings = json["recordings"].as_array().unwrap();
    assert_eq!(recordings.len(), 3);
    assert_eq!(recordings[1]["locks"][0]["reason"], "LegalHold#245");
    assert_eq!(recordings[0]["dtmf"][0]["digit"], "5");
    assert_eq!(recordings[2]["state"], "deleted");
    assert_eq!(json["export"]["name"], "Case 42");

    // Asking and downloading are audited (the range, not starting at 0, is not a new download).
    let asked = h.audit(AuditAction::Export).await;
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].user, "compliance");
    assert_eq!(asked[0].reason.as_deref(), Some("Legal request"));
    let downloads: Vec<_> = h
        .audit(AuditAction::Download)
        .await
        .into_iter()
        .filter(|e| e.detail.as_deref().is_some_and(|d| d.contains(&id)))
        .collect();
    assert_eq!(downloads.len(), 1);

    // Another tenant's compliance officer does not see it; an admin does; the list says so.
    h.get("acme-compliance", &format!("/api/v1/exports/{id}"))
        .await
        .expect(StatusCode::NOT_FOUND);
    h.get("admin", &format!("/api/v1/exports/{id}"))
        .await
        .expect(StatusCode::OK);
    let listed = h.get("compliance", "/api/v1/exports").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(h.get("acme-compliance", "/api/v1/exports").await.json()[0].is_null());

    // A second before its expiry it downloads; at its expiry it is gone, file and all.
    h.clock.advance(std::time::Duration::from_secs(3600 - 1));
    h.get("compliance", &format!("/api/v1/exports/{id}/download"))
        .await
        .expect(StatusCode::OK);
    h.clock.advance(std::time::Duration::from_secs(1));
    let gone = h
        .get("compliance", &format!("/api/v1/exports/{id}/download"))
        .await
        .expect(StatusCode::GONE);
    assert_eq!(gone.code(), "expired");
    assert!(!on_disk.exists(), "the expired package's file is removed");
    let expired = h
        .get("compliance", &format!("/api/v1/exports/{id}"))
        .await
        .json();
    assert_eq!(expired["state"], "expired");
}

async fn an_encrypted_package_opens_with_the_recipients_identity(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let identity = age::x25519::Identity::generate();
    let ready = built(
        h,
        "compliance",
        json!({
            "name": "For counsel",
            "ids": ["r"],
            "format": "wav",
            "channels": "legs",
            "encrypt_to": identity.to_public().to_string(),
        }),
    )
    .await;
    assert_eq!(ready["state"], "ready", "{ready}");
    let id = ready["id"].as_str().unwrap();
    let download = h
        .get("compliance", &format!("/api/v1/exports/{id}/download"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(download.header("content-type"), "application/octet-stream");
    assert!(
        download
            .header("content-disposition")
            .contains("For_counsel.zip.age"),
        "{}",
        download.header("content-disposition")
    );
    assert!(download.body.starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(ready["sha256"], hex::encode(Sha256::digest(&download.body)));
    // Not a zip without the key…
    assert!(zip::ZipArchive::new(Cursor::new(&download.body)).is_err());
    // …and a whole one with it: one file per leg, each the leg as recorded.
    let decryptor = age::Decryptor::new(&download.body[..]).unwrap();
    let mut plain = Vec::new();
    decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    let files = unzip(&plain);
    check_manifest(&files);
    let legs: Vec<&(String, Vec<u8>)> = files
        .iter()
        .filter(|(n, _)| n.starts_with("audio/"))
        .collect();
    assert_eq!(legs.len(), 2);
    assert!(legs[0].0.contains("caller") && legs[1].0.contains("callee"));
    assert_eq!(
        legs[1].1,
        std::fs::read(h.path("recordings/2026/11/30/r/1-callee.wav")).unwrap()
    );
    // A different identity opens nothing.
    let stranger = age::x25519::Identity::generate();
    let decryptor = age::Decryptor::new(&download.body[..]).unwrap();
    assert!(
        decryptor
            .decrypt(std::iter::once(&stranger as &dyn age::Identity))
            .is_err()
    );
}

async fn a_removed_package_is_gone_with_its_file(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let ready = built(h, "compliance", json!({"name": "p", "ids": ["r"]})).await;
    let id = ready["id"].as_str().unwrap();
    let file = h.path(&format!("exports/{id}.zip"));
    assert!(file.is_file());
    // Only its owner or an admin may remove it.
    h.send(
        "acme-compliance",
        Method::DELETE,
        &format!("/api/v1/exports/{id}"),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    h.send(
        "compliance",
        Method::DELETE,
        &format!("/api/v1/exports/{id}"),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert!(!file.exists());
    h.get("compliance", &format!("/api/v1/exports/{id}"))
        .await
        .expect(StatusCode::NOT_FOUND);
    // Unknown ids are refused before anything is queued.
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/exports",
        Some(json!({"name": "p", "ids": ["nope"]})),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}

async fn a_restart_fails_the_builds_it_interrupted(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    // A package its previous run was building: queued in the catalog, a partial file on disk.
    let export = h
        .catalog
        .insert_export(
            &callvault_catalog::NewExport {
                id: "interrupted".to_owned(),
                name: "p".to_owned(),
                owner: "compliance".to_owned(),
                tenant: None,
                node_id: h.api.state().node_id().to_owned(),
                format: "wav".to_owned(),
                channels: "mixed".to_owned(),
                encrypt_to: None,
                recording_ids: vec!["r".to_owned()],
                created_at: T0,
                chosen_by: "ids".to_owned(),
                reason: None,
            },
            &callvault_catalog::Actor::new("compliance", None),
        )
        .await
        .unwrap();
    std::fs::create_dir_all(h.path("exports")).unwrap();
    let part = h.path("exports/interrupted.zip.part");
    std::fs::write(&part, b"PK half").unwrap();
    assert_eq!(h.api.state().recover_exports().await.unwrap(), 1);
    assert!(!part.exists());
    let failed = h
        .get("compliance", &format!("/api/v1/exports/{}", export.id))
        .await
        .json();
    assert_eq!(failed["state"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("interrupted"));
    h.get(
        "compliance",
        &format!("/api/v1/exports/{}/download", export.id),
    )
    .await
    .expect(StatusCode::CONFLICT);
}

async fn the_sweep_removes_expired_packages_nobody_reads(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let ready = built(h, "compliance", json!({"name": "p", "ids": ["r"]})).await;
    let id = ready["id"].as_str().unwrap();
    let file = h.path(&format!("exports/{id}.zip"));
    h.api.state().sweep_exports().await.unwrap();
    assert!(file.is_file(), "not before its expiry");
    h.clock.advance(std::time::Duration::from_secs(3600));
    h.api.state().sweep_exports().await.unwrap();
    assert!(!file.exists(), "swept without anyone asking");
    let stored = h
        .catalog
        .export(&callvault_catalog::Scope::All, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, callvault_catalog::ExportState::Expired);
}

on_both_engines!(
    a_filtered_package_holds_locked_and_deleted_recordings_until_it_expires,
    the_sweep_removes_expired_packages_nobody_reads,
    an_encrypted_package_opens_with_the_recipients_identity,
    a_removed_package_is_gone_with_its_file,
    a_restart_fails_the_builds_it_interrupted,
);
