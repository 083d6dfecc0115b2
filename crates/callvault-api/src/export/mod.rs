//! Export packages built in the background: one tokio task per package, its state in the
//! catalog (`callvault_catalog::Export`), its file in `DATA/exports/`.
//!
//! **A build.** The route records the package `queued` (with the recordings chosen at that
//! moment) and calls [`spawn`]. The task moves it to `running`, reads each recording in full
//! (within the owner's scope) and its metadata revisions, plans the audio files (a tombstone
//! has none; a leg file missing on disk is left out and said so in the tables), then writes the
//! zip ([`package`]) a chunk at a time on tokio's blocking pool into `<id>.zip.part` (or
//! `<id>.zip.age.part`, through age: [`sink`]), storing its progress (files written) in the
//! catalog as it goes. At the end the file is synced, renamed to its final name and the
//! package marked `ready` with its size, SHA-256 and expiry (`[api] export_ttl_s` from then).
//! Memory stays at one chunk of audio plus the tables, whatever the package's size.
//!
//! **Cancel, fail, expire.** `DELETE` removes the row and raises the task's cancel flag: the
//! task stops at its next chunk and removes its file (and should it finish first, the
//! catalog's conditional `ready` fails and it removes the file then). A failure marks the
//! package `failed` with a message for the user (the details go to the log). A ready package
//! past its expiry is expired when anyone reads it, and by a sweep every minute
//! ([`ApiState::spawn_export_sweeper`]): its file is removed and it answers 410.
//!
//! **Restarts.** A build does not survive its process: at start ([`ApiState::recover_exports`])
//! the node marks its `queued` and `running` packages `failed` ("interrupted") and removes the
//! partial files. Resuming was not chosen: a zip cannot be continued where it stopped, and
//! rebuilding from the catalog is as cheap as asking again. Packages live on the node that
//! built them (`node_id`): behind a load balancer, download from that node (or share the data
//! directory's `exports/` folder).

mod package;
mod sink;
mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callvault_catalog::{Export, ExportState, FinishedExport, RecordingDetails, Scope};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::audio::{ExportFormat, MixLeg, NameFields, Party};
use crate::error::{Error, Result};
use crate::state::ApiState;

/// The folder of the data dir that holds packages.
pub(crate) const FOLDER: &str = "exports";
/// How often the sweeper looks for expired packages.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// `legs` (one file per leg) or `mixed` (one mono mix per recording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Legs,
    Mixed,
}

impl Layout {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Layout::Legs => "legs",
            Layout::Mixed => "mixed",
        }
    }

    fn parse(s: &str) -> Layout {
        if s == "legs" {
            Layout::Legs
        } else {
            Layout::Mixed
        }
    }
}

fn format_of(s: &str) -> ExportFormat {
    if s == "mp3" {
        ExportFormat::Mp3
    } else {
        ExportFormat::Wav
    }
}

/// The builds running in this process: how to cancel each, and how to wait for it.
#[derive(Default)]
pub(crate) struct Jobs {
    running: Mutex<HashMap<String, Job>>,
}

struct Job {
    cancel: Arc<AtomicBool>,
    #[cfg_attr(not(test), allow(dead_code))] // reason: only tests wait for a build to end
    finished: watch::Receiver<bool>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn register(&self, id: &str) -> (Arc<AtomicBool>, watch::Sender<bool>) {
        let cancel = Arc::new(AtomicBool::new(false));
        let (done, finished) = watch::channel(false);
        self.lock().insert(
            id.to_owned(),
            Job {
                cancel: Arc::clone(&cancel),
                finished,
            },
        );
        (cancel, done)
    }

