//! Transport addressing shared by the endpoint and the drivers.

use std::fmt;
use std::net::SocketAddr;

/// The transport protocol a message came in on or goes out on.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2): a stream like TCP, framed the same way.
    Tls,
}

impl TransportKind {
    /// Lower-case name, as used in logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
        }
    }

    /// The transport token of a Via header (`SIP/2.0/UDP`).
    pub fn via_token(&self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }

    /// Reliable transports get no retransmissions (RFC 3261 §17).
    pub fn is_reliable(&self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// The port a SIP URI or Via without one means on this transport (RFC 3261 §19.1.2:
    /// 5061 for TLS, 5060 otherwise).
    pub fn default_port(&self) -> u16 {
        match self {
            TransportKind::Tls => 5061,
            TransportKind::Udp | TransportKind::Tcp => 5060,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stream connection of a driver; unique for the life of the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Where a message came from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: TransportKind,
    pub addr: SocketAddr,
    /// The stream connection, for TCP and TLS; `None` for UDP or when a new connection may be
    /// opened. When it names a connection that has closed, a driver sends to `addr` instead
    /// (reusing an open connection to it, else opening one).
    pub connection: Option<ConnectionId>,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            transport: TransportKind::Udp,
            addr,
            connection: None,
        }
    }

    pub fn tcp(addr: SocketAddr, connection: Option<ConnectionId>) -> Peer {
        Peer {
            transport: TransportKind::Tcp,
            addr,
            connection,
        }
    }

    pub fn tls(addr: SocketAddr, connection: Option<ConnectionId>) -> Peer {
        Peer {
            transport: TransportKind::Tls,
            addr,
            connection,
        }
    }
}

/// Bytes to send, produced by the endpoint and sent by a driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub bytes: Vec<u8>,
}
