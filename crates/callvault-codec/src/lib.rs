//! RTP audio decoders (and, for tests, encoders) behind our own types.
//!
//! # Design note
//!
//! The receive thread owns one [`Decoder`] per leg and calls [`Decoder::decode`] once per packet
//! into a buffer it reuses. So decoding allocates nothing, takes no lock and logs nothing; all
//! codec state (G.722 ADPCM predictors, the libopus decoder, the G.729 decoder) is created once in
//! [`Decoder::new`]. Every payload comes from the network: a malformed one is an [`Error`], never a
//! panic, and a payload that does not fit in `out` is refused before anything is written.
//!
//! - **G.711** is two 256-entry tables built at compile time.
//! - **G.722** is implemented here (ITU-T G.722, 64 kbit/s mode: QMF + two sub-band ADPCM coders):
//!   the Rust ports available decode into a fresh `Vec` per call, which the hot path cannot afford,
//!   and the algorithm is small, integer-only and fully specified by the Recommendation. Its
//!   bitstream is pinned, byte for byte, to SpanDSP's (Asterisk's, FreeSWITCH's) by the vectors in
//!   `fixtures/g722/`.
//! - **L16** is big-endian PCM; stereo is averaged to mono.
//! - **Opus** goes through the `opus` crate over the system libopus (a mono decoder: libopus
//!   downmixes stereo streams itself). Version 0.3, because 0.4's sys crate always builds a bundled
//!   libopus with cmake; 0.3 links the distribution's through pkg-config.
//! - **G.729/G.729A**, only with the `g729` feature (off by default: `g729-sys` is a
//!   translation of bcg729, which is GPL; see docs/LICENSING.md), uses `g729-sys`, a pure-Rust,
//!   bit-exact port of bcg729: no C toolchain, no `unsafe` in our crate, and its decoder returns
//!   a stack array (no heap per frame). G.729A streams decode with the same decoder (Annex A
//!   changes only the encoder's complexity). Annex B SID frames become comfort noise. Without the
//!   feature [`CodecKind::from_rtpmap`] does not know G.729, so offers of it are declined.
//!
//! | codec | SDP rtpmap | RTP clock | WAV rate | samples per tick |
//! |-------|------------|-----------|----------|------------------|
//! | PCMU  | PCMU/8000  | 8000      | 8000     | 1                |
//! | PCMA  | PCMA/8000  | 8000      | 8000     | 1                |
//! | G.722 | G722/8000  | 8000 (RFC 3551's historic error) | 16000 | 2 |
//! | L16   | L16/rate/1-2 | rate    | rate     | 1                |
//! | Opus  | opus/48000/2 | 48000   | 48000    | 1                |
//! | G.729 | G729/8000  | 8000      | 8000     | 1                |

mod g711;
mod g722;
#[cfg(feature = "g729")]
mod g729;
mod l16;
mod opus;
mod plc;
#[cfg(test)]
mod test_signal;

/// The largest output of one packet the hot path needs to hold: 120 ms at 48 kHz.
///
/// Per codec, a packet of at most 120 ms of audio (Opus's own maximum, RFC 6716 §3.2.5; far above
/// the 20–60 ms senders use) needs: PCMU/PCMA 960, G.722 1920, G.729 960, Opus 5760 and L16
/// `clock_rate × 0.12` (5760 at 48 kHz). Packets longer than that (only possible for the
/// sample-per-byte codecs, e.g. 150 G.729 frames) fail with [`Error::OutputTooSmall`] when decoded
/// into a buffer of this size; [`CodecKind::max_decoded_samples`] gives the exact need.
pub const MAX_FRAME_SAMPLES: usize = 5760;

