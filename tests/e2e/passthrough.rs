//! Pass-through recording through the real binary: sipp as the caller (UAC) and as the callee
//! (UAS), callvault on a `[[routes]]` route between them. The callee's media is a socket of
//! this test: it checks the caller's RTP really arrives through the relay, and answers with a
//! tone of its own so that both recorded legs can be told apart.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::audio::{dominant_frequency, rms, tone, ulaw_encode};
use crate::support::{Server, leg};

/// The number the caller dials (matched by the route).
const DIALLED: &str = "+4420123";

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scenario file from `sipp/passthrough`, placeholders filled in, written into `dir`.
fn scenario(dir: &Path, name: &str, replacements: &[(&str, String)]) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/e2e/sipp/passthrough")
        .join(name);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    let out = dir.join(name);
    std::fs::write(&out, text).unwrap();
    out
}

/// The callee: sipp waiting for one call on `port`.
fn sipp_uas(dir: &Path, scenario: &Path, port: u16) -> Child {
    Command::new("sipp")
        .arg("-sf")
        .arg(scenario)
        .args(["-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &port.to_string()])
        .args(["-mp", &free_udp_port().to_string()])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp is installed (Debian package sip-tester; the test command installs it)")
}

/// The caller: sipp placing one call to `server`.
fn sipp_uac(dir: &Path, scenario: &Path, server: &Server) -> Output {
    Command::new("sipp")
        .arg(server.sip.to_string())
        .arg("-sf")
        .arg(scenario)
        .args(["-s", DIALLED])
        .args(["-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &free_udp_port().to_string()])
        .args(["-mp", &free_udp_port().to_string()])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .current_dir(dir)
        .output()
        .expect("sipp is installed")
}

fn assert_sipp_ok(who: &str, output: &Output) {
    assert!(
        output.status.success(),
        "sipp {who} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// callvault with one route to the callee's sipp on `uas_port`.
fn routed_server(uas_port: u16) -> Server {
    Server::start_with(&format!(
        "[[routes]]\nname = \"pbx\"\nrequest_user = \"^\\\\+44\"\n\
         target = \"sip:127.0.0.1:{uas_port}\"\nrecord = true\n"
    ))
}

/// The one recording of the server, once it is no longer active.
fn the_recording(server: &Server) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = server.list();
        if let Some(r) = list.first()
            && r["state"] != "active"
        {
            assert_eq!(list.len(), 1, "{list:?}");
            return server.show(r["id"].as_str().unwrap());
        }
        assert!(Instant::now() < deadline, "no finished recording: {list:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// μ-law decoding (G.711), to check what reached the callee.
fn ulaw_decode(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = i32::from(byte & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// The callee's media: receives what the relay forwards (returned, decoded) and answers every
/// packet with one of its own 1000 Hz tone, to where the packet came from.
fn callee_media(socket: UdpSocket) -> std::thread::JoinHandle<Vec<i16>> {
    std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(25);
        let mut heard = Vec::new();
        let mut last = Instant::now();
        let mut sent = 0u32;
        let mut buffer = [0u8; 2048];
        while Instant::now() < deadline {
            match socket.recv_from(&mut buffer) {
                Ok((len, from)) if len > 12 && buffer[1] & 0x7f == 0 => {
                    last = Instant::now();
                    heard.extend(buffer[12..len].iter().map(|b| ulaw_decode(*b)));
                    let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbb, 0xbb];
                    packet[2..4].copy_from_slice(&(sent as u16).to_be_bytes());
                    packet[4..8].copy_from_slice(&(sent * 160).to_be_bytes());
                    packet.extend(
                        tone(1000.0, u64::from(sent) * 160, 160)
                            .into_iter()
                            .map(ulaw_encode),
                    );
                    let _ = socket.send_to(&packet, from);
                    sent += 1;
                }
                _ if !heard.is_empty() && last.elapsed() > Duration::from_secs(2) => break,
                _ => {}
            }
        }
        heard
    })
}

#[test]
fn sipp_through_a_route_is_relayed_both_ways_and_recorded_as_two_legs() {
    let dir = tempfile::tempdir().unwrap();
    // 2 s of 800 Hz as raw μ-law for the caller's rtp_stream.
    let tone_file = dir.path().join("tone.ulaw");
    let bytes: Vec<u8> = tone(800.0, 0, 16_000)
        .into_iter()
        .map(ulaw_encode)
        .collect();
    std::fs::write(&tone_file, bytes).unwrap();
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port();
    let heard = callee_media(media);

    let uas_port = free_udp_port();
    let uas = scenario(
        dir.path(),
        "uas_answered.xml",
        &[("@MEDIA_PORT@", media_port.to_string())],
    );
    let uas = sipp_uas(dir.path(), &uas, uas_port);
    let server = routed_server(uas_port);
    let uac = scenario(
        dir.path(),
        "uac_answered.xml",
        &[("@TONE_FILE@", tone_file.to_string_lossy().into_owned())],
    );
    let caller = sipp_uac(dir.path(), &uac, &server);
    assert_sipp_ok("caller", &caller);
    assert_sipp_ok("callee", &uas.wait_with_output().unwrap());

    // The callee heard the caller: its 800 Hz came through the relay.
    let heard = heard.join().unwrap();
    assert!(
        heard.len() >= 8000,
        "the callee got {} samples",
        heard.len()
    );
    assert_eq!(dominant_frequency(&heard[..8000], 8000), 800.0);

    let rec = the_recording(&server);
    assert_eq!(rec["state"], "complete", "{rec}");
    assert_eq!(rec["mode"], "passthrough");
    assert_eq!(rec["route"], "pbx");
    assert_eq!(rec["final_status"], 200);
    assert_eq!(rec["hung_up_by"], "caller");
    let ingress = rec["ingress_call_id"].as_str().unwrap();
    let egress = rec["egress_call_id"].as_str().unwrap();
    assert!(
        !egress.is_empty() && egress != ingress,
        "{ingress} / {egress}"
    );
    let caller_leg = server.wav(leg(&rec, "caller"));
    let callee_leg = server.wav(leg(&rec, "callee"));
    assert_eq!(
        dominant_frequency(caller_leg.window(200, 1800), caller_leg.rate),
        800.0
    );
    assert_eq!(
        dominant_frequency(callee_leg.window(200, 1800), callee_leg.rate),
        1000.0
    );
    assert!((caller_leg.duration_ms() - callee_leg.duration_ms()).abs() <= 60);
    // The INFO key press, captured on the caller's leg and passed on (the callee's sipp
    // expected it).
    let dtmf = rec["dtmf"].as_array().unwrap();
    assert_eq!(dtmf.len(), 1, "{dtmf:?}");
    assert_eq!(dtmf[0]["digit"], "7");
    assert_eq!(dtmf[0]["leg"], "caller");
    assert_eq!(dtmf[0]["source"], "sip-info");

    // `recordings show` names both Call-IDs.
    let shown = server.cli(&["show", rec["id"].as_str().unwrap()]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains(&format!("call-id in   {ingress}")), "{text}");
    assert!(text.contains(&format!("call-id out  {egress}")), "{text}");
    assert!(text.contains("mode         passthrough"), "{text}");

    // In /metrics: one pass-through call set up (the callee's ringing included) and ended by a
    // BYE, its two legs' packets counted under PCMU with the catalog's figures.
    let metrics = crate::support::metrics::Metrics::parse(&server.http_get("/metrics").1);
    let passthrough = [("mode", "passthrough")];
    let setup = metrics.histogram("callvault_call_setup_seconds", &passthrough);
    setup.assert_consistent();
    assert_eq!(setup.count, 1.0);
    assert_eq!(
        metrics.value(
            "callvault_recordings_completed_total",
            &[("mode", "passthrough"), ("end_reason", "bye")]
        ),
        1.0
    );
    assert_eq!(
        metrics
            .histogram("callvault_call_duration_seconds", &passthrough)
            .count,
        1.0
    );
    let packets: i64 = ["caller", "callee"]
        .iter()
        .map(|side| leg(&rec, side)["packets"].as_i64().unwrap())
        .sum();
    assert_eq!(
        metrics.value("callvault_media_packets_total", &[("codec", "PCMU")]),
        packets as f64
    );

    // Announced final like a SIPREC recording: its recording.json beside the WAVs.
    let folder = server
        .path_of(leg(&rec, "caller"))
        .parent()
        .unwrap()
        .to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(10);
    let written: Value = loop {
        if let Ok(bytes) = std::fs::read(folder.join("recording.json")) {
            break serde_json::from_slice(&bytes).unwrap();
        }
        assert!(Instant::now() < deadline, "no recording.json in {folder:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(written["mode"], "passthrough");
    assert_eq!(written["egress_call_id"], egress);
}

#[test]
fn sipp_callee_holds_then_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port();
    let uas_port = free_udp_port();
    let uas = scenario(
        dir.path(),
        "uas_callee_hangs_up.xml",
        &[("@MEDIA_PORT@", media_port.to_string())],
    );
    let uas = sipp_uas(dir.path(), &uas, uas_port);
    let server = routed_server(uas_port);
    let uac = scenario(dir.path(), "uac_callee_hangs_up.xml", &[]);
    let caller = sipp_uac(dir.path(), &uac, &server);
    assert_sipp_ok("caller", &caller);
    assert_sipp_ok("callee", &uas.wait_with_output().unwrap());
    let rec = the_recording(&server);
    assert_eq!(rec["final_status"], 200);
    assert_eq!(rec["hung_up_by"], "callee");
    assert_eq!(rec["end_reason"], "bye");
    // Nobody sent RTP: both legs are silence of the call's length.
    let caller_leg = server.wav(leg(&rec, "caller"));
    assert!(rms(&caller_leg.samples) < 1.0);
    assert!(
        caller_leg.duration_ms() >= 900,
        "{}",
        caller_leg.duration_ms()
    );
}

#[test]
fn sipp_busy_is_passed_to_the_caller_and_catalogued_unanswered() {
    let dir = tempfile::tempdir().unwrap();
    let uas_port = free_udp_port();
    let uas = scenario(dir.path(), "uas_busy.xml", &[]);
    let uas = sipp_uas(dir.path(), &uas, uas_port);
    let server = routed_server(uas_port);
    let uac = scenario(dir.path(), "uac_busy.xml", &[]);
    let caller = sipp_uac(dir.path(), &uac, &server);
    assert_sipp_ok("caller", &caller);
    assert_sipp_ok("callee", &uas.wait_with_output().unwrap());
    let rec = the_recording(&server);
    assert_eq!(rec["final_status"], 486);
    assert_eq!(rec["end_reason"], "not-answered");
    assert_eq!(rec["hung_up_by"], Value::Null);
    assert_eq!(rec["legs"], serde_json::json!([]));
    assert_eq!(rec["mode"], "passthrough");
    // In /metrics: a pass-through call taken, ended not answered, never set up; the callee's
    // 486 passed on to the caller.
    let metrics = crate::support::metrics::Metrics::parse(&server.http_get("/metrics").1);
    let passthrough = [("mode", "passthrough")];
    assert_eq!(metrics.total("callvault_sessions_total"), 1.0);
    assert_eq!(
        metrics
            .series("callvault_sessions_total", &passthrough)
            .len(),
        1
    );
    assert_eq!(
        metrics.value(
            "callvault_recordings_completed_total",
            &[("mode", "passthrough"), ("end_reason", "not-answered")]
        ),
        1.0
    );
    assert!(
        metrics
            .series("callvault_call_setup_seconds", &passthrough)
            .is_empty(),
        "a call never answered has no setup time"
    );
    assert_eq!(
        metrics.value(
            "callvault_sip_responses_sent_total",
            &[("transport", "udp"), ("status", "486")]
        ),
        1.0
    );
}

#[test]
fn sipp_cancel_while_ringing_is_relayed() {
    let dir = tempfile::tempdir().unwrap();
    let uas_port = free_udp_port();
    let uas = scenario(dir.path(), "uas_cancel.xml", &[]);
    let uas = sipp_uas(dir.path(), &uas, uas_port);
    let server = routed_server(uas_port);
    let uac = scenario(dir.path(), "uac_cancel.xml", &[]);
    let caller = sipp_uac(dir.path(), &uac, &server);
    assert_sipp_ok("caller", &caller);
    assert_sipp_ok("callee", &uas.wait_with_output().unwrap());
    let rec = the_recording(&server);
    assert_eq!(rec["final_status"], 487);
    assert_eq!(rec["hung_up_by"], "caller");
    assert_eq!(rec["end_reason"], "not-answered");
}

#[test]
fn routes_list_shows_the_routes_and_a_bad_route_fails_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callvault.toml");
    std::fs::write(
        &config,
        "[[routes]]\nname = \"pbx\"\nrequest_user = \"^\\\\+44\"\n\
         target = \"sip:10.0.0.5:5060\"\nrecord = true\n\n\
         [[routes]]\nname = \"tcp-sbc\"\nsource = \"192.0.2.0/24\"\n\
         target = \"sip:10.0.0.6;transport=tcp\"\ndtmf = false\ntenant = \"acme\"\n",
    )
    .unwrap();
    let list = Command::new(crate::support::BIN)
        .args(["routes", "list", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    let text = String::from_utf8_lossy(&list.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[1],
        "pbx\trequest_user=^\\+44\tsip:10.0.0.5:5060\tyes\tyes\t-"
    );
    assert_eq!(
        lines[2],
        "tcp-sbc\tsource=192.0.2.0/24\tsip:10.0.0.6;transport=tcp\tyes\tno\tacme"
    );
    let json = Command::new(crate::support::BIN)
        .args(["routes", "list", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let first: Value = serde_json::from_str(
        String::from_utf8_lossy(&json.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["name"], "pbx");
    assert_eq!(first["target"], "sip:10.0.0.5:5060");

    std::fs::write(
        &config,
        "[[routes]]\nname = \"pbx\"\ntarget = \"sip:pbx.example.com\"\nrecord = true\n",
    )
    .unwrap();
    let check = Command::new(crate::support::BIN)
        .args(["check-config", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        said.contains("[[routes]] #1 (\"pbx\")") && said.contains("target"),
        "{said}"
    );
}

/// Every file under `dir` whose name ends with `.wav`.
fn wav_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "wav") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_route_with_record_false_relays_the_call_and_writes_no_audio() {
    let dir = tempfile::tempdir().unwrap();
    let tone_file = dir.path().join("tone.ulaw");
    let bytes: Vec<u8> = tone(800.0, 0, 16_000)
        .into_iter()
        .map(ulaw_encode)
        .collect();
    std::fs::write(&tone_file, bytes).unwrap();
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port();
    let heard = callee_media(media);
    let uas_port = free_udp_port();
    let uas = scenario(
        dir.path(),
        "uas_answered.xml",
        &[("@MEDIA_PORT@", media_port.to_string())],
    );
    let uas = sipp_uas(dir.path(), &uas, uas_port);
    let server = Server::start_with(&format!(
        "[[routes]]\nname = \"relay\"\nrequest_user = \"^\\\\+44\"\n\
         target = \"sip:127.0.0.1:{uas_port}\"\nrecord = false\n"
    ));
    let uac = scenario(
        dir.path(),
        "uac_answered.xml",
        &[("@TONE_FILE@", tone_file.to_string_lossy().into_owned())],
    );
    let caller = sipp_uac(dir.path(), &uac, &server);
    assert_sipp_ok("caller", &caller);
    assert_sipp_ok("callee", &uas.wait_with_output().unwrap());

    // Relayed as on a recording route: the callee heard the caller (and its INFO digit).
    let heard = heard.join().unwrap();
    assert!(
        heard.len() >= 8000,
        "the callee got {} samples",
        heard.len()
    );
    assert_eq!(dominant_frequency(&heard[..8000], 8000), 800.0);

    // The catalog keeps the call (who, when, both Call-IDs, how it ended) and says why there
    // is no audio; no leg, no digit, no WAV anywhere.
    let rec = the_recording(&server);
    assert_eq!(rec["state"], "complete", "{rec}");
    assert_eq!(rec["mode"], "passthrough");
    assert_eq!(rec["route"], "relay");
    assert_eq!(rec["final_status"], 200);
    assert_eq!(rec["hung_up_by"], "caller");
    assert!(
        rec["egress_call_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(rec["legs"].as_array().map(Vec::len), Some(0), "{rec}");
    assert_eq!(
        rec["dtmf"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "{rec}"
    );
    assert!(rec.to_string().contains("not recorded"), "{rec}");
    assert_eq!(
        wav_files(&server.data_dir),
        Vec::<std::path::PathBuf>::new()
    );
}
