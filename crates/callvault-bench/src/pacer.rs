//! The media sender: one thread that sends every active stream's next 20 ms packet on a
//! common 20 ms tick, from each stream's own socket (the server accepts a stream's media
//! from the address its offer names).
//!
//! It also marks the measurement window: from the first tick after every stream is sending
//! (all calls set up) to the first tick after one stream has sent its last packet. Inside it
//! the load is exactly `streams × 50` packets a second, and it reads the measured process at
//! both edges, so "CPU per packet" divides the CPU of that window by the packets sent in it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use callvault_client::rtp::RtpStream;
use tokio::sync::oneshot;

use crate::proc_stats::Sample;

pub(crate) const PTIME: Duration = Duration::from_millis(20);

/// One stream handed to the pacer: it sends `packets` packets, then reports how many went out.
/// Its socket is connected to the stream's target: the kernel looks the route up once, not per
/// packet (on loopback the sender also pays the receiver's side of the stack, so the generator
/// needs every saving to offer 100,000 packets a second on two cores).
pub(crate) struct Outgoing {
    socket: UdpSocket,
    stream: RtpStream,
    left: u32,
    sent: u32,
    done: oneshot::Sender<u32>,
}

impl Outgoing {
    pub(crate) fn new(
        socket: UdpSocket,
        target: SocketAddr,
        stream: RtpStream,
        packets: u32,
        done: oneshot::Sender<u32>,
    ) -> std::io::Result<Outgoing> {
        socket.connect(target)?;
        Ok(Outgoing {
            socket,
            stream,
            left: packets,
            sent: 0,
            done,
        })
    }
}

/// The full-load window, when there was one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub start: Sample,
    pub end: Sample,
    pub elapsed: Duration,
    /// Packets sent inside it.
    pub packets: u64,
    pub streams: usize,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub packets_sent: u64,
    pub send_errors: u64,
    /// The latest a tick started after its due time: above a few ms the generator itself could
    /// not keep up and the figures understate the load.
    pub worst_tick_lag: Duration,
    pub window: Option<Window>,
}

pub(crate) struct Pacer {
    thread: JoinHandle<Totals>,
}

impl Pacer {
    /// Starts the thread; `measured` is the process read at the window's edges. Streams are
    /// added through the returned sender (cloned per call); the window opens once every clone
    /// is dropped (no more streams are coming).
    pub(crate) fn start(measured: Option<u32>) -> (Pacer, mpsc::Sender<Outgoing>) {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || run(&rx, measured))
            .expect("a thread can be spawned");
        (Pacer { thread }, tx)
    }

    /// Waits until every stream has sent all its packets.
    pub(crate) fn finish(self) -> Totals {
        self.thread.join().expect("the pacer thread does not panic")
    }
}

fn run(incoming: &mpsc::Receiver<Outgoing>, measured: Option<u32>) -> Totals {
    let mut active: Vec<Outgoing> = Vec::new();
    let mut totals = Totals::default();
    let mut all_added = false;
    let mut finished_any = false;
    let mut opened: Option<(Sample, Instant, u64, usize)> = None;
    let mut due = Instant::now();
    loop {
        loop {
            match incoming.try_recv() {
                Ok(stream) => active.push(stream),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    all_added = true;
                    break;
                }
            }
        }
        if all_added && active.is_empty() {
            return totals;
        }
        let read = || measured.and_then(|pid| Sample::read(pid).ok());
        if all_added
            && !finished_any
            && opened.is_none()
            && !active.is_empty()
            && let Some(sample) = read()
        {
            opened = Some((sample, Instant::now(), totals.packets_sent, active.len()));
        }
        let mut index = 0;
        while index < active.len() {
            let out = &mut active[index];
            match out.socket.send(out.stream.audio()) {
                Ok(_) => {
                    totals.packets_sent += 1;
                    out.sent += 1;
                }
                Err(_) => totals.send_errors += 1,
            }
            out.left = out.left.saturating_sub(1);
            if out.left == 0 {
                let out = active.swap_remove(index);
                let _ = out.done.send(out.sent);
                finished_any = true;
            } else {
                index += 1;
            }
        }
        if finished_any
            && totals.window.is_none()
            && let Some((start, at, sent_before, streams)) = opened
            && let Some(end) = read()
        {
            totals.window = Some(Window {
                start,
                end,
                elapsed: at.elapsed(),
                packets: totals.packets_sent - sent_before,
                streams,
            });
        }
        due += PTIME;
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        } else {
            totals.worst_tick_lag = totals.worst_tick_lag.max(now - due);
        }
    }
}
