//! The crate's one error type, the typed causes of a malformed message, and the one place that
//! maps every reason the endpoint refuses a request on its own to the status it answers.

use std::fmt;

/// Everything that can go wrong in this crate.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a SIP message we accept; the cause says which rule they break.
    #[error("malformed SIP message: {0}")]
    Parse(#[from] ParseError),
    /// A message (or a message still being framed on a stream) is larger than the configured limit.
    #[error("SIP message of {size} bytes exceeds the limit of {max}")]
    TooLarge { size: usize, max: usize },
    /// A message on a stream transport has no Content-Length, so its end cannot be found.
    #[error("SIP message on a stream transport has no Content-Length")]
    MissingContentLength,
    /// The body of an INFO request with a DTMF content type (`application/dtmf-relay`,
    /// `application/dtmf`) is malformed; the TU answers 400. `reason` is safe as a reason phrase.
    #[error("malformed DTMF INFO body: {reason}")]
    DtmfInfo { reason: &'static str },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which rule of the message grammar (RFC 3261 §7, §20, §25) a message breaks: one cause per
/// check the parser makes, so behaviour is decided by type, never by comparing text. Each cause
/// has a fixed phrase (no outside input in it), used as the reason phrase of the answer.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// Nothing but line ends.
    Empty,
    /// The head never ends: no empty line after the header fields.
    NoEndOfHeaders,
    /// A continuation line (leading whitespace) before the first header field.
    ContinuationFirst,
    /// A header name that is empty or not a token.
    HeaderName,
    /// A header line without a colon.
    HeaderWithoutColon,
    /// A Content-Length that is not a decimal number.
    ContentLength,
    /// Several Content-Length fields that disagree (RFC 4475 mcl01).
    ConflictingContentLength,
    /// Content-Length promises more body than the datagram holds (RFC 4475 clerr).
    Truncated,
    /// A status line whose code is not three digits.
    StatusCode,
    /// A status code outside 100..=699.
    StatusOutOfRange,
    /// A request line that is not `Method SP Request-URI SP SIP-Version` (RFC 4475 lwsstart, trws).
    RequestLine,
    /// A SIP version other than 2.0 (RFC 4475 badvers): 505.
    Version,
    /// A method that is not a token.
    Method,
    /// A Request-URI without a scheme, or with controls or angle brackets in it (RFC 4475 ltgtruri).
    RequestUri,
    MissingVia,
    EmptyVia,
    /// A Via whose protocol is not `SIP/2.0`.
    ViaProtocol,
    /// A Via without a sent-by.
    ViaSentByMissing,
    /// A Via sent-by that is not `host[:port]`.
    ViaSentBy,
    /// An empty or malformed Via parameter (RFC 4475 badinv01).
    ViaParameter,
    MissingCallId,
    /// An empty Call-ID or one with whitespace.
    CallId,
    /// More than one Call-ID field (RFC 4475 multi01).
    DuplicateCallId,
    MissingFrom,
    MissingTo,
    /// A From or To without a URI.
    FromOrTo,
    MissingCSeq,
    /// A CSeq that is not `number method`.
    CSeq,
    /// A CSeq number that is not a number below 2^31 (RFC 4475 scalar02).
    CSeqNumber,
    /// A CSeq method other than the request's (RFC 4475 mismatch01).
    CSeqMethod,
    /// A Max-Forwards that is not a number up to 255.
    MaxForwards,
}

impl ParseError {
    /// A fixed phrase for logs and for the reason phrase of the answer.
    pub fn reason(self) -> &'static str {
        match self {
            ParseError::Empty => "empty message",
            ParseError::NoEndOfHeaders => "no empty line after the headers",
            ParseError::ContinuationFirst => "continuation line before any header",
            ParseError::HeaderName => "malformed header name",
            ParseError::HeaderWithoutColon => "header line without a colon",
            ParseError::ContentLength => "bad Content-Length",
            ParseError::ConflictingContentLength => "conflicting Content-Length",
            ParseError::Truncated => "Content-Length exceeds the message",
            ParseError::StatusCode => "bad status code",
            ParseError::StatusOutOfRange => "status code out of range",
            ParseError::RequestLine => "malformed request line",
            ParseError::Version => "unsupported SIP version",
            ParseError::Method => "method is not a token",
            ParseError::RequestUri => "malformed Request-URI",
            ParseError::MissingVia => "missing Via",
            ParseError::EmptyVia => "empty Via",
            ParseError::ViaProtocol => "Via protocol is not SIP/2.0",
            ParseError::ViaSentByMissing => "Via has no sent-by",
            ParseError::ViaSentBy => "Via sent-by is malformed",
            ParseError::ViaParameter => "Via parameter is malformed",
            ParseError::MissingCallId => "missing Call-ID",
            ParseError::CallId => "malformed Call-ID",
            ParseError::DuplicateCallId => "more than one Call-ID",
            ParseError::MissingFrom => "missing From",
            ParseError::MissingTo => "missing To",
            ParseError::FromOrTo => "malformed From or To",
            ParseError::MissingCSeq => "missing CSeq",
            ParseError::CSeq => "malformed CSeq",
            ParseError::CSeqNumber => "bad CSeq number",
            ParseError::CSeqMethod => "CSeq method does not match the request",
            ParseError::MaxForwards => "bad Max-Forwards",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

/// Why the endpoint answers a request itself instead of handing it to the transaction user.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// The request does not parse (answered from the headers that could be salvaged).
    Malformed(ParseError),
    /// The request is larger than `EndpointConfig::max_message_size`.
    TooLarge,
    /// The Request-URI scheme is not `sip`, `sips` or `tel` (RFC 3261 §8.2.2.1).
    UnsupportedUriScheme,
    /// `Require` names an option tag we do not support (RFC 3261 §8.2.2.3).
    UnsupportedExtension,
    /// The Call-ID is longer than `RequestLimits::max_call_id_len`.
    CallIdTooLong,
    /// A header field is longer than `RequestLimits::max_header_len`.
    HeaderTooLong,
    /// More Via elements than `RequestLimits::max_vias`.
    TooManyVias,
    /// The fields a response copies back are longer than `RequestLimits::max_echoed_len`.
    EchoedTooLong,
}

impl Rejection {
    /// The status that goes on the wire. One exhaustive match, as rustls maps `PeerMisbehaved`
    /// to an alert: a new cause does not compile until someone decides its status.
    pub fn status(self) -> u16 {
        match self {
            Rejection::Malformed(cause) => match cause {
                ParseError::Version => 505,
                ParseError::Empty
                | ParseError::NoEndOfHeaders
                | ParseError::ContinuationFirst
                | ParseError::HeaderName
                | ParseError::HeaderWithoutColon
                | ParseError::ContentLength
                | ParseError::ConflictingContentLength
                | ParseError::Truncated
                | ParseError::StatusCode
                | ParseError::StatusOutOfRange
                | ParseError::RequestLine
                | ParseError::Method
                | ParseError::RequestUri
                | ParseError::MissingVia
                | ParseError::EmptyVia
                | ParseError::ViaProtocol
                | ParseError::ViaSentByMissing
                | ParseError::ViaSentBy
                | ParseError::ViaParameter
                | ParseError::MissingCallId
                | ParseError::CallId
                | ParseError::DuplicateCallId
                | ParseError::MissingFrom
                | ParseError::MissingTo
                | ParseError::FromOrTo
                | ParseError::MissingCSeq
                | ParseError::CSeq
                | ParseError::CSeqNumber
                | ParseError::CSeqMethod
                | ParseError::MaxForwards => 400,
            },
            Rejection::TooLarge => 413,
            Rejection::UnsupportedUriScheme => 416,
            Rejection::UnsupportedExtension => 420,
            Rejection::CallIdTooLong
            | Rejection::HeaderTooLong
            | Rejection::TooManyVias
            | Rejection::EchoedTooLong => 400,
        }
    }

    /// The reason phrase: what was wrong for a malformed request, else the status's own phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::Malformed(cause) => cause.reason(),
            Rejection::CallIdTooLong => "Call-ID Too Long",
            Rejection::HeaderTooLong => "Header Field Too Long",
            Rejection::TooManyVias => "Too Many Via Headers",
            Rejection::EchoedTooLong => "Via, From and To Too Long",
            other => crate::message::default_reason(other.status()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rejection_has_its_status() {
        assert_eq!(Rejection::Malformed(ParseError::MissingVia).status(), 400);
        assert_eq!(Rejection::Malformed(ParseError::Version).status(), 505);
        assert_eq!(Rejection::TooLarge.status(), 413);
        assert_eq!(Rejection::UnsupportedUriScheme.status(), 416);
        assert_eq!(Rejection::UnsupportedExtension.status(), 420);
        assert_eq!(
            Rejection::Malformed(ParseError::CSeqMethod).reason(),
            "CSeq method does not match the request"
        );
        assert_eq!(
            Rejection::UnsupportedUriScheme.reason(),
            "Unsupported URI Scheme"
        );
    }
}
