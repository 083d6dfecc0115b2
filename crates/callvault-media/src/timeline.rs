//! The timeline of a leg: where each packet's audio lands in the WAV, and when it is committed.
//!
//! Position 0 is the anchor (the moment the session was answered); positions count samples at the
//! leg's (the WAV's) rate. RTP timestamps count at the codec's clock rate, which may differ
//! (G.722: clock 8000, audio 16000): a timestamp difference of `d` ticks is `d * rate / clock`
//! samples. The first packet of an SSRC is placed at its arrival time; later packets of that SSRC
//! at their RTP timestamp relative to it, so jitter does not move audio. The tick count since that
//! first packet is kept extended (64-bit), so rounding never accumulates when rate / clock is not
//! a whole number. When the timestamp position drifts more than [`REANCHOR_AFTER`] from the wall
//! clock (a timestamp jump, a reused SSRC, a source that paused its clock on hold), or the clock
//! rate changes (a switch to a codec with another clock), the stream re-anchors on the wall clock.
//!
//! **Lanes.** One stream may carry several SSRCs at once (a "mixed" SIPREC stream forwarding
//! two parties unmixed). Each source the stream layer tells apart writes into a lane of its
//! own: its own anchor and its own ring, so that two sources never overwrite each other. At
//! commit the lanes are mixed sample by sample, summed in 32 bits and saturated to 16 (two
//! loud parties clip rather than wrap around). A leg starts with one lane; more are allocated
//! when more sources appear (bounded by the stream layer), and reused once idle.
//!
//! Audio is held in the rings for `window` after the wall clock reaches it, so that reordered
//! packets land in place; then it is committed to the [`Sink`]. Whatever no packet filled is
//! committed as silence, so a silent leg keeps growing and the legs of a call line up. Each sample
//! is marked as audio, concealment (filled by loss concealment, which a late real packet still
//! overwrites) or nothing, for the counts. Nothing here reads the clock: every `Instant` is an
//! input.

use std::time::{Duration, Instant};

/// Timestamp positions further than this from the wall clock re-anchor the stream.
pub const REANCHOR_AFTER: Duration = Duration::from_secs(1);
/// Room in the ring beyond the window, for packets ahead of the wall clock (up to
/// [`REANCHOR_AFTER`]) plus one large packet.
const RING_MARGIN: Duration = Duration::from_millis(1250);

/// Receives committed samples, in order, exactly once each.
pub trait Sink {
    fn write(&mut self, pcm: &[i16]);
}

/// Where a packet's audio went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Entirely inside the open window.
    Placed,
    /// Partly or wholly before the committed position: that part was dropped.
    Late,
}

/// What filled a sample of a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Fill {
    Nothing = 0,
    /// Loss concealment.
    Concealment = 1,
    /// A packet's audio.
    Audio = 2,
}

/// How the current SSRC's timestamps map onto the timeline.
#[derive(Clone, Copy, Debug)]
struct SourceAnchor {
    ssrc: u32,
    clock: u32,
    /// The position of the first packet since the anchoring.
    base: i64,
    /// The highest timestamp seen, and its distance in ticks from the first packet's.
    timestamp: u32,
    ticks: i64,
}

/// One source's audio not yet committed.
#[derive(Debug)]
struct Lane {
    ring: Vec<i16>,
    /// Parallel to `ring`.
    fill: Vec<Fill>,
    anchor: Option<SourceAnchor>,
    /// The end of the furthest audio placed: once committed, the lane holds nothing.
    end: i64,
}

impl Lane {
    fn new(len: usize) -> Lane {
        Lane {
            ring: vec![0; len],
            fill: vec![Fill::Nothing; len],
            anchor: None,
            end: 0,
        }
    }
}

/// Hold periods remembered until committed; more holds within one window merge into the last.
const HOLDS: usize = 4;

