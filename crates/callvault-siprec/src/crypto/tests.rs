use super::*;
use crate::answer::{AnswerParams, MediaAnswer, build_answer, choose_codec};
use crate::sdp::parse_sdp;

/// 30 bytes (AES_CM_128 key and salt) 0x00..0x1d.
const KEY_30: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
/// 28 bytes (AEAD_AES_128_GCM).
const KEY_28: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==";
/// 44 bytes (AEAD_AES_256_GCM).
const KEY_44: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKis=";

fn usable(value: &str) -> CryptoOffer {
    let line = parse_crypto(value);
    line.usable
        .unwrap_or_else(|reason| panic!("{value}: {reason}"))
}

fn declined(value: &str) -> CryptoDecline {
    parse_crypto(value).usable.unwrap_err()
}

fn bytes(n: u8) -> Vec<u8> {
    (0..n).collect()
}

#[test]
fn every_suite_is_read_with_its_key_and_salt() {
    for (suite, key, len) in [
        (SrtpSuite::AesCm128HmacSha1_80, KEY_30, 30),
        (SrtpSuite::AesCm128HmacSha1_32, KEY_30, 30),
        (SrtpSuite::AeadAes128Gcm, KEY_28, 28),
        (SrtpSuite::AeadAes256Gcm, KEY_44, 44),
    ] {
        let line = parse_crypto(&format!("7 {suite} inline:{key}"));
        assert_eq!((line.tag, line.suite.as_str()), (7, suite.as_str()));
        let offer = line.usable.unwrap();
        assert_eq!(offer.keying, SrtpKeying::new(suite, &bytes(len)).unwrap());
        assert!(!offer.unencrypted_srtcp);
    }
    // Padding is optional.
    let unpadded = usable(&format!(
        "1 AEAD_AES_128_GCM inline:{}",
        KEY_28.trim_end_matches('=')
    ));
    assert_eq!(unpadded.keying.key_and_salt(), &bytes(28)[..]);
}

#[test]
fn lifetime_and_mki_are_read() {
    let offer = usable(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}|2^31"));
    assert_eq!(offer.keying.mki(), None);
    usable(&format!(
        "1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}|1048576"
    ));
    let offer = usable(&format!(
        "1 AES_CM_128_HMAC_SHA1_32 inline:{KEY_30}|2^20|1:4"
    ));
    assert_eq!(
        offer.keying.mki(),
        Some(Mki {
            value: 1,
            length: 4
        })
    );
    // MKI without lifetime (RFC 4568 §9.2 allows either to be absent).
    let offer = usable(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}|258:2"));
    assert_eq!(
        offer.keying.mki(),
        Some(Mki {
            value: 258,
            length: 2
        })
    );
    for bad in [
        "|2^49",
        "|2^",
        "|0",
        "|abc",
        "|2^20|2^20",
        "|1:0",
        "|1:129",
        "|256:1",
        "|x:4",
        "|1:4|2^20",
        "|1:4|2:4",
        "|99999999999999999999999:4",
    ] {
        assert!(
            matches!(
                declined(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}{bad}")),
                CryptoDecline::Malformed(_)
            ),
            "{bad}"
        );
    }
}

#[test]
fn session_parameters_a_receive_only_recorder_can_honour_are_accepted() {
    let offer = usable(&format!(
        "1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30} UNENCRYPTED_SRTCP WSH=128 FEC_ORDER=FEC_SRTP KDR=0 -VENDOR_HINT=1"
    ));
    assert!(offer.unencrypted_srtcp);
    for (param, name) in [
        ("KDR=5", "KDR"),
        ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTP"),
        ("UNAUTHENTICATED_SRTP", "UNAUTHENTICATED_SRTP"),
        ("NEW_THING", "NEW_THING"),
    ] {
        assert_eq!(
            declined(&format!(
                "1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30} {param}"
            )),
            CryptoDecline::UnsupportedParameter(name.to_owned()),
            "{param}"
        );
    }
}