    /// Asks the build of `id`, if it runs here, to stop.
    pub(crate) fn cancel(&self, id: &str) {
        if let Some(job) = self.lock().get(id) {
            job.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Waits until the build of `id` has ended (at once when none runs).
    #[cfg(test)]
    pub(crate) async fn finished(&self, id: &str) {
        let receiver = self.lock().get(id).map(|job| job.finished.clone());
        if let Some(mut receiver) = receiver {
            let _ = receiver.wait_for(|done| *done).await;
        }
    }
}

/// The package file of `export` (final name).
pub(crate) fn file_of(data_dir: &Path, export: &Export) -> PathBuf {
    let extension = if export.encrypt_to.is_some() {
        "zip.age"
    } else {
        "zip"
    };
    data_dir
        .join(FOLDER)
        .join(format!("{}.{extension}", export.id))
}

fn part_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Removes a package's files (final and partial); files already gone are fine.
pub(crate) fn remove_files(data_dir: &Path, export: &Export) {
    let path = file_of(data_dir, export);
    for file in [part_of(&path), path] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %file.display(), error = %e, "cannot remove an export file");
            }
        }
    }
}

/// Starts building `export` (just recorded `queued`) in its own task.
pub(crate) fn spawn(state: &ApiState, export: Export) {
    let (cancel, done) = state.export_jobs().register(&export.id);
    let state = state.clone();
    tokio::spawn(async move {
        let id = export.id.clone();
        if let Err(error) = run(&state, &export, &cancel).await {
            tracing::error!(export = %id, error = %error, "export failed");
            remove_files(state.data_dir(), &export);
            let message = error.public_message();
            if let Err(e) = state
                .catalog()
                .fail_export(&id, &message, state.clock().now())
                .await
            {
                tracing::error!(export = %id, error = %e, "cannot mark the export failed");
            }
        }
        state.export_jobs().lock().remove(&id);
        let _ = done.send(true);
    });
}

/// The recordings of a package with their audio files to write.
struct Plan {
    items: Vec<table::Item>,
    audio: Vec<package::AudioFile>,
}

/// Reads what the package holds from the catalog (within the owner's scope).
async fn plan(state: &ApiState, export: &Export) -> Result<Plan> {
    let scope = match &export.tenant {
        Some(tenant) => Scope::Tenant(tenant.clone()),
        None => Scope::All,
    };
    let layout = Layout::parse(&export.channels);
    let format = format_of(&export.format);
    let mut items = Vec::with_capacity(export.recording_ids.len());
    let mut audio = Vec::new();
    for (n, id) in (1_u32..).zip(&export.recording_ids) {
        let Some(details) = state.catalog().recording_details(&scope, id).await? else {
            // Gone from the catalog since it was chosen (recordings are never removed, only
            // tombstoned: this is another tenant's now, or a hand edit). Nothing to say of it.
            continue;
        };
        let revisions = if details.item.deleted_at.is_none() {
            state.catalog().metadata_revisions(id).await?
        } else {
            Vec::new()
        };
        let (files, problems) = if details.item.deleted_at.is_some() {
            (Vec::new(), Vec::new())
        } else {
            audio_of(state, &details, n, layout, format).await?
        };
        let names = files.iter().map(|f| format!("audio/{}", f.name)).collect();
        audio.extend(files);
        items.push(table::Item {
            details,
            revisions,
            files: names,
            problems,
        });
    }
    Ok(Plan { items, audio })
}

