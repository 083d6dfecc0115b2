//! Pass-through recording (the B2BUA) on virtual time: a caller and a callee, each a few lines
//! of SIP written here, on both sides of a real endpoint and the recorder. Retransmissions on
//! both sides, CANCEL, busy, a silent target, glare, crossing BYEs, hold, INFO digits.

use callvault_types::{Party, RecordingMode};

use super::*;
use crate::routes::RouteRule;

const CALLEE: &str = "192.0.2.20:5060";

fn callee() -> Peer {
    Peer::udp(CALLEE.parse().unwrap())
}

fn routed_config() -> RecorderConfig {
    RecorderConfig {
        routes: Routes::new(&[RouteRule {
            name: "pbx".to_owned(),
            request_user: Some("^\\+44".to_owned()),
            target: format!("sip:{CALLEE}"),
            record: true,
            dtmf: true,
            ..RouteRule::default()
        }])
        .unwrap(),
        ..config()
    }
}

fn routed() -> Pair {
    Pair::new(routed_config(), FakeMedia::with_ports(100))
}

fn phone_sdp(ip: &str, port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

/// The caller: a phone or PBX whose INVITE reaches callvault.
struct Caller {
    call_id: String,
    cseq: u32,
    branch: u32,
    to_tag: Option<String>,
}

impl Caller {
    fn new() -> Caller {
        Caller {
            call_id: "ingress-1@pbx".to_owned(),
            cseq: 0,
            branch: 0,
            to_tag: None,
        }
    }

    fn request(&mut self, method: &str, extra: &str, body: Option<&str>) -> Vec<u8> {
        self.branch += 1;
        if method != "ACK" && method != "CANCEL" {
            self.cseq += 1;
        }
        self.request_with(method, self.cseq, self.branch, extra, body)
    }

    fn request_with(
        &self,
        method: &str,
        cseq: u32,
        branch: u32,
        extra: &str,
        body: Option<&str>,
    ) -> Vec<u8> {
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let (content, body) = match body {
            Some(b) if b.starts_with("Signal") => ("Content-Type: application/dtmf-relay\r\n", b),
            Some(b) => ("Content-Type: application/sdp\r\n", b),
            None => ("", ""),
        };
        format!(
            "{method} sip:+4420123@198.51.100.5:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {SRC};branch=z9hG4bK-c-{branch}\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@pbx.example.com>;tag=alice-tag\r\n\
             To: <sip:+4420123@example.com>{to_tag}\r\n\
             Call-ID: {call}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:alice@{SRC}>\r\n\
             {extra}{content}Content-Length: {length}\r\n\r\n{body}",
            call = self.call_id,
            length = body.len(),
        )
        .into_bytes()
    }

    fn invite(&mut self, pair: &mut Pair) {
        let invite = self.request(
            "INVITE",
            "",
            Some(&phone_sdp("192.0.2.10", 6000, "sendrecv")),
        );
        pair.deliver(src(), &invite);
    }

    fn ack(&mut self, pair: &mut Pair) {
        let ack = self.request_with("ACK", self.cseq, self.branch + 1000, "", None);
        pair.deliver(src(), &ack);
    }
}

/// Messages sent to `to` so far (taken), retransmissions included.
fn sent_to(pair: &mut Pair, to: Peer) -> Vec<Message> {
    let mut taken = Vec::new();
    pair.sent.retain(|(peer, message)| {
        if *peer == to {
            taken.push(message.clone());
            false
        } else {
            true
        }
    });
    taken
}

fn requests_of(messages: &[Message]) -> Vec<Request> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.clone()),
            Message::Response(_) => None,
        })
        .collect()
}

fn statuses_of(messages: &[Message]) -> Vec<u16> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.status()),
            Message::Request(_) => None,
        })
        .collect()
}

/// The callee's answer to a request we sent it.
fn reply(request: &Request, status: u16, body: Option<&str>) -> Vec<u8> {
    let mut response = request.response(status);
    if status > 100 {
        response = response.with_to_tag("bob-tag");
    }
    if (200..300).contains(&status) && request.method() == &Method::Invite {
        response = response.with_header("Contact", format!("<sip:bob@{CALLEE}>"));
    }
    if let Some(body) = body {
        response = response.with_body("application/sdp", body.as_bytes().to_vec());
    }
    response.to_bytes()
}

