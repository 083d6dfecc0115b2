//! Media bound to its source: a leg takes RTP and RTCP only from the addresses its SDP and its
//! SIP peer give ([`AllowedSources`]), and from one source (IP and port) per port once it has
//! seen one. Anyone else who learns the port — a scanner, another customer of the SBC, an
//! attacker guessing the range — can neither put audio into a recording nor make it store
//! digits: their packets are counted ([`crate::LegCounters::foreign_packets`]) and dropped before
//! anything else reads them.
//!
//! **Latching.** NAT makes the port the SDP names unreliable (the SBC's media may leave from
//! another port, or from its signalling address), so the port is not checked: the first packet
//! from an allowed IP fixes the source, as symmetric-RTP latching does, and from then on that
//! source only. RTP (with RTCP multiplexed on it) and the RTCP port each latch on their own, on
//! the same allowed IPs. A re-offer that changes the address or the port re-arms both latches.
//!
//! Pure state, no I/O and no clock: the receive loop hands in each datagram's source; tests hand
//! in made-up ones. A fixed-size value: checking a packet allocates nothing and takes no lock.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Where a leg's media may come from: the m-line's connection address and the SIP peer's.
/// [`Default`] knows no address: a leg bound to its source then accepts nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllowedSources {
    /// The m-line's `c=` address (media-level, else session-level); `None` when the SDP gives
    /// none that names a host (absent, an FQDN, `0.0.0.0`).
    pub connection: Option<IpAddr>,
    /// The m-line's port. Not checked against packets (NAT); a change of it in a re-offer
    /// re-arms the latch, as a change of `connection` does.
    pub port: u16,
    /// The IP address the INVITE came from (the SBC's signalling address: behind NAT its media
    /// may come from there).
    pub signalling: Option<IpAddr>,
}

impl AllowedSources {
    /// Whether packets from `ip` may be latched. An unspecified address is never allowed.
    fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        !ip.is_unspecified()
            && [self.connection, self.signalling]
                .into_iter()
                .flatten()
                .any(|allowed| allowed.to_canonical() == ip)
    }
}

/// Which of a leg's two sockets a datagram came in on: each latches its own source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Port {
    /// The even port: RTP, and RTCP multiplexed on it.
    Rtp,
    /// The odd port: RTCP.
    Rtcp,
}

impl Port {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Port::Rtp => "rtp",
            Port::Rtcp => "rtcp",
        }
    }
}

/// What to do with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// From the latched source, or anything when the leg is not bound to its source.
    Accept,
    /// The first datagram from an allowed address on this port: its source is latched now.
    Latched,
    /// From anywhere else: count it and drop it.
    Foreign,
}

/// The allowed addresses and the latched sources of one leg.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SourceLatch {
    /// False: every source is accepted (`bind_to_source = false`).
    bound: bool,
    allowed: AllowedSources,
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    /// The last foreign source, for the log line.
    last_foreign: Option<SocketAddr>,
}

impl SourceLatch {
    pub(crate) fn new(bound: bool, allowed: AllowedSources) -> SourceLatch {
        SourceLatch {
            bound,
            allowed,
            rtp: None,
            rtcp: None,
            last_foreign: None,
        }
    }

    /// Decides on one datagram from `from`, received on `port`.
    pub(crate) fn admit(&mut self, port: Port, from: SocketAddr) -> Admission {
        if !self.bound {
            return Admission::Accept;
        }
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let latched = match port {
            Port::Rtp => &mut self.rtp,
            Port::Rtcp => &mut self.rtcp,
        };
        match *latched {
            Some(source) if source == from => Admission::Accept,
            None if self.allowed.allows(from.ip()) => {
                *latched = Some(from);
                Admission::Latched
            }
            _ => {
                self.last_foreign = Some(from);
                Admission::Foreign
            }
        }
    }

    /// A re-offer's addresses. A change of address or port re-arms both latches to the new
    /// ones; the same again keeps the sources latched.
    pub(crate) fn handle_update(&mut self, allowed: AllowedSources) {
        if allowed != self.allowed {
            self.allowed = allowed;
            self.rtp = None;
            self.rtcp = None;
        }
    }

    pub(crate) fn allowed(&self) -> AllowedSources {
        self.allowed
    }

    pub(crate) fn last_foreign(&self) -> Option<SocketAddr> {
        self.last_foreign
    }
}

/// At most one log line per [`FOREIGN_LOG_INTERVAL`] per leg about foreign packets dropped:
/// a flood must not become a flood of log lines.
pub(crate) const FOREIGN_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// When a leg says it dropped foreign packets, on its tick.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ForeignLog {
    /// The leg's count at the last line.
    logged: u64,
    at: Option<Instant>,
}

