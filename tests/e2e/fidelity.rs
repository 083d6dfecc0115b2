//! Media fidelity: every codec at its natural rate, every mid-call change, every digit — checked
//! in the WAVs and the catalog of the real binary.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::audio::{Wav, dominant_frequency, power, rms, silent_samples, tone_at};
use crate::support::client::{Call, CallSpec, StreamSpec, Transport};
use crate::support::codec::TestCodec;
use crate::support::{Server, leg};

fn assert_tone(server: &Server, rec: &Value, label: &str, from_ms: u64, to_ms: u64, hz: f64) {
    let wav = server.wav(leg(rec, label));
    let window = wav.window(from_ms, to_ms);
    assert!(
        rms(window) > 2000.0,
        "leg {label} {from_ms}-{to_ms} ms: no tone (rms {})",
        rms(window)
    );
    let f = dominant_frequency(window, wav.rate);
    assert!(
        (f - hz).abs() <= 20.0,
        "leg {label} {from_ms}-{to_ms} ms: {f} Hz, sent {hz} Hz"
    );
}

fn assert_length(wav_ms: i64, expected: Duration, what: &str) {
    let expected = expected.as_millis() as i64;
    assert!(
        (wav_ms - expected).abs() <= 150,
        "{what}: WAV holds {wav_ms} ms, the call lasted {expected} ms"
    );
}

/// A two-party call in `codec`, 2 s of tone, then BYE; checks rate, length and pitch per leg.
async fn records_codec(codec: TestCodec, caller_hz: f64, callee_hz: f64) {
    let server = Server::start();
    let mut spec = CallSpec::two_parties(caller_hz, callee_hz);
    spec.codec = codec;
    let mut call = Call::new(Transport::Udp, server.sip, spec).await;
    let answer = call.invite().await;
    assert_eq!(answer.status, 200, "{codec:?} refused: {}", answer.reason);
    let media = answer.answered_media();
    assert!(
        media
            .iter()
            .all(|m| m.formats.first().map(String::as_str)
                == Some(&*codec.payload_type().to_string()))
    );
    call.ack().await;
    call.play(Duration::from_secs(2), &[]).await;
    let bye_at = Instant::now();
    assert_eq!(call.bye().await.status, 200);
    let length = bye_at - call.answered_at.unwrap();

    let rec = server.completed(&call.call_id);
    for (label, hz) in [("1", caller_hz), ("2", callee_hz)] {
        let l = leg(&rec, label);
        assert_eq!(l["codec"], codec.name());
        assert_eq!(l["sample_rate"], codec.sample_rate());
        let wav = server.wav(l);
        assert_eq!(
            wav.rate,
            codec.sample_rate(),
            "{codec:?}: WAV at the codec's natural rate"
        );
        assert_length(wav.duration_ms(), length, label);
        assert_tone(&server, &rec, label, 300, 1700, hz);
        assert_eq!(l["unknown_payload"], 0);
    }
}

#[tokio::test]
async fn records_pcma() {
    records_codec(TestCodec::Pcma, 440.0, 1000.0).await;
}

#[tokio::test]
async fn records_g722_at_16_khz_with_its_8_khz_rtp_clock() {
    // 5 kHz only exists in a 16 kHz recording: it proves the wideband decode.
    records_codec(TestCodec::G722, 700.0, 5000.0).await;
}

#[tokio::test]
async fn records_l16() {
    records_codec(TestCodec::L16, 600.0, 6000.0).await;
}

#[tokio::test]
async fn records_opus_at_48_khz() {
    records_codec(TestCodec::Opus, 800.0, 3000.0).await;
}

#[cfg(feature = "g729")]
#[tokio::test]
async fn records_g729() {
    records_codec(TestCodec::G729, 500.0, 1000.0).await;
}

