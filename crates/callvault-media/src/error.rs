//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the media engine.
///
/// Per-packet problems (malformed RTP, unknown payload types) are not errors for the caller:
/// they are counted on the leg and reported in [`crate::LegReport`].
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every RTP/RTCP port pair of the configured range is reserved or busy (→ 503 upstream).
    #[error("no free RTP port pair in the configured range")]
    NoFreePorts,
    /// A UDP socket could not be created or bound for another reason than "port in use".
    #[error("cannot bind UDP port {port}")]
    Bind {
        port: u16,
        #[source]
        source: io::Error,
    },
    /// File-system error on a leg file or its directory.
    #[error("I/O error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A leg file's path is taken: files are created, never truncated nor reused.
    #[error("leg file {path} already exists")]
    FileExists { path: PathBuf },
    /// [`crate::repair`] was given a file that is not a PCM WAV it understands.
    #[error("{path} is not a WAV file that can be repaired: {problem}")]
    NotWav {
        path: PathBuf,
        problem: &'static str,
    },
    /// The configuration cannot work (empty port range, no thread...).
    #[error("invalid media configuration: {0}")]
    InvalidConfig(&'static str),
    /// A leg path must stay inside the data directory.
    #[error("leg path must be relative and must not contain '..': {path}")]
    InvalidPath { path: PathBuf },
    /// A receive or writer thread (or its runtime) could not be started.
    #[error("cannot start media thread {name}")]
    Spawn {
        name: String,
        #[source]
        source: io::Error,
    },
    /// The engine's threads are gone (shut down, or a thread died).
    #[error("media engine is shut down")]
    ShutDown,
    /// The leg already finished (stopped, or its handle's thread is gone).
    #[error("leg {label} is no longer recording")]
    LegGone { label: String },
    /// An RTP packet that cannot be parsed (never surfaced per packet to callers; counted instead).
    #[error("malformed RTP packet: {0}")]
    MalformedRtp(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error and its causes on one line, for reports and logs.
pub(crate) fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
