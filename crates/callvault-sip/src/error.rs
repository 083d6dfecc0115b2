//! The crate's one error type.

/// Everything that can go wrong in this crate.
///
/// Parse reasons are static strings so that the 400 the endpoint sends for a malformed request can
/// use them as its reason phrase without formatting outside input into it.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a SIP message we accept; `reason` says why (and is safe as a reason phrase).
    #[error("malformed SIP message: {reason}")]
    Parse { reason: &'static str },
    /// A message (or a message still being framed on a stream) is larger than the configured limit.
    #[error("SIP message of {size} bytes exceeds the limit of {max}")]
    TooLarge { size: usize, max: usize },
    /// A message on a stream transport has no Content-Length, so its end cannot be found.
    #[error("SIP message on a stream transport has no Content-Length")]
    MissingContentLength,
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The body of an INFO request with a DTMF content type (`application/dtmf-relay`,
    /// `application/dtmf`) is malformed; the TU answers 400. `reason` is safe as a reason phrase.
    #[error("malformed DTMF INFO body: {reason}")]
    DtmfInfo { reason: &'static str },
    /// The TCP connection limit is reached; the new connection was refused.
    #[error("TCP connection limit of {max} reached")]
    ConnectionLimit { max: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn parse(reason: &'static str) -> Error {
        Error::Parse { reason }
    }
}
