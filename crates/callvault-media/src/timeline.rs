//! The timeline of a leg: where each packet's audio lands in the WAV, and when it is committed.
//!
//! Position 0 is the anchor (the moment the session was answered); positions count samples at the
//! leg's rate. The first packet of an SSRC is placed at its arrival time; later packets of that SSRC
//! at their RTP timestamp relative to it, so jitter does not move audio. When the timestamp
//! position drifts more than [`REANCHOR_AFTER`] from the wall clock (a timestamp jump, a reused
//! SSRC, a source that paused its clock on hold), the stream re-anchors on the wall clock.
//!
//! Audio is held in a ring for `window` after the wall clock reaches it, so that reordered packets
//! land in place; then it is committed to the [`Sink`]. Whatever no packet filled is committed as
//! silence, so a silent leg keeps growing and the legs of a call line up. Nothing here reads the
//! clock: every `Instant` is an input.

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

/// The RTP timestamp that corresponds to a timeline position, for the current SSRC.
#[derive(Clone, Copy, Debug)]
struct SourceAnchor {
    ssrc: u32,
    timestamp: u32,
    position: i64,
}

/// The open window of one leg.
#[derive(Debug)]
pub struct Timeline {
    anchor: Instant,
    rate: u32,
    window: i64,
    reanchor_after: i64,
    ring: Vec<i16>,
    /// Everything before this position has been handed to the sink.
    committed: i64,
    source: Option<SourceAnchor>,
    reanchors: u64,
}

impl Timeline {
    /// A timeline whose position 0 is `anchor`, holding `window` open for reordering.
    pub fn new(anchor: Instant, rate: u32, window: Duration) -> Timeline {
        let rate_i64 = i64::from(rate);
        let window_samples = samples(window, rate_i64);
        let ring_len = (window_samples + samples(RING_MARGIN, rate_i64)).max(1) as usize;
        Timeline {
            anchor,
            rate,
            window: window_samples,
            reanchor_after: samples(REANCHOR_AFTER, rate_i64),
            ring: vec![0; ring_len],
            committed: 0,
            source: None,
            reanchors: 0,
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples committed so far (the length of the leg's audio).
    pub fn committed(&self) -> u64 {
        self.committed as u64
    }

    /// How many times the stream was placed on the wall clock (first packets included).
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

    /// Places the decoded audio of one packet that arrived at `arrival`.
    pub fn handle_audio(
        &mut self,
        arrival: Instant,
        ssrc: u32,
        timestamp: u32,
        pcm: &[i16],
        sink: &mut impl Sink,
    ) -> Placement {
        let wall = self.position(arrival);
        let position = match self.source {
            Some(source) if source.ssrc == ssrc => {
                // Signed difference: a reordered packet is slightly behind the anchor.
                let delta = i64::from(timestamp.wrapping_sub(source.timestamp) as i32);
                let position = source.position + delta;
                if (position - wall).abs() > self.reanchor_after {
                    None
                } else {
                    if delta > 0 {
                        // Follow the stream so the difference never nears the 2^31 wrap.
                        self.source = Some(SourceAnchor {
                            ssrc,
                            timestamp,
                            position,
                        });
                    }
                    Some(position)
                }
            }
            _ => None,
        };
        let position = position.unwrap_or_else(|| {
            self.reanchors += 1;
            self.source = Some(SourceAnchor {
                ssrc,
                timestamp,
                position: wall,
            });
            wall
        });
        self.place(position, pcm, sink)
    }

    /// Forgets the current SSRC's anchor: the next packet is placed on the wall clock (after a
    /// codec change or a hold, when timestamps may restart).
    pub fn reanchor(&mut self) {
        self.source = None;
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
        self.ring.fill(0);
    }

    fn place(&mut self, position: i64, pcm: &[i16], sink: &mut impl Sink) -> Placement {
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
        let ring_len = self.ring.len() as i64;
        // A packet further ahead than the ring holds (a huge packet, a clock racing ahead) pushes
        // the oldest audio out early instead of overwriting it.
        if end - self.committed > ring_len {
            self.commit_to(end - ring_len, sink);
        }
        let pcm = if pcm.len() > self.ring.len() {
            &pcm[pcm.len() - self.ring.len()..]
        } else {
            pcm
        };
        let position = end - pcm.len() as i64;
        let start = position.rem_euclid(ring_len) as usize;
        let first = pcm.len().min(self.ring.len() - start);
        self.ring[start..start + first].copy_from_slice(&pcm[..first]);
        self.ring[..pcm.len() - first].copy_from_slice(&pcm[first..]);
        placement
    }

    fn commit_to(&mut self, target: i64, sink: &mut impl Sink) {
        let ring_len = self.ring.len() as i64;
        while self.committed < target {
            let start = self.committed.rem_euclid(ring_len) as usize;
            let count = (target - self.committed).min(ring_len - start as i64) as usize;
            let chunk = &mut self.ring[start..start + count];
            sink.write(chunk);
            // Cleared once committed: what no packet fills next time round is silence.
            chunk.fill(0);
            self.committed += count as i64;
        }
    }
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
        timeline.handle_audio(anchor + ms(40), 7, 1000, &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(75), 7, 1160, &frame(2), &mut out);
        timeline.finish(anchor + ms(100), &mut out);
        assert_eq!(out.0.len(), 800);
        assert_eq!(frames(&out), [0, 0, 1, 2, 0]);
    }

    #[test]
    fn reordered_packets_within_the_window_land_in_place() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 1, 0, &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(40), 1, 320, &frame(3), &mut out);
        timeline.handle_tick(anchor + ms(45), &mut out);
        assert_eq!(
            timeline.handle_audio(anchor + ms(50), 1, 160, &frame(2), &mut out),
            Placement::Placed
        );
        timeline.finish(anchor + ms(60), &mut out);
        assert_eq!(frames(&out), [1, 2, 3]);
    }