/// The open window of one leg.
#[derive(Debug)]
pub struct Timeline {
    anchor: Instant,
    rate: u32,
    window: i64,
    reanchor_after: i64,
    ring_len: usize,
    lanes: Vec<Lane>,
    /// The mix of a chunk of several lanes, and what filled it: allocated with the second lane.
    mix: Vec<i16>,
    mix_fill: Vec<Fill>,
    /// Everything before this position has been handed to the sink.
    committed: i64,
    reanchors: u64,
    /// Committed samples no packet filled, outside hold periods.
    gaps: u64,
    /// Committed samples filled by concealment only.
    concealed: u64,
    /// Hold periods `[start, end)` not yet entirely committed; an open hold ends at `i64::MAX`.
    holds: [Option<(i64, i64)>; HOLDS],
}

impl Timeline {
    /// A timeline whose position 0 is `anchor`, holding `window` open for reordering, with one
    /// lane.
    pub fn new(anchor: Instant, rate: u32, window: Duration) -> Timeline {
        let rate_i64 = i64::from(rate);
        let window_samples = samples(window, rate_i64);
        let ring_len = (window_samples + samples(RING_MARGIN, rate_i64)).max(1) as usize;
        Timeline {
            anchor,
            rate,
            window: window_samples,
            reanchor_after: samples(REANCHOR_AFTER, rate_i64),
            ring_len,
            lanes: vec![Lane::new(ring_len)],
            mix: Vec::new(),
            mix_fill: Vec::new(),
            committed: 0,
            reanchors: 0,
            gaps: 0,
            concealed: 0,
            holds: [None; HOLDS],
        }
    }

