//! The SDP answer to a recording offer, and the codec choice behind it.
//!
//! Written as text rather than through webrtc-sdp: its serialiser normalises `a=fmtp` (we echo
//! parameters verbatim, e.g. G.729 `annexb=no`) and cannot express m-lines whose protocol it does
//! not know, which we must still answer (declined) to keep m-line count and order. Tests reparse
//! every answer with webrtc-sdp to keep the text honest.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::crypto::AnswerCrypto;
use crate::sdp::{Direction, Format, Media, Sdp};

/// Our decision for one offered m-line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaAnswer {
    /// Record it: receive on `port`, in `codec`, with DTMF events if `telephone_event` is given;
    /// an SDES-SRTP m-line (`RTP/SAVP`) with its one `a=crypto` line.
    Accept {
        port: u16,
        codec: Format,
        telephone_event: Option<Format>,
        crypto: Option<AnswerCrypto>,
    },
    /// Refuse it: port 0.
    Decline,
}

/// Who we are in the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerParams {
    /// Our media address, for `o=` and `c=`.
    pub address: IpAddr,
    pub session_id: u64,
    /// Incremented by the caller on every re-answer (RFC 3264 §8).
    pub session_version: u64,
    /// Used as the `s=` line.
    pub user_agent: String,
}

/// The first offered format whose encoding is in `supported` (case-insensitive), never
/// telephone-event or comfort noise: the offerer's preference order decides.
pub fn choose_codec<'a>(media: &'a Media, supported: &[&str]) -> Option<&'a Format> {
    media.formats.iter().find(|format| {
        !format.encoding.is_empty()
            && !format.is_telephone_event()
            && !format.is_comfort_noise()
            && supported
                .iter()
                .any(|wanted| wanted.eq_ignore_ascii_case(&format.encoding))
    })
}

