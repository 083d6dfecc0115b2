//! RFC 4733 telephone-events turned into key presses.
//!
//! A key press is a run of packets with one RTP timestamp (the press's start) and a growing
//! duration field; its last packet has the end bit and is usually sent three times. A newer
//! timestamp starts a new press, even of the same digit. The detector reports each press once:
//! on its first end packet, or with the last duration it saw when the end packets were all lost
//! and either a newer press starts or [`EVENT_TIMEOUT`] passes without a packet (checked on the
//! tick, [`DtmfDetector::handle_tick`]). Packets of a press already reported (the repeated end
//! packets, late updates, retransmissions of older presses) are ignored.
//!
//! Pure state: the caller passes the arrival instant and says where a new press lies on the leg
//! timeline, so everything here is tested on synthetic packets.

use std::time::{Duration, Instant};

/// A press whose end packets were all lost ends this long after its last packet.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(1);
/// A timestamp at most this far behind the last press's is a retransmission of an older press;
/// further behind, the source restarted its timestamps and it is a new press.
const RETRANSMISSION_HORIZON: Duration = Duration::from_secs(10);
/// The highest event that is a key: 0-9, *, #, A-D, then flash (RFC 4733 §3.2, table 7).
const FLASH: u8 = 16;

/// One telephone-event payload (RFC 4733 §2.3): the first four octets; more (padding, a
/// sender's extra bytes) are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    /// The E bit: the last packet(s) of the event.
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// Since the event's start (its RTP timestamp), in units of the event clock.
    pub duration: u16,
}

impl TelephoneEvent {
    /// `None` when the payload is shorter than an event. Never panics.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let [event, flags, high, low, ..] = *payload else {
            return None;
        };
        Some(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([high, low]),
        })
    }
}

/// The key of a DTMF event: `0`-`9`, `*`, `#`, `A`-`D`, `!` for flash; `None` for other events.
pub fn digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        FLASH => Some('!'),
        _ => None,
    }
}

/// One detected key press.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfPress {
    pub digit: char,
    /// Where the press starts on the leg timeline, as the caller located it.
    pub offset_ms: u64,
    pub duration_ms: u64,
}

/// The presses one packet completed: at most the one it superseded and itself.
#[derive(Debug, Default)]
pub struct Presses([Option<DtmfPress>; 2]);

impl Iterator for Presses {
    type Item = DtmfPress;

    fn next(&mut self) -> Option<DtmfPress> {
        self.0.iter_mut().find_map(Option::take)
    }
}

/// The latest press of a leg, kept after it is reported to recognise its retransmissions.
#[derive(Clone, Copy, Debug)]
struct Press {
    ssrc: u32,
    timestamp: u32,
    event: u8,
    duration: u16,
    offset_ms: u64,
    last_packet: Instant,
    reported: bool,
}

/// Key presses of one leg's telephone-events.
#[derive(Debug)]
pub struct DtmfDetector {
    clock_rate: u32,
    horizon: u32,
    last: Option<Press>,
    presses: u64,
    other_events: u64,
    malformed: u64,
}

impl DtmfDetector {
    /// A detector for events timed at `clock_rate` (the telephone-event `a=rtpmap` rate).
    pub fn new(clock_rate: u32) -> DtmfDetector {
        let clock_rate = clock_rate.max(1);
        DtmfDetector {
            clock_rate,
            horizon: clock_rate.saturating_mul(RETRANSMISSION_HORIZON.as_secs() as u32),
            last: None,
            presses: 0,
            other_events: 0,
            malformed: 0,
        }
    }

