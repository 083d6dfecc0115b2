//! The RTP port pool: even RTP ports with RTCP on the next one, bound at reservation.
//!
//! Which free port a call gets is random among the older half of the free list: an outsider
//! cannot predict the port of the next call (to inject media into it), while a port just
//! released still rests at the back until stray packets of its previous call have drained.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};

/// Receive buffer asked for on RTP sockets: about 1.5 s of 20 ms packets of any codec, so a
/// receive thread that stalls briefly loses nothing. The kernel caps it at `net.core.rmem_max`.
const RTP_RECEIVE_BUFFER: usize = 256 * 1024;

/// Free RTP ports. Touched on the signalling path only (allocate, release), never per packet.
#[derive(Debug)]
pub(crate) struct PortPool {
    bind_ip: IpAddr,
    free: Mutex<VecDeque<u16>>,
    total: usize,
}

impl PortPool {
    /// Every even port `p` with `port_min <= p` and `p + 1 <= port_max`.
    pub(crate) fn new(bind_ip: IpAddr, port_min: u16, port_max: u16) -> Result<Arc<PortPool>> {
        let first = port_min.max(2).next_multiple_of(2);
        let free: VecDeque<u16> = (u32::from(first)..u32::from(port_max))
            .step_by(2)
            .map(|p| p as u16)
            .collect();
        if free.is_empty() {
            return Err(Error::InvalidConfig(
                "the RTP port range holds no even/odd port pair",
            ));
        }
        Ok(Arc::new(PortPool {
            bind_ip,
            total: free.len(),
            free: Mutex::new(free),
        }))
    }

    fn free_ports(&self) -> std::sync::MutexGuard<'_, VecDeque<u16>> {
        // The queue is consistent after every operation; a panic elsewhere cannot break it.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Port pairs not reserved.
    pub(crate) fn free_count(&self) -> usize {
        self.free_ports().len()
    }

    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Reserves a pair and binds both sockets. Ports held by another process are skipped (and put
    /// back for later); only when no pair can be bound is the pool exhausted.
    pub(crate) fn allocate(self: &Arc<PortPool>) -> Result<PortReservation> {
        let attempts = self.free_count();
        for _ in 0..attempts {
            let Some(port) = self.take_random() else {
                break;
            };
            match self.bind_pair(port) {
                Ok((rtp, rtcp)) => {
                    return Ok(PortReservation {
                        rtp,
                        rtcp,
                        lease: PortLease {
                            port,
                            pool: Arc::clone(self),
                        },
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
                    self.free_ports().push_back(port);
                }
                Err(source) => {
                    self.free_ports().push_back(port);
                    return Err(Error::Bind { port, source });
                }
            }
        }
        Err(Error::NoFreePorts)
    }

    /// A free port from the older half of the list, at random.
    fn take_random(&self) -> Option<u16> {
        let mut free = self.free_ports();
        if free.is_empty() {
            return None;
        }
        let older_half = free.len().div_ceil(2);
        free.remove(fastrand::usize(..older_half))
    }

    fn bind_pair(&self, port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
        let rtp = bind(
            SocketAddr::new(self.bind_ip, port),
            Some(RTP_RECEIVE_BUFFER),
        )?;
        let rtcp = bind(SocketAddr::new(self.bind_ip, port + 1), None)?;
        Ok((rtp, rtcp))
    }

    fn release(&self, port: u16) {
        // To the back: the port rests while stray packets of the previous call drain away.
        self.free_ports().push_back(port);
    }
}

fn bind(address: SocketAddr, receive_buffer: Option<usize>) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if let Some(size) = receive_buffer {
        // Best effort: a smaller buffer than asked is not a reason to refuse a call.
        if let Err(error) = socket.set_recv_buffer_size(size) {
            tracing::debug!(%error, "cannot raise SO_RCVBUF");
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// Gives the port pair back to the pool when dropped.
#[derive(Debug)]
pub(crate) struct PortLease {
    port: u16,
    pool: Arc<PortPool>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.release(self.port);
    }
}

/// An RTP port and its RTCP port, both bound. Dropping it closes the sockets and frees the ports.
#[derive(Debug)]
pub struct PortReservation {
    // Field order matters: the sockets close before the lease returns the ports.
    rtp: UdpSocket,
    rtcp: UdpSocket,
    lease: PortLease,
}

impl PortReservation {
    /// The RTP port (even) to put in the SDP answer.
    pub fn port(&self) -> u16 {
        self.lease.port
    }

    /// The RTCP port (RTP port + 1).
    pub fn rtcp_port(&self) -> u16 {
        self.lease.port + 1
    }

    pub(crate) fn into_parts(self) -> (UdpSocket, UdpSocket, PortLease) {
        (self.rtp, self.rtcp, self.lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn range_holds_even_pairs_only() {
        let pool = PortPool::new(LOCALHOST, 40001, 40006).unwrap();
        assert_eq!(
            pool.total(),
            2,
            "40002/3 and 40004/5; 40006 has no RTCP port"
        );
        assert!(matches!(
            PortPool::new(LOCALHOST, 40001, 40002),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn exhaustion_then_reuse_of_released_ports() {
        let pool = PortPool::new(LOCALHOST, 42210, 42217).unwrap();
        let mut held = Vec::new();
        loop {
            match pool.allocate() {
                Ok(reservation) => held.push(reservation),
                Err(Error::NoFreePorts) => break,
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert!(
            !held.is_empty(),
            "at least one pair of 42210..42217 is free on this host"
        );
        assert_eq!(pool.free_count() + held.len(), pool.total());
        for reservation in &held {
            assert_eq!(reservation.port() % 2, 0);
            assert_eq!(reservation.rtcp_port(), reservation.port() + 1);
        }
        let released = held.pop().unwrap().port();
        let again = pool.allocate().unwrap();
        assert_eq!(again.port(), released);
        assert!(matches!(pool.allocate(), Err(Error::NoFreePorts)));
    }

    #[test]
    fn port_in_use_elsewhere_is_skipped() {
        let pool = PortPool::new(LOCALHOST, 42230, 42233).unwrap();
        let squatter = UdpSocket::bind((LOCALHOST, 42230)).unwrap();
        let reservation = pool.allocate().unwrap();
        assert_eq!(reservation.port(), 42232);
        assert!(matches!(pool.allocate(), Err(Error::NoFreePorts)));
        drop(squatter);
        assert_eq!(pool.allocate().unwrap().port(), 42230);
    }

    #[test]
    fn the_next_port_cannot_be_predicted_and_a_released_one_rests() {
        let firsts: std::collections::HashSet<u16> = (0..20)
            .map(|_| {
                let pool = PortPool::new(LOCALHOST, 43000, 43099).unwrap();
                pool.allocate().unwrap().port()
            })
            .collect();
        assert!(firsts.len() > 1, "the first port of a fresh pool varies");
        // Twenty pairs: a port just released waits behind the older half of the free list.
        let pool = PortPool::new(LOCALHOST, 43100, 43139).unwrap();
        let released = pool.allocate().unwrap().port();
        let mut held = Vec::new();
        for _ in 0..9 {
            let reservation = pool.allocate().unwrap();
            assert_ne!(reservation.port(), released);
            held.push(reservation);
        }
    }
}
