//! Receive threads: each owns the streams handed to it and runs them on its own current-thread
//! tokio runtime, one task per leg. Nothing here is shared with another thread except channels
//! and the engine's atomic counters (touched per block, per leg tick and per leg, never per packet).
//!
//! One datagram buffer per thread, not per leg: a leg's task waits for its socket to be readable
//! (`readable().await`), then receives with `try_recv_from` into the thread's buffer (the source
//! address comes with it, on the stack: the leg checks it is bound to it) and handles the
//! datagram before it awaits anything again. The tasks of a thread never run at the same time,
//! so they share the buffer without holding it across an await; it is as large as a UDP datagram
//! can be, so no datagram is ever cut, and a call costs no buffer of its own.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::port::PortReservation;
use crate::stream::{Refusals, Stream};
use crate::timeline::Sink;
use crate::writer::{Block, WriterControl};
use crate::{CallIds, LegCounters, LegId, LegUpdate, MediaEvent, SharedStats};

/// How often a leg's timeline advances on the wall clock. 50 ms: fine enough for a 200 ms
/// window, coarse enough that thousands of legs do not spend their time waking up.
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// Samples per block sent to the writer at most: ~0.5 s at 8 kHz, 8 KiB, one write per block.
pub(crate) const BLOCK_SAMPLES: usize = 4096;
/// A block that is not full is sent anyway once its oldest sample has waited this long, so that
/// a crash loses little of what was committed (see the crate's design note).
pub(crate) const BLOCK_WAIT: Duration = Duration::from_millis(100);
/// The largest UDP payload (the length field is 16 bits): no datagram is longer.
pub(crate) const MAX_DATAGRAM: usize = 65_535;
/// Datagrams a leg receives per wake-up before it lets the thread's other legs run.
const RECEIVE_BATCH: usize = 32;
/// Spare buffers a thread keeps; more are freed (the writer's queue bound caps the rest).
const POOL_SPARE: usize = 256;
/// Datagrams still queued in the socket that a stop records; bounded so a flood cannot delay it.
const STOP_DRAIN_LIMIT: usize = 256;
/// At most one "writer is behind" warning per leg this often.
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Messages from the control plane to a receive thread.
pub(crate) enum ThreadCommand {
    Start(Box<LegStart>),
    /// Two legs of one relayed call (pass-through): each forwards what it admits out of the
    /// other's socket, so both run on this thread (see [`RelaySide`]).
    StartPair(Box<LegStart>, Box<LegStart>),
}

/// Messages from the control plane to one leg task.
pub(crate) enum LegCommand {
    // Boxed: an update (two SRTP keyings among its fields) is rare, a stop is not.
    Update(Box<LegUpdate>),
    Stop { end: Instant },
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
    /// The thread's datagram buffer, [`MAX_DATAGRAM`] bytes. Borrowed only between a
    /// `try_recv` and the end of the datagram's handling, never across an await.
    datagram: RefCell<Box<[u8]>>,
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
        datagram: RefCell::new(vec![0; MAX_DATAGRAM].into_boxed_slice()),
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
                    Some(ThreadCommand::StartPair(a, b)) => {
                        let (a, b) = pair(*a, *b);
                        legs.spawn_local(run_leg_on(a, Rc::clone(&context), shutdown.clone()));
                        legs.spawn_local(run_leg_on(b, Rc::clone(&context), shutdown.clone()));
                    }
                    None => break,
                },
                _ = shutdown.changed() => break,
                Some(joined) = legs.join_next(), if !legs.is_empty() => {
                    if let Err(error) = joined {
                        tracing::error!(%error, "leg task failed; its file was closed without its counters");
                    }
                }
            }
        }
        // Legs handed over in the same instant as the shutdown start too, so that they close
        // their files like the others.
        while let Ok(command) = commands.try_recv() {
            match command {
                ThreadCommand::Start(start) => {
                    legs.spawn_local(run_leg(*start, Rc::clone(&context), shutdown.clone()));
                }
                ThreadCommand::StartPair(a, b) => {
                    let (a, b) = pair(*a, *b);
                    legs.spawn_local(run_leg_on(a, Rc::clone(&context), shutdown.clone()));
                    legs.spawn_local(run_leg_on(b, Rc::clone(&context), shutdown.clone()));
                }
            }
        }
        // Every leg task sees the shutdown too (or its handle dropped) and closes its file.
        while legs.join_next().await.is_some() {}
    });
}

