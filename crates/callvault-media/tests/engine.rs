//! The engine over real UDP on 127.0.0.1: two legs of a call, tones in, WAVs out.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use callvault_media::{Codec, Error, LegReport, LegSpec, LegUpdate, MediaConfig, MediaEngine};
use rtp::header::Header;
use rtp::packet::Packet;
use webrtc_util::marshal::Marshal;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const RATE: f64 = 8000.0;

fn engine(dir: &Path, port_min: u16, port_max: u16) -> MediaEngine {
    let config = MediaConfig::new(LOCALHOST, port_min, port_max, dir.to_path_buf());
    MediaEngine::start(config).unwrap()
}

/// G.711 μ-law encoder (the reference algorithm of Sun's g711.c), to build the test signal.
fn ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let value = i32::from(sample);
    let sign: u8 = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(CLIP) + BIAS;
    let mut exponent = 7;
    while exponent > 0 && magnitude & (0x80 << exponent) == 0 {
        exponent -= 1;
    }
    let mantissa = ((magnitude >> (exponent + 3)) & 0x0f) as u8;
    !(sign | (exponent as u8) << 4 | mantissa)
}

#[test]
fn test_encoder_is_g711() {
    // The encoder inverts the table the engine decodes with (known points of G.711).
    assert_eq!(ulaw(0), 0xff);
    assert_eq!(ulaw(-32124), 0x00);
    assert_eq!(ulaw(32124), 0x80);
    assert_eq!(ulaw(8), 0xfe);
}

/// 20 ms of a sine tone as a PCMU payload.
fn tone(frequency: f64, frame: u32) -> Vec<u8> {
    (0..160)
        .map(|i| {
            let t = f64::from(frame * 160 + i) / RATE;
            ulaw((8000.0 * (2.0 * std::f64::consts::PI * frequency * t).sin()) as i16)
        })
        .collect()
}

fn packet(sequence: u16, timestamp: u32, ssrc: u32, payload: Vec<u8>) -> Vec<u8> {
    Packet {
        header: Header {
            version: 2,
            payload_type: 0,
            sequence_number: sequence,
            timestamp,
            ssrc,
            ..Header::default()
        },
        payload: Bytes::from(payload),
    }
    .marshal()
    .unwrap()
    .to_vec()
}

/// Relative power of `frequency` in `samples` (Goertzel).
fn goertzel(samples: &[i16], frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / RATE).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for sample in samples {
        let s0 = f64::from(*sample) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let rate = reader.spec().sample_rate;
    (rate, reader.samples::<i16>().map(|s| s.unwrap()).collect())
}

fn spec(label: &str, path: &str, anchor: Instant) -> LegSpec {
    LegSpec {
        label: label.into(),
        path: PathBuf::from(path),
        payload_type: 0,
        codec: Codec::Pcmu,
        telephone_event_pt: Some(101),
        anchor,
        active: true,
    }
}

fn wait(report: tokio::sync::oneshot::Receiver<LegReport>) -> LegReport {
    report.blocking_recv().expect("the writer sends a report")
}

