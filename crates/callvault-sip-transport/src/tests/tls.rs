//! TLS on real loopback sockets, with certificates made at test time: requests in and answers
//! out on the same connection, client certificates required or not, handshakes that stall,
//! certificate reload, and our own connections out.

use super::{config, next_event, next_message, options, transmit};
use crate::testing::{TestCa, TestCertificate};
use crate::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn settings(ours: &TestCertificate, ca: Option<&TestCa>, require: bool) -> TlsSettings {
    TlsSettings {
        certificate_chain: ours.certificate_pem.clone().into_bytes(),
        private_key: ours.key_pem.clone().into_bytes(),
        ca_certificates: ca.map(|ca| ca.certificate_pem().into_bytes()),
        system_roots: Vec::new(),
        require_client_certificate: require,
        verify_server_name: true,
    }
}

async fn bound_tls(
    settings: &TlsSettings,
    handshake_timeout: Duration,
) -> (Transports, mpsc::Receiver<TransportEvent>) {
    let context = TlsContext::new(settings).expect("the test certificates are valid");
    Transports::bind(TransportConfig {
        tls: Some(TlsListen {
            listen: "127.0.0.1:0".parse().unwrap(),
            context,
        }),
        tls_handshake_timeout: handshake_timeout,
        ..config()
    })
    .await
    .unwrap()
}

/// What an SBC trusts: the CA, and its own certificate when it has one.
fn client_config(ca: &TestCa, certificate: Option<&TestCertificate>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca.certificate_pem().as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match certificate {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(c.der.clone())],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    })
}

async fn tls_client(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let handshake = async {
        let tcp = TcpStream::connect(addr).await?;
        TlsConnector::from(config)
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
    };
    tokio::time::timeout(Duration::from_secs(20), handshake)
        .await
        .expect("the server completes or refuses a handshake within 20 s")
}

/// The certificate a client was shown.
fn presented(client: &TlsStream<TcpStream>) -> Vec<u8> {
    client.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// Sends a request on `client`, checks it reaches the loop over TLS, answers it on its
/// connection and checks the answer arrives.
async fn round_trip(
    transports: &Transports,
    rx: &mut mpsc::Receiver<TransportEvent>,
    client: &mut TlsStream<TcpStream>,
    n: usize,
) {
    let request = options(&format!("tls-{n}"), "TLS");
    client.write_all(request.as_bytes()).await.unwrap();
    let incoming = next_message(rx).await;
    assert_eq!(&incoming.bytes[..], request.as_bytes());
    assert_eq!(incoming.from.transport, TransportKind::Tls);
    assert!(incoming.from.connection.is_some());
    let answer = format!("SIP/2.0 200 OK {n}\r\n");
    transports.send(transmit(incoming.from, answer.as_bytes()));
    let mut got = vec![0u8; answer.len()];
    tokio::time::timeout(Duration::from_secs(20), client.read_exact(&mut got))
        .await
        .expect("the answer within 20 s")
        .unwrap();
    assert_eq!(got, answer.as_bytes());
}

/// Whether the server refused this client: its handshake, or (TLS 1.3, where the client
/// finishes first) its first read, fails or ends.
async fn refused(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> bool {
    let Ok(mut client) = tls_client(addr, config).await else {
        return true;
    };
    let _ = client.write_all(options("refused", "TLS").as_bytes()).await;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(20), client.read(&mut buf))
            .await
            .expect("the server decides within 20 s"),
        Ok(0) | Err(_)
    )
}

