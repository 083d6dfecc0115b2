//! Every recording client's dialect of INTEROP.md, end to end: the vendor's own INVITE body
//! (the wire fixtures of callvault-siprec) sent to the real binary, RTP in the codec it answered,
//! BYE — then the answer, the catalog and each leg's audio are checked. The server is never
//! told which vendor is calling.

use std::time::Duration;

use serde_json::Value;

use crate::support::audio::{dominant_frequency, rms};
use crate::support::client::{Call, CallSpec, SipResponse, StreamSpec, Transport};
use crate::support::codec::TestCodec;
use crate::support::{Server, leg};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../callvault-siprec/tests/fixtures"
);

/// A fixture: its Content-Type, the vendor headers that came with it, and the body.
struct Fixture {
    content_type: String,
    headers: String,
    body: String,
}

fn fixture(name: &str) -> Fixture {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}.sip")).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .expect("a fixture is headers, a blank line, a body");
    let mut content_type = String::new();
    let mut headers = String::new();
    for line in head.lines() {
        let (name, value) = line.split_once(':').unwrap();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = value.trim().to_owned(),
            // Our client owns the dialog identifiers; fixture notes are not headers.
            "call-id" | "from" | "to" | "cseq" | "via" => {}
            n if n.starts_with("x-fixture") => {}
            _ => headers.push_str(&format!("{line}\r\n")),
        }
    }
    Fixture {
        content_type,
        headers,
        body: body.to_owned(),
    }
}

/// The vendor's body pointed at our test sockets: addresses to loopback, each audio m-line's
/// port to one of ours. SDES keys stay as the SBC sent them: the client encrypts with them.
fn rewrite(body: &str, ports: &[u16]) -> String {
    let mut next = ports.iter();
    let mut out = String::new();
    for line in body.split_inclusive('\n') {
        let (text, end) = match line.strip_suffix("\r\n") {
            Some(t) => (t, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(t) => (t, "\n"),
                None => (line, ""),
            },
        };
        let text = if text.starts_with("c=IN IP4 ") && !text.ends_with(" 0.0.0.0") {
            "c=IN IP4 127.0.0.1".to_owned()
        } else if let Some(rest) = text.strip_prefix("m=audio ") {
            let (port, tail) = rest.split_once(' ').unwrap();
            let port = if port == "0" {
                0
            } else {
                *next.next().expect("a port per m-line")
            };
            format!("m=audio {port} {tail}")
        } else {
            text.to_owned()
        };
        out.push_str(&text);
        out.push_str(end);
    }
    out
}

/// The AORs of the participants the fixture's expected result lists.
fn expected_aors(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}.expected")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("participant "))
        .filter_map(|l| l.split(" aor=").nth(1))
        .map(|rest| rest.split(" name=").next().unwrap().to_owned())
        .filter(|aor| aor != "-")
        .collect()
}

fn tone(i: usize) -> f64 {
    500.0 + 400.0 * i as f64
}

/// Plays `name`'s INVITE against a fresh server; returns the server, the call and the answer.
async fn record(name: &str, transport: Transport) -> (Server, Call, SipResponse) {
    let server = Server::start();
    let f = fixture(name);
    let streams = f.body.matches("m=audio ").count();
    let mut spec = CallSpec::two_parties(0.0, 0.0);
    spec.streams = (0..streams)
        .map(|i| StreamSpec {
            label: i.to_string(),
            participant: format!("p{i}"),
            aor: String::new(),
            tone_hz: tone(i),
        })
        .collect();
    let mut call = Call::new(transport, server.sip, spec).await;
    let body = rewrite(&f.body, &call.rtp_ports());
    let answer = call
        .invite_raw(&f.content_type, body.as_bytes(), &f.headers)
        .await;
    assert_eq!(
        answer.status, 200,
        "{name}: {} {}",
        answer.status, answer.reason
    );
    let media = answer.answered_media();
    assert_eq!(
        media.len(),
        f.body.matches("m=").count(),
        "{name}: every m-line answered"
    );
    for (i, m) in media.iter().enumerate() {
        if let Some(encoding) = m.chosen_encoding() {
            let codec = TestCodec::from_encoding(&encoding)
                .unwrap_or_else(|| panic!("{name}: answered {encoding}"));
            call.set_stream_codec(i, codec, m.formats[0].parse().unwrap());
        }
    }
    call.ack().await;
    call.play(Duration::from_millis(1500), &[]).await;
    (server, call, answer)
}

