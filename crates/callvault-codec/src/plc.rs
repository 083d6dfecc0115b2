//! Waveform-repetition packet loss concealment, for the codecs whose libraries bring none
//! (G.711, G.722, L16), in the manner of ITU-T G.711 Appendix I.
//!
//! Written here because no maintained Rust crate implements it (the C reference code of
//! Appendix I is not packaged anywhere we can link), and the algorithm is small and fully
//! described by the Recommendation. What it does, per Appendix I:
//! - keeps the last 48.75 ms of decoded audio (three periods of the lowest pitch, 66.7 Hz, plus
//!   a quarter period);
//! - at the start of an erasure, estimates the pitch period (5 to 15 ms) by normalised
//!   cross-correlation of the last 20 ms against the history, coarsely on 8 kHz-equivalent
//!   samples, then to the sample;
//! - repeats the last pitch period for the first 10 ms, the last two periods for the next 10 ms,
//!   then the last three, each loop closed by a quarter-period overlap-add so that it has no
//!   seam;
//! - attenuates linearly by 20 % per 10 ms from 10 ms on, so that after 60 ms it is silent;
//! - merges into the first good frame after the erasure by an overlap-add of the synthetic
//!   signal's continuation over 4 ms, plus 4 ms per further 10 ms of erasure (at most 10 ms).
//!
//! What differs: Appendix I delays its output by 3.75 ms so that it can also overlap-add the
//! last quarter period *before* the erasure with the synthetic signal. A decoder that hands out
//! each packet's audio at once cannot rewrite what it handed out, so the synthetic signal starts
//! directly at the history's end; for a periodic signal the repeated period continues it exactly.
//! The rates are those of the codec: all lengths above scale with the rate (8 kHz: ×1, 16 kHz:
//! ×2); the pitch search works on every `scale`-th sample so it costs the same at any rate.

/// Lengths at 8 kHz, in samples (Appendix I's constants).
const PITCH_MIN: usize = 40;
const PITCH_MAX: usize = 120;
const CORRELATION_LEN: usize = 160;
const HISTORY_LEN: usize = 3 * PITCH_MAX + PITCH_MAX / 4;
/// 10 ms at 8 kHz: the step of the loop lengths and of the attenuation.
const STEP: usize = 80;
/// Silent after this many steps (60 ms).
const STEPS_TO_SILENCE: usize = 6;
/// The largest merge into the next good frame (10 ms).
const MERGE_MAX: usize = 80;

#[derive(Debug)]
pub(crate) struct WaveformPlc {
    /// Samples per 8 kHz sample.
    scale: usize,
    /// The newest `history.len()` samples decoded, oldest first.
    history: Box<[i16]>,
    /// Valid samples at the end of `history` (fewer at the start of a stream).
    valid: usize,
    /// Samples concealed in the current erasure; 0 when the last thing decoded was a packet.
    erased: usize,
    /// The pitch period of the current erasure, in samples at the codec's rate.
    pitch: usize,
    /// The synthetic signal's continuation, merged into the next good frame.
    merge: Box<[i16]>,
    merge_len: usize,
}

impl WaveformPlc {
    /// For audio at `rate` Hz.
    pub(crate) fn new(rate: u32) -> WaveformPlc {
        let scale = (rate as usize).div_ceil(8000).max(1);
        WaveformPlc {
            scale,
            history: vec![0; HISTORY_LEN * scale].into_boxed_slice(),
            valid: 0,
            erased: 0,
            pitch: 0,
            merge: vec![0; MERGE_MAX * scale].into_boxed_slice(),
            merge_len: 0,
        }
    }

