//! The writer thread, which owns every open leg file, and the closer thread, which syncs and
//! hashes closed ones.
//!
//! Two channels feed the writer. Control (`Open`, `Close`) is unbounded — one message per leg
//! event, never dropped. Data (`Block`) is bounded: when the disk falls behind, receive threads
//! drop blocks instead of waiting or growing memory, and the writer fills what is missing with
//! silence so the file keeps its timeline. Because the two channels are not ordered with each
//! other, `Close` carries how many blocks were sent, and a close waits until they have all arrived.
//!
//! **Cadence.** Each block is written as it arrives, with one positioned write. A file's header
//! is rewritten at most once per [`HEADER_PERIOD`], and only when data came since: the first write
//! that leaves a header stale schedules a pass [`HEADER_PERIOD`] later, and the pass rewrites the
//! header of every stale file. So a header never lags its data by more than one period, and the
//! disk sees one data write per block plus at most one header write per file per period — no
//! storm of small writes however many legs there are.
//!
//! **Failures.** A file that cannot be created, written or have its header rewritten is cut at
//! its last whole sample with a valid header ([`WavFile`] does it), [`MediaEvent::LegFailed`] is
//! sent at once, and the leg's later blocks are discarded and counted. Other legs go on.
//!
//! **Closing.** At a leg's close the writer writes the final header and hands the open file to
//! the closer thread, which calls `sync_data`, hashes the file and sends
//! [`MediaEvent::LegClosed`]. Syncing and hashing read or wait on the whole file (seconds for a
//! long recording): on their own thread they never hold up the blocks of the other legs.
//!
//! The writer's logic takes the time as an input (`handle_*(now, …)`, `poll_timeout`), so the
//! cadence is tested on synthetic instants; [`run`] is the thin loop around it.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use tokio::sync::mpsc;

use crate::error::{Error, chain};
use crate::wav::{self, WavFile};
use crate::{CallIds, LegCounters, LegId, LegReport, MediaEvent, SharedStats};

/// The longest a file's header lags the data on disk, and the shortest time between two header
/// rewrites of one file. See the crate's design note for how it adds up to the loss of a crash.
pub(crate) const HEADER_PERIOD: Duration = Duration::from_millis(50);
/// Bytes of zeros kept to write silence in place of dropped blocks.
const SILENCE_BYTES: usize = 16 * 1024;

pub(crate) enum WriterControl {
    Open {
        leg: LegId,
        /// For the leg's log lines.
        call: CallIds,
        label: String,
        path: PathBuf,
        sample_rate: u32,
        /// False: a relay-only leg (a pass-through route with `record = false`): no file is
        /// created and its blocks are dropped; its close reports its counters all the same.
        record: bool,
    },
    Close {
        leg: LegId,
        blocks_sent: u64,
        /// `None` when the leg's receive task ended abnormally (a bug) and lost them.
        counters: Option<Box<LegCounters>>,
    },
}

/// Committed samples of one leg, starting at sample `start` of the file.
pub(crate) struct Block {
    pub(crate) leg: LegId,
    /// Receive thread whose pool the buffer goes back to.
    pub(crate) thread: usize,
    pub(crate) start: u64,
    pub(crate) samples: Vec<i16>,
}

/// A closed leg for the closer thread.
pub(crate) struct Closed {
    leg: LegId,
    call: CallIds,
    /// The file, still open, to sync and hash; `None` when it was never created.
    file: Option<File>,
    report: Box<LegReport>,
}

enum FileState {
    Writing(WavFile),
    /// Nothing more is written. `file` is the file as cut (to sync and hash at close), `None`
    /// when it could not be created; `samples` what it holds.
    Failed {
        file: Option<File>,
        samples: u64,
        error: String,
    },
    /// A relay-only leg: no file, nothing written.
    Discarding,
}

struct LegFile {
    call: CallIds,
    label: String,
    path: PathBuf,
    sample_rate: u32,
    state: FileState,
    blocks_received: u64,
    blocks_discarded: u64,
    silence_filled: u64,
    /// On the writer's list of files with a stale header.
    listed_stale: bool,
    pending_close: Option<PendingClose>,
}

