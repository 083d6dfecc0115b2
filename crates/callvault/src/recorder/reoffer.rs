//! Requests inside a recording dialog: BYE, INFO digits, OPTIONS, and re-INVITE/UPDATE
//! re-offers (hold, codec change, streams added or removed, metadata revisions, refreshes).

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Instant;

use callvault_catalog as catalog;
use callvault_media::LegUpdate;
use callvault_sip::{
    DialogId, Endpoint, Method, Negotiation, Request, SessionTimer, TransactionKey, parse_info_dtmf,
};
use callvault_siprec::{self as siprec, Metadata, Sdp};
use time::OffsetDateTime;
use tracing::{debug, info, warn};

use super::answer::{codec_of, recordable_codec, unique_file_name};
use super::parties::{associations, participants_of};
use super::session::LegSlot;
use super::{ALLOW, Recorder, reason_phrase};
use crate::archive::ArchiveCommand;

impl Recorder {
    pub(super) fn handle_in_dialog(
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
                self.end_session(now, &id, catalog::EndReason::Bye);
            }
            Method::Invite | Method::Update => self.handle_reoffer(now, endpoint, key, request, id),
            Method::Info => {
                let response = match parse_info_dtmf(request.content_type(), request.body()) {
                    Ok(Some(dtmf)) => {
                        if self.config.capture_dtmf {
                            // INFO says nothing of the stream the key was pressed on, only when.
                            let offset = now.saturating_duration_since(session.anchor);
                            let seq = session.next_dtmf_seq();
                            self.archive.send(ArchiveCommand::Dtmf {
                                recording_id: session.recording_id.clone(),
                                event: catalog::DtmfEvent {
                                    seq,
                                    digit: dtmf.digit.to_string(),
                                    leg: String::new(),
                                    offset_ms: offset.as_millis() as i64,
                                    duration_ms: i64::from(dtmf.duration_ms.unwrap_or(0)),
                                    source: catalog::DtmfSource::SipInfo,
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
                    number: i64::from(revision),
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
                    new_leg.position = index as i64;
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
            // Port 0 removes the stream; an offer with no codec we decode cannot be accepted
            // either (we may only answer formats the client offered): both are answered port 0
            // and record silence until a later offer brings the stream back.
            let recordable = recordable_codec(media_line);
            *removed = media_line.port == 0 || recordable.is_none();
            if let Some((format, _)) = recordable {
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
}
