//! RTP ingest for callvault: port pool, receive threads, per-stream pipeline, leg files.
//!
//! # Design note
//!
//! **Run loop.** [`MediaEngine::start`] spawns `receive_threads` std threads, one writer thread
//! and one closer thread. Each receive thread runs a tokio *current-thread* runtime with one task
//! per leg; the task owns the leg's sockets and its `stream::Stream` state (sequence tracker,
//! decoder, timeline), so no lock is taken per packet. Why tokio inside plain threads rather than
//! a hand-written `poll`/`recvmmsg` loop: a task per leg gives each stream its own readiness and
//! tick timer with no shared registry, the thread count stays fixed (the runtime never migrates a
//! task), and a later relay (pass-through recording) can `send_to` from the same task. The
//! control plane hands a leg to a thread by message (a tokio unbounded channel, the async
//! counterpart of a crossbeam channel: a thread parked in its runtime is woken by it) and talks to
//! a leg by message too (`update`, `stop`).
//!
//! **Events.** Everything the control plane hears comes on one unbounded channel per engine,
//! taken once with [`MediaEngine::events`]: a DTMF key press and an active leg gone silent (queued
//! on the leg's `stream::Stream`, sent by its task), a leg whose file failed
//! ([`MediaEvent::LegFailed`], sent by the writer the moment it sees the failure, while the leg
//! runs), and a leg's end ([`MediaEvent::LegClosed`] with its [`LegReport`], sent by the closer
//! once the file is synced and hashed: exactly one per started leg, however it ended, after the
//! leg's other events). Events are rare, so a channel send there costs nothing on the packet
//! path. Inactivity is checked on the leg's tick; RFC 4733 presses are assembled by the pure
//! [`dtmf::DtmfDetector`].
//!
//! **Rates.** A leg's WAV rate is its first codec's sample rate, fixed for the leg. RTP
//! timestamps count at the codec's clock rate, kept apart from the audio's sample rate
//! (G.722: 8000 / 16000); packet sizes come from what the decoder returns. Several payload types
//! may be live on a leg (a table from payload type to format, decoders per source); audio of a
//! codec with another sample rate goes through a band-limited sinc resampler (`resample`,
//! rubato) to the leg's, and is counted.
//!
//! **Sources and loss.** Every SSRC of a stream is a source of its own (`ssrc`): its sequence,
//! decoders, jitter and a lane of the timeline; the lanes are mixed sample by sample, so one
//! m-line carrying two parties unmixed records both. A gap in a source's sequence numbers is
//! concealed before its next packet is decoded (at most `stream::CONCEAL_LIMIT`, with the
//! codec's own concealment; [`MediaConfig::conceal_loss`]); DTX, comfort noise and hold are not.
//!
//! **Who owns time.** Nothing below the receive loop and the writer loop reads the clock. The
//! receive loop takes one `Instant` per received packet and one per tick (every 50 ms) and passes
//! it in; `timeline::Timeline` places audio from those instants and the RTP timestamps. The writer
//! loop passes the time to the writer's logic, which says when it must run next. So every timing
//! rule, the flush cadence included, is tested on synthetic instants.
//!
//! **No allocation per packet.** One datagram buffer per receive thread, as large as a UDP
//! datagram can be (64 KiB): a leg's task waits until its socket is readable, then receives into
//! the thread's buffer with `try_recv`, and never holds it across an await. No datagram is cut,
//! and a call costs no receive buffer. The decode buffer (120 ms at 48 kHz) and the timeline's
//! ring are allocated once per leg; committed audio is copied into blocks taken from a per-thread
//! pool that the writer refills by sending emptied blocks back.
//!
//! **Disk.** Leg files are our own WAV writer's (`wav`: created with `create_new`, never
//! truncated; RF64 past 4 GiB; header rewritten in place; cut at the last whole sample on a write
//! error). The writer thread writes each block as it arrives, with one positioned write, and
//! rewrites a file's header at most once per 50 ms, when data came since. At a leg's close it
//! writes the final header and hands the file to the closer thread, which syncs (`sync_data`) and
//! hashes it: reading a long file back never holds up the other legs' writes. The data queue is
//! bounded (`writer_queue_blocks`): when it is full a receive thread drops the block instead of
//! waiting, counts it (per leg and in [`MediaStats`]) and warns at most every 10 s per leg; the
//! writer writes silence in its place so the file keeps its timeline. A file that fails is cut at
//! its last whole sample with a valid header; that leg's later blocks are discarded and counted;
//! the other legs go on.
//!
//! **What `kill -9` loses.** Audio reaches a file's header in steps, each bounded:
//! 1. the jitter window (200 ms by default) holds audio open for reordered packets, and is
//!    committed on the leg's 50 ms tick: up to 250 ms of received audio is not committed yet;
//! 2. committed audio waits in the leg's block until the block is full or, on the second tick
//!    after its first samples, its oldest sample has waited 100 ms: a block carries up to three
//!    ticks (150 ms) of audio, and up to 100 ms waits for the next one;
//! 3. the writer writes a block as it arrives (its queue is empty unless the disk is behind);
//! 4. the header counts a block at most 50 ms (the header period) after it is written.
//!
//! Just before the header counts a block, the file as its header says lacks that block (150 ms),
//! the jitter window (250 ms) and nothing more (the next block has not begun: it starts on the
//! tick after the send). So a file read as left lacks at most 250 + 150 = 400 ms of what arrived
//! before the kill (plus any scheduling delay), and at most 350 ms once [`repair`] has counted
//! the data on disk (the control plane runs it at start on the files of recordings left active).
//! Measured (`tests/crash.rs`, 20 legs killed after 5 s): medians of about 320 ms as left and
//! 300 ms after repair, maxima about 410 and 370 ms. A header is rewritten only when data came
//! since, so the short period costs at most one 80-byte positioned write per block (about 7 per
//! second per leg at 8 kHz, plus 7 data writes); it only caps the rate when blocks come faster.
//!
//! **SRTP.** A leg with [`LegSpec::srtp`] authenticates, checks against replay and decrypts
//! every RTP packet in place, in the thread's datagram buffer, before the sequence tracker and
//! the timeline (`srtp`, which also says why it is built on RustCrypto primitives rather than
//! `webrtc-srtp` or libsrtp): a forged, tampered or replayed packet is counted and dropped and
//! never becomes audio, a DTMF digit, or a reason to think the leg is alive. SRTCP is
//! authenticated and counted. No allocation per packet here either. The refusals are also added
//! to the engine's totals ([`MediaStats::srtp_auth_failures`] and the like, for `/metrics`) on
//! the leg's tick and at its end, never per packet.
//!
//! **Media bound to its source.** With [`MediaConfig::bind_to_source`] (the default) a leg
//! takes datagrams only from the IP addresses of its [`LegSpec::sources`] (the m-line's `c=`
//! and the SIP peer's), and on each of its two ports only from the first source (IP and port)
//! seen from them (`source`: latching, as symmetric RTP does behind NAT). Anything else is
//! counted in [`LegCounters::foreign_packets`] and dropped first, before SRTP, the sequence
//! tracker and the timeline: it never becomes audio, a digit, or a sign of life. A
//! [`LegUpdate`] with another address or port re-arms the latch. The source comes with each
//! datagram (`recvfrom`); the check compares a few fixed-size addresses in the stream's state.
//! The drops are added to [`MediaStats::foreign_packets`] on the tick and at the leg's end,
//! and logged at most once a minute per leg.
//!
//! **Errors vs bugs.** Bad packets are counted in the [`LegCounters`], never returned or logged
//! per packet. [`Error`] is for the caller's requests (no port, bad path, engine gone) and for
//! file failures, which reach the control plane as text in events. `expect` marks internal
//! invariants only.

