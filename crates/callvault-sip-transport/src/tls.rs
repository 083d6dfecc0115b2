//! TLS: the listener, whose connections each handshake in their own task, the connector, and
//! the write half of a TLS stream. Once its handshake is done a TLS connection is a stream like
//! TCP's, run by `stream` over the same generic halves (bounded queue, write timeout, framing,
//! reuse by address).
//!
//! **Handshakes never hold anyone up.** The accept loop only accepts: each handshake runs in its
//! own task, bounded by `tls_handshake_timeout`, so a client that connects and says nothing, or
//! stops half way, costs one task and one socket until the timeout, and nobody else waits. At
//! most `max_tcp_connections` handshakes run at once; past that new connections are closed at
//! once. Our own connects are spawned by `stream` like TCP's, with the same timeout on their
//! handshake.
//!
//! **Reload.** The context (certificates, CAs, policy) sits behind a mutex that is held only to
//! clone an `Arc`: each handshake takes the context current when it starts, so swapping it
//! changes new handshakes only; connections already up keep what they negotiated.

use crate::Shared;
use crate::admission::{Admitted, InboundGuard};
use crate::certificates::TlsContext;
use crate::event::DeliveryFailure;
use crate::stats::Counters;
use crate::stream::StreamWriter;
use callvault_sip::TransportKind;
use rustls::pki_types::ServerName;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWrite, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// The TLS state every driver task shares.
pub(crate) struct TlsShared {
    pub(crate) local_addr: SocketAddr,
    /// What new handshakes use; replaced whole on reload.
    context: Mutex<TlsContext>,
    /// Handshakes of accepted connections under way.
    handshakes: Arc<Semaphore>,
}

impl TlsShared {
    pub(crate) fn new(local_addr: SocketAddr, context: TlsContext, max: usize) -> TlsShared {
        TlsShared {
            local_addr,
            context: Mutex::new(context),
            handshakes: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    pub(crate) fn context(&self) -> TlsContext {
        // A panic elsewhere while holding the lock leaves a whole context behind: keep using it.
        self.context
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn replace(&self, context: TlsContext) {
        *self
            .context
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = context;
    }
}

/// The write half of a TLS stream, with a second handle on its socket to reset it: the TLS
/// stream owns the `TcpStream`, and `split` gives no way back to it.
pub(crate) struct TlsWriter {
    half: WriteHalf<TlsStream<TcpStream>>,
    socket: socket2::Socket,
}

impl AsyncWrite for TlsWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.half).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.half).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Sends close_notify, then the FIN.
        Pin::new(&mut self.half).poll_shutdown(cx)
    }
}

impl StreamWriter for TlsWriter {
    fn reset_on_close(&self) {
        // SO_LINGER 0 is a property of the socket, so setting it through the second handle
        // makes the close of the last one send RST.
        let _ = self.socket.set_linger(Some(Duration::ZERO));
    }
}

/// Registers a TLS stream whose handshake completed: `Ok(false)` past the connection limit
/// (which `start_connection` reports), `Err` when the socket cannot be duplicated (out of file
/// descriptors). Either way a refused stream is dropped, which closes it.
fn start(
    shared: &Arc<Shared>,
    stream: TlsStream<TcpStream>,
    peer: SocketAddr,
    admitted: Option<InboundGuard>,
) -> io::Result<bool> {
    let tcp = stream.get_ref().0;
    // Requests and responses are single writes; do not hold them back for coalescing.
    let _ = tcp.set_nodelay(true);
    let socket = socket2::SockRef::from(tcp).try_clone()?;
    let (read, half) = tokio::io::split(stream);
    let write = TlsWriter { half, socket };
    let started = match admitted {
        Some(guard) => {
            let read = Admitted {
                inner: read,
                _guard: guard,
            };
            shared.start_connection(TransportKind::Tls, peer, read, write)
        }
        None => shared.start_connection(TransportKind::Tls, peer, read, write),
    };
    Ok(started.is_some())
}

