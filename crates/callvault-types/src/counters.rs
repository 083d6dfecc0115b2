//! [`LegCounters`]: what one leg counted, from the receive thread to the catalog and the API.

use serde::{Deserialize, Serialize};

/// Everything one leg counted while it was recorded. The media plane fills it, the recorder
/// hands it to the catalog unchanged, the catalog stores it whole, and the JSON of a leg carries
/// its fields flattened (`"packets": 6266, "lost": 0, …`). Adding a counter means adding a field
/// here and nowhere else.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegCounters {
    /// Valid RTP packets received (duplicates included).
    pub packets: u64,
    /// Expected minus received from the sequence ranges (RFC 3550 A.3), never negative.
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Packets (partly) older than the jitter window: their late part was dropped.
    pub late: u64,
    /// Packets of a payload type that is neither the codec, telephone-event nor CN.
    pub unknown_payload: u64,
    /// Comfort-noise packets (PT 13), recorded as silence.
    pub comfort_noise: u64,
    /// RFC 4733 packets (no audio), whatever their event.
    pub telephone_events: u64,
    /// Key presses detected; 0 when DTMF capture is off.
    pub dtmf_digits: u64,
    /// Telephone-event packets of events other than DTMF and flash (tones, modem signals).
    pub telephone_events_other: u64,
    /// Telephone-event payloads too short to hold an event, or changing event mid-press.
    pub telephone_events_malformed: u64,
    /// Datagrams that are not valid RTP (too short, wrong version, bad lengths).
    pub malformed: u64,
    /// RTCP packets, multiplexed or on the RTCP port.
    pub rtcp_packets: u64,
    /// Packets received while the leg was inactive (not recorded).
    pub while_inactive: u64,
    /// SSRCs that replaced the one before (it stopped before they started, as on an SBC
    /// failover): each re-anchors the leg on the wall clock. SSRCs that overlap in time are
    /// not changes but concurrent sources, mixed (see `concurrent_ssrcs`).
    pub ssrc_changes: u64,
    /// Times the stream was placed on the wall clock: its first packet, new SSRCs, timestamp
    /// jumps, resumes after hold and codec changes.
    pub reanchors: u64,
    /// Blocks of audio dropped because the disk writer was behind.
    pub blocks_dropped: u64,
    /// Samples of silence the writer put in place of dropped blocks.
    pub silence_filled: u64,
    /// Blocks of audio discarded because the leg's file had failed (disk full, I/O error).
    pub blocks_discarded: u64,
    /// RFC 3550 §6.4.1 interarrival jitter at the end of the leg, in milliseconds; `None` while
    /// unknown (the leg is still recording, or it received fewer than two audio packets).
    pub jitter_ms: Option<f64>,
    /// Milliseconds of the file that no audio packet covered while the leg was active: loss,
    /// DTX and comfort noise, late packets, before the first packet and after the last. Hold
    /// (inactive) time is not counted.
    pub gaps_filled_ms: u64,
    /// Distinct SSRCs that sent packets (exact up to 16).
    pub ssrcs_seen: u64,
    /// The most SSRCs that sent at the same time (overlapping in time): 2 or more when one
    /// stream carries several parties unmixed, each then a source of its own mixed into the leg.
    pub concurrent_ssrcs: u64,
    /// Packets of further SSRCs while a leg's 4 sources were all still sending: dropped.
    pub packets_beyond_sources: u64,
    /// Each SSRC's own figures, in the order they appeared (the first 16).
    pub sources: Vec<SourceCounters>,
    /// Milliseconds of the file filled by loss concealment (the codec's PLC or FEC, or waveform
    /// repetition) rather than left silent; part of `gaps_filled_ms`. 0 with
    /// `conceal_loss = false`.
    pub concealed_ms: u64,
    /// Audio packets whose payload type (or codec) differs from the previous audio packet's.
    pub codec_changes: u64,
    /// Audio packets decoded at another rate than the leg's and resampled.
    pub resampled_packets: u64,
    /// Audio payloads the decoder rejected (recorded as silence).
    pub decode_errors: u64,
    /// Datagrams longer than the receive buffer (cut by the kernel, recorded as malformed).
    pub truncated: u64,
    /// SRTP packets that failed authentication (wrong key, tampered, too short to hold the tag,
    /// wrong MKI): dropped before the timeline, never recorded.
    pub srtp_auth_failures: u64,
    /// SRTP packets whose index was already received or is older than the replay window
    /// (RFC 3711 §3.3.2), network duplicates included: dropped, never recorded.
    pub srtp_replayed: u64,
    /// SRTCP packets that failed authentication (RTCP is only counted, never used).
    pub srtcp_auth_failures: u64,
    /// RTP and RTCP packets from a source the leg is not bound to (neither the SDP's `c=`
    /// address nor the SIP peer's, or another source than the one latched on the port): dropped
    /// before anything reads them, never recorded and never digits.
    pub foreign_packets: u64,
}

/// What one SSRC of a leg sent ([`LegCounters::sources`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceCounters {
    pub ssrc: u32,
    /// Valid RTP packets of this SSRC (duplicates included).
    pub packets: u64,
    /// Expected minus received from this SSRC's own sequence numbers.
    pub lost: u64,
    /// When its first and its last packet arrived, in milliseconds from the leg's offset 0.
    pub first_ms: u64,
    pub last_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_read_back_from_json_missing_fields_as_zero() {
        // Rows written by an older version lack the counters added since: they read as 0.
        let old: LegCounters = serde_json::from_str(r#"{"packets": 5, "lost": 1}"#).unwrap();
        assert_eq!(old.packets, 5);
        assert_eq!(old.lost, 1);
        assert_eq!(old.jitter_ms, None);
        assert_eq!(old.rtcp_packets, 0);
        let full = LegCounters {
            packets: 9,
            jitter_ms: Some(0.25),
            ..LegCounters::default()
        };
        let text = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<LegCounters>(&text).unwrap(), full);
    }
}
