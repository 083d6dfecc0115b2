//! INVITE client transactions (RFC 3261 §17.1.1, RFC 6026, CANCEL §9.1), as the pass-through
//! B2BUA uses them for the INVITE it sends on: through the public API only, on virtual time.

use callvault_sip::{
    Dialog, Endpoint, EndpointConfig, Event, Message, Method, Peer, Request, Response, Transmit,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CALLEE: &str = "192.0.2.20:5060";

fn callee() -> Peer {
    Peer::udp(CALLEE.parse::<SocketAddr>().unwrap())
}

fn invite() -> Request {
    Request::new(Method::Invite, "sip:bob@192.0.2.20:5060")
        .with_header("From", "\"Alice\" <sip:alice@example.com>;tag=ours")
        .with_header("To", "<sip:bob@example.com>")
        .with_header("Call-ID", "egress-1@callvault")
        .with_header("CSeq", "1 INVITE")
        .with_header("Contact", "<sip:callvault@192.0.2.1:5060>")
        .with_body("application/sdp", b"v=0\r\n".to_vec())
}

fn sent(endpoint: &mut Endpoint) -> Vec<Transmit> {
    std::iter::from_fn(|| endpoint.poll_transmit()).collect()
}

fn request_of(transmit: &Transmit) -> Request {
    match Message::parse(&transmit.bytes).expect("we send what we parse") {
        Message::Request(r) => r,
        Message::Response(r) => panic!("expected a request, got {}", r.status()),
    }
}

/// The callee's response to `request` (as it went on the wire) with `status` and `tag`.
fn response(request: &Request, status: u16, tag: &str) -> Vec<u8> {
    let mut response = request.response(status);
    if status > 100 {
        response = response.with_to_tag(tag);
    }
    if (200..300).contains(&status) {
        response = response.with_header("Contact", "<sip:bob@192.0.2.20:5060>");
    }
    response.to_bytes()
}

fn events(endpoint: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| endpoint.poll_event()).collect()
}

fn statuses(events: &[Event]) -> Vec<Option<u16>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Response { response, .. } => Some(response.as_ref().map(Response::status)),
            _ => None,
        })
        .collect()
}

/// Runs the timers up to `until`; returns the instants at which something was sent.
fn run_until(endpoint: &mut Endpoint, t0: Instant, until: Duration) -> Vec<Duration> {
    let mut at = Vec::new();
    while let Some(next) = endpoint.poll_timeout().filter(|n| *n <= t0 + until) {
        endpoint.handle_timeout(next);
        if !sent(endpoint).is_empty() {
            at.push(next - t0);
        }
    }
    at
}

#[test]
fn a_silent_callee_gets_timer_a_retransmissions_then_timer_b_ends_the_transaction() {
    let t0 = Instant::now();
    let mut endpoint = Endpoint::new(EndpointConfig::default());
    let key = endpoint.send_invite(t0, callee(), invite());
    let first = sent(&mut endpoint);
    assert_eq!(first.len(), 1);
    let wire = request_of(&first[0]);
    assert_eq!(wire.method(), &Method::Invite);
    assert!(wire.header("via").unwrap().contains("branch=z9hG4bK"));
    let ms = Duration::from_millis;
    // Timer A: T1 doubling, no T2 cap (unlike Timer E).
    assert_eq!(
        run_until(&mut endpoint, t0, ms(31_900)),
        [
            ms(500),
            ms(1500),
            ms(3500),
            ms(7500),
            ms(15_500),
            ms(31_500)
        ]
    );
    assert!(events(&mut endpoint).is_empty());
    run_until(&mut endpoint, t0, ms(32_000));
    let got = events(&mut endpoint);
    assert!(matches!(&got[..], [Event::Response { key: k, response: None }] if *k == key));
    assert_eq!(endpoint.stats().client_transactions, 0);
}

#[test]
fn a_provisional_stops_the_retransmissions_and_a_busy_is_acked_hop_by_hop() {
    let t0 = Instant::now();
    let mut endpoint = Endpoint::new(EndpointConfig::default());
    endpoint.send_invite(t0, callee(), invite());
    let wire = request_of(&sent(&mut endpoint)[0]);
    let ms = Duration::from_millis;
    endpoint.handle_input(t0 + ms(100), callee(), &response(&wire, 180, "bob"));
    assert_eq!(statuses(&events(&mut endpoint)), [Some(180)]);
    // Ringing for 60 s: no retransmission, no timeout (Timer B no longer applies).
    assert!(run_until(&mut endpoint, t0, ms(60_000)).is_empty());
    assert!(events(&mut endpoint).is_empty());

    let busy = response(&wire, 486, "bob");
    endpoint.handle_input(t0 + ms(60_000), callee(), &busy);
    assert_eq!(statuses(&events(&mut endpoint)), [Some(486)]);
    let ack = sent(&mut endpoint);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].to, callee());
    let ack = request_of(&ack[0]);
    assert_eq!(ack.method(), &Method::Ack);
    assert_eq!(ack.cseq().0, 1);
    assert_eq!(ack.to_tag(), Some("bob"));
    // The same branch as the INVITE: the ACK of a non-2xx belongs to its transaction.
    assert_eq!(ack.header("via"), wire.header("via"));
    assert_eq!(ack.uri(), wire.uri());

    // The callee missed our ACK and repeats its 486: ACKed again, the TU hears nothing.
    endpoint.handle_input(t0 + ms(60_500), callee(), &busy);
    assert!(events(&mut endpoint).is_empty());
    assert_eq!(request_of(&sent(&mut endpoint)[0]).method(), &Method::Ack);
    // Timer D ends it.
    run_until(&mut endpoint, t0, ms(100_000));
    assert_eq!(endpoint.stats().client_transactions, 0);
}