/// The source given to a datagram whose sender address the kernel did not report (never for
/// UDP): no leg bound to its source accepts it.
const UNKNOWN_SOURCE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Receives what is queued on `socket` (up to `limit` datagrams) into the thread's buffer and
/// hands each datagram and its source to `handle`. Stops at `WouldBlock`, which clears the
/// socket's readiness; returns any other error.
fn receive(
    socket: &UdpSocket,
    context: &ThreadContext,
    limit: usize,
    mut handle: impl FnMut(Instant, SocketAddr, &mut [u8]),
) -> Option<io::Error> {
    let mut buffer = context.datagram.borrow_mut();
    for _ in 0..limit {
        match socket.try_recv_from(&mut buffer) {
            Ok((len, from)) => handle(Instant::now(), from, &mut buffer[..len]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return None,
            Err(error) => return Some(error),
        }
    }
    None
}

/// At a stop: every datagram already queued in the socket (up to `limit`), read with plain
/// non-blocking `recvfrom` syscalls. tokio's `try_recv_from` trusts the readiness the reactor
/// last saw, which lags behind datagrams queued since its last poll: under load the last packets
/// before a BYE were left in the socket and missing from the file. rustix, not socket2: socket2's
/// `recv_from` fills uninitialised memory, which only `unsafe` could hand on as bytes.
fn drain(
    socket: &UdpSocket,
    context: &ThreadContext,
    limit: usize,
    mut handle: impl FnMut(Instant, SocketAddr, &mut [u8]),
) {
    use rustix::net::{RecvFlags, recvfrom};
    let mut buffer = context.datagram.borrow_mut();
    for _ in 0..limit {
        match recvfrom(socket, &mut buffer[..], RecvFlags::DONTWAIT) {
            Ok((len, _, from)) => {
                let from = from
                    .and_then(|from| SocketAddr::try_from(from).ok())
                    .unwrap_or(UNKNOWN_SOURCE);
                handle(Instant::now(), from, &mut buffer[..len]);
            }
            Err(_) => return,
        }
    }
}

/// Why a leg task ends.
enum Ending {
    Stop {
        end: Instant,
    },
    /// Handle dropped or engine shutting down: the leg ends now.
    Abandoned,
}

/// One end of a relayed call, shared (`Rc`, one thread, no lock) by the two leg tasks of the
/// pair: this end's sockets, which the other leg sends from, and where this end's far side
/// takes media. That address starts as its SDP's (`c=` and port, RTCP one above) and follows
/// the source its leg latched (symmetric RTP: behind NAT the real address is where packets
/// come from); a re-offer that moves the SDP address starts over from the new one.
pub(crate) struct RelaySide {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    rtp_to: Cell<Option<SocketAddr>>,
    rtcp_to: Cell<Option<SocketAddr>>,
    sdp: Cell<(Option<std::net::IpAddr>, u16)>,
}

impl RelaySide {
    fn new(rtp: UdpSocket, rtcp: UdpSocket, sources: &crate::AllowedSources) -> RelaySide {
        let side = RelaySide {
            rtp,
            rtcp,
            rtp_to: Cell::new(None),
            rtcp_to: Cell::new(None),
            sdp: Cell::new((None, 0)),
        };
        side.handle_sources(sources);
        side
    }

    /// The far side's SDP address (at the start and on every update): a new one replaces
    /// what was latched.
    fn handle_sources(&self, sources: &crate::AllowedSources) {
        let sdp = (sources.connection, sources.port);
        if sdp == self.sdp.get() {
            return;
        }
        self.sdp.set(sdp);
        let usable = sources
            .connection
            .filter(|ip| !ip.is_unspecified() && sources.port != 0);
        self.rtp_to
            .set(usable.map(|ip| SocketAddr::new(ip, sources.port)));
        self.rtcp_to
            .set(usable.map(|ip| SocketAddr::new(ip, sources.port.saturating_add(1))));
    }

    /// Sends `datagram` to this side's far end, if it is known yet. A send that fails (full
    /// socket buffer, unreachable) loses the packet, as the network would.
    fn send_rtp(&self, datagram: &[u8]) {
        if let Some(to) = self.rtp_to.get() {
            let _ = self.rtp.try_send_to(datagram, to);
        }
    }

    fn send_rtcp(&self, datagram: &[u8]) {
        if let Some(to) = self.rtcp_to.get() {
            let _ = self.rtcp.try_send_to(datagram, to);
        }
    }
}

/// A relayed leg's two ends: `own` receives from its far side, `other` sends to the other's.
struct Relay {
    own: Rc<RelaySide>,
    other: Rc<RelaySide>,
}

/// What a leg task runs with once its sockets are registered.
struct LegRun {
    leg: LegId,
    stream: Stream,
    commands: mpsc::UnboundedReceiver<LegCommand>,
    sockets: io::Result<Rc<RelaySide>>,
    lease: crate::port::PortLease,
    relay: Option<Rc<RelaySide>>,
}

/// Registers both legs' sockets and links them: each forwards to the other's far end.
fn pair(a: LegStart, b: LegStart) -> (LegRun, LegRun) {
    let (a_run, a_side) = registered(a);
    let (mut b_run, b_side) = registered(b);
    let mut a_run = a_run;
    if let (Some(a_side), Some(b_side)) = (a_side, b_side) {
        a_run.relay = Some(Rc::clone(&b_side));
        b_run.relay = Some(a_side);
    }
    (a_run, b_run)
}

fn registered(start: LegStart) -> (LegRun, Option<Rc<RelaySide>>) {
    let LegStart {
        leg,
        reservation,
        stream,
        commands,
    } = start;
    let (rtp, rtcp, lease) = reservation.into_parts();
    let sockets = UdpSocket::from_std(rtp)
        .and_then(|rtp| Ok((rtp, UdpSocket::from_std(rtcp)?)))
        .map(|(rtp, rtcp)| Rc::new(RelaySide::new(rtp, rtcp, &stream.sources())));
    let side = sockets.as_ref().ok().map(Rc::clone);
    (
        LegRun {
            leg,
            stream,
            commands,
            sockets,
            lease,
            relay: None,
        },
        side,
    )
}

async fn run_leg(start: LegStart, context: Rc<ThreadContext>, shutdown: watch::Receiver<bool>) {
    let (run, _) = registered(start);
    run_leg_on(run, context, shutdown).await;
}

async fn run_leg_on(run: LegRun, context: Rc<ThreadContext>, mut shutdown: watch::Receiver<bool>) {
    let LegRun {
        leg,
        mut stream,
        mut commands,
        sockets,
        lease,
        relay,
    } = run;
    let mut sink = BlockSink::new(leg, stream.call().clone(), Rc::clone(&context));
    let relay = match (&sockets, relay) {
        (Ok(own), Some(other)) => Some(Relay {
            own: Rc::clone(own),
            other,
        }),
        _ => None,
    };
    let mut errors = 0u64;
    let mut published = Refusals::default();
    let mut published_packets = 0;
    let ending = match sockets {
        Ok(side) => {
            let (rtp, rtcp) = (&side.rtp, &side.rtcp);
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    ready = rtp.readable() => {
                        let failed = ready.err().or_else(|| {
                            receive(rtp, &context, RECEIVE_BATCH, |now, from, datagram| {
                                match &relay {
                                    // Forwarded from this thread, out of the other end's
                                    // socket: no lock, no copy, no allocation.
                                    Some(relay) => stream.handle_rtp_relayed(now, from, datagram, &mut sink, |bytes| {
                                        relay.own.rtp_to.set(Some(from));
                                        relay.other.send_rtp(bytes);
                                    }),
                                    None => stream.handle_rtp_from(now, from, datagram, &mut sink),
                                }
                                context.send_events(&mut stream);
                            })
                        });
                        if let Some(error) = failed {
                            receive_error(&mut errors, &stream, &error);
                        }
                    }
                    ready = rtcp.readable() => {
                        let failed = ready.err().or_else(|| {
                            receive(rtcp, &context, RECEIVE_BATCH, |now, from, datagram| {
                                match &relay {
                                    Some(relay) => stream.handle_rtcp_relayed(now, from, datagram, |bytes| {
                                        relay.own.rtcp_to.set(Some(from));
                                        relay.other.send_rtcp(bytes);
                                    }),
                                    None => stream.handle_rtcp_from(now, from, datagram),
                                }
                            })
                        });
                        if let Some(error) = failed {
                            receive_error(&mut errors, &stream, &error);
                        }
                    }
                    _ = tick.tick() => {
                        let now = Instant::now();
                        stream.handle_tick(now, &mut sink);
                        sink.handle_tick(now);
                        context.send_events(&mut stream);
                        published.publish(stream.refusals(), &context.stats);
                        publish_packets(&mut published_packets, &stream, &context.stats);
                    }
                    command = commands.recv() => match command {
                        Some(LegCommand::Update(update)) => {
                            side.handle_sources(&update.sources);
                            stream.handle_update(Instant::now(), &update);
                        }
                        Some(LegCommand::Stop { end }) => {
                            // `select!` picks among ready branches at random: datagrams that
                            // arrived before the stop may still wait in the socket. Record them.
                            drain(rtp, &context, STOP_DRAIN_LIMIT, |now, from, datagram| {
                                stream.handle_rtp_from(now, from, datagram, &mut sink);
                            });
                            // RTCP too, so the leg's counts (its foreign packets among them)
                            // hold what came before the stop.
                            drain(rtcp, &context, STOP_DRAIN_LIMIT, |now, from, datagram| {
                                stream.handle_rtcp_from(now, from, datagram);
                            });
                            break Ending::Stop { end };
                        }
                        None => break Ending::Abandoned,
                    },
                    // `wait_for` looks at the current value first: a leg started as the
                    // engine shuts down ends at once.
                    _ = shutdown.wait_for(|stop| *stop) => break Ending::Abandoned,
                }
            }
        }
        Err(error) => {
            tracing::error!(
                call_id = %stream.call().call_id,
                recording_id = %stream.call().recording_id,
                label = stream.label(),
                %error,
                "cannot register leg sockets"
            );
            match commands.recv().await {
                Some(LegCommand::Stop { end }) => Ending::Stop { end },
                _ => Ending::Abandoned,
            }
        }
    };
    // The ports are free as soon as the sockets are closed; the file closes on the writer.
    drop(lease);
    let end = match ending {
        Ending::Stop { end } => end,
        Ending::Abandoned => {
            tracing::info!(
                call_id = %stream.call().call_id,
                recording_id = %stream.call().recording_id,
                label = stream.label(),
                "leg ended without stop (handle dropped or shutdown)"
            );
            Instant::now()
        }
    };
    stream.finish(end, &mut sink);
    context.send_events(&mut stream);
    // Before the close: the totals include the leg by the time its `LegClosed` is sent.
    published.publish(stream.refusals(), &context.stats);
    publish_packets(&mut published_packets, &stream, &context.stats);
    sink.close(stream.counters());
}