    /// Allocates one more lane (when a source appears and no lane is free), returning its index.
    pub fn add_lane(&mut self) -> usize {
        if self.mix.is_empty() {
            self.mix = vec![0; self.ring_len];
            self.mix_fill = vec![Fill::Nothing; self.ring_len];
        }
        self.lanes.push(Lane::new(self.ring_len));
        self.lanes.len() - 1
    }

    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Whether everything `lane` holds is committed (a new source may take it over without
    /// mixing into anything).
    pub fn lane_is_idle(&self, lane: usize) -> bool {
        self.lanes[lane].end <= self.committed
    }

    /// Forgets `lane`'s anchor, for a new source taking it over: its next packet is placed on
    /// the wall clock. What it holds is still committed.
    pub fn reset_lane(&mut self, lane: usize) {
        self.lanes[lane].anchor = None;
    }

    /// Committed samples that no packet filled while the leg was active (concealment included).
    pub fn gap_samples(&self) -> u64 {
        self.gaps
    }

    /// Committed samples filled by loss concealment and no packet.
    pub fn concealed_samples(&self) -> u64 {
        self.concealed
    }

    /// The leg goes on hold (`held`) or resumes at `at`: silence committed for the time between
    /// is not a gap.
    pub fn handle_hold(&mut self, at: Instant, held: bool) {
        let position = self.position(at);
        let open = self
            .holds
            .iter_mut()
            .flatten()
            .find(|(_, end)| *end == i64::MAX);
        match (held, open) {
            (true, None) => {
                if let Some(slot) = self.holds.iter_mut().find(|slot| slot.is_none()) {
                    *slot = Some((position, i64::MAX));
                } else if let Some(last) = self.holds.iter_mut().flatten().max_by_key(|h| h.0) {
                    // Too many holds within one window: the short activity between the last two
                    // is treated as hold too.
                    last.1 = i64::MAX;
                }
            }
            (false, Some(hold)) => hold.1 = position.max(hold.0),
            _ => {}
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples committed so far (the length of the leg's audio).
    #[cfg(test)]
    pub fn committed(&self) -> u64 {
        self.committed as u64
    }

    /// How many times a stream was placed on the wall clock (first packets included).
    pub fn reanchors(&self) -> u64 {
        self.reanchors
    }

    /// The position of an instant, in samples since the anchor (negative before it).
    pub fn position(&self, at: Instant) -> i64 {
        let rate = i64::from(self.rate);
        match at.checked_duration_since(self.anchor) {
            Some(after) => samples(after, rate),
            None => -samples(self.anchor.duration_since(at), rate),
        }
    }

    /// Places the decoded audio of one packet that arrived at `arrival` in `lane`. `pcm` is at
    /// the leg's rate; `timestamp` counts at `clock`.
    #[cfg(test)]
    pub fn handle_audio(
        &mut self,
        arrival: Instant,
        lane: usize,
        (ssrc, timestamp, clock): (u32, u32, u32),
        pcm: &[i16],
        sink: &mut impl Sink,
    ) -> Placement {
        let position = self.anchor_packet(arrival, lane, ssrc, timestamp, clock);
        self.place(lane, position, pcm, Fill::Audio, sink)
    }

    /// Where `lane`'s current anchor puts `timestamp` of `ssrc` at `clock`, if it is near the
    /// wall clock at `arrival`: `None` when the packet would re-anchor.
    pub fn expected_position(
        &self,
        arrival: Instant,
        lane: usize,
        ssrc: u32,
        timestamp: u32,
        clock: u32,
    ) -> Option<i64> {
        let wall = self.position(arrival);
        self.locate(lane, ssrc, timestamp, clock)
            .map(|(position, _)| position)
            .filter(|position| (position - wall).abs() <= self.reanchor_after)
    }

    /// The position of one packet that arrived at `arrival` in `lane`: by its timestamp when
    /// the lane's anchor places it near the wall clock, else on the wall clock (re-anchoring).
    pub fn anchor_packet(
        &mut self,
        arrival: Instant,
        lane: usize,
        ssrc: u32,
        timestamp: u32,
        clock: u32,
    ) -> i64 {
        let wall = self.position(arrival);
        let lane_state = &mut self.lanes[lane];
        match locate(lane_state.anchor, self.rate, ssrc, timestamp, clock) {
            Some((position, ticks)) if (position - wall).abs() <= self.reanchor_after => {
                if let Some(source) = &mut lane_state.anchor
                    && ticks > source.ticks
                {
                    // Follow the stream so the 32-bit difference never nears the 2^31 wrap.
                    source.timestamp = timestamp;
                    source.ticks = ticks;
                }
                position
            }
            _ => {
                self.reanchors += 1;
                lane_state.anchor = Some(SourceAnchor {
                    ssrc,
                    clock: clock.max(1),
                    base: wall,
                    timestamp,
                    ticks: 0,
                });
                wall
            }
        }
    }

    /// Where `timestamp` of `ssrc` at `clock` lies on the timeline by the anchor of the lane
    /// that source writes to: `None` for an unknown source or another clock, or before any
    /// packet. For RFC 4733 events, which share the audio's SSRC and timestamps.
    pub fn position_of(&self, ssrc: u32, timestamp: u32, clock: u32) -> Option<i64> {
        (0..self.lanes.len())
            .find_map(|lane| self.locate(lane, ssrc, timestamp, clock))
            .map(|(position, _)| position)
    }

    /// (position, extended ticks) of a timestamp by `lane`'s current anchor.
    fn locate(&self, lane: usize, ssrc: u32, timestamp: u32, clock: u32) -> Option<(i64, i64)> {
        locate(self.lanes[lane].anchor, self.rate, ssrc, timestamp, clock)
    }

    /// Forgets every lane's anchor: the next packets are placed on the wall clock (after a
    /// codec change or a hold, when timestamps may restart).
    pub fn reanchor(&mut self) {
        for lane in &mut self.lanes {
            lane.anchor = None;
        }
    }

    /// Commits what the window no longer holds open at `now`, silence included.
    pub fn handle_tick(&mut self, now: Instant, sink: &mut impl Sink) {
        let target = self.position(now) - self.window;
        self.commit_to(target, sink);
    }

    /// Commits everything up to `end`, exactly: the leg's length becomes `end - anchor`
    /// (unless more was already committed). Audio after `end` is discarded.
    pub fn finish(&mut self, end: Instant, sink: &mut impl Sink) {
        let target = self.position(end);
        self.commit_to(target, sink);
        for lane in &mut self.lanes {
            lane.ring.fill(0);
            lane.fill.fill(Fill::Nothing);
            lane.end = 0;
        }
    }

    /// Writes `pcm` (at the leg's rate) into `lane` from `position`, marked `fill`.
    pub fn place(
        &mut self,
        lane: usize,
        position: i64,
        pcm: &[i16],
        fill: Fill,
        sink: &mut impl Sink,
    ) -> Placement {
        let end = position + pcm.len() as i64;
        if end <= self.committed {
            return Placement::Late;
        }
        let (pcm, placement) = if position < self.committed {
            let skip = (self.committed - position) as usize;
            (&pcm[skip..], Placement::Late)
        } else {
            (pcm, Placement::Placed)
        };
        let ring_len = self.ring_len as i64;
        // A packet further ahead than the ring holds (a huge packet, a clock racing ahead) pushes
        // the oldest audio out early instead of overwriting it.
        if end - self.committed > ring_len {
            self.commit_to(end - ring_len, sink);
        }
        let pcm = if pcm.len() > self.ring_len {
            &pcm[pcm.len() - self.ring_len..]
        } else {
            pcm
        };
        let position = end - pcm.len() as i64;
        let start = position.rem_euclid(ring_len) as usize;
        let first = pcm.len().min(self.ring_len - start);
        let lane = &mut self.lanes[lane];
        let rest = pcm.len() - first;
        if fill == Fill::Audio {
            lane.ring[start..start + first].copy_from_slice(&pcm[..first]);
            lane.ring[..rest].copy_from_slice(&pcm[first..]);
            lane.fill[start..start + first].fill(Fill::Audio);
            lane.fill[..rest].fill(Fill::Audio);
        } else {
            // Concealment never overwrites a packet's audio (a reordered packet that came first).
            let ranges = [(start, 0, first), (0, first, rest)];
            for (at, from, count) in ranges {
                for i in 0..count {
                    if lane.fill[at + i] != Fill::Audio {
                        lane.ring[at + i] = pcm[from + i];
                        lane.fill[at + i] = fill;
                    }
                }
            }
        }
        lane.end = lane.end.max(end);
        placement
    }

    fn commit_to(&mut self, target: i64, sink: &mut impl Sink) {
        let ring_len = self.ring_len as i64;
        while self.committed < target {
            let start = self.committed.rem_euclid(ring_len) as usize;
            let count = (target - self.committed).min(ring_len - start as i64) as usize;
            let range = start..start + count;
            if self.lanes.len() > 1 {
                // Sample by sample: the sum of every lane, saturated; filled as the best lane.
                let mix = &mut self.mix[range.clone()];
                let mix_fill = &mut self.mix_fill[range.clone()];
                for (i, (sample, fill)) in mix.iter_mut().zip(mix_fill.iter_mut()).enumerate() {
                    let (mut sum, mut best) = (0i32, Fill::Nothing);
                    for lane in &self.lanes {
                        sum += i32::from(lane.ring[start + i]);
                        best = best.max(lane.fill[start + i]);
                    }
                    *sample = sum.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                    *fill = best;
                }
            }
            let (pcm, fill) = match &self.lanes[..] {
                [lane] => (&lane.ring[range.clone()], &lane.fill[range.clone()]),
                _ => (&self.mix[range.clone()], &self.mix_fill[range.clone()]),
            };
            sink.write(pcm);
            let gaps = self.count_gaps(self.committed, fill);
            let concealed = fill.iter().filter(|f| **f == Fill::Concealment).count() as u64;
            self.gaps += gaps;
            self.concealed += concealed;
            for lane in &mut self.lanes {
                // Cleared once committed: what no packet fills next time round is silence.
                lane.ring[range.clone()].fill(0);
                lane.fill[range.clone()].fill(Fill::Nothing);
            }
            self.committed += count as i64;
        }
        // Holds entirely committed are done with.
        for slot in &mut self.holds {
            if slot.is_some_and(|(_, end)| end <= self.committed) {
                *slot = None;
            }
        }
    }

    /// Samples of `fill` (timeline `position` on) that nothing filled, minus those inside hold
    /// periods.
    fn count_gaps(&self, position: i64, fill: &[Fill]) -> u64 {
        let unfilled = |from: usize, to: usize| {
            fill[from..to]
                .iter()
                .filter(|fill| **fill != Fill::Audio)
                .count() as u64
        };
        let end = position + fill.len() as i64;
        let mut gaps = unfilled(0, fill.len());
        for &(hold_start, hold_end) in self.holds.iter().flatten() {
            let (from, to) = (hold_start.max(position), hold_end.min(end));
            if from < to {
                gaps -= unfilled((from - position) as usize, (to - position) as usize);
            }
        }
        gaps
    }
}

/// (position, extended ticks) of a timestamp by `anchor`, on a timeline at `rate`.
fn locate(
    anchor: Option<SourceAnchor>,
    rate: u32,
    ssrc: u32,
    timestamp: u32,
    clock: u32,
) -> Option<(i64, i64)> {
    let source = anchor.filter(|s| s.ssrc == ssrc && s.clock == clock)?;
    // Signed difference: a reordered packet is slightly behind the latest.
    let ticks = source.ticks + i64::from(timestamp.wrapping_sub(source.timestamp) as i32);
    let offset = (i128::from(ticks) * i128::from(rate)).div_euclid(i128::from(source.clock));
    Some((source.base + offset as i64, ticks))
}

/// A duration in samples at `rate`, rounded down.
fn samples(duration: Duration, rate: i64) -> i64 {
    (duration.as_nanos() * rate as u128 / 1_000_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 8000;
    const WINDOW: Duration = Duration::from_millis(200);

    #[derive(Default)]
    struct Collect(Vec<i16>);

    impl Sink for Collect {
        fn write(&mut self, pcm: &[i16]) {
            self.0.extend_from_slice(pcm);
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// 20 ms of a constant value, so each packet is recognisable in the output.
    fn frame(value: i16) -> [i16; 160] {
        [value; 160]
    }

    fn setup() -> (Instant, Timeline, Collect) {
        let anchor = Instant::now();
        (
            anchor,
            Timeline::new(anchor, RATE, WINDOW),
            Collect::default(),
        )
    }

    /// The value of each 20 ms frame of the output (0 = silence).
    fn frames(out: &Collect) -> Vec<i16> {
        out.0.chunks(160).map(|c| c[0]).collect()
    }

    #[test]
    fn packets_land_at_their_timestamps_despite_jitter() {
        let (anchor, mut timeline, mut out) = setup();
        // First packet at 40 ms anchors there; the second arrives 15 ms late but lands by timestamp.
        timeline.handle_audio(anchor + ms(40), 0, (7, 1000, RATE), &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(75), 0, (7, 1160, RATE), &frame(2), &mut out);
        timeline.finish(anchor + ms(100), &mut out);
        assert_eq!(out.0.len(), 800);
        assert_eq!(frames(&out), [0, 0, 1, 2, 0]);
    }

    #[test]
    fn reordered_packets_within_the_window_land_in_place() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(40), 0, (1, 320, RATE), &frame(3), &mut out);
        timeline.handle_tick(anchor + ms(45), &mut out);
        assert_eq!(
            timeline.handle_audio(anchor + ms(50), 0, (1, 160, RATE), &frame(2), &mut out),
            Placement::Placed
        );
        timeline.finish(anchor + ms(60), &mut out);
        assert_eq!(frames(&out), [1, 2, 3]);
    }

    #[test]
    fn packets_older_than_the_window_are_late() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(40), 0, (1, 320, RATE), &frame(3), &mut out);
        // 300 ms later, the window has committed up to 140 ms: frame 2 (20–40 ms) is late.
        timeline.handle_tick(anchor + ms(340), &mut out);
        assert_eq!(
            timeline.handle_audio(anchor + ms(340), 0, (1, 160, RATE), &frame(2), &mut out),
            Placement::Late
        );
        timeline.finish(anchor + ms(60), &mut out);
        assert_eq!(frames(&out)[..3], [1, 0, 3]);
    }

    #[test]
    fn packet_straddling_the_commit_point_keeps_its_tail() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(1), &mut out);
        timeline.handle_tick(anchor + ms(210), &mut out); // committed 0..10 ms
        let placement =
            timeline.handle_audio(anchor + ms(210), 0, (1, 0, RATE), &frame(5), &mut out);
        assert_eq!(placement, Placement::Late);
        timeline.finish(anchor + ms(20), &mut out);
        assert_eq!(&out.0[..80], &[1; 80]);
        assert_eq!(&out.0[80..160], &[5; 80]);
    }

    #[test]
    fn gaps_and_silent_legs_are_committed_as_silence() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_tick(anchor + ms(1200), &mut out);
        assert_eq!(out.0.len(), 8000, "1 s committed: 1.2 s minus the window");
        assert!(out.0.iter().all(|s| *s == 0));
        timeline.finish(anchor + ms(3000), &mut out);
        assert_eq!(out.0.len(), 24000);
    }

