//! Pausing and resuming a live recording (PCI: an agent desktop pauses while a card number is
//! spoken or keyed). While paused every leg records silence — the timeline goes on, so the legs
//! stay aligned and the pause is exactly where it happened — and no digit is stored, whatever
//! way it arrives (RFC 4733, SIP INFO, a press the media plane reports late). Each paused
//! interval is kept with who paused and who resumed.

use callvault_media::LegUpdate;
use tracing::info;

use super::answer::codec_of;
use super::media::MediaPlane;
use super::session::{LegSlot, PauseState, Session};
use super::sessions::SessionKey;
use super::{Now, Recorder};
use crate::archive::ArchiveCommand;
use callvault_catalog::Pause;

/// Why a pause or resume was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no live recording has this id")]
    NotActive,
    #[error("the recording is already paused")]
    AlreadyPaused,
    #[error("the recording is not paused")]
    NotPaused,
}

impl<M: MediaPlane> Recorder<M> {
    /// Pauses the live recording `recording_id` at `now`: silence and no digits until resumed.
    pub fn pause(&mut self, now: Now, recording_id: &str, by: &str) -> Result<(), ControlError> {
        let key = self
            .sessions
            .by_recording(recording_id)
            .ok_or(ControlError::NotActive)?;
        let session = self.sessions.get_mut(key).ok_or(ControlError::NotActive)?;
        if session.paused.is_some() {
            return Err(ControlError::AlreadyPaused);
        }
        let from_ms = offset_ms(session, now);
        let seq = session.pause_seq;
        session.pause_seq += 1;
        session.paused = Some(PauseState {
            seq,
            from_ms,
            by: by.to_owned(),
        });
        info!(call_id = %session.dialog.id().call_id, %recording_id, by, at_ms = from_ms, "recording paused");
        self.archive.push_back(ArchiveCommand::Pause {
            recording_id: recording_id.to_owned(),
            pause: Pause {
                seq,
                from_ms,
                to_ms: None,
                by: by.to_owned(),
            },
        });
        self.apply_activity(key);
        Ok(())
    }

    /// Resumes a paused recording at `now`.
    pub fn resume(&mut self, now: Now, recording_id: &str, by: &str) -> Result<(), ControlError> {
        let key = self
            .sessions
            .by_recording(recording_id)
            .ok_or(ControlError::NotActive)?;
        let session = self.sessions.get_mut(key).ok_or(ControlError::NotActive)?;
        let to_ms = offset_ms(session, now);
        let call_id = session.dialog.id().call_id.clone();
        self.close_pause(key, to_ms)?;
        info!(%call_id, %recording_id, by, at_ms = to_ms, "recording resumed");
        self.apply_activity(key);
        Ok(())
    }

    /// Ends the session's pause at `to_ms` (a resume, or the end of the call).
    pub(super) fn close_pause(&mut self, key: SessionKey, to_ms: i64) -> Result<(), ControlError> {
        let session = self.sessions.get_mut(key).ok_or(ControlError::NotActive)?;
        let pause = session.paused.take().ok_or(ControlError::NotPaused)?;
        session.pauses.push((pause.from_ms, to_ms));
        self.archive.push_back(ArchiveCommand::Pause {
            recording_id: session.recording_id.clone(),
            pause: Pause {
                seq: pause.seq,
                from_ms: pause.from_ms,
                to_ms: Some(to_ms),
                by: pause.by,
            },
        });
        Ok(())
    }

    /// Tells the media plane which legs record: those the SDP makes active, unless paused.
    pub(super) fn apply_activity(&mut self, key: SessionKey) {
        let Some(session) = self.sessions.get(key) else {
            return;
        };
        let paused = session.paused.is_some();
        let updates: Vec<_> = session
            .legs
            .iter()
            .filter_map(|slot| leg_update(slot, paused))
            .collect();
        for (leg, update) in updates {
            self.media.update_leg(leg, update);
        }
    }
}

/// What the media plane must know of a recording leg now; `None` for declined or closed legs.
pub(super) fn leg_update(
    slot: &LegSlot,
    paused: bool,
) -> Option<(callvault_media::LegId, LegUpdate)> {
    let LegSlot::Recording {
        leg,
        codec,
        telephone_event,
        srtp,
        sources,
        removed,
        on_hold,
        closed: None,
        ..
    } = slot
    else {
        return None;
    };
    let kind = codec_of(codec)?;
    let mut update = LegUpdate::new(codec.payload_type, kind, !on_hold && !removed && !paused);
    update.telephone_event_pt = telephone_event.as_ref().map(|f| f.payload_type);
    if let Some(te) = telephone_event {
        update.telephone_event_clock = te.clock_rate;
    }
    // Always the leg's current keys: an update without them would switch the leg to plain RTP.
    update.srtp = srtp.as_ref().map(|srtp| srtp.theirs.clone());
    // Likewise its sources: the same again keeps the latched source.
    update.sources = *sources;
    Some((*leg, update))
}

/// Milliseconds from the answer to `now`: where `now` lies in every leg's file.
fn offset_ms(session: &Session, now: Now) -> i64 {
    i64::try_from(now.at.saturating_duration_since(session.anchor).as_millis()).unwrap_or(i64::MAX)
}

/// Whether a digit at `offset_ms` fell while the recording was paused.
pub(super) fn in_pause(session: &Session, offset_ms: i64) -> bool {
    session
        .paused
        .as_ref()
        .is_some_and(|p| offset_ms >= p.from_ms)
        || session
            .pauses
            .iter()
            .any(|(from, to)| (*from..*to).contains(&offset_ms))
}
