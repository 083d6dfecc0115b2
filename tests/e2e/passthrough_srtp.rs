//! SDES-SRTP through a pass-through route, with the real binary between two test peers on
//! loopback: the caller (a UAC of this test) offers SRTP, the callee (a UAS of this test)
//! answers SRTP, and both encrypt and decrypt with `webrtc-srtp`, an implementation
//! independent of callvault's. Each side must get keys of callvault's own, decrypt bit-exact
//! what the other side sent, and the WAVs must hold the clear audio; a tampered packet is
//! dropped (neither recorded nor forwarded) and counted.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::Value;
use webrtc_srtp::context::Context;

use crate::support::audio::{dominant_frequency, tone, ulaw_encode};
use crate::support::client::{SipClient, SipRequest, SipResponse, Transport};
use crate::support::srtp::{self as sdes, Suite};
use crate::support::{Server, leg};

const DIALLED: &str = "+4420777";
const PACKETS: u16 = 100;
/// The caller's packet whose tag is broken on the wire.
const TAMPERED: u16 = 50;
const WAIT: Duration = Duration::from_secs(10);
/// Tones whose samples repeat only after seconds at 8 kHz (440 Hz repeats every 200 samples).
const CALLER_HZ: f64 = 441.3;
const CALLEE_HZ: f64 = 997.1;

/// μ-law decoding (G.711), as the recorder decodes it.
fn ulaw_decode(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = i32::from(byte & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Plain RTP packet `n` of a 20 ms PCMU stream of `hz`.
fn plain_packet(n: u16, ssrc: u32, hz: f64) -> Vec<u8> {
    let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    packet[2..4].copy_from_slice(&n.to_be_bytes());
    packet[4..8].copy_from_slice(&(u32::from(n) * 160).to_be_bytes());
    packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
    packet.extend(
        tone(hz, u64::from(n) * 160, 160)
            .into_iter()
            .map(ulaw_encode),
    );
    packet
}

/// The audio m-line's port and the `a=crypto` values of its first m-line.
fn media_of(sdp: &str) -> (u16, Vec<String>) {
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("an audio m-line");
    (port, sdes::crypto_lines(sdp).remove(0))
}

fn sdp(port: u16, protocol: &str, crypto: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} {protocol} 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:{crypto}\r\na=sendrecv\r\n"
    )
}

/// The URI inside a Contact header value.
fn contact_uri(value: &str) -> String {
    let start = value.find('<').map_or(0, |i| i + 1);
    let end = value[start..].find('>').map_or(value.len(), |i| start + i);
    value[start..end].to_owned()
}

/// Our 200 OK to the server's INVITE: To tagged, our Contact, `body`.
fn ok_with_sdp(invite: &SipRequest, local: SocketAddr, body: &str) -> Vec<u8> {
    let plain = String::from_utf8(invite.response(200, "OK")).unwrap();
    let mut out = String::new();
    for line in plain.split("\r\n") {
        if line.is_empty() || line.starts_with("Content-Length") {
            continue;
        }
        out.push_str(line);
        if line.to_ascii_lowercase().starts_with("to:") {
            out.push_str(";tag=callee1");
        }
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "Contact: <sip:callee@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

/// A request of the caller's dialog (ACK, BYE) toward the server's Contact.
fn in_dialog(
    method: &str,
    cseq: u32,
    target: &str,
    caller: &SipClient,
    call_id: &str,
    to_tag: &str,
) -> Vec<u8> {
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=caller1\r\n\
         To: <sip:{DIALLED}@example.com>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n",
        local = caller.local,
        branch = uuid::Uuid::new_v4().simple(),
    )
    .into_bytes()
}

/// Receives SRTP on `socket` until 1.5 s pass without any, decrypting each packet with
/// `context`; returns the plain packets (or panics on one that does not decrypt).
fn receive_srtp(socket: UdpSocket, mut context: Context) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = Instant::now();
        let mut got = Vec::new();
        let mut buffer = [0u8; 2048];
        while Instant::now() < deadline {
            match socket.recv(&mut buffer) {
                Ok(len) => {
                    last = Instant::now();
                    let plain = context
                        .decrypt_rtp(&buffer[..len])
                        .expect("what callvault forwards decrypts under the key it gave us");
                    got.push(plain.to_vec());
                }
                Err(_) if !got.is_empty() && last.elapsed() > Duration::from_millis(1500) => break,
                Err(_) => {}
            }
        }
        got
    })
}