mod codec;
pub mod dtmf;
mod engine;
mod error;
mod port;
mod receive;
mod resample;
pub mod rtp;
mod sequence;
mod source;
mod srtp;
mod ssrc;
mod stream;
#[cfg(test)]
mod test_signal;
mod timeline;
mod totals;
mod wav;
mod writer;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

pub use codec::{AudioFormat, Codec, CodecKind};
pub use engine::{LegHandle, MediaEngine};
pub use error::{Error, Result};
pub use port::PortReservation;
pub use source::AllowedSources;
pub use totals::{CODEC_NAMES, CodecCount, DISK_WRITE_BUCKETS, HistogramSnapshot};
pub use wav::{Repaired, repair};

/// The counters of a leg ([`LegReport::counters`]), defined once for every crate.
pub use callvault_types::{LegCounters, SourceCounters};
/// SRTP keying of a leg ([`LegSpec::srtp`]), defined once for the SDP layer and this crate.
pub use callvault_types::{Mki, SrtpKeying, SrtpSuite};

/// Settings of the media engine.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Address the RTP sockets bind to (the address put in the SDP answer, or the wildcard).
    pub bind_ip: IpAddr,
    /// Lowest port of the RTP range (RTP on even ports, RTCP on the next odd one).
    pub port_min: u16,
    /// Highest port of the range, inclusive.
    pub port_max: u16,
    /// Receive threads; legs are spread over them round-robin.
    pub receive_threads: usize,
    /// Leg paths are relative to this directory.
    pub data_dir: PathBuf,
    /// How long audio stays open for reordered packets before it is committed.
    pub jitter_window: Duration,
    /// Blocks (4096 samples, 8 KiB each) the writer queue holds before receive threads start
    /// dropping: the memory bound of a disk that falls behind.
    pub writer_queue_blocks: usize,
    /// Media bound to its source: a leg takes RTP and RTCP only from its [`LegSpec::sources`],
    /// one source per port once seen; packets from anywhere else are counted
    /// ([`LegCounters::foreign_packets`]) and dropped. False: any source is recorded (exotic NAT
    /// set-ups where media comes from an address neither the SDP nor the SIP peer gives).
    pub bind_to_source: bool,
    /// Conceal lost packets: a gap between two packets of one source (a sequence gap, not
    /// DTX, comfort noise, events or hold) is filled, for at most 60 ms, by the codec's own
    /// concealment (Opus FEC/PLC, G.729 erasure concealment) or waveform repetition (G.711,
    /// G.722, L16), counted in [`LegCounters::concealed_ms`]. False: losses stay silence, the
    /// raw evidence.
    pub conceal_loss: bool,
}

