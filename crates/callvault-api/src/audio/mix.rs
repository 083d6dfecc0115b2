//! Mixing a recording's legs into one mono or stereo signal, a chunk at a time.
//!
//! The mix runs at the highest rate among the legs (a PCMU leg at 8 kHz beside a G.722 leg at
//! 16 kHz is resampled up, never the other down) and is as long as the longest leg. Every leg
//! file starts at the recording's offset 0 — the media engine anchors each leg on the session's
//! answer and fills a stream added mid-call with silence up to its first packet (see
//! `callvault-media`'s timeline) — so the legs are summed sample for sample, with no offset.
//! (The catalog's `added_at_ms` tells when a stream was added; it is *not* an offset into its
//! file.)
//!
//! Stereo puts the caller's legs on the left, the callee's on the right, and a leg of neither
//! party on both. Legs of one channel are summed; the sum then goes through a soft clipper that
//! is linear up to -1 dBFS and bends smoothly towards full scale above it. Why not scale by the
//! number of legs: in a call one party talks at a time, and halving every leg would make the
//! whole mix 6 dB quieter for the rare moment of double talk; why not a hard clip: it would
//! square off those moments harshly, while the soft knee only colours peaks that would have
//! clipped anyway. The clipper has no memory, so a mix started mid-way (a `Range` request) is
//! the same signal.
//!
//! Memory: each leg keeps one read buffer of a chunk, and a resampled leg its resampler's
//! buffers and at most a chunk plus one resampler output of ready samples; the mixer keeps one
//! chunk of accumulators and one chunk of output. Nothing grows with the call's length:
//! [`Mixer::buffered_samples`] counts it all, and a test checks it stays put over a long call.

use crate::audio::location::LegAudio;

use crate::audio::resample::LegSignal;
use crate::audio::wav::WavFile;
use crate::error::{Error, Result};

/// Frames per chunk that [`Mixer::open`] callers use unless they have a reason not to: 85 ms at
/// 48 kHz, enough to keep per-chunk overhead small, small enough that a chunk of stereo output
/// is 16 KiB.
pub const DEFAULT_CHUNK_FRAMES: usize = 4096;
/// Level (in full scale) up to which the clipper is linear: -1 dBFS.
const KNEE: f32 = 0.891_250_9;

/// Which side of the call a leg records (for stereo: caller left, callee right).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Party {
    Caller,
    Callee,
    /// Not known (no participant, or neither side): on both channels.
    Unknown,
}

/// Mono (every leg summed) or stereo (one party per channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channels {
    Mono,
    Stereo,
}

impl Channels {
    pub fn count(self) -> u16 {
        match self {
            Channels::Mono => 1,
            Channels::Stereo => 2,
        }
    }
}

/// One leg to mix: its WAV file (16-bit PCM mono, as written by the media engine) and its party.
/// The sample rate is read from the file.
#[derive(Clone, Debug)]
pub struct MixLeg {
    pub path: LegAudio,
    pub party: Party,
}

impl MixLeg {
    pub fn new(path: impl Into<LegAudio>, party: Party) -> MixLeg {
        MixLeg {
            path: path.into(),
            party,
        }
    }
}

/// The legs of a recording mixed into 16-bit PCM, produced a chunk at a time.
#[derive(Debug)]
pub struct Mixer {
    legs: Vec<(LegSignal, Party)>,
    channels: Channels,
    sample_rate: u32,
    frames: u64,
    position: u64,
    chunk_frames: usize,
    /// One leg's chunk.
    scratch: Vec<f32>,
    /// The chunk being summed, interleaved.
    sum: Vec<f32>,
    /// The chunk handed out, interleaved.
    out: Vec<i16>,
}

