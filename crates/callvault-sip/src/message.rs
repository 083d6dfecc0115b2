//! SIP messages (RFC 3261 §7): our own types over a hand-written header-level parser.
//!
//! Parsing is two steps. The head step finds the start line, the header fields (unfolding
//! continuation lines, keeping names and order as received) and the body by Content-Length; it
//! knows nothing of header grammars except the handful validated below. The validate step checks
//! what a transaction layer must be able to rely on: a well-formed start line, a parseable top
//! Via, Call-ID, CSeq (number below 2^31, method matching the request), From and To, a sane
//! Max-Forwards and Content-Length. Everything else is kept as text for the TU to read, so an
//! unknown or odd header can never make a message unreadable.

use crate::error::ParseError;
use crate::limits::ECHOED;

/// What the parsers here return: the typed cause of a failure.
type Result<T, E = ParseError> = std::result::Result<T, E>;
use crate::header::{self, Headers, name_addr, same_name, split_list, split_list_raw, unquote};
use crate::via::Via;
use std::fmt;

/// A SIP method. Methods are case-sensitive (RFC 3261 §7.1): `invite` is an extension method.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Info,
    Update,
    Register,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }

    /// Parses a method token (RFC 3261 §25.1 `token`).
    pub fn parse(token: &str) -> Result<Method> {
        if token.is_empty() || !token.bytes().all(is_token_byte) {
            return Err(ParseError::Method);
        }
        Ok(match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "REGISTER" => Method::Register,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_owned()),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// A parsed SIP message.
#[cfg_attr(
    not(feature = "fuzzing"),
    allow(
        unreachable_pub,
        reason = "public only to the fuzz targets, with `fuzzing`"
    )
)]
#[derive(Clone, Debug)]
pub enum Message {
    Request(Request),
    Response(Response),
}

#[cfg_attr(
    not(feature = "fuzzing"),
    allow(
        unreachable_pub,
        reason = "public only to the fuzz targets, with `fuzzing`"
    )
)]
impl Message {
    /// Parses one whole message (a UDP datagram, or one framed off a stream). Bytes beyond
    /// Content-Length are ignored (RFC 3261 §18.3); a Content-Length beyond the bytes is an error.
    pub fn parse(bytes: &[u8]) -> Result<Message> {
        let head = Head::parse(bytes)?;
        match head.start {
            StartLine::Request { method, uri } => {
                Request::validated(method, uri, head.headers, head.body).map(Message::Request)
            }
            StartLine::Response { status, reason } => {
                Response::validated(status, reason, head.headers, head.body).map(Message::Response)
            }
        }
    }
}

enum StartLine {
    Request { method: Method, uri: String },
    Response { status: u16, reason: String },
}

struct Head {
    start: StartLine,
    headers: Headers,
    body: Vec<u8>,
}

/// Skips the CRLFs RFC 3261 §7.5 allows before a start line.
fn skip_leading_newlines(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(bytes.len());
    &bytes[n..]
}

/// Offset of the empty line ending the head and the offset where the body starts.
/// Bare LF line ends are tolerated (some stacks send them).
pub(crate) fn find_head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            if bytes.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// Splits head text into lines and header fields, unfolding continuations.
fn header_lines(head: &str, strict: bool) -> Result<(&str, Headers)> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or("");
    let mut headers = Headers::default();
    let mut current: Option<(String, String)> = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            match current.as_mut() {
                Some((_, value)) => {
                    let more = line.trim();
                    if !more.is_empty() {
                        if !value.is_empty() {
                            value.push(' ');
                        }
                        value.push_str(more);
                    }
                }
                None if strict => return Err(ParseError::ContinuationFirst),
                None => {}
            }
            continue;
        }
        if let Some((name, value)) = current.take() {
            headers.push(name, value);
        }
        match line.split_once(':') {
            Some((name, value)) => {
                let name = name.trim();
                if name.is_empty() || !name.bytes().all(is_token_byte) {
                    if strict {
                        return Err(ParseError::HeaderName);
                    }
                    continue;
                }
                current = Some((name.to_owned(), value.trim().to_owned()));
            }
            None if strict => return Err(ParseError::HeaderWithoutColon),
            None => {}
        }
    }
    if let Some((name, value)) = current.take() {
        headers.push(name, value);
    }
    Ok((start, headers))
}

