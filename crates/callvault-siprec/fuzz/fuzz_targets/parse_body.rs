//! The whole body pipeline a SIP request goes through: parse (SDES `a=crypto` lines included),
//! bind, choose codecs and crypto lines, answer.
//! The first input byte picks the Content-Type, so one corpus covers every entry path.
#![no_main]

use callvault_siprec::{
    AnswerCrypto, AnswerParams, Limits, MediaAnswer, bind_streams, build_answer, choose_codec,
    choose_crypto, parse_body,
};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/sdp"),
    Some("application/rs-metadata+xml"),
    Some("application/rs-metadata"),
    Some("multipart/mixed;boundary=b"),
    Some("multipart/mixed; boundary=\"unique-boundary-1\""),
    Some("multipart/mixed"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let limits = Limits {
        max_streams: 16,
        max_metadata_bytes: 64 * 1024,
    };
    let Ok(offer) = parse_body(content_type, body, &limits) else {
        return;
    };
    let Some(sdp) = &offer.sdp else {
        return;
    };
    let bindings = bind_streams(sdp, offer.metadata.as_ref());
    assert_eq!(bindings.len(), sdp.media.len());
    let answers: Vec<MediaAnswer> = sdp
        .media
        .iter()
        .map(
            |media| match choose_codec(media, &["PCMU", "PCMA", "OPUS"]) {
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
        address: std::net::IpAddr::from([192, 0, 2, 1]),
        session_id: 1,
        session_version: 1,
        user_agent: "callvault".into(),
    };
    let answer = build_answer(sdp, &answers, &params);
    assert_eq!(answer.matches("\r\nm=").count(), sdp.media.len());
    // At most one a=crypto line per m-line, never the offer's key.
    assert!(answer.matches("a=crypto:").count() <= sdp.media.len());
});
