//! Bodies and responses: a leg file or a mix as WAV (with ranges), a mix as MP3, a zip.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{HeaderValue, Response};

use crate::audio::body::{ChunkSource, StreamBody};
use crate::audio::location::LegAudio;
use crate::audio::mix::{Channels, DEFAULT_CHUNK_FRAMES, MixLeg, Mixer};
use crate::audio::mp3::Mp3Stream;
use crate::audio::range::RangeAnswer;
use crate::audio::wav::{OUTPUT_HEADER_LEN, WavFile, output_header};
use crate::error::Result;

/// Bytes of a leg file per chunk.
const FILE_CHUNK: u64 = 64 * 1024;

/// A download format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    Wav,
    Mp3,
}

impl ExportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Wav => "audio/wav",
            ExportFormat::Mp3 => "audio/mpeg",
        }
    }

    /// The file-name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Wav => "wav",
            ExportFormat::Mp3 => "mp3",
        }
    }
}

/// Audio of a known length whose body can start and stop at any byte.
pub trait RangedAudio {
    /// Length of the whole representation, in bytes.
    fn byte_len(&self) -> u64;
    fn content_type(&self) -> &'static str;
    /// The bytes `range` (within `0..len`) as a body.
    fn into_body(self, range: Range<u64>) -> Result<Box<dyn ChunkSource>>;
}

impl RangedAudio for WavFile {
    fn byte_len(&self) -> u64 {
        WavFile::len(self)
    }

    fn content_type(&self) -> &'static str {
        ExportFormat::Wav.content_type()
    }

    fn into_body(self, range: Range<u64>) -> Result<Box<dyn ChunkSource>> {
        Ok(Box::new(FileBytes {
            wav: self,
            next: range.start,
            end: range.end,
        }))
    }
}

/// A range of a leg file as served (header made to match the data).
#[derive(Debug)]
struct FileBytes {
    wav: WavFile,
    next: u64,
    end: u64,
}

impl ChunkSource for FileBytes {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let count = (self.end - self.next).min(FILE_CHUNK) as usize;
        if count == 0 {
            return Ok(None);
        }
        let mut chunk = BytesMut::zeroed(count);
        self.wav.read_served(self.next, &mut chunk)?;
        self.next += count as u64;
        Ok(Some(chunk.freeze()))
    }

    fn exact_len(&self) -> Option<u64> {
        Some(self.end - self.next)
    }
}

/// A recording's legs mixed into a 16-bit PCM WAV file of known length (the 80-byte header of
/// the leg files, with 1 or 2 channels; RF64 past 4 GiB).
#[derive(Debug)]
pub struct MixedWav {
    mixer: Mixer,
}

impl MixedWav {
    /// Opens the legs; chunks of [`DEFAULT_CHUNK_FRAMES`] frames.
    pub fn open(legs: &[MixLeg], channels: Channels) -> Result<MixedWav> {
        Ok(MixedWav::new(Mixer::open(
            legs,
            channels,
            DEFAULT_CHUNK_FRAMES,
        )?))
    }

    pub fn new(mixer: Mixer) -> MixedWav {
        MixedWav { mixer }
    }

    fn block_align(&self) -> u64 {
        2 * u64::from(self.mixer.channels().count())
    }

    fn data_len(&self) -> u64 {
        self.mixer.frames() * self.block_align()
    }

    /// The whole file as a body.
    pub fn into_full_body(self) -> Box<dyn ChunkSource> {
        let len = self.byte_len();
        Box::new(self.into_range(0..len))
    }

    fn into_range(mut self, range: Range<u64>) -> MixedWavBytes {
        let header = output_header(
            self.mixer.sample_rate(),
            self.mixer.channels().count(),
            self.data_len(),
        );
        let block_align = self.block_align();
        let data_start = range.start.saturating_sub(OUTPUT_HEADER_LEN);
        self.mixer.seek(data_start / block_align);
        MixedWavBytes {
            header,
            next: range.start,
            end: range.end,
            skip: (data_start % block_align) as usize,
            mixer: self.mixer,
        }
    }
}

impl RangedAudio for MixedWav {
    fn byte_len(&self) -> u64 {
        OUTPUT_HEADER_LEN + self.data_len()
    }

    fn content_type(&self) -> &'static str {
        ExportFormat::Wav.content_type()
    }

    fn into_body(self, range: Range<u64>) -> Result<Box<dyn ChunkSource>> {
        Ok(Box::new(self.into_range(range)))
    }
}

