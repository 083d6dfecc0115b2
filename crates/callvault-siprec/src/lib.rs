//! SIPREC bodies: `multipart/mixed`, RFC 7865 recording metadata in every dialect we have met,
//! SDP offers and the answers to them, SDES-SRTP keys (`a=crypto`) included.
//!
//! Design note
//! - Pure functions over bytes and strings: no I/O, no clock, no global state. The SIP layer hands
//!   a Content-Type and a body to [`parse_body`] and gets a typed [`RecordingOffer`] or an
//!   [`Error`] whose [`Error::sip_status`] is the response to send — the only place where a
//!   failure becomes a status.
//! - Leniency is deliberate (INTEROP.md): parts are found by type in any order, metadata is matched
//!   by local element name whatever the namespace or prefix, SDP is repaired before webrtc-sdp sees
//!   it. What cannot be reconciled but does not stop recording becomes a `warning`, not an error.
//! - Third-party types (webrtc-sdp, roxmltree) stay inside; the API is this crate's own types.
//!   SRTP keying is `callvault_types::SrtpKeying`, shared with the media plane; keys are never
//!   printed (its `Debug` redacts them) and our own answer key comes from the caller, so this
//!   crate stays free of I/O (no random source of its own).
//! - SDES: an unusable `a=crypto` line is not an error but a [`CryptoDecline`] kept with the
//!   line (see `crypto` for what is accepted and why); [`choose_crypto`] takes the first usable
//!   line in the SRC's order, and [`build_answer`] writes exactly one line back with our key.
//! - Errors are for outside input. Nothing here panics on any input; the fuzz targets in `fuzz/`
//!   hold that line.

mod answer;
mod binding;
mod body;
mod correlation;
mod crypto;
mod error;
mod metadata;
mod multipart;
mod sdp;

pub use answer::{AnswerParams, MediaAnswer, build_answer, choose_codec};
pub use binding::{BindingRule, StreamBinding, bind_streams};
pub use body::{Limits, RecordingOffer, parse_body};
pub use correlation::{CorrelationId, correlation_from_headers};
pub use crypto::{
    AnswerCrypto, CryptoAttribute, CryptoDecline, CryptoOffer, Protection, SrtpDecline,
    choose_crypto,
};
pub use error::{Error, Result};
pub use metadata::{Dialect, Metadata, Participant, Session, Stream, parse_metadata};
pub use sdp::{Direction, Format, Media, Sdp, parse_sdp};
