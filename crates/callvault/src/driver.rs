//! The SIP driver loop: the one task that owns the sans-IO [`Endpoint`] and [`Recorder`].
//!
//! Each turn handles one input to completion (a message, a media report, a timer, the
//! once-a-second housekeeping), then pumps: endpoint events to the recorder, transmits to the
//! transports, catalog writes to the archive. Every output is a synchronous enqueue — the loop
//! never awaits the network, the disk or the database — so one slow, dead or hostile peer costs
//! only its own calls, never everyone's signalling. No other task touches SIP state, so there
//! are no locks around it.
//!
//! Shutdown: the recorder stops taking calls (INVITE and OPTIONS get 503), sends every session a
//! BYE and stops its legs; the loop keeps running — answering, retransmitting, collecting the
//! legs' closed files — until every session is complete and every BYE answered, or the grace
//! period ends (files still closing get a further bounded wait: they are never abandoned early).

use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault_sip::{Endpoint, EndpointStats, Event};
use callvault_sip_transport::{TransportEvent, Transports};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::archive::ArchiveQueue;
use crate::health::Health;
use crate::metrics::CallMetrics;
use crate::recorder::{ControlError, MediaPlane, Now, Recorder};
use crate::sources::SourceGate;
use crate::storage::StorageStatus;
use callvault_media::MediaEvent;

/// Time allowed, after the BYE deadline, for legs' files to close before the loop gives up on
/// them (they are then finalised by the media engine's own shutdown, without a catalog row
/// update).
const CLOSE_FILES_WAIT: Duration = Duration::from_secs(30);

/// What other tasks (the HTTP API) ask of live recordings; each request carries its reply.
#[derive(Debug)]
pub enum Control {
    Pause {
        recording_id: String,
        by: String,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    Resume {
        recording_id: String,
        by: String,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
}

/// A cheap handle to ask the SIP loop to pause or resume a live recording.
#[derive(Clone, Debug)]
pub struct LiveControl {
    tx: mpsc::Sender<Control>,
}

impl LiveControl {
    /// The handle and the receiver `Driver::run` reads. The queue is small: these are human
    /// clicks, and a full queue answers "try again" rather than growing.
    pub fn channel() -> (LiveControl, mpsc::Receiver<Control>) {
        let (tx, rx) = mpsc::channel(256);
        (LiveControl { tx }, rx)
    }

    pub async fn pause(&self, recording_id: &str, by: &str) -> Result<(), ControlError> {
        self.ask(|reply| Control::Pause {
            recording_id: recording_id.to_owned(),
            by: by.to_owned(),
            reply,
        })
        .await
    }

    pub async fn resume(&self, recording_id: &str, by: &str) -> Result<(), ControlError> {
        self.ask(|reply| Control::Resume {
            recording_id: recording_id.to_owned(),
            by: by.to_owned(),
            reply,
        })
        .await
    }

    async fn ask(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<(), ControlError>>) -> Control,
    ) -> Result<(), ControlError> {
        let (reply, answer) = oneshot::channel();
        // The loop gone (shutting down) or not answering: the recording is not live any more.
        self.tx
            .send(request(reply))
            .await
            .map_err(|_| ControlError::NotActive)?;
        answer.await.unwrap_or(Err(ControlError::NotActive))
    }
}

/// The HTTP API's pause and resume, answered by the SIP loop.
impl callvault_api::LiveRecordings for LiveControl {
    fn pause(
        &self,
        recording_id: &str,
        by: &str,
    ) -> callvault_api::BoxFuture<'_, Result<(), callvault_api::LiveError>> {
        let (recording_id, by) = (recording_id.to_owned(), by.to_owned());
        Box::pin(async move {
            LiveControl::pause(self, &recording_id, &by)
                .await
                .map_err(live_error)
        })
    }

    fn resume(
        &self,
        recording_id: &str,
        by: &str,
    ) -> callvault_api::BoxFuture<'_, Result<(), callvault_api::LiveError>> {
        let (recording_id, by) = (recording_id.to_owned(), by.to_owned());
        Box::pin(async move {
            LiveControl::resume(self, &recording_id, &by)
                .await
                .map_err(live_error)
        })
    }
}

fn live_error(error: ControlError) -> callvault_api::LiveError {
    match error {
        ControlError::NotActive => callvault_api::LiveError::NotActive,
        ControlError::AlreadyPaused => callvault_api::LiveError::AlreadyPaused,
        ControlError::NotPaused => callvault_api::LiveError::NotPaused,
    }
}

pub struct Driver<M: MediaPlane> {
    pub endpoint: Endpoint,
    pub recorder: Recorder<M>,
    /// Where transmits go: `send` is an enqueue, never a wait.
    pub transports: Transports,
    pub archive: ArchiveQueue,
    pub health: Arc<Health>,
    pub sip_stats: watch::Sender<EndpointStats>,
    /// How long shutdown waits for the answers to its BYEs.
    pub shutdown_grace: Duration,
    /// Drops SIP from sources outside the allow-list before the endpoint sees it.
    pub gate: SourceGate,
    /// Whether the catalog queue can take new recordings (`Err(why)` otherwise).
    pub catalog_verdict: Box<dyn Fn() -> Result<(), String> + Send>,
    /// Requests and responses by transport, for `/metrics`.
    pub calls: Arc<CallMetrics>,
    /// `true` while the node is drained (`callvault drain`: SIGUSR1; SIGUSR2 undoes it).
    pub drain: watch::Receiver<bool>,
}