/// Highest L16 clock rate accepted: rates beyond studio audio are a mistake or an attack, and
/// bounding them keeps the timeline arithmetic (ticks × samples) far from overflow.
pub const MAX_L16_CLOCK_RATE: u32 = 192_000;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The payload cannot be a payload of this codec (wrong length, invalid Opus packet, ...).
    #[error("{codec} payload of {len} bytes is malformed: {problem}")]
    MalformedPayload {
        codec: &'static str,
        len: usize,
        problem: &'static str,
    },
    /// The caller's buffer cannot hold the decoded payload; nothing was written.
    #[error("{codec} payload decodes to {needed} samples, the output buffer holds {available}")]
    OutputTooSmall {
        codec: &'static str,
        needed: usize,
        available: usize,
    },
    /// Parameters no decoder exists for (L16 with 0 or 3+ channels, a zero clock rate, ...).
    #[error("unsupported {codec} parameters: clock rate {clock_rate}, {channels} channel(s)")]
    UnsupportedParameters {
        codec: &'static str,
        clock_rate: u32,
        channels: u8,
    },
    /// Encoder input that is not a frame the codec can encode.
    #[error("{codec} encoder cannot encode {samples} samples: {problem}")]
    EncoderInput {
        codec: &'static str,
        samples: usize,
        problem: &'static str,
    },
    /// A codec this build leaves out (a cargo feature that was not enabled).
    #[error("{codec} is not in this build (cargo feature `{feature}`)")]
    NotInThisBuild {
        codec: &'static str,
        feature: &'static str,
    },
    /// libopus refused a call (its own description of the failure).
    #[error("libopus {operation} failed: {message}")]
    Opus {
        operation: &'static str,
        message: &'static str,
    },
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An RTP audio codec, as negotiated in SDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 μ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 at 64 kbit/s (16 kHz audio on an 8 kHz RTP clock).
    G722,
    /// Linear 16-bit PCM, big-endian (RFC 3551 §4.5.11).
    L16 { channels: u8, clock_rate: u32 },
    /// Opus (RFC 7587), decoded to mono at 48 kHz.
    Opus,
    /// G.729, G.729A, with or without Annex B.
    G729,
}

impl CodecKind {
    /// From an SDP rtpmap encoding name (case-insensitive, RFC 4566 §6), clock rate and channels
    /// (0 is read as "omitted", i.e. 1). `None` for anything we cannot decode.
    ///
    /// Opus must say 48000 (RFC 7587 §7); `opus/48000` without `/2` is accepted too, since some
    /// endpoints omit it. G.729's Annex B (`annexb=` fmtp) needs no decision here: SID frames are
    /// recognised by their length.
    pub fn from_rtpmap(encoding: &str, clock_rate: u32, channels: u8) -> Option<CodecKind> {
        let channels = channels.max(1);
        let is = |name: &str| encoding.eq_ignore_ascii_case(name);
        let mono_8k = clock_rate == 8000 && channels == 1;
        if is("PCMU") && mono_8k {
            Some(CodecKind::Pcmu)
        } else if is("PCMA") && mono_8k {
            Some(CodecKind::Pcma)
        } else if is("G722") && mono_8k {
            Some(CodecKind::G722)
        } else if cfg!(feature = "g729") && (is("G729") || is("G729A")) && mono_8k {
            Some(CodecKind::G729)
        } else if is("opus") && clock_rate == 48000 && channels <= 2 {
            Some(CodecKind::Opus)
        } else if is("L16") && (1..=MAX_L16_CLOCK_RATE).contains(&clock_rate) && channels <= 2 {
            Some(CodecKind::L16 {
                channels,
                clock_rate,
            })
        } else {
            None
        }
    }

    /// The codec's name as we record it in the catalog.
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::G722 => "G722",
            CodecKind::L16 { .. } => "L16",
            CodecKind::Opus => "OPUS",
            CodecKind::G729 => "G729",
        }
    }

    /// Samples per second of the decoded audio (and of the WAV).
    pub fn sample_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G729 => 8000,
            CodecKind::G722 => 16000,
            CodecKind::L16 { clock_rate, .. } => clock_rate,
            CodecKind::Opus => 48000,
        }
    }

    /// Ticks per second of the RTP timestamp.
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            // RFC 3551 §4.5.2: G.722 samples at 16 kHz but its RTP clock is 8000 "for historical
            // reasons", and every implementation keeps the error.
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 | CodecKind::G729 => 8000,
            CodecKind::L16 { clock_rate, .. } => clock_rate,
            CodecKind::Opus => 48000,
        }
    }

    /// Output samples per RTP timestamp tick, as a ratio `(num, den)`.
    pub fn samples_per_tick(self) -> (u32, u32) {
        match self {
            CodecKind::G722 => (2, 1),
            _ => (1, 1),
        }
    }

    /// The most samples [`Decoder::decode`] can write for a payload of `payload_len` bytes (for a
    /// well-formed payload it is exact, except for Opus where it is the codec's maximum).
    pub fn max_decoded_samples(self, payload_len: usize) -> usize {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => payload_len,
            CodecKind::G722 => payload_len.saturating_mul(2),
            CodecKind::L16 { channels, .. } => payload_len / (2 * usize::from(channels.max(1))),
            CodecKind::Opus => MAX_FRAME_SAMPLES,
            #[cfg(feature = "g729")]
            CodecKind::G729 => g729::decoded_samples(payload_len).unwrap_or(0),
            #[cfg(not(feature = "g729"))]
            CodecKind::G729 => 0,
        }
    }
}

