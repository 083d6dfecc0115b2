//! The drivers on real loopback sockets: framing, answering on the connection, and the rule
//! that no peer can make `send` wait.

mod tls;

use super::*;
use callvault_sip::ConnectionId;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn options(call_id: &str, transport: &str) -> String {
    format!(
        "OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{call_id}\r\n\
         From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:srs@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody"
    )
}

fn config() -> TransportConfig {
    TransportConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        // Bounds a broken test: a stuck read ends when the connection idles out.
        tcp_idle_timeout: Duration::from_secs(30),
        ..TransportConfig::default()
    }
}

async fn bound_with(config: TransportConfig) -> (Transports, mpsc::Receiver<TransportEvent>) {
    Transports::bind(config).await.unwrap()
}

async fn bound() -> (Transports, mpsc::Receiver<TransportEvent>) {
    bound_with(config()).await
}

/// The next event, which must come within a generous bound (a liveness check, not a timing).
async fn next_event(rx: &mut mpsc::Receiver<TransportEvent>) -> TransportEvent {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("an event within 20 s")
        .expect("the transports are running")
}

async fn next_message(rx: &mut mpsc::Receiver<TransportEvent>) -> Incoming {
    match next_event(rx).await {
        TransportEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn transmit(to: Peer, bytes: &[u8]) -> Transmit {
    Transmit {
        to,
        bytes: bytes.to_vec(),
    }
}

/// A UDP round trip through the transports: the client's datagram arrives as an event, our
/// answer reaches the client.
async fn udp_round_trip(
    transports: &Transports,
    rx: &mut mpsc::Receiver<TransportEvent>,
    client: &UdpSocket,
    n: usize,
) {
    let message = options(&format!("udp-{n}"), "UDP");
    client
        .send_to(message.as_bytes(), transports.local_addr())
        .await
        .unwrap();
    let incoming = loop {
        match next_event(rx).await {
            TransportEvent::Message(m) if m.from.transport == TransportKind::Udp => break m,
            // Stream events of the test's other peer may come in between.
            _ => continue,
        }
    };
    assert_eq!(&incoming.bytes[..], message.as_bytes());
    transports.send(transmit(incoming.from, format!("pong {n}").as_bytes()));
    let mut buf = [0u8; 64];
    let (len, _) = tokio::time::timeout(Duration::from_secs(20), client.recv_from(&mut buf))
        .await
        .expect("the answer within 20 s")
        .unwrap();
    assert_eq!(&buf[..len], format!("pong {n}").as_bytes());
}

#[tokio::test]
async fn udp_datagram_in_and_transmit_out() {
    let (transports, mut rx) = bound().await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let message = options("udp-1", "UDP");
    client
        .send_to(message.as_bytes(), transports.local_addr())
        .await
        .unwrap();
    let incoming = next_message(&mut rx).await;
    assert_eq!(incoming.from, Peer::udp(client.local_addr().unwrap()));
    assert_eq!(&incoming.bytes[..], message.as_bytes());
    transports.send(transmit(incoming.from, b"pong"));
    let mut buf = [0u8; 16];
    let (n, from) = client.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"pong");
    assert_eq!(from, transports.local_addr());
    assert_eq!(transports.stats().messages_sent(), 1);
}

#[tokio::test]
async fn tcp_stream_is_framed_and_answered_on_its_connection() {
    let (transports, mut rx) = bound().await;
    let mut client = TcpStream::connect(transports.local_addr()).await.unwrap();
    let (a, b, c) = (
        options("tcp-1", "TCP"),
        options("tcp-2", "TCP"),
        options("tcp-3", "TCP"),
    );
    // Two messages in one write.
    client
        .write_all(format!("{a}{b}").as_bytes())
        .await
        .unwrap();
    let first = next_message(&mut rx).await;
    let second = next_message(&mut rx).await;
    assert_eq!(&first.bytes[..], a.as_bytes());
    assert_eq!(&second.bytes[..], b.as_bytes());
    assert_eq!(first.from.transport, TransportKind::Tcp);
    assert!(first.from.connection.is_some());
    assert_eq!(first.from, second.from);
    // One message over several writes, with a keep-alive ping first.
    client.write_all(b"\r\n\r\n").await.unwrap();
    for chunk in c.as_bytes().chunks(7) {
        client.write_all(chunk).await.unwrap();
        client.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    let third = next_message(&mut rx).await;
    assert_eq!(&third.bytes[..], c.as_bytes());
    // The pong, then our transmit, come back on the same connection.
    transports.send(transmit(first.from, b"SIP/2.0 200 OK\r\n"));
    let expected = b"\r\nSIP/2.0 200 OK\r\n";
    let mut got = vec![0u8; expected.len()];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got[..], expected);
    assert_eq!(transports.stats().open_tcp_connections(), 1);
}

#[tokio::test]
async fn a_framing_error_closes_the_connection() {
    let (transports, _rx) = bound().await;
    let mut client = TcpStream::connect(transports.local_addr()).await.unwrap();
    client
        .write_all(b"BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(client.read(&mut buf).await.unwrap(), 0);
}

/// (a) A client that writes a request and never reads: every `send` to it returns while its
/// queue fills, then the connection is closed as too slow; UDP flows both ways throughout.
#[tokio::test]
async fn a_peer_that_never_reads_is_closed_and_udp_keeps_flowing() {
    let (transports, mut rx) = bound_with(TransportConfig {
        stream_queue_bytes: 256 * 1024,
        ..config()
    })
    .await;
    let udp_client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The reader of our bytes: a small receive window, and it never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut silent = socket.connect(transports.local_addr()).await.unwrap();
    silent
        .write_all(options("never-reads", "TCP").as_bytes())
        .await
        .unwrap();
    let request = next_message(&mut rx).await;
    let connection = request.from;
    let response = vec![b'x'; 16 * 1024];
    let mut sends = 0;
    let mut round_trips = 0;
    while transports.stats().slow_peers_closed() == 0 {
        // 64 MiB would be far past every kernel buffer and the queue: the close must come first.
        assert!(sends < 4096, "the connection was never closed");
        transports.send(transmit(connection, &response));
        sends += 1;
        if sends % 8 == 0 {
            // Let the writer run (and block on the full socket) while UDP goes both ways.
            udp_round_trip(&transports, &mut rx, &udp_client, round_trips).await;
            round_trips += 1;
        }
    }
    assert!(sends * response.len() > 256 * 1024, "only {sends} sends");
    assert!(round_trips > 0);
    // The SIP loop hears which connection failed, and why.
    let failed = loop {
        match next_event(&mut rx).await {
            TransportEvent::Failed { to, cause } => break (to, cause),
            TransportEvent::Message(_) => continue,
        }
    };
    assert_eq!(failed, (connection, DeliveryFailure::SlowPeer));
    assert_eq!(transports.stats().open_tcp_connections(), 0);
    // The peer sees its connection reset once it reads.
    let mut sink = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), silent.read(&mut sink))
            .await
            .expect("the connection ends within 20 s")
        {
            Ok(0) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    // And UDP still works afterwards.
    udp_round_trip(&transports, &mut rx, &udp_client, round_trips).await;
}

/// A listener whose accept queue is full, so the kernel drops further SYNs (Linux: backlog 0
/// holds one connection, which is made and never accepted).
async fn syn_dropping_listener() -> (socket2::Socket, TcpStream, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let filler = TcpStream::connect(addr).await.unwrap();
    let probe = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await;
    assert!(
        probe.is_err(),
        "the kernel completed a connect to a full accept queue; this test needs SYNs dropped"
    );
    (listener, filler, addr)
}

/// (b) A destination that drops SYNs: sends to it return at once, others are delivered while
/// its connect waits, and after the connect timeout one `Failed` reports it.
#[tokio::test]
async fn a_destination_that_drops_syns_delays_nobody_and_fails_after_the_timeout() {
    let (_listener, _filler, black_hole) = syn_dropping_listener().await;
    let (transports, mut rx) = bound_with(TransportConfig {
        connect_timeout: Duration::from_secs(2),
        ..config()
    })
    .await;
    let healthy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let udp_client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Two sends (a BYE and its retransmission, say) share the one connect.
    transports.send(transmit(Peer::tcp(black_hole, None), b"BYE 1"));
    transports.send(transmit(Peer::tcp(black_hole, None), b"BYE 2"));
    // Meanwhile a TCP destination that answers, and UDP both ways.
    transports.send(transmit(
        Peer::tcp(healthy.local_addr().unwrap(), None),
        b"hello",
    ));
    let (mut accepted, _) = healthy.accept().await.unwrap();
    let mut got = [0u8; 5];
    accepted.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello");
    udp_round_trip(&transports, &mut rx, &udp_client, 0).await;
    assert!(
        rx.try_recv().is_err(),
        "nothing failed yet: the connect is still waiting"
    );
    match next_event(&mut rx).await {
        TransportEvent::Failed { to, cause } => {
            assert_eq!(to, Peer::tcp(black_hole, None));
            assert_eq!(cause, DeliveryFailure::ConnectTimeout);
        }
        other => panic!("expected the failed connect, got {other:?}"),
    }
    assert_eq!(transports.stats().connect_failures(), 1);
    assert!(rx.try_recv().is_err(), "one connect, one failure");
}

/// (c) Several sends to one destination while connecting: one connection, in order; later
/// sends reuse it.
#[tokio::test]
async fn sends_during_a_connect_share_it_and_arrive_in_order() {
    let (transports, _rx) = bound().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to = Peer::tcp(listener.local_addr().unwrap(), None);
    // No await in between: the connect cannot have completed.
    for n in 0..3 {
        transports.send(transmit(to, format!("message {n};").as_bytes()));
    }
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut got = vec![0u8; "message 0;".len() * 3];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, b"message 0;message 1;message 2;");
    assert_eq!(transports.stats().open_tcp_connections(), 1);
    // Once connected, a send to the address goes on that connection.
    transports.send(transmit(to, b"later"));
    let mut later = [0u8; 5];
    stream.read_exact(&mut later).await.unwrap();
    assert_eq!(&later, b"later");
    assert_eq!(transports.stats().open_tcp_connections(), 1);
    assert_eq!(transports.stats().messages_sent(), 4);
}

