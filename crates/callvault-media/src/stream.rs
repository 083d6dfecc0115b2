//! The per-leg pipeline, free of I/O: datagram → header → sequence → payload dispatch → decode →
//! resample → timeline, plus DTMF detection, quality figures and inactivity. One receive thread
//! owns each `Stream`; tests drive it with synthetic packets and instants. Events for the control
//! plane are queued here (at most a few per packet or tick) and taken with [`Stream::poll_event`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callvault_codec::{Decoder, MAX_FRAME_SAMPLES};

use crate::codec::{AudioFormat, COMFORT_NOISE_PT};
use crate::dtmf::{DtmfDetector, DtmfPress};
use crate::rtp::{RtpHeader, is_rtcp};
use crate::sequence::{SequenceOutcome, SequenceTracker};
use crate::source::{Admission, ForeignLog, Port, SourceLatch};
use crate::srtp::{Refusal, SrtpReceiver};
use crate::timeline::{Placement, REANCHOR_AFTER, Sink, Timeline};
use crate::{CallIds, LegCounters, LegId, LegSpec, LegUpdate, MediaEvent};

/// Audio payload types a leg accepts; further formats offered are ignored.
const MAX_FORMATS: usize = 16;
/// SSRCs remembered to count distinct ones.
const SSRC_MEMORY: usize = 16;
/// Events a stream can queue between two drains: a packet ends at most two presses; a tick one
/// press and one inactivity.
const EVENT_QUEUE: usize = 4;
/// Marks a payload type with no decoder in [`Formats::by_payload_type`].
const NO_FORMAT: u8 = u8::MAX;

/// What the payload type of a packet means on this leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payload {
    /// Index into [`Formats::decoders`].
    Audio(usize),
    TelephoneEvent,
    ComfortNoise,
    Unknown,
}

/// An audio payload type and its decoder: `None` when the decoder could not be created (its
/// packets are counted as decode errors).
type Slot = (AudioFormat, Option<Decoder>);

/// The leg's audio payload types and their decoders, dispatched by table.
#[derive(Debug)]
struct Formats {
    decoders: Vec<Slot>,
    by_payload_type: [u8; 128],
}

impl Formats {
    /// Built on start and on updates, never per packet. The first format of a payload type wins;
    /// decoders of formats that stay keep their state.
    fn new(
        label: &str,
        call: &CallIds,
        formats: impl IntoIterator<Item = AudioFormat>,
        mut old: Vec<Slot>,
    ) -> Formats {
        let mut decoders = Vec::new();
        let mut by_payload_type = [NO_FORMAT; 128];
        for format in formats {
            let slot = usize::from(format.payload_type & 0x7f);
            if format.payload_type > 127
                || by_payload_type[slot] != NO_FORMAT
                || decoders.len() >= MAX_FORMATS
            {
                continue;
            }
            let decoder = match old.iter().position(|(kept, _)| *kept == format) {
                Some(index) => old.swap_remove(index).1,
                None => Decoder::new(format.codec)
                    .inspect_err(|error| {
                        tracing::warn!(
                            call_id = %call.call_id,
                            recording_id = %call.recording_id,
                            label,
                            codec = format.codec.name(),
                            %error,
                            "cannot create decoder; its packets are not recorded"
                        );
                    })
                    .ok(),
            };
            by_payload_type[slot] = decoders.len() as u8;
            decoders.push((format, decoder));
        }
        Formats {
            decoders,
            by_payload_type,
        }
    }

    fn find(&self, payload_type: u8) -> Option<usize> {
        let index = *self.by_payload_type.get(usize::from(payload_type))?;
        (index != NO_FORMAT).then_some(usize::from(index))
    }
}

/// RFC 3550 §6.4.1 interarrival jitter, kept in seconds so that a clock change does not rescale
/// it. f64 arithmetic on the stack: nothing allocated.
#[derive(Clone, Copy, Debug, Default)]
struct Jitter {
    previous: Option<JitterPoint>,
    seconds: f64,
    /// Whether any difference went into `seconds`: until then the jitter is unknown.
    measured: bool,
}

#[derive(Clone, Copy, Debug)]
struct JitterPoint {
    ssrc: u32,
    clock: u32,
    arrival: Instant,
    timestamp: u32,
}

impl Jitter {
    fn handle(&mut self, arrival: Instant, ssrc: u32, timestamp: u32, clock: u32) {
        let point = JitterPoint {
            ssrc,
            clock: clock.max(1),
            arrival,
            timestamp,
        };
        if let Some(previous) = self
            .previous
            .filter(|p| p.ssrc == ssrc && p.clock == point.clock)
        {
            // D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1}), in seconds.
            let wall = signed_seconds(arrival, previous.arrival);
            let media = f64::from(timestamp.wrapping_sub(previous.timestamp) as i32)
                / f64::from(point.clock);
            let difference = (wall - media).abs();
            // A timestamp jump is a discontinuity (the timeline re-anchors on it), not jitter.
            if difference <= REANCHOR_AFTER.as_secs_f64() {
                self.seconds += (difference - self.seconds) / 16.0;
                self.measured = true;
            }
        }
        self.previous = Some(point);
    }

    fn milliseconds(&self) -> Option<f64> {
        self.measured.then_some(self.seconds * 1000.0)
    }
}

fn signed_seconds(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(after) => after.as_secs_f64(),
        None => -earlier.duration_since(later).as_secs_f64(),
    }
}

/// The distinct SSRCs of a leg, remembered up to [`SSRC_MEMORY`].
#[derive(Clone, Debug, Default)]
struct Ssrcs {
    remembered: [u32; SSRC_MEMORY],
    len: usize,
    seen: u64,
}

impl Ssrcs {
    /// Called on SSRC changes only.
    fn handle(&mut self, ssrc: u32) {
        let known = &self.remembered[..self.len.min(SSRC_MEMORY)];
        if known.contains(&ssrc) {
            return;
        }
        self.remembered[self.len % SSRC_MEMORY] = ssrc;
        self.len += 1;
        self.seen += 1;
    }
}

/// What a leg refused so far ([`Stream::refusals`]): SRTP's refusals and foreign packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Refusals {
    pub(crate) auth_failures: u64,
    pub(crate) replayed: u64,
    pub(crate) srtcp_auth_failures: u64,
    pub(crate) foreign_packets: u64,
}

/// The state of one recorded leg.
#[derive(Debug)]
pub struct Stream {
    leg: LegId,
    label: String,
    /// For the leg's log lines only.
    call: CallIds,
    formats: Formats,
    /// The negotiated codec: a change of it re-anchors the timeline.
    primary: AudioFormat,
    telephone_event_pt: Option<u8>,
    telephone_event_clock: u32,
    /// `None` when DTMF capture is off.
    dtmf: Option<DtmfDetector>,
    active: bool,
    inactivity_timeout: Option<Duration>,
    /// The last RTP packet, or when the silence began to count (first tick, resume).
    silent_since: Option<Instant>,
    inactive_reported: bool,
    ssrc: Option<u32>,
    ssrcs: Ssrcs,
    sequence: SequenceTracker,
    timeline: Timeline,
    /// The counters kept per packet; those derived from other state (loss, DTMF, timeline,
    /// jitter) are filled in by [`Stream::counters`].
    counters: LegCounters,
    jitter: Jitter,
    last_audio: Option<AudioFormat>,
    /// Decoded samples of the current packet: allocated once, reused for every packet.
    scratch: Vec<i16>,
    /// Resampled samples, allocated the first time a packet needs resampling (a codec of another
    /// rate than the leg's), then reused.
    resampled: Vec<i16>,
    events: VecDeque<MediaEvent>,
    /// Authenticates and decrypts SRTP before anything else reads a packet; passes plain RTP.
    srtp: SrtpReceiver,
    /// Which sources the leg takes datagrams from, checked before anything else.
    sources: SourceLatch,
    foreign_log: ForeignLog,
}

