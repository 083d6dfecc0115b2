//! Pass-through recording: callvault as a back-to-back user agent on a `[[routes]]` route.
//!
//! # Design note
//!
//! **Two dialogs, one call.** The caller's INVITE (the *ingress* dialog, where we are the UAS)
//! is answered 100 by the endpoint; we send our own INVITE to the route's target (the *egress*
//! dialog, where we are the UAC) with our own Call-ID, From tag, Via and Contact, and relay
//! between the two: provisional responses (180, 183 with early media), the final response
//! (4xx/5xx/6xx passed through; 408 when the target never answered, 503 when it could not be
//! reached), CANCEL, and every in-dialog request either side sends (BYE, re-INVITE, UPDATE,
//! INFO, OPTIONS…) with its response. The ACK of a 2xx is end to end in spirit, but each
//! dialog's ACK is ours to send: we ACK the callee's 2xx as soon as it comes (the endpoint
//! resends that ACK on its retransmissions) and take the caller's ACK for ours; the ACK of a
//! non-2xx is hop by hop (the endpoint's INVITE client transaction sends it).
//!
//! **Media.** Both SDPs are rewritten to our address and relay ports (`sdp::rewrite`): the
//! caller sends to port A, the callee to port B. When the callee's SDP first arrives (183 or
//! 200) both legs start as one relay pair on the media plane ([`MediaPlane::start_relay`]):
//! leg `caller` records what arrives on A and forwards it out of B to the callee, leg `callee`
//! the reverse; each latches its far end's real source. Offset 0 of both WAVs is that moment,
//! so early media is recorded from when it flows. Re-offers update the legs (codec, hold,
//! address) as they pass.
//!
//! **Glare and crossing.** One INVITE transaction at a time per call: a re-INVITE (or UPDATE)
//! from either side while another is relayed gets 491 (RFC 3261 §14.1). Either side's BYE is
//! answered 200 at once and a BYE goes to the other side; a BYE that crosses ours is answered
//! 200 too (the call stays findable until its legs are closed).
//!
//! **Catalog.** A routed call is catalogued as it is routed (mode `passthrough`, its route, both
//! Call-IDs, no legs), the legs are added when they start, and the completion carries
//! `final_status` (what the caller got) and `hung_up_by`. Calls never answered are catalogued
//! too: no legs (or only early media), end reason `not-answered`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use callvault_catalog as catalog;
use callvault_media::{LegId, LegReport, LegSpec};
use callvault_sip::{
    Dialog, DialogId, Endpoint, Method, Peer, Request, Response, TransactionKey,
    dialog_id_of_request, parse_info_dtmf, peer_for_in_dialog_request,
};
use callvault_siprec as siprec;
use callvault_types::{DtmfSource, EndReason, Party, RecordingMode};
use time::OffsetDateTime;
use tracing::{info, warn};

use super::media::MediaPlane;
use super::{ALLOW, Now, Recorder, dtmf_event, over_cap};
use crate::archive::ArchiveCommand;
use crate::routes::Route;
use crate::tenants::request_user;

mod headers;
mod legs;
mod sdes;
pub(crate) mod sdp;

use self::headers::{contact_uri, route_uri, with_tag, without_tag};
use self::legs::{first_audio, leg_spec, leg_update};
use self::sdes::Sdes;

/// Headers of the caller's INVITE carried over to ours (identity, privacy, call information);
/// every `X-` header is carried too.
const CARRIED: &[&str] = &[
    "p-asserted-identity",
    "p-preferred-identity",
    "privacy",
    "subject",
    "user-to-user",
    "diversion",
    "history-info",
    "alert-info",
    "call-info",
    "accept-language",
];

/// The reason phrase of a 488 for an SRTP offer we cannot relay (the details go to the log).
fn srtp_reason(decline: &siprec::SrtpDecline) -> &'static str {
    match decline {
        siprec::SrtpDecline::DtlsSrtp => "DTLS-SRTP Not Supported",
        _ => "No Acceptable Crypto Attribute",
    }
}

/// RFC 4028 end to end: when the caller asked for session timers (`Session-Expires`, or
/// `timer` in its `Supported`), our INVITE says `Supported: timer` and carries its interval and
/// `Min-SE`. The refreshes are re-INVITEs or UPDATEs of the dialogs, relayed like any other; a
/// 422 from the callee reaches the caller with its `Min-SE`.
fn with_session_timer(mut egress: Request, invite: &Request) -> Request {
    let supports_timer = invite
        .header_values("supported")
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("timer")));
    let interval = invite.header("session-expires").map(str::to_owned);
    if !supports_timer && interval.is_none() {
        return egress;
    }
    egress = egress.with_header("Supported", "timer");
    if let Some(interval) = interval {
        egress = egress.with_header("Session-Expires", interval);
    }
    if let Some(min) = invite.header("min-se") {
        egress = egress.with_header("Min-SE", min.to_owned());
    }
    egress
}

/// Identifies a pass-through call in the recorder.
pub(super) type CallKey = u64;

