//! The SDP offer: parsed with webrtc-sdp after repairing what real SBCs send, then converted into
//! our own types so webrtc-sdp never shows through the crate's API.
//!
//! webrtc-sdp is strict in ways that refuse working SIPREC offers: a missing `s=` or `t=`, an
//! attribute it knows with a value it does not (`a=ptime:20.0`), a session-level attribute it
//! only allows in media (`a=ptime` above the first `m=`), `p=`/`e=`/`u=` lines, a media section
//! without `c=` and no session `c=`. Worst, an m-line whose protocol it does not know is silently
//! dropped, which would shift every later m-line against our answer. So every offer goes through
//! [`repair`] first; what cannot be repaired is a [`Error::BadSdp`].

use std::net::IpAddr;

use webrtc_sdp::SdpType;
use webrtc_sdp::address::ExplicitlyTypedAddress;
use webrtc_sdp::attribute_type::SdpAttribute;
use webrtc_sdp::error::SdpParserError;
use webrtc_sdp::media_type::{SdpFormatList, SdpMedia, SdpMediaValue};

use crate::crypto::{CryptoAttribute, parse_crypto};
use crate::error::{Error, Result};

/// A parsed SDP offer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sdp {
    /// The `o=` session id, as written (some SRCs exceed u64 or use letters).
    pub origin_session_id: String,
    /// Session-level `c=` address; `None` when absent or an FQDN.
    pub connection: Option<IpAddr>,
    /// The m-lines, in offer order.
    pub media: Vec<Media>,
}

/// One m-line of the offer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Media {
    /// `audio`, `video`, `image`…
    pub kind: String,
    pub port: u16,
    /// As offered: `RTP/AVP`, `RTP/SAVP`, `udptl`…
    pub protocol: String,
    /// Media-level `c=`, else session-level; `0.0.0.0` is kept (hold).
    pub connection: Option<IpAddr>,
    /// Media-level direction, else session-level, else sendrecv.
    pub direction: Direction,
    /// `a=label`.
    pub label: Option<String>,
    /// Offered RTP formats in offer order, static payload types filled in without `a=rtpmap`.
    pub formats: Vec<Format>,
    /// `a=ptime`, media-level else session-level.
    pub ptime: Option<u32>,
    pub rtcp_mux: bool,
    /// The `a=crypto` lines (SDES-SRTP, RFC 4568), in the offer's order of preference.
    pub crypto: Vec<CryptoAttribute>,
    /// An `a=fingerprint` at media or session level (DTLS-SRTP).
    pub fingerprint: bool,
}

/// SDP media direction.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    SendOnly,
    RecvOnly,
    SendRecv,
    Inactive,
}

impl Direction {
    /// The SDP attribute name: `sendonly`, `recvonly`, `sendrecv`, `inactive`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::SendRecv => "sendrecv",
            Direction::Inactive => "inactive",
        }
    }
}

/// One RTP payload format.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Format {
    pub payload_type: u8,
    /// Upper-case encoding name (`PCMU`, `TELEPHONE-EVENT`, `OPUS`); empty for a dynamic payload
    /// type offered without `a=rtpmap`.
    pub encoding: String,
    /// 0 when unknown (dynamic payload type without `a=rtpmap`).
    pub clock_rate: u32,
    pub channels: u8,
    /// The `a=fmtp` parameters verbatim (`0-16`, `annexb=no`).
    pub fmtp: Option<String>,
}

impl Format {
    /// A format from the RFC 3551 static payload type table, or `None` for dynamic types.
    pub fn from_static(payload_type: u8) -> Option<Format> {
        let (encoding, clock_rate, channels) = match payload_type {
            0 => ("PCMU", 8000, 1),
            3 => ("GSM", 8000, 1),
            4 => ("G723", 8000, 1),
            5 => ("DVI4", 8000, 1),
            6 => ("DVI4", 16000, 1),
            7 => ("LPC", 8000, 1),
            8 => ("PCMA", 8000, 1),
            9 => ("G722", 8000, 1),
            10 => ("L16", 44100, 2),
            11 => ("L16", 44100, 1),
            12 => ("QCELP", 8000, 1),
            13 => ("CN", 8000, 1),
            14 => ("MPA", 90000, 1),
            15 => ("G728", 8000, 1),
            16 => ("DVI4", 11025, 1),
            17 => ("DVI4", 22050, 1),
            18 => ("G729", 8000, 1),
            _ => return None,
        };
        Some(Format {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
            fmtp: None,
        })
    }

