//! Telling the world a recording changed: completion webhooks (`[[notify]]`), the
//! `recording.json` file beside the WAVs, and the `on_complete` command (`[hooks]`).
//!
//! # How it works
//! - **Where events come from.** The recorder queues [`ArchiveCommand::Notify`] right after a
//!   recording's completion, and the API (lock, unlock, delete) through [`ApiEvents`]: both go
//!   through the archive, so an event is handled after the catalog holds what it announces,
//!   in order, retried while the catalog is down and spooled to disk like any catalog write.
//! - **Preparing an event** ([`Notifier::prepare`], in the archive's worker, never on the SIP
//!   loop): read the recording as `recordings show --json` prints it, write `recording.json`
//!   (final events only), put one delivery per interested receiver in the outbox on disk
//!   (`DATA/spool/notify/<receiver>/<key>.json`, written aside then renamed, synced), wake
//!   those receivers' tasks, start the hook. Only local disk and the catalog: the network is
//!   never waited on here.
//! - **Delivering** (`delivery.rs`): one task per receiver, so a dead receiver delays only its
//!   own deliveries. Each delivery is POSTed, signed, until a 2xx; a failure or another status
//!   waits `retry_initial` doubling to `retry_max`. A delivery's file is deleted only after its
//!   2xx, and the outbox is read back at start: deliveries are at-least-once, across restarts.
//!   The idempotency key (`Idempotency-Key`: recording id and event) lets a receiver drop the
//!   repeats.
//! - **The hook** (`hook.rs`): argv, no shell, in its own task with a timeout; a run lost to a
//!   restart is not redone unless the event is (see the README).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use callvault_catalog::{Catalog, RecordingDetails, RecordingState, Scope};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::archive::{ArchiveCommand, ArchiveQueue};

mod delivery;
mod hook;
mod outbox;
pub(crate) mod record_file;
pub mod settings;

pub use settings::{HooksConfig, NotifyTarget};

/// What happened to a recording; the name is `X-Callvault-Event` and the body's `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    /// Final: every file closed, the catalog complete (state `complete` or `interrupted`).
    #[serde(rename = "recording.completed")]
    Completed,
    /// Final, but a leg's file could not be written (state `failed`).
    #[serde(rename = "recording.failed")]
    Failed,
    #[serde(rename = "recording.deleted")]
    Deleted,
    #[serde(rename = "recording.locked")]
    Locked,
    #[serde(rename = "recording.unlocked")]
    Unlocked,
}

impl Event {
    pub const ALL: [Event; 5] = [
        Event::Completed,
        Event::Failed,
        Event::Deleted,
        Event::Locked,
        Event::Unlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Completed => "recording.completed",
            Event::Failed => "recording.failed",
            Event::Deleted => "recording.deleted",
            Event::Locked => "recording.locked",
            Event::Unlocked => "recording.unlocked",
        }
    }

    /// The event a recording's end is announced with.
    pub fn of_final(state: RecordingState) -> Event {
        match state {
            RecordingState::Failed => Event::Failed,
            _ => Event::Completed,
        }
    }

    /// Whether the recording is over: `recording.json` is written and the hook runs.
    pub fn is_final(self) -> bool {
        matches!(self, Event::Completed | Event::Failed)
    }
}

impl std::str::FromStr for Event {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Event::ALL.into_iter().find(|e| e.as_str() == s).ok_or(())
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters for `/metrics`, read at scrape time.
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Webhook deliveries answered 2xx.
    pub delivered_total: AtomicU64,
    /// POSTs that failed (no answer, or not 2xx); each is retried.
    pub failed_attempts_total: AtomicU64,
    /// Deliveries waiting in the outbox (all receivers).
    pub pending: AtomicI64,
    /// `on_complete` runs started, and those that failed (exit status, timeout, not started).
    pub hook_runs_total: AtomicU64,
    pub hook_failures_total: AtomicU64,
}

