//! Caps on what one request may make us hold or send back (issue "Security"): a request with
//! a Call-ID, a header field or a Via list beyond them is refused before the TU sees it, and a
//! response over UDP is never more than a small multiple of the request it answers, so a
//! spoofed source cannot turn us into an amplifier. What RFC 3261 still allows (an
//! unacknowledged INVITE's final response is retransmitted on Timer G until Timer H, eleven
//! copies in all after the 100) is bounded by the cap on the echoed fields: each copy is small,
//! whatever the request's size.
//!
//! Why these numbers: real recording clients send Call-IDs of 30–150 bytes, header fields of a
//! few hundred (the longest are Record-Route, History-Info and P-Asserted-Identity, rarely
//! over 2 KiB), and one to six Vias; the caps sit well above that and far below what a 64 KiB
//! datagram could carry. Everything we copy into a response comes from the request, so once
//! these hold a response can only outgrow its request by what we add (tags, `Server`, `Allow`,
//! an SDP answer), which the factor covers.

use crate::error::Rejection;
use crate::header::{same_name, split_list};
use crate::message::{Request, Response};

/// The fields a response copies from its request (RFC 3261 §8.2.6.2).
pub(crate) const ECHOED: [&str; 5] = ["via", "from", "to", "call-id", "cseq"];

/// Limits on one request and on our answer to it; part of [`crate::EndpointConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Longest Call-ID, in bytes.
    pub max_call_id_len: usize,
    /// Longest value of any one header field, in bytes (after unfolding).
    pub max_header_len: usize,
    /// Most Via elements (all Via fields, comma lists counted element by element).
    pub max_vias: usize,
    /// Most bytes, all values together, of the fields every response copies back (Via, From,
    /// To, Call-ID, CSeq): what an unacknowledged INVITE gets back up to eleven times.
    pub max_echoed_len: usize,
    /// Over UDP, no response is larger than this many times its request: a larger one is
    /// trimmed to a bare 500, or not sent when even that is too large.
    pub max_udp_response_factor: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_call_id_len: 512,
            max_header_len: 8 * 1024,
            max_vias: 32,
            max_echoed_len: 4 * 1024,
            max_udp_response_factor: 3,
        }
    }
}

impl RequestLimits {
    /// The first cap `request` breaks, if any.
    pub(crate) fn check(&self, request: &Request) -> Result<(), Rejection> {
        if request.call_id().len() > self.max_call_id_len {
            return Err(Rejection::CallIdTooLong);
        }
        let (mut vias, mut echoed) = (0, 0);
        for (name, value) in request.headers() {
            if value.len() > self.max_header_len {
                return Err(Rejection::HeaderTooLong);
            }
            if same_name(name, "via") {
                vias += split_list(value).len();
            }
            if ECHOED.iter().any(|echo| same_name(name, echo)) {
                echoed += value.len();
            }
        }
        if vias > self.max_vias {
            return Err(Rejection::TooManyVias);
        }
        if echoed > self.max_echoed_len {
            return Err(Rejection::EchoedTooLong);
        }
        Ok(())
    }

    /// Largest response that may answer a request of `request_len` bytes over UDP.
    pub(crate) fn udp_response_budget(&self, request_len: usize) -> usize {
        request_len.saturating_mul(self.max_udp_response_factor)
    }
}

/// `response` as it may go over UDP to a request of `request_len` bytes: itself when within
/// the budget, else a bare `500 Response Too Large` (only the headers that route it), else
/// nothing. Returns the bytes and whether it was trimmed or dropped.
pub(crate) fn bound_udp_response(
    limits: &RequestLimits,
    request_len: usize,
    response: &Response,
) -> (Option<Vec<u8>>, Bounded) {
    let budget = limits.udp_response_budget(request_len);
    let bytes = response.to_bytes();
    if bytes.len() <= budget {
        return (Some(bytes), Bounded::Whole);
    }
    let bare = response.bare(500, "Response Too Large").to_bytes();
    if bare.len() <= budget {
        (Some(bare), Bounded::Trimmed)
    } else {
        (None, Bounded::Dropped)
    }
}

/// What [`bound_udp_response`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bounded {
    Whole,
    Trimmed,
    Dropped,
}
