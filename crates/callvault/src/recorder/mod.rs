//! The recording server's transaction user: it turns SIP events into recording sessions.
//!
//! The recorder runs inside the SIP driver task and never waits: media ports are bound here
//! (a bind is microseconds), while WAV files are opened by the media writer thread and catalog
//! rows written by the catalog task, both fed by message. So a burst of INVITEs is answered at
//! the pace of parsing, not of the disk.
//!
//! One session per SIPREC dialog. The session owns its legs (one per offered m-line, declined
//! ones kept as placeholders so every later answer has the same m-lines in the same order).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use callvault_catalog::{self as catalog, EndReason};
use callvault_media::{LegId, LegReport, MediaEngine, MediaEvent};
use callvault_sip::{
    DialogId, Endpoint, Event, Method, Peer, Request, Response, SessionTimer, SessionTimerConfig,
    TransactionKey, TransportKind, dialog_id_of_request, peer_for_in_dialog_request,
};
use callvault_siprec::Limits;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use self::session::{LegSlot, Pending, Session};
use crate::archive::{ArchiveCommand, ArchiveHealth, ArchiveQueue};

mod answer;
mod parties;
mod reoffer;
mod session;

/// Codecs this build decodes; each m-line is answered with the first of these the client
/// offers, in the client's order of preference.
const SUPPORTED_CODECS: &[&str] = &["PCMU", "PCMA", "G722", "OPUS", "G729", "G729A", "L16"];
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";
const ACCEPT: &str =
    "application/sdp, multipart/mixed, application/rs-metadata+xml, application/rs-metadata";

#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub max_sessions: usize,
    pub retry_after_secs: u32,
    pub answer_delay: Duration,
    pub limits: Limits,
    /// The address written into SDP answers.
    pub rtp_ip: IpAddr,
    /// Our SIP address, for Contact.
    pub contact_host: String,
    pub user_agent: String,
    /// Keep DTMF digits (RFC 4733 and SIP INFO). Off where card digits must not be stored.
    pub capture_dtmf: bool,
    /// An active stream without RTP for this long ends the recording (BYE to the client).
    pub rtp_timeout: Option<Duration>,
    pub session_timer: SessionTimerConfig,
    /// This node's id, stored with each recording (see `Catalog::active_recordings`).
    pub node_id: String,
}

/// Counters shared with `/health`; written only by the recorder.
#[derive(Debug, Default)]
pub struct RecorderGauges {
    pub active_sessions: AtomicUsize,
    pub sessions_total: AtomicUsize,
    pub rejected_total: AtomicUsize,
}

pub struct Recorder {
    config: RecorderConfig,
    media: Arc<MediaEngine>,
    archive: ArchiveQueue,
    /// New calls are refused while the archive cannot keep what they would write.
    archive_health: ArchiveHealth,
    gauges: Arc<RecorderGauges>,
    sessions: HashMap<DialogId, Session>,
    /// Call-ID → dialog, for events that carry only the Call-ID (ACK timeout).
    by_call_id: HashMap<String, DialogId>,
    /// INVITEs held for `answer_delay`, cancellable until answered.
    pending: HashMap<TransactionKey, Pending>,
    /// Sessions whose legs are being closed; told to the driver so it can wait on shutdown.
    closing: mpsc::UnboundedSender<tokio::task::JoinHandle<()>>,
    /// Media events name legs; this finds their session and label.
    legs: HashMap<LegId, (DialogId, String)>,
    /// Session-timer deadlines, earliest first. Entries go stale when a session is refreshed
    /// or ends; a popped entry is checked against the session before it acts.
    expiries: BinaryHeap<Reverse<(Instant, DialogId)>>,
}