    #[test]
    fn new_ssrc_reanchors_on_the_wall_clock() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 0, (1, 5000, RATE), &frame(1), &mut out);
        // A new source whose timestamps say nothing about the old one.
        timeline.handle_audio(anchor + ms(40), 0, (2, 123_456, RATE), &frame(2), &mut out);
        timeline.handle_audio(anchor + ms(60), 0, (2, 123_616, RATE), &frame(3), &mut out);
        timeline.finish(anchor + ms(80), &mut out);
        assert_eq!(frames(&out), [1, 0, 2, 3]);
        assert_eq!(timeline.reanchors(), 2);
    }

    #[test]
    fn timestamp_jump_reanchors_on_the_wall_clock() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(1), &mut out);
        // Same SSRC, timestamp 10 s ahead (a restarted source): placed on arrival.
        timeline.handle_audio(anchor + ms(40), 0, (1, 80_000, RATE), &frame(2), &mut out);
        // And the stream continues from there.
        timeline.handle_audio(anchor + ms(60), 0, (1, 80_160, RATE), &frame(3), &mut out);
        timeline.finish(anchor + ms(80), &mut out);
        assert_eq!(frames(&out), [1, 0, 2, 3]);
        assert_eq!(timeline.reanchors(), 2);
    }

    #[test]
    fn timestamp_wrap_is_continuous() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 0, (1, u32::MAX - 159, RATE), &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(20), 0, (1, 0, RATE), &frame(2), &mut out);
        timeline.finish(anchor + ms(40), &mut out);
        assert_eq!(frames(&out), [1, 2]);
        assert_eq!(timeline.reanchors(), 1);
    }

    #[test]
    fn finish_pads_and_trims_to_the_end_exactly() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor + ms(100), 0, (1, 0, RATE), &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(120), 0, (1, 160, RATE), &frame(2), &mut out);
        timeline.finish(anchor + ms(130), &mut out);
        assert_eq!(out.0.len(), 1040);
        assert_eq!(&out.0[800..960], &[1; 160]);
        assert_eq!(&out.0[960..], &[2; 80]);
    }

    #[test]
    fn packets_before_the_anchor_are_late() {
        let (anchor, mut timeline, mut out) = setup();
        let placement =
            timeline.handle_audio(anchor - ms(100), 0, (1, 0, RATE), &frame(1), &mut out);
        assert_eq!(placement, Placement::Late);
        timeline.finish(anchor + ms(20), &mut out);
        assert_eq!(frames(&out), [0]);
    }

    #[test]
    fn packet_far_ahead_of_the_ring_pushes_old_audio_out_in_order() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(1), &mut out);
        // 0.99 s ahead by timestamp, still within the re-anchor tolerance, plus a huge payload.
        let huge = vec![9i16; 8000];
        timeline.handle_audio(anchor, 0, (1, 7920, RATE), &huge, &mut out);
        timeline.finish(anchor + ms(2000), &mut out);
        assert_eq!(out.0.len(), 16000);
        assert_eq!(&out.0[..160], &[1; 160]);
        assert!(out.0[160..7920].iter().all(|s| *s == 0));
        assert!(out.0[7920..15920].iter().all(|s| *s == 9));
    }

    #[test]
    fn long_run_commits_every_sample_once() {
        let (anchor, mut timeline, mut out) = setup();
        for i in 0..500u32 {
            let at = anchor + ms(u64::from(i) * 20);
            timeline.handle_audio(
                at,
                0,
                (1, i * 160, RATE),
                &frame((i % 100 + 1) as i16),
                &mut out,
            );
            timeline.handle_tick(at, &mut out);
        }
        timeline.finish(anchor + ms(10_000), &mut out);
        let expected: Vec<i16> = (0..500).map(|i| (i % 100 + 1) as i16).collect();
        assert_eq!(frames(&out), expected);
    }

    #[test]
    fn clock_and_output_rates_are_kept_apart() {
        // A G.722-like stream: timestamps at 8000, audio at 16000. 20 ms = 160 ticks = 320 samples.
        let anchor = Instant::now();
        let mut timeline = Timeline::new(anchor, 16000, WINDOW);
        let mut out = Collect::default();
        timeline.handle_audio(anchor, 0, (1, 0, 8000), &[1; 320], &mut out);
        timeline.handle_audio(anchor + ms(40), 0, (1, 320, 8000), &[3; 320], &mut out);
        // A 30 ms packet (ptime changed mid-stream) after a lost 20 ms one.
        timeline.handle_audio(anchor + ms(80), 0, (1, 640, 8000), &[5; 480], &mut out);
        timeline.finish(anchor + ms(110), &mut out);
        let values: Vec<i16> = out.0.chunks(160).map(|c| c[0]).collect();
        assert_eq!(values, [1, 1, 0, 0, 3, 3, 0, 0, 5, 5, 5]);
        assert_eq!(timeline.position_of(1, 480, 8000), Some(960));
        assert_eq!(timeline.position_of(1, 480, 16000), None, "another clock");
        assert_eq!(timeline.position_of(2, 480, 8000), None, "another source");
    }

    #[test]
    fn uneven_rate_ratio_does_not_drift() {
        // Clock 8000 onto a 44100 leg: 160 ticks are 882 samples, 1 tick 5.5125 samples.
        let anchor = Instant::now();
        let mut timeline = Timeline::new(anchor, 44100, WINDOW);
        let mut out = Collect::default();
        for i in 0..3000u32 {
            let at = anchor + ms(u64::from(i) * 20);
            timeline.handle_audio(at, 0, (1, i * 160 + 3, 8000), &[1; 882], &mut out);
            timeline.handle_tick(at, &mut out);
        }
        // 60 s later, the timestamp maps to exactly 60 s of samples after the first packet.
        assert_eq!(
            timeline.position_of(1, 3000 * 160 + 3, 8000),
            Some(60 * 44100)
        );
        assert_eq!(
            timeline.position_of(1, 3000 * 160 + 4, 8000),
            Some(60 * 44100 + 5)
        );
    }

    #[test]
    fn clock_change_reanchors() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(1), &mut out);
        timeline.handle_audio(
            anchor + ms(40),
            0,
            (1, 1_000_000, 48000),
            &frame(2),
            &mut out,
        );
        timeline.finish(anchor + ms(60), &mut out);
        assert_eq!(frames(&out), [1, 0, 2]);
        assert_eq!(timeline.reanchors(), 2);
    }

    #[test]
    fn gaps_count_unfilled_audio_but_not_holds() {
        let (anchor, mut timeline, mut out) = setup();
        // 0-20 ms audio, 20-40 lost, 40-60 audio; hold from 100 to 500 ms; audio 500-520.
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(40), 0, (1, 320, RATE), &frame(1), &mut out);
        timeline.handle_hold(anchor + ms(100), true);
        timeline.handle_tick(anchor + ms(400), &mut out);
        timeline.handle_hold(anchor + ms(500), false);
        timeline.reanchor();
        timeline.handle_audio(anchor + ms(500), 0, (1, 99, RATE), &frame(1), &mut out);
        timeline.finish(anchor + ms(600), &mut out);
        // Lost 20-40, silence 60-100 before the hold, 520-600 after the audio: 140 ms.
        assert_eq!(timeline.gap_samples(), 140 * 8);
        assert_eq!(out.0.len(), 600 * 8);
    }

    #[test]
    fn late_parts_and_silent_legs_are_gaps() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(1), &mut out);
        timeline.handle_tick(anchor + ms(300), &mut out); // 0-100 ms committed
        // 80-180 ms: its first 20 ms were committed already (as silence) and are dropped.
        let late = timeline.handle_audio(anchor + ms(300), 0, (1, 640, RATE), &[2; 800], &mut out);
        assert_eq!(late, Placement::Late);
        timeline.finish(anchor + ms(200), &mut out);
        // 20-100 ms and 180-200 ms.
        assert_eq!(timeline.gap_samples(), (80 + 20) * 8);
        assert_eq!(frames(&out), [1, 0, 0, 0, 0, 2, 2, 2, 2, 0]);
    }

    #[test]
    fn lanes_are_mixed_sample_by_sample_and_saturate() {
        let (anchor, mut timeline, mut out) = setup();
        let second = timeline.add_lane();
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(100), &mut out);
        // Another source, interleaved: its own timestamps, its own lane.
        timeline.handle_audio(
            anchor + ms(10),
            second,
            (2, 777, RATE),
            &frame(20),
            &mut out,
        );
        timeline.handle_audio(anchor + ms(20), 0, (1, 160, RATE), &frame(30_000), &mut out);
        timeline.handle_audio(
            anchor + ms(30),
            second,
            (2, 937, RATE),
            &frame(30_000),
            &mut out,
        );
        timeline.finish(anchor + ms(60), &mut out);
        // 0-10 ms: lane 0 alone; 10-20: both; 20-30: 30000 + 20 ; 30-40: clipped, not wrapped.
        let at = |t: usize| out.0[t * 8];
        assert_eq!(
            (at(5), at(15), at(25), at(35)),
            (100, 120, 30_020, i16::MAX)
        );
        assert_eq!((at(45), at(55)), (30_000, 0));
        assert_eq!(timeline.gap_samples(), 10 * 8);
        assert_eq!(timeline.position_of(2, 937, RATE), Some(240));
    }

    #[test]
    fn concealment_fills_only_what_no_packet_did_and_is_counted() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(1), &mut out);
        // A reordered packet arrived first for 40-60 ms; then 20-60 is concealed.
        timeline.handle_audio(anchor + ms(60), 0, (1, 320, RATE), &frame(3), &mut out);
        timeline.place(0, 160, &[7; 320], Fill::Concealment, &mut out);
        timeline.finish(anchor + ms(80), &mut out);
        assert_eq!(frames(&out), [1, 7, 3, 0]);
        assert_eq!(timeline.concealed_samples(), 160);
        assert_eq!(
            timeline.gap_samples(),
            320,
            "concealment and silence: no packet"
        );
        // And a packet overwrites concealment.
        let (anchor, mut timeline, mut out) = setup();
        timeline.place(0, 0, &[7; 160], Fill::Concealment, &mut out);
        timeline.handle_audio(anchor, 0, (1, 0, RATE), &frame(2), &mut out);
        timeline.finish(anchor + ms(20), &mut out);
        assert_eq!((frames(&out), timeline.concealed_samples()), (vec![2], 0));
    }
}
