//! Media bound to its source, through the recorder: the addresses handed to the media plane
//! for each leg (the m-line's `c=` and port, the SIP peer's address) on the initial offer, on
//! re-offers that move the media, on hold by `c=0.0.0.0`, on pause, and for streams added.

use callvault_media::AllowedSources;

use super::*;

/// The SIP peer's address (the SBC's signalling address, [`SRC`]).
fn peer() -> Option<IpAddr> {
    Some(src().addr.ip())
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

/// An offer with session-level `c=session` and one m-line per `(label, media-level c=, port)`.
/// The media are elsewhere than the signalling, as with an SBC whose media and signalling
/// interfaces differ.
fn offer(session: &str, lines: &[(&str, Option<&str>, u16)]) -> String {
    let mut sdp =
        format!("v=0\r\no=SBC 1 1 IN IP4 {session}\r\ns=-\r\nc=IN IP4 {session}\r\nt=0 0\r\n");
    for (label, connection, port) in lines {
        sdp.push_str(&format!(
            "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        ));
        if let Some(connection) = connection {
            sdp.push_str(&format!("c=IN IP4 {connection}\r\n"));
        }
        sdp.push_str(&format!("a=label:{label}\r\na=sendonly\r\n"));
    }
    sdp
}

/// The INVITE answered 200 and acknowledged.
fn establish(call: &mut Call, pair: &mut Pair, sdp: &str) {
    let invite = call.request("INVITE", "", Some(("application/sdp", sdp)));
    pair.deliver(src(), &invite);
    let ok = pair
        .responses()
        .into_iter()
        .find(|r| r.status() == 200)
        .expect("the INVITE is answered 200");
    call.to_tag = ok.to_tag().map(str::to_owned);
    call.ack(pair);
}

/// A re-INVITE with `sdp`, answered and acknowledged; its final status.
fn reoffer(call: &mut Call, pair: &mut Pair, sdp: &str) -> u16 {
    let invite = call.request("INVITE", "", Some(("application/sdp", sdp)));
    pair.deliver(src(), &invite);
    let status = pair.finals().last().copied().expect("a final answer");
    call.ack(pair);
    status
}

fn started(pair: &Pair, index: usize) -> AllowedSources {
    let leg = pair.recorder.media.order[index];
    pair.recorder.media.legs[&leg].spec.sources
}

/// The sources of the leg's last update, and whether it records.
fn updated(pair: &Pair, index: usize) -> (AllowedSources, bool) {
    let leg = pair.recorder.media.order[index];
    let update = pair.recorder.media.legs[&leg]
        .updates
        .last()
        .expect("the leg was updated");
    (update.sources, update.active)
}

fn sources(connection: &str, port: u16) -> AllowedSources {
    AllowedSources {
        connection: ip(connection),
        port,
        signalling: peer(),
    }
}

#[test]
fn each_leg_takes_media_from_its_m_lines_address_or_the_sip_peer() {
    let mut pair = Pair::standard();
    let mut call = Call::new("bound-1");
    // Media-level c= wins over session-level c=.
    let sdp = offer(
        "203.0.113.7",
        &[("1", Some("203.0.113.8"), 10_000), ("2", None, 10_002)],
    );
    establish(&mut call, &mut pair, &sdp);
    assert_eq!(started(&pair, 0), sources("203.0.113.8", 10_000));
    assert_eq!(started(&pair, 1), sources("203.0.113.7", 10_002));
}

#[test]
fn a_re_offer_moving_the_media_hands_the_new_address_and_hold_allows_nothing_new() {
    let mut pair = Pair::standard();
    let mut call = Call::new("bound-2");
    let first = [("1", None, 10_000), ("2", None, 10_002)];
    establish(&mut call, &mut pair, &offer("203.0.113.7", &first));

    // Stream 1 moves to another host, stream 2 to another port of the same host.
    let moved = [("1", Some("203.0.113.20"), 12_000), ("2", None, 10_100)];
    assert_eq!(
        reoffer(&mut call, &mut pair, &offer("203.0.113.7", &moved)),
        200
    );
    assert_eq!(
        updated(&pair, 0),
        (sources("203.0.113.20", 12_000), true),
        "re-armed on the new address"
    );
    assert_eq!(updated(&pair, 1), (sources("203.0.113.7", 10_100), true));

    // Hold by c=0.0.0.0: silence, and the sources stay what they were (0.0.0.0 names nobody).
    let held = [("1", Some("0.0.0.0"), 12_000), ("2", None, 10_100)];
    assert_eq!(
        reoffer(&mut call, &mut pair, &offer("203.0.113.7", &held)),
        200
    );
    assert_eq!(
        updated(&pair, 0),
        (sources("203.0.113.20", 12_000), false),
        "hold keeps the latched source"
    );
    // A whole session held by its session-level c=, with new ports even: nothing new allowed.
    let all_held = [("1", None, 14_000), ("2", None, 14_002)];
    assert_eq!(
        reoffer(&mut call, &mut pair, &offer("0.0.0.0", &all_held)),
        200
    );
    assert_eq!(updated(&pair, 0), (sources("203.0.113.20", 12_000), false));
    assert_eq!(updated(&pair, 1), (sources("203.0.113.7", 10_100), false));

    // Resumed from yet another address: that one now.
    let resumed = [("1", None, 14_000), ("2", None, 14_002)];
    assert_eq!(
        reoffer(&mut call, &mut pair, &offer("203.0.113.30", &resumed)),
        200
    );
    assert_eq!(updated(&pair, 0), (sources("203.0.113.30", 14_000), true));
    assert_eq!(updated(&pair, 1), (sources("203.0.113.30", 14_002), true));
}

#[test]
fn a_call_offered_on_hold_allows_only_the_sip_peer_until_an_address_comes() {
    let mut pair = Pair::standard();
    let mut call = Call::new("bound-3");
    let lines = [("1", None, 10_000)];
    establish(&mut call, &mut pair, &offer("0.0.0.0", &lines));
    assert_eq!(
        started(&pair, 0),
        AllowedSources {
            connection: None,
            port: 10_000,
            signalling: peer(),
        }
    );
    assert!(
        !pair.recorder.media.legs[&pair.recorder.media.order[0]]
            .spec
            .active
    );
    assert_eq!(
        reoffer(&mut call, &mut pair, &offer("203.0.113.7", &lines)),
        200
    );
    assert_eq!(updated(&pair, 0), (sources("203.0.113.7", 10_000), true));
}

#[test]
fn pause_keeps_each_legs_sources_and_an_added_stream_gets_its_own() {
    let mut pair = Pair::standard();
    let mut call = Call::new("bound-4");
    let lines = [("1", Some("203.0.113.8"), 10_000)];
    establish(&mut call, &mut pair, &offer("203.0.113.7", &lines));
    let recording_id = pair.inserts()[0].id.clone();
    pair.recorder
        .pause(pair.now, &recording_id, "agent-7")
        .unwrap();
    pair.pump();
    assert_eq!(
        updated(&pair, 0),
        (sources("203.0.113.8", 10_000), false),
        "a pause is silence, not a reason to re-latch"
    );
    pair.recorder
        .resume(pair.now, &recording_id, "agent-7")
        .unwrap();
    pair.pump();
    assert_eq!(updated(&pair, 0), (sources("203.0.113.8", 10_000), true));

    let more = [
        ("1", Some("203.0.113.8"), 10_000),
        ("3", Some("203.0.113.9"), 10_004),
    ];
    assert_eq!(
        reoffer(&mut call, &mut pair, &offer("203.0.113.7", &more)),
        200
    );
    assert_eq!(started(&pair, 1), sources("203.0.113.9", 10_004));
    assert_eq!(updated(&pair, 0), (sources("203.0.113.8", 10_000), true));
}
