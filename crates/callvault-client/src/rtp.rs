//! The media side of a recording client: one RTP stream per leg, a PCMU tone in 20 ms packets, and
//! RFC 4733 telephone-events for the digits (a key press is event packets in place of audio,
//! one per 20 ms with a growing duration, the end packet sent three times, RFC 4733 §2.5.1.4).
//! Packets are built into a buffer the stream keeps: nothing is allocated per packet.

use callvault_codec::{CodecKind, Encoder};

/// Samples per 20 ms packet at 8000 Hz.
pub const SAMPLES_PER_PACKET: u32 = 160;
const PCMU_PT: u8 = 0;
/// A key press lasts this many packets (200 ms), then this many of tone (100 ms) before the next.
pub const DIGIT_PACKETS: u32 = 10;
pub const GAP_PACKETS: u32 = 5;
/// -10 dBm0-ish: loud enough to measure, far from clipping.
const AMPLITUDE: f64 = 8_000.0;

pub struct RtpStream {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    sample: u64,
    tone_hz: f64,
    encoder: Encoder,
    /// The tone fits a whole number of periods in 20 ms (1000 Hz does, 440 Hz does not): every
    /// packet's payload is the same, encoded once. The load generator sends 100,000 packets a
    /// second and must not spend a core on `sin`.
    periodic: bool,
    pcm: Vec<i16>,
    payload: Vec<u8>,
    packet: Vec<u8>,
}

/// The RFC 4733 event code of a key, or `None` for a character no key has.
pub fn event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        _ => None,
    }
}

impl RtpStream {
    pub fn new(ssrc: u32, tone_hz: f64) -> RtpStream {
        RtpStream {
            ssrc,
            seq: (ssrc >> 16) as u16,
            timestamp: ssrc.rotate_left(7),
            sample: 0,
            tone_hz,
            encoder: Encoder::new(CodecKind::Pcmu).expect("PCMU needs no codec library"),
            periodic: (tone_hz * f64::from(SAMPLES_PER_PACKET) / 8_000.0).fract() == 0.0,
            pcm: Vec::with_capacity(SAMPLES_PER_PACKET as usize),
            payload: Vec::with_capacity(SAMPLES_PER_PACKET as usize),
            packet: Vec::with_capacity(12 + SAMPLES_PER_PACKET as usize),
        }
    }

    fn header(&mut self, payload_type: u8, marker: bool, timestamp: u32) {
        self.packet.clear();
        self.packet.push(0x80);
        self.packet
            .push(payload_type | if marker { 0x80 } else { 0 });
        self.packet.extend_from_slice(&self.seq.to_be_bytes());
        self.packet.extend_from_slice(&timestamp.to_be_bytes());
        self.packet.extend_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
    }

    /// The next 20 ms of tone.
    pub fn audio(&mut self) -> &[u8] {
        if self.periodic && !self.payload.is_empty() {
            self.sample += u64::from(SAMPLES_PER_PACKET);
        } else {
            self.encode_tone();
        }
        let timestamp = self.timestamp;
        self.header(PCMU_PT, false, timestamp);
        self.packet.extend_from_slice(&self.payload);
        self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_PACKET);
        &self.packet
    }

    fn encode_tone(&mut self) {
        self.pcm.clear();
        for _ in 0..SAMPLES_PER_PACKET {
            let t = self.sample as f64 / 8_000.0;
            let value = AMPLITUDE * (2.0 * std::f64::consts::PI * self.tone_hz * t).sin();
            self.pcm.push(value as i16);
            self.sample += 1;
        }
        self.encoder
            .encode(&self.pcm, &mut self.payload)
            .expect("PCMU encodes any length");
    }

    /// The `index`-th packet (from 0) of a key press lasting `DIGIT_PACKETS` packets; the
    /// last one has the end bit. The press is timed from the timestamp of its first packet.
    pub fn event(&mut self, code: u8, index: u32, payload_type: u8) -> &[u8] {
        let start = self.timestamp.wrapping_sub(index * SAMPLES_PER_PACKET);
        let end = index + 1 == DIGIT_PACKETS;
        let duration = ((index + 1) * SAMPLES_PER_PACKET) as u16;
        self.header(payload_type, index == 0, start);
        // Event, E|R|volume (10: -10 dBm0), duration.
        self.packet.push(code);
        self.packet.push(if end { 0x80 | 10 } else { 10 });
        self.packet.extend_from_slice(&duration.to_be_bytes());
        // The stream's clock goes on during the press: the tone after it stays in time.
        self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_PACKET);
        self.sample += u64::from(SAMPLES_PER_PACKET);
        &self.packet
    }

    /// The last event packet again, with a sequence number of its own (retransmitted end).
    pub fn repeat(&mut self) -> &[u8] {
        let seq = self.seq.to_be_bytes();
        self.packet[2..4].copy_from_slice(&seq);
        self.seq = self.seq.wrapping_add(1);
        &self.packet
    }
}