struct PendingClose {
    blocks_sent: u64,
    counters: Option<Box<LegCounters>>,
}

pub(crate) struct Writer {
    files: HashMap<LegId, LegFile>,
    /// Empty buffers back to each receive thread's pool.
    recycle: Vec<Sender<Vec<i16>>>,
    stats: Arc<SharedStats>,
    events: mpsc::UnboundedSender<MediaEvent>,
    closer: Sender<Closed>,
    max_riff_size: u64,
    /// Files written since their header was; the next header pass goes through them.
    stale: Vec<LegId>,
    /// When the next header pass is due; `None` while no header is stale.
    header_pass: Option<Instant>,
    /// Samples → little-endian bytes, reused for every block.
    bytes: Vec<u8>,
    zeros: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(
        recycle: Vec<Sender<Vec<i16>>>,
        stats: Arc<SharedStats>,
        events: mpsc::UnboundedSender<MediaEvent>,
        closer: Sender<Closed>,
        max_riff_size: u64,
    ) -> Writer {
        Writer {
            files: HashMap::new(),
            recycle,
            stats,
            events,
            closer,
            max_riff_size,
            stale: Vec::new(),
            header_pass: None,
            bytes: Vec::new(),
            zeros: vec![0; SILENCE_BYTES],
        }
    }

    fn knows(&self, leg: LegId) -> bool {
        self.files.contains_key(&leg)
    }