/// Checks that `out` can hold `needed` samples before a decoder writes anything.
fn check_output(codec: &'static str, needed: usize, out: &[i16]) -> Result<()> {
    if needed > out.len() {
        return Err(Error::OutputTooSmall {
            codec,
            needed,
            available: out.len(),
        });
    }
    Ok(())
}

/// The decoder of one leg: owns the codec state, decodes one RTP payload at a time.
pub struct Decoder {
    kind: CodecKind,
    state: DecoderState,
    /// Waveform-repetition concealment for the codecs whose libraries bring none (G.711, G.722,
    /// L16); `None` for Opus and G.729, which conceal themselves.
    plc: Option<Box<plc::WaveformPlc>>,
}

enum DecoderState {
    Pcmu,
    Pcma,
    // Boxed so the enum stays small; allocated once per leg.
    G722(Box<g722::Decoder>),
    L16 {
        channels: u8,
    },
    Opus(opus::Decoder),
    #[cfg(feature = "g729")]
    G729(Box<g729::Decoder>),
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("kind", &self.kind).finish()
    }
}

impl Decoder {
    /// Creates the decoder (and its codec state) for one leg.
    pub fn new(kind: CodecKind) -> Result<Decoder> {
        let state = match kind {
            CodecKind::Pcmu => DecoderState::Pcmu,
            CodecKind::Pcma => DecoderState::Pcma,
            CodecKind::G722 => DecoderState::G722(Box::default()),
            CodecKind::L16 {
                channels,
                clock_rate,
            } => DecoderState::L16 {
                channels: l16::check_parameters(channels, clock_rate)?,
            },
            CodecKind::Opus => DecoderState::Opus(opus::Decoder::new()?),
            #[cfg(feature = "g729")]
            CodecKind::G729 => DecoderState::G729(Box::default()),
            #[cfg(not(feature = "g729"))]
            CodecKind::G729 => return Err(g729_not_built()),
        };
        let plc = match kind {
            CodecKind::Opus | CodecKind::G729 => None,
            _ => Some(Box::new(plc::WaveformPlc::new(kind.sample_rate()))),
        };
        Ok(Decoder { kind, state, plc })
    }

    /// The codec this decoder decodes.
    pub fn kind(&self) -> CodecKind {
        self.kind
    }

    /// Decodes one RTP payload into `out` (mono, at `kind().sample_rate()`), returning the number
    /// of samples written. An empty payload writes nothing. On error `out` is left untouched,
    /// except for an Opus packet libopus rejects part-way. After [`Decoder::conceal`], the
    /// first milliseconds are merged with the concealment's continuation (G.711, G.722, L16).
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize> {
        let count = match &mut self.state {
            DecoderState::Pcmu => g711::decode_ulaw(payload, out),
            DecoderState::Pcma => g711::decode_alaw(payload, out),
            DecoderState::G722(decoder) => decoder.decode(payload, out),
            DecoderState::L16 { channels } => l16::decode(*channels, payload, out),
            DecoderState::Opus(decoder) => decoder.decode(payload, out),
            #[cfg(feature = "g729")]
            DecoderState::G729(decoder) => decoder.decode(payload, out),
        }?;
        if let Some(plc) = &mut self.plc
            && count > 0
        {
            plc.handle_decoded(&mut out[..count]);
        }
        Ok(count)
    }

