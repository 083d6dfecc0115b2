//! Session timers (RFC 4028) for a UAS that never refreshes: the recorder answers INVITE,
//! re-INVITE and UPDATE, lets the client refresh, and learns from the timer when a client that
//! vanished without a BYE has ended the session. Sans-IO: time is an input.

use crate::header::param;
use crate::message::Request;
use std::time::{Duration, Instant};

/// RFC 4028 §4: no Min-SE may be lower than 90 seconds.
const ABSOLUTE_MIN_SE: Duration = Duration::from_secs(90);

/// The recorder's session timer settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// The shortest session interval we accept (our Min-SE); a shorter `Session-Expires` is
    /// answered 422. Values below 90 s are raised to 90 s (RFC 4028 §4).
    pub min_se: Duration,
    /// Used only when the client supports the timer but sent no `Session-Expires`.
    pub default_interval: Duration,
}

impl Default for SessionTimerConfig {
    /// Min-SE 90 s; 1800 s by default, the interval RFC 4028 §4 recommends.
    fn default() -> Self {
        SessionTimerConfig {
            min_se: ABSOLUTE_MIN_SE,
            default_interval: Duration::from_secs(1800),
        }
    }
}

/// Who sends the refreshes (`refresher=` of Session-Expires).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// A session timer in force for one dialog. We are always the UAS and never the refresher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTimer {
    interval: Duration,
    requested_refresher: Option<Refresher>,
    last_refresh: Instant,
}

/// The outcome of [`negotiate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Negotiation {
    /// No session timer for this dialog: the 2xx carries no Session-Expires.
    NotUsed,
    /// Answer the 2xx with [`SessionTimer::response_headers`] and keep the timer.
    Accepted(SessionTimer),
    /// The Session-Expires is below our Min-SE: answer 422 with `Min-SE: <min_se in seconds>`
    /// (RFC 4028 §9) and do not change the dialog.
    TooSmall { min_se: Duration },
}

/// Negotiates the session timer of an INVITE / re-INVITE / UPDATE we are about to accept:
/// `Session-Expires` (compact `x`) with `;refresher=uac|uas`, `Min-SE`, and `timer` in
/// `Supported` (compact `k`) or `Require`.
///
/// * The client does not support the timer (no `timer` in Supported or Require): RFC 4028 §9
///   would make us the refresher, and a recorder sends no refreshes, so we do not impose a timer
///   even when a proxy inserted Session-Expires: [`Negotiation::NotUsed`] (a 2xx without
///   Session-Expires means no timer, §7.2 / §8.2).
/// * It supports it and sent Session-Expires below our Min-SE: [`Negotiation::TooSmall`].
/// * It supports it and sent Session-Expires: accepted with that interval.
/// * It supports it without Session-Expires: accepted with `config.default_interval`, raised to
///   our Min-SE and to the request's Min-SE (§9: never below the request's Min-SE).
///
/// A Session-Expires or Min-SE that is not a delta-seconds is ignored as if absent: a
/// recorder does not fail a call over a timer header. The TU calls this for every refresh too
/// and replaces its timer with the new one (the interval may change on a refresh).
pub fn negotiate(request: &Request, config: &SessionTimerConfig, now: Instant) -> Negotiation {
    let supports = has_option_tag(request, "supported", "timer")
        || has_option_tag(request, "require", "timer");
    if !supports {
        return Negotiation::NotUsed;
    }
    let our_min_se = config.min_se.max(ABSOLUTE_MIN_SE);
    let session_expires = request
        .header("session-expires")
        .and_then(|value| {
            let (delta, rest) = value.split_once(';').unwrap_or((value, ""));
            Some((delta_seconds(delta)?, rest))
        })
        .filter(|(interval, _)| !interval.is_zero());
    let (interval, requested_refresher) = match session_expires {
        Some((interval, _)) if interval < our_min_se => {
            return Negotiation::TooSmall { min_se: our_min_se };
        }
        Some((interval, rest)) => {
            let refresher = match param(rest, "refresher").flatten() {
                Some(r) if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
                Some(r) if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
                _ => None,
            };
            (interval, refresher)
        }
        None => {
            let request_min_se = request
                .header("min-se")
                .and_then(|v| delta_seconds(v.split(';').next().unwrap_or("")))
                .unwrap_or(Duration::ZERO);
            (
                config.default_interval.max(our_min_se).max(request_min_se),
                None,
            )
        }
    };
    Negotiation::Accepted(SessionTimer {
        interval,
        requested_refresher,
        last_refresh: now,
    })
}

impl SessionTimer {
    /// The session interval in force.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Always [`Refresher::Uac`]: a recorder never refreshes.
    pub fn refresher(&self) -> Refresher {
        Refresher::Uac
    }