/// Header fields of a head, skipping lines that do not parse (for framing and salvage).
pub(crate) fn header_lines_lenient(head: &str) -> Headers {
    header_lines(head, false)
        .map(|(_, h)| h)
        .unwrap_or_default()
}

impl Head {
    fn parse(bytes: &[u8]) -> Result<Head> {
        let bytes = skip_leading_newlines(bytes);
        if bytes.is_empty() {
            return Err(ParseError::Empty);
        }
        let (head_end, body_start) = find_head_end(bytes).ok_or(ParseError::NoEndOfHeaders)?;
        let head = String::from_utf8_lossy(&bytes[..head_end]);
        let (start, headers) = header_lines(&head, true)?;
        let start = parse_start_line(start)?;
        let available = &bytes[body_start..];
        let body = match content_length(&headers)? {
            Some(len) if len > available.len() => {
                return Err(ParseError::Truncated);
            }
            Some(len) => available[..len].to_vec(),
            None => available.to_vec(),
        };
        Ok(Head {
            start,
            headers,
            body,
        })
    }
}

/// The declared Content-Length; several fields must agree.
pub(crate) fn content_length(headers: &Headers) -> Result<Option<usize>> {
    let mut found = None;
    for value in headers.get_all("content-length") {
        let len = parse_decimal(value).ok_or(ParseError::ContentLength)?;
        if found.is_some_and(|f| f != len) {
            return Err(ParseError::ConflictingContentLength);
        }
        found = Some(len);
    }
    Ok(found)
}

/// Digits only (leading zeros allowed); `None` on anything else or on overflow.
fn parse_decimal(s: &str) -> Option<usize> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = s.trim_start_matches('0');
    if significant.is_empty() {
        return Some(0);
    }
    significant.parse().ok()
}

fn parse_start_line(line: &str) -> Result<StartLine> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StatusCode);
        }
        let status: u16 = code.parse().map_err(|_| ParseError::StatusCode)?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::StatusOutOfRange);
        }
        return Ok(StartLine::Response {
            status,
            reason: reason.to_owned(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version, single spaces (RFC 4475 lwsstart, trws).
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::RequestLine);
    };
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseError::Version);
    }
    let method = Method::parse(method)?;
    if uri.is_empty()
        || !uri.contains(':')
        || uri
            .bytes()
            .any(|b| b.is_ascii_control() || b == b'<' || b == b'>')
    {
        return Err(ParseError::RequestUri);
    }
    Ok(StartLine::Request {
        method,
        uri: uri.to_owned(),
    })
}

/// `CSeq: 0009 INVITE` → (9, Invite); the number must be below 2^31 (RFC 3261 §8.1.1.5).
fn parse_cseq(value: &str) -> Result<(u32, Method)> {
    let mut parts = value.split_ascii_whitespace();
    let (Some(number), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ParseError::CSeq);
    };
    let number = parse_decimal(number)
        .filter(|n| *n < (1 << 31))
        .ok_or(ParseError::CSeqNumber)?;
    Ok((number as u32, Method::parse(method)?))
}

/// Checks shared by requests and responses; returns the CSeq.
fn validate_common(headers: &Headers) -> Result<(u32, Method)> {
    let top = headers.get("via").ok_or(ParseError::MissingVia)?;
    if top.is_empty() {
        return Err(ParseError::EmptyVia);
    }
    // Every element of every Via field must parse: an empty element (`a,,b`) is malformed too.
    for field in headers.get_all("via") {
        for element in split_list_raw(field) {
            Via::parse(element)?;
        }
    }
    let mut call_ids = headers.get_all("call-id");
    match call_ids.next() {
        Some(id) if !id.is_empty() && !id.contains(char::is_whitespace) => {}
        Some(_) => return Err(ParseError::CallId),
        None => return Err(ParseError::MissingCallId),
    }
    if call_ids.next().is_some() {
        return Err(ParseError::DuplicateCallId);
    }
    for (name, missing) in [
        ("from", ParseError::MissingFrom),
        ("to", ParseError::MissingTo),
    ] {
        let value = headers.get(name).ok_or(missing)?;
        if name_addr(value).uri.is_empty() {
            return Err(ParseError::FromOrTo);
        }
    }
    let cseq = headers.get("cseq").ok_or(ParseError::MissingCSeq)?;
    parse_cseq(cseq)
}