impl ForeignLog {
    /// Given the leg's count at `now`: the packets dropped since the last line when one is due
    /// (some were dropped, and the last line is [`FOREIGN_LOG_INTERVAL`] old or there was none).
    pub(crate) fn poll(&mut self, now: Instant, total: u64) -> Option<u64> {
        let due = self
            .at
            .is_none_or(|at| now.saturating_duration_since(at) >= FOREIGN_LOG_INTERVAL);
        if total <= self.logged || !due {
            return None;
        }
        let since = total - self.logged;
        self.logged = total;
        self.at = Some(now);
        Some(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn sources(connection: &str, port: u16, signalling: &str) -> AllowedSources {
        AllowedSources {
            connection: Some(connection.parse().unwrap()),
            port,
            signalling: Some(signalling.parse().unwrap()),
        }
    }

    #[test]
    fn the_first_source_from_an_allowed_address_is_latched_and_only_it_accepted() {
        let mut latch = SourceLatch::new(true, sources("192.0.2.10", 30000, "198.51.100.1"));
        // Another host first: refused, and it latches nothing.
        assert_eq!(
            latch.admit(Port::Rtp, addr("203.0.113.9:30000")),
            Admission::Foreign
        );
        // The SDP's address, from another port than the SDP's (NAT): latched.
        assert_eq!(
            latch.admit(Port::Rtp, addr("192.0.2.10:41000")),
            Admission::Latched
        );
        assert_eq!(
            latch.admit(Port::Rtp, addr("192.0.2.10:41000")),
            Admission::Accept
        );
        // The same host from another port, and the signalling address: both refused now.
        assert_eq!(
            latch.admit(Port::Rtp, addr("192.0.2.10:30000")),
            Admission::Foreign
        );
        assert_eq!(
            latch.admit(Port::Rtp, addr("198.51.100.1:5004")),
            Admission::Foreign
        );
        assert_eq!(latch.last_foreign(), Some(addr("198.51.100.1:5004")));
        // RTCP latches on its own, from the signalling address here.
        assert_eq!(
            latch.admit(Port::Rtcp, addr("198.51.100.1:5005")),
            Admission::Latched
        );
        assert_eq!(
            latch.admit(Port::Rtcp, addr("192.0.2.10:41001")),
            Admission::Foreign
        );
    }

    #[test]
    fn a_changed_address_or_port_rearms_and_the_same_again_keeps_the_latch() {
        let first = sources("192.0.2.10", 30000, "198.51.100.1");
        let mut latch = SourceLatch::new(true, first);
        assert_eq!(
            latch.admit(Port::Rtp, addr("192.0.2.10:30000")),
            Admission::Latched
        );
        latch.handle_update(first);
        assert_eq!(
            latch.admit(Port::Rtp, addr("192.0.2.10:30002")),
            Admission::Foreign,
            "an unchanged re-offer keeps the latch"
        );
        // Media moved to another host: only it may latch now, the old source is foreign.
        latch.handle_update(sources("192.0.2.20", 30000, "198.51.100.1"));
        assert_eq!(
            latch.admit(Port::Rtp, addr("192.0.2.10:30000")),
            Admission::Foreign
        );
        assert_eq!(
            latch.admit(Port::Rtp, addr("192.0.2.20:30000")),
            Admission::Latched
        );
        // Another port on the same host re-arms too.
        latch.handle_update(sources("192.0.2.20", 30100, "198.51.100.1"));
        assert_eq!(
            latch.admit(Port::Rtp, addr("192.0.2.20:30100")),
            Admission::Latched
        );
    }

    #[test]
    fn nothing_known_accepts_nothing_and_unbound_accepts_everything() {
        let mut latch = SourceLatch::new(true, AllowedSources::default());
        assert_eq!(
            latch.admit(Port::Rtp, addr("192.0.2.10:30000")),
            Admission::Foreign
        );
        let mut hold = SourceLatch::new(
            true,
            AllowedSources {
                connection: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                ..AllowedSources::default()
            },
        );
        assert_eq!(
            hold.admit(Port::Rtp, addr("0.0.0.0:0")),
            Admission::Foreign,
            "0.0.0.0 is no address to accept from"
        );
        let mut open = SourceLatch::new(false, AllowedSources::default());
        for from in ["192.0.2.10:30000", "203.0.113.9:1"] {
            assert_eq!(open.admit(Port::Rtp, addr(from)), Admission::Accept);
        }
    }

    #[test]
    fn ipv4_mapped_sources_match_ipv4_addresses() {
        // A socket bound to [::] sees IPv4 senders as ::ffff:a.b.c.d.
        let mut latch = SourceLatch::new(true, sources("192.0.2.10", 30000, "198.51.100.1"));
        let mapped = SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(192, 0, 2, 10).to_ipv6_mapped()),
            30000,
        );
        assert_eq!(latch.admit(Port::Rtp, mapped), Admission::Latched);
        assert_eq!(
            latch.admit(Port::Rtp, addr("192.0.2.10:30000")),
            Admission::Accept
        );
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 30000);
        assert_eq!(latch.admit(Port::Rtcp, v6), Admission::Foreign);
    }

    #[test]
    fn foreign_packets_are_logged_at_most_once_a_minute() {
        let t0 = Instant::now();
        let mut log = ForeignLog::default();
        assert_eq!(log.poll(t0, 0), None, "nothing dropped, nothing said");
        assert_eq!(log.poll(t0, 5), Some(5));
        assert_eq!(log.poll(t0 + Duration::from_secs(30), 900), None);
        assert_eq!(log.poll(t0 + Duration::from_secs(59), 1000), None);
        assert_eq!(log.poll(t0 + FOREIGN_LOG_INTERVAL, 1000), Some(995));
        // Quiet since: nothing, however long it has been.
        assert_eq!(log.poll(t0 + Duration::from_secs(600), 1000), None);
        assert_eq!(log.poll(t0 + Duration::from_secs(601), 1001), Some(1));
    }
}
