//! Receive threads: each owns the streams handed to it and runs them on its own current-thread
//! tokio runtime, one task per leg. Nothing here is shared with another thread except channels
//! and the engine's atomic counters (touched per block and per leg, never per packet).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::port::PortReservation;
use crate::stream::{MAX_DATAGRAM, Stream};
use crate::timeline::Sink;
use crate::wav::{Block, LegId, WriterControl};
use crate::{LegReport, LegUpdate, MediaEvent, SharedStats};

/// How often a leg's timeline advances on the wall clock. 50 ms: fine enough for a 200 ms
/// window, coarse enough that thousands of legs do not spend their time waking up.
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// Samples per block sent to the writer: ~0.5 s at 8 kHz, 8 KiB, one write per block.
pub(crate) const BLOCK_SAMPLES: usize = 4096;
/// Spare buffers a thread keeps; more are freed (the writer's queue bound caps the rest).
const POOL_SPARE: usize = 256;
/// Datagrams still queued in the socket that a stop records; bounded so a flood cannot delay it.
const STOP_DRAIN_LIMIT: usize = 256;
/// At most one "writer is behind" warning per leg this often.
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Messages from the control plane to a receive thread.
pub(crate) enum ThreadCommand {
    Start(Box<LegStart>),
}

/// Messages from the control plane to one leg task.
pub(crate) enum LegCommand {
    Update(LegUpdate),
    Stop {
        end: Instant,
        reply: oneshot::Sender<LegReport>,
    },
}

pub(crate) struct LegStart {
    pub(crate) leg: LegId,
    pub(crate) reservation: PortReservation,
    pub(crate) stream: Stream,
    pub(crate) commands: mpsc::UnboundedReceiver<LegCommand>,
}

/// What every leg task of one thread shares (single-threaded: `Rc`, no lock).
struct ThreadContext {
    index: usize,
    writer_control: Sender<WriterControl>,
    writer_data: Sender<Block>,
    pool: RefCell<Vec<Vec<i16>>>,
    recycled: Receiver<Vec<i16>>,
    stats: Arc<SharedStats>,
    /// To the control plane: a send per key press or silence alarm, never per packet.
    events: mpsc::UnboundedSender<MediaEvent>,
}

impl ThreadContext {
    /// Hands the stream's queued events to the control plane. A dropped receiver (nobody
    /// listens) loses them, by the control plane's choice.
    fn send_events(&self, stream: &mut Stream) {
        while let Some(event) = stream.poll_event() {
            let _ = self.events.send(event);
        }
    }

    /// An empty block buffer: a spare one, one the writer sent back, or (warm-up only) a new one.
    fn take_buffer(&self) -> Vec<i16> {
        let mut buffer = self
            .pool
            .borrow_mut()
            .pop()
            .or_else(|| self.recycled.try_recv().ok())
            .unwrap_or_else(|| Vec::with_capacity(BLOCK_SAMPLES));
        buffer.clear();
        buffer
    }

    fn give_buffer(&self, buffer: Vec<i16>) {
        let mut pool = self.pool.borrow_mut();
        if pool.len() < POOL_SPARE {
            pool.push(buffer);
        }
    }
}

pub(crate) struct ThreadSetup {
    pub(crate) index: usize,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) commands: mpsc::UnboundedReceiver<ThreadCommand>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) writer_control: Sender<WriterControl>,
    pub(crate) writer_data: Sender<Block>,
    pub(crate) recycled: Receiver<Vec<i16>>,
    pub(crate) stats: Arc<SharedStats>,
    pub(crate) events: mpsc::UnboundedSender<MediaEvent>,
}