fn other(side: Party) -> Party {
    match side {
        Party::Caller => Party::Callee,
        _ => Party::Caller,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Our INVITE is out; the caller has had provisionals only.
    Calling,
    /// The caller cancelled (answered 487); our CANCEL is out, the callee's final awaited.
    Cancelled,
    Answered,
    /// Over: legs closing; BYEs for the dialogs still answered 200.
    Ended,
}

/// A request of one side relayed to the other: our client transaction's key maps to this.
struct Relayed {
    call: CallKey,
    /// The side that sent it to us.
    from: Party,
    server_key: TransactionKey,
    request: Request,
    /// Our re-INVITE's CSeq, to ACK its 2xx.
    invite_cseq: Option<u32>,
}

/// One side's media as its SDP says.
#[derive(Clone, Debug, Default)]
struct SideMedia {
    sdp: Option<siprec::Media>,
}

pub(super) struct Call<R> {
    recording_id: String,
    route: Route,
    stage: Stage,
    started: Instant,
    started_at: OffsetDateTime,
    rel_dir: PathBuf,
    // The caller's side (we are its UAS).
    ingress_key: TransactionKey,
    ingress_invite: Request,
    caller: Peer,
    ingress_tag: String,
    ingress_contact: String,
    ingress_dialog: Option<Dialog>,
    // The callee's side (we are its UAC).
    egress_invite: Request,
    egress_key: TransactionKey,
    callee: Peer,
    egress_dialog: Option<Dialog>,
    // Media.
    reservations: Option<(R, R)>,
    ports: (u16, u16),
    legs: Option<(LegId, LegId)>,
    anchor: Option<Instant>,
    caller_media: SideMedia,
    callee_media: SideMedia,
    /// SDES-SRTP keys of both sides, ours and theirs.
    sdes: Sdes,
    /// An INVITE or UPDATE is being relayed: another gets 491.
    offer_in_progress: bool,
    /// Legs that reported no RTP (`MediaEvent::Inactive`) since the last SDP.
    silent: Vec<LegId>,
    final_status: Option<u16>,
    hung_up_by: Option<Party>,
    end_reason: EndReason,
    /// Legs stopped and not closed yet, and what the closed ones reported.
    waiting: Vec<LegId>,
    closed: Vec<(LegId, Box<LegReport>)>,
    dtmf_seq: i64,
    warnings: Vec<String>,
    /// Our client transactions relaying this call's requests (keys of `Calls::relayed`), so
    /// that removing the call touches only its own entries.
    relaying: Vec<TransactionKey>,
}

impl<R> Call<R> {
    fn label_of(&self, leg: LegId) -> Option<Party> {
        let (a, b) = self.legs?;
        if leg == a {
            Some(Party::Caller)
        } else if leg == b {
            Some(Party::Callee)
        } else {
            None
        }
    }

    fn dialog_mut(&mut self, side: Party) -> Option<&mut Dialog> {
        match side {
            Party::Caller => self.ingress_dialog.as_mut(),
            _ => self.egress_dialog.as_mut(),
        }
    }

    fn peer(&self, side: Party) -> Peer {
        match side {
            Party::Caller => self.caller,
            _ => self.callee,
        }
    }

    /// The relay port facing `side`: where it sends its media.
    fn port_facing(&self, side: Party) -> u16 {
        match side {
            Party::Caller => self.ports.0,
            _ => self.ports.1,
        }
    }
}

/// Every pass-through call and the ways to find one.
pub(super) struct Calls<R> {
    next: CallKey,
    calls: HashMap<CallKey, Call<R>>,
    by_dialog: HashMap<DialogId, (CallKey, Party)>,
    by_ingress: HashMap<TransactionKey, CallKey>,
    by_egress: HashMap<TransactionKey, CallKey>,
    relayed: HashMap<TransactionKey, Relayed>,
    by_leg: HashMap<LegId, CallKey>,
    /// Our egress Call-IDs: an INVITE that comes back with one is a loop.
    egress_call_ids: HashMap<String, CallKey>,
    /// Calls not over yet, in all and per caller address: kept as calls start and end, so the
    /// admission of each INVITE reads a number instead of scanning every call.
    live: usize,
    live_by_source: HashMap<IpAddr, usize>,
}

impl<R> Default for Calls<R> {
    fn default() -> Self {
        Calls {
            next: 0,
            calls: HashMap::new(),
            by_dialog: HashMap::new(),
            by_ingress: HashMap::new(),
            by_egress: HashMap::new(),
            relayed: HashMap::new(),
            by_leg: HashMap::new(),
            egress_call_ids: HashMap::new(),
            live: 0,
            live_by_source: HashMap::new(),
        }
    }
}

impl<R> Calls<R> {
    /// Calls not yet over (they count against `max_sessions`).
    pub(super) fn live(&self) -> usize {
        self.live
    }

    pub(super) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Entries in every index: 0 once every call is gone (nothing leaks).
    #[cfg(test)]
    pub(super) fn footprint(&self) -> usize {
        self.calls.len()
            + self.by_dialog.len()
            + self.by_ingress.len()
            + self.by_egress.len()
            + self.relayed.len()
            + self.by_leg.len()
            + self.egress_call_ids.len()
            + self.live_by_source.len()
    }

    /// Live calls whose caller is `source`.
    pub(super) fn live_from(&self, source: IpAddr) -> usize {
        self.live_by_source.get(&source).copied().unwrap_or(0)
    }

    pub(super) fn owns_leg(&self, leg: LegId) -> bool {
        self.by_leg.contains_key(&leg)
    }

    pub(super) fn owns_dialog(&self, id: &DialogId) -> bool {
        self.by_dialog.contains_key(id)
    }

    pub(super) fn owns_ingress(&self, key: &TransactionKey) -> bool {
        self.by_ingress.contains_key(key)
    }

    pub(super) fn owns_client(&self, key: &TransactionKey) -> bool {
        self.by_egress.contains_key(key) || self.relayed.contains_key(key)
    }

    fn keys(&self) -> Vec<CallKey> {
        let mut keys: Vec<CallKey> = self.calls.keys().copied().collect();
        keys.sort_unstable();
        keys
    }

    /// A new call, counted live.
    fn insert(&mut self, call: Call<R>) -> CallKey {
        let id = self.next;
        self.next += 1;
        self.by_ingress.insert(call.ingress_key.clone(), id);
        self.by_egress.insert(call.egress_key.clone(), id);
        self.egress_call_ids
            .insert(call.egress_invite.call_id().to_owned(), id);
        self.live += 1;
        *self
            .live_by_source
            .entry(call.caller.addr.ip())
            .or_default() += 1;
        self.calls.insert(id, call);
        id
    }

    /// The call is over (its stage becomes `Ended`): it no longer counts as live.
    fn end(&mut self, id: CallKey) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.stage == Stage::Ended {
            return;
        }
        call.stage = Stage::Ended;
        self.live -= 1;
        let source = call.caller.addr.ip();
        if let Some(count) = self.live_by_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.live_by_source.remove(&source);
            }
        }
    }

    /// A relayed request's client transaction, found by its key until its final response.
    fn insert_relayed(&mut self, client: TransactionKey, relayed: Relayed) {
        if let Some(call) = self.calls.get_mut(&relayed.call) {
            call.relaying.push(client.clone());
        }
        self.relayed.insert(client, relayed);
    }

    fn take_relayed(&mut self, client: &TransactionKey) -> Option<Relayed> {
        let relayed = self.relayed.remove(client)?;
        if let Some(call) = self.calls.get_mut(&relayed.call) {
            call.relaying.retain(|k| k != client);
        }
        Some(relayed)
    }

    /// Removes the call and every key that finds it: its own keys, not a scan of all calls.
    fn remove(&mut self, key: CallKey) -> Option<Call<R>> {
        self.end(key);
        let call = self.calls.remove(&key)?;
        for dialog in [&call.ingress_dialog, &call.egress_dialog]
            .into_iter()
            .flatten()
        {
            self.by_dialog.remove(dialog.id());
        }
        self.by_ingress.remove(&call.ingress_key);
        self.by_egress.remove(&call.egress_key);
        for client in &call.relaying {
            self.relayed.remove(client);
        }
        if let Some((a, b)) = call.legs {
            self.by_leg.remove(&a);
            self.by_leg.remove(&b);
        }
        self.egress_call_ids.remove(call.egress_invite.call_id());
        Some(call)
    }
}