impl<M: MediaPlane> Driver<M> {
    pub async fn run(
        mut self,
        mut incoming: mpsc::Receiver<TransportEvent>,
        mut media: mpsc::UnboundedReceiver<MediaEvent>,
        storage: watch::Receiver<StorageStatus>,
        mut control: mpsc::Receiver<Control>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining_until: Option<Instant> = None;
        self.apply_admission(&storage);
        loop {
            let wake = [self.endpoint.poll_timeout(), self.recorder.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                event = incoming.recv() => match event {
                    Some(TransportEvent::Message(message)) => {
                        if self.gate.admit(message.received_at, message.from.addr.ip()) {
                            self.endpoint.handle_input(message.received_at, message.from, &message.bytes);
                        }
                    }
                    Some(TransportEvent::Failed { to, cause }) => {
                        warn!(peer = %to.addr, transport = %to.transport, %cause, "SIP delivery failed");
                        self.endpoint.handle_transport_error(Instant::now(), &to);
                    }
                    None => break,
                },
                Some(event) = media.recv() => {
                    self.recorder.handle_media(Now::system(), &mut self.endpoint, event);
                }
                Some(request) = control.recv() => match request {
                    Control::Pause { recording_id, by, reply } => {
                        let _ = reply.send(self.recorder.pause(Now::system(), &recording_id, &by));
                    }
                    Control::Resume { recording_id, by, reply } => {
                        let _ = reply.send(self.recorder.resume(Now::system(), &recording_id, &by));
                    }
                },
                () = sleep_until(wake) => {
                    let now = Now::system();
                    self.endpoint.handle_timeout(now.at);
                    self.recorder.handle_timeout(now, &mut self.endpoint);
                }
                Ok(()) = self.drain.changed(), if draining_until.is_none() => {
                    let drained = *self.drain.borrow_and_update();
                    if drained {
                        info!("draining: new calls and OPTIONS get 503; calls in progress go on");
                    } else {
                        info!("drain cancelled: taking new calls again");
                    }
                    self.health.set_drained(drained);
                    self.recorder.set_drained(drained);
                    self.apply_admission(&storage);
                }
                _ = housekeeping.tick() => {
                    self.health.beat(Instant::now());
                    self.sip_stats.send_replace(self.endpoint.stats());
                    if draining_until.is_none() {
                        self.apply_admission(&storage);
                    }
                }
                () = &mut shutdown, if draining_until.is_none() => {
                    info!("shutting down: refusing new calls, sending BYE to every session");
                    self.health.set_draining();
                    self.health.set_refusals(vec!["shutting down".to_owned()]);
                    self.recorder.begin_shutdown(Now::system(), &mut self.endpoint);
                    draining_until = Some(Instant::now() + self.shutdown_grace);
                }
                () = sleep_until(draining_until.map(|at| at + CLOSE_FILES_WAIT)) => {
                    warn!("files still closing after the shutdown wait: stopping anyway");
                    break;
                }
            }
            self.pump();
            if let Some(deadline) = draining_until
                && self.recorder.is_drained()
            {
                let byes = self.recorder.unanswered_byes();
                if byes == 0 {
                    info!("every session ended and every BYE answered");
                    break;
                }
                if Instant::now() >= deadline {
                    warn!(
                        unanswered = byes,
                        "shutdown grace over: BYEs left unanswered"
                    );
                    break;
                }
            }
        }
        self.pump();
    }

    /// Storage and catalog health decide whether new calls are taken.
    fn apply_admission(&mut self, storage: &watch::Receiver<StorageStatus>) {
        let disk = storage.borrow().verdict.clone();
        let catalog = (self.catalog_verdict)();
        let reasons: Vec<String> = [disk, catalog]
            .into_iter()
            .filter_map(Result::err)
            .collect();
        self.recorder.set_storage(if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("; "))
        });
        let mut shown = reasons;
        if *self.drain.borrow() {
            shown.insert(0, "draining".to_owned());
        }
        self.health.set_refusals(shown);
    }

    /// Hands every endpoint event to the recorder, sends everything queued and passes catalog
    /// writes on, until all are idle. Nothing here waits.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(event) = self.endpoint.poll_event() {
                busy = true;
                if let Event::Request { request, from, .. } | Event::Ack { request, from } = &event
                {
                    self.calls
                        .request_received(from.transport, request.method());
                }
                self.recorder
                    .handle_sip(Now::system(), &mut self.endpoint, event);
            }
            while let Some(transmit) = self.endpoint.poll_transmit() {
                busy = true;
                self.calls.transmitted(&transmit);
                self.transports.send(transmit);
            }
            // After the transmits: the 200 OKs of these calls have just gone to the transports.
            while let Some((mode, received_at)) = self.recorder.poll_answered() {
                self.calls.answered(mode, received_at.elapsed());
            }
            while let Some(command) = self.recorder.poll_archive() {
                busy = true;
                self.archive.send(command);
            }
            if !busy {
                break;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
