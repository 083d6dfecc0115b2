//! SDES-SRTP through the recorder: the answer's crypto line, the keys handed to the legs,
//! re-keying by re-offer, offers declined with their reason, and keys kept out of the catalog.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use callvault_media::SrtpSuite;

use super::*;

/// 30 bytes (AES-CM key and salt) of `seed`, base64.
fn cm_key(seed: u8) -> String {
    STANDARD.encode([seed; 30])
}

/// 28 bytes (AES-128-GCM key and salt) of `seed`, base64.
fn gcm_key(seed: u8) -> String {
    STANDARD.encode([seed; 28])
}

/// An offer of one SRTP m-line (`protocol`, with these attribute lines) and a plain one.
fn offer(protocol: &str, attributes: &[&str]) -> String {
    let mut sdp = String::from(
        "v=0\r\no=SBC 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n",
    );
    sdp.push_str(&format!(
        "m=audio 10000 {protocol} 0\r\na=rtpmap:0 PCMU/8000\r\na=label:secure\r\n"
    ));
    for attribute in attributes {
        sdp.push_str(&format!("a={attribute}\r\n"));
    }
    sdp.push_str("a=sendonly\r\n");
    sdp
}

/// The same with a plain RTP m-line after it.
fn offer_with_plain(protocol: &str, attributes: &[&str]) -> String {
    let mut sdp = offer(protocol, attributes);
    sdp.push_str(
        "m=audio 10002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:plain\r\na=sendonly\r\n",
    );
    sdp
}

/// The `a=crypto` lines of an answer's m-line `index`.
fn answered_crypto(response: &Response, index: usize) -> Vec<String> {
    let body = String::from_utf8_lossy(response.body()).into_owned();
    body.split("m=")
        .nth(index + 1)
        .unwrap_or_else(|| panic!("no m-line {index} in {body}"))
        .lines()
        .filter_map(|line| line.strip_prefix("a=crypto:").map(str::to_owned))
        .collect()
}

/// The key of a crypto line's value (`tag suite inline:KEY…`), decoded.
fn inline_key(value: &str) -> Vec<u8> {
    let key = value
        .split_whitespace()
        .nth(2)
        .and_then(|k| k.strip_prefix("inline:"))
        .unwrap_or_else(|| panic!("no inline key in {value}"));
    let key = key.split('|').next().unwrap();
    STANDARD.decode(key).unwrap()
}

fn invite(pair: &mut Pair, call: &mut Call, body: &str) -> Response {
    let invite = call.request("INVITE", "", Some(("application/sdp", body)));
    pair.deliver(src(), &invite);
    let response = pair
        .responses()
        .into_iter()
        .find(|r| r.status() >= 200)
        .expect("a final answer");
    if response.status() == 200 {
        call.to_tag = response.to_tag().map(str::to_owned);
    }
    call.ack(pair);
    response
}

fn reinvite(pair: &mut Pair, call: &mut Call, body: &str) -> Response {
    let invite = call.request("INVITE", "", Some(("application/sdp", body)));
    pair.deliver(src(), &invite);
    let response = pair
        .responses()
        .into_iter()
        .find(|r| r.status() >= 200)
        .expect("a final answer");
    call.ack(pair);
    response
}

fn first_leg(pair: &Pair) -> &FakeLeg {
    &pair.recorder.media.legs[&pair.recorder.media.order[0]]
}

#[test]
fn an_sdes_offer_is_answered_with_one_crypto_line_and_a_key_of_our_own() {
    let mut pair = Pair::standard();
    let mut call = Call::new("srtp-1");
    // The SRC prefers F8 (which we do not decrypt), then AES-CM 80: tag 2 is chosen.
    let theirs = cm_key(7);
    let body = offer(
        "RTP/SAVP",
        &[
            &format!("crypto:1 F8_128_HMAC_SHA1_80 inline:{theirs}"),
            &format!("crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{theirs}|2^31"),
        ],
    );
    let ok = invite(&mut pair, &mut call, &body);
    assert_eq!(ok.status(), 200);
    let answer = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(answer.contains("m=audio 40002 RTP/SAVP 0\r\n"), "{answer}");
    let crypto = answered_crypto(&ok, 0);
    assert_eq!(crypto.len(), 1, "exactly one crypto line: {answer}");
    assert!(crypto[0].starts_with("2 AES_CM_128_HMAC_SHA1_80 inline:"));
    let ours = inline_key(&crypto[0]);
    assert_eq!(ours.len(), 30);
    assert_ne!(
        ours, [7; 30],
        "our key is our own, not an echo of the SRC's"
    );

    // The leg decrypts with the SRC's key.
    let spec = &first_leg(&pair).spec;
    let keying = spec.srtp.as_ref().expect("an SRTP leg");
    assert_eq!(keying.suite(), SrtpSuite::AesCm128HmacSha1_80);
    assert_eq!(keying.key_and_salt(), &[7; 30]);

    // Neither key reaches the catalog.
    let rows = format!("{:?}", pair.archive);
    for key in [theirs, STANDARD.encode(&ours)] {
        assert!(!rows.contains(&key), "a key in the catalog rows: {rows}");
    }

    // Another call gets another key.
    let mut other = Call::new("srtp-2");
    let ok = invite(&mut pair, &mut other, &body);
    assert_ne!(inline_key(&answered_crypto(&ok, 0)[0]), ours);
}

