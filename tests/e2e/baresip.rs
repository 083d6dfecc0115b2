//! Pass-through recording between two real SIP phones that were not written here: baresip
//! (Debian package `baresip-core`, installed by `scripts/setup --tests`) as caller and callee,
//! each playing its own tone from a WAV file (the `aufile` source) and writing what it hears
//! (the `sndfile` filter). A missing baresip fails the test rather than skipping it.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Server;
use crate::support::audio::{Wav, dominant_frequency, tone};

/// A port free for baresip's SIP over UDP and TCP, with the next one free for its TLS.
fn sip_port() -> u16 {
    loop {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let free = |p: u16| {
            port < 65_000
                && UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && TcpListener::bind(("127.0.0.1", p)).is_ok()
        };
        if free(port) && free(port + 1) {
            return port;
        }
    }
}

fn write_tone(path: &Path, frequency: f64, seconds: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for sample in tone(frequency, 0, 8000 * seconds) {
        writer.write_sample(sample).unwrap();
    }
    writer.finalize().unwrap();
}

/// A baresip configuration directory for `user` on `port`, playing `tone_file`, answering
/// calls by itself, its received audio dumped into the same directory.
fn phone(dir: &Path, user: &str, port: u16, rtp: u16, tone_file: &Path) -> PathBuf {
    let home = dir.join(user);
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config"),
        format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:{port}\n\
             audio_player aubridge,nil\n\
             audio_source aufile,{tone}\n\
             audio_alert aubridge,nil\n\
             rtp_ports {rtp}-{rtp_max}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module aufile.so\n\
             module aubridge.so\n\
             module sndfile.so\n\
             module_app account.so\n\
             module_app menu.so\n\
             snd_path {home}\n",
            tone = tone_file.display(),
            rtp_max = rtp + 20,
            home = home.display(),
        ),
    )
    .unwrap();
    std::fs::write(
        home.join("accounts"),
        format!("<sip:{user}@127.0.0.1:{port}>;regint=0;answermode=auto;audio_codecs=PCMU\n"),
    )
    .unwrap();
    home
}

fn baresip(home: &Path, args: &[&str]) -> Child {
    Command::new("baresip")
        .arg("-f")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(home.join("out.log")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip is installed (Debian package baresip-core; scripts/setup --tests)")
}

/// Polls `home/out.log` until it holds `needle` (baresip says what it does on stdout).
fn wait_for(home: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = std::fs::read_to_string(home.join("out.log")).unwrap_or_default();
        if log.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "baresip never said {needle:?}: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a phone heard: the `sndfile` dump of its decoded receive path.
fn heard(home: &Path) -> Wav {
    let dump = std::fs::read_dir(home)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("no received-audio dump in {}", home.display()));
    Wav::read(&dump)
}

#[test]
fn two_baresip_phones_talk_through_a_route_and_both_directions_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (caller_tone, callee_tone) = (dir.path().join("800.wav"), dir.path().join("1200.wav"));
    write_tone(&caller_tone, 800.0, 3);
    write_tone(&callee_tone, 1200.0, 3);
    let (caller_port, callee_port) = (sip_port(), sip_port());
    let rtp = 38_000 + (std::process::id() % 50) as u16 * 40;
    let caller_home = phone(dir.path(), "alice", caller_port, rtp, &caller_tone);
    let callee_home = phone(dir.path(), "bob", callee_port, rtp + 20, &callee_tone);

    // The route names the callee's user: baresip takes only calls to its own account.
    let server = Server::start_with(&format!(
        "[[routes]]\nname = \"phones\"\nrequest_user = \"^\\\\+44\"\n\
         target = \"sip:bob@127.0.0.1:{callee_port}\"\nrecord = true\n"
    ));
    let mut callee = baresip(&callee_home, &["-t", "20"]);
    wait_for(&callee_home, "baresip is ready");
    let dial = format!("/dial sip:+4420123@{}", server.sip);
    let mut caller = baresip(&caller_home, &["-e", &dial, "-t", "8"]);
    // Each phone hangs up when its 3 s file ends; the call is over when one of them says so.
    wait_for(&callee_home, "terminated");
    let recordings = {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let list = server.list();
            if list.first().is_some_and(|r| r["state"] != "active") {
                break list;
            }
            assert!(Instant::now() < deadline, "no finished recording: {list:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let _ = caller.kill();
    let _ = callee.kill();
    let _ = caller.wait();
    let _ = callee.wait();

    // Each phone heard the other's tone, through callvault's relay.
    let bob_heard = heard(&callee_home);
    let alice_heard = heard(&caller_home);
    assert_eq!(
        dominant_frequency(bob_heard.window(500, 2000), bob_heard.rate),
        800.0
    );
    assert_eq!(
        dominant_frequency(alice_heard.window(500, 2000), alice_heard.rate),
        1200.0
    );

    assert_eq!(recordings.len(), 1);
    let rec = server.show(recordings[0]["id"].as_str().unwrap());
    assert_eq!(rec["state"], "complete", "{rec}");
    assert_eq!(rec["mode"], "passthrough");
    assert_eq!(rec["route"], "phones");
    assert_eq!(rec["final_status"], 200);
    assert!(
        ["caller", "callee"].contains(&rec["hung_up_by"].as_str().unwrap_or("")),
        "{rec}"
    );
    let caller_leg = server.wav(crate::support::leg(&rec, "caller"));
    let callee_leg = server.wav(crate::support::leg(&rec, "callee"));
    assert_eq!(
        dominant_frequency(caller_leg.window(500, 2000), caller_leg.rate),
        800.0
    );
    assert_eq!(
        dominant_frequency(callee_leg.window(500, 2000), callee_leg.rate),
        1200.0
    );
    // Both legs last the call: about the 3 s the phones played, equal to each other.
    let duration = rec["duration_ms"].as_i64().unwrap();
    for wav in [&caller_leg, &callee_leg] {
        let ms = wav.duration_ms();
        assert!((2700..=3600).contains(&ms), "a leg holds {ms} ms");
        assert!(
            (ms - duration).abs() <= 150,
            "{ms} ms of a {duration} ms call"
        );
    }
    assert!((caller_leg.duration_ms() - callee_leg.duration_ms()).abs() <= 20);
}