/// The callee's own in-dialog request (it is the UAS of our INVITE: From is its side).
fn callee_request(egress: &Request, method: &str, cseq: u32, body: Option<&str>) -> Vec<u8> {
    let from_tag = egress.from_tag().unwrap();
    let (content, body) = match body {
        Some(b) => ("Content-Type: application/sdp\r\n", b),
        None => ("", ""),
    };
    format!(
        "{method} sip:callvault@198.51.100.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLEE};branch=z9hG4bK-b-{method}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+4420123@example.com>;tag=bob-tag\r\n\
         To: <sip:alice@pbx.example.com>;tag={from_tag}\r\n\
         Call-ID: {call}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:bob@{CALLEE}>\r\n\
         {content}Content-Length: {length}\r\n\r\n{body}",
        call = egress.call_id(),
        length = body.len(),
    )
    .into_bytes()
}

/// Caller INVITE → our INVITE to the callee, which rings and answers; both ACKed. Returns our
/// INVITE as the callee saw it.
fn answered(pair: &mut Pair, caller: &mut Caller) -> Request {
    caller.invite(pair);
    assert_eq!(statuses_of(&sent_to(pair, src())), [100]);
    let egress = requests_of(&sent_to(pair, callee())).remove(0);
    pair.deliver(callee(), &reply(&egress, 180, None));
    pair.deliver(
        callee(),
        &reply(
            &egress,
            200,
            Some(&phone_sdp("192.0.2.20", 7000, "sendrecv")),
        ),
    );
    let to_caller = sent_to(pair, src());
    assert_eq!(statuses_of(&to_caller), [180, 200]);
    let Message::Response(ok) = &to_caller[1] else {
        unreachable!()
    };
    caller.to_tag = ok.to_tag().map(str::to_owned);
    caller.ack(pair);
    let acks = requests_of(&sent_to(pair, callee()));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method(), &Method::Ack);
    egress
}

