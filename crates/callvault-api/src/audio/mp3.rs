//! The mix encoded to MP3 by LAME, a chunk at a time.
//!
//! LAME through `mp3lame-encoder` (which builds LAME 3.100 from the source it ships, with the C
//! compiler and `make`: nothing to install from Debian, nothing fetched). Constant bitrate sized
//! for speech: 16 kbit/s per channel at 8 kHz, 32 at 16 kHz, 40 at 24 kHz and 64 above (LAME's
//! own presets for voice are in that range; CBR keeps the size predictable and needs no header
//! rewritten at the end, which a stream cannot do). Stereo is plain stereo, not joint stereo:
//! the channels are two different people, with nothing in common to share. The output keeps the
//! mix's rate when MPEG audio has it (8, 11.025, 12, 16, 22.05, 24, 32, 44.1, 48 kHz), else LAME
//! resamples to the next rate up.
//!
//! No Xing/LAME tag: it is written last and belongs at the start, so a stream cannot carry it.
//! Without it a decoder plays LAME's encoder delay (1105 samples: 138 ms at 8 kHz, 69 ms at
//! 16 kHz, 23 ms at 48 kHz) as leading silence, and the last frame's zero padding as trailing
//! silence (under one frame); offsets in the MP3 are that much later than in the WAV, which
//! stays the reference. The end is flushed with `lame_encode_flush` (zero padding): the no-gap
//! flush keeps the last partial frame for a following stream, and lost the last samples here.

use std::num::NonZeroU32;

use bytes::Bytes;
use mp3lame_encoder::{
    Bitrate, BuildError, Builder, Encoder, FlushGap, InterleavedPcm, Mode, MonoPcm, Quality,
    VbrMode,
};

use crate::audio::body::ChunkSource;
use crate::audio::mix::{Channels, DEFAULT_CHUNK_FRAMES, MixLeg, Mixer};
use crate::error::Result;

/// MPEG audio's sample rates (MPEG-2.5, MPEG-2, MPEG-1).
const MPEG_RATES: [u32; 9] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];
/// Room LAME may need at the end (one frame plus the bit reservoir), per its documentation.
const FLUSH_ROOM: usize = 7200;

/// A mix as MP3, produced a chunk at a time.
pub struct Mp3Stream {
    mixer: Mixer,
    encoder: Encoder,
    bitrate_kbps: u16,
    out: Vec<u8>,
    finished: bool,
}

impl std::fmt::Debug for Mp3Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp3Stream")
            .field("mixer", &self.mixer)
            .field("sample_rate", &self.encoder.sample_rate())
            .field("bitrate_kbps", &self.bitrate_kbps)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Mp3Stream {
    /// Opens the legs and mixes them in chunks of [`DEFAULT_CHUNK_FRAMES`] frames.
    pub fn open(legs: &[MixLeg], channels: Channels) -> Result<Mp3Stream> {
        Mp3Stream::new(Mixer::open(legs, channels, DEFAULT_CHUNK_FRAMES)?)
    }

    /// Encodes what `mixer` produces (from where it stands).
    pub fn new(mixer: Mixer) -> Result<Mp3Stream> {
        let rate = mixer.sample_rate();
        let output_rate = MPEG_RATES
            .iter()
            .copied()
            .find(|&mpeg| mpeg >= rate)
            .unwrap_or(48_000);
        let (bitrate, bitrate_kbps) = speech_bitrate(output_rate, mixer.channels());
        let mut builder = Builder::new().ok_or(BuildError::NoMem)?;
        builder.set_num_channels(mixer.channels().count() as u8)?;
        builder.set_sample_rate(rate)?;
        builder.set_output_sample_rate(NonZeroU32::new(output_rate))?;
        builder.set_mode(match mixer.channels() {
            Channels::Mono => Mode::Mono,
            Channels::Stereo => Mode::Stereo,
        })?;
        builder.set_vbr_mode(VbrMode::Off)?;
        builder.set_brate(bitrate)?;
        builder.set_quality(Quality::Good)?;
        builder.set_to_write_vbr_tag(false)?;
        let encoder = builder.build()?;
        let samples = mixer.chunk_frames() * usize::from(mixer.channels().count());
        let out =
            Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(samples).max(FLUSH_ROOM));
        Ok(Mp3Stream {
            mixer,
            encoder,
            bitrate_kbps,
            out,
            finished: false,
        })
    }

    /// The sample rate of the MP3 (the mix's, or the next MPEG rate up).
    pub fn sample_rate(&self) -> u32 {
        self.encoder.sample_rate()
    }

    pub fn bitrate_kbps(&self) -> u16 {
        self.bitrate_kbps
    }

    /// Samples held by the mixer, plus the bytes of the output buffer, all sized when the stream
    /// is made (LAME's own state is fixed too).
    pub fn buffered(&self) -> usize {
        self.mixer.buffered_samples() + self.out.capacity()
    }
}

impl ChunkSource for Mp3Stream {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        while !self.finished {
            self.out.clear();
            let channels = self.mixer.channels();
            match self.mixer.next_frames()? {
                Some(pcm) => {
                    self.out
                        .reserve(mp3lame_encoder::max_required_buffer_size(pcm.len()));
                    match channels {
                        Channels::Mono => self.encoder.encode_to_vec(MonoPcm(pcm), &mut self.out),
                        Channels::Stereo => self
                            .encoder
                            .encode_to_vec(InterleavedPcm(pcm), &mut self.out),
                    }?;
                }
                None => {
                    self.out.reserve(FLUSH_ROOM);
                    self.encoder.flush_to_vec::<FlushGap>(&mut self.out)?;
                    self.finished = true;
                }
            }
            // LAME holds back the first frames it is given (its delay and look-ahead).
            if !self.out.is_empty() {
                return Ok(Some(Bytes::copy_from_slice(&self.out)));
            }
        }
        Ok(None)
    }

    fn exact_len(&self) -> Option<u64> {
        None
    }
}

/// A constant bitrate for speech at `rate` (an MPEG rate), valid for its MPEG version.
fn speech_bitrate(rate: u32, channels: Channels) -> (Bitrate, u16) {
    let stereo = channels == Channels::Stereo;
    match (rate, stereo) {
        (..=12_000, false) => (Bitrate::Kbps16, 16),
        (..=12_000, true) => (Bitrate::Kbps32, 32),
        (..=16_000, false) => (Bitrate::Kbps32, 32),
        (..=16_000, true) => (Bitrate::Kbps64, 64),
        (..=24_000, false) => (Bitrate::Kbps40, 40),
        (..=24_000, true) => (Bitrate::Kbps80, 80),
        (_, false) => (Bitrate::Kbps64, 64),
        (_, true) => (Bitrate::Kbps128, 128),
    }
}

/// Encodes one leg file on its own (mono) — a leg downloaded as MP3.
pub fn leg_mp3(audio: impl Into<crate::audio::LegAudio>) -> Result<Mp3Stream> {
    Mp3Stream::open(
        &[MixLeg::new(audio, crate::audio::mix::Party::Unknown)],
        Channels::Mono,
    )
}

#[cfg(test)]
mod tests;
