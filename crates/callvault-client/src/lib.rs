//! The recording client's side of SIPREC: what an SBC sends to a recording server, as text,
//! and a reading of what the server answers. `callvault test-call` (one call, for a newcomer
//! and after a deployment) and the load generator of `callvault-bench` (thousands of calls)
//! both speak through it, so the benchmarks send the requests the smoke test checks.
//!
//! - [`sip`]: the multipart INVITE (SDP offer + RFC 7865 metadata), ACK, BYE; responses read.
//! - [`rtp`]: one RTP stream per leg, a PCMU tone in 20 ms packets, RFC 4733 key presses.
//!
//! No I/O here: callers own the sockets and the clock.

#![warn(unreachable_pub)]

pub mod rtp;
pub mod sip;