/// Without the `g729` feature (the default build, see docs/LICENSING.md) a G.729 stream is
/// declined in the answer, not recorded and not a crash; the server goes on.
#[cfg(not(feature = "g729"))]
#[tokio::test]
async fn g729_is_declined_by_a_build_without_it() {
    let server = Server::start();
    let mut spec = CallSpec::two_parties(500.0, 1000.0);
    spec.codec = TestCodec::G729;
    let mut call = Call::new(Transport::Udp, server.sip, spec).await;
    let answer = call.invite().await;
    if answer.status == 200 {
        call.ack().await;
        let media = answer.answered_media();
        assert!(!media.is_empty());
        assert!(
            media.iter().all(|m| m.port == 0),
            "every G.729-only m-line declined: {media:?}"
        );
        assert_eq!(call.bye().await.status, 200);
    } else {
        assert!(
            (400..500).contains(&answer.status),
            "refused as a client error: {} {}",
            answer.status,
            answer.reason
        );
    }
    let mut client = crate::support::client::SipClient::connect(Transport::Udp, server.sip).await;
    assert_eq!(client.options().await.status, 200, "still serving");
}

#[tokio::test]
async fn ptimes_of_10_30_and_60_ms_and_a_size_change_mid_stream_leave_no_hole() {
    let server = Server::start();
    let mut spec = CallSpec::two_parties(440.0, 1000.0);
    spec.ptime_ms = 10;
    let mut call = Call::answered(Transport::Udp, server.sip, spec).await;
    call.play(Duration::from_millis(900), &[]).await;
    call.set_ptime(30);
    call.play(Duration::from_millis(900), &[]).await;
    call.set_ptime(60);
    call.play(Duration::from_millis(1200), &[]).await;
    let bye_at = Instant::now();
    assert_eq!(call.bye().await.status, 200);
    let length = bye_at - call.answered_at.unwrap();
    let rec = server.completed(&call.call_id);
    for (label, hz) in [("1", 440.0), ("2", 1000.0)] {
        let wav = server.wav(leg(&rec, label));
        assert_length(wav.duration_ms(), length, label);
        assert_eq!(leg(&rec, label)["lost"], 0);
        // Continuous tone across the size changes: no run of silence inside it.
        let holes = silent_samples(wav.window(100, 2900));
        assert!(
            holes < 80,
            "leg {label}: {holes} silent samples inside the tone"
        );
        assert_tone(&server, &rec, label, 2000, 2800, hz);
    }
}

#[tokio::test]
async fn a_codec_change_by_re_invite_keeps_the_leg_and_its_tone() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_secs(1), &[]).await;
    call.set_codec(TestCodec::Pcma);
    let changed = call.reinvite("sendonly").await;
    assert_eq!(changed.status, 200);
    let media = changed.answered_media();
    assert!(
        media
            .iter()
            .all(|m| m.formats.first().map(String::as_str) == Some("8")),
        "PCMA answered: {media:?}"
    );
    call.play(Duration::from_secs(1), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    for (label, hz) in [("1", 440.0), ("2", 1000.0)] {
        assert_tone(&server, &rec, label, 200, 900, hz);
        assert_tone(&server, &rec, label, 1200, 1900, hz);
        assert!(leg(&rec, label)["codec_changes"].as_i64().unwrap() >= 1);
    }
}

#[tokio::test]
async fn ssrc_change_and_timestamp_jump_keep_the_timeline() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_secs(1), &[]).await;
    call.change_ssrc(0);
    // 10 minutes forward in RTP time, none in wall-clock time.
    call.jump_timestamp(1, 8000 * 600);
    call.play(Duration::from_secs(1), &[]).await;
    let bye_at = Instant::now();
    assert_eq!(call.bye().await.status, 200);
    let length = bye_at - call.answered_at.unwrap();
    let rec = server.completed(&call.call_id);
    assert_eq!(leg(&rec, "1")["ssrcs_seen"], 2);
    for (label, hz) in [("1", 440.0), ("2", 1000.0)] {
        let wav = server.wav(leg(&rec, label));
        // Re-anchored on the wall clock: the WAV is as long as the call, not 10 minutes.
        assert_length(wav.duration_ms(), length, label);
        assert_tone(&server, &rec, label, 1200, 1800, hz);
        let holes = silent_samples(wav.window(100, 1900));
        assert!(
            holes < 400,
            "leg {label}: {holes} silent samples around the change"
        );
    }
}

