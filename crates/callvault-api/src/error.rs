//! The crate's one error type, and the one place that maps it to HTTP statuses
//! ([`Error::status`], [`Error::code`]; the response itself is in `response`).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;

use crate::live::LiveError;
use crate::settings::ReasonAction;

/// What went wrong: in a request (who asks, what they may do, what they sent), in the catalog,
/// or while opening, mixing, encoding or packing audio, or reading a file-name pattern.
///
/// An API client sees a status, a stable `code` and a message written for it here
/// ([`Error::public_message`]); the `Display` text (which may name files and database
/// operations) goes only to the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No credentials, or credentials that are unknown, revoked, expired or of a disabled user.
    #[error("not authenticated")]
    Unauthenticated,
    /// Sign-in with a wrong user name or password, or as a disabled user (not told apart).
    #[error("wrong user name or password")]
    LoginFailed,
    /// The caller's role lacks what the operation needs.
    #[error("the role {role} may not {action}")]
    Forbidden {
        role: callvault_catalog::Role,
        action: &'static str,
    },
    /// A cookie-authenticated request that changes something came without the session's CSRF
    /// token in `X-Callvault-CSRF`.
    #[error("missing or wrong CSRF token")]
    Csrf,
    /// Too many sign-in attempts from this client or for this user name, or too many requests
    /// to the public share pages from this client.
    #[error("too many requests; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Nothing of this kind with this name, or nothing the caller may see.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The request is malformed: a query parameter, a path or a body that cannot be read.
    #[error("bad request: {reason}")]
    BadRequest { reason: String },
    /// The body is not JSON (`Content-Type: application/json`).
    #[error("the body must be JSON")]
    UnsupportedMediaType,
    /// A well-formed request whose values cannot be used (a missing field, a value out of range).
    #[error("invalid request: {reason}")]
    Invalid { reason: String },
    /// `[api] require_reason` lists the action and the request gave none.
    #[error("a reason is required to {0}")]
    ReasonRequired(ReasonAction),
    /// The reason is not one of `[api] reasons`.
    #[error("the reason is not one of the allowed reasons")]
    ReasonNotAllowed,
    /// Retention deleted the recording's media; its metadata is still there.
    #[error("the recording's media were deleted by retention")]
    MediaDeleted,
    /// A leg label that several legs of the recording share.
    #[error("several legs are labelled {label:?}")]
    AmbiguousLeg { label: String },
    /// An export package that cannot be downloaded yet (or any more: failed).
    #[error("the export is {state}, not ready")]
    ExportNotReady {
        state: callvault_catalog::ExportState,
    },
    /// An export package or a share link past its expiry, or a revoked share link.
    #[error("the {what} has {how}")]
    Gone {
        what: &'static str,
        how: &'static str,
    },
    /// A share link made for playing only was asked for a download.
    #[error("this link allows playing only, not downloading")]
    DownloadNotAllowed,
    /// The live recording cannot be paused or resumed now.
    #[error("live recording: {0}")]
    Live(#[from] LiveError),
    /// What the catalog refused or failed.
    #[error(transparent)]
    Catalog(#[from] callvault_catalog::Error),
    /// The operating system's random number generator failed (session ids).
    #[error("the operating system's random number generator failed")]
    Random {
        #[source]
        source: getrandom::Error,
    },
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
    /// Encrypting an export package to its age recipient failed.
    #[error("encrypting the export: {0}")]
    Encrypt(#[from] age::EncryptError),
    /// Writing an export's CSV table failed.
    #[error("writing the export's CSV: {0}")]
    Csv(#[from] csv::Error),
    /// Writing an export package's file failed.
    #[error("writing the export package {path}: {source}")]
    ExportFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file-name pattern that cannot be used (a configuration error).
    #[error("file-name pattern {pattern:?}: {problem}")]
    Pattern {
        pattern: String,
        problem: PatternProblem,
    },
    /// The leg was recorded on another node and is not in object storage yet (it is uploaded
    /// shortly after the call ends): 503 with `Retry-After`.
    #[error("recording {recording_id} is on node {node} and not yet in object storage")]
    NotArchived { recording_id: String, node: String },
    /// Deleting a recording's objects from the bucket failed.
    #[error("object storage: {0}")]
    Objects(#[from] callvault_objects::Error),
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
    /// The HTTP status this error answers.
    pub fn status(&self) -> StatusCode {
        use callvault_catalog::Error as Catalog;
        match self {
            Error::Unauthenticated | Error::LoginFailed => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } | Error::Csrf | Error::DownloadNotAllowed => {
                StatusCode::FORBIDDEN
            }
            Error::ExportNotReady { .. } => StatusCode::CONFLICT,
            Error::Gone { .. } => StatusCode::GONE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Invalid { .. } | Error::ReasonRequired(_) | Error::ReasonNotAllowed => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Error::AmbiguousLeg { .. } | Error::Live(_) => StatusCode::CONFLICT,
            Error::MediaDeleted => StatusCode::GONE,
            Error::NotArchived { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Catalog(error) => match error {
                Catalog::NotFound { .. }
                | Catalog::UnknownUser { .. }
                | Catalog::UnknownToken { .. }
                | Catalog::UnknownLock { .. }
                | Catalog::UnknownItem { .. } => StatusCode::NOT_FOUND,
                Catalog::Deleted { .. } => StatusCode::GONE,
                Catalog::Locked { .. }
                | Catalog::Active { .. }
                | Catalog::UserExists { .. }
                | Catalog::PolicyExists { .. } => StatusCode::CONFLICT,
                Catalog::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
                Catalog::InvalidInput { .. } | Catalog::UnknownCustomField { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                error if error.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            error if error.is_missing_file() => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code of the error body.
    pub fn code(&self) -> &'static str {
        use callvault_catalog::Error as Catalog;
        match self {
            Error::Unauthenticated => "unauthenticated",
            Error::LoginFailed => "login_failed",
            Error::Forbidden { .. } => "forbidden",
            Error::Csrf => "csrf",
            Error::DownloadNotAllowed => "download_not_allowed",
            Error::ExportNotReady { .. } => "not_ready",
            Error::Gone { how: "expired", .. } => "expired",
            Error::Gone { .. } => "revoked",
            Error::RateLimited { .. } => "rate_limited",
            Error::NotFound { .. } => "not_found",
            Error::BadRequest { .. } => "bad_request",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::Invalid { .. } => "invalid",
            Error::ReasonRequired(_) => "reason_required",
            Error::ReasonNotAllowed => "reason_not_allowed",
            Error::AmbiguousLeg { .. } => "ambiguous_leg",
            Error::NotArchived { .. } => "not_archived",
            Error::Live(LiveError::NotActive) => "not_active",
            Error::Live(LiveError::AlreadyPaused) => "already_paused",
            Error::Live(LiveError::NotPaused) => "not_paused",
            Error::MediaDeleted => "media_deleted",
            Error::Catalog(error) => match error {
                Catalog::NotFound { .. }
                | Catalog::UnknownUser { .. }
                | Catalog::UnknownToken { .. }
                | Catalog::UnknownLock { .. }
                | Catalog::UnknownItem { .. } => "not_found",
                Catalog::Deleted { .. } => "deleted",
                Catalog::Locked { .. } => "locked",
                Catalog::Active { .. } => "active",
                Catalog::UserExists { .. } | Catalog::PolicyExists { .. } => "exists",
                Catalog::InvalidQuery { .. } => "bad_request",
                Catalog::InvalidInput { .. } => "invalid",
                Catalog::UnknownCustomField { .. } => "unknown_custom_field",
                error if error.is_transient() => "unavailable",
                _ => "internal",
            },
            error if error.is_missing_file() => "file_missing",
            _ => "internal",
        }
    }

    /// What the client is told. Errors of the request say what was wrong with it; errors of
    /// the server say only that (their details are logged, never sent).
    pub fn public_message(&self) -> String {
        use callvault_catalog::Error as Catalog;
        match self {
            Error::Unauthenticated => {
                "sign in (POST /api/v1/session) or send Authorization: Bearer TOKEN".to_owned()
            }
            Error::LoginFailed
            | Error::Forbidden { .. }
            | Error::Csrf
            | Error::NotFound { .. }
            | Error::BadRequest { .. }
            | Error::UnsupportedMediaType
            | Error::Invalid { .. }
            | Error::ReasonRequired(_)
            | Error::ReasonNotAllowed
            | Error::AmbiguousLeg { .. }
            | Error::ExportNotReady { .. }
            | Error::Gone { .. }
            | Error::DownloadNotAllowed
            | Error::MediaDeleted
            | Error::Live(_) => self.to_string(),
            Error::NotArchived { .. } => "the recording is on another node and not yet in \
                 object storage; try again shortly"
                .to_owned(),
            Error::RateLimited { retry_after } => format!(
                "too many requests; retry in {} s",
                retry_after.as_secs().max(1)
            ),
            Error::Catalog(error) => match error {
                Catalog::NotFound { .. } => "recording not found".to_owned(),
                Catalog::UnknownLock { .. } => "no such lock in force on this recording".to_owned(),
                Catalog::UnknownUser { .. } => "no such user".to_owned(),
                Catalog::UnknownToken { .. } => "no such token".to_owned(),
                Catalog::Deleted { .. } => "the recording is deleted".to_owned(),
                Catalog::Locked { locks, .. } => {
                    format!("the recording is locked ({locks} lock(s) in force)")
                }
                Catalog::Active { .. } => "the recording is still being recorded".to_owned(),
                Catalog::UserExists { name } => format!("user {name:?} already exists"),
                Catalog::UnknownItem { .. } | Catalog::PolicyExists { .. } => error.to_string(),
                Catalog::InvalidQuery { reason } => reason.clone(),
                Catalog::InvalidInput { .. } | Catalog::UnknownCustomField { .. } => {
                    error.to_string()
                }
                error if error.is_transient() => {
                    "the catalog is unavailable; try again shortly".to_owned()
                }
                _ => "internal error".to_owned(),
            },
            error if error.is_missing_file() => "the audio file is missing".to_owned(),
            _ => "internal error".to_owned(),
        }
    }

    /// The file asked for is not on disk (deleted, or never written): the HTTP layer answers
    /// 404 or 410 rather than 500.
    pub fn is_missing_file(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