    /// Decoded audio of a packet, just written to `pcm`: merged with the end of a concealment
    /// that preceded it, then remembered.
    pub(crate) fn handle_decoded(&mut self, pcm: &mut [i16]) {
        if self.merge_len > 0 {
            let len = self.merge_len.min(pcm.len());
            for (i, sample) in pcm[..len].iter_mut().enumerate() {
                let weight = (i + 1) as i32 * 256 / (len + 1) as i32;
                let mixed =
                    (i32::from(self.merge[i]) * (256 - weight) + i32::from(*sample) * weight) >> 8;
                *sample = mixed as i16;
            }
        }
        self.merge_len = 0;
        self.erased = 0;
        self.remember(pcm);
    }

    fn remember(&mut self, pcm: &[i16]) {
        let len = self.history.len();
        if pcm.len() >= len {
            self.history.copy_from_slice(&pcm[pcm.len() - len..]);
        } else {
            self.history.copy_within(pcm.len().., 0);
            self.history[len - pcm.len()..].copy_from_slice(pcm);
        }
        self.valid = (self.valid + pcm.len()).min(len);
    }

    /// Conceals the next `out.len()` samples of an erasure; returns how many are synthetic
    /// (the rest, past 60 ms of erasure, or everything without history, is silence).
    pub(crate) fn conceal(&mut self, out: &mut [i16]) -> usize {
        let step = STEP * self.scale;
        let history_len = self.history.len();
        if self.valid < history_len {
            // Too little audio yet to find a period: honest silence.
            out.fill(0);
            return 0;
        }
        if self.erased == 0 {
            self.pitch = self.find_pitch();
        }
        let mut written = 0;
        for sample in out.iter_mut() {
            let t = self.erased + written;
            if t >= STEPS_TO_SILENCE * step {
                break;
            }
            *sample = self.synthetic(t);
            written += 1;
        }
        out[written..].fill(0);
        self.erased += out.len();
        // The continuation for the next good frame: 4 ms, and 4 ms more per further 10 ms.
        let extra = self.erased.saturating_sub(step) / step;
        let merge_len = ((32 + 32 * extra) * self.scale).min(self.merge.len());
        for i in 0..merge_len {
            let t = self.erased + i;
            self.merge[i] = if t < STEPS_TO_SILENCE * step {
                self.synthetic(t)
            } else {
                0
            };
        }
        self.merge_len = merge_len;
        written
    }

    /// Sample `t` of the erasure: the loop of the last 1, 2 or 3 pitch periods, attenuated.
    fn synthetic(&self, t: usize) -> i16 {
        let step = STEP * self.scale;
        let periods = (t / step + 1).min(3);
        let loop_len = periods * self.pitch;
        let overlap = (self.pitch / 4).max(1);
        let history_len = self.history.len();
        let start = history_len - loop_len;
        // Where the loop is at t. At each growth the loop gains an older period in front, so the
        // sample being played keeps its place (one period further from the loop's start).
        let (mut k, mut len, mut at) = (0, self.pitch, 0);
        for level in 1..periods {
            let growth = level * step;
            k = (k + growth - at) % len + self.pitch;
            len += self.pitch;
            at = growth;
        }
        let k = (k + t - at) % len;
        let mut value = f32::from(self.history[start + k]);
        if k + overlap >= loop_len {
            // The loop's last quarter period fades into what came before its first sample, so
            // the jump back to the start has no seam.
            let into = (k + overlap + 1 - loop_len) as f32 / (overlap + 1) as f32;
            let before = f32::from(self.history[start + k - loop_len]);
            value = value * (1.0 - into) + before * into;
        }
        let gain = if t < step {
            1.0
        } else {
            // -20 % per 10 ms from 10 ms on: 1.0 at 10 ms, 0 at 60 ms.
            1.0 - (t - step) as f32 / ((STEPS_TO_SILENCE - 1) * step) as f32
        };
        (value * gain.max(0.0)) as i16
    }