#[tokio::test]
async fn a_stream_added_mid_call_is_a_new_leg_on_the_same_timeline() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_secs(1), &[]).await;
    let added_at = call.answered_at.unwrap().elapsed();
    call.add_stream(StreamSpec {
        label: "3".into(),
        participant: "p3".into(),
        aor: "sip:carol@example.com".into(),
        tone_hz: 1800.0,
    })
    .await;
    let answer = call.reinvite("sendonly").await;
    assert_eq!(answer.status, 200);
    let media = answer.answered_media();
    assert_eq!(media.len(), 3, "every m-line answered: {media:?}");
    assert!(
        media
            .iter()
            .all(|m| m.port != 0 && m.direction.as_deref() == Some("recvonly"))
    );
    call.on_reinvite_response(&answer);
    call.play(Duration::from_secs(1), &[]).await;
    let bye_at = Instant::now();
    assert_eq!(call.bye().await.status, 200);
    let length = bye_at - call.answered_at.unwrap();

    let rec = server.completed(&call.call_id);
    let third = leg(&rec, "3");
    assert_eq!(third["participant"], "p3");
    let added_ms = third["added_at_ms"].as_i64().unwrap();
    assert!(
        (added_ms - added_at.as_millis() as i64).abs() < 200,
        "added_at_ms {added_ms}"
    );
    let wav = server.wav(third);
    // Offset t is t after the answer in every leg: silence until the stream was added.
    assert_length(wav.duration_ms(), length, "leg 3");
    assert!(
        rms(wav.window(100, added_ms as u64 - 100)) < 1.0,
        "leg 3 is silent before it existed"
    );
    assert_tone(
        &server,
        &rec,
        "3",
        added_ms as u64 + 200,
        added_ms as u64 + 800,
        1800.0,
    );
}

#[tokio::test]
async fn a_stream_removed_mid_call_is_answered_port_0_and_records_silence() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_secs(1), &[]).await;
    call.remove_stream(1);
    let answer = call.reinvite("sendonly").await;
    assert_eq!(answer.status, 200);
    let media = answer.answered_media();
    assert_eq!(
        media.len(),
        2,
        "the removed m-line is still answered: {media:?}"
    );
    assert_ne!(media[0].port, 0);
    assert_eq!(media[1].port, 0, "a removed stream is answered with port 0");
    call.play(Duration::from_secs(1), &[]).await;
    let bye_at = Instant::now();
    assert_eq!(call.bye().await.status, 200);
    let length = bye_at - call.answered_at.unwrap();
    let rec = server.completed(&call.call_id);
    let removed = server.wav(leg(&rec, "2"));
    // Still as long as the call, so the legs stay aligned; silence after the removal.
    assert_length(removed.duration_ms(), length, "leg 2");
    assert_tone(&server, &rec, "2", 200, 900, 1000.0);
    assert!(
        rms(removed.window(1200, 1900)) < 1.0,
        "leg 2 records silence once removed"
    );
    assert_tone(&server, &rec, "1", 1200, 1900, 440.0);
}

#[tokio::test]
async fn a_re_offer_without_a_decodable_codec_is_declined_and_can_come_back() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    let ports: Vec<u16> = call
        .answer
        .as_ref()
        .unwrap()
        .answered_media()
        .iter()
        .map(|m| m.port)
        .collect();
    call.play(Duration::from_millis(600), &[]).await;
    // GSM only: nothing callvault decodes. Each m-line is answered port 0, the call goes on.
    let gsm = call
        .sdp("sendonly")
        .replace("RTP/AVP 0 101", "RTP/AVP 3 101")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:3 GSM/8000");
    let r = call
        .request_in_dialog("INVITE", "application/sdp", gsm.as_bytes())
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.answered_media().iter().all(|m| m.port == 0),
        "{:?}",
        r.answered_media()
    );
    call.ack().await;
    // Back to PCMU: the streams are accepted again, on the ports they had.
    let back = call.reinvite("sendonly").await;
    assert_eq!(back.status, 200);
    assert_eq!(
        back.answered_media()
            .iter()
            .map(|m| m.port)
            .collect::<Vec<_>>(),
        ports
    );
    call.on_reinvite_response(&back);
    call.play(Duration::from_millis(600), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    assert_eq!(rec["state"], "complete");
    let wav = server.wav(leg(&rec, "1"));
    let tail = wav.duration_ms() as u64;
    assert_tone(&server, &rec, "1", tail - 500, tail - 100, 440.0);
}