    /// True for RFC 4733 events (DTMF).
    pub fn is_telephone_event(&self) -> bool {
        self.encoding == "TELEPHONE-EVENT"
    }

    /// True for comfort noise, which is never a recording codec.
    pub fn is_comfort_noise(&self) -> bool {
        self.encoding == "CN"
    }
}

impl Media {
    /// On hold: `a=inactive`, or a connection address of `0.0.0.0` / `::` (RFC 2543 style hold,
    /// BroadWorks pause).
    pub fn is_on_hold(&self) -> bool {
        self.direction == Direction::Inactive
            || self
                .connection
                .is_some_and(|address| address.is_unspecified())
    }

    /// The first offered `telephone-event` format.
    pub fn telephone_event(&self) -> Option<&Format> {
        self.formats
            .iter()
            .find(|format| format.is_telephone_event())
    }

    /// The `telephone-event` format to answer alongside `codec`: the one at the codec's clock
    /// rate (RFC 4733 §2.1: events SHOULD use the audio clock), else the first offered.
    pub fn telephone_event_for(&self, codec: &Format) -> Option<&Format> {
        self.formats
            .iter()
            .find(|format| format.is_telephone_event() && format.clock_rate == codec.clock_rate)
            .or_else(|| self.telephone_event())
    }
}

/// Parse an SDP offer, repairing the vendor quirks listed in the module documentation.
pub fn parse_sdp(text: &str) -> Result<Sdp> {
    let repaired = repair(text)?;
    for note in &repaired.repairs {
        tracing::debug!(repair = %note, "SDP offer repaired before parsing");
    }
    let session = webrtc_sdp::parse_sdp(&repaired.text, false).map_err(|error| Error::BadSdp {
        reason: error.to_string(),
    })?;
    if session.media.len() != repaired.media.len() {
        // Would misalign our answer with the offer; repair() should make this unreachable.
        return Err(Error::BadSdp {
            reason: format!(
                "{} m-lines offered but only {} understood",
                repaired.media.len(),
                session.media.len()
            ),
        });
    }
    let session_connection = if repaired.synthesized_connection {
        None
    } else {
        session
            .get_connection()
            .as_ref()
            .and_then(|c| ip(&c.address))
    };
    let session_direction = direction(&session.attribute);
    let media = session
        .media
        .iter()
        .zip(&repaired.media)
        .map(|(media, raw)| {
            convert_media(
                media,
                raw,
                session_connection,
                session_direction,
                repaired.session_ptime,
                repaired.session_fingerprint,
            )
        })
        .collect();
    Ok(Sdp {
        origin_session_id: repaired.origin_session_id,
        connection: session_connection,
        media,
    })
}

