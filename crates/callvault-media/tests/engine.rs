//! The engine over real UDP on 127.0.0.1: two legs of a call, tones in, WAVs out.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::collections::VecDeque;
use std::ops::Deref;

use callvault_media::{
    AllowedSources, Codec, Error, LegHandle, LegId, LegReport, LegSpec, LegUpdate, MediaConfig,
    MediaEngine, MediaEvent,
};
use rtp::header::Header;
use rtp::packet::Packet;
use webrtc_util::marshal::Marshal;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const RATE: f64 = 8000.0;

/// The engine and its event channel: what a control plane holds.
struct Media {
    engine: MediaEngine,
    events: tokio::sync::mpsc::UnboundedReceiver<MediaEvent>,
    /// Events received while waiting for another one, in order.
    seen: VecDeque<MediaEvent>,
    runtime: tokio::runtime::Runtime,
}

impl Deref for Media {
    type Target = MediaEngine;

    fn deref(&self) -> &MediaEngine {
        &self.engine
    }
}

/// How long a test waits for an event that must come.
const PATIENCE: Duration = Duration::from_secs(10);

impl Media {
    /// The next event (those set aside first), or `None` once `deadline` passes: waits on the
    /// channel, not on a sleep.
    fn next_event(&mut self, deadline: Instant) -> Option<MediaEvent> {
        if let Some(event) = self.seen.pop_front() {
            return Some(event);
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let events = &mut self.events;
        self.runtime
            .block_on(async { tokio::time::timeout(wait, events.recv()).await })
            .ok()
            .flatten()
    }

    /// Waits for the leg's `LegClosed`; other events are set aside for `next_event`.
    fn closed(&mut self, leg: LegId) -> LegReport {
        let deadline = Instant::now() + PATIENCE;
        let mut aside = Vec::new();
        let report = loop {
            match self.next_event(deadline) {
                Some(MediaEvent::LegClosed { leg: id, report }) if id == leg => break *report,
                Some(other) => aside.push(other),
                None => panic!("no LegClosed for {leg}; other events: {aside:?}"),
            }
        };
        self.seen.extend(aside);
        report
    }

    fn stop(&mut self, leg: LegHandle, end: Instant) -> LegReport {
        let id = leg.id();
        self.engine.stop_leg(leg, end);
        self.closed(id)
    }

    /// Shuts the engine down and returns every event not taken yet.
    fn shutdown(self) -> Vec<MediaEvent> {
        let Media {
            engine,
            mut events,
            seen,
            ..
        } = self;
        engine.shutdown();
        seen.into_iter()
            .chain(std::iter::from_fn(|| events.try_recv().ok()))
            .collect()
    }
}

fn engine(dir: &Path, port_min: u16, port_max: u16) -> Media {
    engine_with(MediaConfig::new(
        LOCALHOST,
        port_min,
        port_max,
        dir.to_path_buf(),
    ))
}

fn engine_with(config: MediaConfig) -> Media {
    let engine = MediaEngine::start(config).unwrap();
    let events = engine.events().expect("the first call takes the receiver");
    assert!(engine.events().is_none(), "taken once");
    Media {
        engine,
        events,
        seen: VecDeque::new(),
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap(),
    }
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
    packet_of_type(0, sequence, timestamp, ssrc, payload)
}

fn packet_of_type(
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: Vec<u8>,
) -> Vec<u8> {
    Packet {
        header: Header {
            version: 2,
            payload_type,
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

/// The SDP of the tests' SBC says 127.0.0.1, where every test sender binds.
const FROM_LOCALHOST: AllowedSources = AllowedSources {
    connection: Some(LOCALHOST),
    port: 30000,
    signalling: None,
};

fn spec(label: &str, path: &str, anchor: Instant) -> LegSpec {
    LegSpec {
        telephone_event_pt: Some(101),
        sources: FROM_LOCALHOST,
        ..LegSpec::new(label, PathBuf::from(path), 0, Codec::Pcmu, anchor)
    }
}

#[test]
fn two_tone_legs_with_loss_and_reordering_line_up() {
    let dir = tempfile::tempdir().unwrap();
    // Raw evidence: lost packets stay silent, so the holes show where the timeline put them.
    let mut config = MediaConfig::new(LOCALHOST, 43000, 43099, dir.path().to_path_buf());
    config.conceal_loss = false;
    let mut media = engine_with(config);
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

    // Mid-recording, the file is a valid WAV with audio in it (the writer rewrites the header
    // soon after each block). Poll for that condition with a deadline.
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
    let caller_report = media.stop(caller, end);
    let callee_report = media.stop(callee, end);

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

    let (caller_counts, callee_counts) = (&caller_report.counters, &callee_report.counters);
    assert_eq!(caller_counts.packets, 100);
    assert_eq!((caller_counts.lost, caller_counts.out_of_order), (0, 0));
    assert_eq!(callee_counts.packets, 96, "100 - 5 lost + 1 duplicate");
    assert_eq!(callee_counts.lost, 5);
    assert_eq!(callee_counts.duplicates, 1);
    assert_eq!(callee_counts.out_of_order, 2);
    assert_eq!(callee_counts.late, 0);
    assert_eq!(callee_counts.rtcp_packets, 2);
    assert_eq!(callee_counts.concealed_ms, 0, "concealment off");

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
    let mut media = engine(dir.path(), 43100, 43109);
    let anchor = Instant::now();
    let mut inactive = spec("3", "held.wav", anchor);
    inactive.active = false;
    let leg = media
        .start_leg(media.allocate().unwrap(), inactive)
        .unwrap();
    media
        .update_leg(&leg, LegUpdate::new(8, Codec::Pcma, false))
        .unwrap();
    // No packets at all: the file is silence, exactly end - anchor long, even though `end` is
    // in the future (the leg commits up to it at stop).
    let end = anchor + Duration::from_millis(1500);
    let report = media.stop(leg, end);
    let (_, samples) = read_wav(&report.path);
    assert_eq!(samples.len(), 12000);
    assert!(samples.iter().all(|s| *s == 0));
    assert_eq!(report.counters.packets, 0);
    media.shutdown();
}

#[test]
fn exhausted_pool_refuses_then_reuses_released_ports() {
    let dir = tempfile::tempdir().unwrap();
    let mut media = engine(dir.path(), 43120, 43123);
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
    media.stop(leg, Instant::now());
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
    let events = media.shutdown();
    let reader = hound::WavReader::open(dir.path().join("left/6.wav")).unwrap();
    assert_eq!(reader.spec().sample_rate, 8000);
    assert!(
        matches!(&events[..], [MediaEvent::LegClosed { report, .. }] if report.error.is_none()),
        "{events:?}"
    );
}

/// An RFC 4733 payload: event, end bit and volume 10, duration.
fn telephone_event(event: u8, end: bool, duration: u16) -> Vec<u8> {
    let [high, low] = duration.to_be_bytes();
    vec![event, if end { 0x8a } else { 0x0a }, high, low]
}

#[test]
fn rfc4733_digits_become_events_at_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut media = engine(dir.path(), 43150, 43159);
    let reservation = media.allocate().unwrap();
    let port = reservation.port();
    let anchor = Instant::now();
    let leg = media
        .start_leg(reservation, spec("7", "dtmf/7.wav", anchor))
        .unwrap();
    let id = leg.id();

    // Audio every 20 ms for 1 s; key '1' from frame 10 (200 ms) for 100 ms, '#' from frame 30
    // (600 ms) for 160 ms, each as updates every 20 ms and three end packets, on the audio's
    // SSRC, timestamps and sequence numbers, as a gateway sends them.
    let presses = [(10u32, 1u8, 5u16), (30, 11, 8)];
    let sender = std::thread::spawn(move || {
        let socket = UdpSocket::bind((LOCALHOST, 0)).unwrap();
        let mut sequence = 0u16;
        let mut send = |payload_type: u8, timestamp: u32, payload: Vec<u8>| {
            sequence += 1;
            let datagram = packet_of_type(payload_type, sequence, timestamp, 0xcafe, payload);
            socket.send_to(&datagram, (LOCALHOST, port)).unwrap();
        };
        let mut first_sent = anchor;
        for frame in 0..50u32 {
            // Real-time pacing is the traffic shape under test, not a synchronisation.
            let due = anchor + Duration::from_millis(u64::from(frame) * 20);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if frame == 0 {
                first_sent = Instant::now();
            }
            send(0, 5000 + frame * 160, tone(440.0, frame));
            for (first, event, updates) in presses {
                let start = 5000 + first * 160;
                let step = frame.wrapping_sub(first);
                if step < u32::from(updates) - 1 {
                    send(
                        101,
                        start,
                        telephone_event(event, false, (step as u16 + 1) * 160),
                    );
                } else if step == u32::from(updates) - 1 {
                    for _ in 0..3 {
                        send(101, start, telephone_event(event, true, updates * 160));
                    }
                }
            }
        }
        // The first audio packet is placed where it arrived: a late start of this thread moves
        // the whole stream, and the digits with it.
        first_sent.duration_since(anchor).as_millis() as u64
    });

    let deadline = Instant::now() + Duration::from_secs(5);
    let first = media.next_event(deadline).expect("the first digit");
    let second = media.next_event(deadline).expect("the second digit");
    let lead = sender.join().unwrap();
    let report = media.stop(leg, anchor + Duration::from_millis(1000));
    // The report comes after every event the leg sent: nothing more may be waiting.
    assert!(
        media.seen.is_empty(),
        "one event per key press: {:?}",
        media.seen
    );

    for (event, (digit, offset, duration)) in [first, second]
        .iter()
        .zip([('1', 200, 100), ('#', 600, 160)])
    {
        let MediaEvent::Dtmf {
            leg,
            digit: got,
            offset_ms,
            duration_ms,
        } = event
        else {
            panic!("not a digit: {event:?}");
        };
        assert_eq!(
            (*leg, *got, *duration_ms),
            (id, digit, duration),
            "{event:?}"
        );
        assert!(
            offset_ms.abs_diff(lead + offset) <= 20,
            "{event:?}, lead {lead} ms"
        );
    }
    let counts = &report.counters;
    assert_eq!(counts.dtmf_digits, 2);
    assert_eq!(counts.telephone_events, 4 + 3 + 7 + 3);
    assert_eq!(
        (counts.lost, counts.ssrcs_seen, counts.codec_changes),
        (0, 1, 0)
    );
    assert!(
        counts
            .jitter_ms
            .is_some_and(|jitter| jitter.is_finite() && jitter >= 0.0)
    );
    media.shutdown();
}

#[test]
fn silent_active_leg_raises_inactive_and_held_leg_never_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut media = engine(dir.path(), 43160, 43169);
    let anchor = Instant::now();
    let timeout = Duration::from_millis(300);

    let mut held = spec("8", "quiet/8.wav", anchor);
    held.active = false;
    held.inactivity_timeout = Some(timeout);
    let held = media.start_leg(media.allocate().unwrap(), held).unwrap();
    let mut active = spec("9", "quiet/9.wav", anchor);
    active.inactivity_timeout = Some(timeout);
    let reservation = media.allocate().unwrap();
    let port = reservation.port();
    let active = media.start_leg(reservation, active).unwrap();

    // 200 ms of audio, then nothing: the active leg's silence starts after the held leg's
    // would have, so a wrong alarm from the held leg would come first.
    let socket = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let mut last_sent = Instant::now();
    for frame in 0..10u32 {
        let due = anchor + Duration::from_millis(u64::from(frame) * 20);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let datagram = packet(frame as u16, frame * 160, 0xdd, tone(440.0, frame));
        socket.send_to(&datagram, (LOCALHOST, port)).unwrap();
        last_sent = Instant::now();
    }

    let event = media
        .next_event(Instant::now() + Duration::from_secs(5))
        .expect("the active leg goes inactive");
    let MediaEvent::Inactive { leg, silent_for } = event else {
        panic!("not an inactivity: {event:?}");
    };
    assert_eq!(leg, active.id());
    assert!(silent_for >= timeout, "{silent_for:?}");
    assert!(last_sent.elapsed() >= timeout);

    let end = Instant::now();
    media.stop(held, end);
    media.stop(active, end);
    assert!(
        media.seen.is_empty(),
        "sent once, and never for the held leg: {:?}",
        media.seen
    );
    media.shutdown();
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

#[test]
fn a_leg_on_an_existing_path_fails_and_leaves_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut media = engine(dir.path(), 43170, 43179);
    let path = dir.path().join("calls/1.wav");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let earlier = b"RIFF an earlier leg's recording, not to be touched".to_vec();
    std::fs::write(&path, &earlier).unwrap();

    let reservation = media.allocate().unwrap();
    let port = reservation.port();
    let anchor = Instant::now();
    let leg = media
        .start_leg(reservation, spec("1", "calls/1.wav", anchor))
        .unwrap();
    let id = leg.id();
    let event = media.next_event(Instant::now() + PATIENCE);
    assert!(
        matches!(&event, Some(MediaEvent::LegFailed { leg, error }) if *leg == id && error.contains("already exists")),
        "{event:?}"
    );
    // The leg runs on: its audio goes nowhere.
    let socket = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    for frame in 0..5u32 {
        let datagram = packet(frame as u16, frame * 160, 1, tone(440.0, frame));
        socket.send_to(&datagram, (LOCALHOST, port)).unwrap();
    }
    let report = media.stop(leg, anchor + Duration::from_secs(1));
    assert!(report.error.unwrap().contains("already exists"));
    assert_eq!((report.samples, report.sha256), (0, None));
    assert_eq!(std::fs::read(&path).unwrap(), earlier, "byte for byte");
    assert_eq!(media.stats().write_errors, 1);
    let rest = media.shutdown();
    assert!(rest.is_empty(), "LegFailed once, LegClosed once: {rest:?}");
}

#[test]
fn every_started_leg_is_closed_exactly_once_however_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let media = engine(dir.path(), 43180, 43189);
    std::fs::write(dir.path().join("taken.wav"), b"x").unwrap();
    let anchor = Instant::now();
    let start = |label: &str, path: &str| {
        let reservation = media.allocate().unwrap();
        media
            .start_leg(reservation, spec(label, path, anchor))
            .unwrap()
    };
    let stopped = start("stopped", "stopped.wav");
    let dropped = start("dropped", "dropped.wav");
    let failed = start("failed", "taken.wav");
    let running = start("running", "running.wav");
    let ids = [stopped.id(), dropped.id(), failed.id(), running.id()];

    media.stop_leg(stopped, Instant::now());
    drop(dropped);
    media.stop_leg(failed, Instant::now());
    // `running` ends with the engine.
    let events = media.shutdown();
    drop(running);

    for id in ids {
        let closed: Vec<&LegReport> = events
            .iter()
            .filter_map(|event| match event {
                MediaEvent::LegClosed { leg, report } if *leg == id => Some(&**report),
                _ => None,
            })
            .collect();
        assert_eq!(closed.len(), 1, "{id}: {events:?}");
        let report = closed[0];
        if id == ids[2] {
            assert!(report.error.is_some());
        } else {
            assert!(report.error.is_none(), "{report:?}");
            assert!(report.sha256.is_some());
            hound::WavReader::open(&report.path).unwrap();
        }
    }
    let failures: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, event)| matches!(event, MediaEvent::LegFailed { .. }))
        .map(|(at, _)| at)
        .collect();
    let closed_at = events
        .iter()
        .position(|event| matches!(event, MediaEvent::LegClosed { leg, .. } if *leg == ids[2]))
        .unwrap();
    assert_eq!(failures.len(), 1, "{events:?}");
    assert!(
        failures[0] < closed_at,
        "LegFailed comes before its LegClosed"
    );
    assert_eq!(events.len(), 5, "{events:?}");
}

