//! The engine: starts the threads, and is the control plane's handle on ports and legs.

use std::path::{Component, Path};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Sender, bounded, unbounded};
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::port::{PortPool, PortReservation};
use crate::receive::{self, LegCommand, LegStart, ThreadCommand, ThreadSetup};
use crate::stream::Stream;
use crate::wav::MAX_RIFF_SIZE;
use crate::writer::{self, Block, Writer, WriterControl};
use crate::{LegId, LegSpec, LegUpdate, MediaConfig, MediaEvent, MediaStats, SharedStats};

/// The media engine. `Send + Sync`: share it behind an `Arc` between signalling tasks.
#[derive(Debug)]
pub struct MediaEngine {
    config: MediaConfig,
    ports: Arc<PortPool>,
    stats: Arc<SharedStats>,
    next_leg: AtomicU64,
    next_thread: AtomicUsize,
    /// The receiving end of the events, until [`MediaEngine::events`] takes it. A lock taken
    /// once, never on the packet path.
    events: Mutex<Option<mpsc::UnboundedReceiver<MediaEvent>>>,
    /// `None` once shut down.
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    threads: Vec<ReceiveThread>,
    shutdown: watch::Sender<bool>,
    writer_control: Sender<WriterControl>,
    writer_data: Sender<Block>,
    writer: JoinHandle<()>,
    closer: JoinHandle<()>,
}

#[derive(Debug)]
struct ReceiveThread {
    commands: mpsc::UnboundedSender<ThreadCommand>,
    join: JoinHandle<()>,
}

/// A leg being recorded. Dropping it without [`MediaEngine::stop_leg`] ends the leg at that moment
/// (the file is closed and [`MediaEvent::LegClosed`] sent all the same).
#[derive(Debug)]
pub struct LegHandle {
    id: LegId,
    label: String,
    port: u16,
    commands: mpsc::UnboundedSender<LegCommand>,
}