impl Stream {
    /// `bind_to_source`: as [`crate::MediaConfig::bind_to_source`].
    pub fn new(leg: LegId, spec: &LegSpec, window: Duration, bind_to_source: bool) -> Stream {
        let primary = AudioFormat {
            payload_type: spec.payload_type,
            codec: spec.codec,
        };
        let mut timeline = Timeline::new(spec.anchor, spec.codec.sample_rate(), window);
        if !spec.active {
            timeline.handle_hold(spec.anchor, true);
        }
        Stream {
            leg,
            label: spec.label.clone(),
            call: spec.call.clone(),
            formats: Formats::new(
                &spec.label,
                &spec.call,
                std::iter::once(primary).chain(spec.other_formats.iter().copied()),
                Vec::new(),
            ),
            primary,
            telephone_event_pt: spec.telephone_event_pt,
            telephone_event_clock: event_clock(spec.telephone_event_clock),
            dtmf: spec
                .capture_dtmf
                .then(|| DtmfDetector::new(event_clock(spec.telephone_event_clock))),
            active: spec.active,
            inactivity_timeout: spec.inactivity_timeout,
            silent_since: None,
            inactive_reported: false,
            ssrc: None,
            ssrcs: Ssrcs::default(),
            sequence: SequenceTracker::default(),
            timeline,
            counters: LegCounters::default(),
            jitter: Jitter::default(),
            last_audio: None,
            // 120 ms at 48 kHz: a packet that decodes to more is a decode error.
            scratch: vec![0; MAX_FRAME_SAMPLES],
            resampled: Vec::new(),
            events: VecDeque::with_capacity(EVENT_QUEUE),
            srtp: SrtpReceiver::new(spec.srtp.as_ref()),
            sources: SourceLatch::new(bind_to_source, spec.sources),
            foreign_log: ForeignLog::default(),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The call the leg belongs to, for log lines.
    pub fn call(&self) -> &CallIds {
        &self.call
    }

    pub fn sample_rate(&self) -> u32 {
        self.timeline.rate()
    }

    /// The next event for the control plane; drained by the receive loop after every call.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// One datagram from `from` on the RTP port, received at `arrival`: dropped and counted
    /// when the leg is not bound to that source, else handled. An SRTP leg decrypts it in
    /// place (the buffer is the receive thread's, reused for the next datagram).
    pub fn handle_rtp_from(
        &mut self,
        arrival: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        sink: &mut impl Sink,
    ) {
        if self.admit(Port::Rtp, from) {
            self.handle_datagram(arrival, datagram, sink);
        }
    }

    /// One datagram from `from` on the RTCP port, checked as on the RTP port (its own latch).
    pub fn handle_rtcp_from(&mut self, arrival: Instant, from: SocketAddr, datagram: &mut [u8]) {
        if self.admit(Port::Rtcp, from) {
            self.handle_rtcp(arrival, datagram);
        }
    }

    /// Whether a datagram from `from` on `port` may be read; counts it when not.
    fn admit(&mut self, port: Port, from: SocketAddr) -> bool {
        match self.sources.admit(port, from) {
            Admission::Accept => true,
            Admission::Latched => {
                tracing::debug!(call_id = %self.call.call_id, recording_id = %self.call.recording_id, leg = %self.leg, label = %self.label, port = port.as_str(), source = %from, "media source latched");
                true
            }
            Admission::Foreign => {
                self.counters.foreign_packets += 1;
                false
            }
        }
    }

    /// One admitted datagram from the RTP port.
    fn handle_datagram(&mut self, arrival: Instant, datagram: &mut [u8], sink: &mut impl Sink) {
        if is_rtcp(datagram) {
            self.handle_rtcp(arrival, datagram);
            return;
        }
        let datagram = match self.srtp.unprotect_rtp(arrival, datagram) {
            Ok(len) => &datagram[..len],
            Err(Refusal::Malformed) => {
                self.counters.malformed += 1;
                return;
            }
            Err(Refusal::Authentication) => {
                self.counters.srtp_auth_failures += 1;
                return;
            }
            Err(Refusal::Replayed) => {
                self.counters.srtp_replayed += 1;
                return;
            }
        };
        let Ok(header) = RtpHeader::parse(datagram) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.packets += 1;
        // Any RTP re-arms the inactivity alarm, even on hold or duplicated.
        self.silent_since = Some(arrival);
        self.inactive_reported = false;
        if self.ssrc != Some(header.ssrc) {
            if self.ssrc.is_some() {
                self.counters.ssrc_changes += 1;
            }
            self.ssrc = Some(header.ssrc);
            self.ssrcs.handle(header.ssrc);
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
            Payload::Audio(index) => self.handle_audio(arrival, &header, index, payload, sink),
            Payload::TelephoneEvent => self.handle_telephone_event(arrival, &header, payload),
            // Silence is what the timeline commits where no audio landed.
            Payload::ComfortNoise => self.counters.comfort_noise += 1,
            Payload::Unknown => self.counters.unknown_payload += 1,
        }
    }

    fn handle_audio(
        &mut self,
        arrival: Instant,
        header: &RtpHeader,
        index: usize,
        payload: &[u8],
        sink: &mut impl Sink,
    ) {
        let (format, decoder) = &mut self.formats.decoders[index];
        let format = *format;
        if self.last_audio.is_some_and(|last| last != format) {
            self.counters.codec_changes += 1;
        }
        self.last_audio = Some(format);
        let decoded = decoder
            .as_mut()
            .and_then(|decoder| decoder.decode(payload, &mut self.scratch).ok());
        let Some(count) = decoded else {
            // Nothing placed: the timeline records silence there.
            self.counters.decode_errors += 1;
            return;
        };
        let clock = format.codec.rtp_clock_rate();
        self.jitter
            .handle(arrival, header.ssrc, header.timestamp, clock);
        let (from, to) = (format.codec.sample_rate(), self.timeline.rate());
        let pcm = if from == to {
            &self.scratch[..count]
        } else {
            self.counters.resampled_packets += 1;
            // At most half a second per packet, whatever rates the SDP claimed.
            let wanted = (count as u64 * u64::from(to) / u64::from(from.max(1))) as usize;
            let wanted = wanted.min(to as usize / 2);
            if self.resampled.len() < wanted {
                self.resampled.resize(wanted, 0);
            }
            let out = &mut self.resampled[..wanted];
            resample(&self.scratch[..count], out);
            &*out
        };
        let placement =
            self.timeline
                .handle_audio(arrival, header.ssrc, header.timestamp, clock, pcm, sink);
        if placement == Placement::Late {
            self.counters.late += 1;
        }
    }

    /// RFC 4733 events: no audio (the timeline writes silence, or the other audio, under them);
    /// key presses become [`MediaEvent::Dtmf`] when DTMF capture is on.
    fn handle_telephone_event(&mut self, arrival: Instant, header: &RtpHeader, payload: &[u8]) {
        self.counters.telephone_events += 1;
        let Some(detector) = &mut self.dtmf else {
            return;
        };
        let timeline = &self.timeline;
        let clock = self.telephone_event_clock;
        let presses =
            detector.handle_packet(arrival, header.ssrc, header.timestamp, payload, |event| {
                // The event's timestamp is its start, on the audio's timestamp scale; without audio
                // of that source and clock to map it, or when the mapping is off the wall clock, the
                // start is the arrival minus the duration so far.
                let rate = i64::from(timeline.rate());
                let elapsed = i64::from(event.duration) * rate / i64::from(clock);
                let start = timeline.position(arrival) - elapsed;
                let tolerance = REANCHOR_AFTER.as_millis() as i64 * rate / 1000;
                let position = timeline
                    .position_of(header.ssrc, header.timestamp, clock)
                    .filter(|position| (position - start).abs() <= tolerance)
                    .unwrap_or(start);
                (position.max(0) as u64) * 1000 / rate.max(1) as u64
            });
        for press in presses {
            self.push_press(press);
        }
    }

    fn push_press(&mut self, press: DtmfPress) {
        self.events.push_back(MediaEvent::Dtmf {
            leg: self.leg,
            digit: press.digit,
            offset_ms: press.offset_ms,
            duration_ms: press.duration_ms,
        });
    }

    /// One admitted RTCP datagram (its own port, or multiplexed): absorbed and counted
    /// (receiver-side RTCP is not used yet); on an SRTP leg only once authenticated.
    fn handle_rtcp(&mut self, arrival: Instant, datagram: &mut [u8]) {
        match self.srtp.authenticate_rtcp(arrival, datagram) {
            Ok(()) => self.counters.rtcp_packets += 1,
            Err(Refusal::Malformed) => self.counters.malformed += 1,
            Err(Refusal::Authentication | Refusal::Replayed) => {
                self.counters.srtcp_auth_failures += 1
            }
        }
    }

    /// Advances the timeline on the wall clock; ends DTMF presses whose end was lost; raises
    /// the inactivity alarm; says (at most once a minute) that foreign packets were dropped.
    pub fn handle_tick(&mut self, now: Instant, sink: &mut impl Sink) {
        self.timeline.handle_tick(now, sink);
        if let Some(dropped) = self.foreign_log.poll(now, self.counters.foreign_packets) {
            tracing::info!(
                call_id = %self.call.call_id,
                recording_id = %self.call.recording_id,
                leg = %self.leg,
                label = %self.label,
                dropped,
                total = self.counters.foreign_packets,
                last_source = ?self.sources.last_foreign(),
                "media from a source the leg is not bound to dropped"
            );
        }
        if let Some(press) = self.dtmf.as_mut().and_then(|d| d.handle_tick(now)) {
            self.push_press(press);
        }
        let since = *self.silent_since.get_or_insert(now);
        if let Some(timeout) = self.inactivity_timeout
            && self.active
            && !self.inactive_reported
        {
            let silent_for = now.saturating_duration_since(since);
            if silent_for >= timeout {
                self.inactive_reported = true;
                self.events.push_back(MediaEvent::Inactive {
                    leg: self.leg,
                    silent_for,
                });
            }
        }
    }

    /// A re-INVITE changed the codecs, payload types or direction, at `now`. A codec of another
    /// sample rate than the leg's is resampled to it.
    pub fn handle_update(&mut self, now: Instant, update: &LegUpdate) {
        let primary = AudioFormat {
            payload_type: update.payload_type,
            codec: update.codec,
        };
        if primary.codec != self.primary.codec {
            // A new codec often comes with a new timestamp base.
            self.timeline.reanchor();
        }
        let old = std::mem::take(&mut self.formats.decoders);
        self.formats = Formats::new(
            &self.label,
            &self.call,
            std::iter::once(primary).chain(update.other_formats.iter().copied()),
            old,
        );
        self.primary = primary;
        if update.active != self.active {
            // After a hold, sources may restart their timestamps: place the next packet by the
            // wall clock.
            self.timeline.reanchor();
            self.timeline.handle_hold(now, !update.active);
            // Silence counts from the resume, not from the last packet before the hold.
            self.silent_since = Some(now);
            self.inactive_reported = false;
        }
        self.srtp.rekey(now, update.srtp.as_ref());
        self.sources.handle_update(update.sources);
        self.telephone_event_pt = update.telephone_event_pt;
        self.telephone_event_clock = event_clock(update.telephone_event_clock);
        if let Some(detector) = &mut self.dtmf {
            detector.set_clock_rate(self.telephone_event_clock);
        }
        self.active = update.active;
    }

    /// Commits the timeline up to `end` exactly; a key press still open is reported.
    pub fn finish(&mut self, end: Instant, sink: &mut impl Sink) {
        self.timeline.finish(end, sink);
        if let Some(press) = self.dtmf.as_mut().and_then(DtmfDetector::finish) {
            self.push_press(press);
        }
    }

    /// Samples committed to the sink so far.
    #[cfg(test)]
    pub fn committed(&self) -> u64 {
        self.timeline.committed()
    }

    /// The packets refused so far, for the engine's totals (read on the tick).
    pub(crate) fn refusals(&self) -> Refusals {
        Refusals {
            auth_failures: self.counters.srtp_auth_failures,
            replayed: self.counters.srtp_replayed,
            srtcp_auth_failures: self.counters.srtcp_auth_failures,
            foreign_packets: self.counters.foreign_packets,
        }
    }

    /// What the leg counted. The writer adds its own (`silence_filled`, `blocks_discarded`) and
    /// the receive loop `blocks_dropped`.
    pub fn counters(&self) -> LegCounters {
        let rate = u64::from(self.timeline.rate().max(1));
        let dtmf = self.dtmf.as_ref();
        LegCounters {
            lost: self.sequence.lost(),
            dtmf_digits: dtmf.map_or(0, DtmfDetector::presses),
            telephone_events_other: dtmf.map_or(0, DtmfDetector::other_events),
            telephone_events_malformed: dtmf.map_or(0, DtmfDetector::malformed),
            reanchors: self.timeline.reanchors(),
            jitter_ms: self.jitter.milliseconds(),
            gaps_filled_ms: self.timeline.gap_samples() * 1000 / rate,
            ssrcs_seen: self.ssrcs.seen,
            ..self.counters.clone()
        }
    }

    fn classify(&self, payload_type: u8) -> Payload {
        if let Some(index) = self.formats.find(payload_type) {
            Payload::Audio(index)
        } else if Some(payload_type) == self.telephone_event_pt {
            Payload::TelephoneEvent
        } else if payload_type == COMFORT_NOISE_PT {
            Payload::ComfortNoise
        } else {
            Payload::Unknown
        }
    }
}

/// The telephone-event clock, 8000 when the SDP gave none (0).
fn event_clock(clock: u32) -> u32 {
    if clock == 0 {
        crate::DEFAULT_TELEPHONE_EVENT_CLOCK
    } else {
        clock
    }
}

/// Nearest-neighbour resampling of `input` into all of `out` (repeat when upsampling, decimate
/// when downsampling). Crude, but it keeps a mid-call codec change of another rate in time and
/// in tune; only the rare rate change pays for it.
fn resample(input: &[i16], out: &mut [i16]) {
    if input.is_empty() {
        out.fill(0);
        return;
    }
    let (from, to) = (input.len() as u64, out.len() as u64);
    for (i, sample) in out.iter_mut().enumerate() {
        *sample = input[(i as u64 * from / to) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use ::rtp::header::Header;
    use ::rtp::packet::Packet;
    use bytes::Bytes;
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
            telephone_event_pt: Some(101),
            ..LegSpec::new("1", "a.wav", 0, Codec::Pcmu, anchor)
        }
    }

    fn stream(spec: &LegSpec) -> Stream {
        Stream::new(LegId(7), spec, ms(200), true)
    }

    fn packet_with(pt: u8, sequence: u16, timestamp: u32, ssrc: u32, payload: Vec<u8>) -> Vec<u8> {
        Packet {
            header: Header {
                version: 2,
                payload_type: pt,
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

    fn packet(pt: u8, sequence: u16, timestamp: u32, ssrc: u32, byte: u8) -> Vec<u8> {
        packet_with(pt, sequence, timestamp, ssrc, vec![byte; 160])
    }

    fn event(sequence: u16, timestamp: u32, digit: u8, end: bool, duration: u16) -> Vec<u8> {
        let [high, low] = duration.to_be_bytes();
        let flags = if end { 0x8a } else { 0x0a };
        packet_with(101, sequence, timestamp, 9, vec![digit, flags, high, low])
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn events(stream: &mut Stream) -> Vec<MediaEvent> {
        std::iter::from_fn(|| stream.poll_event()).collect()
    }

    fn frames(out: &Collect) -> Vec<i16> {
        out.0.chunks(160).map(|c| c[0]).collect()
    }

    #[test]
    fn pipeline_counts_and_places() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        // 0x80 decodes to 32124 in μ-law: recognisable against silence.
        let at = |i: u64| anchor + ms(i * 20);
        stream.handle_datagram(at(0), &mut packet(0, 1, 0, 9, 0x80), &mut out);
        stream.handle_datagram(at(2), &mut packet(0, 3, 320, 9, 0x80), &mut out); // 2 before 1: reordered
        stream.handle_datagram(at(2), &mut packet(0, 2, 160, 9, 0x80), &mut out);
        stream.handle_datagram(at(2), &mut packet(0, 2, 160, 9, 0x80), &mut out); // duplicate
        stream.handle_datagram(at(3), &mut packet(101, 4, 480, 9, 0), &mut out); // DTMF: no audio
        stream.handle_datagram(at(4), &mut packet(13, 5, 640, 9, 0), &mut out); // comfort noise
        stream.handle_datagram(at(5), &mut packet(96, 6, 800, 9, 0x80), &mut out); // unknown PT
        stream.handle_datagram(at(7), &mut packet(0, 8, 1120, 9, 0x80), &mut out); // 7 lost
        stream.handle_datagram(at(7), &mut [0x80, 200, 0, 6, 0, 0, 0, 1], &mut out); // rtcp-mux
        stream.handle_datagram(at(7), &mut [0x40; 20], &mut out); // version 1
        stream.handle_datagram(at(7), &mut [0x80; 5], &mut out); // truncated
        stream.handle_rtcp(at(7), &mut [0x80, 201, 0, 1, 0, 0, 0, 9]);
        stream.finish(anchor + ms(200), &mut out);

        let report = stream.counters();
        assert_eq!(report.packets, 8);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.out_of_order, 1);
        assert_eq!(report.lost, 1);
        assert_eq!(report.telephone_events, 1);
        assert_eq!(report.comfort_noise, 1);
        assert_eq!(report.unknown_payload, 1);
        assert_eq!(report.rtcp_packets, 2);
        assert_eq!(report.malformed, 2);
        assert_eq!(stream.committed(), 1600);
        assert_eq!(stream.sample_rate(), 8000);
        assert_eq!(report.ssrcs_seen, 1);
        assert_eq!(report.codec_changes, 0);
        // 60-140 ms (DTMF, CN, unknown PT, loss) and 160-200 ms after the last packet.
        assert_eq!(report.gaps_filled_ms, 120);
        // The DTMF packet's payload is 160 bytes of event 0 without the end bit: reported at
        // the end of the leg.
        assert_eq!(report.dtmf_digits, 1);

        assert_eq!(frames(&out), [32124, 32124, 32124, 0, 0, 0, 0, 32124, 0, 0]);
    }

    fn bound(spec: LegSpec, connection: &str, signalling: &str) -> LegSpec {
        LegSpec {
            sources: crate::AllowedSources {
                connection: Some(connection.parse().unwrap()),
                port: 30000,
                signalling: Some(signalling.parse().unwrap()),
            },
            ..spec
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn media_from_a_source_the_leg_is_not_bound_to_is_counted_and_never_recorded() {
        let anchor = Instant::now();
        let mut stream = stream(&bound(spec(anchor), "192.0.2.10", "198.51.100.1"));
        let mut out = Collect::default();
        let (sbc, stranger) = (addr("192.0.2.10:41000"), addr("203.0.113.9:4000"));
        // The stranger is first: loud audio (0x80) and a whole key press.
        stream.handle_rtp_from(anchor, stranger, &mut packet(0, 1, 0, 77, 0x80), &mut out);
        stream.handle_rtp_from(anchor, stranger, &mut event(2, 0, 5, true, 800), &mut out);
        for i in 0..5u16 {
            let at = anchor + ms(u64::from(i) * 20);
            // The SBC's quiet audio (0x00 decodes to -32124) latches its source.
            let mut genuine = packet(0, 100 + i, u32::from(i) * 160, 9, 0x00);
            stream.handle_rtp_from(at, sbc, &mut genuine, &mut out);
            // The same host from another port, and the signalling address: latched out now.
            stream.handle_rtp_from(
                at,
                addr("192.0.2.10:41002"),
                &mut packet(0, 300 + i, 0, 78, 0x80),
                &mut out,
            );
            stream.handle_rtp_from(
                at,
                addr("198.51.100.1:41000"),
                &mut event(400 + i, 0, 7, true, 800),
                &mut out,
            );
        }
        stream.handle_rtcp_from(anchor, stranger, &mut [0x80, 201, 0, 1, 0, 0, 0, 9]);
        stream.handle_rtcp_from(
            anchor,
            addr("198.51.100.1:41001"),
            &mut [0x80, 201, 0, 1, 0, 0, 0, 9],
        );
        stream.finish(anchor + ms(100), &mut out);
        assert_eq!(frames(&out), [-32124; 5], "only the SBC's audio");
        assert!(
            events(&mut stream).is_empty(),
            "no digit from a foreign source"
        );
        let counters = stream.counters();
        assert_eq!(
            (
                counters.foreign_packets,
                counters.packets,
                counters.telephone_events,
                counters.rtcp_packets
            ),
            (2 + 10 + 1, 5, 0, 1),
            "RTCP latches on its own port"
        );
        assert_eq!(stream.refusals().foreign_packets, 13);
    }

    #[test]
    fn a_re_offer_moving_the_media_rearms_the_latch_on_the_new_address() {
        let anchor = Instant::now();
        let spec = bound(spec(anchor), "192.0.2.10", "198.51.100.1");
        let mut stream = stream(&spec);
        let mut out = Collect::default();
        let (old, new) = (addr("192.0.2.10:41000"), addr("192.0.2.20:42000"));
        stream.handle_rtp_from(anchor, old, &mut packet(0, 1, 0, 9, 0x00), &mut out);
        stream.handle_rtp_from(anchor, new, &mut packet(0, 2, 160, 10, 0x80), &mut out);
        let mut update = LegUpdate::new(0, Codec::Pcmu, true);
        update.telephone_event_pt = Some(101);
        update.sources = bound(spec.clone(), "192.0.2.20", "198.51.100.1").sources;
        stream.handle_update(anchor + ms(20), &update);
        stream.handle_rtp_from(
            anchor + ms(20),
            new,
            &mut packet(0, 2, 160, 10, 0x80),
            &mut out,
        );
        stream.handle_rtp_from(
            anchor + ms(40),
            old,
            &mut packet(0, 3, 320, 9, 0x00),
            &mut out,
        );
        stream.finish(anchor + ms(60), &mut out);
        assert_eq!(frames(&out), [-32124, 32124, 0]);
        assert_eq!(stream.counters().foreign_packets, 2);
    }

    #[test]
    fn a_foreign_packet_on_an_srtp_leg_never_reaches_srtp() {
        let anchor = Instant::now();
        let keying = srtp_keying(crate::SrtpSuite::AesCm128HmacSha1_80, 1);
        let mut sender = srtp_sender(&keying);
        let spec = LegSpec {
            srtp: Some(keying),
            ..bound(spec(anchor), "192.0.2.10", "198.51.100.1")
        };
        let mut stream = stream(&spec);
        let mut out = Collect::default();
        let mut protected = sender
            .encrypt_rtp(&packet(0, 1, 0, 9, 0x00))
            .unwrap()
            .to_vec();
        // Captured and replayed from elsewhere before the SBC's own copy arrives.
        stream.handle_rtp_from(
            anchor,
            addr("203.0.113.9:4000"),
            &mut protected.clone(),
            &mut out,
        );
        stream.handle_rtp_from(anchor, addr("192.0.2.10:41000"), &mut protected, &mut out);
        let counters = stream.counters();
        assert_eq!(
            (
                counters.foreign_packets,
                counters.srtp_auth_failures,
                counters.srtp_replayed,
                counters.packets
            ),
            (1, 0, 0, 1),
            "the genuine packet is not taken for a replay"
        );
    }

    #[test]
    fn an_unbound_leg_records_every_source() {
        let anchor = Instant::now();
        let spec = bound(spec(anchor), "192.0.2.10", "198.51.100.1");
        let mut stream = Stream::new(LegId(7), &spec, ms(200), false);
        let mut out = Collect::default();
        stream.handle_rtp_from(
            anchor,
            addr("203.0.113.9:4000"),
            &mut packet(0, 1, 0, 9, 0x80),
            &mut out,
        );
        stream.handle_rtp_from(
            anchor + ms(20),
            addr("192.0.2.10:41000"),
            &mut packet(0, 2, 160, 9, 0x00),
            &mut out,
        );
        stream.finish(anchor + ms(40), &mut out);
        assert_eq!(frames(&out), [32124, -32124]);
        assert_eq!(stream.counters().foreign_packets, 0);
    }

    #[test]
    fn hold_writes_silence_and_resume_reanchors() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        stream.handle_datagram(anchor, &mut packet(0, 1, 0, 9, 0x80), &mut out);
        let mut hold = LegUpdate::new(0, Codec::Pcmu, false);
        stream.handle_update(anchor + ms(20), &hold);
        stream.handle_datagram(anchor + ms(20), &mut packet(0, 2, 160, 9, 0x80), &mut out);
        stream.handle_tick(anchor + ms(2000), &mut out);
        hold.active = true;
        stream.handle_update(anchor + ms(3000), &hold);
        // The source kept its old timestamps across the hold: placed by the wall clock anyway.
        stream.handle_datagram(anchor + ms(3000), &mut packet(0, 3, 320, 9, 0x80), &mut out);
        stream.finish(anchor + ms(3020), &mut out);
        let frames = frames(&out);
        assert_eq!(frames.len(), 151);
        assert_eq!(frames[0], 32124);
        assert!(frames[1..150].iter().all(|f| *f == 0));
        assert_eq!(frames[150], 32124);
        let report = stream.counters();
        assert_eq!(report.while_inactive, 1);
        assert_eq!(report.gaps_filled_ms, 0, "the hold is not a gap");
    }

    #[test]
    fn codec_change_decodes_with_the_new_table() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        stream.handle_update(anchor, &LegUpdate::new(8, Codec::Pcma, true));
        stream.handle_datagram(anchor, &mut packet(0, 1, 0, 9, 0xd5), &mut out); // old PT: unknown now
        stream.handle_datagram(anchor + ms(20), &mut packet(8, 2, 160, 9, 0xd5), &mut out);
        stream.finish(anchor + ms(40), &mut out);
        assert_eq!(out.0[..160], [0; 160]);
        assert_eq!(out.0[160..], [8; 160]);
        assert_eq!(stream.counters().unknown_payload, 1);
    }

    #[test]
    fn several_payload_types_switch_mid_stream_and_are_counted() {
        let anchor = Instant::now();
        let mut spec = spec(anchor);
        spec.other_formats = vec![AudioFormat {
            payload_type: 8,
            codec: Codec::Pcma,
        }];
        let mut stream = stream(&spec);
        let mut out = Collect::default();
        for (i, (pt, byte)) in [(0, 0x80), (0, 0x80), (8, 0xd5), (8, 0xd5), (0, 0x80)]
            .into_iter()
            .enumerate()
        {
            let i = i as u32;
            stream.handle_datagram(
                anchor + ms(u64::from(i) * 20),
                &mut packet(pt, i as u16, i * 160, 9, byte),
                &mut out,
            );
        }
        stream.finish(anchor + ms(100), &mut out);
        assert_eq!(frames(&out), [32124, 32124, 8, 8, 32124]);
        let report = stream.counters();
        assert_eq!((report.codec_changes, report.unknown_payload), (2, 0));
    }

    #[test]
    fn packet_sizes_come_from_the_payload() {
        // ptime 20, then 30, then 10 ms, on one timestamp scale.
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        let sizes = [
            (0, 160, 0x80),
            (160, 240, 0x00),
            (400, 80, 0x80),
            (480, 160, 0x00),
        ];
        for (i, (timestamp, len, byte)) in sizes.into_iter().enumerate() {
            let at = anchor + ms(u64::from(timestamp) / 8);
            stream.handle_datagram(
                at,
                &mut packet_with(0, i as u16, timestamp, 9, vec![byte; len]),
                &mut out,
            );
        }
        stream.finish(anchor + ms(80), &mut out);
        assert_eq!(out.0.len(), 640);
        assert!(out.0[..160].iter().all(|s| *s == 32124));
        assert!(out.0[160..400].iter().all(|s| *s == -32124));
        assert!(out.0[400..480].iter().all(|s| *s == 32124));
        assert!(out.0[480..].iter().all(|s| *s == -32124));
        assert_eq!(stream.counters().gaps_filled_ms, 0);
    }

    #[test]
    fn codec_of_another_rate_is_resampled_to_the_legs_rate() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        stream.handle_datagram(anchor, &mut packet(0, 1, 0, 9, 0x80), &mut out);
        // Switch to L16 at 16 kHz: 20 ms = 320 samples = 640 bytes, timestamps at 16000.
        let wideband = Codec::L16 {
            channels: 1,
            clock_rate: 16000,
        };
        stream.handle_update(anchor + ms(20), &LegUpdate::new(96, wideband, true));
        let ramp: Vec<u8> = (0..320i16).flat_map(|i| (i * 10).to_be_bytes()).collect();
        stream.handle_datagram(
            anchor + ms(20),
            &mut packet_with(96, 2, 50_000, 9, ramp.clone()),
            &mut out,
        );
        stream.handle_datagram(
            anchor + ms(40),
            &mut packet_with(96, 3, 50_320, 9, ramp),
            &mut out,
        );
        stream.finish(anchor + ms(60), &mut out);
        assert_eq!(stream.sample_rate(), 8000, "the WAV keeps its rate");
        assert_eq!(out.0.len(), 480, "60 ms at 8 kHz");
        // Every other sample of the ramp, twice.
        let expected: Vec<i16> = (0..160).map(|i| i * 20).collect();
        assert_eq!(out.0[160..320], expected[..]);
        assert_eq!(out.0[320..], expected[..]);
        let report = stream.counters();
        assert_eq!((report.resampled_packets, report.codec_changes), (2, 1));
    }

    #[test]
    fn resample_repeats_and_decimates() {
        let mut up = [0i16; 6];
        resample(&[1, 2, 3], &mut up);
        assert_eq!(up, [1, 1, 2, 2, 3, 3]);
        let mut down = [0i16; 2];
        resample(&[1, 2, 3, 4, 5, 6], &mut down);
        assert_eq!(down, [1, 4]);
        let mut odd = [9i16; 3];
        resample(&[], &mut odd);
        assert_eq!(odd, [0; 3]);
    }

    #[test]
    fn ssrc_change_keeps_loss_totals_and_counts_distinct_sources() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        stream.handle_datagram(anchor, &mut packet(0, 1, 0, 9, 0x80), &mut out);
        stream.handle_datagram(anchor + ms(40), &mut packet(0, 3, 320, 9, 0x80), &mut out);
        stream.handle_datagram(anchor + ms(60), &mut packet(0, 900, 7, 10, 0x80), &mut out);
        stream.handle_datagram(
            anchor + ms(80),
            &mut packet(0, 901, 167, 10, 0x80),
            &mut out,
        );
        stream.handle_datagram(anchor + ms(100), &mut packet(0, 4, 800, 9, 0x80), &mut out);
        let report = stream.counters();
        assert_eq!(
            (report.lost, report.ssrc_changes, report.packets),
            (1, 2, 5)
        );
        assert_eq!(report.ssrcs_seen, 2, "9, 10, then 9 again");
    }

    #[test]
    fn ssrcs_beyond_memory_still_count() {
        let mut ssrcs = Ssrcs::default();
        for ssrc in (0..20).chain(0..2).chain(18..20) {
            ssrcs.handle(ssrc);
        }
        // 0 and 1 were forgotten (16 remembered), 18 and 19 were not.
        assert_eq!(ssrcs.seen, 22);
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        // On time, on time, 10 ms late, on time: D = 0, 0, 10 ms, 10 ms.
        for (i, delay) in [0, 0, 10, 0].into_iter().enumerate() {
            let at = anchor + ms(i as u64 * 20 + delay);
            stream.handle_datagram(
                at,
                &mut packet(0, i as u16, i as u32 * 160, 9, 0x80),
                &mut out,
            );
        }
        let first = 10.0 / 16.0;
        let expected = first + (10.0 - first) / 16.0;
        assert!(
            (stream.counters().jitter_ms.unwrap() - expected).abs() < 1e-9,
            "{:?}",
            stream.counters().jitter_ms
        );
    }

    #[test]
    fn jitter_is_unknown_until_two_audio_packets() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        assert_eq!(stream.counters().jitter_ms, None);
        stream.handle_datagram(anchor, &mut packet(0, 1, 0, 9, 0x80), &mut out);
        assert_eq!(
            stream.counters().jitter_ms,
            None,
            "one packet: no difference yet"
        );
        stream.handle_datagram(anchor + ms(20), &mut packet(0, 2, 160, 9, 0x80), &mut out);
        assert_eq!(stream.counters().jitter_ms, Some(0.0));
    }

    #[test]
    fn jitter_is_zero_for_a_steady_stream_and_ignores_timestamp_jumps() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        for i in 0..50u32 {
            // A restart of the timestamps half-way: a discontinuity, not jitter.
            let timestamp = if i < 25 { i * 160 } else { 900_000 + i * 160 };
            stream.handle_datagram(
                anchor + ms(u64::from(i) * 20),
                &mut packet(0, i as u16, timestamp, 9, 0x80),
                &mut out,
            );
        }
        assert_eq!(stream.counters().jitter_ms, Some(0.0));
    }