/// An L16/48000/2 packet: frames `first..first + count`, each frame's value on both channels.
fn l16_stereo(sequence: u16, first: u32, count: u32) -> Vec<u8> {
    let payload = (first..first + count)
        .flat_map(|frame| {
            let value = frame_value(frame).to_be_bytes();
            [value, value].concat()
        })
        .collect();
    packet_of_type(96, sequence, first, 0x1616, payload)
}

/// A value per frame that is never 0 (silence) and says where it came from.
fn frame_value(frame: u32) -> i16 {
    (frame % 30_000 + 1) as i16
}

/// Large L16 datagrams (3,852 bytes at 20 ms, 11,532 at 60 ms) are received whole: every
/// sample sent is in the file, in order.
#[test]
fn l16_stereo_48khz_packets_are_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut media = engine(dir.path(), 43190, 43199);
    let codec = Codec::L16 {
        channels: 2,
        clock_rate: 48000,
    };
    for (ptime, packets) in [(20u32, 50u32), (60, 17)] {
        let reservation = media.allocate().unwrap();
        let port = reservation.port();
        let anchor = Instant::now();
        let path = format!("l16/{ptime}.wav");
        let leg = media
            .start_leg(
                reservation,
                LegSpec {
                    sources: FROM_LOCALHOST,
                    ..LegSpec::new("l16", path, 96, codec, anchor)
                },
            )
            .unwrap();
        let frames = 48 * ptime;
        let socket = UdpSocket::bind((LOCALHOST, 0)).unwrap();
        for i in 0..packets {
            // Real-time pacing is the traffic shape under test, not a synchronisation.
            let due = anchor + Duration::from_millis(u64::from(i * ptime));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let datagram = l16_stereo(i as u16, i * frames, frames);
            assert_eq!(datagram.len(), 12 + 4 * frames as usize);
            socket.send_to(&datagram, (LOCALHOST, port)).unwrap();
        }
        let report = media.stop(leg, Instant::now() + Duration::from_millis(200));
        let counts = &report.counters;
        assert_eq!(counts.packets, u64::from(packets));
        assert_eq!(
            (counts.malformed, counts.decode_errors, counts.truncated),
            (0, 0, 0)
        );
        let (rate, samples) = read_wav(&report.path);
        assert_eq!(rate, 48000);
        let lead = samples.iter().take_while(|s| **s == 0).count();
        let sent = (packets * frames) as usize;
        let expected: Vec<i16> = (0..packets * frames).map(frame_value).collect();
        assert!(
            samples.len() >= lead + sent,
            "{ptime} ms: {} samples",
            samples.len()
        );
        let first_wrong = samples[lead..lead + sent]
            .iter()
            .zip(&expected)
            .position(|(got, sent)| got != sent);
        assert_eq!(first_wrong, None, "{ptime} ms: every sample, in order");
        assert!(samples[lead + sent..].iter().all(|s| *s == 0));
    }
    media.shutdown();
}