/// The audio files of one recording and what is missing from them.
async fn audio_of(
    state: &ApiState,
    details: &RecordingDetails,
    n: u32,
    layout: Layout,
    format: ExportFormat,
) -> Result<(Vec<package::AudioFile>, Vec<String>)> {
    let recording = &details.item.recording;
    let caller = recording.participants.first().map(|p| p.id.as_str());
    let mut present = Vec::new();
    let mut problems = Vec::new();
    for (i, leg) in recording.legs.iter().enumerate() {
        // On this node's disk, or in the bucket once uploaded (a leg of another node not
        // uploaded yet is a problem of this package, not a failure of it).
        let audio = match crate::routes::leg_audio(state, details, leg) {
            Ok(audio) => audio,
            Err(e) => {
                problems.push(format!("leg {} ({}): {e}", leg.position, leg.label));
                continue;
            }
        };
        let exists = {
            let audio = audio.clone();
            tokio::task::spawn_blocking(move || audio.check().is_ok()).await?
        };
        if !exists {
            problems.push(format!(
                "leg {} ({}): file missing",
                leg.position, leg.label
            ));
            continue;
        }
        let party = match (&leg.participant, caller) {
            (Some(p), Some(c)) if p == c => Party::Caller,
            (Some(_), Some(_)) => Party::Callee,
            _ if i == 0 => Party::Caller,
            _ => Party::Callee,
        };
        present.push((leg, audio, party));
    }
    let name = |label: Option<&str>| {
        let item = &details.item;
        let queue = details.custom.get("queue").and_then(Value::as_str);
        state.pattern().render(
            &NameFields {
                queue,
                started_at: Some(item.recording.started_at),
                from: Some(&item.recording.from),
                to: Some(&item.recording.to),
                session_id: Some(&item.recording.session_id),
                recording_id: Some(&item.recording.id),
                n: Some(n),
                tenant: item.tenant.as_deref(),
                label,
            },
            format.extension(),
        )
    };
    let modified = recording.started_at;
    let files = match layout {
        Layout::Mixed if present.is_empty() => Vec::new(),
        Layout::Mixed => vec![package::AudioFile {
            name: name(None),
            audio: package::Audio::Mix(
                present
                    .into_iter()
                    .map(|(_, path, party)| MixLeg::new(path, party))
                    .collect(),
            ),
            modified,
        }],
        Layout::Legs => present
            .into_iter()
            .map(|(leg, path, _)| {
                let stem = name(Some(&leg.label));
                // The pattern may not name the leg: keep one file per leg apart.
                let stem = if state.settings().filename_pattern.contains("{label}") {
                    stem
                } else {
                    let (base, ext) = stem.rsplit_once('.').unwrap_or((stem.as_str(), ""));
                    format!("{base}_{}.{ext}", leg.label)
                };
                package::AudioFile {
                    name: stem,
                    audio: package::Audio::Leg(path),
                    modified,
                }
            })
            .collect(),
    };
    Ok((files, problems))
}

/// The package's description, in `recordings.json` and `manifest.json`.
fn description(export: &Export) -> Value {
    json!({
        "id": export.id,
        "name": export.name,
        "owner": export.owner,
        "tenant": export.tenant,
        "created_at": export.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "format": export.format,
        "channels": export.channels,
        "recordings": export.recording_ids.len(),
    })
}

