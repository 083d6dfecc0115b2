//! A SIPREC recording client (SRC) written for these tests: it sends what an SBC sends
//! (multipart INVITE with SDP and RFC 7865 metadata, RTP, re-INVITEs, BYE, CANCEL) over UDP,
//! TCP or TLS, and reads responses with its own small parser so a bug in the server's parser
//! cannot hide itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;

use super::audio;
use super::codec::{Encoder, TestCodec};
use super::srtp::{self as sdes, Suite};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    /// Made with [`SipClient::connect_tls`] (it needs the client's TLS settings).
    Tls,
}

impl Transport {
    fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

/// What an SBC brings to a TLS connection: the CAs it trusts for the server's certificate and,
/// for mutual TLS, its own certificate.
#[derive(Clone)]
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
}

impl TlsClient {
    /// Trusts `ca_pem`; presents `certificate` (PEM certificate, PEM key) when given.
    pub fn new(ca_pem: &str, certificate: Option<(&str, &str)>) -> TlsClient {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(der.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match certificate {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .collect::<Result<_, _>>()
                        .unwrap(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        TlsClient {
            config: Arc::new(config),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SipResponse {
    pub status: u16,
    pub reason: String,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl SipResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn cseq_method(&self) -> String {
        self.header("CSeq")
            .and_then(|v| v.split_whitespace().nth(1))
            .unwrap_or("")
            .to_owned()
    }

    pub fn to_tag(&self) -> Option<String> {
        let to = self.header("To").or_else(|| self.header("t"))?;
        to.split(';')
            .find_map(|p| p.trim().strip_prefix("tag=").map(str::to_owned))
    }

    /// The audio m-lines of the SDP answer: (port, direction attribute, label).
    pub fn answered_media(&self) -> Vec<AnsweredMedia> {
        let mut out: Vec<AnsweredMedia> = Vec::new();
        for line in self.body.lines() {
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix("m=") {
                let mut parts = rest.split_whitespace();
                let kind = parts.next().unwrap_or("").to_owned();
                let port = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                let formats = parts.skip(1).map(str::to_owned).collect();
                out.push(AnsweredMedia {
                    kind,
                    port,
                    formats,
                    direction: None,
                    label: None,
                    rtpmap: Vec::new(),
                });
            } else if let Some(m) = out.last_mut() {
                match line {
                    "a=sendonly" | "a=recvonly" | "a=sendrecv" | "a=inactive" => {
                        m.direction = Some(line[2..].to_owned())
                    }
                    _ => {
                        if let Some(label) = line.strip_prefix("a=label:") {
                            m.label = Some(label.to_owned());
                        } else if let Some(map) = line.strip_prefix("a=rtpmap:")
                            && let Some((pt, encoding)) = map.split_once(' ')
                        {
                            m.rtpmap.push((pt.to_owned(), encoding.to_owned()));
                        }
                    }
                }
            }
        }
        out
    }

    pub fn connection_ip(&self) -> Option<String> {
        self.body
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("c=IN IP4 ").map(str::to_owned))
    }
}

/// A request the server sent us (BYE when it ends a recording itself).
#[derive(Debug, Clone)]
pub struct SipRequest {
    pub method: String,
    pub uri: String,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl SipRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Our answer to it: Via, From, To, Call-ID and CSeq copied (RFC 3261 §8.2.6).
    pub fn response(&self, status: u16, reason: &str) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {status} {reason}\r\n");
        for (n, v) in &self.headers {
            let lower = n.to_ascii_lowercase();
            if ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"]
                .contains(&lower.as_str())
            {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        out.into_bytes()
    }
}

#[derive(Debug, Clone)]
pub struct AnsweredMedia {
    pub kind: String,
    pub port: u16,
    pub formats: Vec<String>,
    pub direction: Option<String>,
    pub label: Option<String>,
    /// `a=rtpmap` encodings by payload type, e.g. ("0", "PCMU/8000").
    pub rtpmap: Vec<(String, String)>,
}

impl AnsweredMedia {
    /// The encoding name of the chosen (first) format.
    pub fn chosen_encoding(&self) -> Option<String> {
        let pt = self.formats.first()?;
        self.rtpmap
            .iter()
            .find(|(p, _)| p == pt)
            .map(|(_, e)| e.split('/').next().unwrap_or("").to_ascii_uppercase())
    }
}

/// One signalling connection (a UDP socket or a TCP stream) to the server.
pub struct SipClient {
    pub transport: Transport,
    pub server: SocketAddr,
    pub local: SocketAddr,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    tls: Option<Box<TlsStream<TcpStream>>>,
    buffer: Vec<u8>,
    requests: std::collections::VecDeque<SipRequest>,
    responses: std::collections::VecDeque<SipResponse>,
}

impl SipClient {
    pub async fn connect(transport: Transport, server: SocketAddr) -> SipClient {
        SipClient::connect_from(transport, server, [127, 0, 0, 1].into()).await
    }

    /// A client on another loopback address (127.0.0.2 …): another source, as another host.
    pub async fn connect_from(
        transport: Transport,
        server: SocketAddr,
        local: std::net::IpAddr,
    ) -> SipClient {
        match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind((local, 0)).await.unwrap();
                SipClient {
                    transport,
                    server,
                    local: socket.local_addr().unwrap(),
                    udp: Some(socket),
                    tcp: None,
                    tls: None,
                    buffer: Vec::new(),
                    requests: Default::default(),
                    responses: Default::default(),
                }
            }
            Transport::Tcp => {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind((local, 0).into()).unwrap();
                let stream = socket.connect(server).await.unwrap();
                SipClient {
                    transport,
                    server,
                    local: stream.local_addr().unwrap(),
                    udp: None,
                    tcp: Some(stream),
                    tls: None,
                    buffer: Vec::new(),
                    requests: Default::default(),
                    responses: Default::default(),
                }
            }
            Transport::Tls => panic!("a TLS client is made with SipClient::connect_tls"),
        }
    }

    /// A TLS connection to `server`, its certificate verified for the address; `Err` when the
    /// handshake fails (with TLS 1.3 a refused client certificate shows on the first read
    /// instead: see [`SipClient::refused`]).
    pub async fn connect_tls(server: SocketAddr, tls: &TlsClient) -> std::io::Result<SipClient> {
        let tcp = TcpStream::connect(server).await?;
        let local = tcp.local_addr()?;
        let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_rustls::TlsConnector::from(Arc::clone(&tls.config)).connect(name, tcp),
        )
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        Ok(SipClient {
            transport: Transport::Tls,
            server,
            local,
            udp: None,
            tcp: None,
            tls: Some(Box::new(stream)),
            buffer: Vec::new(),
            requests: Default::default(),
            responses: Default::default(),
        })
    }

    /// The certificate the server presented (DER), on a TLS connection.
    pub fn server_certificate(&self) -> Option<Vec<u8>> {
        let tls = self.tls.as_ref()?;
        Some(tls.get_ref().1.peer_certificates()?.first()?.to_vec())
    }

    /// Whether the server ends this connection instead of answering `request`: what a client
    /// the server refuses sees after a TLS 1.3 handshake (the alert comes on the first read).
    pub async fn refuses(&mut self, request: &[u8]) -> bool {
        if let Some(tls) = self.tls.as_mut()
            && (tls.write_all(request).await.is_err() || tls.flush().await.is_err())
        {
            return true;
        }
        let mut chunk = [0u8; 1024];
        let read = match (&mut self.tcp, &mut self.tls) {
            (Some(stream), _) => {
                tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await
            }
            (_, Some(stream)) => {
                tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await
            }
            _ => panic!("only a stream connection can be refused"),
        };
        matches!(
            read.expect("the server answers or closes within 10 s"),
            Ok(0) | Err(_)
        )
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        match (&self.udp, &mut self.tcp, &mut self.tls) {
            (Some(socket), _, _) => {
                socket.send_to(bytes, self.server).await.unwrap();
            }
            (_, Some(stream), _) => stream.write_all(bytes).await.unwrap(),
            (_, _, Some(stream)) => {
                stream.write_all(bytes).await.unwrap();
                stream.flush().await.unwrap();
            }
            _ => unreachable!("a client has one transport"),
        }
    }

    /// Sends an OPTIONS ping, as an SBC's recording-server group does, and returns its answer.
    pub async fn options(&mut self) -> SipResponse {
        let branch = uuid::Uuid::new_v4().simple().to_string();
        let ping = format!(
            "OPTIONS sip:srs@{server} SIP/2.0\r\nVia: SIP/2.0/{via} {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:sbc@example.com>;tag=ping\r\nTo: <sip:srs@example.com>\r\n\
             Call-ID: {branch}@example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            server = self.server,
            via = self.transport.via(),
            local = self.local,
        );
        self.send(ping.as_bytes()).await;
        self.final_response("OPTIONS", Duration::from_secs(5)).await
    }

    /// OPTIONS every 100 ms until one is answered `status`; fails after `wait`.
    pub async fn options_until(&mut self, status: u16, wait: Duration) -> SipResponse {
        let deadline = Instant::now() + wait;
        loop {
            let answer = self.options().await;
            if answer.status == status {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "OPTIONS still answered {} after {wait:?}, waiting for {status}",
                answer.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The next response, or None after `wait` with nothing. Requests from the server that
    /// arrive meanwhile are kept for [`SipClient::next_request`].
    pub async fn recv(&mut self, wait: Duration) -> Option<SipResponse> {
        self.next_of(wait, |c| c.responses.pop_front()).await
    }

    /// The next request the server sends us, or None after `wait`.
    pub async fn next_request(&mut self, wait: Duration) -> Option<SipRequest> {
        self.next_of(wait, |c| c.requests.pop_front()).await
    }

    /// Reads until `take` finds a message in its queue, or `wait` runs out.
    async fn next_of<T>(
        &mut self,
        wait: Duration,
        take: fn(&mut SipClient) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.parse_buffered();
            if let Some(message) = take(self) {
                return Some(message);
            }
            if !self.read_more(deadline).await {
                return None;
            }
        }
    }

    async fn read_more(&mut self, deadline: tokio::time::Instant) -> bool {
        let mut chunk = vec![0u8; 65_536];
        let read = match (&self.udp, &mut self.tcp, &mut self.tls) {
            (Some(socket), _, _) => {
                tokio::time::timeout_at(deadline, socket.recv(&mut chunk)).await
            }
            (_, Some(stream), _) => {
                tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await
            }
            (_, _, Some(stream)) => {
                tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await
            }
            _ => unreachable!("a client has one transport"),
        };
        match read {
            Ok(Ok(0)) | Err(_) => false,
            Ok(Ok(n)) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(Err(e)) => panic!("receive failed: {e}"),
        }
    }

    /// Moves every complete message in the buffer to the request or response queue.
    fn parse_buffered(&mut self) {
        loop {
            while self.buffer.starts_with(b"\r\n") {
                self.buffer.drain(..2);
            }
            let Some(end) = find(&self.buffer, b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let start = lines.next().unwrap_or("").to_owned();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length") || n == "l")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            if self.buffer.len() < end + 4 + length {
                return;
            }
            let body =
                String::from_utf8_lossy(&self.buffer[end + 4..end + 4 + length]).into_owned();
            self.buffer.drain(..end + 4 + length);
            if let Some(rest) = start.strip_prefix("SIP/2.0 ") {
                let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                self.responses.push_back(SipResponse {
                    status: code.parse().expect("a numeric status code"),
                    reason: reason.to_owned(),
                    headers,
                    body,
                });
            } else {
                let mut parts = start.split(' ');
                self.requests.push_back(SipRequest {
                    method: parts.next().unwrap_or("").to_owned(),
                    uri: parts.next().unwrap_or("").to_owned(),
                    headers,
                    body,
                });
            }
        }
    }

    /// Waits for the final response to the request with `method` in its CSeq, skipping
    /// provisional ones and retransmissions of earlier transactions.
    pub async fn final_response(&mut self, method: &str, wait: Duration) -> SipResponse {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let response = self
                .recv(left)
                .await
                .unwrap_or_else(|| panic!("no final response to {method} within {wait:?}"));
            if response.status >= 200 && response.cseq_method() == method {
                return response;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One recorded stream the client sends.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub label: String,
    pub participant: String,
    pub aor: String,
    pub tone_hz: f64,
}

#[derive(Clone, Debug)]
pub struct CallSpec {
    pub streams: Vec<StreamSpec>,
    /// Also offer telephone-event (payload type 101, 8000 Hz).
    pub telephone_event: bool,
    pub codec: TestCodec,
    /// Packet duration in milliseconds.
    pub ptime_ms: u32,
    /// Extra header lines for the INVITE, each ending in CRLF.
    pub extra_headers: String,
    /// SDES-SRTP: every stream offered `RTP/SAVP` with one `a=crypto` line of this suite and
    /// its own key, and sent encrypted by `webrtc-srtp` once the offer is answered.
    pub srtp: Option<Suite>,
}

impl CallSpec {
    /// The usual SBC fork: caller and callee, each a stream with its own tone, PCMU, 20 ms.
    pub fn two_parties(caller_hz: f64, callee_hz: f64) -> CallSpec {
        CallSpec {
            streams: vec![
                StreamSpec {
                    label: "1".into(),
                    participant: "p1".into(),
                    aor: "sip:alice@example.com".into(),
                    tone_hz: caller_hz,
                },
                StreamSpec {
                    label: "2".into(),
                    participant: "p2".into(),
                    aor: "sip:bob@example.com".into(),
                    tone_hz: callee_hz,
                },
            ],
            telephone_event: true,
            codec: TestCodec::Pcmu,
            ptime_ms: 20,
            extra_headers: String::new(),
            srtp: None,
        }
    }
}

struct RtpSender {
    socket: UdpSocket,
    dest: Option<SocketAddr>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    sample: u64,
    tone_hz: f64,
    codec: TestCodec,
    /// The payload type on the wire (the codec's usual one unless the answer said otherwise).
    payload_type: u8,
    encoder: Encoder,
    sent: u64,
    /// Offered with port 0 from now on (the stream was removed, RFC 3264 §8.2).
    removed: bool,
    /// SDES: the master key and salt this stream offers (a new one on [`Call::rekey`]).
    srtp_key: Option<Vec<u8>>,
    /// A second party sent unmixed on the same m-line and socket, with its own SSRC, sequence
    /// numbers and timestamps ([`Call::add_party`]).
    extra: Option<Box<ExtraParty>>,
    /// The `a=crypto` value of the last offer, used once it is answered.
    offered_crypto: Option<String>,
    /// What packets are encrypted with: the context of the answered offer's crypto line (kept
    /// while that line stays the same, so its rollover counter carries on).
    srtp: Option<(String, webrtc_srtp::context::Context)>,
}

/// A second party on one stream: its own RTP source, at `level` of the first one's amplitude.
struct ExtraParty {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    sample: u64,
    tone_hz: f64,
    level: f64,
    encoder: Encoder,
}

/// Loss and reordering applied to one stream, by packet index.
#[derive(Clone, Copy, Debug, Default)]
pub struct Impairment {
    /// Drop every Nth packet (0: none).
    pub drop_every: u64,
    /// Drop packets `from..to` of this `play` (a burst of loss).
    pub drop_range: Option<(u64, u64)>,
    /// Swap packets N and N+1 every this many packets (0: none).
    pub swap_every: u64,
    /// Packet N is preceded by a copy with one payload byte flipped (tampered in transit).
    pub tamper_at: Option<u64>,
    /// Packet N is sent twice (a replay).
    pub replay_at: Option<u64>,
}

pub struct Call {
    pub client: SipClient,
    pub call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    spec: CallSpec,
    senders: Vec<RtpSender>,
    pub answer: Option<SipResponse>,
    pub answered_at: Option<Instant>,
    invite_branch: String,
    /// `sips:` Request-URI and Contact (a SIPS dialog), on TLS.
    sips: bool,
}

impl Call {
    pub async fn new(transport: Transport, server: SocketAddr, spec: CallSpec) -> Call {
        Call::new_from(transport, server, spec, [127, 0, 0, 1].into()).await
    }

    /// A call whose signalling comes from another loopback address (another source).
    pub async fn new_from(
        transport: Transport,
        server: SocketAddr,
        spec: CallSpec,
        local: std::net::IpAddr,
    ) -> Call {
        Call::over(
            SipClient::connect_from(transport, server, local).await,
            spec,
        )
        .await
    }

    /// A call over an existing connection (a TLS one, say).
    pub async fn over(client: SipClient, spec: CallSpec) -> Call {
        let mut senders = Vec::new();
        for (i, s) in spec.streams.iter().enumerate() {
            senders.push(RtpSender {
                socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
                dest: None,
                ssrc: 0x1000_0000 + rand_u32() % 0x0fff_ffff + i as u32,
                seq: (rand_u32() % 60_000) as u16,
                timestamp: rand_u32(),
                sample: 0,
                tone_hz: s.tone_hz,
                codec: spec.codec,
                payload_type: spec.codec.payload_type(),
                encoder: Encoder::new(spec.codec),
                sent: 0,
                removed: false,
                srtp_key: spec.srtp.map(Suite::new_key),
                extra: None,
                offered_crypto: None,
                srtp: None,
            });
        }
        Call {
            client,
            call_id: format!("{}@src.example.com", uuid::Uuid::new_v4()),
            from_tag: uuid::Uuid::new_v4().simple().to_string()[..10].to_owned(),
            to_tag: None,
            cseq: 0,
            spec,
            senders,
            answer: None,
            answered_at: None,
            invite_branch: String::new(),
            sips: false,
        }
    }

    /// From now on the Request-URI and our Contact are `sips:` URIs (RFC 3261 §26.2), as an
    /// SBC configured for SIPS sends them.
    pub fn use_sips(&mut self) {
        self.sips = true;
    }

    fn branch() -> String {
        format!("z9hG4bK{}", uuid::Uuid::new_v4().simple())
    }

    fn request(
        &mut self,
        method: &str,
        branch: &str,
        extra: &str,
        body: &[u8],
        content_type: &str,
    ) -> Vec<u8> {
        if method != "ACK" && method != "CANCEL" {
            self.cseq += 1;
        }
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let local = self.client.local;
        let (scheme, contact) = if self.sips {
            ("sips", format!("<sips:sbc@{local}>"))
        } else {
            (
                "sip",
                format!(
                    "<sip:sbc@{local};transport={}>",
                    self.client.transport.via().to_lowercase()
                ),
            )
        };
        let mut head = format!(
            "{method} {scheme}:srs@{server} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:sbc@src.example.com>;tag={from_tag}\r\n\
             To: <sip:srs@{server}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: {contact};+sip.src\r\n\
             User-Agent: callvault-e2e-src\r\n",
            server = self.client.server,
            via = self.client.transport.via(),
            from_tag = self.from_tag,
            call_id = self.call_id,
            cseq = self.cseq,
        );
        head.push_str(extra);
        if !body.is_empty() {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// The SDP offer: one sendonly (or `direction`) m-line per stream; `RTP/SAVP` with one
    /// `a=crypto` line per stream under SDES.
    pub fn sdp(&self, direction: &str) -> String {
        let mut sdp = format!(
            "v=0\r\no=SBC 1 {} IN IP4 127.0.0.1\r\ns=SIPREC\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
            self.cseq + 1
        );
        for (spec, sender) in self.spec.streams.iter().zip(&self.senders) {
            let port = if sender.removed {
                0
            } else {
                sender.socket.local_addr().unwrap().port()
            };
            let codec = sender.codec;
            let pt = codec.payload_type();
            let protocol = if self.spec.srtp.is_some() {
                "RTP/SAVP"
            } else {
                "RTP/AVP"
            };
            if self.spec.telephone_event {
                sdp.push_str(&format!("m=audio {port} {protocol} {pt} 101\r\n"));
            } else {
                sdp.push_str(&format!("m=audio {port} {protocol} {pt}\r\n"));
            }
            if let (Some(suite), Some(key)) = (self.spec.srtp, &sender.srtp_key) {
                sdp.push_str(&format!(
                    "a=crypto:{}\r\n",
                    sdes::crypto_value(1, suite, key)
                ));
            }
            sdp.push_str(&format!("a=rtpmap:{pt} {}\r\n", codec.rtpmap()));
            if let Some(fmtp) = codec.fmtp() {
                sdp.push_str(&format!("a=fmtp:{pt} {fmtp}\r\n"));
            }
            if self.spec.telephone_event {
                sdp.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n");
            }
            sdp.push_str(&format!(
                "a=label:{}\r\na=ptime:{}\r\na={direction}\r\n",
                spec.label, self.spec.ptime_ms
            ));
        }
        sdp
    }

    /// RFC 7865 metadata for the call's participants and streams.
    pub fn metadata(&self) -> String {
        let mut xml = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">\r\n<datamode>complete</datamode>\r\n<group group_id=\"7+OTCyoxTmqmqyA/1weDAg==\"><associate-time>2026-11-30T10:00:00Z</associate-time></group>\r\n<session session_id=\"hVpd7YQgRW2nD22h7q60JQ==\"><group-ref>7+OTCyoxTmqmqyA/1weDAg==</group-ref><sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID><start-time>2026-11-30T10:00:00Z</start-time></session>\r\n",
        );
        for s in &self.spec.streams {
            xml.push_str(&format!(
                "<participant participant_id=\"{p}\"><nameID aor=\"{aor}\"><name xml:lang=\"en\">{p}</name></nameID></participant>\r\n",
                p = s.participant,
                aor = s.aor
            ));
        }
        for s in &self.spec.streams {
            xml.push_str(&format!(
                "<stream stream_id=\"s{l}\" session_id=\"hVpd7YQgRW2nD22h7q60JQ==\"><label>{l}</label></stream>\r\n",
                l = s.label
            ));
        }
        xml.push_str("<sessionrecordingassoc session_id=\"hVpd7YQgRW2nD22h7q60JQ==\"><associate-time>2026-11-30T10:00:00Z</associate-time></sessionrecordingassoc>\r\n");
        for s in &self.spec.streams {
            xml.push_str(&format!(
                "<participantstreamassoc participant_id=\"{p}\"><send>s{l}</send></participantstreamassoc>\r\n",
                p = s.participant,
                l = s.label
            ));
        }
        xml.push_str("</recording>\r\n");
        xml
    }

    fn multipart(&self, direction: &str) -> Vec<u8> {
        format!(
            "--callvault-e2e\r\nContent-Type: application/sdp\r\n\r\n{}\r\n--callvault-e2e\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{}\r\n--callvault-e2e--\r\n",
            self.sdp(direction),
            self.metadata()
        )
        .into_bytes()
    }

    /// A call answered 200 and ACKed: the start of most scenarios.
    pub async fn answered(transport: Transport, server: SocketAddr, spec: CallSpec) -> Call {
        let mut call = Call::new(transport, server, spec).await;
        let answer = call.invite().await;
        assert_eq!(
            answer.status, 200,
            "INVITE answered {} {}",
            answer.status, answer.reason
        );
        call.ack().await;
        call
    }

    /// Sends the SIPREC INVITE and returns the final response. On 200, records where to send
    /// each stream and when the call was answered.
    pub async fn invite(&mut self) -> SipResponse {
        self.send_invite().await;
        let response = self
            .client
            .final_response("INVITE", Duration::from_secs(5))
            .await;
        self.on_invite_response(&response);
        response
    }

    /// Sends an INVITE with a body built elsewhere (a vendor's wire format) and takes its
    /// answer like [`Call::invite`]. `extra` header lines end in CRLF.
    pub async fn invite_raw(
        &mut self,
        content_type: &str,
        body: &[u8],
        extra: &str,
    ) -> SipResponse {
        let branch = Self::branch();
        self.invite_branch = branch.clone();
        self.offered(body);
        let bytes = self.request("INVITE", &branch, extra, body, content_type);
        self.client.send(&bytes).await;
        let response = self
            .client
            .final_response("INVITE", Duration::from_secs(5))
            .await;
        self.on_invite_response(&response);
        response
    }

    /// The local RTP port of each stream, to write into a hand-made offer.
    pub fn rtp_ports(&self) -> Vec<u16> {
        self.senders
            .iter()
            .map(|s| s.socket.local_addr().unwrap().port())
            .collect()
    }

    /// Stream `index` sends in `codec` with `payload_type` from now on (what the answer chose).
    pub fn set_stream_codec(&mut self, index: usize, codec: TestCodec, payload_type: u8) {
        self.senders[index].codec = codec;
        self.senders[index].payload_type = payload_type;
        self.senders[index].encoder = Encoder::new(codec);
    }

    /// Sends the INVITE without waiting (for CANCEL races).
    pub async fn send_invite(&mut self) {
        let bytes = self.invite_request();
        self.client.send(&bytes).await;
    }

    /// Sends the SIPREC INVITE on a connection the server should refuse: true when it ends the
    /// connection instead of answering (see [`SipClient::refuses`]).
    pub async fn invite_refused(&mut self) -> bool {
        let bytes = self.invite_request();
        self.client.refuses(&bytes).await
    }

    fn invite_request(&mut self) -> Vec<u8> {
        let branch = Self::branch();
        self.invite_branch = branch.clone();
        let body = self.multipart("sendonly");
        self.offered(&body);
        self.request(
            "INVITE",
            &branch,
            &format!(
                "Require: siprec\r\nSupported: replaces\r\n{}",
                self.spec.extra_headers
            ),
            &body,
            "multipart/mixed;boundary=callvault-e2e",
        )
    }

    pub fn on_invite_response(&mut self, response: &SipResponse) {
        if response.status == 200 {
            self.key_senders();
            self.answered_at = Some(Instant::now());
            self.to_tag = response.to_tag();
            let media = response.answered_media();
            for (sender, m) in self.senders.iter_mut().zip(media) {
                if m.port != 0 {
                    sender.dest = Some(SocketAddr::from(([127, 0, 0, 1], m.port)));
                }
            }
            self.answer = Some(response.clone());
        }
    }

    pub async fn ack(&mut self) {
        let bytes = self.request("ACK", &Self::branch(), "", &[], "");
        self.client.send(&bytes).await;
    }

    /// CANCEL the pending INVITE (same branch, RFC 3261 §9.1).
    pub async fn cancel(&mut self) {
        let branch = self.invite_branch.clone();
        let cseq = self.cseq;
        let mut bytes = self.request("CANCEL", &branch, "", &[], "");
        // CANCEL carries the INVITE's CSeq number.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let fixed = text.replace(
            &format!("CSeq: {} CANCEL", self.cseq),
            &format!("CSeq: {cseq} CANCEL"),
        );
        bytes = fixed.into_bytes();
        self.client.send(&bytes).await;
    }

    /// ACK for a non-2xx final response: same branch as the INVITE (RFC 3261 §17.1.1.3).
    pub async fn ack_failure(&mut self, response: &SipResponse) {
        self.to_tag = response.to_tag();
        let branch = self.invite_branch.clone();
        let bytes = self.request("ACK", &branch, "", &[], "");
        self.client.send(&bytes).await;
    }

    /// A re-INVITE with every stream in `direction` (e.g. "inactive" for hold).
    pub async fn reinvite(&mut self, direction: &str) -> SipResponse {
        let body = self.multipart(direction);
        self.offered(&body);
        let extra = self.spec.extra_headers.clone();
        let bytes = self.request(
            "INVITE",
            &Self::branch(),
            &extra,
            &body,
            "multipart/mixed;boundary=callvault-e2e",
        );
        self.client.send(&bytes).await;
        let response = self
            .client
            .final_response("INVITE", Duration::from_secs(5))
            .await;
        if response.status == 200 {
            self.key_senders();
        }
        self.ack().await;
        response
    }

    /// Notes the `a=crypto` line each stream's m-line carries in an offer about to be sent:
    /// read back from the offer's text, so the key on the wire is the key packets are sent with.
    fn offered(&mut self, body: &[u8]) {
        let lines = sdes::crypto_lines(&String::from_utf8_lossy(body));
        for (sender, crypto) in self.senders.iter_mut().zip(lines) {
            sender.offered_crypto = crypto.into_iter().next();
        }
    }

    /// The offer was answered: each stream sends under its offered key from now on (RFC 4568
    /// §7.1.4: not before the answer). The same line as before keeps the context.
    fn key_senders(&mut self) {
        for sender in &mut self.senders {
            let Some(value) = sender.offered_crypto.clone() else {
                continue;
            };
            if sender.srtp.as_ref().map(|(line, _)| line) != Some(&value) {
                let context = sdes::sender_for(&value);
                sender.srtp = Some((value, context));
            }
        }
    }

    /// Every stream offers a new key in the next re-INVITE (a re-key).
    pub fn rekey(&mut self) {
        let suite = self.spec.srtp.expect("an SRTP call");
        for sender in &mut self.senders {
            sender.srtp_key = Some(suite.new_key());
        }
    }

    /// The key (master key and salt) each stream offered last.
    pub fn srtp_keys(&self) -> Vec<Vec<u8>> {
        self.senders
            .iter()
            .filter_map(|s| s.srtp_key.clone())
            .collect()
    }

    pub async fn bye(&mut self) -> SipResponse {
        let bytes = self.request("BYE", &Self::branch(), "", &[], "");
        self.client.send(&bytes).await;
        self.client
            .final_response("BYE", Duration::from_secs(5))
            .await
    }

    pub async fn request_in_dialog(
        &mut self,
        method: &str,
        content_type: &str,
        body: &[u8],
    ) -> SipResponse {
        let bytes = self.request(method, &Self::branch(), "", body, content_type);
        self.client.send(&bytes).await;
        self.client
            .final_response(method, Duration::from_secs(5))
            .await
    }

    /// Sends `duration` of each stream's tone in packets of `ptime_ms`, paced in real time (the
    /// traffic shape an SBC produces), with the given impairment on each stream.
    pub async fn play(&mut self, duration: Duration, impairments: &[Impairment]) {
        let ptime = u64::from(self.spec.ptime_ms);
        let packets = duration.as_millis() as u64 / ptime;
        let start = tokio::time::Instant::now();
        let mut held: Vec<Option<Vec<u8>>> = vec![None; self.senders.len()];
        for n in 0..packets {
            tokio::time::sleep_until(start + Duration::from_millis(ptime * n)).await;
            for (i, sender) in self.senders.iter_mut().enumerate() {
                let packet = sender.next_packet(self.spec.ptime_ms);
                let Some(dest) = sender.dest else { continue };
                let imp = impairments.get(i).copied().unwrap_or_default();
                if let Some(extra) = sender.extra_packet(self.spec.ptime_ms) {
                    sender.socket.send_to(&extra, dest).await.unwrap();
                }
                if imp.drop_every > 0 && n % imp.drop_every == imp.drop_every - 1 {
                    continue;
                }
                if imp
                    .drop_range
                    .is_some_and(|(from, to)| (from..to).contains(&n))
                {
                    continue;
                }
                if imp.swap_every > 0 && n % imp.swap_every == 0 && held[i].is_none() {
                    held[i] = Some(packet);
                    continue;
                }
                if imp.tamper_at == Some(n) {
                    // The first payload byte (the header is 12 bytes: no CSRC, no extension).
                    let mut tampered = packet.clone();
                    tampered[12] ^= 0x01;
                    sender.socket.send_to(&tampered, dest).await.unwrap();
                }
                sender.socket.send_to(&packet, dest).await.unwrap();
                if imp.replay_at == Some(n) {
                    sender.socket.send_to(&packet, dest).await.unwrap();
                }
                if let Some(earlier) = held[i].take() {
                    sender.socket.send_to(&earlier, dest).await.unwrap();
                }
            }
        }
        // `iter_mut`: the encoders are Send but not Sync, and this future must be Send.
        for (sender, h) in self.senders.iter_mut().zip(held) {
            if let (Some(p), Some(dest)) = (h, sender.dest) {
                sender.socket.send_to(&p, dest).await.unwrap();
            }
        }
        // The last packet covers one more ptime: return when it ends, so RTP time and the
        // wall clock stay together across calls.
        tokio::time::sleep_until(start + Duration::from_millis(ptime * packets)).await;
    }

    /// Presses `digit` on stream `index` for `duration` as RFC 4733 telephone-events: an
    /// update every 20 ms with the same timestamp, then the end packet three times, as SBCs
    /// send them. The stream sends no audio meanwhile. Returns when the press started,
    /// relative to the answer.
    pub async fn press(&mut self, index: usize, digit: char, duration: Duration) -> Duration {
        let event = match digit {
            '0'..='9' => digit as u8 - b'0',
            '*' => 10,
            '#' => 11,
            'A'..='D' => 12 + (digit as u8 - b'A'),
            _ => panic!("no DTMF event for {digit:?}"),
        };
        let pressed_at = self.answered_at.unwrap().elapsed();
        let sender = &mut self.senders[index];
        let dest = sender.dest.expect("stream answered");
        let start_ts = sender.timestamp;
        let steps = (duration.as_millis() / 20) as u32;
        let start = tokio::time::Instant::now();
        for step in 1..=steps + 2 {
            let end = step > steps;
            let units = (steps.min(step) * 160) as u16;
            let packet = rtp_packet(
                101,
                step == 1,
                sender.seq,
                start_ts,
                sender.ssrc,
                &[
                    event,
                    if end { 0x80 | 10 } else { 10 },
                    (units >> 8) as u8,
                    units as u8,
                ],
            );
            let packet = sender.protect(packet);
            sender.seq = sender.seq.wrapping_add(1);
            let copies = if step == steps + 2 {
                1
            } else if end {
                2
            } else {
                1
            };
            for _ in 0..copies {
                sender.socket.send_to(&packet, dest).await.unwrap();
            }
            if step <= steps {
                tokio::time::sleep_until(start + Duration::from_millis(20 * u64::from(step))).await;
            }
        }
        // Every stream's clock moved on while the key was down (the others were silent, as
        // in DTX): a real SBC's RTP clocks never stop.
        self.skip(start.elapsed());
        pressed_at
    }

    /// Advances the streams' clocks over a pause without sending (a hold), as a real SRC's
    /// RTP timestamps keep running.
    pub fn skip(&mut self, duration: Duration) {
        for s in &mut self.senders {
            let ms = duration.as_millis() as u64;
            s.sample += u64::from(s.codec.sample_rate()) * ms / 1000;
            s.timestamp = s
                .timestamp
                .wrapping_add((u64::from(s.codec.clock_rate()) * ms / 1000) as u32);
        }
    }

    /// Stream `index` starts a new SSRC with new sequence numbers and timestamps, as after a
    /// media server change on the SBC.
    pub fn change_ssrc(&mut self, index: usize) {
        let s = &mut self.senders[index];
        s.ssrc = s.ssrc.wrapping_add(0x0101_0101);
        s.seq = s.seq.wrapping_add(20_000);
        s.timestamp = s.timestamp.wrapping_add(0x4000_0000);
    }

    /// Stream `index` jumps its RTP timestamp by `ticks` without a gap in time.
    pub fn jump_timestamp(&mut self, index: usize, ticks: u32) {
        let s = &mut self.senders[index];
        s.timestamp = s.timestamp.wrapping_add(ticks);
    }

    /// Switches every stream to `codec` for the next offer and packets (a codec change).
    pub fn set_codec(&mut self, codec: TestCodec) {
        self.spec.codec = codec;
        for s in &mut self.senders {
            s.codec = codec;
            s.payload_type = codec.payload_type();
            s.encoder = Encoder::new(codec);
        }
    }

    /// A second party on stream `index`: from the same socket, its own SSRC, sequence numbers
    /// and timestamps, a `tone_hz` tone at `level` of the first party's amplitude, each of its
    /// packets sent just after the first party's (a "mixed" stream forwarded unmixed).
    pub fn add_party(&mut self, index: usize, tone_hz: f64, level: f64) {
        let s = &mut self.senders[index];
        s.extra = Some(Box::new(ExtraParty {
            ssrc: s.ssrc ^ 0x5a5a_0001,
            seq: s.seq.wrapping_add(31_000),
            timestamp: s.timestamp.wrapping_add(0x2000_0000),
            sample: s.sample,
            tone_hz,
            level,
            encoder: Encoder::new(s.codec),
        }));
    }

    /// The second party of stream `index` stops sending (it hung up; the first goes on).
    pub fn remove_party(&mut self, index: usize) {
        self.senders[index].extra = None;
    }

    /// Stream `index` sends a `tone_hz` tone from now on.
    pub fn set_tone(&mut self, index: usize, tone_hz: f64) {
        self.senders[index].tone_hz = tone_hz;
    }

    /// Removes stream `index` from the next offer (port 0) and stops sending it.
    pub fn remove_stream(&mut self, index: usize) {
        self.senders[index].removed = true;
        self.senders[index].dest = None;
    }

    pub fn set_ptime(&mut self, ptime_ms: u32) {
        self.spec.ptime_ms = ptime_ms;
    }

    /// Adds a stream to the call (effective with the next re-INVITE).
    pub async fn add_stream(&mut self, spec: StreamSpec) {
        self.senders.push(RtpSender {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            dest: None,
            ssrc: rand_u32(),
            seq: (rand_u32() % 60_000) as u16,
            timestamp: rand_u32(),
            sample: 0,
            tone_hz: spec.tone_hz,
            codec: self.spec.codec,
            payload_type: self.spec.codec.payload_type(),
            encoder: Encoder::new(self.spec.codec),
            sent: 0,
            removed: false,
            srtp_key: self.spec.srtp.map(Suite::new_key),
            extra: None,
            offered_crypto: None,
            srtp: None,
        });
        self.spec.streams.push(spec);
    }

    /// Who sends stream `index` from now on (a transfer), for the next metadata.
    pub fn set_participant(&mut self, index: usize, participant: &str, aor: &str) {
        self.spec.streams[index].participant = participant.to_owned();
        self.spec.streams[index].aor = aor.to_owned();
    }

    /// Takes the answer to a re-INVITE: where each (possibly new) stream goes.
    pub fn on_reinvite_response(&mut self, response: &SipResponse) {
        for (sender, m) in self.senders.iter_mut().zip(response.answered_media()) {
            sender.dest = (m.port != 0).then(|| SocketAddr::from(([127, 0, 0, 1], m.port)));
        }
    }

    /// An UPDATE carrying only metadata (Avaya sends participants this way).
    pub async fn update_metadata(&mut self) -> SipResponse {
        let xml = self.metadata().into_bytes();
        self.request_in_dialog("UPDATE", "application/rs-metadata+xml", &xml)
            .await
    }

    pub fn packets_sent(&self) -> Vec<u64> {
        self.senders.iter().map(|s| s.sent).collect()
    }
}

fn rtp_packet(
    payload_type: u8,
    marker: bool,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut packet = Vec::with_capacity(12 + payload.len());
    packet.push(0x80);
    packet.push((payload_type & 0x7f) | if marker { 0x80 } else { 0 });
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

impl RtpSender {
    fn next_packet(&mut self, ptime_ms: u32) -> Vec<u8> {
        let samples = (self.codec.sample_rate() * ptime_ms / 1000) as usize;
        let pcm = audio::tone_at(self.tone_hz, self.codec.sample_rate(), self.sample, samples);
        let payload = self.encoder.encode(&pcm);
        let packet = rtp_packet(
            self.payload_type,
            false,
            self.seq,
            self.timestamp,
            self.ssrc,
            &payload,
        );
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self
            .timestamp
            .wrapping_add(self.codec.clock_rate() * ptime_ms / 1000);
        self.sample += samples as u64;
        self.sent += 1;
        self.protect(packet)
    }

    /// The second party's packet for the same ptime, if the stream has one.
    fn extra_packet(&mut self, ptime_ms: u32) -> Option<Vec<u8>> {
        let codec = self.codec;
        let extra = self.extra.as_mut()?;
        let samples = (codec.sample_rate() * ptime_ms / 1000) as usize;
        let pcm: Vec<i16> =
            audio::tone_at(extra.tone_hz, codec.sample_rate(), extra.sample, samples)
                .into_iter()
                .map(|s| (f64::from(s) * extra.level) as i16)
                .collect();
        let payload = extra.encoder.encode(&pcm);
        let packet = rtp_packet(
            self.payload_type,
            false,
            extra.seq,
            extra.timestamp,
            extra.ssrc,
            &payload,
        );
        extra.seq = extra.seq.wrapping_add(1);
        extra.timestamp = extra
            .timestamp
            .wrapping_add(codec.clock_rate() * ptime_ms / 1000);
        extra.sample += samples as u64;
        Some(self.protect(packet))
    }

    /// SRTP once keyed (by `webrtc-srtp`), the plain packet otherwise.
    fn protect(&mut self, packet: Vec<u8>) -> Vec<u8> {
        match &mut self.srtp {
            Some((_, context)) => context
                .encrypt_rtp(&packet)
                .expect("webrtc-srtp encrypts an RTP packet")
                .to_vec(),
            None => packet,
        }
    }
}

fn rand_u32() -> u32 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
