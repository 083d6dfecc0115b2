//! Leg files: 16-bit PCM mono WAV, valid on disk while they grow, RF64 past 4 GiB, and the
//! repair of a file left by a crash.
//!
//! Why our own writer rather than hound (kept as a dev-dependency, to read files back in tests):
//! hound keeps the data length in a `u32`, so a file wraps past 4 GiB and cannot become RF64; it
//! updates the header with seek, write, seek back through a buffer, so after a failed write
//! nobody knows which samples reached the disk; and its `create` truncates an existing file. The
//! format we write is small:
//!
//! ```text
//! offset  RIFF form                           RF64 form (EBU Tech 3306), past the RIFF limit
//!  0      "RIFF"  u32 file size - 8           "RF64"  u32 0xFFFF_FFFF
//!  8      "WAVE"                              "WAVE"
//! 12      "JUNK"  u32 28, 28 zero bytes       "ds64"  u32 28, u64 file size - 8, u64 data size,
//!                                                     u64 sample count, u32 0 (no table)
//! 48      "fmt "  u32 16, PCM, 1 channel, rate, 2 × rate, block align 2, 16 bits
//! 72      "data"  u32 data size               "data"  u32 0xFFFF_FFFF
//! 80      samples, little-endian i16
//! ```
//!
//! The `JUNK` chunk reserves the place of the `ds64` chunk, so the switch to RF64 rewrites the
//! 80-byte header in place and never moves data. The header depends only on the data length (and
//! on whether the file is RF64 yet: once RF64, always RF64), and is written with one positioned
//! write at offset 0. Samples are appended with positioned writes at a tracked offset, so a short
//! or failed write tells exactly how many whole samples are on disk: the file is then cut there
//! (`set_len`) and its header rewritten, which needs no new disk block. Files are created with
//! `create_new`: an existing file is never truncated nor reused.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Bytes before the first sample of the files we write.
pub(crate) const HEADER_LEN: u64 = 80;
/// The largest RIFF size (file size - 8) a plain RIFF header holds; beyond it the file is RF64.
pub(crate) const MAX_RIFF_SIZE: u64 = u32::MAX as u64;
/// Size of the `ds64` chunk's body without a table, and of the `JUNK` chunk that reserves it.
const DS64_LEN: usize = 28;
/// Where the `ds64` (or `JUNK`) chunk starts: RF64 requires it first after `WAVE`.
const DS64_AT: usize = 12;
/// Bytes per sample: 16-bit mono.
const BLOCK_ALIGN: u16 = 2;
/// A header longer than this is not one `repair` understands.
const MAX_REPAIR_HEADER: usize = 4096;

/// A leg file being written.
#[derive(Debug)]
pub(crate) struct WavFile {
    file: File,
    path: PathBuf,
    sample_rate: u32,
    /// Bytes of whole samples on disk after the header.
    data_len: u64,
    /// The data length the header on disk states.
    header_data_len: u64,
    /// Becomes true when the RIFF size passes `max_riff_size`, and stays true.
    rf64: bool,
    max_riff_size: u64,
}

