//! RTP fixed header (RFC 3550 §5.1), read in place.
//!
//! The `rtp` crate copies the payload into `Bytes` and the CSRCs and extensions into `Vec`s: an
//! allocation per packet. Here the header is read straight from the receive buffer and the payload
//! is returned as a range of it.

use std::ops::Range;

use crate::error::{Error, Result};

/// Length of the fixed header, before CSRCs and extension.
pub const FIXED_HEADER_LEN: usize = 12;

/// The fields of an RTP header the pipeline uses, and where the payload sits in the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Byte range of the payload in the datagram, padding excluded.
    pub payload: Range<usize>,
}

impl RtpHeader {
    /// Parses the header of one datagram. Never panics, whatever the bytes.
    pub fn parse(datagram: &[u8]) -> Result<RtpHeader> {
        let start = header_len(datagram)?;
        let first = datagram[0];
        let padding = first & 0x20 != 0;
        let second = datagram[1];
        let mut end = datagram.len();
        if padding {
            // The last octet counts the padding octets, itself included (RFC 3550 §5.1).
            let count = usize::from(datagram[end - 1]);
            if count == 0 || count > end - start {
                return Err(Error::MalformedRtp("padding overruns the payload"));
            }
            end -= count;
        }
        Ok(RtpHeader {
            marker: second & 0x80 != 0,
            payload_type: second & 0x7f,
            sequence: u16::from_be_bytes([datagram[2], datagram[3]]),
            timestamp: u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]),
            ssrc: u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
            payload: start..end,
        })
    }
}

/// Length of the header of one datagram: fixed part, CSRCs and extension (RFC 3550 §5.1, §5.3.1).
/// What SRTP authenticates in clear and never encrypts. Never panics, whatever the bytes.
pub fn header_len(datagram: &[u8]) -> Result<usize> {
    if datagram.len() < FIXED_HEADER_LEN {
        return Err(Error::MalformedRtp("shorter than the fixed header"));
    }
    let first = datagram[0];
    if first >> 6 != 2 {
        return Err(Error::MalformedRtp("version is not 2"));
    }
    let extension = first & 0x10 != 0;
    let csrc_count = usize::from(first & 0x0f);
    let mut start = FIXED_HEADER_LEN + 4 * csrc_count;
    if datagram.len() < start {
        return Err(Error::MalformedRtp("CSRC list overruns the packet"));
    }
    if extension {
        // 16-bit profile, 16-bit length in 32-bit words, then the words (RFC 3550 §5.3.1).
        let Some(words) = datagram.get(start + 2..start + 4) else {
            return Err(Error::MalformedRtp("extension header overruns the packet"));
        };
        let words = usize::from(u16::from_be_bytes([words[0], words[1]]));
        start += 4 + 4 * words;
        if datagram.len() < start {
            return Err(Error::MalformedRtp("extension overruns the packet"));
        }
    }
    Ok(start)
}

