//! The durable archive: catalog rows and metadata files, written in the order the recorder
//! asked for them, off the signalling path, and never lost to a database or disk that is
//! slow, locked, down or full.
//!
//! # How it works
//! - **The recorder never waits.** [`ArchiveQueue::send`] is a synchronous enqueue that never
//!   blocks and never drops (an unbounded channel: the bound is [`ArchiveHealth::healthy`],
//!   which the recorder uses to refuse new calls, so only calls already up can add more).
//! - **One worker applies commands strictly in order**, one at a time. The queue is a spool on
//!   disk (oldest) followed by memory (newest); the head is always the oldest command.
//! - **A transient failure** ([`callvault_catalog::Error::is_transient`], or an I/O error such as
//!   a full disk for a metadata file) is retried with exponential back-off (`retry_initial`
//!   doubling to `retry_max`); the command is never skipped and nothing behind it overtakes it.
//! - **A permanent failure** (the same command would fail again: an unknown recording, a
//!   constraint, a file that exists with other content) is logged once with its recording id,
//!   counted, and appended to `DATA/spool/rejected.jsonl` with the error; then the queue moves
//!   on. An insert of a recording that exists counts as applied (a replay).
//! - **Spooling.** Once the head has been pending for `spool_after` (failing, or stuck in a
//!   call that does not return: SQLite waits out its busy timeout, PostgreSQL its acquire
//!   timeout), or memory holds more than `memory_limit` commands, everything in memory is
//!   appended to `DATA/spool/archive-<n>.jsonl` (one JSON command per line, one fsync per
//!   batch), and later commands follow it there while the failure lasts. When the catalog
//!   answers again the spool is applied from its oldest file on, and each file is deleted once
//!   fully applied. Commands are idempotent (see the catalog's design notes), so re-applying a
//!   file's first commands after a crash changes nothing.
//! - **At start** the spool left by an earlier run is the head of the queue: it is applied
//!   before any new command (it predates them). [`ArchiveSnapshot::startup_replayed`] says
//!   when it is done.
//! - **A full disk.** If the spool cannot be written (the catalog may be on the same disk),
//!   commands stay in memory, the archive reports itself unhealthy, and the spool is tried
//!   again with back-off; nothing is dropped. Whichever comes back first, the catalog or the
//!   disk, takes the backlog.
//! - **Shutdown.** [`Archive::close`] applies what it can until its deadline, then spools the
//!   rest for the next start. Dropping the [`Archive`] without closing it stops the worker at
//!   once, as a crash would: what was spooled is replayed by the next start, what was only in
//!   memory is lost (at most what arrived since the last spill: `spool_after` of an outage).
//!
//! # The spool format
//! Each line of `archive-<n>.jsonl` is one [`ArchiveCommand`] as serde's JSON (externally
//! tagged: `{"Dtmf":{…}}`); files are applied in the order of `<n>`. A line that does not
//! parse (a write torn by a crash, a hand edit) is not applied: it goes to `rejected.jsonl` as
//! `spool_line`. Each line of `rejected.jsonl` is `{"rejected_at": RFC 3339, "error": text,
//! "command": {…}}` (or `"spool_line": text`), for an operator to inspect and replay by hand.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use callvault_catalog::{self as catalog, Catalog};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::error;

mod apply;
mod health;
mod spool;
mod worker;

pub use apply::io_is_transient;
pub use health::{ArchiveHealth, ArchiveSnapshot};

/// One catalog write or metadata file, as the recorder asks for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ArchiveCommand {
    Insert(Box<catalog::NewRecording>),
    /// A metadata document received mid-call; it carries its number.
    Revision {
        recording_id: String,
        revision: catalog::NewMetadataRevision,
    },
    /// Streams added mid-call (each with its position).
    AddLegs {
        recording_id: String,
        legs: Vec<catalog::NewLeg>,
    },
    /// A digit; it carries its `seq`.
    Dtmf {
        recording_id: String,
        event: catalog::DtmfEvent,
    },
    /// Who sends which leg from `at_ms` on (a metadata revision or a new offer).
    Associations {
        recording_id: String,
        at_ms: i64,
        revision: i64,
        current: Vec<(String, String)>,
    },
    Complete(catalog::Completion),
    /// A paused interval of a live recording, opened (`to_ms: None`) or closed; keyed by its
    /// `seq`, so a replay rewrites the same row.
    Pause {
        recording_id: String,
        pause: catalog::Pause,
    },
    /// A file under the data directory (raw SIPREC metadata beside the WAVs), `path` relative
    /// to it. Created whole or not at all (written aside, then linked into place); an existing
    /// file with the same bytes counts as written, one with other bytes is a permanent failure.
    WriteFile {
        path: PathBuf,
        bytes: Vec<u8>,
    },
    /// Tell the world (webhooks, `recording.json`, the `on_complete` hook: see `notify`),
    /// queued after what it announces, so the catalog holds it when this is applied.
    Notify {
        recording_id: String,
        event: crate::notify::Event,
        /// The lock a `recording.locked` or `recording.unlocked` is about.
        #[serde(default)]
        lock_id: Option<String>,
    },
}

impl ArchiveCommand {
    /// The recording the command is about, for logs (`None` for a file).
    pub fn recording_id(&self) -> Option<&str> {
        match self {
            ArchiveCommand::Insert(recording) => Some(&recording.id),
            ArchiveCommand::Revision { recording_id, .. }
            | ArchiveCommand::AddLegs { recording_id, .. }
            | ArchiveCommand::Dtmf { recording_id, .. }
            | ArchiveCommand::Associations { recording_id, .. }
            | ArchiveCommand::Pause { recording_id, .. }
            | ArchiveCommand::Notify { recording_id, .. } => Some(recording_id),
            ArchiveCommand::Complete(completion) => Some(&completion.recording_id),
            ArchiveCommand::WriteFile { .. } => None,
        }
    }

