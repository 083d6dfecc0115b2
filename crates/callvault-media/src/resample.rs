//! Band-limited resampling of a source's audio to the leg's rate, when a codec change (or a
//! second payload type) brings audio of another sample rate than the leg's WAV.
//!
//! rubato's asynchronous sinc resampler does the work: a windowed-sinc (Blackman-Harris)
//! interpolator whose cut-off sits below the lower of the two Nyquist frequencies, so
//! downsampling does not fold what lies above the new Nyquist back into the band (a 5 kHz tone
//! into an 8 kHz leg does not come out at 3 kHz) and upsampling leaves no image above the old
//! one (a 3 kHz tone into a 16 kHz leg has nothing at 5 kHz). It is rubato's asynchronous kind,
//! not its FFT one, because packets come in any size (2.5 to 120 ms) and a fixed input chunk
//! as small as 2.5 ms keeps the latency to one chunk.
//!
//! **Positions.** The timeline places audio by position, not as a stream, so this keeps a
//! *run*: input contiguous on the timeline (consecutive packets, a concealment and the packet
//! after it). Output sample `j` of a run goes to the run's first position plus `j`: the
//! resampler's delay is dropped at the start of a run, so nothing moves in time. Input that
//! does not continue the run (a gap, a reordered packet, a re-anchor) first flushes the run —
//! its last few milliseconds, still inside the filter, are pushed out with zeros — then starts
//! a new one. A source that goes quiet is flushed on the tick ([`Resampler::flush`]).
//!
//! **No allocation per packet.** Everything (rubato's buffers and ours) is allocated when the
//! resampler is created, i.e. when a source first sends audio of another rate; rubato itself
//! processes without allocating.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Indexing, Resampler as _, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// Input taken per rubato call: 2.5 ms, the smallest packet any codec sends.
const CHUNK_PER_SECOND: u32 = 400;
/// How far (in leg samples) input may be from where the run expects it and still continue it:
/// rounding of timestamp positions.
const CONTINUITY_TOLERANCE: i64 = 2;
/// Length of the sinc filter, in input samples.
const SINC_LEN: usize = 128;
/// Zero chunks fed at most to push a run's end out of the filter.
const FLUSH_CHUNKS_MAX: usize = 64;