impl MediaConfig {
    /// A configuration with the default tuning: 2 receive threads, 200 ms jitter window, a
    /// 4096-block (32 MiB) writer queue, media bound to its source.
    pub fn new(bind_ip: IpAddr, port_min: u16, port_max: u16, data_dir: PathBuf) -> MediaConfig {
        MediaConfig {
            bind_ip,
            port_min,
            port_max,
            data_dir,
            ..MediaConfig::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.receive_threads == 0 {
            return Err(Error::InvalidConfig("receive_threads must be at least 1"));
        }
        if self.writer_queue_blocks == 0 {
            return Err(Error::InvalidConfig(
                "writer_queue_blocks must be at least 1",
            ));
        }
        if self.port_min > self.port_max {
            return Err(Error::InvalidConfig("port_min is above port_max"));
        }
        if self.jitter_window > Duration::from_secs(5) {
            return Err(Error::InvalidConfig("jitter_window above 5 s"));
        }
        Ok(())
    }
}

impl Default for MediaConfig {
    fn default() -> MediaConfig {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port_min: 20000,
            port_max: 29999,
            receive_threads: 2,
            data_dir: PathBuf::from("."),
            jitter_window: Duration::from_millis(200),
            writer_queue_blocks: 4096,
            bind_to_source: true,
            conceal_loss: true,
        }
    }
}

