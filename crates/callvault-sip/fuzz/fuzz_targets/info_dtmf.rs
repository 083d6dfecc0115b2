//! Any INFO body under either DTMF content type: `parse_info_dtmf` returns, and what it accepts
//! is one of the sixteen events or a flash.
#![no_main]

use callvault_sip::parse_info_dtmf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.split_first() {
        Some((selector, body)) if selector & 1 == 0 => (Some("application/dtmf-relay"), body),
        Some((_, body)) => (Some("application/dtmf"), body),
        None => (None, data),
    };
    if let Ok(Some(dtmf)) = parse_info_dtmf(content_type, body) {
        assert!(
            matches!(dtmf.digit, '0'..='9' | '*' | '#' | 'A'..='D' | '!'),
            "accepted digit {:?} is not a DTMF event",
            dtmf.digit
        );
    }
});