#[test]
fn two_tone_legs_with_loss_and_reordering_line_up() {
    let dir = tempfile::tempdir().unwrap();
    let media = engine(dir.path(), 43000, 43099);
    let caller_port = media.allocate().unwrap();
    let callee_port = media.allocate().unwrap();
    let (caller_rtp, callee_rtp) = (caller_port.port(), callee_port.port());
    assert_ne!(caller_rtp, callee_rtp);

    let anchor = Instant::now();
    let caller = media
        .start_leg(caller_port, spec("1", "recordings/call/1.wav", anchor))
        .unwrap();
    let callee = media
        .start_leg(callee_port, spec("2", "recordings/call/2.wav", anchor))
        .unwrap();
    assert_eq!(media.stats().active_legs, 2);

    let sender = std::thread::spawn(move || {
        let socket = UdpSocket::bind((LOCALHOST, 0)).unwrap();
        let mut held: Option<Vec<u8>> = None;
        for frame in 0..100u32 {
            // Real-time pacing is the traffic shape under test, not a synchronisation.
            let due = anchor + Duration::from_millis(u64::from(frame) * 20);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let sequence = 1000 + frame as u16;
            let a = packet(sequence, 5000 + frame * 160, 0xaaaa, tone(440.0, frame));
            socket.send_to(&a, (LOCALHOST, caller_rtp)).unwrap();

            let b = packet(sequence, 90_000 + frame * 160, 0xbbbb, tone(1000.0, frame));
            if frame % 20 == 7 {
                continue; // 5% loss
            }
            if frame == 30 || frame == 60 {
                held = Some(b); // sent after the next one: reordered
                continue;
            }
            socket.send_to(&b, (LOCALHOST, callee_rtp)).unwrap();
            if frame == 50 {
                socket.send_to(&b, (LOCALHOST, callee_rtp)).unwrap(); // duplicate
            }
            if let Some(late) = held.take() {
                socket.send_to(&late, (LOCALHOST, callee_rtp)).unwrap();
            }
            // RTCP on the RTCP port and multiplexed: absorbed, counted.
            if frame == 10 {
                let rtcp = [0x80, 201, 0, 1, 0, 0, 0xbb, 0xbb];
                socket.send_to(&rtcp, (LOCALHOST, callee_rtp + 1)).unwrap();
                socket.send_to(&rtcp, (LOCALHOST, callee_rtp)).unwrap();
            }
        }
    });

    // Mid-recording, the file is a valid WAV with audio in it (the writer flushes the header
    // every second). Poll for that condition with a deadline.
    let caller_path = dir.path().join("recordings/call/1.wav");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mid_length = loop {
        if let Ok(mut reader) = hound::WavReader::open(&caller_path) {
            let length = reader.len();
            if length > 0 {
                let readable = reader.samples::<i16>().filter(Result::is_ok).count();
                assert_eq!(
                    readable, length as usize,
                    "header length matches the data on disk"
                );
                break length;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no flushed audio in the WAV mid-recording"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(mid_length < 16000, "the leg is still recording");
    sender.join().unwrap();

    let end = anchor + Duration::from_secs(2);
    let caller_report = wait(media.stop_leg(caller, end));
    let callee_report = wait(media.stop_leg(callee, end));

    for (report, frequency, other) in [
        (&caller_report, 440.0, 1000.0),
        (&callee_report, 1000.0, 440.0),
    ] {
        assert!(report.error.is_none(), "{report:?}");
        let (rate, samples) = read_wav(&report.path);
        assert_eq!(rate, 8000);
        let duration = samples.len() as f64 / RATE;
        assert!(
            (duration - 2.0).abs() <= 0.06,
            "{} lasts {duration} s",
            report.label
        );
        assert_eq!(report.samples, samples.len() as u64);
        let middle = &samples[2400..13600];
        let (wanted, unwanted) = (goertzel(middle, frequency), goertzel(middle, other));
        assert!(
            wanted > 100.0 * unwanted,
            "{}: {wanted} vs {unwanted}",
            report.label
        );
        let digest = sha256_hex(&report.path);
        assert_eq!(report.sha256.as_deref(), Some(digest.as_str()));
    }

    assert_eq!(caller_report.packets, 100);
    assert_eq!((caller_report.lost, caller_report.out_of_order), (0, 0));
    assert_eq!(callee_report.packets, 96, "100 - 5 lost + 1 duplicate");
    assert_eq!(callee_report.lost, 5);
    assert_eq!(callee_report.duplicates, 1);
    assert_eq!(callee_report.out_of_order, 2);
    assert_eq!(callee_report.late, 0);
    assert_eq!(callee_report.rtcp, 2);

    // The lost packets are silent holes exactly where their timestamps put them, relative to the
    // first packet (placed on arrival, a few milliseconds after the answer at most); reordered
    // packets filled their place. Zero runs shorter than 100 samples are the tone's own zero
    // crossings.
    let (_, callee_samples) = read_wav(&callee_report.path);
    // The tone starts at a zero crossing, so the lead may count a sample or two too many.
    let lead = callee_samples.iter().take_while(|s| **s == 0).count();
    assert!(
        lead < 400,
        "first packet placed {lead} samples after the answer"
    );
    let holes: Vec<(usize, usize)> = zero_runs(&callee_samples, 100)
        .into_iter()
        .filter(|(start, _)| *start > 0)
        .collect();
    assert_eq!(holes.len(), 5, "{holes:?}");
    for ((start, len), frame) in holes.iter().zip([7, 27, 47, 67, 87]) {
        assert!(
            start.abs_diff(lead + frame * 160) <= 2,
            "{holes:?} lead {lead}"
        );
        assert!(len.abs_diff(160) <= 4, "{holes:?}");
    }

    let stats = media.stats();
    assert_eq!(stats.active_legs, 0);
    assert_eq!(stats.blocks_dropped, 0);
    assert_eq!(stats.ports_in_use, 0, "ports released on stop");
    media.shutdown();
}

#[test]
fn silent_and_held_legs_still_last_until_stop() {
    let dir = tempfile::tempdir().unwrap();
    let media = engine(dir.path(), 43100, 43109);
    let anchor = Instant::now();
    let mut inactive = spec("3", "held.wav", anchor);
    inactive.active = false;
    let leg = media
        .start_leg(media.allocate().unwrap(), inactive)
        .unwrap();
    media
        .update_leg(
            &leg,
            LegUpdate {
                payload_type: 8,
                codec: Codec::Pcma,
                telephone_event_pt: None,
                active: false,
            },
        )
        .unwrap();
    // No packets at all: the file is silence, exactly end - anchor long, even though `end` is
    // in the future (the leg commits up to it at stop).
    let end = anchor + Duration::from_millis(1500);
    let report = wait(media.stop_leg(leg, end));
    let (_, samples) = read_wav(&report.path);
    assert_eq!(samples.len(), 12000);
    assert!(samples.iter().all(|s| *s == 0));
    assert_eq!(report.packets, 0);
    media.shutdown();
}

#[test]
fn exhausted_pool_refuses_then_reuses_released_ports() {
    let dir = tempfile::tempdir().unwrap();
    let media = engine(dir.path(), 43120, 43123);
    let first = media.allocate().unwrap();
    let second = media.allocate().unwrap();
    assert!(matches!(media.allocate(), Err(Error::NoFreePorts)));
    assert_eq!(media.stats().ports_free, 0);
    let port = first.port();
    drop(first);
    let again = media.allocate().unwrap();
    assert_eq!(again.port(), port);

    // A stopped leg gives its ports back too.
    let leg = media
        .start_leg(second, spec("4", "x/4.wav", Instant::now()))
        .unwrap();
    let leg_port = leg.port();
    wait(media.stop_leg(leg, Instant::now()));
    let reused = media.allocate().unwrap();
    assert_eq!(reused.port(), leg_port);
    media.shutdown();
}

#[test]
fn codec_rate_change_and_bad_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let media = engine(dir.path(), 43130, 43139);
    let escape = spec("5", "../escape.wav", Instant::now());
    assert!(matches!(
        media.start_leg(media.allocate().unwrap(), escape),
        Err(Error::InvalidPath { .. })
    ));
    assert_eq!(media.stats().ports_in_use, 0);
    media.shutdown();
}

#[test]
fn shutdown_finalises_legs_that_were_never_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let media = engine(dir.path(), 43140, 43149);
    let reservation = media.allocate().unwrap();
    let port = reservation.port();
    let _leg = media
        .start_leg(reservation, spec("6", "left/6.wav", Instant::now()))
        .unwrap();
    let socket = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    socket
        .send_to(&packet(1, 0, 7, tone(440.0, 0)), (LOCALHOST, port))
        .unwrap();
    media.shutdown();
    let reader = hound::WavReader::open(dir.path().join("left/6.wav")).unwrap();
    assert_eq!(reader.spec().sample_rate, 8000);
}

/// (start, length) of every run of zeros at least `min` long.
fn zero_runs(samples: &[i16], min: usize) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, sample) in samples.iter().chain(std::iter::once(&1)).enumerate() {
        match (*sample == 0, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s >= min {
                    runs.push((s, i - s));
                }
                start = None;
            }
            _ => {}
        }
    }
    runs
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}
