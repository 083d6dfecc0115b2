//! Audio export: leg playback with ranges, mono and stereo mixes as WAV or MP3, zips of several
//! files, and download names. See the crate's design note.

mod body;
mod location;
mod mix;
mod mp3;
mod naming;
mod peaks;
mod range;
mod resample;
mod serve;
mod wav;
mod zip;

pub use body::{ChunkSource, Empty, StreamBody};
pub use location::LegAudio;
pub use mix::{Channels, DEFAULT_CHUNK_FRAMES, MixLeg, Mixer, Party};
pub use mp3::{Mp3Stream, leg_mp3};
pub use naming::{
    FileNamePattern, MAX_NAME_BYTES, MAX_VALUE_CHARS, NameFields, content_disposition,
    sanitize_file_name,
};
pub use peaks::{LegPeaks, MAX_BUCKETS, Peaks, peaks};
pub use range::RangeAnswer;
pub use serve::{
    ExportFormat, MixedWav, RangedAudio, download_response, leg_response, leg_source, mix_response,
    mix_source, ranged_response,
};
pub use wav::{WavFile, WavFormat};
pub use zip::{ZipEntry, ZipStream};