#[test]
fn unusable_lines_say_why() {
    assert_eq!(
        declined(&format!("1 F8_128_HMAC_SHA1_80 inline:{KEY_30}")),
        CryptoDecline::UnsupportedSuite
    );
    assert_eq!(
        declined(&format!("1 AES_256_CM_HMAC_SHA1_80 inline:{KEY_44}")),
        CryptoDecline::UnsupportedSuite
    );
    // A GCM key for a counter-mode suite: the wrong length.
    assert_eq!(
        declined(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_28}")),
        CryptoDecline::BadKey
    );
    assert_eq!(
        declined("1 AES_CM_128_HMAC_SHA1_80 inline:!!!notbase64!!!"),
        CryptoDecline::BadKey
    );
    assert_eq!(
        declined(&format!(
            "1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}|2^20|1:4;inline:{KEY_30}|2^20|2:4"
        )),
        CryptoDecline::SeveralKeys
    );
    assert_eq!(
        declined(&format!("1 AES_CM_128_HMAC_SHA1_80 uri:{KEY_30}")),
        CryptoDecline::UnsupportedKeyMethod
    );
    for malformed in [
        "",
        "   ",
        "x AES_CM_128_HMAC_SHA1_80 inline:abc",
        "1234567890 AES_CM_128_HMAC_SHA1_80 inline:abc",
        "-1 AES_CM_128_HMAC_SHA1_80 inline:abc",
        "1",
        "1 AES_CM_128_HMAC_SHA1_80",
        "1 AES_CM_128_HMAC_SHA1_80 inline",
    ] {
        assert!(
            matches!(declined(malformed), CryptoDecline::Malformed(_)),
            "{malformed:?}: {:?}",
            declined(malformed)
        );
    }
    assert_eq!(
        declined(&format!(
            "1 AES_CM_128_HMAC_SHA1_80 inline:{}",
            "A".repeat(4000)
        )),
        CryptoDecline::BadKey
    );
}

#[test]
fn hostile_lines_never_panic_and_keys_never_print() {
    let mut seed = 0x9e37_79b9u32;
    let alphabet = b"0123456789 |:;^=/+-_inlineAES_CM_128_HMAC_SHA1_80\t\x00\xff";
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let len = (seed % 120) as usize;
        let text: Vec<u8> = (0..len)
            .map(|i| alphabet[(seed.rotate_left(i as u32) as usize + i) % alphabet.len()])
            .collect();
        let _ = parse_crypto(&String::from_utf8_lossy(&text));
    }
    let line = parse_crypto(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}"));
    let printed = format!("{line:?} {}", serde_json::to_string(&line).unwrap());
    assert!(!printed.contains(KEY_30), "{printed}");
    assert!(!printed.contains("[0, 1, 2"), "{printed}");
}

const SAVP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";

fn media(lines: &str) -> Media {
    parse_sdp(&format!("{SAVP}{lines}"))
        .unwrap()
        .media
        .remove(0)
}

#[test]
fn the_first_usable_line_in_offer_order_is_chosen() {
    // Cisco's order: GCM 256, GCM 128, then the counter-mode suites.
    let offered = media(&format!(
        "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{KEY_44}\r\n\
         a=crypto:2 AEAD_AES_256_GCM inline:{KEY_44}\r\na=crypto:3 AEAD_AES_128_GCM inline:{KEY_28}\r\n\
         a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}\r\na=sendonly\r\n"
    ));
    assert_eq!(offered.protection(), Protection::Sdes);
    assert_eq!(offered.crypto.len(), 4);
    let (tag, offer) = choose_crypto(&offered).unwrap();
    assert_eq!((tag, offer.keying.suite()), (2, SrtpSuite::AeadAes256Gcm));
    // The 80-bit suite first when the SRC prefers it.
    let offered = media(&format!(
        "m=audio 4000 RTP/SAVP 0\r\na=crypto:9 AES_CM_128_HMAC_SHA1_32 inline:{KEY_30}\r\n\
         a=crypto:8 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}\r\n"
    ));
    assert_eq!(choose_crypto(&offered).unwrap().0, 9);
}