/// What to record on a reserved port. [`LegSpec::new`] fills in the defaults of the optional
/// fields.
#[derive(Clone, Debug)]
pub struct LegSpec {
    /// The stream's label (SDP `a=label`), for logs and the report.
    pub label: String,
    /// File path relative to the data directory, e.g. `recordings/2026/11/30/<id>/<label>.wav`.
    pub path: PathBuf,
    /// Payload type of the audio codec.
    pub payload_type: u8,
    /// The negotiated codec: its sample rate is the WAV's for the whole leg.
    pub codec: Codec,
    /// Further audio payload types the sender may switch to without a re-INVITE (several codecs
    /// in the answer). Audio of another sample rate is resampled to the leg's rate.
    pub other_formats: Vec<AudioFormat>,
    /// Payload type of RFC 4733 telephone-event, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Clock rate of telephone-event (its `a=rtpmap`), 8000 almost always.
    pub telephone_event_clock: u32,
    /// False: telephone-events are counted as packets but neither detected nor reported (some
    /// deployments must not keep card digits).
    pub capture_dtmf: bool,
    /// An active leg without any RTP for this long sends one [`MediaEvent::Inactive`]; `None`:
    /// never.
    pub inactivity_timeout: Option<Duration>,
    /// The instant the session was answered: offset 0 of the WAV.
    pub anchor: Instant,
    /// False when offered inactive or with `c=0.0.0.0`: silence is recorded.
    pub active: bool,
    /// SDES-SRTP: the key the SRC protects what it sends us with (its offer's `a=crypto`).
    /// Every packet is then authenticated and decrypted before anything else reads it; one that
    /// fails is counted ([`LegCounters::srtp_auth_failures`], [`LegCounters::srtp_replayed`])
    /// and dropped. `None`: plain RTP.
    pub srtp: Option<SrtpKeying>,
    /// A relayed leg (pass-through): the key what it forwards is protected with (callvault's own
    /// `a=crypto` toward the other side). `None`: forwarded as plain RTP (after decryption when
    /// [`LegSpec::srtp`] is set). With SRTP on either side RTCP is not forwarded (SRTCP is
    /// authenticated, never decrypted). Unused by legs that are not relayed.
    pub srtp_forward: Option<SrtpKeying>,
    /// False: nothing is written (a relayed leg on a route that does not record); `path` names
    /// no file and the leg's report has no hash. True for every leg [`LegSpec::new`] makes.
    pub record: bool,
    /// Where the leg's media may come from (see [`MediaConfig::bind_to_source`]).
    /// [`LegSpec::new`] knows no address: such a leg, bound to its source, records nothing.
    pub sources: AllowedSources,
    /// The call the leg belongs to: every warning and error the leg logs names it, so an
    /// operator finds a media failure from the call (and the call's media failures).
    pub call: CallIds,
}

/// A call's Call-ID and recording id, as the leg's log lines carry them (`call_id`,
/// `recording_id`). Shared, not copied: cloned once per leg, read only when something is logged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallIds {
    pub call_id: Arc<str>,
    pub recording_id: Arc<str>,
}

impl CallIds {
    pub fn new(call_id: &str, recording_id: &str) -> CallIds {
        CallIds {
            call_id: Arc::from(call_id),
            recording_id: Arc::from(recording_id),
        }
    }
}

