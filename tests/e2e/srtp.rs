//! SDES-SRTP calls as an SBC set up for security makes them. The SRTP is produced by
//! `webrtc-srtp` (not the server's code) from the key of the INVITE's `a=crypto` line, and must
//! be recorded bit-exact against the same audio sent in clear; tampered and replayed packets are
//! dropped and counted where an operator looks (the leg's counters, `/metrics`); offers the
//! recorder cannot take are declined with their reason; no key is left in a file or a log line.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::support::client::{Call, CallSpec, Impairment, SipResponse, Transport};
use crate::support::srtp::{self as sdes, Suite};
use crate::support::{Server, leg, metric};

const CALLER_HZ: f64 = 440.0;
const CALLEE_HZ: f64 = 1000.0;
/// Each half of a call: 50 packets of 20 ms per stream.
const HALF: Duration = Duration::from_secs(1);

/// A leg's audio without the silence before its first packet and after its last: what the
/// stream carried, whenever it started.
fn carried(samples: &[i16]) -> &[i16] {
    let start = samples
        .iter()
        .position(|s| *s != 0)
        .unwrap_or(samples.len());
    let end = samples
        .iter()
        .rposition(|s| *s != 0)
        .map_or(start, |i| i + 1);
    &samples[start..end]
}

/// The server's answer to an SRTP offer: `RTP/SAVP`, exactly one `a=crypto` line per m-line
/// with the offer's tag and suite, and a key of the server's own. Returns its keys.
fn answered_keys(answer: &SipResponse, suite: Suite, offered: &[Vec<u8>]) -> Vec<Vec<u8>> {
    assert_eq!(
        answer.body.matches("m=audio").count(),
        answer.body.matches(" RTP/SAVP ").count(),
        "every m-line answered RTP/SAVP:\n{}",
        answer.body
    );
    let lines = sdes::crypto_lines(&answer.body);
    assert_eq!(lines.len(), offered.len());
    lines
        .iter()
        .zip(offered)
        .map(|(lines, theirs)| {
            assert_eq!(lines.len(), 1, "one crypto line per m-line: {lines:?}");
            let (tag, answered, key) = sdes::parse_crypto(&lines[0]);
            assert_eq!((tag, answered), (1, suite));
            assert_ne!(&key, theirs, "the server's key is its own");
            key
        })
        .collect()
}

/// The `/metrics` page once `ready` holds of it, polled every 100 ms for at most `wait`.
async fn metrics_until(server: &Server, wait: Duration, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + wait;
    loop {
        let (status, page) = server.http_get("/metrics");
        assert_eq!(status, 200);
        if ready(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never got there:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// No file under `dir` (catalog database and its WAL, metadata, recordings) and no log line
/// holds any of `keys`, raw or base64.
fn assert_no_key_left(dir: &Path, log: &[String], keys: &[Vec<u8>]) {
    let needles: Vec<Vec<u8>> = keys
        .iter()
        .flat_map(|key| [key.clone(), STANDARD.encode(key).into_bytes()])
        .collect();
    let mut files = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "an SRTP key in {}",
                path.display()
            );
        }
    }
    assert!(files > 3, "the data directory was read ({files} files)");
    for line in log {
        for needle in &needles {
            assert!(
                !line.contains(&*String::from_utf8_lossy(needle)),
                "an SRTP key in the log: {line}"
            );
        }
    }
}

