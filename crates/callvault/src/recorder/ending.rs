//! How sessions end: a BYE of ours when we end it, the legs stopped at that instant, and the
//! catalog's completion once the media plane has closed every leg's file.

use std::sync::atomic::Ordering;
use std::time::Duration;

use callvault_catalog as catalog;
use callvault_media::{LegId, LegReport};
use callvault_sip::{Endpoint, Method, peer_for_in_dialog_request};
use callvault_types::{EndReason, RecordingMode};
use tracing::{error, info, warn};

use super::media::MediaPlane;
use super::session::LegSlot;
use super::sessions::{Closing, SessionKey};
use super::{Now, Recorder};
use crate::archive::ArchiveCommand;
use crate::notify::Event;

/// The `Reason` header (RFC 3326) of a BYE we send, so the client's logs say why.
fn reason_header(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Shutdown => "SIP;cause=503;text=\"shutting down\"",
        EndReason::WriteFailed => "SIP;cause=500;text=\"recording failed: storage\"",
        EndReason::RtpTimeout => "SIP;cause=408;text=\"RTP timeout\"",
        EndReason::SessionExpired => "SIP;cause=408;text=\"session expired\"",
        EndReason::AckTimeout => "SIP;cause=408;text=\"no ACK\"",
        EndReason::MaxDuration => "Q.850;cause=16;text=\"maximum call duration\"",
        EndReason::MaxHold => "Q.850;cause=16;text=\"maximum hold time\"",
        _ => "Q.850;cause=16",
    }
}

