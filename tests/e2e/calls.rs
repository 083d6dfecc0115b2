//! Recorded calls: the audio, the timeline and the catalog.

use std::time::{Duration, Instant};

use crate::support::audio::{dominant_frequency, rms, silent_samples};
use crate::support::client::{Call, CallSpec, Impairment, Transport};
use crate::support::{Server, leg};

/// Plays a two-party call for `seconds`, hangs up, and returns the call and how long it lasted
/// from the 200 OK to the BYE (what each leg's WAV must hold).
async fn two_party_call(
    server: &Server,
    transport: Transport,
    play: Duration,
    impair: &[Impairment],
) -> (Call, Duration) {
    let mut call = Call::new(transport, server.sip, CallSpec::two_parties(440.0, 1000.0)).await;
    let answer = call.invite().await;
    assert_eq!(
        answer.status, 200,
        "INVITE answered {} {}",
        answer.status, answer.reason
    );
    call.ack().await;
    call.play(play, impair).await;
    let bye_at = Instant::now();
    let bye = call.bye().await;
    assert_eq!(bye.status, 200);
    let length = bye_at - call.answered_at.unwrap();
    (call, length)
}

fn assert_length(wav_ms: i64, expected: Duration, what: &str) {
    let expected = expected.as_millis() as i64;
    assert!(
        (wav_ms - expected).abs() <= 150,
        "{what}: WAV holds {wav_ms} ms, the call lasted {expected} ms"
    );
}

