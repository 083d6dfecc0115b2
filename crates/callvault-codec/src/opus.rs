//! Opus (RFC 6716, RTP: RFC 7587) through libopus, decoded to mono at 48 kHz.

use crate::{Error, MAX_FRAME_SAMPLES, Result, check_output};

const SAMPLE_RATE: u32 = 48000;
/// libopus only conceals in whole 2.5 ms steps (`opus_decode` returns OPUS_BAD_ARG otherwise).
const CONCEAL_STEP: usize = 120;

fn library_error(operation: &'static str, error: ::opus::Error) -> Error {
    Error::Opus {
        operation,
        message: error.description(),
    }
}

pub(crate) struct Decoder {
    inner: ::opus::Decoder,
}

impl Decoder {
    pub(crate) fn new() -> Result<Decoder> {
        // A mono decoder: for a stereo stream libopus mixes the channels down itself.
        let inner = ::opus::Decoder::new(SAMPLE_RATE, ::opus::Channels::Mono)
            .map_err(|error| library_error("decoder create", error))?;
        Ok(Decoder { inner })
    }

    pub(crate) fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize> {
        if payload.is_empty() {
            // libopus would read an empty packet as a loss and conceal; an empty RTP payload
            // carries nothing, and concealment is the caller's decision (`conceal`).
            return Ok(0);
        }
        let malformed = |problem| Error::MalformedPayload {
            codec: "OPUS",
            len: payload.len(),
            problem,
        };
        // Parse the TOC and frame count first (no decoding, no state change): it gives the exact
        // output size, so a short buffer is refused before anything is written.
        let needed = ::opus::packet::get_nb_samples(payload, SAMPLE_RATE)
            .map_err(|_| malformed("invalid TOC or frame count"))?;
        if needed == 0 {
            return Err(malformed("no frames"));
        }
        if needed > MAX_FRAME_SAMPLES {
            return Err(malformed("more than 120 ms of audio"));
        }
        check_output("OPUS", needed, out)?;
        self.inner
            .decode(payload, &mut out[..needed], false)
            .map_err(|error| library_error("decode", error))
    }

    /// Conceals whole 2.5 ms steps of `out`, at most 120 ms; returns how many samples it wrote.
    /// With `next` (the packet after the loss), its in-band FEC (LBRR) restores the last lost
    /// frame when the sender put one there; libopus's PLC fills the rest, and all of it
    /// without `next` (libopus falls back to PLC too when `next` carries no FEC).
    pub(crate) fn conceal(&mut self, next: Option<&[u8]>, out: &mut [i16]) -> usize {
        let len = out.len().min(MAX_FRAME_SAMPLES);
        let len = len - len % CONCEAL_STEP;
        if len == 0 {
            return 0;
        }
        // FEC covers one frame of `next`'s duration, in the same 2.5 ms steps.
        let fec = next
            .filter(|packet| !packet.is_empty())
            .and_then(|packet| ::opus::packet::get_samples_per_frame(packet, SAMPLE_RATE).ok())
            .map_or(0, |frame| frame.min(len) - frame.min(len) % CONCEAL_STEP);
        let plc = len - fec;
        let mut written = 0;
        if plc > 0 {
            written += self.inner.decode(&[], &mut out[..plc], false).unwrap_or(0);
            if written < plc {
                return written;
            }
        }
        if let Some(packet) = next.filter(|_| fec > 0) {
            written += self
                .inner
                .decode(packet, &mut out[plc..len], true)
                .unwrap_or(0);
        }
        written
    }
}

pub(crate) struct Encoder {
    inner: ::opus::Encoder,
}

impl Encoder {
    pub(crate) fn new() -> Result<Encoder> {
        let inner = ::opus::Encoder::new(
            SAMPLE_RATE,
            ::opus::Channels::Mono,
            ::opus::Application::Voip,
        )
        .map_err(|error| library_error("encoder create", error))?;
        // In-band FEC on, as endpoints that offer `useinbandfec=1` send it: each packet carries
        // a low-bitrate copy of the previous frame, which a receiver uses when that one is lost.
        // (libopus only sends it when told to expect some loss.)
        let mut inner = inner;
        inner
            .set_inband_fec(true)
            .and_then(|()| inner.set_packet_loss_perc(10))
            .map_err(|error| library_error("encoder FEC", error))?;
        Ok(Encoder { inner })
    }

