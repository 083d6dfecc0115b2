//! Test builders: leg files in the media engine's format, tones, and a tone detector.

use std::f64::consts::PI;
use std::path::Path;

/// The 80-byte header the media engine writes for `data_len` bytes of 16-bit mono samples at
/// `rate` (written out here field by field, independently of the code under test).
pub(crate) fn leg_header(rate: u32, data_len: u32) -> [u8; 80] {
    let mut header = Vec::with_capacity(80);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&(72 + data_len).to_le_bytes());
    header.extend_from_slice(b"WAVE");
    header.extend_from_slice(b"JUNK");
    header.extend_from_slice(&28u32.to_le_bytes());
    header.extend_from_slice(&[0; 28]);
    header.extend_from_slice(b"fmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&rate.to_le_bytes());
    header.extend_from_slice(&(rate * 2).to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data_len.to_le_bytes());
    header.try_into().unwrap()
}

/// Writes a closed leg file of `samples` at `rate`.
pub(crate) fn write_leg(path: &Path, rate: u32, samples: &[i16]) {
    let mut bytes = leg_header(rate, samples.len() as u32 * 2).to_vec();
    for sample in samples {
        bytes.extend_from_slice(&sample.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Writes a leg of `frames` samples of silence without writing them: a sparse file, so a
/// long call costs no disk.
pub(crate) fn write_silent_leg(path: &Path, rate: u32, frames: u64) {
    let data_len = frames * 2;
    let header = leg_header(rate, u32::try_from(data_len).unwrap());
    std::fs::write(path, header).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(80 + data_len).unwrap();
}

/// `seconds` of a sine at `frequency` Hz sampled at `rate`, peak `amplitude` (of full scale).
pub(crate) fn tone(frequency: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<i16> {
    let count = (seconds * f64::from(rate)).round() as usize;
    (0..count)
        .map(|n| {
            let phase = 2.0 * PI * frequency * n as f64 / f64::from(rate);
            (amplitude * 32767.0 * phase.sin()).round() as i16
        })
        .collect()
}

/// Power of `frequency` in `samples` (Goertzel), normalised by the length.
pub(crate) fn goertzel(samples: &[i16], rate: u32, frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * PI * frequency / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &sample in samples {
        let s0 = f64::from(sample) / 32768.0 + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    power / (samples.len() as f64).powi(2)
}

/// Which of `candidates` is strongest in `samples`, and how many times stronger than the next.
pub(crate) fn dominant(samples: &[i16], rate: u32, candidates: &[f64]) -> (f64, f64) {
    let mut powers: Vec<(f64, f64)> = candidates
        .iter()
        .map(|&f| (f, goertzel(samples, rate, f)))
        .collect();
    powers.sort_by(|a, b| b.1.total_cmp(&a.1));
    let ratio = powers[0].1 / powers.get(1).map_or(f64::MIN_POSITIVE, |p| p.1.max(1e-30));
    (powers[0].0, ratio)
}

/// A WAV file we produced, split into its channels.
pub(crate) struct Decoded {
    pub(crate) rate: u32,
    pub(crate) channels: Vec<Vec<i16>>,
}

/// Reads back a WAV produced by this crate (80-byte header), checking the header's sizes.
pub(crate) fn decode_wav(bytes: &[u8]) -> Decoded {
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let channels = u16::from_le_bytes([bytes[58], bytes[59]]) as usize;
    let rate = u32::from_le_bytes(bytes[60..64].try_into().unwrap());
    let data_len = u32::from_le_bytes(bytes[76..80].try_into().unwrap()) as usize;
    assert_eq!(data_len, bytes.len() - 80, "the header counts the data");
    assert_eq!(
        u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize,
        bytes.len() - 8
    );
    let mut split = vec![Vec::new(); channels];
    for (i, pair) in bytes[80..].chunks_exact(2).enumerate() {
        split[i % channels].push(i16::from_le_bytes([pair[0], pair[1]]));
    }
    Decoded {
        rate,
        channels: split,
    }
}

/// Every byte a source produces, and the largest chunk it produced.
pub(crate) fn drain(source: &mut dyn crate::audio::ChunkSource) -> (Vec<u8>, usize) {
    let mut bytes = Vec::new();
    let mut largest = 0;
    while let Some(chunk) = source.next_chunk().unwrap() {
        largest = largest.max(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (bytes, largest)
}

/// A response's status, headers and whole body.
pub(crate) async fn read_response(
    response: http::Response<crate::audio::StreamBody>,
) -> (http::response::Parts, Vec<u8>) {
    use http_body_util::BodyExt;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts, bytes)
}

/// A clock the test moves by hand (wall and monotonic together).
pub(crate) struct ManualClock {
    start_wall: time::OffsetDateTime,
    start: std::time::Instant,
    elapsed: std::sync::Mutex<std::time::Duration>,
}

impl ManualClock {
    pub(crate) fn new(start_wall: time::OffsetDateTime) -> ManualClock {
        ManualClock {
            start_wall,
            start: std::time::Instant::now(),
            elapsed: std::sync::Mutex::default(),
        }
    }

    pub(crate) fn advance(&self, by: std::time::Duration) {
        *self.elapsed.lock().unwrap() += by;
    }

    fn elapsed(&self) -> std::time::Duration {
        *self.elapsed.lock().unwrap()
    }
}

impl crate::clock::Clock for ManualClock {
    fn now(&self) -> time::OffsetDateTime {
        self.start_wall + self.elapsed()
    }

    fn instant(&self) -> std::time::Instant {
        self.start + self.elapsed()
    }
}

/// The live recordings of a node, in memory: those started with [`FakeLive::start`], each
/// paused or not, with who changed it last.
#[derive(Default)]
pub(crate) struct FakeLive {
    recordings: std::sync::Mutex<std::collections::HashMap<String, (bool, String)>>,
}

impl FakeLive {
    pub(crate) fn start(&self, id: &str) {
        self.recordings
            .lock()
            .unwrap()
            .insert(id.to_owned(), (false, String::new()));
    }

    /// (paused, by whom) of a live recording.
    pub(crate) fn state(&self, id: &str) -> Option<(bool, String)> {
        self.recordings.lock().unwrap().get(id).cloned()
    }

    fn set(&self, id: &str, by: &str, paused: bool) -> Result<(), crate::live::LiveError> {
        use crate::live::LiveError;
        let mut recordings = self.recordings.lock().unwrap();
        let entry = recordings.get_mut(id).ok_or(LiveError::NotActive)?;
        match (entry.0, paused) {
            (true, true) => Err(LiveError::AlreadyPaused),
            (false, false) => Err(LiveError::NotPaused),
            _ => {
                *entry = (paused, by.to_owned());
                Ok(())
            }
        }
    }
}

impl crate::live::LiveRecordings for FakeLive {
    fn pause(
        &self,
        recording_id: &str,
        by: &str,
    ) -> crate::live::BoxFuture<'_, Result<(), crate::live::LiveError>> {
        let result = self.set(recording_id, by, true);
        Box::pin(async move { result })
    }

    fn resume(
        &self,
        recording_id: &str,
        by: &str,
    ) -> crate::live::BoxFuture<'_, Result<(), crate::live::LiveError>> {
        let result = self.set(recording_id, by, false);
        Box::pin(async move { result })
    }
}
