//! TCP: the listener, the connector, and the socket options of a TCP stream. Everything else
//! about a connection is in `stream`, shared with TLS.

use crate::Shared;
use crate::admission::{Admitted, InboundGuard};
use crate::event::DeliveryFailure;
use crate::stream::StreamWriter;
use callvault_sip::TransportKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

impl StreamWriter for OwnedWriteHalf {
    fn reset_on_close(&self) {
        // SO_LINGER 0: the close sends RST and frees the unsent bytes at once.
        let _ = self.as_ref().set_zero_linger();
    }
}

/// Registers an established TCP stream; `admitted` for one we accepted.
fn start(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Option<InboundGuard>,
) -> bool {
    // Requests and responses are single writes; do not hold them back for coalescing.
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let started = match admitted {
        Some(guard) => {
            let read = Admitted {
                inner: read,
                _guard: guard,
            };
            shared.start_connection(TransportKind::Tcp, peer, read, write)
        }
        None => shared.start_connection(TransportKind::Tcp, peer, read, write),
    };
    started.is_some()
}

/// Accepts connections until the SIP loop drops its receiver.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                match shared
                    .admission
                    .admit(&shared.config, &shared.counters, peer.ip())
                {
                    Ok(guard) => {
                        if !start(&shared, stream, peer, Some(guard)) {
                            tracing::warn!(%peer, "TCP connection refused: connection limit reached");
                        }
                    }
                    // Reset rather than FIN: nothing of this peer's is kept or read.
                    Err(_) => {
                        let _ = stream.set_zero_linger();
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                // Out of file descriptors: back off instead of spinning on the error.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if shared.events.is_closed() {
            return;
        }
    }
}

/// Connects to `addr` within `connect_timeout`, then hands the stream (and what waited for
/// it) to the connection machinery; on failure, reports the destination.
pub(crate) async fn connect(shared: Arc<Shared>, addr: SocketAddr) {
    let destination = (TransportKind::Tcp, addr);
    match tokio::time::timeout(shared.config.connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            start(&shared, stream, addr, None);
        }
        Ok(Err(e)) => shared.connect_failed(destination, DeliveryFailure::ConnectFailed(e.kind())),
        Err(_) => shared.connect_failed(destination, DeliveryFailure::ConnectTimeout),
    }
}
