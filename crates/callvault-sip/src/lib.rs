//! SIP for callvault, sans-IO: messages, transactions and dialogs as state machines fed bytes
//! and `Instant`s. No sockets, no tokio, no clock: the drivers are in `callvault-sip-transport`,
//! as `quinn` stands apart from `quinn-proto`.
//!
//! # Design note
//!
//! **Layers.** The message parser (`Request`, `Response`) reads and builds SIP messages;
//! [`Endpoint`] is the transaction layer (RFC 3261 §17 server transactions with RFC 6026's
//! Accepted state, non-INVITE client transactions, §18.2 response routing, RFC 3581 `rport`,
//! the §8.2 checks a UAS makes before its TU: URI scheme, `Require`, To tags); [`Dialog`] holds
//! UAS dialog state; [`take_frame`] cuts a byte stream into messages for the stream drivers.
//! Beside them, pure helpers for the TU: [`session_timer`] (RFC 4028 negotiation and the BYE
//! deadline), [`parse_info_dtmf`] (DTMF in INFO bodies), [`peer_for_in_dialog_request`]
//! (where our BYE goes) and [`local_contact_uri`] (our Contact: `sips:` or `;transport=`).
//! Addressing ([`Peer`], [`ConnectionId`], [`Transmit`]) is shared with the drivers.
//!
//! **Transports.** UDP, TCP and TLS ([`TransportKind`]). TLS is a stream like TCP: reliable (no
//! retransmissions, Timer J/K zero), answered on the request's connection (§18.2.2), default
//! port 5061. A dialog set up over TLS stays on TLS: our Contact says `;transport=tls` (or is
//! `sips:` when the dialog is, §12.1.1), and our BYE goes on the INVITE's connection, else to a
//! `sips:`/`;transport=tls` next hop over a new TLS connection, never in clear.
//!
//! **Who owns time.** Nothing here reads a clock. Every input carries an `Instant` (the drivers
//! stamp each message when its bytes leave the socket) and timers are deadlines inside the
//! transactions, so a test drives Timer H (32 s) in microseconds by passing later instants.
//!
//! **The run loop** (one task owns the `Endpoint`; the TU runs in the same task):
//! ```text
//! loop {
//!     select! {
//!         event = transport_events.recv() => match event {
//!             Message(m)       => endpoint.handle_input(m.received_at, m.from, &m.bytes),
//!             Failed { to, .. } => endpoint.handle_transport_error(now, &to),
//!         },
//!         _ = sleep_until(endpoint.poll_timeout()) => endpoint.handle_timeout(Instant::now()),
//!     }
//!     while let Some(event) = endpoint.poll_event() { /* TU: respond(), send_request() */ }
//!     while let Some(transmit) = endpoint.poll_transmit() { transports.send(transmit) } // never waits
//! }
//! ```
//! `poll_timeout` may name an instant at which nothing turns out to be due (a timer of a
//! transaction that already ended); `handle_timeout` then does nothing.
//!
//! **Why a hand-written parser, not rsip.** The team rule is "rsip behind our type; fix or
//! replace where it mishandles real messages". What this server needs from a message is
//! header-level: the start line, header fields with names and order as received (compact
//! forms, folding, odd case, `Content-Type:` without a space), the body byte for byte by
//! Content-Length, and a handful of grammars (Via, CSeq, name-addr, tags). Real recording
//! clients send Contact without angle brackets, `+sip.src` inside them, multipart bodies with
//! binary parts and extension methods; the RFC 4475 torture messages add LWS everywhere, escaped
//! quotes and NULs. A typed full-grammar parser has to be right about every header to accept a
//! message at all, so one odd header rejects a call; ours validates only what the transaction
//! layer relies on (top Via, Call-ID, CSeq, From, To, Max-Forwards, Content-Length) and keeps
//! the rest as text. That left rsip with nothing to do, so the crate no longer depends on it.
//!
//! **Errors and bugs.** Outside input never panics. A message that does not parse fails with a
//! typed [`ParseError`]; everything the endpoint refuses on its own is a [`Rejection`], mapped
//! to its status (400, 413, 416, 420, 505) in one exhaustive match, the cause's fixed phrase
//! as reason phrase. It is answered when enough of it can be read, else dropped and counted in
//! [`EndpointStats`]. [`RequestLimits`] caps what one request may make us hold or echo (Call-ID,
//! header fields, Vias, the echoed fields together; refused 400 statelessly, with the top Via
//! only) and bounds every UDP response to a multiple of its request: no amplifier. [`Error`] is for callers of the framer and the DTMF parser.
//!
//! **Public surface.** Modules are private; what callers need is re-exported here. The parser
//! beneath the endpoint (`Message`) is public only with the `fuzzing` feature, for the fuzz
//! targets.

#![warn(unreachable_pub)]

mod dialog;
mod dtmf_info;
mod endpoint;
mod error;
mod framing;
mod header;
mod limits;
mod message;
mod peer;
mod transaction;
mod uri;
mod via;

/// RFC 4028 session timers; a module of its own so that `session_timer::negotiate` reads as
/// what it does.
pub mod session_timer;

pub use dialog::{
    Dialog, DialogId, dialog_id_of_request, local_contact_uri, peer_for_in_dialog_request,
    peer_for_uri,
};
pub use dtmf_info::{InfoDtmf, parse_info_dtmf};
pub use endpoint::{Endpoint, EndpointConfig, EndpointStats, Event};
pub use error::{Error, ParseError, Rejection, Result};
pub use framing::{Frame, take_frame};
pub use limits::RequestLimits;
pub use message::{Method, Request, Response, default_reason};
pub use peer::{ConnectionId, Peer, Transmit, TransportKind};
pub use session_timer::{Negotiation, Refresher, SessionTimer, SessionTimerConfig};
pub use transaction::TransactionKey;

/// The message parser beneath the endpoint, for the fuzz targets only (`--features fuzzing`):
/// callers hand bytes to [`Endpoint::handle_input`], which parses them itself.
#[cfg(feature = "fuzzing")]
pub use message::Message;
