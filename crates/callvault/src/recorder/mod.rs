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

use callvault_catalog as catalog;
use callvault_media::{LegId, LegReport, MediaEngine, MediaEvent};
use callvault_sip::{
    DialogId, Endpoint, Event, Method, Peer, Request, Response, SessionTimer, SessionTimerConfig,
    TransactionKey, TransportKind, dialog_id_of_request, peer_for_in_dialog_request,
};
use callvault_siprec::Limits;
use time::OffsetDateTime;
use tracing::{debug, info, warn};

use self::session::{LegSlot, Pending, Session};
use crate::archive::{ArchiveCommand, ArchiveQueue};

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
    gauges: Arc<RecorderGauges>,
    sessions: HashMap<DialogId, Session>,
    /// Call-ID → dialog, for events that carry only the Call-ID (ACK timeout).
    by_call_id: HashMap<String, DialogId>,
    /// INVITEs held for `answer_delay`, cancellable until answered.
    pending: HashMap<TransactionKey, Pending>,
    /// Media events name legs; this finds their session and label.
    legs: HashMap<LegId, (DialogId, String)>,
    /// Legs stopped and not yet closed by the media plane → the recording they complete.
    closing_legs: HashMap<LegId, String>,
    /// Ended recordings waiting for their legs' `LegClosed`, by recording id.
    completions: HashMap<String, PendingCompletion>,
    /// Session-timer deadlines, earliest first. Entries go stale when a session is refreshed
    /// or ends; a popped entry is checked against the session before it acts.
    expiries: BinaryHeap<Reverse<(Instant, DialogId)>>,
}