impl<M: MediaPlane> Recorder<M> {
    /// Ends a session from our side: BYE to the client (with why), then the legs are closed.
    pub(super) fn hang_up(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        key: SessionKey,
        reason: EndReason,
    ) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        let bye = session
            .dialog
            .make_request(Method::Bye)
            .with_header("Reason", reason_header(reason));
        let peer = peer_for_in_dialog_request(&session.dialog, session.peer);
        info!(
            call_id = %session.dialog.id().call_id,
            recording_id = %session.recording_id,
            %reason,
            "sending BYE"
        );
        let transaction = endpoint.send_request(now.at, peer, bye);
        self.byes.push(transaction);
        self.gauges.hangups_total.fetch_add(1, Ordering::Relaxed);
        self.end_session(now, key, reason);
    }

    /// The session is over: every leg is stopped at `now` (its file padded to the call's
    /// length), and the completion waits for the files to close.
    pub(super) fn end_session(&mut self, now: Now, key: SessionKey, reason: EndReason) {
        if let Some(session) = self.sessions.get(key) {
            // A pause lasts until the end of the call.
            let end_ms =
                i64::try_from(now.at.saturating_duration_since(session.anchor).as_millis())
                    .unwrap_or(i64::MAX);
            let _ = self.close_pause(key, end_ms);
        }
        let Some(session) = self.sessions.remove(key) else {
            return;
        };
        let duration = now.at.saturating_duration_since(session.anchor);
        let mut waiting = Vec::new();
        let mut legs = Vec::new();
        let mut failed = reason == EndReason::WriteFailed;
        let mut warnings = session.warnings;
        for (position, slot) in session.legs.iter().enumerate() {
            let LegSlot::Recording {
                leg, label, closed, ..
            } = slot
            else {
                continue;
            };
            match closed {
                None => {
                    self.media.stop_leg(*leg, now.at);
                    waiting.push(*leg);
                }
                Some(report) => {
                    if let Some(error) = &report.error {
                        failed = true;
                        warnings.push(format!("leg {label}: {error}"));
                    }
                    legs.push(completion_of(position as i64, report));
                }
            }
        }
        let completion = catalog::Completion {
            final_status: None,
            hung_up_by: None,
            recording_id: session.recording_id.clone(),
            state: catalog::RecordingState::Active,
            ended_at: session.started_at + duration,
            duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
            end_reason: reason,
            legs,
            warnings: Vec::new(),
        };
        info!(
            call_id = %session.dialog.id().call_id,
            recording_id = %session.recording_id,
            duration_ms = duration.as_millis() as u64,
            %reason,
            "recording ended; closing its files"
        );
        let closing = Closing {
            waiting,
            completion,
            call_id: session.dialog.id().call_id.clone(),
            failed,
            warnings,
            reason,
            legs: session
                .legs
                .iter()
                .enumerate()
                .filter_map(|(position, slot)| match slot {
                    LegSlot::Recording { leg, label, .. } => {
                        Some((*leg, position as i64, label.clone()))
                    }
                    LegSlot::Declined => None,
                })
                .collect(),
            dtmf_seq: session.dtmf_seq,
            pauses: session.pauses,
        };
        self.sessions.start_closing(key, closing);
        self.finish_if_closed(key);
        self.publish_gauges();
    }

    /// A leg's file could not be written: the call cannot be recorded any more, so it ends now
    /// (BYE) and the recording is marked failed with the reason.
    pub(super) fn leg_failed(
        &mut self,
        now: Now,
        endpoint: &mut Endpoint,
        leg: LegId,
        error: String,
    ) {
        self.gauges
            .legs_failed_total
            .fetch_add(1, Ordering::Relaxed);
        let Some(key) = self.sessions.by_leg(leg) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(key) else {
            // Already ending: the completion will carry the leg's error.
            return;
        };
        let label = session.label_of(leg).unwrap_or("").to_owned();
        error!(
            call_id = %session.dialog.id().call_id,
            recording_id = %session.recording_id,
            leg = %label,
            %error,
            "a leg's file cannot be written: ending the recording"
        );
        self.hang_up(now, endpoint, key, EndReason::WriteFailed);
    }

    /// The media plane closed a leg's file.
    pub(super) fn leg_closed(&mut self, leg: LegId, outcome: Box<LegReport>) {
        let Some(key) = self.sessions.by_leg(leg) else {
            warn!(%leg, "a closed leg belongs to no session");
            return;
        };
        if let Some(session) = self.sessions.get_mut(key) {
            // Closed while the call goes on (its thread stopped): remembered for the completion.
            if let Some((_, LegSlot::Recording { closed, .. })) = session.slot_of(leg) {
                *closed = Some(outcome);
            }
            return;
        }
        let Some(closing) = self.sessions.closing_mut(key) else {
            return;
        };
        closing.waiting.retain(|l| *l != leg);
        closing.failed |= outcome.error.is_some();
        if let Some(error) = &outcome.error {
            let label = closing.label(leg);
            closing.warnings.push(format!("leg {label}: {error}"));
        }
        let position = closing.position(leg);
        closing
            .completion
            .legs
            .push(completion_of(position, &outcome));
        self.finish_if_closed(key);
    }

    /// Queues the completion once the session's last leg is closed.
    fn finish_if_closed(&mut self, key: SessionKey) {
        let done = self
            .sessions
            .closing_mut(key)
            .is_some_and(|closing| closing.waiting.is_empty());
        if !done {
            return;
        }
        let Some(closing) = self.sessions.finish_closing(key) else {
            return;
        };
        let mut completion = closing.completion;
        completion.warnings = closing.warnings;
        completion.state = if closing.failed {
            catalog::RecordingState::Failed
        } else if closing.reason == EndReason::Shutdown {
            // The call went on without us: what we hold is only part of it.
            catalog::RecordingState::Interrupted
        } else {
            catalog::RecordingState::Complete
        };
        info!(
            call_id = %closing.call_id,
            recording_id = %completion.recording_id,
            state = %completion.state,
            "recording complete"
        );
        self.gauges.calls.completed(
            RecordingMode::Siprec,
            completion.end_reason,
            completion.state.as_str(),
            Duration::from_millis(u64::try_from(completion.duration_ms).unwrap_or(0)),
        );
        // After the completion, so the catalog holds the final recording when it is announced.
        let notify = ArchiveCommand::Notify {
            recording_id: completion.recording_id.clone(),
            event: Event::of_final(completion.state),
            lock_id: None,
        };
        self.archive.push_back(ArchiveCommand::Complete(completion));
        self.archive.push_back(notify);
        self.publish_gauges();
    }
}

fn completion_of(position: i64, report: &LegReport) -> catalog::LegCompletion {
    catalog::LegCompletion {
        position,
        samples: i64::try_from(report.samples).unwrap_or(i64::MAX),
        sha256: report.sha256.clone(),
        error: report.error.clone(),
        counters: report.counters.clone(),
    }
}
