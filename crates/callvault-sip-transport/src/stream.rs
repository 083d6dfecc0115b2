//! Stream connections (TCP and TLS, each with its own listener and connector in `tcp` and
//! `tls`):
//! the registry of open connections, the per-connection writer with its bounded queue and
//! write timeout, the reader that frames messages, and the queue of messages waiting for a
//! connect.
//!
//! The registry is one mutex over plain maps, held only for map operations and queue pushes,
//! never across an await: `send` stays a few hash look-ups.

use crate::Shared;
use crate::event::{DeliveryFailure, Incoming, TransportEvent};
use crate::stats::Counters;
use bytes::{Bytes, BytesMut};
use callvault_sip::{ConnectionId, Frame, Peer, TransportKind, take_frame};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};

/// Messages one connection may have waiting in the event queue for the SIP loop. A peer that
/// floods requests then waits for its own to be handled instead of filling the queue that
/// every other peer's messages share: UDP and the other connections stay at most this many of
/// its messages behind.
const IN_FLIGHT_PER_CONNECTION: usize = 64;

/// A remote stream endpoint: the transport and the peer's address.
type Destination = (TransportKind, SocketAddr);

/// The write half of a stream connection.
pub(crate) trait StreamWriter: AsyncWrite + Unpin + Send + 'static {
    /// Makes the close that follows an abort (RST) rather than a graceful FIN, so the kernel does
    /// not hold the bytes a peer never read for minutes after we gave up on it.
    fn reset_on_close(&self);
}

#[derive(Default)]
pub(crate) struct Registry {
    by_id: HashMap<ConnectionId, Arc<Connection>>,
    /// The open connection to reuse for a destination (RFC 3261 §18.1.1, §18.2.2).
    by_destination: HashMap<Destination, ConnectionId>,
    /// Destinations being connected to, with the messages waiting for the connection.
    connecting: HashMap<Destination, Pending>,
    next_id: u64,
}

/// Messages sent to a destination while its connect is under way, in order.
struct Pending {
    messages: VecDeque<Bytes>,
    bytes: usize,
}

/// How a connection is being closed, told to its reader and writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    /// The peer closed, went idle, or sent what cannot be framed: what is queued is written,
    /// then a FIN.
    Graceful,
    /// We gave up on the peer (too slow, write failed): RST, drop what is queued.
    Reset,
}

/// One open stream connection, shared by the registry, its reader and its writer.
pub(crate) struct Connection {
    id: ConnectionId,
    kind: TransportKind,
    peer: SocketAddr,
    queue: mpsc::UnboundedSender<Bytes>,
    /// Bytes in `queue` and the one being written; bounded by `stream_queue_bytes`.
    queued_bytes: AtomicUsize,
    closing: watch::Sender<Option<Close>>,
}

impl Connection {
    fn peer(&self) -> Peer {
        Peer {
            transport: self.kind,
            addr: self.peer,
            connection: Some(self.id),
        }
    }

    /// Resolves once the connection is being closed, with how.
    async fn closed(&self) -> Close {
        let mut watch = self.closing.subscribe();
        let Ok(close) = watch.wait_for(Option::is_some).await else {
            // The sender lives in `self`, so it cannot be gone while we borrow it.
            return Close::Graceful;
        };
        (*close).unwrap_or(Close::Graceful)
    }
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic elsewhere while holding the lock leaves plain maps behind: keep using them.
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends one message on a stream without waiting: on the connection `to.connection` names,
    /// else on an open connection to `to.addr`, else after a connect (spawned, shared by every
    /// message sent to that destination until it completes).
    pub(crate) fn send_stream(self: &Arc<Self>, to: Peer, bytes: Bytes) {
        let destination = (to.transport, to.addr);
        let mut registry = self.registry();
        let open = to
            .connection
            .and_then(|id| registry.by_id.get(&id))
            .or_else(|| {
                let id = registry.by_destination.get(&destination)?;
                registry.by_id.get(id)
            })
            .cloned();
        if let Some(connection) = open {
            drop(registry);
            self.enqueue(&connection, bytes);
            return;
        }
        let bound = self.config.stream_queue_bytes;
        if let Some(pending) = registry.connecting.get_mut(&destination) {
            if pending.bytes + bytes.len() > bound {
                Counters::add(&self.counters.connect_queue_dropped);
                tracing::debug!(peer = %to.addr, "connect queue full: message dropped");
            } else {
                pending.bytes += bytes.len();
                pending.messages.push_back(bytes);
            }
            return;
        }
        let pending = Pending {
            bytes: bytes.len(),
            messages: VecDeque::from([bytes]),
        };
        registry.connecting.insert(destination, pending);
        drop(registry);
        match to.transport {
            TransportKind::Tcp => {
                tokio::spawn(crate::tcp::connect(Arc::clone(self), to.addr));
            }
            TransportKind::Tls => {
                tokio::spawn(crate::tls::connect(Arc::clone(self), to.addr));
            }
            // UDP never comes here.
            _ => self.connect_failed(
                destination,
                DeliveryFailure::ConnectFailed(std::io::ErrorKind::Unsupported),
            ),
        }
    }

