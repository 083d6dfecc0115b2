//! Reading leg files as they are on disk, and the header of the WAV files we produce.
//!
//! A leg file (written by `callvault-media`'s `wav` module) is 16-bit PCM mono: an 80-byte header
//! (`RIFF`/`WAVE`, a 28-byte `JUNK` chunk reserving the place of RF64's `ds64`, `fmt `, `data`)
//! and the samples, RF64 past 4 GiB. While a call is recorded the header is rewritten at most every
//! 50 ms, so its sizes lag the samples on disk; after a crash they may lag more until `repair`
//! runs. So the file is taken as it is *now*: the data chunk runs to the end of the file (cut to
//! whole blocks), whatever the header says, and the header served is the file's own with its
//! sizes made to match. For a closed, exact file that header is byte for byte the one on disk.
//! The length is a snapshot taken at open: a file still growing is served up to that length, so
//! a response's `Content-Length` and every range in it hold.
//!
//! Why not hound (which the media crate's tests use): it trusts the header's sizes, cannot read
//! RF64, and reads through a cursor. The parser is the media crate's, which is private there;
//! it reads the files that crate writes and canonical PCM WAVs (hound's, from earlier versions).

use std::io;
use std::path::{Path, PathBuf};

use crate::audio::location::{LegAudio, Source};
use crate::error::{Error, Result};

/// The largest RIFF size (file size - 8) a plain RIFF header holds; beyond it the file is RF64.
const MAX_RIFF_SIZE: u64 = u32::MAX as u64;
/// A header longer than this is not one we read.
const MAX_HEADER: usize = 4096;
/// Where the `ds64` (or `JUNK`) chunk starts: RF64 requires it first after `WAVE`.
const DS64_AT: usize = 12;
/// Size of the `ds64` chunk's body without a table.
const DS64_LEN: usize = 28;
/// Length of the header we write for the audio we produce (the leg files' layout).
pub(crate) const OUTPUT_HEADER_LEN: u64 = 80;
/// `WAVE_FORMAT_PCM` and `WAVE_FORMAT_EXTENSIBLE`.
const FORMAT_PCM: u16 = 1;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// The sample format a WAV file declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavFormat {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
    /// Bytes per frame (one sample of every channel).
    pub block_align: u16,
    /// Integer PCM (plain or `WAVE_FORMAT_EXTENSIBLE`).
    pub pcm: bool,
}

/// A WAV file opened for reading, as it was on disk when opened.
#[derive(Debug)]
pub struct WavFile {
    file: Source,
    path: PathBuf,
    /// The header to serve: the file's own first `data_offset` bytes, sizes made to match.
    header: Vec<u8>,
    /// The header on disk differed from `header` (a recording in progress, or left by a crash).
    stale: bool,
    data_len: u64,
    format: WavFormat,
}

impl WavFile {
    /// Opens a leg (a path, or an object in the bucket) and takes a snapshot of its length.
    pub fn open(audio: impl Into<LegAudio>) -> Result<WavFile> {
        let audio = audio.into();
        let shown = audio.shown();
        let path: &Path = &shown;
        let io_error = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let not_wav = |problem| Error::NotWav {
            path: path.to_path_buf(),
            problem,
        };
        let file = audio.open().map_err(io_error)?;
        let len = file.len().map_err(io_error)?;
        let mut head = vec![0u8; MAX_HEADER.min(usize::try_from(len).unwrap_or(MAX_HEADER))];
        file.read_exact_at(&mut head, 0).map_err(io_error)?;
        let layout = Layout::parse(&head).map_err(not_wav)?;
        if layout.data_offset > len {
            return Err(not_wav("the file ends inside its header"));
        }
        let block_align = u64::from(layout.format.block_align);
        let data_len = (len - layout.data_offset) / block_align * block_align;
        let mut header = head[..layout.data_offset as usize].to_vec();
        let rf64 = layout.rf64 || riff_size(layout.data_offset, data_len) > MAX_RIFF_SIZE;
        if rf64 && !layout.room_for_ds64 {
            return Err(not_wav(
                "data too large for RIFF and no room for a ds64 chunk",
            ));
        }
        set_sizes(&mut header, data_len, layout.format.block_align, rf64);
        let stale = header[..] != head[..header.len()];
        Ok(WavFile {
            file,
            path: path.to_path_buf(),
            header,
            stale,
            data_len,
            format: layout.format,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> WavFormat {
        self.format
    }

    /// Length of the file as served: header plus whole blocks of data.
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.data_len
    }

    /// Never true: a WAV file has a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Frames (samples per channel) in the snapshot.
    pub fn frames(&self) -> u64 {
        self.data_len / u64::from(self.format.block_align)
    }

    /// The header on disk did not describe the data on disk; what is served has a header that
    /// does.
    pub fn header_was_stale(&self) -> bool {
        self.stale
    }

    /// Fills `buf` with the bytes of the file as served from `offset` (header included).
    /// `offset + buf.len()` must not pass [`WavFile::len`].
    pub(crate) fn read_served(&self, mut offset: u64, mut buf: &mut [u8]) -> Result<()> {
        let header = self.header.len() as u64;
        if offset < header {
            let from_header = ((header - offset) as usize).min(buf.len());
            let start = offset as usize;
            buf[..from_header].copy_from_slice(&self.header[start..start + from_header]);
            buf = &mut buf[from_header..];
            offset += from_header as u64;
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source: if source.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file became shorter while it was read",
                    )
                } else {
                    source
                },
            })
    }

    /// Fills `samples` with the 16-bit mono samples from frame `frame` on, through `bytes` (a
    /// buffer the caller reuses); samples past the snapshot's end are silence. Only for
    /// [`WavFile::check_mixable`] files.
    pub(crate) fn read_samples(
        &self,
        frame: u64,
        samples: &mut [f32],
        bytes: &mut Vec<u8>,
    ) -> Result<()> {
        let available = self
            .frames()
            .saturating_sub(frame)
            .min(samples.len() as u64) as usize;
        bytes.resize(available * 2, 0);
        self.read_served(self.header.len() as u64 + frame * 2, bytes)?;
        for (sample, pair) in samples.iter_mut().zip(bytes.chunks_exact(2)) {
            *sample = f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0;
        }
        samples[available..].fill(0.0);
        Ok(())
    }

    /// Refuses a file that is not 16-bit PCM mono, the only format legs are written in.
    pub(crate) fn check_mixable(&self) -> Result<()> {
        let problem = if !self.format.pcm || self.format.bits_per_sample != 16 {
            Some("not 16-bit PCM")
        } else if self.format.channels != 1 || self.format.block_align != 2 {
            Some("not mono")
        } else if self.format.sample_rate == 0 {
            Some("a sample rate of 0")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(Error::NotMixable {
                path: self.path.clone(),
                problem,
            }),
            None => Ok(()),
        }
    }
}

