//! Counters the drivers keep, read at scrape time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) open_stream_connections: AtomicU64,
    pub(crate) slow_peers_closed: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) connect_queue_dropped: AtomicU64,
    pub(crate) udp_send_dropped: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) tcp_refused_source: AtomicU64,
    pub(crate) tcp_refused_limit: AtomicU64,
    pub(crate) tls_handshake_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A cheap handle on the transports' counters (atomics, read when asked): hand it to the
/// metrics endpoint.
#[derive(Clone, Debug)]
pub struct TransportStats {
    pub(crate) counters: Arc<Counters>,
}

impl TransportStats {
    /// Stream (TCP and TLS) connections open now, accepted and our own.
    pub fn open_tcp_connections(&self) -> u64 {
        self.counters
            .open_stream_connections
            .load(Ordering::Relaxed)
    }
    /// Connections closed because the peer did not read what we sent (its queue overflowed or
    /// a write timed out).
    pub fn slow_peers_closed(&self) -> u64 {
        self.counters.slow_peers_closed.load(Ordering::Relaxed)
    }
    /// Connects that failed or timed out.
    pub fn connect_failures(&self) -> u64 {
        self.counters.connect_failures.load(Ordering::Relaxed)
    }
    /// Messages dropped because too much was already waiting for a connect to complete.
    pub fn connect_queue_dropped(&self) -> u64 {
        self.counters.connect_queue_dropped.load(Ordering::Relaxed)
    }
    /// Datagrams dropped because the UDP socket would block and its queue was full.
    pub fn udp_send_dropped(&self) -> u64 {
        self.counters.udp_send_dropped.load(Ordering::Relaxed)
    }
    /// Messages handed to the system (datagrams sent, stream messages written).
    pub fn messages_sent(&self) -> u64 {
        self.counters.messages_sent.load(Ordering::Relaxed)
    }
    /// Connections closed at accept because their source is not allowed.
    pub fn tcp_refused_source(&self) -> u64 {
        self.counters.tcp_refused_source.load(Ordering::Relaxed)
    }
    /// Connections closed at accept because their source had its share open already.
    pub fn tcp_refused_limit(&self) -> u64 {
        self.counters.tcp_refused_limit.load(Ordering::Relaxed)
    }
    /// TLS handshakes that failed or timed out, a client's or ours (a client without a valid
    /// certificate, a server whose certificate did not verify, a peer that never finished).
    pub fn tls_handshake_failures(&self) -> u64 {
        self.counters.tls_handshake_failures.load(Ordering::Relaxed)
    }
}