/// A small tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// `None` where mounting is impossible (not root, no `mount`): the caller skips.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            _ => None,
        }
    }

    /// Fills the file system, then frees `free` bytes.
    fn fill_leaving(&self, free: u64) {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut filler = std::fs::File::create(&path).unwrap();
        let chunk = [0xa5u8; 4096];
        while filler.write_all(&chunk).is_ok() {}
        let len = filler.metadata().unwrap().len();
        filler.set_len(len.saturating_sub(free)).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// The disk of one leg fills during the call: that leg hears `LegFailed` at once while it still
/// runs, its file ends at its last whole sample with a header that says so, and a leg on
/// another disk keeps recording.
#[test]
fn a_full_disk_fails_its_leg_at_the_last_whole_sample_while_others_record() {
    let dir = tempfile::tempdir().unwrap();
    let Some(small) = Tmpfs::mount(&dir.path().join("small"), "256k") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the full-disk test did not run"
        );
        return;
    };
    // About 2 s of PCMU (16 KB/s once decoded) fit in what is left.
    small.fill_leaving(32 * 1024);
    let mut media = engine(dir.path(), 43200, 43209);
    let anchor = Instant::now();
    let full_reservation = media.allocate().unwrap();
    let other_reservation = media.allocate().unwrap();
    let ports = [full_reservation.port(), other_reservation.port()];
    let full = media
        .start_leg(full_reservation, spec("full", "small/full.wav", anchor))
        .unwrap();
    let other = media
        .start_leg(other_reservation, spec("other", "big/other.wav", anchor))
        .unwrap();

    let sending = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sender = {
        let sending = std::sync::Arc::clone(&sending);
        std::thread::spawn(move || {
            let socket = UdpSocket::bind((LOCALHOST, 0)).unwrap();
            let mut frame = 0u32;
            while sending.load(std::sync::atomic::Ordering::Relaxed) && frame < 1000 {
                // Real-time pacing is the traffic shape under test, not a synchronisation.
                let due = anchor + Duration::from_millis(u64::from(frame) * 20);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                for port in ports {
                    let datagram =
                        packet(frame as u16, frame * 160, port.into(), tone(440.0, frame));
                    socket.send_to(&datagram, (LOCALHOST, port)).unwrap();
                }
                frame += 1;
            }
        })
    };

    let failed = media.next_event(Instant::now() + PATIENCE);
    let failed_at = Instant::now();
    let Some(MediaEvent::LegFailed { leg, error }) = failed else {
        panic!("the full disk is reported while the leg runs: {failed:?}");
    };
    assert_eq!(leg, full.id());
    assert!(error.contains("No space left"), "{error}");

    // Half a second more of both streams, then the end of the call.
    std::thread::sleep(Duration::from_millis(500));
    let end = Instant::now();
    let full_report = media.stop(full, end);
    let other_report = media.stop(other, end);
    sending.store(false, std::sync::atomic::Ordering::Relaxed);
    sender.join().unwrap();

    assert_eq!(full_report.error.as_deref(), Some(error.as_str()));
    assert!(full_report.counters.blocks_discarded > 0, "{full_report:?}");
    let bytes = std::fs::read(&full_report.path).unwrap();
    assert_eq!(
        bytes.len() as u64,
        80 + 2 * full_report.samples,
        "cut at a whole sample"
    );
    assert_eq!(
        u32::from_le_bytes(bytes[76..80].try_into().unwrap()) as u64,
        2 * full_report.samples,
        "the header counts every sample on disk"
    );
    let (_, samples) = read_wav(&full_report.path);
    assert_eq!(samples.len() as u64, full_report.samples);
    let recorded = failed_at.duration_since(anchor).as_secs_f64() * RATE;
    assert!(
        samples.len() as f64 > recorded - 8000.0,
        "the audio up to the failure is kept: {} of ~{recorded}",
        samples.len()
    );
    assert!(goertzel(&samples[samples.len() - 4000..], 440.0) > 0.0);
    assert_eq!(full_report.sha256, Some(sha256_hex(&full_report.path)));

    assert!(other_report.error.is_none(), "{other_report:?}");
    let (_, other_samples) = read_wav(&other_report.path);
    let expected = (end.duration_since(anchor).as_secs_f64() * RATE) as usize;
    assert!(
        other_samples.len().abs_diff(expected) <= 8,
        "the other leg recorded the whole call"
    );
    media.shutdown();
    drop(small);
}

