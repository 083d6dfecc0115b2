//! SIP over TLS through the real binary: SIPREC calls over TLS and mutual TLS are recorded, the
//! server's own BYE comes back on the client's TLS connection, a client without the required
//! certificate is refused, SIGHUP reloads the certificate, and `serve` refuses to start on bad
//! certificate files. Certificates are made at test time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callvault_sip_transport::testing::{TestCa, TestCertificate};

use crate::support::audio::dominant_frequency;
use crate::support::client::{Call, CallSpec, SipClient, TlsClient};
use crate::support::{BIN, Server, leg, metric};

/// The files an operator would have: the server's certificate and key, and the CA that signs
/// the SBCs' certificates (here the same CA signs both).
struct Files {
    dir: tempfile::TempDir,
    ca: TestCa,
}

impl Files {
    fn new() -> Files {
        let files = Files {
            dir: tempfile::tempdir().unwrap(),
            ca: TestCa::new("callvault e2e CA"),
        };
        std::fs::write(files.path("ca.pem"), files.ca.certificate_pem()).unwrap();
        files
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A server certificate for 127.0.0.1, written as cert.pem and key.pem.
    fn server_certificate(&self) -> TestCertificate {
        let certificate = self.ca.issue("callvault.test", &["127.0.0.1"]);
        self.install(&certificate.certificate_pem, &certificate.key_pem);
        certificate
    }

    fn install(&self, certificate_pem: &str, key_pem: &str) {
        std::fs::write(self.path("cert.pem"), certificate_pem).unwrap();
        std::fs::write(self.path("key.pem"), key_pem).unwrap();
    }

    /// `[sip] tls_listen` on a free port, and `[tls]` naming these files.
    fn toml(&self, mutual: bool) -> String {
        let mut toml = format!(
            "[sip]\ntls_listen = \"127.0.0.1:0\"\n[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            toml_path(&self.path("cert.pem")),
            toml_path(&self.path("key.pem")),
        );
        if mutual {
            toml.push_str(&format!(
                "client_ca_file = {:?}\nrequire_client_cert = true\n",
                toml_path(&self.path("ca.pem"))
            ));
        }
        toml
    }

    /// An SBC that trusts our CA, without a certificate of its own.
    fn anonymous_client(&self) -> TlsClient {
        TlsClient::new(&self.ca.certificate_pem(), None)
    }

    /// An SBC with a certificate signed by `ca`.
    fn client_signed_by(&self, ca: &TestCa) -> TlsClient {
        let sbc = ca.issue("sbc.example.com", &["sbc.example.com"]);
        TlsClient::new(
            &self.ca.certificate_pem(),
            Some((&sbc.certificate_pem, &sbc.key_pem)),
        )
    }
}

fn toml_path(path: &Path) -> String {
    path.to_str().expect("temporary paths are UTF-8").to_owned()
}

fn assert_tones(server: &Server, recording: &serde_json::Value, seconds: u64) {
    for (label, hz) in [("1", 440.0), ("2", 1000.0)] {
        let wav = server.wav(leg(recording, label));
        let f = dominant_frequency(wav.window(300, seconds * 1000 - 300), wav.rate);
        assert!((f - hz).abs() <= 10.0, "leg {label}: {f} Hz, sent {hz} Hz");
    }
}

#[tokio::test]
async fn a_siprec_call_over_tls_is_recorded() {
    let files = Files::new();
    let certificate = files.server_certificate();
    let server = Server::start_with(&files.toml(false));
    let tls = server.sip_tls.expect("the server listens on TLS");
    assert_ne!(tls.port(), server.sip.port());

    let client = SipClient::connect_tls(tls, &files.anonymous_client())
        .await
        .expect("the handshake completes against the configured certificate");
    assert_eq!(client.server_certificate(), Some(certificate.der.clone()));
    let mut call = Call::over(client, CallSpec::two_parties(440.0, 1000.0)).await;
    let answer = call.invite().await;
    assert_eq!(answer.status, 200, "INVITE answered {}", answer.reason);
    let contact = answer.header("Contact").unwrap();
    assert!(
        contact.starts_with(&format!("<sip:callvault@{tls};transport=tls>")),
        "our Contact names our TLS address: {contact}"
    );
    call.ack().await;
    call.play(Duration::from_secs(2), &[]).await;
    assert_eq!(call.bye().await.status, 200);

    let recording = server.completed(&call.call_id);
    assert_eq!(recording["state"], "complete");
    assert_eq!(recording["transport"], "tls", "{recording:#}");
    assert_tones(&server, &recording, 2);
}

#[tokio::test]
async fn a_siprec_call_over_mutual_tls_is_recorded_and_clients_without_a_good_certificate_are_refused()
 {
    let files = Files::new();
    files.server_certificate();
    let server = Server::start_with(&files.toml(true));
    let tls = server.sip_tls.unwrap();

    // No certificate, or one another CA signed: refused in the handshake (with TLS 1.3 the
    // client learns it on its first read), their INVITEs never reach SIP.
    let stranger = TestCa::new("not the SBC CA");
    for (who, client) in [
        ("no certificate", files.anonymous_client()),
        ("another CA", files.client_signed_by(&stranger)),
    ] {
        match SipClient::connect_tls(tls, &client).await {
            Err(_) => {}
            Ok(refused) => {
                let mut call = Call::over(refused, CallSpec::two_parties(440.0, 1000.0)).await;
                assert!(call.invite_refused().await, "{who}: not refused");
            }
        }
    }
    // Counted where an operator looks (the count may land just after the client saw the
    // connection close).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = server.http_get("/metrics");
        let failures = metric(&page, "callvault_sip_tls_handshake_failures_total");
        if failures == 2 {
            break;
        }
        assert!(
            failures < 2 && Instant::now() < deadline,
            "{failures} TLS handshake failures counted, 2 refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }

    let client = SipClient::connect_tls(tls, &files.client_signed_by(&files.ca))
        .await
        .unwrap();
    let mut call = Call::over(client, CallSpec::two_parties(440.0, 1000.0)).await;
    let answer = call.invite().await;
    assert_eq!(answer.status, 200, "INVITE answered {}", answer.reason);
    call.ack().await;
    call.play(Duration::from_secs(2), &[]).await;
    assert_eq!(call.bye().await.status, 200);

    let recording = server.completed(&call.call_id);
    assert_eq!(recording["state"], "complete");
    assert_eq!(recording["transport"], "tls");
    assert_tones(&server, &recording, 2);
    assert_eq!(
        server.list().len(),
        1,
        "the refused clients recorded nothing"
    );
}

#[tokio::test]
async fn when_the_server_ends_a_sips_call_its_bye_arrives_on_the_clients_tls_connection() {
    let files = Files::new();
    files.server_certificate();
    let server = Server::start_with(&format!(
        "{}[media]\nrtp_timeout_ms = 1000\n",
        files.toml(true)
    ));
    let tls = server.sip_tls.unwrap();
    let client = SipClient::connect_tls(tls, &files.client_signed_by(&files.ca))
        .await
        .unwrap();
    let mut call = Call::over(client, CallSpec::two_parties(440.0, 1000.0)).await;
    call.use_sips();
    let answer = call.invite().await;
    assert_eq!(answer.status, 200, "INVITE answered {}", answer.reason);
    let contact = answer.header("Contact").unwrap();
    assert!(
        contact.starts_with(&format!("<sips:callvault@{tls}>")),
        "a SIPS dialog gets a sips: Contact: {contact}"
    );
    call.ack().await;
    call.play(Duration::from_millis(500), &[]).await;

    // The client stops sending; the server hangs up on the connection the call came in on
    // (nothing listens at the client's Contact address).
    let bye = call
        .client
        .next_request(Duration::from_secs(10))
        .await
        .expect("a BYE on the TLS connection");
    assert_eq!(bye.method, "BYE");
    assert_eq!(bye.header("Call-ID"), Some(call.call_id.as_str()));
    assert!(
        bye.header("Via").unwrap().starts_with("SIP/2.0/TLS "),
        "{:?}",
        bye.header("Via")
    );
    assert!(bye.uri.starts_with("sips:sbc@127.0.0.1:"), "{}", bye.uri);
    call.client.send(&bye.response(200, "OK")).await;

    let recording = server.completed(&call.call_id);
    assert_eq!(recording["state"], "complete");
    assert_eq!(recording["end_reason"], "rtp-timeout");
    assert_eq!(recording["transport"], "tls");
}

#[tokio::test]
async fn sighup_reloads_the_certificate_for_new_connections_and_keeps_it_when_the_new_one_is_bad() {
    let files = Files::new();
    let first = files.server_certificate();
    let mut server = Server::start_with(&files.toml(false));
    let tls = server.sip_tls.unwrap();
    let mut before = SipClient::connect_tls(tls, &files.anonymous_client())
        .await
        .unwrap();
    assert_eq!(before.server_certificate(), Some(first.der.clone()));

    // A renewed certificate: new connections get it, the open one goes on.
    let second = files.server_certificate();
    server.hangup();
    server.wait_for_log("TLS certificate reloaded", Duration::from_secs(10));
    let after = SipClient::connect_tls(tls, &files.anonymous_client())
        .await
        .unwrap();
    assert_eq!(after.server_certificate(), Some(second.der.clone()));
    assert_eq!(before.options().await.status, 200);

    // A key that does not belong to the certificate: refused, the current one stays.
    let third = files.ca.issue("callvault.test", &["127.0.0.1"]);
    files.install(&third.certificate_pem, &second.key_pem);
    server.hangup();
    let refusal = server.wait_for_log("new TLS certificate refused", Duration::from_secs(10));
    assert!(refusal.contains("does not match"), "{refusal}");
    let still = SipClient::connect_tls(tls, &files.anonymous_client())
        .await
        .unwrap();
    assert_eq!(still.server_certificate(), Some(second.der));
}

/// Runs `serve` with `toml` and returns its stderr; it must exit with a failure, promptly.
fn serve_fails(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callvault.toml");
    std::fs::write(&config, toml).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--sip-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .args(["--rtp-ip", "127.0.0.1", "--rtp-ports", "39100-39199"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with a bad TLS configuration");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn serve_refuses_to_start_on_a_bad_certificate_key_or_ca_file() {
    let files = Files::new();
    let certificate = files.server_certificate();

    let missing = serve_fails(&files.toml(false).replace("cert.pem", "missing.pem"));
    assert!(
        missing.contains("reading [tls] cert_file") && missing.contains("missing.pem"),
        "{missing}"
    );
    let missing_key = serve_fails(&files.toml(false).replace("key.pem", "missing-key.pem"));
    assert!(
        missing_key.contains("reading [tls] key_file") && missing_key.contains("missing-key.pem"),
        "{missing_key}"
    );

    let other = files.ca.issue("other", &["127.0.0.1"]);
    files.install(&certificate.certificate_pem, &other.key_pem);
    let mismatch = serve_fails(&files.toml(false));
    assert!(
        mismatch.contains("private key does not match the certificate"),
        "{mismatch}"
    );

    files.install(&certificate.certificate_pem, &certificate.key_pem);
    std::fs::write(files.path("ca.pem"), "not a certificate").unwrap();
    let bad_ca = serve_fails(&files.toml(true));
    assert!(
        bad_ca.contains("CA") && bad_ca.contains("ca.pem"),
        "{bad_ca}"
    );
}