fn convert_media(
    media: &SdpMedia,
    raw: &RawMedia,
    session_connection: Option<IpAddr>,
    session_direction: Option<Direction>,
    session_ptime: Option<u32>,
    session_fingerprint: bool,
) -> Media {
    let attributes = media.get_attributes();
    let payload_types: Vec<u8> = match media.get_formats() {
        // RTP payload types are 7 bits; anything above cannot be received, so is not offered.
        SdpFormatList::Integers(list) => list
            .iter()
            .filter_map(|pt| u8::try_from(*pt).ok().filter(|pt| *pt <= 127))
            .collect(),
        SdpFormatList::Strings(_) | SdpFormatList::Unknown(_) => Vec::new(),
    };
    let formats = payload_types
        .iter()
        .map(|&payload_type| {
            let rtpmap = attributes.iter().find_map(|attribute| match attribute {
                SdpAttribute::Rtpmap(rtpmap) if rtpmap.payload_type == payload_type => Some(rtpmap),
                _ => None,
            });
            let mut format = match rtpmap {
                Some(rtpmap) => Format {
                    payload_type,
                    encoding: rtpmap.codec_name.to_ascii_uppercase(),
                    clock_rate: rtpmap.frequency,
                    channels: rtpmap
                        .channels
                        .and_then(|c| u8::try_from(c).ok())
                        .unwrap_or(1),
                    fmtp: None,
                },
                None => Format::from_static(payload_type).unwrap_or(Format {
                    payload_type,
                    encoding: String::new(),
                    clock_rate: 0,
                    channels: 1,
                    fmtp: None,
                }),
            };
            format.fmtp = raw
                .fmtp
                .iter()
                .find(|(pt, _)| *pt == payload_type)
                .map(|(_, parameters)| parameters.clone());
            format
        })
        .collect();
    let kind = match media.get_type() {
        SdpMediaValue::Audio => "audio".to_owned(),
        SdpMediaValue::Video => "video".to_owned(),
        SdpMediaValue::Application => "application".to_owned(),
        SdpMediaValue::Unknown(kind) => kind.clone(),
    };
    Media {
        kind,
        // repair() refuses ports above 65535.
        port: u16::try_from(media.get_port()).unwrap_or(0),
        protocol: raw.protocol.clone(),
        connection: media
            .get_connection()
            .as_ref()
            .and_then(|c| ip(&c.address))
            .or(session_connection),
        direction: direction(attributes)
            .or(session_direction)
            .unwrap_or(Direction::SendRecv),
        label: attributes.iter().find_map(|attribute| match attribute {
            SdpAttribute::Label(label) => Some(label.clone()),
            _ => None,
        }),
        formats,
        ptime: attributes
            .iter()
            .find_map(|attribute| match attribute {
                SdpAttribute::Ptime(ptime) => u32::try_from(*ptime).ok(),
                _ => None,
            })
            .or(session_ptime),
        rtcp_mux: attributes
            .iter()
            .any(|attribute| matches!(attribute, SdpAttribute::RtcpMux)),
        crypto: raw.crypto.iter().map(|value| parse_crypto(value)).collect(),
        fingerprint: raw.fingerprint || session_fingerprint,
    }
}

fn ip(address: &ExplicitlyTypedAddress) -> Option<IpAddr> {
    match address {
        ExplicitlyTypedAddress::Ip(ip) => Some(*ip),
        ExplicitlyTypedAddress::Fqdn { .. } => None,
    }
}

fn direction(attributes: &[SdpAttribute]) -> Option<Direction> {
    attributes.iter().find_map(|attribute| match attribute {
        SdpAttribute::Sendonly => Some(Direction::SendOnly),
        SdpAttribute::Recvonly => Some(Direction::RecvOnly),
        SdpAttribute::Sendrecv => Some(Direction::SendRecv),
        SdpAttribute::Inactive => Some(Direction::Inactive),
        _ => None,
    })
}

/// What [`repair`] learned from the raw text that webrtc-sdp would lose or normalise.
#[derive(Debug, Default)]
struct Repaired {
    text: String,
    origin_session_id: String,
    /// A placeholder session `c=` was added so webrtc-sdp accepts media sections without one.
    synthesized_connection: bool,
    session_ptime: Option<u32>,
    session_fingerprint: bool,
    media: Vec<RawMedia>,
    repairs: Vec<String>,
}

#[derive(Debug, Default)]
struct RawMedia {
    protocol: String,
    /// `a=fmtp` verbatim: webrtc-sdp re-serialises parameters it knows and drops the rest.
    fmtp: Vec<(u8, String)>,
    /// `a=crypto` values verbatim: webrtc-sdp does not know the attribute.
    crypto: Vec<String>,
    fingerprint: bool,
}

