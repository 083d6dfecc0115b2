//! The crate's one error type, and the one place where a failure becomes a SIP status.

/// Why a SIPREC body could not be turned into a [`crate::RecordingOffer`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The body has content but no Content-Type header to say what it is.
    #[error("body present but no Content-Type")]
    MissingContentType,
    /// A Content-Type we cannot record from (neither SDP, metadata nor multipart).
    #[error("unsupported content type {content_type:?}")]
    UnsupportedContentType { content_type: String },
    /// The multipart framing is broken: no boundary, truncated, a part without headers end.
    #[error("malformed multipart body: {reason}")]
    BadMultipart { reason: String },
    /// A multipart body carrying neither SDP nor recording metadata.
    #[error("body carries neither SDP nor recording metadata")]
    NoSdp,
    /// The SDP could not be parsed even after repairing the usual vendor quirks.
    #[error("malformed SDP: {reason}")]
    BadSdp { reason: String },
    /// More m-lines than the configured limit.
    #[error("{offered} media streams offered, at most {max} accepted")]
    TooManyStreams { offered: usize, max: usize },
    /// The metadata is not well-formed XML or is not recording metadata at all.
    #[error("malformed recording metadata: {reason}")]
    BadMetadata { reason: String },
    /// The metadata part exceeds the configured size limit.
    #[error("recording metadata is {size} bytes, at most {max} accepted")]
    MetadataTooLarge { size: usize, max: usize },
}

impl Error {
    /// The SIP final response status for this failure. This is the only place that mapping lives.
    ///
    /// - 400 Bad Request: the message body itself is malformed (framing, metadata XML, no Content-Type).
    /// - 413 Request Entity Too Large: metadata over the size limit (RFC 3261 §21.4.11).
    /// - 415 Unsupported Media Type: a Content-Type we do not record from.
    /// - 488 Not Acceptable Here: the session description cannot be used — unparseable SDP, no SDP
    ///   at all, too many streams. Unparseable SDP is 488 rather than 400 because SBCs treat 488
    ///   as "this SRS will not record this offer" and fail over, which is the outcome we want;
    ///   a 400 is often retried unchanged.
    pub fn sip_status(&self) -> u16 {
        match self {
            Error::MissingContentType | Error::BadMultipart { .. } | Error::BadMetadata { .. } => {
                400
            }
            Error::MetadataTooLarge { .. } => 413,
            Error::UnsupportedContentType { .. } => 415,
            Error::NoSdp | Error::BadSdp { .. } | Error::TooManyStreams { .. } => 488,
        }
    }
}

/// The crate-wide result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_a_client_error_status() {
        let cases = [
            (Error::MissingContentType, 400),
            (
                Error::UnsupportedContentType {
                    content_type: "text/plain".into(),
                },
                415,
            ),
            (Error::BadMultipart { reason: "x".into() }, 400),
            (Error::NoSdp, 488),
            (Error::BadSdp { reason: "x".into() }, 488),
            (Error::TooManyStreams { offered: 3, max: 2 }, 488),
            (Error::BadMetadata { reason: "x".into() }, 400),
            (Error::MetadataTooLarge { size: 10, max: 5 }, 413),
        ];
        for (error, status) in cases {
            assert_eq!(error.sip_status(), status, "{error}");
        }
    }
}
