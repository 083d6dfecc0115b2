//! The floor receiver (floor/floor.c, built here with the system's C compiler, as
//! `scripts/bench` does) fed by the load generator: it counts every packet sent, so the floor
//! half of every benchmark ratio cannot rot. No timing is asserted.

use std::path::Path;
use std::process::Command;

use callvault_bench::{Plan, run_floor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_receives_every_packet_the_generator_sends() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("floor");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("floor/floor.c");
    let built = Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .unwrap();
    assert!(built.success(), "cc floor.c failed");
    let plan = Plan {
        calls: 3,
        rate: 30.0,
        seconds: 1,
    };
    // Above the ephemeral range, from the process id: two test runs on one machine do not collide.
    let port_base = 61_000 + (std::process::id() % 500) as u16 * 8;
    let figures = run_floor(&plan, &binary, port_base, dir.path())
        .await
        .unwrap();
    assert_eq!(figures.get("packets_sent"), Some(3.0 * 2.0 * 50.0));
    assert_eq!(figures.get("packets_received"), Some(3.0 * 2.0 * 50.0));
    assert_eq!(figures.get("packets_lost"), Some(0.0));
    let written = std::fs::metadata(dir.path().join("stream-0.pcm"))
        .unwrap()
        .len();
    assert_eq!(written, 50 * 160 * 2, "one second of 16-bit PCM per stream");
}
