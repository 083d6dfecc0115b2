//! Test signals and measurements shared by the media crate's unit tests.

use std::f64::consts::PI;

/// `count` samples of a sine tone at `rate` (peak 8000), from sample `start`.
pub(crate) fn tone(frequency: f64, rate: u32, start: usize, count: usize) -> Vec<i16> {
    (start..start + count)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (8000.0 * (2.0 * PI * frequency * t).sin()) as i16
        })
        .collect()
}

/// Relative power of `frequency` in `samples` at `rate` (Goertzel).
pub(crate) fn power(samples: &[i16], rate: u32, frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * PI * frequency / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for sample in samples {
        let s0 = f64::from(*sample) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}
