//! The recorder ends a session itself (RTP inactivity, session expiry): `dialog.make_request(Bye)`
//! sent with `endpoint.send_request` to `peer_for_in_dialog_request`. Over UDP and TCP, through
//! the public API only, on virtual time; over TLS too.

use callvault_sip::{
    ConnectionId, Dialog, Endpoint, EndpointConfig, Event, Message, Method, Peer, Request,
    Response, Transmit, TransportKind, local_contact_uri, peer_for_in_dialog_request,
};
use std::time::{Duration, Instant};

fn invite(transport: &str, via_params: &str, record_route: &str, contact: &str) -> Vec<u8> {
    format!(
        "INVITE sip:srs@198.51.100.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 10.0.0.1:5060;branch=z9hG4bK-inv{via_params}\r\n\
         {record_route}\
         From: \"SRC\" <sip:src@example.com>;tag=src-tag\r\n\
         To: <sip:srs@198.51.100.5>\r\n\
         Call-ID: bye-call-1\r\n\
         CSeq: 101 INVITE\r\n\
         Contact: {contact}\r\n\
         Require: siprec\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: 5\r\n\r\nv=0\r\n"
    )
    .into_bytes()
}

fn sent(endpoint: &mut Endpoint) -> Vec<Transmit> {
    std::iter::from_fn(|| endpoint.poll_transmit()).collect()
}

fn parse(transmit: &Transmit) -> Message {
    Message::parse(&transmit.bytes).expect("we send what we parse")
}

fn as_request(transmit: &Transmit) -> Request {
    match parse(transmit) {
        Message::Request(r) => r,
        Message::Response(r) => panic!("expected a request, got {}", r.status()),
    }
}

fn as_response(transmit: &Transmit) -> Response {
    match parse(transmit) {
        Message::Response(r) => r,
        Message::Request(r) => panic!("expected a response, got {}", r.method()),
    }
}

/// Receives the INVITE from `from`, answers 200 with a dialog, and takes the ACK.
fn established(endpoint: &mut Endpoint, t0: Instant, from: Peer, invite: &[u8]) -> Dialog {
    endpoint.handle_input(t0, from, invite);
    let Some(Event::Request {
        key,
        request,
        from: source,
    }) = endpoint.poll_event()
    else {
        panic!("the INVITE reaches the TU")
    };
    assert_eq!(source, from);
    let tag = endpoint.new_tag();
    let dialog = Dialog::new_uas(&request, tag.clone(), "<sip:srs@198.51.100.5:5060>".into());
    endpoint.respond(t0, &key, dialog.response(&request, 200));
    let ok = sent(endpoint)
        .iter()
        .map(as_response)
        .find(|r| r.status() == 200)
        .expect("a 200");
    let ack = format!(
        "ACK sip:srs@198.51.100.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-ack\r\n\
         From: \"SRC\" <sip:src@example.com>;tag=src-tag\r\n\
         To: <sip:srs@198.51.100.5>;tag={}\r\n\
         Call-ID: bye-call-1\r\nCSeq: 101 ACK\r\nContent-Length: 0\r\n\r\n",
        ok.to_tag().unwrap()
    );
    endpoint.handle_input(t0 + Duration::from_millis(50), from, ack.as_bytes());
    assert!(matches!(endpoint.poll_event(), Some(Event::Ack { .. })));
    dialog
}

fn endpoint() -> Endpoint {
    Endpoint::new(EndpointConfig {
        via_sent_by: "198.51.100.5:5060".into(),
        ..EndpointConfig::default()
    })
}

