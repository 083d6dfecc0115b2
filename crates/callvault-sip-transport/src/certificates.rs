//! TLS settings: our certificate and key, the CAs we trust, and what we ask of peers, checked
//! once and turned into the rustls configurations every handshake shares. The binary reads
//! the PEM files; nothing here touches the filesystem.
//!
//! **Versions.** TLS 1.3 and 1.2 only, with rustls's cipher suites (all AEAD with forward
//! secrecy), on the `ring` provider, named explicitly rather than through rustls's process-wide
//! default.
//!
//! **Clients (SBCs connecting to us).** With CA certificates and `require_client_certificate`,
//! a client must present a certificate chaining to one of those CAs or its handshake fails
//! (TLS alert `certificate_required` or `unknown_ca`). With CA certificates alone, a client
//! may present none, but one that it presents must verify. Without CA certificates no
//! certificate is asked for.
//!
//! **Servers (when we connect out: a response or a BYE whose connection has closed).** The
//! server's certificate must chain to the system roots or to the CA certificates, be valid now,
//! and — unless `verify_server_name` is off — name the IP address we connect to (an IP address
//! SAN): the SIP core hands the driver an address, not a host name. A server whose certificate
//! does not verify is sent nothing: the handshake fails, what waited for the connection is
//! dropped and the destination is reported failed (`DeliveryFailure::TlsHandshakeFailed`), so
//! the transaction sending there ends at once. We present our own certificate when the server
//! asks for one (mutual TLS).

use crate::error::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use std::fmt;
use std::sync::Arc;

/// The protocol versions we speak: nothing older than TLS 1.2.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// What SIP over TLS needs, as the binary read it from its files.
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// Our certificate chain (PEM), leaf first: shown to clients, and to servers we connect to
    /// when they ask for a client certificate.
    pub certificate_chain: Vec<u8>,
    /// The leaf's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub private_key: Vec<u8>,
    /// CA certificates (PEM) that sign our peers' certificates: client certificates are
    /// verified against these; servers we connect to against these and `system_roots`.
    pub ca_certificates: Option<Vec<u8>>,
    /// The system's trust anchors (DER), for servers we connect to. Unparsable ones are skipped.
    pub system_roots: Vec<Vec<u8>>,
    /// Refuse clients without a certificate signed by `ca_certificates` (mutual TLS). Needs
    /// `ca_certificates`.
    pub require_client_certificate: bool,
    /// A server we connect to must have a certificate naming the IP address we connect to.
    /// Off: its chain is still verified, its name is not.
    pub verify_server_name: bool,
}

/// Certificates and policy, checked and ready for handshakes. Cheap to clone; swapped whole
/// on reload ([`crate::Transports::reload_tls`]).
#[derive(Clone)]
pub struct TlsContext {
    pub(crate) server: Arc<ServerConfig>,
    /// `None` when there is no trust anchor at all (no CA certificates, no system roots): no
    /// server could be verified, so we do not connect out over TLS.
    pub(crate) client: Option<Arc<ClientConfig>>,
    summary: Summary,
}

/// What the log says about a context (never key material).
#[derive(Clone, Copy, Debug)]
struct Summary {
    chain_length: usize,
    ca_certificates: usize,
    system_roots: usize,
    require_client_certificate: bool,
    verify_server_name: bool,
}

impl fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsContext")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// One line for the log: what was loaded and what is asked of peers, no key material.
impl fmt::Display for TlsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        write!(
            f,
            "certificate chain of {}, {} CA certificate(s), client certificates {}, \
             {} system root(s), server names {}",
            s.chain_length,
            s.ca_certificates,
            if s.require_client_certificate {
                "required"
            } else if s.ca_certificates > 0 {
                "verified when presented"
            } else {
                "not asked for"
            },
            s.system_roots,
            if s.verify_server_name {
                "verified"
            } else {
                "not verified"
            },
        )
    }
}

impl TlsContext {
    /// Parses and checks everything: the chain and key parse and belong together, the CA
    /// certificates parse and are usable as trust anchors, `require_client_certificate` has CAs
    /// to verify against. The first problem found is the error.
    pub fn new(settings: &TlsSettings) -> Result<TlsContext> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = CertificateDer::pem_slice_iter(&settings.certificate_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::TlsCertificate)?;
        if chain.is_empty() {
            return Err(Error::TlsCertificate(
                rustls::pki_types::pem::Error::NoItemsFound,
            ));
        }
        let key =
            PrivateKeyDer::from_pem_slice(&settings.private_key).map_err(Error::TlsPrivateKey)?;
        let certified = Arc::new(certified_key(chain.clone(), key, &provider)?);

        let cas = match &settings.ca_certificates {
            None => Vec::new(),
            Some(pem) => {
                let cas = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(Error::TlsCaCertificates)?;
                if cas.is_empty() {
                    return Err(Error::TlsCaCertificates(
                        rustls::pki_types::pem::Error::NoItemsFound,
                    ));
                }
                cas
            }
        };
        let mut ca_roots = RootCertStore::empty();
        for ca in &cas {
            ca_roots.add(ca.clone()).map_err(Error::TlsCaRejected)?;
        }

        let client_verifier = if ca_roots.is_empty() {
            if settings.require_client_certificate {
                return Err(Error::TlsClientCaMissing);
            }
            None
        } else {
            let builder = WebPkiClientVerifier::builder_with_provider(
                Arc::new(ca_roots.clone()),
                Arc::clone(&provider),
            );
            let builder = if settings.require_client_certificate {
                builder
            } else {
                builder.allow_unauthenticated()
            };
            Some(builder.build().map_err(Error::TlsVerifier)?)
        };
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(VERSIONS)
            .map_err(Error::Tls)?;
        let server = match client_verifier {
            Some(verifier) => server.with_client_cert_verifier(verifier),
            None => server.with_no_client_auth(),
        }
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(&certified))));

        let mut roots = ca_roots;
        let (system_roots, _unparsable) = roots.add_parsable_certificates(
            settings
                .system_roots
                .iter()
                .map(|der| CertificateDer::from(der.as_slice())),
        );
        let client = if roots.is_empty() {
            None
        } else {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(Error::TlsVerifier)?;
            let verifier: Arc<dyn ServerCertVerifier> = if settings.verify_server_name {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            };
            let client = ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_protocol_versions(VERSIONS)
                .map_err(Error::Tls)?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
            Some(Arc::new(client))
        };
        Ok(TlsContext {
            server: Arc::new(server),
            client,
            summary: Summary {
                chain_length: chain.len(),
                ca_certificates: cas.len(),
                system_roots,
                require_client_certificate: settings.require_client_certificate,
                verify_server_name: settings.verify_server_name,
            },
        })
    }

    /// Whether clients must present a certificate signed by the CA certificates.
    pub fn requires_client_certificate(&self) -> bool {
        self.summary.require_client_certificate
    }

    /// Whether we can connect out over TLS (some trust anchor to verify servers with).
    pub fn can_connect_out(&self) -> bool {
        self.client.is_some()
    }
}

/// The chain and key as one `CertifiedKey`, refusing a key that belongs to another certificate.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey> {
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(Error::TlsKeyUnusable)?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // rustls cannot tell for some key types: the handshake will show.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(Error::TlsKeyMismatch),
        Err(other) => Err(Error::TlsCertificateUnusable(other)),
    }
}

/// A server certificate verifier that checks the chain (trust anchor, validity, signatures,
/// server-auth usage) and not the name, for `verify_server_name = false`: SBC certificates
/// usually name a host, and the driver connects to an address. Written here because rustls
/// offers name checking only as part of its verifier; everything else is delegated to it.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a name error means the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
