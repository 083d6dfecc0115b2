//! Pausing and resuming a live recording: the API asks, the binary's SIP loop does it (every
//! leg records silence while paused, DTMF is not stored, the interval is kept with who paused).
//! [`LiveRecordings`] is what the binary implements over its loop.

use std::future::Future;
use std::pin::Pin;

/// A boxed future that can be sent between threads (what [`LiveRecordings`] returns, so the
/// trait stays object-safe behind `Arc<dyn LiveRecordings>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The recordings this node is recording now, as far as pausing them goes.
///
/// The route has already checked that the recording exists in the caller's scope and is
/// `active` in the catalog; an implementation answers for what only the live session knows.
/// Implementations copy the `&str` arguments into the future they return.
pub trait LiveRecordings: Send + Sync + 'static {
    /// Pauses every leg of `recording_id` on behalf of the user `by`.
    fn pause(&self, recording_id: &str, by: &str) -> BoxFuture<'_, Result<(), LiveError>>;
    /// Resumes a paused recording.
    fn resume(&self, recording_id: &str, by: &str) -> BoxFuture<'_, Result<(), LiveError>>;
}

/// Why a live recording cannot be paused or resumed (all answered 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// Not being recorded here now: it ended, or another node records it.
    #[error("the recording is not being recorded on this node")]
    NotActive,
    #[error("the recording is already paused")]
    AlreadyPaused,
    #[error("the recording is not paused")]
    NotPaused,
}

/// A node that records nothing live (tools, tests): every request is [`LiveError::NotActive`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLiveRecordings;

impl LiveRecordings for NoLiveRecordings {
    fn pause(&self, _: &str, _: &str) -> BoxFuture<'_, Result<(), LiveError>> {
        Box::pin(async { Err(LiveError::NotActive) })
    }

    fn resume(&self, _: &str, _: &str) -> BoxFuture<'_, Result<(), LiveError>> {
        Box::pin(async { Err(LiveError::NotActive) })
    }
}
