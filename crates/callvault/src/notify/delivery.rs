//! One receiver's delivery task: POSTs each waiting delivery until the receiver answers 2xx,
//! oldest first, one at a time, each failed delivery waiting its own back-off (so one body a
//! receiver keeps refusing does not hold up the others). It owns nothing but its outbox: the
//! SIP loop and the archive never wait on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::outbox::{Outbox, Queued};
use super::{NotifyStats, NotifyTarget};

/// The header names, a contract with receivers (README).
pub const SIGNATURE_HEADER: &str = "X-Callvault-Signature";
pub const EVENT_HEADER: &str = "X-Callvault-Event";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
pub const ATTEMPT_HEADER: &str = "X-Callvault-Attempt";

/// The HTTP client every receiver shares (connection pools per host). Redirects are not
/// followed: a signed body goes to the configured URL or nowhere.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(format!("callvault/{}", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

/// `sha256=HEX`: the HMAC-SHA256 of `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait after the `failures`-th failure in a row: `initial` doubled each time, at most
/// `max`.
pub fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    initial.saturating_mul(1 << doublings).min(max)
}

struct Pending {
    key: String,
    queued_at_ms: i64,
    failures: u32,
    next_at: Instant,
}

pub struct Deliverer {
    /// The receiver's settings, as the last reload left them.
    settings: watch::Receiver<NotifyTarget>,
    /// Those of the attempt under way.
    target: NotifyTarget,
    outbox: Outbox,
    client: reqwest::Client,
    stats: Arc<NotifyStats>,
    pending: Vec<Pending>,
}

impl Deliverer {
    /// `waiting`: what the outbox held at start (counted as pending here).
    pub fn new(
        settings: watch::Receiver<NotifyTarget>,
        outbox: Outbox,
        client: reqwest::Client,
        stats: Arc<NotifyStats>,
        waiting: Vec<Queued>,
    ) -> Deliverer {
        let target = settings.borrow().clone();
        let mut deliverer = Deliverer {
            settings,
            target,
            outbox,
            client,
            stats,
            pending: Vec::new(),
        };
        for queued in waiting {
            deliverer.stats.pending.fetch_add(1, Ordering::Relaxed);
            deliverer.add(queued);
        }
        deliverer
    }

    fn add(&mut self, queued: Queued) {
        if self.pending.iter().any(|p| p.key == queued.key) {
            return;
        }
        self.pending.push(Pending {
            key: queued.key,
            queued_at_ms: queued.queued_at_ms,
            failures: 0,
            next_at: Instant::now(),
        });
    }

    pub async fn run(mut self, mut woken: mpsc::UnboundedReceiver<Queued>) {
        let mut open = true;
        loop {
            while let Ok(queued) = woken.try_recv() {
                self.add(queued);
            }
            let now = Instant::now();
            let due = self
                .pending
                .iter()
                .enumerate()
                .filter(|(_, p)| p.next_at <= now)
                .min_by(|(_, a), (_, b)| (a.queued_at_ms, &a.key).cmp(&(b.queued_at_ms, &b.key)))
                .map(|(index, _)| index);
            if let Some(index) = due {
                self.attempt(index).await;
                continue;
            }
            if !open && self.pending.is_empty() {
                return;
            }
            let wake_at = self.pending.iter().map(|p| p.next_at).min();
            tokio::select! {
                queued = woken.recv(), if open => match queued {
                    Some(queued) => self.add(queued),
                    None => open = false,
                },
                () = sleep_until(wake_at) => {}
            }
        }
    }

    async fn attempt(&mut self, index: usize) {
        if self.settings.has_changed().unwrap_or(false) {
            self.target = self.settings.borrow_and_update().clone();
        }
        let key = self.pending[index].key.clone();
        let outbox = self.outbox.clone();
        let read_key = key.clone();
        let stored = match tokio::task::spawn_blocking(move || outbox.read(&read_key)).await {
            Ok(Ok(stored)) => stored,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                // Removed by hand: nothing to deliver.
                self.forget(index);
                return;
            }
            Ok(Err(e)) => return self.failed(index, format!("reading the outbox: {e}")),
            Err(e) => return self.failed(index, e.to_string()),
        };
        if stored.key != key {
            self.forget(index);
            return;
        }
        let attempt = self.pending[index].failures + 1;
        let mut request = self
            .client
            .post(&self.target.url)
            .timeout(self.target.timeout())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, stored.event.as_str())
            .header(IDEMPOTENCY_HEADER, &key)
            .header(ATTEMPT_HEADER, attempt.to_string());
        if let Some(secret) = &self.target.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, stored.body.as_bytes()));
        }
        match request.body(stored.body).send().await {
            Ok(response) if response.status().is_success() => {
                let outbox = self.outbox.clone();
                let removed = key.clone();
                match tokio::task::spawn_blocking(move || outbox.remove(&removed)).await {
                    Ok(Ok(())) => {}
                    // Delivered all the same; it may be delivered again after a restart.
                    Ok(Err(e)) => {
                        warn!(delivery = %key, error = %e, "a delivered webhook's file could not be removed")
                    }
                    Err(e) => {
                        warn!(delivery = %key, error = %e, "a delivered webhook's file could not be removed")
                    }
                }
                info!(
                    url = %self.target.shown_url(),
                    delivery = %key,
                    status = response.status().as_u16(),
                    attempt,
                    "webhook delivered"
                );
                self.stats.delivered_total.fetch_add(1, Ordering::Relaxed);
                self.forget(index);
            }
            Ok(response) => self.failed(index, format!("answered {}", response.status())),
            Err(e) => self.failed(index, error_text(e)),
        }
    }

    fn forget(&mut self, index: usize) {
        self.pending.swap_remove(index);
        self.stats.pending.fetch_sub(1, Ordering::Relaxed);
    }

    fn failed(&mut self, index: usize, error: String) {
        self.stats
            .failed_attempts_total
            .fetch_add(1, Ordering::Relaxed);
        let pending = &mut self.pending[index];
        pending.failures = pending.failures.saturating_add(1);
        let wait = backoff(
            self.target.retry_initial(),
            self.target.retry_max(),
            pending.failures,
        );
        pending.next_at = Instant::now() + wait;
        // The first failure, then ever more rarely: a dead receiver does not flood the log.
        if pending.failures.is_power_of_two() {
            warn!(
                url = %self.target.shown_url(),
                delivery = %pending.key,
                failures = pending.failures,
                retry_in_ms = wait.as_millis() as u64,
                %error,
                "webhook delivery failed; retrying"
            );
        }
    }
}

/// reqwest's error with its causes (a connect error's reason is in a source), without the URL
/// (its query may hold a token: logs show `shown_url` only).
fn error_text(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_back_off_doubles_up_to_its_ceiling() {
        let s = Duration::from_secs;
        let waits: Vec<Duration> = (1..=8).map(|n| backoff(s(1), s(60), n)).collect();
        assert_eq!(waits, [s(1), s(2), s(4), s(8), s(16), s(32), s(60), s(60)]);
        assert_eq!(backoff(s(1), s(60), u32::MAX), s(60));
    }
}
