//! `callvault serve`: wires the transports, the SIP endpoint, the recorder, the media engine,
//! the archive and the HTTP listener together, and runs the SIP driver loop.
//!
//! The driver loop owns the sans-IO [`Endpoint`] and the [`Recorder`]: every input (a message,
//! a timer) is handled to completion, then everything the endpoint wants sent is sent. No other
//! task touches SIP state, so there are no locks around it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use callvault_catalog::{Catalog, Completion, EndReason, RecordingState};
use callvault_media::{MediaConfig, MediaEngine};
use callvault_sip::{
    Endpoint, EndpointConfig, EndpointStats, SessionTimerConfig, TransportConfig, Transports,
};
use callvault_siprec::Limits;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::archive;
use crate::config::Config;
use crate::metrics;
use crate::recorder::{Recorder, RecorderConfig, RecorderGauges};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let data_dir = config.storage.data_dir.clone();
    std::fs::create_dir_all(data_dir.join("recordings"))
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;

    let catalog = Catalog::open(&config.database_url())
        .await
        .context("opening the catalog")?;

    let rtp_ip = config.advertised_rtp_ip();
    if rtp_ip.is_loopback() && !config.sip.listen.ip().is_loopback() {
        warn!(
            %rtp_ip,
            "SDP answers advertise a loopback RTP address: remote clients cannot send media; set --rtp-ip"
        );
    }
    let mut media_config = MediaConfig::new(
        config.rtp_bind_ip(),
        config.media.rtp_ports.min,
        config.media.rtp_ports.max,
        data_dir.clone(),
    );
    media_config.receive_threads = config.media.receive_threads;
    media_config.jitter_window = Duration::from_millis(config.media.jitter_window_ms);
    let media = Arc::new(MediaEngine::start(media_config).context("starting the media engine")?);

    let (transports, mut incoming) = Transports::bind(TransportConfig {
        listen: config.sip.listen,
        max_message_size: config.sip.max_message_size,
        max_tcp_connections: config.sip.max_tcp_connections,
        tcp_idle_timeout: Duration::from_secs(600),
    })
    .await
    .with_context(|| format!("binding SIP on {}", config.sip.listen))?;
    let sip_addr = transports.local_addr();

    let gauges = Arc::new(RecorderGauges::default());
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http.listen))?;
    let http_addr = http.local_addr()?;
    let node_id = node_id();
    let (archive, archive_handle, mut archive_health) = archive::start(
        catalog.clone(),
        data_dir.clone(),
        archive::ArchiveConfig::default(),
    );
    repair_interrupted(&catalog, &archive, &mut archive_health, &node_id).await;
    let (sip_stats, sip_stats_rx) = watch::channel(EndpointStats::default());
    let app = metrics::router(metrics::Sources {
        gauges: Arc::clone(&gauges),
        media: Arc::clone(&media),
        sip: sip_stats_rx,
        archive: archive_health.clone(),
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(http, app).await {
            warn!(error = %e, "HTTP listener stopped");
        }
    });
    let (closing_tx, mut closing_rx) = mpsc::unbounded_channel();
    let contact_host = if sip_addr.ip().is_unspecified() {
        format!("{}:{}", rtp_ip, sip_addr.port())
    } else {
        sip_addr.to_string()
    };
    let mut recorder = Recorder::new(
        RecorderConfig {
            max_sessions: config.sip.max_sessions,
            retry_after_secs: config.sip.retry_after_secs,
            answer_delay: config.answer_delay(),
            limits: Limits {
                max_streams: config.sip.max_streams,
                max_metadata_bytes: config.sip.max_metadata_bytes,
            },
            rtp_ip,
            contact_host,
            user_agent: config.sip.user_agent.clone(),
            capture_dtmf: config.sip.dtmf_capture,
            rtp_timeout: config.rtp_timeout(),
            session_timer: SessionTimerConfig {
                min_se: Duration::from_secs(config.sip.min_session_expires_secs),
                ..SessionTimerConfig::default()
            },
            node_id,
        },
        Arc::clone(&media),
        archive.clone(),
        archive_health.clone(),
        Arc::clone(&gauges),
        closing_tx,
    );
    let mut endpoint = Endpoint::new(EndpointConfig {
        max_message_size: config.sip.max_message_size,
        user_agent: config.sip.user_agent.clone(),
        ..EndpointConfig::default()
    });

    // Tests and scripts wait for this line; keep its fields stable.
    info!(
        sip = %sip_addr,
        http = %http_addr,
        rtp = %format!("{}:{}", rtp_ip, config.media.rtp_ports),
        data_dir = %data_dir.display(),
        "callvault listening"
    );

    let mut media_events = media
        .events()
        .expect("the media engine's events are taken once, here");
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // The endpoint's counters reach /metrics once a second, not per message.
    let mut publish = tokio::time::interval(Duration::from_secs(1));
    loop {
        let wake = [endpoint.poll_timeout(), recorder.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            message = incoming.recv() => {
                let Some(message) = message else { break };
                endpoint.handle_input(message.received_at, message.from, &message.bytes);
            }
            Some(event) = media_events.recv() => {
                recorder.handle_media_event(Instant::now(), &mut endpoint, event);
            }
            () = sleep_until(wake) => {
                let now = Instant::now();
                endpoint.handle_timeout(now);
                recorder.handle_timeout(now, &mut endpoint);
            }
            _ = publish.tick() => {
                sip_stats.send_replace(endpoint.stats());
            }
            () = &mut shutdown => {
                info!("shutting down: closing every recording");
                break;
            }
        }
        drive(&mut endpoint, &mut recorder, &transports).await;
    }

    recorder.end_all(Instant::now(), EndReason::Shutdown);
    drive(&mut endpoint, &mut recorder, &transports).await;
    drop(recorder);
    while let Some(task) = closing_rx.recv().await {
        let _ = task.await;
    }
    drop(archive);
    let closed = archive_handle
        .close(tokio::time::Instant::now() + ARCHIVE_CLOSE_TIMEOUT)
        .await;
    if closed.spooled > 0 {
        warn!(
            commands = closed.spooled,
            "catalog writes left in the spool; the next start applies them"
        );
    }
    catalog.close().await;
    if let Ok(media) = Arc::try_unwrap(media) {
        media.shutdown();
    }
    info!("stopped");
    Ok(())
}