#[test]
fn bye_over_udp_behind_nat_goes_to_the_source_and_its_200_reaches_the_tu() {
    let t0 = Instant::now();
    let mut endpoint = endpoint();
    // Behind NAT: private Contact and Via, public source port, `rport` asked.
    let nat = Peer::udp("203.0.113.4:41000".parse().unwrap());
    let mut dialog = established(
        &mut endpoint,
        t0,
        nat,
        &invite("UDP", ";rport", "", "<sip:src@10.0.0.1:5060>"),
    );

    let t1 = t0 + Duration::from_secs(30);
    let to = peer_for_in_dialog_request(&dialog, nat);
    assert_eq!(to, nat);
    let key = endpoint.send_request(t1, to, dialog.make_request(Method::Bye));
    let transmits = sent(&mut endpoint);
    assert_eq!(transmits.len(), 1);
    assert_eq!(transmits[0].to, nat);
    let bye = as_request(&transmits[0]);
    assert_eq!(bye.method(), &Method::Bye);
    assert_eq!(
        bye.uri(),
        "sip:src@10.0.0.1:5060",
        "Request-URI is the remote target"
    );
    assert_eq!(bye.from_tag(), Some(dialog.id().local_tag.as_str()));
    assert_eq!(bye.to_tag(), Some("src-tag"));
    assert_eq!(bye.from_uri(), "sip:srs@198.51.100.5");
    assert_eq!(bye.to_uri(), "sip:src@example.com");
    assert_eq!(bye.call_id(), "bye-call-1");
    assert_eq!(bye.cseq(), (1, &Method::Bye));
    assert!(
        bye.header("via")
            .unwrap()
            .starts_with("SIP/2.0/UDP 198.51.100.5:5060;branch=z9hG4bK")
    );
    assert_eq!(bye.header("route"), None);

    // The client's 200 comes back through the NAT.
    let ok = bye.response(200).to_bytes();
    endpoint.handle_input(t1 + Duration::from_millis(40), nat, &ok);
    match endpoint.poll_event() {
        Some(Event::Response {
            key: k,
            response: Some(response),
        }) => {
            assert_eq!(k, key);
            assert_eq!(response.status(), 200);
            assert_eq!(response.cseq(), Some((1, Method::Bye)));
        }
        other => panic!("expected the 200 as Event::Response, got {other:?}"),
    }
    // A second request in the dialog gets the next CSeq.
    assert_eq!(dialog.make_request(Method::Bye).cseq().0, 2);
}

#[test]
fn bye_over_udp_without_rport_follows_the_route_set() {
    let t0 = Instant::now();
    let mut endpoint = endpoint();
    let proxy = Peer::udp("198.51.100.20:5060".parse().unwrap());
    let mut dialog = established(
        &mut endpoint,
        t0,
        proxy,
        &invite(
            "UDP",
            "",
            "Record-Route: <sip:198.51.100.20:5080;lr>, <sip:198.51.100.30;lr>\r\n",
            "<sip:src@198.51.100.9:5070>",
        ),
    );
    let to = peer_for_in_dialog_request(&dialog, proxy);
    assert_eq!(to, Peer::udp("198.51.100.20:5080".parse().unwrap()));
    endpoint.send_request(t0, to, dialog.make_request(Method::Bye));
    let transmits = sent(&mut endpoint);
    assert_eq!(transmits[0].to, to);
    let bye = as_request(&transmits[0]);
    assert_eq!(bye.uri(), "sip:src@198.51.100.9:5070");
    let routes: Vec<&str> = bye.header_values("route").collect();
    assert_eq!(
        routes,
        ["<sip:198.51.100.20:5080;lr>", "<sip:198.51.100.30;lr>"],
        "Route is the Record-Route of the INVITE, in order"
    );
}

#[test]
fn bye_over_tcp_reuses_the_connection_and_timer_f_reports_no_answer() {
    let t0 = Instant::now();
    let mut endpoint = endpoint();
    let connection = Peer::tcp("198.51.100.7:40312".parse().unwrap(), Some(ConnectionId(3)));
    let mut dialog = established(
        &mut endpoint,
        t0,
        connection,
        &invite("TCP", "", "", "<sip:src@198.51.100.7:5060;transport=tcp>"),
    );
    let t1 = t0 + Duration::from_secs(60);
    let to = peer_for_in_dialog_request(&dialog, connection);
    // The INVITE's connection; should it have closed, the TCP Contact (not the source's
    // ephemeral port, where nobody listens).
    assert_eq!(
        to,
        Peer::tcp("198.51.100.7:5060".parse().unwrap(), Some(ConnectionId(3)))
    );
    let key = endpoint.send_request(t1, to, dialog.make_request(Method::Bye));
    let transmits = sent(&mut endpoint);
    assert_eq!(transmits.len(), 1);
    assert_eq!(transmits[0].to.connection, Some(ConnectionId(3)));
    assert_eq!(transmits[0].to.transport, TransportKind::Tcp);
    let bye = as_request(&transmits[0]);
    assert!(bye.header("via").unwrap().starts_with("SIP/2.0/TCP "));
    assert_eq!(bye.uri(), "sip:src@198.51.100.7:5060;transport=tcp");

    // No answer: no retransmissions on TCP, and Timer F (64*T1 = 32 s) reports None.
    endpoint.handle_timeout(t1 + Duration::from_secs(31));
    assert!(endpoint.poll_event().is_none());
    assert!(sent(&mut endpoint).is_empty());
    endpoint.handle_timeout(t1 + Duration::from_secs(32));
    match endpoint.poll_event() {
        Some(Event::Response {
            key: k,
            response: None,
        }) => assert_eq!(k, key),
        other => panic!("expected Timer F as Event::Response(None), got {other:?}"),
    }
    assert_eq!(endpoint.stats().client_transactions, 0);
}