    /// Queues bytes for a connection's writer; a connection whose queue overflows cannot keep
    /// up and is closed.
    fn enqueue(&self, connection: &Connection, bytes: Bytes) {
        let len = bytes.len();
        let queued = connection.queued_bytes.fetch_add(len, Ordering::Relaxed) + len;
        if queued > self.config.stream_queue_bytes {
            tracing::info!(
                peer = %connection.peer,
                queued,
                "peer is not reading what we send: closing the connection"
            );
            Counters::add(&self.counters.slow_peers_closed);
            self.close(connection, Close::Reset, Some(DeliveryFailure::SlowPeer));
            return;
        }
        // Fails only when the writer is gone, i.e. the connection is closing: dropped with it.
        let _ = connection.queue.send(bytes);
    }

    /// Registers a connection that is up (accepted, or ours once connected), queues first what
    /// waited for the connect, and starts its writer and reader. `None` past the connection
    /// limit (the stream is dropped, which closes it).
    pub(crate) fn start_connection<R, W>(
        self: &Arc<Self>,
        kind: TransportKind,
        peer: SocketAddr,
        read: R,
        write: W,
    ) -> Option<ConnectionId>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: StreamWriter,
    {
        let (queue, queued) = mpsc::unbounded_channel();
        let destination = (kind, peer);
        let mut registry = self.registry();
        let pending = registry.connecting.remove(&destination);
        if registry.by_id.len() >= self.config.max_tcp_connections {
            drop(registry);
            tracing::warn!(%peer, max = self.config.max_tcp_connections, "connection limit reached");
            if pending.is_some() {
                Counters::add(&self.counters.connect_failures);
                self.report(
                    Peer {
                        transport: kind,
                        addr: peer,
                        connection: None,
                    },
                    DeliveryFailure::ConnectionLimit,
                );
            }
            return None;
        }
        registry.next_id += 1;
        let id = ConnectionId(registry.next_id);
        let connection = Arc::new(Connection {
            id,
            kind,
            peer,
            queue,
            queued_bytes: AtomicUsize::new(0),
            closing: watch::Sender::new(None),
        });
        // Under the lock, so that no send made after the connect overtakes these.
        if let Some(pending) = pending {
            connection
                .queued_bytes
                .store(pending.bytes, Ordering::Relaxed);
            for bytes in pending.messages {
                let _ = connection.queue.send(bytes);
            }
        }
        registry.by_id.insert(id, Arc::clone(&connection));
        registry.by_destination.insert(destination, id);
        self.counters
            .open_stream_connections
            .store(registry.by_id.len() as u64, Ordering::Relaxed);
        drop(registry);
        tokio::spawn(write_loop(
            Arc::clone(self),
            Arc::clone(&connection),
            write,
            queued,
        ));
        tokio::spawn(read_loop(Arc::clone(self), connection, read));
        Some(id)
    }

    /// A connect failed: what waited for it is dropped and the destination reported.
    pub(crate) fn connect_failed(&self, destination: Destination, cause: DeliveryFailure) {
        let dropped = self.registry().connecting.remove(&destination);
        let (kind, addr) = destination;
        tracing::info!(
            peer = %addr,
            %cause,
            dropped = dropped.map_or(0, |p| p.messages.len()),
            "could not connect"
        );
        Counters::add(&self.counters.connect_failures);
        self.report(
            Peer {
                transport: kind,
                addr,
                connection: None,
            },
            cause,
        );
    }

    /// Takes a connection out of the registry and tells its reader and writer to stop; the
    /// first close wins. A failure is reported to the SIP loop.
    fn close(&self, connection: &Connection, how: Close, failure: Option<DeliveryFailure>) {
        {
            let mut registry = self.registry();
            if registry.by_id.remove(&connection.id).is_none() {
                return;
            }
            let destination = (connection.kind, connection.peer);
            if registry.by_destination.get(&destination) == Some(&connection.id) {
                registry.by_destination.remove(&destination);
                // Another connection to the same address, if any, takes over (rare: O(n)).
                if let Some(other) = registry
                    .by_id
                    .values()
                    .find(|c| (c.kind, c.peer) == destination)
                {
                    let other = other.id;
                    registry.by_destination.insert(destination, other);
                }
            }
            self.counters
                .open_stream_connections
                .store(registry.by_id.len() as u64, Ordering::Relaxed);
        }
        connection.closing.send_replace(Some(how));
        if let Some(cause) = failure {
            self.report(connection.peer(), cause);
        }
    }
}

