//! What the recorder needs from the media plane, as a trait, so that the recorder runs and is
//! tested without sockets or threads: production wires in the media engine (`server.rs`), the
//! tests a fake that hands out ports and reports legs closed when told.
//!
//! Every call returns at once: reserving a port pair is a bind (microseconds), starting, updating
//! and stopping a leg are messages to its receive thread. What takes time (a file closed and
//! hashed, a write that failed) comes back later as a [`callvault_media::MediaEvent`].

use std::time::Instant;

use callvault_media::{LegId, LegSpec, LegUpdate};

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
    /// Starts the two legs of a relayed call (pass-through) on their reserved pairs: each
    /// records what arrives on its own pair and forwards it to the other leg's far end (its
    /// `sources` address until its packets latch the real one).
    fn start_relay(
        &mut self,
        a: (Self::Reservation, LegSpec),
        b: (Self::Reservation, LegSpec),
    ) -> Result<(LegId, LegId), callvault_media::Error>;
    /// New codecs, payload types or direction (a re-offer).
    fn update_leg(&mut self, leg: LegId, update: LegUpdate);
    /// Ends the leg at `end` (its file is padded to `end - anchor`); `MediaEvent::LegClosed`
    /// follows once the file is closed.
    fn stop_leg(&mut self, leg: LegId, end: Instant);
}