/// Why preparing an event failed, as the archive sorts it.
#[derive(Debug)]
pub enum PrepareError {
    /// Waiting can cure it (catalog or disk): the archive retries.
    Transient(String),
    /// It would fail again (an unknown recording): dead-lettered.
    Permanent(String),
}

/// What the archive needs to prepare events; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    /// Every receiver this run has had, by URL (see [`Notifier::reload`]). Locked only to
    /// copy what an event needs, never across an await.
    receivers: std::sync::Mutex<Vec<Receiver>>,
    /// Built with the first receiver (it reads the system's CA certificates): a server with
    /// no `[[notify]]` never needs one.
    client: std::sync::Mutex<Option<reqwest::Client>>,
    hook: Option<hook::Hook>,
    stats: Arc<NotifyStats>,
}

/// One `[[notify]]` table with its outbox and its delivery task's wake-up.
struct Receiver {
    /// Its current settings; the delivery task reads them at each attempt.
    target: watch::Sender<NotifyTarget>,
    /// False once a reload removed it from the configuration: it takes no new event, and its
    /// task delivers what was queued (the outbox is still on disk).
    active: bool,
    outbox: outbox::Outbox,
    wake: mpsc::UnboundedSender<outbox::Queued>,
}

impl Receiver {
    /// Opens the outbox of `target` (what an earlier run left is delivered first) and starts
    /// its delivery task.
    fn start(
        data_dir: &std::path::Path,
        target: &NotifyTarget,
        client: &reqwest::Client,
        stats: &Arc<NotifyStats>,
    ) -> anyhow::Result<Receiver> {
        let outbox = outbox::Outbox::open(data_dir, &target.url)?;
        let waiting = outbox.load()?;
        if !waiting.is_empty() {
            info!(
                url = %target.shown_url(),
                deliveries = waiting.len(),
                "webhook deliveries left by an earlier run are retried"
            );
        }
        let (wake, woken) = mpsc::unbounded_channel();
        let (settings, watched) = watch::channel(target.clone());
        tokio::spawn(
            delivery::Deliverer::new(
                watched,
                outbox.clone(),
                client.clone(),
                Arc::clone(stats),
                waiting,
            )
            .run(woken),
        );
        Ok(Receiver {
            target: settings,
            active: true,
            outbox,
            wake,
        })
    }
}

impl Notifier {
    /// Opens each receiver's outbox (what an earlier run left is delivered first) and starts
    /// its delivery task. Inside a tokio runtime.
    pub fn start(
        data_dir: PathBuf,
        targets: &[NotifyTarget],
        hooks: &HooksConfig,
    ) -> anyhow::Result<Notifier> {
        let stats = Arc::new(NotifyStats::default());
        let client = match targets {
            [] => None,
            _ => Some(delivery::client()?),
        };
        let mut receivers = Vec::new();
        if let Some(client) = &client {
            for target in targets {
                receivers.push(Receiver::start(&data_dir, target, client, &stats)?);
            }
        }
        let hook = (!hooks.on_complete.is_empty()).then(|| hook::Hook::new(hooks, &stats));
        Ok(Notifier {
            inner: Arc::new(Inner {
                data_dir,
                receivers: std::sync::Mutex::new(receivers),
                client: std::sync::Mutex::new(client),
                hook,
                stats,
            }),
        })
    }