impl LegSpec {
    /// An active leg with one codec, no telephone-event, DTMF capture on (it applies once a
    /// telephone-event payload type is set), 8000 Hz event clock, no inactivity timeout.
    pub fn new(
        label: impl Into<String>,
        path: impl Into<PathBuf>,
        payload_type: u8,
        codec: Codec,
        anchor: Instant,
    ) -> LegSpec {
        LegSpec {
            label: label.into(),
            path: path.into(),
            payload_type,
            codec,
            other_formats: Vec::new(),
            telephone_event_pt: None,
            telephone_event_clock: DEFAULT_TELEPHONE_EVENT_CLOCK,
            capture_dtmf: true,
            inactivity_timeout: None,
            anchor,
            active: true,
            srtp: None,
            srtp_forward: None,
            record: true,
            sources: AllowedSources::default(),
            call: CallIds::default(),
        }
    }
}

/// The clock rate of telephone-event when the SDP says nothing else.
pub const DEFAULT_TELEPHONE_EVENT_CLOCK: u32 = 8000;

/// A re-INVITE's new parameters for a leg. [`LegUpdate::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct LegUpdate {
    pub payload_type: u8,
    /// May have another sample rate than the leg's: its audio is then resampled (counted in
    /// [`LegCounters::resampled_packets`]).
    pub codec: Codec,
    /// As [`LegSpec::other_formats`].
    pub other_formats: Vec<AudioFormat>,
    pub telephone_event_pt: Option<u8>,
    /// As [`LegSpec::telephone_event_clock`].
    pub telephone_event_clock: u32,
    /// False on hold (`a=inactive`, `c=0.0.0.0`, pause): the leg keeps growing with silence.
    pub active: bool,
    /// The SRC's SRTP keying from this re-offer on (as [`LegSpec::srtp`]). The same key keeps
    /// the leg's SRTP state (rollover counters, replay windows); a new one applies at once,
    /// and packets still arriving under the old one are accepted for a moment (a re-key).
    pub srtp: Option<SrtpKeying>,
    /// As [`LegSpec::srtp_forward`], from this re-offer on (the same key keeps its counters).
    pub srtp_forward: Option<SrtpKeying>,
    /// Where the leg's media may come from from now on (as [`LegSpec::sources`]). Always the
    /// leg's current ones: a change of address or port re-arms the latch on the new address,
    /// the same again keeps the source latched. [`LegUpdate::new`] knows no address.
    pub sources: AllowedSources,
}

impl LegUpdate {
    /// One codec, no telephone-event, 8000 Hz event clock.
    pub fn new(payload_type: u8, codec: Codec, active: bool) -> LegUpdate {
        LegUpdate {
            payload_type,
            codec,
            other_formats: Vec::new(),
            telephone_event_pt: None,
            telephone_event_clock: DEFAULT_TELEPHONE_EVENT_CLOCK,
            active,
            srtp: None,
            srtp_forward: None,
            sources: AllowedSources::default(),
        }
    }
}

/// Identifies a leg in [`MediaEvent`]s; [`LegHandle::id`] returns it. Unique per engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(u64);

impl LegId {
    /// A leg id from its number. The engine numbers its own legs; this is for the control
    /// plane's tests, whose fake media plane must name legs too.
    pub fn new(number: u64) -> LegId {
        LegId(number)
    }

    /// The number the id was made from.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "leg-{}", self.0)
    }
}

/// What the media plane tells the control plane, on [`MediaEngine::events`]. Sent once per
/// key press, per silence, per failed file and per closed leg; never per packet.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum MediaEvent {
    /// One RFC 4733 key press, sent when it ends (end bit, a newer event, 1 s without event
    /// packets, or the leg stopping).
    Dtmf {
        leg: LegId,
        /// `0`-`9`, `*`, `#`, `A`-`D`, or `!` for flash (event 16).
        digit: char,
        /// From the leg's anchor to the start of the press, on the leg's timeline (where it lies
        /// in the WAV).
        offset_ms: u64,
        /// The press's duration field (the last one received when its end was lost).
        duration_ms: u64,
    },
    /// An active leg received no RTP for [`LegSpec::inactivity_timeout`]. Sent once; armed
    /// again when packets resume. Held legs never send it.
    Inactive { leg: LegId, silent_for: Duration },
    /// The leg's file failed (it could not be created, written, or its header rewritten): it is
    /// cut at its last whole sample with a valid header and nothing more is written to it; the
    /// leg's later audio is discarded (counted in [`LegCounters::blocks_discarded`]). Sent once,
    /// as soon as the writer sees the failure, while the leg may still be running; the leg's
    /// [`MediaEvent::LegClosed`] follows when it is stopped, with the same error.
    LegFailed { leg: LegId, error: String },
    /// The leg ended and its file is closed, synced and hashed. Exactly one per leg that
    /// [`MediaEngine::start_leg`] started, however it ended (stopped, handle dropped, engine shut
    /// down, file failed), and after every other event of the leg.
    LegClosed { leg: LegId, report: Box<LegReport> },
}