impl LegHandle {
    /// The leg's id in [`MediaEvent`]s.
    pub fn id(&self) -> LegId {
        self.id
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The RTP port the leg receives on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl MediaEngine {
    /// Validates the configuration and starts the receive threads and the writer thread.
    pub fn start(config: MediaConfig) -> Result<MediaEngine> {
        config.validate()?;
        let ports = PortPool::new(config.bind_ip, config.port_min, config.port_max)?;
        let stats = Arc::new(SharedStats::default());
        let (writer_control, control_rx) = unbounded();
        let (writer_data, data_rx) = bounded(config.writer_queue_blocks);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (events, events_rx) = mpsc::unbounded_channel();

        let mut recycle_senders = Vec::new();
        let mut setups = Vec::new();
        for index in 0..config.receive_threads {
            let (recycle, recycled) = bounded(config.writer_queue_blocks.min(1024));
            recycle_senders.push(recycle);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| Error::Spawn {
                    name: format!("rtp-receive-{index}"),
                    source,
                })?;
            let (commands, commands_rx) = mpsc::unbounded_channel();
            setups.push((
                commands,
                ThreadSetup {
                    index,
                    runtime,
                    commands: commands_rx,
                    shutdown: shutdown_rx.clone(),
                    writer_control: writer_control.clone(),
                    writer_data: writer_data.clone(),
                    recycled,
                    stats: Arc::clone(&stats),
                    events: events.clone(),
                },
            ));
        }

        let (to_closer, closed) = unbounded();
        let closer = {
            let (events, stats) = (events.clone(), Arc::clone(&stats));
            spawn("leg-closer".to_owned(), move || {
                writer::run_closer(closed, events, stats);
            })?
        };
        let writer = Writer::new(
            recycle_senders,
            Arc::clone(&stats),
            events,
            to_closer,
            MAX_RIFF_SIZE,
        );
        let writer = spawn("leg-writer".to_owned(), move || {
            writer::run(writer, control_rx, data_rx);
        })?;
        let mut threads = Vec::new();
        let mut running = Running {
            threads: Vec::new(),
            shutdown,
            writer_control,
            writer_data,
            writer,
            closer,
        };
        for (commands, setup) in setups {
            let name = format!("rtp-receive-{}", setup.index);
            match spawn(name, move || receive::run(setup)) {
                Ok(join) => threads.push(ReceiveThread { commands, join }),
                Err(error) => {
                    running.threads = threads;
                    stop(running);
                    return Err(error);
                }
            }
        }
        running.threads = threads;
        tracing::info!(
            receive_threads = config.receive_threads,
            port_pairs = ports.total(),
            data_dir = %config.data_dir.display(),
            "media engine started"
        );
        Ok(MediaEngine {
            config,
            ports,
            stats,
            next_leg: AtomicU64::new(1),
            next_thread: AtomicUsize::new(0),
            events: Mutex::new(Some(events_rx)),
            running: Some(running),
        })
    }

    /// Reserves an RTP port (even) and its RTCP port (+1), binding both sockets now.
    /// [`Error::NoFreePorts`] when the range is exhausted (→ 503 upstream).
    pub fn allocate(&self) -> Result<PortReservation> {
        self.ports.allocate()
    }

    /// Starts recording on a reserved port. The file is created on the writer thread, with
    /// `create_new`: if the path exists (or the file cannot be created) the leg still runs, but
    /// [`MediaEvent::LegFailed`] comes at once and nothing is written. Once this returns `Ok`,
    /// exactly one [`MediaEvent::LegClosed`] follows for the leg.
    pub fn start_leg(&self, reservation: PortReservation, spec: LegSpec) -> Result<LegHandle> {
        let (start, handle) = self.prepare(reservation, spec)?;
        self.hand_over(vec![start], |mut one| {
            ThreadCommand::Start(one.pop().expect("one leg"))
        })?;
        Ok(handle)
    }

    /// Starts two legs of one relayed call (pass-through recording): each records what its
    /// far side sends, as [`MediaEngine::start_leg`] does, and forwards every datagram it
    /// admits (RTP and RTCP, RFC 4733 events included, unchanged) out of the other leg's
    /// socket to the other far side: its SDP address ([`LegSpec::sources`] `connection` and
    /// `port`, RTCP on the next port) until that side's own packets show where it really is
    /// (symmetric RTP). Both legs run on one receive thread, which forwards from the thread that
    /// received: no lock, no copy and no allocation per packet.
    pub fn start_relay(
        &self,
        a: (PortReservation, LegSpec),
        b: (PortReservation, LegSpec),
    ) -> Result<(LegHandle, LegHandle)> {
        let (start_a, handle_a) = self.prepare(a.0, a.1)?;
        let (start_b, handle_b) = match self.prepare(b.0, b.1) {
            Ok(prepared) => prepared,
            Err(error) => {
                self.abandon(start_a);
                return Err(error);
            }
        };
        self.hand_over(vec![start_a, start_b], |a| {
            let mut pair = a.into_iter();
            ThreadCommand::StartPair(
                pair.next().expect("a pair holds two legs"),
                pair.next().expect("a pair holds two legs"),
            )
        })?;
        Ok((handle_a, handle_b))
    }

    /// A leg's stream and the writer's file, ready to hand to a receive thread.
    fn prepare(
        &self,
        reservation: PortReservation,
        spec: LegSpec,
    ) -> Result<(Box<LegStart>, LegHandle)> {
        let running = self.running.as_ref().ok_or(Error::ShutDown)?;
        check_relative(&spec.path)?;
        let leg = LegId(self.next_leg.fetch_add(1, Ordering::Relaxed));
        let port = reservation.port();
        let stream = Stream::new(
            leg,
            &spec,
            self.config.jitter_window,
            self.config.bind_to_source,
            self.config.conceal_loss,
        );
        let sample_rate = stream.sample_rate();
        let path = self.config.data_dir.join(&spec.path);
        let (commands, commands_rx) = mpsc::unbounded_channel();

        // Open goes first: the writer must know the leg before any of its blocks arrive.
        running
            .writer_control
            .send(WriterControl::Open {
                leg,
                call: spec.call.clone(),
                label: spec.label.clone(),
                path,
                sample_rate,
                record: spec.record,
            })
            .map_err(|_| Error::ShutDown)?;
        self.stats.active_legs.fetch_add(1, Ordering::Relaxed);
        self.stats.legs_started.fetch_add(1, Ordering::Relaxed);
        self.stats.codecs.leg_started(spec.codec);
        tracing::debug!(
            call_id = %spec.call.call_id,
            recording_id = %spec.call.recording_id,
            %leg,
            label = %spec.label,
            port,
            "leg started"
        );
        Ok((
            Box::new(LegStart {
                leg,
                reservation,
                stream,
                commands: commands_rx,
            }),
            LegHandle {
                id: leg,
                label: spec.label,
                port,
                commands,
            },
        ))
    }

    /// Sends prepared legs to the next receive thread; if it is gone (the engine is being torn
    /// down) their files, just opened, are closed empty.
    fn hand_over(
        &self,
        starts: Vec<Box<LegStart>>,
        command: impl FnOnce(Vec<Box<LegStart>>) -> ThreadCommand,
    ) -> Result<()> {
        let running = self.running.as_ref().ok_or(Error::ShutDown)?;
        let index = self.next_thread.fetch_add(1, Ordering::Relaxed) % running.threads.len();
        match running.threads[index].commands.send(command(starts)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(ThreadCommand::Start(start))) => {
                self.abandon(start);
                Err(Error::ShutDown)
            }
            Err(mpsc::error::SendError(ThreadCommand::StartPair(a, b))) => {
                self.abandon(a);
                self.abandon(b);
                Err(Error::ShutDown)
            }
        }
    }

    fn abandon(&self, start: Box<LegStart>) {
        if let Some(running) = self.running.as_ref() {
            let _ = running.writer_control.send(WriterControl::Close {
                leg: start.leg,
                blocks_sent: 0,
                counters: Some(Box::new(start.stream.counters())),
            });
        }
    }