    /// Takes a new list of `[[notify]]` tables (validated) while running, for a configuration
    /// reload: a receiver whose URL is new starts; one whose settings (secret, events, timeouts)
    /// changed uses them from its next attempt; one no longer listed takes no new event but
    /// still delivers what was queued for it. Events prepared from now on follow the new list.
    /// Returns what changed, one line each, for the log (never a secret).
    pub fn reload(&self, targets: &[NotifyTarget]) -> anyhow::Result<Vec<String>> {
        let inner = &self.inner;
        let mut changes = Vec::new();
        let mut receivers = inner
            .receivers
            .lock()
            .expect("the receivers' lock is never held across a panic");
        for receiver in receivers.iter_mut() {
            let url = receiver.target.borrow().url.clone();
            if receiver.active && !targets.iter().any(|t| t.url == url) {
                receiver.active = false;
                changes.push(format!(
                    "webhook receiver {} removed (what was queued for it is still delivered)",
                    receiver.target.borrow().shown_url()
                ));
            }
        }
        for target in targets {
            let known = receivers
                .iter_mut()
                .find(|r| r.target.borrow().url == target.url);
            match known {
                Some(receiver) => {
                    let changed = *receiver.target.borrow() != *target;
                    if changed || !receiver.active {
                        changes.push(format!(
                            "webhook receiver {} {}",
                            target.shown_url(),
                            if receiver.active {
                                "changed"
                            } else {
                                "added back"
                            }
                        ));
                        receiver.target.send_replace(target.clone());
                        receiver.active = true;
                    }
                }
                None => {
                    let client = {
                        let mut client = inner
                            .client
                            .lock()
                            .expect("the client's lock is never held across a panic");
                        match &*client {
                            Some(built) => built.clone(),
                            None => client.insert(delivery::client()?).clone(),
                        }
                    };
                    receivers.push(Receiver::start(
                        &inner.data_dir,
                        target,
                        &client,
                        &inner.stats,
                    )?);
                    changes.push(format!("webhook receiver {} added", target.shown_url()));
                }
            }
        }
        Ok(changes)
    }

    pub fn stats(&self) -> Arc<NotifyStats> {
        Arc::clone(&self.inner.stats)
    }

    /// Handles one event (see the module notes): `recording.json`, the outbox, the hook.
    /// Called by the archive's worker, in order with the catalog writes.
    pub async fn prepare(
        &self,
        catalog: &Catalog,
        recording_id: &str,
        event: Event,
        lock_id: Option<&str>,
    ) -> Result<(), PrepareError> {
        if !outbox::is_safe_key_part(recording_id)
            || lock_id.is_some_and(|id| !outbox::is_safe_key_part(id))
        {
            return Err(PrepareError::Permanent(format!(
                "recording id {recording_id:?} or lock id {lock_id:?} is not a plain id"
            )));
        }
        let details = match catalog.recording_details(&Scope::All, recording_id).await {
            Ok(Some(details)) => details,
            Ok(None) => {
                return Err(PrepareError::Permanent(format!(
                    "no recording {recording_id} in the catalog"
                )));
            }
            Err(e) if e.is_transient() => return Err(PrepareError::Transient(e.to_string())),
            Err(e) => return Err(PrepareError::Permanent(e.to_string())),
        };
        if event.is_final() && details.item.recording.state == RecordingState::Active {
            // Its completion was rejected (dead-lettered) before it: announcing it final would
            // be false.
            return Err(PrepareError::Permanent(format!(
                "recording {recording_id} is not final in the catalog; {event} not sent"
            )));
        }
        let inner = &self.inner;
        let folder = record_file::folder(&inner.data_dir, &details);
        if event.is_final() && details.item.recording.state != RecordingState::Deleted {
            let (path, json) = (folder.clone(), record_file::contents(&details));
            blocking(move || record_file::write(&path, &json)).await?;
        }
        let key = outbox::key(recording_id, event, lock_id);
        let body = body(event, &details);
        // Copied out: the lock is not held while the files are written.
        let interested: Vec<(outbox::Outbox, mpsc::UnboundedSender<outbox::Queued>)> = inner
            .receivers
            .lock()
            .expect("the receivers' lock is never held across a panic")
            .iter()
            .filter(|r| r.active && r.target.borrow().wants(event))
            .map(|r| (r.outbox.clone(), r.wake.clone()))
            .collect();
        for (outbox, wake) in interested {
            let (key, body) = (key.clone(), body.clone());
            let queued = blocking(move || outbox.put(&key, event, &body)).await?;
            if let Some(queued) = queued {
                inner
                    .stats
                    .pending
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // The task ends only with the runtime; the file is on disk either way.
                let _ = wake.send(queued);
            }
        }
        if event.is_final()
            && let Some(hook) = &inner.hook
        {
            hook.spawn(hook::Run {
                event,
                recording_id: recording_id.to_owned(),
                state: details.item.recording.state,
                folder,
            });
        }
        Ok(())
    }
}

