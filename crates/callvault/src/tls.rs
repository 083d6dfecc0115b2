//! SIP over TLS, the binary's side: reads the files `[tls]` names and the system's trust
//! anchors into the transports' settings, and reloads them on SIGHUP. Every check of what was
//! read (PEM, key against certificate, CA usable) is `TlsContext::new`'s; [`load`] is the one
//! way in, for `serve`, its SIGHUP reload and `check-config` alike. It also reads the leaf
//! certificate's subject, names and validity ([`Leaf`]) for the log: rustls checks a
//! certificate but does not show what is in it, and an expired one would start fine and fail
//! every handshake.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use callvault_sip_transport::{TlsContext, TlsListen, TlsSettings, Transports};
use time::OffsetDateTime;
use tracing::{info, warn};
use x509_parser::extensions::GeneralName;

use crate::config::{Config, TlsSection};

/// A certificate this close to its end is reported (a warning at start, `warn` in
/// `check-config`): time to renew it.
pub const EXPIRY_WARNING: time::Duration = time::Duration::days(30);

/// The TLS listener's settings when `[sip] tls_listen` is set; an error names the file or the
/// problem (unreadable file, certificate and key that do not match, a bad CA file).
pub fn listen(config: &Config) -> anyhow::Result<Option<TlsListen>> {
    let Some(listen) = config.sip.tls_listen else {
        return Ok(None);
    };
    let Loaded { context, leaf } = load(&config.tls)?;
    info!(%context, certificate = %leaf, "TLS certificate loaded");
    warn_about_validity(&leaf, OffsetDateTime::now_utc());
    Ok(Some(TlsListen { listen, context }))
}

/// What `[tls]` names, read and checked.
pub struct Loaded {
    /// Ready for handshakes.
    pub context: TlsContext,
    /// Our leaf certificate, as the log and `check-config` show it.
    pub leaf: Leaf,
}

/// Who our certificate says we are and how long it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The subject, RFC 4514 style (`CN=srs.example.com, O=Example`).
    pub subject: String,
    /// The subject alternative names: DNS names and IP addresses.
    pub names: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Where `now` stands in a certificate's validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    NotYetValid,
    /// Valid, with this long to go.
    Valid(time::Duration),
    Expired,
}

impl Leaf {
    /// The first certificate of a PEM chain (TlsContext::new has parsed the chain already).
    fn parse(chain_pem: &[u8]) -> anyhow::Result<Leaf> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem)
            .map_err(|e| anyhow::anyhow!("no PEM certificate: {e}"))?;
        let certificate = pem
            .parse_x509()
            .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
        let names = certificate
            .subject_alternative_name()
            .map_err(|e| anyhow::anyhow!("subject alternative names: {e}"))?
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                        GeneralName::IPAddress(bytes) => ip_address(bytes).map(|ip| ip.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let validity = certificate.validity();
        Ok(Leaf {
            subject: certificate.subject().to_string(),
            names,
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
        })
    }

    pub fn validity_at(&self, now: OffsetDateTime) -> Validity {
        if now < self.not_before {
            Validity::NotYetValid
        } else if now > self.not_after {
            Validity::Expired
        } else {
            Validity::Valid(self.not_after - now)
        }
    }
}

/// `CN=srs.example.com, names srs.example.com 192.0.2.10, expires 2027-03-01`
impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subject.is_empty() {
            f.write_str("no subject")?;
        } else {
            f.write_str(&self.subject)?;
        }
        if !self.names.is_empty() {
            write!(f, ", names {}", self.names.join(" "))?;
        }
        write!(f, ", expires {}", self.not_after.date())
    }
}

fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn warn_about_validity(leaf: &Leaf, now: OffsetDateTime) {
    match leaf.validity_at(now) {
        Validity::Valid(left) if left >= EXPIRY_WARNING => {}
        Validity::Valid(left) => warn!(
            certificate = %leaf,
            days_left = left.whole_days(),
            "the TLS certificate expires soon: renew it (SIGHUP reloads it)"
        ),
        Validity::Expired => warn!(
            certificate = %leaf,
            "the TLS certificate has expired: clients will refuse the handshake"
        ),
        Validity::NotYetValid => warn!(
            certificate = %leaf,
            not_before = %leaf.not_before.date(),
            "the TLS certificate is not valid yet: clients will refuse the handshake"
        ),
    }
}

