//! systemd's service notifications (`Type=notify`): `READY=1` once SIP, media, the catalog and
//! HTTP are up, `STOPPING=1` when shutdown begins, and `WATCHDOG=1` while the SIP loop turns,
//! when the unit asks for a watchdog (`WatchdogSec=`). Without `$NOTIFY_SOCKET` (not started by
//! systemd) each is a no-op.
//!
//! The `sd-notify` crate writes the datagram (pure Rust, no libsystemd): one message, a few
//! bytes, only at those moments.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::{debug, warn};

use crate::health::{Health, STALL_AFTER};

/// Tells systemd the server is up; `status` is what `systemctl status` shows.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the server is shutting down (draining its calls).
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("shutting down: ending every call"),
    ]);
}

/// With `WatchdogSec=` in the unit: pings systemd at half the interval while the SIP loop's
/// heartbeat is recent, and stops pinging when it stalls, so systemd restarts a stuck server.
pub fn watchdog(health: Arc<Health>) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    debug!(every_ms = every.as_millis() as u64, "systemd watchdog on");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if health.sip_silence(Instant::now()) < STALL_AFTER {
                send(&[NotifyState::Watchdog]);
            }
        }
    });
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        warn!(error = %e, "cannot notify systemd ($NOTIFY_SOCKET)");
    }
}
