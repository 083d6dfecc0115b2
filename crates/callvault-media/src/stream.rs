//! The per-leg pipeline, free of I/O: datagram → header → sequence → payload dispatch → decode →
//! resample → timeline, plus DTMF detection, quality figures and inactivity. One receive thread
//! owns each `Stream`; tests drive it with synthetic packets and instants. Events for the control
//! plane are queued here (at most a few per packet or tick) and taken with [`Stream::poll_event`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callvault_codec::MAX_FRAME_SAMPLES;

use crate::codec::{AudioFormat, COMFORT_NOISE_PT, CodecKind};
use crate::dtmf::{DtmfDetector, DtmfPress};
use crate::resample::Resampler;
use crate::rtp::{RtpHeader, is_rtcp};
use crate::sequence::SequenceOutcome;
use crate::source::{Admission, ForeignLog, Port, SourceLatch};
use crate::srtp::{PROTECT_OVERHEAD, Refusal, SrtpReceiver, SrtpSender};
use crate::ssrc::{LastPacket, Sources};
use crate::timeline::{Fill, Placement, REANCHOR_AFTER, Sink, Timeline};
use crate::{CallIds, LegCounters, LegId, LegSpec, LegUpdate, MediaEvent};

/// Audio payload types a leg accepts; further formats offered are ignored.
const MAX_FORMATS: usize = 16;
/// Events a stream can queue between two drains: a packet ends at most two presses; a tick one
/// press and one inactivity.
const EVENT_QUEUE: usize = 4;
/// Loss is concealed for at most this long from where the audio stopped; beyond, silence. The
/// waveform repetition of G.711/G.722/L16 has faded out by then anyway (ITU-T G.711 Appendix I
/// reaches silence at 60 ms); Opus's and G.729's own concealment is cut there too, so no codec
/// invents more than 60 ms of a conversation.
pub(crate) const CONCEAL_LIMIT: Duration = Duration::from_millis(60);
/// A resampled source quiet this long has the end of its run flushed to the timeline, well
/// before the window commits it.
const RESAMPLER_FLUSH_AFTER: Duration = Duration::from_millis(100);
/// Marks a payload type with no decoder in [`Formats::by_payload_type`].
const NO_FORMAT: u8 = u8::MAX;

/// What the payload type of a packet means on this leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payload {
    /// Index into [`Formats::formats`].
    Audio(usize),
    TelephoneEvent,
    ComfortNoise,
    Unknown,
}

/// The leg's audio payload types, dispatched by table. Each source has its own decoders.
#[derive(Debug)]
struct Formats {
    formats: Vec<AudioFormat>,
    by_payload_type: [u8; 128],
}

impl Formats {
    /// Built on start and on updates, never per packet. The first format of a payload type wins.
    fn new(formats: impl IntoIterator<Item = AudioFormat>) -> Formats {
        let mut kept = Vec::new();
        let mut by_payload_type = [NO_FORMAT; 128];
        for format in formats {
            let slot = usize::from(format.payload_type & 0x7f);
            if format.payload_type > 127
                || by_payload_type[slot] != NO_FORMAT
                || kept.len() >= MAX_FORMATS
            {
                continue;
            }
            by_payload_type[slot] = kept.len() as u8;
            kept.push(format);
        }
        Formats {
            formats: kept,
            by_payload_type,
        }
    }