    #[test]
    fn packets_older_than_the_window_are_late() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 1, 0, &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(40), 1, 320, &frame(3), &mut out);
        // 300 ms later, the window has committed up to 140 ms: frame 2 (20–40 ms) is late.
        timeline.handle_tick(anchor + ms(340), &mut out);
        assert_eq!(
            timeline.handle_audio(anchor + ms(340), 1, 160, &frame(2), &mut out),
            Placement::Late
        );
        timeline.finish(anchor + ms(60), &mut out);
        assert_eq!(frames(&out)[..3], [1, 0, 3]);
    }

    #[test]
    fn packet_straddling_the_commit_point_keeps_its_tail() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 1, 0, &frame(1), &mut out);
        timeline.handle_tick(anchor + ms(210), &mut out); // committed 0..10 ms
        let placement = timeline.handle_audio(anchor + ms(210), 1, 0, &frame(5), &mut out);
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
        timeline.handle_audio(anchor, 1, 5000, &frame(1), &mut out);
        // A new source whose timestamps say nothing about the old one.
        timeline.handle_audio(anchor + ms(40), 2, 123_456, &frame(2), &mut out);
        timeline.handle_audio(anchor + ms(60), 2, 123_616, &frame(3), &mut out);
        timeline.finish(anchor + ms(80), &mut out);
        assert_eq!(frames(&out), [1, 0, 2, 3]);
        assert_eq!(timeline.reanchors(), 2);
    }

    #[test]
    fn timestamp_jump_reanchors_on_the_wall_clock() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 1, 0, &frame(1), &mut out);
        // Same SSRC, timestamp 10 s ahead (a restarted source): placed on arrival.
        timeline.handle_audio(anchor + ms(40), 1, 80_000, &frame(2), &mut out);
        // And the stream continues from there.
        timeline.handle_audio(anchor + ms(60), 1, 80_160, &frame(3), &mut out);
        timeline.finish(anchor + ms(80), &mut out);
        assert_eq!(frames(&out), [1, 0, 2, 3]);
        assert_eq!(timeline.reanchors(), 2);
    }

    #[test]
    fn timestamp_wrap_is_continuous() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 1, u32::MAX - 159, &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(20), 1, 0, &frame(2), &mut out);
        timeline.finish(anchor + ms(40), &mut out);
        assert_eq!(frames(&out), [1, 2]);
        assert_eq!(timeline.reanchors(), 1);
    }

    #[test]
    fn finish_pads_and_trims_to_the_end_exactly() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor + ms(100), 1, 0, &frame(1), &mut out);
        timeline.handle_audio(anchor + ms(120), 1, 160, &frame(2), &mut out);
        timeline.finish(anchor + ms(130), &mut out);
        assert_eq!(out.0.len(), 1040);
        assert_eq!(&out.0[800..960], &[1; 160]);
        assert_eq!(&out.0[960..], &[2; 80]);
    }

    #[test]
    fn packets_before_the_anchor_are_late() {
        let (anchor, mut timeline, mut out) = setup();
        let placement = timeline.handle_audio(anchor - ms(100), 1, 0, &frame(1), &mut out);
        assert_eq!(placement, Placement::Late);
        timeline.finish(anchor + ms(20), &mut out);
        assert_eq!(frames(&out), [0]);
    }

    #[test]
    fn packet_far_ahead_of_the_ring_pushes_old_audio_out_in_order() {
        let (anchor, mut timeline, mut out) = setup();
        timeline.handle_audio(anchor, 1, 0, &frame(1), &mut out);
        // 0.99 s ahead by timestamp, still within the re-anchor tolerance, plus a huge payload.
        let huge = vec![9i16; 8000];
        timeline.handle_audio(anchor, 1, 7920, &huge, &mut out);
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
            timeline.handle_audio(at, 1, i * 160, &frame((i % 100 + 1) as i16), &mut out);
            timeline.handle_tick(at, &mut out);
        }
        timeline.finish(anchor + ms(10_000), &mut out);
        let expected: Vec<i16> = (0..500).map(|i| (i % 100 + 1) as i16).collect();
        assert_eq!(frames(&out), expected);
    }
}
