//! Who may send SIP: the allow-list of SBC networks, applied to every message before the SIP
//! core sees it, so an outsider gets no transaction, no port and no file — not even a response
//! (a response to a spoofed source is an amplifier). Refusals are counted for `/metrics` and
//! logged at most once a minute per source, never per packet.
//!
//! The list is an [`AllowList`]: SIGHUP replaces it whole while every datagram and every
//! accepted connection reads it without a lock (`arc-swap`: a read is a couple of atomic
//! operations, never a wait on the writer).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tracing::warn;

/// The networks allowed to send SIP, shared by the SIP loop (UDP) and the listeners (TCP,
/// TLS at accept), replaceable while they run.
#[derive(Debug, Clone)]
pub struct AllowList(Arc<ArcSwap<Vec<IpNet>>>);

impl AllowList {
    pub fn new(allowed: Vec<IpNet>) -> AllowList {
        AllowList(Arc::new(ArcSwap::from_pointee(allowed)))
    }

    /// Whether `ip` may send SIP under the current list.
    pub fn allows(&self, ip: IpAddr) -> bool {
        contains(&self.0.load(), canonical(ip))
    }

    /// The list now, for naming a source in `/metrics`.
    pub fn current(&self) -> Arc<Vec<IpNet>> {
        self.0.load_full()
    }

    /// From now on, `allowed` decides; messages and connections already admitted stay.
    pub fn set(&self, allowed: Vec<IpNet>) {
        self.0.store(Arc::new(allowed));
    }
}

/// How often one refused source is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Sources remembered for that; beyond it (a spoofed flood) the memory starts over.
const REMEMBERED: usize = 10_000;

#[derive(Debug)]
pub struct SourceGate {
    allowed: AllowList,
    logged: HashMap<IpAddr, Instant>,
    refused: Arc<AtomicU64>,
}

impl SourceGate {
    pub fn new(allowed: AllowList) -> SourceGate {
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
        if self.allowed.allows(ip) {
            return true;
        }
        let ip = canonical(ip);
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

/// The allow-list as a predicate, for the TCP listener to close strangers at accept.
pub fn allows(allowed: AllowList) -> impl Fn(IpAddr) -> bool + Send + Sync + 'static {
    move |ip| allowed.allows(ip)
}

fn contains(allowed: &[IpNet], ip: IpAddr) -> bool {
    allowed.iter().any(|net| net.contains(&ip))
}

/// An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`: compare it as IPv4.
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
        SourceGate::new(AllowList::new(
            nets.iter().map(|n| n.parse().unwrap()).collect(),
        ))
    }

    #[test]
    fn a_new_list_applies_to_the_next_message_and_connection() {
        let list = AllowList::new(vec!["192.0.2.0/24".parse().unwrap()]);
        let mut gate = SourceGate::new(list.clone());
        let accept = allows(list.clone());
        let t0 = Instant::now();
        let sbc: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(!gate.admit(t0, sbc));
        assert!(!accept(sbc));
        list.set(vec!["198.51.100.0/24".parse().unwrap()]);
        assert!(gate.admit(t0, sbc), "the SIP loop sees the new list");
        assert!(accept(sbc), "so does the listener");
        assert!(
            !gate.admit(t0, "192.0.2.1".parse().unwrap()),
            "the old one is gone"
        );
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