impl<M: MediaPlane> Recorder<M> {
    /// A new INVITE that is not a recording session, with routes configured.
    pub(super) fn passthrough_invite(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
        from: Peer,
    ) {
        let call_id = request.call_id().to_owned();
        if !self.admit_new_call(now, endpoint, &key, &request, &from) {
            return;
        }
        // RFC 3261 §16.3: a request with no hops left, or one of our own INVITEs coming back
        // (a route pointing at ourselves), is a loop.
        let max_forwards = request
            .header("max-forwards")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(70);
        if max_forwards == 0 || self.calls.egress_call_ids.contains_key(&call_id) {
            warn!(call_id = %call_id, "loop detected: 483");
            endpoint.respond(now.at, &key, request.response(483));
            return;
        }
        let Some(route) = self
            .config
            .routes
            .route_for(&request, from.addr.ip())
            .cloned()
        else {
            info!(call_id = %call_id, uri = %request.uri(), "no route for the call: 404");
            endpoint.respond(now.at, &key, request.response(404));
            return;
        };
        if !sdp::is_sdp(request.content_type()) || request.body().is_empty() {
            // An offerless INVITE would need a late offer from the callee relayed in the ACK;
            // not supported.
            let response = request.response(488).with_reason("SDP offer required");
            endpoint.respond(now.at, &key, response);
            return;
        }
        let caller_sdp = match siprec::parse_sdp(&String::from_utf8_lossy(request.body())) {
            Ok(parsed) => parsed,
            Err(error) => {
                warn!(call_id = %call_id, %error, "unreadable SDP offer: 400");
                let response = request.response(400).with_reason("Malformed SDP");
                endpoint.respond(now.at, &key, response);
                return;
            }
        };
        let Some(caller_audio) = first_audio(&caller_sdp) else {
            let response = request.response(488).with_reason("No Audio Stream");
            endpoint.respond(now.at, &key, response);
            return;
        };
        let mut sdes = Sdes::default();
        let offer_crypto = match sdes.handle_offer(Party::Caller, &caller_audio) {
            Ok(lines) => lines,
            Err(decline) => {
                warn!(call_id = %call_id, %decline, "SRTP offer not taken: 488");
                let response = request.response(488).with_reason(srtp_reason(&decline));
                endpoint.respond(now.at, &key, response);
                return;
            }
        };
        let reservations = self
            .media
            .reserve()
            .and_then(|a| Ok((a, self.media.reserve()?)));
        let (a, b) = match reservations {
            Ok(pair) => pair,
            Err(error) => {
                warn!(call_id = %call_id, %error, "cannot allocate media: 503");
                self.gauges.rejected_total.fetch_add(1, Ordering::Relaxed);
                endpoint.respond(now.at, &key, self.no_media_ports(&request));
                return;
            }
        };
        let ports = (M::port(&a), M::port(&b));

        let egress_call_id = format!("{}@callvault", uuid::Uuid::new_v4().simple());
        let from_tag = endpoint.new_tag();
        let target = route_uri(&route.target, request_user(request.uri()));
        let callee = route.target_peer;
        let contact = format!(
            "<{}>",
            contact_uri(&self.config.contact_host, callee.transport)
        );
        let mut egress = Request::new(Method::Invite, target)
            .with_header("Max-Forwards", (max_forwards - 1).min(70).to_string())
            .with_header("From", with_tag(request.from_header(), &from_tag))
            .with_header("To", without_tag(request.to_header()))
            .with_header("Call-ID", egress_call_id.clone())
            .with_header("CSeq", "1 INVITE")
            .with_header("Contact", contact)
            .with_header("Allow", ALLOW);
        for (name, value) in request.headers() {
            let lower = name.to_ascii_lowercase();
            if CARRIED.contains(&lower.as_str()) || lower.starts_with("x-") {
                egress = egress.with_header(name, value);
            }
        }
        egress = with_session_timer(egress, &request);
        let body = sdp::rewrite(request.body(), self.config.rtp_ip, ports.1, &offer_crypto);
        egress = egress.with_body("application/sdp", body);
        let egress_key = endpoint.send_invite(now.at, callee, egress.clone());

        let recording_id = (self.new_recording_id)();
        let started_at = now.wall;
        let rel_dir = PathBuf::from(format!(
            "recordings/{:04}/{:02}/{:02}/{recording_id}",
            started_at.year(),
            u8::from(started_at.month()),
            started_at.day()
        ));
        let ingress_tag = endpoint.new_tag();
        let ingress_contact = format!(
            "<{}>",
            callvault_sip::local_contact_uri(
                &request,
                from.transport,
                "callvault",
                &self.config.contact_host
            )
        );
        let tenant = route.tenant.clone().or_else(|| {
            self.config
                .tenants
                .tenant_of(request.uri(), from.addr.ip())
                .map(str::to_owned)
        });
        info!(
            call_id = %call_id,
            egress_call_id = %egress_call_id,
            route = %route.name,
            target = %route.target,
            recording_id = %recording_id,
            "pass-through: INVITE sent on"
        );
        let participants = vec![
            catalog::NewParticipant {
                id: "caller".to_owned(),
                aor: Some(request.from_uri()),
                name: request.from_display_name(),
            },
            catalog::NewParticipant {
                id: "callee".to_owned(),
                aor: Some(request.to_uri()),
                name: None,
            },
        ];
        self.archive
            .push_back(ArchiveCommand::Insert(Box::new(catalog::NewRecording {
                id: recording_id.clone(),
                node_id: self.config.node_id.clone(),
                session_id: uuid::Uuid::new_v4().to_string(),
                ingress_call_id: call_id.clone(),
                egress_call_id: Some(egress_call_id.clone()),
                from: request.from_uri(),
                to: request.to_uri(),
                started_at,
                participants,
                legs: Vec::new(),
                metadata: None,
                correlation_ids: siprec::correlation_from_headers(request.headers())
                    .into_iter()
                    .map(|c| (c.kind, c.value))
                    .collect(),
                warnings: Vec::new(),
                source_address: from.addr.to_string(),
                transport: from.transport.as_str().to_owned(),
                tenant,
                mode: RecordingMode::Passthrough,
                route: Some(route.name.clone()),
            })));
        // What the catalog keeps of a call relayed without recording: see the README.
        let warnings = if route.record {
            Vec::new()
        } else {
            vec![format!(
                "not recorded: route {:?} relays without recording (record = false)",
                route.name
            )]
        };
        let call = Call {
            recording_id,
            route,
            stage: Stage::Calling,
            started: now.at,
            started_at,
            rel_dir,
            ingress_key: key.clone(),
            ingress_invite: request,
            caller: from,
            ingress_tag,
            ingress_contact,
            ingress_dialog: None,
            egress_invite: egress,
            egress_key: egress_key.clone(),
            callee,
            egress_dialog: None,
            reservations: Some((a, b)),
            ports,
            legs: None,
            anchor: None,
            caller_media: SideMedia {
                sdp: Some(caller_audio),
            },
            callee_media: SideMedia::default(),
            sdes,
            offer_in_progress: true,
            silent: Vec::new(),
            final_status: None,
            hung_up_by: None,
            end_reason: EndReason::NotAnswered,
            waiting: Vec::new(),
            closed: Vec::new(),
            dtmf_seq: 0,
            warnings,
            relaying: Vec::new(),
        };
        let source = call.caller.addr.ip();
        self.calls.insert(call);
        self.gauges.sessions_total.fetch_add(1, Ordering::Relaxed);
        self.gauges
            .calls
            .call_taken(RecordingMode::Passthrough, source);
        self.publish_gauges();
    }

