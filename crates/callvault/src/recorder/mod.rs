//! The recording server's transaction user: it turns SIP events into recording sessions.
//!
//! # Design note
//!
//! **Sans-IO, like the SIP endpoint.** The recorder is a state machine: inputs are SIP events
//! (from [`Endpoint::poll_event`]), media reports ([`MediaEvent`]), timeouts and the storage
//! verdict, each with the time as an input ([`Now`]); outputs are responses and requests through
//! the endpoint, calls on the [`MediaPlane`] (which return at once), and catalog writes queued for
//! [`Recorder::poll_archive`]. It never reads a clock, never spawns a task and never waits, so
//! every call rule (CANCEL during the answer delay, RTP inactivity, session expiry, maximum
//! duration and hold, the Call-ID hijack, shutdown) is tested on virtual time in `tests.rs`.
//!
//! **One index.** [`sessions::Sessions`] holds the live sessions and every way to find one — by
//! dialog, by leg, by an INVITE transaction awaiting its ACK — plus one deadline per session, so
//! nothing can outlive the session it belongs to. Events are keyed by transaction or dialog,
//! never by a Call-ID alone: anyone can send a Call-ID.
//!
//! **Endings.** A session ends on the client's BYE, or from our side (RTP inactivity, session
//! timer, maximum duration or hold, a leg that cannot be written, our 2xx never ACKed, shutdown):
//! then we send BYE with a `Reason` header. Its legs are stopped at that instant; the catalog's
//! completion is written when the media plane has closed the last of their files.
//!
//! **Files.** Each leg's file name is chosen once, when the leg starts, from the names the session
//! has ever used: a stream added later never takes an earlier one's name. A leg's catalog key is
//! its m-line position, not its label (labels repeat).
//!
//! **SRTP (SDES).** An m-line offered `RTP/SAVP(F)` with an `a=crypto` line we accept is recorded
//! like a plain one: the SRC's keying goes to the leg ([`LegSpec::srtp`]), which decrypts before
//! the timeline, and the answer carries one crypto line with the offer's tag and a key of ours
//! from the OS random source (never used: we send nothing, but RFC 4568 wants one). A re-offer
//! re-keys the leg ([`LegUpdate::srtp`]); our key stays while the suite does. DTLS-SRTP and
//! offers with no usable crypto line are declined: the m-line port 0 with a warning on the
//! recording, or 488 with the reason when nothing else is recordable. Keys live in the session
//! in memory only: never in the catalog, the metadata files or a log line (suites only).
//!
//! [`LegSpec::srtp`]: callvault_media::LegSpec::srtp
//! [`LegUpdate::srtp`]: callvault_media::LegUpdate::srtp

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use callvault_catalog as catalog;
use callvault_media::MediaEvent;
use callvault_sip::{
    Endpoint, Event, Method, Peer, Request, Response, SessionTimerConfig, TransactionKey,
    TransportKind, dialog_id_of_request, local_contact_uri,
};
use callvault_siprec::Limits;
use callvault_types::{DtmfSource, EndReason, RecordingMode};
use time::OffsetDateTime;
use tracing::{debug, info, warn};

use self::admission::{SourceAdmission, SourceLimits};
use self::session::CallLimits;
use self::sessions::{Due, Sessions};
use crate::archive::ArchiveCommand;
use crate::metrics::CallMetrics;
use crate::routes::{Routes, is_recording_session};
use crate::tenants::Tenants;

pub use self::control::ControlError;
pub use self::media::MediaPlane;

mod admission;
mod answer;
mod control;
mod ending;
mod media;
mod parties;
mod passthrough;
mod reoffer;
mod session;
mod sessions;
#[cfg(test)]
mod tests;

