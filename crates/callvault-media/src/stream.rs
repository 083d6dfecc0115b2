//! The per-leg pipeline, free of I/O: datagram → header → sequence → payload dispatch → decode →
//! timeline. One receive thread owns each `Stream`; tests drive it with synthetic packets and
//! instants.

use std::time::Instant;

use crate::codec::{COMFORT_NOISE_PT, Codec, Decoder};
use crate::rtp::{RtpHeader, is_rtcp};
use crate::sequence::{SequenceOutcome, SequenceTracker};
use crate::timeline::{Placement, Sink, Timeline};
use crate::{LegReport, LegSpec, LegUpdate};

/// Largest datagram the receive loop reads; the decode scratch buffer is sized from it.
pub const MAX_DATAGRAM: usize = 2048;

/// Per-leg counters that are not derived from the sequence tracker.
#[derive(Clone, Debug, Default)]
struct Counters {
    packets: u64,
    duplicates: u64,
    out_of_order: u64,
    late: u64,
    unknown_payload: u64,
    comfort_noise: u64,
    telephone_events: u64,
    malformed: u64,
    rtcp: u64,
    while_inactive: u64,
    ssrc_changes: u64,
}

/// What the payload type of a packet means on this leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payload {
    Audio,
    TelephoneEvent,
    ComfortNoise,
    Unknown,
}

/// The state of one recorded leg.
#[derive(Debug)]
pub struct Stream {
    label: String,
    payload_type: u8,
    telephone_event_pt: Option<u8>,
    active: bool,
    decoder: Decoder,
    ssrc: Option<u32>,
    sequence: SequenceTracker,
    timeline: Timeline,
    counters: Counters,
    /// Decoded samples of the current packet: allocated once, reused for every packet.
    scratch: Vec<i16>,
}