    fn find(&self, payload_type: u8) -> Option<usize> {
        let index = *self.by_payload_type.get(usize::from(payload_type))?;
        (index != NO_FORMAT).then_some(usize::from(index))
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
    /// Each SSRC's sequence, decoders, jitter and lane.
    ssrcs: Sources,
    timeline: Timeline,
    /// The counters kept per packet; those derived from other state (loss, DTMF, timeline,
    /// jitter) are filled in by [`Stream::counters`].
    counters: LegCounters,
    last_audio: Option<AudioFormat>,
    /// Decoded samples of the current packet: allocated once, reused for every packet.
    scratch: Vec<i16>,
    events: VecDeque<MediaEvent>,
    /// Authenticates and decrypts SRTP before anything else reads a packet; passes plain RTP.
    srtp: SrtpReceiver,
    /// A relayed leg: protects what it forwards (plain when unkeyed).
    forward: SrtpSender,
    /// Where a forwarded packet is protected: allocated once when the leg gets a forwarding
    /// key, reused for every packet; empty otherwise.
    forward_buffer: Vec<u8>,
    /// Which sources the leg takes datagrams from, checked before anything else.
    sources: SourceLatch,
    /// Conceal lost packets (as [`crate::MediaConfig::conceal_loss`]).
    conceal_loss: bool,
    foreign_log: ForeignLog,
}

impl Stream {
    /// `bind_to_source`, `conceal_loss`: as [`crate::MediaConfig::bind_to_source`] and
    /// [`crate::MediaConfig::conceal_loss`].
    pub fn new(
        leg: LegId,
        spec: &LegSpec,
        window: Duration,
        bind_to_source: bool,
        conceal_loss: bool,
    ) -> Stream {
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
                std::iter::once(primary).chain(spec.other_formats.iter().copied()),
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
            ssrcs: Sources::default(),
            timeline,
            counters: LegCounters::default(),
            last_audio: None,
            // 120 ms at 48 kHz: a packet that decodes to more is a decode error.
            scratch: vec![0; MAX_FRAME_SAMPLES],
            events: VecDeque::with_capacity(EVENT_QUEUE),
            srtp: SrtpReceiver::new(spec.srtp.as_ref()),
            forward: SrtpSender::new(spec.srtp_forward.as_ref()),
            forward_buffer: forward_buffer(spec.srtp_forward.is_some()),
            sources: SourceLatch::new(bind_to_source, spec.sources),
            conceal_loss,
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

    /// Where the leg's media may come from now (its SDP's address, for a relay).
    pub(crate) fn sources(&self) -> crate::AllowedSources {
        self.sources.allowed()
    }

    /// As [`Stream::handle_rtp_from`] for a relayed leg: an admitted datagram is handed to
    /// `forward`, then recorded. Plain RTP both ways goes out as it arrived (before anything
    /// else reads it, RFC 4733 events included). With SRTP on either side, only a packet that
    /// authenticated is forwarded: decrypted in place, then (when the other side has a key of
    /// ours) protected again in the leg's forward buffer; RTCP is then not forwarded.
    pub fn handle_rtp_relayed(
        &mut self,
        arrival: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        sink: &mut impl Sink,
        forward: impl FnOnce(&[u8]),
    ) {
        if !self.admit(Port::Rtp, from) {
            return;
        }
        if !self.srtp.is_keyed() && !self.forward.is_keyed() {
            forward(datagram);
            self.handle_datagram(arrival, datagram, sink);
            return;
        }
        if is_rtcp(datagram) {
            self.handle_rtcp(arrival, datagram);
            return;
        }
        let Some(len) = self.unprotect(arrival, datagram) else {
            return;
        };
        let plain = &datagram[..len];
        if !self.forward.is_keyed() {
            forward(plain);
        } else if let Some(out) = self.forward_buffer.get_mut(..len + PROTECT_OVERHEAD) {
            out[..len].copy_from_slice(plain);
            match self.forward.protect_rtp(out, len) {
                Ok(protected) => forward(&out[..protected]),
                Err(_) => self.counters.malformed += 1,
            }
        } else {
            // Larger than any RTP packet over an Ethernet MTU: recorded, not forwarded, and
            // counted as malformed (no real phone sends it).
            self.counters.malformed += 1;
        }
        self.handle_plain_rtp(arrival, plain, sink);
    }

    /// As [`Stream::handle_rtcp_from`] for a relayed leg: forwarded when neither side uses
    /// SRTP (SRTCP is authenticated, not decrypted, so it cannot be protected again).
    pub fn handle_rtcp_relayed(
        &mut self,
        arrival: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        forward: impl FnOnce(&[u8]),
    ) {
        if self.admit(Port::Rtcp, from) {
            if !self.srtp.is_keyed() && !self.forward.is_keyed() {
                forward(datagram);
            }
            self.handle_rtcp(arrival, datagram);
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
        let Some(len) = self.unprotect(arrival, datagram) else {
            return;
        };
        self.handle_plain_rtp(arrival, &datagram[..len], sink);
    }

    /// SRTP's check and decryption in place: the plain packet's length, or `None` when the
    /// packet is dropped (and counted).
    fn unprotect(&mut self, arrival: Instant, datagram: &mut [u8]) -> Option<usize> {
        match self.srtp.unprotect_rtp(arrival, datagram) {
            Ok(len) => Some(len),
            Err(Refusal::Malformed) => {
                self.counters.malformed += 1;
                None
            }
            Err(Refusal::Authentication) => {
                self.counters.srtp_auth_failures += 1;
                None
            }
            Err(Refusal::Replayed) => {
                self.counters.srtp_replayed += 1;
                None
            }
        }
    }

    /// One plain (or decrypted) RTP packet.
    fn handle_plain_rtp(&mut self, arrival: Instant, datagram: &[u8], sink: &mut impl Sink) {
        let Ok(header) = RtpHeader::parse(datagram) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.packets += 1;
        // Any RTP re-arms the inactivity alarm, even on hold or duplicated.
        self.silent_since = Some(arrival);
        self.inactive_reported = false;
        let at_ms = self.offset_ms(arrival);
        let payload_kind = self.classify(header.payload_type);
        let Some(source) =
            self.ssrcs
                .handle_packet(header.ssrc, arrival, at_ms, &mut self.timeline)
        else {
            self.counters.packets_beyond_sources += 1;
            return;
        };
        let in_order = match source.sequence.handle(header.sequence) {
            SequenceOutcome::Duplicate => {
                self.counters.duplicates += 1;
                return;
            }
            SequenceOutcome::OutOfOrder => {
                self.counters.out_of_order += 1;
                false
            }
            SequenceOutcome::InOrder | SequenceOutcome::Jump => true,
        };
        if !self.active {
            // On hold the SDP says no media; stray packets are counted, not recorded.
            self.counters.while_inactive += 1;
            return;
        }
        let payload = &datagram[header.payload.clone()];
        let Payload::Audio(index) = payload_kind else {
            if in_order {
                // No audio: a gap after it is not loss to conceal.
                source.last = Some(LastPacket {
                    sequence: header.sequence,
                    audio: None,
                });
            }
            match payload_kind {
                Payload::TelephoneEvent => self.handle_telephone_event(arrival, &header, payload),
                // Silence is what the timeline commits where no audio landed.
                Payload::ComfortNoise => self.counters.comfort_noise += 1,
                Payload::Unknown | Payload::Audio(_) => self.counters.unknown_payload += 1,
            }
            return;
        };
        self.handle_audio(arrival, &header, in_order, index, payload, sink);
    }

    /// Milliseconds from the leg's offset 0 to `at` (0 before it).
    fn offset_ms(&self, at: Instant) -> u64 {
        let rate = i64::from(self.timeline.rate().max(1));
        (self.timeline.position(at).max(0) * 1000 / rate) as u64
    }

    fn handle_audio(
        &mut self,
        arrival: Instant,
        header: &RtpHeader,
        in_order: bool,
        index: usize,
        payload: &[u8],
        sink: &mut impl Sink,
    ) {
        let format = self.formats.formats[index];
        if self.last_audio.is_some_and(|last| last != format) {
            self.counters.codec_changes += 1;
        }
        self.last_audio = Some(format);
        let source = self
            .ssrcs
            .find(header.ssrc)
            .expect("the packet's source was added by handle_datagram");
        let (lane, last) = (source.lane, source.last);
        let clock = format.codec.rtp_clock_rate();
        let (from, to) = (format.codec.sample_rate(), self.timeline.rate());
        let resampler = &mut source.resampler;
        let decoded = source
            .decoders
            .get(format, &self.label, &self.call)
            .and_then(|decoder| {
                if self.conceal_loss && in_order {
                    // A loss just before this packet: concealed first, since Opus's FEC and every
                    // codec's state go in packet order.
                    let gap = last.and_then(|last| {
                        lost_audio(last, header.sequence).and_then(|(end, len)| {
                            let position = self.timeline.expected_position(
                                arrival,
                                lane,
                                header.ssrc,
                                header.timestamp,
                                clock,
                            )?;
                            let limit = i64::from(to) * CONCEAL_LIMIT.as_millis() as i64 / 1000;
                            Some((end, (position - end).min(len).min(limit)))
                        })
                    });
                    if let Some((end, len)) = gap.filter(|(_, len)| *len > 0) {
                        let wanted = (len as u64 * u64::from(from) / u64::from(to.max(1))) as usize;
                        let out = &mut self.scratch[..wanted.min(MAX_FRAME_SAMPLES)];
                        let concealed = decoder.conceal(Some(payload), out);
                        if concealed > 0 {
                            let pcm = &out[..concealed];
                            let timeline = &mut self.timeline;
                            place(
                                timeline,
                                resampler,
                                lane,
                                end,
                                (pcm, from),
                                Fill::Concealment,
                                sink,
                            );
                        }
                    }
                }
                decoder.decode(payload, &mut self.scratch).ok()
            });
        let Some(count) = decoded else {
            // Nothing placed: the timeline records silence there.
            self.counters.decode_errors += 1;
            if in_order {
                source.last = Some(LastPacket {
                    sequence: header.sequence,
                    audio: None,
                });
            }
            return;
        };
        source.jitter.handle(arrival, header.timestamp, clock);
        let position =
            self.timeline
                .anchor_packet(arrival, lane, header.ssrc, header.timestamp, clock);
        if from != to {
            self.counters.resampled_packets += 1;
        }
        let len = (count as u64 * u64::from(to) / u64::from(from.max(1))) as i64;
        let pcm = (&self.scratch[..count], from);
        let placement = place(
            &mut self.timeline,
            &mut source.resampler,
            lane,
            position,
            pcm,
            Fill::Audio,
            sink,
        );
        if placement == Placement::Late {
            self.counters.late += 1;
        }
        if in_order {
            let source = self
                .ssrcs
                .find(header.ssrc)
                .expect("the packet's source was added by handle_datagram");
            source.last = Some(LastPacket {
                sequence: header.sequence,
                audio: Some((position + len, len)),
            });
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
        self.flush_resamplers(Some(now), sink);
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
        self.formats =
            Formats::new(std::iter::once(primary).chain(update.other_formats.iter().copied()));
        self.ssrcs.retain_formats(&self.formats.formats);
        self.primary = primary;
        if update.active != self.active {
            // After a hold, sources may restart their timestamps: place the next packet by the
            // wall clock.
            self.timeline.reanchor();
            self.timeline.handle_hold(now, !update.active);
            // Nothing across a hold is loss to conceal.
            for source in self.ssrcs.iter_mut() {
                source.last = None;
            }
            // Silence counts from the resume, not from the last packet before the hold.
            self.silent_since = Some(now);
            self.inactive_reported = false;
        }
        self.srtp.rekey(now, update.srtp.as_ref());
        self.forward.rekey(update.srtp_forward.as_ref());
        if update.srtp_forward.is_some() && self.forward_buffer.is_empty() {
            self.forward_buffer = forward_buffer(true);
        }
        self.sources.handle_update(update.sources);
        self.telephone_event_pt = update.telephone_event_pt;
        self.telephone_event_clock = event_clock(update.telephone_event_clock);
        if let Some(detector) = &mut self.dtmf {
            detector.set_clock_rate(self.telephone_event_clock);
        }
        self.active = update.active;
    }

    /// Hands the timeline the end of each resampled run whose source has been quiet for
    /// [`RESAMPLER_FLUSH_AFTER`] at `now` (every run when `None`, at the end).
    fn flush_resamplers(&mut self, now: Option<Instant>, sink: &mut impl Sink) {
        for source in self.ssrcs.iter_mut() {
            let quiet = now.is_none_or(|now| {
                now.saturating_duration_since(source.last_arrival()) >= RESAMPLER_FLUSH_AFTER
            });
            if let Some(resampler) = source.resampler.as_mut().filter(|r| quiet && r.is_open()) {
                let (timeline, lane) = (&mut self.timeline, source.lane);
                resampler.flush(&mut |at, out| {
                    timeline.place(lane, at, out, Fill::Audio, sink);
                });
            }
        }
    }

    /// Commits the timeline up to `end` exactly; a key press still open is reported.
    pub fn finish(&mut self, end: Instant, sink: &mut impl Sink) {
        self.flush_resamplers(None, sink);
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

    /// The leg's codec (its first format) and the RTP packets it took so far, for the engine's
    /// per-codec totals (read on the tick).
    pub(crate) fn packets_by_codec(&self) -> (Option<CodecKind>, u64) {
        (
            self.formats.formats.first().map(|format| format.codec),
            self.counters.packets,
        )
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
        let mut counters = LegCounters {
            dtmf_digits: dtmf.map_or(0, DtmfDetector::presses),
            telephone_events_other: dtmf.map_or(0, DtmfDetector::other_events),
            telephone_events_malformed: dtmf.map_or(0, DtmfDetector::malformed),
            reanchors: self.timeline.reanchors(),
            gaps_filled_ms: self.timeline.gap_samples() * 1000 / rate,
            concealed_ms: self.timeline.concealed_samples() * 1000 / rate,
            ..self.counters.clone()
        };
        self.ssrcs.report(&mut counters);
        counters
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
/// Room for one forwarded SRTP packet: any RTP packet over an Ethernet MTU and its tag.
const FORWARD_BUFFER: usize = 2048;

/// A leg's forward buffer: [`FORWARD_BUFFER`] bytes when it protects what it forwards.
fn forward_buffer(keyed: bool) -> Vec<u8> {
    if keyed {
        vec![0; FORWARD_BUFFER + PROTECT_OVERHEAD]
    } else {
        Vec::new()
    }
}

fn event_clock(clock: u32) -> u32 {
    if clock == 0 {
        crate::DEFAULT_TELEPHONE_EVENT_CLOCK
    } else {
        clock
    }
}

/// The audio `(end, length)` of a source's last packet, when `sequence` says packets were lost
/// right after it (not comfort noise, not events, not a jump too large to be loss).
fn lost_audio(last: LastPacket, sequence: u16) -> Option<(i64, i64)> {
    let missing = sequence.wrapping_sub(last.sequence).wrapping_sub(1);
    let (end, len) = last.audio?;
    // As many packets as went missing, each as long as the last one (DTX has no gap in the
    // sequence numbers, so it is never concealed).
    (1..3000)
        .contains(&missing)
        .then(|| (end, len.saturating_mul(i64::from(missing))))
}

/// Places `pcm` (at `from` Hz) at leg `position` in `lane`: as it is at the leg's rate, else
/// through the source's resampler, created (or replaced, its last run flushed) when the rates
/// change. Audio of rates the resampler refuses is not placed.
fn place(
    timeline: &mut Timeline,
    resampler: &mut Option<Resampler>,
    lane: usize,
    position: i64,
    (pcm, from): (&[i16], u32),
    fill: Fill,
    sink: &mut impl Sink,
) -> Placement {
    let to = timeline.rate();
    let stale = resampler
        .as_ref()
        .is_some_and(|r| r.is_open() && (from == to || r.rates() != (from, to)));
    if stale && let Some(old) = resampler.as_mut() {
        old.flush(&mut |at, out| {
            timeline.place(lane, at, out, Fill::Audio, sink);
        });
    }
    if from == to {
        return timeline.place(lane, position, pcm, fill, sink);
    }
    if resampler.as_ref().is_none_or(|r| r.rates() != (from, to)) {
        // Allocated here, once per source and rate change, never per packet.
        *resampler = Resampler::new(from, to);
    }
    let Some(resampler) = resampler else {
        return Placement::Placed;
    };
    let mut placement = Placement::Placed;
    resampler.process(position, pcm, &mut |at, out| {
        if timeline.place(lane, at, out, fill, sink) == Placement::Late {
            placement = Placement::Late;
        }
    });
    placement
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::test_signal::{power, tone};
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
        Stream::new(LegId(7), spec, ms(200), true, true)
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
    fn a_relayed_srtp_leg_forwards_under_its_own_key_and_drops_forgeries() {
        let anchor = Instant::now();
        let theirs = srtp_keying(crate::SrtpSuite::AesCm128HmacSha1_80, 1);
        let ours = srtp_keying(crate::SrtpSuite::AeadAes128Gcm, 2);
        let mut sender = srtp_sender(&theirs);
        let mut far_end = srtp_sender(&ours);
        let spec = LegSpec {
            srtp: Some(theirs),
            srtp_forward: Some(ours),
            ..bound(spec(anchor), "192.0.2.10", "198.51.100.1")
        };
        let mut stream = stream(&spec);
        let mut out = Collect::default();
        let from = addr("192.0.2.10:41000");
        let mut forwarded: Vec<Vec<u8>> = Vec::new();
        for sequence in 0..3u16 {
            let plain = packet(0, sequence, u32::from(sequence) * 160, 9, 0x00);
            let mut protected = sender.encrypt_rtp(&plain).unwrap().to_vec();
            if sequence == 1 {
                let last = protected.len() - 1;
                protected[last] ^= 1;
            }
            stream.handle_rtp_relayed(anchor, from, &mut protected, &mut out, |bytes| {
                forwarded.push(bytes.to_vec())
            });
        }
        // RTCP is not forwarded once SRTP is in play (it could not be protected again).
        stream.handle_rtcp_relayed(anchor, from, &mut [0x80, 201, 0, 1, 0, 0, 0, 9], |bytes| {
            forwarded.push(bytes.to_vec())
        });
        assert_eq!(forwarded.len(), 2, "the tampered packet is not forwarded");
        for (packet_on_wire, sequence) in forwarded.iter().zip([0u16, 2]) {
            let plain = packet(0, sequence, u32::from(sequence) * 160, 9, 0x00);
            assert_ne!(
                packet_on_wire[12..],
                plain[12..],
                "encrypted toward the far end"
            );
            assert_eq!(
                &far_end.decrypt_rtp(packet_on_wire).unwrap()[..],
                &plain[..]
            );
        }
        let counters = stream.counters();
        assert_eq!((counters.packets, counters.srtp_auth_failures), (2, 1));
    }

    #[test]
    fn an_unbound_leg_records_every_source() {
        let anchor = Instant::now();
        let spec = bound(spec(anchor), "192.0.2.10", "198.51.100.1");
        let mut stream = Stream::new(LegId(7), &spec, ms(200), false, true);
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
        for i in 0..10u32 {
            let pcm = tone(1000.0, 16000, i as usize * 320, 320);
            let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_be_bytes()).collect();
            let mut datagram = packet_with(96, 2 + i as u16, 50_000 + i * 320, 9, bytes);
            stream.handle_datagram(anchor + ms(20 + u64::from(i) * 20), &mut datagram, &mut out);
        }
        stream.finish(anchor + ms(220), &mut out);
        assert_eq!(stream.sample_rate(), 8000, "the WAV keeps its rate");
        assert_eq!(out.0.len(), 1760, "220 ms at 8 kHz");
        // The tone, in time: what 8 kHz sampling of it from 20 ms on gives.
        let expected = tone(1000.0, 8000, 0, 1600);
        let error = out.0[200..1700]
            .iter()
            .zip(&expected[40..1540])
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum::<f64>()
            / 1500.0;
        assert!(error.sqrt() < 100.0, "rms error {}", error.sqrt());
        // To the end of the last packet: the resampler's tail was flushed.
        assert!(out.0[1740..1760].iter().any(|s| s.unsigned_abs() > 1000));
        let report = stream.counters();
        assert_eq!((report.resampled_packets, report.codec_changes), (10, 1));
    }

    /// A leg in `first` (one packet), then `second` carrying a `frequency` tone for 500 ms;
    /// returns the leg's audio over the tone's steady middle.
    fn switched(first: Codec, second: Codec, frequency: f64) -> (Vec<i16>, u32) {
        let anchor = Instant::now();
        let mut spec = LegSpec::new("switch", "s.wav", 96, first, anchor);
        spec.other_formats = vec![AudioFormat {
            payload_type: 97,
            codec: second,
        }];
        let mut stream = stream(&spec);
        let mut out = Collect::default();
        let mut encoder = callvault_codec::Encoder::new(first).unwrap();
        let mut payload = Vec::new();
        let first_rate = first.sample_rate() as usize;
        encoder
            .encode(&vec![0; first_rate / 50], &mut payload)
            .unwrap();
        stream.handle_datagram(
            anchor,
            &mut packet_with(96, 1, 0, 9, payload.clone()),
            &mut out,
        );
        let mut encoder = callvault_codec::Encoder::new(second).unwrap();
        let rate = second.sample_rate() as usize;
        let ticks = second.rtp_clock_rate() / 50;
        for i in 0..25u32 {
            let pcm = tone(frequency, rate as u32, i as usize * rate / 50, rate / 50);
            encoder.encode(&pcm, &mut payload).unwrap();
            let mut datagram = packet_with(97, 2 + i as u16, 9000 + i * ticks, 9, payload.clone());
            let at = anchor + ms(20 + u64::from(i) * 20);
            stream.handle_datagram(at, &mut datagram, &mut out);
            stream.handle_tick(at, &mut out);
        }
        stream.finish(anchor + ms(520), &mut out);
        let leg_rate = first.sample_rate() as usize;
        (out.0[leg_rate / 10..leg_rate / 2].to_vec(), leg_rate as u32)
    }

    #[test]
    fn g722_to_pcmu_in_a_16khz_leg_leaves_no_image_of_3khz_at_5khz() {
        let (pcm, rate) = switched(Codec::G722, Codec::Pcmu, 3000.0);
        assert_eq!(rate, 16000);
        let ratio = power(&pcm, rate, 5000.0) / power(&pcm, rate, 3000.0);
        assert!(ratio < 1e-4, "5 kHz image at {ratio:.2e} of the 3 kHz tone");
    }

    #[test]
    fn pcmu_to_g722_in_an_8khz_leg_leaves_no_alias_of_5khz_at_3khz() {
        let (pcm, rate) = switched(Codec::Pcmu, Codec::G722, 5000.0);
        assert_eq!(rate, 8000);
        // The reference: a full-scale tone at 3 kHz, as the alias would be.
        let reference = power(&tone(3000.0, 8000, 0, pcm.len()), 8000, 3000.0);
        let alias = power(&pcm, rate, 3000.0) / reference;
        assert!(alias < 1e-4, "3 kHz alias at {alias:.2e} of a tone");
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
        // 10 started after 9 went quiet (a replacement, not a second party); 9's return is
        // no new SSRC.
        assert_eq!(
            (report.lost, report.ssrc_changes, report.packets),
            (1, 1, 5)
        );
        assert_eq!(report.ssrcs_seen, 2, "9, 10, then 9 again");
        assert_eq!(report.concurrent_ssrcs, 1);
        let figures: Vec<_> = report
            .sources
            .iter()
            .map(|s| (s.ssrc, s.packets, s.lost, s.first_ms, s.last_ms))
            .collect();
        assert_eq!(figures, [(9, 3, 1, 0, 100), (10, 2, 0, 60, 80)]);
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

    /// `count` μ-law bytes of a tone at `amplitude`.
    fn ulaw_tone(frequency: f64, amplitude: f64, start: usize, count: usize) -> Vec<u8> {
        let mut encoder = callvault_codec::Encoder::new(Codec::Pcmu).unwrap();
        let pcm: Vec<i16> = tone(frequency, 8000, start, count)
            .iter()
            .map(|s| (f64::from(*s) * amplitude / 8000.0) as i16)
            .collect();
        let mut payload = Vec::new();
        encoder.encode(&pcm, &mut payload).unwrap();
        payload
    }

    #[test]
    fn two_ssrcs_interleaved_on_one_stream_are_both_in_the_leg_at_their_levels() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        // Two parties from one port: 1000 Hz loud and 440 Hz quieter, each its own sequence
        // and timestamps, the second starting 10 ms later, until the second stops at 600 ms.
        for i in 0..50u32 {
            let at = anchor + ms(u64::from(i) * 20);
            let start = i as usize * 160;
            let a = ulaw_tone(1000.0, 8000.0, start, 160);
            let mut packet_a = packet_with(0, 100 + i as u16, 5000 + i * 160, 0xa, a);
            stream.handle_datagram(at, &mut packet_a, &mut out);
            if i < 30 {
                let b = ulaw_tone(440.0, 4000.0, start, 160);
                let mut packet_b = packet_with(0, 60_000 + i as u16, 9 + i * 160, 0xb, b);
                stream.handle_datagram(at + ms(10), &mut packet_b, &mut out);
            }
            stream.handle_tick(at, &mut out);
        }
        stream.finish(anchor + ms(1000), &mut out);
        assert_eq!(out.0.len(), 8000, "exactly the leg's length");
        // Both parties while both speak, each at its own level (amplitude ratio 2: power 4).
        let both = &out.0[800..4000];
        let (loud, quiet) = (power(both, 8000, 1000.0), power(both, 8000, 440.0));
        let ratio = loud / quiet;
        assert!((3.0..5.5).contains(&ratio), "power ratio {ratio}");
        // Once the second stops the first goes on alone, unharmed.
        let alone = &out.0[5200..7800];
        assert!(power(alone, 8000, 1000.0) > 1000.0 * power(alone, 8000, 440.0));
        assert!(
            (power(alone, 8000, 1000.0) / power(&out.0[800..3400], 8000, 1000.0) - 1.0).abs()
                < 0.05
        );
        let report = stream.counters();
        assert_eq!(
            (
                report.ssrcs_seen,
                report.concurrent_ssrcs,
                report.ssrc_changes
            ),
            (2, 2, 0)
        );
        assert_eq!(
            (report.lost, report.packets, report.gaps_filled_ms),
            (0, 80, 0)
        );
        let figures: Vec<_> = report.sources.iter().map(|s| (s.ssrc, s.packets)).collect();
        assert_eq!(figures, [(0xa, 50), (0xb, 30)]);
    }

    #[test]
    fn a_failover_replaces_the_source_and_is_not_taken_for_a_second_party() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        // SSRC 0xa until 500 ms; the SBC fails over to 0xb (new sequence and timestamps), and
        // one straggler of 0xa, sent before the switch, arrives 20 ms after it.
        for i in 0..25u32 {
            let at = anchor + ms(u64::from(i) * 20);
            let payload = ulaw_tone(1000.0, 8000.0, i as usize * 160, 160);
            let mut p = packet_with(0, i as u16, i * 160, 0xa, payload);
            if i == 24 {
                stream.handle_datagram(at + ms(40), &mut p, &mut out);
            } else {
                stream.handle_datagram(at, &mut p, &mut out);
            }
            stream.handle_tick(at, &mut out);
        }
        for i in 0..25u32 {
            let at = anchor + ms(500 + u64::from(i) * 20);
            let payload = ulaw_tone(440.0, 8000.0, i as usize * 160, 160);
            let mut p = packet_with(0, 7000 + i as u16, 90_000 + i * 160, 0xb, payload);
            stream.handle_datagram(at, &mut p, &mut out);
            stream.handle_tick(at, &mut out);
        }
        stream.finish(anchor + ms(1000), &mut out);
        let report = stream.counters();
        assert_eq!(
            (
                report.ssrcs_seen,
                report.ssrc_changes,
                report.concurrent_ssrcs
            ),
            (2, 1, 1)
        );
        assert_eq!(
            report.reanchors, 2,
            "the new source is placed on the wall clock"
        );
        assert_eq!((report.lost, report.gaps_filled_ms), (0, 0));
        // One party, then the other: no overlap, no hole.
        let (first, second) = (&out.0[800..3600], &out.0[4400..7600]);
        assert!(power(first, 8000, 1000.0) > 1000.0 * power(first, 8000, 440.0));
        assert!(power(second, 8000, 440.0) > 1000.0 * power(second, 8000, 1000.0));
    }

    #[test]
    fn a_leg_keeps_at_most_max_sources_and_reuses_quiet_ones() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        // Six SSRCs at once: four lanes, the extra two refused.
        for round in 0..5u32 {
            for ssrc in 0..6u32 {
                let at = anchor + ms(u64::from(round) * 20);
                let mut p = packet(0, round as u16, round * 160, 100 + ssrc, 0x80);
                stream.handle_datagram(at, &mut p, &mut out);
            }
        }
        assert_eq!(stream.timeline.lanes(), crate::ssrc::MAX_SOURCES);
        assert_eq!(stream.counters().packets_beyond_sources, 10);
        // Long after they all stopped, a failover SSRC takes a quiet slot: no new lane.
        stream.handle_tick(anchor + ms(3000), &mut out);
        let mut p = packet(0, 1, 0, 999, 0x80);
        stream.handle_datagram(anchor + ms(3000), &mut p, &mut out);
        assert_eq!(stream.timeline.lanes(), crate::ssrc::MAX_SOURCES);
        stream.finish(anchor + ms(3020), &mut out);
        let report = stream.counters();
        assert_eq!(report.ssrcs_seen, 5);
        assert_eq!(report.sources.len(), 5);
        assert_eq!(report.ssrc_changes, 1, "only 999 replaced quiet sources");
    }

    /// Sends `packets` 20 ms packets of a 700 Hz tone in `codec`, dropping those `lost` says,
    /// through a stream with concealment on or off; returns the leg's audio and counters.
    fn tone_with_loss(
        codec: Codec,
        conceal: bool,
        packets: u32,
        lost: impl Fn(u32) -> bool,
    ) -> (Vec<i16>, LegCounters) {
        let anchor = Instant::now();
        let pt = 96;
        let spec = LegSpec::new("loss", "l.wav", pt, codec, anchor);
        let mut stream = Stream::new(LegId(7), &spec, ms(200), true, conceal);
        let mut out = Collect::default();
        let mut encoder = callvault_codec::Encoder::new(codec).unwrap();
        let rate = codec.sample_rate() as usize;
        let ticks = codec.rtp_clock_rate() / 50;
        let mut payload = Vec::new();
        for i in 0..packets {
            let pcm = tone(700.0, rate as u32, i as usize * rate / 50, rate / 50);
            encoder.encode(&pcm, &mut payload).unwrap();
            let at = anchor + ms(u64::from(i) * 20);
            if !lost(i) {
                let mut datagram = packet_with(pt, i as u16, 1000 + i * ticks, 5, payload.clone());
                stream.handle_datagram(at, &mut datagram, &mut out);
            }
            stream.handle_tick(at, &mut out);
        }
        stream.finish(anchor + ms(u64::from(packets) * 20), &mut out);
        (out.0, stream.counters())
    }

    /// 10 ms windows of `pcm` (at `rate`) that are silent (RMS below 100, against a tone at
    /// 8000 peak).
    fn silent_windows(pcm: &[i16], rate: u32) -> usize {
        pcm.chunks(rate as usize / 100)
            .filter(|window| {
                let energy: f64 = window.iter().map(|s| f64::from(*s).powi(2)).sum();
                (energy / window.len() as f64).sqrt() < 100.0
            })
            .count()
    }

    /// Every codec this build decodes (G.729 only with its feature: docs/LICENSING.md).
    fn lossy_codecs() -> Vec<Codec> {
        #[allow(unused_mut)]
        let mut codecs = vec![Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus];
        #[cfg(feature = "g729")]
        codecs.push(Codec::G729);
        codecs
    }

    #[test]
    fn one_packet_in_twelve_lost_leaves_no_silent_window_inside_the_tone() {
        for codec in lossy_codecs() {
            let rate = codec.sample_rate();
            let one_in_12 = |i: u32| i % 12 == 11;
            let (pcm, counters) = tone_with_loss(codec, true, 100, one_in_12);
            // From 100 ms on (codec start-up) to the end.
            let inside = &pcm[rate as usize / 10..];
            let holes = silent_windows(inside, rate);
            assert_eq!(holes, 0, "{codec:?}: {holes} silent 10 ms windows");
            assert_eq!(counters.lost, 8, "{codec:?}");
            assert!(
                (150..=170).contains(&counters.concealed_ms),
                "{codec:?}: {} ms concealed for 8 lost packets",
                counters.concealed_ms
            );
            // The same loss without concealment: each lost packet is a hole.
            let (raw, counters) = tone_with_loss(codec, false, 100, one_in_12);
            let holes = silent_windows(&raw[rate as usize / 10..], rate);
            assert!(
                holes >= 14,
                "{codec:?}: only {holes} silent windows unconcealed"
            );
            assert_eq!(counters.concealed_ms, 0);
        }
    }

    #[test]
    fn a_long_loss_is_concealed_for_60_ms_then_silent() {
        for codec in lossy_codecs() {
            let rate = codec.sample_rate() as usize;
            // 200 ms lost: packets 20 to 29.
            let (pcm, counters) = tone_with_loss(codec, true, 50, |i| (20..30).contains(&i));
            assert!(
                (55..=60).contains(&counters.concealed_ms),
                "{codec:?}: {} ms concealed",
                counters.concealed_ms
            );
            // 400-460 ms: something; 470-600 ms: silence, as honest as it gets.
            let concealed = &pcm[rate * 400 / 1000..rate * 420 / 1000];
            assert_eq!(silent_windows(concealed, rate as u32), 0, "{codec:?}");
            let beyond = &pcm[rate * 470 / 1000..rate * 600 / 1000];
            assert_eq!(
                silent_windows(beyond, rate as u32),
                13,
                "{codec:?}: silence beyond the bound"
            );
        }
    }

    #[test]
    fn hold_and_dtx_are_never_concealed() {
        let anchor = Instant::now();
        let mut stream = stream(&spec(anchor));
        let mut out = Collect::default();
        let send = |stream: &mut Stream, out: &mut Collect, sequence: u16, at: u64| {
            let payload = ulaw_tone(700.0, 8000.0, at as usize * 8, 160);
            let mut p = packet_with(0, sequence, at as u32 * 8, 9, payload);
            stream.handle_datagram(anchor + ms(at), &mut p, out);
        };
        for (n, at) in (0..200).step_by(20).enumerate() {
            send(&mut stream, &mut out, n as u16, at);
        }
        // DTX: 200 ms without packets, the sequence goes on where it stopped.
        for (n, at) in (400..600).step_by(20).enumerate() {
            send(&mut stream, &mut out, 10 + n as u16, at);
        }
        // Hold by re-INVITE; the sender keeps counting its sequence numbers meanwhile.
        stream.handle_update(anchor + ms(600), &LegUpdate::new(0, Codec::Pcmu, false));
        stream.handle_update(anchor + ms(800), &LegUpdate::new(0, Codec::Pcmu, true));
        for (n, at) in (800..1000).step_by(20).enumerate() {
            send(&mut stream, &mut out, 30 + n as u16, at);
        }
        stream.finish(anchor + ms(1000), &mut out);
        assert_eq!(stream.counters().concealed_ms, 0);
        assert_eq!(
            silent_windows(&out.0[1600..3200], 8000),
            20,
            "DTX stays silent"
        );
        assert_eq!(
            silent_windows(&out.0[4800..6400], 8000),
            20,
            "hold stays silent"
        );
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
        // Without concealment: the straggler below is reordered, and concealing the moment its
        // successor arrives would blend that one's first milliseconds (bit-exactness is the
        // point here).
        let mut secure = Stream::new(
            LegId(7),
            &LegSpec {
                srtp: Some(old.clone()),
                ..spec(anchor)
            },
            ms(200),
            true,
            false,
        );
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