/// Two calls on one server with the same two tones: the reference in clear, then under SRTP
/// from `webrtc-srtp`, each 1 s of audio, a re-INVITE (a re-key under SRTP when `rekey`) and
/// 1 s more. The SRTP call's first stream gets a tampered packet (before the genuine one) and
/// its second a replayed one.
async fn srtp_is_recorded_bit_exact_against_the_clear_call(suite: Suite, rekey: bool) {
    let mut server = Server::start();

    let mut clear = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(CALLER_HZ, CALLEE_HZ),
    )
    .await;
    clear.play(HALF, &[]).await;
    assert_eq!(clear.reinvite("sendonly").await.status, 200);
    clear.play(HALF, &[]).await;
    assert_eq!(clear.bye().await.status, 200);
    let clear = server.completed(&clear.call_id);

    let mut spec = CallSpec::two_parties(CALLER_HZ, CALLEE_HZ);
    spec.srtp = Some(suite);
    let mut call = Call::new(Transport::Udp, server.sip, spec).await;
    let answer = call.invite().await;
    assert_eq!(answer.status, 200, "{} {}", answer.reason, answer.body);
    call.ack().await;
    let mut keys = call.srtp_keys();
    let ours = answered_keys(&answer, suite, &keys);
    keys.extend(ours.iter().cloned());

    let impaired = [
        Impairment {
            tamper_at: Some(10),
            ..Impairment::default()
        },
        Impairment {
            replay_at: Some(20),
            ..Impairment::default()
        },
    ];
    call.play(HALF, &impaired).await;
    // Visible while the call goes on (added up on each leg's 50 ms tick).
    metrics_until(&server, Duration::from_secs(5), |page| {
        metric(page, "callvault_media_srtp_auth_failures_total") == 1
            && metric(page, "callvault_media_srtp_replayed_total") == 1
    })
    .await;

    if rekey {
        call.rekey();
    }
    let reanswer = call.reinvite("sendonly").await;
    assert_eq!(reanswer.status, 200);
    let offered = call.srtp_keys();
    assert_eq!(
        answered_keys(&reanswer, suite, &offered),
        ours,
        "the server keeps its key while the suite stays"
    );
    keys.extend(offered);
    call.play(HALF, &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let secure = server.completed(&call.call_id);

    for label in ["1", "2"] {
        let plain = server.wav(leg(&clear, label));
        let srtp = server.wav(leg(&secure, label));
        assert_eq!(plain.rate, srtp.rate);
        let (plain, srtp) = (carried(&plain.samples), carried(&srtp.samples));
        // A stream is placed by its first packet's arrival, and the file ends at the BYE: on a
        // busy machine the end of the last packet can fall after it, in either call. So the
        // audio must match sample for sample as far as both go, and that is nearly all of it
        // (100 packets of 160 samples; the packet counts are compared below).
        let common = plain.len().min(srtp.len());
        assert!(
            common > 15_000 && plain.len().abs_diff(srtp.len()) < 1_000,
            "leg {label}: {} samples in clear, {} under SRTP",
            plain.len(),
            srtp.len()
        );
        let first_difference = plain[..common]
            .iter()
            .zip(&srtp[..common])
            .position(|(a, b)| a != b);
        assert_eq!(
            first_difference, None,
            "leg {label}: the SRTP recording is not the clear one"
        );
        assert_eq!(
            leg(&secure, label)["packets"],
            leg(&clear, label)["packets"]
        );
    }
    let counts = |label: &str| {
        let l = leg(&secure, label);
        (
            l["srtp_auth_failures"].as_u64(),
            l["srtp_replayed"].as_u64(),
        )
    };
    assert_eq!(counts("1"), (Some(1), Some(0)), "the tampered packet");
    assert_eq!(counts("2"), (Some(0), Some(1)), "the replayed packet");
    // The legs are closed: their totals are final.
    let (_, page) = server.http_get("/metrics");
    assert_eq!(metric(&page, "callvault_media_srtp_auth_failures_total"), 1);
    assert_eq!(metric(&page, "callvault_media_srtp_replayed_total"), 1);
    assert_eq!(
        metric(&page, "callvault_media_srtcp_auth_failures_total"),
        0
    );

    let log = server.log_so_far();
    assert!(
        log.iter()
            .any(|l| l.contains("SDES-SRTP leg") && l.contains(suite.name())),
        "the log names the suite of each SRTP leg"
    );
    if rekey {
        assert!(log.iter().any(|l| l.contains("SDES-SRTP re-key")));
    }
    assert_no_key_left(&server.data_dir, &log, &keys);
}

#[tokio::test]
async fn aes_cm_128_hmac_sha1_80_is_recorded_bit_exact_across_a_re_key() {
    srtp_is_recorded_bit_exact_against_the_clear_call(Suite::AesCm128HmacSha1_80, true).await;
}

#[tokio::test]
async fn aead_aes_128_gcm_is_recorded_bit_exact() {
    srtp_is_recorded_bit_exact_against_the_clear_call(Suite::AeadAes128Gcm, false).await;
}

/// An offer of one m-line with these attribute lines, in `protocol`.
fn offer(port: u16, protocol: &str, attributes: &[String]) -> String {
    let mut sdp = format!(
        "v=0\r\no=SBC 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} {protocol} 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    for attribute in attributes {
        sdp.push_str(&format!("a={attribute}\r\n"));
    }
    sdp.push_str("a=sendonly\r\n");
    sdp
}

#[tokio::test]
async fn srtp_offers_the_recorder_cannot_take_are_refused_488_with_the_reason() {
    let mut server = Server::start();
    let key = STANDARD.encode([7u8; 30]);

    // Only suites the recorder does not decrypt.
    let mut call = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(CALLER_HZ, CALLEE_HZ),
    )
    .await;
    let body = offer(
        call.rtp_ports()[0],
        "RTP/SAVP",
        &[
            format!("crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{key}"),
            format!("crypto:2 F8_128_HMAC_SHA1_80 inline:{key}"),
        ],
    );
    let refused = call
        .invite_raw("application/sdp", body.as_bytes(), "")
        .await;
    call.ack_failure(&refused).await;
    assert_eq!(
        (refused.status, refused.reason.as_str()),
        (488, "No Acceptable SRTP Crypto Suite")
    );
    let line = server.wait_for_log("SRTP offer declined", Duration::from_secs(5));
    assert!(
        line.contains("tag 1 AES_256_CM_HMAC_SHA1_80: suite not supported")
            && line.contains("tag 2 F8_128_HMAC_SHA1_80: suite not supported"),
        "the log says which lines and why: {line}"
    );

    // DTLS-SRTP, as WebRTC gateways offer it.
    let mut call = Call::new(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(CALLER_HZ, CALLEE_HZ),
    )
    .await;
    let body = offer(
        call.rtp_ports()[0],
        "UDP/TLS/RTP/SAVP",
        &[
            "fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF".to_owned(),
            "setup:actpass".to_owned(),
        ],
    );
    let refused = call
        .invite_raw("application/sdp", body.as_bytes(), "")
        .await;
    call.ack_failure(&refused).await;
    assert_eq!(
        (refused.status, refused.reason.as_str()),
        (488, "DTLS-SRTP Not Supported")
    );
    assert!(server.list().is_empty(), "nothing recorded for either");
}
