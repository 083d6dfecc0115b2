//! Any sequence of RFC 4733 payloads: the parser and the DTMF detector never panic, and every
//! press they report is a key with a duration the 16-bit field can express.
#![no_main]

use std::time::{Duration, Instant};

use callvault_media::dtmf::{DtmfDetector, TelephoneEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut detector = DtmfDetector::new(8000);
    // Each record: 1 byte of arrival step (ms), 1 byte SSRC, 4 bytes timestamp, then a payload
    // whose length is the next byte (mod 8).
    let mut rest = data;
    let mut at = start;
    while let [step, ssrc, t0, t1, t2, t3, len, tail @ ..] = rest {
        let len = usize::from(*len % 8).min(tail.len());
        let (payload, next) = tail.split_at(len);
        at += Duration::from_millis(u64::from(*step) * 8);
        let timestamp = u32::from_be_bytes([*t0, *t1, *t2, *t3]);
        let _ = TelephoneEvent::parse(payload);
        for press in detector.handle_packet(at, u32::from(*ssrc), timestamp, payload, |_| 0) {
            assert!("0123456789*#ABCD!".contains(press.digit));
            assert!(press.duration_ms <= 8192);
        }
        let _ = detector.handle_tick(at);
        rest = next;
    }
    let _ = detector.finish();
});
