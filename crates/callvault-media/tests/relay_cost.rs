//! What relaying costs: CPU time of the media engine's threads per relayed packet, measured
//! from the kernel's per-thread accounting (`/proc/self/task/*/schedstat`, nanoseconds on CPU)
//! while a stream of G.711 packets goes through a relayed call both ways and is recorded.
//! Not a pass/fail test (timing belongs in benchmarks): run it by hand with
//! `cargo test --release -p callvault-media --test relay_cost -- --ignored --nocapture`.
//! The peer to beat is rtpengine, about 17 µs of CPU per relayed and recorded packet on a
//! 2-core machine like ours.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use callvault_media::{AllowedSources, Codec, LegSpec, MediaConfig, MediaEngine};

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

#[test]
#[ignore = "a measurement: run by hand with --ignored --nocapture (see the file's note)"]
fn cpu_per_relayed_packet() {
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
    let (leg_a, leg_b) = engine
        .start_relay(
            (a, spec("caller", &caller, anchor)),
            (b, spec("callee", &callee, anchor)),
        )
        .unwrap();

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
            caller.send_to(&packet, (LOCALHOST, a_port)).unwrap();
            packet[10] = 0xbb;
            callee.send_to(&packet, (LOCALHOST, b_port)).unwrap();
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
    println!(
        "{relayed} packets relayed and recorded in {wall:?}: receive thread {receive:.2} µs/packet \
         (check, forward, record), writer and closer {writer:.2} µs/packet, {:.2} µs in all",
        receive + writer
    );
    assert!(relayed > 0);
}