    #[test]
    fn dtmf_press_is_placed_on_the_audio_timeline() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        // Audio from 40 ms (first packet on arrival), timestamps from 1000.
        for i in 0..20u32 {
            let at = anchor + ms(40 + u64::from(i) * 20);
            stream.handle_datagram(
                at,
                &mut packet(0, i as u16, 1000 + i * 160, 9, 0x80),
                &mut out,
            );
        }
        // Key '#' starting at timestamp 1000 + 800 (100 ms after the first audio: 140 ms on the
        // timeline); its first packet arrives 30 ms late (jitter), then 3 end packets.
        let start = 1800;
        let mut sequence = 100;
        for (at, end, duration) in [
            (170, false, 160),
            (180, false, 320),
            (200, false, 480),
            (220, true, 640),
            (221, true, 640),
            (222, true, 640),
        ] {
            sequence += 1;
            stream.handle_datagram(
                anchor + ms(at),
                &mut event(sequence, start, 11, end, duration),
                &mut out,
            );
        }
        assert_eq!(
            events(&mut stream),
            [MediaEvent::Dtmf {
                leg: LegId(7),
                digit: '#',
                offset_ms: 140,
                duration_ms: 80
            }]
        );
        let report = stream.counters();
        assert_eq!((report.telephone_events, report.dtmf_digits), (6, 1));
    }

    #[test]
    fn dtmf_without_audio_is_placed_by_arrival_minus_duration() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        // Only the end packets arrive, at 500 ms, saying the press lasted 100 ms.
        for sequence in 1..=3 {
            stream.handle_datagram(
                anchor + ms(500),
                &mut event(sequence, 77_000, 3, true, 800),
                &mut out,
            );
        }
        assert_eq!(
            events(&mut stream),
            [MediaEvent::Dtmf {
                leg: LegId(7),
                digit: '3',
                offset_ms: 400,
                duration_ms: 100
            }]
        );
    }

    #[test]
    fn dtmf_with_lost_end_is_reported_on_the_tick() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        stream.handle_datagram(anchor, &mut event(1, 0, 1, false, 160), &mut out);
        stream.handle_datagram(anchor + ms(20), &mut event(2, 0, 1, false, 320), &mut out);
        stream.handle_tick(anchor + ms(1000), &mut out);
        assert!(events(&mut stream).is_empty());
        stream.handle_tick(anchor + ms(1050), &mut out);
        let got = events(&mut stream);
        assert!(
            matches!(
                got[..],
                [MediaEvent::Dtmf {
                    digit: '1',
                    duration_ms: 40,
                    ..
                }]
            ),
            "{got:?}"
        );
    }

    #[test]
    fn dtmf_capture_off_reports_nothing() {
        let anchor = Instant::now();
        let mut spec = spec(anchor);
        spec.capture_dtmf = false;
        let mut stream = stream(&spec);
        let mut out = Collect::default();
        for sequence in 1..=3 {
            stream.handle_datagram(anchor, &mut event(sequence, 0, 4, true, 800), &mut out);
        }
        stream.finish(anchor + ms(100), &mut out);
        assert!(events(&mut stream).is_empty());
        let report = stream.counters();
        assert_eq!((report.telephone_events, report.dtmf_digits), (3, 0));
        assert!(out.0.iter().all(|s| *s == 0), "events never become audio");
    }

    #[test]
    fn inactivity_is_reported_once_and_rearmed_by_packets() {
        let anchor = Instant::now();
        let mut spec = spec(anchor);
        spec.inactivity_timeout = Some(ms(300));
        let mut stream = stream(&spec);
        let mut out = Collect::default();
        let mut inactive = Vec::new();
        let mut tick = |stream: &mut Stream, at: u64| {
            stream.handle_tick(anchor + ms(at), &mut out);
            inactive.extend(events(stream).into_iter().map(|e| (at, e)));
        };
        for at in (0..=600).step_by(50) {
            tick(&mut stream, at);
        }
        stream.handle_datagram(
            anchor + ms(620),
            &mut packet(0, 1, 0, 9, 0x80),
            &mut Collect::default(),
        );
        for at in (650..=1000).step_by(50) {
            tick(&mut stream, at);
        }
        let expected = [(300, ms(300)), (950, ms(330))].map(|(at, silent_for)| {
            (
                at,
                MediaEvent::Inactive {
                    leg: LegId(7),
                    silent_for,
                },
            )
        });
        assert_eq!(inactive, expected);
    }

    #[test]
    fn held_legs_never_report_inactivity_and_resume_rearms() {
        let anchor = Instant::now();
        let mut spec = spec(anchor);
        spec.inactivity_timeout = Some(ms(300));
        spec.active = false;
        let mut stream = stream(&spec);
        let mut out = Collect::default();
        for at in (0..=2000).step_by(50) {
            stream.handle_tick(anchor + ms(at), &mut out);
        }
        assert!(events(&mut stream).is_empty());
        stream.handle_update(anchor + ms(2000), &LegUpdate::new(0, Codec::Pcmu, true));
        stream.handle_tick(anchor + ms(2250), &mut out);
        assert!(events(&mut stream).is_empty(), "counted from the resume");
        stream.handle_tick(anchor + ms(2300), &mut out);
        assert_eq!(
            events(&mut stream),
            [MediaEvent::Inactive {
                leg: LegId(7),
                silent_for: ms(300)
            }]
        );
        stream.finish(anchor + ms(2300), &mut out);
        assert_eq!(
            stream.counters().gaps_filled_ms,
            300,
            "only the active, silent part"
        );
    }

    /// `count` samples of a sine tone at `rate`, from sample `start`.
    fn tone(frequency: f64, rate: u32, start: usize, count: usize) -> Vec<i16> {
        (start..start + count)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (8000.0 * (2.0 * std::f64::consts::PI * frequency * t).sin()) as i16
            })
            .collect()
    }

    /// Relative power of `frequency` in `samples` at `rate` (Goertzel).
    fn power(samples: &[i16], rate: u32, frequency: f64) -> f64 {
        let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / f64::from(rate)).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for sample in samples {
            let s0 = f64::from(*sample) + coefficient * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coefficient * s1 * s2
    }

    /// Encodes `ms` of a tone with `codec` starting at `elapsed_ms`, as one payload.
    fn encoded(codec: Codec, frequency: f64, elapsed_ms: u32, ms: u32) -> Vec<u8> {
        let rate = codec.sample_rate();
        let per_ms = (rate / 1000) as usize;
        let pcm = tone(
            frequency,
            rate,
            elapsed_ms as usize * per_ms,
            ms as usize * per_ms,
        );
        let mut encoder = callvault_codec::Encoder::new(codec).unwrap();
        let mut payload = Vec::new();
        encoder.encode(&pcm, &mut payload).unwrap();
        payload
    }

    #[test]
    fn g722_leg_records_16khz_audio_on_an_8khz_clock() {
        let anchor = Instant::now();
        let mut stream = stream(&LegSpec::new("g722", "g.wav", 9, Codec::G722, anchor));
        let mut out = Collect::default();
        // One encoder for the whole stream: G.722 is stateful.
        let mut encoder = callvault_codec::Encoder::new(Codec::G722).unwrap();
        let mut payload = Vec::new();
        for i in 0..50u32 {
            encoder
                .encode(&tone(1000.0, 16000, i as usize * 320, 320), &mut payload)
                .unwrap();
            assert_eq!(payload.len(), 160);
            let at = anchor + ms(u64::from(i) * 20);
            let mut datagram = packet_with(9, i as u16, 7000 + i * 160, 9, payload.clone());
            stream.handle_datagram(at, &mut datagram, &mut out);
        }
        stream.finish(anchor + ms(1000), &mut out);
        let report = stream.counters();
        assert_eq!((stream.sample_rate(), stream.committed()), (16000, 16000));
        assert_eq!((report.gaps_filled_ms, report.decode_errors), (0, 0));
        let middle = &out.0[4000..12000];
        assert!(power(middle, 16000, 1000.0) > 100.0 * power(middle, 16000, 3000.0));
    }

    #[test]
    fn opus_leg_follows_ptime_changes() {
        let anchor = Instant::now();
        let mut stream = stream(&LegSpec::new("opus", "o.wav", 111, Codec::Opus, anchor));
        let mut out = Collect::default();
        // 20 ms, 60 ms, 10 ms, 20 ms packets: timestamps at 48 kHz, sizes from the decoder.
        let mut elapsed = 0u32;
        for (i, ptime) in [20u32, 60, 10, 20, 20, 60, 10].into_iter().enumerate() {
            let payload = encoded(Codec::Opus, 440.0, elapsed, ptime);
            let mut datagram = packet_with(111, i as u16, 1000 + elapsed * 48, 9, payload);
            stream.handle_datagram(anchor + ms(u64::from(elapsed)), &mut datagram, &mut out);
            elapsed += ptime;
        }
        stream.finish(anchor + ms(u64::from(elapsed)), &mut out);
        let report = stream.counters();
        assert_eq!(stream.sample_rate(), 48000);
        assert_eq!(stream.committed(), u64::from(elapsed) * 48);
        assert_eq!((report.gaps_filled_ms, report.decode_errors), (0, 0));
        let middle = &out.0[2400..8000];
        assert!(power(middle, 48000, 440.0) > 100.0 * power(middle, 48000, 1000.0));
    }

    #[test]
    fn mid_call_switch_to_opus_is_resampled_into_the_8khz_file() {
        let anchor = Instant::now();
        let mut spec = spec(anchor);
        spec.other_formats = vec![AudioFormat {
            payload_type: 111,
            codec: Codec::Opus,
        }];
        let mut stream = stream(&spec);
        let mut out = Collect::default();
        stream.handle_datagram(anchor, &mut packet(0, 1, 0, 9, 0xff), &mut out);
        // The sender switches to Opus (another clock: the timeline re-anchors on arrival).
        for i in 0..25u32 {
            let payload = encoded(Codec::Opus, 440.0, i * 20, 20);
            let mut datagram = packet_with(111, 2 + i as u16, 90_000 + i * 960, 9, payload);
            stream.handle_datagram(anchor + ms(20 + u64::from(i) * 20), &mut datagram, &mut out);
        }
        stream.finish(anchor + ms(520), &mut out);
        let report = stream.counters();
        assert_eq!((stream.sample_rate(), stream.committed()), (8000, 4160));
        assert_eq!((report.resampled_packets, report.codec_changes), (25, 1));
        assert_eq!(report.gaps_filled_ms, 0);
        let middle = &out.0[800..4000];
        assert!(power(middle, 8000, 440.0) > 100.0 * power(middle, 8000, 1000.0));
    }

    #[test]
    fn undecodable_payloads_are_counted_and_left_silent() {
        let anchor = Instant::now();
        let l16 = Codec::L16 {
            channels: 1,
            clock_rate: 8000,
        };
        let mut stream = stream(&LegSpec::new("l16", "l.wav", 96, l16, anchor));
        let mut out = Collect::default();
        // An odd number of bytes is no L16 payload.
        stream.handle_datagram(
            anchor,
            &mut packet_with(96, 1, 0, 9, vec![1; 321]),
            &mut out,
        );
        stream.handle_datagram(
            anchor + ms(20),
            &mut packet_with(96, 2, 160, 9, vec![1; 320]),
            &mut out,
        );
        stream.finish(anchor + ms(40), &mut out);
        assert_eq!(stream.counters().decode_errors, 1);
        assert_eq!(frames(&out), [0, 0x0101]);
    }

    /// A key for the SRTP tests: `seed` makes distinct keys.
    fn srtp_keying(suite: crate::SrtpSuite, seed: u8) -> crate::SrtpKeying {
        let bytes: Vec<u8> = (0..suite.key_len() + suite.salt_len())
            .map(|i| seed ^ (i as u8).wrapping_mul(29))
            .collect();
        crate::SrtpKeying::new(suite, &bytes).unwrap()
    }

    /// The independent implementation the SRC side is played with.
    fn srtp_sender(keying: &crate::SrtpKeying) -> webrtc_srtp::context::Context {
        use webrtc_srtp::protection_profile::ProtectionProfile;
        let profile = match keying.suite() {
            crate::SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            crate::SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            crate::SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            crate::SrtpSuite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
        };
        webrtc_srtp::context::Context::new(
            keying.master_key(),
            keying.master_salt(),
            profile,
            None,
            None,
        )
        .unwrap()
    }

    /// Audio that changes every sample (a μ-law ramp), so a misplaced or altered packet shows.
    fn ramp(sequence: u16) -> Vec<u8> {
        (0..160u16)
            .map(|i| (sequence.wrapping_mul(7).wrapping_add(i)) as u8)
            .collect()
    }

    #[test]
    fn an_srtp_leg_records_what_a_plain_leg_records_and_drops_forgeries() {
        for suite in crate::SrtpSuite::ALL {
            let anchor = Instant::now();
            let keying = srtp_keying(*suite, 1);
            let mut sender = srtp_sender(&keying);
            let mut plain = stream(&spec(anchor));
            let mut secure = stream(&LegSpec {
                srtp: Some(keying.clone()),
                ..spec(anchor)
            });
            let (mut plain_out, mut secure_out) = (Collect::default(), Collect::default());
            // Someone without the key sends a key press and loud audio.
            let mut stranger = srtp_sender(&srtp_keying(*suite, 2));
            for n in 0..50u16 {
                let at = anchor + ms(u64::from(n) * 20);
                let clear = packet_with(0, 100 + n, u32::from(n) * 160, 9, ramp(n));
                let mut protected = sender.encrypt_rtp(&clear).unwrap().to_vec();
                assert_ne!(protected[12..172], clear[12..], "{suite}: encrypted");
                plain.handle_datagram(at, &mut clear.clone(), &mut plain_out);
                if n == 20 {
                    // One flipped bit: dropped; the genuine packet right after fills its place.
                    let mut tampered = protected.clone();
                    tampered[40] ^= 0x04;
                    secure.handle_datagram(at, &mut tampered, &mut secure_out);
                }
                secure.handle_datagram(at, &mut protected.clone(), &mut secure_out);
                if n == 30 {
                    // Replayed as captured off the wire.
                    secure.handle_datagram(at, &mut protected, &mut secure_out);
                    let mut forged = stranger
                        .encrypt_rtp(&event(100 + n + 1, u32::from(n) * 160, 5, true, 800))
                        .unwrap()
                        .to_vec();
                    secure.handle_datagram(at, &mut forged, &mut secure_out);
                    let mut loud = stranger
                        .encrypt_rtp(&packet(0, 200, 9000, 9, 0x80))
                        .unwrap()
                        .to_vec();
                    secure.handle_datagram(at, &mut loud, &mut secure_out);
                }
            }
            let mut report = sender
                .encrypt_rtcp(&[0x80, 201, 0, 1, 0, 0, 0, 9])
                .unwrap()
                .to_vec();
            secure.handle_datagram(anchor, &mut report.clone(), &mut secure_out);
            report[9] ^= 1;
            secure.handle_rtcp(anchor, &mut report);
            plain.finish(anchor + ms(1000), &mut plain_out);
            secure.finish(anchor + ms(1000), &mut secure_out);
            assert!(plain_out.0.iter().any(|s| *s != 0));
            assert_eq!(secure_out.0, plain_out.0, "{suite}: bit-exact");
            assert!(events(&mut secure).is_empty(), "{suite}: no forged digit");
            let counters = secure.counters();
            assert_eq!(
                (
                    counters.packets,
                    counters.srtp_auth_failures,
                    counters.srtp_replayed,
                    counters.telephone_events,
                    counters.rtcp_packets,
                    counters.srtcp_auth_failures,
                ),
                (50, 3, 1, 0, 1, 1),
                "{suite}"
            );
        }
    }

    #[test]
    fn a_re_key_mid_stream_keeps_the_audio_continuous() {
        let anchor = Instant::now();
        let old = srtp_keying(crate::SrtpSuite::AesCm128HmacSha1_80, 3);
        let new = srtp_keying(crate::SrtpSuite::AeadAes256Gcm, 4);
        let (mut old_sender, mut new_sender) = (srtp_sender(&old), srtp_sender(&new));
        let mut plain = stream(&spec(anchor));
        let mut secure = stream(&LegSpec {
            srtp: Some(old.clone()),
            ..spec(anchor)
        });
        let (mut plain_out, mut secure_out) = (Collect::default(), Collect::default());
        let mut update = LegUpdate::new(0, Codec::Pcmu, true);
        update.telephone_event_pt = Some(101);
        update.srtp = Some(new.clone());
        let mut straggler = None;
        for n in 0..100u16 {
            let at = anchor + ms(u64::from(n) * 20);
            let clear = packet_with(0, 500 + n, u32::from(n) * 160, 9, ramp(n));
            plain.handle_datagram(at, &mut clear.clone(), &mut plain_out);
            if n == 50 {
                secure.handle_update(at, &update);
            }
            // The SRC reads the answer a moment after the update: two more packets under the
            // old key, the last of them late.
            let mut protected = if n < 52 {
                old_sender.encrypt_rtp(&clear).unwrap().to_vec()
            } else {
                new_sender.encrypt_rtp(&clear).unwrap().to_vec()
            };
            if n == 51 {
                straggler = Some(protected);
                continue;
            }
            secure.handle_datagram(at, &mut protected, &mut secure_out);
            if n == 53 {
                secure.handle_datagram(at, straggler.as_mut().unwrap(), &mut secure_out);
            }
        }
        // The same key in a later re-offer keeps the replay state: packets already received,
        // sent again, stay refused (a new context would take the first as new).
        secure.handle_update(anchor + ms(2000), &update);
        let mut replay = new_sender
            .encrypt_rtp(&packet_with(0, 599, 99 * 160, 9, ramp(99)))
            .unwrap()
            .to_vec();
        secure.handle_datagram(anchor + ms(2000), &mut replay.clone(), &mut secure_out);
        secure.handle_datagram(anchor + ms(2000), &mut replay, &mut secure_out);
        plain.handle_datagram(
            anchor + ms(2000),
            &mut packet_with(0, 599, 99 * 160, 9, ramp(99)),
            &mut plain_out,
        );
        plain.finish(anchor + ms(2100), &mut plain_out);
        secure.finish(anchor + ms(2100), &mut secure_out);
        assert_eq!(secure_out.0, plain_out.0);
        let counters = secure.counters();
        assert_eq!(
            (counters.srtp_auth_failures, counters.srtp_replayed),
            (0, 2)
        );
        assert_eq!(counters.lost, 0);
    }
}
