//! The archive task: catalog rows and metadata files, written in the order the recorder
//! asked for them, off the signalling path. The recorder only enqueues; a slow database or
//! disk delays the catalog, never a SIP answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use callvault_catalog::{
    Catalog, Completion, DtmfEvent, NewLeg, NewMetadataRevision, NewRecording,
};
use tokio::sync::mpsc;
use tracing::error;

#[derive(Debug)]
pub enum ArchiveCommand {
    Insert(Box<NewRecording>),
    Revision {
        recording_id: String,
        revision: NewMetadataRevision,
    },
    Complete(Completion),
    /// Streams added mid-call.
    AddLegs {
        recording_id: String,
        legs: Vec<NewLeg>,
    },
    Dtmf {
        recording_id: String,
        event: DtmfEvent,
    },
    /// Who sends which leg from `at_ms` on (a metadata revision or a new offer).
    Associations {
        recording_id: String,
        at_ms: i64,
        revision: i64,
        current: Vec<(String, String)>,
    },
    /// A file under the data directory (raw SIPREC metadata beside the WAVs).
    WriteFile {
        path: PathBuf,
        bytes: Vec<u8>,
    },
}

#[derive(Clone)]
pub struct ArchiveQueue {
    tx: mpsc::UnboundedSender<ArchiveCommand>,
    backlog: Arc<AtomicU64>,
}

impl ArchiveQueue {
    pub fn send(&self, command: ArchiveCommand) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(command).is_err() {
            // Only after shutdown has closed the archive; nothing to write to any more.
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            error!("archive closed: a catalog write was lost");
        }
    }
}

/// What the archive tells `/metrics`: writes waiting, and writes that failed (alarm on any).
#[derive(Clone, Default)]
pub struct ArchiveStats {
    pub backlog: Arc<AtomicU64>,
    pub failures: Arc<AtomicU64>,
}

/// Starts the archive task; it ends when every queue handle is dropped and the queue drained.
pub fn start(
    catalog: Catalog,
    data_dir: PathBuf,
) -> (ArchiveQueue, tokio::task::JoinHandle<()>, ArchiveStats) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stats = ArchiveStats::default();
    let queue = ArchiveQueue {
        tx,
        backlog: Arc::clone(&stats.backlog),
    };
    let task_stats = stats.clone();
    let task = tokio::spawn(async move {
        while let Some(command) = rx.recv().await {
            if let Err(e) = apply(&catalog, &data_dir, command).await {
                task_stats.failures.fetch_add(1, Ordering::Relaxed);
                error!(error = %format!("{e:#}"), "catalog write failed");
            }
            task_stats.backlog.fetch_sub(1, Ordering::Relaxed);
        }
    });
    (queue, task, stats)
}

async fn apply(
    catalog: &Catalog,
    data_dir: &std::path::Path,
    command: ArchiveCommand,
) -> anyhow::Result<()> {
    match command {
        ArchiveCommand::Insert(recording) => catalog.insert_recording(&recording).await?,
        ArchiveCommand::Revision {
            recording_id,
            revision,
        } => {
            catalog
                .add_metadata_revision(&recording_id, &revision)
                .await?
        }
        ArchiveCommand::Complete(completion) => catalog.complete_recording(&completion).await?,
        ArchiveCommand::AddLegs { recording_id, legs } => {
            catalog.add_legs(&recording_id, &legs).await?
        }
        ArchiveCommand::Dtmf {
            recording_id,
            event,
        } => catalog.add_dtmf(&recording_id, &event).await?,
        ArchiveCommand::Associations {
            recording_id,
            at_ms,
            revision,
            current,
        } => {
            catalog
                .set_associations(&recording_id, at_ms, revision, &current)
                .await?
        }
        ArchiveCommand::WriteFile { path, bytes } => {
            let full = data_dir.join(&path);
            if let Some(parent) = full.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            tokio::fs::write(&full, bytes)
                .await
                .with_context(|| format!("writing {}", full.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_write_is_counted_and_the_queue_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        // A file where a directory should be: creating the metadata's folder must fail.
        std::fs::write(dir.path().join("recordings"), b"not a directory").unwrap();
        let catalog = Catalog::open("sqlite::memory:").await.unwrap();
        let (queue, task, stats) = start(catalog, dir.path().to_path_buf());
        queue.send(ArchiveCommand::WriteFile {
            path: PathBuf::from("recordings/x/metadata-1.xml"),
            bytes: b"<recording/>".to_vec(),
        });
        queue.send(ArchiveCommand::WriteFile {
            path: PathBuf::from("elsewhere/metadata-1.xml"),
            bytes: b"<recording/>".to_vec(),
        });
        drop(queue);
        task.await.unwrap();
        assert_eq!(stats.failures.load(Ordering::Relaxed), 1);
        assert_eq!(stats.backlog.load(Ordering::Relaxed), 0);
        let written = std::fs::read(dir.path().join("elsewhere/metadata-1.xml")).unwrap();
        assert_eq!(written, b"<recording/>");
    }
}