/// The body of one receive thread. Returns when the engine shuts down, after every leg it owns
/// has committed its audio and handed its file to the writer.
pub(crate) fn run(setup: ThreadSetup) {
    let ThreadSetup {
        index,
        runtime,
        mut commands,
        mut shutdown,
        writer_control,
        writer_data,
        recycled,
        stats,
        events,
    } = setup;
    let context = Rc::new(ThreadContext {
        index,
        writer_control,
        writer_data,
        pool: RefCell::new(Vec::new()),
        recycled,
        stats,
        events,
    });
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let mut legs = JoinSet::new();
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(ThreadCommand::Start(start)) => {
                        legs.spawn_local(run_leg(*start, Rc::clone(&context), shutdown.clone()));
                    }
                    None => break,
                },
                _ = shutdown.changed() => break,
                Some(joined) = legs.join_next(), if !legs.is_empty() => {
                    if let Err(error) = joined {
                        tracing::error!(%error, "leg task failed; its file is finalised at shutdown");
                    }
                }
            }
        }
        // Every leg task sees the shutdown too (or its handle dropped) and closes its file.
        while legs.join_next().await.is_some() {}
    });
}

/// Why a leg task ends.
enum Ending {
    Stop {
        end: Instant,
        reply: oneshot::Sender<LegReport>,
    },
    /// Handle dropped or engine shutting down: the leg ends now, no one waits for the report.
    Abandoned,
}

async fn run_leg(start: LegStart, context: Rc<ThreadContext>, mut shutdown: watch::Receiver<bool>) {
    let LegStart {
        leg,
        reservation,
        mut stream,
        mut commands,
    } = start;
    let mut sink = BlockSink::new(leg, Rc::clone(&context));
    let (rtp, rtcp, lease) = reservation.into_parts();
    let sockets = UdpSocket::from_std(rtp).and_then(|rtp| Ok((rtp, UdpSocket::from_std(rtcp)?)));
    let mut receive_errors = 0u64;
    let ending = match sockets {
        Ok((rtp, rtcp)) => {
            // Allocated once per leg, reused for every packet.
            let mut buffer = vec![0u8; MAX_DATAGRAM];
            let mut rtcp_buffer = vec![0u8; MAX_DATAGRAM];
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    received = rtp.recv(&mut buffer) => match received {
                        // A datagram longer than the buffer is truncated by the kernel; the
                        // parser then sees a short payload, never an overrun.
                        Ok(len) => {
                            stream.handle_datagram(Instant::now(), &buffer[..len], &mut sink);
                            context.send_events(&mut stream);
                        }
                        Err(error) => receive_error(&mut receive_errors, stream.label(), &error),
                    },
                    received = rtcp.recv(&mut rtcp_buffer) => match received {
                        Ok(_) => stream.handle_rtcp(),
                        Err(error) => receive_error(&mut receive_errors, stream.label(), &error),
                    },
                    _ = tick.tick() => {
                        stream.handle_tick(Instant::now(), &mut sink);
                        context.send_events(&mut stream);
                    }
                    command = commands.recv() => match command {
                        Some(LegCommand::Update(update)) => stream.handle_update(Instant::now(), &update),
                        Some(LegCommand::Stop { end, reply }) => {
                            // `select!` picks among ready branches at random: datagrams that
                            // arrived before the stop may still wait in the socket. Record them.
                            for _ in 0..STOP_DRAIN_LIMIT {
                                let Ok(len) = rtp.try_recv(&mut buffer) else { break };
                                stream.handle_datagram(Instant::now(), &buffer[..len], &mut sink);
                            }
                            break Ending::Stop { end, reply };
                        }
                        None => break Ending::Abandoned,
                    },
                    _ = shutdown.changed() => break Ending::Abandoned,
                }
            }
        }
        Err(error) => {
            tracing::error!(label = stream.label(), %error, "cannot register leg sockets");
            match commands.recv().await {
                Some(LegCommand::Stop { end, reply }) => Ending::Stop { end, reply },
                _ => Ending::Abandoned,
            }
        }
    };
    // The ports are free as soon as the sockets are closed; the file closes on the writer.
    drop(lease);
    let (end, reply) = match ending {
        Ending::Stop { end, reply } => (end, Some(reply)),
        Ending::Abandoned => {
            tracing::info!(
                label = stream.label(),
                "leg ended without stop (handle dropped or shutdown)"
            );
            (Instant::now(), None)
        }
    };
    stream.finish(end, &mut sink);
    context.send_events(&mut stream);
    sink.send_partial();
    let mut report = stream.report();
    report.blocks_dropped = sink.dropped;
    let close = WriterControl::Close {
        leg,
        blocks_sent: sink.sent,
        report: Box::new(report),
        reply,
    };
    if context.writer_control.send(close).is_err() {
        tracing::error!(%leg, "writer thread is gone; leg file not finalised");
    }
}