/// The answer to `offer`: same number and order of m-lines. An m-line without an entry in
/// `answers`, or offered with port 0, is declined. Lines end in CRLF.
pub fn build_answer(offer: &Sdp, answers: &[MediaAnswer], params: &AnswerParams) -> String {
    let address_type = match params.address {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let session_name: String = params
        .user_agent
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let session_name = if session_name.trim().is_empty() {
        "-".to_owned()
    } else {
        session_name
    };
    let mut out = String::with_capacity(256 + 160 * offer.media.len());
    // Writing to a String cannot fail; the results are discarded through `line`.
    let mut line = |text: std::fmt::Arguments| {
        let _ = out.write_fmt(text);
        out.push_str("\r\n");
    };
    line(format_args!("v=0"));
    line(format_args!(
        "o=- {} {} IN {address_type} {}",
        params.session_id, params.session_version, params.address
    ));
    line(format_args!("s={session_name}"));
    line(format_args!("c=IN {address_type} {}", params.address));
    line(format_args!("t=0 0"));
    for (index, media) in offer.media.iter().enumerate() {
        let accepted = match answers.get(index) {
            Some(MediaAnswer::Accept {
                port,
                codec,
                telephone_event,
                crypto,
            }) if media.port != 0 => Some((port, codec, telephone_event.as_ref(), crypto)),
            _ => None,
        };
        let Some((port, codec, telephone_event, crypto)) = accepted else {
            let formats: Vec<String> = media
                .formats
                .iter()
                .map(|f| f.payload_type.to_string())
                .collect();
            let formats = if formats.is_empty() {
                "0".to_owned()
            } else {
                formats.join(" ")
            };
            line(format_args!(
                "m={} 0 {} {formats}",
                media.kind, media.protocol
            ));
            continue;
        };
        match telephone_event {
            Some(event) => line(format_args!(
                "m={} {port} {} {} {}",
                media.kind, media.protocol, codec.payload_type, event.payload_type
            )),
            None => line(format_args!(
                "m={} {port} {} {}",
                media.kind, media.protocol, codec.payload_type
            )),
        }
        for format in std::iter::once(codec).chain(telephone_event) {
            let channels = if format.channels > 1 {
                format!("/{}", format.channels)
            } else {
                String::new()
            };
            line(format_args!(
                "a=rtpmap:{} {}/{}{channels}",
                format.payload_type,
                wire_encoding(&format.encoding),
                format.clock_rate
            ));
            if let Some(fmtp) = &format.fmtp {
                line(format_args!("a=fmtp:{} {fmtp}", format.payload_type));
            }
        }
        if let Some(crypto) = crypto {
            // RFC 4568 §7.1.2: exactly one line, the offer's tag, our own key.
            line(format_args!("a=crypto:{}", crypto.attribute_value()));
        }
        if let Some(ptime) = media.ptime {
            line(format_args!("a=ptime:{ptime}"));
        }
        if media.rtcp_mux {
            line(format_args!("a=rtcp-mux"));
        }
        if let Some(label) = &media.label {
            line(format_args!("a=label:{label}"));
        }
        // We only ever receive: sendonly/sendrecv offers get recvonly; an inactive offer gets
        // inactive, and so does a recvonly one (the SRC wants to receive; we never send).
        let direction = match media.direction {
            Direction::SendOnly | Direction::SendRecv => Direction::RecvOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        };
        line(format_args!("a={}", direction.as_str()));
    }
    out
}

/// Encoding names are case-insensitive (RFC 4855), but some stacks compare them exactly;
/// print the spelling their registrations use.
fn wire_encoding(encoding: &str) -> &str {
    match encoding {
        "TELEPHONE-EVENT" => "telephone-event",
        "OPUS" => "opus",
        "SPEEX" => "speex",
        "ILBC" => "iLBC",
        "RED" => "red",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::parse_sdp;

    const OFFER: &str = "v=0\r\no=SBC 99 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 18 8 0 101 13\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=label:1\r\na=rtcp-mux\r\na=sendonly\r\nm=audio 10002 RTP/AVP 0 8\r\na=label:2\r\na=inactive\r\nm=video 10004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=label:3\r\na=sendonly\r\nm=audio 0 RTP/AVP 0\r\na=label:4\r\n";

    fn params() -> AnswerParams {
        AnswerParams {
            address: "198.51.100.7".parse().unwrap(),
            session_id: 42,
            session_version: 3,
            user_agent: "callvault\r\n/0.1".into(),
        }
    }

    #[test]
    fn codec_follows_offer_order_and_skips_events_and_noise() {
        let offer = parse_sdp(OFFER).unwrap();
        let media = &offer.media[0];
        assert_eq!(
            choose_codec(media, &["PCMU", "PCMA"]).unwrap().encoding,
            "PCMA"
        );
        assert_eq!(
            choose_codec(media, &["g729", "pcmu"]).unwrap().payload_type,
            18
        );
        assert_eq!(choose_codec(media, &["TELEPHONE-EVENT", "CN"]), None);
        assert_eq!(choose_codec(media, &["OPUS"]), None);
    }

    fn answer_for(offer: &Sdp) -> String {
        let first = &offer.media[0];
        let second = &offer.media[1];
        let answers = [
            MediaAnswer::Accept {
                port: 30000,
                codec: choose_codec(first, &["G729"]).unwrap().clone(),
                telephone_event: first.telephone_event().cloned(),
                crypto: None,
            },
            MediaAnswer::Accept {
                port: 30002,
                codec: choose_codec(second, &["PCMU"]).unwrap().clone(),
                telephone_event: None,
                crypto: None,
            },
            MediaAnswer::Decline,
            MediaAnswer::Accept {
                port: 30004,
                codec: choose_codec(&offer.media[3], &["PCMU"]).unwrap().clone(),
                telephone_event: None,
                crypto: None,
            },
        ];
        build_answer(offer, &answers, &params())
    }

    #[test]
    fn answer_text_is_exact() {
        let offer = parse_sdp(OFFER).unwrap();
        let expected = "v=0\r\no=- 42 3 IN IP4 198.51.100.7\r\ns=callvault/0.1\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=rtcp-mux\r\na=label:1\r\na=recvonly\r\n\
m=audio 30002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:2\r\na=inactive\r\n\
m=video 0 RTP/AVP 96\r\n\
m=audio 0 RTP/AVP 0\r\n";
        assert_eq!(answer_for(&offer), expected);
    }

    #[test]
    fn answer_reparses_with_the_same_shape() {
        let offer = parse_sdp(OFFER).unwrap();
        let text = answer_for(&offer);
        let strict = webrtc_sdp::parse_sdp(&text, false).unwrap();
        assert_eq!(strict.media.len(), offer.media.len());
        let answer = parse_sdp(&text).unwrap();
        let shape: Vec<(&str, u16, Direction, Option<&str>)> = answer
            .media
            .iter()
            .map(|m| (m.kind.as_str(), m.port, m.direction, m.label.as_deref()))
            .collect();
        assert_eq!(
            shape,
            [
                ("audio", 30000, Direction::RecvOnly, Some("1")),
                ("audio", 30002, Direction::Inactive, Some("2")),
                ("video", 0, Direction::SendRecv, None),
                ("audio", 0, Direction::SendRecv, None),
            ]
        );
        assert_eq!(
            answer.media[0].telephone_event().unwrap().fmtp.as_deref(),
            Some("0-15")
        );
    }

    #[test]
    fn missing_answers_decline_and_ipv6_is_typed() {
        let offer = parse_sdp(OFFER).unwrap();
        let params = AnswerParams {
            address: "2001:db8::7".parse().unwrap(),
            ..params()
        };
        let text = build_answer(&offer, &[], &params);
        assert!(text.contains("c=IN IP6 2001:db8::7\r\n"), "{text}");
        assert_eq!(text.matches("m=").count(), 4);
        assert!(
            text.lines()
                .filter(|l| l.starts_with("m="))
                .all(|l| l.split(' ').nth(1) == Some("0"))
        );
        assert!(webrtc_sdp::parse_sdp(&text, false).is_ok());
    }

    #[test]
    fn opus_stereo_keeps_channels() {
        let offer = parse_sdp("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 111 9\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n").unwrap();
        let codec = choose_codec(&offer.media[0], &["OPUS", "G722"])
            .unwrap()
            .clone();
        let text = build_answer(
            &offer,
            &[MediaAnswer::Accept {
                port: 4000,
                codec,
                telephone_event: None,
                crypto: None,
            }],
            &params(),
        );
        assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"), "{text}");
    }
}