/// Adds the packets the leg took since the last call to its codec's total (for `/metrics`), on
/// the tick like the refusals: no shared write per packet.
fn publish_packets(published: &mut u64, stream: &Stream, stats: &SharedStats) {
    let (codec, packets) = stream.packets_by_codec();
    if let Some(codec) = codec {
        stats
            .codecs
            .add_packets(codec, packets.saturating_sub(*published));
    }
    *published = packets;
}

impl Refusals {
    /// Adds what the leg refused since the last call to the engine's totals (shown in
    /// `/metrics`). Called on the tick, not per packet: a flood of forged or foreign packets
    /// costs no shared write each.
    fn publish(&mut self, now: Refusals, stats: &SharedStats) {
        if now == *self {
            return;
        }
        let add = |total: &std::sync::atomic::AtomicU64, before: u64, after: u64| {
            if after > before {
                total.fetch_add(after - before, Ordering::Relaxed);
            }
        };
        add(
            &stats.srtp_auth_failures,
            self.auth_failures,
            now.auth_failures,
        );
        add(&stats.srtp_replayed, self.replayed, now.replayed);
        add(
            &stats.srtcp_auth_failures,
            self.srtcp_auth_failures,
            now.srtcp_auth_failures,
        );
        add(
            &stats.foreign_packets,
            self.foreign_packets,
            now.foreign_packets,
        );
        *self = now;
    }
}

