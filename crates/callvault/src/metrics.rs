//! `GET /metrics` in the Prometheus text format, and `GET /health`.
//!
//! Every figure is read at scrape time from where it already lives: the recorder's gauges and
//! the media engine's counters are atomics; the SIP endpoint, owned by the driver task, publishes
//! a copy of its counters once a second (never per message) on a watch channel.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Json, Router, routing::get};
use callvault_media::MediaEngine;
use callvault_sip::EndpointStats;
use tokio::sync::watch;

use crate::archive::{ArchiveHealth, ArchiveSnapshot};
use crate::recorder::RecorderGauges;

#[derive(Clone)]
pub struct Sources {
    pub gauges: Arc<RecorderGauges>,
    pub media: Arc<MediaEngine>,
    pub sip: watch::Receiver<EndpointStats>,
    pub archive: ArchiveHealth,
}

pub fn router(sources: Sources) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(sources)
}

async fn health(State(s): State<Sources>) -> Json<serde_json::Value> {
    let archive = s.archive.snapshot();
    Json(serde_json::json!({
        "status": if archive.unhealthy.is_none() { "ok" } else { "degraded" },
        "archive": archive_json(&archive),
        "active_sessions": s.gauges.active_sessions.load(Ordering::Relaxed),
        "sessions_total": s.gauges.sessions_total.load(Ordering::Relaxed),
        "rejected_total": s.gauges.rejected_total.load(Ordering::Relaxed),
    }))
}

/// The archive in `/health`: whether new calls are taken, and why not.
fn archive_json(archive: &ArchiveSnapshot) -> serde_json::Value {
    serde_json::json!({
        "healthy": archive.unhealthy.is_none(),
        "reason": archive.unhealthy.as_ref().map(ToString::to_string),
        "backlog": archive.backlog(),
        "spooled": archive.spooled,
        "last_error": archive.last_error,
    })
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
    let archive = s.archive.snapshot();
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
