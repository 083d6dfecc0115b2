//! G.729 / G.729A (+ Annex B) through `g729-sys`, a pure-Rust port of bcg729.
//!
//! An RTP payload is zero or more 10-byte voice frames (10 ms each), optionally followed by one
//! 2-byte Annex B SID frame, which can only come last (RFC 3551 §4.5.6). G.729A is
//! bitstream-compatible with G.729, so the same decoder serves both.

use crate::{Error, Result, check_output};
use g729_sys::{FRAME_SAMPLES, VOICE_FRAME_BYTES};

const SID_FRAME_BYTES: usize = 2;

/// Samples a payload of `len` bytes decodes to, or `None` if no payload has that length.
pub(crate) fn decoded_samples(len: usize) -> Option<usize> {
    let voice_frames = len / VOICE_FRAME_BYTES;
    match len % VOICE_FRAME_BYTES {
        0 => Some(voice_frames * FRAME_SAMPLES),
        SID_FRAME_BYTES => Some((voice_frames + 1) * FRAME_SAMPLES),
        _ => None,
    }
}

#[derive(Default)]
pub(crate) struct Decoder {
    inner: g729_sys::Decoder,
}

impl Decoder {
    pub(crate) fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize> {
        let needed = decoded_samples(payload.len()).ok_or(Error::MalformedPayload {
            codec: "G729",
            len: payload.len(),
            problem: "not whole 10-byte frames plus an optional 2-byte SID frame",
        })?;
        check_output("G729", needed, out)?;
        let (voice, sid) = payload.split_at(payload.len() / VOICE_FRAME_BYTES * VOICE_FRAME_BYTES);
        let mut frames = out.chunks_exact_mut(FRAME_SAMPLES);
        // `decode` returns the frame by value (a stack array): nothing is allocated.
        for (frame, samples) in voice.chunks_exact(VOICE_FRAME_BYTES).zip(&mut frames) {
            samples.copy_from_slice(&self.inner.decode(frame, false, false, false));
        }
        if let Some(samples) = frames.next().filter(|_| !sid.is_empty()) {
            // Annex B: the SID frame updates the comfort noise parameters, and the decoder
            // synthesizes comfort noise from them.
            samples.copy_from_slice(&self.inner.decode(sid, false, true, false));
        }
        Ok(needed)
    }

    /// Frame erasure concealment for each whole 10 ms frame of `out` (after silence, Annex B
    /// continues the comfort noise); returns how many samples it wrote.
    pub(crate) fn conceal(&mut self, out: &mut [i16]) -> usize {
        let mut written = 0;
        for samples in out.chunks_exact_mut(FRAME_SAMPLES) {
            samples.copy_from_slice(&self.inner.decode(&[], true, false, false));
            written += FRAME_SAMPLES;
        }
        written
    }
}

pub(crate) struct Encoder {
    inner: g729_sys::Encoder,
}

impl Default for Encoder {
    fn default() -> Encoder {
        // Without VAD: every frame is a voice frame, so payload sizes are predictable in tests.
        Encoder {
            inner: g729_sys::Encoder::new(false),
        }
    }
}

impl Encoder {
    pub(crate) fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<()> {
        let (frames, rest) = pcm.as_chunks::<FRAME_SAMPLES>();
        if !rest.is_empty() {
            return Err(Error::EncoderInput {
                codec: "G729",
                samples: pcm.len(),
                problem: "not a whole number of 10 ms (80-sample) frames",
            });
        }
        for frame in frames {
            let mut bytes = [0u8; VOICE_FRAME_BYTES];
            let len = usize::from(self.inner.encode_into(frame, &mut bytes));
            out.extend_from_slice(&bytes[..len]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{Rng, rms, tone};

    #[test]
    fn payload_lengths() {
        assert_eq!(decoded_samples(0), Some(0));
        assert_eq!(decoded_samples(2), Some(80));
        assert_eq!(decoded_samples(20), Some(160));
        assert_eq!(decoded_samples(22), Some(240));
        for len in [1, 3, 9, 11, 19, 21, 23] {
            assert_eq!(decoded_samples(len), None, "{len}");
        }
    }

    #[test]
    fn malformed_lengths_are_errors() {
        let mut decoder = Decoder::default();
        let mut out = [0i16; 800];
        for len in [1, 5, 9, 11, 13, 29] {
            assert!(matches!(
                decoder.decode(&vec![0u8; len], &mut out),
                Err(Error::MalformedPayload { .. })
            ));
        }
    }

    #[test]
    fn a_trailing_sid_frame_adds_a_frame_of_comfort_noise() {
        // Real SID frames: from an Annex B encoder (VAD on) fed quiet noise after speech.
        let mut vad_encoder = g729_sys::Encoder::new(true);
        let loud = tone(1000.0, 8000.0, 8000, 0.5);
        let mut rng = Rng::new(7);
        let quiet: Vec<i16> = (0..8000).map(|_| (rng.below(201) as i16) - 100).collect();
        let mut voice = None;
        let mut sid = None;
        for frame in loud
            .as_chunks::<80>()
            .0
            .iter()
            .chain(quiet.as_chunks::<80>().0)
        {
            let mut bytes = [0u8; 10];
            match vad_encoder.encode_into(frame, &mut bytes) {
                10 => voice = Some(bytes),
                2 => sid = Some([bytes[0], bytes[1]]),
                _ => {}
            }
        }
        let (voice, sid) = (voice.unwrap(), sid.expect("the VAD sent a SID frame"));

        let mut payload = voice.to_vec();
        payload.extend_from_slice(&sid);
        let mut decoder = Decoder::default();
        let mut out = [i16::MAX; 200];
        assert_eq!(decoder.decode(&payload, &mut out).unwrap(), 160);
        assert!(out[160..].iter().all(|&s| s == i16::MAX));
        // Comfort noise at about the level of the quiet input (RMS ≈ 58), not the tone's.
        let noise = rms(&out[80..160]);
        assert!(noise > 5.0 && noise < 600.0, "noise {noise}");
    }

    #[test]
    fn conceal_continues_the_signal_in_whole_frames() {
        let mut encoder = Encoder::default();
        let mut decoder = Decoder::default();
        let mut payload = Vec::new();
        let mut out = [0i16; 160];
        for _ in 0..10 {
            encoder
                .encode(&tone(1000.0, 8000.0, 8000, 0.02), &mut payload)
                .unwrap();
            decoder.decode(&payload, &mut out).unwrap();
            payload.clear();
        }
        let mut lost = [0i16; 170];
        assert_eq!(decoder.conceal(&mut lost), 160);
        // Concealment repeats the last voiced excitation: sound, not silence.
        assert!(rms(&lost[..80]) > 500.0, "{}", rms(&lost[..80]));
    }
}
