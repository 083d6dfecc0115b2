//! `GET /metrics` (Prometheus), `GET /health` and `GET /ready`.
//!
//! The exposition is prometheus-client's (the Prometheus project's Rust client): its registry
//! holds the control plane's labelled families and histograms (`calls.rs`, updated by the SIP
//! loop once per message or call event) and a collector (`scrape.rs`) that reads, at scrape
//! time, the figures that already live elsewhere as atomics or snapshots: the recorder's gauges,
//! the media engine's totals (the packet path only ever adds to atomics), the SIP endpoint's
//! counters (published by the driver once a second on a watch channel), the transports', the
//! archive's. Label values come from bounded sets only (`labels.rs`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use callvault_media::MediaEngine;
use callvault_sip::EndpointStats;
use callvault_sip_transport::TransportStats;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::archive::{ArchiveHealth, ArchiveSnapshot};
use crate::health::{Health, STALL_AFTER};
use crate::recorder::RecorderGauges;
use crate::storage::StorageStatus;

pub use self::calls::CallMetrics;

mod calls;
mod labels;
mod scrape;

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
    let registry = Arc::new(registry(sources.clone()));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(sources)
        .route(
            "/metrics",
            get(move |headers: HeaderMap| metrics(Arc::clone(&registry), headers)),
        )
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

/// `GET /metrics`: the Prometheus text format (0.0.4), or OpenMetrics when the scraper asks
/// for it (`Accept: application/openmetrics-text`, as Prometheus does by default).
async fn metrics(registry: Arc<Registry>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    let mut body = String::new();
    let (encoded, content_type) = if openmetrics {
        (
            text::encode(&mut body, &registry),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            prometheus_text::encode(&mut body, &registry),
            prometheus_text::CONTENT_TYPE,
        )
    };
    match encoded {
        Ok(()) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        // Only a metric written with an invalid name or help fails; no input reaches them.
        Err(fmt::Error) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Everything `/metrics` shows: the counters read at scrape time, the control plane's labelled
/// families, the catalog's write latency.
fn registry(sources: Sources) -> Registry {
    let mut registry = Registry::default();
    sources.gauges.calls.register(&mut registry);
    registry.register(
        "callvault_catalog_write_seconds",
        "Time of each attempt at a catalog write (a recording's rows, its completion, a \
         metadata file, a webhook's outbox entry), failed attempts included",
        sources.archive.write_latency().clone(),
    );
    registry.register_collector(Box::new(scrape::Scrape {
        sources,
        started: SystemTime::now(),
    }));
    registry
}
