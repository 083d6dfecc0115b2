//! Requests inside a recording dialog: BYE, INFO digits, OPTIONS, and re-INVITE/UPDATE
//! re-offers (hold, codec change, streams added or removed, metadata revisions, refreshes).

use callvault_catalog as catalog;
use callvault_sip::{
    Endpoint, Method, Negotiation, Request, SessionTimer, TransactionKey, parse_info_dtmf,
};
use callvault_siprec::{self as siprec, Metadata, Sdp};
use callvault_types::{DtmfSource, EndReason};
use tracing::{debug, info, warn};

use super::answer::{recordable_codec, sources_of, srtp_for};
use super::control::{in_pause, leg_update};
use super::media::MediaPlane;
use super::parties::{associations, participants_of};
use super::session::LegSlot;
use super::sessions::SessionKey;
use super::{ALLOW, Now, Recorder, dtmf_event, over_cap, reason_phrase};
use crate::archive::ArchiveCommand;

impl<M: MediaPlane> Recorder<M> {
    pub(super) fn handle_in_dialog(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        session_key: SessionKey,
    ) {
        let method = request.method().clone();
        let Some(session) = self.sessions.get_mut(session_key) else {
            return;
        };
        if let Err(status) = session.dialog.check_request(&request) {
            endpoint.respond(now.at, &key, request.response(status));
            return;
        }
        match method {
            Method::Bye => {
                info!(
                    call_id = %request.call_id(),
                    recording_id = %session.recording_id,
                    "BYE"
                );
                endpoint.respond(now.at, &key, request.response(200));
                self.end_session(now, session_key, EndReason::Bye);
            }
            Method::Invite | Method::Update => {
                self.handle_reoffer(now, endpoint, key, request, session_key)
            }
            Method::Info => {
                let response = match parse_info_dtmf(request.content_type(), request.body()) {
                    Ok(Some(dtmf)) => {
                        let seq = session.dtmf_seq;
                        let capped = seq >= i64::from(self.config.max_dtmf_per_recording);
                        let offset_ms =
                            now.at.saturating_duration_since(session.anchor).as_millis() as i64;
                        if in_pause(session, offset_ms) {
                            // Paused (card data): acknowledged, never stored.
                        } else if capped && self.config.capture_dtmf {
                            let first = seq == i64::from(self.config.max_dtmf_per_recording);
                            session.dtmf_seq += 1;
                            over_cap(
                                &self.gauges,
                                &session.dialog.id().call_id,
                                &session.recording_id,
                                first,
                                "DTMF digits",
                            );
                        } else if self.config.capture_dtmf {
                            // INFO says nothing of the stream the key was pressed on, only when.
                            let offset = now.at.saturating_duration_since(session.anchor);
                            session.dtmf_seq += 1;
                            self.archive.push_back(ArchiveCommand::Dtmf {
                                recording_id: session.recording_id.clone(),
                                event: dtmf_event(
                                    seq,
                                    dtmf.digit,
                                    "",
                                    offset.as_millis() as u64,
                                    u64::from(dtmf.duration_ms.unwrap_or(0)),
                                    DtmfSource::SipInfo,
                                ),
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
                endpoint.respond(now.at, &key, response);
            }
            Method::Options => {
                let response = self.with_capabilities(request.response(200));
                endpoint.respond(now.at, &key, response);
            }
            _ => {
                let response = request.response(405).with_header("Allow", ALLOW);
                endpoint.respond(now.at, &key, response);
            }
        }
    }

    /// re-INVITE or UPDATE: new metadata is a revision (who is on which leg may change); new
    /// SDP updates each leg (hold, resume, codec, removed) or adds one, and is answered with
    /// every m-line in the offer's order; a session-timer refresh moves the deadline.
    fn handle_reoffer(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        session_key: SessionKey,
    ) {
        let recording_id = self
            .sessions
            .get(session_key)
            .map(|session| session.recording_id.clone())
            .unwrap_or_default();
        let offer = match siprec::parse_body(
            request.content_type(),
            request.body(),
            &self.config.limits,
        ) {
            Ok(offer) => offer,
            Err(error) => {
                // A bad re-offer changes nothing already recorded: the session goes on.
                warn!(call_id = %request.call_id(), recording_id = %recording_id, %error, "re-offer refused");
                let response = request
                    .response(error.sip_status())
                    .with_reason(&reason_phrase(&error.to_string()));
                endpoint.respond(now.at, &key, response);
                return;
            }
        };
        let timer = match callvault_sip::session_timer::negotiate(
            &request,
            &self.config.session_timer,
            now.at,
        ) {
            Negotiation::TooSmall { min_se } => {
                let response = request
                    .response(422)
                    .with_header("Min-SE", min_se.as_secs().to_string());
                endpoint.respond(now.at, &key, response);
                return;
            }
            Negotiation::Accepted(timer) => Some(timer),
            Negotiation::NotUsed => None,
        };
        let Some(session) = self.sessions.get(session_key) else {
            return;
        };
        if let Some(sdp) = &offer.sdp
            && sdp.media.len() < session.legs.len()
        {
            // RFC 3264 §8: m-lines are never removed from an offer, only set to port 0.
            let response = request
                .response(488)
                .with_reason("Offer Has Fewer m-lines Than The Session");
            endpoint.respond(now.at, &key, response);
            return;
        }
        let at_ms = now.at.saturating_duration_since(session.anchor).as_millis() as i64;

        // Streams first: a new m-line becomes a leg before the metadata binds it.
        let mut added = Vec::new();
        if let Some(sdp) = &offer.sdp {
            match self.apply_media(now, session_key, sdp, offer.metadata.as_ref(), at_ms) {
                Ok(new_legs) => added = new_legs,
                Err(error) => {
                    warn!(call_id = %request.call_id(), recording_id = %recording_id, %error, "cannot add a stream: 503");
                    endpoint.respond(now.at, &key, self.no_media_ports(&request));
                    return;
                }
            }
        }
        let Some(session) = self.sessions.get_mut(session_key) else {
            return;
        };
        if !added.is_empty() {
            self.archive.push_back(ArchiveCommand::AddLegs {
                recording_id: session.recording_id.clone(),
                legs: added,
            });
        }
        if let Some(sdp) = &offer.sdp {
            session.sdp = sdp.clone();
        }
        let revisions_full = session.metadata_revisions >= self.config.max_metadata_revisions;
        if offer.raw_metadata.is_some() && revisions_full {
            session.revisions_dropped += 1;
            let first = session.revisions_dropped == 1;
            over_cap(
                &self.gauges,
                &session.dialog.id().call_id,
                &session.recording_id,
                first,
                "metadata revisions",
            );
        } else if let Some(xml) = &offer.raw_metadata {
            session.metadata_revisions += 1;
            session.metadata = offer.metadata.clone();
            let revision = session.metadata_revisions;
            self.archive.push_back(ArchiveCommand::WriteFile {
                path: session.rel_dir.join(format!("metadata-{revision}.xml")),
                bytes: xml.clone().into_bytes(),
            });
            self.archive.push_back(ArchiveCommand::Revision {
                recording_id: session.recording_id.clone(),
                revision: catalog::NewMetadataRevision {
                    number: i64::from(revision),
                    received_at: now.wall,
                    datamode: offer.metadata.as_ref().and_then(|m| m.datamode.clone()),
                    raw_xml: xml.clone(),
                    participants: participants_of(&request, &offer),
                },
            });
        }
        if offer.raw_metadata.is_some() || offer.sdp.is_some() {
            // Who sends which leg now: joins and leaves (transfer, conference) get their times.
            let current = associations(&session.sdp, session.metadata.as_ref(), &session.legs);
            self.archive.push_back(ArchiveCommand::Associations {
                recording_id: session.recording_id.clone(),
                at_ms,
                revision: i64::from(session.metadata_revisions),
                current,
            });
        }
        // Each accepted re-INVITE or UPDATE renegotiates the timer (RFC 4028 §9-10): refreshed
        // when it asks for one, off when it no longer does (never a reason to hang up).
        session.timer = timer;
        session.update_hold(now.at);
        let timer_headers: Vec<(&'static str, String)> = session
            .timer
            .iter()
            .flat_map(SessionTimer::response_headers)
            .collect();
        self.sessions.reschedule(session_key, &self.limits);
        let is_invite = *request.method() == Method::Invite;
        if offer.sdp.is_none() && !is_invite {
            // Metadata-only UPDATE (Avaya), or an UPDATE refresh: no SDP to answer.
            let mut response = request.response(200);
            for (name, value) in timer_headers {
                response = response.with_header(name, value);
            }
            endpoint.respond(now.at, &key, response);
            return;
        }
        let Some(session) = self.sessions.get_mut(session_key) else {
            return;
        };
        // A re-INVITE without SDP asks us for an offer (RFC 3261 §14.2): we offer the session as
        // it stands, same ports and directions; the client answers in its ACK.
        let sdp = offer.sdp.clone().unwrap_or_else(|| session.sdp.clone());
        session.sdp_version += 1;
        let (session_id, version) = (session.sdp_session_id, session.sdp_version);
        let Some(session) = self.sessions.get(session_key) else {
            return;
        };
        let answer_sdp = self.build_answer(&sdp, &session.legs, session_id, version);
        let mut response = self.with_capabilities(request.response(200));
        for (name, value) in timer_headers {
            response = response.with_header(name, value);
        }
        let response = response.with_body("application/sdp", answer_sdp.into_bytes());
        endpoint.respond(now.at, &key, response);
        if is_invite {
            self.sessions.expect_ack(session_key, request.cseq().0, key);
        }
    }

    /// Applies a re-offer's SDP to the session's legs; returns the legs it added.
    fn apply_media(
        &mut self,
        now: Now,
        session_key: SessionKey,
        sdp: &Sdp,
        metadata: Option<&Metadata>,
        at_ms: i64,
    ) -> Result<Vec<catalog::NewLeg>, callvault_media::Error> {
        let bindings = siprec::bind_streams(sdp, metadata);
        let Some(session) = self.sessions.get_mut(session_key) else {
            return Ok(Vec::new());
        };
        let known = session.legs.len();
        let rel_dir = session.rel_dir.clone();
        let call_id = session.dialog.id().call_id.clone();
        let call = callvault_media::CallIds::new(&call_id, &session.recording_id);
        let recording_id = std::sync::Arc::clone(&call.recording_id);
        let anchor = session.anchor;
        let signalling = session.peer.addr.ip();
        let mut file_names = std::mem::take(&mut session.file_names);

        // New m-lines: reserve every port first, then start them.
        let plans: Vec<_> = sdp
            .media
            .iter()
            .skip(known)
            .map(|m| self.plan(m, signalling))
            .collect();
        let reservations = match self.reserve_all(&plans) {
            Ok(reservations) => reservations,
            Err(error) => {
                self.restore_names(session_key, file_names);
                return Err(error);
            }
        };
        let mut added_slots = Vec::new();
        let mut added_legs = Vec::new();
        for (offset, (plan, reservation)) in plans.into_iter().zip(reservations).enumerate() {
            let index = known + offset;
            let media_line = &sdp.media[index];
            let binding = bindings.iter().find(|b| b.media_index == index);
            let label = binding
                .map(|b| b.label.clone())
                .unwrap_or_else(|| index.to_string());
            let (Some(plan), Some(reservation)) = (plan, reservation) else {
                added_slots.push(LegSlot::Declined);
                continue;
            };
            match self.start_leg(
                media_line,
                plan,
                reservation,
                index,
                &label,
                &call,
                &rel_dir,
                &mut file_names,
                anchor,
                at_ms,
            ) {
                Ok((slot, mut new_leg)) => {
                    info!(call_id = %call_id, recording_id = %call.recording_id, leg = %label, "stream added");
                    new_leg.participant = binding.and_then(|b| b.participant_id.clone());
                    new_leg.binding_rule = binding
                        .map(|b| b.rule.as_str())
                        .unwrap_or("unbound")
                        .to_owned();
                    if let LegSlot::Recording { leg, .. } = &slot {
                        self.sessions.add_leg(session_key, *leg);
                    }
                    added_slots.push(slot);
                    added_legs.push(new_leg);
                }
                Err(error) => {
                    for slot in &added_slots {
                        if let LegSlot::Recording { leg, .. } = slot {
                            self.media.stop_leg(*leg, now.at);
                        }
                    }
                    self.restore_names(session_key, file_names);
                    return Err(error);
                }
            }
        }
        self.restore_names(session_key, file_names);
        let Some(session) = self.sessions.get_mut(session_key) else {
            return Ok(added_legs);
        };
        session.legs.extend(added_slots);
        for (slot, media_line) in session.legs.iter_mut().zip(&sdp.media).take(known) {
            let LegSlot::Recording {
                codec,
                telephone_event,
                srtp,
                sources,
                label,
                removed,
                on_hold,
                ..
            } = slot
            else {
                continue;
            };
            // Media moved (another address or port) re-arms the leg's latch on the new address;
            // hold by `c=0.0.0.0` and port 0 allow nothing new: the last sources stay.
            let held_by_address = media_line
                .connection
                .is_some_and(|address| address.is_unspecified());
            if !held_by_address && media_line.port != 0 {
                let offered = sources_of(media_line, signalling);
                if offered != *sources {
                    info!(
                        call_id = %call_id,
                        %recording_id,
                        leg = %label,
                        connection = ?offered.connection,
                        port = offered.port,
                        "media moved: the leg takes media from the new address"
                    );
                    *sources = offered;
                }
            }
            // Port 0 removes the stream; an offer with no codec we decode cannot be accepted
            // either (we may only answer formats the client offered), nor one whose SRTP we
            // cannot take: all are answered port 0 and record silence until a later offer
            // brings the stream back.
            let recordable = recordable_codec(media_line, self.config.max_sample_rate);
            let offered = srtp_for(media_line, srtp.as_ref().map(|srtp| &srtp.ours));
            if media_line.port != 0
                && let Err(Some(decline)) = &offered
            {
                warn!(call_id = %call_id, %recording_id, leg = %label, %decline, "re-offer's SRTP declined: stream answered port 0");
            }
            *removed = media_line.port == 0 || recordable.is_none() || offered.is_err();
            // A removed stream keeps its keys: its packets still in flight are not noise, and it
            // may come back under the same key.
            if !*removed && let Ok(offered) = offered {
                let before = srtp.as_ref().map(|srtp| &srtp.theirs);
                let after = offered.as_ref().map(|srtp| &srtp.theirs);
                if before != after {
                    // Suites only: keys never reach a log.
                    info!(
                        call_id = %call_id,
                        %recording_id,
                        leg = %label,
                        from = before.map_or("RTP", |k| k.suite().as_str()),
                        to = after.map_or("RTP", |k| k.suite().as_str()),
                        "SDES-SRTP re-key"
                    );
                }
                *srtp = offered.map(Box::new);
            }
            *on_hold = media_line.is_on_hold();
            if let Some((format, _)) = recordable {
                *codec = format;
            }
            *telephone_event = media_line.telephone_event_for(codec).cloned();
        }
        // Silence while paused, whatever the offer says.
        let paused = session.paused.is_some();
        let updates: Vec<_> = session
            .legs
            .iter()
            .take(known)
            .filter_map(|slot| leg_update(slot, paused))
            .collect();
        for (leg, update) in updates {
            debug!(%leg, active = update.active, "leg updated");
            self.media.update_leg(leg, update);
        }
        Ok(added_legs)
    }

    fn restore_names(&mut self, session_key: SessionKey, names: Vec<String>) {
        if let Some(session) = self.sessions.get_mut(session_key) {
            session.file_names = names;
        }
    }
}
