//! Who may talk to callvault and what it leaves readable: sources outside the allow-list get
//! nothing (no answer, no port, no file), and recordings are not readable by other users.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use crate::support::audio::{dominant_frequency, power, ulaw_encode};
use crate::support::client::{Call, CallSpec, SipClient, Transport};
use crate::support::{Server, leg};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn metric(server: &Server, name: &str) -> u64 {
    let (_, body) = server.http_get("/metrics");
    crate::support::metric(&body, name)
}

#[tokio::test]
async fn a_source_outside_the_allow_list_gets_no_answer_no_port_and_no_file() {
    let server = Server::start_with("[sip]\nallowed_sources = [\"127.0.0.1/32\"]\n");
    let mut outsider = Call::new_from(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
        [127, 0, 0, 2].into(),
    )
    .await;
    outsider.send_invite().await;
    assert!(
        outsider.client.recv(Duration::from_secs(1)).await.is_none(),
        "no response at all (not even 100 Trying) to a source not allowed"
    );
    // Over TCP the connection itself is closed at accept, before anything is read.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 3], 0).into()).unwrap();
    // Reset at accept: the connect itself may see it, or the first read.
    if let Ok(mut tcp) = socket.connect(server.sip).await {
        let _ = tcp.write_all(b"OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.3:5060;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: tcp-outsider\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").await;
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "closed without an answer: {read:?}"
        );
    }
    assert_eq!(metric(&server, "callvault_sip_tcp_refused_source_total"), 1);
    assert_eq!(metric(&server, "callvault_media_ports_in_use"), 0);
    assert_eq!(metric(&server, "callvault_sip_server_transactions"), 0);
    assert!(metric(&server, "callvault_sip_refused_source_total") >= 1);
    assert!(server.list().is_empty());
    assert!(
        std::fs::read_dir(server.data_dir.join("recordings"))
            .unwrap()
            .next()
            .is_none(),
        "no folder, no file"
    );

    // An allowed source is recorded as usual.
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(500), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    assert_eq!(server.completed(&call.call_id)["state"], "complete");
}

#[tokio::test]
async fn recordings_and_the_catalog_are_not_readable_by_other_users() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(500), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for leg in rec["legs"].as_array().unwrap() {
        let wav = server.path_of(leg);
        assert_eq!(mode(&wav), 0o640, "{}", wav.display());
        let folder = wav.parent().unwrap();
        assert_eq!(mode(folder), 0o750, "{}", folder.display());
        assert_eq!(mode(&folder.join("metadata-1.xml")), 0o640);
    }
    assert_eq!(mode(&server.data_dir.join("callvault.db")), 0o640);
    assert_eq!(mode(&server.data_dir.join("recordings")), 0o750);
}

#[tokio::test]
async fn control_characters_from_the_network_never_reach_the_log_raw() {
    // An SDP-only offer (Cisco BIB style) whose label carries terminal escape sequences: the
    // label is logged when the leg's file closes.
    let mut server = Server::start();
    let mut call = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    let sdp = call
        .sdp("sendonly")
        .replace("a=label:1", "a=label:1\u{1b}[2J\u{1b}]0;owned\u{7}");
    let answer = call.invite_raw("application/sdp", sdp.as_bytes(), "").await;
    assert_eq!(answer.status, 200);
    call.ack().await;
    call.play(Duration::from_millis(300), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    server.completed(&call.call_id);
    let log = server.log_so_far();
    assert!(
        log.iter().any(|l| l.contains("[2J")),
        "the label was logged (escaped)"
    );
    for line in &log {
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "a raw control character in the log: {line:?}"
        );
    }
}

/// The amplifier that was: one 30 KB INVITE of Vias from a source that could be spoofed drew
/// twelve responses echoing them (364 KB). Now it draws one refusal echoing the top Via only.
#[tokio::test]
async fn a_30_kb_invite_of_vias_draws_one_small_refusal_and_nothing_more() {
    let server = Server::start();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let padding = "v".repeat(960);
    let element = format!("SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK{padding}");
    let vias = format!("Via: {}\r\n", [element.as_str(); 7].join(", ")).repeat(4);
    let invite = format!(
        "INVITE sip:srs@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKamp;rport\r\n\
         {vias}Max-Forwards: 70\r\nFrom: <sip:sbc@example.com>;tag=amp\r\nTo: <sip:srs@example.com>\r\n\
         Call-ID: amplify@example.com\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        server = server.sip,
    );
    assert!(invite.len() > 28_000);
    socket.send_to(invite.as_bytes(), server.sip).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("the INVITE is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        answer.starts_with("SIP/2.0 400 Via, From and To Too Long\r\n"),
        "{answer}"
    );
    assert!(
        n < 2_000,
        "the refusal is {n} bytes for a {} byte request",
        invite.len()
    );
    // A retransmission would come after T1 (500 ms); none does: the refusal holds no state.
    let more = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await;
    assert!(more.is_err(), "nothing after the refusal");
    assert_eq!(metric(&server, "callvault_sip_limit_rejected_total"), 1);
    assert_eq!(metric(&server, "callvault_sip_server_transactions"), 0);
    assert!(server.list().is_empty());
}