/// Waits (bounded) until `condition` holds: for counters updated by a task after the event
/// the test could observe.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_tls_request_reaches_the_loop_and_is_answered_on_its_connection() {
    let ca = TestCa::new("test CA");
    let server = ca.issue("callvault", &["127.0.0.1"]);
    let (transports, mut rx) = bound_tls(&settings(&server, None, false), config_timeout()).await;
    let addr = transports.tls_local_addr().expect("TLS is enabled");
    assert_ne!(addr.port(), transports.local_addr().port());
    let mut client = tls_client(addr, client_config(&ca, None)).await.unwrap();
    assert_eq!(presented(&client), server.der);
    assert_eq!(
        client.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    round_trip(&transports, &mut rx, &mut client, 1).await;
    round_trip(&transports, &mut rx, &mut client, 2).await;
    assert_eq!(transports.stats().open_tcp_connections(), 1);

    // TLS 1.2 is spoken too.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.certificate_pem().as_bytes()).unwrap())
        .unwrap();
    let tls12 = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut old = tls_client(addr, Arc::new(tls12)).await.unwrap();
    assert_eq!(
        old.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    round_trip(&transports, &mut rx, &mut old, 3).await;
}

fn config_timeout() -> Duration {
    TransportConfig::default().tls_handshake_timeout
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_from_the_ca() {
    let ca = TestCa::new("SBC CA");
    let server = ca.issue("callvault", &["127.0.0.1"]);
    let (transports, mut rx) =
        bound_tls(&settings(&server, Some(&ca), true), config_timeout()).await;
    let addr = transports.tls_local_addr().unwrap();

    assert!(
        refused(addr, client_config(&ca, None)).await,
        "a client without a certificate"
    );
    let stranger = TestCa::new("another CA").issue("sbc", &["127.0.0.1"]);
    assert!(
        refused(addr, client_config(&ca, Some(&stranger))).await,
        "a client whose certificate another CA signed"
    );
    eventually("both handshakes counted as failed", || {
        transports.stats().tls_handshake_failures() == 2
    })
    .await;

    let sbc = ca.issue("sbc.example.com", &["sbc.example.com"]);
    let mut client = tls_client(addr, client_config(&ca, Some(&sbc)))
        .await
        .unwrap();
    round_trip(&transports, &mut rx, &mut client, 1).await;
    assert_eq!(transports.stats().open_tcp_connections(), 1);
}

#[tokio::test]
async fn with_a_ca_but_no_requirement_a_client_certificate_is_optional_but_checked() {
    let ca = TestCa::new("SBC CA");
    let server = ca.issue("callvault", &["127.0.0.1"]);
    let (transports, mut rx) =
        bound_tls(&settings(&server, Some(&ca), false), config_timeout()).await;
    let addr = transports.tls_local_addr().unwrap();
    let mut anonymous = tls_client(addr, client_config(&ca, None)).await.unwrap();
    round_trip(&transports, &mut rx, &mut anonymous, 1).await;
    let stranger = TestCa::new("another CA").issue("sbc", &["127.0.0.1"]);
    assert!(refused(addr, client_config(&ca, Some(&stranger))).await);
}

/// A client that connects and sends half a ClientHello, then nothing: the handshakes of others
/// complete meanwhile (the accept loop does not wait for it).
#[tokio::test]
async fn a_stalled_handshake_delays_no_other_connection() {
    let ca = TestCa::new("test CA");
    let server = ca.issue("callvault", &["127.0.0.1"]);
    let (transports, mut rx) =
        bound_tls(&settings(&server, None, false), Duration::from_secs(600)).await;
    let addr = transports.tls_local_addr().unwrap();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    // A TLS record header announcing a 512-byte handshake message, and 5 bytes of it.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03])
        .await
        .unwrap();
    let mut others = Vec::new();
    for n in 0..3 {
        let mut client = tls_client(addr, client_config(&ca, None)).await.unwrap();
        round_trip(&transports, &mut rx, &mut client, n).await;
        others.push(client);
    }
    let mut buf = [0u8; 16];
    assert!(
        matches!(stalled.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the stalled connection is still waiting, not closed"
    );
    assert_eq!(transports.stats().tls_handshake_failures(), 0);
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_after_its_timeout() {
    let ca = TestCa::new("test CA");
    let server = ca.issue("callvault", &["127.0.0.1"]);
    let (transports, mut rx) =
        bound_tls(&settings(&server, None, false), Duration::from_millis(300)).await;
    let addr = transports.tls_local_addr().unwrap();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let end = tokio::time::timeout(Duration::from_secs(20), stalled.read(&mut buf))
        .await
        .expect("the server closes a silent connection");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    eventually("the timeout counted", || {
        transports.stats().tls_handshake_failures() == 1
    })
    .await;
    // The listener goes on.
    let mut client = tls_client(addr, client_config(&ca, None)).await.unwrap();
    round_trip(&transports, &mut rx, &mut client, 1).await;
}

#[tokio::test]
async fn a_reload_changes_the_certificate_of_new_connections_only() {
    let ca = TestCa::new("test CA");
    let first = ca.issue("callvault-2025", &["127.0.0.1"]);
    let second = ca.issue("callvault-2026", &["127.0.0.1"]);
    let (transports, mut rx) = bound_tls(&settings(&first, None, false), config_timeout()).await;
    let addr = transports.tls_local_addr().unwrap();
    let mut before = tls_client(addr, client_config(&ca, None)).await.unwrap();
    assert_eq!(presented(&before), first.der);

    transports
        .reload_tls(TlsContext::new(&settings(&second, None, false)).unwrap())
        .unwrap();
    let mut after = tls_client(addr, client_config(&ca, None)).await.unwrap();
    assert_eq!(presented(&after), second.der);
    // The connection made before the reload still carries requests both ways.
    round_trip(&transports, &mut rx, &mut before, 1).await;
    round_trip(&transports, &mut rx, &mut after, 2).await;
    assert_eq!(transports.stats().open_tcp_connections(), 2);
}

#[tokio::test]
async fn bad_settings_are_refused_with_their_reason() {
    let ca = TestCa::new("test CA");
    let one = ca.issue("one", &["127.0.0.1"]);
    let other = ca.issue("other", &["127.0.0.1"]);
    let good = settings(&one, Some(&ca), true);
    assert!(TlsContext::new(&good).is_ok());
    type Expected = fn(&Error) -> bool;
    let cases: Vec<(TlsSettings, Expected)> = vec![
        (
            TlsSettings {
                private_key: other.key_pem.clone().into_bytes(),
                ..good.clone()
            },
            |e| matches!(e, Error::TlsKeyMismatch),
        ),
        (
            TlsSettings {
                certificate_chain: b"not a certificate".to_vec(),
                ..good.clone()
            },
            |e| matches!(e, Error::TlsCertificate(_)),
        ),
        (
            TlsSettings {
                private_key: one.certificate_pem.clone().into_bytes(),
                ..good.clone()
            },
            |e| matches!(e, Error::TlsPrivateKey(_)),
        ),
        (
            TlsSettings {
                ca_certificates: Some(b"garbage".to_vec()),
                ..good.clone()
            },
            |e| matches!(e, Error::TlsCaCertificates(_)),
        ),
        (
            TlsSettings {
                ca_certificates: Some(
                    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
                ),
                ..good.clone()
            },
            |e| matches!(e, Error::TlsCaRejected(_)),
        ),
        (
            TlsSettings {
                ca_certificates: None,
                ..good.clone()
            },
            |e| matches!(e, Error::TlsClientCaMissing),
        ),
    ];
    for (n, (bad, expected)) in cases.iter().enumerate() {
        match TlsContext::new(bad) {
            Err(e) => assert!(expected(&e), "case {n}: {e}"),
            Ok(_) => panic!("case {n} accepted"),
        }
    }
    // Transports without TLS have nothing to reload.
    let (plain, _rx) = Transports::bind(config()).await.unwrap();
    assert!(matches!(
        plain.reload_tls(TlsContext::new(&good).unwrap()),
        Err(Error::TlsNotEnabled)
    ));
}

/// A TLS server standing in for an SBC: accepts one connection and returns what the client
/// presented and the first bytes it sent.
async fn sbc_server(
    ca: &TestCa,
    certificate: &TestCertificate,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<std::io::Result<(Vec<u8>, Vec<u8>)>>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.certificate_pem().as_bytes()).unwrap())
        .unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(certificate.der.clone())],
            PrivateKeyDer::from_pem_slice(certificate.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut stream = TlsAcceptor::from(Arc::new(config)).accept(tcp).await?;
        let client = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let mut got = vec![0u8; 3];
        stream.read_exact(&mut got).await?;
        Ok((client, got))
    });
    (addr, task)
}