/// Replaces CR and LF so a value handed to us can never inject a header.
fn sanitize(value: String) -> String {
    if value.contains(['\r', '\n']) {
        value.replace(['\r', '\n'], " ")
    } else {
        value
    }
}

fn write_headers(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    for (name, value) in headers.iter() {
        if same_name(name, "content-length") {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

/// A SIP request, received or built by us.
#[derive(Clone, Debug)]
pub struct Request {
    method: Method,
    uri: String,
    headers: Headers,
    body: Vec<u8>,
    cseq: (u32, Method),
}

impl Request {
    fn validated(method: Method, uri: String, headers: Headers, body: Vec<u8>) -> Result<Request> {
        let cseq = validate_common(&headers)?;
        if cseq.1 != method {
            return Err(ParseError::CSeqMethod);
        }
        if let Some(mf) = headers.get("max-forwards")
            && parse_decimal(mf).is_none_or(|n| n > 255)
        {
            return Err(ParseError::MaxForwards);
        }
        Ok(Request {
            method,
            uri,
            headers,
            body,
            cseq,
        })
    }

    /// A request to send: add headers with [`Request::with_header`]. Content-Length is written by
    /// [`Request::to_bytes`].
    pub fn new(method: Method, uri: impl Into<String>) -> Request {
        Request {
            cseq: (0, method.clone()),
            method,
            uri: sanitize(uri.into()),
            headers: Headers::default(),
            body: Vec::new(),
        }
    }

    pub fn method(&self) -> &Method {
        &self.method
    }
    pub fn uri(&self) -> &str {
        &self.uri
    }
    /// The Call-ID ("" only on a request we are building that has none yet).
    pub fn call_id(&self) -> &str {
        self.headers.get("call-id").unwrap_or("")
    }
    pub fn cseq(&self) -> (u32, &Method) {
        (self.cseq.0, &self.cseq.1)
    }
    pub fn from_header(&self) -> &str {
        self.headers.get("from").unwrap_or("")
    }
    pub fn to_header(&self) -> &str {
        self.headers.get("to").unwrap_or("")
    }
    pub fn from_tag(&self) -> Option<&str> {
        header::tag(self.from_header())
    }
    pub fn to_tag(&self) -> Option<&str> {
        header::tag(self.to_header())
    }
    /// The From addr-spec without angle brackets or header parameters.
    pub fn from_uri(&self) -> String {
        name_addr(self.from_header()).uri.to_owned()
    }
    pub fn to_uri(&self) -> String {
        name_addr(self.to_header()).uri.to_owned()
    }
    /// The From display name, unquoted and unescaped.
    pub fn from_display_name(&self) -> Option<String> {
        name_addr(self.from_header()).display.map(unquote)
    }
    /// The first Contact's addr-spec (with or without angle brackets on the wire).
    pub fn contact_uri(&self) -> Option<String> {
        let value = self.headers.get("contact")?;
        let first = split_list(value).into_iter().next()?;
        let uri = name_addr(first).uri;
        (!uri.is_empty() && uri != "*").then(|| uri.to_owned())
    }
    /// The first field of that name (case-insensitive, compact forms resolved): one header line's
    /// whole value, so `Require: siprec, timer` comes back as `siprec, timer`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
    /// Every field of that name, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.get_all(name)
    }
    /// All header fields in order, names spelled as received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter()
    }
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get("content-type")
    }
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// A response with Via (all), From, To, Call-ID and CSeq copied and the default reason phrase.
    pub fn response(&self, status: u16) -> Response {
        let mut headers = Headers::default();
        for (name, value) in self.headers.iter() {
            if ECHOED.iter().any(|n| same_name(name, n)) {
                headers.push(name, value);
            }
        }
        Response {
            status,
            reason: default_reason(status).to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    /// A response for the sender alone: like [`Request::response`] but with only the top Via
    /// (the one that routes it back to whoever sent the request). For refusals of requests whose
    /// Via list is itself what was refused: echoing it would make the refusal as large.
    pub(crate) fn response_to_sender(&self, status: u16) -> Response {
        let mut response = self.response(status);
        let mut first = true;
        response.headers.retain(|name, value| {
            if !same_name(name, "via") {
                return true;
            }
            if std::mem::take(&mut first) {
                if let Some(top) = split_list(value).first() {
                    *value = (*top).to_owned();
                }
                return true;
            }
            false
        });
        response
    }

    /// Appends a header field (CR/LF in the value are replaced by spaces).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        let value = sanitize(value.into());
        if same_name(name, "cseq")
            && let Ok(cseq) = parse_cseq(&value)
        {
            self.cseq = cseq;
        }
        self.headers.push(name, value);
        self
    }
    /// Removes every field of that name.
    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.remove(name);
        self
    }
    /// Sets the body and its Content-Type (Content-Length is always computed by `to_bytes`).
    pub fn with_body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers
            .set("Content-Type", sanitize(content_type.to_owned()));
        self.body = body.into();
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(format!("{} {} SIP/2.0\r\n", self.method, self.uri).as_bytes());
        write_headers(&mut out, &self.headers, &self.body);
        out
    }

    pub(crate) fn top_via(&self) -> Option<Via> {
        let first = split_list(self.headers.get("via")?).into_iter().next()?;
        Via::parse(first).ok()
    }

    /// Replaces the first element of the top Via field.
    pub(crate) fn set_top_via(&mut self, via: &Via) {
        if let Some(value) = self.headers.first_mut("via") {
            let rest: Vec<&str> = split_list(value).into_iter().skip(1).collect();
            let mut new = via.to_wire();
            for r in rest {
                new.push_str(", ");
                new.push_str(r);
            }
            *value = new;
        }
    }

    pub(crate) fn prepend_header(&mut self, name: &str, value: String) {
        let mut headers = Headers::default();
        headers.push(name, value);
        for (n, v) in self.headers.iter() {
            headers.push(n, v);
        }
        self.headers = headers;
    }
}

