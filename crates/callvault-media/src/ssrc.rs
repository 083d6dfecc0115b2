//! The synchronization sources (SSRCs) of one leg.
//!
//! One m-line may carry several SSRCs at once: a "mixed" SIPREC stream whose SRC forwards two
//! parties unmixed from one port, each with its own sequence numbers and timestamps. Each SSRC
//! is a [`Source`] of its own: sequence tracker, timestamp anchor and ring (its lane of the
//! [`Timeline`]), decoders and jitter. The timeline mixes the lanes, so a source that stops
//! leaves the others intact.
//!
//! **Replacement or concurrency.** A new SSRC that starts after the others stopped (an SBC
//! failover) replaces them: it is placed on the wall clock, as before. One that overlaps another
//! in time (the other is still heard [`OVERLAP_TOLERANCE`] after it started) is concurrent. Both
//! get a lane, so the two cases need no decision on the packet path; the difference shows in the
//! figures ([`LegCounters::ssrc_changes`], [`LegCounters::concurrent_ssrcs`]) computed from each
//! SSRC's first and last arrival.
//!
//! **Bounded.** At most [`MAX_SOURCES`] sources per leg. A source's state (and a lane, when no
//! idle one exists) is allocated when it first appears, never per packet; a source unheard for a
//! second whose lane holds nothing uncommitted any more hands its slot to the next new SSRC.
//! While all are busy, packets of further SSRCs are counted
//! ([`LegCounters::packets_beyond_sources`]) and dropped.

use std::time::{Duration, Instant};

use callvault_codec::Decoder;

use crate::codec::AudioFormat;
use crate::resample::Resampler;
use crate::sequence::SequenceTracker;
use crate::timeline::{REANCHOR_AFTER, Timeline};
use crate::{LegCounters, SourceCounters};

/// Sources (and lanes) one leg keeps at once.
pub(crate) const MAX_SOURCES: usize = 4;
/// SSRCs whose figures are kept ([`LegCounters::sources`]).
const FIGURES: usize = 16;
/// A source still heard this long after another one started is concurrent with it; less is a
/// replaced source's stragglers.
pub(crate) const OVERLAP_TOLERANCE: Duration = Duration::from_millis(60);

/// A source unheard this long, whose audio is all committed, gives its slot to a new SSRC.
const IDLE_AFTER: Duration = Duration::from_secs(1);

/// The previous in-order packet of a source, to tell loss from DTX and from events.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LastPacket {
    pub(crate) sequence: u16,
    /// Where its audio ended on the timeline, and how long it was; `None` for a packet without
    /// audio (telephone-event, comfort noise, undecodable).
    pub(crate) audio: Option<(i64, i64)>,
}

/// One SSRC of a leg.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) ssrc: u32,
    /// Its lane of the timeline.
    pub(crate) lane: usize,
    pub(crate) sequence: SequenceTracker,
    pub(crate) jitter: Jitter,
    pub(crate) decoders: Decoders,
    /// Created when it first sends audio of another rate than the leg's.
    pub(crate) resampler: Option<Resampler>,
    pub(crate) last: Option<LastPacket>,
    last_arrival: Instant,
    /// Index into [`Sources::figures`], when it has one.
    figure: Option<usize>,
}

impl Source {
    fn new(ssrc: u32, lane: usize, arrival: Instant, figure: Option<usize>) -> Source {
        Source {
            ssrc,
            lane,
            sequence: SequenceTracker::default(),
            jitter: Jitter::default(),
            decoders: Decoders::default(),
            resampler: None,
            last: None,
            last_arrival: arrival,
            figure,
        }
    }

    pub(crate) fn last_arrival(&self) -> Instant {
        self.last_arrival
    }
}

/// A source's decoders, one per audio format it sent, created on its first packet of that
/// format.
#[derive(Debug, Default)]
pub(crate) struct Decoders(Vec<(AudioFormat, Option<Decoder>)>);

impl Decoders {
    /// The decoder of `format`, created on first use; `None` when it cannot be.
    pub(crate) fn get(
        &mut self,
        format: AudioFormat,
        label: &str,
        call: &crate::CallIds,
    ) -> Option<&mut Decoder> {
        let index = match self.0.iter().position(|(kept, _)| *kept == format) {
            Some(index) => index,
            None => {
                let decoder = Decoder::new(format.codec)
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
                    .ok();
                self.0.push((format, decoder));
                self.0.len() - 1
            }
        };
        self.0[index].1.as_mut()
    }
}

/// The sources of a leg and the figures of every SSRC seen.
#[derive(Debug)]
pub(crate) struct Sources {
    sources: Vec<Source>,
    figures: Vec<SourceCounters>,
    /// Distinct SSRCs seen (beyond [`FIGURES`], those not remembered count again if they
    /// return).
    seen: u64,
    /// Loss and jitter of sources whose slot was taken over.
    retired_lost: u64,
    retired_jitter: Option<f64>,
}

impl Default for Sources {
    fn default() -> Sources {
        Sources {
            sources: Vec::with_capacity(MAX_SOURCES),
            figures: Vec::new(),
            seen: 0,
            retired_lost: 0,
            retired_jitter: None,
        }
    }
}

