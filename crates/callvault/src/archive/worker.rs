//! The archive's worker task: applies the queue's head, retries, spools, dead-letters.
//!
//! The queue is the spool (oldest) followed by `memory` (newest), so the head is the spool's
//! first entry when there is one, else memory's first command. Spilling moves all of memory to
//! the spool's end, which keeps that order whatever is in flight: an attempt works on a copy of
//! the head, and settling it pops the queue's front, wherever that now lives.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use callvault_catalog::Catalog;
use prometheus_client::metrics::histogram::Histogram;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::apply::{Outcome, apply};
use super::health::State;
use super::spool::{Entry, SPOOL_DIR, Spool, dead_letter};
use super::{ArchiveCommand, ArchiveConfig, Closed};
use crate::notify::Notifier;

/// What one attempt at the head came to.
enum Step {
    /// Applied (or found applied already).
    Applied,
    /// Written to `rejected.jsonl`.
    DeadLettered,
    Transient(String),
    Permanent(String),
    /// `rejected.jsonl` could not be written.
    DeadLetterFailed(String),
}

/// The head command's retry bookkeeping.
struct Head {
    /// When it was first tried (monotonic, and wall clock for the health).
    since: Option<(Instant, SystemTime)>,
    failures: u64,
    delay: Duration,
    retry_at: Instant,
    /// Set once it failed permanently: it is dead-lettered before the queue moves on.
    rejection: Option<String>,
}

pub(super) struct Worker {
    catalog: Catalog,
    notifier: Option<Notifier>,
    data_dir: PathBuf,
    config: ArchiveConfig,
    rx: mpsc::UnboundedReceiver<ArchiveCommand>,
    senders_gone: bool,
    incoming: Arc<AtomicU64>,
    state: watch::Sender<State>,
    close: watch::Receiver<Option<Instant>>,
    close_gone: bool,
    closing: Option<Instant>,
    memory: VecDeque<ArchiveCommand>,
    /// Opened at the first need (retried until it opens); nothing is applied before, so the
    /// spool of an earlier run goes first.
    spool: Option<Spool>,
    /// Entries of the spool found at start not yet applied.
    startup_left: u64,
    head: Head,
    spill_delay: Duration,
    spill_retry_at: Option<Instant>,
    write_latency: Option<Histogram>,
}

impl Worker {
    pub(super) fn new(
        catalog: Catalog,
        data_dir: PathBuf,
        config: ArchiveConfig,
        rx: mpsc::UnboundedReceiver<ArchiveCommand>,
        incoming: Arc<AtomicU64>,
        state: watch::Sender<State>,
        close: watch::Receiver<Option<Instant>>,
    ) -> Worker {
        let retry_initial = config.retry_initial;
        Worker {
            catalog,
            notifier: None,
            data_dir,
            config,
            rx,
            senders_gone: false,
            incoming,
            state,
            close,
            close_gone: false,
            closing: None,
            memory: VecDeque::new(),
            spool: None,
            startup_left: 0,
            head: Head {
                since: None,
                failures: 0,
                delay: retry_initial,
                retry_at: Instant::now(),
                rejection: None,
            },
            spill_delay: retry_initial,
            spill_retry_at: None,
            write_latency: None,
        }
    }

    /// Where each attempt's time goes (`/metrics`).
    pub(super) fn timing(mut self, write_latency: Histogram) -> Worker {
        self.write_latency = Some(write_latency);
        self
    }

    /// What prepares the `Notify` commands (without one they are applied as done).
    pub(super) fn notifying(mut self, notifier: Option<Notifier>) -> Worker {
        self.notifier = notifier;
        self
    }