impl Recorder {
    pub fn new(
        config: RecorderConfig,
        media: Arc<MediaEngine>,
        archive: ArchiveQueue,
        archive_health: ArchiveHealth,
        gauges: Arc<RecorderGauges>,
        closing: mpsc::UnboundedSender<tokio::task::JoinHandle<()>>,
    ) -> Recorder {
        Recorder {
            config,
            media,
            archive,
            archive_health,
            gauges,
            sessions: HashMap::new(),
            by_call_id: HashMap::new(),
            pending: HashMap::new(),
            closing,
            legs: HashMap::new(),
            expiries: BinaryHeap::new(),
        }
    }
    /// The next instant the recorder must be woken: a held INVITE to answer, a session timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let answer = self.pending.values().map(|p| p.answer_at).min();
        let expiry = self.expiries.peek().map(|Reverse((at, _))| *at);
        answer.into_iter().chain(expiry).min()
    }
    pub fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        while let Some(Reverse((at, id))) = self.expiries.peek().cloned() {
            if at > now {
                break;
            }
            self.expiries.pop();
            let current = self
                .sessions
                .get(&id)
                .and_then(|s| s.timer.as_ref())
                .map(SessionTimer::deadline);
            if current == Some(at) {
                warn!(call_id = %id.call_id, "session timer expired without a refresh: ending the recording");
                self.hang_up(now, endpoint, &id, EndReason::SessionExpired);
            }
        }
        let due: Vec<TransactionKey> = self
            .pending
            .iter()
            .filter(|(_, p)| p.answer_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(p) = self.pending.remove(&key) {
                self.answer(now, endpoint, key, p.request, p.from, p.offer);
            }
        }
    }
    /// What the media plane reports: key presses and streams that went silent.
    pub fn handle_media_event(&mut self, now: Instant, endpoint: &mut Endpoint, event: MediaEvent) {
        match event {
            MediaEvent::Dtmf {
                leg,
                digit,
                offset_ms,
                duration_ms,
            } => {
                let Some((id, label)) = self.legs.get(&leg) else {
                    return;
                };
                let Some(session) = self.sessions.get_mut(id) else {
                    return;
                };
                debug!(recording_id = %session.recording_id, leg = %label, "DTMF");
                let seq = session.next_dtmf_seq();
                self.archive.send(ArchiveCommand::Dtmf {
                    recording_id: session.recording_id.clone(),
                    event: catalog::DtmfEvent {
                        seq,
                        digit: digit.to_string(),
                        leg: label.clone(),
                        offset_ms: offset_ms as i64,
                        duration_ms: duration_ms as i64,
                        source: catalog::DtmfSource::Rfc4733,
                    },
                });
            }
            MediaEvent::Inactive { leg, silent_for } => {
                let Some((id, label)) = self.legs.get(&leg).cloned() else {
                    return;
                };
                warn!(
                    call_id = %id.call_id,
                    leg = %label,
                    silent_ms = silent_for.as_millis() as u64,
                    "no RTP on an active stream: ending the recording"
                );
                self.hang_up(now, endpoint, &id, EndReason::RtpTimeout);
            }
            _ => {}
        }
    }
    pub fn handle_event(&mut self, now: Instant, endpoint: &mut Endpoint, event: Event) {
        match event {
            Event::Request { key, request, from } => {
                self.handle_request(now, endpoint, key, request, from)
            }
            Event::Ack { request, .. } => {
                debug!(call_id = %request.call_id(), "ACK");
            }
            Event::Cancelled { key } => {
                if let Some(p) = self.pending.remove(&key) {
                    info!(call_id = %p.request.call_id(), "CANCEL before answer");
                    let response = p.request.response(487);
                    endpoint.respond(now, &key, response);
                }
            }
            Event::AckTimeout { call_id, .. } => {
                if let Some(id) = self.by_call_id.get(&call_id).cloned() {
                    warn!(call_id = %call_id, "no ACK for our 200 OK: ending the recording");
                    self.end_session(now, &id, EndReason::AckTimeout);
                }
            }
            Event::Response { .. } => {}
        }
    }
    fn handle_request(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        from: Peer,
    ) {
        let in_dialog = request.to_tag().is_some();
        let method = request.method().clone();
        if in_dialog {
            let Some(id) =
                dialog_id_of_request(&request).filter(|id| self.sessions.contains_key(id))
            else {
                // RFC 3261 §12.2.2: a request within a dialog we do not know.
                let status = if method == Method::Options { 200 } else { 481 };
                let response = self.with_capabilities(request.response(status));
                endpoint.respond(now, &key, response);
                return;
            };
            self.handle_in_dialog(now, endpoint, key, request, id);
            return;
        }
        match method {
            Method::Invite => self.handle_invite(now, endpoint, key, request, from),
            Method::Options => {
                let response = self.with_capabilities(request.response(200));
                endpoint.respond(now, &key, response);
            }
            Method::Bye | Method::Info | Method::Update | Method::Prack => {
                endpoint.respond(now, &key, request.response(481));
            }
            _ => {
                let response = request.response(405).with_header("Allow", ALLOW);
                endpoint.respond(now, &key, response);
            }
        }
    }
    /// The RTP port range is exhausted: the client should retry (here later, or another node).
    fn no_media_ports(&self, request: &Request) -> Response {
        request
            .response(503)
            .with_reason("No Media Ports")
            .with_header("Retry-After", self.config.retry_after_secs.to_string())
    }
    fn with_capabilities(&self, response: Response) -> Response {
        response
            .with_header("Allow", ALLOW)
            .with_header("Accept", ACCEPT)
            .with_header("Supported", "siprec")
            .with_header("Server", self.config.user_agent.clone())
    }
    fn contact(&self, transport: TransportKind) -> String {
        match transport {
            TransportKind::Udp => format!("<sip:callvault@{}>;+sip.srs", self.config.contact_host),
            _ => format!(
                "<sip:callvault@{};transport={}>;+sip.srs",
                self.config.contact_host,
                transport.as_str()
            ),
        }
    }
    /// Ends a session from our side: BYE to the client, then the legs are closed.
    fn hang_up(&mut self, now: Instant, endpoint: &mut Endpoint, id: &DialogId, reason: EndReason) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let bye = session.dialog.make_request(Method::Bye);
        let peer = peer_for_in_dialog_request(&session.dialog, session.peer);
        endpoint.send_request(now, peer, bye);
        self.end_session(now, id, reason);
    }
    fn end_session(&mut self, now: Instant, id: &DialogId, reason: EndReason) {
        let Some(session) = self.sessions.remove(id) else {
            return;
        };
        self.by_call_id.remove(&id.call_id);
        for leg in &session.legs {
            if let LegSlot::Recording { handle, .. } = leg {
                self.legs.remove(&handle.id());
            }
        }
        self.gauges
            .active_sessions
            .store(self.sessions.len(), Ordering::Relaxed);
        let duration = now.saturating_duration_since(session.anchor);
        let ended_at = session.started_at + duration;
        // A leg's position is its m-line's index, as catalogued.
        let receivers: Vec<_> = (0_i64..)
            .zip(session.legs)
            .filter_map(|(position, leg)| match leg {
                LegSlot::Recording { handle, .. } => {
                    Some((position, self.media.stop_leg(handle, now)))
                }
                LegSlot::Declined => None,
            })
            .collect();
        let archive = self.archive.clone();
        let recording_id = session.recording_id;
        let call_id = id.call_id.clone();
        let task = tokio::spawn(async move {
            let mut legs = Vec::with_capacity(receivers.len());
            let mut warnings = Vec::new();
            let mut failed = false;
            for (position, receiver) in receivers {
                match receiver.await {
                    Ok(report) => {
                        if let Some(error) = &report.error {
                            failed = true;
                            warnings.push(format!("leg {}: {error}", report.label));
                        }
                        legs.push(completion_of(position, &report));
                    }
                    Err(_) => {
                        failed = true;
                        warnings.push(format!("leg at m-line {position}: no report"));
                    }
                }
            }
            info!(
                call_id = %call_id,
                recording_id = %recording_id,
                duration_ms = duration.as_millis() as u64,
                reason = %reason,
                "recording complete"
            );
            archive.send(ArchiveCommand::Complete(catalog::Completion {
                recording_id,
                state: if failed {
                    catalog::RecordingState::Failed
                } else if reason == EndReason::Shutdown {
                    // The call went on without us: what we hold is only part of it.
                    catalog::RecordingState::Interrupted
                } else {
                    catalog::RecordingState::Complete
                },
                ended_at,
                duration_ms: duration.as_millis() as i64,
                end_reason: reason,
                legs,
                warnings,
            }));
        });
        let _ = self.closing.send(task);
    }
    fn stop_legs(&self, legs: Vec<LegSlot>, now: Instant) {
        for leg in legs {
            if let LegSlot::Recording { handle, .. } = leg {
                drop(self.media.stop_leg(handle, now));
            }
        }
    }
    /// Ends every session (shutdown): legs are closed and the catalog told why.
    pub fn end_all(&mut self, now: Instant, reason: EndReason) {
        let ids: Vec<DialogId> = self.sessions.keys().cloned().collect();
        for id in ids {
            self.end_session(now, &id, reason);
        }
    }
}

