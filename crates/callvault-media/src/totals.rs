//! The engine's totals that carry a dimension: legs and packets per codec, and how long the
//! writer's disk writes take. Threads update them with plain atomic adds — per leg, per tick,
//! per block written, never per packet and never under a lock — and `/metrics` reads them at
//! scrape time ([`MediaStats::codecs`], [`MediaStats::disk_writes`]).
//!
//! The histogram is ours rather than a metrics library's: the libraries' histograms take a lock
//! per observation, which the writer thread (and any thread of the media path) must not.
//!
//! [`MediaStats::codecs`]: crate::MediaStats::codecs
//! [`MediaStats::disk_writes`]: crate::MediaStats::disk_writes

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::CodecKind;

/// Upper bounds (seconds) of the disk-write latency buckets: a positioned write of one block
/// takes microseconds on a healthy disk and tens of milliseconds on a struggling one.
pub const DISK_WRITE_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// A latency histogram over [`DISK_WRITE_BUCKETS`] that any thread updates without a lock.
#[derive(Debug, Default)]
pub(crate) struct AtomicHistogram {
    /// Observations per bucket (not cumulative); the last one is above every bound (`+Inf`).
    counts: [AtomicU64; DISK_WRITE_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    pub(crate) fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = DISK_WRITE_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DISK_WRITE_BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = [0; DISK_WRITE_BUCKETS.len() + 1];
        for (out, count) in buckets.iter_mut().zip(&self.counts) {
            *out = count.load(Ordering::Relaxed);
        }
        HistogramSnapshot {
            buckets,
            sum_seconds: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
        }
    }
}

/// A histogram at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations per bucket of [`DISK_WRITE_BUCKETS`] (not cumulative), then those above
    /// the last bound.
    pub buckets: [u64; DISK_WRITE_BUCKETS.len() + 1],
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// `(upper bound, observations in that bucket)`, the last bound `+Inf`: what an exposition
    /// library encodes (it accumulates).
    pub fn bounded(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        DISK_WRITE_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter().copied())
    }
}

/// The codec names legs and packets are counted under: one slot per [`CodecKind`] (L16's
/// rates and channels share one).
pub const CODEC_NAMES: [&str; 6] = ["PCMU", "PCMA", "G722", "L16", "OPUS", "G729"];

/// `kind`'s slot in [`CODEC_NAMES`].
pub(crate) fn codec_slot(kind: CodecKind) -> usize {
    match kind {
        CodecKind::Pcmu => 0,
        CodecKind::Pcma => 1,
        CodecKind::G722 => 2,
        CodecKind::L16 { .. } => 3,
        CodecKind::Opus => 4,
        CodecKind::G729 => 5,
    }
}

/// Legs started and RTP packets received, per codec.
#[derive(Debug, Default)]
pub(crate) struct CodecTotals {
    legs: [AtomicU64; CODEC_NAMES.len()],
    packets: [AtomicU64; CODEC_NAMES.len()],
}

impl CodecTotals {
    pub(crate) fn leg_started(&self, codec: CodecKind) {
        self.legs[codec_slot(codec)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_packets(&self, codec: CodecKind, packets: u64) {
        if packets > 0 {
            self.packets[codec_slot(codec)].fetch_add(packets, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> [CodecCount; CODEC_NAMES.len()] {
        std::array::from_fn(|slot| CodecCount {
            codec: CODEC_NAMES[slot],
            legs: self.legs[slot].load(Ordering::Relaxed),
            packets: self.packets[slot].load(Ordering::Relaxed),
        })
    }
}

/// One codec's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodecCount {
    /// As in [`CODEC_NAMES`] (and the catalog's leg codec).
    pub codec: &'static str,
    pub legs: u64,
    pub packets: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_codec_has_its_own_slot_named_as_in_the_catalog() {
        for kind in [
            CodecKind::Pcmu,
            CodecKind::Pcma,
            CodecKind::G722,
            CodecKind::L16 {
                channels: 1,
                clock_rate: 16000,
            },
            CodecKind::Opus,
            CodecKind::G729,
        ] {
            assert_eq!(CODEC_NAMES[codec_slot(kind)], kind.name());
        }
    }

    #[test]
    fn the_histogram_puts_each_latency_in_the_first_bucket_that_holds_it() {
        let histogram = AtomicHistogram::default();
        histogram.observe(Duration::from_micros(30)); // ≤ 50 µs
        histogram.observe(Duration::from_micros(50)); // on a bound: that bucket
        histogram.observe(Duration::from_millis(3)); // ≤ 5 ms
        histogram.observe(Duration::from_secs(2)); // above every bound
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 4);
        let nonzero: Vec<(f64, u64)> = snapshot.bounded().filter(|(_, n)| *n > 0).collect();
        assert_eq!(nonzero, vec![(0.000_05, 2), (0.005, 1), (f64::INFINITY, 1)]);
        assert!((snapshot.sum_seconds - 2.003_08).abs() < 1e-9);
    }

    #[test]
    fn codec_totals_count_legs_and_packets_apart() {
        let totals = CodecTotals::default();
        totals.leg_started(CodecKind::Pcmu);
        totals.leg_started(CodecKind::Pcmu);
        totals.add_packets(CodecKind::Pcmu, 250);
        totals.add_packets(CodecKind::Opus, 3);
        let snapshot = totals.snapshot();
        assert_eq!(
            snapshot[0],
            CodecCount {
                codec: "PCMU",
                legs: 2,
                packets: 250
            }
        );
        assert_eq!(snapshot[4].packets, 3);
        assert_eq!(snapshot[1].legs + snapshot[1].packets, 0);
    }
}
