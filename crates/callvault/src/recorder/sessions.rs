//! [`Sessions`]: the recorder's one index of calls. Live sessions by key, with the ways events
//! find them (dialog, leg, unacknowledged INVITE), the sessions whose legs are closing, the
//! INVITEs held for `answer_delay`, and one deadline per session or held INVITE.
//!
//! Every map is updated here, in the same call that changes a session's life, so no index can
//! outlive its session: a deadline is moved, never added beside the old one (a session-timer
//! refresh replaces the entry), and removing a session removes its dialog, its INVITE
//! transactions and its deadline.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Instant;

use callvault_media::LegId;
use callvault_sip::{DialogId, TransactionKey};
use callvault_types::EndReason;

use super::session::{CallLimits, Pending, Session};

/// A session's handle inside the recorder: small, copyable, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct SessionKey(u64);

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Due {
    /// A live session's earliest limit (session timer, maximum duration, maximum hold).
    Session(SessionKey),
    /// An INVITE held for `answer_delay`.
    Answer(u64),
}

/// A session that ended: its legs are being closed by the media plane.
pub(super) struct Closing {
    /// Legs whose file is not closed yet.
    pub(super) waiting: Vec<LegId>,
    /// Filled in as the legs close; queued when the last one has.
    pub(super) completion: callvault_catalog::Completion,
    pub(super) call_id: String,
    pub(super) reason: EndReason,
    /// A leg failed or the session ended for a write failure.
    pub(super) failed: bool,
    pub(super) warnings: Vec<String>,
    /// Every recorded leg's position (its m-line index, the catalog key) and label.
    pub(super) legs: Vec<(LegId, i64, String)>,
    /// The next DTMF sequence number (the last press is reported as the leg stops).
    pub(super) dtmf_seq: i64,
    /// Paused intervals (from, to) in ms: a press reported as the legs stop that fell in one
    /// is not stored.
    pub(super) pauses: Vec<(i64, i64)>,
}

impl Closing {
    pub(super) fn label(&self, leg: LegId) -> String {
        self.legs
            .iter()
            .find(|(l, _, _)| *l == leg)
            .map(|(_, _, label)| label.clone())
            .unwrap_or_default()
    }

    pub(super) fn position(&self, leg: LegId) -> i64 {
        self.legs
            .iter()
            .find(|(l, _, _)| *l == leg)
            .map_or(-1, |(_, position, _)| *position)
    }
}

#[derive(Default)]
pub(super) struct Sessions {
    next: u64,
    live: HashMap<SessionKey, Session>,
    by_dialog: HashMap<DialogId, SessionKey>,
    /// INVITE transactions answered 2xx whose ACK has not come (Timer H names them).
    by_invite: HashMap<TransactionKey, SessionKey>,
    /// Every leg of a live or closing session, with its slot index.
    by_leg: HashMap<LegId, SessionKey>,
    closing: HashMap<SessionKey, Closing>,
    pending: HashMap<u64, Pending>,
    pending_by_transaction: HashMap<TransactionKey, u64>,
    deadlines: BTreeSet<(Instant, Due)>,
    /// Live and held calls per source address, for the per-source limit.
    by_source: HashMap<IpAddr, usize>,
    /// Live sessions by recording id (pause and resume name a recording).
    by_recording: HashMap<String, SessionKey>,
}

