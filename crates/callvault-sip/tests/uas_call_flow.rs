//! A recorded call as the TU drives it, through the public API only and on virtual time:
//! SIPREC INVITE → 200 with a dialog → ACK → in-dialog UPDATE → our BYE → its 200.

use callvault_sip::{
    Dialog, Endpoint, EndpointConfig, Event, Message, Method, Peer, Request, Response, Transmit,
    dialog_id_of_request,
};
use std::time::{Duration, Instant};

const SBC: &str = "10.0.0.1:5060";

fn sbc_request(method: &str, cseq: u32, branch: &str, to_tag: &str) -> Vec<u8> {
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    format!(
        "{method} sip:srs@10.0.0.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\n\
         From: <sip:SRC@10.0.0.1>;tag=sbc-tag\r\n\
         To: <sip:srs@10.0.0.5>{to_tag}\r\n\
         Call-ID: rec-call-1\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: sip:SRC@10.0.0.1:5060;+sip.src\r\n\
         Require: siprec\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: 5\r\n\r\nv=0\r\n"
    )
    .into_bytes()
}

fn sent(endpoint: &mut Endpoint) -> Vec<Transmit> {
    std::iter::from_fn(|| endpoint.poll_transmit()).collect()
}

fn as_response(transmit: &Transmit) -> Response {
    match Message::parse(&transmit.bytes) {
        Ok(Message::Response(r)) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn as_request(transmit: &Transmit) -> Request {
    match Message::parse(&transmit.bytes) {
        Ok(Message::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

#[test]
fn a_recording_dialog_from_invite_to_our_bye() {
    let t0 = Instant::now();
    let sbc = Peer::udp(SBC.parse().unwrap());
    let mut endpoint = Endpoint::new(EndpointConfig {
        via_sent_by: "10.0.0.5:5060".into(),
        ..EndpointConfig::default()
    });

    endpoint.handle_input(t0, sbc, &sbc_request("INVITE", 1, "z9hG4bK-inv", ""));
    assert_eq!(as_response(&sent(&mut endpoint)[0]).status(), 100);
    let Some(Event::Request { key, request, from }) = endpoint.poll_event() else {
        panic!("the INVITE reaches the TU")
    };
    assert_eq!(from, sbc);
    assert_eq!(request.body(), b"v=0\r\n");

    let tag = endpoint.new_tag();
    let mut dialog = Dialog::new_uas(&request, tag.clone(), "<sip:srs@10.0.0.5:5060>".into());
    let ok = dialog
        .response(&request, 200)
        .with_body("application/sdp", b"v=0\r\n".to_vec());
    endpoint.respond(t0, &key, ok);
    let ok = as_response(&sent(&mut endpoint)[0]);
    assert_eq!(ok.to_tag(), Some(tag.as_str()));

    let t1 = t0 + Duration::from_millis(80);
    endpoint.handle_input(t1, sbc, &sbc_request("ACK", 1, "z9hG4bK-ack", &tag));
    let Some(Event::Ack { request: ack, .. }) = endpoint.poll_event() else {
        panic!("the ACK reaches the TU")
    };
    assert_eq!(dialog_id_of_request(&ack).as_ref(), Some(dialog.id()));
    endpoint.handle_timeout(t1 + Duration::from_secs(1));
    assert!(
        sent(&mut endpoint).is_empty(),
        "no 2xx retransmission after the ACK"
    );

    // A metadata UPDATE in the dialog.
    endpoint.handle_input(t1, sbc, &sbc_request("UPDATE", 2, "z9hG4bK-upd", &tag));
    let Some(Event::Request { key, request, .. }) = endpoint.poll_event() else {
        panic!("the UPDATE reaches the TU")
    };
    assert_eq!(dialog_id_of_request(&request).as_ref(), Some(dialog.id()));
    assert_eq!(dialog.check_request(&request), Ok(()));
    endpoint.respond(t1, &key, dialog.response(&request, 200));
    assert_eq!(as_response(&sent(&mut endpoint)[0]).status(), 200);

    // We end the recording: BYE to the remote target, answered 200.
    let bye = dialog.make_request(Method::Bye);
    let bye_key = endpoint.send_request(t1, sbc, bye);
    let out = sent(&mut endpoint);
    let bye = as_request(&out[0]);
    assert_eq!(out[0].to, sbc);
    assert_eq!(bye.uri(), "sip:SRC@10.0.0.1:5060");
    assert_eq!(bye.to_tag(), Some("sbc-tag"));
    assert_eq!(bye.from_tag(), Some(tag.as_str()));
    assert!(
        bye.header("via")
            .unwrap()
            .starts_with("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK")
    );
    endpoint.handle_input(t1, sbc, &bye.response(200).to_bytes());
    let Some(Event::Response {
        key,
        response: Some(response),
    }) = endpoint.poll_event()
    else {
        panic!("the BYE's 200 reaches the TU")
    };
    assert_eq!((key, response.status()), (bye_key, 200));

    endpoint.handle_timeout(t1 + Duration::from_secs(60));
    let stats = endpoint.stats();
    assert_eq!(
        (stats.server_transactions, stats.client_transactions),
        (0, 0)
    );
    assert!(endpoint.poll_event().is_none());
    assert_eq!(endpoint.poll_timeout(), None, "nothing left to wake for");
}