/// Codecs we record; each m-line is answered with the first of these the client offers, in the
/// client's order of preference. G.729 only in a build with the `g729` feature: without it
/// `codec_of` does not know it, so it is declined like any codec we do not decode.
const SUPPORTED_CODECS: &[&str] = &["PCMU", "PCMA", "G722", "OPUS", "G729", "G729A", "L16"];
/// The 200 OK's header naming the recording (the README's contract with clients).
pub const RECORDING_ID_HEADER: &str = "X-Callvault-Recording-Id";
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
    /// Our SIP address (UDP and TCP), for Contact.
    pub contact_host: String,
    /// Our SIP over TLS address, for the Contact of dialogs over TLS.
    pub tls_contact_host: Option<String>,
    pub user_agent: String,
    /// Keep DTMF digits (RFC 4733 and SIP INFO). Off where card digits must not be stored.
    pub capture_dtmf: bool,
    /// An active stream without RTP for this long ends the recording (BYE to the client).
    pub rtp_timeout: Option<Duration>,
    pub session_timer: SessionTimerConfig,
    /// A call is ended (BYE) this long after its answer.
    pub max_call_duration: Option<Duration>,
    /// A call whose every stream has been on hold this long is ended (BYE).
    pub max_hold: Option<Duration>,
    /// Formats with a higher clock rate are not accepted (a call of inactive high-rate streams
    /// would otherwise write silence at megabytes a second).
    pub max_sample_rate: u32,
    /// This node's id, stored with each recording it makes.
    pub node_id: String,
    /// Sessions one source address may hold (live and held); `usize::MAX`: no limit of its own.
    pub max_sessions_per_source: usize,
    /// New INVITEs per second from one source (token bucket); 0: no limit.
    pub invites_per_second_per_source: u32,
    /// DTMF digits stored per recording; later ones are dropped and counted.
    pub max_dtmf_per_recording: u32,
    /// Metadata revisions stored per recording; later ones are answered, not stored.
    pub max_metadata_revisions: u32,
    /// `[[tenants]]`: the tenant each recording belongs to, decided at its answer.
    pub tenants: Tenants,
    /// `[[routes]]`: INVITEs that are not recording sessions go through us to a route's target
    /// (`passthrough`); none: every INVITE is a SIPREC recording session.
    pub routes: Routes,
}

/// The time, as an input: the monotonic instant that orders everything, and the wall clock
/// that is stored.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub at: Instant,
    pub wall: OffsetDateTime,
}

impl Now {
    /// Reads both clocks; only the driver calls it.
    pub fn system() -> Now {
        Now {
            at: Instant::now(),
            wall: OffsetDateTime::now_utc(),
        }
    }

    /// `later` after this instant, on both clocks.
    #[cfg(test)]
    pub fn after(self, later: Duration) -> Now {
        Now {
            at: self.at + later,
            wall: self.wall + later,
        }
    }
}

/// Counters shared with `/health` and `/metrics`; written only by the recorder.
#[derive(Debug, Default)]
pub struct RecorderGauges {
    pub active_sessions: AtomicUsize,
    pub closing_sessions: AtomicUsize,
    pub sessions_total: AtomicUsize,
    pub rejected_total: AtomicUsize,
    /// INVITEs refused because storage (disk or catalog) was unhealthy.
    pub refused_storage_total: AtomicUsize,
    /// Sessions we ended with a BYE of our own (timeouts, limits, failures, shutdown).
    pub hangups_total: AtomicUsize,
    pub legs_failed_total: AtomicUsize,
    /// INVITEs refused because their source was over its own limit (sessions or rate).
    pub refused_source_total: AtomicUsize,
    /// Digits and metadata revisions not stored because a recording reached its cap.
    pub capped_total: AtomicUsize,
    /// The labelled families (calls by mode and source, recordings by end reason, setup and
    /// duration histograms), shared with the driver and `/metrics`.
    pub calls: Arc<CallMetrics>,
}

impl RecorderGauges {
    /// Gauges whose families name sources after `calls`' allow-list.
    pub fn new(calls: Arc<CallMetrics>) -> RecorderGauges {
        RecorderGauges {
            calls,
            ..RecorderGauges::default()
        }
    }
}

/// Why new calls are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Refusal {
    /// Shutting down: every session gets a BYE, nothing new starts.
    Draining,
    /// Taken out of its recording-server group (`callvault drain`): nothing new starts, the
    /// calls in progress go on to their end.
    Drained,
    /// Disk or catalog unhealthy; the text says which.
    Storage(String),
    /// `max_sessions` calls are up.
    Full,
}

