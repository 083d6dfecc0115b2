//! L16 (RFC 3551 §4.5.11): 16-bit two's complement in network byte order, channels interleaved.

use crate::{Error, MAX_L16_CLOCK_RATE, Result, check_output};

/// The channel count, if we can decode these parameters (1 or 2 channels, a sane clock).
pub(crate) fn check_parameters(channels: u8, clock_rate: u32) -> Result<u8> {
    if (1..=2).contains(&channels) && (1..=MAX_L16_CLOCK_RATE).contains(&clock_rate) {
        Ok(channels)
    } else {
        Err(Error::UnsupportedParameters {
            codec: "L16",
            clock_rate,
            channels,
        })
    }
}

pub(crate) fn decode(channels: u8, payload: &[u8], out: &mut [i16]) -> Result<usize> {
    let frame_bytes = 2 * usize::from(channels);
    if !payload.len().is_multiple_of(frame_bytes) {
        return Err(Error::MalformedPayload {
            codec: "L16",
            len: payload.len(),
            problem: if channels == 1 {
                "odd length"
            } else {
                "not a whole number of stereo samples"
            },
        });
    }
    let count = payload.len() / frame_bytes;
    check_output("L16", count, out)?;
    if channels == 1 {
        for (sample, bytes) in out.iter_mut().zip(payload.chunks_exact(2)) {
            *sample = i16::from_be_bytes([bytes[0], bytes[1]]);
        }
    } else {
        for (sample, bytes) in out.iter_mut().zip(payload.chunks_exact(4)) {
            let left = i32::from(i16::from_be_bytes([bytes[0], bytes[1]]));
            let right = i32::from(i16::from_be_bytes([bytes[2], bytes[3]]));
            // The mean of two i16 is an i16; summing in i32 avoids the overflow.
            *sample = ((left + right) >> 1) as i16;
        }
    }
    Ok(count)
}

/// Mono input; a stereo stream carries it on both channels.
pub(crate) fn encode(channels: u8, pcm: &[i16], out: &mut Vec<u8>) {
    for &sample in pcm {
        for _ in 0..channels {
            out.extend_from_slice(&sample.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_big_endian() {
        let mut out = [0i16; 3];
        let count = decode(1, &[0x01, 0x02, 0xff, 0xfe, 0x80, 0x00], &mut out).unwrap();
        assert_eq!(count, 3);
        assert_eq!(out, [0x0102, -2, i16::MIN]);

        let mut payload = Vec::new();
        encode(1, &[0x0102, -2], &mut payload);
        assert_eq!(payload, [0x01, 0x02, 0xff, 0xfe]);
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let mut out = [0i16; 3];
        let payload = [
            0x00, 0x64, 0x00, 0xc8, // 100, 200
            0x7f, 0xff, 0x7f, 0xff, // full scale on both: no overflow
            0x80, 0x00, 0x7f, 0xff, // opposite extremes cancel
        ];
        assert_eq!(decode(2, &payload, &mut out).unwrap(), 3);
        assert_eq!(out, [150, i16::MAX, -1]);
    }

    #[test]
    fn partial_samples_are_malformed() {
        let mut out = [0i16; 8];
        assert!(matches!(
            decode(1, &[0; 3], &mut out),
            Err(Error::MalformedPayload { len: 3, .. })
        ));
        assert!(matches!(
            decode(2, &[0; 6], &mut out),
            Err(Error::MalformedPayload { len: 6, .. })
        ));
        assert_eq!(decode(2, &[0; 8], &mut out).unwrap(), 2);
    }

    #[test]
    fn stereo_encode_duplicates_the_channel() {
        let mut payload = Vec::new();
        encode(2, &[0x0102], &mut payload);
        assert_eq!(payload, [0x01, 0x02, 0x01, 0x02]);
    }
}