    /// The caller's CANCEL matched its INVITE (the endpoint answered the CANCEL 200).
    pub(super) fn passthrough_cancelled(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: &TransactionKey,
    ) {
        let Some(&id) = self.calls.by_ingress.get(key) else {
            return;
        };
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if call.stage != Stage::Calling {
            return;
        }
        info!(call_id = %call.ingress_invite.call_id(), "CANCEL from the caller: relayed");
        let response = call
            .ingress_invite
            .response(487)
            .with_to_tag(&call.ingress_tag);
        endpoint.respond(now.at, key, response);
        call.final_status = Some(487);
        call.hung_up_by = Some(Party::Caller);
        call.stage = Stage::Cancelled;
        if !endpoint.cancel(now.at, &call.egress_key) {
            // Already final on the callee's side: nothing to wait for.
            self.end_call(now, endpoint, id, None, EndReason::NotAnswered);
        }
    }

    /// Our 2xx to the caller was never ACKed: the call cannot go on.
    pub(super) fn passthrough_ack_timeout(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: &TransactionKey,
    ) {
        if let Some(&id) = self.calls.by_ingress.get(key) {
            warn!("no ACK from the caller for our 2xx: ending the pass-through call");
            self.end_call(now, endpoint, id, None, EndReason::AckTimeout);
        }
    }

    /// A response to one of our client transactions of a pass-through call (or `None`: it
    /// timed out or could not be sent).
    pub(super) fn passthrough_response(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        response: Option<Response>,
    ) {
        if let Some(&id) = self.calls.by_egress.get(&key) {
            self.egress_response(now, endpoint, id, key, response);
            return;
        }
        if !self.calls.relayed.contains_key(&key) {
            return;
        }
        let provisional = response.as_ref().is_some_and(Response::is_provisional);
        if provisional {
            // 100 stays hop by hop; others (180 to a re-INVITE is rare) are not relayed.
            return;
        }
        let Some(relayed) = self.calls.take_relayed(&key) else {
            return;
        };
        self.relay_back(now, endpoint, relayed, &key, response);
    }

