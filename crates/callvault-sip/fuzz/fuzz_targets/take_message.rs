//! Any byte stream, cut into reads at fuzzer-chosen points: framing never panics, never
//! returns more than the limit, and always makes progress or waits.
#![no_main]

use bytes::BytesMut;
use callvault_sip::{Frame, take_frame};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let mut buf = BytesMut::new();
    for chunk in stream.chunks(usize::from(cut).max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match take_frame(&mut buf, MAX) {
                Ok(Some(Frame::Message(m))) => assert!(m.len() <= MAX && buf.len() < before),
                Ok(Some(Frame::Ping)) => assert!(buf.len() < before),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
