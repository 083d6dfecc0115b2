//! What relaying costs: CPU time of the media engine's threads per relayed packet, measured
//! from the kernel's per-thread accounting (`/proc/self/task/*/schedstat`, nanoseconds on CPU)
//! while a stream of G.711 packets goes through a relayed call both ways and is recorded.
//! Not a pass/fail test (timing belongs in benchmarks): run it by hand with
//! `cargo test --release -p callvault-media --test relay_cost -- --ignored --nocapture`.
//! The peer to beat is rtpengine, about 17 µs of CPU per relayed and recorded packet on a
//! 2-core machine like ours. `cpu_per_relayed_srtp_packet` does the same with SDES-SRTP on both
//! sides (AES_CM_128_HMAC_SHA1_80): each packet authenticated and decrypted, then protected
//! again under another key before it is forwarded (the sending side's encryption, done by
//! `webrtc-srtp` in the test's thread, is not counted).

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use callvault_media::{
    AllowedSources, Codec, LegSpec, MediaConfig, MediaEngine, SrtpKeying, SrtpSuite,
};
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Nanoseconds on CPU of every thread of this process whose name starts with `prefix`.
fn cpu_ns(prefix: &str) -> u64 {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            if !name.trim().starts_with(prefix) {
                return None;
            }
            let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

fn spec(label: &str, far_end: &UdpSocket, anchor: Instant) -> LegSpec {
    LegSpec {
        sources: AllowedSources {
            connection: Some(LOCALHOST),
            port: far_end.local_addr().unwrap().port(),
            signalling: None,
        },
        ..LegSpec::new(
            label,
            PathBuf::from(format!("recordings/cost/{label}.wav")),
            0,
            Codec::Pcmu,
            anchor,
        )
    }
}

fn keying(seed: u8) -> SrtpKeying {
    let bytes: Vec<u8> = (0..30u8).map(|i| seed ^ i.wrapping_mul(37)).collect();
    SrtpKeying::new(SrtpSuite::AesCm128HmacSha1_80, &bytes).unwrap()
}

fn sender(keying: &SrtpKeying) -> Context {
    Context::new(
        keying.master_key(),
        keying.master_salt(),
        ProtectionProfile::Aes128CmHmacSha1_80,
        None,
        None,
    )
    .unwrap()
}

#[test]
#[ignore = "a measurement: run by hand with --ignored --nocapture (see the file's note)"]
fn cpu_per_relayed_packet() {
    measure(false);
}

#[test]
#[ignore = "a measurement: run by hand with --ignored --nocapture (see the file's note)"]
fn cpu_per_relayed_srtp_packet() {
    measure(true);
}

fn measure(srtp: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = MediaConfig::new(LOCALHOST, 43700, 43709, dir.path().to_path_buf());
    config.receive_threads = 1;
    let engine = MediaEngine::start(config).unwrap();
    let _events = engine.events();
    let caller = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let callee = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    callee
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    caller
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (a, b) = (engine.allocate().unwrap(), engine.allocate().unwrap());
    let (a_port, b_port) = (a.port(), b.port());
    let anchor = Instant::now();
    let (mut spec_a, mut spec_b) = (
        spec("caller", &caller, anchor),
        spec("callee", &callee, anchor),
    );
    // Caller and callee keys (what they send with), ours toward each.
    let keys = [keying(1), keying(2), keying(3), keying(4)];
    if srtp {
        spec_a.srtp = Some(keys[0].clone());
        spec_a.srtp_forward = Some(keys[3].clone());
        spec_b.srtp = Some(keys[1].clone());
        spec_b.srtp_forward = Some(keys[2].clone());
    }
    let (mut caller_srtp, mut callee_srtp) = (sender(&keys[0]), sender(&keys[1]));
    let (leg_a, leg_b) = engine.start_relay((a, spec_a), (b, spec_b)).unwrap();

    let bursts = 200u32;
    let burst = 250u32;
    let mut buffer = [0u8; 2048];
    let mut relayed = 0u64;
    let before = (cpu_ns("rtp-receive"), cpu_ns("leg-"));
    let started = Instant::now();
    for n in 0..bursts {
        for i in 0..burst {
            let seq = n * burst + i;
            let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xaa];
            packet[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
            packet[4..8].copy_from_slice(&(seq * 160).to_be_bytes());
            packet.extend(std::iter::repeat_n(0xffu8, 160));
            let wire = if srtp {
                caller_srtp.encrypt_rtp(&packet).unwrap().to_vec()
            } else {
                packet.clone()
            };
            caller.send_to(&wire, (LOCALHOST, a_port)).unwrap();
            packet[10] = 0xbb;
            let wire = if srtp {
                callee_srtp.encrypt_rtp(&packet).unwrap().to_vec()
            } else {
                packet
            };
            callee.send_to(&wire, (LOCALHOST, b_port)).unwrap();
        }
        for _ in 0..burst {
            if callee.recv_from(&mut buffer).is_ok() {
                relayed += 1;
            }
            if caller.recv_from(&mut buffer).is_ok() {
                relayed += 1;
            }
        }
    }
    let wall = started.elapsed();
    let after = (cpu_ns("rtp-receive"), cpu_ns("leg-"));
    engine.stop_leg(leg_a, Instant::now());
    engine.stop_leg(leg_b, Instant::now());
    engine.shutdown();
    let receive = (after.0 - before.0) as f64 / relayed as f64 / 1000.0;
    let writer = (after.1 - before.1) as f64 / relayed as f64 / 1000.0;
    let kind = if srtp { "SRTP both sides: " } else { "" };
    let total = receive + writer;
    println!(
        "{kind}{relayed} packets relayed and recorded in {wall:?}: receive thread {receive:.2} \
         µs/packet (check, forward, record), writer and closer {writer:.2} µs/packet, {total:.2} \
         µs in all"
    );
    assert!(relayed > 0);
}
