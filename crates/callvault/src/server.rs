//! `callvault serve`: wires the transports, the SIP endpoint, the recorder, the media engine,
//! the archive, the storage monitor and the HTTP listener together, then runs the SIP driver
//! loop (`driver.rs`) until a signal, and shuts down in order.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use callvault_catalog::Catalog;
use callvault_media::{MediaConfig, MediaEngine};
use callvault_sip::{Endpoint, EndpointConfig, EndpointStats, SessionTimerConfig};
use callvault_sip_transport::{SourceFilter, TlsListen, TransportConfig, Transports};
use callvault_siprec::Limits;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::archive::{self, ArchiveConfig};
use crate::config::Config;
use crate::driver::{Driver, LiveControl};
use crate::health::Health;
use crate::lock::DataDirLock;
use crate::media_plane::EngineMedia;
use crate::metrics::{self, CallMetrics};
use crate::notify::{ApiEvents, Notifier};
use crate::recorder::{Recorder, RecorderConfig, RecorderGauges};
use crate::recovery::Recovery;
use crate::reload::Reloader;
use crate::sources::{self, AllowList, SourceGate};
use crate::storage;
use crate::tenants::Tenants;

/// How long stopping waits for the catalog writes still queued; what is left is spooled to
/// disk and applied at the next start.
const ARCHIVE_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// What SIGHUP needs besides the configuration: where it came from, and the log's filter.
pub struct ReloadFrom {
    pub file: Option<std::path::PathBuf>,
    pub overrides: crate::config::Overrides,
    /// The keys as the file and the variables set them.
    pub table: toml::Table,
    pub filter: crate::log::FilterHandle,
}