/// The 80-byte header of a 16-bit PCM file we produce with `channels` channels and `data_len`
/// bytes of samples: the leg files' layout, RF64 when the data outgrows RIFF.
pub(crate) fn output_header(
    sample_rate: u32,
    channels: u16,
    data_len: u64,
) -> [u8; OUTPUT_HEADER_LEN as usize] {
    let block_align = 2 * channels;
    let mut header = [0u8; OUTPUT_HEADER_LEN as usize];
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
    put(&FORMAT_PCM.to_le_bytes());
    put(&channels.to_le_bytes());
    put(&sample_rate.to_le_bytes());
    put(&sample_rate
        .saturating_mul(u32::from(block_align))
        .to_le_bytes());
    put(&block_align.to_le_bytes());
    put(&16u16.to_le_bytes());
    put(b"data");
    put(&0u32.to_le_bytes());
    let rf64 = riff_size(OUTPUT_HEADER_LEN, data_len) > MAX_RIFF_SIZE;
    set_sizes(&mut header, data_len, block_align, rf64);
    header
}

fn riff_size(data_offset: u64, data_len: u64) -> u64 {
    data_offset - 8 + data_len
}

/// Writes the sizes for `data_len` bytes of data into `header` (everything up to the first
/// sample): as RIFF, or as RF64 with the `ds64` chunk at offset 12 (which must then be a `JUNK`
/// or `ds64` chunk of at least 28 bytes; [`Layout::parse`] checks).
fn set_sizes(header: &mut [u8], data_len: u64, block_align: u16, rf64: bool) {
    let data_offset = header.len() as u64;
    let size_field = header.len() - 4;
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
        // The caller chose RF64 when the sizes do not fit.
        header[0..4].copy_from_slice(b"RIFF");
        header[4..8].copy_from_slice(&(riff as u32).to_le_bytes());
        header[size_field..size_field + 4].copy_from_slice(&(data_len as u32).to_le_bytes());
    }
}

/// Where a WAV file's parts are, read from its header.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// Offset of the first sample.
    data_offset: u64,
    format: WavFormat,
    /// The file says RF64 already.
    rf64: bool,
    /// A `JUNK` or `ds64` chunk of at least 28 bytes right after `WAVE`.
    room_for_ds64: bool,
}

