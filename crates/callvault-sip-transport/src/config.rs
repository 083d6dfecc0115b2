//! Socket settings, queue bounds and timeouts.

use crate::certificates::TlsContext;
use std::net::SocketAddr;
use std::time::Duration;

use crate::admission::SourceFilter;

/// Settings for one listening address. `Default` gives the values the binary uses unless told
/// otherwise; each bound says what happens when it is reached.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// UDP and TCP both bind here; port 0 picks one (the same for both).
    pub listen: SocketAddr,
    /// A message larger than this closes the stream it arrives on (it cannot be framed past).
    pub max_message_size: usize,
    /// Open stream connections (TCP and TLS together), accepted and our own; past it new ones
    /// are refused. TLS handshakes under way count apart, up to the same number.
    pub max_tcp_connections: usize,
    /// Accepted stream connections open at once from one source address; past it a new one
    /// is closed at accept. Above what one SBC carrying a node's whole load opens (SBCs share
    /// a few connections among all their calls).
    pub max_tcp_connections_per_source: usize,
    /// Addresses that may connect at all; `None` accepts every address. A connection from
    /// elsewhere is closed at accept.
    pub accept_from: Option<SourceFilter>,
    /// A stream connection with nothing received for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// A connect that has not completed in this long fails: its queued messages are dropped and
    /// a `Failed` event reports the destination.
    pub connect_timeout: Duration,
    /// One write to a stream that does not complete in this long closes the connection: the
    /// peer is not reading.
    pub write_timeout: Duration,
    /// Bytes waiting for one stream connection's writer (or for a connect to complete). A send
    /// past it closes that connection as too slow (or, while connecting, is dropped). Keep it
    /// well above `max_message_size`.
    pub stream_queue_bytes: usize,
    /// Datagrams waiting while the UDP socket would block; a send past it is dropped and counted.
    pub udp_queue: usize,
    /// SIP over TLS: its listening address and certificates. `None`: no TLS, in or out.
    pub tls: Option<TlsListen>,
    /// A TLS handshake, a client's or ours, that has not completed in this long is dropped;
    /// only that connection is affected.
    pub tls_handshake_timeout: Duration,
}

/// Where SIP over TLS listens, and with what.
#[derive(Clone, Debug)]
pub struct TlsListen {
    /// The TLS listener (TCP); port 0 picks one. Usually port 5061.
    pub listen: SocketAddr,
    pub context: TlsContext,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            max_message_size: 65535,
            max_tcp_connections: 10_000,
            max_tcp_connections_per_source: 1_000,
            accept_from: None,
            tcp_idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            stream_queue_bytes: 1024 * 1024,
            udp_queue: 1024,
            tls: None,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}
