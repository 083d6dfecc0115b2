//! Test audio: tones to send, G.711 encoding independent of the server's decoder, and the
//! measurements a person would make of a recording (length, pitch, silence).

use std::path::Path;

pub const RATE: u32 = 8000;

/// A sine tone at half full scale, 8 kHz, continuing phase from `start_sample`.
pub fn tone(freq: f64, start_sample: u64, count: usize) -> Vec<i16> {
    tone_at(freq, RATE, start_sample, count)
}

/// A sine tone at half full scale at `rate`, continuing phase from `start_sample`.
pub fn tone_at(freq: f64, rate: u32, start_sample: u64, count: usize) -> Vec<i16> {
    (0..count)
        .map(|i| {
            let t = (start_sample + i as u64) as f64 / f64::from(rate);
            (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// ITU-T G.711 μ-law encoding (the reference algorithm, written out here so the test does not
/// share code with the server's decoder).
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// ITU-T G.711 A-law encoding.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s >= 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s - 1;
    }
    s = s.min(32767);
    let encoded = if s < 256 {
        s >> 4
    } else {
        let mut exponent = 7;
        let mut mask = 0x4000;
        while s & mask == 0 {
            exponent -= 1;
            mask >>= 1;
        }
        (exponent << 4) | ((s >> (exponent + 3)) & 0x0F)
    };
    ((sign | encoded) ^ 0x55) as u8
}

pub struct Wav {
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl Wav {
    pub fn read(path: &Path) -> Wav {
        let mut reader = hound::WavReader::open(path)
            .unwrap_or_else(|e| panic!("{} is not a readable WAV: {e}", path.display()));
        let spec = reader.spec();
        assert_eq!(spec.channels, 1, "{}: legs are mono", path.display());
        assert_eq!(spec.bits_per_sample, 16, "{}: 16-bit PCM", path.display());
        let samples = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        Wav {
            rate: spec.sample_rate,
            samples,
        }
    }

    pub fn duration_ms(&self) -> i64 {
        (self.samples.len() as u64 * 1000 / u64::from(self.rate)) as i64
    }

    /// Samples between two offsets in milliseconds.
    pub fn window(&self, from_ms: u64, to_ms: u64) -> &[i16] {
        let a = (from_ms * u64::from(self.rate) / 1000) as usize;
        let b = ((to_ms * u64::from(self.rate) / 1000) as usize).min(self.samples.len());
        &self.samples[a.min(b)..b]
    }
}

/// Root-mean-square level of a window.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// The frequency (to 10 Hz) with the most energy between 100 Hz and the lesser of 7900 Hz and
/// the Nyquist frequency (Goertzel scan).
pub fn dominant_frequency(samples: &[i16], rate: u32) -> f64 {
    let mut best = (0.0, 0.0);
    let mut f = 100.0;
    let top = (f64::from(rate) / 2.0 - 100.0).min(7900.0);
    while f < top {
        let power = goertzel(samples, rate, f);
        if power > best.1 {
            best = (f, power);
        }
        f += 10.0;
    }
    best.0
}

/// Samples in runs of 8 or more near-zero samples: gaps in a tone (which crosses zero in one
/// sample at the frequencies and levels the tests send).
pub fn silent_samples(samples: &[i16]) -> usize {
    let mut total = 0;
    let mut run = 0;
    for &s in samples.iter().chain(std::iter::once(&i16::MAX)) {
        if s.unsigned_abs() < 50 {
            run += 1;
        } else {
            if run >= 8 {
                total += run;
            }
            run = 0;
        }
    }
    total
}

/// The power of `freq` in `samples` (Goertzel), to compare two tones' share of a signal.
pub fn power(samples: &[i16], rate: u32, freq: f64) -> f64 {
    goertzel(samples, rate, freq)
}

fn goertzel(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_reference_points() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-32124), 0x00);
        assert_eq!(alaw_encode(8), 0xD5);
        assert_eq!(alaw_encode(-8), 0x55);
    }

    #[test]
    fn goertzel_finds_the_tone() {
        let t = tone(1000.0, 0, 4000);
        assert_eq!(dominant_frequency(&t, RATE), 1000.0);
        let t = tone(440.0, 0, 4000);
        assert_eq!(dominant_frequency(&t, RATE), 440.0);
    }
}