#[test]
fn an_answered_call_goes_through_with_our_own_ids_and_records_both_directions() {
    let mut pair = routed();
    let mut caller = Caller::new();
    caller.invite(&mut pair);
    assert_eq!(statuses_of(&sent_to(&mut pair, src())), [100]);
    // The caller retransmits its INVITE: absorbed, no second INVITE goes out.
    let again = caller.request_with(
        "INVITE",
        1,
        1,
        "",
        Some(&phone_sdp("192.0.2.10", 6000, "sendrecv")),
    );
    pair.deliver(src(), &again);
    assert_eq!(
        statuses_of(&sent_to(&mut pair, src())),
        [100],
        "the 100 again"
    );
    let egress = requests_of(&sent_to(&mut pair, callee()));
    assert_eq!(egress.len(), 1, "one INVITE to the callee");
    let egress = egress[0].clone();
    assert_eq!(egress.uri(), format!("sip:+4420123@{CALLEE}"));
    assert_ne!(egress.call_id(), "ingress-1@pbx");
    assert_ne!(egress.from_tag(), Some("alice-tag"));
    assert!(
        egress
            .from_header()
            .starts_with("\"Alice\" <sip:alice@pbx.example.com>")
    );
    assert_eq!(egress.to_tag(), None);
    assert_eq!(egress.header("max-forwards"), Some("69"));
    assert!(egress.header("via").unwrap().contains("branch=z9hG4bK"));
    assert!(!egress.header("via").unwrap().contains("192.0.2.10"));
    let offer = String::from_utf8_lossy(egress.body()).into_owned();
    assert!(offer.contains("c=IN IP4 198.51.100.5"), "{offer}");
    assert!(
        !offer.contains("6000"),
        "the caller's port is hidden: {offer}"
    );

    // Early media: 183 with SDP starts both legs, relayed to the caller with our SDP.
    pair.deliver(
        callee(),
        &reply(
            &egress,
            183,
            Some(&phone_sdp("192.0.2.20", 7000, "sendrecv")),
        ),
    );
    let early = sent_to(&mut pair, src());
    let Message::Response(progress) = &early[0] else {
        panic!("183 relayed")
    };
    assert_eq!(progress.status(), 183);
    assert!(String::from_utf8_lossy(progress.body()).contains("c=IN IP4 198.51.100.5"));
    assert_eq!(pair.legs_started(), 2);
    let media = &pair.recorder.media;
    let (a, b) = (&media.legs[&media.order[0]], &media.legs[&media.order[1]]);
    assert_eq!(
        (a.spec.label.as_str(), b.spec.label.as_str()),
        ("caller", "callee")
    );
    assert_eq!(a.spec.sources.port, 6000);
    assert_eq!(b.spec.sources.port, 7000);
    assert_eq!(a.spec.telephone_event_pt, Some(101));

    pair.advance(Duration::from_secs(2));
    let ok = reply(
        &egress,
        200,
        Some(&phone_sdp("192.0.2.20", 7000, "sendrecv")),
    );
    pair.deliver(callee(), &ok);
    let acks = requests_of(&sent_to(&mut pair, callee()));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method(), &Method::Ack);
    assert_eq!(acks[0].uri(), format!("sip:bob@{CALLEE}"));
    // The callee's 200 again (our ACK was lost): ACKed again, the caller gets one 200 only.
    pair.deliver(callee(), &ok);
    assert_eq!(requests_of(&sent_to(&mut pair, callee())).len(), 1);
    let to_caller = sent_to(&mut pair, src());
    assert_eq!(statuses_of(&to_caller), [200]);
    let Message::Response(answer) = &to_caller[0] else {
        unreachable!()
    };
    assert_eq!(answer.call_id(), "ingress-1@pbx");
    assert!(answer.header("contact").unwrap().contains("198.51.100.5"));
    caller.to_tag = answer.to_tag().map(str::to_owned);
    caller.ack(&mut pair);
    assert_eq!(pair.legs_started(), 2, "the 200 reuses the early legs");

    pair.advance(Duration::from_secs(10));
    let bye = caller.request("BYE", "", None);
    pair.deliver(src(), &bye);
    assert_eq!(statuses_of(&sent_to(&mut pair, src())), [200]);
    let bye_out = requests_of(&sent_to(&mut pair, callee()));
    assert_eq!(bye_out[0].method(), &Method::Bye);
    assert_eq!(bye_out[0].call_id(), egress.call_id());
    assert_eq!(pair.running_legs(), vec![]);
    pair.deliver(callee(), &reply(&bye_out[0], 200, None));
    pair.close_stopped_legs();

    let insert = pair.inserts()[0].clone();
    assert_eq!(insert.mode, RecordingMode::Passthrough);
    assert_eq!(insert.route.as_deref(), Some("pbx"));
    assert_eq!(insert.ingress_call_id, "ingress-1@pbx");
    assert_eq!(insert.egress_call_id.as_deref(), Some(egress.call_id()));
    let added: Vec<String> = pair
        .archive
        .iter()
        .filter_map(|c| match c {
            ArchiveCommand::AddLegs { legs, .. } => Some(legs.iter().map(|l| l.label.clone())),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(added, ["caller", "callee"]);
    let done = pair.completions()[0].clone();
    assert_eq!(done.state, RecordingState::Complete);
    assert_eq!(done.final_status, Some(200));
    assert_eq!(done.hung_up_by, Some(Party::Caller));
    assert_eq!(done.end_reason, EndReason::Bye);
    assert_eq!(done.legs.len(), 2);
    assert!(pair.recorder.is_drained());
}

#[test]
fn busy_is_relayed_acked_hop_by_hop_and_catalogued_unanswered() {
    let mut pair = routed();
    let mut caller = Caller::new();
    caller.invite(&mut pair);
    sent_to(&mut pair, src());
    let egress = requests_of(&sent_to(&mut pair, callee())).remove(0);
    let busy = reply(&egress, 486, None);
    pair.deliver(callee(), &busy);
    let ack = requests_of(&sent_to(&mut pair, callee()));
    assert_eq!(ack[0].method(), &Method::Ack);
    assert_eq!(
        ack[0].header("via"),
        egress.header("via"),
        "hop by hop: same branch"
    );
    assert_eq!(pair.finals(), [486]);
    // The callee repeats its 486: ACKed again, nothing more to the caller.
    pair.deliver(callee(), &busy);
    assert_eq!(requests_of(&sent_to(&mut pair, callee())).len(), 1);
    assert!(pair.finals().is_empty());
    assert_eq!(pair.legs_started(), 0);
    let done = pair.completions()[0].clone();
    assert_eq!(done.final_status, Some(486));
    assert_eq!(done.end_reason, EndReason::NotAnswered);
    assert_eq!(done.hung_up_by, None);
    assert!(done.legs.is_empty());
    assert!(pair.recorder.is_drained());
}

#[test]
fn a_cancel_from_the_caller_is_relayed_and_the_487_acked() {
    let mut pair = routed();
    let mut caller = Caller::new();
    caller.invite(&mut pair);
    sent_to(&mut pair, src());
    let egress = requests_of(&sent_to(&mut pair, callee())).remove(0);
    pair.deliver(callee(), &reply(&egress, 180, None));
    assert_eq!(statuses_of(&sent_to(&mut pair, src())), [180]);
    pair.advance(Duration::from_secs(5));
    let cancel = caller.request_with("CANCEL", 1, 1, "", None);
    pair.deliver(src(), &cancel);
    let mut to_caller = statuses_of(&sent_to(&mut pair, src()));
    to_caller.sort_unstable();
    assert_eq!(to_caller, [200, 487]);
    let out = requests_of(&sent_to(&mut pair, callee()));
    assert_eq!(out[0].method(), &Method::Cancel);
    assert_eq!(out[0].header("via"), egress.header("via"));
    pair.deliver(callee(), &reply(&out[0], 200, None));
    pair.deliver(callee(), &reply(&egress, 487, None));
    let ack = requests_of(&sent_to(&mut pair, callee()));
    assert_eq!(ack[0].method(), &Method::Ack);
    assert!(
        sent_to(&mut pair, src()).is_empty(),
        "the caller already had its 487"
    );
    let done = pair.completions()[0].clone();
    assert_eq!(done.final_status, Some(487));
    assert_eq!(done.hung_up_by, Some(Party::Caller));
    assert!(pair.recorder.is_drained());
}

#[test]
fn a_silent_target_gets_our_retransmissions_then_the_caller_gets_408() {
    let mut pair = routed();
    let mut caller = Caller::new();
    caller.invite(&mut pair);
    sent_to(&mut pair, src());
    pair.advance(Duration::from_secs(31));
    let tries = requests_of(&sent_to(&mut pair, callee()));
    // Sent at 0, then Timer A: 0.5, 1.5, 3.5, 7.5, 15.5 s (the next at 31.5 s).
    assert_eq!(tries.len(), 6, "the INVITE and its Timer A retransmissions");
    assert!(pair.finals().is_empty());
    pair.advance(Duration::from_millis(1100));
    assert_eq!(requests_of(&sent_to(&mut pair, callee())).len(), 1);
    // Timer B (64*T1 = 32 s): the caller hears 408.
    assert_eq!(pair.finals(), [408]);
    assert_eq!(pair.completions()[0].final_status, Some(408));
}

#[test]
fn glare_gets_491_and_a_relayed_hold_updates_the_legs() {
    let mut pair = routed();
    let mut caller = Caller::new();
    let egress = answered(&mut pair, &mut caller);
    // The callee puts the call on hold: relayed to the caller as a re-INVITE of ours.
    pair.deliver(
        callee(),
        &callee_request(
            &egress,
            "INVITE",
            1,
            Some(&phone_sdp("192.0.2.20", 7000, "sendonly")),
        ),
    );
    let to_caller = requests_of(&sent_to(&mut pair, src()));
    assert_eq!(to_caller.len(), 1);
    let reinvite = to_caller[0].clone();
    assert_eq!(reinvite.method(), &Method::Invite);
    assert_eq!(reinvite.call_id(), "ingress-1@pbx");
    assert!(String::from_utf8_lossy(reinvite.body()).contains("a=sendonly"));
    assert!(String::from_utf8_lossy(reinvite.body()).contains("198.51.100.5"));
    // The caller's own re-INVITE crosses it: 491.
    let crossing = caller.request(
        "INVITE",
        "",
        Some(&phone_sdp("192.0.2.10", 6000, "sendonly")),
    );
    pair.deliver(src(), &crossing);
    assert_eq!(pair.finals(), [491]);
    caller.ack(&mut pair);
    // The caller answers the hold recvonly: relayed back to the callee, both ACKed.
    pair.deliver(src(), &{
        let mut r = reinvite.response(200).with_to_tag("alice-tag");
        r = r.with_header("Contact", format!("<sip:alice@{SRC}>"));
        r.with_body(
            "application/sdp",
            phone_sdp("192.0.2.10", 6000, "recvonly").into_bytes(),
        )
        .to_bytes()
    });
    let acks = requests_of(&sent_to(&mut pair, src()));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method(), &Method::Ack);
    let to_callee = sent_to(&mut pair, callee());
    assert_eq!(statuses_of(&to_callee), [200]);
    let media = &pair.recorder.media;
    let caller_leg = &media.legs[&media.order[0]];
    let callee_leg = &media.legs[&media.order[1]];
    assert!(
        !caller_leg.updates.last().unwrap().active,
        "the caller only receives while held"
    );
    assert!(callee_leg.updates.last().unwrap().active, "music on hold");
}