fn receive_error(count: &mut u64, stream: &Stream, error: &io::Error) {
    *count += 1;
    // Rate-limited by powers of two: a socket failing in a loop does not flood the log.
    if count.is_power_of_two() {
        let call = stream.call();
        tracing::warn!(
            call_id = %call.call_id,
            recording_id = %call.recording_id,
            label = stream.label(),
            %error,
            errors = *count,
            "RTP receive error"
        );
    }
}

/// Turns committed samples into blocks for the writer, never waiting for it: a block goes when
/// it is full, or when its oldest sample has waited [`BLOCK_WAIT`] (checked on the tick). It
/// also closes the leg on the writer, once: by [`BlockSink::close`], or when dropped (a leg task
/// that panicked), so the writer always closes the file and the control plane always hears.
struct BlockSink {
    leg: LegId,
    /// For the warnings only.
    call: CallIds,
    context: Rc<ThreadContext>,
    current: Vec<i16>,
    /// Sample offset in the file of `current[0]`.
    start: u64,
    /// The tick that first saw `current` hold samples.
    oldest: Option<Instant>,
    sent: u64,
    dropped: u64,
    last_warning: Option<Instant>,
    closed: bool,
}

impl BlockSink {
    fn new(leg: LegId, call: CallIds, context: Rc<ThreadContext>) -> BlockSink {
        let current = context.take_buffer();
        BlockSink {
            leg,
            call,
            context,
            current,
            start: 0,
            oldest: None,
            sent: 0,
            dropped: 0,
            last_warning: None,
            closed: false,
        }
    }