#[tokio::test]
async fn participants_join_and_leave_across_metadata_revisions() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Tcp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(600), &[]).await;
    // Transfer: bob hands over to carol on stream 2, announced in a re-INVITE.
    call.set_participant(1, "p3", "sip:carol@example.com");
    let transfer_at = call.answered_at.unwrap().elapsed().as_millis() as i64;
    assert_eq!(call.reinvite("sendonly").await.status, 200);
    call.play(Duration::from_millis(600), &[]).await;
    // Then carol hands back to bob, announced in a metadata-only UPDATE (as Avaya does).
    call.set_participant(1, "p2", "sip:bob@example.com");
    let back_at = call.answered_at.unwrap().elapsed().as_millis() as i64;
    let update = call.update_metadata().await;
    assert_eq!(update.status, 200);
    assert!(
        update.body.is_empty(),
        "a metadata-only UPDATE is answered without SDP"
    );
    call.play(Duration::from_millis(400), &[]).await;
    assert_eq!(call.bye().await.status, 200);

    let rec = server.completed(&call.call_id);
    assert_eq!(rec["metadata_revisions"], 3);
    let participants = rec["participants"].as_array().unwrap();
    assert!(
        participants
            .iter()
            .any(|p| p["id"] == "p3" && p["aor"] == "sip:carol@example.com")
    );
    let on_leg2: Vec<(String, i64, Option<i64>)> = rec["associations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["leg"] == "2")
        .map(|a| {
            (
                a["participant"].as_str().unwrap().to_owned(),
                a["from_ms"].as_i64().unwrap(),
                a["to_ms"].as_i64(),
            )
        })
        .collect();
    assert_eq!(on_leg2.len(), 3, "{on_leg2:?}");
    let near = |a: i64, b: i64| (a - b).abs() < 200;
    assert_eq!(on_leg2[0].0, "p2");
    assert_eq!(on_leg2[0].1, 0);
    assert!(near(on_leg2[0].2.unwrap(), transfer_at), "{on_leg2:?}");
    assert_eq!(on_leg2[1].0, "p3");
    assert!(
        near(on_leg2[1].1, transfer_at) && near(on_leg2[1].2.unwrap(), back_at),
        "{on_leg2:?}"
    );
    assert_eq!(on_leg2[2].0, "p2");
    assert!(
        near(on_leg2[2].1, back_at) && on_leg2[2].2.is_none(),
        "{on_leg2:?}"
    );
    // Leg 1 never changed hands.
    let leg1: Vec<&Value> = rec["associations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["leg"] == "1")
        .collect();
    assert_eq!(leg1.len(), 1);
    assert_eq!(leg1[0]["participant"], "p1");
    // Every revision is kept beside the legs.
    let dir = server
        .path_of(leg(&rec, "1"))
        .parent()
        .unwrap()
        .to_path_buf();
    for n in 1..=3 {
        assert!(
            dir.join(format!("metadata-{n}.xml")).exists(),
            "metadata-{n}.xml"
        );
    }
}

#[tokio::test]
async fn rfc4733_digits_have_exact_offsets_and_durations() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(600), &[]).await;
    let one = call.press(0, '1', Duration::from_millis(200)).await;
    call.play(Duration::from_millis(300), &[]).await;
    let hash = call.press(1, '#', Duration::from_millis(120)).await;
    call.play(Duration::from_millis(300), &[]).await;
    let again = call.press(0, '1', Duration::from_millis(100)).await;
    call.play(Duration::from_millis(300), &[]).await;
    assert_eq!(call.bye().await.status, 200);

    let rec = server.completed(&call.call_id);
    let dtmf = rec["dtmf"].as_array().unwrap();
    assert_eq!(dtmf.len(), 3, "one event per key press: {dtmf:?}");
    for (event, (digit, leg_label, at, duration)) in dtmf.iter().zip([
        ("1", "1", one, 200),
        ("#", "2", hash, 120),
        ("1", "1", again, 100),
    ]) {
        assert_eq!(event["digit"], digit);
        assert_eq!(event["leg"], leg_label);
        assert_eq!(event["source"], "rfc4733");
        let offset = event["offset_ms"].as_i64().unwrap();
        assert!(
            (offset - at.as_millis() as i64).abs() <= 40,
            "{digit}: offset {offset}, pressed at {at:?}"
        );
        let d = event["duration_ms"].as_i64().unwrap();
        assert!(
            (d - duration).abs() <= 20,
            "{digit}: duration {d}, pressed for {duration}"
        );
    }
    // The catalog can be searched by digits.
    let found = server.cli(&["list", "--json", "--digits", "1#1"]);
    let found: Vec<Value> = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(found.len(), 1);
    let none = server.cli(&["list", "--json", "--digits", "#11"]);
    let none: Vec<Value> = serde_json::from_slice(&none.stdout).unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn sip_info_digits_are_captured_and_bad_ones_refused() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(500), &[]).await;
    let at7 = call.answered_at.unwrap().elapsed();
    let r = call
        .request_in_dialog(
            "INFO",
            "application/dtmf-relay",
            b"Signal=7\r\nDuration=250\r\n",
        )
        .await;
    let answered7 = call.answered_at.unwrap().elapsed();
    assert_eq!(r.status, 200);
    call.play(Duration::from_millis(300), &[]).await;
    let at_star = call.answered_at.unwrap().elapsed();
    let r = call
        .request_in_dialog("INFO", "application/dtmf", b"*")
        .await;
    let answered_star = call.answered_at.unwrap().elapsed();
    assert_eq!(r.status, 200);
    let bad = call
        .request_in_dialog("INFO", "application/dtmf-relay", b"Signal=99\r\n")
        .await;
    assert_eq!(bad.status, 400);
    // Not DTMF at all: acknowledged, nothing recorded.
    let other = call
        .request_in_dialog("INFO", "application/media_control+xml", b"<media_control/>")
        .await;
    assert_eq!(other.status, 200);
    call.play(Duration::from_millis(300), &[]).await;
    assert_eq!(call.bye().await.status, 200);

    let rec = server.completed(&call.call_id);
    assert_eq!(
        rec["state"], "complete",
        "a bad INFO does not harm the recording"
    );
    let dtmf = rec["dtmf"].as_array().unwrap();
    assert_eq!(dtmf.len(), 2, "{dtmf:?}");
    // The digit is placed when the server took the INFO: after it was sent and before its
    // answer came back (with the clocks' own slack), however loaded the machine is.
    for (event, (digit, sent, answered, duration)) in dtmf
        .iter()
        .zip([("7", at7, answered7, 250), ("*", at_star, answered_star, 0)])
    {
        assert_eq!(event["digit"], digit);
        assert_eq!(event["source"], "sip-info");
        assert_eq!(event["duration_ms"], duration);
        let offset = event["offset_ms"].as_i64().unwrap();
        assert!(
            offset >= sent.as_millis() as i64 - 40 && offset <= answered.as_millis() as i64 + 40,
            "{digit}: offset {offset}, sent at {sent:?}, answered at {answered:?}"
        );
    }
}

