//! The writer thread: leg files as mono 16-bit WAV, off the receive threads.
//!
//! Two channels feed it. Control (`Open`, `Close`) is unbounded — one message per leg event, never
//! dropped. Data (`Block`) is bounded: when the disk falls behind, receive threads drop blocks
//! instead of waiting or growing memory, and the writer fills what is missing with silence so the
//! file keeps its timeline. Because the two channels are not ordered with each other, `Close`
//! carries how many blocks were sent, and a close waits until they have all arrived.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::error::Error;
use crate::{LegReport, SharedStats};

/// How often each open file's header is rewritten, so a crash leaves a playable file.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Buffer between hound and the file: few, large writes.
const FILE_BUFFER: usize = 64 * 1024;

pub(crate) use crate::LegId;

pub(crate) enum WriterControl {
    Open {
        leg: LegId,
        path: PathBuf,
        sample_rate: u32,
    },
    Close {
        leg: LegId,
        blocks_sent: u64,
        /// Boxed: the report is large and a close happens once per leg.
        report: Box<LegReport>,
        reply: Option<oneshot::Sender<LegReport>>,
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

struct LegFile {
    path: PathBuf,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    error: Option<Error>,
    samples: u64,
    blocks_received: u64,
    silence_filled: u64,
    last_flush: Instant,
    pending_close: Option<PendingClose>,
}

struct PendingClose {
    blocks_sent: u64,
    report: LegReport,
    reply: Option<oneshot::Sender<LegReport>>,
}

pub(crate) struct Writer {
    control: Receiver<WriterControl>,
    data: Receiver<Block>,
    /// Empty buffers back to each receive thread's pool.
    recycle: Vec<Sender<Vec<i16>>>,
    files: HashMap<LegId, LegFile>,
    stats: Arc<SharedStats>,
    /// Zeros written for blocks dropped upstream; allocated once.
    silence: Vec<i16>,
}

impl Writer {
    pub(crate) fn new(
        control: Receiver<WriterControl>,
        data: Receiver<Block>,
        recycle: Vec<Sender<Vec<i16>>>,
        stats: Arc<SharedStats>,
    ) -> Writer {
        Writer {
            control,
            data,
            recycle,
            files: HashMap::new(),
            stats,
            silence: vec![0; 8192],
        }
    }

    /// Runs until every sender of both channels is gone, then closes what is still open.
    pub(crate) fn run(mut self) {
        let mut control = self.control.clone();
        let mut data = self.data.clone();
        let mut control_open = true;
        let mut data_open = true;
        let mut next_flush_check = Instant::now() + FLUSH_INTERVAL / 4;
        while control_open || data_open {
            let timeout = next_flush_check.saturating_duration_since(Instant::now());
            select! {
                recv(control) -> message => match message {
                    Ok(message) => self.handle_control(message),
                    Err(_) => {
                        control_open = false;
                        control = crossbeam_channel::never();
                    }
                },
                recv(data) -> block => match block {
                    Ok(block) => self.handle_block(block),
                    Err(_) => {
                        data_open = false;
                        data = crossbeam_channel::never();
                    }
                },
                default(timeout) => {}
            }
            let now = Instant::now();
            if now >= next_flush_check {
                self.flush_due(now);
                next_flush_check = now + FLUSH_INTERVAL / 4;
            }
        }
        // No sender left: every block ever sent has been handled. Close what remains, including
        // legs whose receive thread ended without a close (it cannot happen in a clean shutdown).
        let legs: Vec<LegId> = self.files.keys().copied().collect();
        for leg in legs {
            if let Some(mut file) = self.files.remove(&leg) {
                let pending = file.pending_close.take().unwrap_or(PendingClose {
                    blocks_sent: 0,
                    report: LegReport::default(),
                    reply: None,
                });
                self.finish(file, pending);
            }
        }
    }

    fn handle_control(&mut self, message: WriterControl) {
        match message {
            WriterControl::Open {
                leg,
                path,
                sample_rate,
            } => {
                let file = open(leg, path, sample_rate, &self.stats);
                self.files.insert(leg, file);
            }
            WriterControl::Close {
                leg,
                blocks_sent,
                report,
                reply,
            } => {
                let Some(file) = self.files.get_mut(&leg) else {
                    tracing::error!(%leg, "close for a leg the writer never opened");
                    return;
                };
                file.pending_close = Some(PendingClose {
                    blocks_sent,
                    report: *report,
                    reply,
                });
                self.finish_if_complete(leg);
            }
        }
    }

    fn handle_block(&mut self, block: Block) {
        if !self.files.contains_key(&block.leg) {
            // The Open was sent before any block but on the other channel: take it now.
            while let Ok(message) = self.control.try_recv() {
                self.handle_control(message);
            }
        }
        let leg = block.leg;
        match self.files.get_mut(&leg) {
            Some(file) => {
                file.blocks_received += 1;
                write_block(file, &block, &self.silence, &self.stats);
            }
            None => tracing::error!(%leg, "block for a leg the writer never opened"),
        }
        self.recycle_buffer(block);
        self.finish_if_complete(leg);
    }

    fn recycle_buffer(&self, block: Block) {
        if let Some(pool) = self.recycle.get(block.thread) {
            // A full pool means the thread has buffers to spare: this one is freed instead.
            let _ = pool.try_send(block.samples);
        }
    }

    fn finish_if_complete(&mut self, leg: LegId) {
        let complete = self.files.get(&leg).is_some_and(|file| {
            file.pending_close
                .as_ref()
                .is_some_and(|close| file.blocks_received >= close.blocks_sent)
        });
        if complete && let Some(mut file) = self.files.remove(&leg) {
            let pending = file.pending_close.take().expect("checked just above");
            self.finish(file, pending);
        }
    }

    fn finish(&self, mut file: LegFile, pending: PendingClose) {
        let PendingClose {
            blocks_sent,
            mut report,
            reply,
        } = pending;
        if file.blocks_received < blocks_sent {
            tracing::warn!(
                path = %file.path.display(),
                missing = blocks_sent - file.blocks_received,
                "leg closed before all its blocks reached the writer"
            );
        }
        if let Some(writer) = file.writer.take()
            && let Err(source) = writer.finalize()
        {
            file.error.get_or_insert(Error::Wav {
                path: file.path.clone(),
                source,
            });
        }
        if file.error.is_none() {
            match sha256_of(&file.path) {
                Ok(digest) => report.sha256 = Some(digest),
                Err(source) => {
                    file.error = Some(Error::Io {
                        path: file.path.clone(),
                        source,
                    });
                }
            }
        }
        if let Some(error) = &file.error {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            report.error = Some(error_chain(error));
        }
        report.path = file.path;
        report.samples = file.samples;
        report.silence_filled = file.silence_filled;
        self.stats.active_legs.fetch_sub(1, Ordering::Relaxed);
        self.stats.legs_finished.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            label = %report.label,
            path = %report.path.display(),
            samples = report.samples,
            packets = report.packets,
            lost = report.lost,
            error = report.error.as_deref(),
            "leg closed"
        );
        if let Some(reply) = reply {
            // The caller may have stopped waiting; the file is complete either way.
            let _ = reply.send(report);
        }
    }

    fn flush_due(&mut self, now: Instant) {
        for file in self.files.values_mut() {
            if now.duration_since(file.last_flush) < FLUSH_INTERVAL {
                continue;
            }
            file.last_flush = now;
            if let Some(writer) = file.writer.as_mut()
                && let Err(source) = writer.flush()
            {
                fail(
                    file,
                    Error::Wav {
                        path: file.path.clone(),
                        source,
                    },
                    &self.stats,
                );
            }
        }
    }
}

fn open(leg: LegId, path: PathBuf, sample_rate: u32, stats: &SharedStats) -> LegFile {
    let mut file = LegFile {
        path,
        writer: None,
        error: None,
        samples: 0,
        blocks_received: 0,
        silence_filled: 0,
        last_flush: Instant::now(),
        pending_close: None,
    };
    match create(&file.path, sample_rate) {
        Ok(writer) => file.writer = Some(writer),
        Err(error) => {
            tracing::error!(%leg, error = %error_chain(&error), "cannot create leg file");
            stats.write_errors.fetch_add(1, Ordering::Relaxed);
            file.error = Some(error);
        }
    }
    file
}

fn create(path: &PathBuf, sample_rate: u32) -> Result<hound::WavWriter<BufWriter<File>>, Error> {
    let io_error = |source| Error::Io {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error)?;
    }
    let file = File::create(path).map_err(io_error)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::new(BufWriter::with_capacity(FILE_BUFFER, file), spec)
        .map_err(|source| Error::Wav {
            path: path.clone(),
            source,
        })?;
    // The header on disk now, so even an empty recording is a valid file.
    writer.flush().map_err(|source| Error::Wav {
        path: path.clone(),
        source,
    })?;
    Ok(writer)
}