    /// The `refresher=` the client asked for, if any (for logs; see [`Self::response_headers`]).
    pub fn requested_refresher(&self) -> Option<Refresher> {
        self.requested_refresher
    }

    /// Headers for our 2xx: `Session-Expires: N;refresher=uac` and `Require: timer` (RFC 4028
    /// §9: the UAS sets the refresher and requires the extension of a UAC that supports it).
    ///
    /// Always `refresher=uac`: we send no re-INVITE or UPDATE, and a timer only exists when the
    /// client supports it (see [`negotiate`]), so the client can refresh. When the client asked
    /// for `refresher=uas`, §9 says the UAS copies it; we answer `uac` instead, which the UAC
    /// follows (§7.2: the 2xx decides), rather than promise refreshes we would never send.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "Session-Expires",
                format!("{};refresher=uac", self.interval.as_secs()),
            ),
            ("Require", String::from("timer")),
        ]
    }

    /// Called on every accepted refresh (re-INVITE/UPDATE): the deadline moves to `now` plus
    /// the interval less the margin.
    pub fn refreshed(&mut self, now: Instant) {
        self.last_refresh = now;
    }

    /// When to end the session (send BYE) if no refresh arrived: RFC 4028 §10, "If the side not
    /// performing refreshes does not receive a session refresh request before the session
    /// expiration, it SHOULD send a BYE ... slightly before the session expiration. The minimum
    /// of 32 seconds and one third of the session interval is RECOMMENDED." So the last refresh
    /// (or the 2xx) plus the interval minus min(32 s, interval / 3).
    pub fn deadline(&self) -> Instant {
        let margin = Duration::from_secs(32).min(self.interval / 3);
        self.last_refresh + (self.interval - margin)
    }
}

/// Whether any `name` header lists `tag` (case-insensitive, comma-separated, several fields).
fn has_option_tag(request: &Request, name: &str, tag: &str) -> bool {
    request
        .header_values(name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(tag))
}

