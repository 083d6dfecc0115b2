//! Arbitrary bytes through every decoder: `cargo +nightly fuzz run decode` (from this directory's
//! parent). The first byte sets the packet length, so one input is a stream of packets and the
//! codec state (G.722 predictors, libopus, G.729) carries from one packet to the next.

#![no_main]

use callvault_codec::{CodecKind, Decoder, MAX_FRAME_SAMPLES};
use libfuzzer_sys::fuzz_target;

const KINDS: [CodecKind; 7] = [
    CodecKind::Pcmu,
    CodecKind::Pcma,
    CodecKind::G722,
    CodecKind::L16 {
        channels: 1,
        clock_rate: 8000,
    },
    CodecKind::L16 {
        channels: 2,
        clock_rate: 48000,
    },
    CodecKind::Opus,
    CodecKind::G729,
];

fuzz_target!(|data: &[u8]| {
    let Some((&packet_len, stream)) = data.split_first() else {
        return;
    };
    let packet_len = usize::from(packet_len).max(1);
    let mut out = [0i16; MAX_FRAME_SAMPLES];
    for kind in KINDS {
        let mut decoder = Decoder::new(kind).expect("every listed kind has a decoder");
        for (index, packet) in stream.chunks(packet_len).enumerate() {
            if let Ok(count) = decoder.decode(packet, &mut out) {
                assert!(count <= out.len());
            }
            // Now and then, a loss of a packet-dependent length, with or without the next packet
            // (Opus's FEC reads it).
            if index % 7 == 3 {
                let lost = (usize::from(packet[0]) * 40).min(out.len());
                let next = (packet.len() % 2 == 0).then_some(packet);
                assert!(decoder.conceal(next, &mut out[..lost]) <= lost);
            }
        }
    }
});
