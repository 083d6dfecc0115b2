//! What the archive says about itself: read by `/health`, `/ready`, `/metrics` at scrape time
//! and by the recorder before it answers an INVITE.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::watch;
use tokio::time::Instant;

use super::ArchiveConfig;

/// Upper bounds (seconds) of the catalog write latency: SQLite commits in a millisecond or
/// less, PostgreSQL over a network in a few; seconds mean a database that struggles.
const WRITE_LATENCY_BUCKETS: [f64; 13] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The worker's side of the health, published on every change.
#[derive(Debug, Clone, Default)]
pub(super) struct State {
    /// Commands the worker holds in memory.
    pub(super) memory: u64,
    /// Commands in the spool files, not yet applied.
    pub(super) spooled: u64,
    /// When the head command was first tried, while it is not applied.
    pub(super) head_since: Option<(Instant, SystemTime)>,
    /// Failed attempts at the head command.
    pub(super) head_failures: u64,
    pub(super) last_error: Option<String>,
    /// Why the last spill to disk failed, while commands that should be on disk are not.
    pub(super) spool_error: Option<String>,
    pub(super) failures: u64,
    pub(super) retries: u64,
    pub(super) rejected: u64,
    pub(super) applied: u64,
    pub(super) startup_replayed: bool,
}

/// The archive's health. Cheap to clone; reading it takes a short read lock, never waits on
/// the worker.
#[derive(Clone)]
pub struct ArchiveHealth {
    state: watch::Receiver<State>,
    incoming: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
    spool_after: Duration,
    unhealthy_after: Duration,
    max_backlog: u64,
    /// Each attempt's time, observed by the worker (`/metrics`).
    write_latency: Histogram,
}

/// The archive at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSnapshot {
    /// Commands waiting in memory (sent and not yet applied or spooled).
    pub memory: u64,
    /// Commands waiting in the spool on disk.
    pub spooled: u64,
    /// Since when the oldest waiting command has been failing: it failed at least once, or
    /// has been stuck in one call for longer than `spool_after`. `None` while writes go
    /// through.
    pub failing_since: Option<SystemTime>,
    /// The latest failure (transient or permanent), credentials redacted.
    pub last_error: Option<String>,
    /// Why commands that should be on disk are only in memory (the spool cannot be written).
    pub spool_error: Option<String>,
    /// Failed attempts since start (each retry that failed counts).
    pub failures: u64,
    /// Attempts that were retries of a command that had failed.
    pub retries: u64,
    /// Commands given up as permanent failures (in `DATA/spool/rejected.jsonl`).
    pub rejected: u64,
    /// Commands applied since start.
    pub applied: u64,
    /// Commands sent after the archive was closed (logged; should stay 0).
    pub lost: u64,
    /// The spool found at start has been fully applied.
    pub startup_replayed: bool,
    /// Why [`ArchiveHealth::healthy`] is false, if it is.
    pub unhealthy: Option<Unhealthy>,
}

impl ArchiveSnapshot {
    /// Commands waiting, in memory and on disk.
    pub fn backlog(&self) -> u64 {
        self.memory + self.spooled
    }
}

/// Why the archive is unhealthy, first matching reason in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unhealthy {
    /// Commands that must go to disk cannot be written there: they are only in memory.
    SpoolUnwritable { error: String },
    /// The oldest waiting command has been failing for `unhealthy_after` or longer.
    Failing {
        since: SystemTime,
        error: Option<String>,
    },
    /// More than `max_backlog` commands wait.
    Backlog { backlog: u64, limit: u64 },
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unhealthy::SpoolUnwritable { error } => {
                write!(f, "catalog writes cannot be spooled to disk: {error}")
            }
            Unhealthy::Failing { error, .. } => {
                write!(f, "catalog writes are failing")?;
                match error {
                    Some(error) => write!(f, ": {error}"),
                    None => Ok(()),
                }
            }
            Unhealthy::Backlog { backlog, limit } => {
                write!(f, "{backlog} catalog writes wait (limit {limit})")
            }
        }
    }
}

impl ArchiveHealth {
    pub(super) fn new(
        state: watch::Receiver<State>,
        incoming: Arc<AtomicU64>,
        lost: Arc<AtomicU64>,
        config: &ArchiveConfig,
    ) -> ArchiveHealth {
        ArchiveHealth {
            state,
            incoming,
            lost,
            spool_after: config.spool_after,
            unhealthy_after: config.unhealthy_after,
            max_backlog: config.max_backlog,
            write_latency: Histogram::new(WRITE_LATENCY_BUCKETS),
        }
    }

    /// How long catalog writes take: one observation per attempt (`/metrics`).
    pub fn write_latency(&self) -> &Histogram {
        &self.write_latency
    }

    /// The archive now. `unhealthy` is set while the spool cannot be written when it has to be,
    /// while the oldest waiting command has been failing (or stuck) for `unhealthy_after`, or
    /// while more than `max_backlog` commands wait: the recorder answers new INVITEs 503
    /// meanwhile, and it clears by itself once the cause is gone.
    pub fn snapshot(&self) -> ArchiveSnapshot {
        let state = self.state.borrow().clone();
        self.judge(&state, Instant::now())
    }

    /// Waits until `condition` holds for a snapshot taken after a change of the worker's
    /// state (or now). For tests and for `serve`'s start (waiting for the startup replay).
    pub async fn wait_for(&mut self, mut condition: impl FnMut(&ArchiveSnapshot) -> bool) {
        loop {
            let snapshot = {
                let state = self.state.borrow_and_update().clone();
                self.judge(&state, Instant::now())
            };
            if condition(&snapshot) {
                return;
            }
            if self.state.changed().await.is_err() {
                // The worker is gone: nothing will change any more.
                return;
            }
        }
    }

    fn judge(&self, state: &State, now: Instant) -> ArchiveSnapshot {
        let memory = state.memory + self.incoming.load(Ordering::Relaxed);
        let failing_since = state.head_since.and_then(|(since, wall)| {
            let stuck = now.saturating_duration_since(since) >= self.spool_after;
            (state.head_failures > 0 || stuck).then_some((since, wall))
        });
        let backlog = memory + state.spooled;
        let failing_too_long = failing_since
            .filter(|(since, _)| now.saturating_duration_since(*since) >= self.unhealthy_after);
        let unhealthy = if let Some(error) = &state.spool_error {
            Some(Unhealthy::SpoolUnwritable {
                error: error.clone(),
            })
        } else if let Some((_, wall)) = failing_too_long {
            Some(Unhealthy::Failing {
                since: wall,
                error: state.last_error.clone(),
            })
        } else if backlog > self.max_backlog {
            Some(Unhealthy::Backlog {
                backlog,
                limit: self.max_backlog,
            })
        } else {
            None
        };
        ArchiveSnapshot {
            memory,
            spooled: state.spooled,
            failing_since: failing_since.map(|(_, wall)| wall),
            last_error: state.last_error.clone(),
            spool_error: state.spool_error.clone(),
            failures: state.failures,
            retries: state.retries,
            rejected: state.rejected,
            applied: state.applied,
            lost: self.lost.load(Ordering::Relaxed),
            startup_replayed: state.startup_replayed,
            unhealthy,
        }
    }
}
