//! The whole INVITE/UPDATE body: which parts it has, each parsed completely, limits enforced,
//! before any recording state exists.

use crate::error::{Error, Result};
use crate::metadata::{Metadata, parse_metadata};
use crate::multipart;
use crate::sdp::{Sdp, parse_sdp};

/// Bounds on what one offer may ask of us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// m-lines per offer; more is refused with 488.
    pub max_streams: usize,
    /// Bytes of one metadata document; more is refused with 413.
    pub max_metadata_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams: 16,
            max_metadata_bytes: 256 * 1024,
        }
    }
}

/// Everything a SIPREC INVITE, re-INVITE or UPDATE body carried.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RecordingOffer {
    /// `None` for a metadata-only UPDATE (Avaya) or an empty body.
    pub sdp: Option<Sdp>,
    pub metadata: Option<Metadata>,
    /// The metadata document as received (after charset decoding), to be stored verbatim.
    pub raw_metadata: Option<String>,
}

impl RecordingOffer {
    /// The SDP offer, or [`Error::NoSdp`] (488) for a request that must carry one.
    pub fn require_sdp(&self) -> Result<&Sdp> {
        self.sdp.as_ref().ok_or(Error::NoSdp)
    }
}

/// What a body (or part) is, by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sdp,
    Metadata,
    Multipart,
    Other,
}

fn kind(media_type: &str) -> Kind {
    match media_type {
        "application/sdp" => Kind::Sdp,
        "application/rs-metadata+xml" | "application/rs-metadata" => Kind::Metadata,
        other if other.starts_with("multipart/") => Kind::Multipart,
        _ => Kind::Other,
    }
}

