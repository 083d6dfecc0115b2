//! The initial INVITE: refuse or accept, start a leg per recordable m-line, answer, and hand
//! the bookkeeping to the archive.

use std::cmp::Reverse;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use callvault_catalog as catalog;
use callvault_media::{Codec, LegSpec};
use callvault_sip::{Dialog, Endpoint, Negotiation, Peer, Request, SessionTimer, TransactionKey};
use callvault_siprec::{self as siprec, AnswerParams, Format, MediaAnswer, RecordingOffer, Sdp};
use time::OffsetDateTime;
use tracing::{debug, info, warn};

use super::parties::{participants_of, parties};
use super::session::{LegSlot, Pending, Session};
use super::{ACCEPT, Recorder, SUPPORTED_CODECS, rand_u32, reason_phrase};
use crate::archive::ArchiveCommand;

impl Recorder {
    pub(super) fn handle_invite(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        from: Peer,
    ) {
        let call_id = request.call_id().to_owned();
        info!(call_id = %call_id, from = %from.addr, transport = %from.transport.as_str(), "INVITE");
        if self.sessions.len() + self.pending.len() >= self.config.max_sessions {
            warn!(call_id = %call_id, "node full: 503");
            self.gauges.rejected_total.fetch_add(1, Ordering::Relaxed);
            let response = request
                .response(503)
                .with_header("Retry-After", self.config.retry_after_secs.to_string());
            endpoint.respond(now, &key, response);
            return;
        }
        if !self.archive_health.healthy() {
            // The archive logs its state changes and /health says why; per call only debug.
            debug!(call_id = %call_id, "catalog storage unhealthy: 503");
            self.gauges.rejected_total.fetch_add(1, Ordering::Relaxed);
            let response = request
                .response(503)
                .with_reason("Storage Unavailable")
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
    pub(super) fn answer(
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
                    new_leg.position = index as i64;
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
                number: 1,
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
                node_id: self.config.node_id.clone(),
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
                dtmf_digits: 0,
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
    pub(super) fn start_leg(
        &self,
        media: &siprec::Media,
        label: &str,
        rel_dir: &Path,
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
            // The caller's m-line index.
            position: 0,
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
    pub(super) fn build_answer(
        &self,
        offer: &Sdp,
        legs: &[LegSlot],
        session_id: u64,
        version: u64,
    ) -> String {
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
}

/// The first offered format this build records, with its decoder.
pub(super) fn recordable_codec(media: &siprec::Media) -> Option<(Format, Codec)> {
    let format = siprec::choose_codec(media, SUPPORTED_CODECS)?;
    Some((format.clone(), codec_of(format)?))
}

pub(super) fn codec_of(format: &Format) -> Option<Codec> {
    Codec::from_rtpmap(&format.encoding, format.clock_rate, format.channels)
}

/// Labels come from outside: keep a file name of safe characters, unique within the call.
pub(super) fn unique_file_name(label: &str, used: &mut Vec<String>) -> String {
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

pub(super) fn format_names(formats: &[Format]) -> String {
    formats
        .iter()
        .map(|f| f.encoding.as_str())
        .collect::<Vec<_>>()
        .join(",")
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
}