impl Mixer {
    /// Opens every leg (a snapshot of each file's length: legs still being recorded are mixed up
    /// to what they hold now) and prepares a mix of `chunk_frames` frames per chunk.
    pub fn open(legs: &[MixLeg], channels: Channels, chunk_frames: usize) -> Result<Mixer> {
        let files = legs
            .iter()
            .map(|leg| {
                let wav = WavFile::open(&leg.path)?;
                wav.check_mixable()?;
                Ok((wav, leg.party))
            })
            .collect::<Result<Vec<_>>>()?;
        let sample_rate = files
            .iter()
            .map(|(wav, _)| wav.format().sample_rate)
            .max()
            .ok_or(Error::NoLegs)?;
        let chunk_frames = chunk_frames.max(1);
        let legs = files
            .into_iter()
            .map(|(wav, party)| Ok((LegSignal::new(wav, sample_rate, chunk_frames)?, party)))
            .collect::<Result<Vec<_>>>()?;
        let frames = legs.iter().map(|(leg, _)| leg.frames()).max().unwrap_or(0);
        let samples = chunk_frames * usize::from(channels.count());
        Ok(Mixer {
            legs,
            channels,
            sample_rate,
            frames,
            position: 0,
            chunk_frames,
            scratch: vec![0.0; chunk_frames],
            sum: vec![0.0; samples],
            out: Vec::with_capacity(samples),
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn channels(&self) -> Channels {
        self.channels
    }

    /// Frames in the whole mix: the longest leg's, at the mix's rate.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn chunk_frames(&self) -> usize {
        self.chunk_frames
    }

    /// Makes the next chunk start at `frame` (for a range of the mixed WAV).
    pub fn seek(&mut self, frame: u64) {
        self.position = frame.min(self.frames);
        for (leg, _) in &mut self.legs {
            leg.seek(self.position);
        }
    }

    /// The next chunk of at most [`Mixer::chunk_frames`] frames, interleaved (left, right), or
    /// `None` at the end of the mix.
    pub fn next_frames(&mut self) -> Result<Option<&[i16]>> {
        let count = (self.frames - self.position).min(self.chunk_frames as u64) as usize;
        if count == 0 {
            return Ok(None);
        }
        let width = usize::from(self.channels.count());
        let sum = &mut self.sum[..count * width];
        sum.fill(0.0);
        let scratch = &mut self.scratch[..count];
        for (leg, party) in &mut self.legs {
            leg.read(scratch)?;
            let (left, right) = match (self.channels, *party) {
                (Channels::Mono, _) => (true, false),
                (Channels::Stereo, Party::Caller) => (true, false),
                (Channels::Stereo, Party::Callee) => (false, true),
                (Channels::Stereo, Party::Unknown) => (true, true),
            };
            for (frame, sample) in sum.chunks_exact_mut(width).zip(scratch.iter()) {
                if left {
                    frame[0] += sample;
                }
                if right {
                    frame[width - 1] += sample;
                }
            }
        }
        self.out.clear();
        self.out
            .extend(sum.iter().map(|&sample| to_pcm(soft_clip(sample))));
        self.position += count as u64;
        Ok(Some(&self.out))
    }

    /// Samples held in every buffer of the mixer and its legs (the resamplers' fixed tables
    /// aside). Every buffer gets its final size in [`Mixer::open`]: this never changes after,
    /// whatever the call's length.
    pub fn buffered_samples(&self) -> usize {
        self.scratch.capacity()
            + self.sum.capacity()
            + self.out.capacity()
            + self
                .legs
                .iter()
                .map(|(leg, _)| leg.buffered_samples())
                .sum::<usize>()
    }
}

/// Linear up to [`KNEE`], then a tanh curve that meets full scale asymptotically: continuous and
/// smooth at the knee, never past full scale.
fn soft_clip(sample: f32) -> f32 {
    let magnitude = sample.abs();
    if magnitude <= KNEE {
        return sample;
    }
    let room = 1.0 - KNEE;
    let bent = KNEE + room * ((magnitude - KNEE) / room).tanh();
    bent.copysign(sample)
}

fn to_pcm(sample: f32) -> i16 {
    // `as` saturates, and the clipper keeps |sample| < 1 anyway.
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests;
