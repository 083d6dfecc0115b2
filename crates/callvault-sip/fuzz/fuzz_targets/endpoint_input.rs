//! Any datagrams into one endpoint, with time moving on: no panic, no transaction left behind.
#![no_main]

use callvault_sip::{Endpoint, EndpointConfig, Peer};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut endpoint = Endpoint::new(EndpointConfig::default());
    let from = Peer::udp("192.0.2.1:5060".parse().unwrap());
    for (i, datagram) in data.split(|b| *b == 0xff).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 100);
        endpoint.handle_input(now, from, datagram);
        endpoint.handle_timeout(now);
        while endpoint.poll_transmit().is_some() {}
        while endpoint.poll_event().is_some() {}
    }
    endpoint.handle_timeout(t0 + Duration::from_secs(3600));
    assert_eq!(endpoint.stats().server_transactions, 0);
});
