//! `GET /metrics` in the Prometheus text format, and `GET /health`.
//!
//! Every figure is read at scrape time from where it already lives: the recorder's gauges and
//! the media engine's counters are atomics; the SIP endpoint, owned by the driver task, publishes
//! a copy of its counters once a second (never per message) on a watch channel.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Json, Router, routing::get};
use callvault_media::MediaEngine;
use callvault_sip::EndpointStats;
use callvault_sip_transport::TransportStats;
use tokio::sync::watch;

use crate::archive::{ArchiveHealth, ArchiveSnapshot};
use crate::health::{Health, STALL_AFTER};
use crate::recorder::RecorderGauges;
use crate::storage::StorageStatus;

#[derive(Clone)]
pub struct Sources {
    pub gauges: Arc<RecorderGauges>,
    pub media: Arc<MediaEngine>,
    pub sip: watch::Receiver<EndpointStats>,
    pub archive: ArchiveHealth,
    pub health: Arc<Health>,
    pub storage: watch::Receiver<StorageStatus>,
    pub transport: TransportStats,
    /// SIP messages dropped because their source is not allowed.
    pub refused_sources: Arc<std::sync::atomic::AtomicU64>,
    /// Webhook deliveries and `on_complete` runs.
    pub notify: Arc<crate::notify::NotifyStats>,
    /// The object storage uploader (all zero with the local backend).
    pub uploads: Arc<crate::upload::UploadStats>,
}

pub fn router(sources: Sources) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(sources)
}

/// Liveness, with each component's state: 503 only when the SIP loop is stuck.
async fn health(State(s): State<Sources>) -> impl IntoResponse {
    let silence = s.health.sip_silence(std::time::Instant::now());
    let stuck = silence > STALL_AFTER;
    let storage = s.storage.borrow().clone();
    let refusals = s.health.refusals();
    let status = if stuck {
        "unhealthy"
    } else if refusals.is_empty() {
        "ok"
    } else {
        "degraded"
    };
    let code = if stuck {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = serde_json::json!({
        "status": status,
        "accepting_calls": refusals.is_empty(),
        "draining": s.health.draining(),
        "reasons": refusals,
        "sip_loop": {
            "ok": !stuck,
            "last_turn_ms_ago": silence.as_millis() as u64,
        },
        "disk": {
            "ok": storage.verdict.is_ok(),
            "free_bytes": storage.free_bytes,
            "min_free_bytes": storage.mark_bytes,
            "error": storage.verdict.err(),
        },
        "catalog": archive_json(&s.archive.snapshot()),
        "active_sessions": s.gauges.active_sessions.load(Ordering::Relaxed),
        "sessions_total": s.gauges.sessions_total.load(Ordering::Relaxed),
        "rejected_total": s.gauges.rejected_total.load(Ordering::Relaxed),
    });
    (code, Json(body))
}

/// The catalog queue in `/health`: whether new calls are taken for it, and why not.
fn archive_json(archive: &ArchiveSnapshot) -> serde_json::Value {
    serde_json::json!({
        "ok": archive.unhealthy.is_none(),
        "error": archive.unhealthy.as_ref().map(ToString::to_string),
        "backlog": archive.backlog(),
        "spooled": archive.spooled,
        "last_error": archive.last_error,
        "rejected_total": archive.rejected,
    })
}

/// Readiness: 200 while new calls are taken, 503 with the reasons while they are refused.
async fn ready(State(s): State<Sources>) -> impl IntoResponse {
    let reasons = s.health.refusals();
    let code = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "ready": reasons.is_empty(),
        "reasons": reasons,
    });
    (code, Json(body))
}

async fn metrics(State(s): State<Sources>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&s),
    )
}

