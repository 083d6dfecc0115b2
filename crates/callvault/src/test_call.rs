//! `callvault test-call`: a real SIPREC call to a callvault server (or any SRS), from nothing
//! but this binary — the first call of a newcomer without an SBC, and a smoke test after a
//! deployment.
//!
//! It offers two PCMU streams (caller and callee, each a tone of its own) in a multipart
//! INVITE with RFC 7865 metadata, sends 20 ms RTP packets to the ports of the answer for
//! `--seconds`, presses `--digits` as RFC 4733 events on the caller's stream, hangs up with a
//! BYE, and prints the recording id of the 200 OK's `X-Callvault-Recording-Id` header on
//! standard output (what it does, on standard error). Over UDP, requests are retransmitted
//! (RFC 3261 timer A) until answered.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::recorder::RECORDING_ID_HEADER;

use callvault_client::{rtp, sip};

#[derive(Args)]
pub struct TestCallArgs {
    /// The recording server's SIP address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5060")]
    to: String,
    /// How long the call lasts, in seconds (the digits need at least 3).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// The SIP transport.
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    transport: Transport,
    /// Keys pressed on the caller's stream as RFC 4733 events, one second in (0-9 * # A-D).
    #[arg(long, default_value = "1234")]
    digits: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Udp,
    Tcp,
}

/// The caller's and the callee's tones, in Hz: far apart, easy to tell in the WAVs.
const TONES: [f64; 2] = [440.0, 1_000.0];
/// RFC 3261 T1, and how long a request is retransmitted before the call is given up.
const T1: Duration = Duration::from_millis(500);
const GIVE_UP: Duration = Duration::from_secs(32);
/// The first key press starts after this many 20 ms packets.
const DIGITS_AFTER_PACKETS: u32 = 50;

