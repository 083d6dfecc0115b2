//! The tokio drivers: UDP and TCP sockets in, `Incoming` out; `Transmit` in, bytes out.
//! No protocol logic here beyond framing and keep-alive pongs; everything else is `Endpoint`'s.

use crate::error::{Error, Result};
use crate::framing::{Frame, take_frame};
use crate::peer::{ConnectionId, Peer, Transmit, TransportKind};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Socket settings for one listening address.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// UDP and TCP both bind here; port 0 picks one (the same for both).
    pub listen: SocketAddr,
    pub max_message_size: usize,
    pub max_tcp_connections: usize,
    /// A TCP connection with nothing received for this long is closed.
    pub tcp_idle_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            max_message_size: 65535,
            max_tcp_connections: 10_000,
            tcp_idle_timeout: Duration::from_secs(300),
        }
    }
}

/// One message received, stamped with the instant it left the socket.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub from: Peer,
    pub bytes: Bytes,
    pub received_at: Instant,
}

/// The UDP datagram buffer: the largest UDP payload.
const UDP_BUFFER: usize = 65536;
/// Kernel receive buffer asked for, so bursts of large INVITEs are not dropped while the
/// endpoint is busy (the kernel may cap it at net.core.rmem_max).
const UDP_SO_RCVBUF: usize = 4 * 1024 * 1024;
/// Messages waiting for the endpoint before the receive tasks wait in turn.
const INCOMING_QUEUE: usize = 4096;
/// Messages waiting to be written on one TCP connection.
const CONNECTION_QUEUE: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A cheap, cloneable handle for sending; the receive tasks run until the process ends or the
/// `Incoming` receiver is dropped.
#[derive(Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

struct Inner {
    udp: Arc<UdpSocket>,
    local_addr: SocketAddr,
    config: TransportConfig,
    incoming: mpsc::Sender<Incoming>,
    /// Writers of the open TCP connections. Touched per SIP message, never per RTP packet.
    connections: Mutex<HashMap<ConnectionId, mpsc::Sender<Bytes>>>,
    open_connections: AtomicUsize,
    next_connection: AtomicU64,
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

fn udp_socket(listen: SocketAddr) -> Result<std::net::UdpSocket> {
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
    Ok(socket.into())
}

impl Transports {
    /// Binds UDP and TCP on the same address and spawns their receive tasks.
    pub async fn bind(config: TransportConfig) -> Result<(Transports, mpsc::Receiver<Incoming>)> {
        let udp =
            UdpSocket::from_std(udp_socket(config.listen)?).map_err(io("register UDP socket"))?;
        let local_addr = udp.local_addr().map_err(io("read UDP local address"))?;
        let listener = TcpListener::bind(local_addr)
            .await
            .map_err(io("bind TCP listener"))?;
        let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
        let transports = Transports {
            inner: Arc::new(Inner {
                udp: Arc::new(udp),
                local_addr,
                config,
                incoming: tx,
                connections: Mutex::new(HashMap::new()),
                open_connections: AtomicUsize::new(0),
                next_connection: AtomicU64::new(1),
            }),
        };
        tokio::spawn(udp_receive(transports.clone()));
        tokio::spawn(tcp_accept(transports.clone(), listener));
        tracing::info!(addr = %local_addr, "SIP listening on UDP and TCP");
        Ok((transports, rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Sends one message. TCP uses the connection named by `to.connection`; if it is gone (or
    /// none is named) a new connection to `to.addr` is opened (RFC 3261 §18.2.2).
    pub async fn send(&self, transmit: Transmit) -> Result<()> {
        let to = transmit.to;
        match to.transport {
            TransportKind::Udp => {
                self.inner
                    .udp
                    .send_to(&transmit.bytes, to.addr)
                    .await
                    .map_err(io("UDP send"))?;
                Ok(())
            }
            TransportKind::Tcp => {
                let bytes = Bytes::from(transmit.bytes);
                if let Some(id) = to.connection {
                    let writer = self.writer(id);
                    if let Some(writer) = writer
                        && writer.send(bytes.clone()).await.is_ok()
                    {
                        return Ok(());
                    }
                }
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to.addr))
                    .await
                    .map_err(|_| Error::Io {
                        context: "TCP connect",
                        source: std::io::ErrorKind::TimedOut.into(),
                    })?
                    .map_err(io("TCP connect"))?;
                let writer = self.start_connection(stream, to.addr)?;
                writer.send(bytes).await.map_err(|_| Error::Io {
                    context: "TCP send",
                    source: std::io::ErrorKind::BrokenPipe.into(),
                })
            }
        }
    }

    fn writer(&self, id: ConnectionId) -> Option<mpsc::Sender<Bytes>> {
        let connections = self
            .inner
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        connections.get(&id).cloned()
    }

    /// Registers a connection and spawns its reader and writer; refuses past the limit.
    fn start_connection(&self, stream: TcpStream, peer: SocketAddr) -> Result<mpsc::Sender<Bytes>> {
        let open = self.inner.open_connections.fetch_add(1, Ordering::SeqCst);
        if open >= self.inner.config.max_tcp_connections {
            self.inner.open_connections.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::ConnectionLimit {
                max: self.inner.config.max_tcp_connections,
            });
        }
        let id = ConnectionId(self.inner.next_connection.fetch_add(1, Ordering::SeqCst));
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id, tx.clone());
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        tokio::spawn(tcp_write(write, rx));
        tokio::spawn(tcp_read(self.clone(), read, peer, id, tx.clone()));
        Ok(tx)
    }

