//! SIP over TLS, the binary's side: reads the files `[tls]` names and the system's trust
//! anchors into the transports' settings, and reloads them on SIGHUP. Every check of what was
//! read (PEM, key against certificate, CA usable) is `TlsContext::new`'s.

use std::path::Path;

use anyhow::Context;
use callvault_sip_transport::{TlsContext, TlsListen, TlsSettings, Transports};
use tracing::{info, warn};

use crate::config::{Config, TlsSection};

/// The TLS listener's settings when `[sip] tls_listen` is set; an error names the file or the
/// problem (unreadable file, certificate and key that do not match, a bad CA file).
pub fn listen(config: &Config) -> anyhow::Result<Option<TlsListen>> {
    let Some(listen) = config.sip.tls_listen else {
        return Ok(None);
    };
    let context = context(&config.tls)?;
    info!(%context, "TLS certificate loaded");
    Ok(Some(TlsListen { listen, context }))
}

/// Reads and checks everything `[tls]` names.
pub fn context(section: &TlsSection) -> anyhow::Result<TlsContext> {
    // `Config::validate` refuses tls_listen without both files.
    let (Some(cert_file), Some(key_file)) = (&section.cert_file, &section.key_file) else {
        anyhow::bail!("[tls] cert_file and key_file are needed for SIP over TLS");
    };
    let settings = TlsSettings {
        certificate_chain: read(cert_file, "[tls] cert_file")?,
        private_key: read(key_file, "[tls] key_file")?,
        ca_certificates: section
            .client_ca_file
            .as_deref()
            .map(|path| read(path, "[tls] client_ca_file"))
            .transpose()?,
        system_roots: system_roots(),
        require_client_certificate: section.require_client_cert,
        verify_server_name: section.verify_server_name,
    };
    TlsContext::new(&settings).with_context(|| {
        format!(
            "TLS certificate {} with key {}{}",
            cert_file.display(),
            key_file.display(),
            section
                .client_ca_file
                .as_deref()
                .map(|ca| format!(" and CA file {}", ca.display()))
                .unwrap_or_default()
        )
    })
}

fn read(path: &Path, key: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {key} {}", path.display()))
}

/// The system's trust anchors, for SBCs whose server certificate a public CA signed. Missing
/// or unreadable ones only narrow what we can verify, so they are logged, not fatal.
fn system_roots() -> Vec<Vec<u8>> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        warn!(%error, "could not read some of the system's CA certificates");
    }
    found.certs.iter().map(|der| der.to_vec()).collect()
}

/// From now on, on each SIGHUP, reads `[tls]` again and swaps the certificates for new
/// handshakes; live connections keep theirs. A certificate that does not load is refused with a
/// log line and the current one stays. Without TLS, SIGHUP is logged and ignored (rather than
/// ending the process, its default). The handler is installed before this returns, so a
/// SIGHUP sent once `serve` says it is listening never kills it.
pub fn reload_on_sighup(transports: Transports, section: TlsSection) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(e) => {
                warn!(error = %e, "no SIGHUP handler: TLS certificates cannot be reloaded");
                return;
            }
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                reload(&transports, &section).await;
            }
        });
    }
    #[cfg(not(unix))]
    {
        let _ = (transports, section);
    }
}

async fn reload(transports: &Transports, section: &TlsSection) {
    if transports.tls_local_addr().is_none() {
        info!("SIGHUP: nothing to reload (TLS is not enabled)");
        return;
    }
    let section = section.clone();
    // File reads, off the runtime's worker threads.
    match tokio::task::spawn_blocking(move || context(&section)).await {
        Ok(Ok(context)) => {
            let summary = context.to_string();
            match transports.reload_tls(context) {
                Ok(()) => info!(
                    context = %summary,
                    "SIGHUP: TLS certificate reloaded for new connections"
                ),
                Err(e) => warn!(error = %e, "SIGHUP: TLS reload failed"),
            }
        }
        Ok(Err(e)) => warn!(
            error = format!("{e:#}"),
            "SIGHUP: new TLS certificate refused; the current one stays"
        ),
        Err(e) => warn!(error = %e, "SIGHUP: TLS reload failed"),
    }
}