/// A SIP response, received or built by us.
#[derive(Clone, Debug)]
pub struct Response {
    status: u16,
    reason: String,
    headers: Headers,
    body: Vec<u8>,
}

impl Response {
    fn validated(status: u16, reason: String, headers: Headers, body: Vec<u8>) -> Result<Response> {
        validate_common(&headers)?;
        Ok(Response {
            status,
            reason,
            headers,
            body,
        })
    }

    /// A response with no headers; normally use [`Request::response`].
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: default_reason(status).to_owned(),
            headers: Headers::default(),
            body: Vec::new(),
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }
    pub fn reason(&self) -> &str {
        &self.reason
    }
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }
    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = sanitize(reason.to_owned());
        self
    }
    /// Adds `;tag=` to To unless it already has a tag (a retransmission or a re-INVITE).
    pub fn with_to_tag(mut self, tag: &str) -> Self {
        if let Some(to) = self.headers.first_mut("to")
            && header::tag(to).is_none()
        {
            to.push_str(";tag=");
            to.push_str(&sanitize(tag.to_owned()));
        }
        self
    }
    /// Appends a header field (CR/LF in the value are replaced by spaces).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push(name, sanitize(value.into()));
        self
    }
    pub fn with_body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers
            .set("Content-Type", sanitize(content_type.to_owned()));
        self.body = body.into();
        self
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(format!("SIP/2.0 {} {}\r\n", self.status, self.reason).as_bytes());
        write_headers(&mut out, &self.headers, &self.body);
        out
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.get_all(name)
    }
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter()
    }
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get("content-type")
    }
    pub fn call_id(&self) -> &str {
        self.headers.get("call-id").unwrap_or("")
    }
    /// The CSeq, or `None` on a response we built without one.
    pub fn cseq(&self) -> Option<(u32, Method)> {
        self.headers.get("cseq").and_then(|v| parse_cseq(v).ok())
    }
    pub fn from_tag(&self) -> Option<&str> {
        header::tag(self.headers.get("from")?)
    }
    pub fn to_tag(&self) -> Option<&str> {
        header::tag(self.headers.get("to")?)
    }

    pub(crate) fn top_via(&self) -> Option<Via> {
        let first = split_list(self.headers.get("via")?).into_iter().next()?;
        Via::parse(first).ok()
    }

    /// The top Via read leniently (parameters that do not parse are skipped), for routing the
    /// 400 to a request whose Via is partly broken.
    pub(crate) fn top_via_sent_by(&self) -> Option<Via> {
        let first = split_list(self.headers.get("via")?).into_iter().next()?;
        Via::parse_sent_by(first).ok()
    }

    /// This response reduced to what routes it (Via, From, To, Call-ID, CSeq) with another
    /// status and no body: what goes out when the whole one may not (the UDP size bound).
    pub(crate) fn bare(&self, status: u16, reason: &str) -> Response {
        let mut headers = Headers::default();
        for (name, value) in self.headers.iter() {
            if ECHOED.iter().any(|n| same_name(name, n)) {
                headers.push(name, value);
            }
        }
        Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    /// A response built from headers salvaged from a request that did not parse.
    pub(crate) fn from_salvage(status: u16, reason: &str, headers: Headers) -> Response {
        Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        }
    }
}

