//! RTP sequence numbers: extension to 64 bits, loss, duplicates and reordering (RFC 3550 A.1, A.3).

/// A jump forward larger than this is not loss but a restart (RFC 3550 A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: u16 = 3000;
/// A packet this far behind the highest one is reordered, beyond it a restart (`MAX_MISORDER`).
const MAX_MISORDER: u16 = 100;
/// Sequence numbers remembered behind the highest one, to recognise duplicates.
const HISTORY: u64 = 1024;

/// What one sequence number means for the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceOutcome {
    /// The first packet, or one after the highest seen (perhaps after a gap).
    InOrder,
    /// Behind the highest seen and not seen before.
    OutOfOrder,
    /// Already received.
    Duplicate,
    /// A jump too large to be loss; the counting restarts if the next packet follows it
    /// (RFC 3550 A.1 probation). The audio is still usable: timestamps place it.
    Jump,
}

/// One run of consecutive sequence numbers (one SSRC, between restarts).
#[derive(Clone, Debug)]
struct Run {
    /// Lowest extended sequence number seen.
    base: u64,
    /// Highest extended sequence number seen.
    max: u64,
    /// Distinct packets received.
    received: u64,
    /// The sequence number that confirms a jump (RFC 3550 A.1 `bad_seq`).
    bad_sequence: Option<u16>,
    /// Bit `ext % HISTORY` is set when `ext` was received, for `max - HISTORY < ext <= max`.
    history: [u64; (HISTORY / 64) as usize],
}

impl Run {
    fn new(sequence: u16) -> Run {
        // Extended numbers start one cycle up so that a packet reordered before the first one
        // still has a non-negative extended number.
        let ext = (1 << 16) + u64::from(sequence);
        let mut run = Run {
            base: ext,
            max: ext,
            received: 1,
            bad_sequence: None,
            history: [0; (HISTORY / 64) as usize],
        };
        run.mark(ext);
        run
    }

    fn mark(&mut self, ext: u64) {
        let bit = ext % HISTORY;
        self.history[(bit / 64) as usize] |= 1 << (bit % 64);
    }

    fn clear(&mut self, ext: u64) {
        let bit = ext % HISTORY;
        self.history[(bit / 64) as usize] &= !(1 << (bit % 64));
    }

    fn is_marked(&self, ext: u64) -> bool {
        let bit = ext % HISTORY;
        self.history[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    fn expected(&self) -> u64 {
        self.max - self.base + 1
    }
}

/// Sequence accounting for one leg, across SSRC changes and restarts.
#[derive(Clone, Debug, Default)]
pub struct SequenceTracker {
    run: Option<Run>,
    /// Expected and received packets of finished runs.
    finished_expected: u64,
    finished_received: u64,
}

impl SequenceTracker {
    /// Accounts one packet's sequence number.
    pub fn handle(&mut self, sequence: u16) -> SequenceOutcome {
        let Some(run) = self.run.as_mut() else {
            self.run = Some(Run::new(sequence));
            return SequenceOutcome::InOrder;
        };
        let delta = sequence.wrapping_sub(run.max as u16);
        if delta == 0 {
            return SequenceOutcome::Duplicate;
        }
        if delta < MAX_DROPOUT {
            let new_max = run.max + u64::from(delta);
            if u64::from(delta) >= HISTORY {
                run.history = [0; (HISTORY / 64) as usize];
            } else {
                for ext in run.max + 1..=new_max {
                    run.clear(ext);
                }
            }
            run.max = new_max;
            run.mark(new_max);
            run.received += 1;
            run.bad_sequence = None;
            return SequenceOutcome::InOrder;
        }
        let behind = 0u16.wrapping_sub(delta);
        if behind <= MAX_MISORDER {
            let ext = run.max - u64::from(behind);
            if run.is_marked(ext) {
                return SequenceOutcome::Duplicate;
            }
            run.mark(ext);
            run.received += 1;
            run.base = run.base.min(ext);
            return SequenceOutcome::OutOfOrder;
        }
        if run.bad_sequence == Some(sequence) {
            // Two consecutive packets after the jump: the source restarted its numbering.
            self.restart(sequence);
            return SequenceOutcome::InOrder;
        }
        run.bad_sequence = Some(sequence.wrapping_add(1));
        SequenceOutcome::Jump
    }

    /// Starts counting afresh (a new SSRC); what was counted so far stays in the totals.
    pub fn reset(&mut self) {
        if let Some(run) = self.run.take() {
            self.finished_expected += run.expected();
            self.finished_received += run.received;
        }
    }

    fn restart(&mut self, sequence: u16) {
        self.reset();
        self.run = Some(Run::new(sequence));
    }

    /// Packets expected from the sequence ranges seen.
    pub fn expected(&self) -> u64 {
        self.finished_expected + self.run.as_ref().map_or(0, Run::expected)
    }

    /// Distinct packets received.
    pub fn received(&self) -> u64 {
        self.finished_received + self.run.as_ref().map_or(0, |run| run.received)
    }

    /// Packets lost: expected minus received, never negative.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received())
    }
}

#[cfg(test)]
mod tests {
    use super::SequenceOutcome::*;
    use super::*;