/// Converts one source's audio from `from` Hz to the leg's `to` Hz.
pub(crate) struct Resampler {
    from: u32,
    to: u32,
    inner: Async<f32>,
    chunk: usize,
    /// Input waiting for a whole chunk (`pending` samples of it).
    input: Vec<f32>,
    pending: usize,
    output: Vec<f32>,
    pcm: Vec<i16>,
    /// Output samples the filter delays its input by.
    delay: usize,
    run: Option<Run>,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

#[derive(Clone, Copy, Debug)]
struct Run {
    /// The leg position of the run's first input sample.
    start: i64,
    /// Input samples fed, and output samples handed out, since the start.
    fed: u64,
    emitted: u64,
    /// Output samples still to drop: the resampler's delay.
    skip: usize,
}

impl Run {
    /// The leg position the run's input has reached.
    fn input_end(&self, from: u32, to: u32) -> i64 {
        self.start + (self.fed * u64::from(to) / u64::from(from)) as i64
    }
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz; `None` for rates rubato refuses (a ratio beyond
    /// its range: L16 at an absurd rate), whose audio is then not recorded.
    pub(crate) fn new(from: u32, to: u32) -> Option<Resampler> {
        let parameters = SincInterpolationParameters {
            sinc_len: SINC_LEN,
            f_cutoff: None,
            oversampling_factor: 128,
            interpolation: SincInterpolationType::Linear,
            window: WindowFunction::BlackmanHarris2,
        };
        let chunk = (from / CHUNK_PER_SECOND).max(1) as usize;
        let ratio = f64::from(to) / f64::from(from.max(1));
        let inner =
            Async::<f32>::new_sinc(ratio, 1.0, &parameters, chunk, 1, FixedAsync::Input).ok()?;
        let output = vec![0.0; inner.output_frames_max()];
        Some(Resampler {
            from,
            to,
            chunk,
            input: vec![0.0; chunk],
            pending: 0,
            pcm: vec![0; output.len()],
            output,
            inner,
            // Measured: one sample less than rubato's `output_delay()` says (the peak of an
            // impulse comes out at half the sinc length, in output samples, minus one).
            delay: ((SINC_LEN / 2) as f64 * ratio - 1.0).round().max(0.0) as usize,
            run: None,
        })
    }

    /// The rates it converts between.
    pub(crate) fn rates(&self) -> (u32, u32) {
        (self.from, self.to)
    }

    /// Whether a run's end is still inside (to be flushed).
    pub(crate) fn is_open(&self) -> bool {
        self.run.is_some()
    }

    /// Resamples `input` (at `from`), which starts at leg `position`; hands each piece of
    /// output to `emit` with its leg position. Output lags by up to a chunk plus the filter's
    /// delay; [`Resampler::flush`] hands out the rest.
    pub(crate) fn process(
        &mut self,
        position: i64,
        input: &[i16],
        emit: &mut impl FnMut(i64, &[i16]),
    ) {
        let continues = self.run.is_some_and(|run| {
            (run.input_end(self.from, self.to) - position).abs() <= CONTINUITY_TOLERANCE
        });
        if !continues {
            self.flush(emit);
            self.inner.reset();
            self.pending = 0;
            self.run = Some(Run {
                start: position,
                fed: 0,
                emitted: 0,
                skip: self.delay,
            });
        }
        for sample in input {
            self.input[self.pending] = f32::from(*sample) / 32768.0;
            self.pending += 1;
            if self.pending == self.chunk {
                self.pending = 0;
                self.step(self.chunk, None, emit);
            }
            if let Some(run) = &mut self.run {
                run.fed += 1;
            }
        }
    }

    /// Hands out the end of the current run (pushed out of the filter with zeros), up to where
    /// its input ended, and closes it.
    pub(crate) fn flush(&mut self, emit: &mut impl FnMut(i64, &[i16])) {
        let Some(run) = self.run else {
            return;
        };
        let total = (run.fed * u64::from(self.to) / u64::from(self.from)) as usize;
        // The partial chunk, padded with zeros by rubato, then zero chunks.
        let mut partial = Some(self.pending);
        self.pending = 0;
        for _ in 0..FLUSH_CHUNKS_MAX {
            let Some(emitted) = self.run.map(|run| run.emitted as usize) else {
                break;
            };
            if emitted >= total {
                break;
            }
            let fed = partial.take().unwrap_or(0);
            if fed == 0 {
                self.input.fill(0.0);
            }
            self.step(fed, Some(total - emitted), emit);
        }
        self.run = None;
    }

    /// One rubato call on `fed` input samples (zero-padded to a chunk); hands out at most
    /// `limit` output samples.
    fn step(&mut self, fed: usize, limit: Option<usize>, emit: &mut impl FnMut(i64, &[i16])) {
        let frames_out = self.output.len();
        let (Ok(input), Ok(mut output)) = (
            InterleavedSlice::new(&self.input[..], 1, self.chunk),
            InterleavedSlice::new_mut(&mut self.output[..], 1, frames_out),
        ) else {
            return;
        };
        let indexing = Indexing::new().partial_len(fed);
        let indexing = (fed < self.chunk).then_some(&indexing);
        let Ok((_, produced)) = self
            .inner
            .process_into_buffer(&input, &mut output, indexing)
        else {
            return;
        };
        let Some(run) = &mut self.run else {
            return;
        };
        let skipped = run.skip.min(produced);
        run.skip -= skipped;
        let count = (produced - skipped).min(limit.unwrap_or(usize::MAX));
        for (sample, value) in self.pcm[..count]
            .iter_mut()
            .zip(&self.output[skipped..skipped + count])
        {
            *sample = (value * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        }
        if count > 0 {
            emit(run.start + run.emitted as i64, &self.pcm[..count]);
            run.emitted += count as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{power, tone};

    /// Feeds `input` in packets of `packet` samples from position 0; returns the leg samples.
    fn run(resampler: &mut Resampler, input: &[i16], packet: usize, out_len: usize) -> Vec<i16> {
        let mut out = vec![0i16; out_len];
        let mut written = vec![false; out_len];
        let (from, to) = resampler.rates();
        let mut emit = |position: i64, pcm: &[i16]| {
            for (i, sample) in pcm.iter().enumerate() {
                let at = position as usize + i;
                assert!(!written[at], "sample {at} written twice");
                out[at] = *sample;
                written[at] = true;
            }
        };
        for (n, piece) in input.chunks(packet).enumerate() {
            let position = (n * packet) as u64 * u64::from(to) / u64::from(from);
            resampler.process(position as i64, piece, &mut emit);
        }
        resampler.flush(&mut emit);
        assert!(written.iter().all(|w| *w), "every sample written once");
        out
    }

    #[test]
    fn downsampling_a_5khz_tone_leaves_no_alias_at_3khz() {
        let mut resampler = Resampler::new(16000, 8000).unwrap();
        let input = tone(5000.0, 16000, 0, 16000);
        let out = run(&mut resampler, &input, 320, 8000);
        let reference = power(&tone(1000.0, 8000, 0, 8000)[1000..7000], 8000, 1000.0);
        let alias = power(&out[1000..7000], 8000, 3000.0);
        assert!(
            alias < reference * 1e-6,
            "alias {:.2e} of a full tone",
            alias / reference
        );
    }

    #[test]
    fn upsampling_a_3khz_tone_leaves_no_image_at_5khz_and_keeps_it_in_time() {
        let mut resampler = Resampler::new(8000, 16000).unwrap();
        let input = tone(3000.0, 8000, 0, 8000);
        let out = run(&mut resampler, &input, 160, 16000);
        let kept = power(&out[2000..14000], 16000, 3000.0);
        let image = power(&out[2000..14000], 16000, 5000.0);
        assert!(image < kept * 1e-6, "image {:.2e}", image / kept);
        // In time: the output matches the tone generated at 16 kHz (no delay, no drift).
        let expected = tone(3000.0, 16000, 0, 16000);
        let error: f64 = out[2000..14000]
            .iter()
            .zip(&expected[2000..14000])
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum::<f64>()
            / 12000.0;
        assert!(error.sqrt() < 200.0, "rms error {}", error.sqrt());
    }

    #[test]
    fn a_gap_starts_a_new_run_without_moving_audio() {
        let mut resampler = Resampler::new(48000, 8000).unwrap();
        let mut out = vec![0i16; 2000];
        let mut emit = |position: i64, pcm: &[i16]| {
            out[position as usize..position as usize + pcm.len()].copy_from_slice(pcm);
        };
        let packet = tone(440.0, 48000, 0, 960);
        resampler.process(0, &packet, &mut emit);
        // 20 ms lost: the next packet starts 320 samples later at 8 kHz.
        resampler.process(320, &packet, &mut emit);
        resampler.flush(&mut emit);
        assert!(!resampler.is_open());
        let level = |range: std::ops::Range<usize>| {
            (out[range.clone()]
                .iter()
                .map(|s| f64::from(*s).powi(2))
                .sum::<f64>()
                / range.len() as f64)
                .sqrt()
        };
        assert!(level(20..150) > 4000.0);
        assert!(level(170..310) < 1.0, "the gap stays silent");
        assert!(level(340..470) > 4000.0);
        assert!(level(490..2000) < 1.0);
    }
}
