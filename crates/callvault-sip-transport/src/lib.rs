//! The tokio drivers of callvault's SIP: UDP, TCP and TLS sockets in, [`TransportEvent`]s out;
//! [`Transmit`]s in, bytes out. No protocol logic beyond framing streams and answering
//! keep-alive pings: everything else is `callvault_sip::Endpoint`'s, as `quinn` drives
//! `quinn-proto`.
//!
//! # Design note
//!
//! **Sending never waits.** [`Transports::send`] is a plain function: it hands the message to
//! the socket or to a bounded queue and returns. The SIP loop that calls it owns every
//! transaction and call, so if it waited on one peer every peer would wait: a client that stops
//! reading, or a Via pointing at an address that drops SYNs, used to freeze all signalling.
//! Whatever cannot be delivered is dropped, counted, and (when a destination is known to be
//! unreachable) reported back as [`TransportEvent::Failed`], on the same channel as incoming
//! messages, for `Endpoint::handle_transport_error` (RFC 3261 §17.1.4: the client
//! transactions sending there fail at once, as on a timeout).
//!
//! **UDP.** A datagram goes straight to the socket (`try_send_to`). Only if the kernel's buffer
//! is full does it wait in a queue of [`TransportConfig::udp_queue`] datagrams that a writer task
//! drains; past that it is dropped and counted (`udp_send_dropped`), as the network would
//! drop it: SIP over UDP retransmits.
//!
//! **Streams (TCP and TLS).** Each connection has its own writer task and
//! queue, bounded in bytes by [`TransportConfig::stream_queue_bytes`] (1 MiB: some 2,000
//! typical responses; bytes rather than messages because one INVITE can be 64 KiB). Each write
//! must complete within [`TransportConfig::write_timeout`] (10 s). A connection whose queue
//! overflows or whose write times out belongs to a peer that does not read: it is closed with
//! a reset (so the kernel drops what it still held), counted (`slow_peers_closed`), reported
//! `Failed { cause: SlowPeer }`, and what was queued is dropped. SIP over a reliable transport
//! does not retransmit, so the transaction layer's timers (Timer F, H) and the failure event
//! are what end the transactions of that peer; nobody else's messages waited for it.
//!
//! **TLS** (module `tls`, settings in `certificates`) is a stream transport beside TCP on its
//! own listening address, written over the same generic halves once its handshake is done:
//! everything above and below applies to it. A handshake, a client's or ours, runs in its own
//! task bounded by [`TransportConfig::tls_handshake_timeout`] (10 s); one that stalls costs
//! only its own connection. TLS 1.2 and 1.3 only; client certificates verified against the
//! configured CAs (required or optional); servers we connect to verified against the system
//! roots and those CAs, and sent nothing when their certificate does not verify (reported as
//! [`DeliveryFailure::TlsHandshakeFailed`]). [`Transports::reload_tls`] swaps the certificates
//! for new handshakes without touching live connections. TCP and TLS connections to the same
//! address are distinct (the transport is part of the key).
//!
//! **Which connection.** A send names a `ConnectionId` when it answers on a connection (RFC
//! 3261 §18.2.2). If that connection is gone, another open connection to the same remote
//! address is used (§18.1.1 reuse), else one is opened. Connects run in their own tasks, each
//! bounded by [`TransportConfig::connect_timeout`] (5 s); messages sent to a destination while
//! its connect is under way wait in order in one pending queue (same byte bound; past it they
//! are dropped and counted), so several sends share one connect and arrive in order. A failed
//! connect drops its pending messages and reports `Failed` with the destination.
//!
//! **Receiving.** Receive tasks stamp each message with the instant it left the socket and wait
//! for room in the event channel (4,096 events), so a SIP loop that falls behind slows the
//! readers rather than growing memory. One stream connection may have at most 64 messages
//! waiting in that channel (a permit inside [`Incoming`], freed when the SIP loop drops the
//! message): a peer that floods requests waits for its own to be handled, and everyone
//! else's messages stay at most that many of its messages behind. A stream connection idle
//! for [`TransportConfig::tcp_idle_timeout`] is closed.
//!
//! **Admission.** An accepted connection from outside [`TransportConfig::accept_from`], or one
//! past [`TransportConfig::max_tcp_connections_per_source`] from one address, is reset at
//! accept, counted and logged once a minute (`admission`); an admitted one counts against its
//! address until its reader ends.
//!
//! **Locks.** The connection registry is one mutex over plain maps, held for look-ups and queue
//! pushes only, never across an await or a system call.

#![warn(unreachable_pub)]

mod admission;
mod certificates;
mod config;
mod error;
mod event;
mod stats;
mod stream;
mod tcp;
mod tls;
mod udp;

#[cfg(test)]
mod tests;

pub use admission::SourceFilter;
#[cfg(feature = "testing")]
pub mod testing;

pub use certificates::{TlsContext, TlsSettings};
pub use config::{TlsListen, TransportConfig};
pub use error::{Error, Result};
pub use event::{DeliveryFailure, Incoming, TransportEvent};
pub use stats::TransportStats;

use bytes::Bytes;
use callvault_sip::{Peer, Transmit, TransportKind};
use error::io;
use stats::Counters;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// Events waiting for the SIP loop before the receive tasks wait in turn.
const EVENT_QUEUE: usize = 4096;

