//! What `/health` and `/ready` report, gathered where it lives: the SIP loop's heartbeat, the
//! catalog queue's state, the disk's state, and whether new calls are taken.
//!
//! - `/health` is liveness: 200 while the SIP loop turns (its heartbeat is recent), with each
//!   component's state; 503 when the loop has not turned for [`STALL_AFTER`] (a stuck loop
//!   answers no SIP at all: restart it).
//! - `/ready` is readiness: 200 while new calls are taken, 503 with the reasons while they are
//!   refused (shutting down, storage or catalog unhealthy, node full). An SBC's recording-server
//!   group sees the same through OPTIONS.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A SIP loop that has not turned for this long is stuck.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Milliseconds since `started` at the SIP loop's last turn.
    sip_heartbeat_ms: AtomicU64,
    draining: AtomicBool,
    /// Why new calls are refused; `None` while they are taken. Written once a second by the
    /// SIP loop, read by scrapes: a lock neither holds for long.
    refusals: Mutex<Vec<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            started: Instant::now(),
            sip_heartbeat_ms: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            refusals: Mutex::new(Vec::new()),
        }
    }
}

impl Health {
    /// The SIP loop turned at `now`.
    pub fn beat(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.started).as_millis() as u64;
        self.sip_heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    /// How long ago the SIP loop last turned.
    pub fn sip_silence(&self, now: Instant) -> Duration {
        let last = Duration::from_millis(self.sip_heartbeat_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(self.started)
            .saturating_sub(last)
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Drained by `callvault drain` (or no longer): `/health` says `draining`.
    pub fn set_drained(&self, drained: bool) {
        self.draining.store(drained, Ordering::Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn set_refusals(&self, reasons: Vec<String>) {
        *self.refusals.lock().unwrap_or_else(|p| p.into_inner()) = reasons;
    }

    pub fn refusals(&self) -> Vec<String> {
        self.refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_says_how_long_the_loop_has_been_silent() {
        let health = Health::default();
        let t0 = health.started;
        health.beat(t0 + Duration::from_secs(10));
        assert_eq!(
            health.sip_silence(t0 + Duration::from_secs(13)),
            Duration::from_secs(3)
        );
        health.beat(t0 + Duration::from_secs(13));
        assert_eq!(
            health.sip_silence(t0 + Duration::from_secs(13)),
            Duration::ZERO
        );
    }
}