/// Ends the call and checks what every dialect must give: a complete recording with the
/// fixture's participants, and each answered-recvonly leg holding its stream's tone.
async fn finish(name: &str, server: &Server, mut call: Call, answer: &SipResponse) -> Value {
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    assert_eq!(rec["state"], "complete", "{name}");
    let aors: Vec<&str> = rec["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["aor"].as_str())
        .collect();
    for aor in expected_aors(name) {
        assert!(
            aors.contains(&aor.as_str()),
            "{name}: participant {aor} missing from {aors:?}"
        );
    }
    let media = answer.answered_media();
    let legs = rec["legs"].as_array().unwrap();
    assert_eq!(
        legs.len(),
        media.iter().filter(|m| m.port != 0).count(),
        "{name}: {rec:#}"
    );
    for (i, m) in media.iter().enumerate().filter(|(_, m)| m.port != 0) {
        let label = m.label.clone().unwrap_or_else(|| i.to_string());
        let wav = server.wav(leg(&rec, &label));
        let window = wav.window(300, 1300);
        if m.direction.as_deref() == Some("recvonly") {
            let f = dominant_frequency(window, wav.rate);
            assert!(
                (f - tone(i)).abs() <= 20.0,
                "{name} leg {label}: {f} Hz, sent {} Hz",
                tone(i)
            );
        } else {
            assert!(
                rms(window) < 1.0,
                "{name} leg {label}: offered inactive, recorded sound"
            );
        }
    }
    rec
}

async fn dialect(name: &str) -> Value {
    let (server, call, answer) = record(name, Transport::Udp).await;
    finish(name, &server, call, &answer).await
}

#[tokio::test]
async fn oracle_acme_sbc() {
    // SDES-SRTP, as Oracle/Acme sends by default: the fixture's own keys encrypt the audio.
    let (server, call, answer) = record("oracle_acme", Transport::Udp).await;
    let crypto = answer
        .body
        .lines()
        .filter(|l| l.starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"))
        .count();
    assert_eq!(
        crypto, 2,
        "each m-line answered with one crypto line:\n{}",
        answer.body
    );
    let rec = finish("oracle_acme", &server, call, &answer).await;
    for l in rec["legs"].as_array().unwrap() {
        assert_eq!(l["srtp_auth_failures"], 0, "{l}");
        assert!(l["packets"].as_u64().unwrap() > 70, "{l}");
    }
    assert!(
        rec["correlation_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "ucid")
    );
    assert_eq!(leg(&rec, "16777227")["binding_rule"], "association");
}

#[tokio::test]
async fn cisco_cube_with_a_gtd_part() {
    dialect("cisco_cube").await;
}

#[tokio::test]
async fn cisco_cucm_network_based_recording_without_metadata() {
    let rec = dialect("cisco_bib").await;
    assert_eq!(rec["metadata_revisions"], 0);
}

#[tokio::test]
async fn audiocodes_mediant() {
    dialect("audiocodes").await;
}

#[tokio::test]
async fn ribbon_sonus() {
    let rec = dialect("ribbon").await;
    assert!(
        rec["correlation_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "callData.callid")
    );
}

#[tokio::test]
async fn metaswitch_one_mixed_m_line() {
    let rec = dialect("metaswitch").await;
    assert_eq!(rec["legs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn broadworks_draft_metadata_before_the_sdp() {
    dialect("broadworks").await;
}

#[tokio::test]
async fn opensips_inactive_streams_are_answered_inactive_and_record_silence() {
    dialect("opensips_pause").await;
}

#[tokio::test]
async fn sems_string_labels_and_bare_lf() {
    dialect("sems").await;
}

#[tokio::test]
async fn avaya_sbce_real_parties_arrive_in_a_metadata_only_update() {
    let name = "avaya_sbce_invite";
    let (server, mut call, answer) = record(name, Transport::Tcp).await;
    let update = fixture("avaya_sbce_update");
    let r = call
        .request_in_dialog("UPDATE", &update.content_type, update.body.as_bytes())
        .await;
    assert_eq!(r.status, 200);
    let rec = finish(name, &server, call, &answer).await;
    assert_eq!(rec["metadata_revisions"], 2);
    let aors: Vec<&str> = rec["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["aor"].as_str())
        .collect();
    for aor in expected_aors("avaya_sbce_update") {
        assert!(aors.contains(&aor.as_str()), "{aor} missing from {aors:?}");
    }
}