/// Rewrite an offer into something webrtc-sdp accepts without changing what it means:
/// CRLF, no trailing blanks, `v= o= s= … t=` present and in order, lines and attributes webrtc-sdp
/// cannot parse (or does not allow at that level) dropped, unknown m-line protocols masked so the
/// m-line is kept.
fn repair(text: &str) -> Result<Repaired> {
    let mut repaired = Repaired::default();
    let mut origin: Option<String> = None;
    let mut session_name: Option<String> = None;
    let mut session_lines: Vec<String> = Vec::new();
    let mut has_timing = false;
    let mut has_session_connection = false;
    let mut media_lines: Vec<String> = Vec::new();
    let mut media_without_connection = false;
    let mut media_has_connection = false;

    for (number, line) in text.split('\n').enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            repaired
                .repairs
                .push(format!("line {number}: no '=', dropped"));
            continue;
        };
        let kind = kind.trim().to_ascii_lowercase();
        let value = value.trim();
        let in_media = !repaired.media.is_empty();
        let line = format!("{kind}={value}");
        let accepted = webrtc_sdp::parse_sdp_line(&line, number);
        match kind.as_str() {
            "v" => {}
            "o" => {
                if origin.is_some() || in_media {
                    continue;
                }
                repaired.origin_session_id = value
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                origin = Some(if accepted.is_ok() {
                    line
                } else {
                    repaired.repairs.push(format!("o= not understood: {value}"));
                    "o=- 0 0 IN IP4 0.0.0.0".to_owned()
                });
            }
            "s" if !in_media && session_name.is_none() => session_name = Some(line),
            "t" if !in_media && accepted.is_ok() => {
                has_timing = true;
                session_lines.push(line);
            }
            "c" if accepted.is_ok() => {
                if in_media {
                    if !media_has_connection {
                        media_has_connection = true;
                        media_lines.push(line);
                    }
                } else if !has_session_connection {
                    has_session_connection = true;
                    session_lines.push(line);
                }
            }
            "b" if accepted.is_ok() => {
                if in_media {
                    media_lines.push(line);
                } else {
                    session_lines.push(line);
                }
            }
            "m" => {
                if in_media && !media_has_connection {
                    media_without_connection = true;
                }
                media_has_connection = false;
                let mut tokens = value.split_whitespace();
                let (kind, port, protocol) = (tokens.next(), tokens.next(), tokens.next());
                let protocol = protocol.unwrap_or_default().to_owned();
                let line = match accepted {
                    Ok(_) => line,
                    Err(SdpParserError::Unsupported { .. }) => {
                        // Only the protocol can be Unsupported here; keep the m-line, remember
                        // the real protocol, and let webrtc-sdp see one it knows.
                        let rest: Vec<&str> = tokens.collect();
                        let masked = format!(
                            "m={} {} RTP/AVP {}",
                            kind.unwrap_or_default(),
                            port.unwrap_or_default(),
                            rest.join(" ")
                        );
                        repaired.repairs.push(format!("protocol {protocol} masked"));
                        if let Err(error) = webrtc_sdp::parse_sdp_line(&masked, number) {
                            return Err(Error::BadSdp {
                                reason: error.to_string(),
                            });
                        }
                        masked
                    }
                    Err(error) => {
                        return Err(Error::BadSdp {
                            reason: error.to_string(),
                        });
                    }
                };
                media_lines.push(line);
                repaired.media.push(RawMedia {
                    protocol,
                    ..RawMedia::default()
                });
            }
            "a" => {
                let (name, parameters) = value.split_once(':').unwrap_or((value, ""));
                if name.eq_ignore_ascii_case("fmtp") && in_media {
                    if let Some((pt, parameters)) = parameters.trim().split_once(' ')
                        && let Ok(pt) = pt.parse::<u8>()
                        && let Some(raw) = repaired.media.last_mut()
                    {
                        raw.fmtp.push((pt, parameters.trim().to_owned()));
                    }
                } else if name.eq_ignore_ascii_case("crypto") {
                    // Media-level only (RFC 4568 §9.1); a session-level one is ignored.
                    if let Some(raw) = repaired.media.last_mut().filter(|_| in_media) {
                        raw.crypto.push(parameters.trim().to_owned());
                    }
                    continue;
                } else if name.eq_ignore_ascii_case("fingerprint") {
                    match repaired.media.last_mut().filter(|_| in_media) {
                        Some(raw) => raw.fingerprint = true,
                        None => repaired.session_fingerprint = true,
                    }
                } else if name.eq_ignore_ascii_case("ptime") && !in_media {
                    repaired.session_ptime = parse_ptime(parameters);
                } else if name.eq_ignore_ascii_case("ptime") && in_media {
                    // `a=ptime:20.0` is refused by webrtc-sdp; normalise rather than lose it.
                    if let Some(ptime) = parse_ptime(parameters) {
                        media_lines.push(format!("a=ptime:{ptime}"));
                    }
                    continue;
                }
                match accepted {
                    Ok(webrtc_sdp::SdpLine {
                        sdp_type: SdpType::Attribute(attribute),
                        ..
                    }) => {
                        if in_media && attribute.allowed_at_media_level() {
                            media_lines.push(line);
                        } else if !in_media && attribute.allowed_at_session_level() {
                            session_lines.push(line);
                        } else {
                            repaired
                                .repairs
                                .push(format!("a={name} not allowed here, dropped"));
                        }
                    }
                    // Unknown attributes (`a=direction:both`, `a=crypto`…) webrtc-sdp would drop
                    // with a warning anyway.
                    Err(SdpParserError::Unsupported { .. }) => {}
                    _ => repaired
                        .repairs
                        .push(format!("a={name} not understood, dropped")),
                }
            }
            _ => repaired.repairs.push(format!(
                "line {number}: {kind}= not used or not understood, dropped"
            )),
        }
    }
    if !repaired.media.is_empty() && !media_has_connection {
        media_without_connection = true;
    }
    let Some(origin) = origin else {
        return Err(Error::BadSdp {
            reason: "no o= line".into(),
        });
    };
    if !has_timing {
        session_lines.push("t=0 0".into());
    }
    if media_without_connection && !has_session_connection {
        // webrtc-sdp insists every media section can resolve an address; a placeholder keeps the
        // offer, and is reported as "no address" rather than as hold.
        repaired.synthesized_connection = true;
        session_lines.push("c=IN IP4 0.0.0.0".into());
    }
    let mut text = String::with_capacity(text.len() + 32);
    for line in [
        "v=0".to_owned(),
        origin,
        session_name.unwrap_or_else(|| "s=-".into()),
    ]
    .iter()
    .chain(&session_lines)
    .chain(&media_lines)
    {
        text.push_str(line);
        text.push_str("\r\n");
    }
    repaired.text = text;
    Ok(repaired)
}

