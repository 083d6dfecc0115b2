//! The recording server's transaction user: it turns SIP events into recording sessions.
//!
//! The recorder runs inside the SIP driver task and never waits: media ports are bound here
//! (a bind is microseconds), while WAV files are opened by the media writer thread and catalog
//! rows written by the catalog task, both fed by message. So a burst of INVITEs is answered at
//! the pace of parsing, not of the disk.
//!
//! One session per SIPREC dialog. The session owns its legs (one per offered m-line, declined
//! ones kept as placeholders so every later answer has the same m-lines in the same order).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use callvault_catalog as catalog;
use callvault_media::{
    Codec, LegHandle, LegId, LegReport, LegSpec, LegUpdate, MediaEngine, MediaEvent,
};
use callvault_sip::{
    Dialog, DialogId, Endpoint, Event, Method, Negotiation, Peer, Request, Response, SessionTimer,
    SessionTimerConfig, TransactionKey, TransportKind, dialog_id_of_request, parse_info_dtmf,
    peer_for_in_dialog_request,
};
use callvault_siprec::{
    self as siprec, AnswerParams, Format, Limits, MediaAnswer, Metadata, RecordingOffer, Sdp,
};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::archive::{ArchiveCommand, ArchiveQueue};

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
    /// Sessions whose legs are being closed; told to the driver so it can wait on shutdown.
    closing: mpsc::UnboundedSender<tokio::task::JoinHandle<()>>,
    /// Media events name legs; this finds their session and label.
    legs: HashMap<LegId, (DialogId, String)>,
    /// Session-timer deadlines, earliest first. Entries go stale when a session is refreshed
    /// or ends; a popped entry is checked against the session before it acts.
    expiries: BinaryHeap<Reverse<(Instant, DialogId)>>,
}

struct Pending {
    request: Request,
    from: Peer,
    offer: RecordingOffer,
    answer_at: Instant,
}

struct Session {
    recording_id: String,
    dialog: Dialog,
    /// Where the INVITE came from: our own requests (BYE) go back there.
    peer: Peer,
    /// The latest offer and metadata: a metadata-only UPDATE is bound against this SDP.
    sdp: Sdp,
    metadata: Option<Metadata>,
    timer: Option<SessionTimer>,
    legs: Vec<LegSlot>,
    sdp_session_id: u64,
    sdp_version: u64,
    anchor: Instant,
    started_at: OffsetDateTime,
    rel_dir: PathBuf,
    metadata_revisions: u32,
}

enum LegSlot {
    Recording {
        handle: LegHandle,
        port: u16,
        label: String,
        codec: Format,
        telephone_event: Option<Format>,
        /// False once the client set the m-line's port to 0 (stream removed): silence since.
        removed: bool,
    },
    Declined,
}