/// What can be read from a request that failed to parse, to answer it 400 (RFC 3261 §21.4.1):
/// the headers a response must echo. `None` for responses or anything without a usable Via.
pub(crate) fn salvage_request(bytes: &[u8]) -> Option<Headers> {
    let bytes = skip_leading_newlines(bytes);
    let head_end = find_head_end(bytes).map_or(bytes.len(), |(end, _)| end);
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let (start, headers) = header_lines(&head, false).ok()?;
    // Never answer something that looks like a response, nor a line that is not a request line.
    if start.starts_with("SIP/") || !start.contains(" sip") && !start.contains(" SIP") {
        return None;
    }
    let via = headers.get("via")?;
    Via::parse_sent_by(split_list(via).into_iter().next()?).ok()?;
    let mut echoed = Headers::default();
    for (name, value) in headers.iter() {
        if ["via", "from", "to", "call-id", "cseq"]
            .iter()
            .any(|n| same_name(name, n))
        {
            echoed.push(name, value);
        }
    }
    Some(echoed)
}

/// The RFC 3261 §21 reason phrase for a status code.
pub fn default_reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        s if s < 200 => "Provisional",
        s if s < 300 => "Success",
        s if s < 400 => "Redirection",
        s if s < 500 => "Client Error",
        s if s < 600 => "Server Error",
        _ => "Global Failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rejection;
    use std::path::PathBuf;

    fn fixture_dir(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/fixtures")
            .join(name)
    }

    /// Every `<name>.sip` with its `<name>.expected`: `request METHOD CALL-ID [contact=..]
    /// [display=..]`, `response STATUS CALL-ID`, or `reject 400`.
    pub(crate) fn fixtures(dir: &str) -> Vec<(String, Vec<u8>, String)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(fixture_dir(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sip") {
                let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                out.push((
                    name,
                    std::fs::read(&path).unwrap(),
                    expected.trim_end().to_owned(),
                ));
            }
        }
        out.sort();
        assert!(!out.is_empty());
        out
    }

    /// The bytes after the blank line, as the sender wrote them.
    fn raw_body(bytes: &[u8]) -> &[u8] {
        &bytes[find_head_end(bytes).unwrap().1..]
    }

    fn check_fixture(name: &str, bytes: &[u8], expected: &str) {
        let mut words = expected.splitn(3, ' ');
        let kind = words.next().unwrap();
        let parsed = Message::parse(bytes);
        match (kind, parsed) {
            ("request", Ok(Message::Request(req))) => {
                let method = words.next().unwrap();
                let rest = words.next().unwrap();
                let (call_id, extra) = rest.split_once(" contact=").unwrap_or((rest, ""));
                assert_eq!(req.method().as_str(), method, "{name}");
                assert_eq!(req.call_id(), call_id, "{name}");
                assert_eq!(req.cseq().1, req.method(), "{name}");
                if !extra.is_empty() {
                    let (contact, display) = extra.split_once(" display=").unwrap_or((extra, ""));
                    assert_eq!(req.contact_uri().as_deref(), Some(contact), "{name}");
                    if !display.is_empty() {
                        assert_eq!(req.from_display_name().as_deref(), Some(display), "{name}");
                    }
                }
                // Bodies (multipart with binary parts included) pass through byte for byte.
                if name != "dblreq" {
                    assert_eq!(req.body(), raw_body(bytes), "{name}");
                }
            }
            ("response", Ok(Message::Response(resp))) => {
                assert_eq!(resp.status().to_string(), words.next().unwrap(), "{name}");
                assert_eq!(resp.call_id(), words.next().unwrap(), "{name}");
            }
            ("reject", Err(cause)) => {
                let status = words.next().unwrap();
                assert_eq!(
                    Rejection::Malformed(cause).status().to_string(),
                    status,
                    "{name}: {cause}"
                );
            }
            (kind, other) => panic!("{name}: expected {kind}, got {other:?}"),
        }
    }

    #[test]
    fn rfc4475_torture_messages_match_their_expected_results() {
        for (name, bytes, expected) in fixtures("rfc4475") {
            check_fixture(&name, &bytes, &expected);
        }
    }

    #[test]
    fn interop_dialects_match_their_expected_results() {
        for (name, bytes, expected) in fixtures("interop") {
            check_fixture(&name, &bytes, &expected);
        }
    }

    fn wsinv() -> Request {
        let bytes = std::fs::read(fixture_dir("rfc4475").join("wsinv.sip")).unwrap();
        match Message::parse(&bytes).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("wsinv is a request"),
        }
    }

    #[test]
    fn wsinv_folding_and_lws_are_understood() {
        let req = wsinv();
        assert_eq!(req.uri(), "sip:vivekg@chair-dnrc.example.com;unknownparam");
        assert_eq!(req.to_tag(), Some("1918181833n"));
        assert_eq!(req.from_tag(), Some("98asjd8"));
        assert_eq!(
            req.from_display_name().as_deref(),
            Some(r#"J Rosenberg \""#)
        );
        assert_eq!(req.from_uri(), "sip:jdrosen@example.com");
        assert_eq!(req.to_uri(), "sip:vivekg@chair-dnrc.example.com");
        assert_eq!(req.cseq(), (9, &Method::Invite));
        assert_eq!(req.header("subject"), Some(""));
        assert_eq!(
            req.header("NEWFANGLEDHEADER"),
            Some("newfangled value continued newfangled value")
        );
        assert_eq!(req.header_values("via").count(), 2);
        assert_eq!(req.top_via().unwrap().branch(), Some("390skdjuw"));
        assert_eq!(req.content_type(), Some("application/sdp"));
        assert_eq!(
            req.headers().next(),
            Some((
                "TO",
                "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"
            ))
        );
    }

    #[test]
    fn response_copies_the_transaction_headers() {
        let req = wsinv();
        let resp = req
            .response(200)
            .with_to_tag("ignored-because-to-has-a-tag")
            .with_header("Contact", "<sip:srs@192.0.2.9>")
            .with_body("application/sdp", b"v=0\r\n".to_vec());
        assert_eq!(resp.reason(), "OK");
        assert_eq!(resp.to_tag(), Some("1918181833n"));
        let bytes = resp.to_bytes();
        let Message::Response(back) = Message::parse(&bytes).unwrap() else {
            panic!("a response")
        };
        assert_eq!(back.status(), 200);
        assert_eq!(back.call_id(), "wsinv.ndaksdj@192.0.2.1");
        assert_eq!(back.cseq(), Some((9, Method::Invite)));
        assert_eq!(back.header_values("v").count(), 2);
        assert_eq!(back.header("content-length"), Some("5"));
        assert_eq!(back.body(), b"v=0\r\n");
        assert_eq!(back.header("Contact"), Some("<sip:srs@192.0.2.9>"));
        assert_eq!(back.from_tag(), Some("98asjd8"));
    }

    #[test]
    fn to_tag_is_added_once() {
        let bytes = std::fs::read(fixture_dir("rfc4475").join("lwsdisp.sip")).unwrap();
        let Message::Request(req) = Message::parse(&bytes).unwrap() else {
            panic!("a request")
        };
        let resp = req.response(486).with_to_tag("abc").with_to_tag("def");
        assert_eq!(resp.to_tag(), Some("abc"));
        assert_eq!(resp.reason(), "Busy Here");
        assert_eq!(resp.with_reason("Go\r\nAway").reason(), "Go  Away");
    }

    #[test]
    fn built_request_round_trips_with_a_correct_content_length() {
        let req = Request::new(Method::Bye, "sip:src@10.0.0.1:5060")
            .with_header("Via", "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKx")
            .with_header("From", "<sip:srs@10.0.0.5>;tag=a")
            .with_header("To", "<sip:src@10.0.0.1>;tag=b")
            .with_header("Call-ID", "c1")
            .with_header("CSeq", "7 BYE")
            .with_header("Content-Length", "999")
            .with_header("X-Inject", "a\r\nVia: evil");
        assert_eq!(req.cseq(), (7, &Method::Bye));
        let Message::Request(back) = Message::parse(&req.to_bytes()).unwrap() else {
            panic!("a request")
        };
        assert_eq!(back.method(), &Method::Bye);
        assert_eq!(back.header("content-length"), Some("0"));
        assert_eq!(back.header_values("via").count(), 1);
        assert_eq!(back.header("x-inject"), Some("a  Via: evil"));
    }

    #[test]
    fn extra_datagram_bytes_are_ignored_and_short_ones_rejected() {
        let good = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 2\r\n\r\nabcdef";
        let Message::Request(req) = Message::parse(good).unwrap() else {
            panic!("a request")
        };
        assert_eq!(req.body(), b"ab");
        let short = String::from_utf8_lossy(good).replace("Length: 2", "Length: 20");
        assert!(Message::parse(short.as_bytes()).is_err());
        let bare_lf = String::from_utf8_lossy(good).replace("\r\n", "\n");
        assert!(Message::parse(bare_lf.as_bytes()).is_ok());
        let mismatch = String::from_utf8_lossy(good).replace("1 OPTIONS", "1 INVITE");
        assert!(Message::parse(mismatch.as_bytes()).is_err());
        let lowercase_method = String::from_utf8_lossy(good).replace("OPTIONS sip", "options sip");
        assert!(Message::parse(lowercase_method.as_bytes()).is_err());
    }

    /// Mutations of every fixture: parsing never panics, and whatever is accepted as a request
    /// is written back by `to_bytes` in a form that parses again to the same essentials.
    #[test]
    fn accepted_requests_round_trip_under_mutation() {
        let mut state = 7u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 33) as usize
        };
        for dir in ["rfc4475", "interop"] {
            for (name, bytes, _) in fixtures(dir) {
                for _ in 0..300 {
                    let mut m = bytes.clone();
                    for _ in 0..1 + next() % 3 {
                        let i = next() % m.len();
                        m[i] = b" \r\n;:,<>\"\\\0"[next() % 11];
                    }
                    if let Ok(Message::Request(req)) = Message::parse(&m) {
                        let again = match Message::parse(&req.to_bytes()) {
                            Ok(Message::Request(again)) => again,
                            other => {
                                panic!("{name}: {other:?} from {:?}", String::from_utf8_lossy(&m))
                            }
                        };
                        assert_eq!(again.call_id(), req.call_id(), "{name}");
                        assert_eq!(again.cseq(), req.cseq(), "{name}");
                        assert_eq!(again.body(), req.body(), "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn salvage_finds_the_echo_headers_of_a_broken_request() {
        let bytes = std::fs::read(fixture_dir("rfc4475").join("insuf.sip")).unwrap();
        let headers = salvage_request(&bytes).unwrap();
        assert_eq!(headers.get("cseq"), Some("193942 INVITE"));
        assert_eq!(headers.get("call-id"), None);
        let bcast = std::fs::read(fixture_dir("rfc4475").join("bcast.sip")).unwrap();
        assert!(salvage_request(&bcast).is_none());
    }
}
