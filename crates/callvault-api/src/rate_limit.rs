//! Rate limits: the sign-in limit, a token bucket (GCRA, `governor`) per client address and
//! another per user name; and [`ClientLimiter`], one bucket per client address, for the public
//! share pages. Sign-in: An attempt must pass both; each attempt, right or wrong, takes a token from each.
//! The per-name bucket slows a guesser who spreads over many addresses; the price is that
//! someone hammering a name makes its owner wait too (never longer than a token's refill),
//! which bearer tokens do not suffer.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::Clock as _;
use governor::{Quota, RateLimiter};

use crate::clock::Clock;
use crate::error::{Error, Result};

/// The API's clock as governor reads it (so tests move the limit's time by hand too).
#[derive(Clone)]
struct MonotonicOf(Arc<dyn Clock>);

impl governor::clock::Clock for MonotonicOf {
    type Instant = Instant;

    fn now(&self) -> Instant {
        self.0.instant()
    }
}

type Keyed<K> = RateLimiter<
    K,
    governor::state::keyed::HashMapStateStore<K>,
    MonotonicOf,
    governor::middleware::NoOpMiddleware<Instant>,
>;

/// Buckets above which idle ones are dropped (a bucket refilled to full is the same as none).
const SWEEP_ABOVE: usize = 10_000;

pub(crate) struct LoginLimiter {
    by_client: Keyed<Option<IpAddr>>,
    by_user: Keyed<String>,
    clock: MonotonicOf,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter").finish_non_exhaustive()
    }
}

impl LoginLimiter {
    pub(crate) fn new(per_client: NonZeroU32, per_user: NonZeroU32, clock: Arc<dyn Clock>) -> Self {
        let clock = MonotonicOf(clock);
        LoginLimiter {
            by_client: RateLimiter::hashmap_with_clock(
                Quota::per_minute(per_client),
                clock.clone(),
            ),
            by_user: RateLimiter::hashmap_with_clock(Quota::per_minute(per_user), clock.clone()),
            clock,
        }
    }

    /// Takes a token for an attempt by `client` as `user`, or says how long to wait.
    pub(crate) fn attempt(&self, client: Option<IpAddr>, user: &str) -> Result<()> {
        if self.by_client.len() > SWEEP_ABOVE || self.by_user.len() > SWEEP_ABOVE {
            self.by_client.retain_recent();
            self.by_user.retain_recent();
        }
        let now = self.clock.now();
        let wait = |not_until: governor::NotUntil<Instant>| Error::RateLimited {
            retry_after: not_until.wait_time_from(now).max(Duration::from_secs(1)),
        };
        self.by_client.check_key(&client).map_err(wait)?;
        // A name is compared as typed: `Alice` and `alice` are two buckets, as they are two
        // (possible) users. Bounded so a huge name costs nothing to keep.
        let user: String = user.chars().take(64).collect();
        self.by_user.check_key(&user).map_err(wait)?;
        Ok(())
    }
}

/// One bucket per client address (the public share pages: nobody signs in there, so the
/// address is all there is to limit by).
pub(crate) struct ClientLimiter {
    by_client: Keyed<Option<IpAddr>>,
    clock: MonotonicOf,
}

impl std::fmt::Debug for ClientLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLimiter").finish_non_exhaustive()
    }
}

impl ClientLimiter {
    pub(crate) fn new(per_minute: NonZeroU32, clock: Arc<dyn Clock>) -> Self {
        let clock = MonotonicOf(clock);
        ClientLimiter {
            by_client: RateLimiter::hashmap_with_clock(
                Quota::per_minute(per_minute),
                clock.clone(),
            ),
            clock,
        }
    }

    /// Takes a token for a request from `client`, or says how long to wait.
    pub(crate) fn check(&self, client: Option<IpAddr>) -> Result<()> {
        if self.by_client.len() > SWEEP_ABOVE {
            self.by_client.retain_recent();
        }
        let now = self.clock.now();
        self.by_client
            .check_key(&client)
            .map_err(|not_until| Error::RateLimited {
                retry_after: not_until.wait_time_from(now).max(Duration::from_secs(1)),
            })
    }
}
