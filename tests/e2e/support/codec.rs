//! The codecs the test client can send. G.711 is encoded here with the reference algorithm
//! (independent of the server); the others use the encoders of `callvault-codec`, which the
//! server only ever uses to decode.

use super::audio;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestCodec {
    Pcmu,
    Pcma,
    G722,
    /// Linear 16-bit at 16 kHz, mono.
    L16,
    Opus,
    G729,
}

impl TestCodec {
    pub fn payload_type(self) -> u8 {
        match self {
            TestCodec::Pcmu => 0,
            TestCodec::Pcma => 8,
            TestCodec::G722 => 9,
            TestCodec::L16 => 96,
            TestCodec::Opus => 111,
            TestCodec::G729 => 18,
        }
    }

    pub fn rtpmap(self) -> &'static str {
        match self {
            TestCodec::Pcmu => "PCMU/8000",
            TestCodec::Pcma => "PCMA/8000",
            TestCodec::G722 => "G722/8000",
            TestCodec::L16 => "L16/16000",
            TestCodec::Opus => "opus/48000/2",
            TestCodec::G729 => "G729/8000",
        }
    }

    pub fn fmtp(self) -> Option<&'static str> {
        match self {
            TestCodec::Opus => Some("useinbandfec=1"),
            TestCodec::G729 => Some("annexb=no"),
            _ => None,
        }
    }

    /// The codec an SDP encoding name stands for (as the server chose it in its answer).
    pub fn from_encoding(name: &str) -> Option<TestCodec> {
        Some(match name.to_ascii_uppercase().as_str() {
            "PCMU" => TestCodec::Pcmu,
            "PCMA" => TestCodec::Pcma,
            "G722" => TestCodec::G722,
            "L16" => TestCodec::L16,
            "OPUS" => TestCodec::Opus,
            "G729" | "G729A" => TestCodec::G729,
            _ => return None,
        })
    }

    /// The catalog's codec name.
    pub fn name(self) -> &'static str {
        match self {
            TestCodec::Pcmu => "PCMU",
            TestCodec::Pcma => "PCMA",
            TestCodec::G722 => "G722",
            TestCodec::L16 => "L16",
            TestCodec::Opus => "OPUS",
            TestCodec::G729 => "G729",
        }
    }

    /// The audio's sample rate (and so the WAV's).
    pub fn sample_rate(self) -> u32 {
        match self {
            TestCodec::G722 | TestCodec::L16 => 16_000,
            TestCodec::Opus => 48_000,
            _ => 8_000,
        }
    }

    /// The RTP clock: G.722's is 8000 although its audio is 16 kHz (RFC 3551 §4.5.2).
    pub fn clock_rate(self) -> u32 {
        match self {
            TestCodec::L16 => 16_000,
            TestCodec::Opus => 48_000,
            _ => 8_000,
        }
    }
}

pub enum Encoder {
    Ulaw,
    Alaw,
    Library(Box<callvault_codec::Encoder>),
    /// G.729 in a build without it: one 10-byte frame of zeros per 80 samples.
    G729ZeroFrames,
}

impl Encoder {
    pub fn new(codec: TestCodec) -> Encoder {
        let kind = match codec {
            TestCodec::Pcmu => return Encoder::Ulaw,
            TestCodec::Pcma => return Encoder::Alaw,
            TestCodec::G722 => callvault_codec::CodecKind::G722,
            TestCodec::L16 => callvault_codec::CodecKind::L16 {
                channels: 1,
                clock_rate: 16_000,
            },
            TestCodec::Opus => callvault_codec::CodecKind::Opus,
            TestCodec::G729 => callvault_codec::CodecKind::G729,
        };
        match callvault_codec::Encoder::new(kind) {
            Ok(encoder) => Encoder::Library(Box::new(encoder)),
            // A build without the `g729` feature cannot encode G.729; the only test that offers
            // it then checks that the offer is declined, so zero frames (a valid length) stand
            // in for audio that is never sent.
            Err(callvault_codec::Error::NotInThisBuild { .. }) if codec == TestCodec::G729 => {
                Encoder::G729ZeroFrames
            }
            Err(e) => panic!("the codec crate encodes what it decodes: {e}"),
        }
    }

    pub fn encode(&mut self, pcm: &[i16]) -> Vec<u8> {
        match self {
            Encoder::Ulaw => pcm.iter().map(|&s| audio::ulaw_encode(s)).collect(),
            Encoder::Alaw => pcm.iter().map(|&s| audio::alaw_encode(s)).collect(),
            Encoder::Library(e) => {
                let mut out = Vec::new();
                e.encode(pcm, &mut out).expect("encoding a test tone");
                out
            }
            Encoder::G729ZeroFrames => vec![0; pcm.len() / 80 * 10],
        }
    }
}
