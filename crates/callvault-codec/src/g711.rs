//! G.711 μ-law and A-law (ITU-T G.711): one byte per sample, decoded by table.

use crate::{Result, check_output};

pub(crate) fn decode_ulaw(payload: &[u8], out: &mut [i16]) -> Result<usize> {
    decode_with(&ULAW_TO_LINEAR, "PCMU", payload, out)
}

pub(crate) fn decode_alaw(payload: &[u8], out: &mut [i16]) -> Result<usize> {
    decode_with(&ALAW_TO_LINEAR, "PCMA", payload, out)
}

fn decode_with(
    table: &[i16; 256],
    codec: &'static str,
    payload: &[u8],
    out: &mut [i16],
) -> Result<usize> {
    check_output(codec, payload.len(), out)?;
    for (sample, &byte) in out.iter_mut().zip(payload) {
        *sample = table[usize::from(byte)];
    }
    Ok(payload.len())
}

/// Linear to μ-law (the segment search of G.711 Table 2, on the 14-bit magnitude).
pub(crate) fn linear_to_ulaw(sample: i16) -> u8 {
    // 14-bit range; the bias of 33 moves every segment boundary to a power of two.
    const BIAS: i32 = 0x21;
    const CLIP: i32 = 8159;
    let value = i32::from(sample) >> 2;
    let (mask, magnitude) = if value < 0 {
        (0x7f, -value)
    } else {
        (0xff, value)
    };
    let biased = magnitude.min(CLIP) + BIAS;
    // The segment is the position of the highest set bit above bit 5 (biased is 0x21..=0x2000).
    let segment = 31 - biased.leading_zeros() as i32 - 5;
    let code = if segment > 7 {
        // Only the clipped maximum reaches bit 13: the largest code.
        0x7f
    } else {
        (segment << 4) | ((biased >> (segment + 1)) & 0x0f)
    };
    (code ^ mask) as u8
}

/// Linear to A-law (G.711 Table 1, on the 13-bit magnitude; even bits inverted by the 0x55 mask).
pub(crate) fn linear_to_alaw(sample: i16) -> u8 {
    let value = i32::from(sample) >> 3;
    let (mask, magnitude) = if value >= 0 {
        (0xd5, value)
    } else {
        (0x55, -value - 1)
    };
    let code = if magnitude >= 0x1000 {
        // Beyond the last segment: the largest code.
        0x7f
    } else if magnitude < 0x20 {
        // Segments 0 and 1 share the step size: 16 levels each of width 2.
        magnitude >> 1
    } else {
        let segment = 31 - magnitude.leading_zeros() as i32 - 4;
        (segment << 4) | ((magnitude >> segment) & 0x0f)
    };
    (code ^ mask) as u8
}

/// G.711 μ-law to linear, computed at compile time (as in Sun's g711.c).
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

    fn ulaw(byte: u8) -> i16 {
        ULAW_TO_LINEAR[usize::from(byte)]
    }

    fn alaw(byte: u8) -> i16 {
        ALAW_TO_LINEAR[usize::from(byte)]
    }

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw(0xff), 0);
        assert_eq!(ulaw(0x7f), 0);
        assert_eq!(ulaw(0x00), -32124);
        assert_eq!(ulaw(0x80), 32124);
        assert_eq!(ulaw(0xfe), 8);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw(0xd5), 8);
        assert_eq!(alaw(0x55), -8);
        assert_eq!(alaw(0xaa), 32256);
        assert_eq!(alaw(0x2a), -32256);
    }

    #[test]
    fn encoders_know_silence_and_full_scale() {
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(0), 0xd5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xaa);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2a);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        // Each decoded level lies inside its own quantization interval, so it encodes back to
        // the same code (except μ-law's negative zero 0x7f, which is +0 = 0xff).
        for byte in 0..=255u8 {
            let expected_ulaw = if byte == 0x7f { 0xff } else { byte };
            assert_eq!(
                linear_to_ulaw(ulaw(byte)),
                expected_ulaw,
                "μ-law {byte:#04x}"
            );
            assert_eq!(linear_to_alaw(alaw(byte)), byte, "A-law {byte:#04x}");
        }
    }

    #[test]
    fn decode_writes_one_sample_per_byte_and_checks_room() {
        let mut out = [1i16; 4];
        assert_eq!(decode_ulaw(&[0xff, 0x00, 0x80], &mut out).unwrap(), 3);
        assert_eq!(out, [0, -32124, 32124, 1]);
        assert_eq!(decode_alaw(&[0xd5, 0x55], &mut out).unwrap(), 2);
        assert_eq!(out[..2], [8, -8]);
        assert!(decode_alaw(&[0xd5; 5], &mut out).is_err());
    }
}