impl Stream {
    pub fn new(spec: &LegSpec, window: std::time::Duration) -> Stream {
        Stream {
            label: spec.label.clone(),
            payload_type: spec.payload_type,
            telephone_event_pt: spec.telephone_event_pt,
            active: spec.active,
            decoder: Decoder::new(spec.codec),
            ssrc: None,
            sequence: SequenceTracker::default(),
            timeline: Timeline::new(spec.anchor, spec.codec.sample_rate(), window),
            counters: Counters::default(),
            scratch: vec![0; MAX_DATAGRAM],
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn sample_rate(&self) -> u32 {
        self.timeline.rate()
    }

    /// One datagram from the RTP port, received at `arrival`.
    pub fn handle_datagram(&mut self, arrival: Instant, datagram: &[u8], sink: &mut impl Sink) {
        if is_rtcp(datagram) {
            self.counters.rtcp += 1;
            return;
        }
        let Ok(header) = RtpHeader::parse(datagram) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.packets += 1;
        if self.ssrc != Some(header.ssrc) {
            if self.ssrc.is_some() {
                self.counters.ssrc_changes += 1;
            }
            self.ssrc = Some(header.ssrc);
            self.sequence.reset();
        }
        match self.sequence.handle(header.sequence) {
            SequenceOutcome::Duplicate => {
                self.counters.duplicates += 1;
                return;
            }
            SequenceOutcome::OutOfOrder => self.counters.out_of_order += 1,
            SequenceOutcome::InOrder | SequenceOutcome::Jump => {}
        }
        if !self.active {
            // On hold the SDP says no media; stray packets are counted, not recorded.
            self.counters.while_inactive += 1;
            return;
        }
        let payload = &datagram[header.payload.clone()];
        match self.classify(header.payload_type) {
            Payload::Audio => {
                let count = self.decoder.decode(payload, &mut self.scratch);
                let placement = self.timeline.handle_audio(
                    arrival,
                    header.ssrc,
                    header.timestamp,
                    &self.scratch[..count],
                    sink,
                );
                if placement == Placement::Late {
                    self.counters.late += 1;
                }
            }
            Payload::TelephoneEvent => self.handle_telephone_event(arrival, &header, payload),
            // Silence is what the timeline commits where no audio landed.
            Payload::ComfortNoise => self.counters.comfort_noise += 1,
            Payload::Unknown => self.counters.unknown_payload += 1,
        }
    }

    /// Hook for RFC 4733 events: DTMF detection plugs in here. The packets carry no audio; the
    /// timeline writes silence (or the other audio) under them.
    fn handle_telephone_event(&mut self, _arrival: Instant, _header: &RtpHeader, _payload: &[u8]) {
        self.counters.telephone_events += 1;
    }

    /// One datagram from the RTCP port: absorbed and counted (receiver-side RTCP is not used yet).
    pub fn handle_rtcp(&mut self) {
        self.counters.rtcp += 1;
    }

    /// Advances the timeline on the wall clock.
    pub fn handle_tick(&mut self, now: Instant, sink: &mut impl Sink) {
        self.timeline.handle_tick(now, sink);
    }

    /// A re-INVITE changed the codec, payload types or direction. The sample rate of the file
    /// cannot change; the caller checks it first.
    pub fn handle_update(&mut self, update: &LegUpdate) {
        if update.codec != self.decoder.codec() {
            self.decoder = Decoder::new(update.codec);
            // A new codec often comes with a new timestamp base.
            self.timeline.reanchor();
        }
        if update.active != self.active {
            // After a hold, sources may restart their timestamps: place the next packet by the
            // wall clock.
            self.timeline.reanchor();
        }
        self.payload_type = update.payload_type;
        self.telephone_event_pt = update.telephone_event_pt;
        self.active = update.active;
    }

    /// Commits the timeline up to `end` exactly.
    pub fn finish(&mut self, end: Instant, sink: &mut impl Sink) {
        self.timeline.finish(end, sink);
    }

    /// The counters as a report (path, digest and error are filled in by the writer).
    pub fn report(&self) -> LegReport {
        let c = &self.counters;
        LegReport {
            label: self.label.clone(),
            packets: c.packets,
            lost: self.sequence.lost(),
            duplicates: c.duplicates,
            out_of_order: c.out_of_order,
            late: c.late,
            unknown_payload: c.unknown_payload,
            comfort_noise: c.comfort_noise,
            telephone_events: c.telephone_events,
            malformed: c.malformed,
            rtcp: c.rtcp,
            while_inactive: c.while_inactive,
            ssrc_changes: c.ssrc_changes,
            reanchors: self.timeline.reanchors(),
            samples: self.timeline.committed(),
            sample_rate: self.timeline.rate(),
            ..LegReport::default()
        }
    }

    fn classify(&self, payload_type: u8) -> Payload {
        if payload_type == self.payload_type {
            Payload::Audio
        } else if Some(payload_type) == self.telephone_event_pt {
            Payload::TelephoneEvent
        } else if payload_type == COMFORT_NOISE_PT {
            Payload::ComfortNoise
        } else {
            Payload::Unknown
        }
    }
}

/// Whether an update can apply to a leg recorded at `rate`.
pub fn check_rate(label: &str, rate: u32, codec: Codec) -> crate::Result<()> {
    if codec.sample_rate() == rate {
        Ok(())
    } else {
        Err(crate::Error::SampleRateChange {
            label: label.to_owned(),
            from: rate,
            to: codec.sample_rate(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::rtp::header::Header;
    use ::rtp::packet::Packet;
    use bytes::Bytes;
    use std::path::PathBuf;
    use std::time::Duration;
    use webrtc_util::marshal::Marshal;

    #[derive(Default)]
    struct Collect(Vec<i16>);

    impl Sink for Collect {
        fn write(&mut self, pcm: &[i16]) {
            self.0.extend_from_slice(pcm);
        }
    }

    fn spec(anchor: Instant) -> LegSpec {
        LegSpec {
            label: "1".into(),
            path: PathBuf::from("a.wav"),
            payload_type: 0,
            codec: Codec::Pcmu,
            telephone_event_pt: Some(101),
            anchor,
            active: true,
        }
    }

    fn packet(pt: u8, sequence: u16, timestamp: u32, ssrc: u32, byte: u8) -> Vec<u8> {
        Packet {
            header: Header {
                version: 2,
                payload_type: pt,
                sequence_number: sequence,
                timestamp,
                ssrc,
                ..Header::default()
            },
            payload: Bytes::from(vec![byte; 160]),
        }
        .marshal()
        .unwrap()
        .to_vec()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pipeline_counts_and_places() {
        let anchor = Instant::now();
        let mut stream = Stream::new(&spec(anchor), ms(200));
        let mut out = Collect::default();
        // 0x80 decodes to 32124 in μ-law: recognisable against silence.
        let at = |i: u64| anchor + ms(i * 20);
        stream.handle_datagram(at(0), &packet(0, 1, 0, 9, 0x80), &mut out);
        stream.handle_datagram(at(2), &packet(0, 3, 320, 9, 0x80), &mut out); // 2 before 1: reordered
        stream.handle_datagram(at(2), &packet(0, 2, 160, 9, 0x80), &mut out);
        stream.handle_datagram(at(2), &packet(0, 2, 160, 9, 0x80), &mut out); // duplicate
        stream.handle_datagram(at(3), &packet(101, 4, 480, 9, 0), &mut out); // DTMF: no audio
        stream.handle_datagram(at(4), &packet(13, 5, 640, 9, 0), &mut out); // comfort noise
        stream.handle_datagram(at(5), &packet(96, 6, 800, 9, 0x80), &mut out); // unknown PT
        stream.handle_datagram(at(7), &packet(0, 8, 1120, 9, 0x80), &mut out); // 7 lost
        stream.handle_datagram(at(7), &[0x80, 200, 0, 6, 0, 0, 0, 1], &mut out); // rtcp-mux
        stream.handle_datagram(at(7), &[0x40; 20], &mut out); // version 1
        stream.handle_datagram(at(7), &[0x80; 5], &mut out); // truncated
        stream.handle_rtcp();
        stream.finish(anchor + ms(200), &mut out);

        let report = stream.report();
        assert_eq!(report.packets, 8);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.out_of_order, 1);
        assert_eq!(report.lost, 1);
        assert_eq!(report.telephone_events, 1);
        assert_eq!(report.comfort_noise, 1);
        assert_eq!(report.unknown_payload, 1);
        assert_eq!(report.rtcp, 2);
        assert_eq!(report.malformed, 2);
        assert_eq!(report.samples, 1600);
        assert_eq!(report.sample_rate, 8000);

        let frames: Vec<i16> = out.0.chunks(160).map(|c| c[0]).collect();
        assert_eq!(frames, [32124, 32124, 32124, 0, 0, 0, 0, 32124, 0, 0]);
    }

    #[test]
    fn hold_writes_silence_and_resume_reanchors() {
        let anchor = Instant::now();
        let mut stream = Stream::new(&spec(anchor), ms(200));
        let mut out = Collect::default();
        stream.handle_datagram(anchor, &packet(0, 1, 0, 9, 0x80), &mut out);
        let mut hold = LegUpdate {
            payload_type: 0,
            codec: Codec::Pcmu,
            telephone_event_pt: None,
            active: false,
        };
        stream.handle_update(&hold);
        stream.handle_datagram(anchor + ms(20), &packet(0, 2, 160, 9, 0x80), &mut out);
        stream.handle_tick(anchor + ms(2000), &mut out);
        hold.active = true;
        stream.handle_update(&hold);
        // The source kept its old timestamps across the hold: placed by the wall clock anyway.
        stream.handle_datagram(anchor + ms(3000), &packet(0, 3, 320, 9, 0x80), &mut out);
        stream.finish(anchor + ms(3020), &mut out);
        let frames: Vec<i16> = out.0.chunks(160).map(|c| c[0]).collect();
        assert_eq!(frames.len(), 151);
        assert_eq!(frames[0], 32124);
        assert!(frames[1..150].iter().all(|f| *f == 0));
        assert_eq!(frames[150], 32124);
        assert_eq!(stream.report().while_inactive, 1);
    }

    #[test]
    fn codec_change_decodes_with_the_new_table() {
        let anchor = Instant::now();
        let mut stream = Stream::new(&spec(anchor), ms(200));
        let mut out = Collect::default();
        stream.handle_update(&LegUpdate {
            payload_type: 8,
            codec: Codec::Pcma,
            telephone_event_pt: None,
            active: true,
        });
        stream.handle_datagram(anchor, &packet(0, 1, 0, 9, 0xd5), &mut out); // old PT: unknown now
        stream.handle_datagram(anchor + ms(20), &packet(8, 2, 160, 9, 0xd5), &mut out);
        stream.finish(anchor + ms(40), &mut out);
        assert_eq!(out.0[..160], [0; 160]);
        assert_eq!(out.0[160..], [8; 160]);
        assert_eq!(stream.report().unknown_payload, 1);
    }

    #[test]
    fn ssrc_change_keeps_loss_totals() {
        let anchor = Instant::now();
        let mut stream = Stream::new(&spec(anchor), ms(200));
        let mut out = Collect::default();
        stream.handle_datagram(anchor, &packet(0, 1, 0, 9, 0x80), &mut out);
        stream.handle_datagram(anchor + ms(40), &packet(0, 3, 320, 9, 0x80), &mut out);
        stream.handle_datagram(anchor + ms(60), &packet(0, 900, 7, 10, 0x80), &mut out);
        stream.handle_datagram(anchor + ms(80), &packet(0, 901, 167, 10, 0x80), &mut out);
        let report = stream.report();
        assert_eq!(
            (report.lost, report.ssrc_changes, report.packets),
            (1, 1, 4)
        );
    }

    #[test]
    fn rate_check() {
        assert!(check_rate("1", 8000, Codec::Pcma).is_ok());
        assert!(matches!(
            check_rate("1", 16000, Codec::Pcmu),
            Err(crate::Error::SampleRateChange { .. })
        ));
    }
}
