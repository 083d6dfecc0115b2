//! The spool: the on-disk head of the archive's queue, as JSON-lines files in `DATA/spool`,
//! and the dead-letter file beside it.
//!
//! Files are numbered; appends go to the newest (the tail), reads start at the oldest, which
//! is loaded whole (files rotate at [`ROTATE_BYTES`], so that is bounded) and sealed: nothing
//! is appended to a file once it is being read. A file is deleted once every entry of it has
//! been applied or dead-lettered.
//!
//! File I/O runs on tokio's blocking pool (an fsync can take a while and the worker shares
//! the runtime with the SIP loop); the [`Files`] move into the blocking task and back.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::ArchiveCommand;

/// The spool's folder, under the data dir.
pub(super) const SPOOL_DIR: &str = "spool";
/// Where permanent failures go, in the spool folder.
pub(super) const REJECTED_FILE: &str = "rejected.jsonl";
/// A spool file takes no more appends past this size, so the oldest file, read whole to
/// replay it, stays small.
const ROTATE_BYTES: u64 = 4 << 20;

/// One line of a spool file.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Entry {
    Command(ArchiveCommand),
    /// A line that does not parse (torn by a crash mid-write, or edited by hand).
    Unreadable {
        line: String,
        error: String,
    },
}

/// The files of the spool, oldest first.
struct Files {
    dir: PathBuf,
    files: VecDeque<SpoolFile>,
    /// The newest file, open for appends; never the file being read.
    tail: Option<Tail>,
    next_number: u64,
}

struct SpoolFile {
    number: u64,
    path: PathBuf,
}

struct Tail {
    number: u64,
    file: File,
    bytes: u64,
}

/// The spool as the worker sees it.
pub(super) struct Spool {
    /// `None` only while a blocking task holds them.
    files: Option<Files>,
    /// What is left of the oldest file, once loaded.
    head: VecDeque<Entry>,
    /// Whether `head` holds the oldest file (loaded and sealed).
    head_loaded: bool,
    /// Entries in the spool not yet applied (the loaded head included).
    len: u64,
}

impl Spool {
    /// Opens `dir` (creating it), finding the files an earlier run left.
    pub(super) async fn open(dir: PathBuf) -> io::Result<Spool> {
        let (files, len) = tokio::task::spawn_blocking(move || Files::open(dir))
            .await
            .expect("the spool's blocking I/O does not panic")?;
        Ok(Spool {
            files: Some(files),
            head: VecDeque::new(),
            head_loaded: false,
            len,
        })
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The oldest entry, loading the oldest file if needed.
    pub(super) async fn front(&mut self) -> io::Result<Option<&Entry>> {
        while self.head.is_empty() {
            if self.files().files.is_empty() {
                return Ok(None);
            }
            if self.head_loaded {
                // Fully applied (or it held nothing readable): its entries are done.
                self.remove_oldest().await;
            } else {
                let entries = self.blocking(Files::load_oldest).await?;
                self.head = entries.into();
                self.head_loaded = true;
            }
        }
        Ok(self.head.front())
    }

    /// Removes the oldest entry (the one [`Spool::front`] returned); deletes its file once it
    /// has none left.
    pub(super) async fn pop(&mut self) -> io::Result<()> {
        if self.front().await?.is_some() {
            self.head.pop_front();
            // Saturating: a file sealed after a failed truncate holds lines never counted.
            self.len = self.len.saturating_sub(1);
            if self.head.is_empty() {
                self.remove_oldest().await;
            }
        }
        Ok(())
    }

    /// Appends `commands`, in order, after everything in the spool: one write and one fsync.
    /// On failure nothing counts as spooled (a partial write is cut off again when possible;
    /// otherwise the file is sealed, and its readable lines are replayed twice, which the
    /// commands' idempotence makes harmless).
    pub(super) async fn append(&mut self, commands: &[ArchiveCommand]) -> Result<(), String> {
        let mut bytes = Vec::new();
        for command in commands {
            serde_json::to_writer(&mut bytes, command)
                .map_err(|e| format!("cannot serialize {}: {e}", command.describe()))?;
            bytes.push(b'\n');
        }
        self.blocking(move |files| files.append(&bytes))
            .await
            .map_err(|e| e.to_string())?;
        self.len += commands.len() as u64;
        Ok(())
    }

    async fn remove_oldest(&mut self) {
        self.head_loaded = false;
        if let Err(e) = self.blocking(Files::remove_oldest).await {
            // Its entries are applied: replaying them at the next start changes nothing.
            tracing::warn!(error = %e, "cannot delete an applied spool file");
        }
    }

    fn files(&self) -> &Files {
        self.files
            .as_ref()
            .expect("the spool's files are back after each blocking call")
    }

    /// Runs `f` on the files in tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Files) -> T + Send + 'static,
    ) -> T {
        let mut files = self
            .files
            .take()
            .expect("the spool's files are back after each blocking call");
        let (files, out) = tokio::task::spawn_blocking(move || {
            let out = f(&mut files);
            (files, out)
        })
        .await
        .expect("the spool's blocking I/O does not panic");
        self.files = Some(files);
        out
    }
}

