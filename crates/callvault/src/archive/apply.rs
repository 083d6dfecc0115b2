//! Applying one command, and whether a failure is worth retrying.

use std::io;
use std::path::{Component, Path, PathBuf};

use callvault_catalog::{self as catalog, Catalog};

use super::{ArchiveCommand, error_text};
use crate::notify::{Notifier, PrepareError};

/// What one attempt at a command came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Applied,
    /// Waiting can cure it: try the same command again later.
    Transient(String),
    /// The same command would fail again: dead-letter it and move on.
    Permanent(String),
}

pub(super) async fn apply(
    catalog: &Catalog,
    notifier: Option<&Notifier>,
    data_dir: &Path,
    command: &ArchiveCommand,
) -> Outcome {
    let result = match command {
        ArchiveCommand::Notify {
            recording_id,
            event,
            lock_id,
        } => {
            let Some(notifier) = notifier else {
                return Outcome::Applied;
            };
            return match notifier
                .prepare(catalog, recording_id, *event, lock_id.as_deref())
                .await
            {
                Ok(()) => Outcome::Applied,
                Err(PrepareError::Transient(e)) => Outcome::Transient(e),
                Err(PrepareError::Permanent(e)) => Outcome::Permanent(e),
            };
        }
        ArchiveCommand::Insert(recording) => match catalog.insert_recording(recording).await {
            // Inserted before (a replay, or a commit whose answer was lost).
            Err(catalog::Error::AlreadyExists { .. }) => Ok(()),
            other => other,
        },
        ArchiveCommand::Revision {
            recording_id,
            revision,
        } => catalog.add_metadata_revision(recording_id, revision).await,
        ArchiveCommand::AddLegs { recording_id, legs } => {
            catalog.add_legs(recording_id, legs).await
        }
        ArchiveCommand::Dtmf {
            recording_id,
            event,
        } => catalog.add_dtmf(recording_id, event).await,
        ArchiveCommand::Associations {
            recording_id,
            at_ms,
            revision,
            current,
        } => {
            catalog
                .set_associations(recording_id, *at_ms, *revision, current)
                .await
        }
        ArchiveCommand::Complete(completion) => catalog.complete_recording(completion).await,
        ArchiveCommand::Pause {
            recording_id,
            pause,
        } => catalog.set_pause(recording_id, pause).await,
        ArchiveCommand::WriteFile { path, bytes } => {
            let (data_dir, path, bytes) = (data_dir.to_owned(), path.clone(), bytes.clone());
            let written =
                tokio::task::spawn_blocking(move || write_file(&data_dir, &path, &bytes)).await;
            return match written {
                Ok(outcome) => outcome,
                // Only a panic or the runtime shutting down: the file was not written.
                Err(e) => Outcome::Transient(e.to_string()),
            };
        }
    };
    match result {
        Ok(()) => Outcome::Applied,
        Err(e) if e.is_transient() => Outcome::Transient(error_text(&e)),
        Err(e) => Outcome::Permanent(error_text(&e)),
    }
}

/// Creates `data_dir/path` holding `bytes`, whole or not at all: written to a temporary file
/// beside it, synced, then hard-linked into place (a link fails if the name exists, which is
/// `create_new` made atomic: a crash never leaves a half file under the real name).
fn write_file(data_dir: &Path, path: &Path, bytes: &[u8]) -> Outcome {
    let inside = !path.as_os_str().is_empty()
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    let (Some(name), true) = (path.file_name(), inside) else {
        return Outcome::Permanent(format!(
            "{} is not a file path inside the data directory",
            path.display()
        ));
    };
    let full = data_dir.join(path);
    let describe = |what: &str, e: io::Error| {
        let text = format!("{what} {}: {e}", full.display());
        if io_is_transient(&e) {
            Outcome::Transient(text)
        } else {
            Outcome::Permanent(text)
        }
    };
    match existing(&full, bytes) {
        Ok(Some(outcome)) => return outcome,
        Ok(None) => {}
        Err(e) => return describe("reading", e),
    }
    let parent = full
        .parent()
        .expect("a joined relative file path has a parent");
    if let Err(e) = std::fs::create_dir_all(parent) {
        return describe("creating the folder of", e);
    }
    let temporary: PathBuf = parent.join(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let outcome = link_into_place(&temporary, &full, bytes);
    // Whatever happened, the temporary name goes (the file stays under its real name when
    // linked); a crash between the two leaves only a dot-file.
    let _ = std::fs::remove_file(&temporary);
    match outcome {
        Ok(()) => Outcome::Applied,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match existing(&full, bytes) {
            Ok(Some(outcome)) => outcome,
            Ok(None) => Outcome::Transient(format!("{} vanished while linked", full.display())),
            Err(e) => describe("reading", e),
        },
        Err(e) => describe("writing", e),
    }
}

/// What an existing file at `full` means: `None` when there is none.
fn existing(full: &Path, bytes: &[u8]) -> io::Result<Option<Outcome>> {
    match std::fs::read(full) {
        Ok(found) if found == bytes => Ok(Some(Outcome::Applied)),
        Ok(_) => Ok(Some(Outcome::Permanent(format!(
            "{} exists with other content",
            full.display()
        )))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn link_into_place(temporary: &Path, full: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::hard_link(temporary, full)
}

/// Whether waiting (or an operator) can cure an I/O error: a full disk, a quota, a read-only
/// remount, permissions, an I/O error are; a path that cannot be a file is not. Unknown kinds
/// count as transient: keeping a command and saying so beats dropping it.
pub fn io_is_transient(error: &io::Error) -> bool {
    use io::ErrorKind::*;
    !matches!(
        error.kind(),
        InvalidInput | InvalidFilename | NotADirectory | IsADirectory | InvalidData | Unsupported
    )
}