/// (d) A send naming a connection that is gone uses another open connection to the same
/// address instead of connecting.
#[tokio::test]
async fn a_stale_connection_id_falls_back_to_an_open_connection_to_that_address() {
    let (transports, mut rx) = bound().await;
    let mut client = TcpStream::connect(transports.local_addr()).await.unwrap();
    client
        .write_all(options("reuse", "TCP").as_bytes())
        .await
        .unwrap();
    let request = next_message(&mut rx).await;
    let addr = request.from.addr;
    assert_eq!(addr, client.local_addr().unwrap());
    transports.send(transmit(
        Peer::tcp(addr, Some(ConnectionId(999_999))),
        b"one;",
    ));
    transports.send(transmit(Peer::tcp(addr, None), b"two;"));
    let mut got = [0u8; 8];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"one;two;");
    // No connect was tried (the client listens nowhere: it would have failed).
    assert_eq!(transports.stats().connect_failures(), 0);
    assert_eq!(transports.stats().open_tcp_connections(), 1);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn a_refused_connect_is_reported_with_its_destination() {
    let (transports, mut rx) = bound().await;
    // A port nobody listens on: bind one, learn it, close it.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    transports.send(transmit(Peer::tcp(closed, Some(ConnectionId(5))), b"BYE"));
    match next_event(&mut rx).await {
        TransportEvent::Failed { to, cause } => {
            assert_eq!(to, Peer::tcp(closed, None));
            assert_eq!(
                cause,
                DeliveryFailure::ConnectFailed(std::io::ErrorKind::ConnectionRefused)
            );
        }
        other => panic!("expected the refused connect, got {other:?}"),
    }
}