#[tokio::test]
async fn dtmf_capture_turned_off_keeps_no_digits() {
    let server = Server::start_with("[sip]\ndtmf_capture = false\n");
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(300), &[]).await;
    call.press(0, '4', Duration::from_millis(100)).await;
    let r = call
        .request_in_dialog(
            "INFO",
            "application/dtmf-relay",
            b"Signal=5\r\nDuration=100\r\n",
        )
        .await;
    assert_eq!(r.status, 200);
    call.play(Duration::from_millis(300), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    assert_eq!(rec["dtmf"], serde_json::json!([]));
}

#[tokio::test]
async fn an_active_stream_that_goes_silent_ends_the_recording_with_a_bye() {
    let server = Server::start_with("[media]\nrtp_timeout_ms = 1000\n");
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(500), &[]).await;
    let stopped = Instant::now();
    // The client stops sending; the server must hang up by itself.
    let bye = call
        .client
        .next_request(Duration::from_secs(5))
        .await
        .expect("a BYE from the server");
    assert_eq!(bye.method, "BYE");
    let waited = stopped.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "BYE after {waited:?}, before the timeout"
    );
    assert_eq!(bye.header("Call-ID"), Some(call.call_id.as_str()));
    assert!(
        bye.uri.starts_with("sip:sbc@127.0.0.1:"),
        "BYE goes to our Contact: {}",
        bye.uri
    );
    call.client.send(&bye.response(200, "OK")).await;
    let rec = server.completed(&call.call_id);
    assert_eq!(rec["state"], "complete");
    assert_eq!(rec["end_reason"], "rtp-timeout");
}