#[test]
fn a_re_offer_with_a_new_key_re_keys_the_leg_and_ours_stays_while_the_suite_does() {
    let mut pair = Pair::standard();
    let mut call = Call::new("rekey");
    let first = offer(
        "RTP/SAVP",
        &[&format!(
            "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}",
            cm_key(1)
        )],
    );
    let ok = invite(&mut pair, &mut call, &first);
    let ours = inline_key(&answered_crypto(&ok, 0)[0]);

    // A refresh with the same key: nothing changes.
    let again = reinvite(&mut pair, &mut call, &first);
    assert_eq!(inline_key(&answered_crypto(&again, 0)[0]), ours);
    let updates = &first_leg(&pair).updates;
    assert_eq!(updates[0].srtp.as_ref().unwrap().key_and_salt(), &[1; 30]);

    // A new key in the same suite: the leg takes it, our answer keeps our key.
    let rekeyed = offer(
        "RTP/SAVP",
        &[&format!(
            "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}",
            cm_key(2)
        )],
    );
    let ok = reinvite(&mut pair, &mut call, &rekeyed);
    assert_eq!(ok.status(), 200);
    assert_eq!(inline_key(&answered_crypto(&ok, 0)[0]), ours);
    let update = first_leg(&pair).updates.last().unwrap();
    assert_eq!(update.srtp.as_ref().unwrap().key_and_salt(), &[2; 30]);
    assert!(update.active);

    // A new suite: a new key of ours, of that suite's length, under the offer's tag.
    let gcm = offer(
        "RTP/SAVP",
        &[&format!("crypto:5 AEAD_AES_128_GCM inline:{}", gcm_key(3))],
    );
    let ok = reinvite(&mut pair, &mut call, &gcm);
    let crypto = answered_crypto(&ok, 0);
    assert!(
        crypto[0].starts_with("5 AEAD_AES_128_GCM inline:"),
        "{crypto:?}"
    );
    assert_eq!(inline_key(&crypto[0]).len(), 28);
    let update = first_leg(&pair).updates.last().unwrap();
    let keying = update.srtp.as_ref().unwrap();
    assert_eq!(
        (keying.suite(), keying.key_and_salt()),
        (SrtpSuite::AeadAes128Gcm, &[3u8; 28][..])
    );
    assert_eq!(
        pair.legs_started(),
        1,
        "re-keying keeps the leg and its file"
    );
}

#[test]
fn a_re_offer_whose_srtp_cannot_be_taken_is_answered_port_0_and_keeps_the_keys() {
    let mut pair = Pair::standard();
    let mut call = Call::new("downgrade");
    let first = offer(
        "RTP/SAVP",
        &[&format!(
            "crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{}",
            cm_key(4)
        )],
    );
    invite(&mut pair, &mut call, &first);
    let unusable = offer(
        "RTP/SAVP",
        &[&format!(
            "crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{} KDR=10",
            cm_key(5)
        )],
    );
    let ok = reinvite(&mut pair, &mut call, &unusable);
    assert_eq!(ok.status(), 200);
    let answer = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(answer.contains("m=audio 0 RTP/SAVP 0\r\n"), "{answer}");
    let update = first_leg(&pair).updates.last().unwrap();
    assert!(!update.active, "the stream records silence meanwhile");
    assert_eq!(update.srtp.as_ref().unwrap().key_and_salt(), &[4; 30]);
    // The usable offer again brings it back.
    let ok = reinvite(&mut pair, &mut call, &first);
    assert!(String::from_utf8_lossy(ok.body()).contains("m=audio 40002 RTP/SAVP 0\r\n"));
    assert!(first_leg(&pair).updates.last().unwrap().active);
}

#[test]
fn srtp_the_recorder_cannot_take_is_declined_with_its_reason() {
    let mut pair = Pair::standard();

    // Every crypto line unusable, nothing else offered: 488 saying so.
    let mut call = Call::new("no-suite");
    let body = offer(
        "RTP/SAVP",
        &[
            &format!("crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{}", cm_key(1)),
            &format!("crypto:2 F8_128_HMAC_SHA1_80 inline:{}", cm_key(1)),
        ],
    );
    let refused = invite(&mut pair, &mut call, &body);
    assert_eq!(
        (refused.status(), refused.reason()),
        (488, "No Acceptable SRTP Crypto Suite")
    );

    // DTLS-SRTP: 488 naming it.
    let mut call = Call::new("dtls");
    let body = offer(
        "UDP/TLS/RTP/SAVP",
        &["fingerprint:sha-256 AB:CD", "setup:actpass"],
    );
    let refused = invite(&mut pair, &mut call, &body);
    assert_eq!(
        (refused.status(), refused.reason()),
        (488, "DTLS-SRTP Not Supported")
    );
    assert_eq!(pair.legs_started(), 0, "nothing started for either");

    // Beside a stream we can record: that m-line is answered port 0 and the recording says why.
    let mut call = Call::new("mixed");
    let body = offer_with_plain(
        "RTP/SAVP",
        &[&format!(
            "crypto:1 F8_128_HMAC_SHA1_80 inline:{}",
            cm_key(1)
        )],
    );
    let ok = invite(&mut pair, &mut call, &body);
    assert_eq!(ok.status(), 200);
    let answer = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(answer.contains("m=audio 0 RTP/SAVP 0\r\n"), "{answer}");
    assert!(!answer.contains("a=crypto"), "{answer}");
    assert_eq!(pair.legs_started(), 1);
    let warnings = &pair.inserts()[0].warnings;
    assert!(
        warnings.iter().any(|w| w.contains("m-line 0")
            && w.contains("tag 1 F8_128_HMAC_SHA1_80: suite not supported")),
        "{warnings:?}"
    );
}