#[test]
fn srtp_forgeries_and_replays_are_dropped_and_added_to_the_engine_totals() {
    use callvault_media::{SrtpKeying, SrtpSuite};
    use webrtc_srtp::context::Context;
    use webrtc_srtp::protection_profile::ProtectionProfile;

    let dir = tempfile::tempdir().unwrap();
    let mut media = engine(dir.path(), 43210, 43219);
    let keying = SrtpKeying::new(SrtpSuite::AeadAes128Gcm, &[9; 28]).unwrap();
    let context = |bytes: &[u8]| {
        Context::new(
            &bytes[..16],
            &bytes[16..],
            ProtectionProfile::AeadAes128Gcm,
            None,
            None,
        )
        .unwrap()
    };
    let mut sender = context(keying.key_and_salt());
    let mut forger = context(&[8; 28]);
    let anchor = Instant::now();
    let mut leg_spec = spec("srtp", "srtp.wav", anchor);
    leg_spec.srtp = Some(keying);
    let leg = media
        .start_leg(media.allocate().unwrap(), leg_spec)
        .unwrap();
    let to = (LOCALHOST, leg.port());
    let socket = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    for n in 0..12u16 {
        let plain = packet(n, u32::from(n) * 160, 5, tone(440.0, u32::from(n)));
        let protected = sender.encrypt_rtp(&plain).unwrap();
        if n == 11 {
            // A payload byte flipped in transit, then the genuine packet.
            let mut tampered = protected.to_vec();
            tampered[20] ^= 0x01;
            socket.send_to(&tampered, to).unwrap();
        }
        socket.send_to(&protected, to).unwrap();
        if n == 3 {
            socket.send_to(&protected, to).unwrap();
        }
    }
    // Another key's packet, and an SRTCP report nobody keyed (multiplexed on the RTP port).
    let forged = forger
        .encrypt_rtp(&packet(12, 12 * 160, 5, tone(440.0, 12)))
        .unwrap();
    socket.send_to(&forged, to).unwrap();
    let mut srtcp = vec![0x80, 200, 0, 6, 0, 0, 0, 5];
    srtcp.extend_from_slice(&[0xaa; 40]);
    socket.send_to(&srtcp, to).unwrap();

    let report = media.stop(leg, anchor + Duration::from_millis(300));
    let counters = &report.counters;
    assert_eq!(
        (
            counters.packets,
            counters.srtp_auth_failures,
            counters.srtp_replayed,
            counters.srtcp_auth_failures,
            counters.duplicates,
        ),
        (12, 2, 1, 1, 0),
        "every genuine packet recorded once, the rest refused: {counters:?}"
    );
    let stats = media.stats();
    assert_eq!(
        (
            stats.srtp_auth_failures,
            stats.srtp_replayed,
            stats.srtcp_auth_failures
        ),
        (2, 1, 1),
        "the engine's totals (for /metrics) hold the leg's refusals once it is closed"
    );
    let pcmu = stats.codecs.iter().find(|c| c.codec == "PCMU").unwrap();
    assert_eq!(
        (pcmu.legs, pcmu.packets),
        (1, 12),
        "one PCMU leg, and only its genuine packets counted for its codec"
    );
    assert!(
        stats.disk_writes.count() >= 1,
        "the writer timed its writes: {:?}",
        stats.disk_writes
    );
    media.shutdown();
}

