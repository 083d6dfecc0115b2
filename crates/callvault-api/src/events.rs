//! What the API changed about a recording, told to whoever listens (the binary's webhooks),
//! after the catalog committed it. [`RecordingEvents`] keeps this crate free of the binary.

/// A change a route made and the catalog committed (with its audit entry). Exhaustive on
/// purpose: a new kind of change must be handled by the listener, not dropped in a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingChange {
    /// Deleted: the tombstone stands, the files are removed.
    Deleted,
    /// A lock was put on it.
    Locked { lock_id: String },
    /// A lock was removed.
    Unlocked { lock_id: String },
}

/// Told of every [`RecordingChange`]. Called on the request's task right after the commit: an
/// implementation only queues (it must not wait on the network).
pub trait RecordingEvents: Send + Sync + 'static {
    fn recording_changed(&self, recording_id: &str, change: RecordingChange);
}

/// Nobody listens (tools, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRecordingEvents;

impl RecordingEvents for NoRecordingEvents {
    fn recording_changed(&self, _: &str, _: RecordingChange) {}
}
