//! `callvault serve`: wires the transports, the SIP endpoint, the recorder, the media engine,
//! the archive and the HTTP listener together, and runs the SIP driver loop.
//!
//! The driver loop owns the sans-IO [`Endpoint`] and the [`Recorder`]: every input (a message,
//! a timer) is handled to completion, then everything the endpoint wants sent is sent. No other
//! task touches SIP state, so there are no locks around it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use callvault_catalog::Catalog;
use callvault_media::{MediaConfig, MediaEngine};
use callvault_sip::{
    Endpoint, EndpointConfig, EndpointStats, SessionTimerConfig, TransportConfig, Transports,
};
use callvault_siprec::Limits;
use tokio::sync::watch;
use tracing::{info, warn};

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
    let interrupted = catalog.mark_interrupted().await?;
    if interrupted > 0 {
        warn!(
            count = interrupted,
            "recordings left active by an earlier run are marked interrupted; their files are kept"
        );
    }

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
    let (archive, archive_task, archive_stats) = archive::start(catalog.clone(), data_dir.clone());
    let (sip_stats, sip_stats_rx) = watch::channel(EndpointStats::default());
    let app = metrics::router(metrics::Sources {
        gauges: Arc::clone(&gauges),
        media: Arc::clone(&media),
        sip: sip_stats_rx,
        archive: archive_stats,
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(http, app).await {
            warn!(error = %e, "HTTP listener stopped");
        }
    });
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
        },
        Arc::clone(&media),
        archive.clone(),
        Arc::clone(&gauges),
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

    recorder.end_all(Instant::now(), "shutdown");
    drive(&mut endpoint, &mut recorder, &transports).await;
    // Every stopped leg reports when its file is closed; the recordings complete with them.
    while recorder.is_closing() {
        let Some(event) = media_events.recv().await else {
            break;
        };
        recorder.handle_media_event(Instant::now(), &mut endpoint, event);
    }
    drop(recorder);
    drop(archive);
    let _ = archive_task.await;
    catalog.close().await;
    if let Ok(media) = Arc::try_unwrap(media) {
        media.shutdown();
    }
    info!("stopped");
    Ok(())
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