/// Another host on the loopback network: 127.0.0.0/8 is all local on Linux.
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Sends 1 s of `genuine` 440 Hz audio from 127.0.0.1 to `port` in real time while `hostile`
/// sockets send a 1000 Hz tone and key presses (digit 5) to it, each before the genuine packet
/// of the same frame; then the RTCP port gets a report from each, the genuine one first.
/// Returns the datagrams each hostile socket sent.
fn send_with_intruders(
    port: u16,
    anchor: Instant,
    genuine: &UdpSocket,
    hostile: &[UdpSocket],
) -> Vec<u64> {
    let mut sent = vec![0u64; hostile.len()];
    for frame in 0..50u32 {
        // Real-time pacing is the traffic shape under test, not a synchronisation.
        let due = anchor + Duration::from_millis(u64::from(frame) * 20);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        for (index, socket) in hostile.iter().enumerate() {
            let ssrc = 0xbad0 + index as u32;
            let timestamp = 70_000 + frame * 160;
            let loud = packet(frame as u16, timestamp, ssrc, tone(1000.0, frame));
            socket.send_to(&loud, (LOCALHOST, port)).unwrap();
            let press = telephone_event(5, frame % 5 == 4, 160 * (frame as u16 % 5 + 1));
            let start = 70_000 + (frame - frame % 5) * 160;
            let press = packet_of_type(101, 2000 + frame as u16, start, ssrc, press);
            socket.send_to(&press, (LOCALHOST, port)).unwrap();
            sent[index] += 2;
        }
        let audio = packet(frame as u16, 5000 + frame * 160, 0x600d, tone(440.0, frame));
        genuine.send_to(&audio, (LOCALHOST, port)).unwrap();
    }
    let report = [0x80, 201, 0, 1, 0, 0, 0xba, 0xd0];
    genuine.send_to(&report, (LOCALHOST, port + 1)).unwrap();
    for (index, socket) in hostile.iter().enumerate() {
        socket.send_to(&report, (LOCALHOST, port + 1)).unwrap();
        sent[index] += 1;
    }
    sent
}

