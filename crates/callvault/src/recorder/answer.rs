//! The initial INVITE: refuse or accept, start a leg per recordable m-line, answer, and queue
//! the catalog rows.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use callvault_catalog as catalog;
use callvault_media::{AllowedSources, CallIds, Codec, LegSpec, SrtpKeying, SrtpSuite};
use callvault_sip::{Dialog, Endpoint, Negotiation, Peer, Request, SessionTimer, TransactionKey};
use callvault_siprec::{
    self as siprec, AnswerCrypto, AnswerParams, Format, MediaAnswer, Protection, RecordingOffer,
    Sdp,
};
use callvault_types::RecordingMode;
use tracing::{info, warn};

use super::media::MediaPlane;
use super::parties::{participants_of, parties};
use super::session::{LegSlot, Pending, Session};
use super::{
    ACCEPT, Now, RECORDING_ID_HEADER, Recorder, SUPPORTED_CODECS, rand_u32, reason_phrase,
};
use crate::archive::ArchiveCommand;

/// What one offered m-line will be: recorded with this codec, or declined.
pub(super) struct Plan {
    pub(super) format: Format,
    pub(super) codec: Codec,
    pub(super) telephone_event: Option<Format>,
    /// SDES-SRTP: the SRC's keying and our answer's crypto line.
    pub(super) srtp: Option<Srtp>,
    /// Where its media may come from.
    pub(super) sources: AllowedSources,
}

/// An SDES m-line's two sides: what the SRC encrypts with, and our line in the answer.
#[derive(Clone)]
pub(super) struct Srtp {
    pub(super) theirs: SrtpKeying,
    pub(super) ours: AnswerCrypto,
}