    pub(crate) fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<()> {
        // libopus encodes 2.5, 5, 10, 20, 40 or 60 ms per packet.
        if ![120, 240, 480, 960, 1920, 2880].contains(&pcm.len()) {
            return Err(Error::EncoderInput {
                codec: "OPUS",
                samples: pcm.len(),
                problem: "not 2.5, 5, 10, 20, 40 or 60 ms at 48 kHz",
            });
        }
        // 1275 bytes is the largest Opus frame (RFC 6716 §3.2.1); 3 frames for 60 ms.
        let mut packet = [0u8; 4000];
        let len = self
            .inner
            .encode(pcm, &mut packet)
            .map_err(|error| library_error("encode", error))?;
        out.extend_from_slice(&packet[..len]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{goertzel, tone};

    #[test]
    fn a_stereo_stream_decodes_to_mono() {
        let input = tone(1000.0, 8000.0, 48000, 0.02);
        let interleaved: Vec<i16> = input.iter().flat_map(|&s| [s, s]).collect();
        let mut encoder = ::opus::Encoder::new(
            SAMPLE_RATE,
            ::opus::Channels::Stereo,
            ::opus::Application::Voip,
        )
        .unwrap();
        let mut decoder = Decoder::new().unwrap();
        let mut out = [0i16; MAX_FRAME_SAMPLES];
        let mut decoded = Vec::new();
        let mut packet = [0u8; 4000];
        for _ in 0..25 {
            let len = encoder.encode(&interleaved, &mut packet).unwrap();
            let count = decoder.decode(&packet[..len], &mut out).unwrap();
            assert_eq!(
                count, 960,
                "stereo samples become mono samples, not twice as many"
            );
            decoded.extend_from_slice(&out[..count]);
        }
        let settled = &decoded[4800..];
        assert!(goertzel(settled, 48000, 1000.0) > 4000.0);
    }

    #[test]
    fn invalid_packets_are_errors() {
        let mut decoder = Decoder::new().unwrap();
        let mut out = [0i16; MAX_FRAME_SAMPLES];
        // Code 3 (arbitrary frame count) with a count byte of 0 frames is invalid.
        assert!(matches!(
            decoder.decode(&[0x03, 0x00], &mut out),
            Err(Error::MalformedPayload { .. })
        ));
        // Code 3 claiming 48 × 20 ms = 960 ms: more than a packet may carry.
        assert!(decoder.decode(&[0x0b, 0x30], &mut out).is_err());
    }

    #[test]
    fn conceal_uses_whole_2_5ms_steps() {
        let mut decoder = Decoder::new().unwrap();
        let mut out = [0i16; 1000];
        assert_eq!(decoder.conceal(None, &mut out[..119]), 0);
        assert_eq!(decoder.conceal(None, &mut out[..1000]), 960);
    }

    #[test]
    fn the_next_packets_fec_restores_a_lost_frame_better_than_plc() {
        // A tone that changes pitch every 20 ms: PLC can only extend the last frame, FEC
        // carries the lost one.
        let frames: Vec<Vec<i16>> = (0..30)
            .map(|i| tone(300.0 + 100.0 * f64::from(i % 7), 8000.0, 48000, 0.02))
            .collect();
        let mut encoder = Encoder::new().unwrap();
        let packets: Vec<Vec<u8>> = frames
            .iter()
            .map(|pcm| {
                let mut out = Vec::new();
                encoder.encode(pcm, &mut out).unwrap();
                out
            })
            .collect();
        let lost = 20;
        let error = |use_fec: bool| {
            let mut decoder = Decoder::new().unwrap();
            let mut out = [0i16; MAX_FRAME_SAMPLES];
            for packet in &packets[..lost] {
                decoder.decode(packet, &mut out).unwrap();
            }
            let next = use_fec.then_some(&packets[lost + 1][..]);
            assert_eq!(decoder.conceal(next, &mut out[..960]), 960);
            let expected = &frames[lost];
            // The decoder's delay (6.5 ms lookahead) is compared away by the best lag.
            (0..480)
                .map(|lag| {
                    expected[..960 - lag]
                        .iter()
                        .zip(&out[lag..960])
                        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                        .sum::<f64>()
                        / (960 - lag) as f64
                })
                .fold(f64::MAX, f64::min)
        };
        let (with_fec, plc_only) = (error(true), error(false));
        assert!(
            with_fec * 2.0 < plc_only,
            "FEC error {with_fec}, PLC error {plc_only}"
        );
    }

    #[test]
    fn encoder_refuses_sizes_opus_cannot_frame() {
        let mut encoder = Encoder::new().unwrap();
        let mut out = Vec::new();
        assert!(encoder.encode(&[0; 1000], &mut out).is_err());
        encoder.encode(&[0; 960], &mut out).unwrap();
        assert!(!out.is_empty());
    }
}