/// `delta-seconds` (RFC 3261 §25.1: 1*DIGIT), at most a 32-bit count of seconds.
fn delta_seconds(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value
        .parse::<u32>()
        .ok()
        .map(|s| Duration::from_secs(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn request(method: &str, extra: &str) -> Request {
        let text = format!(
            "{method} sip:srs@192.0.2.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
             From: <sip:src@example.com>;tag=a\r\nTo: <sip:srs@192.0.2.1>\r\n\
             Call-ID: st-1\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match Message::parse(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("a request"),
        }
    }

    fn accepted(n: Negotiation) -> SessionTimer {
        match n {
            Negotiation::Accepted(timer) => timer,
            other => panic!("expected Accepted, got {other:?}"),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn no_timer_headers_means_no_timer() {
        let config = SessionTimerConfig::default();
        let t0 = Instant::now();
        assert_eq!(
            negotiate(&request("INVITE", ""), &config, t0),
            Negotiation::NotUsed
        );
        assert_eq!(
            negotiate(
                &request("INVITE", "Supported: 100rel, replaces\r\n"),
                &config,
                t0
            ),
            Negotiation::NotUsed
        );
    }

    #[test]
    fn session_expires_without_client_support_is_not_imposed() {
        // A proxy inserted it (RFC 4028 §8): §9 would make us the refresher; we never refresh.
        let config = SessionTimerConfig::default();
        let r = request("INVITE", "Session-Expires: 1800\r\n");
        assert_eq!(negotiate(&r, &config, Instant::now()), Negotiation::NotUsed);
        // Not even a too-small one is rejected: without support the client cannot retry.
        let r = request("INVITE", "Session-Expires: 30\r\n");
        assert_eq!(negotiate(&r, &config, Instant::now()), Negotiation::NotUsed);
    }

    #[test]
    fn session_expires_with_and_without_refresher() {
        let config = SessionTimerConfig::default();
        let t0 = Instant::now();
        let timer = accepted(negotiate(
            &request("INVITE", "Supported: timer\r\nSession-Expires: 1800\r\n"),
            &config,
            t0,
        ));
        assert_eq!(timer.interval(), secs(1800));
        assert_eq!(timer.requested_refresher(), None);
        assert_eq!(timer.refresher(), Refresher::Uac);

        let timer = accepted(negotiate(
            &request(
                "INVITE",
                "Supported: replaces, TIMER\r\nSession-Expires: 600 ; Refresher = UAS\r\n",
            ),
            &config,
            t0,
        ));
        assert_eq!(timer.interval(), secs(600));
        assert_eq!(timer.requested_refresher(), Some(Refresher::Uas));
        assert_eq!(
            timer.response_headers(),
            [
                ("Session-Expires", String::from("600;refresher=uac")),
                ("Require", String::from("timer")),
            ],
            "a recorder never takes the refresher role"
        );

        let timer = accepted(negotiate(
            &request(
                "UPDATE",
                "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
            ),
            &config,
            t0,
        ));
        assert_eq!(timer.interval(), secs(90), "exactly Min-SE is accepted");
        assert_eq!(timer.requested_refresher(), Some(Refresher::Uac));
    }

    #[test]
    fn compact_forms_and_require() {
        let config = SessionTimerConfig::default();
        let t0 = Instant::now();
        let timer = accepted(negotiate(
            &request("INVITE", "k: timer\r\nx: 1200;refresher=uac\r\n"),
            &config,
            t0,
        ));
        assert_eq!(timer.interval(), secs(1200));
        // `Require: timer` alone (a retry after 422 does this) also counts as support.
        let timer = accepted(negotiate(
            &request(
                "INVITE",
                "Require: siprec, timer\r\nSession-Expires: 300\r\nMin-SE: 300\r\n",
            ),
            &config,
            t0,
        ));
        assert_eq!(timer.interval(), secs(300));
    }

    #[test]
    fn too_small_is_answered_422_with_our_min_se() {
        let config = SessionTimerConfig {
            min_se: secs(120),
            ..SessionTimerConfig::default()
        };
        let r = request("INVITE", "Supported: timer\r\nSession-Expires: 100\r\n");
        assert_eq!(
            negotiate(&r, &config, Instant::now()),
            Negotiation::TooSmall { min_se: secs(120) }
        );
        // A configured Min-SE below RFC 4028's floor of 90 s is raised to it.
        let config = SessionTimerConfig {
            min_se: secs(10),
            ..SessionTimerConfig::default()
        };
        let r = request("INVITE", "Supported: timer\r\nSession-Expires: 60\r\n");
        assert_eq!(
            negotiate(&r, &config, Instant::now()),
            Negotiation::TooSmall { min_se: secs(90) }
        );
    }

    #[test]
    fn without_session_expires_the_default_respects_both_min_se() {
        let t0 = Instant::now();
        let config = SessionTimerConfig {
            min_se: secs(90),
            default_interval: secs(600),
        };
        let timer = accepted(negotiate(
            &request("INVITE", "Supported: timer\r\n"),
            &config,
            t0,
        ));
        assert_eq!(timer.interval(), secs(600));
        let timer = accepted(negotiate(
            &request("INVITE", "Supported: timer\r\nMin-SE: 900\r\n"),
            &config,
            t0,
        ));
        assert_eq!(
            timer.interval(),
            secs(900),
            "never below the request's Min-SE"
        );
        let config = SessionTimerConfig {
            min_se: secs(1000),
            default_interval: secs(600),
        };
        let timer = accepted(negotiate(
            &request("INVITE", "Supported: timer\r\n"),
            &config,
            t0,
        ));
        assert_eq!(timer.interval(), secs(1000), "never below ours");
    }

    #[test]
    fn malformed_values_are_ignored_not_fatal() {
        let config = SessionTimerConfig::default();
        let t0 = Instant::now();
        for se in ["abc", "", "-5", "1800.5", "99999999999", "0", "18 00"] {
            let r = request(
                "INVITE",
                &format!("Supported: timer\r\nSession-Expires: {se}\r\n"),
            );
            let timer = accepted(negotiate(&r, &config, t0));
            assert_eq!(timer.interval(), config.default_interval, "{se:?}");
        }
        let r = request("INVITE", "Supported: timer\r\nMin-SE: lots\r\n");
        assert_eq!(accepted(negotiate(&r, &config, t0)).interval(), secs(1800));
    }

    #[test]
    fn deadline_leaves_the_rfc_4028_margin() {
        let t0 = Instant::now();
        let config = SessionTimerConfig::default();
        let timer = |se: u64| {
            accepted(negotiate(
                &request(
                    "INVITE",
                    &format!("Supported: timer\r\nSession-Expires: {se}\r\n"),
                ),
                &config,
                t0,
            ))
        };
        // Long intervals: 32 s before expiry.
        assert_eq!(timer(1800).deadline(), t0 + secs(1800 - 32));
        // At 96 s both rules agree (96 / 3 = 32).
        assert_eq!(timer(96).deadline(), t0 + secs(64));
        // Short intervals: one third before expiry.
        assert_eq!(timer(90).deadline(), t0 + secs(60));
    }

    #[test]
    fn a_refresh_moves_the_deadline() {
        let t0 = Instant::now();
        let mut timer = accepted(negotiate(
            &request("INVITE", "Supported: timer\r\nSession-Expires: 300\r\n"),
            &SessionTimerConfig::default(),
            t0,
        ));
        assert_eq!(timer.deadline(), t0 + secs(268));
        let t1 = t0 + secs(150);
        timer.refreshed(t1);
        assert_eq!(timer.deadline(), t1 + secs(268));
        assert_eq!(timer.interval(), secs(300));
    }
}
