//! Micro-benchmarks of the steps a call costs (`cargo bench -p callvault-bench`): per packet
//! the RTP header read and each decoder; per call the SIP parse, the SIPREC body parse and the
//! SDP answer. They tell which step moved when the load figures do (BENCHMARKS.md).

use std::hint::black_box;
use std::net::IpAddr;

use callvault_client::rtp::RtpStream;
use callvault_client::sip;
use callvault_codec::{CodecKind, Decoder, Encoder};
use callvault_siprec::{AnswerParams, Limits, MediaAnswer, build_answer, choose_codec, parse_body};
use criterion::{Criterion, criterion_group, criterion_main};

/// The INVITE `callvault-loadgen` sends (two PCMU streams, RFC 7865 metadata).
fn invite() -> Vec<u8> {
    let local: std::net::SocketAddr = "127.0.0.1:5099".parse().expect("an address");
    let streams: Vec<sip::Stream> = ["caller", "callee"]
        .iter()
        .enumerate()
        .map(|(i, who)| sip::Stream {
            label: (i + 1).to_string(),
            participant: (*who).into(),
            aor: format!("sip:{who}@bench.invalid"),
            name: (*who).into(),
            port: 30_000 + 2 * i as u16,
        })
        .collect();
    let dialog = sip::Dialog {
        call_id: "0123456789abcdef@bench".into(),
        from_tag: "0123456789".into(),
        to_tag: None,
        request_uri: "sip:callvault@127.0.0.1:5060".into(),
        local,
        transport: "udp",
    };
    dialog.invite(
        "z9hG4bKbench",
        &sip::offer(local.ip(), &streams),
        &sip::metadata(
            "session0123456789abcd",
            &dialog.call_id,
            "2026-12-03T00:00:00Z",
            &streams,
        ),
    )
}

fn body_of(message: &[u8]) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the INVITE has a head");
    &message[end + 4..]
}

const CONTENT_TYPE: &str = "multipart/mixed;boundary=callvault-test-call";

fn per_packet(c: &mut Criterion) {
    let mut stream = RtpStream::new(0x1234_5678, 1_000.0);
    let packet = stream.audio().to_vec();
    c.bench_function("rtp_header_read", |b| {
        b.iter(|| callvault_media::rtp::RtpHeader::parse(black_box(&packet)))
    });

    let pcm: Vec<i16> = (0..960)
        .map(|n| (8_000.0 * (f64::from(n) * 0.13).sin()) as i16)
        .collect();
    let kinds = [
        ("pcmu", CodecKind::Pcmu, 160),
        ("pcma", CodecKind::Pcma, 160),
        ("g722", CodecKind::G722, 320),
        (
            "l16",
            CodecKind::L16 {
                channels: 1,
                clock_rate: 8_000,
            },
            160,
        ),
        ("opus", CodecKind::Opus, 960),
        ("g729", CodecKind::G729, 160),
    ];
    for (name, kind, samples) in kinds {
        // A codec this build cannot encode (or decode) is left out, not failed.
        let (Ok(mut encoder), Ok(mut decoder)) = (Encoder::new(kind), Decoder::new(kind)) else {
            continue;
        };
        let mut payload = Vec::new();
        if encoder.encode(&pcm[..samples], &mut payload).is_err() {
            continue;
        }
        let mut out = vec![0i16; kind.max_decoded_samples(payload.len()).max(samples)];
        c.bench_function(&format!("decode_20ms_{name}"), |b| {
            b.iter(|| decoder.decode(black_box(&payload), &mut out))
        });
    }
}

fn per_call(c: &mut Criterion) {
    let invite = invite();
    c.bench_function("sip_parse_invite", |b| {
        b.iter(|| callvault_sip::Message::parse(black_box(&invite)))
    });
    let body = body_of(&invite);
    c.bench_function("siprec_body_parse", |b| {
        b.iter(|| parse_body(Some(CONTENT_TYPE), black_box(body), &Limits::default()))
    });
    let offer = parse_body(Some(CONTENT_TYPE), body, &Limits::default())
        .expect("the load generator's body parses")
        .sdp
        .expect("it has an SDP");
    let answers: Vec<MediaAnswer> = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, media)| MediaAnswer::Accept {
            port: 40_000 + 2 * i as u16,
            codec: choose_codec(media, &["PCMU"])
                .expect("PCMU is offered")
                .clone(),
            telephone_event: None,
            crypto: None,
        })
        .collect();
    let params = AnswerParams {
        address: IpAddr::from([127, 0, 0, 1]),
        session_id: 1,
        session_version: 1,
        user_agent: "callvault".into(),
    };
    c.bench_function("sdp_answer", |b| {
        b.iter(|| build_answer(black_box(&offer), &answers, &params))
    });
}

criterion_group!(benches, per_packet, per_call);
criterion_main!(benches);