/// A connection that floods requests has at most a few waiting for the SIP loop at once, so a
/// datagram that arrives after them is not queued behind the whole flood.
#[tokio::test]
async fn a_flooding_connection_waits_for_its_own_messages_not_everyone_else() {
    let (transports, mut rx) = bound().await;
    let mut flooder = TcpStream::connect(transports.local_addr()).await.unwrap();
    let flood: String = (0..200)
        .map(|n| options(&format!("flood-{n}"), "TCP"))
        .collect();
    flooder.write_all(flood.as_bytes()).await.unwrap();
    // The SIP loop is busy with (holds) the flooder's messages it has taken so far.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(next_message(&mut rx).await);
    }
    assert!(held.iter().all(|m| m.from.transport == TransportKind::Tcp));
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(
            options("udp-late", "UDP").as_bytes(),
            transports.local_addr(),
        )
        .await
        .unwrap();
    let next = next_message(&mut rx).await;
    assert_eq!(
        next.from.transport,
        TransportKind::Udp,
        "the datagram is next"
    );
    // Handling them lets the flooder's next ones in.
    drop(held);
    let more = next_message(&mut rx).await;
    assert_eq!(more.from.transport, TransportKind::Tcp);
    assert!(String::from_utf8_lossy(&more.bytes).contains("Call-ID: flood-64\r\n"));
}