/// The WAV holds the 440 Hz tone and not the 1000 Hz one, over the second the tone lasted.
fn assert_only_the_genuine_tone(report: &LegReport) {
    let (_, samples) = read_wav(&report.path);
    let middle = &samples[800..7200];
    let (genuine, hostile) = (goertzel(middle, 440.0), goertzel(middle, 1000.0));
    assert!(genuine > 1000.0 * hostile, "{genuine} vs {hostile}");
}

#[test]
fn media_from_another_address_or_port_is_dropped_and_counted_and_the_latched_source_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut media = engine(dir.path(), 43220, 43229);
    let reservation = media.allocate().unwrap();
    let port = reservation.port();
    let anchor = Instant::now();
    let leg = media
        .start_leg(reservation, spec("bound", "bound.wav", anchor))
        .unwrap();
    let genuine = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    // Another host, which the SDP does not name; and, on the allowed address, a second source
    // (another port) which starts after the genuine one has been latched.
    let elsewhere = UdpSocket::bind((ELSEWHERE, 0)).unwrap();
    let second = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let lone = UdpSocket::bind((ELSEWHERE, 0)).unwrap();
    let first = packet(999, 5000 - 160, 0x600d, tone(440.0, 0));
    // The hostile host is first of all: the latch must not take it.
    lone.send_to(&first, (LOCALHOST, port)).unwrap();
    genuine.send_to(&first, (LOCALHOST, port)).unwrap();
    let sent = send_with_intruders(port, anchor, &genuine, &[elsewhere, second]);

    let report = media.stop(leg, anchor + Duration::from_millis(1000));
    assert!(report.error.is_none(), "{report:?}");
    assert_only_the_genuine_tone(&report);
    assert!(
        media.seen.is_empty(),
        "no digit from a foreign source: {:?}",
        media.seen
    );
    let counters = &report.counters;
    let foreign = 1 + sent.iter().sum::<u64>();
    assert_eq!(
        (
            counters.foreign_packets,
            counters.packets,
            counters.telephone_events,
            counters.dtmf_digits,
            counters.ssrcs_seen,
            counters.rtcp_packets,
        ),
        (foreign, 51, 0, 0, 1, 1),
        "{counters:?}"
    );
    assert_eq!(
        media.stats().foreign_packets,
        foreign,
        "the engine's total (for /metrics) holds the leg's drops once it is closed"
    );
    media.shutdown();
}