    pub(super) async fn run(mut self) -> Closed {
        loop {
            self.take_incoming();
            if self
                .closing
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                return self.finish().await;
            }
            self.maybe_spill().await;
            let entry = match self.head_entry().await {
                Ok(entry) => entry,
                Err(e) => {
                    // The spool cannot be opened or read: nothing may overtake it.
                    self.failed(format!("reading the spool: {e}"));
                    if !self.idle(Some(self.head.retry_at)).await {
                        return self.finish().await;
                    }
                    continue;
                }
            };
            let Some(entry) = entry else {
                if self.closing.is_some() {
                    // Everything applied: stop taking commands, and stop once none slipped in.
                    self.rx.close();
                    self.take_incoming();
                    if self.memory.is_empty() {
                        return self.finish().await;
                    }
                    continue;
                }
                if !self.idle(None).await {
                    return self.finish().await;
                }
                continue;
            };

            let now = Instant::now();
            if self.head.retry_at > now {
                // Backing off: keep taking commands (and spilling them) meanwhile.
                if !self.idle(Some(self.head.retry_at)).await {
                    return self.finish().await;
                }
                continue;
            }
            if self.head.since.is_none() {
                self.head.since = Some((now, SystemTime::now()));
                self.publish();
            } else if self.head.failures > 0 {
                self.state.send_modify(|s| s.retries += 1);
            }
            let attempt = attempt(
                self.catalog.clone(),
                self.notifier.clone(),
                self.data_dir.clone(),
                entry,
                self.head.rejection.clone(),
                self.write_latency.clone(),
            );
            tokio::pin!(attempt);
            let step = loop {
                let spill_at = self.spill_deadline(Instant::now());
                tokio::select! {
                    biased;
                    step = &mut attempt => break Some(step),
                    () = sleep_until(self.closing) => break None,
                    changed = self.close.changed(), if self.closing.is_none() && !self.close_gone => {
                        self.close_requested(changed);
                    }
                    command = self.rx.recv(), if !self.senders_gone => match command {
                        Some(command) => {
                            self.push(command);
                            self.take_incoming();
                            self.maybe_spill().await;
                        }
                        None => self.senders_gone = true,
                    },
                    () = sleep_until(spill_at) => self.maybe_spill().await,
                }
            };
            match step {
                Some(step) => self.settle(step).await,
                // The close deadline: the attempt is abandoned (its command stays queued; if
                // it committed anyway, replaying it changes nothing).
                None => return self.finish().await,
            }
        }
    }

    /// The queue's oldest entry: the spool's first, else memory's.
    async fn head_entry(&mut self) -> std::io::Result<Option<Entry>> {
        if let Some(entry) = self.spool().await?.front().await? {
            return Ok(Some(entry.clone()));
        }
        Ok(self.memory.front().cloned().map(Entry::Command))
    }

    /// The spool, opened at the first call.
    async fn spool(&mut self) -> std::io::Result<&mut Spool> {
        if self.spool.is_none() {
            let spool = Spool::open(self.data_dir.join(SPOOL_DIR)).await?;
            self.startup_left = spool.len();
            if spool.len() > 0 {
                info!(
                    commands = spool.len(),
                    "replaying catalog writes spooled by an earlier run"
                );
            }
            self.spool = Some(spool);
            let replayed = self.startup_left == 0;
            self.state.send_modify(|s| s.startup_replayed = replayed);
            self.publish();
        }
        Ok(self.spool.as_mut().expect("opened above"))
    }

    async fn settle(&mut self, step: Step) {
        let now = Instant::now();
        match step {
            Step::Applied | Step::DeadLettered => {
                if let Err(e) = self.pop().await {
                    // Applied, but still at the head: it will be applied again, harmlessly.
                    self.failed(format!("reading the spool: {e}"));
                    return;
                }
                if self.head.failures > 0 && self.head.rejection.is_none() {
                    info!(
                        failures = self.head.failures,
                        "catalog writes go through again"
                    );
                }
                if matches!(step, Step::Applied) {
                    self.state.send_modify(|s| s.applied += 1);
                }
                self.head = Head {
                    since: None,
                    failures: 0,
                    delay: self.config.retry_initial,
                    retry_at: now,
                    rejection: None,
                };
                self.publish();
            }
            Step::Transient(error) => self.failed(error),
            Step::DeadLetterFailed(error) => {
                self.failed(format!("writing {SPOOL_DIR}/rejected.jsonl: {error}"));
            }
            Step::Permanent(error) => {
                let command = self.head_entry().await.ok().flatten();
                let (recording_id, what) = match &command {
                    Some(Entry::Command(command)) => (
                        command.recording_id().unwrap_or("-").to_owned(),
                        command.describe(),
                    ),
                    _ => ("-".to_owned(), "spool line".to_owned()),
                };
                error!(
                    recording_id = %recording_id,
                    command = %what,
                    error = %error,
                    "catalog write rejected; kept in spool/rejected.jsonl"
                );
                self.state.send_modify(|s| {
                    s.failures += 1;
                    s.rejected += 1;
                    s.last_error = Some(error.clone());
                });
                self.head.rejection = Some(error);
                self.head.retry_at = now;
            }
        }
    }

    /// A failed attempt that waiting can cure: retry after the back-off.
    fn failed(&mut self, error: String) {
        let now = Instant::now();
        if self.head.failures == 0 {
            warn!(error = %error, "catalog write failed; retrying until it goes through");
        }
        self.head.failures += 1;
        self.head.since.get_or_insert((now, SystemTime::now()));
        self.head.retry_at = now + self.head.delay;
        self.head.delay = (self.head.delay * 2).min(self.config.retry_max);
        self.state.send_modify(|s| {
            s.failures += 1;
            s.last_error = Some(error);
        });
        self.publish();
    }

    /// Removes the queue's front.
    async fn pop(&mut self) -> std::io::Result<()> {
        let spool = self.spool().await?;
        if spool.front().await?.is_some() {
            spool.pop().await?;
            if self.startup_left > 0 {
                self.startup_left -= 1;
                if self.startup_left == 0 {
                    info!("catalog writes spooled by an earlier run are applied");
                    self.state.send_modify(|s| s.startup_replayed = true);
                }
            }
        } else {
            self.memory.pop_front();
        }
        Ok(())
    }

    fn push(&mut self, command: ArchiveCommand) {
        self.incoming.fetch_sub(1, Ordering::Relaxed);
        self.memory.push_back(command);
    }

    fn take_incoming(&mut self) {
        let mut taken = false;
        while let Ok(command) = self.rx.try_recv() {
            self.push(command);
            taken = true;
        }
        if taken {
            self.publish();
        }
    }

    /// When memory must go to the spool: once the head has been pending `spool_after`, or at
    /// once past `memory_limit`; not before the back-off of a failed spill.
    fn spill_deadline(&self, now: Instant) -> Option<Instant> {
        if self.memory.is_empty() {
            return None;
        }
        let due = if self.memory.len() > self.config.memory_limit {
            now
        } else {
            self.head.since?.0 + self.config.spool_after
        };
        Some(self.spill_retry_at.map_or(due, |retry| retry.max(due)))
    }

    async fn maybe_spill(&mut self) {
        let now = Instant::now();
        if self.spill_deadline(now).is_some_and(|due| due <= now) {
            self.spill().await;
        }
    }

    /// Appends all of memory to the spool; on failure keeps it in memory and says so.
    async fn spill(&mut self) -> bool {
        let commands: Vec<ArchiveCommand> = self.memory.drain(..).collect();
        let written = match self.spool().await {
            Ok(spool) => spool.append(&commands).await,
            Err(e) => Err(e.to_string()),
        };
        match written {
            Ok(()) => {
                self.spill_delay = self.config.retry_initial;
                self.spill_retry_at = None;
                if self.state.borrow().spool_error.is_some() {
                    info!("catalog writes can be spooled to disk again");
                }
                self.state.send_modify(|s| s.spool_error = None);
                self.publish();
                true
            }
            Err(error) => {
                self.memory = commands.into();
                if self.state.borrow().spool_error.is_none() {
                    error!(
                        error = %error,
                        commands = self.memory.len(),
                        "cannot spool catalog writes to disk; keeping them in memory"
                    );
                }
                self.spill_retry_at = Some(Instant::now() + self.spill_delay);
                self.spill_delay = (self.spill_delay * 2).min(self.config.retry_max);
                self.state.send_modify(|s| s.spool_error = Some(error));
                self.publish();
                false
            }
        }
    }

    /// Waits until `until` (or for ever), taking commands in and watching for the close.
    /// Returns on any news; false once the close deadline has passed.
    async fn idle(&mut self, until: Option<Instant>) -> bool {
        let spill_at = self.spill_deadline(Instant::now());
        tokio::select! {
            biased;
            () = sleep_until(self.closing) => return false,
            changed = self.close.changed(), if self.closing.is_none() && !self.close_gone => {
                self.close_requested(changed);
            }
            command = self.rx.recv(), if !self.senders_gone => match command {
                Some(command) => {
                    self.push(command);
                    self.take_incoming();
                    self.publish();
                }
                None => self.senders_gone = true,
            },
            () = sleep_until(until) => {}
            () = sleep_until(spill_at) => self.maybe_spill().await,
        }
        true
    }

    fn close_requested(&mut self, changed: Result<(), watch::error::RecvError>) {
        match changed {
            Ok(()) => self.closing = *self.close.borrow_and_update(),
            // The handle is gone without closing: only an abort follows.
            Err(_) => self.close_gone = true,
        }
    }

    /// Stops: what is still in memory goes to the spool for the next start.
    async fn finish(mut self) -> Closed {
        self.rx.close();
        self.take_incoming();
        let mut lost = 0;
        if !self.memory.is_empty() && !self.spill().await {
            for command in self.memory.drain(..) {
                error!(
                    recording_id = command.recording_id().unwrap_or("-"),
                    command = %command.describe(),
                    "archive closing: a catalog write could be neither applied nor spooled"
                );
                lost += 1;
            }
        }
        let spooled = self.spool.as_ref().map_or(0, Spool::len);
        info!(spooled, lost, "archive closed");
        self.publish();
        Closed { spooled, lost }
    }

    fn publish(&self) {
        let memory = self.memory.len() as u64;
        let spooled = self.spool.as_ref().map_or(0, Spool::len);
        let head_since = self.head.since;
        let head_failures = self.head.failures;
        self.state.send_modify(|s| {
            s.memory = memory;
            s.spooled = spooled;
            s.head_since = head_since;
            s.head_failures = head_failures;
            if memory == 0 {
                // Nothing waits that needs the disk.
                s.spool_error = None;
            }
        });
    }
}

