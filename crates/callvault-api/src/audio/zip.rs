//! Several files in one zip archive, written as a stream.
//!
//! The `zip` crate's streaming writer (`ZipWriter::new_stream`) needs no `Seek`: each entry's
//! sizes and CRC follow its data in a data descriptor. Entries are stored, not deflated: PCM
//! gains little (10-20 %) for the CPU it costs, MP3 nothing. An entry is opened only when its
//! turn comes and its body copied a chunk at a time, so the archive holds one chunk in memory
//! (plus the names) whatever the number and size of the recordings. Entries larger than 4 GiB,
//! or of unknown size (MP3), get ZIP64 fields.
//!
//! The writer's output goes into a buffer this stream drains after every write. The buffer is
//! shared with the writer through an `Arc<Mutex>`, only ever locked by the thread producing the
//! chunk: the zip crate gives no safe access to the writer inside a `ZipWriter`.

use std::collections::{HashSet, VecDeque};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use time::OffsetDateTime;
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::audio::body::ChunkSource;
use crate::audio::naming::sanitize_file_name;
use crate::error::Result;

/// Sizes from which an entry needs ZIP64 fields (the 32-bit fields' largest value).
const ZIP64_FROM: u64 = u32::MAX as u64;

type Opener = Box<dyn FnOnce() -> Result<Box<dyn ChunkSource>> + Send>;

/// One file of the archive: its name and how to open its body when its turn comes.
pub struct ZipEntry {
    name: String,
    folder: Option<String>,
    modified: Option<OffsetDateTime>,
    open: Opener,
}

impl std::fmt::Debug for ZipEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipEntry")
            .field("name", &self.name)
            .field("modified", &self.modified)
            .finish_non_exhaustive()
    }
}

impl ZipEntry {
    /// An entry named `name` (sanitised again, and made unique in the archive) whose body
    /// `open` produces when the archive reaches it (e.g. `|| leg_source(&path)`).
    pub fn new(
        name: impl Into<String>,
        open: impl FnOnce() -> Result<Box<dyn ChunkSource>> + Send + 'static,
    ) -> ZipEntry {
        ZipEntry {
            name: name.into(),
            folder: None,
            modified: None,
            open: Box::new(open),
        }
    }

    /// Sets the entry's modification time (zip keeps local time to 2 s, years 1980-2107).
    pub fn modified(mut self, at: OffsetDateTime) -> ZipEntry {
        self.modified = Some(at);
        self
    }

    /// Puts the entry in a folder of the archive (`folder/name`; the folder's name is
    /// sanitised like a file's).
    pub fn in_folder(mut self, folder: &str) -> ZipEntry {
        self.folder = Some(folder.to_owned());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A zip archive of entries, produced a chunk at a time.
pub struct ZipStream {
    writer: Option<ZipWriter<StreamWriter<Output>>>,
    output: Output,
    pending: VecDeque<ZipEntry>,
    current: Option<Box<dyn ChunkSource>>,
}

impl std::fmt::Debug for ZipStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipStream")
            .field("pending", &self.pending)
            .field("writing_entry", &self.current.is_some())
            .finish_non_exhaustive()
    }
}

impl ZipStream {
    /// An archive of `entries`, in order, their names made unique (`name.wav`, `name_2.wav`,
    /// compared without regard to case, as Windows and macOS extract).
    pub fn new(entries: Vec<ZipEntry>) -> ZipStream {
        let mut taken = HashSet::new();
        let pending = entries
            .into_iter()
            .map(|mut entry| {
                let file = sanitize_file_name(&entry.name);
                let path = match &entry.folder {
                    Some(folder) => format!("{}/{file}", sanitize_file_name(folder)),
                    None => file,
                };
                entry.name = unique_name(&path, &mut taken);
                entry
            })
            .collect();
        let output = Output::default();
        ZipStream {
            writer: Some(ZipWriter::new_stream(output.clone())),
            output,
            pending,
            current: None,
        }
    }

    /// The names of the entries still to be written, as they will appear in the archive.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pending.iter().map(|entry| entry.name.as_str())
    }

    fn step(&mut self, writer: &mut ZipWriter<StreamWriter<Output>>) -> Result<bool> {
        if let Some(source) = &mut self.current {
            match source.next_chunk()? {
                Some(chunk) => {
                    writer
                        .write_all(&chunk)
                        .map_err(zip::result::ZipError::Io)?;
                }
                None => self.current = None,
            }
            return Ok(true);
        }
        let Some(entry) = self.pending.pop_front() else {
            return Ok(false);
        };
        let source = (entry.open)()?;
        let large = source.exact_len().is_none_or(|len| len >= ZIP64_FROM);
        let mut options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .large_file(large);
        if let Some(at) = entry.modified.and_then(zip_time) {
            options = options.last_modified_time(at);
        }
        writer.start_file(entry.name, options)?;
        self.current = Some(source);
        Ok(true)
    }
}

impl ChunkSource for ZipStream {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(None);
        };
        // Steps until the writer has put out something (an entry's header, a chunk of it).
        loop {
            if !self.step(&mut writer)? {
                writer.finish()?;
                return Ok(Some(self.output.take()));
            }
            let chunk = self.output.take();
            if !chunk.is_empty() {
                self.writer = Some(writer);
                return Ok(Some(chunk));
            }
        }
    }

    fn exact_len(&self) -> Option<u64> {
        None
    }
}

/// `name`, or `name_2`, `name_3`… before the extension, whichever is not taken yet.
fn unique_name(name: &str, taken: &mut HashSet<String>) -> String {
    let (stem, extension) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    let mut candidate = name.to_owned();
    let mut n = 1;
    while !taken.insert(candidate.to_lowercase()) {
        n += 1;
        candidate = format!("{stem}_{n}{extension}");
    }
    candidate
}

fn zip_time(at: OffsetDateTime) -> Option<DateTime> {
    DateTime::from_date_and_time(
        u16::try_from(at.year()).ok()?,
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
    )
    .ok()
}

/// Where the zip writer writes; drained by [`ZipStream`] after every step.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.lock()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A panic while the lock was held left at worst a partial write, which the archive
        // being aborted anyway makes moot.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Write for Output {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
