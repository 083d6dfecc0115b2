//! SIPREC bodies: `multipart/mixed`, RFC 7865 recording metadata in every dialect we have met,
//! SDP offers and the answers to them.
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
//! - Errors are for outside input. Nothing here panics on any input; the fuzz targets in `fuzz/`
//!   hold that line.

mod answer;
mod binding;
mod body;
mod correlation;
mod error;
mod metadata;
mod multipart;
mod sdp;

pub use answer::{AnswerParams, MediaAnswer, build_answer, choose_codec};
pub use binding::{BindingRule, StreamBinding, bind_streams};
pub use body::{Limits, RecordingOffer, parse_body};
pub use correlation::{CorrelationId, correlation_from_headers};
pub use error::{Error, Result};
pub use metadata::{Dialect, Metadata, Participant, Session, Stream, parse_metadata};
pub use sdp::{Direction, Format, Media, Sdp, parse_sdp};