impl Recorder {
    pub fn new(
        config: RecorderConfig,
        media: Arc<MediaEngine>,
        archive: ArchiveQueue,
        gauges: Arc<RecorderGauges>,
    ) -> Recorder {
        Recorder {
            config,
            media,
            archive,
            gauges,
            sessions: HashMap::new(),
            by_call_id: HashMap::new(),
            pending: HashMap::new(),
            legs: HashMap::new(),
            closing_legs: HashMap::new(),
            completions: HashMap::new(),
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
                self.hang_up(now, endpoint, &id, "session-expired");
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
    /// What the media plane reports: key presses, streams that went silent, failed files and
    /// closed legs.
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
                let Some(session) = self.sessions.get(id) else {
                    return;
                };
                debug!(recording_id = %session.recording_id, leg = %label, "DTMF");
                self.archive.send(ArchiveCommand::Dtmf {
                    recording_id: session.recording_id.clone(),
                    event: catalog::DtmfEvent {
                        digit: digit.to_string(),
                        leg: label.clone(),
                        offset_ms: offset_ms as i64,
                        duration_ms: duration_ms as i64,
                        source: "rfc4733".to_owned(),
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
                self.hang_up(now, endpoint, &id, "rtp-timeout");
            }
            MediaEvent::LegFailed { leg, error } => {
                let (call_id, label) = self
                    .legs
                    .get(&leg)
                    .map(|(id, label)| (id.call_id.as_str(), label.as_str()))
                    .unwrap_or_default();
                warn!(%call_id, leg = %label, %error, "leg file failed; the recording will be marked failed");
            }
            MediaEvent::LegClosed { leg, report } => self.handle_leg_closed(leg, &report),
            _ => {}
        }
    }
    /// A stopped leg's file is closed: its recording is complete once all its legs are.
    fn handle_leg_closed(&mut self, leg: LegId, report: &LegReport) {
        let Some(recording_id) = self.closing_legs.remove(&leg) else {
            // A leg stopped outside a session's end (an answer that failed half-way).
            return;
        };
        let Some(pending) = self.completions.get_mut(&recording_id) else {
            return;
        };
        pending.failed |= report.error.is_some();
        pending.completion.legs.push(completion_of(report));
        pending.remaining -= 1;
        if pending.remaining == 0
            && let Some(pending) = self.completions.remove(&recording_id)
        {
            self.complete(pending);
        }
    }
    fn complete(&self, pending: PendingCompletion) {
        let PendingCompletion {
            call_id,
            mut completion,
            failed,
            ..
        } = pending;
        if failed {
            completion.state = catalog::RecordingState::Failed;
        }
        info!(
            call_id = %call_id,
            recording_id = %completion.recording_id,
            duration_ms = completion.duration_ms,
            reason = %completion.end_reason,
            "recording complete"
        );
        self.archive.send(ArchiveCommand::Complete(completion));
    }
    /// Legs are still being closed (the driver waits for them at shutdown).
    pub fn is_closing(&self) -> bool {
        !self.completions.is_empty()
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
                    self.end_session(now, &id, "ack-timeout");
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
    fn hang_up(&mut self, now: Instant, endpoint: &mut Endpoint, id: &DialogId, reason: &str) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        let bye = session.dialog.make_request(Method::Bye);
        let peer = peer_for_in_dialog_request(&session.dialog, session.peer);
        endpoint.send_request(now, peer, bye);
        self.end_session(now, id, reason);
    }
    fn end_session(&mut self, now: Instant, id: &DialogId, reason: &str) {
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
        let ended_at: OffsetDateTime = session.started_at + duration;
        let recording_id = session.recording_id;
        let mut remaining = 0;
        for leg in session.legs {
            if let LegSlot::Recording { handle, .. } = leg {
                self.closing_legs.insert(handle.id(), recording_id.clone());
                self.media.stop_leg(handle, now);
                remaining += 1;
            }
        }
        let pending = PendingCompletion {
            call_id: id.call_id.clone(),
            remaining,
            failed: false,
            completion: catalog::Completion {
                recording_id: recording_id.clone(),
                state: if reason == "shutdown" {
                    // The call went on without us: what we hold is only part of it.
                    catalog::RecordingState::Interrupted
                } else {
                    catalog::RecordingState::Complete
                },
                ended_at,
                duration_ms: duration.as_millis() as i64,
                end_reason: reason.to_owned(),
                legs: Vec::with_capacity(remaining),
            },
        };
        if remaining == 0 {
            self.complete(pending);
        } else {
            self.completions.insert(recording_id, pending);
        }
    }
    fn stop_legs(&self, legs: Vec<LegSlot>, now: Instant) {
        for leg in legs {
            if let LegSlot::Recording { handle, .. } = leg {
                self.media.stop_leg(handle, now);
            }
        }
    }
    /// Ends every session (shutdown): legs are closed and the catalog told why.
    pub fn end_all(&mut self, now: Instant, reason: &str) {
        let ids: Vec<DialogId> = self.sessions.keys().cloned().collect();
        for id in ids {
            self.end_session(now, &id, reason);
        }
    }
}

/// An ended recording whose legs the media plane is closing.
struct PendingCompletion {
    call_id: String,
    /// Legs whose `LegClosed` has not come yet.
    remaining: usize,
    /// A leg's file failed: the recording is `failed`.
    failed: bool,
    completion: catalog::Completion,
}

fn completion_of(report: &LegReport) -> catalog::LegCompletion {
    let counters = &report.counters;
    catalog::LegCompletion {
        label: report.label.clone(),
        packets: counters.packets as i64,
        lost: counters.lost as i64,
        duplicates: counters.duplicates as i64,
        out_of_order: counters.out_of_order as i64,
        late: counters.late as i64,
        samples: report.samples as i64,
        sha256: report.sha256.clone(),
        // Unknown (fewer than two audio packets) is stored as such.
        jitter_ms: counters.jitter_ms.unwrap_or(f64::NAN),
        gaps_filled_ms: counters.gaps_filled_ms as i64,
        ssrcs_seen: counters.ssrcs_seen as i64,
        codec_changes: counters.codec_changes as i64,
        unknown_payload: counters.unknown_payload as i64,
        rtcp_packets: counters.rtcp_packets as i64,
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
