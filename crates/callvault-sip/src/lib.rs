//! SIP for callvault: messages, sans-IO transactions and dialogs, and thin tokio transports.
//!
//! # Design note
//!
//! **Layers.** [`message`] parses and builds SIP messages; [`Endpoint`] is the transaction layer
//! (RFC 3261 §17 server transactions with RFC 6026's Accepted state, non-INVITE client
//! transactions, §18.2 response routing, RFC 3581 `rport`); [`dialog`] holds UAS dialog state;
//! [`transport`] owns the sockets. Only `transport` does I/O or knows tokio. Beside them, pure
//! helpers for the TU: [`session_timer`] (RFC 4028 negotiation and the BYE deadline),
//! [`dtmf_info`] (DTMF in INFO bodies) and [`peer_for_in_dialog_request`] (where our BYE goes).
//!
//! **Who owns time.** Nothing in `message`, `endpoint` or `dialog` reads a clock. Every input
//! carries an `Instant` (the drivers stamp `Incoming::received_at` when the bytes leave the
//! socket) and timers are deadlines inside the transactions, so a test drives Timer H (32 s)
//! in microseconds by passing later instants.
//!
//! **The run loop** (one task owns the `Endpoint`; the TU runs in the same task):
//! ```text
//! loop {
//!     select! {
//!         incoming = rx.recv()             => endpoint.handle_input(incoming.received_at, incoming.from, &incoming.bytes),
//!         _ = sleep_until(endpoint.poll_timeout()) => endpoint.handle_timeout(Instant::now()),
//!     }
//!     while let Some(event) = endpoint.poll_event() { /* TU: respond(), send_request() */ }
//!     while let Some(transmit) = endpoint.poll_transmit() { transports.send(transmit).await }
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
//! **Errors and bugs.** Outside input never panics: a message that does not parse is answered
//! 400 with the reason as its phrase when enough of it can be read, else dropped and counted in
//! [`EndpointStats`]. [`Error`] is for callers of the parser and the transports.

mod error;
mod header;
mod transaction;
mod via;

pub mod dialog;
pub mod dtmf_info;
pub mod endpoint;
pub mod framing;
pub mod message;
pub mod peer;
pub mod session_timer;
pub mod transport;

pub use dialog::{Dialog, DialogId, dialog_id_of_request, peer_for_in_dialog_request};
pub use dtmf_info::{InfoDtmf, parse_info_dtmf};
pub use endpoint::{Endpoint, EndpointConfig, EndpointStats, Event};
pub use error::{Error, Result};
pub use framing::{Frame, take_frame, take_message};
pub use message::{Message, Method, Request, Response, default_reason};
pub use peer::{ConnectionId, Peer, Transmit, TransportKind};
pub use session_timer::{Negotiation, Refresher, SessionTimer, SessionTimerConfig};
pub use transaction::TransactionKey;
pub use transport::{Incoming, TransportConfig, Transports};
