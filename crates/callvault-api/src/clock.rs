//! Time as an input: the wall clock stamps audit entries and changes, the monotonic clock
//! drives session expiry and the sign-in rate limit. Tests pass a clock they move by hand.

use std::time::Instant;

use time::OffsetDateTime;

/// Where the API reads the time.
pub trait Clock: Send + Sync + 'static {
    /// Now, UTC.
    fn now(&self) -> OffsetDateTime;
    /// Now, monotonic.
    fn instant(&self) -> Instant;
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}