/// Parse an INVITE/UPDATE body completely.
///
/// `content_type` is the SIP Content-Type header value, parameters included. A metadata-only
/// body gives `sdp: None`; an empty body gives neither. A body without Content-Type is taken as
/// SDP when it starts with `v=`, as multipart when it starts with a delimiter line.
pub fn parse_body(
    content_type: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<RecordingOffer> {
    let mut offer = RecordingOffer {
        sdp: None,
        metadata: None,
        raw_metadata: None,
    };
    if body.trim_ascii().is_empty() {
        return Ok(offer);
    }
    let (media_type, content_type) = match content_type.map(str::trim).filter(|c| !c.is_empty()) {
        Some(content_type) => (multipart::media_type(content_type), content_type),
        None if body.trim_ascii_start().starts_with(b"v=") => ("application/sdp".to_owned(), ""),
        None if multipart::sniff_boundary(body).is_some() => ("multipart/mixed".to_owned(), ""),
        None => return Err(Error::MissingContentType),
    };
    match kind(&media_type) {
        Kind::Sdp => offer.sdp = Some(sdp_part(body, limits)?),
        Kind::Metadata => metadata_part(body, limits, &mut offer)?,
        Kind::Multipart => {
            collect_multipart(content_type, body, limits, &mut offer, 0)?;
            if offer.sdp.is_none() && offer.metadata.is_none() {
                return Err(Error::NoSdp);
            }
        }
        Kind::Other => {
            return Err(Error::UnsupportedContentType {
                content_type: content_type.to_owned(),
            });
        }
    }
    Ok(offer)
}

/// Nested multiparts (a `multipart/alternative` inside the `multipart/mixed`) are searched too,
/// to a small depth so a hostile body cannot recurse without bound.
fn collect_multipart(
    content_type: &str,
    body: &[u8],
    limits: &Limits,
    offer: &mut RecordingOffer,
    depth: usize,
) -> Result<()> {
    const MAX_DEPTH: usize = 3;
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let boundary = multipart::boundary(content_type)
        .or_else(|| multipart::sniff_boundary(body))
        .ok_or_else(|| Error::BadMultipart {
            reason: "no boundary parameter and none found in the body".into(),
        })?;
    for part in multipart::split(body, boundary)? {
        // An empty part says nothing (some SRCs send an empty SDP part in an UPDATE).
        if part.body.trim_ascii().is_empty() {
            continue;
        }
        let part_kind = match part.media_type.as_deref() {
            Some(media_type) => kind(media_type),
            None => sniff(part.body),
        };
        match part_kind {
            Kind::Sdp if offer.sdp.is_none() => offer.sdp = Some(sdp_part(part.body, limits)?),
            Kind::Metadata if offer.metadata.is_none() => metadata_part(part.body, limits, offer)?,
            Kind::Multipart => collect_multipart(
                part.content_type.unwrap_or_default(),
                part.body,
                limits,
                offer,
                depth + 1,
            )?,
            Kind::Sdp | Kind::Metadata => {
                tracing::debug!(media_type = ?part.media_type, "second part of the same type ignored");
            }
            // Cisco `application/gtd`, ISUP, anything else: not ours to read.
            Kind::Other => {}
        }
    }
    Ok(())
}

/// The kind of an untyped part, by its first bytes (RFC 2046 would call it text/plain, but an
/// SRC that forgot the header still meant SDP or metadata).
fn sniff(body: &[u8]) -> Kind {
    let start = body.trim_ascii_start();
    let start = start.strip_prefix("\u{feff}".as_bytes()).unwrap_or(start);
    if start.starts_with(b"v=") {
        Kind::Sdp
    } else if start.starts_with(b"<?xml") || start.starts_with(b"<recording") {
        Kind::Metadata
    } else {
        Kind::Other
    }
}

fn sdp_part(body: &[u8], limits: &Limits) -> Result<Sdp> {
    let text = std::str::from_utf8(body).map_err(|_| Error::BadSdp {
        reason: "SDP is not UTF-8".into(),
    })?;
    let sdp = parse_sdp(text)?;
    if sdp.media.len() > limits.max_streams {
        return Err(Error::TooManyStreams {
            offered: sdp.media.len(),
            max: limits.max_streams,
        });
    }
    Ok(sdp)
}

fn metadata_part(body: &[u8], limits: &Limits, offer: &mut RecordingOffer) -> Result<()> {
    if body.len() > limits.max_metadata_bytes {
        return Err(Error::MetadataTooLarge {
            size: body.len(),
            max: limits.max_metadata_bytes,
        });
    }
    let (text, latin1) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        // Some SRCs declare ISO-8859-1 and send names with accents in it; every byte is a
        // Latin-1 code point, so the decoding cannot fail.
        Err(_) => (body.iter().map(|&b| char::from(b)).collect(), true),
    };
    let mut metadata = parse_metadata(&text, limits)?;
    if latin1 {
        metadata
            .warnings
            .push("metadata is not UTF-8; decoded as ISO-8859-1".into());
    }
    offer.metadata = Some(metadata);
    offer.raw_metadata = Some(text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=sendonly\r\n";
    const XML: &str = r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode></recording>"#;

    fn multipart(boundary: &str, parts: &[(&str, &str)]) -> Vec<u8> {
        let mut body = String::new();
        for (content_type, content) in parts {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Type: {content_type}\r\n\r\n{content}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        body.into_bytes()
    }

    #[test]
    fn empty_body_gives_nothing() {
        let offer = parse_body(None, b"", &Limits::default()).unwrap();
        assert_eq!(offer.sdp, None);
        assert_eq!(offer.metadata, None);
        assert!(matches!(offer.require_sdp(), Err(Error::NoSdp)));
    }

    #[test]
    fn plain_sdp_with_and_without_content_type() {
        for content_type in [
            Some("application/sdp"),
            Some("Application/SDP; charset=utf-8"),
            None,
        ] {
            let offer = parse_body(content_type, SDP.as_bytes(), &Limits::default()).unwrap();
            assert_eq!(offer.sdp.unwrap().media.len(), 1, "{content_type:?}");
            assert_eq!(offer.metadata, None);
        }
    }

    #[test]
    fn metadata_only_body() {
        for content_type in ["application/rs-metadata", "application/rs-metadata+xml"] {
            let offer = parse_body(Some(content_type), XML.as_bytes(), &Limits::default()).unwrap();
            assert_eq!(offer.sdp, None);
            assert_eq!(
                offer.metadata.unwrap().datamode.as_deref(),
                Some("complete")
            );
            assert_eq!(offer.raw_metadata.as_deref(), Some(XML));
        }
    }

    #[test]
    fn multipart_in_any_order_with_extra_parts() {
        let body = multipart(
            "x",
            &[
                ("application/gtd", "IAM,\r\nPRN,isdn*,,NET5*,"),
                ("application/rs-metadata", XML),
                ("application/sdp", SDP),
            ],
        );
        let offer = parse_body(
            Some("multipart/mixed;boundary=x"),
            &body,
            &Limits::default(),
        )
        .unwrap();
        assert!(offer.sdp.is_some());
        assert!(offer.metadata.is_some());
    }

    #[test]
    fn multipart_boundary_sniffed_when_parameter_missing() {
        let body = multipart("unique-boundary-1", &[("application/sdp", SDP)]);
        let offer = parse_body(Some("multipart/mixed"), &body, &Limits::default()).unwrap();
        assert!(offer.sdp.is_some());
        let offer = parse_body(None, &body, &Limits::default()).unwrap();
        assert!(offer.sdp.is_some());
    }

    #[test]
    fn untyped_and_empty_parts() {
        let body = format!(
            "--x\r\n\r\n{SDP}\r\n--x\r\nContent-Type: application/sdp\r\n\r\n\r\n--x\r\nContent-Disposition: recording-session\r\n\r\n{XML}\r\n--x--"
        );
        let offer = parse_body(
            Some("multipart/mixed;boundary=x"),
            body.as_bytes(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(offer.sdp.unwrap().media.len(), 1);
        assert!(offer.metadata.is_some());
    }

    #[test]
    fn multipart_with_nothing_we_read_is_no_sdp() {
        let body = multipart("x", &[("application/gtd", "IAM,")]);
        let error = parse_body(
            Some("multipart/mixed;boundary=x"),
            &body,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(error, Error::NoSdp));
        assert_eq!(error.sip_status(), 488);
    }

    #[test]
    fn unsupported_and_missing_content_types() {
        let error = parse_body(Some("text/plain"), b"hello", &Limits::default()).unwrap_err();
        assert_eq!(error.sip_status(), 415);
        let error = parse_body(None, b"hello", &Limits::default()).unwrap_err();
        assert!(matches!(error, Error::MissingContentType));
        assert_eq!(error.sip_status(), 400);
    }

    #[test]
    fn too_many_streams_is_488() {
        let mut sdp =
            String::from("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n");
        for i in 0..3 {
            sdp.push_str(&format!("m=audio {} RTP/AVP 0\r\n", 5000 + 2 * i));
        }
        let limits = Limits {
            max_streams: 2,
            ..Limits::default()
        };
        let error = parse_body(Some("application/sdp"), sdp.as_bytes(), &limits).unwrap_err();
        assert!(matches!(
            error,
            Error::TooManyStreams { offered: 3, max: 2 }
        ));
        assert_eq!(error.sip_status(), 488);
    }

    #[test]
    fn metadata_over_the_limit_is_413() {
        let limits = Limits {
            max_metadata_bytes: 64,
            ..Limits::default()
        };
        let big = format!("<recording>{}</recording>", "<x/>".repeat(100));
        let error =
            parse_body(Some("application/rs-metadata+xml"), big.as_bytes(), &limits).unwrap_err();
        assert!(matches!(error, Error::MetadataTooLarge { max: 64, .. }));
        assert_eq!(error.sip_status(), 413);
    }

    #[test]
    fn latin1_metadata_is_decoded_with_a_warning() {
        let mut body = b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participant participant_id='p'><nameID aor='sip:a@b'><name>Jos".to_vec();
        body.push(0xE9);
        body.extend_from_slice(b"</name></nameID></participant></recording>");
        let offer = parse_body(
            Some("application/rs-metadata+xml"),
            &body,
            &Limits::default(),
        )
        .unwrap();
        let metadata = offer.metadata.unwrap();
        assert_eq!(metadata.participants[0].name.as_deref(), Some("José"));
        assert_eq!(metadata.warnings.len(), 1);
    }

    #[test]
    fn bad_sdp_inside_multipart_is_488() {
        let body = multipart(
            "x",
            &[
                ("application/sdp", "garbage"),
                ("application/rs-metadata+xml", XML),
            ],
        );
        let error = parse_body(
            Some("multipart/mixed; boundary=\"x\""),
            &body,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(error, Error::BadSdp { .. }));
    }
}