/// Reads until the server closes the connection (EOF or reset); false if it stays open.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A connection the transports accepted and read from: its message reached the SIP loop.
async fn connect_and_speak(
    transports: &Transports,
    rx: &mut mpsc::Receiver<TransportEvent>,
    from: [u8; 4],
    n: usize,
) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = socket.connect(transports.local_addr()).await.unwrap();
    stream
        .write_all(options(&format!("tcp-{n}"), "TCP").as_bytes())
        .await
        .unwrap();
    let incoming = next_message(rx).await;
    assert_eq!(incoming.from.addr.ip(), std::net::IpAddr::from(from));
    stream
}

#[tokio::test]
async fn one_source_holds_at_most_its_share_of_connections_and_gets_it_back_on_close() {
    let (transports, mut rx) = bound_with(TransportConfig {
        max_tcp_connections_per_source: 2,
        ..config()
    })
    .await;
    let first = connect_and_speak(&transports, &mut rx, [127, 0, 0, 1], 1).await;
    let _second = connect_and_speak(&transports, &mut rx, [127, 0, 0, 1], 2).await;
    // Reset at accept: the connect itself may see it, or the first read.
    if let Ok(mut third) = TcpStream::connect(transports.local_addr()).await {
        assert!(
            closed_by_server(&mut third).await,
            "a third from that source is closed"
        );
    }
    assert_eq!(transports.stats().tcp_refused_limit(), 1);
    // Another source is not affected.
    let _other = connect_and_speak(&transports, &mut rx, [127, 0, 0, 2], 3).await;
    // The source's count drops when one of its connections ends.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        if let Ok(mut again) = socket.connect(transports.local_addr()).await {
            let _ = again
                .write_all(options("tcp-again", "TCP").as_bytes())
                .await;
        }
        // Admitted once the server has seen the first one close (its reader ends on EOF).
        if let Ok(Some(TransportEvent::Message(m))) =
            tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
        {
            assert_eq!(&m.bytes[..], options("tcp-again", "TCP").as_bytes());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the freed share is never given back"
        );
    }
}

#[tokio::test]
async fn a_source_not_allowed_is_closed_at_accept_and_never_read() {
    let (transports, mut rx) = bound_with(TransportConfig {
        accept_from: Some(SourceFilter::new(|ip| {
            ip == std::net::IpAddr::from([127, 0, 0, 1])
        })),
        ..config()
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 9], 0).into()).unwrap();
    if let Ok(mut stranger) = socket.connect(transports.local_addr()).await {
        let _ = stranger
            .write_all(options("stranger", "TCP").as_bytes())
            .await;
        assert!(closed_by_server(&mut stranger).await);
    }
    assert_eq!(transports.stats().tcp_refused_source(), 1);
    // The allowed source is read as usual, and the stranger's message never arrived before it.
    connect_and_speak(&transports, &mut rx, [127, 0, 0, 1], 1).await;
}