pub struct Recorder<M: MediaPlane> {
    config: RecorderConfig,
    limits: CallLimits,
    sources: SourceAdmission,
    media: M,
    sessions: Sessions,
    /// Pass-through calls (B2BUA), apart from the SIPREC sessions.
    calls: passthrough::Calls<M::Reservation>,
    archive: VecDeque<ArchiveCommand>,
    gauges: Arc<RecorderGauges>,
    refusal: Option<Refusal>,
    /// Our BYEs still waiting for their answer (shutdown waits for them, up to a deadline).
    byes: Vec<TransactionKey>,
    /// Calls answered since the last [`Recorder::poll_answered`]: their mode and when their
    /// INVITE came in.
    answered: VecDeque<(RecordingMode, Instant)>,
    new_recording_id: Box<dyn FnMut() -> String + Send>,
}

impl<M: MediaPlane> Recorder<M> {
    pub fn new(config: RecorderConfig, media: M, gauges: Arc<RecorderGauges>) -> Recorder<M> {
        Recorder {
            limits: CallLimits {
                max_call_duration: config.max_call_duration,
                max_hold: config.max_hold,
            },
            sources: SourceAdmission::new(SourceLimits {
                max_sessions: config.max_sessions_per_source,
                invites_per_second: config.invites_per_second_per_source,
            }),
            config,
            media,
            sessions: Sessions::default(),
            calls: passthrough::Calls::default(),
            archive: VecDeque::new(),
            gauges,
            refusal: None,
            byes: Vec::new(),
            answered: VecDeque::new(),
            new_recording_id: Box::new(|| uuid::Uuid::now_v7().to_string()),
        }
    }

    /// Replaces how recording ids are made (tests want predictable ones).
    #[cfg(test)]
    pub fn with_recording_ids(mut self, ids: impl FnMut() -> String + Send + 'static) -> Self {
        self.new_recording_id = Box::new(ids);
        self
    }

    /// The next catalog write, in the order the recorder made them.
    pub fn poll_archive(&mut self) -> Option<ArchiveCommand> {
        self.archive.pop_front()
    }

    /// The next call whose 200 OK to the caller was just queued: its mode and when its INVITE
    /// came in. The driver takes them once it has handed that 200 to the transports, and
    /// measures the call's setup time on the real clock (the recorder's time stands still
    /// while it answers).
    pub fn poll_answered(&mut self) -> Option<(RecordingMode, Instant)> {
        self.answered.pop_front()
    }