    /// Changes codecs, payload types, direction or allowed sources (re-INVITE). `active: false`
    /// (hold) keeps the leg growing with silence. The WAV keeps the rate it started with: audio of a codec with
    /// another rate is resampled to it (counted in [`crate::LegCounters::resampled_packets`]).
    pub fn update_leg(&self, leg: &LegHandle, update: LegUpdate) -> Result<()> {
        leg.commands
            .send(LegCommand::Update(Box::new(update)))
            .map_err(|_| Error::LegGone {
                label: leg.label.clone(),
            })
    }

    /// Stops the leg at `end`: the file is padded with silence (or cut) to `end - anchor`, its
    /// final header written, synced and hashed, and the ports are released. The report comes as
    /// [`MediaEvent::LegClosed`] when the file is closed. A leg that already ended (its thread
    /// gone) has sent or will send its `LegClosed` anyway.
    pub fn stop_leg(&self, leg: LegHandle, end: Instant) {
        if leg.commands.send(LegCommand::Stop { end }).is_err() {
            tracing::debug!(leg = %leg.id, "stop for a leg that already ended");
        }
    }

    /// The events of every leg (DTMF, inactivity, failed files, closed legs), for the control
    /// plane. The first call takes
    /// the receiver; later calls return `None`. Take it once at startup: until then events wait
    /// in the channel (a few dozen bytes per key press), and once it is dropped they are lost.
    pub fn events(&self) -> Option<mpsc::UnboundedReceiver<MediaEvent>> {
        // Poisoning cannot leave the Option half-written: take the value anyway.
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MediaStats {
        let free = self.ports.free_count();
        let (backlog, capacity) = self.running.as_ref().map_or((0, 0), |running| {
            (
                running.writer_data.len(),
                running.writer_data.capacity().unwrap_or(0),
            )
        });
        MediaStats {
            active_legs: self.stats.active_legs.load(Ordering::Relaxed),
            legs_started: self.stats.legs_started.load(Ordering::Relaxed),
            legs_finished: self.stats.legs_finished.load(Ordering::Relaxed),
            ports_in_use: self.ports.total() - free,
            ports_free: free,
            writer_backlog: backlog,
            writer_capacity: capacity,
            blocks_written: self.stats.blocks_written.load(Ordering::Relaxed),
            blocks_dropped: self.stats.blocks_dropped.load(Ordering::Relaxed),
            write_errors: self.stats.write_errors.load(Ordering::Relaxed),
            srtp_auth_failures: self.stats.srtp_auth_failures.load(Ordering::Relaxed),
            srtp_replayed: self.stats.srtp_replayed.load(Ordering::Relaxed),
            srtcp_auth_failures: self.stats.srtcp_auth_failures.load(Ordering::Relaxed),
            foreign_packets: self.stats.foreign_packets.load(Ordering::Relaxed),
            codecs: self.stats.codecs.snapshot(),
            disk_writes: self.stats.disk_writes.snapshot(),
        }
    }

    /// Ends every leg now, waits until each file is closed, synced and hashed, and stops the
    /// threads. Every leg's [`MediaEvent::LegClosed`] is in the event channel when this returns.
    /// Dropping the engine does the same.
    pub fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            stop(running);
        }
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            stop(running);
        }
    }
}

fn stop(running: Running) {
    let Running {
        threads,
        shutdown,
        writer_control,
        writer_data,
        writer,
        closer,
    } = running;
    let _ = shutdown.send(true);
    for thread in threads {
        drop(thread.commands);
        if thread.join.join().is_err() {
            tracing::error!("a receive thread panicked");
        }
    }
    // The writer ends when the last sender is gone, after closing every file.
    drop(writer_control);
    drop(writer_data);
    if writer.join().is_err() {
        tracing::error!("the writer thread panicked");
    }
    // The closer ends when the writer, its only sender, is gone.
    if closer.join().is_err() {
        tracing::error!("the closer thread panicked");
    }
    tracing::info!("media engine stopped");
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(body)
        .map_err(|source| Error::Spawn { name, source })
}

/// Leg paths come from the control plane, built from SIP input: they must stay inside data_dir.
fn check_relative(path: &Path) -> Result<()> {
    let inside = path.components().count() > 0
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if inside {
        Ok(())
    } else {
        Err(Error::InvalidPath {
            path: path.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leg_paths_stay_inside_the_data_dir() {
        assert!(check_relative(Path::new("recordings/2026/11/30/x/1.wav")).is_ok());
        assert!(check_relative(Path::new("./a.wav")).is_err());
        assert!(check_relative(Path::new("../a.wav")).is_err());
        assert!(check_relative(Path::new("a/../../b.wav")).is_err());
        assert!(check_relative(Path::new("/etc/passwd")).is_err());
        assert!(check_relative(Path::new("")).is_err());
    }

    #[test]
    fn engine_is_send_and_sync_and_handles_are_send() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<MediaEngine>();
        send::<LegHandle>();
        send::<MediaEvent>();
        send::<PortReservation>();
    }
}