fn write_block(file: &mut LegFile, block: &Block, silence: &[i16], stats: &SharedStats) {
    let Some(writer) = file.writer.as_mut() else {
        return;
    };
    // Blocks dropped upstream leave a hole: silence keeps the rest of the file in place.
    let mut missing = block.start.saturating_sub(file.samples);
    let result = (|| {
        while missing > 0 {
            let count = missing.min(silence.len() as u64) as usize;
            write_samples(writer, &silence[..count])?;
            file.samples += count as u64;
            file.silence_filled += count as u64;
            missing -= count as u64;
        }
        write_samples(writer, &block.samples)?;
        file.samples += block.samples.len() as u64;
        Ok(())
    })();
    if let Err(source) = result {
        fail(
            file,
            Error::Wav {
                path: file.path.clone(),
                source,
            },
            stats,
        );
    } else {
        stats.blocks_written.fetch_add(1, Ordering::Relaxed);
    }
}

fn write_samples(
    writer: &mut hound::WavWriter<BufWriter<File>>,
    samples: &[i16],
) -> hound::Result<()> {
    let mut block_writer = writer.get_i16_writer(samples.len() as u32);
    for sample in samples {
        block_writer.write_sample(*sample);
    }
    block_writer.flush()
}

/// Stops writing a file after an error; what was written stays, the report carries the error.
fn fail(file: &mut LegFile, error: Error, stats: &SharedStats) {
    tracing::error!(path = %file.path.display(), error = %error_chain(&error), "leg file write failed");
    stats.write_errors.fetch_add(1, Ordering::Relaxed);
    // Dropping hound's writer tries to finalise the header one last time.
    file.writer = None;
    file.error.get_or_insert(error);
}