    /// When [`Writer::handle_timeout`] must run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.header_pass
    }

    /// The header pass: every stale header is rewritten.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.header_pass.is_none_or(|due| now < due) {
            return;
        }
        self.header_pass = None;
        let started = Instant::now();
        let stale = std::mem::take(&mut self.stale);
        for leg in &stale {
            let Some(file) = self.files.get_mut(leg) else {
                continue;
            };
            file.listed_stale = false;
            if let FileState::Writing(wav) = &mut file.state
                && wav.header_is_stale()
                && let Err(error) = wav.write_header()
            {
                self.fail(*leg, error);
            }
        }
        // The list's allocation is kept for the next period.
        self.stale = stale;
        self.stale.clear();
        self.stats.disk_writes.observe(started.elapsed());
    }

    pub(crate) fn handle_control(&mut self, message: WriterControl) {
        match message {
            WriterControl::Open {
                leg,
                call,
                label,
                path,
                sample_rate,
                record,
            } => {
                let created = if record {
                    WavFile::create(&path, sample_rate, self.max_riff_size).map(FileState::Writing)
                } else {
                    Ok(FileState::Discarding)
                };
                let (state, failure) = match created {
                    Ok(state) => (state, None),
                    Err(error) => {
                        let error = chain(&error);
                        let state = FileState::Failed {
                            file: None,
                            samples: 0,
                            error: error.clone(),
                        };
                        (state, Some(error))
                    }
                };
                self.files.insert(
                    leg,
                    LegFile {
                        call,
                        label,
                        path,
                        sample_rate,
                        state,
                        blocks_received: 0,
                        blocks_discarded: 0,
                        silence_filled: 0,
                        listed_stale: false,
                        pending_close: None,
                    },
                );
                if let Some(error) = failure {
                    self.announce_failure(leg, error);
                }
            }
            WriterControl::Close {
                leg,
                blocks_sent,
                counters,
            } => {
                let Some(file) = self.files.get_mut(&leg) else {
                    tracing::error!(%leg, "close for a leg the writer never opened");
                    return;
                };
                file.pending_close = Some(PendingClose {
                    blocks_sent,
                    counters,
                });
                self.finish_if_complete(leg);
            }
        }
    }

    pub(crate) fn handle_block(&mut self, now: Instant, block: Block) {
        let leg = block.leg;
        let mut failure = None;
        match self.files.get_mut(&leg) {
            Some(file) => {
                file.blocks_received += 1;
                match &mut file.state {
                    FileState::Writing(wav) => {
                        // Blocks dropped upstream leave a hole: silence keeps the rest in place.
                        let missing = block.start.saturating_sub(wav.samples());
                        // The disk's latency as `/metrics` shows it: the real clock around the
                        // write itself (the cadence above runs on `now`, an input).
                        let started = Instant::now();
                        let written = wav
                            .append_silence(missing, &self.zeros)
                            .and_then(|()| wav.append(&block.samples, &mut self.bytes));
                        self.stats.disk_writes.observe(started.elapsed());
                        match written {
                            Ok(()) => {
                                file.silence_filled += missing;
                                self.stats.blocks_written.fetch_add(1, Ordering::Relaxed);
                                if !file.listed_stale {
                                    file.listed_stale = true;
                                    self.stale.push(leg);
                                }
                                self.header_pass.get_or_insert(now + HEADER_PERIOD);
                            }
                            Err(error) => failure = Some(error),
                        }
                    }
                    FileState::Failed { .. } => file.blocks_discarded += 1,
                    FileState::Discarding => {}
                }
            }
            None => tracing::error!(%leg, "block for a leg the writer never opened"),
        }
        if let Some(error) = failure {
            self.fail(leg, error);
        }
        if let Some(pool) = self.recycle.get(block.thread) {
            // A full pool means the thread has buffers to spare: this one is freed instead.
            let _ = pool.try_send(block.samples);
        }
        self.finish_if_complete(leg);
    }

    /// The leg's file failed: nothing more is written to it (the [`WavFile`] has cut it at its
    /// last whole sample), and the control plane hears of it now.
    fn fail(&mut self, leg: LegId, error: Error) {
        let Some(file) = self.files.get_mut(&leg) else {
            return;
        };
        let error = chain(&error);
        let placeholder = FileState::Failed {
            file: None,
            samples: 0,
            error: error.clone(),
        };
        file.state = match std::mem::replace(&mut file.state, placeholder) {
            FileState::Writing(wav) => FileState::Failed {
                samples: wav.samples(),
                file: Some(wav.into_file()),
                error: error.clone(),
            },
            failed @ FileState::Failed { .. } => failed,
            FileState::Discarding => FileState::Discarding,
        };
        self.announce_failure(leg, error);
    }

    fn announce_failure(&self, leg: LegId, error: String) {
        let file = self.files.get(&leg);
        let path = file.map(|file| file.path.display().to_string());
        let call = file.map(|file| &file.call);
        tracing::error!(
            call_id = call.map(|call| &*call.call_id),
            recording_id = call.map(|call| &*call.recording_id),
            %leg,
            path = path.as_deref(),
            %error,
            "leg file failed"
        );
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        let _ = self.events.send(MediaEvent::LegFailed { leg, error });
    }

    fn finish_if_complete(&mut self, leg: LegId) {
        let complete = self.files.get(&leg).is_some_and(|file| {
            file.pending_close
                .as_ref()
                .is_some_and(|close| file.blocks_received >= close.blocks_sent)
        });
        if complete && let Some(mut file) = self.files.remove(&leg) {
            let pending = file.pending_close.take().expect("checked just above");
            self.finish(leg, file, pending);
        }
    }

    fn finish(&mut self, leg: LegId, file: LegFile, pending: PendingClose) {
        if file.blocks_received < pending.blocks_sent {
            tracing::warn!(
                call_id = %file.call.call_id,
                recording_id = %file.call.recording_id,
                path = %file.path.display(),
                missing = pending.blocks_sent - file.blocks_received,
                "leg closed before all its blocks reached the writer"
            );
        }
        let abnormal = pending.counters.is_none();
        let mut counters = pending.counters.map(|c| *c).unwrap_or_default();
        counters.silence_filled = file.silence_filled;
        counters.blocks_discarded = file.blocks_discarded;
        let mut report = LegReport {
            label: file.label,
            path: file.path,
            sample_rate: file.sample_rate,
            counters,
            ..LegReport::default()
        };
        if abnormal {
            report.error =
                Some("the leg's receive task ended abnormally; its counters are lost".to_owned());
        }
        let handle = match file.state {
            FileState::Writing(wav) => {
                report.samples = wav.samples();
                let (handle, result) = wav.finish();
                if let Err(error) = result {
                    // The header could not be brought up to date: the leg failed at its end.
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    let error = chain(&error);
                    let _ = self.events.send(MediaEvent::LegFailed {
                        leg,
                        error: error.clone(),
                    });
                    report.error = Some(error);
                }
                Some(handle)
            }
            FileState::Failed {
                file,
                samples,
                error,
            } => {
                report.samples = samples;
                report.error = Some(error);
                file
            }
            FileState::Discarding => None,
        };
        let closed = Closed {
            leg,
            call: file.call,
            file: handle,
            report: Box::new(report),
        };
        if let Err(unsent) = self.closer.send(closed) {
            let call = &unsent.0.call;
            tracing::error!(
                call_id = %call.call_id,
                recording_id = %call.recording_id,
                %leg,
                "closer thread is gone; leg not reported"
            );
        }
    }

    /// Every sender is gone: every block ever sent has been handled. Closes what remains
    /// (legs whose receive task never sent its close: it cannot happen in a clean shutdown).
    fn close_all(&mut self) {
        let legs: Vec<LegId> = self.files.keys().copied().collect();
        for leg in legs {
            if let Some(mut file) = self.files.remove(&leg) {
                let pending = file.pending_close.take().unwrap_or(PendingClose {
                    blocks_sent: 0,
                    counters: None,
                });
                self.finish(leg, file, pending);
            }
        }
    }
}