/// How long shutdown waits for the archive to apply what it holds before spooling the rest.
const ARCHIVE_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long start waits for the spool of an earlier run before repairing its recordings.
const STARTUP_REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// This node's id in the catalog: the host name.
// TODO(lead): `[node] id` in the configuration (issue 12), defaulting to this.
fn node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Completes the recordings this node left `active` (a crash): `interrupted`, end reason
/// `crash`. After the spool of the earlier run is applied (it may hold their rows), and
/// through the archive, so the writes survive a catalog that is down right now.
async fn repair_interrupted(
    catalog: &Catalog,
    archive: &archive::ArchiveQueue,
    health: &mut archive::ArchiveHealth,
    node_id: &str,
) {
    let replayed = tokio::time::timeout(
        STARTUP_REPLAY_TIMEOUT,
        health.wait_for(|s| s.startup_replayed),
    )
    .await;
    if replayed.is_err() {
        warn!(
            "the catalog writes of an earlier run are not applied yet; its recordings are repaired at a later start"
        );
        return;
    }
    let active = match catalog.active_recordings(node_id).await {
        Ok(active) => active,
        Err(e) => {
            error!(error = %e, "cannot list the recordings an earlier run left active");
            return;
        }
    };
    if !active.is_empty() {
        warn!(
            count = active.len(),
            "recordings left active by an earlier run are marked interrupted; their files are kept"
        );
    }
    let now = time::OffsetDateTime::now_utc();
    for recording in active {
        let duration_ms =
            i64::try_from((now - recording.started_at).whole_milliseconds()).unwrap_or(0);
        archive.send(archive::ArchiveCommand::Complete(Completion {
            recording_id: recording.id,
            state: RecordingState::Interrupted,
            ended_at: now,
            duration_ms: duration_ms.max(0),
            end_reason: EndReason::Crash,
            legs: Vec::new(),
            warnings: vec![
                "the server stopped during the recording; completed at its next start".to_owned(),
            ],
        }));
    }
}

/// Hands every endpoint event to the recorder and sends everything queued, until both are idle.
async fn drive(endpoint: &mut Endpoint, recorder: &mut Recorder, transports: &Transports) {
    loop {
        let mut busy = false;
        while let Some(event) = endpoint.poll_event() {
            busy = true;
            recorder.handle_event(Instant::now(), endpoint, event);
        }
        while let Some(transmit) = endpoint.poll_transmit() {
            busy = true;
            let to = transmit.to;
            if let Err(e) = transports.send(transmit).await {
                warn!(peer = %to.addr, error = %e, "SIP send failed");
            }
        }
        if !busy {
            break;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