impl Sources {
    /// The source of `ssrc`, which sent a packet at `arrival` (`at_ms` on the leg): found, or
    /// given a slot (and its lane) on its first packet; `None` when [`MAX_SOURCES`] others are
    /// still sending. Counts the packet in its figures.
    pub(crate) fn handle_packet(
        &mut self,
        ssrc: u32,
        arrival: Instant,
        at_ms: u64,
        timeline: &mut Timeline,
    ) -> Option<&mut Source> {
        let index = match self.sources.iter().position(|s| s.ssrc == ssrc) {
            Some(index) => index,
            None => self.add(ssrc, arrival, at_ms, timeline)?,
        };
        let source = &mut self.sources[index];
        source.last_arrival = arrival;
        if let Some(figure) = source.figure.map(|i| &mut self.figures[i]) {
            figure.packets += 1;
            figure.last_ms = at_ms;
        }
        Some(&mut self.sources[index])
    }

    fn add(
        &mut self,
        ssrc: u32,
        arrival: Instant,
        at_ms: u64,
        timeline: &mut Timeline,
    ) -> Option<usize> {
        // A slot whose source went quiet and whose lane holds nothing uncommitted, else a new
        // one. Taking over a busy slot instead would reset a live source's state on every
        // packet of two alternating ones: refused, the leg counts them.
        let idle = self.sources.iter().position(|s| {
            arrival.saturating_duration_since(s.last_arrival) >= IDLE_AFTER
                && timeline.lane_is_idle(s.lane)
        });
        if idle.is_none() && self.sources.len() >= MAX_SOURCES {
            return None;
        }
        let known = self.figures.iter().position(|f| f.ssrc == ssrc);
        let figure = match known {
            Some(index) => Some(index),
            None => {
                self.seen += 1;
                (self.figures.len() < FIGURES).then(|| {
                    self.figures.push(SourceCounters {
                        ssrc,
                        first_ms: at_ms,
                        ..SourceCounters::default()
                    });
                    self.figures.len() - 1
                })
            }
        };
        let Some(slot) = idle else {
            let lane = if self.sources.len() < timeline.lanes() {
                self.sources.len()
            } else {
                timeline.add_lane()
            };
            self.sources.push(Source::new(ssrc, lane, arrival, figure));
            return Some(self.sources.len() - 1);
        };
        let lane = self.sources[slot].lane;
        self.retire(slot);
        timeline.reset_lane(lane);
        self.sources[slot] = Source::new(ssrc, lane, arrival, figure);
        Some(slot)
    }

    /// Folds the figures of the source in `slot` into the leg's before its slot is reused.
    fn retire(&mut self, slot: usize) {
        let source = &self.sources[slot];
        let lost = source.sequence.lost();
        self.retired_lost += lost;
        if let Some(figure) = source.figure {
            self.figures[figure].lost += lost;
        }
        self.retired_jitter = max_jitter(self.retired_jitter, source.jitter.milliseconds());
    }

    /// The source of `ssrc`, if it has one.
    pub(crate) fn find(&mut self, ssrc: u32) -> Option<&mut Source> {
        self.sources.iter_mut().find(|s| s.ssrc == ssrc)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Source> {
        self.sources.iter_mut()
    }

    /// Every source's decoders of formats no longer negotiated are dropped.
    pub(crate) fn retain_formats(&mut self, formats: &[AudioFormat]) {
        for source in &mut self.sources {
            source
                .decoders
                .0
                .retain(|(format, _)| formats.contains(format));
        }
    }

    /// Fills the leg's SSRC figures: loss, jitter, SSRCs seen, replacements, concurrency.
    pub(crate) fn report(&self, counters: &mut LegCounters) {
        let mut figures = self.figures.clone();
        let mut lost = self.retired_lost;
        let mut jitter = self.retired_jitter;
        for source in &self.sources {
            let source_lost = source.sequence.lost();
            lost += source_lost;
            if let Some(figure) = source.figure {
                figures[figure].lost += source_lost;
            }
            jitter = max_jitter(jitter, source.jitter.milliseconds());
        }
        let tolerance = OVERLAP_TOLERANCE.as_millis() as u64;
        // Earlier SSRCs still heard `tolerance` after `figure` started overlap it.
        let overlapping = |figure: &SourceCounters| {
            figures
                .iter()
                .filter(|other| {
                    other.ssrc != figure.ssrc
                        && other.first_ms <= figure.first_ms
                        && other.last_ms > figure.first_ms + tolerance
                })
                .count() as u64
        };
        counters.lost = lost;
        counters.jitter_ms = jitter;
        counters.ssrcs_seen = self.seen;
        counters.ssrc_changes = figures
            .iter()
            .enumerate()
            .filter(|(i, figure)| *i > 0 && overlapping(figure) == 0)
            .count() as u64;
        counters.concurrent_ssrcs = figures
            .iter()
            .map(|figure| 1 + overlapping(figure))
            .max()
            .unwrap_or(0);
        counters.sources = figures;
    }
}

fn max_jitter(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// RFC 3550 §6.4.1 interarrival jitter of one source, kept in seconds so that a clock change
/// does not rescale it. f64 arithmetic on the stack: nothing allocated.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Jitter {
    previous: Option<JitterPoint>,
    seconds: f64,
    /// Whether any difference went into `seconds`: until then the jitter is unknown.
    measured: bool,
}

#[derive(Clone, Copy, Debug)]
struct JitterPoint {
    clock: u32,
    arrival: Instant,
    timestamp: u32,
}

impl Jitter {
    pub(crate) fn handle(&mut self, arrival: Instant, timestamp: u32, clock: u32) {
        let point = JitterPoint {
            clock: clock.max(1),
            arrival,
            timestamp,
        };
        if let Some(previous) = self.previous.filter(|p| p.clock == point.clock) {
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

    pub(crate) fn milliseconds(&self) -> Option<f64> {
        self.measured.then_some(self.seconds * 1000.0)
    }
}

fn signed_seconds(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(after) => after.as_secs_f64(),
        None => -earlier.duration_since(later).as_secs_f64(),
    }
}
