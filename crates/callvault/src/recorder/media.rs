//! What the recorder needs from the media plane, as a trait, so that the recorder runs and is
//! tested without sockets or threads: production wires in the media engine (`server.rs`), the
//! tests a fake that hands out ports and reports legs closed when told.
//!
//! Every call returns at once: reserving a port pair is a bind (microseconds), starting, updating
//! and stopping a leg are messages to its receive thread. What takes time (a file closed and
//! hashed, a write that failed) comes back later as a [`MediaInput`].

use std::time::{Duration, Instant};

use callvault_media::{LegId, LegSpec, LegUpdate};
use callvault_types::LegCounters;

pub trait MediaPlane {
    /// A reserved RTP/RTCP port pair, not yet recording.
    type Reservation;

    /// Reserves a port pair; `Err` when the range is exhausted (the INVITE then gets 503).
    fn reserve(&mut self) -> Result<Self::Reservation, callvault_media::Error>;
    /// The RTP port of a reservation, for the SDP answer.
    fn port(reservation: &Self::Reservation) -> u16;
    /// Starts recording on a reserved pair: the leg's file is created, packets are recorded.
    fn start_leg(
        &mut self,
        reservation: Self::Reservation,
        spec: LegSpec,
    ) -> Result<LegId, callvault_media::Error>;
    /// New codecs, payload types or direction (a re-offer).
    fn update_leg(&mut self, leg: LegId, update: LegUpdate);
    /// Ends the leg at `end` (its file is padded to `end - anchor`); [`MediaInput::Closed`]
    /// follows once the file is closed.
    fn stop_leg(&mut self, leg: LegId, end: Instant);
}

/// What the media plane tells the recorder.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaInput {
    /// One RFC 4733 key press, at `offset_ms` on the leg's timeline.
    Dtmf {
        leg: LegId,
        digit: char,
        offset_ms: u64,
        duration_ms: u64,
    },
    /// An active stream sent no RTP for its timeout.
    Inactive { leg: LegId, silent_for: Duration },
    /// The leg's file could not be written (disk full, I/O error); it was closed at its last good
    /// sample. Sent once, while the leg still runs.
    #[cfg_attr(
        not(test),
        allow(
            dead_code,
            reason = "the media engine reports write failures from the media branch on"
        )
    )]
    Failed { leg: LegId, error: String },
    /// The leg's file is closed: its final figures.
    Closed {
        leg: LegId,
        outcome: Box<LegOutcome>,
    },
}

/// How a leg's file ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LegOutcome {
    /// Samples in the file.
    pub samples: u64,
    /// Hex SHA-256 of the closed file; `None` when it could not be written or read.
    pub sha256: Option<String>,
    /// Why the file is missing or incomplete.
    pub error: Option<String>,
    pub counters: LegCounters,
}