fn render(s: &Sources) -> String {
    let sip = *s.sip.borrow();
    let media = s.media.stats();
    let g = &s.gauges;
    let load = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed) as u64;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    metric(
        "callvault_sessions_active",
        "gauge",
        "Recording sessions in progress.",
        load(&g.active_sessions),
    );
    metric(
        "callvault_sessions_total",
        "counter",
        "Recording sessions answered since start.",
        load(&g.sessions_total),
    );
    metric(
        "callvault_sessions_rejected_total",
        "counter",
        "Recording INVITEs refused (full node, bad offer, no media ports).",
        load(&g.rejected_total),
    );
    metric(
        "callvault_sessions_closing",
        "gauge",
        "Ended sessions whose files are still being closed.",
        load(&g.closing_sessions),
    );
    metric(
        "callvault_sessions_refused_storage_total",
        "counter",
        "Recording INVITEs refused with 503 because the disk or the catalog was unhealthy.",
        load(&g.refused_storage_total),
    );
    metric(
        "callvault_sessions_hangups_total",
        "counter",
        "Sessions ended by a BYE of ours (timeouts, limits, failures, shutdown).",
        load(&g.hangups_total),
    );
    metric(
        "callvault_sessions_refused_source_limit_total",
        "counter",
        "Recording INVITEs refused because their source was over its own sessions or rate limit.",
        load(&g.refused_source_total),
    );
    metric(
        "callvault_recording_caps_reached_total",
        "counter",
        "DTMF digits and metadata revisions not stored because their recording reached its cap.",
        load(&g.capped_total),
    );
    metric(
        "callvault_legs_failed_total",
        "counter",
        "Legs whose file could not be written (alarm on any increase).",
        load(&g.legs_failed_total),
    );
    let storage = s.storage.borrow().clone();
    metric(
        "callvault_storage_free_bytes",
        "gauge",
        "Free bytes on the data directory's filesystem.",
        storage.free_bytes,
    );
    metric(
        "callvault_storage_min_free_bytes",
        "gauge",
        "The low-water mark: below it new calls are refused.",
        storage.mark_bytes,
    );
    metric(
        "callvault_storage_healthy",
        "gauge",
        "1 while storage takes new recordings, 0 while they are refused.",
        u64::from(storage.verdict.is_ok()),
    );
    metric(
        "callvault_storage_refusal_episodes_total",
        "counter",
        "Times storage went from healthy to refusing new recordings.",
        storage.refusals,
    );
    metric(
        "callvault_sip_malformed_dropped_total",
        "counter",
        "Unparseable SIP input that could not be answered.",
        sip.malformed_dropped,
    );
    metric(
        "callvault_sip_malformed_answered_total",
        "counter",
        "Unparseable SIP requests answered 400.",
        sip.malformed_answered,
    );
    metric(
        "callvault_sip_oversize_total",
        "counter",
        "SIP messages over max_message_size.",
        sip.oversize,
    );
    metric(
        "callvault_sip_limit_rejected_total",
        "counter",
        "Requests refused 400 for a Call-ID, header field or Via list beyond the caps.",
        sip.limit_rejected,
    );
    metric(
        "callvault_sip_responses_trimmed_total",
        "counter",
        "UDP responses over 3 times their request's size, sent as a bare 500 instead.",
        sip.responses_trimmed,
    );
    metric(
        "callvault_sip_responses_withheld_total",
        "counter",
        "UDP responses not sent because even a bare 500 was over the size bound.",
        sip.responses_withheld,
    );
    metric(
        "callvault_sip_retransmissions_absorbed_total",
        "counter",
        "Retransmitted requests absorbed by their transaction.",
        sip.retransmissions_absorbed,
    );
    metric(
        "callvault_sip_retransmissions_sent_total",
        "counter",
        "Responses and requests retransmitted on timers.",
        sip.retransmissions_sent,
    );
    metric(
        "callvault_sip_ack_timeouts_total",
        "counter",
        "Final responses never acknowledged (Timer H).",
        sip.ack_timeouts,
    );
    metric(
        "callvault_sip_server_transactions",
        "gauge",
        "SIP server transactions alive.",
        sip.server_transactions as u64,
    );
    metric(
        "callvault_sip_transport_errors_total",
        "counter",
        "Deliveries the transports reported failed (client transactions ended at once).",
        sip.transport_errors,
    );
    metric(
        "callvault_sip_refused_source_total",
        "counter",
        "SIP messages dropped because their source is not in [sip] allowed_sources.",
        s.refused_sources.load(Ordering::Relaxed),
    );
    let notify = &s.notify;
    metric(
        "callvault_notify_delivered_total",
        "counter",
        "Webhook deliveries a receiver answered 2xx.",
        notify.delivered_total.load(Ordering::Relaxed),
    );
    metric(
        "callvault_notify_failed_attempts_total",
        "counter",
        "Webhook POSTs that failed (no answer, or not 2xx); each delivery is retried until a 2xx.",
        notify.failed_attempts_total.load(Ordering::Relaxed),
    );
    metric(
        "callvault_notify_pending",
        "gauge",
        "Webhook deliveries waiting in the outbox (all receivers).",
        notify.pending.load(Ordering::Relaxed).max(0) as u64,
    );
    metric(
        "callvault_hook_runs_total",
        "counter",
        "on_complete hook runs started.",
        notify.hook_runs_total.load(Ordering::Relaxed),
    );
    metric(
        "callvault_hook_failures_total",
        "counter",
        "on_complete hook runs that failed (exit status, timeout, not started).",
        notify.hook_failures_total.load(Ordering::Relaxed),
    );
    let uploads = &s.uploads;
    metric(
        "callvault_upload_legs_total",
        "counter",
        "Legs uploaded to object storage, their SHA-256 checked.",
        uploads.uploaded_total.load(Ordering::Relaxed),
    );
    metric(
        "callvault_upload_bytes_total",
        "counter",
        "Bytes of legs uploaded to object storage.",
        uploads.uploaded_bytes_total.load(Ordering::Relaxed),
    );
    metric(
        "callvault_upload_failed_attempts_total",
        "counter",
        "Uploads to object storage that failed; each is retried with back-off.",
        uploads.failed_attempts_total.load(Ordering::Relaxed),
    );
    metric(
        "callvault_upload_refused_total",
        "counter",
        "Legs never uploaded: the file no longer matches its SHA-256, or is gone.",
        uploads.refused_total.load(Ordering::Relaxed),
    );
    metric(
        "callvault_upload_pending",
        "gauge",
        "Legs waiting for their upload (at most one batch of 16 is counted).",
        uploads.pending.load(Ordering::Relaxed).max(0) as u64,
    );
    metric(
        "callvault_upload_local_removed_total",
        "counter",
        "Local copies of uploaded legs removed after [storage] local_grace_secs.",
        uploads.local_removed_total.load(Ordering::Relaxed),
    );
    let transport = &s.transport;
    metric(
        "callvault_sip_tcp_connections",
        "gauge",
        "Open SIP TCP connections.",
        transport.open_tcp_connections(),
    );
    metric(
        "callvault_sip_tcp_refused_source_total",
        "counter",
        "TCP connections closed at accept: their source is not in allowed_sources.",
        s.transport.tcp_refused_source(),
    );
    metric(
        "callvault_sip_tcp_refused_limit_total",
        "counter",
        "TCP connections closed at accept: their source held max_tcp_connections_per_source.",
        s.transport.tcp_refused_limit(),
    );
    metric(
        "callvault_sip_slow_peers_closed_total",
        "counter",
        "SIP connections reset because the peer did not read (queue full or write timed out).",
        transport.slow_peers_closed(),
    );
    metric(
        "callvault_sip_connect_failures_total",
        "counter",
        "Outgoing SIP TCP connects that failed or timed out.",
        transport.connect_failures(),
    );
    metric(
        "callvault_sip_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed or timed out (a client without a valid certificate, an SBC \
         whose certificate did not verify).",
        transport.tls_handshake_failures(),
    );
    metric(
        "callvault_sip_connect_queue_dropped_total",
        "counter",
        "Messages dropped while waiting for a connect (its queue was full or it failed).",
        transport.connect_queue_dropped(),
    );
    metric(
        "callvault_sip_udp_send_dropped_total",
        "counter",
        "UDP datagrams dropped because the socket and its queue were full.",
        transport.udp_send_dropped(),
    );
    metric(
        "callvault_sip_messages_sent_total",
        "counter",
        "SIP messages handed to the kernel.",
        transport.messages_sent(),
    );
    metric(
        "callvault_media_legs_active",
        "gauge",
        "Legs being recorded.",
        media.active_legs,
    );
    metric(
        "callvault_media_ports_in_use",
        "gauge",
        "RTP port pairs in use.",
        media.ports_in_use as u64,
    );
    metric(
        "callvault_media_ports_free",
        "gauge",
        "RTP port pairs free.",
        media.ports_free as u64,
    );
    metric(
        "callvault_media_writer_backlog_blocks",
        "gauge",
        "Audio blocks waiting for the disk writer.",
        media.writer_backlog as u64,
    );
    metric(
        "callvault_media_blocks_dropped_total",
        "counter",
        "Audio blocks dropped because the disk fell behind (alarm on any increase).",
        media.blocks_dropped,
    );
    metric(
        "callvault_media_write_errors_total",
        "counter",
        "Failed writes of recording files (alarm on any increase).",
        media.write_errors,
    );
    metric(
        "callvault_media_srtp_auth_failures_total",
        "counter",
        "SRTP packets dropped because they failed authentication (wrong key, tampered, forged).",
        media.srtp_auth_failures,
    );
    metric(
        "callvault_media_srtp_replayed_total",
        "counter",
        "SRTP packets dropped as replays (index already received or older than the window).",
        media.srtp_replayed,
    );
    metric(
        "callvault_media_srtcp_auth_failures_total",
        "counter",
        "SRTCP packets dropped because they failed authentication.",
        media.srtcp_auth_failures,
    );
    metric(
        "callvault_media_foreign_packets_total",
        "counter",
        "RTP and RTCP packets dropped because they came from a source the stream is not bound to.",
        media.foreign_packets,
    );
    let archive = s.archive.snapshot();
    metric(
        "callvault_archive_backlog",
        "gauge",
        "Catalog writes and metadata files waiting to be written (memory and spool).",
        archive.backlog(),
    );
    metric(
        "callvault_archive_spooled",
        "gauge",
        "Catalog writes waiting in the spool on disk.",
        archive.spooled,
    );
    metric(
        "callvault_archive_failures_total",
        "counter",
        "Failed attempts at catalog writes and metadata files (each is retried or rejected).",
        archive.failures,
    );
    metric(
        "callvault_archive_retries_total",
        "counter",
        "Attempts that retried a failed catalog write or metadata file.",
        archive.retries,
    );
    metric(
        "callvault_archive_rejected_total",
        "counter",
        "Catalog writes given up as permanent failures, in spool/rejected.jsonl (alarm on any).",
        archive.rejected,
    );
    metric(
        "callvault_archive_healthy",
        "gauge",
        "1 while the archive takes writes normally; 0 while new calls are refused for it.",
        u64::from(archive.unhealthy.is_none()),
    );
    out
}