#[test]
fn unbound_legs_record_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = MediaConfig::new(LOCALHOST, 43240, 43249, dir.path().to_path_buf());
    config.bind_to_source = false;
    let mut media = engine_with(config);
    let reservation = media.allocate().unwrap();
    let port = reservation.port();
    let anchor = Instant::now();
    let leg = media
        .start_leg(reservation, spec("open", "open.wav", anchor))
        .unwrap();
    let genuine = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let elsewhere = UdpSocket::bind((ELSEWHERE, 0)).unwrap();
    let second = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    send_with_intruders(port, anchor, &genuine, &[elsewhere, second]);
    let report = media.stop(leg, anchor + Duration::from_millis(1000));
    let counters = &report.counters;
    assert_eq!(
        (
            counters.foreign_packets,
            counters.packets,
            counters.ssrcs_seen,
            counters.telephone_events,
            counters.rtcp_packets,
        ),
        (0, 250, 3, 100, 3),
        "both intruders recorded, as before binding existed: {counters:?}"
    );
    // Their presses interleave, so each packet ends the other's press: more digits than keys.
    assert!(counters.dtmf_digits >= 20, "{counters:?}");
    assert_eq!(media.stats().foreign_packets, 0);
    media.shutdown();
}

/// Receives datagrams on `socket` until `count` came or `PATIENCE` passed.
fn receive_datagrams(socket: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    let mut buffer = [0u8; 2048];
    while got.len() < count && Instant::now() < deadline {
        if let Ok((len, _)) = socket.recv_from(&mut buffer) {
            got.push(buffer[..len].to_vec());
        }
    }
    got
}