#[test]
fn crossing_byes_are_both_answered_and_the_callee_is_recorded_as_hanging_up() {
    let mut pair = routed();
    let mut caller = Caller::new();
    let egress = answered(&mut pair, &mut caller);
    pair.advance(Duration::from_secs(3));
    pair.deliver(callee(), &callee_request(&egress, "BYE", 1, None));
    assert_eq!(statuses_of(&sent_to(&mut pair, callee())), [200]);
    let our_bye = requests_of(&sent_to(&mut pair, src()));
    assert_eq!(our_bye[0].method(), &Method::Bye);
    // The caller's BYE crosses ours.
    let bye = caller.request("BYE", "", None);
    pair.deliver(src(), &bye);
    assert_eq!(statuses_of(&sent_to(&mut pair, src())), [200]);
    pair.close_stopped_legs();
    let done = pair.completions()[0].clone();
    assert_eq!(done.hung_up_by, Some(Party::Callee));
    assert_eq!(done.final_status, Some(200));
}

#[test]
fn info_digits_are_captured_and_forwarded() {
    let mut pair = routed();
    let mut caller = Caller::new();
    let _egress = answered(&mut pair, &mut caller);
    pair.advance(Duration::from_secs(1));
    let info = caller.request("INFO", "", Some("Signal=5\r\nDuration=160\r\n"));
    pair.deliver(src(), &info);
    let out = requests_of(&sent_to(&mut pair, callee()));
    assert_eq!(out[0].method(), &Method::Info);
    assert_eq!(out[0].body(), b"Signal=5\r\nDuration=160\r\n");
    pair.deliver(callee(), &reply(&out[0], 200, None));
    assert_eq!(statuses_of(&sent_to(&mut pair, src())), [200]);
    let digits: Vec<(String, String)> = pair
        .archive
        .iter()
        .filter_map(|c| match c {
            ArchiveCommand::Dtmf { event, .. } => Some((event.digit.clone(), event.leg.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(digits, [("5".to_owned(), "caller".to_owned())]);
}

#[test]
fn no_route_is_404_loops_are_483_and_recording_sessions_stay_siprec() {
    let mut pair = routed();
    let mut caller = Caller::new();
    caller.call_id = "x@pbx".to_owned();
    let invite = caller
        .request(
            "INVITE",
            "",
            Some(&phone_sdp("192.0.2.10", 6000, "sendrecv")),
        )
        .iter()
        .map(|b| *b as char)
        .collect::<String>()
        .replace("sip:+4420123@198", "sip:+3310@198");
    pair.deliver(src(), invite.as_bytes());
    assert_eq!(pair.finals(), [404]);

    let looped = String::from_utf8(caller.request(
        "INVITE",
        "",
        Some(&phone_sdp("192.0.2.10", 6000, "sendrecv")),
    ))
    .unwrap()
    .replace("Max-Forwards: 70", "Max-Forwards: 0");
    pair.deliver(src(), looped.as_bytes());
    assert_eq!(pair.finals(), [483]);

    // A SIPREC INVITE to the same number is recorded as before, routes or not.
    let mut srec = Call::new("siprec-1");
    srec.establish(&mut pair, &two_streams());
    assert_eq!(pair.inserts()[0].mode, RecordingMode::Siprec);
    assert!(pair.sent.iter().all(|(peer, _)| *peer != callee()));
}

#[test]
fn one_silent_side_is_not_a_dead_call_but_both_are() {
    let mut pair = routed();
    let mut caller = Caller::new();
    let egress = answered(&mut pair, &mut caller);
    let (a, b) = {
        let media = &pair.recorder.media;
        (media.order[0], media.order[1])
    };
    pair.media(MediaEvent::Inactive {
        leg: a,
        silent_for: Duration::from_secs(60),
    });
    let quiet = sent_to(&mut pair, callee());
    assert!(quiet.is_empty(), "a muted caller: {quiet:?}");
    pair.media(MediaEvent::Inactive {
        leg: b,
        silent_for: Duration::from_secs(60),
    });
    let to_callee = requests_of(&sent_to(&mut pair, callee()));
    let to_caller = requests_of(&sent_to(&mut pair, src()));
    assert_eq!(to_callee[0].method(), &Method::Bye);
    assert_eq!(to_callee[0].call_id(), egress.call_id());
    assert_eq!(to_caller[0].method(), &Method::Bye);
    pair.close_stopped_legs();
    let done = pair.completions()[0].clone();
    assert_eq!(done.end_reason, EndReason::RtpTimeout);
    assert_eq!(done.hung_up_by, None);
}

#[test]
fn shutdown_ends_answered_calls_with_byes_and_ringing_ones_with_503_and_cancel() {
    let mut pair = routed();
    let mut first = Caller::new();
    let first_egress = answered(&mut pair, &mut first);
    let mut second = Caller::new();
    second.call_id = "ingress-2@pbx".to_owned();
    second.invite(&mut pair);
    sent_to(&mut pair, src());
    let second_egress = requests_of(&sent_to(&mut pair, callee())).remove(0);
    pair.deliver(callee(), &reply(&second_egress, 180, None));
    sent_to(&mut pair, src());

    pair.recorder.begin_shutdown(pair.now, &mut pair.endpoint);
    pair.pump();
    let to_caller = sent_to(&mut pair, src());
    assert_eq!(statuses_of(&to_caller), [503], "the ringing call");
    assert_eq!(requests_of(&to_caller)[0].method(), &Method::Bye);
    let to_callee = requests_of(&sent_to(&mut pair, callee()));
    let methods: Vec<(&Method, &str)> = to_callee
        .iter()
        .map(|r| (r.method(), r.call_id()))
        .collect();
    assert!(
        methods.contains(&(&Method::Bye, first_egress.call_id())),
        "{methods:?}"
    );
    assert!(
        methods.contains(&(&Method::Cancel, second_egress.call_id())),
        "{methods:?}"
    );
    pair.close_stopped_legs();
    assert!(pair.recorder.is_drained());
    let states: Vec<RecordingState> = pair.completions().iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [RecordingState::Interrupted, RecordingState::Interrupted]
    );
}

#[test]
fn a_source_over_its_session_limit_gets_503_for_routed_calls_too() {
    let mut pair = Pair::new(
        RecorderConfig {
            max_sessions_per_source: 1,
            ..routed_config()
        },
        FakeMedia::with_ports(100),
    );
    let mut first = Caller::new();
    first.invite(&mut pair);
    assert_eq!(requests_of(&sent_to(&mut pair, callee())).len(), 1);
    let mut second = Caller::new();
    second.call_id = "ingress-2@pbx".to_owned();
    second.invite(&mut pair);
    assert_eq!(pair.finals(), [503]);
    assert!(sent_to(&mut pair, callee()).is_empty());
    assert_eq!(
        pair.recorder.gauges.active_sessions.load(Ordering::Relaxed),
        1
    );
    // A recording session from the same source counts its routed call too.
    let invite = Call::new("siprec-1").request(
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
    assert_eq!(
        pair.recorder.gauges.active_sessions.load(Ordering::Relaxed),
        1
    );
}

#[test]
fn live_counts_and_indexes_follow_setup_and_teardown_churn() {
    let mut pair = routed();
    let source = src().addr.ip();
    for round in 0..2 {
        let mut calls = Vec::new();
        for n in 0..4 {
            let mut caller = Caller::new();
            caller.call_id = format!("ingress-{round}-{n}@pbx");
            let egress = answered(&mut pair, &mut caller);
            calls.push((caller, egress));
        }
        assert_eq!(pair.recorder.calls.live(), 4);
        assert_eq!(pair.recorder.calls.live_from(source), 4);
        assert_eq!(
            pair.recorder.calls.live_from("192.0.2.99".parse().unwrap()),
            0
        );
        // Half hang up from each side: each ends once, whoever sends the BYE.
        for (n, (caller, egress)) in calls.iter_mut().enumerate() {
            if n % 2 == 0 {
                let bye = caller.request("BYE", "", None);
                pair.deliver(src(), &bye);
            } else {
                pair.deliver(callee(), &callee_request(egress, "BYE", 1, None));
            }
            assert_eq!(pair.recorder.calls.live(), 3 - n);
            assert_eq!(pair.recorder.calls.live_from(source), 3 - n);
        }
        let _ = sent_to(&mut pair, src());
        let _ = sent_to(&mut pair, callee());
        pair.close_stopped_legs();
        assert_eq!(
            pair.recorder.calls.footprint(),
            0,
            "round {round}: nothing left"
        );
    }
    assert_eq!(pair.completions().len(), 8);
}

#[test]
fn a_callers_session_timer_is_negotiated_end_to_end() {
    let mut pair = routed();
    let mut caller = Caller::new();
    let invite = caller.request(
        "INVITE",
        "Supported: timer\r\nSession-Expires: 1800;refresher=uac\r\nMin-SE: 90\r\n",
        Some(&phone_sdp("192.0.2.10", 6000, "sendrecv")),
    );
    pair.deliver(src(), &invite);
    let _ = sent_to(&mut pair, src());
    let egress = requests_of(&sent_to(&mut pair, callee())).remove(0);
    assert_eq!(egress.header("session-expires"), Some("1800;refresher=uac"));
    assert_eq!(egress.header("min-se"), Some("90"));
    assert!(
        egress
            .header_values("supported")
            .any(|v| v.contains("timer"))
    );
    let ok = egress
        .response(200)
        .with_to_tag("bob-tag")
        .with_header("Contact", format!("<sip:bob@{CALLEE}>"))
        .with_header("Session-Expires", "1800;refresher=uac")
        .with_header("Require", "timer")
        .with_body(
            "application/sdp",
            phone_sdp("192.0.2.20", 7000, "sendrecv").into_bytes(),
        );
    pair.deliver(callee(), &ok.to_bytes());
    let answered: Vec<Message> = sent_to(&mut pair, src());
    let Some(Message::Response(ok)) = answered
        .iter()
        .find(|m| matches!(m, Message::Response(r) if r.status() == 200))
    else {
        panic!("no 200 to the caller: {answered:?}");
    };
    assert_eq!(ok.header("session-expires"), Some("1800;refresher=uac"));
    assert!(ok.header_values("require").any(|v| v.contains("timer")));

    // A caller that did not ask gets no timer on its behalf.
    let mut plain = Caller::new();
    plain.call_id = "ingress-2@pbx".to_owned();
    plain.invite(&mut pair);
    let egress = requests_of(&sent_to(&mut pair, callee())).remove(0);
    assert_eq!(egress.header("session-expires"), None);
    assert!(
        !egress
            .header_values("supported")
            .any(|v| v.contains("timer"))
    );
}