/// Accepts connections until the SIP loop drops its receiver; each handshakes in its own task.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let Some(tls) = shared.tls.as_ref() else {
        return;
    };
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // The allow-list and the per-source share before any handshake work.
                let Ok(guard) = shared
                    .admission
                    .admit(&shared.config, &shared.counters, peer.ip())
                else {
                    let _ = stream.set_zero_linger();
                    continue;
                };
                match Arc::clone(&tls.handshakes).try_acquire_owned() {
                    Ok(permit) => {
                        let context = tls.context();
                        let shared = Arc::clone(&shared);
                        tokio::spawn(accept(shared, context, stream, peer, (permit, guard)));
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "TLS connection refused: too many handshakes under way");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS accept failed");
                // Out of file descriptors: back off instead of spinning on the error.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if shared.events.is_closed() {
            return;
        }
    }
}

/// One client's handshake, within `tls_handshake_timeout`; a failed one closes only its socket.
async fn accept(
    shared: Arc<Shared>,
    context: TlsContext,
    stream: TcpStream,
    peer: SocketAddr,
    (permit, guard): (OwnedSemaphorePermit, InboundGuard),
) {
    let acceptor = TlsAcceptor::from(Arc::clone(&context.server));
    let timeout = shared.config.tls_handshake_timeout;
    let handshake = tokio::time::timeout(timeout, acceptor.accept(stream)).await;
    drop(permit);
    match handshake {
        Ok(Ok(stream)) => {
            let connection = stream.get_ref().1;
            tracing::debug!(
                %peer,
                version = ?connection.protocol_version(),
                client_certificate = connection.peer_certificates().is_some(),
                "TLS connection accepted"
            );
            match start(&shared, TlsStream::from(stream), peer, Some(guard)) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(%peer, "TLS connection refused: connection limit reached");
                }
                Err(e) => tracing::warn!(%peer, error = %e, "TLS connection dropped"),
            }
        }
        Ok(Err(e)) => {
            Counters::add(&shared.counters.tls_handshake_failures);
            tracing::info!(%peer, error = %e, "TLS handshake with a client failed");
        }
        Err(_) => {
            Counters::add(&shared.counters.tls_handshake_failures);
            tracing::info!(
                %peer,
                timeout_ms = timeout.as_millis() as u64,
                "TLS handshake with a client timed out"
            );
        }
    }
}

/// Connects to `addr` within `connect_timeout` and handshakes within `tls_handshake_timeout`,
/// verifying the server's certificate, then hands the stream (and what waited for it) to the
/// connection machinery; on any failure, reports the destination and sends nothing.
pub(crate) async fn connect(shared: Arc<Shared>, addr: SocketAddr) {
    let destination = (TransportKind::Tls, addr);
    let Some(client) = shared.tls.as_ref().and_then(|tls| tls.context().client) else {
        tracing::warn!(
            peer = %addr,
            "cannot connect over TLS: TLS is not enabled or there is no CA to verify servers with"
        );
        shared.connect_failed(
            destination,
            DeliveryFailure::ConnectFailed(io::ErrorKind::Unsupported),
        );
        return;
    };
    let stream = match tokio::time::timeout(shared.config.connect_timeout, TcpStream::connect(addr))
        .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return shared.connect_failed(destination, DeliveryFailure::ConnectFailed(e.kind()));
        }
        Err(_) => return shared.connect_failed(destination, DeliveryFailure::ConnectTimeout),
    };
    let connector = TlsConnector::from(client);
    // The SIP core gives an address, so the certificate is checked against the address.
    let name = ServerName::IpAddress(addr.ip().into());
    let timeout = shared.config.tls_handshake_timeout;
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Ok(Ok(stream)) => {
            if let Err(e) = start(&shared, TlsStream::from(stream), addr, None) {
                shared.connect_failed(destination, DeliveryFailure::ConnectFailed(e.kind()));
            }
        }
        Ok(Err(e)) => {
            Counters::add(&shared.counters.tls_handshake_failures);
            tracing::warn!(peer = %addr, error = %e, "TLS handshake with a server failed");
            shared.connect_failed(destination, DeliveryFailure::TlsHandshakeFailed);
        }
        Err(_) => {
            Counters::add(&shared.counters.tls_handshake_failures);
            shared.connect_failed(destination, DeliveryFailure::TlsHandshakeTimeout);
        }
    }
}
