//! Per-source limits on new calls: how many sessions one source address may hold, and how many
//! INVITEs per second it may send (a token bucket). Defaults sit above what one SBC carries (it
//! may carry a node's whole load), so they bite only when configured lower, or on a source
//! gone wild. Refusals are logged at most once a minute per source.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::warn;

const LOG_EVERY: Duration = Duration::from_secs(60);
/// Buckets kept; beyond it, full (idle) buckets are forgotten — they hold nothing a new one
/// would not.
const BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub(super) struct SourceLimits {
    /// Sessions (live and held) one source may have; `usize::MAX`: no limit of its own.
    pub(super) max_sessions: usize,
    /// New INVITEs per second (and the bucket's size); 0: no limit.
    pub(super) invites_per_second: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Why a source's INVITE is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceRefusal {
    TooManySessions,
    TooManyInvites,
}

#[derive(Debug)]
pub(super) struct SourceAdmission {
    limits: SourceLimits,
    buckets: HashMap<IpAddr, Bucket>,
    logged: HashMap<IpAddr, Instant>,
}

impl SourceAdmission {
    pub(super) fn new(limits: SourceLimits) -> SourceAdmission {
        SourceAdmission {
            limits,
            buckets: HashMap::new(),
            logged: HashMap::new(),
        }
    }

    /// Whether a new INVITE from `source`, which holds `sessions` now, may start a call. Takes
    /// a token when it may.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        source: IpAddr,
        sessions: usize,
    ) -> Result<(), SourceRefusal> {
        let refusal = if sessions >= self.limits.max_sessions {
            Some(SourceRefusal::TooManySessions)
        } else if !self.take_token(now, source) {
            Some(SourceRefusal::TooManyInvites)
        } else {
            None
        };
        let Some(refusal) = refusal else {
            return Ok(());
        };
        if self.logged.len() >= BUCKETS {
            self.logged.clear();
        }
        let due = self
            .logged
            .get(&source)
            .is_none_or(|last| now.saturating_duration_since(*last) >= LOG_EVERY);
        if due {
            self.logged.insert(source, now);
            warn!(%source, ?refusal, sessions, "a source is over its limit: its new calls get 503 (logged once a minute)");
        }
        Err(refusal)
    }

    fn take_token(&mut self, now: Instant, source: IpAddr) -> bool {
        let rate = self.limits.invites_per_second;
        if rate == 0 {
            return true;
        }
        let capacity = f64::from(rate);
        if self.buckets.len() >= BUCKETS && !self.buckets.contains_key(&source) {
            self.buckets.retain(|_, bucket| {
                let refilled = bucket.tokens
                    + now.saturating_duration_since(bucket.at).as_secs_f64() * capacity;
                refilled < capacity
            });
        }
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * capacity).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_sessions: usize, invites_per_second: u32) -> SourceAdmission {
        SourceAdmission::new(SourceLimits {
            max_sessions,
            invites_per_second,
        })
    }

    #[test]
    fn a_source_gets_its_rate_in_bursts_and_refills_over_time() {
        let mut admission = admission(usize::MAX, 10);
        let sbc: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(admission.admit(t0, sbc, 0), Ok(()));
        }
        assert_eq!(
            admission.admit(t0, sbc, 0),
            Err(SourceRefusal::TooManyInvites)
        );
        assert_eq!(
            admission.admit(t0, other, 0),
            Ok(()),
            "each source has its own bucket"
        );
        assert_eq!(
            admission.admit(t0 + Duration::from_millis(100), sbc, 0),
            Ok(()),
            "a tenth of a second brings one token back"
        );
        assert!(
            admission
                .admit(t0 + Duration::from_millis(100), sbc, 0)
                .is_err()
        );
        for _ in 0..10 {
            assert_eq!(admission.admit(t0 + Duration::from_secs(5), sbc, 0), Ok(()));
        }
    }

    #[test]
    fn a_source_holding_its_sessions_is_refused_others_are_not() {
        let mut admission = admission(3, 0);
        let t0 = Instant::now();
        let sbc: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(admission.admit(t0, sbc, 2), Ok(()));
        assert_eq!(
            admission.admit(t0, sbc, 3),
            Err(SourceRefusal::TooManySessions)
        );
        assert_eq!(admission.admit(t0, "192.0.2.9".parse().unwrap(), 0), Ok(()));
    }

    #[test]
    fn a_spoofed_flood_cannot_grow_the_buckets_for_ever() {
        let mut admission = admission(usize::MAX, 5);
        let t0 = Instant::now();
        for n in 0..(BUCKETS as u32 * 2) {
            let source = IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + n));
            let _ = admission.admit(t0 + Duration::from_secs(u64::from(n)), source, 0);
        }
        assert!(admission.buckets.len() <= BUCKETS + 1);
    }
}