/// A cheap, cloneable handle for sending; the driver tasks run until the process ends or the
/// event receiver is dropped.
#[derive(Clone)]
pub struct Transports {
    shared: Arc<Shared>,
}

/// What every driver task shares.
pub(crate) struct Shared {
    config: TransportConfig,
    local_addr: SocketAddr,
    events: mpsc::Sender<TransportEvent>,
    counters: Arc<Counters>,
    udp: udp::UdpSender,
    streams: Mutex<stream::Registry>,
    admission: admission::Admission,
    /// `None` when TLS is not enabled.
    tls: Option<tls::TlsShared>,
}

/// How many ports an ephemeral listen address (port 0) tries before giving up.
const EPHEMERAL_BIND_ATTEMPTS: usize = 16;

/// UDP and TCP on one address. With port 0 the kernel picks the UDP port, and that port's TCP
/// side may already be taken (another process's listener, or a local end of some outgoing
/// connection): then another port is picked, rather than failing at random.
async fn bind_udp_and_tcp(listen: SocketAddr) -> Result<(tokio::net::UdpSocket, TcpListener)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let socket = udp::bind(listen)?;
        let local_addr = socket.local_addr().map_err(io("read UDP local address"))?;
        match TcpListener::bind(local_addr).await {
            Ok(listener) => return Ok((socket, listener)),
            Err(error)
                if listen.port() == 0
                    && error.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < EPHEMERAL_BIND_ATTEMPTS => {}
            Err(error) => return Err(io("bind TCP listener")(error)),
        }
    }
}

impl Transports {
    /// Binds UDP and TCP on the same address, and TLS on its own when `config.tls` is set,
    /// and starts the driver tasks.
    pub async fn bind(
        mut config: TransportConfig,
    ) -> Result<(Transports, mpsc::Receiver<TransportEvent>)> {
        let (socket, listener) = bind_udp_and_tcp(config.listen).await?;
        let socket = Arc::new(socket);
        let local_addr = socket.local_addr().map_err(io("read UDP local address"))?;
        let tls_listener = match config.tls.take() {
            None => None,
            Some(tls) => {
                let listener = TcpListener::bind(tls.listen)
                    .await
                    .map_err(io("bind TLS listener"))?;
                let addr = listener
                    .local_addr()
                    .map_err(io("read TLS local address"))?;
                let shared = tls::TlsShared::new(addr, tls.context, config.max_tcp_connections);
                Some((listener, shared))
            }
        };
        let (tls_listener, tls) = tls_listener.unzip();
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let (udp, backlog) = udp::UdpSender::new(Arc::clone(&socket), config.udp_queue);
        let shared = Arc::new(Shared {
            config,
            local_addr,
            events,
            counters: Arc::default(),
            udp,
            streams: Mutex::default(),
            admission: admission::Admission::default(),
            tls,
        });
        tokio::spawn(udp::receive_loop(Arc::clone(&shared), Arc::clone(&socket)));
        tokio::spawn(udp::write_loop(Arc::clone(&shared), socket, backlog));
        tokio::spawn(tcp::accept_loop(Arc::clone(&shared), listener));
        tracing::info!(addr = %local_addr, "SIP listening on UDP and TCP");
        if let (Some(listener), Some(tls)) = (tls_listener, &shared.tls) {
            tracing::info!(addr = %tls.local_addr, "SIP listening on TLS");
            tokio::spawn(tls::accept_loop(Arc::clone(&shared), listener));
        }
        Ok((Transports { shared }, receiver))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The TLS listener's address, when TLS is enabled.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.shared.tls.as_ref().map(|tls| tls.local_addr)
    }

    /// Replaces the TLS certificates and policy for handshakes that start from now on (a
    /// certificate renewed on disk, reloaded on SIGHUP). Connections already up are left as
    /// they are. Build `context` with [`TlsContext::new`] first: a bad certificate fails
    /// there, and the current one stays.
    pub fn reload_tls(&self, context: TlsContext) -> Result<()> {
        let tls = self.shared.tls.as_ref().ok_or(Error::TlsNotEnabled)?;
        tls.replace(context);
        Ok(())
    }

    /// The counters, to read at scrape time.
    pub fn stats(&self) -> TransportStats {
        TransportStats {
            counters: Arc::clone(&self.shared.counters),
        }
    }

    /// Sends one message without waiting (see the crate note): what cannot be delivered is
    /// dropped, counted, and reported as [`TransportEvent::Failed`] when a destination fails.
    pub fn send(&self, transmit: Transmit) {
        let Transmit { to, bytes } = transmit;
        let bytes = Bytes::from(bytes);
        match to.transport {
            TransportKind::Udp => self.shared.send_udp(to.addr, bytes),
            _ => self.shared.send_stream(to, bytes),
        }
    }
}

impl Shared {
    /// Tells the SIP loop that messages to `to` were dropped. Called where waiting is not
    /// allowed: when the event queue is full, a task delivers it as soon as there is room.
    fn report(&self, to: Peer, cause: DeliveryFailure) {
        let event = TransportEvent::Failed { to, cause };
        match self.events.try_send(event) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(event)) => {
                let events = self.events.clone();
                tokio::spawn(async move {
                    let _ = events.send(event).await;
                });
            }
        }
    }
}
