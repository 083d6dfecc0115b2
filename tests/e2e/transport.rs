//! A peer that cannot keep up costs only its own calls: a TCP client that floods OPTIONS and
//! never reads what it is sent does not hold up UDP signalling or a recording.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::audio::dominant_frequency;
use crate::support::client::{Call, CallSpec, SipClient, Transport};
use crate::support::{Server, leg};

fn options(server: SocketAddr, local: SocketAddr, transport: &str) -> String {
    format!(
        "OPTIONS sip:srs@{server} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK{b};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:sbc@example.com>;tag=f1\r\nTo: <sip:srs@example.com>\r\n\
         Call-ID: {b}@example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        b = uuid::Uuid::new_v4().simple(),
    )
}

/// Writes OPTIONS over TCP as fast as the server takes them and never reads; when the server
/// gives up on a connection, opens another. Runs on its own thread until `stop`.
fn flood(server: SocketAddr, stop: Arc<AtomicBool>, written: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a TCP socket");
        // A tiny window: what the server sends piles up on its side.
        socket.set_recv_buffer_size(4096).unwrap();
        if socket.connect(&server.into()).is_err() {
            continue;
        }
        let mut stream: TcpStream = socket.into();
        // Blocked writes wake up now and then to look at `stop`.
        stream
            .set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let local = stream.local_addr().unwrap();
        while !stop.load(Ordering::Relaxed) {
            match stream.write_all(options(server, local, "TCP").as_bytes()) {
                Ok(()) => {
                    written.fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // Reset by the server: connect again.
                Err(_) => break,
            }
        }
    }
}

#[tokio::test]
async fn a_tcp_peer_that_never_reads_stalls_neither_udp_options_nor_a_recording() {
    let mut server = Server::start();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
        let sip = server.sip;
        std::thread::spawn(move || flood(sip, stop, written))
    };

    // UDP OPTIONS, one every 20 ms, each answered within a generous 2 s (liveness, not speed).
    let sip = server.sip;
    let options_loop = async move {
        let mut client = SipClient::connect(Transport::Udp, sip).await;
        let local = client.local;
        let mut latencies = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(8) {
            let sent = Instant::now();
            client.send(options(sip, local, "UDP").as_bytes()).await;
            let answer = client
                .final_response("OPTIONS", Duration::from_secs(2))
                .await;
            assert_eq!(answer.status, 200);
            latencies.push(sent.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies
    };
    // A SIPREC call over UDP meanwhile.
    let call_flow = async move {
        let mut call = Call::new(Transport::Udp, sip, CallSpec::two_parties(440.0, 1000.0)).await;
        let answer = call.invite().await;
        assert_eq!(answer.status, 200, "INVITE answered {}", answer.reason);
        call.ack().await;
        call.play(Duration::from_secs(3), &[]).await;
        assert_eq!(call.bye().await.status, 200);
        call
    };
    let (mut latencies, call) = tokio::join!(options_loop, call_flow);
    // The flood was real: the server gave up on at least one of its connections.
    server.wait_for_log("peer is not reading", Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();

    let rec = server.completed(&call.call_id);
    assert_eq!(rec["state"], "complete");
    for (label, hz) in [("1", 440.0), ("2", 1000.0)] {
        let wav = server.wav(leg(&rec, label));
        let f = dominant_frequency(wav.window(300, 2700), wav.rate);
        assert!((f - hz).abs() <= 10.0, "leg {label}: {f} Hz, sent {hz} Hz");
    }

    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "UDP OPTIONS during a TCP flood ({} flood OPTIONS written): {} answered, median {:?}, max {:?}",
        written.load(Ordering::Relaxed),
        latencies.len(),
        median,
        max
    );
}