    /// Conceals lost audio: fills `out` with what the `out.len()` samples lost just before the
    /// next packet to decode most likely were, and returns how many samples of `out`, from its
    /// start, are concealment; the rest is silence. Call it before decoding `next`, the packet
    /// that follows the loss, when it is there.
    ///
    /// - **Opus**: the last lost frame from `next`'s in-band FEC (LBRR) when it carries it,
    ///   libopus's PLC for the rest (and for all of it without `next`), in whole 2.5 ms steps.
    /// - **G.729**: bcg729's frame erasure concealment, in whole 10 ms frames.
    /// - **G.711, G.722, L16**: waveform repetition in the manner of ITU-T G.711 Appendix I
    ///   (`plc`), fading out to silence at 60 ms into the loss.
    pub fn conceal(&mut self, next: Option<&[u8]>, out: &mut [i16]) -> usize {
        let concealed = match (&mut self.state, &mut self.plc) {
            (DecoderState::Opus(decoder), _) => decoder.conceal(next, out),
            #[cfg(feature = "g729")]
            (DecoderState::G729(decoder), _) => decoder.conceal(out),
            (_, Some(plc)) => plc.conceal(out),
            _ => 0,
        };
        out[concealed..].fill(0);
        concealed
    }
}

/// An encoder, used by tests (ours and the end-to-end test client) to produce real payloads.
pub struct Encoder {
    kind: CodecKind,
    state: EncoderState,
}

enum EncoderState {
    Pcmu,
    Pcma,
    G722(Box<g722::Encoder>),
    L16 {
        channels: u8,
    },
    Opus(opus::Encoder),
    #[cfg(feature = "g729")]
    G729(Box<g729::Encoder>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("kind", &self.kind).finish()
    }
}

impl Encoder {
    /// Creates an encoder. Opus encodes mono at 48 kHz in VoIP mode; G.729 without VAD, so every
    /// frame is a 10-byte voice frame.
    pub fn new(kind: CodecKind) -> Result<Encoder> {
        let state = match kind {
            CodecKind::Pcmu => EncoderState::Pcmu,
            CodecKind::Pcma => EncoderState::Pcma,
            CodecKind::G722 => EncoderState::G722(Box::default()),
            CodecKind::L16 {
                channels,
                clock_rate,
            } => EncoderState::L16 {
                channels: l16::check_parameters(channels, clock_rate)?,
            },
            CodecKind::Opus => EncoderState::Opus(opus::Encoder::new()?),
            #[cfg(feature = "g729")]
            CodecKind::G729 => EncoderState::G729(Box::default()),
            #[cfg(not(feature = "g729"))]
            CodecKind::G729 => return Err(g729_not_built()),
        };
        Ok(Encoder { kind, state })
    }

    /// The codec this encoder produces.
    pub fn kind(&self) -> CodecKind {
        self.kind
    }

    /// Encodes mono PCM at `kind().sample_rate()` into one RTP payload, replacing the contents of
    /// `out`. Usually one 20 ms frame; any length the codec can carry in one payload is accepted
    /// (G.722: even; G.729: a multiple of 80; Opus: 2.5, 5, 10, 20, 40 or 60 ms). L16 stereo
    /// carries the mono input on both channels.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        match &mut self.state {
            EncoderState::Pcmu => out.extend(pcm.iter().map(|&s| g711::linear_to_ulaw(s))),
            EncoderState::Pcma => out.extend(pcm.iter().map(|&s| g711::linear_to_alaw(s))),
            EncoderState::G722(encoder) => encoder.encode(pcm, out)?,
            EncoderState::L16 { channels } => l16::encode(*channels, pcm, out),
            EncoderState::Opus(encoder) => encoder.encode(pcm, out)?,
            #[cfg(feature = "g729")]
            EncoderState::G729(encoder) => encoder.encode(pcm, out)?,
        }
        Ok(())
    }
}

