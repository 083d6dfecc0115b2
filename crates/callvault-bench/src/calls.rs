//! One SIPREC call of the load: INVITE (two PCMU streams, RFC 7865 metadata) → 200 → ACK →
//! `packets` packets per stream through the pacer → BYE. The requests are the ones
//! `callvault test-call` sends (`callvault-client`).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault_client::rtp::RtpStream;
use callvault_client::sip;
use time::format_description::well_known::Rfc3339;
use tokio::sync::oneshot;

use crate::pacer::Outgoing;
use crate::signalling::Signalling;

/// The server's header naming the recording in its 200 OK (`callvault::recorder`).
const RECORDING_ID_HEADER: &str = "x-callvault-recording-id";
/// Each stream's tone: whole periods in 20 ms, so the payload is encoded once per stream.
pub(crate) const TONES: [f64; 2] = [1_000.0, 2_000.0];

/// What became of one call.
#[derive(Debug, Default)]
pub struct Outcome {
    pub recording_id: Option<String>,
    /// INVITE sent → 200 OK read.
    pub setup: Option<Duration>,
    /// When the 200 OK came, from the start of the run.
    pub answered_at: Option<Duration>,
    /// Packets sent on each stream (0 for one the answer declined).
    pub sent: [u32; 2],
    /// 200 OK read → BYE sent: how long the recording should be, whatever the pacer managed.
    pub answered_for: Option<Duration>,
    /// BYE sent → its final response.
    pub teardown: Option<Duration>,
    pub error: Option<String>,
}

/// The two RTP sockets of a call, bound next to `ip`.
pub(crate) fn bind_pair(ip: std::net::IpAddr) -> std::io::Result<[UdpSocket; 2]> {
    Ok([
        UdpSocket::bind(SocketAddr::new(ip, 0))?,
        UdpSocket::bind(SocketAddr::new(ip, 0))?,
    ])
}

/// Hands the two streams of a call to the pacer; resolves to the packets each sent.
pub(crate) fn stream(
    sockets: [UdpSocket; 2],
    targets: [Option<SocketAddr>; 2],
    packets: u32,
    seed: u32,
    pacer: &std::sync::mpsc::Sender<Outgoing>,
) -> [Option<oneshot::Receiver<u32>>; 2] {
    let mut done = [None, None];
    for (index, (socket, target)) in sockets.into_iter().zip(targets).enumerate() {
        let Some(target) = target else { continue };
        let (tx, rx) = oneshot::channel();
        let ssrc = seed
            .wrapping_mul(2)
            .wrapping_add(index as u32)
            .rotate_left(13);
        let rtp = RtpStream::new(ssrc, TONES[index]);
        if let Ok(outgoing) = Outgoing::new(socket, target, rtp, packets, tx)
            && pacer.send(outgoing).is_ok()
        {
            done[index] = Some(rx);
        }
    }
    done
}

pub(crate) async fn sent(done: [Option<oneshot::Receiver<u32>>; 2]) -> [u32; 2] {
    let mut sent = [0; 2];
    for (slot, rx) in sent.iter_mut().zip(done) {
        if let Some(rx) = rx {
            *slot = rx.await.unwrap_or(0);
        }
    }
    sent
}

/// Runs call `index` against the server, its media through `pacer` (dropped once the
/// streams are handed over, so the pacer knows when every call is up).
pub(crate) async fn siprec(
    signalling: Arc<Signalling>,
    index: u32,
    packets: u32,
    run_start: Instant,
    pacer: std::sync::mpsc::Sender<Outgoing>,
) -> Outcome {
    let mut outcome = Outcome::default();
    if let Err(error) =
        siprec_inner(&signalling, index, packets, run_start, pacer, &mut outcome).await
    {
        outcome.error = Some(format!("{error:#}"));
    }
    outcome
}

async fn siprec_inner(
    signalling: &Signalling,
    index: u32,
    packets: u32,
    run_start: Instant,
    pacer: std::sync::mpsc::Sender<Outgoing>,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let local = signalling.local;
    let sockets = bind_pair(local.ip())?;
    let mut streams = Vec::new();
    for (position, socket) in sockets.iter().enumerate() {
        let label = (position + 1).to_string();
        let who = ["caller", "callee"][position];
        streams.push(sip::Stream {
            label,
            participant: who.into(),
            aor: format!("sip:{who}-{index}@loadgen.invalid"),
            name: format!("{who} {index}"),
            port: socket.local_addr()?.port(),
        });
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut dialog = sip::Dialog {
        call_id: format!("{token}@loadgen"),
        from_tag: token[..10].to_owned(),
        to_tag: None,
        request_uri: format!("sip:callvault@{}", signalling.server),
        local,
        transport: "udp",
    };
    let now = time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("the current time formats as RFC 3339");
    let mut responses = signalling.register(&dialog.call_id);
    let result = async {
        let invite_branch = branch();
        let invite = dialog.invite(
            &invite_branch,
            &sip::offer(local.ip(), &streams),
            &sip::metadata(&token[..22], &dialog.call_id, &now, &streams),
        );
        let sent_at = Instant::now();
        let answer = signalling
            .transaction(&mut responses, &invite, "INVITE")
            .await?;
        let status = answer.status.unwrap_or(0);
        if !(200..300).contains(&status) {
            signalling.send(&dialog.ack(&invite_branch)).await?;
            anyhow::bail!("INVITE answered {status} {}", answer.first);
        }
        let answered = Instant::now();
        outcome.setup = Some(answered - sent_at);
        outcome.answered_at = Some(run_start.elapsed());
        dialog.to_tag = answer.to_tag();
        if let Some(contact) = answer.header("contact") {
            dialog.request_uri = sip::uri_of(contact).to_owned();
        }
        signalling.send(&dialog.ack(&branch())).await?;
        outcome.recording_id = answer.header(RECORDING_ID_HEADER).map(str::to_owned);
        let media = sip::answered_media(&String::from_utf8_lossy(&answer.body));
        let targets = [
            media.first().copied().flatten(),
            media.get(1).copied().flatten(),
        ];
        let done = stream(sockets, targets, packets, index, &pacer);
        drop(pacer);
        outcome.sent = sent(done).await;
        // The last packet holds 20 ms of audio: hang up after it has played, as a phone would.
        tokio::time::sleep(2 * crate::pacer::PTIME).await;
        let bye_at = Instant::now();
        outcome.answered_for = Some(bye_at - answered);
        let answer = signalling
            .transaction(&mut responses, &dialog.bye(&branch()), "BYE")
            .await?;
        outcome.teardown = Some(bye_at.elapsed());
        match answer.status {
            Some(200..=299) => Ok(()),
            status => anyhow::bail!("BYE answered {status:?} {}", answer.first),
        }
    }
    .await;
    signalling.forget(&dialog.call_id);
    result
}

fn branch() -> String {
    format!("z9hG4bK{}", uuid::Uuid::new_v4().simple())
}