pub async fn serve(config: Config, reload_from: ReloadFrom) -> anyhow::Result<()> {
    // Before anything is created: what callvault makes is never more open than the umask lets.
    config.apply_umask();
    // Compiled once; every INVITE is matched against these.
    let tenants = config.tenants()?;
    let routes = config.routes()?;
    // The TLS certificate before anything is created or bound: a file that cannot be read, a
    // key that does not match, a bad CA file stops us here, having changed nothing.
    let tls = crate::tls::listen(&config)?;
    let data_dir = config.storage.data_dir.clone();
    std::fs::create_dir_all(data_dir.join("recordings"))
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let node_id = config.node_id();
    // Before anything is written in it: a second server on this data directory stops here.
    let lock = DataDirLock::acquire(&data_dir, &node_id)?;
    let this_start = time::OffsetDateTime::now_utc();

    let rtp_ip = config.advertised_rtp_ip();
    for (_, warning) in config.warnings() {
        warn!(%rtp_ip, "{warning}");
    }
    let allow_list = AllowList::new(config.sip_sources());
    let gate = SourceGate::new(allow_list.clone());
    if !config.media.bind_to_source {
        warn!(
            "[media] bind_to_source = false: streams record RTP from any address that finds their port"
        );
    }

    // Sockets next, before anything is marked or replayed: a port already taken stops us here.
    let (transports, incoming) = Transports::bind(transport_config(&config, tls, &allow_list))
        .await
        .with_context(|| match config.sip.tls_listen {
            Some(tls) => format!("binding SIP on {} and TLS on {tls}", config.sip.listen),
            None => format!("binding SIP on {}", config.sip.listen),
        })?;
    let sip_addr = transports.local_addr();
    let tls_addr = transports.tls_local_addr();
    // The webhook receivers reload on SIGHUP too, from the same sources.
    let reload_notify = {
        let (file, overrides) = (reload_from.file.clone(), reload_from.overrides.clone());
        move || {
            Ok(
                Config::load_from(file.as_deref(), std::env::vars(), &overrides)?
                    .0
                    .notify,
            )
        }
    };
    Reloader {
        file: reload_from.file,
        overrides: reload_from.overrides,
        config: config.clone(),
        started_with: reload_from.table,
        filter: reload_from.filter,
        allow_list: allow_list.clone(),
        transports: transports.clone(),
    }
    .on_sighup();
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http.listen))?;
    let http_addr = http.local_addr()?;
    let media =
        Arc::new(MediaEngine::start(media_config(&config)).context("starting the media engine")?);

    let catalog = Catalog::open(&config.database_url())
        .await
        .context("opening the catalog")?;
    let storage = storage::monitor(
        data_dir.clone(),
        config.storage.min_free_bytes,
        Duration::from_secs(1),
    )
    .with_context(|| format!("reading the filesystem of {}", data_dir.display()))?;

    let calls = Arc::new(CallMetrics::new(allow_list.clone()));
    let gauges = Arc::new(RecorderGauges::new(Arc::clone(&calls)));
    let health = Arc::new(Health::default());
    // Webhook deliveries an earlier run left start going out now, each receiver in its own
    // task; events reach the notifier through the archive, after what they announce.
    crate::notify::announce(&config.notify, &config.hooks);
    let notifier = Notifier::start(data_dir.clone(), &config.notify, &config.hooks)
        .context("starting the webhook deliveries")?;
    let notify_stats = notifier.stats();
    crate::notify::reload_on_sighup(notifier.clone(), reload_notify);
    let (archive, archive_task, archive_health) = archive::start_notifying(
        catalog.clone(),
        data_dir.clone(),
        ArchiveConfig::default(),
        Some(notifier),
    );
    let (sip_stats, sip_stats_rx) = watch::channel(EndpointStats::default());
    // The API asks the SIP loop to pause and resume live recordings through this channel.
    let (live, control) = LiveControl::channel();
    let mut api = callvault_api::ApiState::new(
        catalog.clone(),
        data_dir.clone(),
        config.api.clone(),
        Arc::new(live),
    )
    .context("starting the HTTP API")?
    .with_node(node_id.clone())
    .with_retention(config.retention.clone())
    .with_events(Arc::new(ApiEvents {
        archive: archive.clone(),
    }));
    let uploads = match config.s3_settings(std::env::vars()) {
        Some(settings) => {
            let objects = callvault_objects::Objects::s3(&settings)
                .context("setting up [storage] backend = \"s3\"")?;
            api = api.with_objects(objects.clone(), node_id.clone());
            crate::upload::start(
                catalog.clone(),
                objects,
                crate::upload::UploadSettings {
                    node_id: node_id.clone(),
                    data_dir: data_dir.clone(),
                    interval: Duration::from_millis(config.storage.upload_interval_ms),
                    local_grace: Duration::from_secs(config.storage.local_grace_secs),
                    retry_initial: Duration::from_millis(config.storage.upload_retry_initial_ms),
                    retry_max: Duration::from_millis(config.storage.upload_retry_max_ms),
                },
            )
        }
        None => Arc::default(),
    };
    // Export packages this node was building when it stopped are failed (their partial files
    // removed); expired ones are swept now and every minute.
    if let Err(e) = api.recover_exports().await {
        warn!(error = %e, "recovering export packages failed");
    }
    api.spawn_export_sweeper();
    crate::retention::spawn_sweeper(
        catalog.clone(),
        data_dir.clone(),
        api.objects().cloned(),
        config.retention.clone(),
        Arc::new(ApiEvents {
            archive: archive.clone(),
        }),
    );
    let app = metrics::router(metrics::Sources {
        gauges: Arc::clone(&gauges),
        media: Arc::clone(&media),
        sip: sip_stats_rx,
        archive: archive_health.clone(),
        health: Arc::clone(&health),
        storage: storage.clone(),
        transport: transports.stats(),
        refused_sources: gate.refused(),
        notify: notify_stats,
        uploads,
    })
    .merge(callvault_api::router(api));
    tokio::spawn(async move {
        // The peer address reaches the API: the audit's client, sign-in limits per client.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        if let Err(e) = axum::serve(http, app).await {
            warn!(error = %e, "HTTP listener stopped");
        }
    });
    let contact_host_of = |addr: std::net::SocketAddr| {
        if addr.ip().is_unspecified() {
            format!("{}:{}", rtp_ip, addr.port())
        } else {
            addr.to_string()
        }
    };
    let contact_host = contact_host_of(sip_addr);
    let tls_contact_host = tls_addr.map(contact_host_of);
    let media_events = media
        .events()
        .expect("the media engine's events are taken once, here");
    let media_plane = EngineMedia::new(Arc::clone(&media));
    let recorder = Recorder::new(
        recorder_config(
            &config,
            rtp_ip,
            contact_host,
            tls_contact_host,
            node_id.clone(),
            tenants,
            routes,
        ),
        media_plane,
        Arc::clone(&gauges),
    );
    let endpoint = Endpoint::new(EndpointConfig {
        t1: Duration::from_millis(config.sip.t1_ms),
        max_message_size: config.sip.max_message_size,
        user_agent: config.sip.user_agent.clone(),
        ..EndpointConfig::default()
    });
    let catalog_health = archive_health.clone();
    let driver = Driver {
        drain: drain_signals(),
        endpoint,
        recorder,
        transports: transports.clone(),
        archive: archive.clone(),
        health: Arc::clone(&health),
        sip_stats,
        shutdown_grace: Duration::from_secs(config.sip.shutdown_grace_secs),
        gate,
        catalog_verdict: Box::new(move || match catalog_health.snapshot().unhealthy {
            None => Ok(()),
            Some(why) => Err(why.to_string()),
        }),
        calls,
    };

    // What an earlier run left unfinished, in the background: nothing it touches belongs to a
    // call of this run.
    let recovery = tokio::spawn(
        Recovery {
            catalog: catalog.clone(),
            archive: archive.clone(),
            health: archive_health.clone(),
            data_dir: data_dir.clone(),
            node_id: node_id.clone(),
            this_start,
            previous_start: lock.previous_start(),
            limits: limits(&config),
        }
        .run(),
    );

    // Tests and scripts wait for this line; keep its fields stable.
    info!(
        sip = %sip_addr,
        sip_tls = %tls_addr.map_or_else(|| "off".to_owned(), |addr| addr.to_string()),
        http = %http_addr,
        rtp = %format!("{}:{}", rtp_ip, config.media.rtp_ports),
        data_dir = %data_dir.display(),
        node = %node_id,
        "callvault listening"
    );
    crate::systemd::ready(&format!(
        "recording: SIP on {sip_addr}, HTTP on {http_addr}"
    ));
    crate::systemd::watchdog(Arc::clone(&health));
    let shutdown = async {
        shutdown_signal().await;
        crate::systemd::stopping();
    };
    driver
        .run(incoming, media_events, storage, control, shutdown)
        .await;

    // An unfinished recovery is redone by the next start: its rows are still active.
    recovery.abort();
    drop(archive);
    let closed = archive_task
        .close(tokio::time::Instant::now() + ARCHIVE_CLOSE_WAIT)
        .await;
    if closed.spooled > 0 {
        warn!(
            spooled = closed.spooled,
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

fn transport_config(
    config: &Config,
    tls: Option<TlsListen>,
    allow_list: &AllowList,
) -> TransportConfig {
    TransportConfig {
        listen: config.sip.listen,
        max_message_size: config.sip.max_message_size,
        max_tcp_connections: config.sip.max_tcp_connections,
        max_tcp_connections_per_source: match config.sip.max_tcp_connections_per_source {
            0 => config.sip.max_tcp_connections,
            n => n,
        },
        // A connection from outside the allow-list is closed at accept, never read; what
        // comes by UDP is dropped by the SourceGate in the SIP loop.
        accept_from: Some(SourceFilter::new(sources::allows(allow_list.clone()))),
        tcp_idle_timeout: Duration::from_secs(600),
        tls,
        tls_handshake_timeout: config.tls_handshake_timeout(),
        ..TransportConfig::default()
    }
}

fn media_config(config: &Config) -> MediaConfig {
    let mut media = MediaConfig::new(
        config.rtp_bind_ip(),
        config.media.rtp_ports.min,
        config.media.rtp_ports.max,
        config.storage.data_dir.clone(),
    );
    media.receive_threads = config.media.receive_threads;
    media.jitter_window = Duration::from_millis(config.media.jitter_window_ms);
    media.bind_to_source = config.media.bind_to_source;
    media.conceal_loss = config.media.conceal_loss;
    media
}

fn limits(config: &Config) -> Limits {
    Limits {
        max_streams: config.sip.max_streams,
        max_metadata_bytes: config.sip.max_metadata_bytes,
    }
}

fn recorder_config(
    config: &Config,
    rtp_ip: std::net::IpAddr,
    contact_host: String,
    tls_contact_host: Option<String>,
    node_id: String,
    tenants: Tenants,
    routes: crate::routes::Routes,
) -> RecorderConfig {
    RecorderConfig {
        max_sessions: config.sip.max_sessions,
        retry_after_secs: config.sip.retry_after_secs,
        answer_delay: config.answer_delay(),
        limits: limits(config),
        rtp_ip,
        contact_host,
        tls_contact_host,
        user_agent: config.sip.user_agent.clone(),
        capture_dtmf: config.sip.dtmf_capture,
        rtp_timeout: config.rtp_timeout(),
        session_timer: SessionTimerConfig {
            min_se: Duration::from_secs(config.sip.min_session_expires_secs),
            ..SessionTimerConfig::default()
        },
        max_call_duration: config.max_call_duration(),
        max_hold: config.max_hold(),
        max_sample_rate: config.media.max_sample_rate,
        node_id,
        max_sessions_per_source: match config.sip.max_sessions_per_source {
            0 => usize::MAX,
            n => n,
        },
        invites_per_second_per_source: config.sip.max_invites_per_second_per_source,
        max_dtmf_per_recording: config.sip.max_dtmf_per_recording,
        max_metadata_revisions: config.sip.max_metadata_revisions,
        tenants,
        routes,
    }
}

/// `callvault drain` sends SIGUSR1: the node takes no new calls; SIGUSR2 (`drain --cancel`)
/// takes them again. The driver watches the value.
fn drain_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::user_defined1()),
            signal(SignalKind::user_defined2()),
        ) {
            (Ok(mut drain), Ok(mut resume)) => {
                tokio::spawn(async move {
                    loop {
                        let drained = tokio::select! {
                            Some(()) = drain.recv() => true,
                            Some(()) = resume.recv() => false,
                            else => break,
                        };
                        tx.send_replace(drained);
                    }
                });
            }
            _ => warn!("no SIGUSR1/SIGUSR2 handler: `callvault drain` cannot reach this server"),
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
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