fn receive_error(count: &mut u64, label: &str, error: &std::io::Error) {
    *count += 1;
    // Rate-limited by powers of two: a socket failing in a loop does not flood the log.
    if count.is_power_of_two() {
        tracing::warn!(label, %error, errors = *count, "RTP receive error");
    }
}

/// Turns committed samples into fixed-size blocks for the writer, never waiting for it.
struct BlockSink {
    leg: LegId,
    context: Rc<ThreadContext>,
    current: Vec<i16>,
    /// Sample offset in the file of `current[0]`.
    start: u64,
    sent: u64,
    dropped: u64,
    last_warning: Option<Instant>,
}

impl BlockSink {
    fn new(leg: LegId, context: Rc<ThreadContext>) -> BlockSink {
        let current = context.take_buffer();
        BlockSink {
            leg,
            context,
            current,
            start: 0,
            sent: 0,
            dropped: 0,
            last_warning: None,
        }
    }

    fn send_partial(&mut self) {
        if !self.current.is_empty() {
            self.send();
        }
    }

    fn send(&mut self) {
        let samples = std::mem::replace(&mut self.current, self.context.take_buffer());
        let len = samples.len() as u64;
        let block = Block {
            leg: self.leg,
            thread: self.context.index,
            start: self.start,
            samples,
        };
        self.start += len;
        match self.context.writer_data.try_send(block) {
            Ok(()) => self.sent += 1,
            Err(TrySendError::Full(block) | TrySendError::Disconnected(block)) => {
                self.dropped += 1;
                self.context
                    .stats
                    .blocks_dropped
                    .fetch_add(1, Ordering::Relaxed);
                self.context.give_buffer(block.samples);
                let now = Instant::now();
                if self
                    .last_warning
                    .is_none_or(|last| now.duration_since(last) >= DROP_WARNING_INTERVAL)
                {
                    self.last_warning = Some(now);
                    tracing::warn!(
                        leg = %self.leg,
                        dropped = self.dropped,
                        "writer is behind: audio block dropped (silence in the file)"
                    );
                }
            }
        }
    }
}

impl Sink for BlockSink {
    fn write(&mut self, mut pcm: &[i16]) {
        while !pcm.is_empty() {
            let room = BLOCK_SAMPLES - self.current.len();
            let take = room.min(pcm.len());
            self.current.extend_from_slice(&pcm[..take]);
            pcm = &pcm[take..];
            if self.current.len() == BLOCK_SAMPLES {
                self.send();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{bounded, unbounded};

    #[test]
    fn full_writer_queue_drops_blocks_without_waiting_and_keeps_offsets() {
        let (writer_control, _control) = unbounded();
        let (writer_data, data) = bounded(1);
        let (_recycle, recycled) = bounded(4);
        let stats = Arc::new(SharedStats::default());
        let context = Rc::new(ThreadContext {
            index: 0,
            writer_control,
            writer_data,
            pool: RefCell::new(Vec::new()),
            recycled,
            stats: Arc::clone(&stats),
            events: mpsc::unbounded_channel().0,
        });
        let mut sink = BlockSink::new(LegId(9), Rc::clone(&context));
        // Three blocks' worth while nobody drains the queue of one.
        sink.write(&vec![1; BLOCK_SAMPLES * 3]);
        assert_eq!((sink.sent, sink.dropped), (1, 2));
        assert_eq!(stats.blocks_dropped.load(Ordering::Relaxed), 2);
        // The dropped buffers went back to the pool for reuse.
        assert_eq!(context.pool.borrow().len(), 1);

        let first = data.try_recv().unwrap();
        assert_eq!(
            (first.leg, first.start, first.samples.len()),
            (LegId(9), 0, BLOCK_SAMPLES)
        );
        // The next block starts after the dropped ones: the writer fills the hole with silence.
        sink.write(&[2; 10]);
        sink.send_partial();
        let next = data.try_recv().unwrap();
        assert_eq!(next.start, 3 * BLOCK_SAMPLES as u64);
        assert_eq!(next.samples, [2; 10]);
    }
}
