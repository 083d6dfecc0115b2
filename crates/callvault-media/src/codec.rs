//! Audio codecs and their decoders.
//!
//! Decoding is dispatched by `match` on [`Codec`]: adding G.722, L16, Opus or G.729 is one variant,
//! one arm in each method, and (for stateful codecs) a decoder state in [`Decoder`].

/// RTP payload type of comfort noise (RFC 3389): written as silence.
pub const COMFORT_NOISE_PT: u8 = 13;

/// A codec the engine can decode to 16-bit PCM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl Codec {
    /// The SDP encoding name (`a=rtpmap`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Samples per second of the decoded audio (and of the WAV).
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
        }
    }

    /// The codec for an SDP encoding name, case-insensitively (RFC 4566 §6: names are
    /// case-insensitive).
    pub fn from_encoding(name: &str) -> Option<Codec> {
        [Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|codec| codec.name().eq_ignore_ascii_case(name))
    }

    /// The codec of a static payload type (RFC 3551 table 4), for offers without `a=rtpmap`.
    pub fn from_static_payload_type(payload_type: u8) -> Option<Codec> {
        match payload_type {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }
}

/// Decoder state for one stream. G.711 is stateless; stateful codecs will keep theirs here.
#[derive(Debug)]
pub(crate) struct Decoder {
    codec: Codec,
}

impl Decoder {
    pub(crate) fn new(codec: Codec) -> Decoder {
        Decoder { codec }
    }

    pub(crate) fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one payload into `out`, returning the number of samples written. A payload longer
    /// than `out` is truncated (the receive buffer bounds it anyway).
    pub(crate) fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        let table = match self.codec {
            Codec::Pcmu => &ULAW_TO_LINEAR,
            Codec::Pcma => &ALAW_TO_LINEAR,
        };
        let count = payload.len().min(out.len());
        for (sample, byte) in out[..count].iter_mut().zip(payload) {
            *sample = table[usize::from(*byte)];
        }
        count
    }
}

/// G.711 μ-law to linear, computed at compile time (ITU-T G.711, as in Sun's g711.c).
static ULAW_TO_LINEAR: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let byte = !(i as u8);
        let exponent = (byte >> 4) & 0x07;
        let mantissa = (byte & 0x0f) as i32;
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        table[i] = if byte & 0x80 != 0 {
            -magnitude as i16
        } else {
            magnitude as i16
        };
        i += 1;
    }
    table
};

/// G.711 A-law to linear, computed at compile time.
static ALAW_TO_LINEAR: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let byte = (i as u8) ^ 0x55;
        let exponent = (byte >> 4) & 0x07;
        let mantissa = ((byte & 0x0f) as i32) << 4;
        let magnitude = if exponent == 0 {
            mantissa + 8
        } else {
            (mantissa + 0x108) << (exponent - 1)
        };
        table[i] = if byte & 0x80 != 0 {
            magnitude as i16
        } else {
            -magnitude as i16
        };
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_one(codec: Codec, byte: u8) -> i16 {
        let mut out = [0i16; 1];
        assert_eq!(Decoder::new(codec).decode(&[byte], &mut out), 1);
        out[0]
    }

    #[test]
    fn ulaw_known_values() {
        assert_eq!(decode_one(Codec::Pcmu, 0xff), 0);
        assert_eq!(decode_one(Codec::Pcmu, 0x7f), 0);
        assert_eq!(decode_one(Codec::Pcmu, 0x00), -32124);
        assert_eq!(decode_one(Codec::Pcmu, 0x80), 32124);
        assert_eq!(decode_one(Codec::Pcmu, 0xfe), 8);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(decode_one(Codec::Pcma, 0xd5), 8);
        assert_eq!(decode_one(Codec::Pcma, 0x55), -8);
        assert_eq!(decode_one(Codec::Pcma, 0xaa), 32256);
        assert_eq!(decode_one(Codec::Pcma, 0x2a), -32256);
    }

    #[test]
    fn tables_are_odd_symmetric() {
        for byte in 0..128u8 {
            assert_eq!(
                ULAW_TO_LINEAR[usize::from(byte)],
                -ULAW_TO_LINEAR[usize::from(byte | 0x80)]
            );
            assert_eq!(
                ALAW_TO_LINEAR[usize::from(byte)],
                -ALAW_TO_LINEAR[usize::from(byte | 0x80)]
            );
        }
    }

    #[test]
    fn decode_truncates_to_output() {
        let mut out = [1i16; 2];
        assert_eq!(Decoder::new(Codec::Pcmu).decode(&[0xff; 5], &mut out), 2);
        assert_eq!(out, [0, 0]);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(Codec::from_encoding("pcmu"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_encoding("PCMA"), Some(Codec::Pcma));
        assert_eq!(Codec::from_encoding("opus"), None);
        assert_eq!(Codec::Pcma.name(), "PCMA");
        assert_eq!(Codec::Pcmu.sample_rate(), 8000);
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::Pcma));
    }
}