/// Writes what is queued for one connection, each write bounded by `write_timeout`.
async fn write_loop<W: StreamWriter>(
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    mut write: W,
    mut queued: mpsc::UnboundedReceiver<Bytes>,
) {
    let timeout = shared.config.write_timeout;
    let how = loop {
        let bytes = tokio::select! {
            biased;
            how = connection.closed() => break how,
            next = queued.recv() => match next {
                Some(bytes) => bytes,
                None => break Close::Graceful,
            },
        };
        let written = tokio::select! {
            biased;
            how = connection.closed() => break how,
            written = tokio::time::timeout(timeout, write_out(&mut write, &bytes)) => written,
        };
        match written {
            Ok(Ok(())) => {
                connection
                    .queued_bytes
                    .fetch_sub(bytes.len(), Ordering::Relaxed);
                Counters::add(&shared.counters.messages_sent);
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %connection.peer, error = %e, "stream write failed");
                shared.close(
                    &connection,
                    Close::Reset,
                    Some(DeliveryFailure::WriteFailed(e.kind())),
                );
                break Close::Reset;
            }
            Err(_) => {
                tracing::info!(
                    peer = %connection.peer,
                    timeout_ms = timeout.as_millis() as u64,
                    "peer is not reading what we send: closing the connection"
                );
                Counters::add(&shared.counters.slow_peers_closed);
                shared.close(&connection, Close::Reset, Some(DeliveryFailure::SlowPeer));
                break Close::Reset;
            }
        }
    };
    match how {
        Close::Reset => write.reset_on_close(),
        Close::Graceful => {
            // What was queued before the close still goes out, then a FIN; each write is
            // bounded as above, and a peer that does not take them is reset.
            while let Ok(bytes) = queued.try_recv() {
                if !matches!(
                    tokio::time::timeout(timeout, write_out(&mut write, &bytes)).await,
                    Ok(Ok(()))
                ) {
                    write.reset_on_close();
                    return;
                }
                Counters::add(&shared.counters.messages_sent);
            }
            let _ = tokio::time::timeout(timeout, write.shutdown()).await;
        }
    }
}

/// Writes one message and flushes it: a TLS stream may keep records back until flushed (a
/// no-op on TCP).
async fn write_out<W: StreamWriter>(write: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    write.write_all(bytes).await?;
    write.flush().await
}

/// Reads and frames messages until the peer closes, idles out or breaks framing, or the
/// connection is closed from our side.
async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    mut read: R,
) {
    let config = &shared.config;
    let peer = connection.peer;
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION));
    let mut buf = BytesMut::with_capacity(8192);
    'connection: loop {
        let outcome = tokio::select! {
            biased;
            _ = connection.closed() => return,
            outcome = tokio::time::timeout(config.tcp_idle_timeout, read.read_buf(&mut buf)) => outcome,
        };
        match outcome {
            Err(_) => {
                tracing::debug!(%peer, "stream connection idle, closing");
                break;
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "stream read failed");
                break;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
        }
        let received_at = Instant::now();
        loop {
            match take_frame(&mut buf, config.max_message_size) {
                Ok(Some(Frame::Message(bytes))) => {
                    // Waits while this peer has its share waiting for the SIP loop, then while
                    // the SIP loop is behind; either way this peer is not read meanwhile.
                    let permit = tokio::select! {
                        biased;
                        _ = connection.closed() => return,
                        permit = Arc::clone(&in_flight).acquire_owned() => match permit {
                            Ok(permit) => permit,
                            Err(_) => break 'connection,
                        },
                    };
                    let event = TransportEvent::Message(Incoming {
                        from: connection.peer(),
                        bytes,
                        received_at,
                        _in_flight: Some(permit),
                    });
                    tokio::select! {
                        biased;
                        _ = connection.closed() => return,
                        sent = shared.events.send(event) => if sent.is_err() {
                            break 'connection;
                        },
                    }
                }
                Ok(Some(Frame::Ping)) => shared.enqueue(&connection, Bytes::from_static(b"\r\n")),
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be resynchronised after a framing error.
                    tracing::info!(%peer, error = %e, "closing stream connection");
                    break 'connection;
                }
            }
        }
    }
    shared.close(&connection, Close::Graceful, None);
}