async fn records_a_two_stream_call(transport: Transport) {
    let server = Server::start();
    let (call, length) = two_party_call(&server, transport, Duration::from_secs(2), &[]).await;

    // The SDP answer: every m-line, same order, recvonly, labels kept, our address.
    let answer = call.answer.as_ref().unwrap();
    assert_eq!(answer.header("Content-Type"), Some("application/sdp"));
    let media = answer.answered_media();
    assert_eq!(media.len(), 2);
    for (m, label) in media.iter().zip(["1", "2"]) {
        assert_eq!(m.kind, "audio");
        assert_ne!(m.port, 0);
        assert_eq!(m.direction.as_deref(), Some("recvonly"));
        assert_eq!(m.label.as_deref(), Some(label));
        assert_eq!(
            m.formats.first().map(String::as_str),
            Some("0"),
            "PCMU chosen"
        );
        assert!(m.formats.iter().any(|f| f == "101"), "telephone-event kept");
    }
    assert_eq!(answer.connection_ip().as_deref(), Some("127.0.0.1"));

    // The catalog, as the CLI prints it.
    let rec = server.completed(&call.call_id);
    assert_eq!(rec["state"], "complete");
    assert_eq!(rec["ingress_call_id"], call.call_id.as_str());
    assert!(rec["egress_call_id"].is_null());
    assert_eq!(rec["from"], "sip:alice@example.com");
    assert_eq!(rec["to"], "sip:bob@example.com");
    assert_eq!(rec["session_id"], "hVpd7YQgRW2nD22h7q60JQ==");
    assert!(
        time::OffsetDateTime::parse(
            rec["started_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    assert!(
        time::OffsetDateTime::parse(
            rec["ended_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    assert_length(rec["duration_ms"].as_i64().unwrap(), length, "duration_ms");
    assert_eq!(rec["dtmf"], serde_json::json!([]));
    let participants = rec["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 2);
    assert!(
        participants
            .iter()
            .any(|p| p["id"] == "p1" && p["aor"] == "sip:alice@example.com")
    );
    assert!(
        participants
            .iter()
            .any(|p| p["id"] == "p2" && p["aor"] == "sip:bob@example.com")
    );

    for (label, participant, hz) in [("1", "p1", 440.0), ("2", "p2", 1000.0)] {
        let l = leg(&rec, label);
        assert_eq!(l["participant"], participant);
        assert_eq!(l["codec"], "PCMU");
        let packets = l["packets"].as_i64().unwrap();
        assert!(
            (98..=100).contains(&packets),
            "leg {label}: {packets} packets"
        );
        assert_eq!(l["lost"], 0);
        assert!(l["path"].as_str().unwrap().starts_with("recordings/"));
        assert_eq!(l["sha256"].as_str().map(str::len), Some(64));
        let wav = server.wav(l);
        assert_eq!(wav.rate, 8000);
        assert_length(wav.duration_ms(), length, &format!("leg {label}"));
        let f = dominant_frequency(wav.window(300, 1700), wav.rate);
        assert!(
            (f - hz).abs() <= 10.0,
            "leg {label}: dominant {f} Hz, sent {hz} Hz"
        );
    }
    // The raw metadata is kept beside the legs.
    let dir = server
        .path_of(leg(&rec, "1"))
        .parent()
        .unwrap()
        .to_path_buf();
    let xml = std::fs::read_to_string(dir.join("metadata-1.xml")).unwrap();
    assert!(xml.contains("participantstreamassoc"));
}

#[tokio::test]
async fn records_a_two_stream_call_over_udp() {
    records_a_two_stream_call(Transport::Udp).await;
}

#[tokio::test]
async fn records_a_two_stream_call_over_tcp() {
    records_a_two_stream_call(Transport::Tcp).await;
}

#[tokio::test]
async fn loss_and_reordering_on_one_leg_keep_it_aligned() {
    // Raw evidence: lost packets stay silent, so the holes show where the timeline put them.
    let server = Server::start_with("[media]\nconceal_loss = false\n");
    let impaired = Impairment {
        drop_every: 20,
        swap_every: 7,
        ..Impairment::default()
    };
    let (call, length) =
        two_party_call(&server, Transport::Udp, Duration::from_secs(2), &[impaired]).await;
    let rec = server.completed(&call.call_id);
    let l1 = leg(&rec, "1");
    // 100 packets sent, every 20th dropped; the last one dropped is the call's last packet,
    // which no later sequence number can reveal as lost.
    assert_eq!(l1["packets"], 95);
    let lost = l1["lost"].as_i64().unwrap();
    assert!((4..=5).contains(&lost), "lost {lost}");
    assert_eq!(leg(&rec, "2")["lost"], 0);
    for (label, hz) in [("1", 440.0), ("2", 1000.0)] {
        let wav = server.wav(leg(&rec, label));
        assert_length(wav.duration_ms(), length, label);
        let f = dominant_frequency(wav.window(300, 1700), wav.rate);
        assert!((f - hz).abs() <= 10.0, "leg {label}: {f} Hz");
    }
    // Reordered packets were put back in place: the only holes in the impaired leg's tone are
    // the four lost packets inside the window (160 samples each); the clean leg has none.
    let holes = |label: &str| silent_samples(server.wav(leg(&rec, label)).window(100, 1900));
    let impaired_holes = holes("1");
    assert!(
        (600..=700).contains(&impaired_holes),
        "impaired leg: {impaired_holes} silent samples"
    );
    assert!(holes("2") < 20, "clean leg: {} silent samples", holes("2"));
}

#[tokio::test]
async fn a_hold_in_the_middle_is_silence_of_the_right_length() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(500.0, 1500.0),
    )
    .await;
    call.play(Duration::from_secs(1), &[]).await;

    let hold = call.reinvite("inactive").await;
    assert_eq!(hold.status, 200);
    let media = hold.answered_media();
    assert_eq!(media.len(), 2);
    assert!(
        media
            .iter()
            .all(|m| m.direction.as_deref() == Some("inactive")),
        "{media:?}"
    );
    let ports: Vec<u16> = call
        .answer
        .as_ref()
        .unwrap()
        .answered_media()
        .iter()
        .map(|m| m.port)
        .collect();
    assert_eq!(
        media.iter().map(|m| m.port).collect::<Vec<_>>(),
        ports,
        "same ports on hold"
    );

    // The hold lasts 1.5 s: no RTP at all, as AudioCodes and Cisco do.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    call.skip(Duration::from_millis(1500));
    let resume = call.reinvite("sendonly").await;
    assert_eq!(resume.status, 200);
    assert!(
        resume
            .answered_media()
            .iter()
            .all(|m| m.direction.as_deref() == Some("recvonly"))
    );
    call.play(Duration::from_secs(1), &[]).await;
    let bye_at = Instant::now();
    assert_eq!(call.bye().await.status, 200);
    let length = bye_at - call.answered_at.unwrap();

    let rec = server.completed(&call.call_id);
    assert_eq!(rec["state"], "complete");
    for (label, hz) in [("1", 500.0), ("2", 1500.0)] {
        let wav = server.wav(leg(&rec, label));
        assert_length(wav.duration_ms(), length, label);
        let before = dominant_frequency(wav.window(200, 800), wav.rate);
        assert!(
            (before - hz).abs() <= 10.0,
            "leg {label} before hold: {before} Hz"
        );
        // The hold: from about 1.0 s to 2.5 s after the answer (the re-INVITEs take a few ms).
        let held = rms(wav.window(1200, 2300));
        assert!(held < 50.0, "leg {label}: hold is not silent (rms {held})");
        let after = wav.window(2800, 3300);
        assert!(
            rms(after) > 3000.0,
            "leg {label}: tone after resume missing"
        );
        let f = dominant_frequency(after, wav.rate);
        assert!((f - hz).abs() <= 10.0, "leg {label} after hold: {f} Hz");
    }
}

#[tokio::test]
async fn twenty_calls_at_once_are_each_recorded() {
    let server = Server::start();
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let sip = server.sip;
        tasks.push(tokio::spawn(async move {
            let (a, b) = (300.0 + 40.0 * f64::from(i), 2000.0 + 40.0 * f64::from(i));
            let mut call = Call::new(Transport::Udp, sip, CallSpec::two_parties(a, b)).await;
            let answer = call.invite().await;
            assert_eq!(answer.status, 200, "call {i}");
            call.ack().await;
            call.play(Duration::from_millis(1500), &[]).await;
            assert_eq!(call.bye().await.status, 200);
            (call.call_id.clone(), a, b)
        }));
    }
    let mut ports = std::collections::HashSet::new();
    for task in tasks {
        let (call_id, a, b) = task.await.unwrap();
        let rec = server.completed(&call_id);
        assert_eq!(rec["state"], "complete");
        for (label, hz) in [("1", a), ("2", b)] {
            let l = leg(&rec, label);
            assert!(
                l["packets"].as_i64().unwrap() >= 73,
                "{call_id} leg {label}: {l}"
            );
            let wav = server.wav(l);
            let f = dominant_frequency(wav.window(300, 1300), wav.rate);
            assert!(
                (f - hz).abs() <= 10.0,
                "{call_id} leg {label}: {f} Hz, sent {hz} Hz"
            );
            assert!(
                ports.insert(l["path"].as_str().unwrap().to_owned()),
                "one file per leg"
            );
        }
    }
    assert_eq!(server.list().len(), 20);
}

#[tokio::test]
async fn a_cancel_before_answer_gets_487_and_records_nothing() {
    let mut server = Server::start_with("[sip]\nanswer_delay_ms = 5000\n");
    let mut call = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 880.0),
    )
    .await;
    call.send_invite().await;
    // Wait for the provisional answer, then cancel.
    loop {
        let r = call
            .client
            .recv(Duration::from_secs(5))
            .await
            .expect("a provisional response");
        if r.status == 180 {
            break;
        }
        assert!(r.status < 200, "answered before the CANCEL: {}", r.status);
    }
    call.cancel().await;
    let cancel = call
        .client
        .final_response("CANCEL", Duration::from_secs(5))
        .await;
    assert_eq!(cancel.status, 200);
    let invite = call
        .client
        .final_response("INVITE", Duration::from_secs(5))
        .await;
    assert_eq!(invite.status, 487);
    call.ack_failure(&invite).await;
    server.wait_for_log("CANCEL before answer", Duration::from_secs(5));
    assert!(
        server.list().is_empty(),
        "a cancelled call is not a recording"
    );
}
