//! Share links through the routes: a link that plays (page, audio with ranges, each play
//! audited with the link as the actor) then expires on the API's clock and is refused; a
//! revoked link refused; a deleted recording refused; downloads only where allowed; the rate
//! limit; and the token never stored in clear.

use callvault_catalog::AuditAction;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::testing::{decode_wav, dominant};

/// Makes a link to `id` as compliance; returns (link id, token, reply).
async fn share(h: &Harness, id: &str, body: Value) -> (String, String, Value) {
    let made = h
        .send(
            "compliance",
            Method::POST,
            &format!("/api/v1/recordings/{id}/share"),
            Some(body),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    let url = made["url"].as_str().unwrap();
    let token = url
        .strip_prefix("http://callvault.test/share/")
        .unwrap_or_else(|| panic!("{url}"))
        .to_owned();
    (made["id"].as_str().unwrap().to_owned(), token, made)
}

/// A request without credentials, from `client`.
async fn public(h: &Harness, path: &str, range: Option<&str>, client: [u8; 4]) -> Reply {
    let mut call = Call::new(Method::GET, path).from(client);
    if let Some(range) = range {
        call = call.header("range", range);
    }
    h.api.call(call).await
}

async fn a_link_plays_then_expires_and_is_refused(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    // Within the configured maximum only, and not for a reviewer.
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/r/share",
        Some(json!({"days": 8})),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    h.send(
        "reviewer",
        Method::POST,
        "/api/v1/recordings/r/share",
        Some(json!({"days": 1})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);

    let (link, token, made) = share(
        h,
        "r",
        json!({"days": 2, "allow_download": false, "note": "for Mr Smith"}),
    )
    .await;
    assert_eq!(token.len(), 43);
    assert_eq!(made["allow_download"], false);

    let page = public(h, &format!("/share/{token}"), None, CLIENT)
        .await
        .expect(StatusCode::OK);
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains(&format!("src=\"/share/{token}/audio\"")));
    assert!(!html.contains("Mr Smith"), "the note is not for the holder");
    assert!(!html.contains("download=1"));
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    assert!(
        page.header("content-security-policy")
            .contains("media-src 'self'")
    );

    let audio = public(h, &format!("/share/{token}/audio"), None, CLIENT)
        .await
        .expect(StatusCode::OK);
    assert_eq!(audio.header("content-type"), "audio/wav");
    assert!(audio.header("content-disposition").starts_with("inline"));
    let mix = decode_wav(&audio.body);
    assert_eq!(mix.channels.len(), 1, "the mixed stream");
    let (_, caller) = dominant(&mix.channels[0], mix.rate, &[440.0, 2000.0]);
    let (_, callee) = dominant(&mix.channels[0], mix.rate, &[1000.0, 2000.0]);
    assert!(caller > 10.0 && callee > 10.0);
    let seek = public(
        h,
        &format!("/share/{token}/audio"),
        Some("bytes=1000-1999"),
        CLIENT,
    )
    .await
    .expect(StatusCode::PARTIAL_CONTENT);
    assert_eq!(seek.body, audio.body[1000..2000]);
    let refused = public(h, &format!("/share/{token}/audio?download=1"), None, CLIENT)
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "download_not_allowed");

    // One play (the seek is not another), by the link, from the holder's address.
    let plays = h.audit(AuditAction::Play).await;
    assert_eq!(plays.len(), 1, "{plays:?}");
    assert_eq!(plays[0].user, format!("share:{link}"));
    assert_eq!(plays[0].client.as_deref(), Some("192.0.2.7"));
    assert_eq!(plays[0].recording_id.as_deref(), Some("r"));
    let shares = h.audit(AuditAction::Share).await;
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].user, "compliance");

    // Two days on, it is over.
    h.clock
        .advance(std::time::Duration::from_secs(2 * 86_400 - 1));
    public(h, &format!("/share/{token}"), None, CLIENT)
        .await
        .expect(StatusCode::OK);
    h.clock.advance(std::time::Duration::from_secs(1));
    for path in [format!("/share/{token}"), format!("/share/{token}/audio")] {
        let gone = public(h, &path, None, CLIENT)
            .await
            .expect(StatusCode::GONE);
        assert_eq!(gone.code(), "expired");
    }
    assert_eq!(h.audit(AuditAction::Play).await.len(), 1);
    let listed = h
        .get("compliance", "/api/v1/recordings/r/shares")
        .await
        .json();
    assert_eq!(listed[0]["id"], link.as_str());
    assert_eq!(listed[0]["active"], false);

    // A token nobody made is unknown.
    let mut wrong = token.clone().into_bytes();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    public(h, &format!("/share/{wrong}"), None, CLIENT)
        .await
        .expect(StatusCode::NOT_FOUND);
}

