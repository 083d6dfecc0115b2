//! The media engine as the recorder's [`MediaPlane`]: the engine's leg handles kept by id, so
//! the recorder deals in [`LegId`]s only. The engine's events go to the SIP driver directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use callvault_media::{LegHandle, LegId, LegSpec, LegUpdate, MediaEngine, PortReservation};
use tracing::warn;

use crate::recorder::MediaPlane;

pub struct EngineMedia {
    engine: Arc<MediaEngine>,
    handles: HashMap<LegId, LegHandle>,
}

impl EngineMedia {
    pub fn new(engine: Arc<MediaEngine>) -> EngineMedia {
        EngineMedia {
            engine,
            handles: HashMap::new(),
        }
    }
}

impl MediaPlane for EngineMedia {
    type Reservation = PortReservation;

    fn reserve(&mut self) -> Result<PortReservation, callvault_media::Error> {
        self.engine.allocate()
    }

    fn port(reservation: &PortReservation) -> u16 {
        reservation.port()
    }

    fn start_leg(
        &mut self,
        reservation: PortReservation,
        spec: LegSpec,
    ) -> Result<LegId, callvault_media::Error> {
        let handle = self.engine.start_leg(reservation, spec)?;
        let id = handle.id();
        self.handles.insert(id, handle);
        Ok(id)
    }

    fn start_relay(
        &mut self,
        a: (PortReservation, LegSpec),
        b: (PortReservation, LegSpec),
    ) -> Result<(LegId, LegId), callvault_media::Error> {
        let (a, b) = self.engine.start_relay(a, b)?;
        let ids = (a.id(), b.id());
        self.handles.insert(ids.0, a);
        self.handles.insert(ids.1, b);
        Ok(ids)
    }

    fn update_leg(&mut self, leg: LegId, update: LegUpdate) {
        if let Some(handle) = self.handles.get(&leg)
            && let Err(error) = self.engine.update_leg(handle, update)
        {
            warn!(%leg, %error, "leg update failed");
        }
    }

    fn stop_leg(&mut self, leg: LegId, end: Instant) {
        if let Some(handle) = self.handles.remove(&leg) {
            self.engine.stop_leg(handle, end);
        }
    }
}
