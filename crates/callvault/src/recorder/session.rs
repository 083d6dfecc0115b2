//! What the recorder keeps per call: a session per SIPREC dialog, a slot per m-line.

use std::path::PathBuf;
use std::time::Instant;

use callvault_media::LegHandle;
use callvault_sip::{Dialog, Peer, Request, SessionTimer};
use callvault_siprec::{Format, Metadata, RecordingOffer, Sdp};
use time::OffsetDateTime;

pub(super) struct Pending {
    pub(super) request: Request,
    pub(super) from: Peer,
    pub(super) offer: RecordingOffer,
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
    pub(super) legs: Vec<LegSlot>,
    pub(super) sdp_session_id: u64,
    pub(super) sdp_version: u64,
    pub(super) anchor: Instant,
    pub(super) started_at: OffsetDateTime,
    pub(super) rel_dir: PathBuf,
    pub(super) metadata_revisions: u32,
    /// DTMF digits reported so far: the next digit's `seq` in the catalog.
    pub(super) dtmf_digits: i64,
}

impl Session {
    /// The catalog `seq` of the next digit (numbered here so a replayed write is recognised).
    pub(super) fn next_dtmf_seq(&mut self) -> i64 {
        let seq = self.dtmf_digits;
        self.dtmf_digits += 1;
        seq
    }
}

pub(super) enum LegSlot {
    Recording {
        handle: LegHandle,
        port: u16,
        label: String,
        codec: Format,
        telephone_event: Option<Format>,
        /// False once the client set the m-line's port to 0 (stream removed): silence since.
        removed: bool,
    },
    Declined,
}
