//! RFC 4028 as the recorder drives it through the public API on virtual time: an INVITE with
//! `Require: timer` reaches the TU under the default endpoint config, the 2xx carries the
//! negotiated timer, an UPDATE refreshes it, and without a further refresh the deadline is when
//! the recorder sends BYE. A too-small interval is answered 422 with Min-SE.

use callvault_sip::session_timer::negotiate;
use callvault_sip::{
    Dialog, Endpoint, EndpointConfig, Event, Message, Method, Negotiation, Peer, Request, Response,
    SessionTimerConfig, peer_for_in_dialog_request,
};
use std::time::{Duration, Instant};

fn request(method: &str, cseq: u32, to_tag: &str, timer_headers: &str) -> Vec<u8> {
    format!(
        "{method} sip:srs@198.51.100.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK-{method}-{cseq}\r\n\
         From: <sip:src@example.com>;tag=src-tag\r\n\
         To: <sip:srs@198.51.100.5>{to_tag}\r\n\
         Call-ID: timer-call-1\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:src@198.51.100.9:5060>\r\n\
         {timer_headers}\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn responses(endpoint: &mut Endpoint) -> Vec<Response> {
    std::iter::from_fn(|| endpoint.poll_transmit())
        .filter_map(|t| match Message::parse(&t.bytes) {
            Ok(Message::Response(r)) => Some(r),
            _ => None,
        })
        .collect()
}

fn next_request(endpoint: &mut Endpoint) -> (callvault_sip::TransactionKey, Request, Peer) {
    match endpoint.poll_event() {
        Some(Event::Request { key, request, from }) => (key, request, from),
        other => panic!("expected a request for the TU, got {other:?}"),
    }
}

#[test]
fn require_timer_reaches_the_tu_and_expiry_schedules_our_bye() {
    let t0 = Instant::now();
    let config = SessionTimerConfig::default();
    let sbc = Peer::udp("198.51.100.9:5060".parse().unwrap());
    let mut endpoint = Endpoint::new(EndpointConfig::default());

    let headers = "Supported: timer\r\nRequire: siprec, timer\r\n\
                   Session-Expires: 600;refresher=uac\r\nMin-SE: 90\r\n";
    endpoint.handle_input(t0, sbc, &request("INVITE", 1, "", headers));
    assert_eq!(
        responses(&mut endpoint)
            .iter()
            .map(Response::status)
            .collect::<Vec<_>>(),
        [100],
        "`timer` is a supported extension: no 420"
    );
    let (key, invite, from) = next_request(&mut endpoint);
    let Negotiation::Accepted(mut timer) = negotiate(&invite, &config, t0) else {
        panic!("the timer is accepted")
    };
    let tag = endpoint.new_tag();
    let mut dialog = Dialog::new_uas(&invite, tag.clone(), "<sip:srs@198.51.100.5>".into());
    let mut ok = dialog.response(&invite, 200);
    for (name, value) in timer.response_headers() {
        ok = ok.with_header(name, value);
    }
    endpoint.respond(t0, &key, ok);
    let ok = responses(&mut endpoint).pop().unwrap();
    assert_eq!(ok.header("session-expires"), Some("600;refresher=uac"));
    assert_eq!(ok.header("require"), Some("timer"));
    assert_eq!(timer.deadline(), t0 + Duration::from_secs(568));

    // The client refreshes with UPDATE at half the interval.
    let t1 = t0 + Duration::from_secs(300);
    let to_tag = format!(";tag={tag}");
    endpoint.handle_input(t1, sbc, &request("UPDATE", 2, &to_tag, headers));
    let (key, update, _) = next_request(&mut endpoint);
    dialog.check_request(&update).unwrap();
    match negotiate(&update, &config, t1) {
        Negotiation::Accepted(refreshed) => timer = refreshed,
        other => panic!("the refresh is accepted, got {other:?}"),
    }
    let mut ok = dialog.response(&update, 200);
    for (name, value) in timer.response_headers() {
        ok = ok.with_header(name, value);
    }
    endpoint.respond(t1, &key, ok);
    assert_eq!(responses(&mut endpoint)[0].status(), 200);
    assert_eq!(timer.deadline(), t1 + Duration::from_secs(568));

    // No further refresh: at the deadline the recorder sends BYE.
    let deadline = timer.deadline();
    endpoint.handle_timeout(deadline);
    while endpoint.poll_event().is_some() {}
    let _ = responses(&mut endpoint);
    endpoint.send_request(
        deadline,
        peer_for_in_dialog_request(&dialog, from),
        dialog.make_request(Method::Bye),
    );
    let bye = endpoint.poll_transmit().expect("the BYE is sent");
    assert_eq!(bye.to, sbc);
    match Message::parse(&bye.bytes) {
        Ok(Message::Request(bye)) => {
            assert_eq!(bye.method(), &Method::Bye);
            assert_eq!(bye.to_tag(), Some("src-tag"));
        }
        other => panic!("expected the BYE, got {other:?}"),
    }
}

#[test]
fn too_small_an_interval_is_answered_422_with_min_se() {
    let t0 = Instant::now();
    let sbc = Peer::udp("198.51.100.9:5060".parse().unwrap());
    let mut endpoint = Endpoint::new(EndpointConfig::default());
    let headers = "Supported: timer\r\nSession-Expires: 60\r\n";
    endpoint.handle_input(t0, sbc, &request("INVITE", 1, "", headers));
    let _ = responses(&mut endpoint);
    let (key, invite, _) = next_request(&mut endpoint);
    let Negotiation::TooSmall { min_se } = negotiate(&invite, &SessionTimerConfig::default(), t0)
    else {
        panic!("60 s is below 90 s")
    };
    let tag = endpoint.new_tag();
    let response = invite
        .response(422)
        .with_to_tag(&tag)
        .with_header("Min-SE", min_se.as_secs().to_string());
    endpoint.respond(t0, &key, response);
    let sent = responses(&mut endpoint);
    assert_eq!(sent[0].status(), 422);
    assert_eq!(sent[0].header("min-se"), Some("90"));
}