    fn feed(tracker: &mut SequenceTracker, sequences: &[u16]) -> Vec<SequenceOutcome> {
        sequences.iter().map(|s| tracker.handle(*s)).collect()
    }

    #[test]
    fn in_order_stream_loses_nothing() {
        let mut tracker = SequenceTracker::default();
        assert!(
            feed(&mut tracker, &[10, 11, 12, 13])
                .iter()
                .all(|o| *o == InOrder)
        );
        assert_eq!(
            (tracker.expected(), tracker.received(), tracker.lost()),
            (4, 4, 0)
        );
    }

    #[test]
    fn wrap_at_65535_is_continuous() {
        let mut tracker = SequenceTracker::default();
        let outcomes = feed(&mut tracker, &[65533, 65534, 65535, 0, 1]);
        assert!(outcomes.iter().all(|o| *o == InOrder));
        assert_eq!(tracker.lost(), 0);
        assert_eq!(tracker.expected(), 5);
    }

    #[test]
    fn loss_across_the_wrap_is_counted() {
        let mut tracker = SequenceTracker::default();
        feed(&mut tracker, &[65533, 65534, 0, 2]);
        assert_eq!(tracker.expected(), 6);
        assert_eq!(tracker.lost(), 2);
    }

    #[test]
    fn reordered_packet_fills_its_gap() {
        let mut tracker = SequenceTracker::default();
        assert_eq!(
            feed(&mut tracker, &[1, 2, 4, 3, 5]),
            [InOrder, InOrder, InOrder, OutOfOrder, InOrder]
        );
        assert_eq!(tracker.lost(), 0);
    }

    #[test]
    fn reordered_across_the_wrap() {
        let mut tracker = SequenceTracker::default();
        assert_eq!(
            feed(&mut tracker, &[65534, 0, 65535, 1]),
            [InOrder, InOrder, OutOfOrder, InOrder]
        );
        assert_eq!(tracker.lost(), 0);
    }

    #[test]
    fn duplicates_are_recognised_and_not_received_twice() {
        let mut tracker = SequenceTracker::default();
        assert_eq!(
            feed(&mut tracker, &[1, 2, 3, 2, 3, 1, 4]),
            [
                InOrder, InOrder, InOrder, Duplicate, Duplicate, Duplicate, InOrder
            ]
        );
        assert_eq!((tracker.received(), tracker.lost()), (4, 0));
    }

    #[test]
    fn packet_before_the_first_lowers_the_base() {
        let mut tracker = SequenceTracker::default();
        assert_eq!(
            feed(&mut tracker, &[10, 8, 11]),
            [InOrder, OutOfOrder, InOrder]
        );
        assert_eq!((tracker.expected(), tracker.lost()), (4, 1));
    }

    #[test]
    fn large_jump_restarts_after_confirmation() {
        let mut tracker = SequenceTracker::default();
        feed(&mut tracker, &[1, 2, 3]);
        assert_eq!(tracker.handle(40000), Jump);
        assert_eq!(tracker.handle(40001), InOrder);
        assert_eq!(tracker.handle(40002), InOrder);
        // 3 from the first run, 2 from the second; the unconfirmed 40000 is not counted.
        assert_eq!(
            (tracker.expected(), tracker.received(), tracker.lost()),
            (5, 5, 0)
        );
    }

    #[test]
    fn a_single_stray_jump_does_not_restart() {
        let mut tracker = SequenceTracker::default();
        feed(&mut tracker, &[1, 2]);
        assert_eq!(tracker.handle(30000), Jump);
        assert_eq!(tracker.handle(3), InOrder);
        assert_eq!(tracker.lost(), 0);
    }

    #[test]
    fn reset_keeps_totals() {
        let mut tracker = SequenceTracker::default();
        feed(&mut tracker, &[1, 3]);
        tracker.reset();
        feed(&mut tracker, &[500, 501]);
        assert_eq!(
            (tracker.expected(), tracker.received(), tracker.lost()),
            (5, 4, 1)
        );
    }

    #[test]
    fn old_history_is_forgotten() {
        let mut tracker = SequenceTracker::default();
        for s in 0..2000u16 {
            tracker.handle(s);
        }
        // 1950 is within MAX_MISORDER behind and was received: a duplicate.
        assert_eq!(tracker.handle(1950), Duplicate);
        assert_eq!(tracker.lost(), 0);
    }
}