#[derive(Debug)]
struct MixedWavBytes {
    header: [u8; OUTPUT_HEADER_LEN as usize],
    /// Offset of the next byte in the whole file.
    next: u64,
    end: u64,
    /// Bytes of the next mixed chunk that lie before `next` (a range starting mid-frame).
    skip: usize,
    mixer: Mixer,
}

impl ChunkSource for MixedWavBytes {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.next >= self.end {
            return Ok(None);
        }
        if self.next < OUTPUT_HEADER_LEN {
            let last = self.end.min(OUTPUT_HEADER_LEN);
            let chunk = Bytes::copy_from_slice(&self.header[self.next as usize..last as usize]);
            self.next = last;
            return Ok(Some(chunk));
        }
        let Some(frames) = self.mixer.next_frames()? else {
            return Ok(None);
        };
        let wanted = (self.end - self.next) as usize;
        let mut chunk = BytesMut::with_capacity(frames.len() * 2);
        for sample in frames {
            chunk.extend_from_slice(&sample.to_le_bytes());
        }
        let _ = chunk.split_to(std::mem::take(&mut self.skip));
        chunk.truncate(wanted);
        self.next += chunk.len() as u64;
        Ok(Some(chunk.freeze()))
    }

    fn exact_len(&self) -> Option<u64> {
        Some(self.end - self.next)
    }
}

/// The response to a GET of `audio` with the request's `Range` header: 200, 206 or 416, with
/// `Content-Type`, `Content-Length`, `Accept-Ranges: bytes` and `Content-Range` as they apply.
/// The caller adds `Content-Disposition` (see [`crate::audio::content_disposition`]) and any
/// caching headers.
pub fn ranged_response(
    audio: impl RangedAudio,
    range: Option<&HeaderValue>,
) -> Result<Response<StreamBody>> {
    let len = audio.byte_len();
    let answer = RangeAnswer::for_request(range, len);
    let content_type = audio.content_type();
    let bytes = answer.bytes(len);
    let body_len = bytes.end - bytes.start;
    let body = match answer {
        RangeAnswer::Unsatisfiable => StreamBody::empty(),
        _ => StreamBody::new(audio.into_body(bytes)?),
    };
    let mut response = Response::new(body);
    *response.status_mut() = answer.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body_len));
    if let Some(content_range) = answer.content_range(len) {
        headers.insert(CONTENT_RANGE, content_range);
    }
    Ok(response)
}

/// A leg file for playback: see [`ranged_response`].
pub fn leg_response(
    path: impl Into<LegAudio>,
    range: Option<&HeaderValue>,
) -> Result<Response<StreamBody>> {
    ranged_response(WavFile::open(path)?, range)
}

/// The mix of a recording's legs: WAV with ranges (see [`ranged_response`]), or MP3 as a
/// download (200, `Accept-Ranges: none`, no `Content-Length`: the encoded length is known only
/// at the end).
pub fn mix_response(
    legs: &[MixLeg],
    format: ExportFormat,
    channels: Channels,
    range: Option<&HeaderValue>,
) -> Result<Response<StreamBody>> {
    match format {
        ExportFormat::Wav => ranged_response(MixedWav::open(legs, channels)?, range),
        ExportFormat::Mp3 => Ok(download_response(
            Mp3Stream::open(legs, channels)?,
            format.content_type(),
        )),
    }
}

/// A 200 response with `source` as its body, `Content-Length` when the source knows it, and
/// `Accept-Ranges: none`.
pub fn download_response(
    source: impl ChunkSource,
    content_type: &'static str,
) -> Response<StreamBody> {
    let len = source.exact_len();
    let mut response = Response::new(StreamBody::new(source));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("none"));
    if let Some(len) = len {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}

/// The mix of `legs` in `format`, whole, as a body (for a zip entry).
pub fn mix_source(
    legs: &[MixLeg],
    format: ExportFormat,
    channels: Channels,
) -> Result<Box<dyn ChunkSource>> {
    Ok(match format {
        ExportFormat::Wav => MixedWav::open(legs, channels)?.into_full_body(),
        ExportFormat::Mp3 => Box::new(Mp3Stream::open(legs, channels)?),
    })
}

/// A leg file, whole, as a body (for a zip entry).
pub fn leg_source(path: impl Into<LegAudio>) -> Result<Box<dyn ChunkSource>> {
    let wav = WavFile::open(path)?;
    let len = WavFile::len(&wav);
    wav.into_body(0..len)
}

#[cfg(test)]
mod tests;