impl Files {
    fn open(dir: PathBuf) -> io::Result<(Files, u64)> {
        std::fs::create_dir_all(&dir)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_prefix("archive-"))
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            found.push(SpoolFile {
                number,
                path: entry.path(),
            });
        }
        found.sort_by_key(|f| f.number);
        let next_number = found.last().map_or(1, |f| f.number + 1);
        let mut files = VecDeque::new();
        let mut len = 0;
        for file in found {
            let entries = count_entries(&file.path)?;
            if entries == 0 {
                // Created by a spill that then failed: nothing to replay.
                let _ = std::fs::remove_file(&file.path);
                continue;
            }
            len += entries;
            files.push_back(file);
        }
        Ok((
            Files {
                dir,
                files,
                tail: None,
                next_number,
            },
            len,
        ))
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.tail.as_ref().is_none_or(|t| t.bytes >= ROTATE_BYTES) {
            self.start_file()?;
        }
        let tail = self.tail.as_mut().expect("start_file opened a tail");
        let written = tail
            .file
            .write_all(bytes)
            .and_then(|()| tail.file.sync_data());
        match written {
            Ok(()) => {
                tail.bytes += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut the partial batch off so the next append starts on a fresh line.
                let restored = tail
                    .file
                    .set_len(tail.bytes)
                    .and_then(|()| tail.file.sync_data());
                if restored.is_err() {
                    self.tail = None;
                }
                Err(e)
            }
        }
    }

    /// Opens a new newest file for appends.
    fn start_file(&mut self) -> io::Result<()> {
        self.tail = None;
        let number = self.next_number;
        let path = self.dir.join(format!("archive-{number:010}.jsonl"));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)?;
        self.next_number += 1;
        self.files.push_back(SpoolFile { number, path });
        // The new name must survive a power cut along with its content.
        File::open(&self.dir)?.sync_all()?;
        self.tail = Some(Tail {
            number,
            file,
            bytes: 0,
        });
        Ok(())
    }

    fn load_oldest(&mut self) -> io::Result<Vec<Entry>> {
        let oldest = self
            .files
            .front()
            .expect("load_oldest is called with files");
        if self
            .tail
            .as_ref()
            .is_some_and(|t| t.number == oldest.number)
        {
            // Sealed: what comes next goes to a new file.
            self.tail = None;
        }
        let text = std::fs::read(&oldest.path)?;
        Ok(text
            .split(|b| *b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(|line| match serde_json::from_slice(line) {
                Ok(command) => Entry::Command(command),
                Err(e) => Entry::Unreadable {
                    line: String::from_utf8_lossy(line).into_owned(),
                    error: format!("unreadable spool line: {e}"),
                },
            })
            .collect())
    }

    fn remove_oldest(&mut self) -> io::Result<()> {
        let Some(oldest) = self.files.pop_front() else {
            return Ok(());
        };
        if self
            .tail
            .as_ref()
            .is_some_and(|t| t.number == oldest.number)
        {
            self.tail = None;
        }
        std::fs::remove_file(&oldest.path)
    }
}

/// Lines that are not blank: one entry each.
fn count_entries(path: &Path) -> io::Result<u64> {
    let text = std::fs::read(path)?;
    Ok(text
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .count() as u64)
}

/// Appends one line to `rejected.jsonl` in `dir`, synced.
pub(super) async fn dead_letter(dir: PathBuf, line: String) -> io::Result<()> {
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join(REJECTED_FILE))?;
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        file.write_all(&bytes)?;
        file.sync_data()
    })
    .await
    .unwrap_or_else(|e| Err(io::Error::other(e)))
}