/// `20`, `20.0`, ` 20 ` → 20.
fn parse_ptime(value: &str) -> Option<u32> {
    let value = value.trim();
    value.parse::<u32>().ok().or_else(|| {
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 1.0 && *v < 10_000.0)
            .map(|v| v as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "v=0\r\no=SBC 1234 5678 IN IP4 192.0.2.10\r\ns=SIPREC\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=label:1\r\na=sendonly\r\nm=audio 40002 RTP/AVP 8 0\r\nc=IN IP4 192.0.2.11\r\na=label:2\r\na=rtcp-mux\r\n";

    #[test]
    fn parses_a_clean_two_stream_offer() {
        let sdp = parse_sdp(CLEAN).unwrap();
        assert_eq!(sdp.origin_session_id, "1234");
        assert_eq!(sdp.connection, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(sdp.media.len(), 2);
        let first = &sdp.media[0];
        assert_eq!(
            (first.kind.as_str(), first.port, first.protocol.as_str()),
            ("audio", 40000, "RTP/AVP")
        );
        assert_eq!(first.direction, Direction::SendOnly);
        assert_eq!(first.label.as_deref(), Some("1"));
        assert_eq!(first.ptime, Some(20));
        let encodings: Vec<&str> = first.formats.iter().map(|f| f.encoding.as_str()).collect();
        assert_eq!(encodings, ["PCMU", "PCMA", "TELEPHONE-EVENT"]);
        assert_eq!(
            first.telephone_event().unwrap().fmtp.as_deref(),
            Some("0-16")
        );
        let second = &sdp.media[1];
        assert_eq!(second.connection, Some("192.0.2.11".parse().unwrap()));
        assert_eq!(
            second.direction,
            Direction::SendRecv,
            "no attribute anywhere → sendrecv"
        );
        assert!(second.rtcp_mux);
        assert_eq!(
            second.formats[0].encoding, "PCMA",
            "static PT without rtpmap"
        );
    }

    #[test]
    fn accepts_lf_trailing_blanks_and_missing_s_and_t() {
        let sdp = "v=0 \no=- 7 7 IN IP4 10.0.0.1  \nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 0\t\na=sendonly \n";
        let parsed = parse_sdp(sdp).unwrap();
        assert_eq!(parsed.media.len(), 1);
        assert_eq!(parsed.media[0].direction, Direction::SendOnly);
    }

    #[test]
    fn accepts_odd_attributes_and_large_numeric_labels() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=ptime:20\r\nm=audio 5000 RTP/AVP 0 8\r\na=direction:both\r\na=label:16777227\r\na=ptime:30.0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc\r\na=sendonly\r\nm=audio 5002 RTP/AVP 0\r\na=label:a_leg\r\n";
        let parsed = parse_sdp(sdp).unwrap();
        assert_eq!(parsed.media[0].label.as_deref(), Some("16777227"));
        assert_eq!(parsed.media[0].ptime, Some(30));
        assert_eq!(
            parsed.media[1].ptime,
            Some(20),
            "session-level ptime applies"
        );
        assert_eq!(parsed.media[1].label.as_deref(), Some("a_leg"));
    }

    #[test]
    fn hold_by_zero_address_and_by_inactive() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=sendonly\r\nm=audio 5002 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\na=inactive\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\n";
        let parsed = parse_sdp(sdp).unwrap();
        assert_eq!(parsed.media[0].connection, Some("0.0.0.0".parse().unwrap()));
        assert!(parsed.media[0].is_on_hold());
        assert!(parsed.media[1].is_on_hold());
        assert!(!parsed.media[2].is_on_hold());
    }

    #[test]
    fn session_direction_applies_to_media_without_one() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=sendonly\r\nm=audio 5000 RTP/AVP 0\r\nm=audio 5002 RTP/AVP 0\r\na=inactive\r\n";
        let parsed = parse_sdp(sdp).unwrap();
        assert_eq!(parsed.media[0].direction, Direction::SendOnly);
        assert_eq!(parsed.media[1].direction, Direction::Inactive);
    }

    #[test]
    fn unknown_protocol_keeps_the_m_line() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP/TCP 0\r\nm=audio 5002 RTP/AVP 8\r\n";
        let parsed = parse_sdp(sdp).unwrap();
        assert_eq!(parsed.media.len(), 2);
        assert_eq!(parsed.media[0].protocol, "RTP/AVP/TCP");
        assert_eq!(parsed.media[1].formats[0].encoding, "PCMA");
    }

    #[test]
    fn media_without_any_connection_is_kept_without_address() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n";
        let parsed = parse_sdp(sdp).unwrap();
        assert_eq!(parsed.connection, None);
        assert_eq!(parsed.media[1].connection, None);
        assert!(!parsed.media[1].is_on_hold());
    }

    #[test]
    fn rtpmap_with_channels_and_dynamic_without_rtpmap() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 111 96\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1;stereo=1\r\n";
        let parsed = parse_sdp(sdp).unwrap();
        let opus = &parsed.media[0].formats[0];
        assert_eq!(
            (opus.encoding.as_str(), opus.clock_rate, opus.channels),
            ("OPUS", 48000, 2)
        );
        assert_eq!(opus.fmtp.as_deref(), Some("useinbandfec=1;stereo=1"));
        assert_eq!(parsed.media[0].formats[1].encoding, "");
    }

    #[test]
    fn telephone_event_follows_the_codec_clock() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 111 0 101 110\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=rtpmap:110 telephone-event/48000\r\n";
        let media = &parse_sdp(sdp).unwrap().media[0];
        assert_eq!(
            media
                .telephone_event_for(&media.formats[0])
                .unwrap()
                .payload_type,
            110
        );
        assert_eq!(
            media
                .telephone_event_for(&media.formats[1])
                .unwrap()
                .payload_type,
            101
        );
        let g722 = Format::from_static(9).unwrap();
        assert_eq!(
            media.telephone_event_for(&g722).unwrap().payload_type,
            101,
            "fallback: first"
        );
    }

    #[test]
    fn garbage_is_bad_sdp() {
        for garbage in [
            "",
            "hello world",
            "v=0\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n",
            "\u{0}\u{1}=\u{2}",
        ] {
            let error = parse_sdp(garbage).unwrap_err();
            assert!(
                matches!(error, Error::BadSdp { .. }),
                "{garbage:?}: {error}"
            );
        }
    }

    #[test]
    fn origin_beyond_u64_keeps_its_session_id() {
        let sdp = "v=0\r\no=- 123456789012345678901234567890 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0 200\r\n";
        let parsed = parse_sdp(sdp).unwrap();
        assert_eq!(parsed.origin_session_id, "123456789012345678901234567890");
        let payload_types: Vec<u8> = parsed.media[0]
            .formats
            .iter()
            .map(|f| f.payload_type)
            .collect();
        assert_eq!(payload_types, [0], "payload type 200 is not RTP");
    }

    #[test]
    fn ptime_forms() {
        assert_eq!(parse_ptime("20"), Some(20));
        assert_eq!(parse_ptime(" 30.0"), Some(30));
        assert_eq!(parse_ptime("NaN"), None);
        assert_eq!(parse_ptime("-5"), None);
    }
}