impl WavFile {
    /// Creates the file (and its missing parent directories) and writes an empty file's header.
    /// Fails with [`Error::FileExists`] if anything is at `path`. `max_riff_size` is
    /// [`MAX_RIFF_SIZE`] except in tests, which cross into RF64 with a few KiB.
    pub(crate) fn create(path: &Path, sample_rate: u32, max_riff_size: u64) -> Result<WavFile> {
        let io_error = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    Error::FileExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    io_error(source)
                }
            })?;
        let mut wav = WavFile {
            file,
            path: path.to_path_buf(),
            sample_rate,
            data_len: 0,
            header_data_len: 0,
            rf64: false,
            max_riff_size,
        };
        if let Err(error) = wav.write_header() {
            // The file is ours and empty (no header fits: the disk is full): it holds nothing to
            // keep, and an empty file is no WAV.
            let _ = fs::remove_file(path);
            return Err(error);
        }
        Ok(wav)
    }

    /// Whole samples on disk.
    pub(crate) fn samples(&self) -> u64 {
        self.data_len / u64::from(BLOCK_ALIGN)
    }

    /// Samples are on disk that the header does not count yet.
    pub(crate) fn header_is_stale(&self) -> bool {
        self.header_data_len != self.data_len
    }

    /// Appends `samples`, converted through `bytes` (a buffer the caller reuses), with one
    /// positioned write (more only if the kernel writes short). On failure the file is cut at its
    /// last whole sample with a valid header, and the error returned: write nothing more to it.
    pub(crate) fn append(&mut self, samples: &[i16], bytes: &mut Vec<u8>) -> Result<()> {
        bytes.clear();
        bytes.extend(samples.iter().flat_map(|sample| sample.to_le_bytes()));
        self.append_bytes(bytes)
    }

    /// Appends `count` samples of silence, from `zeros` (an all-zero buffer of even length).
    pub(crate) fn append_silence(&mut self, mut count: u64, zeros: &[u8]) -> Result<()> {
        let per_write = (zeros.len() / usize::from(BLOCK_ALIGN)).max(1) as u64;
        while count > 0 {
            let now = count.min(per_write);
            self.append_bytes(&zeros[..(now * u64::from(BLOCK_ALIGN)) as usize])?;
            count -= now;
        }
        Ok(())
    }

    fn append_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let offset = HEADER_LEN + self.data_len;
        let mut written = 0;
        let failure = loop {
            if written == bytes.len() {
                break None;
            }
            match self
                .file
                .write_at(&bytes[written..], offset + written as u64)
            {
                Ok(0) => break Some(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(count) => written += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => break Some(error),
            }
        };
        // Whole samples only: half a sample written before a failure is cut off below.
        self.data_len += written as u64 & !(u64::from(BLOCK_ALIGN) - 1);
        match failure {
            None => Ok(()),
            Some(source) => {
                let error = Error::Io {
                    path: self.path.clone(),
                    source,
                };
                if let Err(cut) = self.cut() {
                    tracing::error!(
                        path = %self.path.display(),
                        error = %crate::error::chain(&cut),
                        "cannot cut a failed leg file at its last whole sample; its header may be stale"
                    );
                }
                Err(error)
            }
        }
    }

    /// Drops whatever lies past the last whole sample and makes the header say so.
    fn cut(&mut self) -> Result<()> {
        self.file
            .set_len(HEADER_LEN + self.data_len)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        self.write_header()
    }

    /// Rewrites the header for the data on disk, with one positioned write.
    pub(crate) fn write_header(&mut self) -> Result<()> {
        let mut header = empty_header(self.sample_rate);
        self.rf64 |= riff_size(HEADER_LEN, self.data_len) > self.max_riff_size;
        set_sizes(
            &mut header,
            HEADER_LEN,
            self.data_len,
            BLOCK_ALIGN,
            self.rf64,
        );
        self.file
            .write_all_at(&header, 0)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        self.header_data_len = self.data_len;
        Ok(())
    }

    /// The final header, if stale; returns the file, still open, for syncing and hashing.
    pub(crate) fn finish(mut self) -> (File, Result<()>) {
        let result = if self.header_is_stale() {
            self.write_header()
        } else {
            Ok(())
        };
        (self.file, result)
    }

    /// The file as it is (after a failure: already cut), for syncing and hashing.
    pub(crate) fn into_file(self) -> File {
        self.file
    }
}

/// The header of an empty file of ours, `JUNK` in place of `ds64`.
fn empty_header(sample_rate: u32) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        header[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"RIFF");
    put(&0u32.to_le_bytes());
    put(b"WAVE");
    put(b"JUNK");
    put(&(DS64_LEN as u32).to_le_bytes());
    put(&[0; DS64_LEN]);
    put(b"fmt ");
    put(&16u32.to_le_bytes());
    put(&1u16.to_le_bytes()); // PCM
    put(&1u16.to_le_bytes()); // mono
    put(&sample_rate.to_le_bytes());
    put(&(sample_rate.saturating_mul(u32::from(BLOCK_ALIGN))).to_le_bytes());
    put(&BLOCK_ALIGN.to_le_bytes());
    put(&16u16.to_le_bytes());
    put(b"data");
    put(&0u32.to_le_bytes());
    header
}

fn riff_size(data_offset: u64, data_len: u64) -> u64 {
    data_offset - 8 + data_len
}

/// Writes the sizes of a file whose data chunk starts at `data_offset` and holds `data_len`
/// bytes into `header` (its first `data_offset` bytes): as RIFF, or as RF64 with the `ds64`
/// chunk at offset 12 (which must then be a `JUNK` or `ds64` chunk of at least 28 bytes).
fn set_sizes(header: &mut [u8], data_offset: u64, data_len: u64, block_align: u16, rf64: bool) {
    let size_field = data_offset as usize - 4;
    let riff = riff_size(data_offset, data_len);
    if rf64 {
        header[0..4].copy_from_slice(b"RF64");
        header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        header[DS64_AT..DS64_AT + 4].copy_from_slice(b"ds64");
        let body = DS64_AT + 8;
        header[body..body + 8].copy_from_slice(&riff.to_le_bytes());
        header[body + 8..body + 16].copy_from_slice(&data_len.to_le_bytes());
        let frames = data_len / u64::from(block_align.max(1));
        header[body + 16..body + 24].copy_from_slice(&frames.to_le_bytes());
        header[body + 24..body + 28].copy_from_slice(&0u32.to_le_bytes());
        header[size_field..size_field + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    } else {
        // Callers check that the sizes fit: RF64 otherwise.
        header[0..4].copy_from_slice(b"RIFF");
        header[4..8].copy_from_slice(&(riff as u32).to_le_bytes());
        header[size_field..size_field + 4].copy_from_slice(&(data_len as u32).to_le_bytes());
    }
}

/// What [`repair`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repaired {
    /// Whole samples (frames) in the file.
    pub samples: u64,
    pub sample_rate: u32,
    /// Hex SHA-256 of the repaired file.
    pub sha256: String,
}

