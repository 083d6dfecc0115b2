//! Any datagram: the RTP header parser never panics, and a header it accepts describes a payload
//! inside the datagram.
#![no_main]

use callvault_media::rtp::{FIXED_HEADER_LEN, RtpHeader, is_rtcp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|datagram: &[u8]| {
    let _ = is_rtcp(datagram);
    if let Ok(header) = RtpHeader::parse(datagram) {
        assert!(header.payload.start >= FIXED_HEADER_LEN);
        assert!(header.payload.start <= header.payload.end);
        assert!(header.payload.end <= datagram.len());
        assert!(header.payload_type < 128);
        let _ = &datagram[header.payload];
    }
});