#[cfg(not(feature = "g729"))]
fn g729_not_built() -> Error {
    Error::NotInThisBuild {
        codec: "G729",
        feature: "g729",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{Rng, assert_tone, rms, tone};

    /// Every codec of this build (G.729 only with its feature).
    fn all() -> Vec<CodecKind> {
        #[allow(unused_mut)]
        let mut all = vec![
            CodecKind::Pcmu,
            CodecKind::Pcma,
            CodecKind::G722,
            CodecKind::L16 {
                channels: 1,
                clock_rate: 8000,
            },
            CodecKind::L16 {
                channels: 2,
                clock_rate: 44100,
            },
            CodecKind::Opus,
        ];
        #[cfg(feature = "g729")]
        all.push(CodecKind::G729);
        all
    }

    #[test]
    fn from_rtpmap_accepts_each_name_case_insensitively() {
        let cases = [
            ("PCMU", 8000, 1, Some(CodecKind::Pcmu)),
            ("pcmu", 8000, 0, Some(CodecKind::Pcmu)),
            ("PCMA", 8000, 1, Some(CodecKind::Pcma)),
            ("pCmA", 8000, 1, Some(CodecKind::Pcma)),
            ("G722", 8000, 1, Some(CodecKind::G722)),
            ("g722", 8000, 1, Some(CodecKind::G722)),
            ("opus", 48000, 2, Some(CodecKind::Opus)),
            ("OPUS", 48000, 1, Some(CodecKind::Opus)),
            (
                "L16",
                16000,
                1,
                Some(CodecKind::L16 {
                    channels: 1,
                    clock_rate: 16000,
                }),
            ),
            (
                "l16",
                44100,
                2,
                Some(CodecKind::L16 {
                    channels: 2,
                    clock_rate: 44100,
                }),
            ),
        ];
        for (name, rate, channels, expected) in cases {
            assert_eq!(
                CodecKind::from_rtpmap(name, rate, channels),
                expected,
                "{name}/{rate}/{channels}"
            );
        }
    }

    #[test]
    fn from_rtpmap_rejects_wrong_rates_channels_and_names() {
        let cases = [
            ("PCMU", 16000, 1),
            ("PCMA", 8000, 2),
            // G.722's RTP clock is 8000 even though its audio is 16 kHz.
            ("G722", 16000, 1),
            ("G729", 16000, 1),
            ("opus", 8000, 1),
            ("opus", 48000, 3),
            ("L16", 0, 1),
            ("L16", 8000, 3),
            ("L16", MAX_L16_CLOCK_RATE + 1, 1),
            ("G726-32", 8000, 1),
            ("telephone-event", 8000, 1),
            ("", 8000, 1),
        ];
        for (name, rate, channels) in cases {
            assert_eq!(
                CodecKind::from_rtpmap(name, rate, channels),
                None,
                "{name}/{rate}/{channels}"
            );
        }
    }

    #[test]
    fn g722_clock_rate_is_half_its_sample_rate() {
        let g722 = CodecKind::G722;
        assert_eq!(g722.rtp_clock_rate(), 8000);
        assert_eq!(g722.sample_rate(), 16000);
        assert_eq!(g722.samples_per_tick(), (2, 1));
        // 20 ms = 160 ticks = 160 bytes = 320 samples.
        let (num, den) = g722.samples_per_tick();
        assert_eq!(160 * num / den, 320);
        assert_eq!(g722.max_decoded_samples(160), 320);
    }

    #[test]
    fn rates_and_names_per_codec() {
        let l16 = CodecKind::L16 {
            channels: 2,
            clock_rate: 44100,
        };
        let table = [
            (CodecKind::Pcmu, "PCMU", 8000, 8000),
            (CodecKind::Pcma, "PCMA", 8000, 8000),
            (CodecKind::G722, "G722", 16000, 8000),
            (l16, "L16", 44100, 44100),
            (CodecKind::Opus, "OPUS", 48000, 48000),
            (CodecKind::G729, "G729", 8000, 8000),
        ];
        for (kind, name, sample_rate, clock) in table {
            assert_eq!(kind.name(), name);
            assert_eq!(kind.sample_rate(), sample_rate, "{name}");
            assert_eq!(kind.rtp_clock_rate(), clock, "{name}");
            if kind != CodecKind::G722 {
                assert_eq!(kind.samples_per_tick(), (1, 1), "{name}");
            }
        }
    }

    #[test]
    fn decoder_and_encoder_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Decoder>();
        assert_send::<Encoder>();
    }

    #[test]
    fn unsupported_l16_parameters_are_refused() {
        for (channels, clock_rate) in [(0, 8000), (3, 8000), (1, 0)] {
            let kind = CodecKind::L16 {
                channels,
                clock_rate,
            };
            assert!(matches!(
                Decoder::new(kind),
                Err(Error::UnsupportedParameters { .. })
            ));
            assert!(Encoder::new(kind).is_err());
        }
    }

    /// Encodes `seconds` of a tone in 20 ms frames and decodes it packet by packet, as the receive
    /// thread would, into one reused buffer.
    fn round_trip(kind: CodecKind, frequency: f64, amplitude: f64, seconds: f64) -> Vec<i16> {
        let rate = kind.sample_rate();
        let input = tone(frequency, amplitude, rate, seconds);
        let frame = (rate / 50) as usize;
        let mut encoder = Encoder::new(kind).unwrap();
        let mut decoder = Decoder::new(kind).unwrap();
        let mut payload = Vec::new();
        let mut buffer = [0i16; MAX_FRAME_SAMPLES];
        let mut output = Vec::new();
        for chunk in input.chunks_exact(frame) {
            encoder.encode(chunk, &mut payload).unwrap();
            let count = decoder.decode(&payload, &mut buffer).unwrap();
            assert_eq!(count, frame, "{kind:?}: one 20 ms packet");
            output.extend_from_slice(&buffer[..count]);
        }
        output
    }

    /// Checks length, dominant frequency and level of a 1 s round trip. `skip` covers the codec's
    /// algorithmic delay and start-up, `level_db` is how far the RMS may stray from the input's.
    fn check_tone(kind: CodecKind, frequency: f64, skip_ms: u32, level_db: f64) {
        let amplitude = 8000.0;
        let decoded = round_trip(kind, frequency, amplitude, 1.0);
        let rate = kind.sample_rate();
        assert_eq!(decoded.len(), rate as usize, "{kind:?}: 1 s of samples");
        let skip = (rate * skip_ms / 1000) as usize;
        assert_tone(&decoded[skip..], rate, frequency, amplitude, level_db);
    }

    #[test]
    fn pcmu_round_trips_a_1khz_tone() {
        check_tone(CodecKind::Pcmu, 1000.0, 0, 1.0);
    }

    #[test]
    fn pcma_round_trips_a_1khz_tone() {
        check_tone(CodecKind::Pcma, 1000.0, 0, 1.0);
    }

    #[test]
    fn g722_round_trips_a_1khz_tone() {
        check_tone(CodecKind::G722, 1000.0, 50, 3.0);
    }

    #[test]
    fn g722_round_trips_a_5khz_tone_which_needs_its_upper_band() {
        check_tone(CodecKind::G722, 5000.0, 50, 6.0);
    }

    #[test]
    fn l16_round_trips_a_1khz_tone_mono_and_stereo() {
        for channels in [1, 2] {
            let kind = CodecKind::L16 {
                channels,
                clock_rate: 16000,
            };
            check_tone(kind, 1000.0, 0, 0.1);
        }
    }

    #[test]
    fn opus_round_trips_a_1khz_tone() {
        check_tone(CodecKind::Opus, 1000.0, 100, 6.0);
    }

    #[test]
    fn g729_is_known_only_with_its_feature_and_declined_without() {
        let names = [("G729", 8000, 1), ("G729A", 8000, 1), ("g729a", 8000, 1)];
        for (name, rate, channels) in names {
            let kind = CodecKind::from_rtpmap(name, rate, channels);
            if cfg!(feature = "g729") {
                assert_eq!(kind, Some(CodecKind::G729), "{name}");
            } else {
                assert_eq!(kind, None, "{name} declined without the g729 feature");
            }
        }
        if cfg!(not(feature = "g729")) {
            assert!(matches!(
                Decoder::new(CodecKind::G729),
                Err(Error::NotInThisBuild { .. })
            ));
            assert!(Encoder::new(CodecKind::G729).is_err());
            assert_eq!(CodecKind::G729.max_decoded_samples(10), 0);
        }
    }

    #[cfg(feature = "g729")]
    #[test]
    fn g729_round_trips_a_1khz_tone() {
        check_tone(CodecKind::G729, 1000.0, 100, 6.0);
    }

    #[test]
    fn a_60ms_packet_fits_in_max_frame_samples() {
        for kind in all() {
            let rate = kind.sample_rate();
            let samples = (rate * 60 / 1000) as usize;
            let input = tone(1000.0, 8000.0, rate, 0.06);
            let mut payload = Vec::new();
            Encoder::new(kind)
                .unwrap()
                .encode(&input, &mut payload)
                .unwrap();
            assert!(kind.max_decoded_samples(payload.len()) <= MAX_FRAME_SAMPLES);

            let mut out = [0i16; MAX_FRAME_SAMPLES];
            let count = Decoder::new(kind)
                .unwrap()
                .decode(&payload, &mut out)
                .unwrap();
            assert_eq!(count, samples, "{kind:?}");

            // Exactly enough room works; one sample less is refused, with nothing written.
            let mut exact = vec![0i16; samples];
            let mut decoder = Decoder::new(kind).unwrap();
            assert_eq!(decoder.decode(&payload, &mut exact).unwrap(), samples);
            let mut short = vec![7i16; samples - 1];
            let mut decoder = Decoder::new(kind).unwrap();
            assert!(matches!(
                decoder.decode(&payload, &mut short),
                Err(Error::OutputTooSmall { .. })
            ));
            assert!(short.iter().all(|&s| s == 7), "{kind:?} wrote on error");
        }
    }

    #[test]
    fn empty_payload_decodes_to_nothing() {
        for kind in all() {
            let mut out = [0i16; 16];
            assert_eq!(
                Decoder::new(kind).unwrap().decode(&[], &mut out).unwrap(),
                0
            );
        }
    }

    #[test]
    fn garbage_payloads_never_panic() {
        let mut rng = Rng::new(0x5eed_c0de);
        let mut payload = vec![0u8; 1600];
        let mut out = vec![0i16; 4 * MAX_FRAME_SAMPLES];
        for kind in all() {
            let mut decoder = Decoder::new(kind).unwrap();
            for round in 0..2000 {
                let len = match round % 4 {
                    // Lengths near the frame sizes the decoders care about...
                    0 => rng.below(24),
                    1 => rng.below(200),
                    // ...and anything up to an MTU and beyond.
                    _ => rng.below(payload.len() + 1),
                };
                rng.fill(&mut payload[..len]);
                // A random output size too, to exercise the too-small paths.
                let out_len = if round % 3 == 0 {
                    rng.below(out.len() + 1)
                } else {
                    out.len()
                };
                if let Ok(count) = decoder.decode(&payload[..len], &mut out[..out_len]) {
                    assert!(count <= out_len);
                }
                if round % 50 == 0 {
                    let lost = rng.below(out.len() + 1);
                    let next = (round % 100 == 0).then_some(&payload[..len]);
                    assert!(decoder.conceal(next, &mut out[..lost]) <= lost);
                }
            }
        }
    }

    /// A decoder that decoded `ms` of a steady tone in 20 ms packets.
    fn decoder_after_tone(kind: CodecKind, frequency: f64, ms: u32) -> Decoder {
        let rate = kind.sample_rate();
        let frame = (rate / 50) as usize;
        let input = tone(frequency, 8000.0, rate, f64::from(ms) / 1000.0);
        let mut encoder = Encoder::new(kind).unwrap();
        let mut decoder = Decoder::new(kind).unwrap();
        let mut payload = Vec::new();
        let mut out = vec![0i16; MAX_FRAME_SAMPLES];
        for chunk in input.chunks_exact(frame) {
            encoder.encode(chunk, &mut payload).unwrap();
            decoder.decode(&payload, &mut out).unwrap();
        }
        decoder
    }

    #[test]
    fn every_codec_conceals_a_lost_packet_of_a_steady_tone() {
        for kind in all() {
            let frame = (kind.sample_rate() / 50) as usize;
            let mut decoder = decoder_after_tone(kind, 1000.0, 200);
            let mut lost = vec![i16::MAX; frame + 7];
            let concealed = decoder.conceal(None, &mut lost[..frame]);
            assert_eq!(concealed, frame, "{kind:?}: 20 ms concealed");
            assert_eq!(
                lost[frame..],
                [i16::MAX; 7],
                "{kind:?}: nothing written beyond"
            );
            let level = rms(&lost[..frame]);
            assert!(level > 1500.0, "{kind:?}: concealment at rms {level}");
        }
    }

    #[test]
    fn concealment_fades_and_is_silent_well_past_the_loss() {
        for kind in all() {
            let rate = kind.sample_rate() as usize;
            let frame = rate / 50;
            let mut decoder = decoder_after_tone(kind, 700.0, 200);
            // 200 ms lost, asked for a packet at a time.
            let mut lost = vec![0i16; 10 * frame];
            for piece in lost.chunks_mut(frame) {
                decoder.conceal(None, piece);
            }
            let tail = rms(&lost[rate * 120 / 1000..]);
            assert!(tail < 300.0, "{kind:?}: rms {tail} 120 ms into the loss");
        }
    }

    #[test]
    fn concealment_without_any_audio_before_is_silence() {
        for kind in [CodecKind::Pcmu, CodecKind::G722] {
            let mut decoder = Decoder::new(kind).unwrap();
            let mut out = [5i16; 160];
            assert_eq!(decoder.conceal(None, &mut out), 0);
            assert!(out.iter().all(|&s| s == 0));
        }
    }
}