/// Makes a leg file left by a crash (kill -9, power cut) exact: the data length is what the
/// file holds in whole samples (a half sample at the end is cut off), the header's sizes are
/// rewritten to match (RF64 if the data outgrew RIFF), the file is synced and hashed. Changes
/// nothing in a file that is already exact, so it can run again on the same file. Reads the
/// files this crate writes and canonical PCM WAVs (hound's, from earlier versions).
pub fn repair(path: &Path) -> Result<Repaired> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    let mut head = vec![0u8; MAX_REPAIR_HEADER.min(len as usize)];
    file.read_exact_at(&mut head, 0).map_err(io_error)?;
    let layout = Layout::parse(&head).map_err(|problem| Error::NotWav {
        path: path.to_path_buf(),
        problem,
    })?;
    let block_align = u64::from(layout.block_align);
    let samples = (len - layout.data_offset) / block_align;
    let data_len = samples * block_align;
    let exact_len = layout.data_offset + data_len;
    let too_big = riff_size(layout.data_offset, data_len) > MAX_RIFF_SIZE;
    if too_big && !layout.room_for_ds64 {
        return Err(Error::NotWav {
            path: path.to_path_buf(),
            problem: "data too large for RIFF and no room for a ds64 chunk",
        });
    }
    let mut header = head[..layout.data_offset as usize].to_vec();
    set_sizes(
        &mut header,
        layout.data_offset,
        data_len,
        layout.block_align,
        layout.rf64 || too_big,
    );
    if exact_len != len {
        file.set_len(exact_len).map_err(io_error)?;
    }
    if header[..] != head[..header.len()] {
        file.write_all_at(&header, 0).map_err(io_error)?;
    }
    file.sync_data().map_err(io_error)?;
    let sha256 = sha256_of(&file).map_err(io_error)?;
    Ok(Repaired {
        samples,
        sample_rate: layout.sample_rate,
        sha256,
    })
}

/// Where a WAV file's parts are, read from its header.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// Offset of the first sample.
    data_offset: u64,
    sample_rate: u32,
    block_align: u16,
    /// The file says RF64 already.
    rf64: bool,
    /// A `JUNK` or `ds64` chunk of at least 28 bytes right after `WAVE`.
    room_for_ds64: bool,
}

impl Layout {
    /// Walks the chunks up to `data`; sizes other than the data's are trusted (they were
    /// written when the file was created), the data's and the RIFF size are not.
    fn parse(head: &[u8]) -> Result<Layout, &'static str> {
        let u32_at = |at: usize| -> Option<u32> {
            head.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let u16_at = |at: usize| -> Option<u16> {
            head.get(at..at + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
        };
        let rf64 = match head.get(0..4) {
            Some(b"RIFF") => false,
            Some(b"RF64") => true,
            _ => return Err("no RIFF or RF64 tag"),
        };
        if head.get(8..12) != Some(b"WAVE") {
            return Err("no WAVE tag");
        }
        let mut at = 12;
        let mut format = None;
        let mut room_for_ds64 = false;
        loop {
            let id = head.get(at..at + 4).ok_or("no data chunk in the header")?;
            let size = u32_at(at + 4).ok_or("truncated chunk header")? as usize;
            let body = at + 8;
            match id {
                b"data" => {
                    let (sample_rate, block_align) = format.ok_or("data before fmt")?;
                    if rf64 && !room_for_ds64 {
                        return Err("RF64 without a ds64 chunk");
                    }
                    return Ok(Layout {
                        data_offset: body as u64,
                        sample_rate,
                        block_align,
                        rf64,
                        room_for_ds64,
                    });
                }
                b"fmt " => {
                    let sample_rate = u32_at(body + 4).ok_or("truncated fmt chunk")?;
                    let block_align = u16_at(body + 12).ok_or("truncated fmt chunk")?;
                    if size < 16 || block_align == 0 {
                        return Err("invalid fmt chunk");
                    }
                    format = Some((sample_rate, block_align));
                }
                b"JUNK" | b"ds64" if at == DS64_AT && size >= DS64_LEN => room_for_ds64 = true,
                b"ds64" => return Err("ds64 chunk that is not first"),
                _ => {}
            }
            // Chunks are padded to an even length.
            at = body + size + (size & 1);
        }
    }
}

/// Hex SHA-256 of a whole file, read with positioned reads (the file's cursor is not used).
pub(crate) fn sha256_of(file: &File) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let read = match file.read_at(&mut buffer, offset) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..read]);
        offset += read as u64;
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests;
