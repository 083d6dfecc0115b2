//! Interop with sipp, the standard SIP test tool, as the recording client: a multipart SIPREC
//! INVITE, RTP from its rtp_stream, BYE. sipp is installed by the test command (Debian
//! package `sip-tester`); a missing sipp fails this test rather than skipping it.

use crate::support::audio::{dominant_frequency, rms, tone, ulaw_encode};
use crate::support::{Server, leg};
use std::process::Command;

#[test]
fn sipp_as_recording_client_is_recorded() {
    let server = Server::start();
    let call_id = siprec_call(&server, 45000);
    let rec = server.completed(&call_id);
    assert_eq!(rec["state"], "complete");
    assert_eq!(rec["from"], "sip:carol@sipp.example.com");
    assert_eq!(rec["to"], "sip:dave@sipp.example.com");
    let caller = leg(&rec, "1");
    assert_eq!(caller["participant"], "caller");
    assert!(caller["packets"].as_i64().unwrap() >= 95, "{caller}");
    let wav = server.wav(caller);
    // The call lasts 2.5 s from the ACK to the BYE; the tone fills its first 2 s.
    let ms = wav.duration_ms();
    assert!((2400..=2900).contains(&ms), "caller leg holds {ms} ms");
    assert_eq!(dominant_frequency(wav.window(300, 1700), wav.rate), 800.0);
    // sipp sent nothing on the second stream: its leg is silence of the same length.
    let callee = server.wav(leg(&rec, "2"));
    assert!((callee.duration_ms() - ms).abs() <= 60);
    assert!(rms(&callee.samples) < 1.0);
}

/// One SIPREC call from sipp (`sipp/siprec_uac.xml`): two PCMU streams offered, 2 s of an
/// 800 Hz tone on the first, nothing on the second, BYE 2.5 s after the ACK. Returns its
/// Call-ID once sipp is done (the recording may still be closing). sipp sends its media from
/// `media_port` and offers `media_port + 998` for the second stream: tests running at once
/// each use their own.
pub fn siprec_call(server: &Server, media_port: u16) -> String {
    let dir = tempfile::tempdir().unwrap();

    // 2 s of 800 Hz as raw mu-law, what rtp_stream plays for payload type 0.
    let tone_file = dir.path().join("tone.ulaw");
    let bytes: Vec<u8> = tone(800.0, 0, 16_000)
        .into_iter()
        .map(ulaw_encode)
        .collect();
    std::fs::write(&tone_file, bytes).unwrap();
    let template = include_str!("sipp/siprec_uac.xml");
    let scenario = dir.path().join("siprec_uac.xml");
    std::fs::write(
        &scenario,
        template
            .replace("@TONE_FILE@", tone_file.to_str().unwrap())
            .replace("@SECOND_PORT@", &(media_port + 998).to_string()),
    )
    .unwrap();

    let local_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new("sipp")
        .arg(server.sip.to_string())
        .arg("-sf")
        .arg(&scenario)
        .args(["-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &local_port.to_string()])
        .args(["-mp", &media_port.to_string()])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .current_dir(dir.path())
        .output()
        .expect("sipp is installed (Debian package sip-tester; the test command installs it)");
    assert!(
        output.status.success(),
        "sipp failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let recordings = server.list();
    assert_eq!(recordings.len(), 1);
    recordings[0]["ingress_call_id"]
        .as_str()
        .unwrap()
        .to_owned()
}
