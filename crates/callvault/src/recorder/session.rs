//! What the recorder keeps per call: a session per SIPREC dialog, a slot per m-line, and the
//! call's one deadline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use callvault_media::{AllowedSources, LegId, LegReport};
use callvault_sip::{Dialog, Peer, Request, SessionTimer, TransactionKey};
use callvault_siprec::{Format, Metadata, RecordingOffer, Sdp};
use callvault_types::EndReason;
use time::OffsetDateTime;

use super::answer::Srtp;

/// An INVITE held for `answer_delay`, cancellable until answered.
pub(super) struct Pending {
    pub(super) key: TransactionKey,
    pub(super) request: Request,
    pub(super) from: Peer,
    pub(super) offer: RecordingOffer,
    /// When the INVITE came in: the call's setup time runs from here.
    pub(super) received_at: Instant,
    pub(super) answer_at: Instant,
}

pub(super) struct Session {
    pub(super) recording_id: String,
    pub(super) dialog: Dialog,
    /// Where the INVITE came from: our own requests (BYE) go back there.
    pub(super) peer: Peer,
    /// The latest offer and metadata: a metadata-only UPDATE is bound against this SDP.
    pub(super) sdp: Sdp,
    pub(super) metadata: Option<Metadata>,
    pub(super) timer: Option<SessionTimer>,
    /// One slot per m-line, in the offer's order; the index is the leg's catalog position.
    pub(super) legs: Vec<LegSlot>,
    /// Every file name this session has used: chosen once per leg, never rebuilt, so a stream
    /// added later can never be given the name of an earlier one.
    pub(super) file_names: Vec<String>,
    pub(super) sdp_session_id: u64,
    pub(super) sdp_version: u64,
    /// The 200 OK: offset 0 of every leg.
    pub(super) anchor: Instant,
    pub(super) started_at: OffsetDateTime,
    pub(super) rel_dir: PathBuf,
    pub(super) metadata_revisions: u32,
    /// Metadata documents received past `max_metadata_revisions` (answered, not stored).
    pub(super) revisions_dropped: u32,
    /// DTMF digits sent to the catalog so far: the next digit's sequence number.
    pub(super) dtmf_seq: i64,
    /// Since when every recorded stream has been on hold (a=inactive, c=0.0.0.0, port 0).
    pub(super) held_since: Option<Instant>,
    /// 2xx answers to INVITEs (the initial one, re-INVITEs) whose ACK has not come: CSeq and
    /// transaction.
    pub(super) unacked: Vec<(u32, TransactionKey)>,
    /// Problems to keep with the recording (a leg that failed).
    pub(super) warnings: Vec<String>,
    /// The deadline currently scheduled for this session, so it can be moved without leaving a
    /// stale entry behind.
    pub(super) scheduled: Option<Instant>,
    /// Paused now (silence, no digits), since when and by whom.
    pub(super) paused: Option<PauseState>,
    /// Earlier paused intervals (from, to) in ms on the legs' timeline: digits reported late
    /// that fall in one are not stored either.
    pub(super) pauses: Vec<(i64, i64)>,
    /// The next pause's sequence number (its catalog key).
    pub(super) pause_seq: i64,
}

/// A pause in progress.
#[derive(Debug, Clone)]
pub(super) struct PauseState {
    pub(super) seq: i64,
    pub(super) from_ms: i64,
    pub(super) by: String,
}

pub(super) enum LegSlot {
    Recording {
        leg: LegId,
        port: u16,
        label: String,
        codec: Format,
        telephone_event: Option<Format>,
        /// SDES-SRTP: the SRC's keying and our `a=crypto` line (the offer's tag, our key, kept
        /// across re-offers while the suite stays).
        srtp: Option<Box<Srtp>>,
        /// Where the leg's media may come from: the m-line's `c=` and port, the SIP peer. A
        /// re-offer with `c=0.0.0.0` (hold) or port 0 keeps the last ones: it allows nothing new.
        sources: AllowedSources,
        /// The client set the m-line's port to 0 (stream removed), or re-offered no codec we
        /// decode: answered port 0, silence since.
        removed: bool,
        /// a=inactive or c=0.0.0.0: recording silence.
        on_hold: bool,
        /// The media plane already closed this leg's file (it failed): no stop is owed.
        closed: Option<Box<LegReport>>,
    },
    /// An m-line we cannot record (video, DTLS-SRTP or no acceptable `a=crypto`, no codec):
    /// answered port 0 for the whole call.
    Declined,
}

/// Limits that end a call from our side.
#[derive(Clone, Copy, Debug)]
pub(super) struct CallLimits {
    pub(super) max_call_duration: Option<Duration>,
    pub(super) max_hold: Option<Duration>,
}

impl Session {
    /// The earliest instant at which this session must be looked at, and why.
    pub(super) fn next_deadline(&self, limits: &CallLimits) -> Option<(Instant, EndReason)> {
        let expiry = self
            .timer
            .as_ref()
            .map(|t| (t.deadline(), EndReason::SessionExpired));
        let duration = limits
            .max_call_duration
            .map(|max| (self.anchor + max, EndReason::MaxDuration));
        let hold = self
            .held_since
            .zip(limits.max_hold)
            .map(|(since, max)| (since + max, EndReason::MaxHold));
        [expiry, duration, hold]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at)
    }

    /// Recomputes `held_since` after the slots changed: set when every recorded stream is now on
    /// hold (kept if it already was), cleared as soon as one is active.
    pub(super) fn update_hold(&mut self, now: Instant) {
        let all_held = self.legs.iter().all(|slot| match slot {
            LegSlot::Recording {
                removed, on_hold, ..
            } => *removed || *on_hold,
            LegSlot::Declined => true,
        });
        self.held_since = match (all_held, self.held_since) {
            (true, Some(since)) => Some(since),
            (true, None) => Some(now),
            (false, _) => None,
        };
    }

    /// The media legs being recorded (not declined, not already closed by the media plane).
    pub(super) fn running_legs(&self) -> impl Iterator<Item = LegId> + '_ {
        self.legs.iter().filter_map(|slot| match slot {
            LegSlot::Recording {
                leg, closed: None, ..
            } => Some(*leg),
            _ => None,
        })
    }

    pub(super) fn slot_of(&mut self, leg: LegId) -> Option<(usize, &mut LegSlot)> {
        self.legs
            .iter_mut()
            .enumerate()
            .find(|(_, slot)| matches!(slot, LegSlot::Recording { leg: l, .. } if *l == leg))
    }

    pub(super) fn label_of(&self, leg: LegId) -> Option<&str> {
        self.legs.iter().find_map(|slot| match slot {
            LegSlot::Recording { leg: l, label, .. } if *l == leg => Some(label.as_str()),
            _ => None,
        })
    }
}
