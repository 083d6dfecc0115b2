//! Who may send SIP: the allow-list of SBC networks, applied to every message before the SIP
//! core sees it, so an outsider gets no transaction, no port and no file — not even a response
//! (a response to a spoofed source is an amplifier). Refusals are counted for `/metrics` and
//! logged at most once a minute per source, never per packet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tracing::warn;

/// How often one refused source is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Sources remembered for that; beyond it (a spoofed flood) the memory starts over.
const REMEMBERED: usize = 10_000;

#[derive(Debug)]
pub struct SourceGate {
    allowed: Vec<IpNet>,
    logged: HashMap<IpAddr, Instant>,
    refused: Arc<AtomicU64>,
}

impl SourceGate {
    pub fn new(allowed: Vec<IpNet>) -> SourceGate {
        SourceGate {
            allowed,
            logged: HashMap::new(),
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The refusal counter, for `/metrics`.
    pub fn refused(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.refused)
    }

    /// Whether a message from `ip`, received at `now`, may reach the SIP core.
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if contains(&self.allowed, ip) {
            return true;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        if self.logged.len() >= REMEMBERED {
            self.logged.clear();
        }
        let due = self
            .logged
            .get(&ip)
            .is_none_or(|last| now.saturating_duration_since(*last) >= LOG_EVERY);
        if due {
            self.logged.insert(ip, now);
            warn!(source = %ip, "SIP from a source not in [sip] allowed_sources: dropped (logged once a minute per source)");
        }
        false
    }
}

/// An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`: compare it as IPv4.
/// The allow-list as a predicate, for the TCP listener to close strangers at accept.
pub fn allows(allowed: Vec<IpNet>) -> impl Fn(IpAddr) -> bool + Send + Sync + 'static {
    move |ip| contains(&allowed, canonical(ip))
}

fn contains(allowed: &[IpNet], ip: IpAddr) -> bool {
    allowed.iter().any(|net| net.contains(&ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(nets: &[&str]) -> SourceGate {
        SourceGate::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn only_listed_networks_pass_and_refusals_are_counted() {
        let mut gate = gate(&["192.0.2.0/24", "2001:db8::/32"]);
        let t0 = Instant::now();
        assert!(gate.admit(t0, "192.0.2.77".parse().unwrap()));
        assert!(gate.admit(t0, "2001:db8::5".parse().unwrap()));
        assert!(
            gate.admit(t0, "::ffff:192.0.2.9".parse().unwrap()),
            "v4-mapped"
        );
        assert!(!gate.admit(t0, "198.51.100.1".parse().unwrap()));
        assert!(!gate.admit(t0, "127.0.0.1".parse().unwrap()));
        assert_eq!(gate.refused().load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_refused_source_is_logged_once_a_minute() {
        let mut gate = gate(&["10.0.0.0/8"]);
        let t0 = Instant::now();
        let outsider: IpAddr = "198.51.100.1".parse().unwrap();
        for n in 0..100 {
            gate.admit(t0 + Duration::from_millis(n), outsider);
        }
        assert_eq!(
            gate.logged[&outsider], t0,
            "logged at the first refusal only"
        );
        gate.admit(t0 + LOG_EVERY, outsider);
        assert_eq!(gate.logged[&outsider], t0 + LOG_EVERY);
        for n in 0..(REMEMBERED as u32 + 5) {
            gate.admit(t0, IpAddr::from(std::net::Ipv4Addr::from(0xC633_0000 + n)));
        }
        assert!(
            gate.logged.len() <= REMEMBERED,
            "a spoofed flood cannot grow the memory"
        );
    }
}