impl Layout {
    /// Walks the chunks up to `data`; sizes other than the data's are trusted (they were written
    /// when the file was created), the data's and the RIFF size are not.
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
                    let format = format.ok_or("data before fmt")?;
                    if rf64 && !room_for_ds64 {
                        return Err("RF64 without a ds64 chunk");
                    }
                    return Ok(Layout {
                        data_offset: body as u64,
                        format,
                        rf64,
                        room_for_ds64,
                    });
                }
                b"fmt " => {
                    let tag = u16_at(body).ok_or("truncated fmt chunk")?;
                    let channels = u16_at(body + 2).ok_or("truncated fmt chunk")?;
                    let sample_rate = u32_at(body + 4).ok_or("truncated fmt chunk")?;
                    let block_align = u16_at(body + 12).ok_or("truncated fmt chunk")?;
                    let bits_per_sample = u16_at(body + 14).ok_or("truncated fmt chunk")?;
                    if size < 16 || block_align == 0 || channels == 0 {
                        return Err("invalid fmt chunk");
                    }
                    // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID's first two bytes are the tag.
                    let pcm = tag == FORMAT_PCM
                        || (tag == FORMAT_EXTENSIBLE
                            && size >= 40
                            && u16_at(body + 24) == Some(FORMAT_PCM));
                    format = Some(WavFormat {
                        sample_rate,
                        channels,
                        bits_per_sample,
                        block_align,
                        pcm,
                    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{leg_header, write_leg};

    #[test]
    fn an_exact_file_is_served_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leg.wav");
        write_leg(&path, 8000, &[1, -2, 3, -4]);
        let wav = WavFile::open(&path).unwrap();
        assert!(!wav.header_was_stale());
        assert_eq!(wav.len(), 88);
        assert_eq!(wav.frames(), 4);
        let mut served = vec![0u8; 88];
        wav.read_served(0, &mut served).unwrap();
        assert_eq!(served, std::fs::read(&path).unwrap());
    }

    #[test]
    fn a_stale_header_is_served_with_the_sizes_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leg.wav");
        // A header that counts 2 samples, 5 samples and half of a sixth on disk.
        let mut bytes = leg_header(16000, 4).to_vec();
        for sample in [10i16, 20, 30, 40, 50] {
            bytes.extend_from_slice(&sample.to_le_bytes());
        }
        bytes.push(0x7f);
        std::fs::write(&path, &bytes).unwrap();

        let wav = WavFile::open(&path).unwrap();
        assert!(wav.header_was_stale());
        assert_eq!(wav.frames(), 5);
        assert_eq!(wav.len(), 90);
        let mut served = vec![0u8; 90];
        wav.read_served(0, &mut served).unwrap();
        assert_eq!(&served[..80], &leg_header(16000, 10)[..]);
        assert_eq!(&served[80..], &bytes[80..90]);
    }

    #[test]
    fn a_riff_header_becomes_rf64_when_the_data_outgrew_it() {
        let mut header = leg_header(8000, 0).to_vec();
        let data_len = 5_000_000_000;
        set_sizes(&mut header, data_len, 2, true);
        assert_eq!(&header[0..4], b"RF64");
        assert_eq!(&header[12..16], b"ds64");
        assert_eq!(
            u64::from_le_bytes(header[28..36].try_into().unwrap()),
            data_len
        );
        assert_eq!(
            u64::from_le_bytes(header[36..44].try_into().unwrap()),
            data_len / 2
        );
        assert_eq!(&header[76..80], &u32::MAX.to_le_bytes());
        let layout = Layout::parse(&header).unwrap();
        assert!(layout.rf64);
        assert_eq!(layout.data_offset, 80);
    }

    #[test]
    fn the_output_header_is_a_leg_header_with_the_channels() {
        assert_eq!(output_header(8000, 1, 10), leg_header(8000, 10));
        let stereo = output_header(48000, 2, 400);
        let layout = Layout::parse(&stereo).unwrap();
        assert_eq!(layout.format.channels, 2);
        assert_eq!(layout.format.block_align, 4);
        assert_eq!(
            u32::from_le_bytes(stereo[64..68].try_into().unwrap()),
            192_000
        );
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("empty", Vec::new()),
            ("text", b"hello, this is not a wav file at all".to_vec()),
            ("riff-only", b"RIFF\0\0\0\0WAVE".to_vec()),
            ("huge-chunk", {
                let mut b = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
                b.extend_from_slice(&u32::MAX.to_le_bytes());
                b
            }),
            ("header-cut", leg_header(8000, 0)[..60].to_vec()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert!(
                matches!(
                    WavFile::open(&path),
                    Err(Error::NotWav { .. } | Error::Io { .. })
                ),
                "{name}"
            );
        }
        let missing = WavFile::open(dir.path().join("missing.wav")).unwrap_err();
        assert!(missing.is_missing_file());
    }

    #[test]
    fn a_canonical_44_byte_wav_is_read_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.wav");
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(36u32 + 4).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&8000u32.to_le_bytes());
        bytes.extend_from_slice(&16000u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&4u32.to_le_bytes());
        bytes.extend_from_slice(&[1, 0, 2, 0]);
        std::fs::write(&path, &bytes).unwrap();
        let wav = WavFile::open(&path).unwrap();
        assert_eq!(wav.len(), 48);
        assert_eq!(wav.frames(), 2);
        assert!(!wav.header_was_stale());
        wav.check_mixable().unwrap();
    }
}
