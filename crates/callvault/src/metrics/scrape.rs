//! The `/metrics` collector: the server's counters, read when Prometheus scrapes.
//!
//! Most of what `/metrics` shows is counted where it happens, in plain atomics and snapshots
//! that already exist for `/health` (the recorder's gauges, the media engine's totals, the
//! endpoint's and the transports' counters, the archive's health): this collector reads them
//! at scrape time and hands them to prometheus-client's encoder as constant values, so counting
//! stays a relaxed atomic add wherever it is done — on the media path above all, where no lock
//! may be taken per packet. The labelled families of the control plane are in `calls.rs`.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use callvault_media::HistogramSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::Sources;
use super::labels::{BuildLabels, CodecLabels};

/// The build, for `callvault_build_info`.
pub const BUILD: BuildLabels = BuildLabels {
    version: env!("CARGO_PKG_VERSION"),
    git_commit: env!("CALLVAULT_GIT_COMMIT"),
    rustc: env!("CALLVAULT_RUSTC"),
};

pub struct Scrape {
    pub sources: Sources,
    /// When this process started (`callvault_start_time_seconds`).
    pub started: SystemTime,
}

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &self.sources;
        let sip = *s.sip.borrow();
        let media = s.media.stats();
        let g = &s.gauges;
        let load = |a: &AtomicUsize| a.load(Ordering::Relaxed) as u64;

        // An info metric: `callvault_build_info{…} 1`, typed `info` in OpenMetrics and `gauge`
        // in the classic format (the library adds the `_info`).
        e.encode_descriptor(
            "callvault_build",
            "The running build: version, git commit, compiler. Always 1.",
            None,
            MetricType::Info,
        )?
        .encode_info(&BUILD)?;
        let started = self
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        gauge(
            &mut e,
            "callvault_start_time_seconds",
            "When this process started, in seconds since the Unix epoch.",
            started,
        )?;

        gauge(
            &mut e,
            "callvault_sessions_active",
            "Recording sessions in progress.",
            load(&g.active_sessions),
        )?;
        counter(
            &mut e,
            "callvault_sessions_rejected_total",
            "Recording INVITEs refused (full node, bad offer, no media ports).",
            load(&g.rejected_total),
        )?;
        gauge(
            &mut e,
            "callvault_sessions_closing",
            "Ended sessions whose files are still being closed.",
            load(&g.closing_sessions),
        )?;
        counter(
            &mut e,
            "callvault_sessions_refused_storage_total",
            "Recording INVITEs refused with 503 because the disk or the catalog was unhealthy.",
            load(&g.refused_storage_total),
        )?;
        counter(
            &mut e,
            "callvault_sessions_hangups_total",
            "Sessions ended by a BYE of ours (timeouts, limits, failures, shutdown).",
            load(&g.hangups_total),
        )?;
        counter(
            &mut e,
            "callvault_recording_caps_reached_total",
            "DTMF digits and metadata revisions not stored because their recording reached its cap.",
            load(&g.capped_total),
        )?;
        counter(
            &mut e,
            "callvault_legs_failed_total",
            "Legs whose file could not be written (alarm on any increase).",
            load(&g.legs_failed_total),
        )?;
        let storage = s.storage.borrow().clone();
        gauge(
            &mut e,
            "callvault_storage_free_bytes",
            "Free bytes on the data directory's filesystem.",
            storage.free_bytes,
        )?;
        gauge(
            &mut e,
            "callvault_storage_min_free_bytes",
            "The low-water mark: below it new calls are refused.",
            storage.mark_bytes,
        )?;
        gauge(
            &mut e,
            "callvault_storage_healthy",
            "1 while storage takes new recordings, 0 while they are refused.",
            u64::from(storage.verdict.is_ok()),
        )?;
        counter(
            &mut e,
            "callvault_storage_refusal_episodes_total",
            "Times storage went from healthy to refusing new recordings.",
            storage.refusals,
        )?;
        counter(
            &mut e,
            "callvault_sip_malformed_dropped_total",
            "Unparseable SIP input that could not be answered.",
            sip.malformed_dropped,
        )?;
        counter(
            &mut e,
            "callvault_sip_malformed_answered_total",
            "Unparseable SIP requests answered 400.",
            sip.malformed_answered,
        )?;
        counter(
            &mut e,
            "callvault_sip_oversize_total",
            "SIP messages over max_message_size.",
            sip.oversize,
        )?;
        counter(
            &mut e,
            "callvault_sip_limit_rejected_total",
            "Requests refused 400 for a Call-ID, header field or Via list beyond the caps.",
            sip.limit_rejected,
        )?;
        counter(
            &mut e,
            "callvault_sip_responses_trimmed_total",
            "UDP responses over 3 times their request's size, sent as a bare 500 instead.",
            sip.responses_trimmed,
        )?;
        counter(
            &mut e,
            "callvault_sip_responses_withheld_total",
            "UDP responses not sent because even a bare 500 was over the size bound.",
            sip.responses_withheld,
        )?;
        counter(
            &mut e,
            "callvault_sip_retransmissions_absorbed_total",
            "Retransmitted requests absorbed by their transaction.",
            sip.retransmissions_absorbed,
        )?;
        counter(
            &mut e,
            "callvault_sip_retransmissions_sent_total",
            "Responses and requests retransmitted on timers.",
            sip.retransmissions_sent,
        )?;
        counter(
            &mut e,
            "callvault_sip_ack_timeouts_total",
            "Final responses never acknowledged (Timer H).",
            sip.ack_timeouts,
        )?;
        gauge(
            &mut e,
            "callvault_sip_server_transactions",
            "SIP server transactions alive.",
            sip.server_transactions as u64,
        )?;
        counter(
            &mut e,
            "callvault_sip_transport_errors_total",
            "Deliveries the transports reported failed (client transactions ended at once).",
            sip.transport_errors,
        )?;
        counter(
            &mut e,
            "callvault_sip_refused_source_total",
            "SIP messages dropped because their source is not in [sip] allowed_sources.",
            s.refused_sources.load(Ordering::Relaxed),
        )?;
        let notify = &s.notify;
        counter(
            &mut e,
            "callvault_notify_delivered_total",
            "Webhook deliveries a receiver answered 2xx.",
            notify.delivered_total.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "callvault_notify_failed_attempts_total",
            "Webhook POSTs that failed (no answer, or not 2xx); each delivery is retried until a 2xx.",
            notify.failed_attempts_total.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut e,
            "callvault_notify_pending",
            "Webhook deliveries waiting in the outbox (all receivers).",
            notify.pending.load(Ordering::Relaxed).max(0) as u64,
        )?;
        counter(
            &mut e,
            "callvault_hook_runs_total",
            "on_complete hook runs started.",
            notify.hook_runs_total.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "callvault_hook_failures_total",
            "on_complete hook runs that failed (exit status, timeout, not started).",
            notify.hook_failures_total.load(Ordering::Relaxed),
        )?;
        let uploads = &s.uploads;
        counter(
            &mut e,
            "callvault_upload_legs_total",
            "Legs uploaded to object storage, their SHA-256 checked.",
            uploads.uploaded_total.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "callvault_upload_bytes_total",
            "Bytes of legs uploaded to object storage.",
            uploads.uploaded_bytes_total.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "callvault_upload_failed_attempts_total",
            "Uploads to object storage that failed; each is retried with back-off.",
            uploads.failed_attempts_total.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "callvault_upload_refused_total",
            "Legs never uploaded: the file no longer matches its SHA-256, or is gone.",
            uploads.refused_total.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut e,
            "callvault_upload_pending",
            "Legs waiting for their upload (at most one batch of 16 is counted).",
            uploads.pending.load(Ordering::Relaxed).max(0) as u64,
        )?;
        counter(
            &mut e,
            "callvault_upload_local_removed_total",
            "Local copies of uploaded legs removed after [storage] local_grace_secs.",
            uploads.local_removed_total.load(Ordering::Relaxed),
        )?;
        let transport = &s.transport;
        gauge(
            &mut e,
            "callvault_sip_tcp_connections",
            "Open SIP TCP connections.",
            transport.open_tcp_connections(),
        )?;
        counter(
            &mut e,
            "callvault_sip_tcp_refused_source_total",
            "TCP connections closed at accept: their source is not in allowed_sources.",
            s.transport.tcp_refused_source(),
        )?;
        counter(
            &mut e,
            "callvault_sip_tcp_refused_limit_total",
            "TCP connections closed at accept: their source held max_tcp_connections_per_source.",
            s.transport.tcp_refused_limit(),
        )?;
        counter(
            &mut e,
            "callvault_sip_slow_peers_closed_total",
            "SIP connections reset because the peer did not read (queue full or write timed out).",
            transport.slow_peers_closed(),
        )?;
        counter(
            &mut e,
            "callvault_sip_connect_failures_total",
            "Outgoing SIP TCP connects that failed or timed out.",
            transport.connect_failures(),
        )?;
        counter(
            &mut e,
            "callvault_sip_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out (a client without a valid certificate, an SBC \
         whose certificate did not verify).",
            transport.tls_handshake_failures(),
        )?;
        counter(
            &mut e,
            "callvault_sip_connect_queue_dropped_total",
            "Messages dropped while waiting for a connect (its queue was full or it failed).",
            transport.connect_queue_dropped(),
        )?;
        counter(
            &mut e,
            "callvault_sip_udp_send_dropped_total",
            "UDP datagrams dropped because the socket and its queue were full.",
            transport.udp_send_dropped(),
        )?;
        counter(
            &mut e,
            "callvault_sip_messages_sent_total",
            "SIP messages handed to the kernel.",
            transport.messages_sent(),
        )?;
        gauge(
            &mut e,
            "callvault_media_legs_active",
            "Legs being recorded.",
            media.active_legs,
        )?;
        gauge(
            &mut e,
            "callvault_media_ports_in_use",
            "RTP port pairs in use.",
            media.ports_in_use as u64,
        )?;
        gauge(
            &mut e,
            "callvault_media_ports_free",
            "RTP port pairs free.",
            media.ports_free as u64,
        )?;
        gauge(
            &mut e,
            "callvault_media_writer_backlog_blocks",
            "Audio blocks waiting for the disk writer.",
            media.writer_backlog as u64,
        )?;
        counter(
            &mut e,
            "callvault_media_blocks_dropped_total",
            "Audio blocks dropped because the disk fell behind (alarm on any increase).",
            media.blocks_dropped,
        )?;
        counter(
            &mut e,
            "callvault_media_write_errors_total",
            "Failed writes of recording files (alarm on any increase).",
            media.write_errors,
        )?;
        counter(
            &mut e,
            "callvault_media_srtp_auth_failures_total",
            "SRTP packets dropped because they failed authentication (wrong key, tampered, forged).",
            media.srtp_auth_failures,
        )?;
        counter(
            &mut e,
            "callvault_media_srtp_replayed_total",
            "SRTP packets dropped as replays (index already received or older than the window).",
            media.srtp_replayed,
        )?;
        counter(
            &mut e,
            "callvault_media_srtcp_auth_failures_total",
            "SRTCP packets dropped because they failed authentication.",
            media.srtcp_auth_failures,
        )?;
        counter(
            &mut e,
            "callvault_media_foreign_packets_total",
            "RTP and RTCP packets dropped because they came from a source the stream is not bound to.",
            media.foreign_packets,
        )?;
        let archive = s.archive.snapshot();
        gauge(
            &mut e,
            "callvault_archive_backlog",
            "Catalog writes and metadata files waiting to be written (memory and spool).",
            archive.backlog(),
        )?;
        gauge(
            &mut e,
            "callvault_archive_spooled",
            "Catalog writes waiting in the spool on disk.",
            archive.spooled,
        )?;
        counter(
            &mut e,
            "callvault_archive_failures_total",
            "Failed attempts at catalog writes and metadata files (each is retried or rejected).",
            archive.failures,
        )?;
        counter(
            &mut e,
            "callvault_archive_retries_total",
            "Attempts that retried a failed catalog write or metadata file.",
            archive.retries,
        )?;
        counter(
            &mut e,
            "callvault_archive_rejected_total",
            "Catalog writes given up as permanent failures, in spool/rejected.jsonl (alarm on any).",
            archive.rejected,
        )?;
        gauge(
            &mut e,
            "callvault_archive_healthy",
            "1 while the archive takes writes normally; 0 while new calls are refused for it.",
            u64::from(archive.unhealthy.is_none()),
        )?;
        let mut legs = e.encode_descriptor(
            "callvault_media_legs_started",
            "Legs started since start, by their negotiated codec.",
            None,
            MetricType::Counter,
        )?;
        for codec in &media.codecs {
            ConstCounter::new(codec.legs)
                .encode(legs.encode_family(&CodecLabels { codec: codec.codec })?)?;
        }
        let mut packets = e.encode_descriptor(
            "callvault_media_packets",
            "RTP packets recorded (from the bound source, authenticated, parsed), by their \
             leg's codec; added up on each leg's 50 ms tick.",
            None,
            MetricType::Counter,
        )?;
        for codec in &media.codecs {
            ConstCounter::new(codec.packets)
                .encode(packets.encode_family(&CodecLabels { codec: codec.codec })?)?;
        }
        histogram(
            &mut e,
            "callvault_media_disk_write_seconds",
            "Time the media writer took for one block write (a positioned write of up to a \
             few hundred ms of audio, with silence for a hole) or one pass rewriting stale WAV \
             headers.",
            &media.disk_writes,
        )?;
        Ok(())
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    // The library appends `_total` to a counter's name; ours are written whole, to grep.
    let stem = name
        .strip_suffix("_total")
        .expect("a counter's name ends in _total");
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(stem, help, None, metric.metric_type())?)
}

fn gauge<N>(e: &mut DescriptorEncoder, name: &str, help: &str, value: N) -> fmt::Result
where
    N: prometheus_client::encoding::EncodeGaugeValue,
{
    let metric = ConstGauge::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    snapshot: &HistogramSnapshot,
) -> fmt::Result {
    let buckets: Vec<(f64, u64)> = snapshot.bounded().collect();
    e.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(snapshot.sum_seconds, snapshot.count(), &buckets, None)
}