/// The writer thread's loop: runs until every sender of both channels is gone, then closes
/// what is still open.
pub(crate) fn run(mut writer: Writer, control: Receiver<WriterControl>, data: Receiver<Block>) {
    let mut control_rx = control.clone();
    let mut data_rx = data;
    let mut control_open = true;
    let mut data_open = true;
    while control_open || data_open {
        let timeout = writer
            .poll_timeout()
            .map_or(Duration::from_secs(3600), |due| {
                due.saturating_duration_since(Instant::now())
            });
        select! {
            recv(control_rx) -> message => match message {
                Ok(message) => writer.handle_control(message),
                Err(_) => {
                    control_open = false;
                    control_rx = crossbeam_channel::never();
                }
            },
            recv(data_rx) -> block => match block {
                Ok(block) => {
                    if !writer.knows(block.leg) {
                        // The Open was sent before any block but on the other channel: take it now.
                        while let Ok(message) = control.try_recv() {
                            writer.handle_control(message);
                        }
                    }
                    writer.handle_block(Instant::now(), block);
                }
                Err(_) => {
                    data_open = false;
                    data_rx = crossbeam_channel::never();
                }
            },
            default(timeout) => {}
        }
        writer.handle_timeout(Instant::now());
    }
    writer.close_all();
}

/// The closer thread's loop: syncs, hashes and reports each closed leg, in the order closed.
pub(crate) fn run_closer(
    closed: Receiver<Closed>,
    events: mpsc::UnboundedSender<MediaEvent>,
    stats: Arc<SharedStats>,
) {
    for Closed {
        leg,
        call,
        file,
        mut report,
    } in closed
    {
        if let Some(file) = file {
            match file.sync_data().and_then(|()| wav::sha256_of(&file)) {
                Ok(digest) => report.sha256 = Some(digest),
                Err(source) => {
                    let error = chain(&Error::Io {
                        path: report.path.clone(),
                        source,
                    });
                    if report.error.is_none() {
                        // Not written to disk after all: a failure, announced like the others.
                        stats.write_errors.fetch_add(1, Ordering::Relaxed);
                        let _ = events.send(MediaEvent::LegFailed {
                            leg,
                            error: error.clone(),
                        });
                        report.error = Some(error);
                    }
                }
            }
        }
        stats.active_legs.fetch_sub(1, Ordering::Relaxed);
        stats.legs_finished.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            call_id = %call.call_id,
            recording_id = %call.recording_id,
            %leg,
            label = %report.label,
            path = %report.path.display(),
            samples = report.samples,
            packets = report.counters.packets,
            lost = report.counters.lost,
            error = report.error.as_deref(),
            "leg closed"
        );
        // The control plane may have stopped listening; the file is complete either way.
        let _ = events.send(MediaEvent::LegClosed { leg, report });
    }
}

#[cfg(test)]
mod tests;
