//! RFC 7865 metadata in any dialect: any text must give metadata or an error, never a panic.
#![no_main]

use callvault_siprec::{Limits, parse_metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits {
        max_streams: 16,
        max_metadata_bytes: 64 * 1024,
    };
    if let Ok(metadata) = parse_metadata(xml, &limits) {
        // Every participant's stream references are plain ids; touching them keeps the
        // optimiser from discarding the work.
        let references: usize = metadata
            .participants
            .iter()
            .map(|p| p.send.len() + p.recv.len())
            .sum();
        std::hint::black_box(references);
    }
});