async fn a_revoked_link_and_a_deleted_recording_are_refused(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    h.recording("d", None, datetime!(2026-11-30 09:00 UTC), TWO_LEGS)
        .await;
    let (link, token, _) = share(h, "r", json!({"days": 1, "allow_download": true})).await;
    let download = public(h, &format!("/share/{token}/audio?download=1"), None, CLIENT)
        .await
        .expect(StatusCode::OK);
    assert!(
        download
            .header("content-disposition")
            .starts_with("attachment")
    );
    assert_eq!(h.audit(AuditAction::Download).await.len(), 1);
    let page = public(h, &format!("/share/{token}"), None, CLIENT)
        .await
        .expect(StatusCode::OK);
    assert!(String::from_utf8_lossy(&page.body).contains("download=1"));

    // Another tenant cannot revoke it; its maker's peers can.
    h.send(
        "acme-compliance",
        Method::DELETE,
        &format!("/api/v1/shares/{link}"),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    h.send(
        "compliance",
        Method::DELETE,
        &format!("/api/v1/shares/{link}"),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    for path in [format!("/share/{token}"), format!("/share/{token}/audio")] {
        let gone = public(h, &path, None, CLIENT)
            .await
            .expect(StatusCode::GONE);
        assert_eq!(gone.code(), "revoked");
    }
    let unshared = h.audit(AuditAction::Unshare).await;
    assert_eq!(unshared.len(), 1);
    assert_eq!(
        unshared[0].detail.as_deref(),
        Some(format!("link {link}").as_str())
    );
    let listed = h
        .get("compliance", "/api/v1/recordings/r/shares")
        .await
        .json();
    assert_eq!(listed[0]["revoked_by"], "compliance");

    // A link to a recording deleted since answers 410 too; none can be made to a tombstone.
    let (_, token, _) = share(h, "d", json!({"days": 1})).await;
    h.send(
        "compliance",
        Method::DELETE,
        "/api/v1/recordings/d",
        Some(json!({"reason": "retention"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let gone = public(h, &format!("/share/{token}/audio"), None, CLIENT)
        .await
        .expect(StatusCode::GONE);
    assert_eq!(gone.code(), "deleted");
    h.send(
        "compliance",
        Method::POST,
        "/api/v1/recordings/d/share",
        Some(json!({"days": 1})),
    )
    .await
    .expect(StatusCode::GONE);
}

async fn the_token_is_never_stored_in_clear(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let (link, token, _) = share(h, "r", json!({"days": 1})).await;
    public(h, &format!("/share/{token}/audio"), None, CLIENT)
        .await
        .expect(StatusCode::OK);
    // Not in what the API gives back about the link, nor in the audit trail.
    let listed = h.get("admin", "/api/v1/recordings/r/shares").await;
    assert!(!String::from_utf8_lossy(&listed.body).contains(&token));
    let audit = h.get("admin", "/api/v1/audit?limit=500").await;
    let audit_text = String::from_utf8_lossy(&audit.body);
    assert!(audit_text.contains(&link));
    assert!(!audit_text.contains(&token));
    // Nor anywhere in the database's files (SQLite: the catalog and its write-ahead log).
    let db = h.path(callvault_catalog::SQLITE_FILE_NAME);
    if db.exists() {
        let mut bytes = std::fs::read(&db).unwrap();
        if let Ok(wal) =
            std::fs::read(h.path(&format!("{}-wal", callvault_catalog::SQLITE_FILE_NAME)))
        {
            bytes.extend_from_slice(&wal);
        }
        assert!(
            bytes.windows(link.len()).any(|w| w == link.as_bytes()),
            "the link is in the catalog's files"
        );
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is in the catalog in clear"
        );
    }
}

async fn the_public_pages_are_rate_limited_per_client(h: &Harness) {
    h.recording("r", None, datetime!(2026-11-30 08:00 UTC), TWO_LEGS)
        .await;
    let (_, token, _) = share(h, "r", json!({"days": 1})).await;
    let api = h.api_with(crate::settings::ApiSettings {
        share_requests_per_minute_per_client: 2,
        ..crate::settings::ApiSettings::default()
    });
    let get =
        |client: [u8; 4]| api.call(Call::new(Method::GET, &format!("/share/{token}")).from(client));
    get(CLIENT).await.expect(StatusCode::OK);
    get(CLIENT).await.expect(StatusCode::OK);
    let limited = get(CLIENT).await.expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    assert!(!limited.header("retry-after").is_empty());
    // Another address has its own bucket; and time refills this one.
    get([192, 0, 2, 8]).await.expect(StatusCode::OK);
    h.clock.advance(std::time::Duration::from_secs(30));
    get(CLIENT).await.expect(StatusCode::OK);
}

on_both_engines!(
    a_link_plays_then_expires_and_is_refused,
    a_revoked_link_and_a_deleted_recording_are_refused,
    the_token_is_never_stored_in_clear,
    the_public_pages_are_rate_limited_per_client,
);
