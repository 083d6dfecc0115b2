//! The SIP side of a recording client, as text: the requests a SIPREC client sends (a multipart
//! INVITE with SDP and RFC 7865 metadata, ACK, BYE) and a reading of the responses it gets.
//!
//! Why not the `callvault-sip` crate: its parser and dialogs serve the server side (UAS) and are
//! kept internal; a client of three requests needs only the status, a few headers and the SDP
//! answer, so it reads those itself (and is tested below on what the server sends).

use std::net::{IpAddr, SocketAddr};

/// What one call says about itself in every request.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub from_tag: String,
    /// The server's tag, once answered.
    pub to_tag: Option<String>,
    /// `sip:` or `sip:…;transport=tcp` target: the server's address.
    pub request_uri: String,
    pub local: SocketAddr,
    pub transport: &'static str,
}

/// One stream of the offer.
#[derive(Debug, Clone)]
pub struct Stream {
    pub label: String,
    pub participant: String,
    pub aor: String,
    pub name: String,
    /// Our RTP port (we only send, but the offer names where we are).
    pub port: u16,
}

pub const BOUNDARY: &str = "callvault-test-call";
pub const TELEPHONE_EVENT_PT: u8 = 101;

impl Dialog {
    fn header_lines(&self, method: &str, cseq: u32, branch: &str) -> String {
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|tag| format!(";tag={tag}"))
            .unwrap_or_default();
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:test-call@{local_ip}>;tag={from_tag}\r\n\
             To: <sip:callvault@{server}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             User-Agent: callvault-test-call/{version}\r\n",
            uri = self.request_uri,
            transport = self.transport.to_ascii_uppercase(),
            local = self.local,
            local_ip = self.local.ip(),
            from_tag = self.from_tag,
            server = self
                .request_uri
                .trim_start_matches("sip:")
                .split(';')
                .next()
                .unwrap_or(""),
            call_id = self.call_id,
            version = env!("CARGO_PKG_VERSION"),
        )
    }

    /// The recording INVITE: `multipart/mixed` with the SDP offer and the metadata.
    pub fn invite(&self, branch: &str, sdp: &str, metadata: &str) -> Vec<u8> {
        let body = format!(
            "--{BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n\
             --{BOUNDARY}\r\nContent-Type: application/rs-metadata+xml\r\n\
             Content-Disposition: recording-session\r\n\r\n{metadata}\r\n--{BOUNDARY}--\r\n"
        );
        let mut head = self.header_lines("INVITE", 1, branch);
        head.push_str(&format!(
            "Contact: <sip:test-call@{};transport={}>;+sip.src\r\n\
             Require: siprec\r\nAccept: application/sdp, application/rs-metadata+xml\r\n\
             Content-Type: multipart/mixed;boundary={BOUNDARY}\r\n\
             Content-Length: {}\r\n\r\n",
            self.local,
            self.transport,
            body.len()
        ));
        head.push_str(&body);
        head.into_bytes()
    }

    /// ACK of a 2xx (its own transaction) or of a final error (`branch` of the INVITE).
    pub fn ack(&self, branch: &str) -> Vec<u8> {
        let mut head = self.header_lines("ACK", 1, branch);
        head.push_str("Content-Length: 0\r\n\r\n");
        head.into_bytes()
    }

    pub fn bye(&self, branch: &str) -> Vec<u8> {
        let mut head = self.header_lines("BYE", 2, branch);
        head.push_str(
            "Reason: Q.850;cause=16;text=\"test call done\"\r\nContent-Length: 0\r\n\r\n",
        );
        head.into_bytes()
    }
}

/// The SDP offer: one `sendonly` PCMU m-line per stream, with telephone-event.
pub fn offer(ip: IpAddr, streams: &[Stream]) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut sdp = format!(
        "v=0\r\no=test-call 1 1 IN {family} {ip}\r\ns=SIPREC test call\r\nc=IN {family} {ip}\r\nt=0 0\r\n"
    );
    for stream in streams {
        sdp.push_str(&format!(
            "m=audio {port} RTP/AVP 0 {te}\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n\
             a=ptime:20\r\na=label:{label}\r\na=sendonly\r\n",
            port = stream.port,
            te = TELEPHONE_EVENT_PT,
            label = stream.label
        ));
    }
    sdp
}