#[tokio::test]
async fn a_held_call_never_times_out() {
    let server = Server::start_with("[media]\nrtp_timeout_ms = 800\n");
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(400), &[]).await;
    assert_eq!(call.reinvite("inactive").await.status, 200);
    // Twice the RTP timeout on hold: no BYE may come.
    assert!(
        call.client
            .next_request(Duration::from_millis(1600))
            .await
            .is_none(),
        "the server hung up a held call"
    );
    call.skip(Duration::from_millis(1600));
    assert_eq!(call.reinvite("sendonly").await.status, 200);
    call.play(Duration::from_millis(400), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    assert_eq!(rec["end_reason"], "bye");
}

#[tokio::test]
async fn a_c_0_0_0_0_pause_with_sdp_only_is_silence_and_keeps_the_session() {
    // BroadWorks pauses with a re-INVITE holding SDP only, c=0.0.0.0.
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(800), &[]).await;
    let paused = call
        .sdp("sendonly")
        .replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let r = call
        .request_in_dialog("INVITE", "application/sdp", paused.as_bytes())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.answered_media().len(), 2);
    call.ack().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    call.skip(Duration::from_millis(1000));
    let resumed = call.sdp("sendonly");
    let r = call
        .request_in_dialog("INVITE", "application/sdp", resumed.as_bytes())
        .await;
    assert_eq!(r.status, 200);
    call.ack().await;
    call.play(Duration::from_millis(800), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    assert_eq!(rec["state"], "complete");
    for (label, hz) in [("1", 440.0), ("2", 1000.0)] {
        assert_tone(&server, &rec, label, 150, 700, hz);
        assert!(
            rms(server.wav(leg(&rec, label)).window(1000, 1700)) < 50.0,
            "leg {label}: pause not silent"
        );
        assert_tone(&server, &rec, label, 2000, 2500, hz);
    }
}

#[tokio::test]
async fn two_ssrcs_interleaved_on_one_m_line_are_both_recorded_at_their_levels() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(1000.0, 700.0),
    )
    .await;
    // Stream 1 carries a second party unmixed: 440 Hz at half the first party's amplitude,
    // its own SSRC, sequence numbers and timestamps, from the same port.
    call.add_party(0, 440.0, 0.5);
    call.play(Duration::from_millis(1500), &[]).await;
    // The second party hangs up; the first goes on.
    call.remove_party(0);
    call.play(Duration::from_secs(1), &[]).await;
    let bye_at = Instant::now();
    assert_eq!(call.bye().await.status, 200);
    let length = bye_at - call.answered_at.unwrap();

    let rec = server.completed(&call.call_id);
    let l1 = leg(&rec, "1");
    let wav = server.wav(l1);
    assert_length(wav.duration_ms(), length, "leg 1");
    // Windows of one length (Goertzel power grows with the square of the length).
    let both = wav.window(300, 1000);
    let (first, second) = (power(both, wav.rate, 1000.0), power(both, wav.rate, 440.0));
    let ratio = first / second;
    let alone = wav.window(1700, 2400);
    let after = power(alone, wav.rate, 1000.0) / power(alone, wav.rate, 440.0);
    let level = power(alone, wav.rate, 1000.0) / first;
    println!(
        "two SSRCs: 1000/440 Hz power ratio {ratio:.2} while both speak (amplitudes 2:1 → 4), \
         {after:.1e} once the second stopped; first party's level after/before {level:.3}"
    );
    assert!((3.0..5.5).contains(&ratio), "power ratio {ratio}");
    assert!(after > 1000.0, "the second party is gone: {after}");
    assert!(
        (level - 1.0).abs() < 0.1,
        "the first party unharmed: {level}"
    );
    assert!(silent_samples(wav.window(100, 2400)) < 80);
    assert_eq!(l1["ssrcs_seen"], 2);
    assert_eq!(l1["concurrent_ssrcs"], 2);
    assert_eq!(l1["ssrc_changes"], 0);
    assert_eq!(l1["lost"], 0);
    let sources = l1["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert!(sources[1]["packets"].as_u64().unwrap() >= 70, "{sources:?}");
    // The other leg is its own.
    assert_tone(&server, &rec, "2", 300, 2300, 700.0);
}

