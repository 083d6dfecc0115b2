//! Running it as infrastructure: JSON logs that name the call, SIGHUP reloading the
//! allow-list, configuration from the environment, and systemd's readiness protocol.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::client::{Call, CallSpec, SipClient, Transport};
use crate::support::{BIN, Server};

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_name_the_call_in_each_call_and_media_event() {
    let mut server = Server::start_with_options("", &["--log-format", "json"], &[]);
    let mut call = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    let answer = call.invite().await;
    assert_eq!(answer.status, 200);
    call.ack().await;
    // Media from an address the leg is not bound to: the media engine reports it.
    let stranger = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    let rtp_port = answer.answered_media()[0].port;
    let mut packet = [0u8; 172];
    packet[0] = 0x80;
    for n in 0..5u8 {
        packet[3] = n;
        stranger.send_to(&packet, ("127.0.0.1", rtp_port)).unwrap();
    }
    call.play(Duration::from_millis(500), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let recording = server.completed(&call.call_id);
    let recording_id = recording["id"].as_str().unwrap().to_owned();
    server.wait_for_log("recording complete", Duration::from_secs(10));
    server.wait_for_log("leg closed", Duration::from_secs(10));
    server.wait_for_log("not bound to dropped", Duration::from_secs(10));

    let lines = server.log_so_far();
    let events: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for event in &events {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(event[key].is_string(), "no {key}: {event}");
        }
    }
    let of_the_call: Vec<&Value> = events
        .iter()
        .filter(|event| event["call_id"] == call.call_id.as_str())
        .collect();
    let messages: Vec<&str> = of_the_call
        .iter()
        .map(|event| event["message"].as_str().unwrap())
        .collect();
    for expected in [
        "INVITE",
        "answered: recording",
        "BYE",
        "recording ended; closing its files",
        "leg closed",
        "media from a source the leg is not bound to dropped",
        "recording complete",
    ] {
        assert!(
            messages.contains(&expected),
            "no {expected:?} with the call's call_id in {messages:?}"
        );
    }
    // Once the recording exists, every line about the call names it too.
    for event in of_the_call
        .iter()
        .filter(|event| event["message"] != "INVITE")
    {
        assert_eq!(event["recording_id"], recording_id.as_str(), "{event}");
    }
}

#[tokio::test]
async fn sighup_applies_a_new_allow_list_to_the_next_message_and_connection() {
    let mut server = Server::start_with("[sip]\nallowed_sources = [\"127.0.0.1/32\"]\n");
    let sip = server.sip;
    assert!(udp_answered(sip, [127, 0, 0, 1]).await);
    assert!(!udp_answered(sip, [127, 0, 0, 7]).await);
    assert!(!tcp_answered(sip, [127, 0, 0, 7]).await);

    // The SBC moves to 127.0.0.7; 127.0.0.1 is no longer allowed.
    std::fs::write(
        server.config_path(),
        "[sip]\nallowed_sources = [\"127.0.0.7/32\"]\nmax_sessions = 5\n",
    )
    .unwrap();
    server.hangup();
    let changed = server.wait_for_log("allowed_sources changed", Duration::from_secs(10));
    assert!(changed.contains("127.0.0.7/32"), "{changed}");
    let restart = server.wait_for_log("applied only at the next start", Duration::from_secs(10));
    assert!(restart.contains("[sip] max_sessions"), "{restart}");
    assert!(udp_answered(sip, [127, 0, 0, 7]).await);
    assert!(tcp_answered(sip, [127, 0, 0, 7]).await);
    assert!(!udp_answered(sip, [127, 0, 0, 1]).await);
    assert!(!tcp_answered(sip, [127, 0, 0, 1]).await);

    // A file that does not load changes nothing.
    std::fs::write(
        server.config_path(),
        "[sip]\nallowed_sources = [\"nonsense\"]\n",
    )
    .unwrap();
    server.hangup();
    server.wait_for_log("does not load; nothing changed", Duration::from_secs(10));
    assert!(udp_answered(sip, [127, 0, 0, 7]).await);
    assert!(!udp_answered(sip, [127, 0, 0, 1]).await);
}

/// Whether an OPTIONS over UDP from `from` is answered 200 (a refused source gets nothing).
async fn udp_answered(sip: SocketAddr, from: [u8; 4]) -> bool {
    let mut client = SipClient::connect_from(Transport::Udp, sip, from.into()).await;
    client.send(&options(from, "UDP")).await;
    client
        .recv(Duration::from_secs(1))
        .await
        .is_some_and(|answer| answer.status == 200)
}

/// Whether an OPTIONS over TCP from `from` is answered (a refused source's connection is
/// closed at accept, before anything is read).
async fn tcp_answered(sip: SocketAddr, from: [u8; 4]) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(from), 0).into())
        .unwrap();
    let Ok(mut tcp) = socket.connect(sip).await else {
        return false;
    };
    if tcp.write_all(&options(from, "TCP")).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"),
        Ok(_) => false,
        Err(_) => panic!("neither answered nor closed within 10 s"),
    }
}

fn options(from: [u8; 4], via: &str) -> Vec<u8> {
    let ip = std::net::Ipv4Addr::from(from);
    let n = unique();
    format!(
        "OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{via} {ip}:5060;branch=z9hG4bK{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:sbc@{ip}>;tag={n}\r\nTo: <sip:srs@127.0.0.1>\r\n\
         Call-ID: options-{n}@{ip}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A value unique within one test run, for branches, tags and Call-IDs.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    u64::from(std::process::id()) * 1_000_000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn a_key_set_by_a_callvault_section_key_variable_reaches_the_running_server() {
    let server = Server::start_with_options(
        "[sip]\nuser_agent = \"from-the-file\"\n",
        &[],
        &[("CALLVAULT_SIP__USER_AGENT", "from-the-environment/1.0")],
    );
    let mut client = SipClient::connect(Transport::Udp, server.sip).await;
    let answer = client.options().await;
    assert_eq!(answer.status, 200);
    let agent = answer
        .header("Server")
        .or(answer.header("User-Agent"))
        .unwrap_or_default();
    assert_eq!(agent, "from-the-environment/1.0");
}

/// A port free on loopback for both UDP and TCP just now.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[tokio::test]
async fn systemd_hears_ready_once_sip_answers_and_stopping_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let sip: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut child = Command::new(BIN)
        .args(["serve", "--sip-listen", &sip.to_string()])
        .args(["--http-listen", "127.0.0.1:0"])
        .args(["--rtp-ip", "127.0.0.1", "--rtp-ports", "39200-39299"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("CALLVAULT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    // Nothing read from the log: the datagram alone says when to start sending calls.
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("READY=1 within 30 s");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(ready.contains("STATUS=recording"), "{ready:?}");
    let mut client = SipClient::connect(Transport::Udp, sip).await;
    assert_eq!(client.options().await.status, 200, "answering once READY");

    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let n = notify.recv(&mut buf).expect("STOPPING=1 at shutdown");
    let stopping = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let log = log.join().unwrap();
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:?}");
}