/// The webhook body: `{"event": …, "recording": {the object of recordings show --json}}`.
fn body(event: Event, details: &RecordingDetails) -> String {
    let value = serde_json::json!({"event": event.as_str(), "recording": details});
    crate::log::escape_json(value.to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, PrepareError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) if crate::archive::io_is_transient(&e) => {
            Err(PrepareError::Transient(e.to_string()))
        }
        Ok(Err(e)) => Err(PrepareError::Permanent(e.to_string())),
        Err(e) => Err(PrepareError::Transient(e.to_string())),
    }
}

/// The API's events, queued through the archive (the API crate knows nothing of either).
pub struct ApiEvents {
    pub archive: ArchiveQueue,
}

impl callvault_api::RecordingEvents for ApiEvents {
    fn recording_changed(&self, recording_id: &str, change: callvault_api::RecordingChange) {
        let (event, lock_id) = match change {
            callvault_api::RecordingChange::Deleted => (Event::Deleted, None),
            callvault_api::RecordingChange::Locked { lock_id } => (Event::Locked, Some(lock_id)),
            callvault_api::RecordingChange::Unlocked { lock_id } => {
                (Event::Unlocked, Some(lock_id))
            }
        };
        self.archive.send(ArchiveCommand::Notify {
            recording_id: recording_id.to_owned(),
            event,
            lock_id,
        });
    }
}

/// On each SIGHUP, reads the `[[notify]]` tables again with `load` (the configuration as
/// `serve` loaded it: file, variables, flags) and hands them to [`Notifier::reload`], logging
/// what changed. A configuration that no longer loads changes nothing (the log says why).
/// `[hooks]` is read at start only.
pub fn reload_on_sighup(
    notifier: Notifier,
    load: impl Fn() -> anyhow::Result<Vec<NotifyTarget>> + Send + 'static,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(e) => {
                warn!(error = %e, "no SIGHUP handler: webhook receivers cannot be reloaded");
                return;
            }
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let reloaded = load().and_then(|targets| notifier.reload(&targets));
                match reloaded {
                    Ok(changes) if changes.is_empty() => {
                        info!("SIGHUP: webhook receivers unchanged");
                    }
                    Ok(changes) => {
                        for change in changes {
                            info!("SIGHUP: {change}");
                        }
                    }
                    Err(e) => warn!(
                        error = %crate::log::redact_urls(&format!("{e:#}")),
                        "SIGHUP: webhook receivers not reloaded; the current ones stay"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    {
        let _ = (notifier, load);
    }
}

/// Logs what `serve` starts with.
pub fn announce(targets: &[NotifyTarget], hooks: &HooksConfig) {
    for target in targets {
        let events: Vec<&str> = Event::ALL
            .into_iter()
            .filter(|e| target.wants(*e))
            .map(Event::as_str)
            .collect();
        info!(
            url = %target.shown_url(),
            events = %events.join(","),
            signed = target.secret.is_some(),
            "webhook receiver"
        );
        if target.url.starts_with("http://") && target.secret.is_none() {
            warn!(url = %target.shown_url(), "webhook over plain HTTP without a secret: anyone on the path can read and forge it");
        }
    }
    if let Some(program) = hooks.on_complete.first() {
        info!(%program, "on_complete hook");
    }
}

#[cfg(test)]
mod tests;