impl Recorder {
    pub fn new(
        config: RecorderConfig,
        media: Arc<MediaEngine>,
        archive: ArchiveQueue,
        gauges: Arc<RecorderGauges>,
        closing: mpsc::UnboundedSender<tokio::task::JoinHandle<()>>,
    ) -> Recorder {
        Recorder {
            config,
            media,
            archive,
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

    fn handle_invite(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        from: Peer,
    ) {
        let call_id = request.call_id().to_owned();
        info!(call_id = %call_id, from = %from.addr, transport = from.transport.as_str(), "INVITE");
        if self.sessions.len() + self.pending.len() >= self.config.max_sessions {
            warn!(call_id = %call_id, "node full: 503");
            self.gauges.rejected_total.fetch_add(1, Ordering::Relaxed);
            let response = request
                .response(503)
                .with_header("Retry-After", self.config.retry_after_secs.to_string());
            endpoint.respond(now, &key, response);
            return;
        }
        let offer =
            match siprec::parse_body(request.content_type(), request.body(), &self.config.limits) {
                Ok(offer) => offer,
                Err(error) => {
                    warn!(call_id = %call_id, %error, "offer refused");
                    self.gauges.rejected_total.fetch_add(1, Ordering::Relaxed);
                    let response = request
                        .response(error.sip_status())
                        .with_reason(&reason_phrase(&error.to_string()));
                    let response = if error.sip_status() == 415 {
                        response.with_header("Accept", ACCEPT)
                    } else {
                        response
                    };
                    endpoint.respond(now, &key, response);
                    return;
                }
            };
        if offer.sdp.is_none() {
            // RFC 7866 §6.1.1: a recording session needs media; an offerless INVITE would
            // need us to make the offer, which no recording client expects.
            let response = request.response(488).with_reason("SDP offer required");
            endpoint.respond(now, &key, response);
            return;
        }
        if let Negotiation::TooSmall { min_se } =
            callvault_sip::session_timer::negotiate(&request, &self.config.session_timer, now)
        {
            // RFC 4028 §8.2: below our minimum, the client must retry with a larger interval.
            let response = request
                .response(422)
                .with_header("Min-SE", min_se.as_secs().to_string());
            endpoint.respond(now, &key, response);
            return;
        }
        if self.config.answer_delay.is_zero() {
            self.answer(now, endpoint, key, request, from, offer);
        } else {
            endpoint.respond(now, &key, request.response(180));
            let answer_at = now + self.config.answer_delay;
            self.pending.insert(
                key,
                Pending {
                    request,
                    from,
                    offer,
                    answer_at,
                },
            );
        }
    }

    /// Allocates ports, starts the legs and sends the 200 OK: the moment of the answer is
    /// offset 0 of every leg.
    fn answer(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        from: Peer,
        offer: RecordingOffer,
    ) {
        let call_id = request.call_id().to_owned();
        let sdp = offer
            .sdp
            .as_ref()
            .expect("answer is only called with an SDP offer");
        let recording_id = uuid::Uuid::now_v7().to_string();
        let started_at = OffsetDateTime::now_utc();
        let rel_dir = PathBuf::from(format!(
            "recordings/{:04}/{:02}/{:02}/{recording_id}",
            started_at.year(),
            u8::from(started_at.month()),
            started_at.day()
        ));
        let bindings = siprec::bind_streams(sdp, offer.metadata.as_ref());

        let mut legs = Vec::with_capacity(sdp.media.len());
        let mut new_legs = Vec::new();
        let mut warnings: Vec<String> = offer
            .metadata
            .as_ref()
            .map(|m| m.warnings.clone())
            .unwrap_or_default();
        let mut used_names = Vec::new();
        for (index, media) in sdp.media.iter().enumerate() {
            let binding = bindings.iter().find(|b| b.media_index == index);
            let label = binding
                .map(|b| b.label.clone())
                .unwrap_or_else(|| index.to_string());
            match self.start_leg(media, &label, &rel_dir, &mut used_names, now, 0) {
                Ok(Some((slot, new_leg))) => {
                    let mut new_leg = new_leg;
                    new_leg.participant = binding.and_then(|b| b.participant_id.clone());
                    new_leg.binding_rule = binding
                        .map(|b| b.rule.as_str())
                        .unwrap_or("unbound")
                        .to_owned();
                    legs.push(slot);
                    new_legs.push(new_leg);
                }
                Ok(None) => {
                    warnings.push(format!(
                        "m-line {index} ({} {} {}) declined: nothing this server can record",
                        media.kind,
                        media.protocol,
                        format_names(&media.formats)
                    ));
                    legs.push(LegSlot::Declined);
                }
                Err(error) => {
                    // Ports ran out: give back what this call took and ask the client to retry.
                    warn!(call_id = %call_id, %error, "cannot allocate media: 503");
                    self.stop_legs(legs, now);
                    self.gauges.rejected_total.fetch_add(1, Ordering::Relaxed);
                    endpoint.respond(now, &key, self.no_media_ports(&request));
                    return;
                }
            }
        }
        if new_legs.is_empty() {
            let response = request
                .response(488)
                .with_reason("No Recordable Audio Stream")
                .with_header("Accept", ACCEPT);
            endpoint.respond(now, &key, response);
            return;
        }

        let sdp_session_id = u64::from(rand_u32());
        let answer_sdp = self.build_answer(sdp, &legs, sdp_session_id, 1);
        let local_tag = endpoint.new_tag();
        let contact = self.contact(from.transport);
        let dialog = Dialog::new_uas(&request, local_tag.clone(), contact.clone());
        let timer = match callvault_sip::session_timer::negotiate(
            &request,
            &self.config.session_timer,
            now,
        ) {
            Negotiation::Accepted(timer) => Some(timer),
            _ => None,
        };
        let mut response = self
            .with_capabilities(request.response(200))
            .with_to_tag(&local_tag)
            .with_header("Contact", contact);
        for (name, value) in timer.iter().flat_map(SessionTimer::response_headers) {
            response = response.with_header(name, value);
        }
        let response = response.with_body("application/sdp", answer_sdp.into_bytes());
        endpoint.respond(now, &key, response);

        // Everything below is bookkeeping handed to other threads.
        let participants = participants_of(&request, &offer);
        let (from_party, to_party) = parties(&request, &offer, &new_legs);
        let mut correlation_ids: Vec<(String, String)> = offer
            .metadata
            .as_ref()
            .map(|m| {
                m.correlation_ids
                    .iter()
                    .map(|c| (c.kind.clone(), c.value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        correlation_ids.extend(
            siprec::correlation_from_headers(request.headers())
                .into_iter()
                .map(|c| (c.kind, c.value)),
        );
        let session_id = offer
            .metadata
            .as_ref()
            .and_then(|m| m.sessions.first())
            .map(|s| s.id.clone())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let metadata = offer
            .raw_metadata
            .as_ref()
            .map(|xml| catalog::NewMetadataRevision {
                received_at: started_at,
                datamode: offer.metadata.as_ref().and_then(|m| m.datamode.clone()),
                raw_xml: xml.clone(),
                participants: participants.clone(),
            });
        if let Some(xml) = &offer.raw_metadata {
            self.archive.send(ArchiveCommand::WriteFile {
                path: rel_dir.join("metadata-1.xml"),
                bytes: xml.clone().into_bytes(),
            });
        }
        let dialog_id = dialog.id().clone();
        info!(
            call_id = %call_id,
            recording_id = %recording_id,
            legs = new_legs.len(),
            "answered: recording"
        );
        self.archive
            .send(ArchiveCommand::Insert(Box::new(catalog::NewRecording {
                id: recording_id.clone(),
                session_id,
                ingress_call_id: call_id.clone(),
                egress_call_id: None,
                from: from_party,
                to: to_party,
                started_at,
                participants,
                legs: new_legs,
                metadata,
                correlation_ids,
                warnings,
                source_address: from.addr.to_string(),
                transport: from.transport.as_str().to_owned(),
            })));
        self.by_call_id.insert(call_id, dialog_id.clone());
        for leg in &legs {
            if let LegSlot::Recording { handle, label, .. } = leg {
                self.legs
                    .insert(handle.id(), (dialog_id.clone(), label.clone()));
            }
        }
        if let Some(timer) = &timer {
            self.expiries
                .push(Reverse((timer.deadline(), dialog_id.clone())));
        }
        self.sessions.insert(
            dialog_id,
            Session {
                recording_id,
                dialog,
                peer: from,
                sdp: sdp.clone(),
                metadata: offer.metadata.clone(),
                timer,
                legs,
                sdp_session_id,
                sdp_version: 1,
                anchor: now,
                started_at,
                rel_dir,
                metadata_revisions: u32::from(offer.raw_metadata.is_some()),
            },
        );
        self.gauges
            .active_sessions
            .store(self.sessions.len(), Ordering::Relaxed);
        self.gauges.sessions_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts recording one offered m-line, or returns None when it is nothing we can record
    /// (not audio, port 0, SRTP, no supported codec). `anchor` is the session's answer: a
    /// stream added mid-call still has offset t at t after the answer, silence before it.
    fn start_leg(
        &self,
        media: &siprec::Media,
        label: &str,
        rel_dir: &std::path::Path,
        used_names: &mut Vec<String>,
        anchor: Instant,
        added_at_ms: i64,
    ) -> Result<Option<(LegSlot, catalog::NewLeg)>, callvault_media::Error> {
        if media.kind != "audio" || media.port == 0 || !media.protocol.contains("RTP/AVP") {
            return Ok(None);
        }
        let Some((format, codec)) = recordable_codec(media) else {
            return Ok(None);
        };
        let telephone_event = media.telephone_event_for(&format).cloned();
        let reservation = self.media.allocate()?;
        let port = reservation.port();
        let file_name = unique_file_name(label, used_names);
        let path = rel_dir.join(format!("{file_name}.wav"));
        let mut spec = LegSpec::new(label, path.clone(), format.payload_type, codec, anchor);
        spec.telephone_event_pt = telephone_event.as_ref().map(|f| f.payload_type);
        if let Some(te) = &telephone_event {
            spec.telephone_event_clock = te.clock_rate;
        }
        spec.capture_dtmf = self.config.capture_dtmf;
        spec.inactivity_timeout = self.config.rtp_timeout;
        spec.active = !media.is_on_hold();
        let handle = self.media.start_leg(reservation, spec)?;
        let new_leg = catalog::NewLeg {
            label: label.to_owned(),
            participant: None,
            binding_rule: String::new(),
            codec: codec.name().to_owned(),
            sample_rate: codec.sample_rate(),
            path: path.to_string_lossy().into_owned(),
            added_at_ms,
        };
        Ok(Some((
            LegSlot::Recording {
                handle,
                port,
                label: label.to_owned(),
                codec: format,
                telephone_event,
                removed: false,
            },
            new_leg,
        )))
    }

    fn build_answer(&self, offer: &Sdp, legs: &[LegSlot], session_id: u64, version: u64) -> String {
        let answers: Vec<MediaAnswer> = legs
            .iter()
            .map(|leg| match leg {
                LegSlot::Recording { removed: true, .. } => MediaAnswer::Decline,
                LegSlot::Recording {
                    port,
                    codec,
                    telephone_event,
                    ..
                } => MediaAnswer::Accept {
                    port: *port,
                    codec: codec.clone(),
                    telephone_event: telephone_event.clone(),
                },
                LegSlot::Declined => MediaAnswer::Decline,
            })
            .collect();
        siprec::build_answer(
            offer,
            &answers,
            &AnswerParams {
                address: self.config.rtp_ip,
                session_id,
                session_version: version,
                user_agent: self.config.user_agent.clone(),
            },
        )
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

    fn handle_in_dialog(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        id: DialogId,
    ) {
        let method = request.method().clone();
        let session = self
            .sessions
            .get_mut(&id)
            .expect("handle_in_dialog is called with a known dialog");
        if let Err(status) = session.dialog.check_request(&request) {
            endpoint.respond(now, &key, request.response(status));
            return;
        }
        match method {
            Method::Bye => {
                info!(
                    call_id = %request.call_id(),
                    recording_id = %session.recording_id,
                    "BYE"
                );
                endpoint.respond(now, &key, request.response(200));
                self.end_session(now, &id, "bye");
            }
            Method::Invite | Method::Update => self.handle_reoffer(now, endpoint, key, request, id),
            Method::Info => {
                let response = match parse_info_dtmf(request.content_type(), request.body()) {
                    Ok(Some(dtmf)) => {
                        if self.config.capture_dtmf {
                            // INFO says nothing of the stream the key was pressed on, only when.
                            let offset = now.saturating_duration_since(session.anchor);
                            self.archive.send(ArchiveCommand::Dtmf {
                                recording_id: session.recording_id.clone(),
                                event: catalog::DtmfEvent {
                                    digit: dtmf.digit.to_string(),
                                    leg: String::new(),
                                    offset_ms: offset.as_millis() as i64,
                                    duration_ms: i64::from(dtmf.duration_ms.unwrap_or(0)),
                                    source: "sip-info".to_owned(),
                                },
                            });
                        }
                        request.response(200)
                    }
                    // Not DTMF (media control, vendor events): acknowledged, never a reason to
                    // end the recording.
                    Ok(None) => request.response(200),
                    Err(error) => request
                        .response(400)
                        .with_reason(&reason_phrase(&error.to_string())),
                };
                endpoint.respond(now, &key, response);
            }
            Method::Options => {
                let response = self.with_capabilities(request.response(200));
                endpoint.respond(now, &key, response);
            }
            _ => {
                let response = request.response(405).with_header("Allow", ALLOW);
                endpoint.respond(now, &key, response);
            }
        }
    }

    /// re-INVITE or UPDATE: new metadata is a revision (who is on which leg may change); new
    /// SDP updates each leg (hold, resume, codec, removed) or adds one, and is answered with
    /// every m-line in the offer's order; a session-timer refresh moves the deadline.
    fn handle_reoffer(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        id: DialogId,
    ) {
        let offer =
            match siprec::parse_body(request.content_type(), request.body(), &self.config.limits) {
                Ok(offer) => offer,
                Err(error) => {
                    // A bad re-offer changes nothing already recorded: the session goes on.
                    warn!(call_id = %request.call_id(), %error, "re-offer refused");
                    let response = request
                        .response(error.sip_status())
                        .with_reason(&reason_phrase(&error.to_string()));
                    endpoint.respond(now, &key, response);
                    return;
                }
            };
        let timer = match callvault_sip::session_timer::negotiate(
            &request,
            &self.config.session_timer,
            now,
        ) {
            Negotiation::TooSmall { min_se } => {
                let response = request
                    .response(422)
                    .with_header("Min-SE", min_se.as_secs().to_string());
                endpoint.respond(now, &key, response);
                return;
            }
            Negotiation::Accepted(timer) => Some(timer),
            Negotiation::NotUsed => None,
        };
        let session = self.sessions.get(&id).expect("caller checked the dialog");
        if let Some(sdp) = &offer.sdp
            && sdp.media.len() < session.legs.len()
        {
            // RFC 3264 §8: m-lines are never removed from an offer, only set to port 0.
            let response = request
                .response(488)
                .with_reason("Offer Has Fewer m-lines Than The Session");
            endpoint.respond(now, &key, response);
            return;
        }
        let at_ms = now.saturating_duration_since(session.anchor).as_millis() as i64;

        // Streams first: a new m-line becomes a leg before the metadata binds it.
        let mut added = Vec::new();
        if let Some(sdp) = &offer.sdp {
            match self.apply_media(now, &id, sdp, offer.metadata.as_ref(), at_ms) {
                Ok(new_legs) => added = new_legs,
                Err(error) => {
                    warn!(call_id = %id.call_id, %error, "cannot add a stream: 503");
                    endpoint.respond(now, &key, self.no_media_ports(&request));
                    return;
                }
            }
        }
        let session = self
            .sessions
            .get_mut(&id)
            .expect("caller checked the dialog");
        if !added.is_empty() {
            self.archive.send(ArchiveCommand::AddLegs {
                recording_id: session.recording_id.clone(),
                legs: added,
            });
        }
        if let Some(sdp) = &offer.sdp {
            session.sdp = sdp.clone();
        }
        if let Some(xml) = &offer.raw_metadata {
            session.metadata_revisions += 1;
            session.metadata = offer.metadata.clone();
            let revision = session.metadata_revisions;
            self.archive.send(ArchiveCommand::WriteFile {
                path: session.rel_dir.join(format!("metadata-{revision}.xml")),
                bytes: xml.clone().into_bytes(),
            });
            self.archive.send(ArchiveCommand::Revision {
                recording_id: session.recording_id.clone(),
                revision: catalog::NewMetadataRevision {
                    received_at: OffsetDateTime::now_utc(),
                    datamode: offer.metadata.as_ref().and_then(|m| m.datamode.clone()),
                    raw_xml: xml.clone(),
                    participants: participants_of(&request, &offer),
                },
            });
        }
        if offer.raw_metadata.is_some() || offer.sdp.is_some() {
            // Who sends which leg now: joins and leaves (transfer, conference) get their times.
            let current = associations(&session.sdp, session.metadata.as_ref(), &session.legs);
            self.archive.send(ArchiveCommand::Associations {
                recording_id: session.recording_id.clone(),
                at_ms,
                revision: i64::from(session.metadata_revisions),
                current,
            });
        }
        // Each accepted re-INVITE or UPDATE renegotiates the timer (RFC 4028 §9-10): refreshed
        // when it asks for one, off when it no longer does (never a reason to hang up).
        if let Some(timer) = &timer {
            self.expiries.push(Reverse((timer.deadline(), id.clone())));
        }
        session.timer = timer;
        let timer_headers: Vec<(&'static str, String)> = session
            .timer
            .iter()
            .flat_map(SessionTimer::response_headers)
            .collect();
        let is_invite = *request.method() == Method::Invite;
        if offer.sdp.is_none() && !is_invite {
            // Metadata-only UPDATE (Avaya), or an UPDATE refresh: no SDP to answer.
            let mut response = request.response(200);
            for (name, value) in timer_headers {
                response = response.with_header(name, value);
            }
            endpoint.respond(now, &key, response);
            return;
        }
        // A re-INVITE without SDP asks us for an offer (RFC 3261 §14.2): we offer the session as
        // it stands, same ports and directions; the client answers in its ACK.
        let sdp = offer.sdp.clone().unwrap_or_else(|| session.sdp.clone());
        session.sdp_version += 1;
        let (session_id, version) = (session.sdp_session_id, session.sdp_version);
        let answer_sdp = self.build_answer(&sdp, &self.sessions[&id].legs, session_id, version);
        let mut response = self.with_capabilities(request.response(200));
        for (name, value) in timer_headers {
            response = response.with_header(name, value);
        }
        let response = response.with_body("application/sdp", answer_sdp.into_bytes());
        endpoint.respond(now, &key, response);
    }

    /// Applies a re-offer's SDP to the session's legs; returns the legs it added.
    fn apply_media(
        &mut self,
        now: Instant,
        id: &DialogId,
        sdp: &Sdp,
        metadata: Option<&Metadata>,
        at_ms: i64,
    ) -> Result<Vec<catalog::NewLeg>, callvault_media::Error> {
        let bindings = siprec::bind_streams(sdp, metadata);
        let session = self.sessions.get(id).expect("caller checked the dialog");
        let (anchor, rel_dir) = (session.anchor, session.rel_dir.clone());
        let mut used_names: Vec<String> = session
            .legs
            .iter()
            .filter_map(|l| match l {
                LegSlot::Recording { label, .. } => Some(unique_file_name(label, &mut Vec::new())),
                LegSlot::Declined => None,
            })
            .collect();
        let known = session.legs.len();
        let mut added_slots = Vec::new();
        let mut added_legs = Vec::new();
        for (index, media_line) in sdp.media.iter().enumerate().skip(known) {
            let binding = bindings.iter().find(|b| b.media_index == index);
            let label = binding
                .map(|b| b.label.clone())
                .unwrap_or_else(|| index.to_string());
            match self.start_leg(media_line, &label, &rel_dir, &mut used_names, anchor, at_ms) {
                Ok(Some((slot, mut new_leg))) => {
                    info!(call_id = %id.call_id, leg = %label, "stream added");
                    new_leg.participant = binding.and_then(|b| b.participant_id.clone());
                    new_leg.binding_rule = binding
                        .map(|b| b.rule.as_str())
                        .unwrap_or("unbound")
                        .to_owned();
                    if let LegSlot::Recording { handle, .. } = &slot {
                        self.legs.insert(handle.id(), (id.clone(), label.clone()));
                    }
                    added_slots.push(slot);
                    added_legs.push(new_leg);
                }
                Ok(None) => added_slots.push(LegSlot::Declined),
                Err(error) => {
                    self.stop_legs(added_slots, now);
                    return Err(error);
                }
            }
        }
        let media = Arc::clone(&self.media);
        let session = self
            .sessions
            .get_mut(id)
            .expect("caller checked the dialog");
        session.legs.extend(added_slots);
        for (slot, media_line) in session.legs.iter_mut().zip(&sdp.media).take(known) {
            let LegSlot::Recording {
                handle,
                codec,
                telephone_event,
                label,
                removed,
                ..
            } = slot
            else {
                continue;
            };
            *removed = media_line.port == 0;
            if let Some((format, _)) = recordable_codec(media_line) {
                *codec = format;
            }
            *telephone_event = media_line.telephone_event_for(codec).cloned();
            let kind = codec_of(codec).expect("a leg's codec is one we decode");
            let mut update = LegUpdate::new(
                codec.payload_type,
                kind,
                !media_line.is_on_hold() && !*removed,
            );
            update.telephone_event_pt = telephone_event.as_ref().map(|f| f.payload_type);
            if let Some(te) = telephone_event.as_ref() {
                update.telephone_event_clock = te.clock_rate;
            }
            debug!(leg = %label, active = update.active, "leg updated");
            if let Err(error) = media.update_leg(handle, update) {
                warn!(%error, leg = %label, "leg update failed");
            }
        }
        Ok(added_legs)
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
        let ended_at = session.started_at + duration;
        let receivers: Vec<_> = session
            .legs
            .into_iter()
            .filter_map(|leg| match leg {
                LegSlot::Recording { handle, .. } => Some(self.media.stop_leg(handle, now)),
                LegSlot::Declined => None,
            })
            .collect();
        let archive = self.archive.clone();
        let recording_id = session.recording_id;
        let call_id = id.call_id.clone();
        let reason = reason.to_owned();
        let task = tokio::spawn(async move {
            let mut legs = Vec::with_capacity(receivers.len());
            let mut failed = false;
            for receiver in receivers {
                match receiver.await {
                    Ok(report) => {
                        failed |= report.error.is_some();
                        legs.push(completion_of(&report));
                    }
                    Err(_) => failed = true,
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
                } else if reason == "shutdown" {
                    // The call went on without us: what we hold is only part of it.
                    catalog::RecordingState::Interrupted
                } else {
                    catalog::RecordingState::Complete
                },
                ended_at,
                duration_ms: duration.as_millis() as i64,
                end_reason: reason,
                legs,
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
    pub fn end_all(&mut self, now: Instant, reason: &str) {
        let ids: Vec<DialogId> = self.sessions.keys().cloned().collect();
        for id in ids {
            self.end_session(now, &id, reason);
        }
    }
}

fn completion_of(report: &LegReport) -> catalog::LegCompletion {
    catalog::LegCompletion {
        label: report.label.clone(),
        packets: report.packets as i64,
        lost: report.lost as i64,
        duplicates: report.duplicates as i64,
        out_of_order: report.out_of_order as i64,
        late: report.late as i64,
        samples: report.samples as i64,
        sha256: report.sha256.clone(),
        jitter_ms: report.jitter_ms,
        gaps_filled_ms: report.gaps_filled_ms as i64,
        ssrcs_seen: report.ssrcs_seen as i64,
        codec_changes: report.codec_changes as i64,
        unknown_payload: report.unknown_payload as i64,
        rtcp_packets: report.rtcp as i64,
    }
}

/// The first offered format this build records, with its decoder.
fn recordable_codec(media: &siprec::Media) -> Option<(Format, Codec)> {
    let format = siprec::choose_codec(media, SUPPORTED_CODECS)?;
    Some((format.clone(), codec_of(format)?))
}

fn codec_of(format: &Format) -> Option<Codec> {
    Codec::from_rtpmap(&format.encoding, format.clock_rate, format.channels)
}

/// (participant, leg label) for every recorded leg a participant sends, per the binding rules.
fn associations(sdp: &Sdp, metadata: Option<&Metadata>, legs: &[LegSlot]) -> Vec<(String, String)> {
    siprec::bind_streams(sdp, metadata)
        .into_iter()
        .filter_map(|b| {
            let participant = b.participant_id?;
            match legs.get(b.media_index)? {
                LegSlot::Recording {
                    label,
                    removed: false,
                    ..
                } => Some((participant, label.clone())),
                _ => None,
            }
        })
        .collect()
}

/// Participants from the metadata; without metadata (Cisco BIB, plain SDP), the parties of
/// the recording INVITE itself so the catalog still says who was on the call.
fn participants_of(request: &Request, offer: &RecordingOffer) -> Vec<catalog::NewParticipant> {
    match &offer.metadata {
        Some(m) if !m.participants.is_empty() => m
            .participants
            .iter()
            .map(|p| catalog::NewParticipant {
                id: p.id.clone(),
                aor: p.aor.clone(),
                name: p.name.clone(),
            })
            .collect(),
        _ => vec![
            catalog::NewParticipant {
                id: "from".to_owned(),
                aor: Some(request.from_uri()),
                name: request.from_display_name(),
            },
            catalog::NewParticipant {
                id: "to".to_owned(),
                aor: Some(request.to_uri()),
                name: None,
            },
        ],
    }
}

/// The recording's `from`/`to`: the AORs of the participants sending the first two legs,
/// else the first two participants with an AOR, else the recording INVITE's From/To.
fn parties(
    request: &Request,
    offer: &RecordingOffer,
    legs: &[catalog::NewLeg],
) -> (String, String) {
    let Some(metadata) = &offer.metadata else {
        return (request.from_uri(), request.to_uri());
    };
    let aor_of = |id: &str| {
        metadata
            .participants
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.aor.clone())
    };
    let mut found: Vec<String> = legs
        .iter()
        .filter_map(|l| l.participant.as_deref().and_then(aor_of))
        .collect();
    found.dedup();
    for p in &metadata.participants {
        if let Some(aor) = &p.aor
            && !found.contains(aor)
        {
            found.push(aor.clone());
        }
    }
    let mut it = found.into_iter();
    (
        it.next().unwrap_or_else(|| request.from_uri()),
        it.next().unwrap_or_else(|| request.to_uri()),
    )
}

/// Labels come from outside: keep a file name of safe characters, unique within the call.
fn unique_file_name(label: &str, used: &mut Vec<String>) -> String {
    let mut base: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if base.is_empty() {
        base = "leg".to_owned();
    }
    let mut name = base.clone();
    let mut n = 2;
    while used.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    used.push(name.clone());
    name
}

fn format_names(formats: &[Format]) -> String {
    formats
        .iter()
        .map(|f| f.encoding.as_str())
        .collect::<Vec<_>>()
        .join(",")
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
    fn file_names_are_safe_and_unique() {
        let mut used = Vec::new();
        assert_eq!(unique_file_name("16777227", &mut used), "16777227");
        assert_eq!(
            unique_file_name("../../etc/passwd", &mut used),
            "______etc_passwd"
        );
        assert_eq!(unique_file_name("", &mut used), "leg");
        assert_eq!(unique_file_name("a_leg", &mut used), "a_leg");
        assert_eq!(unique_file_name("a_leg", &mut used), "a_leg-2");
        assert_eq!(unique_file_name("a leg", &mut used), "a_leg-3");
    }

    #[test]
    fn reason_phrases_are_one_line() {
        assert_eq!(reason_phrase("bad\r\nthing\t"), "bad  thing");
    }
}
