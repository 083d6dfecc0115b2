//! Any bytes: `Message::parse` returns, and what it accepts survives a round trip.
#![no_main]

use callvault_sip::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(Message::Request(request)) => {
            let _ = request.response(200).with_to_tag("t").to_bytes();
            let again = Message::parse(&request.to_bytes());
            assert!(again.is_ok(), "a request we accepted must re-parse after to_bytes");
        }
        Ok(Message::Response(response)) => {
            let _ = response.to_bytes();
        }
        Err(_) => {}
    }
});
