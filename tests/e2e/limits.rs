//! Bad input and limits: every refusal is a clear SIP answer, nothing recorded is harmed,
//! and the server keeps recording afterwards.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::support::audio::dominant_frequency;
use crate::support::client::{Call, CallSpec, SipClient, Transport};
use crate::support::{Server, leg, metric};

fn request(
    method: &str,
    server: std::net::SocketAddr,
    local: std::net::SocketAddr,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "{method} sip:srs@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:sbc@example.com>;tag=f1\r\nTo: <sip:srs@example.com>\r\nCall-ID: {b}@example.com\r\nCSeq: 1 {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len(),
        b = uuid::Uuid::new_v4().simple(),
    )
}

async fn answer_to(
    client: &mut SipClient,
    text: &str,
    method: &str,
) -> crate::support::client::SipResponse {
    client.send(text.as_bytes()).await;
    client.final_response(method, Duration::from_secs(5)).await
}

#[tokio::test]
async fn options_unknown_methods_and_unknown_dialogs_get_their_answers() {
    let server = Server::start();
    let mut c = SipClient::connect(Transport::Udp, server.sip).await;
    let local = c.local;
    let options = answer_to(
        &mut c,
        &request("OPTIONS", server.sip, local, "", ""),
        "OPTIONS",
    )
    .await;
    assert_eq!(options.status, 200);
    assert!(options.header("Allow").unwrap().contains("INVITE"));
    assert!(
        options
            .header("Accept")
            .unwrap()
            .contains("application/rs-metadata+xml")
    );
    assert!(options.header("Supported").unwrap().contains("siprec"));

    let register = answer_to(
        &mut c,
        &request("REGISTER", server.sip, local, "", ""),
        "REGISTER",
    )
    .await;
    assert_eq!(register.status, 405);
    assert!(register.header("Allow").unwrap().contains("BYE"));

    let bye = answer_to(&mut c, &request("BYE", server.sip, local, "", ""), "BYE").await;
    assert_eq!(bye.status, 481);
}

#[tokio::test]
async fn bad_offers_are_refused_with_the_right_status_and_record_nothing() {
    let server = Server::start_with("[sip]\nmax_streams = 4\n");
    let mut c = SipClient::connect(Transport::Udp, server.sip).await;
    let local = c.local;

    let broken_multipart = "--xyz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n";
    let r = answer_to(
        &mut c,
        &request(
            "INVITE",
            server.sip,
            local,
            "Content-Type: multipart/mixed;boundary=abc\r\n",
            broken_multipart,
        ),
        "INVITE",
    )
    .await;
    assert_eq!(r.status, 400, "{} {}", r.status, r.reason);

    let garbage_sdp = "this is not SDP\r\n";
    let r = answer_to(
        &mut c,
        &request(
            "INVITE",
            server.sip,
            local,
            "Content-Type: application/sdp\r\n",
            garbage_sdp,
        ),
        "INVITE",
    )
    .await;
    assert!(
        (400..500).contains(&r.status),
        "garbage SDP answered {}",
        r.status
    );

    let mut five =
        String::from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n");
    for i in 0..5 {
        five.push_str(&format!(
            "m=audio {} RTP/AVP 0\r\na=sendonly\r\na=label:{i}\r\n",
            30000 + 2 * i
        ));
    }
    let r = answer_to(
        &mut c,
        &request(
            "INVITE",
            server.sip,
            local,
            "Content-Type: application/sdp\r\n",
            &five,
        ),
        "INVITE",
    )
    .await;
    assert_eq!(r.status, 488, "too many streams answered {}", r.status);

    let video_only = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 30000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=sendonly\r\n";
    let r = answer_to(
        &mut c,
        &request(
            "INVITE",
            server.sip,
            local,
            "Content-Type: application/sdp\r\n",
            video_only,
        ),
        "INVITE",
    )
    .await;
    assert_eq!(r.status, 488, "nothing recordable answered {}", r.status);

    assert!(server.list().is_empty());
}

#[tokio::test]
async fn a_full_node_answers_503_with_retry_after() {
    let server = Server::start_with("[sip]\nmax_sessions = 1\nretry_after_secs = 7\n");
    let mut first = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 880.0),
    )
    .await;
    assert_eq!(first.invite().await.status, 200);
    first.ack().await;
    let mut second = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 880.0),
    )
    .await;
    let refused = second.invite().await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("Retry-After"), Some("7"));
    second.ack_failure(&refused).await;
    assert_eq!(first.bye().await.status, 200);
    // Once the first call ended, the node takes calls again.
    let mut third = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 880.0),
    )
    .await;
    assert_eq!(third.invite().await.status, 200);
    third.ack().await;
    assert_eq!(third.bye().await.status, 200);
}