/// RFC 7865 metadata: one session, the participants, their streams, who sends which.
pub fn metadata(session_id: &str, call_id: &str, now_rfc3339: &str, streams: &[Stream]) -> String {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">\r\n\
         <datamode>complete</datamode>\r\n\
         <session session_id=\"{session_id}\"><sipSessionID>{call_id}</sipSessionID>\
         <start-time>{now_rfc3339}</start-time></session>\r\n"
    );
    for s in streams {
        xml.push_str(&format!(
            "<participant participant_id=\"{p}\"><nameID aor=\"{aor}\"><name xml:lang=\"en\">{name}</name></nameID></participant>\r\n",
            p = s.participant,
            aor = s.aor,
            name = s.name
        ));
    }
    for s in streams {
        xml.push_str(&format!(
            "<stream stream_id=\"st{l}\" session_id=\"{session_id}\"><label>{l}</label></stream>\r\n",
            l = s.label
        ));
    }
    xml.push_str(&format!(
        "<sessionrecordingassoc session_id=\"{session_id}\"><associate-time>{now_rfc3339}</associate-time></sessionrecordingassoc>\r\n"
    ));
    for s in streams {
        xml.push_str(&format!(
            "<participantstreamassoc participant_id=\"{p}\"><send>st{l}</send></participantstreamassoc>\r\n",
            p = s.participant,
            l = s.label
        ));
    }
    xml.push_str("</recording>\r\n");
    xml
}

/// A SIP message as this client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `Some(status)` for a response; `None` for a request.
    pub status: Option<u16>,
    /// The reason phrase of a response, or the method of a request.
    pub first: String,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The long names of the compact header forms (RFC 3261 §7.3.3) this client reads.
fn long_name(name: &str) -> &str {
    match name {
        "i" => "call-id",
        "t" => "to",
        "f" => "from",
        "l" => "content-length",
        "c" => "content-type",
        "v" => "via",
        "m" => "contact",
        _ => name,
    }
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The method of `CSeq`.
    pub fn cseq_method(&self) -> Option<&str> {
        self.header("cseq")?.split_whitespace().nth(1)
    }

    /// The `tag` parameter of `To`.
    pub fn to_tag(&self) -> Option<String> {
        let to = self.header("to")?;
        to.split(';').skip(1).find_map(|param| {
            let (name, value) = param.trim().split_once('=')?;
            name.eq_ignore_ascii_case("tag")
                .then(|| value.trim().to_owned())
        })
    }
}

/// Our answer to a request the server sent in the dialog (its BYE): the status with the
/// request's Via, From, To, Call-ID and CSeq.
pub fn response_to(request: &Message, status: u16, reason: &str) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    for (name, value) in &request.headers {
        if matches!(name.as_str(), "via" | "from" | "to" | "call-id" | "cseq") {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// The URI inside a `Contact` (or any name-addr) value.
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// Reads one whole message from the front of `buffer`: `Some((message, length))`, or `None`
/// while it is incomplete. An unreadable head is an error (the stream is out of step).
pub fn take_message(buffer: &[u8]) -> Result<Option<(Message, usize)>, String> {
    // Keep-alive CRLFs between messages (RFC 5626) are skipped.
    let skip = buffer
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    let buffer = &buffer[skip..];
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buffer[..end]).map_err(|_| "a head that is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let first_line = lines.next().unwrap_or("");
    let (status, first) = if let Some(rest) = first_line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code
            .parse()
            .map_err(|_| format!("a status line without a status: {first_line:?}"))?;
        (Some(code), reason.to_owned())
    } else {
        let method = first_line.split(' ').next().unwrap_or("").to_owned();
        if method.is_empty() {
            return Err("an empty first line".to_owned());
        }
        (None, method)
    };
    let mut headers = Vec::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let name = long_name(&name.trim().to_ascii_lowercase()).to_owned();
            headers.push((name, value.trim().to_owned()));
        }
    }
    let mut message = Message {
        status,
        first,
        headers,
        body: Vec::new(),
    };
    let length: usize = match message.header("content-length") {
        Some(value) => value
            .parse()
            .map_err(|_| format!("Content-Length {value:?}"))?,
        None => 0,
    };
    let start = end + 4;
    if buffer.len() < start + length {
        return Ok(None);
    }
    message.body = buffer[start..start + length].to_vec();
    Ok(Some((message, skip + start + length)))
}