    fn egress_response(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        id: CallKey,
        key: TransactionKey,
        response: Option<Response>,
    ) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(response) = response else {
            // Timer B (no answer at all), the ringing limit, or a transport that failed.
            if call.stage == Stage::Calling {
                let silent_for = now.at.saturating_duration_since(call.started);
                let status = if silent_for < 64 * endpoint.config().t1 && call.anchor.is_none() {
                    503
                } else {
                    408
                };
                warn!(call_id = %call.ingress_invite.call_id(), status, "the target did not answer");
                let response = call
                    .ingress_invite
                    .response(status)
                    .with_to_tag(&call.ingress_tag);
                endpoint.respond(now.at, &call.ingress_key, response);
                call.final_status = Some(status);
            }
            self.calls.by_egress.remove(&key);
            self.end_call(now, endpoint, id, None, EndReason::NotAnswered);
            return;
        };
        let status = response.status();
        if response.is_provisional() {
            if status == 100 || call.stage != Stage::Calling {
                return;
            }
            let with_sdp = sdp::is_sdp(response.content_type()) && !response.body().is_empty();
            let crypto = if with_sdp {
                self.callee_sdp(now, id, &response)
            } else {
                Vec::new()
            };
            let Some(call) = self.calls.calls.get_mut(&id) else {
                return;
            };
            let mut relayed = call
                .ingress_invite
                .response(status)
                .with_reason(response.reason())
                .with_to_tag(&call.ingress_tag)
                .with_header("Contact", call.ingress_contact.clone());
            if with_sdp {
                let body = sdp::rewrite(
                    response.body(),
                    self.config.rtp_ip,
                    call.port_facing(Party::Caller),
                    &crypto,
                );
                relayed = relayed.with_body("application/sdp", body);
            }
            endpoint.respond(now.at, &call.ingress_key, relayed);
            return;
        }
        if (200..300).contains(&status) {
            self.egress_answered(now, endpoint, id, key, response);
            return;
        }
        // 3xx-6xx: the endpoint ACKed it; the caller gets the same status.
        self.calls.by_egress.remove(&key);
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        info!(call_id = %call.ingress_invite.call_id(), status, "the callee refused the call");
        if call.stage == Stage::Calling {
            let mut relayed = call
                .ingress_invite
                .response(status)
                .with_reason(response.reason())
                .with_to_tag(&call.ingress_tag);
            for name in ["contact", "retry-after", "warning", "reason", "min-se"] {
                if (300..400).contains(&status) || name != "contact" {
                    for value in response.header_values(name) {
                        relayed = relayed.with_header(name, value);
                    }
                }
            }
            endpoint.respond(now.at, &call.ingress_key, relayed);
            call.final_status = Some(status);
        }
        self.end_call(now, endpoint, id, None, EndReason::NotAnswered);
    }

    /// The callee answered 2xx: ACK it, answer the caller, and the call is up.
    fn egress_answered(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        id: CallKey,
        key: TransactionKey,
        response: Response,
    ) {
        let rtp_ip = self.config.rtp_ip;
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if call.egress_dialog.is_some() {
            // A second 2xx of a fork: ACK it and end that dialog at once (one callee only).
            let mut extra = Dialog::new_uac(
                &call.egress_invite,
                &response,
                call.egress_invite
                    .header("contact")
                    .unwrap_or("")
                    .to_owned(),
            );
            let peer = call.callee;
            endpoint.send_ack(now.at, None, peer, extra.make_ack(1));
            let bye = extra.make_request(Method::Bye);
            let key = endpoint.send_request(now.at, peer, bye);
            self.byes.push(key);
            return;
        }
        let contact = call
            .egress_invite
            .header("contact")
            .unwrap_or("")
            .to_owned();
        let dialog = Dialog::new_uac(&call.egress_invite, &response, contact);
        let peer = peer_for_in_dialog_request(&dialog, call.callee);
        endpoint.send_ack(now.at, Some(&key), peer, dialog.make_ack(1));
        self.calls
            .by_dialog
            .insert(dialog.id().clone(), (id, Party::Callee));
        call.egress_dialog = Some(dialog);
        call.offer_in_progress = false;
        if call.stage != Stage::Calling {
            // Cancelled, but the callee answered first (the CANCEL crossed its 2xx): end it.
            info!(call_id = %call.ingress_invite.call_id(), "answered after the caller's CANCEL: BYE");
            self.end_call(now, endpoint, id, None, EndReason::NotAnswered);
            return;
        }
        let with_sdp = sdp::is_sdp(response.content_type()) && !response.body().is_empty();
        let crypto = if with_sdp {
            self.callee_sdp(now, id, &response)
        } else {
            Vec::new()
        };
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if call.callee_media.sdp.is_none() {
            warn!(call_id = %call.ingress_invite.call_id(), "the callee answered without SDP: ending the call");
            call.final_status = Some(500);
            let response = call
                .ingress_invite
                .response(500)
                .with_reason("No SDP Answer From The Callee")
                .with_to_tag(&call.ingress_tag);
            endpoint.respond(now.at, &call.ingress_key, response);
            self.end_call(now, endpoint, id, None, EndReason::NotAnswered);
            return;
        }
        let ingress_dialog = Dialog::new_uas(
            &call.ingress_invite,
            call.ingress_tag.clone(),
            call.ingress_contact.clone(),
        );
        let mut ok = ingress_dialog
            .response(&call.ingress_invite, 200)
            .with_header("Allow", ALLOW);
        // The callee's session timer answer (interval, refresher, `Require: timer`) is the
        // caller's: refreshes are in-dialog requests, relayed end to end.
        for value in response.header_values("session-expires") {
            ok = ok.with_header("Session-Expires", value);
        }
        if response
            .header_values("require")
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("timer")))
        {
            ok = ok.with_header("Require", "timer");
        }
        let body = if with_sdp {
            sdp::rewrite(
                response.body(),
                rtp_ip,
                call.port_facing(Party::Caller),
                &crypto,
            )
        } else {
            Vec::new()
        };
        if !body.is_empty() {
            ok = ok.with_body("application/sdp", body);
        }
        endpoint.respond(now.at, &call.ingress_key, ok);
        self.answered
            .push_back((RecordingMode::Passthrough, call.started));
        self.calls
            .by_dialog
            .insert(ingress_dialog.id().clone(), (id, Party::Caller));
        call.ingress_dialog = Some(ingress_dialog);
        call.stage = Stage::Answered;
        call.final_status = Some(200);
        call.end_reason = EndReason::Bye;
        info!(
            call_id = %call.ingress_invite.call_id(),
            egress_call_id = %call.egress_invite.call_id(),
            recording_id = %call.recording_id,
            "pass-through call answered"
        );
        self.publish_gauges();
    }

    /// The callee's SDP (183 or 2xx), the answer to the caller's offer: the first one starts
    /// the relay, later ones update it. Returns our `a=crypto` lines for the caller's copy.
    fn callee_sdp(&mut self, now: Now, id: CallKey, response: &Response) -> Vec<String> {
        let Ok(parsed) = siprec::parse_sdp(&String::from_utf8_lossy(response.body())) else {
            return Vec::new();
        };
        let Some(media) = first_audio(&parsed) else {
            return Vec::new();
        };
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return Vec::new();
        };
        let crypto = call.sdes.handle_answer(Party::Callee, &media);
        call.callee_media.sdp = Some(media);
        if call.legs.is_none() {
            self.start_relay(now, id);
        } else {
            self.update_legs(id);
        }
        crypto
    }

    /// Both SDPs known: the two legs start as one relay pair.
    fn start_relay(&mut self, now: Now, id: CallKey) {
        let max_rate = self.config.max_sample_rate;
        let capture = self.config.capture_dtmf;
        let rtp_timeout = self.config.rtp_timeout;
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let (Some(caller_media), Some(callee_media)) =
            (call.caller_media.sdp.clone(), call.callee_media.sdp.clone())
        else {
            return;
        };
        let Some((a, b)) = call.reservations.take() else {
            return;
        };
        // A route that does not record keeps no digits either.
        let capture_dtmf = capture && call.route.dtmf && call.route.record;
        let specs: Vec<(LegSpec, catalog::NewLeg)> = [
            (Party::Caller, &caller_media, call.caller.addr.ip()),
            (Party::Callee, &callee_media, call.callee.addr.ip()),
        ]
        .into_iter()
        .enumerate()
        .map(|(position, (side, media, signalling))| {
            leg_spec(
                side,
                position,
                media,
                &callee_media,
                signalling,
                &call.rel_dir,
                now.at,
                max_rate,
                capture_dtmf,
                rtp_timeout,
                now.at.saturating_duration_since(call.started),
            )
        })
        .collect();
        let mut specs = specs.into_iter();
        let (Some((mut spec_a, new_a)), Some((mut spec_b, new_b))) = (specs.next(), specs.next())
        else {
            return;
        };
        spec_a.record = call.route.record;
        spec_b.record = call.route.record;
        spec_a.srtp = call.sdes.sent_by(Party::Caller).cloned();
        spec_a.srtp_forward = call.sdes.sent_to(Party::Callee).cloned();
        spec_b.srtp = call.sdes.sent_by(Party::Callee).cloned();
        spec_b.srtp_forward = call.sdes.sent_to(Party::Caller).cloned();
        match self.media.start_relay((a, spec_a), (b, spec_b)) {
            Ok((leg_a, leg_b)) => {
                call.legs = Some((leg_a, leg_b));
                call.anchor = Some(now.at);
                self.calls.by_leg.insert(leg_a, id);
                self.calls.by_leg.insert(leg_b, id);
                if call.route.record {
                    self.archive.push_back(ArchiveCommand::AddLegs {
                        recording_id: call.recording_id.clone(),
                        legs: vec![new_a, new_b],
                    });
                }
            }
            Err(error) => {
                warn!(%error, "cannot start the relay; the call goes on unrecorded and without media");
                call.warnings
                    .push(format!("media relay could not start: {error}"));
            }
        }
    }

    /// The legs follow the latest SDPs (codec, hold, address).
    fn update_legs(&mut self, id: CallKey) {
        let max_rate = self.config.max_sample_rate;
        let Some(call) = self.calls.calls.get(&id) else {
            return;
        };
        let (Some((leg_a, leg_b)), Some(caller_media), Some(callee_media)) = (
            call.legs,
            call.caller_media.sdp.as_ref(),
            call.callee_media.sdp.as_ref(),
        ) else {
            return;
        };
        let mut updates = [
            (leg_a, caller_media, call.caller.addr.ip()),
            (leg_b, callee_media, call.callee.addr.ip()),
        ]
        .map(|(leg, media, signalling)| {
            (leg, leg_update(media, callee_media, signalling, max_rate))
        });
        let [(_, caller_update), (_, callee_update)] = &mut updates;
        caller_update.srtp = call.sdes.sent_by(Party::Caller).cloned();
        caller_update.srtp_forward = call.sdes.sent_to(Party::Callee).cloned();
        callee_update.srtp = call.sdes.sent_by(Party::Callee).cloned();
        callee_update.srtp_forward = call.sdes.sent_to(Party::Caller).cloned();
        for (leg, update) in updates {
            self.media.update_leg(leg, update);
        }
        if let Some(call) = self.calls.calls.get_mut(&id) {
            call.silent.clear();
        }
    }

    /// A request inside one of a pass-through call's dialogs.
    pub(super) fn passthrough_in_dialog(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: TransactionKey,
        request: Request,
    ) {
        let Some((id, side)) =
            dialog_id_of_request(&request).and_then(|d| self.calls.by_dialog.get(&d).copied())
        else {
            return;
        };
        let method = request.method().clone();
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if call.stage == Stage::Ended {
            // A BYE crossing ours: the call is over either way.
            let status = if method == Method::Bye { 200 } else { 481 };
            endpoint.respond(now.at, &key, request.response(status));
            return;
        }
        if let Some(dialog) = call.dialog_mut(side)
            && let Err(status) = dialog.check_request(&request)
        {
            endpoint.respond(now.at, &key, request.response(status));
            return;
        }
        match method {
            Method::Bye => {
                let ok = call
                    .dialog_mut(side)
                    .map(|d| d.response(&request, 200))
                    .unwrap_or_else(|| request.response(200));
                endpoint.respond(now.at, &key, ok);
                info!(
                    call_id = %call.ingress_invite.call_id(),
                    by = side.as_str(),
                    "BYE: ending the pass-through call"
                );
                self.end_call(now, endpoint, id, Some(side), EndReason::Bye);
            }
            Method::Invite | Method::Update if call.offer_in_progress => {
                // RFC 3261 §14.1 (and RFC 3311 §5.2): one offer at a time.
                let response = call
                    .dialog_mut(side)
                    .map(|d| d.response(&request, 491))
                    .unwrap_or_else(|| request.response(491));
                endpoint.respond(now.at, &key, response);
            }
            _ => {
                if method == Method::Info {
                    self.passthrough_info_dtmf(now, id, side, &request);
                }
                self.relay_request(now, endpoint, id, side, key, request);
            }
        }
    }

    /// An INFO carrying a key press: captured (when the route keeps digits), then relayed.
    fn passthrough_info_dtmf(&mut self, now: Now, id: CallKey, side: Party, request: &Request) {
        let Ok(Some(dtmf)) = parse_info_dtmf(request.content_type(), request.body()) else {
            return;
        };
        let Some(call) = self.calls.calls.get(&id) else {
            return;
        };
        let offset = now
            .at
            .saturating_duration_since(call.anchor.unwrap_or(call.started));
        self.passthrough_digit(
            id,
            side,
            dtmf.digit,
            offset.as_millis() as u64,
            u64::from(dtmf.duration_ms.unwrap_or(0)),
            DtmfSource::SipInfo,
        );
    }

    /// Stores a key press of `side` (INFO or RFC 4733) when the route keeps digits, up to the
    /// recording's cap.
    fn passthrough_digit(
        &mut self,
        id: CallKey,
        side: Party,
        digit: char,
        offset_ms: u64,
        duration_ms: u64,
        source: DtmfSource,
    ) {
        let cap = i64::from(self.config.max_dtmf_per_recording);
        let capture = self.config.capture_dtmf;
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if !capture || !call.route.dtmf || !call.route.record {
            return;
        }
        let seq = call.dtmf_seq;
        call.dtmf_seq += 1;
        if seq >= cap {
            over_cap(
                &self.gauges,
                call.ingress_invite.call_id(),
                &call.recording_id,
                seq == cap,
                "DTMF digits",
            );
            return;
        }
        self.archive.push_back(ArchiveCommand::Dtmf {
            recording_id: call.recording_id.clone(),
            event: dtmf_event(seq, digit, side.as_str(), offset_ms, duration_ms, source),
        });
    }

    /// Sends `request` (from `side`) on to the other side in its dialog, SDP rewritten.
    fn relay_request(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        id: CallKey,
        side: Party,
        key: TransactionKey,
        request: Request,
    ) {
        let rtp_ip = self.config.rtp_ip;
        let to = other(side);
        let with_sdp = sdp::is_sdp(request.content_type()) && !request.body().is_empty();
        let mut crypto = Vec::new();
        if with_sdp {
            let parsed = siprec::parse_sdp(&String::from_utf8_lossy(request.body()));
            if let Ok(media) = parsed.as_ref().map(first_audio)
                && let Some(call) = self.calls.calls.get_mut(&id)
            {
                if let Some(audio) = &media {
                    match call.sdes.handle_offer(side, audio) {
                        Ok(lines) => crypto = lines,
                        Err(decline) => {
                            warn!(%decline, "SRTP re-offer not taken: 488");
                            let response = match call.dialog_mut(side) {
                                Some(dialog) => dialog.response(&request, 488),
                                None => request.response(488),
                            }
                            .with_reason(srtp_reason(&decline));
                            endpoint.respond(now.at, &key, response);
                            return;
                        }
                    }
                }
                match side {
                    Party::Caller => call.caller_media.sdp = media,
                    _ => call.callee_media.sdp = media,
                }
            }
            self.update_legs(id);
        }
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let port = call.port_facing(to);
        let peer = call.peer(to);
        let method = request.method().clone();
        let Some(dialog) = call.dialog_mut(to) else {
            endpoint.respond(now.at, &key, request.response(481));
            return;
        };
        let mut out = dialog.make_request(method.clone());
        let cseq = out.cseq().0;
        let peer = peer_for_in_dialog_request(dialog, peer);
        for name in [
            "reason",
            "event",
            "info-package",
            "content-disposition",
            "accept",
            "session-expires",
            "min-se",
            "supported",
        ] {
            for value in request.header_values(name) {
                out = out.with_header(name, value);
            }
        }
        if !request.body().is_empty() {
            let content_type = request.content_type().unwrap_or("application/octet-stream");
            let body = if with_sdp {
                sdp::rewrite(request.body(), rtp_ip, port, &crypto)
            } else {
                request.body().to_vec()
            };
            out = out.with_body(content_type, body);
        }
        let invite = method == Method::Invite;
        if matches!(method, Method::Invite | Method::Update) {
            call.offer_in_progress = true;
        }
        let client = if invite {
            endpoint.send_invite(now.at, peer, out)
        } else {
            endpoint.send_request(now.at, peer, out)
        };
        self.calls.insert_relayed(
            client,
            Relayed {
                call: id,
                from: side,
                server_key: key,
                request,
                invite_cseq: invite.then_some(cseq),
            },
        );
    }

    /// The other side's final response to a relayed request goes back to its sender.
    fn relay_back(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        relayed: Relayed,
        key: &TransactionKey,
        response: Option<Response>,
    ) {
        let rtp_ip = self.config.rtp_ip;
        let id = relayed.call;
        let to = other(relayed.from);
        let method = relayed.request.method().clone();
        let status = response.as_ref().map_or(408, Response::status);
        let success = (200..300).contains(&status);
        let mut crypto = Vec::new();
        if let Some(response) = &response
            && success
            && sdp::is_sdp(response.content_type())
            && !response.body().is_empty()
            && let Ok(parsed) = siprec::parse_sdp(&String::from_utf8_lossy(response.body()))
            && let Some(call) = self.calls.calls.get_mut(&id)
        {
            let media = first_audio(&parsed);
            if let Some(audio) = &media {
                crypto = call.sdes.handle_answer(to, audio);
            }
            match to {
                Party::Caller => call.caller_media.sdp = media,
                _ => call.callee_media.sdp = media,
            }
            self.update_legs(id);
        }
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if matches!(method, Method::Invite | Method::Update) {
            call.offer_in_progress = false;
        }
        if let (Some(cseq), Some(response)) = (relayed.invite_cseq, &response)
            && success
        {
            let peer = call.peer(to);
            if let Some(dialog) = call.dialog_mut(to) {
                dialog.update_remote_target(response);
                let peer = peer_for_in_dialog_request(dialog, peer);
                let ack = dialog.make_ack(cseq);
                endpoint.send_ack(now.at, Some(key), peer, ack);
            }
        }
        let port = call.port_facing(relayed.from);
        let mut back = match call.dialog_mut(relayed.from) {
            Some(dialog) => dialog.response(&relayed.request, status),
            None => relayed.request.response(status),
        };
        if let Some(response) = &response {
            back = back.with_reason(response.reason());
            for name in [
                "allow",
                "accept",
                "supported",
                "retry-after",
                "warning",
                "session-expires",
                "require",
                "min-se",
            ] {
                for value in response.header_values(name) {
                    back = back.with_header(name, value);
                }
            }
            if !response.body().is_empty() {
                let content_type = response
                    .content_type()
                    .unwrap_or("application/octet-stream");
                let body = if sdp::is_sdp(response.content_type()) {
                    sdp::rewrite(response.body(), rtp_ip, port, &crypto)
                } else {
                    response.body().to_vec()
                };
                back = back.with_body(content_type, body);
            }
        }
        endpoint.respond(now.at, &relayed.server_key, back);
        // RFC 3261 §12.2.1.2: 481 or 408 to a request in a dialog ends it.
        if matches!(status, 408 | 481) && method != Method::Bye {
            warn!(
                status,
                "the other side lost the dialog: ending the pass-through call"
            );
            self.end_call(now, endpoint, id, Some(to), EndReason::Bye);
        }
    }

    /// The call is over: a BYE to every side that did not end it and is in a dialog with us,
    /// the egress INVITE cancelled if it is still out, the legs stopped; the completion waits
    /// for their files.
    pub(super) fn end_call(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        id: CallKey,
        by: Option<Party>,
        reason: EndReason,
    ) {
        let Some(call) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if call.stage == Stage::Ended {
            return;
        }
        let answered = call.stage == Stage::Answered;
        if let Some(by) = by
            && call.hung_up_by.is_none()
        {
            call.hung_up_by = Some(by);
        }
        if answered {
            call.end_reason = reason;
        } else if call.stage == Stage::Calling {
            // Ended from our side before any final response: the caller gets one now.
            if call.final_status.is_none() {
                let status = if reason == EndReason::Shutdown {
                    503
                } else {
                    500
                };
                let response = call
                    .ingress_invite
                    .response(status)
                    .with_to_tag(&call.ingress_tag);
                endpoint.respond(now.at, &call.ingress_key, response);
                call.final_status = Some(status);
            }
            endpoint.cancel(now.at, &call.egress_key);
            call.end_reason = if reason == EndReason::Shutdown {
                reason
            } else {
                EndReason::NotAnswered
            };
        }
        for side in [Party::Caller, Party::Callee] {
            if Some(side) == by {
                continue;
            }
            let peer = call.peer(side);
            if let Some(dialog) = call.dialog_mut(side) {
                let bye = dialog.make_request(Method::Bye);
                let peer = peer_for_in_dialog_request(dialog, peer);
                let key = endpoint.send_request(now.at, peer, bye);
                self.byes.push(key);
            }
        }
        call.reservations = None;
        if let Some((a, b)) = call.legs {
            self.media.stop_leg(a, now.at);
            self.media.stop_leg(b, now.at);
            call.waiting = vec![a, b];
        }
        let ended_in = now.at.saturating_duration_since(call.started);
        info!(
            call_id = %call.ingress_invite.call_id(),
            recording_id = %call.recording_id,
            status = call.final_status.unwrap_or(0),
            hung_up_by = call.hung_up_by.map_or("-", Party::as_str),
            duration_ms = ended_in.as_millis() as u64,
            "pass-through call ended"
        );
        self.calls.end(id);
        self.finish_call_if_closed(now, id);
        self.publish_gauges();
    }

    /// A media event for a pass-through leg.
    pub(super) fn passthrough_media(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        event: callvault_media::MediaEvent,
    ) {
        use callvault_media::MediaEvent;
        match event {
            MediaEvent::Dtmf {
                leg,
                digit,
                offset_ms,
                duration_ms,
            } => {
                let Some(&id) = self.calls.by_leg.get(&leg) else {
                    return;
                };
                let Some(side) = self.calls.calls.get(&id).and_then(|c| c.label_of(leg)) else {
                    return;
                };
                self.passthrough_digit(
                    id,
                    side,
                    digit,
                    offset_ms,
                    duration_ms,
                    DtmfSource::Rfc4733,
                );
            }
            MediaEvent::Inactive { leg, .. } => {
                // One side silent is a muted phone or one-way audio, not a dead call: only
                // both sides silent (since the last SDP) end it.
                let Some(&id) = self.calls.by_leg.get(&leg) else {
                    return;
                };
                let Some(call) = self.calls.calls.get_mut(&id) else {
                    return;
                };
                if !call.silent.contains(&leg) {
                    call.silent.push(leg);
                }
                if call.stage == Stage::Answered && call.silent.len() == 2 {
                    warn!(%leg, "no RTP from either side: ending the pass-through call");
                    self.end_call(now, endpoint, id, None, EndReason::RtpTimeout);
                }
            }
            MediaEvent::LegFailed { leg, error } => {
                self.gauges
                    .legs_failed_total
                    .fetch_add(1, Ordering::Relaxed);
                let Some(&id) = self.calls.by_leg.get(&leg) else {
                    return;
                };
                warn!(%leg, %error, "a pass-through leg cannot be written: ending the call");
                if let Some(call) = self.calls.calls.get_mut(&id) {
                    call.warnings.push(format!("leg: {error}"));
                }
                self.end_call(now, endpoint, id, None, EndReason::WriteFailed);
            }
            MediaEvent::LegClosed { leg, report } => {
                let Some(&id) = self.calls.by_leg.get(&leg) else {
                    return;
                };
                if let Some(call) = self.calls.calls.get_mut(&id) {
                    call.waiting.retain(|l| *l != leg);
                    call.closed.push((leg, report));
                }
                self.finish_call_if_closed(now, id);
            }
            _ => {}
        }
    }

    /// Queues the completion once the call is over and its legs are closed.
    fn finish_call_if_closed(&mut self, now: Now, id: CallKey) {
        let done = self
            .calls
            .calls
            .get(&id)
            .is_some_and(|c| c.stage == Stage::Ended && c.waiting.is_empty());
        if !done {
            return;
        }
        let Some(call) = self.calls.remove(id) else {
            return;
        };
        let duration = now.at.saturating_duration_since(call.started);
        let mut warnings = call.warnings.clone();
        let mut failed = call.end_reason == EndReason::WriteFailed;
        // A relay-only route's legs wrote nothing and are not in the catalog.
        let recorded = if call.route.record {
            &call.closed[..]
        } else {
            &[]
        };
        let legs = recorded
            .iter()
            .filter_map(|(leg, report)| {
                let side = call.label_of(*leg)?;
                if let Some(error) = &report.error {
                    failed = true;
                    warnings.push(format!("leg {}: {error}", side.as_str()));
                }
                Some(catalog::LegCompletion {
                    position: if side == Party::Caller { 0 } else { 1 },
                    samples: i64::try_from(report.samples).unwrap_or(i64::MAX),
                    sha256: report.sha256.clone(),
                    error: report.error.clone(),
                    counters: report.counters.clone(),
                })
            })
            .collect();
        let state = if failed {
            catalog::RecordingState::Failed
        } else if call.end_reason == EndReason::Shutdown {
            catalog::RecordingState::Interrupted
        } else {
            catalog::RecordingState::Complete
        };
        // From the answer, as for a recording session: a call never answered lasted nothing.
        self.gauges.calls.completed(
            RecordingMode::Passthrough,
            call.end_reason,
            state.as_str(),
            call.anchor.map_or(Duration::ZERO, |anchor| {
                now.at.saturating_duration_since(anchor)
            }),
        );
        self.archive
            .push_back(ArchiveCommand::Complete(catalog::Completion {
                recording_id: call.recording_id.clone(),
                state,
                ended_at: call.started_at + duration,
                duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
                end_reason: call.end_reason,
                legs,
                warnings,
                final_status: call.final_status,
                hung_up_by: call.hung_up_by,
            }));
        // Announced after the completion, as a SIPREC recording is (see `ending.rs`).
        self.archive.push_back(ArchiveCommand::Notify {
            recording_id: call.recording_id.clone(),
            event: crate::notify::Event::of_final(state),
            lock_id: None,
        });
        self.publish_gauges();
    }

    /// Shutdown: every pass-through call ends (BYE both ways, or 503 and CANCEL).
    pub(super) fn passthrough_shutdown(&mut self, now: Now, endpoint: &mut Endpoint) {
        for id in self.calls.keys() {
            self.end_call(now, endpoint, id, None, EndReason::Shutdown);
        }
    }
}