#[test]
fn srtp_without_an_acceptable_line_and_dtls_srtp_are_declined_with_the_reason() {
    let offered = media(&format!(
        "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 F8_128_HMAC_SHA1_80 inline:{KEY_30}\r\n\
         a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30} UNENCRYPTED_SRTP\r\n"
    ));
    let decline = choose_crypto(&offered).unwrap_err();
    assert_eq!(
        decline.to_string(),
        "no acceptable a=crypto line: tag 1 F8_128_HMAC_SHA1_80: suite not supported; \
         tag 2 AES_CM_128_HMAC_SHA1_80: session parameter UNENCRYPTED_SRTP not supported"
    );
    assert_eq!(
        choose_crypto(&media("m=audio 4000 RTP/SAVP 0\r\n")),
        Err(SrtpDecline::NoCrypto)
    );
    let fingerprint = "a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n";
    for dtls in [
        format!("m=audio 4000 UDP/TLS/RTP/SAVP 0\r\n{fingerprint}"),
        format!("m=audio 4000 RTP/SAVPF 0\r\n{fingerprint}"),
    ] {
        let offered = media(&dtls);
        assert_eq!(offered.protection(), Protection::DtlsSrtp, "{dtls}");
        let decline = choose_crypto(&offered).unwrap_err();
        assert_eq!(decline, SrtpDecline::DtlsSrtp);
        assert!(decline.to_string().contains("DTLS-SRTP"));
    }
    assert_eq!(
        media("m=audio 4000 RTP/AVP 0\r\n").protection(),
        Protection::Plain
    );
    assert_eq!(
        media("m=audio 4000 RTP/AVPF 0\r\n").protection(),
        Protection::Plain
    );
    assert_eq!(
        media(&format!(
            "m=audio 4000 RTP/SAVPF 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}\r\n"
        ))
        .protection(),
        Protection::Sdes
    );
    assert_eq!(
        media("m=image 4000 udptl t38\r\n").protection(),
        Protection::NotRtp
    );
}

#[test]
fn a_session_level_crypto_line_is_ignored() {
    let sdp = parse_sdp(&format!(
        "{SAVP}a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30}\r\nm=audio 4000 RTP/SAVP 0\r\n"
    ))
    .unwrap();
    assert!(sdp.media[0].crypto.is_empty());
}

#[test]
fn the_answer_has_one_line_with_the_offers_tag_and_our_own_key() {
    let offer = parse_sdp(&format!(
        "{SAVP}m=audio 4000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=crypto:5 AEAD_AES_128_GCM inline:{KEY_28}\r\n\
         a=crypto:6 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30} UNENCRYPTED_SRTCP\r\na=sendonly\r\n\
         m=audio 4002 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_30} UNENCRYPTED_SRTCP\r\na=sendonly\r\n"
    ))
    .unwrap();
    let ours = SrtpKeying::new(SrtpSuite::AeadAes128Gcm, &[0xA5; 28]).unwrap();
    let (tag, chosen) = choose_crypto(&offer.media[0]).unwrap();
    assert_eq!(tag, 5);
    let (second_tag, second) = choose_crypto(&offer.media[1]).unwrap();
    let second_ours = SrtpKeying::new(SrtpSuite::AesCm128HmacSha1_80, &[0x5A; 30]).unwrap();
    let answers = [
        MediaAnswer::Accept {
            port: 30000,
            codec: choose_codec(&offer.media[0], &["PCMU"]).unwrap().clone(),
            telephone_event: offer.media[0].telephone_event().cloned(),
            crypto: Some(AnswerCrypto {
                tag,
                keying: ours.clone(),
                unencrypted_srtcp: chosen.unencrypted_srtcp,
            }),
        },
        MediaAnswer::Accept {
            port: 30002,
            codec: choose_codec(&offer.media[1], &["PCMU"]).unwrap().clone(),
            telephone_event: None,
            crypto: Some(AnswerCrypto {
                tag: second_tag,
                keying: second_ours,
                unencrypted_srtcp: second.unencrypted_srtcp,
            }),
        },
    ];
    let params = AnswerParams {
        address: "198.51.100.7".parse().unwrap(),
        session_id: 1,
        session_version: 1,
        user_agent: "callvault".into(),
    };
    let text = build_answer(&offer, &answers, &params);
    assert!(
        text.contains("m=audio 30000 RTP/SAVP 0 101\r\n"),
        "the offer's protocol: {text}"
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("a=crypto:"))
        .collect();
    assert_eq!(
        lines,
        [
            "a=crypto:5 AEAD_AES_128_GCM inline:paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpQ==",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa UNENCRYPTED_SRTCP",
        ]
    );
    assert!(
        !text.contains(KEY_30) && !text.contains(KEY_28),
        "never the SRC's key"
    );
    // Our answer reads back as one usable line of our key.
    let reread = parse_sdp(&text).unwrap();
    let (tag, back) = choose_crypto(&reread.media[0]).unwrap();
    assert_eq!((tag, &back.keying), (5, &ours));
    assert_eq!(reread.media[0].crypto.len(), 1);
    assert!(webrtc_sdp::parse_sdp(&text, false).is_ok());
}
