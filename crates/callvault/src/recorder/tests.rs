//! The recorder and a real SIP endpoint wired in memory, on virtual time (the shape of
//! quinn-proto's `Pair`): a recording client's messages go in as bytes, everything the endpoint
//! would send comes out parsed, time jumps straight to the next deadline, and a fake media plane
//! hands out ports and closes legs when told. Each test is one call rule.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault_catalog::RecordingState;
use callvault_media::{LegId, LegReport, LegSpec, LegUpdate, MediaEvent};
use callvault_sip::{
    Endpoint, EndpointConfig, Message, Method, Peer, Request, Response, SessionTimerConfig,
};
use callvault_siprec::Limits;
use callvault_types::{EndReason, LegCounters, RecordingMode};
use time::macros::datetime;

use super::*;
use callvault_catalog::Pause;

// ---------------------------------------------------------------------------------------------
// The fake media plane

#[derive(Debug)]
struct FakeLeg {
    spec: LegSpec,
    updates: Vec<LegUpdate>,
    stopped_at: Option<Instant>,
    closed: bool,
}

#[derive(Debug)]
struct FakeMedia {
    next_port: u16,
    ports_left: usize,
    next_leg: u64,
    legs: HashMap<LegId, FakeLeg>,
    /// Legs in the order they were started.
    order: Vec<LegId>,
}

impl FakeMedia {
    fn with_ports(pairs: usize) -> FakeMedia {
        FakeMedia {
            next_port: 40_000,
            ports_left: pairs,
            next_leg: 0,
            legs: HashMap::new(),
            order: Vec::new(),
        }
    }
}

impl MediaPlane for FakeMedia {
    type Reservation = u16;

    fn reserve(&mut self) -> Result<u16, callvault_media::Error> {
        if self.ports_left == 0 {
            return Err(callvault_media::Error::NoFreePorts);
        }
        self.ports_left -= 1;
        self.next_port += 2;
        Ok(self.next_port)
    }

    fn port(reservation: &u16) -> u16 {
        *reservation
    }

    fn start_leg(&mut self, _port: u16, spec: LegSpec) -> Result<LegId, callvault_media::Error> {
        self.next_leg += 1;
        let id = LegId::new(self.next_leg);
        self.order.push(id);
        self.legs.insert(
            id,
            FakeLeg {
                spec,
                updates: Vec::new(),
                stopped_at: None,
                closed: false,
            },
        );
        Ok(id)
    }

    fn start_relay(
        &mut self,
        a: (u16, LegSpec),
        b: (u16, LegSpec),
    ) -> Result<(LegId, LegId), callvault_media::Error> {
        Ok((self.start_leg(a.0, a.1)?, self.start_leg(b.0, b.1)?))
    }

    fn update_leg(&mut self, leg: LegId, update: LegUpdate) {
        if let Some(fake) = self.legs.get_mut(&leg) {
            fake.updates.push(update);
        }
    }

    fn stop_leg(&mut self, leg: LegId, end: Instant) {
        let fake = self
            .legs
            .get_mut(&leg)
            .expect("stop of a leg that was started");
        assert!(fake.stopped_at.is_none(), "a leg is stopped once");
        fake.stopped_at = Some(end);
        // Its port pair is free again.
        self.ports_left += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// The pair: endpoint + recorder on virtual time

const SRC: &str = "192.0.2.10:5060";

fn src() -> Peer {
    Peer::udp(SRC.parse().unwrap())
}

fn config() -> RecorderConfig {
    RecorderConfig {
        max_sessions: 100,
        retry_after_secs: 7,
        answer_delay: Duration::ZERO,
        limits: Limits {
            max_streams: 16,
            max_metadata_bytes: 256 * 1024,
        },
        rtp_ip: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 5)),
        contact_host: "198.51.100.5:5060".to_owned(),
        tls_contact_host: Some("198.51.100.5:5061".to_owned()),
        user_agent: "callvault-test".to_owned(),
        capture_dtmf: true,
        rtp_timeout: Some(Duration::from_secs(60)),
        session_timer: SessionTimerConfig::default(),
        max_call_duration: Some(Duration::from_secs(4 * 3600)),
        max_hold: Some(Duration::from_secs(2 * 3600)),
        max_sample_rate: 48_000,
        node_id: "node-test".to_owned(),
        max_sessions_per_source: usize::MAX,
        invites_per_second_per_source: 2_000,
        max_dtmf_per_recording: 10_000,
        max_metadata_revisions: 1_000,
        tenants: Tenants::default(),
        routes: Routes::default(),
    }
}

struct Pair {
    now: Now,
    endpoint: Endpoint,
    recorder: Recorder<FakeMedia>,
    /// Everything the endpoint sent, in order, not yet looked at.
    sent: Vec<(Peer, Message)>,
    archive: Vec<ArchiveCommand>,
}

impl Pair {
    fn new(config: RecorderConfig, media: FakeMedia) -> Pair {
        let mut ids = 0;
        Pair {
            now: Now {
                at: Instant::now(),
                wall: datetime!(2026-12-02 10:00:00 UTC),
            },
            endpoint: Endpoint::new(EndpointConfig::default()),
            recorder: Recorder::new(config, media, Arc::new(RecorderGauges::default()))
                .with_recording_ids(move || {
                    ids += 1;
                    format!("rec-{ids}")
                }),
            sent: Vec::new(),
            archive: Vec::new(),
        }
    }

    fn standard() -> Pair {
        Pair::new(config(), FakeMedia::with_ports(100))
    }

    fn deliver(&mut self, from: Peer, bytes: &[u8]) {
        self.endpoint.handle_input(self.now.at, from, bytes);
        self.pump();
    }