    /// A re-INVITE changed the telephone-event clock rate.
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        let clock_rate = clock_rate.max(1);
        self.clock_rate = clock_rate;
        self.horizon = clock_rate.saturating_mul(RETRANSMISSION_HORIZON.as_secs() as u32);
    }

    /// Presses reported so far.
    pub fn presses(&self) -> u64 {
        self.presses
    }

    /// Packets of events that are not keys (ignored).
    pub fn other_events(&self) -> u64 {
        self.other_events
    }

    /// Payloads too short, or changing event within a press (ignored).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// One telephone-event packet. `locate` is called once per new press with its first packet
    /// and returns the press's offset on the leg timeline in ms.
    pub fn handle_packet(
        &mut self,
        arrival: Instant,
        ssrc: u32,
        timestamp: u32,
        payload: &[u8],
        locate: impl FnOnce(&TelephoneEvent) -> u64,
    ) -> Presses {
        let mut done = Presses::default();
        let Some(event) = TelephoneEvent::parse(payload) else {
            self.malformed += 1;
            return done;
        };
        if digit(event.event).is_none() {
            self.other_events += 1;
            return done;
        }
        if let Some(last) = &mut self.last
            && last.ssrc == ssrc
        {
            // Signed: timestamps wrap, and "before" means within half the range.
            let delta = timestamp.wrapping_sub(last.timestamp) as i32;
            if delta == 0 {
                if event.event != last.event {
                    self.malformed += 1;
                } else if !last.reported {
                    // Reordered updates carry smaller durations: keep the largest.
                    last.duration = last.duration.max(event.duration);
                    last.last_packet = arrival;
                    if event.end {
                        done.0[0] = self.report();
                    }
                }
                // Otherwise a repeated end packet or a late update of a reported press.
                return done;
            }
            if delta < 0 && delta.unsigned_abs() <= self.horizon {
                return done; // a retransmission of an older press
            }
        }
        // A new press (newer timestamp, new source, or restarted timestamps): the previous one
        // ends here if its end packets were lost.
        done.0[0] = self.report();
        self.last = Some(Press {
            ssrc,
            timestamp,
            event: event.event,
            duration: event.duration,
            offset_ms: locate(&event),
            last_packet: arrival,
            reported: false,
        });
        if event.end {
            done.0[1] = self.report();
        }
        done
    }

    /// Ends a press whose end packets were lost once [`EVENT_TIMEOUT`] has passed without a
    /// packet.
    pub fn handle_tick(&mut self, now: Instant) -> Option<DtmfPress> {
        let last = self.last.as_ref()?;
        if !last.reported && now.saturating_duration_since(last.last_packet) >= EVENT_TIMEOUT {
            self.report()
        } else {
            None
        }
    }

    /// The leg ends: a press still open is reported with its last duration.
    pub fn finish(&mut self) -> Option<DtmfPress> {
        self.report()
    }

    /// Reports the latest press if it has not been yet.
    fn report(&mut self) -> Option<DtmfPress> {
        let last = self.last.as_mut().filter(|last| !last.reported)?;
        last.reported = true;
        self.presses += 1;
        let clock = u64::from(self.clock_rate);
        Some(DtmfPress {
            digit: digit(last.event).expect("only key events become presses"),
            offset_ms: last.offset_ms,
            duration_ms: (u64::from(last.duration) * 1000 + clock / 2) / clock,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSRC: u32 = 0x1234;

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let [high, low] = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, high, low]
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds packets (arrival ms, timestamp, event, end, duration) and collects the presses; a
    /// new press is located at its timestamp / 8 (ms at 8 kHz).
    fn run(
        detector: &mut DtmfDetector,
        start: Instant,
        packets: &[(u64, u32, u8, bool, u16)],
    ) -> Vec<DtmfPress> {
        let mut presses = Vec::new();
        for &(at, timestamp, event, end, duration) in packets {
            let arrival = start + ms(at);
            presses.extend(detector.handle_packet(
                arrival,
                SSRC,
                timestamp,
                &payload(event, end, duration),
                |_| u64::from(timestamp / 8),
            ));
            presses.extend(detector.handle_tick(arrival));
        }
        presses
    }

    fn press(digit: char, offset_ms: u64, duration_ms: u64) -> DtmfPress {
        DtmfPress {
            digit,
            offset_ms,
            duration_ms,
        }
    }

    #[test]
    fn payload_parsing() {
        assert_eq!(
            TelephoneEvent::parse(&[11, 0x8a, 0x03, 0x20, 0xff]),
            Some(TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            })
        );
        assert_eq!(TelephoneEvent::parse(&[1, 0, 0]), None);
        assert_eq!(TelephoneEvent::parse(&[]), None);
        let keys: String = (0..=17).filter_map(digit).collect();
        assert_eq!(keys, "0123456789*#ABCD!");
    }

    #[test]
    fn single_press_with_three_end_packets_is_one_press() {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(8000);
        let presses = run(
            &mut detector,
            start,
            &[
                (0, 8000, 1, false, 0),
                (20, 8000, 1, false, 160),
                (40, 8000, 1, false, 320),
                (60, 8000, 1, true, 640),
                (60, 8000, 1, true, 640),
                (61, 8000, 1, true, 640),
            ],
        );
        assert_eq!(presses, [press('1', 1000, 80)]);
        assert_eq!(detector.presses(), 1);
        assert_eq!(detector.finish(), None);
    }

    #[test]
    fn long_press_reports_the_final_duration_once() {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(8000);
        let mut packets: Vec<_> = (0..150u16)
            .map(|i| (u64::from(i) * 20, 400, 11, false, i * 160))
            .collect();
        // A reordered earlier update does not shrink the duration.
        packets.insert(100, (1990, 400, 11, false, 160));
        packets.extend([(3000, 400, 11, true, 24000); 3]);
        let presses = run(&mut detector, start, &packets);
        assert_eq!(presses, [press('#', 50, 3000)]);
    }

    #[test]
    fn same_digit_twice_back_to_back_is_two_presses() {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(8000);
        let presses = run(
            &mut detector,
            start,
            &[
                (0, 1600, 5, false, 160),
                (20, 1600, 5, true, 400),
                (21, 1600, 5, true, 400),
                (22, 1600, 5, true, 400),
                (100, 2400, 5, false, 160),
                (120, 2400, 5, true, 480),
                (121, 2400, 5, true, 480),
            ],
        );
        assert_eq!(presses, [press('5', 200, 50), press('5', 300, 60)]);
    }

    #[test]
    fn lost_end_packets_end_the_press_at_the_next_press() {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(8000);
        let presses = run(
            &mut detector,
            start,
            &[
                (0, 800, 2, false, 160),
                (20, 800, 2, false, 320),
                // No end packet; the next key starts 200 ms later.
                (200, 2400, 3, false, 160),
                (220, 2400, 3, true, 320),
            ],
        );
        assert_eq!(presses, [press('2', 100, 40), press('3', 300, 40)]);
    }

    #[test]
    fn lost_end_packets_end_the_press_after_a_second_without_packets() {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(8000);
        let presses = run(
            &mut detector,
            start,
            &[(0, 0, 9, false, 160), (20, 0, 9, false, 320)],
        );
        assert!(presses.is_empty());
        assert_eq!(detector.handle_tick(start + ms(1019)), None);
        assert_eq!(
            detector.handle_tick(start + ms(1020)),
            Some(press('9', 0, 40))
        );
        assert_eq!(
            detector.handle_tick(start + ms(3000)),
            None,
            "reported once"
        );
        // A late end packet of that press changes nothing.
        let late = run(&mut detector, start, &[(1100, 0, 9, true, 400)]);
        assert!(late.is_empty());
    }

    #[test]
    fn retransmitted_earlier_press_is_ignored() {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(8000);
        let presses = run(
            &mut detector,
            start,
            &[
                (0, 1000, 4, true, 400),
                (100, 2000, 6, true, 400),
                // The first press again (a retransmitting gateway), end bit or not.
                (120, 1000, 4, true, 400),
                (121, 1000, 4, false, 160),
            ],
        );
        assert_eq!(presses, [press('4', 125, 50), press('6', 250, 50)]);
    }

    #[test]
    fn timestamp_wraparound_is_a_newer_press() {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(8000);
        let mut presses = Vec::new();
        for (at, timestamp, event) in [(0, u32::MAX - 799, 1), (200, 800, 2)] {
            for (i, end) in [(0, false), (1, true), (2, true)] {
                presses.extend(detector.handle_packet(
                    start + ms(at + i * 20),
                    SSRC,
                    timestamp,
                    &payload(event, end, 320),
                    |_| at,
                ));
            }
        }
        assert_eq!(presses, [press('1', 0, 40), press('2', 200, 40)]);
        // And a packet of the pre-wrap press is a retransmission, not a new press.
        let old =
            detector.handle_packet(start, SSRC, u32::MAX - 799, &payload(1, true, 320), |_| 0);
        assert_eq!(old.count(), 0);
    }

    #[test]
    fn malformed_and_other_events_are_counted_not_reported() {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(8000);
        for bad in [&[][..], &[1], &[1, 0x80], &[1, 0x80, 0]] {
            assert_eq!(
                detector.handle_packet(start, SSRC, 0, bad, |_| 0).count(),
                0
            );
        }
        // Event 32 (a modem tone): not a key.
        assert_eq!(
            detector
                .handle_packet(start, SSRC, 0, &payload(32, true, 160), |_| 0)
                .count(),
            0
        );
        // A different event under the timestamp of an open press.
        assert_eq!(
            detector
                .handle_packet(start, SSRC, 8, &payload(1, false, 160), |_| 0)
                .count(),
            0
        );
        assert_eq!(
            detector
                .handle_packet(start, SSRC, 8, &payload(2, true, 160), |_| 0)
                .count(),
            0
        );
        assert_eq!((detector.malformed(), detector.other_events()), (5, 1));
        assert_eq!(detector.finish(), Some(press('1', 0, 20)));
        assert_eq!(detector.finish(), None);
    }

    #[test]
    fn new_source_or_restarted_timestamps_start_a_new_press() {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(8000);
        let mut presses = Vec::new();
        presses.extend(detector.handle_packet(start, 1, 500_000, &payload(7, true, 160), |_| 1));
        // Another SSRC with a lower timestamp: not a retransmission.
        presses.extend(detector.handle_packet(start, 2, 100, &payload(8, true, 160), |_| 2));
        presses.extend(detector.handle_packet(
            start,
            2,
            500_000_000,
            &payload(0, true, 160),
            |_| 3,
        ));
        // Same SSRC, timestamps restarted far behind (beyond the horizon).
        presses.extend(detector.handle_packet(start, 2, 5, &payload(1, true, 160), |_| 4));
        let digits: String = presses.iter().map(|p| p.digit).collect();
        assert_eq!(digits, "7801");
    }

    #[test]
    fn flash_and_letters_at_another_clock_rate() {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(48000);
        let mut presses: Vec<_> = detector
            .handle_packet(start, SSRC, 0, &payload(16, true, 24000), |_| 7)
            .collect();
        presses.extend(detector.handle_packet(start, SSRC, 48000, &payload(13, true, 4800), |_| 8));
        assert_eq!(presses, [press('!', 7, 500), press('B', 8, 100)]);
    }
}
