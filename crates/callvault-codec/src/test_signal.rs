//! Test signals and measurements shared by the codec tests: tones, Goertzel, RMS, a seeded RNG.

use std::f64::consts::PI;

/// `seconds` of a sine at `frequency` Hz, peak `amplitude`, sampled at `rate`.
pub fn tone(frequency: f64, amplitude: f64, rate: u32, seconds: f64) -> Vec<i16> {
    let count = (f64::from(rate) * seconds).round() as usize;
    (0..count)
        .map(|n| (amplitude * (2.0 * PI * frequency * n as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

/// Amplitude of the `frequency` component of `samples` (Goertzel; a full-scale sine of peak A
/// reads ≈ A, up to window leakage).
pub fn goertzel(samples: &[i16], rate: u32, frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * PI * frequency / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &sample in samples {
        let s0 = f64::from(sample) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    2.0 * power.max(0.0).sqrt() / samples.len() as f64
}

pub fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Asserts that `samples` hold a tone at `frequency`: it dominates every other probe frequency
/// by 20 dB, and the RMS is within `level_db` of a sine of peak `amplitude`.
pub fn assert_tone(samples: &[i16], rate: u32, frequency: f64, amplitude: f64, level_db: f64) {
    let target = goertzel(samples, rate, frequency);
    let nyquist = f64::from(rate) / 2.0;
    let probes = (1..)
        .map(|k| 250.0 * f64::from(k))
        .take_while(|&f| f < nyquist - 100.0)
        .filter(|&f| (f - frequency).abs() > 200.0);
    for probe in probes {
        let other = goertzel(samples, rate, probe);
        assert!(
            target > 10.0 * other,
            "{frequency} Hz ({target:.0}) does not dominate {probe} Hz ({other:.0})"
        );
    }
    let expected = amplitude / 2f64.sqrt();
    let level = 20.0 * (rms(samples) / expected).log10();
    assert!(
        level.abs() <= level_db,
        "level {level:.2} dB off the input's, allowed ±{level_db} dB"
    );
}

/// xorshift64*: deterministic, so a failing garbage test can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte = (self.next_u64() >> 56) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_reads_the_amplitude_of_a_tone() {
        let samples = tone(1000.0, 8000.0, 8000, 1.0);
        assert!((goertzel(&samples, 8000, 1000.0) - 8000.0).abs() < 100.0);
        assert!(goertzel(&samples, 8000, 2000.0) < 100.0);
        assert!((rms(&samples) - 8000.0 / 2f64.sqrt()).abs() < 10.0);
    }

    #[test]
    #[should_panic(expected = "does not dominate")]
    fn assert_tone_rejects_the_wrong_frequency() {
        let samples = tone(2000.0, 8000.0, 8000, 1.0);
        assert_tone(&samples, 8000, 1000.0, 8000.0, 6.0);
    }
}