/// True for an RTCP packet multiplexed on the RTP port (RFC 5761 §4: packet types 200–204 fall
/// where RTP would carry marker + payload types 72–76, which RTP must not use).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && datagram[0] >> 6 == 2 && (200..=204).contains(&datagram[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::rtp::header::{Extension, Header};
    use ::rtp::packet::Packet;
    use bytes::Bytes;
    use webrtc_util::marshal::{Marshal, Unmarshal};

    fn oracle_packet(header: Header, payload: &[u8]) -> Vec<u8> {
        Packet {
            header,
            payload: Bytes::copy_from_slice(payload),
        }
        .marshal()
        .unwrap()
        .to_vec()
    }

    fn assert_matches_oracle(bytes: &[u8]) {
        let ours = RtpHeader::parse(bytes).unwrap();
        let theirs = Packet::unmarshal(&mut &bytes[..]).unwrap();
        assert_eq!(ours.marker, theirs.header.marker);
        assert_eq!(ours.payload_type, theirs.header.payload_type);
        assert_eq!(ours.sequence, theirs.header.sequence_number);
        assert_eq!(ours.timestamp, theirs.header.timestamp);
        assert_eq!(ours.ssrc, theirs.header.ssrc);
        assert_eq!(&bytes[ours.payload.clone()], &theirs.payload[..]);
    }

    fn base_header() -> Header {
        Header {
            version: 2,
            marker: true,
            payload_type: 8,
            sequence_number: 65535,
            timestamp: 0xdead_beef,
            ssrc: 0x0102_0304,
            ..Header::default()
        }
    }

    #[test]
    fn plain_header_matches_oracle() {
        let bytes = oracle_packet(base_header(), &[0xd5; 160]);
        assert_matches_oracle(&bytes);
        let parsed = RtpHeader::parse(&bytes).unwrap();
        assert_eq!(parsed.payload, 12..172);
    }

    #[test]
    fn csrcs_are_skipped() {
        let header = Header {
            csrc: vec![1, 2, 3],
            ..base_header()
        };
        let bytes = oracle_packet(header, &[1, 2, 3, 4]);
        assert_matches_oracle(&bytes);
        assert_eq!(RtpHeader::parse(&bytes).unwrap().payload, 24..28);
    }

    #[test]
    fn extension_is_skipped() {
        let header = Header {
            extension: true,
            extension_profile: 0xBEDE,
            extensions: vec![Extension {
                id: 1,
                payload: Bytes::from_static(&[0xaa, 0xbb, 0xcc]),
            }],
            csrc: vec![7],
            ..base_header()
        };
        let bytes = oracle_packet(header, &[9; 10]);
        assert_matches_oracle(&bytes);
        assert_eq!(&bytes[RtpHeader::parse(&bytes).unwrap().payload], &[9; 10]);
    }

    #[test]
    fn padding_is_removed() {
        let header = Header {
            padding: true,
            ..base_header()
        };
        let bytes = oracle_packet(header, &[5; 6]);
        assert!(bytes.len() > 12 + 6, "oracle added padding");
        assert_matches_oracle(&bytes);
        assert_eq!(&bytes[RtpHeader::parse(&bytes).unwrap().payload], &[5; 6]);
    }

    #[test]
    fn truncated_and_wrong_version_are_rejected() {
        let bytes = oracle_packet(base_header(), &[1; 4]);
        for len in 0..12 {
            assert!(RtpHeader::parse(&bytes[..len]).is_err(), "len {len}");
        }
        let mut v1 = bytes.clone();
        v1[0] = (v1[0] & 0x3f) | 0x40;
        assert!(matches!(RtpHeader::parse(&v1), Err(Error::MalformedRtp(_))));

        // CSRC count larger than the packet.
        let mut csrc = bytes.clone();
        csrc[0] |= 0x0f;
        assert!(RtpHeader::parse(&csrc).is_err());

        // Extension bit set, extension missing or too long.
        let mut ext = bytes[..12].to_vec();
        ext[0] |= 0x10;
        assert!(RtpHeader::parse(&ext).is_err());
        ext.extend_from_slice(&[0xbe, 0xde, 0x00, 0x05, 0, 0, 0, 0]);
        assert!(RtpHeader::parse(&ext).is_err());

        // Padding count of zero or beyond the payload.
        let mut pad = bytes.clone();
        pad[0] |= 0x20;
        *pad.last_mut().unwrap() = 0;
        assert!(RtpHeader::parse(&pad).is_err());
        *pad.last_mut().unwrap() = 5;
        assert!(RtpHeader::parse(&pad).is_err());
        // Exactly the whole payload as padding is legal: an empty payload.
        *pad.last_mut().unwrap() = 4;
        assert_eq!(RtpHeader::parse(&pad).unwrap().payload, 12..12);
    }

    #[test]
    fn rtcp_mux_is_recognised() {
        // A receiver report: V=2, RC=0, PT=201.
        assert!(is_rtcp(&[0x80, 201, 0, 1, 0, 0, 0, 1]));
        assert!(is_rtcp(&[0x81, 200]));
        assert!(!is_rtcp(&[0x80, 205]));
        // RTP with the marker bit and PT 0 / 8 is audio, not RTCP.
        assert!(!is_rtcp(&oracle_packet(base_header(), &[0; 4])));
        assert!(!is_rtcp(&[0x80]));
    }
}
