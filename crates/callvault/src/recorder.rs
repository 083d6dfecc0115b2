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

use callvault_catalog as catalog;
use callvault_media::{Codec, LegHandle, LegReport, LegSpec, LegUpdate, MediaEngine};
use callvault_sip::{
    Dialog, DialogId, Endpoint, Event, Method, Peer, Request, Response, TransactionKey,
    TransportKind, dialog_id_of_request,
};
use callvault_siprec::{
    self as siprec, AnswerParams, Format, Limits, MediaAnswer, RecordingOffer, Sdp,
};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::archive::{ArchiveCommand, ArchiveQueue};

/// Codecs this build decodes; offers are answered with the first of these the client offers.
const SUPPORTED_CODECS: &[&str] = &["PCMU", "PCMA"];
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
        }
    }

    /// The next instant the recorder must be woken (a held INVITE to answer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.answer_at).min()
    }

    pub fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
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

    pub fn handle_event(&mut self, now: Instant, endpoint: &mut Endpoint, event: Event) {
        match event {
            Event::Request { key, request, from } => {
                self.handle_request(now, endpoint, key, request, from)
            }
            Event::Ack { request, .. } => {
                debug!(call_id = request.call_id(), "ACK");
            }
            Event::Cancelled { key } => {
                if let Some(p) = self.pending.remove(&key) {
                    info!(call_id = p.request.call_id(), "CANCEL before answer");
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
            match self.start_leg(media, &label, &rel_dir, &mut used_names, now) {
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
                    let response = request
                        .response(503)
                        .with_reason("No Media Ports")
                        .with_header("Retry-After", self.config.retry_after_secs.to_string());
                    endpoint.respond(now, &key, response);
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
        let local_tag = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        let contact = self.contact(from.transport);
        let dialog = Dialog::new_uas(&request, local_tag.clone(), contact.clone());
        let response = self
            .with_capabilities(request.response(200))
            .with_to_tag(&local_tag)
            .with_header("Contact", contact)
            .with_body("application/sdp", answer_sdp.into_bytes());
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
        self.sessions.insert(
            dialog_id,
            Session {
                recording_id,
                dialog,
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
    /// (not audio, port 0, SRTP, no supported codec).
    fn start_leg(
        &self,
        media: &siprec::Media,
        label: &str,
        rel_dir: &std::path::Path,
        used_names: &mut Vec<String>,
        anchor: Instant,
    ) -> Result<Option<(LegSlot, catalog::NewLeg)>, callvault_media::Error> {
        if media.kind != "audio" || media.port == 0 || !media.protocol.contains("RTP/AVP") {
            return Ok(None);
        }
        let Some(format) = siprec::choose_codec(media, SUPPORTED_CODECS) else {
            return Ok(None);
        };
        let Some(codec) = Codec::from_encoding(&format.encoding) else {
            return Ok(None);
        };
        let telephone_event = media.telephone_event().cloned();
        let reservation = self.media.allocate()?;
        let port = reservation.port();
        let file_name = unique_file_name(label, used_names);
        let path = rel_dir.join(format!("{file_name}.wav"));
        let handle = self.media.start_leg(
            reservation,
            LegSpec {
                label: label.to_owned(),
                path: path.clone(),
                payload_type: format.payload_type,
                codec,
                telephone_event_pt: telephone_event.as_ref().map(|f| f.payload_type),
                anchor,
                active: !media.is_on_hold(),
            },
        )?;
        let new_leg = catalog::NewLeg {
            label: label.to_owned(),
            participant: None,
            binding_rule: String::new(),
            codec: codec.name().to_owned(),
            sample_rate: codec.sample_rate(),
            path: path.to_string_lossy().into_owned(),
        };
        Ok(Some((
            LegSlot::Recording {
                handle,
                port,
                label: label.to_owned(),
                codec: format.clone(),
                telephone_event,
            },
            new_leg,
        )))
    }

    fn build_answer(&self, offer: &Sdp, legs: &[LegSlot], session_id: u64, version: u64) -> String {
        let answers: Vec<MediaAnswer> = legs
            .iter()
            .map(|leg| match leg {
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
                    call_id = request.call_id(),
                    recording_id = %session.recording_id,
                    "BYE"
                );
                endpoint.respond(now, &key, request.response(200));
                self.end_session(now, &id, "bye");
            }
            Method::Invite | Method::Update => self.handle_reoffer(now, endpoint, key, request, id),
            Method::Info => {
                // DTMF over INFO is captured by a later issue; acknowledge so the client
                // never tears the recording down over it.
                endpoint.respond(now, &key, request.response(200));
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

    /// re-INVITE or UPDATE: new metadata is a revision; new SDP updates each leg (hold,
    /// resume, codec) and is answered with every m-line, in the offer's order.
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
                    warn!(call_id = request.call_id(), %error, "re-offer refused");
                    let response = request
                        .response(error.sip_status())
                        .with_reason(&reason_phrase(&error.to_string()));
                    endpoint.respond(now, &key, response);
                    return;
                }
            };
        let media = Arc::clone(&self.media);
        let session = self
            .sessions
            .get_mut(&id)
            .expect("caller checked the dialog");
        if let Some(xml) = &offer.raw_metadata {
            session.metadata_revisions += 1;
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
        let Some(sdp) = &offer.sdp else {
            // Metadata-only UPDATE (Avaya): acknowledged without SDP.
            endpoint.respond(now, &key, request.response(200));
            return;
        };
        if sdp.media.len() < session.legs.len() {
            // RFC 3264 §8: m-lines are never removed from an offer, only set to port 0.
            let response = request
                .response(488)
                .with_reason("Offer Has Fewer m-lines Than The Session");
            endpoint.respond(now, &key, response);
            return;
        }
        if sdp.media.len() > self.config.limits.max_streams {
            let response = request.response(488).with_reason("Too Many Streams");
            endpoint.respond(now, &key, response);
            return;
        }
        for (index, media_line) in sdp.media.iter().enumerate() {
            match session.legs.get_mut(index) {
                Some(LegSlot::Recording {
                    handle,
                    codec,
                    telephone_event,
                    label,
                    ..
                }) => {
                    let chosen = siprec::choose_codec(media_line, SUPPORTED_CODECS);
                    if let Some(chosen) = chosen
                        .and_then(|f| Codec::from_encoding(&f.encoding).map(|c| (f.clone(), c)))
                    {
                        *codec = chosen.0;
                    }
                    *telephone_event = media_line.telephone_event().cloned();
                    let update = LegUpdate {
                        payload_type: codec.payload_type,
                        codec: Codec::from_encoding(&codec.encoding)
                            .expect("a leg's codec is one we decode"),
                        telephone_event_pt: telephone_event.as_ref().map(|f| f.payload_type),
                        active: !media_line.is_on_hold() && media_line.port != 0,
                    };
                    debug!(label = %label, active = update.active, "leg updated");
                    if let Err(error) = media.update_leg(handle, update) {
                        warn!(%error, label = %label, "leg update failed");
                    }
                }
                Some(LegSlot::Declined) => {}
                None => {
                    // A stream added mid-call: recorded from now on, same timeline.
                    session.legs.push(LegSlot::Declined);
                }
            }
        }
        session.sdp_version += 1;
        let (session_id, version) = (session.sdp_session_id, session.sdp_version);
        let answer_sdp = {
            let session = &self.sessions[&id];
            self.build_answer(sdp, &session.legs, session_id, version)
        };
        let response = self
            .with_capabilities(request.response(200))
            .with_body("application/sdp", answer_sdp.into_bytes());
        endpoint.respond(now, &key, response);
    }

    fn end_session(&mut self, now: Instant, id: &DialogId, reason: &str) {
        let Some(session) = self.sessions.remove(id) else {
            return;
        };
        self.by_call_id.remove(&id.call_id);
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
    }
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