/// Reads and checks everything `[tls]` names.
pub fn load(section: &TlsSection) -> anyhow::Result<Loaded> {
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
    let context = TlsContext::new(&settings).with_context(|| {
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
    })?;
    let leaf = Leaf::parse(&settings.certificate_chain)
        .with_context(|| format!("reading the certificate of {}", cert_file.display()))?;
    Ok(Loaded { context, leaf })
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

/// Reads `[tls]` again and swaps the certificates for new handshakes; live connections keep
/// theirs (SIGHUP, see `reload.rs`). A certificate that does not load is refused with a log line
/// and the current one stays.
pub async fn reload(transports: &Transports, section: &TlsSection) {
    if transports.tls_local_addr().is_none() {
        tracing::debug!("SIGHUP: no TLS certificate to reload (TLS is not enabled)");
        return;
    }
    let section = section.clone();
    // File reads, off the runtime's worker threads.
    match tokio::task::spawn_blocking(move || load(&section)).await {
        Ok(Ok(Loaded { context, leaf })) => {
            let summary = context.to_string();
            match transports.reload_tls(context) {
                Ok(()) => {
                    info!(
                        context = %summary,
                        certificate = %leaf,
                        "SIGHUP: TLS certificate reloaded for new connections"
                    );
                    warn_about_validity(&leaf, OffsetDateTime::now_utc());
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};
    use time::macros::datetime;

    /// A self-signed certificate valid from `not_before` to `not_after`: (certificate, key) PEM.
    fn certificate(not_before: OffsetDateTime, not_after: OffsetDateTime) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["srs.example.com".to_owned(), "192.0.2.10".to_owned()])
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "srs.example.com");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    fn section(dir: &Path, certificate: &str, key: &str) -> TlsSection {
        std::fs::write(dir.join("cert.pem"), certificate).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        TlsSection {
            cert_file: Some(dir.join("cert.pem")),
            key_file: Some(dir.join("key.pem")),
            ..TlsSection::default()
        }
    }

    #[test]
    fn the_leaf_shows_its_subject_names_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = certificate(
            datetime!(2026-01-01 0:00 UTC),
            datetime!(2027-03-01 12:00 UTC),
        );
        let loaded = load(&section(dir.path(), &cert, &key)).unwrap();
        let leaf = loaded.leaf;
        assert_eq!(leaf.subject, "CN=srs.example.com, O=Example");
        assert_eq!(leaf.names, ["srs.example.com", "192.0.2.10"]);
        assert_eq!(
            leaf.to_string(),
            "CN=srs.example.com, O=Example, names srs.example.com 192.0.2.10, expires 2027-03-01"
        );
        assert_eq!(
            leaf.validity_at(datetime!(2025-12-31 23:59 UTC)),
            Validity::NotYetValid
        );
        assert_eq!(
            leaf.validity_at(datetime!(2027-02-28 12:00 UTC)),
            Validity::Valid(time::Duration::days(1))
        );
        assert_eq!(
            leaf.validity_at(datetime!(2027-03-01 12:00:01 UTC)),
            Validity::Expired
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = certificate(
            datetime!(2026-01-01 0:00 UTC),
            datetime!(2036-01-01 0:00 UTC),
        );
        let (_, other_key) = certificate(
            datetime!(2026-01-01 0:00 UTC),
            datetime!(2036-01-01 0:00 UTC),
        );
        let err = load(&section(dir.path(), &cert, &other_key)).err().unwrap();
        let text = format!("{err:#}");
        assert!(text.contains("does not match"), "{text}");
        let key_body = other_key.lines().nth(1).unwrap();
        assert!(!text.contains(key_body), "{text}");
    }
}
