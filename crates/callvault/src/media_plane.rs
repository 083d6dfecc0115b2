//! The media engine as the recorder's [`MediaPlane`]: leg handles kept by id, engine events
//! turned into [`MediaInput`]s on one channel the SIP driver reads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use callvault_media::{
    LegHandle, LegId, LegSpec, LegUpdate, MediaEngine, MediaEvent, PortReservation,
};
use tokio::sync::mpsc;
use tracing::warn;

use crate::recorder::{LegOutcome, MediaInput, MediaPlane};

pub struct EngineMedia {
    engine: Arc<MediaEngine>,
    handles: HashMap<LegId, LegHandle>,
    inputs: mpsc::UnboundedSender<MediaInput>,
}

impl EngineMedia {
    /// Takes the engine's event channel (once) and returns the plane with the channel of
    /// [`MediaInput`]s the driver reads.
    pub fn new(engine: Arc<MediaEngine>) -> (EngineMedia, mpsc::UnboundedReceiver<MediaInput>) {
        let (inputs, rx) = mpsc::unbounded_channel();
        let mut events = engine
            .events()
            .expect("the media engine's events are taken once, here");
        let forward = inputs.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let input = match event {
                    MediaEvent::Dtmf {
                        leg,
                        digit,
                        offset_ms,
                        duration_ms,
                    } => MediaInput::Dtmf {
                        leg,
                        digit,
                        offset_ms,
                        duration_ms,
                    },
                    MediaEvent::Inactive { leg, silent_for } => {
                        MediaInput::Inactive { leg, silent_for }
                    }
                    _ => continue,
                };
                if forward.send(input).is_err() {
                    return;
                }
            }
        });
        (
            EngineMedia {
                engine,
                handles: HashMap::new(),
                inputs,
            },
            rx,
        )
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

    fn update_leg(&mut self, leg: LegId, update: LegUpdate) {
        if let Some(handle) = self.handles.get(&leg)
            && let Err(error) = self.engine.update_leg(handle, update)
        {
            warn!(%leg, %error, "leg update failed");
        }
    }

    fn stop_leg(&mut self, leg: LegId, end: Instant) {
        let Some(handle) = self.handles.remove(&leg) else {
            return;
        };
        let report = self.engine.stop_leg(handle, end);
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let outcome = match report.await {
                Ok(report) => LegOutcome {
                    samples: report.samples,
                    sha256: report.sha256,
                    error: report.error,
                    counters: callvault_types::LegCounters {
                        packets: report.packets,
                        lost: report.lost,
                        duplicates: report.duplicates,
                        out_of_order: report.out_of_order,
                        late: report.late,
                        unknown_payload: report.unknown_payload,
                        rtcp_packets: report.rtcp,
                        jitter_ms: Some(report.jitter_ms),
                        gaps_filled_ms: report.gaps_filled_ms,
                        ssrcs_seen: report.ssrcs_seen,
                        codec_changes: report.codec_changes,
                        ..Default::default()
                    },
                },
                Err(_) => LegOutcome {
                    error: Some("the media engine stopped before the leg closed".to_owned()),
                    ..LegOutcome::default()
                },
            };
            let _ = inputs.send(MediaInput::Closed {
                leg,
                outcome: Box::new(outcome),
            });
        });
    }
}