    /// What the command is, for logs: its kind and what it names.
    fn describe(&self) -> String {
        match self {
            ArchiveCommand::Insert(_) => "insert".to_owned(),
            ArchiveCommand::Revision { revision, .. } => {
                format!("metadata revision {}", revision.number)
            }
            ArchiveCommand::AddLegs { .. } => "add legs".to_owned(),
            ArchiveCommand::Dtmf { event, .. } => format!("DTMF {}", event.seq),
            ArchiveCommand::Associations { at_ms, .. } => format!("associations at {at_ms} ms"),
            ArchiveCommand::Complete(_) => "completion".to_owned(),
            ArchiveCommand::Pause { pause, .. } => format!("pause {}", pause.seq),
            ArchiveCommand::WriteFile { path, .. } => format!("file {}", path.display()),
            ArchiveCommand::Notify { event, .. } => format!("notify {event}"),
        }
    }
}

/// How the archive retries, spools and judges itself; [`ArchiveConfig::default`] is what
/// `serve` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// How long the head command may stay unapplied (failing or stuck) before the commands in
    /// memory go to the spool on disk. Also when [`ArchiveSnapshot::failing_since`] starts
    /// counting a stuck call as failing.
    pub spool_after: Duration,
    /// Commands kept in memory before they go to the spool even while the catalog works
    /// (a backlog replaying after an outage).
    pub memory_limit: usize,
    /// The first retry delay after a transient failure; doubled after each further failure.
    pub retry_initial: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
    /// [`ArchiveHealth::healthy`] is false once the head has been failing this long…
    pub unhealthy_after: Duration,
    /// …or once this many commands wait (memory and spool).
    pub max_backlog: u64,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            spool_after: Duration::from_secs(2),
            memory_limit: 10_000,
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
            unhealthy_after: Duration::from_secs(10),
            max_backlog: 100_000,
        }
    }
}

/// The recorder's end of the archive. Cheap to clone.
#[derive(Clone)]
pub struct ArchiveQueue {
    tx: mpsc::UnboundedSender<ArchiveCommand>,
    /// Sent and not yet taken by the worker.
    incoming: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
}

impl ArchiveQueue {
    /// Hands a command to the archive. Never blocks, never drops: the only command not kept
    /// is one sent after [`Archive::close`] finished (logged as an error and counted in
    /// [`ArchiveSnapshot::lost`]); send everything before closing.
    pub fn send(&self, command: ArchiveCommand) {
        self.incoming.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(command)) = self.tx.send(command) {
            self.incoming.fetch_sub(1, Ordering::Relaxed);
            self.lost.fetch_add(1, Ordering::Relaxed);
            error!(
                recording_id = command.recording_id().unwrap_or("-"),
                command = %command.describe(),
                "archive closed: a catalog write was lost"
            );
        }
    }
}

/// The handle to the archive's worker, to close it at shutdown.
pub struct Archive {
    close: watch::Sender<Option<Instant>>,
    task: Option<tokio::task::JoinHandle<Closed>>,
}

/// What [`Archive::close`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// Commands left in the spool for the next start.
    pub spooled: u64,
    /// Commands neither applied nor spooled (the disk was full too); each was logged with its
    /// recording id.
    pub lost: u64,
}

impl Archive {
    /// Applies what it can until `deadline`, then spools the rest to disk for the next start
    /// and stops. Returns early once everything is applied.
    pub async fn close(mut self, deadline: Instant) -> Closed {
        self.close.send_replace(Some(deadline));
        let task = self
            .task
            .take()
            .expect("the task is taken only by close, which consumes the archive");
        match task.await {
            Ok(closed) => closed,
            Err(e) => {
                error!(error = %e, "the archive worker ended abnormally; its memory is lost");
                Closed {
                    spooled: 0,
                    lost: 0,
                }
            }
        }
    }
}

impl Drop for Archive {
    /// Not closed: stop now, as a crash would (the spool stays for the next start).
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the archive worker (inside a tokio runtime). The spool left in `data_dir/spool` by
/// an earlier run is applied first.
#[cfg(test)]
pub fn start(
    catalog: Catalog,
    data_dir: PathBuf,
    config: ArchiveConfig,
) -> (ArchiveQueue, Archive, ArchiveHealth) {
    start_notifying(catalog, data_dir, config, None)
}

/// [`start`], with what prepares the [`ArchiveCommand::Notify`] events (without one they are
/// applied as done: nothing to tell).
pub fn start_notifying(
    catalog: Catalog,
    data_dir: PathBuf,
    config: ArchiveConfig,
    notifier: Option<crate::notify::Notifier>,
) -> (ArchiveQueue, Archive, ArchiveHealth) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (close_tx, close_rx) = watch::channel(None);
    let incoming = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let (state_tx, state_rx) = watch::channel(health::State::default());
    let health = ArchiveHealth::new(state_rx, Arc::clone(&incoming), Arc::clone(&lost), &config);
    let worker = worker::Worker::new(
        catalog,
        data_dir,
        config,
        rx,
        Arc::clone(&incoming),
        state_tx,
        close_rx,
    )
    .notifying(notifier)
    .timing(health.write_latency().clone());
    let task = tokio::spawn(worker.run());
    let queue = ArchiveQueue { tx, incoming, lost };
    let archive = Archive {
        close: close_tx,
        task: Some(task),
    };
    (queue, archive, health)
}

/// An error and its sources as one line, with any credentials in URLs hidden.
fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    crate::log::redact_urls(&text).into_owned()
}

#[cfg(test)]
mod tests;
