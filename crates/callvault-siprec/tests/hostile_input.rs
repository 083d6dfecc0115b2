//! Hostile and broken input: the right error and status, and never a panic.
//!
//! The mutation loops are a deterministic, always-on smoke version of the cargo-fuzz targets in
//! `fuzz/`: every fixture cut at many lengths and with bytes flipped, through the whole pipeline.

use std::path::Path;

use callvault_siprec::{
    AnswerCrypto, AnswerParams, Error, Limits, MediaAnswer, bind_streams, build_answer,
    choose_codec, choose_crypto, correlation_from_headers, parse_body, parse_metadata,
};

fn fixture_bodies() -> Vec<(Option<String>, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sip") {
            continue;
        }
        let raw = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let content_type = text
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type:"))
            .map(|v| v.trim().to_owned());
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
            .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
            .unwrap();
        out.push((content_type, raw[split..].to_vec()));
    }
    assert!(out.len() >= 10);
    out
}

/// The whole pipeline a SIP layer would run on a body.
fn exercise(content_type: Option<&str>, body: &[u8]) {
    let Ok(offer) = parse_body(content_type, body, &Limits::default()) else {
        return;
    };
    if let Some(sdp) = &offer.sdp {
        let bindings = bind_streams(sdp, offer.metadata.as_ref());
        assert_eq!(bindings.len(), sdp.media.len());
        let answers: Vec<MediaAnswer> = sdp
            .media
            .iter()
            .map(
                |media| match choose_codec(media, &["PCMU", "PCMA", "G722", "OPUS"]) {
                    Some(codec) => MediaAnswer::Accept {
                        port: 40000,
                        codec: codec.clone(),
                        telephone_event: media.telephone_event().cloned(),
                        crypto: choose_crypto(media).ok().map(|(tag, offer)| AnswerCrypto {
                            tag,
                            keying: offer.keying.clone(),
                            unencrypted_srtcp: offer.unencrypted_srtcp,
                        }),
                    },
                    None => MediaAnswer::Decline,
                },
            )
            .collect();
        let params = AnswerParams {
            address: "192.0.2.1".parse().unwrap(),
            session_id: 1,
            session_version: 1,
            user_agent: "callvault".into(),
        };
        let answer = build_answer(sdp, &answers, &params);
        assert_eq!(answer.matches("\r\nm=").count(), sdp.media.len());
    }
}

#[test]
fn truncated_fixtures_never_panic() {
    for (content_type, body) in fixture_bodies() {
        let step = (body.len() / 200).max(1);
        for cut in (0..body.len()).step_by(step) {
            exercise(content_type.as_deref(), &body[..cut]);
        }
    }
}

#[test]
fn corrupted_fixtures_never_panic() {
    // xorshift: deterministic, no dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let specials = [
        b'\r', b'\n', b'-', b'<', b'>', b'/', b'=', b':', b';', b'"', 0, 0xFF, b' ',
    ];
    for (content_type, body) in fixture_bodies() {
        for _ in 0..300 {
            let mut mutated = body.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % mutated.len().max(1);
                let byte = specials[(next() as usize) % specials.len()];
                match next() % 3 {
                    0 if !mutated.is_empty() => mutated[at] = byte,
                    1 => mutated.insert(at.min(mutated.len()), byte),
                    _ if !mutated.is_empty() => {
                        mutated.remove(at);
                    }
                    _ => {}
                }
            }
            exercise(content_type.as_deref(), &mutated);
        }
    }
}

#[test]
fn huge_metadata_is_413_before_parsing() {
    let participants =
        "<participant participant_id=\"p\"><nameID aor=\"sip:a@b\"/></participant>".repeat(5000);
    let xml = format!(
        "<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">{participants}</recording>"
    );
    assert!(xml.len() > Limits::default().max_metadata_bytes);
    let body = format!(
        "--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n{xml}\r\n--b--\r\n"
    );
    let error = parse_body(
        Some("multipart/mixed;boundary=b"),
        body.as_bytes(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::MetadataTooLarge { .. }), "{error}");
    assert_eq!(error.sip_status(), 413);
}

#[test]
fn entity_expansion_is_refused() {
    let xml = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><recording>&lol2;</recording>"#;
    let error = parse_metadata(xml, &Limits::default()).unwrap_err();
    assert_eq!(error.sip_status(), 400);
}

#[test]
fn deep_nesting_is_handled_without_stack_overflow() {
    let depth = 20_000;
    let xml = format!(
        "<recording>{}{}</recording>",
        "<x>".repeat(depth),
        "</x>".repeat(depth)
    );
    // Either refused or read; the point is no crash.
    let _ = parse_metadata(&xml, &Limits::default());
}

#[test]
fn many_tiny_parts_and_many_m_lines() {
    let mut body = String::new();
    for _ in 0..10_000 {
        body.push_str("--b\r\nContent-Type: application/gtd\r\n\r\nIAM,\r\n");
    }
    body.push_str("--b--\r\n");
    let error = parse_body(
        Some("multipart/mixed;boundary=b"),
        body.as_bytes(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::NoSdp));

    let mut sdp =
        String::from("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n");
    for _ in 0..1000 {
        sdp.push_str("m=audio 5000 RTP/AVP 0\r\n");
    }
    let error =
        parse_body(Some("application/sdp"), sdp.as_bytes(), &Limits::default()).unwrap_err();
    assert!(matches!(
        error,
        Error::TooManyStreams {
            offered: 1000,
            max: 16
        }
    ));
}

#[test]
fn arbitrary_header_values_never_panic() {
    let values = [
        "",
        ";",
        "=",
        ";remote=",
        "FA08",
        "00FA08",
        "00FA08ZZ",
        "\u{1F600};remote=\u{1F600}",
        "<sip:x>;x-=;x-a",
    ];
    for name in [
        "Session-ID",
        "User-to-User",
        "From",
        "X-Genesys-X",
        "Cisco-Guid",
    ] {
        for value in values {
            let _ = correlation_from_headers([(name, value)]);
        }
    }
}
