//! Who may hold a stream connection: accepted connections from a source outside the allowed
//! ones, or past [`TransportConfig::max_tcp_connections_per_source`] from one address, are
//! closed at accept (before any read, any buffer, any task), counted, and logged at most once
//! a minute. One hostile address then costs its own connections only; the global cap
//! ([`TransportConfig::max_tcp_connections`]) stays for everyone else.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, ReadBuf};

use crate::config::TransportConfig;
use crate::stats::Counters;

/// Whether an address may connect at all (the binary's allow-list).
#[derive(Clone)]
pub struct SourceFilter(Arc<dyn Fn(IpAddr) -> bool + Send + Sync>);

impl SourceFilter {
    pub fn new(allows: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> SourceFilter {
        SourceFilter(Arc::new(allows))
    }

    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        (self.0)(ip)
    }
}

impl fmt::Debug for SourceFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SourceFilter(..)")
    }
}

/// How often at most a refused connection is logged.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Accepted connections per source address, and the refusals since the last log line.
#[derive(Default)]
pub(crate) struct Admission {
    table: Arc<Mutex<Table>>,
}

#[derive(Default)]
struct Table {
    per_ip: HashMap<IpAddr, usize>,
    logged_at: Option<Instant>,
    untold: u64,
}

/// Why a connection was closed at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotAllowed,
    SourceLimit,
}

impl Admission {
    fn table(&self) -> MutexGuard<'_, Table> {
        // Plain counts: a panic elsewhere leaves them usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection accepted from `ip`, or says why not. The guard counts it until
    /// dropped (with the connection's reader).
    pub(crate) fn admit(
        &self,
        config: &TransportConfig,
        counters: &Counters,
        ip: IpAddr,
    ) -> Result<InboundGuard, Refusal> {
        let refusal = if config.accept_from.as_ref().is_some_and(|f| !f.allows(ip)) {
            Counters::add(&counters.tcp_refused_source);
            Refusal::NotAllowed
        } else {
            let mut table = self.table();
            let open = table.per_ip.entry(ip).or_default();
            if *open < config.max_tcp_connections_per_source {
                *open += 1;
                return Ok(InboundGuard {
                    ip,
                    table: Arc::clone(&self.table),
                });
            }
            Counters::add(&counters.tcp_refused_limit);
            Refusal::SourceLimit
        };
        self.note(ip, refusal, config.max_tcp_connections_per_source);
        Err(refusal)
    }

    fn note(&self, ip: IpAddr, refusal: Refusal, limit: usize) {
        let now = Instant::now();
        let mut table = self.table();
        table.untold += 1;
        if table
            .logged_at
            .is_some_and(|at| now.saturating_duration_since(at) < LOG_INTERVAL)
        {
            return;
        }
        let refused = std::mem::take(&mut table.untold);
        table.logged_at = Some(now);
        drop(table);
        match refusal {
            Refusal::NotAllowed => tracing::warn!(
                %ip, refused,
                "TCP connection from a source not allowed closed at accept (refusals since the last such line)"
            ),
            Refusal::SourceLimit => tracing::warn!(
                %ip, refused, limit,
                "TCP connection closed at accept: its source has max_tcp_connections_per_source open (refusals since the last such line)"
            ),
        }
    }
}

/// One admitted connection, counted against its source until dropped.
pub(crate) struct InboundGuard {
    ip: IpAddr,
    table: Arc<Mutex<Table>>,
}

impl Drop for InboundGuard {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = table.per_ip.get_mut(&self.ip) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                table.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A connection's read half that keeps its admission: the reader task owns it for exactly
/// the connection's life, so the count drops when the connection ends, however it ends.
pub(crate) struct Admitted<R> {
    pub(crate) inner: R,
    pub(crate) _guard: InboundGuard,
}

impl<R: AsyncRead + Unpin> AsyncRead for Admitted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}
