//! The crate's one error type: what can fail while binding or while checking TLS settings.
//! Failures after that are events ([`crate::TransportEvent::Failed`]), never errors returned to
//! the SIP loop.

use rustls::pki_types::pem;

/// Everything that can go wrong when setting the transports up (or reloading TLS).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket could not be created, configured or bound.
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The certificate chain is not PEM, or holds no certificate.
    #[error("TLS certificate: {0}")]
    TlsCertificate(#[source] pem::Error),
    /// The private key is not PEM, or the PEM holds no private key.
    #[error("TLS private key: {0}")]
    TlsPrivateKey(#[source] pem::Error),
    /// The private key parses but cannot sign (an unsupported algorithm or a corrupt key).
    #[error("TLS private key unusable: {0}")]
    TlsKeyUnusable(#[source] rustls::Error),
    /// The private key belongs to another certificate.
    #[error("TLS private key does not match the certificate")]
    TlsKeyMismatch,
    /// The certificate parses as PEM but not as an X.509 certificate rustls can use.
    #[error("TLS certificate unusable: {0}")]
    TlsCertificateUnusable(#[source] rustls::Error),
    /// The CA file is not PEM, or holds no certificate.
    #[error("TLS CA certificates: {0}")]
    TlsCaCertificates(#[source] pem::Error),
    /// A CA certificate cannot serve as a trust anchor (not a valid X.509 certificate).
    #[error("TLS CA certificate rejected: {0}")]
    TlsCaRejected(#[source] rustls::Error),
    /// Client certificates are required but no CA certificates were given to verify them.
    #[error("requiring client certificates needs CA certificates to verify them against")]
    TlsClientCaMissing,
    /// A certificate verifier could not be built from the trust anchors.
    #[error("TLS verifier: {0}")]
    TlsVerifier(#[source] rustls::server::VerifierBuilderError),
    /// rustls refused the configuration (e.g. protocol versions for the provider).
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// A TLS reload was asked of transports bound without TLS.
    #[error("SIP over TLS is not enabled")]
    TlsNotEnabled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}