    /// After the stream's tick: sends the block if its oldest sample has waited long enough.
    fn handle_tick(&mut self, now: Instant) {
        if self.current.is_empty() {
            return;
        }
        let oldest = *self.oldest.get_or_insert(now);
        // Ticks are never exactly 50 ms apart: half a tick of slack, so that the block goes on
        // the second tick after its first samples, not sometimes on the third.
        if now.saturating_duration_since(oldest) + TICK / 2 >= BLOCK_WAIT {
            self.send();
        }
    }

    /// Sends what is left and closes the leg on the writer.
    fn close(mut self, counters: LegCounters) {
        if !self.current.is_empty() {
            self.send();
        }
        self.send_close(Some(counters));
    }

    fn send_close(&mut self, counters: Option<LegCounters>) {
        self.closed = true;
        let counters = counters.map(|mut counters| {
            counters.blocks_dropped = self.dropped;
            Box::new(counters)
        });
        let close = WriterControl::Close {
            leg: self.leg,
            blocks_sent: self.sent,
            counters,
        };
        if self.context.writer_control.send(close).is_err() {
            tracing::error!(
                call_id = %self.call.call_id,
                recording_id = %self.call.recording_id,
                leg = %self.leg,
                "writer thread is gone; leg file not finalised"
            );
        }
    }

    fn send(&mut self) {
        let samples = std::mem::replace(&mut self.current, self.context.take_buffer());
        self.oldest = None;
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
                        call_id = %self.call.call_id,
                        recording_id = %self.call.recording_id,
                        leg = %self.leg,
                        dropped = self.dropped,
                        "writer is behind: audio block dropped (silence in the file)"
                    );
                }
            }
        }
    }
}

impl Drop for BlockSink {
    fn drop(&mut self) {
        if !self.closed {
            // The leg task is being torn down without closing (a panic): the file must still
            // be closed and reported. Its samples so far go first.
            if !self.current.is_empty() {
                self.send();
            }
            self.send_close(None);
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

    struct Setup {
        context: Rc<ThreadContext>,
        control: Receiver<WriterControl>,
        data: Receiver<Block>,
        stats: Arc<SharedStats>,
    }

    fn setup(queue: usize) -> Setup {
        let (writer_control, control) = unbounded();
        let (writer_data, data) = bounded(queue);
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
            datagram: RefCell::new(vec![0; 16].into_boxed_slice()),
        });
        Setup {
            context,
            control,
            data,
            stats,
        }
    }