/// What a leg recorded, in [`MediaEvent::LegClosed`]: the file's facts and the leg's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LegReport {
    pub label: String,
    /// Path of the file: `data_dir` joined with the leg path.
    pub path: PathBuf,
    /// Samples in the file, as its header says.
    pub samples: u64,
    pub sample_rate: u32,
    /// Hex SHA-256 of the file as closed, also after a write failure (the file then holds the
    /// audio up to the failure); `None` when there is no file (it could not be created) or it
    /// could not be read back.
    pub sha256: Option<String>,
    /// Why the file is missing or incomplete.
    pub error: Option<String>,
    /// What the leg counted, handed to the catalog unchanged. `truncated` stays 0: the receive
    /// buffer holds the largest UDP datagram.
    pub counters: LegCounters,
}

/// A snapshot of the engine's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaStats {
    /// Legs started and not yet closed (their `LegClosed` not yet sent).
    pub active_legs: u64,
    pub legs_started: u64,
    pub legs_finished: u64,
    pub ports_in_use: usize,
    pub ports_free: usize,
    /// Blocks waiting in the writer queue.
    pub writer_backlog: usize,
    pub writer_capacity: usize,
    pub blocks_written: u64,
    /// Blocks dropped because the writer queue was full (alarm on any increase).
    pub blocks_dropped: u64,
    /// Files that could not be created, written or hashed.
    pub write_errors: u64,
    /// SRTP packets of every leg that failed authentication, and those refused as replays
    /// ([`LegCounters::srtp_auth_failures`], [`LegCounters::srtp_replayed`]); SRTCP packets
    /// that failed authentication. Added up on each leg's tick (50 ms) and at its end.
    pub srtp_auth_failures: u64,
    pub srtp_replayed: u64,
    pub srtcp_auth_failures: u64,
    /// RTP and RTCP packets of every leg from a source it is not bound to
    /// ([`LegCounters::foreign_packets`]), added up like the SRTP refusals.
    pub foreign_packets: u64,
    /// Legs started and RTP packets received per codec (the leg's negotiated codec), in the
    /// order of [`CODEC_NAMES`]; packets added up on each leg's tick and at its end.
    pub codecs: [CodecCount; CODEC_NAMES.len()],
    /// How long the writer thread took for each block write and each header pass.
    pub disk_writes: HistogramSnapshot,
}

/// Counters shared by the engine's threads: updated per block, per leg tick or per leg, never
/// per packet.
#[derive(Debug, Default)]
pub(crate) struct SharedStats {
    pub(crate) active_legs: AtomicU64,
    pub(crate) legs_started: AtomicU64,
    pub(crate) legs_finished: AtomicU64,
    pub(crate) blocks_written: AtomicU64,
    pub(crate) blocks_dropped: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) srtp_auth_failures: AtomicU64,
    pub(crate) srtp_replayed: AtomicU64,
    pub(crate) srtcp_auth_failures: AtomicU64,
    pub(crate) foreign_packets: AtomicU64,
    pub(crate) codecs: totals::CodecTotals,
    pub(crate) disk_writes: totals::AtomicHistogram,
}
