//! Waveform peaks: a leg reduced to a fixed number of buckets, each the loudest sample in it, so
//! a player draws one lane per leg without downloading or decoding the audio.
//!
//! Every leg of a recording starts at offset 0 (see the crate's design note), so the legs share
//! one time axis: [`peaks`] gives each leg's buckets the same span (the longest leg's duration),
//! whatever its sample rate, and bucket *i* of every lane covers the same milliseconds. The file
//! is read 32,768 samples at a time through [`WavFile::read_samples`], so memory does not grow
//! with the call's length; a file still being recorded is taken as long as it is when opened.

use crate::audio::location::LegAudio;

use crate::audio::WavFile;
use crate::error::Result;

/// The most buckets one request may ask for (a wide screen at one bucket per pixel).
pub const MAX_BUCKETS: usize = 4000;

/// Samples read per call.
const CHUNK: usize = 32_768;

/// One leg's lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegPeaks {
    pub sample_rate: u32,
    /// This leg's own length.
    pub duration_ms: u64,
    /// The loudest absolute sample of each bucket, 0 (silence) to 255 (full scale).
    pub peaks: Vec<u8>,
}

/// Every leg's lane over a common span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peaks {
    /// The span every lane covers: the longest leg's duration.
    pub duration_ms: u64,
    /// One entry per file, in the order given.
    pub legs: Vec<LegPeaks>,
}

fn duration_ms(file: &WavFile) -> u64 {
    let rate = u64::from(file.format().sample_rate.max(1));
    file.frames() * 1000 / rate
}

/// The peaks of `files` (16-bit PCM mono legs), `buckets` per lane (1 to [`MAX_BUCKETS`]).
/// Blocking: run it off the async runtime.
pub fn peaks(files: &[LegAudio], buckets: usize) -> Result<Peaks> {
    let buckets = buckets.clamp(1, MAX_BUCKETS);
    let opened = files
        .iter()
        .map(|path| {
            let file = WavFile::open(path)?;
            file.check_mixable()?;
            Ok(file)
        })
        .collect::<Result<Vec<_>>>()?;
    let span_ms = opened.iter().map(duration_ms).max().unwrap_or(0);
    let legs = opened
        .iter()
        .map(|file| leg_peaks(file, buckets, span_ms))
        .collect::<Result<Vec<_>>>()?;
    Ok(Peaks {
        duration_ms: span_ms,
        legs,
    })
}

fn leg_peaks(file: &WavFile, buckets: usize, span_ms: u64) -> Result<LegPeaks> {
    let rate = file.format().sample_rate;
    let frames = file.frames();
    // Frames the common span holds at this leg's rate; never fewer than the leg has, so every
    // sample lands in a bucket.
    let span_frames = (span_ms * u64::from(rate) / 1000).max(frames).max(1);
    let mut loudest = vec![0.0f32; buckets];
    let mut samples = vec![0.0f32; CHUNK];
    let mut bytes = Vec::with_capacity(CHUNK * 2);
    let mut frame = 0u64;
    while frame < frames {
        let count = (frames - frame).min(CHUNK as u64) as usize;
        file.read_samples(frame, &mut samples[..count], &mut bytes)?;
        for (i, sample) in samples[..count].iter().enumerate() {
            let at = frame + i as u64;
            let bucket = (u128::from(at) * buckets as u128 / u128::from(span_frames)) as usize;
            let slot = &mut loudest[bucket.min(buckets - 1)];
            *slot = slot.max(sample.abs());
        }
        frame += count as u64;
    }
    Ok(LegPeaks {
        sample_rate: rate,
        duration_ms: duration_ms(file),
        peaks: loudest
            .into_iter()
            .map(|peak| (peak.min(1.0) * 255.0).round() as u8)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{tone, write_leg};

    #[test]
    fn a_tone_then_silence_shows_in_the_buckets_where_it_lies() {
        let dir = tempfile::tempdir().unwrap();
        let loud = dir.path().join("loud.wav");
        // 1 s of a half-scale tone, then 1 s of silence, at 8 kHz.
        let mut samples = tone(440.0, 8000, 1.0, 0.5);
        samples.extend(std::iter::repeat_n(0, 8000));
        write_leg(&loud, 8000, &samples);
        let peaks = peaks(&[loud.into()], 10).unwrap();
        assert_eq!(peaks.duration_ms, 2000);
        let lane = &peaks.legs[0].peaks;
        assert_eq!(lane.len(), 10);
        assert!(
            lane[..5].iter().all(|&p| (125..=129).contains(&p)),
            "{lane:?}"
        );
        assert!(lane[5..].iter().all(|&p| p == 0), "{lane:?}");
    }

    #[test]
    fn legs_of_different_rates_and_lengths_share_one_time_axis() {
        let dir = tempfile::tempdir().unwrap();
        let wide = dir.path().join("wide.wav");
        let short = dir.path().join("short.wav");
        // 2 s at 16 kHz, loud only in its second half; 1 s at 8 kHz, loud throughout.
        let mut samples = vec![0i16; 16_000];
        samples.extend(tone(1000.0, 16_000, 1.0, 1.0));
        write_leg(&wide, 16_000, &samples);
        write_leg(&short, 8000, &tone(440.0, 8000, 1.0, 0.25));
        let peaks = peaks(&[wide.into(), short.into()], 4).unwrap();
        assert_eq!(peaks.duration_ms, 2000);
        assert_eq!(peaks.legs[0].sample_rate, 16_000);
        assert_eq!(peaks.legs[0].peaks[..2], [0, 0]);
        assert!(peaks.legs[0].peaks[2..].iter().all(|&p| p >= 254));
        // The 1 s leg fills the first half of the common span, nothing of the second.
        assert_eq!(peaks.legs[1].duration_ms, 1000);
        assert!(peaks.legs[1].peaks[..2].iter().all(|&p| p >= 60));
        assert_eq!(peaks.legs[1].peaks[2..], [0, 0]);
    }

    #[test]
    fn buckets_are_bounded_and_an_empty_leg_is_silent() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.wav");
        write_leg(&empty, 8000, &[]);
        let peaks = peaks(&[empty.into()], 1_000_000).unwrap();
        assert_eq!(peaks.duration_ms, 0);
        assert_eq!(peaks.legs[0].peaks.len(), MAX_BUCKETS);
        assert!(peaks.legs[0].peaks.iter().all(|&p| p == 0));
    }
}