pub async fn run(args: TestCallArgs) -> anyhow::Result<ExitCode> {
    let digits: Vec<u8> = args
        .digits
        .chars()
        .map(|c| rtp::event_code(c).with_context(|| format!("--digits: {c:?} is not a key")))
        .collect::<anyhow::Result<_>>()?;
    let server = tokio::net::lookup_host(&args.to)
        .await
        .with_context(|| format!("--to {}: not a HOST:PORT", args.to))?
        .next()
        .with_context(|| format!("--to {}: no address", args.to))?;
    let mut link = Link::open(args.transport, server).await?;
    let local = link.local;

    let streams: Vec<sip::Stream> = vec![
        sip::Stream {
            label: "1".into(),
            participant: "caller".into(),
            aor: "sip:alice@test-call.invalid".into(),
            name: "Alice (caller)".into(),
            port: 0,
        },
        sip::Stream {
            label: "2".into(),
            participant: "callee".into(),
            aor: "sip:bob@test-call.invalid".into(),
            name: "Bob (callee)".into(),
            port: 0,
        },
    ];
    let mut sockets = Vec::new();
    let mut streams = streams;
    for stream in &mut streams {
        let socket = UdpSocket::bind(SocketAddr::new(local.ip(), 0))
            .await
            .context("binding an RTP socket")?;
        stream.port = socket.local_addr()?.port();
        sockets.push(socket);
    }

    let token = uuid::Uuid::new_v4().simple().to_string();
    let transport = match args.transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    };
    let mut dialog = sip::Dialog {
        call_id: format!("{token}@test-call"),
        from_tag: token[..10].to_owned(),
        to_tag: None,
        request_uri: match args.transport {
            Transport::Udp => format!("sip:callvault@{server}"),
            Transport::Tcp => format!("sip:callvault@{server};transport=tcp"),
        },
        local,
        transport,
    };
    let now = time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("the current time formats as RFC 3339");
    let invite_branch = branch();
    let invite = dialog.invite(
        &invite_branch,
        &sip::offer(local.ip(), &streams),
        &sip::metadata(&token[..22], &dialog.call_id, &now, &streams),
    );
    eprintln!(
        "test-call: INVITE {} over {transport} (Call-ID {})",
        server, dialog.call_id
    );
    let answer = link.transaction(&invite, "INVITE").await?;
    let status = answer.status.unwrap_or(0);
    if !(200..300).contains(&status) {
        link.send(&dialog.ack(&invite_branch)).await?;
        bail!("the server answered the INVITE {status} {}", answer.first);
    }
    dialog.to_tag = answer.to_tag();
    if let Some(contact) = answer.header("contact") {
        dialog.request_uri = sip::uri_of(contact).to_owned();
    }
    let ack = dialog.ack(&branch());
    link.send(&ack).await?;
    let recording_id = answer.header(RECORDING_ID_HEADER).map(str::to_owned);
    let targets = sip::answered_media(&String::from_utf8_lossy(&answer.body));
    eprintln!(
        "test-call: answered 200; recording {}; sending {} s of tone ({} Hz, {} Hz) and digits {:?}",
        recording_id.as_deref().unwrap_or("(not named)"),
        args.seconds,
        TONES[0],
        TONES[1],
        args.digits
    );

    let hung_up_by_server =
        play(&mut link, &ack, &sockets, &targets, args.seconds, &digits).await?;
    if hung_up_by_server {
        eprintln!("test-call: the server ended the call");
    } else {
        let bye = dialog.bye(&branch());
        let answer = link.transaction(&bye, "BYE").await?;
        eprintln!(
            "test-call: BYE answered {} {}",
            answer.status.unwrap_or(0),
            answer.first
        );
    }
    match recording_id {
        Some(id) => {
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "test-call: the 200 OK carried no {RECORDING_ID_HEADER} header (not a callvault server?); look the call up by its Call-ID: recordings list --call-id {}",
                dialog.call_id
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Sends the media for `seconds`; answers what the server sends meanwhile. True when the
/// server hung up (its BYE).
async fn play(
    link: &mut Link,
    ack: &[u8],
    sockets: &[UdpSocket],
    targets: &[Option<SocketAddr>],
    seconds: u64,
    digits: &[u8],
) -> anyhow::Result<bool> {
    let mut streams: Vec<rtp::RtpStream> = TONES
        .iter()
        .enumerate()
        .map(|(i, hz)| rtp::RtpStream::new(rand_u32() ^ i as u32, *hz))
        .collect();
    let packets = u32::try_from(seconds * 50).unwrap_or(u32::MAX);
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for tick in 0..packets {
        tokio::select! {
            _ = ticker.tick() => {}
            message = link.incoming.recv() => {
                let Some(message) = message else { bail!("the server closed the connection") };
                match (message.status, message.first.as_str()) {
                    // Our ACK was lost: the 200 comes again.
                    (Some(200), _) if message.cseq_method() == Some("INVITE") => link.send(ack).await?,
                    (None, "BYE") => {
                        link.send(&sip::response_to(&message, 200, "OK")).await?;
                        return Ok(true);
                    }
                    (None, _) => link.send(&sip::response_to(&message, 200, "OK")).await?,
                    _ => {}
                }
                ticker.tick().await;
            }
        }
        for (index, ((stream, socket), target)) in
            streams.iter_mut().zip(sockets).zip(targets).enumerate()
        {
            let Some(target) = target else { continue };
            let press = (index == 0)
                .then(|| rtp::digit_at(digits, DIGITS_AFTER_PACKETS, tick))
                .flatten();
            match press {
                Some((code, i)) => {
                    socket
                        .send_to(stream.event(code, i, sip::TELEPHONE_EVENT_PT), *target)
                        .await?;
                    if i + 1 == rtp::DIGIT_PACKETS {
                        for _ in 0..2 {
                            socket.send_to(stream.repeat(), *target).await?;
                        }
                    }
                }
                None => {
                    socket.send_to(stream.audio(), *target).await?;
                }
            }
        }
    }
    Ok(false)
}

/// The signalling connection: what we send, and a task reading what comes back.
struct Link {
    local: SocketAddr,
    writer: Writer,
    incoming: mpsc::Receiver<sip::Message>,
    udp: bool,
}

enum Writer {
    Udp(std::sync::Arc<UdpSocket>),
    Tcp(tokio::net::tcp::OwnedWriteHalf),
}

impl Link {
    async fn open(transport: Transport, server: SocketAddr) -> anyhow::Result<Link> {
        let (tx, incoming) = mpsc::channel(64);
        match transport {
            Transport::Udp => {
                let any = if server.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let socket = UdpSocket::bind(any).await?;
                socket.connect(server).await?;
                let socket = std::sync::Arc::new(socket);
                let local = socket.local_addr()?;
                let reader = std::sync::Arc::clone(&socket);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 65_535];
                    while let Ok(n) = reader.recv(&mut buffer).await {
                        if let Ok(Some((message, _))) = sip::take_message(&buffer[..n])
                            && tx.send(message).await.is_err()
                        {
                            return;
                        }
                    }
                });
                Ok(Link {
                    local,
                    writer: Writer::Udp(socket),
                    incoming,
                    udp: true,
                })
            }
            Transport::Tcp => {
                let stream =
                    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(server))
                        .await
                        .with_context(|| format!("connecting to {server} over TCP: timed out"))?
                        .with_context(|| format!("connecting to {server} over TCP"))?;
                let local = stream.local_addr()?;
                let (mut read, write) = stream.into_split();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = vec![0u8; 16 * 1024];
                    loop {
                        match read.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        while let Ok(Some((message, used))) = sip::take_message(&buffer) {
                            buffer.drain(..used);
                            if tx.send(message).await.is_err() {
                                return;
                            }
                        }
                    }
                });
                Ok(Link {
                    local,
                    writer: Writer::Tcp(write),
                    incoming,
                    udp: false,
                })
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match &mut self.writer {
            Writer::Udp(socket) => {
                socket.send(bytes).await?;
            }
            Writer::Tcp(stream) => stream.write_all(bytes).await?,
        }
        Ok(())
    }

    /// Sends a request and waits for its final response, retransmitting over UDP (timer A:
    /// T1 doubling, until a provisional response or `GIVE_UP`).
    async fn transaction(&mut self, request: &[u8], method: &str) -> anyhow::Result<sip::Message> {
        self.send(request).await?;
        let deadline = tokio::time::Instant::now() + GIVE_UP;
        let mut interval = T1;
        let mut retransmit = self.udp;
        loop {
            let wait = if retransmit { interval } else { GIVE_UP };
            match tokio::time::timeout(wait, self.incoming.recv()).await {
                Ok(Some(message)) => {
                    if message.status.is_none() {
                        // A request of the server's before our answer (OPTIONS): answered.
                        self.send(&sip::response_to(&message, 200, "OK")).await?;
                        continue;
                    }
                    if message.cseq_method() != Some(method) {
                        continue;
                    }
                    match message.status {
                        Some(status) if status < 200 => retransmit = false,
                        _ => return Ok(message),
                    }
                }
                Ok(None) => bail!("the server closed the connection before answering the {method}"),
                Err(_) if tokio::time::Instant::now() < deadline && retransmit => {
                    self.send(request).await?;
                    interval = (interval * 2).min(Duration::from_secs(4));
                }
                Err(_) => bail!("no answer to the {method} in {} s", GIVE_UP.as_secs()),
            }
        }
    }
}

fn branch() -> String {
    format!("z9hG4bK{}", uuid::Uuid::new_v4().simple())
}

fn rand_u32() -> u32 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the OS gives random bytes");
    u32::from_ne_bytes(bytes)
}
