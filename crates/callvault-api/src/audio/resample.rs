//! One leg's samples at the mix's rate, read from its file a chunk at a time.
//!
//! A leg at the mix's rate is read as it is. A leg at a lower rate goes through rubato's `Fft`
//! resampler: the rates of a call are fixed and in small ratios (8 → 16 → 48 kHz), which is what
//! a synchronous FFT resampler is for (rubato's own advice), and its quality is that of its sinc
//! resampler at a fraction of the cost. The resampler's delay is dropped from the front, so a
//! leg's first output sample is its first input sample: the legs stay aligned with each other and
//! with DTMF and annotation offsets.
//!
//! Starting mid-way (a `Range` request into the mixed WAV) restarts the resampler a little
//! before the wanted frame, at an input frame that maps onto a whole output frame, and drops the
//! output up to the wanted frame: the output then matches a full run's to within float rounding.

use std::collections::VecDeque;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::audio::wav::WavFile;
use crate::error::{Error, Result};

/// Input frames the resampler takes per call.
const RESAMPLER_CHUNK: usize = 1024;
/// Input frames of real history given to a resampler restarted mid-way.
const PRIMING_FRAMES: u64 = 2048;

/// A leg's samples at the mix's rate, as `f32` in [-1, 1).
#[derive(Debug)]
pub(crate) struct LegSignal {
    wav: WavFile,
    /// Output frames of this leg at the mix's rate.
    frames: u64,
    /// The next output frame [`LegSignal::read`] delivers.
    position: u64,
    /// Bytes read from the file (reused).
    bytes: Vec<u8>,
    resampling: Option<Resampling>,
}

#[derive(Debug)]
struct Resampling {
    resampler: Fft<f32>,
    /// The next input frame to feed.
    next_input: u64,
    /// Output frames still to drop: the resampler's delay, then up to a seek target.
    skip: u64,
    input: Vec<f32>,
    output: Vec<f32>,
    /// Output produced and not delivered yet.
    ready: VecDeque<f32>,
    /// Input frames and output frames per step of the exact ratio (rates over their gcd).
    input_per_step: u64,
    output_per_step: u64,
}

impl LegSignal {
    /// Reads `wav` (16-bit mono, checked) at `rate` (at least the file's rate), to be asked
    /// for at most `chunk_frames` frames at a time. Every buffer is allocated here, at its
    /// final size.
    pub(crate) fn new(wav: WavFile, rate: u32, chunk_frames: usize) -> Result<LegSignal> {
        wav.check_mixable()?;
        let own_rate = wav.format().sample_rate;
        let divisor = gcd(u64::from(own_rate), u64::from(rate));
        let input_per_step = u64::from(own_rate) / divisor;
        let output_per_step = u64::from(rate) / divisor;
        let frames = (u128::from(wav.frames()) * u128::from(output_per_step))
            .div_ceil(u128::from(input_per_step));
        let frames = u64::try_from(frames).unwrap_or(u64::MAX);
        let resampling = if own_rate == rate {
            None
        } else {
            let resampler = Fft::<f32>::new(
                own_rate as usize,
                rate as usize,
                RESAMPLER_CHUNK,
                1,
                FixedSync::Input,
            )
            .map_err(|source| Error::Resampler {
                from: own_rate,
                to: rate,
                source,
            })?;
            let input = vec![0.0; resampler.input_frames_max()];
            let output = vec![0.0; resampler.output_frames_max()];
            // Filled only while it holds less than a chunk, by at most one output.
            let ready = VecDeque::with_capacity(chunk_frames + output.len());
            Some(Resampling {
                skip: resampler.output_delay() as u64,
                resampler,
                next_input: 0,
                input,
                output,
                ready,
                input_per_step,
                output_per_step,
            })
        };
        // Read a chunk at a time, or a resampler input at a time.
        let read_frames = resampling.as_ref().map_or(chunk_frames, |r| r.input.len());
        Ok(LegSignal {
            wav,
            frames,
            position: 0,
            bytes: Vec::with_capacity(read_frames * 2),
            resampling,
        })
    }

    /// Output frames of this leg at the mix's rate.
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    /// Makes the next [`LegSignal::read`] start at output frame `frame`.
    pub(crate) fn seek(&mut self, frame: u64) {
        self.position = frame;
        if let Some(resampling) = &mut self.resampling {
            let step = frame / resampling.output_per_step;
            let priming_steps = PRIMING_FRAMES.div_ceil(resampling.input_per_step);
            let start_step = step.saturating_sub(priming_steps);
            resampling.resampler.reset();
            resampling.ready.clear();
            resampling.next_input = start_step * resampling.input_per_step;
            resampling.skip = resampling.resampler.output_delay() as u64
                + (frame - start_step * resampling.output_per_step);
        }
    }

    /// Fills `out` with the next `out.len()` frames; past the leg's end, silence.
    pub(crate) fn read(&mut self, out: &mut [f32]) -> Result<()> {
        let wanted = self
            .frames
            .saturating_sub(self.position)
            .min(out.len() as u64) as usize;
        match &mut self.resampling {
            None => self.wav.read_samples(self.position, out, &mut self.bytes)?,
            Some(resampling) => {
                while resampling.ready.len() < wanted {
                    resampling.step(&self.wav, &mut self.bytes)?;
                }
                for (sample, ready) in out.iter_mut().zip(resampling.ready.drain(..wanted)) {
                    *sample = ready;
                }
                out[wanted..].fill(0.0);
            }
        }
        self.position += out.len() as u64;
        Ok(())
    }

    /// Samples this leg holds in its own buffers (not counting the resampler's fixed tables).
    pub(crate) fn buffered_samples(&self) -> usize {
        self.bytes.capacity() / 2
            + self.resampling.as_ref().map_or(0, |r| {
                r.input.capacity() + r.output.capacity() + r.ready.capacity()
            })
    }
}

impl Resampling {
    /// Feeds one chunk of input (silence past the file's end) and queues what comes out.
    fn step(&mut self, wav: &WavFile, bytes: &mut Vec<u8>) -> Result<()> {
        let count = self.resampler.input_frames_next();
        let input = &mut self.input[..count];
        wav.read_samples(self.next_input, input, bytes)?;
        self.next_input += count as u64;
        let frames_out = self.output.len();
        let input = InterleavedSlice::new(&self.input[..], 1, count)
            .expect("the input buffer holds input_frames_max frames");
        let mut output = InterleavedSlice::new_mut(&mut self.output[..], 1, frames_out)
            .expect("the output buffer holds output_frames_max frames");
        let (_, produced) = self
            .resampler
            .process_into_buffer(&input, &mut output, None)?;
        let dropped = self.skip.min(produced as u64) as usize;
        self.skip -= dropped as u64;
        self.ready.extend(&self.output[dropped..produced]);
        Ok(())
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}