fn relay_spec(label: &str, anchor: Instant, far_end: &UdpSocket) -> LegSpec {
    LegSpec {
        telephone_event_pt: Some(101),
        sources: AllowedSources {
            connection: Some(LOCALHOST),
            port: far_end.local_addr().unwrap().port(),
            signalling: None,
        },
        ..LegSpec::new(
            label,
            PathBuf::from(format!("recordings/relay/{label}.wav")),
            0,
            Codec::Pcmu,
            anchor,
        )
    }
}

#[test]
fn a_relayed_call_forwards_each_direction_unchanged_latches_and_records_both_legs() {
    let dir = tempfile::tempdir().unwrap();
    let mut media = engine(dir.path(), 43600, 43609);
    let caller = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let callee_sdp = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    // Behind NAT the callee's media leaves from another port than its SDP names.
    let callee_nat = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let caller_side = media.allocate().unwrap();
    let callee_side = media.allocate().unwrap();
    let (caller_port, callee_port) = (caller_side.port(), callee_side.port());
    let anchor = Instant::now();
    let (a, b) = media
        .start_relay(
            (caller_side, relay_spec("caller", anchor, &caller)),
            (callee_side, relay_spec("callee", anchor, &callee_sdp)),
        )
        .unwrap();

    // The caller speaks first: its packets go to the callee's SDP address, byte for byte.
    let sent: Vec<Vec<u8>> = (0..25u32)
        .map(|frame| packet(frame as u16, frame * 160, 0xaaaa, tone(440.0, frame)))
        .collect();
    for (frame, datagram) in sent.iter().enumerate() {
        let due = anchor + Duration::from_millis(frame as u64 * 20);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        caller.send_to(datagram, (LOCALHOST, caller_port)).unwrap();
    }
    assert_eq!(receive_datagrams(&callee_sdp, 25), sent);

    // The callee answers from its NAT port: the caller gets it, and from now on the caller's
    // packets follow the callee to where it really is.
    for frame in 25..50u32 {
        let due = anchor + Duration::from_millis(u64::from(frame) * 20);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let datagram = packet(frame as u16, frame * 160, 0xbbbb, tone(1000.0, frame));
        callee_nat
            .send_to(&datagram, (LOCALHOST, callee_port))
            .unwrap();
        let back = receive_datagrams(&caller, 1);
        assert_eq!(back, [datagram]);
        let datagram = packet(frame as u16, frame * 160, 0xaaaa, tone(440.0, frame));
        caller.send_to(&datagram, (LOCALHOST, caller_port)).unwrap();
        assert_eq!(receive_datagrams(&callee_nat, 1), [datagram]);
    }
    // A key press from the caller: forwarded unchanged, and recorded as the caller's digit.
    let press: Vec<Vec<u8>> = (0..3u16)
        .map(|i| {
            packet_of_type(
                101,
                50 + i,
                50 * 160,
                0xaaaa,
                telephone_event(5, i == 2, 160 * (i + 1)),
            )
        })
        .collect();
    for datagram in &press {
        caller.send_to(datagram, (LOCALHOST, caller_port)).unwrap();
    }
    assert_eq!(receive_datagrams(&callee_nat, 3), press);

    let end = anchor + Duration::from_millis(1000);
    let (a_id, b_id) = (a.id(), b.id());
    let report_a = media.stop(a, end);
    let report_b = media.stop(b, end);
    let digits: Vec<MediaEvent> = media.shutdown();
    assert!(
        digits
            .iter()
            .any(|e| matches!(e, MediaEvent::Dtmf { leg, digit: '5', .. } if *leg == a_id)),
        "{digits:?}"
    );
    assert!(
        !digits
            .iter()
            .any(|e| matches!(e, MediaEvent::Dtmf { leg, .. } if *leg == b_id))
    );
    let (_, caller_audio) = read_wav(&report_a.path);
    let (_, callee_audio) = read_wav(&report_b.path);
    assert_eq!(report_a.counters.packets, 53);
    assert_eq!(report_b.counters.packets, 25);
    let tone_of = |samples: &[i16], f: f64| goertzel(samples, f);
    let caller_first = &caller_audio[..4000];
    assert!(tone_of(caller_first, 440.0) > 10.0 * tone_of(caller_first, 1000.0));
    let callee_part = &callee_audio[4000..8000];
    assert!(tone_of(callee_part, 1000.0) > 10.0 * tone_of(callee_part, 440.0));
}