    /// The pitch period of the history's end, in samples at the codec's rate.
    fn find_pitch(&self) -> usize {
        let s = self.scale;
        let history = &self.history;
        let end = history.len();
        let correlation_len = CORRELATION_LEN * s;
        let target = &history[end - correlation_len..];
        let score = |lag: usize, stride: usize| -> f64 {
            let candidate = &history[end - correlation_len - lag..end - lag];
            let (mut cross, mut energy) = (0.0f64, 0.0f64);
            for i in (0..correlation_len).step_by(stride) {
                let c = f64::from(candidate[i]);
                cross += f64::from(target[i]) * c;
                energy += c * c;
            }
            if energy <= 0.0 {
                0.0
            } else {
                cross / energy.sqrt()
            }
        };
        // Coarse: every 8 kHz-equivalent lag, on every `s`-th sample.
        let mut best = (PITCH_MAX * s, f64::MIN);
        for lag in PITCH_MIN..=PITCH_MAX {
            let value = score(lag * s, s);
            if value > best.1 {
                best = (lag * s, value);
            }
        }
        if s > 1 {
            // Fine: every lag around the coarse one, on every sample.
            let (around, _) = best;
            best = (around, f64::MIN);
            let low = around.saturating_sub(s).max(PITCH_MIN * s);
            let high = (around + s).min(PITCH_MAX * s);
            for lag in low..=high {
                let value = score(lag, 1);
                if value > best.1 {
                    best = (lag, value);
                }
            }
        }
        best.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{goertzel, rms, tone};

    fn primed(rate: u32, frequency: f64) -> WaveformPlc {
        let mut plc = WaveformPlc::new(rate);
        let mut pcm = tone(frequency, 8000.0, rate, 0.1);
        plc.handle_decoded(&mut pcm);
        plc
    }

    #[test]
    fn a_steady_tone_is_continued_at_its_pitch_and_level() {
        for (rate, frequency) in [
            (8000, 440.0),
            (8000, 1000.0),
            (16000, 700.0),
            (16000, 3000.0),
        ] {
            let mut plc = primed(rate, frequency);
            let mut out = vec![0i16; rate as usize / 50];
            assert_eq!(plc.conceal(&mut out), out.len());
            // The first 10 ms: the tone at full level.
            let level = rms(&out[..out.len() / 2]);
            assert!(
                level > 8000.0 / 2f64.sqrt() * 0.8,
                "{rate} {frequency}: {level}"
            );
            let at = goertzel(&out, rate, frequency);
            let off = goertzel(&out, rate, frequency * 2.0);
            assert!(at > 20.0 * off, "{rate} {frequency}: {at} vs {off}");
        }
    }

    #[test]
    fn the_concealment_fades_out_and_is_silent_after_60_ms() {
        let mut plc = primed(8000, 500.0);
        let mut out = [0i16; 800];
        assert_eq!(plc.conceal(&mut out[..400]), 400);
        // Longer than the bound: only up to 60 ms is synthetic.
        assert_eq!(plc.conceal(&mut out[400..]), 80);
        let levels: Vec<f64> = out.chunks(80).map(rms).collect();
        for pair in levels[1..6].windows(2) {
            assert!(pair[1] < pair[0], "fading: {levels:?}");
        }
        assert!(out[480..].iter().all(|&s| s == 0));
    }

    #[test]
    fn without_history_there_is_nothing_to_repeat() {
        let mut plc = WaveformPlc::new(8000);
        let mut out = [7i16; 160];
        assert_eq!(plc.conceal(&mut out), 0);
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn the_next_good_frame_is_merged_and_then_passes_unchanged() {
        let mut plc = primed(8000, 500.0);
        let mut lost = [0i16; 160];
        plc.conceal(&mut lost);
        let good = tone(500.0, 8000.0, 8000, 0.04);
        let mut first = good[..160].to_vec();
        plc.handle_decoded(&mut first);
        assert_ne!(first, good[..160], "merged");
        assert_eq!(first[80..], good[80..160], "only the first 8 ms");
        let mut second = good[160..].to_vec();
        plc.handle_decoded(&mut second);
        assert_eq!(second, good[160..]);
    }
}