#[test]
fn a_sips_dialog_over_tls_answers_with_a_sips_contact_and_byes_on_its_connection() {
    let t0 = Instant::now();
    let mut endpoint = endpoint();
    let connection = Peer::tls("198.51.100.7:40999".parse().unwrap(), Some(ConnectionId(5)));
    let bytes = String::from_utf8(invite("TLS", "", "", "<sips:src@198.51.100.7>"))
        .unwrap()
        .replace("INVITE sip:srs@", "INVITE sips:srs@");
    endpoint.handle_input(t0, connection, bytes.as_bytes());
    let Some(Event::Request { key, request, from }) = endpoint.poll_event() else {
        panic!("the INVITE reaches the TU")
    };
    assert_eq!(from, connection);
    let contact = local_contact_uri(&request, from.transport, "srs", "198.51.100.5:5061");
    assert_eq!(contact, "sips:srs@198.51.100.5:5061");
    let mut dialog = Dialog::new_uas(&request, endpoint.new_tag(), format!("<{contact}>"));
    endpoint.respond(t0, &key, dialog.response(&request, 200));
    let answers = sent(&mut endpoint);
    assert!(
        answers
            .iter()
            .all(|t| t.to.connection == Some(ConnectionId(5))
                && t.to.transport == TransportKind::Tls)
    );
    let ok = answers
        .iter()
        .map(as_response)
        .find(|r| r.status() == 200)
        .expect("a 200");
    assert_eq!(ok.header("contact"), Some("<sips:srs@198.51.100.5:5061>"));

    let t1 = t0 + Duration::from_secs(60);
    let to = peer_for_in_dialog_request(&dialog, connection);
    // The INVITE's TLS connection, else the sips Contact at its default port, over TLS.
    assert_eq!(
        to,
        Peer::tls("198.51.100.7:5061".parse().unwrap(), Some(ConnectionId(5)))
    );
    endpoint.send_request(t1, to, dialog.make_request(Method::Bye));
    let transmits = sent(&mut endpoint);
    assert_eq!(transmits.len(), 1);
    assert_eq!(transmits[0].to, to);
    let bye = as_request(&transmits[0]);
    assert!(bye.header("via").unwrap().starts_with("SIP/2.0/TLS "));
    assert_eq!(bye.uri(), "sips:src@198.51.100.7");
    // Reliable: nothing is retransmitted while the answer is awaited.
    endpoint.handle_timeout(t1 + Duration::from_secs(31));
    assert!(sent(&mut endpoint).is_empty());
}

#[test]
fn bye_over_udp_is_retransmitted_then_times_out() {
    let t0 = Instant::now();
    let mut endpoint = endpoint();
    let sbc = Peer::udp("198.51.100.9:5060".parse().unwrap());
    let mut dialog = established(
        &mut endpoint,
        t0,
        sbc,
        &invite("UDP", "", "", "<sip:src@198.51.100.9:5060>"),
    );
    let to = peer_for_in_dialog_request(&dialog, sbc);
    assert_eq!(to, sbc);
    let t1 = t0 + Duration::from_secs(60);
    let key = endpoint.send_request(t1, to, dialog.make_request(Method::Bye));
    let first = sent(&mut endpoint);
    let mut resent = 0;
    let mut timed_out = false;
    // Drive the endpoint's own deadlines, as the run loop does.
    while let Some(at) = endpoint.poll_timeout() {
        endpoint.handle_timeout(at);
        for transmit in sent(&mut endpoint) {
            assert_eq!(
                transmit.bytes, first[0].bytes,
                "Timer E resends the same BYE"
            );
            resent += 1;
        }
        while let Some(event) = endpoint.poll_event() {
            if let Event::Response {
                key: k,
                response: None,
            } = event
            {
                assert_eq!(k, key);
                assert_eq!(at, t1 + Duration::from_secs(32), "Timer F is 64*T1");
                timed_out = true;
            }
        }
    }
    assert!(timed_out);
    // T1 = 500 ms doubling to T2 = 4 s within 32 s: 0.5, 1.5, 3.5, 7.5, 11.5 ... 31.5 → 10.
    assert_eq!(resent, 10);
}