/// What stream 0 sends at packet `tick` when `digits` start at `first_tick`: `Some((code,
/// index))` during a key press.
pub fn digit_at(digits: &[u8], first_tick: u32, tick: u32) -> Option<(u8, u32)> {
    let offset = tick.checked_sub(first_tick)?;
    let per_digit = DIGIT_PACKETS + GAP_PACKETS;
    let code = *digits.get((offset / per_digit) as usize)?;
    let index = offset % per_digit;
    (index < DIGIT_PACKETS).then_some((code, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_packets_advance_sequence_and_timestamp() {
        let mut stream = RtpStream::new(0x1234_5678, 440.0);
        let first = stream.audio().to_vec();
        let second = stream.audio().to_vec();
        assert_eq!(first.len(), 12 + 160);
        assert_eq!(first[1], 0, "PCMU");
        let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(seq(&second), seq(&first).wrapping_add(1));
        assert_eq!(ts(&second), ts(&first).wrapping_add(160));
        assert_eq!(&first[8..12], &0x1234_5678u32.to_be_bytes());
    }

    #[test]
    fn a_periodic_tone_sends_the_payload_it_would_compute() {
        let mut cached = RtpStream::new(1, 1_000.0);
        let mut computed = RtpStream::new(1, 1_000.0);
        computed.periodic = false;
        for _ in 0..3 {
            assert_eq!(cached.audio(), computed.audio());
        }
        assert!(!RtpStream::new(1, 440.0).periodic);
    }

    #[test]
    fn a_key_press_is_one_event_with_a_growing_duration_and_an_end() {
        let mut stream = RtpStream::new(7, 440.0);
        stream.audio();
        let packets: Vec<Vec<u8>> = (0..DIGIT_PACKETS)
            .map(|i| stream.event(5, i, 101).to_vec())
            .collect();
        let repeat = stream.repeat().to_vec();
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert!(
            packets.iter().all(|p| ts(p) == ts(&packets[0])),
            "one event"
        );
        assert_eq!(packets[0][1], 0x80 | 101, "marker on the first");
        assert_eq!(packets[1][1], 101);
        let last = &packets[DIGIT_PACKETS as usize - 1];
        assert_eq!(last[12], 5);
        assert_eq!(last[13] & 0x80, 0x80, "end bit");
        assert_eq!(u16::from_be_bytes([last[14], last[15]]), 1600);
        assert_eq!(&repeat[12..], &last[12..]);
        assert_ne!(repeat[2..4], last[2..4]);
        // The tone resumes 200 ms later on the stream's clock.
        let after = stream.audio().to_vec();
        assert_eq!(ts(&after), ts(&packets[0]) + 1600);
    }

    #[test]
    fn digits_follow_each_other_with_a_gap() {
        let digits = [1, 2];
        assert_eq!(digit_at(&digits, 50, 49), None);
        assert_eq!(digit_at(&digits, 50, 50), Some((1, 0)));
        assert_eq!(digit_at(&digits, 50, 59), Some((1, 9)));
        assert_eq!(digit_at(&digits, 50, 60), None);
        assert_eq!(digit_at(&digits, 50, 65), Some((2, 0)));
        assert_eq!(digit_at(&digits, 50, 80), None);
        assert_eq!(event_code('#'), Some(11));
        assert_eq!(event_code('x'), None);
    }
}