async fn run(state: &ApiState, export: &Export, cancel: &AtomicBool) -> Result<()> {
    let catalog = state.catalog();
    let Plan { items, audio } = plan(state, export).await?;
    let total = i64::try_from(audio.len() + 3).unwrap_or(i64::MAX);
    if !catalog.start_export(&export.id, total).await? {
        return Ok(());
    }
    let recipient = export
        .encrypt_to
        .as_deref()
        .map(|r| {
            r.parse::<age::x25519::Recipient>()
                .map_err(|reason| Error::Invalid {
                    reason: format!("encrypt_to: {reason}"),
                })
        })
        .transpose()?;
    let format = format_of(&export.format);
    let final_path = file_of(state.data_dir(), export);
    let part = part_of(&final_path);
    let folder = state.data_dir().join(FOLDER);
    let description = description(export);
    let (mut package, mut sink) = {
        let part = part.clone();
        tokio::task::spawn_blocking(move || -> Result<_> {
            std::fs::create_dir_all(&folder).map_err(|source| Error::ExportFile {
                path: folder.clone(),
                source,
            })?;
            let package = package::build(description, &items, audio, format)?;
            let sink = sink::Sink::create(&part, recipient.as_ref())?;
            Ok((package, sink))
        })
        .await??
    };
    let files = package.files;
    let done = Arc::clone(&package.done);
    let mut reported = 0;
    loop {
        if cancel.load(Ordering::Relaxed) {
            drop(sink);
            remove_files(state.data_dir(), export);
            return Ok(());
        }
        let (returned_package, returned_sink, more) = tokio::task::spawn_blocking(move || {
            let step =
                crate::audio::ChunkSource::next_chunk(&mut package.zip).and_then(
                    |chunk| match chunk {
                        Some(chunk) => sink.write(&chunk).map(|()| true),
                        None => Ok(false),
                    },
                );
            (package, sink, step)
        })
        .await?;
        package = returned_package;
        sink = returned_sink;
        let more = more?;
        let now_done = done.load(Ordering::Relaxed);
        if now_done != reported {
            reported = now_done;
            let done = i64::try_from(now_done).unwrap_or(i64::MAX);
            if !catalog.export_progress(&export.id, done).await? {
                // Removed meanwhile.
                drop(sink);
                remove_files(state.data_dir(), export);
                return Ok(());
            }
        }
        if !more {
            break;
        }
    }
    let written = {
        let part = part.clone();
        let final_path = final_path.clone();
        tokio::task::spawn_blocking(move || -> Result<_> {
            let written = sink.finish()?;
            std::fs::rename(&part, &final_path).map_err(|source| Error::ExportFile {
                path: final_path.clone(),
                source,
            })?;
            Ok(written)
        })
        .await??
    };
    let now = state.clock().now();
    let finished = FinishedExport {
        files: i64::try_from(files).unwrap_or(i64::MAX),
        bytes: i64::try_from(written.bytes).unwrap_or(i64::MAX),
        sha256: written.sha256,
        finished_at: now,
        expires_at: now + state.settings().export_ttl(),
    };
    if !catalog.finish_export(&export.id, &finished).await? {
        remove_files(state.data_dir(), export);
    } else {
        tracing::info!(export = %export.id, files, bytes = written.bytes, "export ready");
    }
    Ok(())
}

/// `export` as it stands now: a ready package past its expiry is expired first (its files
/// removed, when this node holds them).
pub(crate) async fn current(state: &ApiState, export: Export) -> Result<Export> {
    let now = state.clock().now();
    let due = export.state == ExportState::Ready && export.expires_at.is_some_and(|at| at <= now);
    if !due {
        return Ok(export);
    }
    expire(state, &export).await?;
    Ok(Export {
        state: ExportState::Expired,
        ..export
    })
}

async fn expire(state: &ApiState, export: &Export) -> Result<()> {
    if export.node_id == state.node_id() {
        let data_dir = state.data_dir().to_owned();
        let export = export.clone();
        tokio::task::spawn_blocking(move || remove_files(&data_dir, &export)).await?;
    }
    state
        .catalog()
        .expire_export(&export.id, state.clock().now())
        .await?;
    Ok(())
}

impl ApiState {
    /// What a start does for export packages: this node's packages whose build the previous
    /// run left unfinished are marked `failed` and their partial files removed, and expired
    /// ones are swept. Call once before serving; returns how many builds were interrupted.
    pub async fn recover_exports(&self) -> Result<usize> {
        let now = self.clock().now();
        let failed = self
            .catalog()
            .fail_interrupted_exports(self.node_id(), now)
            .await?;
        let folder = self.data_dir().join(FOLDER);
        tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "part")
                    && let Err(e) = std::fs::remove_file(&path)
                {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a partial export");
                }
            }
        })
        .await?;
        if !failed.is_empty() {
            tracing::warn!(
                exports = failed.len(),
                "export packages interrupted by the last stop are marked failed"
            );
        }
        self.sweep_exports().await?;
        Ok(failed.len())
    }

    /// Expires this node's ready packages past their expiry (files removed).
    pub async fn sweep_exports(&self) -> Result<()> {
        let now = self.clock().now();
        for id in self.catalog().due_exports(self.node_id(), now).await? {
            if let Some(export) = self.catalog().export(&Scope::All, &id).await? {
                expire(self, &export).await?;
            }
        }
        Ok(())
    }

    /// Sweeps expired packages every minute, for as long as the runtime runs.
    pub fn spawn_export_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = state.sweep_exports().await {
                    tracing::warn!(error = %e, "sweeping expired exports failed");
                }
            }
        })
    }
}
