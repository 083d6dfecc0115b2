//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// What went wrong while opening, mixing, encoding or packing audio, or reading a file-name
/// pattern. None of these texts is meant for an API client: the HTTP layer maps them to a status
/// and a message of its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a leg file failed (missing, unreadable, shorter than when it was opened).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not a WAV file this crate can read.
    #[error("{path} is not a usable WAV file: {problem}")]
    NotWav {
        path: PathBuf,
        problem: &'static str,
    },
    /// A WAV file that can be served as it is but not mixed (mixing takes 16-bit PCM mono).
    #[error("{path} cannot be mixed: {problem}")]
    NotMixable {
        path: PathBuf,
        problem: &'static str,
    },
    /// A mix of no legs.
    #[error("a mix needs at least one leg")]
    NoLegs,
    /// The resampler refused the pair of sample rates.
    #[error("cannot resample {from} Hz to {to} Hz: {source}")]
    Resampler {
        from: u32,
        to: u32,
        #[source]
        source: rubato::ResamplerConstructionError,
    },
    /// The resampler failed on a chunk (a buffer of the wrong size: a bug of ours).
    #[error("resampling failed: {0}")]
    Resample(#[from] rubato::ResampleError),
    /// LAME refused the encoder settings.
    #[error("cannot set up the MP3 encoder: {0}")]
    Mp3Setup(#[from] mp3lame_encoder::BuildError),
    /// LAME failed while encoding.
    #[error("MP3 encoding failed: {0}")]
    Mp3Encode(#[from] mp3lame_encoder::EncodeError),
    /// Writing the zip archive failed.
    #[error("zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// A file-name pattern that cannot be used (a configuration error).
    #[error("file-name pattern {pattern:?}: {problem}")]
    Pattern {
        pattern: String,
        problem: PatternProblem,
    },
    /// The blocking task producing a body chunk panicked or was cancelled.
    #[error("the task producing the response body stopped: {0}")]
    BodyTask(#[from] tokio::task::JoinError),
}

/// Why a file-name pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternProblem {
    #[error("unknown placeholder {{{0}}}")]
    UnknownPlaceholder(String),
    #[error("a '{{' is never closed")]
    Unclosed,
    #[error("a '}}' closes nothing")]
    StrayBrace,
    #[error("it contains a path separator")]
    PathSeparator,
    #[error("it contains a control character")]
    ControlCharacter,
    #[error("it is empty")]
    Empty,
}

impl Error {
    /// The file asked for is not on disk (deleted, or never written): the HTTP layer answers
    /// 404 or 410 rather than 500.
    pub fn is_missing_file(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