impl<M: MediaPlane> Recorder<M> {
    pub(super) fn handle_invite(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        from: Peer,
    ) {
        let call_id = request.call_id().to_owned();
        info!(call_id = %call_id, from = %from.addr, transport = %from.transport.as_str(), "INVITE");
        if !self.admit_new_call(now, endpoint, &key, &request, &from) {
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
                    endpoint.respond(now.at, &key, response);
                    return;
                }
            };
        if offer.sdp.is_none() {
            // RFC 7866 §6.1.1: a recording session needs media; an offerless INVITE would
            // need us to make the offer, which no recording client expects.
            let response = request.response(488).with_reason("SDP offer required");
            endpoint.respond(now.at, &key, response);
            return;
        }
        if let Negotiation::TooSmall { min_se } =
            callvault_sip::session_timer::negotiate(&request, &self.config.session_timer, now.at)
        {
            // RFC 4028 §8.2: below our minimum, the client must retry with a larger interval.
            let response = request
                .response(422)
                .with_header("Min-SE", min_se.as_secs().to_string());
            endpoint.respond(now.at, &key, response);
            return;
        }
        if self.config.answer_delay.is_zero() {
            self.answer(now, endpoint, key, request, from, offer, now.at);
        } else {
            endpoint.respond(now.at, &key, request.response(180));
            self.sessions.hold(Pending {
                key,
                request,
                from,
                offer,
                received_at: now.at,
                answer_at: now.at + self.config.answer_delay,
            });
        }
    }

    /// Reserves ports, starts the legs and sends the 200 OK: the moment of the answer is offset
    /// 0 of every leg. `received_at`: when the INVITE came in (the call's setup time).
    #[allow(clippy::too_many_arguments)] // reason: the held INVITE's parts, as it keeps them
    pub(super) fn answer(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        from: Peer,
        offer: RecordingOffer,
        received_at: Instant,
    ) {
        let call_id = request.call_id().to_owned();
        let Some(sdp) = offer.sdp.as_ref() else {
            return;
        };
        let signalling = from.addr.ip();
        let plans: Vec<Option<Plan>> = sdp
            .media
            .iter()
            .map(|media| self.plan(media, signalling))
            .collect();
        if plans.iter().all(Option::is_none) {
            // SRTP declined is the usual cause with SBCs set up for security: say so.
            let srtp = sdp.media.iter().find_map(|media| srtp_decline(media).err());
            let reason = match &srtp {
                Some(siprec::SrtpDecline::DtlsSrtp) => "DTLS-SRTP Not Supported",
                Some(_) => "No Acceptable SRTP Crypto Suite",
                None => "No Recordable Audio Stream",
            };
            if let Some(decline) = &srtp {
                warn!(call_id = %call_id, %decline, "SRTP offer declined: 488");
            }
            let response = request
                .response(488)
                .with_reason(reason)
                .with_header("Accept", ACCEPT);
            endpoint.respond(now.at, &key, response);
            return;
        }
        let reservations = match self.reserve_all(&plans) {
            Ok(reservations) => reservations,
            Err(error) => {
                warn!(call_id = %call_id, %error, "cannot allocate media: 503");
                self.gauges.rejected_total.fetch_add(1, Ordering::Relaxed);
                endpoint.respond(now.at, &key, self.no_media_ports(&request));
                return;
            }
        };

        let recording_id = (self.new_recording_id)();
        let started_at = now.wall;
        let rel_dir = PathBuf::from(format!(
            "recordings/{:04}/{:02}/{:02}/{recording_id}",
            started_at.year(),
            u8::from(started_at.month()),
            started_at.day()
        ));
        let bindings = siprec::bind_streams(sdp, offer.metadata.as_ref());
        let mut warnings: Vec<String> = offer
            .metadata
            .as_ref()
            .map(|m| m.warnings.clone())
            .unwrap_or_default();
        let call = CallIds::new(&call_id, &recording_id);
        let mut file_names = Vec::new();
        let mut legs = Vec::with_capacity(sdp.media.len());
        let mut new_legs = Vec::new();
        for (index, ((media, plan), reservation)) in
            sdp.media.iter().zip(plans).zip(reservations).enumerate()
        {
            let binding = bindings.iter().find(|b| b.media_index == index);
            let label = binding
                .map(|b| b.label.clone())
                .unwrap_or_else(|| index.to_string());
            let (Some(plan), Some(reservation)) = (plan, reservation) else {
                let why = match srtp_decline(media) {
                    Err(decline) => {
                        // An SBC set up for SRTP the recorder cannot take: the admin must hear.
                        warn!(call_id = %call_id, %recording_id, m_line = index, %decline, "m-line declined");
                        decline.to_string()
                    }
                    Ok(()) => "nothing this server can record".to_owned(),
                };
                warnings.push(format!(
                    "m-line {index} ({} {} {}) declined: {why}",
                    media.kind,
                    media.protocol,
                    format_names(&media.formats)
                ));
                legs.push(LegSlot::Declined);
                continue;
            };
            let started = self.start_leg(
                media,
                plan,
                reservation,
                index,
                &label,
                &call,
                &rel_dir,
                &mut file_names,
                now.at,
                0,
            );
            match started {
                Ok((slot, mut new_leg)) => {
                    new_leg.participant = binding.and_then(|b| b.participant_id.clone());
                    new_leg.binding_rule = binding
                        .map(|b| b.rule.as_str())
                        .unwrap_or("unbound")
                        .to_owned();
                    legs.push(slot);
                    new_legs.push(new_leg);
                }
                Err(error) => {
                    // Only a media engine that is shutting down refuses a reserved port.
                    warn!(call_id = %call_id, %recording_id, %error, "cannot start a leg: 503");
                    for slot in &legs {
                        if let LegSlot::Recording { leg, .. } = slot {
                            self.media.stop_leg(*leg, now.at);
                        }
                    }
                    endpoint.respond(now.at, &key, self.no_media_ports(&request));
                    return;
                }
            }
        }

        let sdp_session_id = u64::from(rand_u32());
        let answer_sdp = self.build_answer(sdp, &legs, sdp_session_id, 1);
        let local_tag = endpoint.new_tag();
        let contact = self.contact(&request, from.transport);
        let dialog = Dialog::new_uas(&request, local_tag.clone(), contact.clone());
        let timer = match callvault_sip::session_timer::negotiate(
            &request,
            &self.config.session_timer,
            now.at,
        ) {
            Negotiation::Accepted(timer) => Some(timer),
            _ => None,
        };
        let mut response = self
            .with_capabilities(request.response(200))
            .with_to_tag(&local_tag)
            .with_header("Contact", contact)
            // Tells the client which recording this is (`callvault test-call` prints it; an
            // SBC may log it): the id to look up in the catalog, the API and the webhooks.
            .with_header(RECORDING_ID_HEADER, recording_id.clone());
        for (name, value) in timer.iter().flat_map(SessionTimer::response_headers) {
            response = response.with_header(name, value);
        }
        let response = response.with_body("application/sdp", answer_sdp.into_bytes());
        endpoint.respond(now.at, &key, response);
        self.answered
            .push_back((RecordingMode::Siprec, received_at));

        // The catalog rows, queued: written off the signalling path.
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
            self.archive.push_back(ArchiveCommand::WriteFile {
                path: rel_dir.join("metadata-1.xml"),
                bytes: xml.clone().into_bytes(),
            });
        }
        let tenant = self
            .config
            .tenants
            .tenant_of(request.uri(), from.addr.ip())
            .map(str::to_owned);
        info!(
            call_id = %call_id,
            recording_id = %recording_id,
            legs = new_legs.len(),
            tenant = tenant.as_deref().unwrap_or("-"),
            "answered: recording"
        );
        self.archive
            .push_back(ArchiveCommand::Insert(Box::new(catalog::NewRecording {
                mode: RecordingMode::Siprec,
                route: None,
                id: recording_id.clone(),
                node_id: self.config.node_id.clone(),
                session_id,
                ingress_call_id: call_id,
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
                tenant,
            })));
        let mut session = Session {
            recording_id,
            dialog,
            peer: from,
            sdp: sdp.clone(),
            metadata: offer.metadata.clone(),
            timer,
            legs,
            file_names,
            sdp_session_id,
            sdp_version: 1,
            anchor: now.at,
            started_at,
            rel_dir,
            metadata_revisions: u32::from(offer.raw_metadata.is_some()),
            revisions_dropped: 0,
            dtmf_seq: 0,
            held_since: None,
            unacked: vec![(request.cseq().0, key.clone())],
            warnings: Vec::new(),
            scheduled: None,
            paused: None,
            pauses: Vec::new(),
            pause_seq: 0,
        };
        session.update_hold(now.at);
        self.sessions.insert(session, key, &self.limits);
        self.publish_gauges();
        self.gauges.sessions_total.fetch_add(1, Ordering::Relaxed);
        self.gauges
            .calls
            .call_taken(RecordingMode::Siprec, signalling);
    }

    /// A port pair for every planned m-line, before any leg starts: a call that cannot have all
    /// its streams starts none of them and leaves no file behind (the reservations made are
    /// released when the `Err` drops them).
    pub(super) fn reserve_all(
        &mut self,
        plans: &[Option<Plan>],
    ) -> Result<Vec<Option<M::Reservation>>, callvault_media::Error> {
        plans
            .iter()
            .map(|plan| plan.as_ref().map(|_| self.media.reserve()).transpose())
            .collect()
    }

    /// How an offered m-line would be recorded, or `None` when it is nothing we can record
    /// (not audio, port 0, not RTP, SRTP without a crypto line we accept, DTLS-SRTP, no codec
    /// we decode at an accepted rate). `signalling`: the IP of the SIP peer that offered it.
    pub(super) fn plan(&self, media: &siprec::Media, signalling: IpAddr) -> Option<Plan> {
        if media.kind != "audio" || media.port == 0 {
            return None;
        }
        let srtp = srtp_for(media, None).ok()?;
        let (format, codec) = recordable_codec(media, self.config.max_sample_rate)?;
        let telephone_event = media.telephone_event_for(&format).cloned();
        Some(Plan {
            format,
            codec,
            telephone_event,
            srtp,
            sources: sources_of(media, signalling),
        })
    }

    /// Starts recording one m-line on its reserved port. `anchor` is the session's answer: a
    /// stream added mid-call still has offset t at t after the answer, silence before it.
    #[allow(clippy::too_many_arguments)] // reason: one call site per offer kind; a struct would only rename them
    pub(super) fn start_leg(
        &mut self,
        media: &siprec::Media,
        plan: Plan,
        reservation: M::Reservation,
        position: usize,
        label: &str,
        call: &CallIds,
        rel_dir: &Path,
        file_names: &mut Vec<String>,
        anchor: Instant,
        added_at_ms: i64,
    ) -> Result<(LegSlot, catalog::NewLeg), callvault_media::Error> {
        let port = M::port(&reservation);
        let file_name = unique_file_name(label, file_names);
        let path = rel_dir.join(format!("{file_name}.wav"));
        let mut spec = LegSpec::new(
            label,
            path.clone(),
            plan.format.payload_type,
            plan.codec,
            anchor,
        );
        spec.telephone_event_pt = plan.telephone_event.as_ref().map(|f| f.payload_type);
        if let Some(te) = &plan.telephone_event {
            spec.telephone_event_clock = te.clock_rate;
        }
        spec.capture_dtmf = self.config.capture_dtmf;
        spec.inactivity_timeout = self.config.rtp_timeout;
        spec.srtp = plan.srtp.as_ref().map(|srtp| srtp.theirs.clone());
        spec.sources = plan.sources;
        spec.call = call.clone();
        if let Some(srtp) = &plan.srtp {
            info!(call_id = %call.call_id, recording_id = %call.recording_id, leg = %label, suite = %srtp.theirs.suite(), tag = srtp.ours.tag, "SDES-SRTP leg");
        }
        let on_hold = media.is_on_hold();
        spec.active = !on_hold;
        let leg = self.media.start_leg(reservation, spec)?;
        let new_leg = catalog::NewLeg {
            position: position as i64,
            label: label.to_owned(),
            participant: None,
            binding_rule: String::new(),
            codec: plan.codec.name().to_owned(),
            sample_rate: plan.codec.sample_rate(),
            path: path.to_string_lossy().into_owned(),
            added_at_ms,
        };
        Ok((
            LegSlot::Recording {
                leg,
                port,
                label: label.to_owned(),
                codec: plan.format,
                telephone_event: plan.telephone_event,
                srtp: plan.srtp.map(Box::new),
                sources: plan.sources,
                removed: false,
                on_hold,
                closed: None,
            },
            new_leg,
        ))
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
                    srtp,
                    ..
                } => MediaAnswer::Accept {
                    port: *port,
                    codec: codec.clone(),
                    telephone_event: telephone_event.clone(),
                    crypto: srtp.as_ref().map(|srtp| srtp.ours.clone()),
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

/// The first offered format this build records at an accepted sample rate, with its decoder,
/// in the client's order of preference.
pub(super) fn recordable_codec(
    media: &siprec::Media,
    max_sample_rate: u32,
) -> Option<(Format, Codec)> {
    media.formats.iter().find_map(|format| {
        let supported = !format.encoding.is_empty()
            && !format.is_telephone_event()
            && !format.is_comfort_noise()
            && SUPPORTED_CODECS
                .iter()
                .any(|wanted| wanted.eq_ignore_ascii_case(&format.encoding));
        let codec = codec_of(format).filter(|_| supported)?;
        (codec.sample_rate() <= max_sample_rate).then(|| (format.clone(), codec))
    })
}

/// The SRTP side of an m-line: `None` for plain RTP, the SRC's keying and our crypto line for
/// SDES. `Err(Some(why))` when its SRTP cannot be taken (DTLS-SRTP, no acceptable `a=crypto`),
/// `Err(None)` when it is not RTP at all. `ours` is our line of an earlier answer: its key is kept
/// while the suite stays (RFC 4568 lets us keep our key across re-offers, and a stable
/// key keeps the SRC's state simple); a new suite gets a new key.
pub(super) fn srtp_for(
    media: &siprec::Media,
    ours: Option<&AnswerCrypto>,
) -> Result<Option<Srtp>, Option<siprec::SrtpDecline>> {
    match media.protection() {
        Protection::Plain => Ok(None),
        Protection::NotRtp => Err(None),
        Protection::DtlsSrtp => Err(Some(siprec::SrtpDecline::DtlsSrtp)),
        Protection::Sdes => {
            let (tag, offer) = siprec::choose_crypto(media).map_err(Some)?;
            let suite = offer.keying.suite();
            let keying = match ours {
                Some(ours) if ours.keying.suite() == suite => ours.keying.clone(),
                _ => our_key(suite),
            };
            Ok(Some(Srtp {
                theirs: offer.keying.clone(),
                ours: AnswerCrypto {
                    tag,
                    keying,
                    unencrypted_srtcp: offer.unencrypted_srtcp,
                },
            }))
        }
    }
}

/// Why an m-line's SRTP keeps it from being recorded, for warnings and the 488 reason; `Ok`
/// when SRTP is not the reason.
pub(super) fn srtp_decline(media: &siprec::Media) -> Result<(), siprec::SrtpDecline> {
    match media.protection() {
        Protection::Plain | Protection::NotRtp => Ok(()),
        Protection::DtlsSrtp | Protection::Sdes => siprec::choose_crypto(media).map(|_| ()),
    }
}

/// A fresh master key and salt for our answer, from the operating system's random source.
pub(super) fn our_key(suite: SrtpSuite) -> SrtpKeying {
    let mut bytes = [0u8; 46];
    let bytes = &mut bytes[..suite.key_len() + suite.salt_len()];
    // The OS random source fails only on a system too broken to serve calls at all (no
    // getrandom(2), no /dev/urandom).
    getrandom::fill(bytes).expect("the operating system provides random bytes");
    SrtpKeying::new(suite, bytes).expect("the key is as long as its suite says")
}

/// Where an m-line's media may come from: the IP of its `c=` (media-level, else session-level)
/// and of the SIP peer that offered it (behind NAT an SBC's media may leave from its signalling
/// address). `0.0.0.0` (hold) names no address: it allows nothing.
pub(super) fn sources_of(media: &siprec::Media, signalling: IpAddr) -> AllowedSources {
    AllowedSources {
        connection: media.connection.filter(|ip| !ip.is_unspecified()),
        port: media.port,
        signalling: Some(signalling),
    }
}

pub(super) fn codec_of(format: &Format) -> Option<Codec> {
    Codec::from_rtpmap(&format.encoding, format.clock_rate, format.channels)
}

/// Labels come from outside: a file name of safe characters, unique among every name the
/// session has used (`used` only grows).
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
        assert_eq!(unique_file_name("a.leg", &mut used), "a_leg-4");
    }
}
