//! The crate's one error type: what can fail while binding. Failures after that are events
//! ([`crate::TransportEvent::Failed`]), never errors returned to the SIP loop.

/// Everything that can go wrong when setting the transports up.
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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}