#[tokio::test]
async fn a_call_id_beyond_the_cap_is_refused_before_any_recording() {
    let server = Server::start();
    let mut call = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.call_id = format!("{}@example.com", "c".repeat(600));
    let answer = call.invite().await;
    assert_eq!(
        (answer.status, answer.reason.as_str()),
        (400, "Call-ID Too Long")
    );
    assert_eq!(metric(&server, "callvault_media_ports_in_use"), 0);
    assert!(server.list().is_empty());
}

#[tokio::test]
async fn one_source_past_its_tcp_connections_is_closed_at_accept_and_others_are_served() {
    let server = Server::start_with("[sip]\nmax_tcp_connections_per_source = 2\n");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client =
            SipClient::connect_from(Transport::Tcp, server.sip, [127, 0, 0, 4].into()).await;
        assert_eq!(client.options().await.status, 200);
        held.push(client);
    }
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 4], 0).into()).unwrap();
    // Reset at accept: the connect itself may see it, or the first read.
    if let Ok(mut third) = socket.connect(server.sip).await {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    }
    assert_eq!(metric(&server, "callvault_sip_tcp_refused_limit_total"), 1);
    // Another SBC is not affected by the first one's connections.
    let mut other =
        SipClient::connect_from(Transport::Tcp, server.sip, [127, 0, 0, 5].into()).await;
    assert_eq!(other.options().await.status, 200);
}

/// What an attacker who found a leg's port sends from another host (127.0.0.2, which neither
/// the SDP nor the SIP peer names), paced over `duration`: a 2000 Hz tone every 20 ms, and
/// `presses` RFC 4733 end packets, each a new key press. Returns the datagrams sent.
async fn intrude(to: std::net::SocketAddr, duration: Duration, presses: u32) -> u64 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let frames = duration.as_millis() as u32 / 20;
    let per_frame = presses.div_ceil(frames);
    let start = tokio::time::Instant::now();
    let (mut sent, mut pressed) = (0u64, 0u32);
    for frame in 0..frames {
        tokio::time::sleep_until(start + Duration::from_millis(20 * u64::from(frame))).await;
        let pcm = crate::support::audio::tone(2000.0, u64::from(frame) * 160, 160);
        let payload: Vec<u8> = pcm.into_iter().map(ulaw_encode).collect();
        socket
            .send_to(&rtp(0, frame as u16, frame * 160, 0xbad, &payload), to)
            .await
            .unwrap();
        sent += 1;
        for _ in 0..per_frame.min(presses - pressed) {
            // Digit 0-9, end bit, 100 ms; a new timestamp per press.
            let event = [(pressed % 10) as u8, 0x8a, 0x03, 0x20];
            let timestamp = 1_000_000 + pressed * 800;
            socket
                .send_to(
                    &rtp(101, 30_000 + pressed as u16, timestamp, 0xbad, &event),
                    to,
                )
                .await
                .unwrap();
            pressed += 1;
            sent += 1;
        }
    }
    assert_eq!(pressed, presses);
    sent
}

fn rtp(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x80, payload_type];
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

#[tokio::test]
async fn rtp_and_digits_from_a_foreign_address_are_not_recorded() {
    let server = Server::start();
    let before = metric(&server, "callvault_media_foreign_packets_total");
    // The SDP says 127.0.0.1, where the client's RTP senders bind; its SIP comes from there too.
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    let port = call.answer.as_ref().unwrap().answered_media()[0].port;
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let length = Duration::from_secs(2);
    let intruder = tokio::spawn(intrude(to, length, 1_000));
    call.play(length, &[]).await;
    let sent = intruder.await.unwrap();
    assert_eq!(call.bye().await.status, 200);

    let rec = server.completed(&call.call_id);
    assert_eq!(rec["dtmf"], serde_json::json!([]), "no digit stored");
    let attacked = leg(&rec, "1");
    assert_eq!(
        attacked["foreign_packets"].as_u64(),
        Some(sent),
        "every datagram of the intruder counted: {attacked:#}"
    );
    assert_eq!(attacked["telephone_events"], 0);
    assert_eq!(attacked["ssrcs_seen"], 1);
    assert_eq!(leg(&rec, "2")["foreign_packets"], 0);
    let wav = server.wav(attacked);
    let middle = wav.window(300, 1700);
    assert_eq!(dominant_frequency(middle, wav.rate), 440.0);
    let (genuine, intruder) = (
        power(middle, wav.rate, 440.0),
        power(middle, wav.rate, 2000.0),
    );
    assert!(
        genuine > 10_000.0 * intruder,
        "the intruder's tone is in the file: {genuine} vs {intruder}"
    );
    assert_eq!(
        metric(&server, "callvault_media_foreign_packets_total") - before,
        sent
    );
}
