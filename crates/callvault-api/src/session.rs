//! Browser sessions: a random id in an HttpOnly cookie, a CSRF token the page holds, an
//! absolute expiry. Kept in this process's memory (see the crate notes for what that means:
//! a restart signs browsers out, several nodes need sticky routing or bearer tokens).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "callvault_session";
/// The header a cookie-authenticated request that changes something must carry, equal to the
/// `csrf_token` that sign-in (and `GET /api/v1/session`) returned.
pub const CSRF_HEADER: &str = "x-callvault-csrf";

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) csrf: String,
    expires: Instant,
}

/// Every live session of this process, by id.
#[derive(Debug)]
pub(crate) struct Sessions {
    lifetime: Duration,
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub(crate) fn new(lifetime: Duration) -> Sessions {
        Sessions {
            lifetime,
            by_id: Mutex::default(),
        }
    }

    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Starts a session for `user`: its id (the cookie's value) and the session.
    pub(crate) fn start(&self, user: &str, now: Instant) -> Result<(String, Session)> {
        let id = random_text()?;
        let session = Session {
            user: user.to_owned(),
            csrf: random_text()?,
            expires: now + self.lifetime,
        };
        let mut sessions = self.lock();
        // Sign-ins are rate-limited, so sweeping on each keeps the map to live sessions at a
        // cost that stays small.
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The session with this id, unless it expired (then it is forgotten).
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut sessions = self.lock();
        match sessions.get(id) {
            Some(session) if session.expires > now => Some(session.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session (sign-out).
    pub(crate) fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // Every critical section is a map operation that cannot leave it half-changed.
        self.by_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// 256 bits from the operating system, as base64url text.
fn random_text() -> Result<String> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(|source| Error::Random { source })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Compares two secrets in time that depends only on their lengths. Written here (a few
/// lines) rather than pulling a crate in for it.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lasts_its_lifetime_and_ends_on_sign_out() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let (id, session) = sessions.start("alice", t0).unwrap();
        assert_eq!(session.user, "alice");
        assert_ne!(id, session.csrf);
        assert_eq!(
            sessions.get(&id, t0 + Duration::from_secs(59)),
            Some(session)
        );
        assert_eq!(sessions.get(&id, t0 + Duration::from_secs(60)), None);
        let (other, _) = sessions.start("bob", t0).unwrap();
        assert!(sessions.get(&other, t0).is_some());
        sessions.end(&other);
        assert_eq!(sessions.get(&other, t0), None);
        assert_eq!(sessions.get("made-up", t0), None);
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
