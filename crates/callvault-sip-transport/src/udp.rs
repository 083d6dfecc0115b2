//! The UDP driver: one socket, a receive task, and a send path that never waits.
//!
//! A send is tried on the socket at once (`try_send_to`). Only when the kernel's send buffer is
//! full (the socket would block) does the datagram go to a bounded queue that a writer task
//! drains; when that queue is full too the datagram is dropped and counted, as the network
//! would drop it: SIP over UDP retransmits (RFC 3261 §17).

use crate::Shared;
use crate::error::{Result, io};
use crate::event::{DeliveryFailure, Incoming, TransportEvent};
use crate::stats::Counters;
use bytes::Bytes;
use callvault_sip::Peer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// The UDP datagram buffer: the largest UDP payload.
const UDP_BUFFER: usize = 65536;
/// Kernel receive buffer asked for, so bursts of large INVITEs are not dropped while the
/// endpoint is busy (the kernel may cap it at net.core.rmem_max).
const UDP_SO_RCVBUF: usize = 4 * 1024 * 1024;

/// The sending side of the UDP driver.
pub(crate) struct UdpSender {
    socket: Arc<UdpSocket>,
    /// Datagrams waiting for the socket to accept them, drained by [`write_loop`].
    backlog: mpsc::Sender<(SocketAddr, Bytes)>,
}

pub(crate) type Backlog = mpsc::Receiver<(SocketAddr, Bytes)>;

impl UdpSender {
    pub(crate) fn new(socket: Arc<UdpSocket>, queue: usize) -> (UdpSender, Backlog) {
        let (backlog, rx) = mpsc::channel(queue.max(1));
        (UdpSender { socket, backlog }, rx)
    }
}

/// A UDP socket bound to `listen`, with a large receive buffer, ready for tokio.
pub(crate) fn bind(listen: SocketAddr) -> Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(io("create UDP socket"))?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_SO_RCVBUF) {
        tracing::warn!(error = %e, "could not raise the UDP receive buffer");
    }
    socket.bind(&listen.into()).map_err(io("bind UDP socket"))?;
    socket
        .set_nonblocking(true)
        .map_err(io("set UDP socket non-blocking"))?;
    UdpSocket::from_std(socket.into()).map_err(io("register UDP socket"))
}

impl Shared {
    /// Sends one datagram without waiting (see the module note).
    pub(crate) fn send_udp(&self, to: SocketAddr, bytes: Bytes) {
        let udp = &self.udp;
        // Straight to the socket unless datagrams are already waiting, which would be overtaken.
        if udp.backlog.capacity() == udp.backlog.max_capacity() {
            match udp.socket.try_send_to(&bytes, to) {
                Ok(_) => {
                    Counters::add(&self.counters.messages_sent);
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::debug!(peer = %to, error = %e, "UDP send failed");
                    self.report(Peer::udp(to), DeliveryFailure::UdpSendFailed(e.kind()));
                    return;
                }
            }
        }
        if udp.backlog.try_send((to, bytes)).is_err() {
            Counters::add(&self.counters.udp_send_dropped);
        }
    }
}

/// Drains the datagrams that found the socket busy.
pub(crate) async fn write_loop(shared: Arc<Shared>, socket: Arc<UdpSocket>, mut backlog: Backlog) {
    while let Some((to, bytes)) = backlog.recv().await {
        match socket.send_to(&bytes, to).await {
            Ok(_) => Counters::add(&shared.counters.messages_sent),
            Err(e) => {
                tracing::debug!(peer = %to, error = %e, "UDP send failed");
                shared.report(Peer::udp(to), DeliveryFailure::UdpSendFailed(e.kind()));
            }
        }
    }
}

/// Receives datagrams until the SIP loop drops its receiver.
pub(crate) async fn receive_loop(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let incoming = Incoming {
                    from: Peer::udp(from),
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                    received_at: Instant::now(),
                    _in_flight: None,
                };
                // Waits while the SIP loop is behind; the kernel buffer absorbs the burst.
                if shared
                    .events
                    .send(TransportEvent::Message(incoming))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // ICMP errors from earlier sends surface here on some systems; keep receiving.
            Err(e) => tracing::debug!(error = %e, "UDP receive error"),
        }
    }
}