fn completion_of(position: i64, report: &LegReport) -> catalog::LegCompletion {
    catalog::LegCompletion {
        position,
        samples: report.samples as i64,
        sha256: report.sha256.clone(),
        error: report.error.clone(),
        counters: catalog::LegCounters {
            packets: report.packets,
            lost: report.lost,
            duplicates: report.duplicates,
            out_of_order: report.out_of_order,
            late: report.late,
            unknown_payload: report.unknown_payload,
            comfort_noise: report.comfort_noise,
            telephone_events: report.telephone_events,
            dtmf_digits: report.dtmf_digits,
            telephone_events_other: report.telephone_events_other,
            telephone_events_malformed: report.telephone_events_malformed,
            malformed: report.malformed,
            rtcp_packets: report.rtcp,
            while_inactive: report.while_inactive,
            ssrc_changes: report.ssrc_changes,
            reanchors: report.reanchors,
            blocks_dropped: report.blocks_dropped,
            silence_filled: report.silence_filled,
            jitter_ms: Some(report.jitter_ms),
            gaps_filled_ms: report.gaps_filled_ms,
            ssrcs_seen: report.ssrcs_seen,
            codec_changes: report.codec_changes,
            resampled_packets: report.resampled_packets,
            decode_errors: report.decode_errors,
            ..catalog::LegCounters::default()
        },
    }
}

/// A reason phrase must be one line of text; error messages are folded into one.
fn reason_phrase(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    one_line.trim().to_owned()
}

fn rand_u32() -> u32 {
    // The SDP o= session id only has to be unique per answer; a v4 UUID's randomness is enough.
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_phrases_are_one_line() {
        assert_eq!(reason_phrase("bad\r\nthing\t"), "bad  thing");
    }
}