/// The recording once it is no longer active.
fn finished(server: &Server) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(r) = server.list().first()
            && r["state"] != "active"
        {
            return server.show(r["id"].as_str().unwrap());
        }
        assert!(Instant::now() < deadline, "no finished recording");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every packet's decoded audio is in `samples`, bit-exact. Packet by packet: on a loaded
/// machine the timeline may place a late packet after a gap, which is the recorder's business,
/// not the relay's. The tones repeat only after seconds, so no window matches by chance.
fn assert_recorded(samples: &[i16], packets: &[Vec<u8>], who: &str) {
    for (n, packet) in packets.iter().enumerate() {
        let decoded: Vec<i16> = packet[12..].iter().map(|b| ulaw_decode(*b)).collect();
        assert!(
            samples.windows(decoded.len()).any(|w| w == decoded),
            "{who}: packet {n} is not in the WAV bit-exact"
        );
    }
}

/// Whether `found` is within 10 Hz of `hz` (the detector's resolution).
fn near(found: f64, hz: f64) -> bool {
    (found - hz).abs() <= 10.0
}

#[tokio::test]
async fn srtp_on_both_sides_is_decrypted_recorded_and_reencrypted_under_callvaults_own_keys() {
    let suite = Suite::AesCm128HmacSha1_80;
    let caller_key = suite.new_key();
    let callee_key = suite.new_key();
    let caller_media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let callee_media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (caller_port, callee_port) = (
        caller_media.local_addr().unwrap().port(),
        callee_media.local_addr().unwrap().port(),
    );
    // The callee's signalling socket exists before the server, whose route points at it.
    let placeholder: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut callee = SipClient::connect(Transport::Udp, placeholder).await;
    let server = Server::start_with(&format!(
        "[[routes]]\nname = \"secure\"\nrequest_user = \"^\\\\+44\"\n\
         target = \"sip:{}\"\nrecord = true\n",
        callee.local
    ));
    callee.server = server.sip;
    let mut caller = SipClient::connect(Transport::Udp, server.sip).await;

    // The caller's offer: SRTP with its own key.
    let call_id = format!("{}@caller", uuid::Uuid::new_v4().simple());
    let offer = sdp(
        caller_port,
        "RTP/SAVP",
        &sdes::crypto_value(1, suite, &caller_key),
    );
    let invite = format!(
        "INVITE sip:{DIALLED}@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=caller1\r\nTo: <sip:{DIALLED}@example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{local}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{offer}",
        server = server.sip,
        local = caller.local,
        branch = uuid::Uuid::new_v4().simple(),
        len = offer.len(),
    );
    caller.send(invite.as_bytes()).await;

    // The callee is offered SRTP, with a key of callvault's, not the caller's.
    let incoming = loop {
        let request = callee
            .next_request(WAIT)
            .await
            .expect("callvault's INVITE reaches the callee");
        if request.method == "INVITE" {
            break request;
        }
    };
    let (relay_b, offered) = media_of(&incoming.body);
    assert!(incoming.body.contains(" RTP/SAVP "), "{}", incoming.body);
    assert_eq!(
        offered.len(),
        1,
        "one line per usable offered line: {offered:?}"
    );
    let (tag, offered_suite, to_callee_key) = sdes::parse_crypto(&offered[0]);
    assert_eq!((tag, offered_suite), (1, suite));
    assert_ne!(
        to_callee_key, caller_key,
        "the caller's key never leaves callvault"
    );
    let answer = sdp(
        callee_port,
        "RTP/SAVP",
        &sdes::crypto_value(1, suite, &callee_key),
    );
    callee
        .send(&ok_with_sdp(&incoming, callee.local, &answer))
        .await;

    // The caller's answer: SRTP with another key of callvault's.
    let ok: SipResponse = caller.final_response("INVITE", WAIT).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let (relay_a, answered) = media_of(&ok.body);
    assert_eq!(answered.len(), 1, "{answered:?}");
    let (tag, answered_suite, to_caller_key) = sdes::parse_crypto(&answered[0]);
    assert_eq!((tag, answered_suite), (1, suite));
    assert_ne!(
        to_caller_key, callee_key,
        "the callee's key never leaves callvault"
    );
    assert_ne!(to_caller_key, to_callee_key, "each side has its own key");
    let target = contact_uri(ok.header("contact").expect("a Contact"));
    let to_tag = ok.to_tag().expect("a To tag");
    caller
        .send(&in_dialog("ACK", 1, &target, &caller, &call_id, &to_tag))
        .await;

    // Media both ways, each side encrypting under its own key.
    let heard_by_callee = receive_srtp(
        callee_media.try_clone().unwrap(),
        sdes::sender_for(&offered[0]),
    );
    let heard_by_caller = receive_srtp(
        caller_media.try_clone().unwrap(),
        sdes::sender_for(&answered[0]),
    );
    let mut caller_srtp = sdes::sender_for(&sdes::crypto_value(1, suite, &caller_key));
    let mut callee_srtp = sdes::sender_for(&sdes::crypto_value(1, suite, &callee_key));
    let (mut from_caller, mut from_callee) = (Vec::new(), Vec::new());
    for n in 0..PACKETS {
        let plain = plain_packet(n, 0x1111, CALLER_HZ);
        let mut wire = caller_srtp.encrypt_rtp(&plain).unwrap().to_vec();
        if n == TAMPERED {
            wire[20] ^= 0x01;
        } else {
            from_caller.push(plain);
        }
        caller_media.send_to(&wire, ("127.0.0.1", relay_a)).unwrap();
        let plain = plain_packet(n, 0x2222, CALLEE_HZ);
        let wire = callee_srtp.encrypt_rtp(&plain).unwrap().to_vec();
        from_callee.push(plain);
        callee_media.send_to(&wire, ("127.0.0.1", relay_b)).unwrap();
        // The media clock of a 20 ms stream.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let heard_by_callee = heard_by_callee.join().unwrap();
    let heard_by_caller = heard_by_caller.join().unwrap();
    assert_eq!(
        heard_by_callee, from_caller,
        "the callee decrypts exactly what the caller sent, the tampered packet not forwarded"
    );
    assert_eq!(heard_by_caller, from_callee);

    // The caller hangs up; the callee gets callvault's BYE.
    caller
        .send(&in_dialog("BYE", 2, &target, &caller, &call_id, &to_tag))
        .await;
    assert_eq!(caller.final_response("BYE", WAIT).await.status, 200);
    let bye = loop {
        let request = callee
            .next_request(WAIT)
            .await
            .expect("a BYE to the callee");
        if request.method == "BYE" {
            break request;
        }
    };
    callee.send(&bye.response(200, "OK")).await;

    let rec = finished(&server);
    assert_eq!(rec["state"], "complete", "{rec}");
    assert_eq!(rec["mode"], "passthrough");
    assert_eq!(rec["route"], "secure");
    let caller_leg = leg(&rec, "caller");
    assert_eq!(
        caller_leg["srtp_auth_failures"], 1,
        "the tampered packet is counted"
    );
    assert_eq!(caller_leg["packets"], u64::from(PACKETS - 1));
    assert_eq!(leg(&rec, "callee")["srtp_auth_failures"], 0);
    let caller_wav = server.wav(caller_leg);
    let callee_wav = server.wav(leg(&rec, "callee"));
    let (caller_hz, callee_hz) = (
        dominant_frequency(&caller_wav.samples, caller_wav.rate),
        dominant_frequency(&callee_wav.samples, callee_wav.rate),
    );
    assert!(near(caller_hz, CALLER_HZ), "caller leg at {caller_hz} Hz");
    assert!(near(callee_hz, CALLEE_HZ), "callee leg at {callee_hz} Hz");
    assert_recorded(
        &caller_wav.samples,
        &from_caller[..TAMPERED as usize],
        "caller",
    );
    assert_recorded(&callee_wav.samples, &from_callee, "callee");
}