    fn end_connection(&self, id: ConnectionId) {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&id);
        self.inner.open_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn udp_receive(transports: Transports) {
    let socket = transports.inner.udp.clone();
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let incoming = Incoming {
                    from: Peer::udp(from),
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                    received_at: Instant::now(),
                };
                if transports.inner.incoming.send(incoming).await.is_err() {
                    return;
                }
            }
            // ICMP errors from earlier sends surface here on some systems; keep receiving.
            Err(e) => tracing::debug!(error = %e, "UDP receive error"),
        }
    }
}

async fn tcp_accept(transports: Transports, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if let Err(e) = transports.start_connection(stream, peer) {
                    tracing::warn!(%peer, error = %e, "TCP connection refused");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                // Out of file descriptors: back off instead of spinning on the error.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if transports.inner.incoming.is_closed() {
            return;
        }
    }
}

async fn tcp_write(mut write: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(bytes) = rx.recv().await {
        if let Err(e) = write.write_all(&bytes).await {
            tracing::debug!(error = %e, "TCP write failed");
            return;
        }
    }
    let _ = write.shutdown().await;
}

async fn tcp_read(
    transports: Transports,
    mut read: tokio::net::tcp::OwnedReadHalf,
    peer: SocketAddr,
    id: ConnectionId,
    writer: mpsc::Sender<Bytes>,
) {
    let config = &transports.inner.config;
    let mut buf = BytesMut::with_capacity(8192);
    'connection: loop {
        match tokio::time::timeout(config.tcp_idle_timeout, read.read_buf(&mut buf)).await {
            Err(_) => {
                tracing::debug!(%peer, "TCP connection idle, closing");
                break;
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TCP read failed");
                break;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
        }
        let received_at = Instant::now();
        loop {
            match take_frame(&mut buf, config.max_message_size) {
                Ok(Some(Frame::Message(bytes))) => {
                    let incoming = Incoming {
                        from: Peer::tcp(peer, Some(id)),
                        bytes,
                        received_at,
                    };
                    if transports.inner.incoming.send(incoming).await.is_err() {
                        break 'connection;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    let _ = writer.try_send(Bytes::from_static(b"\r\n"));
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be resynchronised after a framing error.
                    tracing::info!(%peer, error = %e, "closing TCP connection");
                    break 'connection;
                }
            }
        }
    }
    transports.end_connection(id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use tokio::io::AsyncReadExt;

    fn options(call_id: &str, transport: &str) -> String {
        format!(
            "OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{call_id}\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:srs@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody"
        )
    }

    async fn bound() -> (Transports, mpsc::Receiver<Incoming>) {
        Transports::bind(TransportConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            // Bounds a broken test: a stuck read ends when the connection idles out.
            tcp_idle_timeout: Duration::from_secs(10),
            ..TransportConfig::default()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn udp_datagram_in_and_transmit_out() {
        let (transports, mut rx) = bound().await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let message = options("udp-1", "UDP");
        client
            .send_to(message.as_bytes(), transports.local_addr())
            .await
            .unwrap();
        let incoming = rx.recv().await.unwrap();
        assert_eq!(incoming.from, Peer::udp(client.local_addr().unwrap()));
        assert_eq!(&incoming.bytes[..], message.as_bytes());
        transports
            .send(Transmit {
                to: incoming.from,
                bytes: b"pong".to_vec(),
            })
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pong");
        assert_eq!(from, transports.local_addr());
    }

    #[tokio::test]
    async fn tcp_stream_is_framed_and_answered_on_its_connection() {
        let (transports, mut rx) = bound().await;
        let mut client = TcpStream::connect(transports.local_addr()).await.unwrap();
        let (a, b, c) = (
            options("tcp-1", "TCP"),
            options("tcp-2", "TCP"),
            options("tcp-3", "TCP"),
        );
        // Two messages in one write.
        client
            .write_all(format!("{a}{b}").as_bytes())
            .await
            .unwrap();
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!(&first.bytes[..], a.as_bytes());
        assert_eq!(&second.bytes[..], b.as_bytes());
        assert_eq!(first.from.transport, TransportKind::Tcp);
        assert!(first.from.connection.is_some());
        assert_eq!(first.from, second.from);
        // One message over several writes, with a keep-alive ping first.
        client.write_all(b"\r\n\r\n").await.unwrap();
        for chunk in c.as_bytes().chunks(7) {
            client.write_all(chunk).await.unwrap();
            client.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        let third = rx.recv().await.unwrap();
        assert!(
            matches!(Message::parse(&third.bytes), Ok(Message::Request(r)) if r.call_id() == "tcp-3")
        );
        // The pong, then our transmit, come back on the same connection.
        transports
            .send(Transmit {
                to: first.from,
                bytes: b"SIP/2.0 200 OK\r\n".to_vec(),
            })
            .await
            .unwrap();
        let expected = b"\r\nSIP/2.0 200 OK\r\n";
        let mut got = vec![0u8; expected.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..], expected);
    }

    #[tokio::test]
    async fn tcp_send_without_a_connection_connects() {
        let (transports, _rx) = bound().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        let send = transports.send(Transmit {
            to: Peer::tcp(target, Some(ConnectionId(999_999))),
            bytes: b"hello".to_vec(),
        });
        let (sent, accepted) = tokio::join!(send, listener.accept());
        sent.unwrap();
        let (mut stream, _) = accepted.unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[tokio::test]
    async fn a_framing_error_closes_the_connection() {
        let (transports, _rx) = bound().await;
        let mut client = TcpStream::connect(transports.local_addr()).await.unwrap();
        client
            .write_all(b"BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    }
}