/// A call whose stream 1 starts in `first` with `first_hz`, then switches by re-INVITE to
/// `second` with `second_hz`; returns the recording and leg 1's audio.
async fn codec_switch(
    first: TestCodec,
    first_hz: f64,
    second: TestCodec,
    second_hz: f64,
) -> (Value, Wav) {
    let server = Server::start();
    let mut spec = CallSpec::two_parties(first_hz, 1000.0);
    spec.codec = first;
    let mut call = Call::answered(Transport::Udp, server.sip, spec).await;
    call.play(Duration::from_secs(1), &[]).await;
    call.set_codec(second);
    call.set_tone(0, second_hz);
    let changed = call.reinvite("sendonly").await;
    assert_eq!(changed.status, 200);
    call.play(Duration::from_secs(1), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    let wav = server.wav(leg(&rec, "1"));
    (rec, wav)
}

#[tokio::test]
async fn g722_to_pcmu_in_a_16_khz_leg_leaves_no_image_of_3_khz_at_5_khz() {
    let (rec, wav) = codec_switch(TestCodec::G722, 3000.0, TestCodec::Pcmu, 3000.0).await;
    let l1 = leg(&rec, "1");
    assert_eq!(l1["sample_rate"], 16000);
    assert!(l1["resampled_packets"].as_u64().unwrap() >= 40);
    let samples = &wav.samples;
    let after = &samples[16000 * 13 / 10..16000 * 19 / 10];
    let (tone, image) = (power(after, 16000, 3000.0), power(after, 16000, 5000.0));
    println!(
        "G.722 → PCMU, 3 kHz in a 16 kHz leg: 5 kHz image at {:.1} dB of the tone",
        10.0 * (image / tone).log10()
    );
    assert!(rms(after) > 5000.0, "the tone is there: rms {}", rms(after));
    assert!(
        image < tone * 1e-4,
        "image {:.2e} of the tone",
        image / tone
    );
}

#[tokio::test]
async fn pcmu_to_g722_in_an_8_khz_leg_leaves_no_alias_of_5_khz_at_3_khz() {
    let (rec, wav) = codec_switch(TestCodec::Pcmu, 1000.0, TestCodec::G722, 5000.0).await;
    let l1 = leg(&rec, "1");
    assert_eq!(l1["sample_rate"], 8000);
    assert!(l1["resampled_packets"].as_u64().unwrap() >= 40);
    let samples = &wav.samples;
    let after = &samples[8000 * 13 / 10..8000 * 19 / 10];
    // What a 3 kHz alias at the tone's level would measure.
    let full = power(&tone_at(3000.0, 8000, 0, after.len()), 8000, 3000.0);
    let alias = power(after, 8000, 3000.0);
    println!(
        "PCMU → G.722, 5 kHz in an 8 kHz leg: 3 kHz alias at {:.1} dB of the tone's level \
         (rms {:.1} over the window)",
        10.0 * (alias / full).log10(),
        rms(after)
    );
    assert!(alias < full * 1e-4, "alias {:.2e}", alias / full);
    // And the leg goes on with the 1 kHz part before the change, in tune.
    let before = &samples[8000 * 3 / 10..8000 * 9 / 10];
    assert!((dominant_frequency(before, 8000) - 1000.0).abs() <= 20.0);
}