#[tokio::test]
async fn a_burst_of_malformed_messages_leaves_the_server_recording() {
    let server = Server::start();
    // A call in progress while the garbage arrives must not be harmed.
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(700.0, 1300.0),
    )
    .await;

    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = udp.local_addr().unwrap();
    let valid = request(
        "INVITE",
        server.sip,
        local,
        "Content-Type: application/sdp\r\n",
        "v=0\r\n",
    );
    let mut junk: Vec<Vec<u8>> = Vec::new();
    for cut in (0..valid.len()).step_by(7) {
        junk.push(valid.as_bytes()[..cut].to_vec());
    }
    for i in 0..100u32 {
        let mut bytes = valid.clone().into_bytes();
        let at = (i as usize * 37) % bytes.len();
        bytes[at] = (i * 13) as u8;
        junk.push(bytes);
    }
    junk.push(vec![0xff; 1500]);
    junk.push(b"SIP/2.0 200 OK\r\n\r\n".to_vec());
    junk.push(b"INVITE sip:x SIP/2.0\r\n\r\n".to_vec());
    junk.push(
        valid
            .replace("CSeq: 1 INVITE", "CSeq: banana INVITE")
            .into_bytes(),
    );
    junk.push(
        valid
            .replace("Content-Length: 5", "Content-Length: 900")
            .into_bytes(),
    );
    for j in &junk {
        udp.send_to(j, server.sip).await.unwrap();
    }
    // Garbage over TCP too, including a message claiming a huge body.
    let mut tcp = TcpStream::connect(server.sip).await.unwrap();
    let _ = tcp
        .write_all(b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n")
        .await;
    let _ = tcp.write_all(&[0u8; 4096]).await;
    drop(tcp);

    // A request with a routable Via but an unparseable CSeq is answered 400.
    let mut c = SipClient::connect(Transport::Udp, server.sip).await;
    let local = c.local;
    let bad_cseq =
        request("OPTIONS", server.sip, local, "", "").replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
    c.send(bad_cseq.as_bytes()).await;
    let r = c
        .recv(Duration::from_secs(5))
        .await
        .expect("a 400 for a bad CSeq");
    assert_eq!(r.status, 400);

    call.play(std::time::Duration::from_millis(1500), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    assert_eq!(rec["state"], "complete");
    let wav = server.wav(leg(&rec, "1"));
    assert_eq!(dominant_frequency(wav.window(300, 1200), wav.rate), 700.0);

    // And a new call after the burst records normally, over TCP this time.
    let mut after = Call::new(
        Transport::Tcp,
        server.sip,
        CallSpec::two_parties(600.0, 1200.0),
    )
    .await;
    assert_eq!(after.invite().await.status, 200);
    after.ack().await;
    after.play(Duration::from_secs(1), &[]).await;
    assert_eq!(after.bye().await.status, 200);
    let rec = server.completed(&after.call_id);
    let wav = server.wav(leg(&rec, "2"));
    assert_eq!(dominant_frequency(wav.window(200, 800), wav.rate), 1200.0);
    assert_eq!(server.list().len(), 2, "garbage created no recordings");
}

/// The value of one metric in a Prometheus text page.
#[tokio::test]
async fn health_and_metrics_report_calls_refusals_and_bad_input() {
    let server = Server::start();
    let (status, body) = server.http_get("/health");
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");

    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 880.0),
    )
    .await;
    let (_, page) = server.http_get("/metrics");
    assert_eq!(metric(&page, "callvault_sessions_active"), 1);
    assert_eq!(metric(&page, "callvault_media_legs_active"), 2);
    assert_eq!(metric(&page, "callvault_media_ports_in_use"), 2);
    call.play(Duration::from_millis(200), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    server.completed(&call.call_id);

    // A refused offer and a message that cannot be answered.
    let mut c = SipClient::connect(Transport::Udp, server.sip).await;
    let local = c.local;
    let r = answer_to(
        &mut c,
        &request(
            "INVITE",
            server.sip,
            local,
            "Content-Type: application/sdp\r\n",
            "garbage\r\n",
        ),
        "INVITE",
    )
    .await;
    assert!(r.status >= 400);
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(b"\x00\x01 not sip at all", server.sip)
        .await
        .unwrap();

    // The SIP counters are published once a second: poll until they show.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, page) = server.http_get("/metrics");
        assert_eq!(status, 200);
        if metric(&page, "callvault_sip_malformed_dropped_total") >= 1 {
            assert_eq!(metric(&page, "callvault_sessions_active"), 0);
            assert_eq!(metric(&page, "callvault_sessions_total"), 1);
            assert_eq!(metric(&page, "callvault_sessions_rejected_total"), 1);
            assert_eq!(metric(&page, "callvault_media_ports_in_use"), 0);
            assert_eq!(metric(&page, "callvault_media_blocks_dropped_total"), 0);
            assert_eq!(metric(&page, "callvault_archive_failures_total"), 0);
            assert!(page.contains("# TYPE callvault_sessions_total counter"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "malformed input never counted:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