#[tokio::test]
async fn we_connect_out_verifying_the_server_and_presenting_our_certificate() {
    let ca = TestCa::new("SBC CA");
    let ours = ca.issue("callvault", &["127.0.0.1"]);
    let (transports, mut rx) = bound_tls(&settings(&ours, Some(&ca), true), config_timeout()).await;
    let (sbc, accepted) = sbc_server(&ca, &ca.issue("sbc", &["127.0.0.1"])).await;
    transports.send(transmit(Peer::tls(sbc, None), b"BYE"));
    let (client_certificate, got) = accepted.await.unwrap().unwrap();
    assert_eq!(&got, b"BYE");
    assert_eq!(client_certificate, ours.der, "we presented our certificate");
    assert_eq!(transports.stats().open_tcp_connections(), 1);
    assert!(rx.try_recv().is_err(), "nothing failed");
}

#[tokio::test]
async fn a_server_whose_certificate_does_not_verify_is_sent_nothing() {
    let ca = TestCa::new("SBC CA");
    let ours = ca.issue("callvault", &["127.0.0.1"]);
    let (transports, mut rx) =
        bound_tls(&settings(&ours, Some(&ca), false), config_timeout()).await;
    for (name, certificate) in [
        (
            "an unknown CA",
            TestCa::new("rogue").issue("sbc", &["127.0.0.1"]),
        ),
        ("another address", ca.issue("sbc", &["127.0.0.2"])),
    ] {
        let (sbc, accepted) = sbc_server(&ca, &certificate).await;
        transports.send(transmit(Peer::tls(sbc, None), b"BYE"));
        match next_event(&mut rx).await {
            TransportEvent::Failed { to, cause } => {
                assert_eq!(to, Peer::tls(sbc, None), "{name}");
                assert_eq!(cause, DeliveryFailure::TlsHandshakeFailed, "{name}");
            }
            other => panic!("{name}: expected the failed handshake, got {other:?}"),
        }
        assert!(
            accepted.await.unwrap().is_err(),
            "{name}: the server got no request"
        );
    }
    assert_eq!(transports.stats().open_tcp_connections(), 0);

    // With name checks off, the chain is still checked but the address need not match.
    let (lenient, mut rx) = bound_tls(
        &TlsSettings {
            verify_server_name: false,
            ..settings(&ours, Some(&ca), false)
        },
        config_timeout(),
    )
    .await;
    let (sbc, accepted) = sbc_server(&ca, &ca.issue("sbc", &["sbc.example.com"])).await;
    lenient.send(transmit(Peer::tls(sbc, None), b"BYE"));
    assert_eq!(accepted.await.unwrap().unwrap().1, b"BYE");
    let (sbc, accepted) = sbc_server(&ca, &TestCa::new("rogue").issue("sbc", &["127.0.0.1"])).await;
    lenient.send(transmit(Peer::tls(sbc, None), b"BYE"));
    assert!(matches!(
        next_event(&mut rx).await,
        TransportEvent::Failed {
            cause: DeliveryFailure::TlsHandshakeFailed,
            ..
        }
    ));
    assert!(accepted.await.unwrap().is_err());
}