/// Where the answer wants each stream's RTP: `None` for a declined m-line (port 0).
pub fn answered_media(sdp: &str) -> Vec<Option<SocketAddr>> {
    let connection = |line: &str| -> Option<IpAddr> {
        line.strip_prefix("c=IN IP4 ")
            .or_else(|| line.strip_prefix("c=IN IP6 "))?
            .split('/')
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let mut session_ip = None;
    let mut media: Vec<(u16, Option<IpAddr>)> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            let port = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.split('/').next()?.parse().ok())
                .unwrap_or(0);
            media.push((port, None));
        } else if let Some(ip) = connection(line) {
            match media.last_mut() {
                Some((_, slot)) => *slot = Some(ip),
                None => session_ip = Some(ip),
            }
        }
    }
    media
        .into_iter()
        .map(|(port, ip)| {
            let ip = ip.or(session_ip)?;
            (port != 0).then(|| SocketAddr::new(ip, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_read_whole_with_its_headers_and_body() {
        let bytes = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP x\r\nTo: <sip:a@b>;tag=abc\r\nCSeq: 1 INVITE\r\nX-Callvault-Recording-Id: 0193\r\nl: 4\r\n\r\nv=0\r\nSIP/2.0 100";
        let (message, used) = take_message(bytes).unwrap().unwrap();
        assert_eq!(message.status, Some(200));
        assert_eq!(message.to_tag().as_deref(), Some("abc"));
        assert_eq!(message.cseq_method(), Some("INVITE"));
        assert_eq!(message.header("x-callvault-recording-id"), Some("0193"));
        assert_eq!(message.body, b"v=0\r");
        assert_eq!(&bytes[used..], b"\nSIP/2.0 100");
        assert_eq!(
            take_message(b"SIP/2.0 200 OK\r\nl: 10\r\n\r\nabc").unwrap(),
            None
        );
        assert!(take_message(b"SIP/2.0 OK\r\n\r\n").is_err());
    }

    #[test]
    fn the_answer_gives_each_stream_its_address_and_declines_port_zero() {
        let sdp = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 40000 RTP/AVP 0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 40004 RTP/AVP 0\r\nc=IN IP4 192.0.2.2\r\n";
        assert_eq!(
            answered_media(sdp),
            [
                Some("192.0.2.1:40000".parse().unwrap()),
                None,
                Some("192.0.2.2:40004".parse().unwrap())
            ]
        );
    }

    #[test]
    fn the_invite_is_a_siprec_offer() {
        let dialog = Dialog {
            call_id: "c1@test".into(),
            from_tag: "f1".into(),
            to_tag: None,
            request_uri: "sip:callvault@127.0.0.1:5060".into(),
            local: "127.0.0.1:5099".parse().unwrap(),
            transport: "udp",
        };
        let streams = [Stream {
            label: "1".into(),
            participant: "p1".into(),
            aor: "sip:alice@example.com".into(),
            name: "Alice".into(),
            port: 30000,
        }];
        let invite = dialog.invite(
            "z9hG4bK1",
            &offer("127.0.0.1".parse().unwrap(), &streams),
            &metadata("s1", "c1@test", "2026-12-03T00:00:00Z", &streams),
        );
        let (message, used) = take_message(&invite).unwrap().unwrap();
        assert_eq!(used, invite.len(), "Content-Length counts the whole body");
        assert_eq!(message.first, "INVITE");
        assert_eq!(message.header("require"), Some("siprec"));
        let body = String::from_utf8(message.body).unwrap();
        assert!(body.contains("m=audio 30000 RTP/AVP 0 101\r\n"), "{body}");
        assert!(body.contains("<participantstreamassoc participant_id=\"p1\"><send>st1</send>"));
    }
}
