//! What the transports hand the SIP loop: messages received and deliveries that failed, on one
//! channel, in the order they happened.

use bytes::Bytes;
use callvault_sip::Peer;
use std::fmt;
use std::io;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

/// One message received, stamped with the instant it left the socket.
#[derive(Debug)]
pub struct Incoming {
    pub from: Peer,
    pub bytes: Bytes,
    pub received_at: Instant,
    /// For a stream message, its place among the few its connection may have waiting for the
    /// SIP loop; freed when this is dropped (the message was handled).
    pub(crate) _in_flight: Option<OwnedSemaphorePermit>,
}

/// What the SIP loop receives from the transports.
#[derive(Debug)]
pub enum TransportEvent {
    /// One whole message: for `Endpoint::handle_input`.
    Message(Incoming),
    /// Messages for `to` were dropped because they could not be delivered: for
    /// `Endpoint::handle_transport_error`, which fails the client transactions sending there
    /// (RFC 3261 §17.1.4). `to.connection` names the connection when one was open.
    Failed { to: Peer, cause: DeliveryFailure },
}

/// Why a delivery failed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// The connect did not complete within `connect_timeout` (a destination that drops SYNs).
    ConnectTimeout,
    /// The connect failed (refused, unreachable), or cannot be made here (`Unsupported`: TLS
    /// to a destination while TLS is not enabled or has no trust anchor to verify servers).
    ConnectFailed(io::ErrorKind),
    /// `max_tcp_connections` were open, so no connection could be opened.
    ConnectionLimit,
    /// The peer did not take our bytes: its queue overflowed `stream_queue_bytes` or a write
    /// did not complete within `write_timeout`. The connection was closed.
    SlowPeer,
    /// A write on the connection failed (the peer reset it); the connection was closed.
    WriteFailed(io::ErrorKind),
    /// The system refused a datagram (no route to the host).
    UdpSendFailed(io::ErrorKind),
    /// Our TLS handshake did not complete within `tls_handshake_timeout`.
    TlsHandshakeTimeout,
    /// Our TLS handshake failed: most often the server's certificate did not verify (see the
    /// log line for the reason); nothing was sent.
    TlsHandshakeFailed,
}

impl fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryFailure::ConnectTimeout => f.write_str("connect timed out"),
            DeliveryFailure::ConnectFailed(kind) => write!(f, "connect failed: {kind}"),
            DeliveryFailure::ConnectionLimit => f.write_str("connection limit reached"),
            DeliveryFailure::SlowPeer => f.write_str("peer not reading"),
            DeliveryFailure::WriteFailed(kind) => write!(f, "write failed: {kind}"),
            DeliveryFailure::UdpSendFailed(kind) => write!(f, "datagram refused: {kind}"),
            DeliveryFailure::TlsHandshakeTimeout => f.write_str("TLS handshake timed out"),
            DeliveryFailure::TlsHandshakeFailed => f.write_str("TLS handshake failed"),
        }
    }
}
