//! Playing and downloading through the routes: ranges for seeking, mixes with their file
//! names, MP3, zips, and the audit entries they leave (once per play, not per seek).

use callvault_catalog::AuditAction;
use http::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::testing::{decode_wav, dominant};

async fn a_leg_plays_whole_and_by_ranges(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let file = std::fs::read(h.path("recordings/2026/11/30/r/1-callee.wav")).unwrap();
    let len = file.len();

    let whole = h
        .get("viewer", "/api/v1/recordings/r/legs/callee/audio")
        .await
        .expect(StatusCode::OK);
    assert_eq!(whole.header("content-type"), "audio/wav");
    assert_eq!(whole.header("accept-ranges"), "bytes");
    assert_eq!(whole.body, file);

    let play = |range: &'static str| {
        h.api.call(
            Call::new(Method::GET, "/api/v1/recordings/r/legs/callee/audio")
                .bearer(h.token("viewer"))
                .header("range", range),
        )
    };
    let start = play("bytes=0-").await.expect(StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        start.header("content-range"),
        format!("bytes 0-{}/{len}", len - 1)
    );
    let seek = play("bytes=8000-8999")
        .await
        .expect(StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        seek.header("content-range"),
        format!("bytes 8000-8999/{len}")
    );
    assert_eq!(seek.header("content-length"), "1000");
    assert_eq!(seek.body, &file[8000..9000]);
    let past = play("bytes=99999-")
        .await
        .expect(StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.header("content-range"), format!("bytes */{len}"));

    // By position when labels repeat; an unknown leg is 404.
    let by_position = h
        .get("viewer", "/api/v1/recordings/r/legs/@0/audio")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        by_position.body,
        std::fs::read(h.path("recordings/2026/11/30/r/0-caller.wav")).unwrap()
    );
    h.get("viewer", "/api/v1/recordings/r/legs/nobody/audio")
        .await
        .expect(StatusCode::NOT_FOUND);

    // A HEAD tells the length, plays nothing.
    let head = h
        .api
        .call(
            Call::new(Method::HEAD, "/api/v1/recordings/r/legs/callee/audio")
                .bearer(h.token("viewer")),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(head.header("content-length"), len.to_string());

    // Plays are audited once per play (the whole file, or a range from byte 0), not per seek.
    let plays = h.audit(AuditAction::Play).await;
    assert_eq!(plays.len(), 3, "{plays:?}");
    assert!(
        plays
            .iter()
            .all(|p| p.user == "viewer" && p.recording_id.as_deref() == Some("r"))
    );
    assert_eq!(plays[0].client.as_deref(), Some("192.0.2.7"));
    assert_eq!(plays[0].detail.as_deref(), Some("leg 1 (callee)"));
}

async fn repeated_labels_are_named_by_position(h: &Harness) {
    h.recording(
        "r",
        None,
        datetime!(2026-11-30 08:00 UTC),
        &[("1", "p-caller", 440.0), ("1", "p-callee", 1000.0)],
    )
    .await;
    let reply = h
        .get("viewer", "/api/v1/recordings/r/legs/1/audio")
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(reply.code(), "ambiguous_leg");
    let second = h
        .get("viewer", "/api/v1/recordings/r/legs/@1/audio")
        .await
        .expect(StatusCode::OK);
    let (frequency, _) = dominant(
        &decode_wav(&second.body).channels[0],
        8000,
        &[440.0, 1000.0],
    );
    assert_eq!(frequency, 1000.0);
}