    /// The next instant the recorder must be woken: a held INVITE to answer, a session limit.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions.next_deadline()
    }

    pub fn handle_timeout(&mut self, now: Now, endpoint: &mut Endpoint) {
        while let Some(due) = self.sessions.pop_due(now.at) {
            match due {
                Due::Answer(id) => {
                    if let Some(pending) = self.sessions.take_held(id) {
                        self.answer(
                            now,
                            endpoint,
                            pending.key,
                            pending.request,
                            pending.from,
                            pending.offer,
                            pending.received_at,
                        );
                    }
                }
                Due::Session(key) => {
                    if let Some(reason) = self.sessions.due_reason(key, now.at, &self.limits) {
                        if let Some(session) = self.sessions.get(key) {
                            warn!(
                                call_id = %session.dialog.id().call_id,
                                recording_id = %session.recording_id,
                                %reason,
                                "ending the recording from our side"
                            );
                        }
                        self.hang_up(now, endpoint, key, reason);
                    }
                }
            }
        }
    }

    /// Whether storage (disk and catalog) can take new recordings: `Err(why)` refuses new
    /// INVITEs (and OPTIONS) with 503 until it is `Ok` again. Calls in progress go on.
    pub fn set_storage(&mut self, verdict: Result<(), String>) {
        if matches!(self.refusal, Some(Refusal::Draining | Refusal::Drained)) {
            return;
        }
        let refusal = verdict.err().map(Refusal::Storage);
        if refusal != self.refusal {
            match &refusal {
                Some(Refusal::Storage(why)) => {
                    warn!(reason = %why, "storage unhealthy: new recordings refused (503) until it recovers")
                }
                _ => info!("storage healthy: taking new recordings"),
            }
            self.refusal = refusal;
        }
    }

    /// Drain (`callvault drain`, SIGUSR1): new calls and OPTIONS are refused with 503 from now
    /// on, so the SBC's recording-server group sends them to the other nodes; the calls in
    /// progress are left alone to end as they would. `false` takes calls again (SIGUSR2).
    /// Shutdown, once begun, is not undone.
    pub fn set_drained(&mut self, drained: bool) {
        match (drained, &self.refusal) {
            (_, Some(Refusal::Draining)) => {}
            (true, _) => self.refusal = Some(Refusal::Drained),
            (false, Some(Refusal::Drained)) => self.refusal = None,
            (false, _) => {}
        }
    }

    /// Shutdown: new calls are refused, held INVITEs answered 503, and every session ended with a
    /// BYE. The driver keeps running until [`Recorder::is_drained`] (or its deadline).
    pub fn begin_shutdown(&mut self, now: Now, endpoint: &mut Endpoint) {
        self.refusal = Some(Refusal::Draining);
        for pending in self.sessions.drain_held() {
            let response = self.refused(&pending.request, &Refusal::Draining);
            endpoint.respond(now.at, &pending.key, response);
        }
        for key in self.sessions.keys() {
            self.hang_up(now, endpoint, key, EndReason::Shutdown);
        }
        self.passthrough_shutdown(now, endpoint);
    }

    /// No session live, every leg closed and its completion queued.
    pub fn is_drained(&self) -> bool {
        self.sessions.calls() == 0 && self.sessions.closing_len() == 0 && self.calls.is_empty()
    }

    /// Our BYEs without an answer yet.
    pub fn unanswered_byes(&self) -> usize {
        self.byes.len()
    }

    /// What the media plane reports: key presses, silent streams, failed and closed files.
    pub fn handle_media(&mut self, now: Now, endpoint: &mut Endpoint, event: MediaEvent) {
        let leg = match &event {
            MediaEvent::Dtmf { leg, .. }
            | MediaEvent::Inactive { leg, .. }
            | MediaEvent::LegFailed { leg, .. }
            | MediaEvent::LegClosed { leg, .. } => Some(*leg),
            _ => None,
        };
        if leg.is_some_and(|leg| self.calls.owns_leg(leg)) {
            self.passthrough_media(now, endpoint, event);
            return;
        }
        match event {
            MediaEvent::Dtmf {
                leg,
                digit,
                offset_ms,
                duration_ms,
            } => self.rfc4733_digit(leg, digit, offset_ms, duration_ms),
            MediaEvent::Inactive { leg, silent_for } => {
                let Some(key) = self.sessions.by_leg(leg) else {
                    return;
                };
                let Some(session) = self.sessions.get(key) else {
                    return;
                };
                warn!(
                    call_id = %session.dialog.id().call_id,
                    recording_id = %session.recording_id,
                    leg = session.label_of(leg).unwrap_or(""),
                    silent_ms = silent_for.as_millis() as u64,
                    "no RTP on an active stream: ending the recording"
                );
                self.hang_up(now, endpoint, key, EndReason::RtpTimeout);
            }
            MediaEvent::LegFailed { leg, error } => self.leg_failed(now, endpoint, leg, error),
            MediaEvent::LegClosed { leg, report } => self.leg_closed(leg, report),
            other => debug!(?other, "media event not for the recorder"),
        }
    }

    fn rfc4733_digit(
        &mut self,
        leg: callvault_media::LegId,
        digit: char,
        offset_ms: u64,
        duration_ms: u64,
    ) {
        if !self.config.capture_dtmf {
            return;
        }
        let Some(key) = self.sessions.by_leg(leg) else {
            return;
        };
        // Digits of a session that just ended still count: the media plane reports the last
        // press when the leg stops, before the leg's file is closed.
        let cap = i64::from(self.config.max_dtmf_per_recording);
        let offset = i64::try_from(offset_ms).unwrap_or(i64::MAX);
        let (recording_id, call_id, seq, label) = if let Some(session) = self.sessions.get_mut(key)
        {
            if control::in_pause(session, offset) {
                return;
            }
            let seq = session.dtmf_seq;
            session.dtmf_seq += 1;
            let label = session.label_of(leg).unwrap_or("").to_owned();
            let call_id = session.dialog.id().call_id.clone();
            (session.recording_id.clone(), call_id, seq, label)
        } else if let Some(closing) = self.sessions.closing_mut(key) {
            if closing
                .pauses
                .iter()
                .any(|(from, to)| (*from..*to).contains(&offset))
            {
                return;
            }
            let seq = closing.dtmf_seq;
            closing.dtmf_seq += 1;
            let label = closing.label(leg);
            let call_id = closing.call_id.clone();
            (closing.completion.recording_id.clone(), call_id, seq, label)
        } else {
            return;
        };
        if seq >= cap {
            over_cap(
                &self.gauges,
                &call_id,
                &recording_id,
                seq == cap,
                "DTMF digits",
            );
            return;
        }
        debug!(%call_id, %recording_id, "DTMF");
        self.archive.push_back(ArchiveCommand::Dtmf {
            recording_id,
            event: dtmf_event(
                seq,
                digit,
                &label,
                offset_ms,
                duration_ms,
                DtmfSource::Rfc4733,
            ),
        });
    }

    pub fn handle_sip(&mut self, now: Now, endpoint: &mut Endpoint, event: Event) {
        match event {
            Event::Request { key, request, from } => {
                self.handle_request(now, endpoint, key, request, from)
            }
            // The caller's ACK of our 2xx completes its side (the callee's 2xx was ACKed as it
            // came): nothing to do.
            Event::Ack { request, .. }
                if dialog_id_of_request(&request).is_some_and(|id| self.calls.owns_dialog(&id)) => {
            }
            Event::Cancelled { key } if self.calls.owns_ingress(&key) => {
                self.passthrough_cancelled(now, endpoint, &key)
            }
            Event::AckTimeout { key, .. } if self.calls.owns_ingress(&key) => {
                self.passthrough_ack_timeout(now, endpoint, &key)
            }
            Event::Response { key, response } if self.calls.owns_client(&key) => {
                self.passthrough_response(now, endpoint, key, response)
            }
            Event::Ack { request, .. } => {
                if let Some(key) =
                    dialog_id_of_request(&request).and_then(|id| self.sessions.by_dialog(&id))
                {
                    self.sessions.acked(key, request.cseq().0);
                }
            }
            Event::Cancelled { key } => {
                if let Some(pending) = self.sessions.cancel_held(&key) {
                    info!(call_id = %pending.request.call_id(), "CANCEL before answer");
                    endpoint.respond(now.at, &key, pending.request.response(487));
                }
            }
            Event::AckTimeout { key, .. } => {
                // Only the transaction that was answered 2xx names the session: an INVITE that
                // merely reuses a live call's Call-ID (and was refused) ends nothing.
                if let Some(session_key) = self.sessions.by_unacked_invite(&key) {
                    if let Some(session) = self.sessions.get(session_key) {
                        warn!(
                            call_id = %session.dialog.id().call_id,
                            recording_id = %session.recording_id,
                            "no ACK for our 2xx: ending the recording (RFC 3261 §13.3.1.4)"
                        );
                    }
                    self.hang_up(now, endpoint, session_key, EndReason::AckTimeout);
                }
            }
            Event::Response { key, response } => {
                let final_or_none = response.as_ref().is_none_or(|r| !r.is_provisional());
                if final_or_none {
                    self.byes.retain(|bye| *bye != key);
                }
            }
        }
    }

    fn handle_request(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        from: Peer,
    ) {
        let method = request.method().clone();
        if request.to_tag().is_some()
            && dialog_id_of_request(&request).is_some_and(|id| self.calls.owns_dialog(&id))
        {
            self.passthrough_in_dialog(now, endpoint, key, request);
            return;
        }
        if request.to_tag().is_some() {
            let Some(session_key) =
                dialog_id_of_request(&request).and_then(|id| self.sessions.by_dialog(&id))
            else {
                // RFC 3261 §12.2.2: a request within a dialog we do not know.
                let status = if method == Method::Options { 200 } else { 481 };
                let response = self.with_capabilities(request.response(status));
                endpoint.respond(now.at, &key, response);
                return;
            };
            self.handle_in_dialog(now, endpoint, key, request, session_key);
            return;
        }
        match method {
            Method::Invite if !self.config.routes.is_empty() && !is_recording_session(&request) => {
                self.passthrough_invite(now, endpoint, key, request, from)
            }
            Method::Invite => self.handle_invite(now, endpoint, key, request, from),
            Method::Options => {
                // An SBC's recording-server group pings with OPTIONS: a node that would refuse
                // an INVITE says so here too, so the SBC fails over before a call is lost.
                let response = match self.refusal_now() {
                    Some(refusal) => self.refused(&request, &refusal),
                    None => self.with_capabilities(request.response(200)),
                };
                endpoint.respond(now.at, &key, response);
            }
            Method::Bye | Method::Info | Method::Update | Method::Prack => {
                endpoint.respond(now.at, &key, request.response(481));
            }
            _ => {
                let response = request.response(405).with_header("Allow", ALLOW);
                endpoint.respond(now.at, &key, response);
            }
        }
    }

    /// Why a new call would be refused now, if it would.
    fn refusal_now(&self) -> Option<Refusal> {
        if let Some(refusal) = &self.refusal {
            return Some(refusal.clone());
        }
        (self.sessions.calls() + self.calls.live() >= self.config.max_sessions)
            .then_some(Refusal::Full)
    }

    /// Whether a new call (a recording session or a routed call) may start now: not while the
    /// node refuses calls, nor past its source's limits, which count both kinds of call. A call
    /// that may not is answered 503 here.
    fn admit_new_call(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: &TransactionKey,
        request: &Request,
        from: &Peer,
    ) -> bool {
        if let Some(refusal) = self.refusal_now() {
            warn!(call_id = %request.call_id(), ?refusal, "refusing the call: 503");
            self.gauges.rejected_total.fetch_add(1, Ordering::Relaxed);
            if matches!(refusal, Refusal::Storage(_)) {
                self.gauges
                    .refused_storage_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            endpoint.respond(now.at, key, self.refused(request, &refusal));
            return false;
        }
        let source = from.addr.ip();
        let held = self.sessions.calls_from(source) + self.calls.live_from(source);
        if self.sources.admit(now.at, source, held).is_err() {
            self.gauges.rejected_total.fetch_add(1, Ordering::Relaxed);
            self.gauges
                .refused_source_total
                .fetch_add(1, Ordering::Relaxed);
            self.gauges.calls.refused_for_source(source);
            let response = request
                .response(503)
                .with_reason("Source Over Its Limit")
                .with_header("Retry-After", self.config.retry_after_secs.to_string());
            endpoint.respond(now.at, key, response);
            return false;
        }
        true
    }

    /// The 503 for a refused call or OPTIONS: the client retries later or elsewhere.
    fn refused(&self, request: &Request, refusal: &Refusal) -> Response {
        let reason = match refusal {
            Refusal::Draining => "Shutting Down",
            Refusal::Drained => "Draining",
            Refusal::Storage(_) => "Storage Unavailable",
            Refusal::Full => "Service Unavailable",
        };
        request
            .response(503)
            .with_reason(reason)
            .with_header("Retry-After", self.config.retry_after_secs.to_string())
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

    /// Our Contact for the dialog `invite` creates: our address on its transport, which it
    /// names (`sips:` when the dialog is, RFC 3261 §12.1.1).
    fn contact(&self, invite: &Request, transport: TransportKind) -> String {
        let host = match (transport, &self.config.tls_contact_host) {
            (TransportKind::Tls, Some(tls)) => tls,
            _ => &self.config.contact_host,
        };
        format!(
            "<{}>;+sip.srs",
            local_contact_uri(invite, transport, "callvault", host)
        )
    }

    fn publish_gauges(&self) {
        self.gauges.active_sessions.store(
            self.sessions.live_len() + self.calls.live(),
            Ordering::Relaxed,
        );
        self.gauges
            .closing_sessions
            .store(self.sessions.closing_len(), Ordering::Relaxed);
    }
}

/// A digit for the catalog. `seq` numbers the recording's digits, so a write replayed after a
/// crash is recognised as the same digit.
fn dtmf_event(
    seq: i64,
    digit: char,
    leg: &str,
    offset_ms: u64,
    duration_ms: u64,
    source: DtmfSource,
) -> catalog::DtmfEvent {
    catalog::DtmfEvent {
        seq,
        digit: digit.to_string(),
        leg: leg.to_owned(),
        offset_ms: i64::try_from(offset_ms).unwrap_or(i64::MAX),
        duration_ms: i64::try_from(duration_ms).unwrap_or(i64::MAX),
        source,
    }
}

/// Something a recording would store is over its cap: counted, logged the first time.
fn over_cap(gauges: &RecorderGauges, call_id: &str, recording_id: &str, first: bool, what: &str) {
    gauges.capped_total.fetch_add(1, Ordering::Relaxed);
    if first {
        warn!(
            call_id,
            recording_id, what, "a recording reached its cap: no more of these are stored"
        );
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