fn sha256_of(path: &PathBuf) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn error_chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{bounded, unbounded};

    struct Harness {
        control: Sender<WriterControl>,
        data: Sender<Block>,
        recycled: Receiver<Vec<i16>>,
        thread: std::thread::JoinHandle<()>,
        stats: Arc<SharedStats>,
    }

    fn harness() -> Harness {
        let (control, control_rx) = unbounded();
        let (data, data_rx) = bounded(16);
        let (recycle, recycled) = bounded(16);
        let stats = Arc::new(SharedStats::default());
        let writer = Writer::new(control_rx, data_rx, vec![recycle], Arc::clone(&stats));
        let thread = std::thread::spawn(move || writer.run());
        Harness {
            control,
            data,
            recycled,
            thread,
            stats,
        }
    }

    fn close(h: &Harness, leg: LegId, blocks_sent: u64) -> oneshot::Receiver<LegReport> {
        let (reply, report) = oneshot::channel();
        h.stats.active_legs.fetch_add(1, Ordering::Relaxed);
        h.control
            .send(WriterControl::Close {
                leg,
                blocks_sent,
                report: Box::default(),
                reply: Some(reply),
            })
            .unwrap();
        report
    }

    #[test]
    fn blocks_become_a_wav_with_dropped_blocks_filled_by_silence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/leg.wav");
        let h = harness();
        h.control
            .send(WriterControl::Open {
                leg: LegId(1),
                path: path.clone(),
                sample_rate: 8000,
            })
            .unwrap();
        h.data
            .send(Block {
                leg: LegId(1),
                thread: 0,
                start: 0,
                samples: vec![7; 100],
            })
            .unwrap();
        // The block for 100..200 was dropped upstream.
        h.data
            .send(Block {
                leg: LegId(1),
                thread: 0,
                start: 200,
                samples: vec![9; 50],
            })
            .unwrap();
        // Close may be seen before the blocks: it waits for both.
        let report = close(&h, LegId(1), 2).blocking_recv().unwrap();
        assert_eq!(report.samples, 250);
        assert_eq!(report.silence_filled, 100);
        assert!(report.error.is_none(), "{:?}", report.error);

        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().sample_rate, 8000);
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(samples.len(), 250);
        assert!(samples[..100].iter().all(|s| *s == 7));
        assert!(samples[100..200].iter().all(|s| *s == 0));
        assert!(samples[200..].iter().all(|s| *s == 9));

        let digest = hex::encode(Sha256::digest(fs::read(&path).unwrap()));
        assert_eq!(report.sha256.as_deref(), Some(digest.as_str()));
        assert_eq!(report.path, path);
        // Both buffers came back for reuse.
        assert_eq!(h.recycled.try_iter().count(), 2);

        drop(h.control);
        drop(h.data);
        h.thread.join().unwrap();
    }

    #[test]
    fn unwritable_path_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"x").unwrap();
        let h = harness();
        h.control
            .send(WriterControl::Open {
                leg: LegId(5),
                path: blocker.join("leg.wav"),
                sample_rate: 8000,
            })
            .unwrap();
        h.data
            .send(Block {
                leg: LegId(5),
                thread: 0,
                start: 0,
                samples: vec![1; 10],
            })
            .unwrap();
        let report = close(&h, LegId(5), 1).blocking_recv().unwrap();
        assert!(report.error.is_some());
        assert!(report.sha256.is_none());
        assert!(h.stats.write_errors.load(Ordering::Relaxed) >= 1);
        drop(h.control);
        drop(h.data);
        h.thread.join().unwrap();
    }

    #[test]
    fn file_left_open_is_finalised_when_senders_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leg.wav");
        let h = harness();
        h.control
            .send(WriterControl::Open {
                leg: LegId(2),
                path: path.clone(),
                sample_rate: 8000,
            })
            .unwrap();
        h.data
            .send(Block {
                leg: LegId(2),
                thread: 0,
                start: 0,
                samples: vec![3; 80],
            })
            .unwrap();
        h.stats.active_legs.fetch_add(1, Ordering::Relaxed);
        drop(h.control);
        drop(h.data);
        h.thread.join().unwrap();
        assert_eq!(hound::WavReader::open(&path).unwrap().len(), 80);
    }
}