    #[test]
    fn full_writer_queue_drops_blocks_without_waiting_and_keeps_offsets() {
        let Setup {
            context,
            control,
            data,
            stats,
        } = setup(1);
        let mut sink = BlockSink::new(LegId(9), CallIds::default(), Rc::clone(&context));
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
        sink.close(LegCounters::default());
        let next = data.try_recv().unwrap();
        assert_eq!(next.start, 3 * BLOCK_SAMPLES as u64);
        assert_eq!(next.samples, [2; 10]);
        let Ok(WriterControl::Close {
            blocks_sent,
            counters: Some(counters),
            ..
        }) = control.try_recv()
        else {
            panic!("the close follows the last block");
        };
        assert_eq!((blocks_sent, counters.blocks_dropped), (2, 2));
    }

    #[test]
    fn a_block_goes_once_its_oldest_sample_has_waited_block_wait() {
        let Setup { context, data, .. } = setup(8);
        let mut sink = BlockSink::new(LegId(1), CallIds::default(), context);
        let start = Instant::now();
        let tick = |sink: &mut BlockSink, at: Duration, samples: usize| {
            sink.write(&vec![5; samples]);
            sink.handle_tick(start + at);
        };
        tick(&mut sink, Duration::ZERO, 400);
        tick(&mut sink, TICK, 400);
        assert!(data.try_recv().is_err(), "the oldest sample waited 50 ms");
        // A tick a little early still counts as the second.
        tick(&mut sink, BLOCK_WAIT - Duration::from_millis(5), 400);
        let block = data.try_recv().expect("the oldest sample waited ~100 ms");
        assert_eq!((block.start, block.samples.len()), (0, 1200));
        // The next block's clock starts with its own first samples.
        sink.handle_tick(start + BLOCK_WAIT + TICK);
        tick(&mut sink, BLOCK_WAIT + 2 * TICK, 400);
        tick(&mut sink, BLOCK_WAIT + 3 * TICK, 400);
        assert!(data.try_recv().is_err());
        tick(&mut sink, BLOCK_WAIT * 2 + 2 * TICK, 400);
        assert_eq!(data.try_recv().unwrap().start, 1200);
    }

    #[test]
    fn a_sink_dropped_without_close_still_closes_the_leg() {
        let Setup {
            context,
            control,
            data,
            ..
        } = setup(8);
        let mut sink = BlockSink::new(LegId(3), CallIds::default(), context);
        sink.write(&[4; 30]);
        // What a panicking leg task does to its locals.
        drop(sink);
        assert_eq!(data.try_recv().unwrap().samples, [4; 30]);
        assert!(matches!(
            control.try_recv(),
            Ok(WriterControl::Close {
                leg: LegId(3),
                blocks_sent: 1,
                counters: None
            })
        ));
    }

    #[test]
    fn a_stop_records_datagrams_the_reactor_has_not_seen_yet() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let Setup { context, .. } = setup(8);
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = socket.local_addr().unwrap();
            sender.send_to(b"first", to).unwrap();
            socket.readable().await.unwrap();
            let mut seen = Vec::new();
            receive(&socket, &context, 10, |_, _, d| seen.push(d.to_vec()));
            assert_eq!(seen, [b"first".to_vec()]);
            // Readiness is now cleared; these arrive while the reactor is not polled (no await
            // between here and the stop), as datagrams queued just before a BYE do under load.
            sender.send_to(b"second", to).unwrap();
            sender.send_to(b"third", to).unwrap();
            let mut by_readiness = Vec::new();
            receive(&socket, &context, 10, |_, _, d| {
                by_readiness.push(d.to_vec())
            });
            assert!(
                by_readiness.is_empty(),
                "try_recv trusts the stale readiness"
            );
            let mut drained = Vec::new();
            drain(&socket, &context, 10, |_, from, d| {
                drained.push((from, d.to_vec()))
            });
            let from = sender.local_addr().unwrap();
            assert_eq!(
                drained,
                [(from, b"second".to_vec()), (from, b"third".to_vec())],
                "each with its source"
            );
        });
    }
}