async fn the_mix_downloads_with_its_pattern_name_in_mono_stereo_and_mp3(h: &Harness) {
    h.recording(
        "r",
        Some("acme"),
        datetime!(2026-11-30 08:05:09 UTC),
        TWO_LEGS,
    )
    .await;
    let stereo = h
        .get(
            "compliance",
            "/api/v1/recordings/r/audio?format=wav&channels=stereo",
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(stereo.header("content-type"), "audio/wav");
    assert_eq!(
        stereo.header("content-disposition"),
        "attachment; filename=\"20261130-080509_sip_alice-r@example.com_sip_bob@example.com_session-r.wav\"; \
         filename*=UTF-8''20261130-080509_sip_alice-r%40example.com_sip_bob%40example.com_session-r.wav"
    );
    let decoded = decode_wav(&stereo.body);
    assert_eq!(decoded.channels.len(), 2);
    let candidates = [440.0, 1000.0];
    assert_eq!(
        dominant(&decoded.channels[0], decoded.rate, &candidates).0,
        440.0,
        "caller on the left"
    );
    assert_eq!(
        dominant(&decoded.channels[1], decoded.rate, &candidates).0,
        1000.0,
        "callee on the right"
    );

    let mono = h
        .get("compliance", "/api/v1/recordings/r/audio")
        .await
        .expect(StatusCode::OK);
    let decoded = decode_wav(&mono.body);
    assert_eq!(decoded.channels.len(), 1);
    assert_eq!(decoded.channels[0].len(), 8000, "one second at 8 kHz");

    let mp3 = h
        .get(
            "compliance",
            "/api/v1/recordings/r/audio?format=mp3&channels=mono",
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(mp3.header("content-type"), "audio/mpeg");
    assert!(mp3.header("content-disposition").contains(".mp3\""));
    assert!(mp3.body.len() > 1000, "an MP3 of a second");

    // To listen (a viewer may): no attachment, audited as a play.
    let listen = h
        .get(
            "viewer",
            "/api/v1/recordings/r/audio?play=true&channels=stereo",
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(listen.header("content-disposition"), "");
    let refused = h
        .get("viewer", "/api/v1/recordings/r/audio")
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "forbidden");
    h.get("compliance", "/api/v1/recordings/r/audio?format=flac")
        .await
        .expect(StatusCode::BAD_REQUEST);

    let downloads = h.audit(AuditAction::Download).await;
    assert_eq!(downloads.len(), 3);
    assert_eq!(downloads[0].detail.as_deref(), Some("wav stereo"));
    assert_eq!(downloads[0].tenant.as_deref(), Some("acme"));
    assert_eq!(h.audit(AuditAction::Play).await.len(), 1);
}

async fn several_recordings_download_as_one_zip(h: &Harness) {
    h.recording("a", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    h.recording("b", None, datetime!(2026-11-30 09:00 UTC), &TWO_LEGS[1..])
        .await;
    let settings = ApiSettings {
        filename_pattern: "{recording_id}_{n}".to_owned(),
        ..ApiSettings::default()
    };
    let api = h.api_with(settings);
    let reply = api
        .call(
            Call::new(Method::POST, "/api/v1/downloads")
                .bearer(h.token("compliance"))
                .json(json!({"ids": ["a", "b"], "format": "wav", "channels": "mono", "reason": "matter 7"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/zip");
    assert!(
        reply
            .header("content-disposition")
            .starts_with("attachment; filename=\"callvault-export-20261201-090000.zip\"")
    );
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(reply.body)).unwrap();
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    assert_eq!(names, ["a_1.wav", "b_2.wav"]);
    let mut entry = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name("b_2.wav").unwrap(), &mut entry).unwrap();
    let b = decode_wav(&entry);
    assert_eq!(dominant(&b.channels[0], b.rate, &[440.0, 1000.0]).0, 1000.0);

    let downloads = h.audit(AuditAction::Download).await;
    let audited: Vec<_> = downloads
        .iter()
        .map(|d| (d.recording_id.clone().unwrap(), d.reason.clone().unwrap()))
        .collect();
    assert_eq!(
        audited,
        [
            ("a".to_owned(), "matter 7".to_owned()),
            ("b".to_owned(), "matter 7".to_owned())
        ]
    );

    // A missing file is found before the first byte, not midway.
    std::fs::remove_file(h.path("recordings/2026/11/30/b/0-callee.wav")).unwrap();
    let reply = h
        .send(
            "compliance",
            Method::POST,
            "/api/v1/downloads",
            Some(json!({"ids": ["a", "b"]})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::NOT_FOUND, "file_missing")
    );
    for ids in [json!([]), json!(vec!["a"; 101])] {
        h.send(
            "compliance",
            Method::POST,
            "/api/v1/downloads",
            Some(json!({"ids": ids})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    }
}

async fn peaks_draw_every_leg_on_one_axis_for_those_who_may_play(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let reply = h
        .get("viewer", "/api/v1/recordings/r/peaks?buckets=50")
        .await
        .expect(StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["duration_ms"], 1000);
    assert_eq!(body["buckets"], 50);
    let legs = body["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2);
    for (leg, (position, label)) in legs.iter().zip([(0, "caller"), (1, "callee")]) {
        assert_eq!(leg["position"], position);
        assert_eq!(leg["label"], label);
        assert_eq!(leg["sample_rate"], 8000);
        let peaks = leg["peaks"].as_array().unwrap();
        assert_eq!(peaks.len(), 50);
        // Half-scale tones throughout: every bucket near 128 of 255.
        assert!(
            peaks
                .iter()
                .all(|p| (120..=130).contains(&p.as_u64().unwrap())),
            "{peaks:?}"
        );
    }
    // A waveform is not a play: nothing audited.
    assert!(h.audit(AuditAction::Play).await.is_empty());
    // The default size; sizes out of range refused.
    let default = h.get("viewer", "/api/v1/recordings/r/peaks").await.json();
    assert_eq!(default["legs"][0]["peaks"].as_array().unwrap().len(), 1000);
    for bad in ["0", "4001", "x"] {
        h.get(
            "viewer",
            &format!("/api/v1/recordings/r/peaks?buckets={bad}"),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    }
    // Another tenant's user sees no such recording; nobody signed in gets nothing.
    h.get("acme-viewer", "/api/v1/recordings/r/peaks")
        .await
        .expect(StatusCode::NOT_FOUND);
    h.api
        .call(Call::new(Method::GET, "/api/v1/recordings/r/peaks"))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    // A missing file is named as such; a tombstone has no waveform.
    std::fs::remove_file(h.path("recordings/2026/11/30/r/1-callee.wav")).unwrap();
    let missing = h.get("viewer", "/api/v1/recordings/r/peaks").await;
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (StatusCode::NOT_FOUND, "file_missing")
    );
    h.send(
        "compliance",
        Method::DELETE,
        "/api/v1/recordings/r",
        Some(json!({"reason": "test"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    h.get("viewer", "/api/v1/recordings/r/peaks")
        .await
        .expect(StatusCode::GONE);
}

on_both_engines!(
    peaks_draw_every_leg_on_one_axis_for_those_who_may_play,
    a_leg_plays_whole_and_by_ranges,
    repeated_labels_are_named_by_position,
    the_mix_downloads_with_its_pattern_name_in_mono_stereo_and_mp3,
    several_recordings_download_as_one_zip,
);