impl Sessions {
    fn next_key(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Live sessions plus INVITEs being held: what counts against `max_sessions`.
    pub(super) fn calls(&self) -> usize {
        self.live.len() + self.pending.len()
    }

    /// Live and held calls from `source`.
    pub(super) fn calls_from(&self, source: IpAddr) -> usize {
        self.by_source.get(&source).copied().unwrap_or(0)
    }

    fn count_source(&mut self, source: IpAddr) {
        *self.by_source.entry(source).or_insert(0) += 1;
    }

    fn uncount_source(&mut self, source: IpAddr) {
        if let Some(count) = self.by_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.by_source.remove(&source);
            }
        }
    }

    pub(super) fn live_len(&self) -> usize {
        self.live.len()
    }

    pub(super) fn closing_len(&self) -> usize {
        self.closing.len()
    }

    pub(super) fn keys(&self) -> Vec<SessionKey> {
        let mut keys: Vec<SessionKey> = self.live.keys().copied().collect();
        keys.sort();
        keys
    }

    /// Registers an answered session: its dialog, its legs, the INVITE awaiting its ACK and its
    /// deadline.
    pub(super) fn insert(
        &mut self,
        session: Session,
        invite: TransactionKey,
        limits: &CallLimits,
    ) -> SessionKey {
        let key = SessionKey(self.next_key());
        self.count_source(session.peer.addr.ip());
        self.by_recording.insert(session.recording_id.clone(), key);
        self.by_dialog.insert(session.dialog.id().clone(), key);
        for leg in session.running_legs() {
            self.by_leg.insert(leg, key);
        }
        self.by_invite.insert(invite, key);
        self.live.insert(key, session);
        self.reschedule(key, limits);
        key
    }

    pub(super) fn get(&self, key: SessionKey) -> Option<&Session> {
        self.live.get(&key)
    }

    pub(super) fn get_mut(&mut self, key: SessionKey) -> Option<&mut Session> {
        self.live.get_mut(&key)
    }

    /// The live session of a recording.
    pub(super) fn by_recording(&self, recording_id: &str) -> Option<SessionKey> {
        self.by_recording.get(recording_id).copied()
    }

    pub(super) fn by_dialog(&self, id: &DialogId) -> Option<SessionKey> {
        self.by_dialog.get(id).copied()
    }

    /// The session (live or closing) a leg belongs to.
    pub(super) fn by_leg(&self, leg: LegId) -> Option<SessionKey> {
        self.by_leg.get(&leg).copied()
    }

    pub(super) fn add_leg(&mut self, key: SessionKey, leg: LegId) {
        self.by_leg.insert(leg, key);
    }

    /// A 2xx to a re-INVITE of this session now waits for its ACK.
    pub(super) fn expect_ack(&mut self, key: SessionKey, cseq: u32, invite: TransactionKey) {
        if let Some(session) = self.live.get_mut(&key) {
            session.unacked.push((cseq, invite.clone()));
            self.by_invite.insert(invite, key);
        }
    }

    /// The ACK for the 2xx to the INVITE with this CSeq came.
    pub(super) fn acked(&mut self, key: SessionKey, cseq: u32) {
        if let Some(session) = self.live.get_mut(&key) {
            session.unacked.retain(|(number, invite)| {
                let keep = *number != cseq;
                if !keep {
                    self.by_invite.remove(invite);
                }
                keep
            });
        }
    }

    /// The session whose 2xx to this INVITE transaction was never acknowledged.
    pub(super) fn by_unacked_invite(&self, invite: &TransactionKey) -> Option<SessionKey> {
        self.by_invite.get(invite).copied()
    }

    /// Moves the session's deadline to what its state now says (or removes it).
    pub(super) fn reschedule(&mut self, key: SessionKey, limits: &CallLimits) {
        let Some(session) = self.live.get_mut(&key) else {
            return;
        };
        if let Some(old) = session.scheduled.take() {
            self.deadlines.remove(&(old, Due::Session(key)));
        }
        if let Some((at, _)) = session.next_deadline(limits) {
            session.scheduled = Some(at);
            self.deadlines.insert((at, Due::Session(key)));
        }
    }

    /// The earliest deadline, if any.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Takes the earliest deadline that is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Due> {
        let (at, due) = *self.deadlines.first()?;
        if at > now {
            return None;
        }
        self.deadlines.pop_first();
        if let Due::Session(key) = due
            && let Some(session) = self.live.get_mut(&key)
        {
            session.scheduled = None;
        }
        Some(due)
    }

    /// Why a session whose deadline came is due (or `None` if nothing is due after all, e.g.
    /// the limit moved); reschedules it when it is not ending.
    pub(super) fn due_reason(
        &mut self,
        key: SessionKey,
        now: Instant,
        limits: &CallLimits,
    ) -> Option<EndReason> {
        let session = self.live.get(&key)?;
        match session.next_deadline(limits) {
            Some((at, reason)) if at <= now => Some(reason),
            _ => {
                self.reschedule(key, limits);
                None
            }
        }
    }

    /// Takes a live session out: its dialog, INVITE transactions and deadline go with it; its
    /// legs stay findable until [`Sessions::finish_closing`] (their files are still closing).
    pub(super) fn remove(&mut self, key: SessionKey) -> Option<Session> {
        let mut session = self.live.remove(&key)?;
        self.uncount_source(session.peer.addr.ip());
        self.by_recording.remove(&session.recording_id);
        self.by_dialog.remove(session.dialog.id());
        for (_, invite) in session.unacked.drain(..) {
            self.by_invite.remove(&invite);
        }
        if let Some(at) = session.scheduled.take() {
            self.deadlines.remove(&(at, Due::Session(key)));
        }
        Some(session)
    }

    pub(super) fn start_closing(&mut self, key: SessionKey, closing: Closing) {
        self.closing.insert(key, closing);
    }

    pub(super) fn closing_mut(&mut self, key: SessionKey) -> Option<&mut Closing> {
        self.closing.get_mut(&key)
    }

    /// The session's last leg is closed: it is forgotten.
    pub(super) fn finish_closing(&mut self, key: SessionKey) -> Option<Closing> {
        let closing = self.closing.remove(&key)?;
        for (leg, _, _) in &closing.legs {
            self.by_leg.remove(leg);
        }
        Some(closing)
    }

    pub(super) fn hold(&mut self, pending: Pending) {
        let id = self.next_key();
        self.count_source(pending.from.addr.ip());
        self.deadlines.insert((pending.answer_at, Due::Answer(id)));
        self.pending_by_transaction.insert(pending.key.clone(), id);
        self.pending.insert(id, pending);
    }

    /// Takes a held INVITE whose answer is due.
    pub(super) fn take_held(&mut self, id: u64) -> Option<Pending> {
        let pending = self.pending.remove(&id)?;
        self.pending_by_transaction.remove(&pending.key);
        self.uncount_source(pending.from.addr.ip());
        Some(pending)
    }

    /// Takes a held INVITE by its transaction (CANCEL), removing its deadline.
    pub(super) fn cancel_held(&mut self, key: &TransactionKey) -> Option<Pending> {
        let id = self.pending_by_transaction.remove(key)?;
        let pending = self.pending.remove(&id)?;
        self.deadlines.remove(&(pending.answer_at, Due::Answer(id)));
        self.uncount_source(pending.from.addr.ip());
        Some(pending)
    }

    /// Every held INVITE (shutdown answers them 503).
    pub(super) fn drain_held(&mut self) -> Vec<Pending> {
        self.pending_by_transaction.clear();
        let held: Vec<(u64, Pending)> = self.pending.drain().collect();
        for (id, pending) in &held {
            self.deadlines
                .remove(&(pending.answer_at, Due::Answer(*id)));
        }
        held.into_iter().map(|(_, pending)| pending).collect()
    }

    /// Entries in the indexes, for tests that check nothing outlives its session.
    #[cfg(test)]
    pub(super) fn footprint(&self) -> usize {
        self.live.len()
            + self.by_dialog.len()
            + self.by_invite.len()
            + self.by_leg.len()
            + self.closing.len()
            + self.pending.len()
            + self.pending_by_transaction.len()
            + self.deadlines.len()
            + self.by_source.len()
            + self.by_recording.len()
    }
}