    fn media(&mut self, event: MediaEvent) {
        self.recorder
            .handle_media(self.now, &mut self.endpoint, event);
        self.pump();
    }

    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(event) = self.endpoint.poll_event() {
                busy = true;
                self.recorder
                    .handle_sip(self.now, &mut self.endpoint, event);
            }
            while let Some(transmit) = self.endpoint.poll_transmit() {
                busy = true;
                let message = Message::parse(&transmit.bytes).expect("we send what we parse");
                self.sent.push((transmit.to, message));
            }
            while let Some(command) = self.recorder.poll_archive() {
                busy = true;
                self.archive.push(command);
            }
            if !busy {
                break;
            }
        }
    }

    /// Moves time forward by `by`, stopping at every deadline on the way (as the driver does).
    fn advance(&mut self, by: Duration) {
        let until = self.now.at + by;
        loop {
            let next = [self.endpoint.poll_timeout(), self.recorder.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= until => {
                    let step = at.saturating_duration_since(self.now.at);
                    self.now = self.now.after(step);
                    self.endpoint.handle_timeout(self.now.at);
                    self.recorder.handle_timeout(self.now, &mut self.endpoint);
                    self.pump();
                }
                _ => break,
            }
        }
        let rest = until.saturating_duration_since(self.now.at);
        self.now = self.now.after(rest);
    }

    /// The media plane closes every stopped leg's file, as the writer thread would.
    fn close_stopped_legs(&mut self) {
        let stopped: Vec<LegId> = self
            .recorder
            .media
            .order
            .iter()
            .copied()
            .filter(|id| {
                let leg = &self.recorder.media.legs[id];
                leg.stopped_at.is_some() && !leg.closed
            })
            .collect();
        for leg in stopped {
            self.recorder.media.legs.get_mut(&leg).unwrap().closed = true;
            let label = self.recorder.media.legs[&leg].spec.label.clone();
            self.media(MediaEvent::LegClosed {
                leg,
                report: Box::new(LegReport {
                    label,
                    samples: 8000,
                    sample_rate: 8000,
                    sha256: Some(format!("sha-of-{leg}")),
                    counters: LegCounters {
                        packets: 50,
                        ..LegCounters::default()
                    },
                    ..LegReport::default()
                }),
            });
        }
    }

    /// Takes the responses sent so far.
    fn responses(&mut self) -> Vec<Response> {
        let mut responses = Vec::new();
        self.sent.retain(|(_, message)| match message {
            Message::Response(r) => {
                responses.push(r.clone());
                false
            }
            Message::Request(_) => true,
        });
        responses
    }

    /// Takes the requests sent so far (our BYEs), retransmissions counted once.
    fn requests(&mut self) -> Vec<Request> {
        let mut requests: Vec<Request> = Vec::new();
        self.sent.retain(|(_, message)| match message {
            Message::Request(r) => {
                let branch = r.header("via");
                if !requests.iter().any(|seen| seen.header("via") == branch) {
                    requests.push(r.clone());
                }
                false
            }
            Message::Response(_) => true,
        });
        requests
    }

    /// The final statuses sent so far (provisional ones dropped).
    fn finals(&mut self) -> Vec<u16> {
        self.responses()
            .iter()
            .map(Response::status)
            .filter(|s| *s >= 200)
            .collect()
    }

    fn completions(&self) -> Vec<&callvault_catalog::Completion> {
        self.archive
            .iter()
            .filter_map(|c| match c {
                ArchiveCommand::Complete(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn inserts(&self) -> Vec<&callvault_catalog::NewRecording> {
        self.archive
            .iter()
            .filter_map(|c| match c {
                ArchiveCommand::Insert(r) => Some(r.as_ref()),
                _ => None,
            })
            .collect()
    }

    fn legs_started(&self) -> usize {
        self.recorder.media.order.len()
    }

    fn running_legs(&self) -> Vec<LegId> {
        let media = &self.recorder.media;
        media
            .order
            .iter()
            .copied()
            .filter(|id| media.legs[id].stopped_at.is_none())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The recording client

fn sdp(lines: &[(&str, &str)]) -> String {
    // (label, direction) per m-line, PCMU + telephone-event.
    let mut sdp = String::from(
        "v=0\r\no=SBC 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n",
    );
    for (i, (label, direction)) in lines.iter().enumerate() {
        sdp.push_str(&format!(
            "m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=label:{label}\r\na={direction}\r\n",
            10_000 + 2 * i
        ));
    }
    sdp
}

/// One recording dialog as the SRC sees it.
struct Call {
    call_id: String,
    cseq: u32,
    branch: u32,
    to_tag: Option<String>,
}

impl Call {
    fn new(call_id: &str) -> Call {
        Call {
            call_id: call_id.to_owned(),
            cseq: 0,
            branch: 0,
            to_tag: None,
        }
    }

    fn request(&mut self, method: &str, headers: &str, body: Option<(&str, &str)>) -> Vec<u8> {
        self.branch += 1;
        if method != "ACK" && method != "CANCEL" {
            self.cseq += 1;
        }
        self.request_with(method, self.cseq, self.branch, headers, body)
    }

    fn request_with(
        &self,
        method: &str,
        cseq: u32,
        branch: u32,
        headers: &str,
        body: Option<(&str, &str)>,
    ) -> Vec<u8> {
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let (content, length) = match body {
            Some((kind, text)) => (format!("Content-Type: {kind}\r\n"), text.len()),
            None => (String::new(), 0),
        };
        format!(
            "{method} sip:srs@198.51.100.5:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {SRC};branch=z9hG4bK-{call}-{branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:sbc@example.com>;tag=src-tag\r\n\
             To: <sip:srs@example.com>{to_tag}\r\n\
             Call-ID: {call}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:sbc@{SRC}>;+sip.src\r\n\
             {headers}{content}Content-Length: {length}\r\n\r\n{body}",
            call = self.call_id,
            body = body.map(|(_, b)| b).unwrap_or(""),
        )
        .into_bytes()
    }

    /// The INVITE, the 200 OK's To tag taken, and the ACK sent.
    fn establish(&mut self, pair: &mut Pair, lines: &[(&str, &str)]) -> Response {
        let invite = self.request("INVITE", "", Some(("application/sdp", &sdp(lines))));
        pair.deliver(src(), &invite);
        let ok = pair
            .responses()
            .into_iter()
            .find(|r| r.status() == 200)
            .expect("the INVITE is answered 200");
        self.to_tag = ok.to_tag().map(str::to_owned);
        self.ack(pair);
        ok
    }

    fn ack(&mut self, pair: &mut Pair) {
        let ack = self.request_with("ACK", self.cseq, self.branch + 1000, "", None);
        pair.deliver(src(), &ack);
    }

    fn reinvite(&mut self, pair: &mut Pair, lines: &[(&str, &str)], headers: &str) -> u16 {
        let invite = self.request("INVITE", headers, Some(("application/sdp", &sdp(lines))));
        pair.deliver(src(), &invite);
        let status = pair.finals().last().copied().expect("a final answer");
        self.ack(pair);
        status
    }

    fn bye(&mut self, pair: &mut Pair) -> u16 {
        let bye = self.request("BYE", "", None);
        pair.deliver(src(), &bye);
        pair.finals().last().copied().expect("BYE answered")
    }

    /// Answers our BYE 200.
    fn answer_bye(&self, pair: &mut Pair, bye: &Request) {
        let via = bye.header("via").unwrap();
        let response = format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} BYE\r\nContent-Length: 0\r\n\r\n",
            bye.header("from").unwrap(),
            bye.header("to").unwrap(),
            bye.call_id(),
            bye.cseq().0
        );
        pair.deliver(src(), response.as_bytes());
    }
}

fn two_streams() -> Vec<(&'static str, &'static str)> {
    vec![("1", "sendonly"), ("2", "sendonly")]
}

// ---------------------------------------------------------------------------------------------
// The rules

#[test]
fn a_call_is_answered_recorded_and_completed_when_its_files_close() {
    let mut pair = Pair::standard();
    let mut call = Call::new("call-1");
    let ok = call.establish(&mut pair, &two_streams());
    assert!(
        ok.body().starts_with(b"v=0"),
        "the 200 carries the SDP answer"
    );
    assert_eq!(pair.legs_started(), 2);
    let insert = pair.inserts()[0].clone();
    assert_eq!(insert.ingress_call_id, "call-1");
    assert_eq!(insert.legs.len(), 2);
    assert_eq!(insert.started_at, pair.now.wall);
    assert_eq!(
        ok.header("X-Callvault-Recording-Id"),
        Some(insert.id.as_str()),
        "the 200 names the recording for the client"
    );

    pair.advance(Duration::from_secs(30));
    assert_eq!(call.bye(&mut pair), 200);
    assert_eq!(pair.running_legs(), vec![], "both legs stopped at the BYE");
    assert!(
        pair.completions().is_empty(),
        "no completion before the files close"
    );
    pair.close_stopped_legs();
    let completion = pair.completions()[0];
    assert_eq!(completion.state, RecordingState::Complete);
    assert_eq!(completion.end_reason, EndReason::Bye);
    assert_eq!(completion.duration_ms, 30_000);
    assert_eq!(completion.legs.len(), 2);
    let mut registry = prometheus_client::registry::Registry::default();
    pair.recorder.gauges.calls.register(&mut registry);
    let mut metrics = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut metrics, &registry).unwrap();
    for line in [
        r#"callvault_sessions_total{mode="siprec",source="other"} 1"#,
        r#"callvault_recordings_completed_total{mode="siprec",end_reason="bye",state="complete"} 1"#,
        r#"callvault_call_duration_seconds_sum{mode="siprec"} 30.0"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in\n{metrics}"
        );
    }
    assert!(pair.recorder.is_drained());
    assert_eq!(
        pair.recorder.sessions.footprint(),
        0,
        "nothing outlives the call"
    );
}

#[test]
fn a_recording_belongs_to_the_tenant_of_the_first_matching_rule() {
    let rule = |name: &str, user: Option<&str>, source: Option<&str>| crate::tenants::TenantRule {
        name: name.to_owned(),
        request_user: user.map(str::to_owned),
        source: source.map(str::to_owned),
    };
    let tenants = Tenants::new(&[
        // The Request-URI user (srs) matches, the source (192.0.2.10) does not: skipped.
        rule("elsewhere", Some("^srs$"), Some("203.0.113.0/24")),
        rule("acme", Some("^srs$"), Some("192.0.2.0/24")),
        rule("catch-all", Some(".*"), None),
    ])
    .unwrap();
    let mut pair = Pair::new(
        RecorderConfig {
            tenants,
            ..config()
        },
        FakeMedia::with_ports(10),
    );
    Call::new("tenant-1").establish(&mut pair, &two_streams());
    let inserts = pair.inserts();
    assert_eq!(inserts.len(), 1);
    assert_eq!(inserts[0].tenant.as_deref(), Some("acme"));

    // Without rules, no tenant.
    let mut pair = Pair::standard();
    Call::new("tenant-2").establish(&mut pair, &two_streams());
    assert_eq!(pair.inserts()[0].tenant, None);
}

#[test]
fn cancel_during_the_answer_delay_gets_487_and_records_nothing() {
    let mut pair = Pair::new(
        RecorderConfig {
            answer_delay: Duration::from_secs(2),
            ..config()
        },
        FakeMedia::with_ports(10),
    );
    let mut call = Call::new("cancel-1");
    let invite = call.request(
        "INVITE",
        "",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    assert_eq!(
        pair.responses()
            .iter()
            .map(Response::status)
            .collect::<Vec<_>>(),
        vec![100, 180]
    );
    pair.advance(Duration::from_millis(500));
    // CANCEL carries the INVITE's branch and CSeq number.
    let cancel = call.request_with("CANCEL", call.cseq, call.branch, "", None);
    pair.deliver(src(), &cancel);
    let mut statuses = pair.finals();
    statuses.sort();
    assert_eq!(statuses, vec![200, 487]);
    pair.advance(Duration::from_secs(5));
    assert!(!pair.finals().contains(&200), "no 200 after the CANCEL");
    assert_eq!(pair.legs_started(), 0);
    assert!(pair.archive.is_empty());
    assert_eq!(pair.recorder.sessions.footprint(), 0);
}

#[test]
fn a_held_invite_is_answered_when_its_delay_ends() {
    let mut pair = Pair::new(
        RecorderConfig {
            answer_delay: Duration::from_secs(2),
            ..config()
        },
        FakeMedia::with_ports(10),
    );
    let mut call = Call::new("delay-1");
    let invite = call.request(
        "INVITE",
        "",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    let t0 = pair.now.at;
    pair.deliver(src(), &invite);
    pair.advance(Duration::from_secs(3));
    let finals = pair.finals();
    assert!(
        finals.contains(&200) && finals.iter().all(|s| *s == 200),
        "{finals:?}"
    );
    let leg = pair.recorder.media.order[0];
    assert_eq!(
        pair.recorder.media.legs[&leg].spec.anchor,
        t0 + Duration::from_secs(2),
        "offset 0 of the legs is the 200 OK, not the INVITE"
    );
    assert_eq!(
        pair.recorder.poll_answered(),
        Some((RecordingMode::Siprec, t0)),
        "the call's setup time runs from its INVITE, answer delay included"
    );
    assert_eq!(pair.recorder.poll_answered(), None);
}

#[test]
fn rtp_inactivity_ends_the_call_with_a_bye_of_ours() {
    let mut pair = Pair::standard();
    let mut call = Call::new("quiet-1");
    call.establish(&mut pair, &two_streams());
    pair.advance(Duration::from_secs(61));
    let leg = pair.recorder.media.order[0];
    pair.media(MediaEvent::Inactive {
        leg,
        silent_for: Duration::from_secs(60),
    });
    let byes = pair.requests();
    assert_eq!(byes.len(), 1);
    assert_eq!(*byes[0].method(), Method::Bye);
    assert_eq!(byes[0].call_id(), "quiet-1");
    assert!(byes[0].header("reason").unwrap().contains("cause=408"));
    assert_eq!(pair.recorder.unanswered_byes(), 1);
    call.answer_bye(&mut pair, &byes[0]);
    assert_eq!(pair.recorder.unanswered_byes(), 0);
    pair.close_stopped_legs();
    assert_eq!(pair.completions()[0].end_reason, EndReason::RtpTimeout);
    assert_eq!(pair.completions()[0].state, RecordingState::Complete);
}

#[test]
fn a_session_timer_without_refresh_ends_the_call_and_a_refresh_moves_it() {
    let mut pair = Pair::standard();
    let mut call = Call::new("timer-1");
    let invite = call.request(
        "INVITE",
        "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    let ok = pair
        .responses()
        .into_iter()
        .find(|r| r.status() == 200)
        .unwrap();
    assert!(ok.header("session-expires").is_some());
    call.to_tag = ok.to_tag().map(str::to_owned);
    call.ack(&mut pair);

    // RFC 4028 §10: without a refresh the BYE goes out before the expiry, by the smaller of
    // 32 s and a third of the interval: 88 s after the answer here. A refresh at 60 s moves it
    // to 148 s.
    pair.advance(Duration::from_secs(60));
    let update = call.request(
        "UPDATE",
        "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n",
        None,
    );
    pair.deliver(src(), &update);
    assert_eq!(pair.finals(), vec![200]);
    pair.advance(Duration::from_secs(87));
    assert!(
        pair.requests().is_empty(),
        "refreshed: no BYE at the old deadline"
    );
    pair.advance(Duration::from_secs(2));
    let byes = pair.requests();
    assert_eq!(byes.len(), 1, "BYE at the expiry");
    pair.close_stopped_legs();
    assert_eq!(pair.completions()[0].end_reason, EndReason::SessionExpired);
}

#[test]
fn session_timers_follow_rfc_4028() {
    // (Moved down from the end-to-end tests, where it took 80 s of real time.)
    let mut pair = Pair::standard();
    // Below the minimum of 90 s: 422 with Min-SE.
    let mut short = Call::new("timer-short");
    let invite = short.request(
        "INVITE",
        "Supported: timer\r\nSession-Expires: 30;refresher=uac\r\n",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    let refused = pair
        .responses()
        .into_iter()
        .find(|r| r.status() >= 200)
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(refused.header("min-se"), Some("90"));
    assert_eq!(pair.legs_started(), 0);

    let mut call = Call::new("timer-90");
    let invite = call.request(
        "INVITE",
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    let ok = pair
        .responses()
        .into_iter()
        .find(|r| r.status() == 200)
        .unwrap();
    assert_eq!(ok.header("session-expires"), Some("90;refresher=uac"));
    assert!(ok.header("require").unwrap_or("").contains("timer"));
    call.to_tag = ok.to_tag().map(str::to_owned);
    call.ack(&mut pair);
    let ports = |body: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(body)
            .lines()
            .filter(|l| l.starts_with("m="))
            .map(str::to_owned)
            .collect()
    };
    // A re-INVITE without SDP asks us for an offer (RFC 3261 §14.2): every m-line on the ports
    // answered before. It names no timer, so the timer is off until a refresh asks (§9).
    let offerless = call.request("INVITE", "", None);
    pair.deliver(src(), &offerless);
    let offer = pair
        .responses()
        .into_iter()
        .find(|r| r.status() == 200)
        .unwrap();
    assert_eq!(ports(offer.body()), ports(ok.body()));
    assert_eq!(offer.header("session-expires"), None);
    call.ack(&mut pair);
    pair.advance(Duration::from_secs(20));
    let refresh = call.request(
        "UPDATE",
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
        None,
    );
    pair.deliver(src(), &refresh);
    let refreshed = pair
        .responses()
        .into_iter()
        .find(|r| r.status() == 200)
        .unwrap();
    assert_eq!(
        refreshed.header("session-expires"),
        Some("90;refresher=uac")
    );
    // No refresh after that: the BYE comes at 90 - min(32, 30) = 60 s after it.
    pair.advance(Duration::from_secs(59));
    assert!(pair.requests().is_empty());
    pair.advance(Duration::from_secs(1));
    let byes = pair.requests();
    assert_eq!(byes.len(), 1);
    call.answer_bye(&mut pair, &byes[0]);
    pair.close_stopped_legs();
    assert_eq!(pair.completions()[0].end_reason, EndReason::SessionExpired);
    assert_eq!(pair.completions()[0].duration_ms, 80_000);
}

#[test]
fn refreshes_leave_nothing_behind() {
    // 1,200 refreshes with a long Call-ID (2,000 bytes then; 500 now, under the SIP cap of
    // 512) once grew memory by 66 MiB: every refresh pushed a deadline entry that lived until
    // due, even after BYE.
    let mut pair = Pair::standard();
    let mut call = Call::new(&"x".repeat(500));
    let invite = call.request(
        "INVITE",
        "Supported: timer\r\nSession-Expires: 1800\r\n",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    let ok = pair
        .responses()
        .into_iter()
        .find(|r| r.status() == 200)
        .unwrap();
    call.to_tag = ok.to_tag().map(str::to_owned);
    call.ack(&mut pair);
    let baseline = pair.recorder.sessions.footprint();
    for _ in 0..1200 {
        let update = call.request(
            "UPDATE",
            "Supported: timer\r\nSession-Expires: 1800\r\n",
            None,
        );
        pair.deliver(src(), &update);
        pair.advance(Duration::from_millis(10));
        assert_eq!(pair.finals(), vec![200]);
    }
    assert_eq!(pair.recorder.sessions.footprint(), baseline);
    call.bye(&mut pair);
    pair.close_stopped_legs();
    assert_eq!(pair.recorder.sessions.footprint(), 0);
    assert_eq!(
        pair.recorder.poll_timeout(),
        None,
        "no deadline survives the call"
    );
}

#[test]
fn a_call_held_for_max_hold_is_ended_and_resuming_resets_the_clock() {
    let mut pair = Pair::new(
        RecorderConfig {
            max_hold: Some(Duration::from_secs(600)),
            ..config()
        },
        FakeMedia::with_ports(10),
    );
    let mut call = Call::new("hold-1");
    call.establish(&mut pair, &two_streams());
    let held = [("1", "inactive"), ("2", "inactive")];
    assert_eq!(call.reinvite(&mut pair, &held, ""), 200);
    let leg = pair.recorder.media.order[0];
    assert!(
        !pair.recorder.media.legs[&leg]
            .updates
            .last()
            .unwrap()
            .active
    );
    pair.advance(Duration::from_secs(500));
    // Resumed before the limit, held again: the clock starts over.
    assert_eq!(call.reinvite(&mut pair, &two_streams(), ""), 200);
    assert!(
        pair.recorder.media.legs[&leg]
            .updates
            .last()
            .unwrap()
            .active
    );
    assert_eq!(call.reinvite(&mut pair, &held, ""), 200);
    pair.advance(Duration::from_secs(599));
    assert!(pair.requests().is_empty());
    pair.advance(Duration::from_secs(2));
    let byes = pair.requests();
    assert_eq!(byes.len(), 1);
    assert!(byes[0].header("reason").unwrap().contains("maximum hold"));
    pair.close_stopped_legs();
    assert_eq!(pair.completions()[0].end_reason, EndReason::MaxHold);
}

#[test]
fn one_stream_on_hold_is_not_a_held_call() {
    let mut pair = Pair::new(
        RecorderConfig {
            max_hold: Some(Duration::from_secs(60)),
            ..config()
        },
        FakeMedia::with_ports(10),
    );
    let mut call = Call::new("half-hold");
    call.establish(&mut pair, &two_streams());
    call.reinvite(&mut pair, &[("1", "inactive"), ("2", "sendonly")], "");
    pair.advance(Duration::from_secs(3600));
    assert!(pair.requests().is_empty());
}

#[test]
fn a_call_reaching_max_call_duration_is_ended() {
    let mut pair = Pair::new(
        RecorderConfig {
            max_call_duration: Some(Duration::from_secs(3600)),
            ..config()
        },
        FakeMedia::with_ports(10),
    );
    let mut call = Call::new("long-1");
    call.establish(&mut pair, &two_streams());
    pair.advance(Duration::from_secs(3599));
    assert!(pair.requests().is_empty());
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.requests().len(), 1);
    pair.close_stopped_legs();
    let completion = pair.completions()[0];
    assert_eq!(completion.end_reason, EndReason::MaxDuration);
    assert_eq!(completion.duration_ms, 3_600_000);
}

#[test]
fn exhausted_ports_get_503_and_start_no_leg() {
    // Three port pairs for a two-stream call and then another: the second call cannot have
    // both its streams, so it starts none (no file without a catalog row).
    let mut pair = Pair::new(config(), FakeMedia::with_ports(3));
    Call::new("first").establish(&mut pair, &two_streams());
    let mut second = Call::new("second");
    let invite = second.request(
        "INVITE",
        "",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    let refused = pair
        .responses()
        .into_iter()
        .find(|r| r.status() >= 200)
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.header("retry-after"), Some("7"));
    assert_eq!(pair.legs_started(), 2, "only the first call's legs");
    assert_eq!(pair.inserts().len(), 1);
}

#[test]
fn an_invite_reusing_a_live_call_id_cannot_end_that_call() {
    // Shown before: an INVITE reusing a live call's Call-ID, refused and never ACKed, ended the
    // live recording `ack-timeout` after 32 s (ACK timeouts were matched by Call-ID alone).
    let mut pair = Pair::standard();
    let mut live = Call::new("victim");
    live.establish(&mut pair, &two_streams());
    let mut hijack = Call::new("victim");
    hijack.branch = 500;
    let invite = hijack.request("INVITE", "", Some(("text/plain", "hello")));
    pair.deliver(src(), &invite);
    assert_eq!(pair.finals(), vec![415]);
    pair.advance(Duration::from_secs(40));
    assert!(pair.requests().is_empty(), "no BYE to the live call");
    assert!(pair.completions().is_empty());
    assert_eq!(live.bye(&mut pair), 200, "the live call's own BYE finds it");
    pair.close_stopped_legs();
    assert_eq!(pair.completions()[0].end_reason, EndReason::Bye);
}

#[test]
fn our_2xx_never_acknowledged_ends_the_call_with_a_bye() {
    let mut pair = Pair::standard();
    let mut call = Call::new("no-ack");
    let invite = call.request(
        "INVITE",
        "",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    assert!(pair.finals().contains(&200));
    pair.advance(Duration::from_secs(33));
    let byes = pair.requests();
    assert_eq!(
        byes.iter().filter(|r| *r.method() == Method::Bye).count(),
        1
    );
    pair.close_stopped_legs();
    assert_eq!(pair.completions()[0].end_reason, EndReason::AckTimeout);
}

#[test]
fn an_acked_reinvite_leaves_no_ack_wait_behind() {
    let mut pair = Pair::standard();
    let mut call = Call::new("re-ack");
    call.establish(&mut pair, &two_streams());
    for _ in 0..50 {
        assert_eq!(call.reinvite(&mut pair, &two_streams(), ""), 200);
    }
    let session = pair.recorder.sessions.keys()[0];
    assert!(
        pair.recorder
            .sessions
            .get(session)
            .unwrap()
            .unacked
            .is_empty()
    );
    pair.advance(Duration::from_secs(40));
    assert!(pair.requests().is_empty());
}

#[test]
fn colliding_labels_each_get_their_own_file_for_the_whole_call() {
    let mut pair = Pair::standard();
    let mut call = Call::new("labels");
    call.establish(
        &mut pair,
        &[
            ("dup", "sendonly"),
            ("dup", "sendonly"),
            ("a_leg", "sendonly"),
        ],
    );
    call.reinvite(
        &mut pair,
        &[
            ("dup", "sendonly"),
            ("dup", "sendonly"),
            ("a_leg", "sendonly"),
            ("a leg", "sendonly"),
            ("a.leg", "sendonly"),
        ],
        "",
    );
    let paths: Vec<String> = pair
        .recorder
        .media
        .order
        .iter()
        .map(|id| {
            pair.recorder.media.legs[id]
                .spec
                .path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        paths,
        [
            "dup.wav",
            "dup-2.wav",
            "a_leg.wav",
            "a_leg-2.wav",
            "a_leg-3.wav"
        ]
    );
}

#[test]
fn a_leg_that_cannot_be_written_ends_the_call_failed() {
    let mut pair = Pair::standard();
    let mut call = Call::new("disk-full");
    call.establish(&mut pair, &two_streams());
    pair.advance(Duration::from_secs(5));
    let leg = pair.recorder.media.order[1];
    pair.media(MediaEvent::LegFailed {
        leg,
        error: "No space left on device (os error 28)".to_owned(),
    });
    let byes = pair.requests();
    assert_eq!(byes.len(), 1);
    assert!(byes[0].header("reason").unwrap().contains("cause=500"));
    // The media engine closes the failed leg with its error, the other one cleanly.
    pair.recorder.media.legs.get_mut(&leg).unwrap().closed = true;
    pair.media(MediaEvent::LegClosed {
        leg,
        report: Box::new(LegReport {
            label: "2".to_owned(),
            samples: 40_000,
            error: Some("No space left on device (os error 28)".to_owned()),
            ..LegReport::default()
        }),
    });
    pair.close_stopped_legs();
    let completion = pair.completions()[0];
    assert_eq!(completion.state, RecordingState::Failed);
    assert_eq!(
        completion.warnings,
        ["leg 2: No space left on device (os error 28)"]
    );
    let failed = completion.legs.iter().find(|l| l.position == 1).unwrap();
    assert!(failed.error.is_some());
    assert_eq!(failed.samples, 40_000);
    assert_eq!(completion.end_reason, EndReason::WriteFailed);
}

#[test]
fn unhealthy_storage_refuses_new_calls_and_options_until_it_recovers() {
    let mut pair = Pair::standard();
    let mut live = Call::new("before");
    live.establish(&mut pair, &two_streams());
    pair.recorder.set_storage(Err(
        "free space 3.0 MiB below the low-water mark 5.0 MiB".to_owned()
    ));
    let mut refused = Call::new("during");
    let invite = refused.request(
        "INVITE",
        "",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    let response = pair
        .responses()
        .into_iter()
        .find(|r| r.status() >= 200)
        .unwrap();
    assert_eq!(
        (response.status(), response.reason()),
        (503, "Storage Unavailable")
    );
    assert!(response.header("retry-after").is_some());
    let options = Call::new("ping").request("OPTIONS", "", None);
    pair.deliver(src(), &options);
    assert_eq!(pair.finals(), vec![503]);
    // The call in progress goes on.
    assert_eq!(live.reinvite(&mut pair, &two_streams(), ""), 200);

    pair.recorder.set_storage(Ok(()));
    let options = Call::new("ping-2").request("OPTIONS", "", None);
    pair.deliver(src(), &options);
    assert_eq!(pair.finals(), vec![200]);
    Call::new("after").establish(&mut pair, &two_streams());
    assert_eq!(pair.inserts().len(), 2);
}

#[test]
fn a_full_node_refuses_invites_and_options() {
    let mut pair = Pair::new(
        RecorderConfig {
            max_sessions: 1,
            ..config()
        },
        FakeMedia::with_ports(10),
    );
    Call::new("one").establish(&mut pair, &two_streams());
    let invite = Call::new("two").request(
        "INVITE",
        "",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    assert_eq!(pair.finals(), vec![503]);
    let options = Call::new("ping").request("OPTIONS", "", None);
    pair.deliver(src(), &options);
    assert_eq!(pair.finals(), vec![503]);
}

#[test]
fn shutdown_sends_every_session_a_bye_and_finishes_their_rows() {
    let mut pair = Pair::standard();
    let mut calls: Vec<Call> = (0..3).map(|i| Call::new(&format!("up-{i}"))).collect();
    for call in &mut calls {
        call.establish(&mut pair, &two_streams());
    }
    pair.advance(Duration::from_secs(10));
    pair.recorder.begin_shutdown(pair.now, &mut pair.endpoint);
    pair.pump();
    let byes = pair.requests();
    assert_eq!(byes.len(), 3);
    for bye in &byes {
        assert_eq!(
            bye.header("reason"),
            Some("SIP;cause=503;text=\"shutting down\"")
        );
    }
    // New calls and pings are refused while draining.
    let invite = Call::new("late").request(
        "INVITE",
        "",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    let options = Call::new("ping").request("OPTIONS", "", None);
    pair.deliver(src(), &options);
    assert_eq!(pair.finals(), vec![503, 503]);
    assert!(!pair.recorder.is_drained(), "files still closing");
    for (call, bye) in calls.iter().zip(&byes) {
        call.answer_bye(&mut pair, bye);
    }
    assert_eq!(pair.recorder.unanswered_byes(), 0);
    pair.close_stopped_legs();
    assert!(pair.recorder.is_drained());
    let completions = pair.completions();
    assert_eq!(completions.len(), 3);
    for completion in completions {
        assert_eq!(completion.state, RecordingState::Interrupted);
        assert_eq!(completion.end_reason, EndReason::Shutdown);
        assert_eq!(completion.duration_ms, 10_000);
    }
}

#[test]
fn digits_reported_as_a_leg_stops_still_reach_the_catalog() {
    let mut pair = Pair::standard();
    let mut call = Call::new("digits");
    call.establish(&mut pair, &two_streams());
    let leg = pair.recorder.media.order[0];
    pair.media(MediaEvent::Dtmf {
        leg,
        digit: '5',
        offset_ms: 1000,
        duration_ms: 100,
    });
    call.bye(&mut pair);
    // The detector flushes the press in progress when the leg stops.
    pair.media(MediaEvent::Dtmf {
        leg,
        digit: '#',
        offset_ms: 2000,
        duration_ms: 80,
    });
    pair.close_stopped_legs();
    let digits: Vec<(String, String)> = pair
        .archive
        .iter()
        .filter_map(|c| match c {
            ArchiveCommand::Dtmf { event, .. } => Some((event.digit.clone(), event.leg.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        digits,
        [
            ("5".to_owned(), "1".to_owned()),
            ("#".to_owned(), "1".to_owned())
        ]
    );
    let [.., completion, announcement] = &pair.archive[..] else {
        panic!("the call queued nothing")
    };
    assert!(
        matches!(completion, ArchiveCommand::Complete(_)),
        "the completion comes last but its announcement"
    );
    assert!(
        matches!(
            announcement,
            ArchiveCommand::Notify {
                event: crate::notify::Event::Completed,
                lock_id: None,
                ..
            }
        ),
        "announced once complete: {announcement:?}"
    );
}

#[test]
fn a_rate_above_the_cap_is_not_accepted() {
    let mut pair = Pair::standard();
    let mut call = Call::new("hifi");
    let body = "v=0\r\no=SBC 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                m=audio 10000 RTP/AVP 96 0\r\na=rtpmap:96 L16/192000\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n\
                m=audio 10002 RTP/AVP 97\r\na=rtpmap:97 L16/96000\r\na=sendonly\r\n";
    let invite = call.request("INVITE", "", Some(("application/sdp", body)));
    pair.deliver(src(), &invite);
    let ok = pair
        .responses()
        .into_iter()
        .find(|r| r.status() == 200)
        .unwrap();
    let answer = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(
        answer.contains("m=audio 0 "),
        "the 96 kHz-only line is declined: {answer}"
    );
    assert!(
        answer.contains("PCMU/8000"),
        "PCMU chosen over L16/192000: {answer}"
    );
    assert_eq!(pair.legs_started(), 1);
    let leg = pair.recorder.media.order[0];
    assert_eq!(
        pair.recorder.media.legs[&leg].spec.codec.sample_rate(),
        8000
    );
}

#[test]
fn one_source_over_its_own_limits_is_refused_while_others_record() {
    let mut pair = Pair::new(
        RecorderConfig {
            max_sessions_per_source: 2,
            invites_per_second_per_source: 3,
            ..config()
        },
        FakeMedia::with_ports(100),
    );
    Call::new("a1").establish(&mut pair, &two_streams());
    Call::new("a2").establish(&mut pair, &two_streams());
    // A third call from the same SBC address: over its session limit.
    let invite = Call::new("a3").request(
        "INVITE",
        "",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    let refused = pair
        .responses()
        .into_iter()
        .find(|r| r.status() >= 200)
        .unwrap();
    assert_eq!(
        (refused.status(), refused.reason()),
        (503, "Source Over Its Limit")
    );
    // Another SBC is not affected.
    let other = Peer::udp("192.0.2.20:5060".parse().unwrap());
    let invite = Call::new("b1").request(
        "INVITE",
        "",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(other, &invite);
    assert!(pair.finals().contains(&200));
    assert_eq!(pair.inserts().len(), 3);
}

#[test]
fn a_source_sending_invites_faster_than_its_rate_gets_503_then_recovers() {
    let mut pair = Pair::new(
        RecorderConfig {
            invites_per_second_per_source: 5,
            ..config()
        },
        FakeMedia::with_ports(100),
    );
    let mut statuses = Vec::new();
    for n in 0..8 {
        let invite = Call::new(&format!("burst-{n}")).request(
            "INVITE",
            "",
            Some(("application/sdp", &sdp(&two_streams()))),
        );
        pair.deliver(src(), &invite);
        statuses.extend(pair.finals());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 503, 503, 503]);
    pair.advance(Duration::from_secs(1));
    pair.finals();
    let invite = Call::new("later").request(
        "INVITE",
        "",
        Some(("application/sdp", &sdp(&two_streams()))),
    );
    pair.deliver(src(), &invite);
    assert!(pair.finals().contains(&200), "the bucket refills");
}

#[test]
fn digits_and_revisions_past_a_recordings_cap_are_not_stored() {
    let mut pair = Pair::new(
        RecorderConfig {
            max_dtmf_per_recording: 3,
            max_metadata_revisions: 2,
            ..config()
        },
        FakeMedia::with_ports(10),
    );
    let mut call = Call::new("flood");
    call.establish(&mut pair, &two_streams());
    let leg = pair.recorder.media.order[0];
    for n in 0..10 {
        pair.media(MediaEvent::Dtmf {
            leg,
            digit: '1',
            offset_ms: 100 * n,
            duration_ms: 50,
        });
    }
    let info = call.request(
        "INFO",
        "",
        Some(("application/dtmf-relay", "Signal=5\r\nDuration=100\r\n")),
    );
    pair.deliver(src(), &info);
    assert_eq!(pair.finals(), vec![200], "INFO still answered");
    let digits = pair
        .archive
        .iter()
        .filter(|c| matches!(c, ArchiveCommand::Dtmf { .. }))
        .count();
    assert_eq!(digits, 3);
    let metadata = "<?xml version=\"1.0\"?><recording xmlns=\"urn:ietf:params:xml:ns:recording:1\"><datamode>partial</datamode></recording>";
    for _ in 0..5 {
        let update = call.request(
            "UPDATE",
            "",
            Some(("application/rs-metadata+xml", metadata)),
        );
        pair.deliver(src(), &update);
        assert_eq!(pair.finals(), vec![200]);
    }
    let revisions = pair
        .archive
        .iter()
        .filter(|c| matches!(c, ArchiveCommand::Revision { .. }))
        .count();
    assert_eq!(revisions, 2);
    assert_eq!(
        pair.recorder.gauges.capped_total.load(Ordering::Relaxed),
        8 + 3
    );
}

#[test]
fn a_paused_recording_records_silence_and_no_digits_until_resumed() {
    let mut pair = Pair::standard();
    let mut call = Call::new("pci");
    call.establish(&mut pair, &two_streams());
    let recording_id = pair.inserts()[0].id.clone();
    let legs = pair.recorder.media.order.clone();
    pair.advance(Duration::from_secs(10));
    pair.recorder
        .pause(pair.now, &recording_id, "agent-7")
        .unwrap();
    pair.pump();
    assert_eq!(
        pair.recorder.pause(pair.now, &recording_id, "agent-7"),
        Err(ControlError::AlreadyPaused)
    );
    for leg in &legs {
        let update = pair.recorder.media.legs[leg]
            .updates
            .last()
            .unwrap()
            .clone();
        assert!(!update.active, "every leg records silence while paused");
    }
    // A card number keyed while paused: RFC 4733 and INFO digits are not stored.
    pair.advance(Duration::from_secs(2));
    pair.media(MediaEvent::Dtmf {
        leg: legs[0],
        digit: '4',
        offset_ms: 11_000,
        duration_ms: 100,
    });
    let info = call.request(
        "INFO",
        "",
        Some(("application/dtmf-relay", "Signal=1\r\nDuration=100\r\n")),
    );
    pair.deliver(src(), &info);
    assert_eq!(pair.finals(), vec![200]);
    // A re-INVITE during the pause does not bring the audio back.
    assert_eq!(call.reinvite(&mut pair, &two_streams(), ""), 200);
    assert!(
        !pair.recorder.media.legs[&legs[0]]
            .updates
            .last()
            .unwrap()
            .active
    );
    pair.advance(Duration::from_secs(3));
    pair.recorder
        .resume(pair.now, &recording_id, "agent-7")
        .unwrap();
    pair.pump();
    assert!(
        pair.recorder.media.legs[&legs[0]]
            .updates
            .last()
            .unwrap()
            .active
    );
    // A press reported late that fell inside the pause is not stored either; one after is.
    pair.media(MediaEvent::Dtmf {
        leg: legs[0],
        digit: '9',
        offset_ms: 14_000,
        duration_ms: 100,
    });
    pair.advance(Duration::from_secs(1));
    pair.media(MediaEvent::Dtmf {
        leg: legs[0],
        digit: '#',
        offset_ms: 15_500,
        duration_ms: 100,
    });
    assert_eq!(
        pair.recorder.resume(pair.now, &recording_id, "agent-7"),
        Err(ControlError::NotPaused)
    );
    let digits: Vec<String> = pair
        .archive
        .iter()
        .filter_map(|c| match c {
            ArchiveCommand::Dtmf { event, .. } => Some(event.digit.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(digits, ["#"]);
    let pauses: Vec<Pause> = pair
        .archive
        .iter()
        .filter_map(|c| match c {
            ArchiveCommand::Pause { pause, .. } => Some(pause.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        pauses.last().unwrap(),
        &Pause {
            seq: 0,
            from_ms: 10_000,
            to_ms: Some(15_000),
            by: "agent-7".to_owned(),
        }
    );
}

#[test]
fn a_pause_lasts_until_the_end_of_the_call_and_only_live_calls_pause() {
    let mut pair = Pair::standard();
    let mut call = Call::new("pci-end");
    call.establish(&mut pair, &two_streams());
    let recording_id = pair.inserts()[0].id.clone();
    assert_eq!(
        pair.recorder.pause(pair.now, "no-such-recording", "x"),
        Err(ControlError::NotActive)
    );
    pair.advance(Duration::from_secs(4));
    pair.recorder
        .pause(pair.now, &recording_id, "sup-1")
        .unwrap();
    pair.advance(Duration::from_secs(6));
    call.bye(&mut pair);
    let last = pair
        .archive
        .iter()
        .rev()
        .find_map(|c| match c {
            ArchiveCommand::Pause { pause, .. } => Some(pause.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((last.from_ms, last.to_ms), (4_000, Some(10_000)));
    assert_eq!(
        pair.recorder.pause(pair.now, &recording_id, "sup-1"),
        Err(ControlError::NotActive),
        "an ended call cannot be paused"
    );
}

mod passthrough;
mod sources;
mod srtp;