/// One attempt at the head.
async fn attempt(
    catalog: Catalog,
    notifier: Option<Notifier>,
    data_dir: PathBuf,
    entry: Entry,
    rejection: Option<String>,
    write_latency: Option<Histogram>,
) -> Step {
    if let Some(error) = rejection {
        let line = dead_letter_line(&entry, &error);
        return match dead_letter(data_dir.join(SPOOL_DIR), line).await {
            Ok(()) => Step::DeadLettered,
            Err(e) => Step::DeadLetterFailed(e.to_string()),
        };
    }
    match entry {
        Entry::Unreadable { error, .. } => Step::Permanent(error),
        Entry::Command(command) => {
            let started = std::time::Instant::now();
            let outcome = apply(&catalog, notifier.as_ref(), &data_dir, &command).await;
            if let Some(histogram) = &write_latency {
                histogram.observe(started.elapsed().as_secs_f64());
            }
            match outcome {
                Outcome::Applied => Step::Applied,
                Outcome::Transient(error) => Step::Transient(error),
                Outcome::Permanent(error) => Step::Permanent(error),
            }
        }
    }
}

/// A line of `rejected.jsonl`.
fn dead_letter_line(entry: &Entry, error: &str) -> String {
    let rejected_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("the current UTC time formats as RFC 3339");
    let line = match entry {
        Entry::Command(command) => serde_json::json!({
            "rejected_at": rejected_at,
            "error": error,
            "command": command,
        }),
        Entry::Unreadable { line, .. } => serde_json::json!({
            "rejected_at": rejected_at,
            "error": error,
            "spool_line": line,
        }),
    };
    line.to_string()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