#[test]
fn a_2xx_goes_to_the_tu_which_acks_it_and_its_retransmissions_get_that_ack() {
    let t0 = Instant::now();
    let mut endpoint = Endpoint::new(EndpointConfig::default());
    let sent_invite = invite();
    let key = endpoint.send_invite(t0, callee(), sent_invite.clone());
    let wire = request_of(&sent(&mut endpoint)[0]);
    let ms = Duration::from_millis;
    let ok = response(&wire, 200, "bob");
    endpoint.handle_input(t0 + ms(10), callee(), &ok);
    let got = events(&mut endpoint);
    let Some(Event::Response {
        response: Some(ok_response),
        ..
    }) = got.first()
    else {
        panic!("the 2xx reaches the TU: {got:?}")
    };
    let dialog = Dialog::new_uac(
        &sent_invite,
        ok_response,
        "<sip:callvault@192.0.2.1:5060>".into(),
    );
    assert_eq!(dialog.remote_target(), "sip:bob@192.0.2.20:5060");
    assert_eq!(dialog.id().remote_tag, "bob");
    assert_eq!(dialog.id().local_tag, "ours");
    endpoint.send_ack(t0 + ms(10), Some(&key), callee(), dialog.make_ack(1));
    let ack = sent(&mut endpoint);
    let ack_wire = request_of(&ack[0]);
    assert_eq!(ack_wire.method(), &Method::Ack);
    assert_eq!(ack_wire.uri(), "sip:bob@192.0.2.20:5060");
    assert_ne!(
        ack_wire.header("via"),
        wire.header("via"),
        "a 2xx ACK is its own transaction (new branch)"
    );
    // No retransmission of the INVITE after the 2xx.
    assert!(run_until(&mut endpoint, t0, ms(5_000)).is_empty());
    // The callee repeats its 2xx (our ACK was lost): the same ACK again, the TU hears nothing.
    endpoint.handle_input(t0 + ms(5_000), callee(), &ok);
    assert!(events(&mut endpoint).is_empty());
    assert_eq!(sent(&mut endpoint)[0].bytes, ack[0].bytes);
    run_until(&mut endpoint, t0, ms(40_000));
    assert_eq!(endpoint.stats().client_transactions, 0);
}

#[test]
fn a_cancel_waits_for_the_first_provisional_then_487_is_acked() {
    let t0 = Instant::now();
    let mut endpoint = Endpoint::new(EndpointConfig::default());
    let key = endpoint.send_invite(t0, callee(), invite());
    let wire = request_of(&sent(&mut endpoint)[0]);
    let ms = Duration::from_millis;
    // Asked before any response: nothing goes yet (§9.1).
    assert!(endpoint.cancel(t0 + ms(100), &key));
    assert!(sent(&mut endpoint).is_empty());
    endpoint.handle_input(t0 + ms(200), callee(), &response(&wire, 100, ""));
    let cancel = sent(&mut endpoint);
    assert_eq!(cancel.len(), 1);
    let cancel = request_of(&cancel[0]);
    assert_eq!(cancel.method(), &Method::Cancel);
    assert_eq!(cancel.header("via"), wire.header("via"));
    assert_eq!(cancel.cseq().0, 1);
    assert_eq!(cancel.to_tag(), None);
    assert_eq!(statuses(&events(&mut endpoint)), [Some(100)]);
    // The CANCEL's own 200, then the INVITE's 487.
    endpoint.handle_input(t0 + ms(250), callee(), &response(&cancel, 200, "bob"));
    endpoint.handle_input(t0 + ms(260), callee(), &response(&wire, 487, "bob"));
    let got = events(&mut endpoint);
    assert_eq!(statuses(&got), [Some(200), Some(487)]);
    assert!(matches!(&got[0], Event::Response { key, .. } if key.method() == &Method::Cancel));
    let ack = request_of(&sent(&mut endpoint)[0]);
    assert_eq!(ack.method(), &Method::Ack);
    // A second cancel after the final has nothing to cancel.
    assert!(!endpoint.cancel(t0 + ms(300), &key));
}

#[test]
fn a_cancel_asked_before_a_final_response_is_dropped_by_it() {
    let t0 = Instant::now();
    let mut endpoint = Endpoint::new(EndpointConfig::default());
    let key = endpoint.send_invite(t0, callee(), invite());
    let wire = request_of(&sent(&mut endpoint)[0]);
    assert!(endpoint.cancel(t0, &key));
    endpoint.handle_input(t0, callee(), &response(&wire, 503, "bob"));
    let out: Vec<Method> = sent(&mut endpoint)
        .iter()
        .map(|t| request_of(t).method().clone())
        .collect();
    assert_eq!(out, [Method::Ack], "no CANCEL after the final response");
}

#[test]
fn over_tcp_nothing_is_retransmitted_and_a_transport_error_ends_the_invite() {
    let t0 = Instant::now();
    let mut endpoint = Endpoint::new(EndpointConfig::default());
    let peer = Peer::tcp(CALLEE.parse().unwrap(), None);
    let key = endpoint.send_invite(t0, peer, invite());
    assert_eq!(sent(&mut endpoint).len(), 1);
    assert!(run_until(&mut endpoint, t0, Duration::from_secs(20)).is_empty());
    endpoint.handle_transport_error(t0 + Duration::from_secs(20), &peer);
    let got = events(&mut endpoint);
    assert!(matches!(&got[..], [Event::Response { key: k, response: None }] if *k == key));
}
