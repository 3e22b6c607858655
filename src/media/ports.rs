//! The UDP ports media may use: even RTP ports from the configured range,
//! each with RTCP on the port above (RFC 3550 §11).
//!
//! Ports come back when a call's sockets are closed and are handed out
//! again last-freed-last, so a late packet of an ended call is unlikely to
//! reach the next call on the same port. A port the system refuses (taken
//! by another program) is skipped, not fatal.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};

/// Why no socket pair could be had.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("every media port in {min}..={max} is in use")]
    Exhausted { min: u16, max: u16 },
}

/// The even ports not in use.
#[derive(Debug)]
pub struct PortPool {
    free: VecDeque<u16>,
    min: u16,
    max: u16,
}

impl PortPool {
    /// Even ports `p` of `min..=max` with `p + 1` in range too.
    pub fn new(min: u16, max: u16) -> PortPool {
        let first = min.saturating_add(min & 1);
        let free = (u32::from(first)..u32::from(max))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        PortPool { free, min, max }
    }

    pub fn take(&mut self) -> Option<u16> {
        self.free.pop_front()
    }

    pub fn give_back(&mut self, port: u16) {
        self.free.push_back(port);
    }

    pub fn free_count(&self) -> usize {
        self.free.len()
    }
}

/// The pool shared by the engine and the calls holding its ports.
pub type SharedPool = Arc<Mutex<PortPool>>;

/// An RTP port held by a call; returned to the pool when dropped, which
/// must happen after its sockets are closed.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: SharedPool,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        // A panic elsewhere while the lock was held leaves the pool usable.
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .give_back(self.port);
    }
}

/// An RTP socket and its RTCP socket, bound, non-blocking. Field order
/// matters: the sockets close before the lease gives the port back.
#[derive(Debug)]
pub struct SocketPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub lease: PortLease,
}

/// Binds the next free pair on `ip`. Ports the system refuses go to the
/// back of the queue and the next one is tried.
pub fn bind_pair(pool: &SharedPool, ip: IpAddr) -> Result<SocketPair, PortError> {
    let (attempts, min, max) = {
        let pool = pool.lock().unwrap_or_else(PoisonError::into_inner);
        (pool.free_count(), pool.min, pool.max)
    };
    for _ in 0..attempts {
        let Some(port) = pool.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            break;
        };
        let lease = PortLease {
            port,
            pool: pool.clone(),
        };
        if let Ok((rtp, rtcp)) = bind_both(ip, port) {
            return Ok(SocketPair { rtp, rtcp, lease });
        }
    }
    Err(PortError::Exhausted { min, max })
}

fn bind_both(ip: IpAddr, port: u16) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let rtp = UdpSocket::bind(SocketAddr::new(ip, port))?;
    let rtcp = UdpSocket::bind(SocketAddr::new(ip, port + 1))?;
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    Ok((rtp, rtcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(min: u16, max: u16) -> SharedPool {
        Arc::new(Mutex::new(PortPool::new(min, max)))
    }

    #[test]
    fn only_even_ports_with_room_for_rtcp_are_used() {
        let p = PortPool::new(20_001, 20_007);
        assert_eq!(
            p.free.iter().copied().collect::<Vec<_>>(),
            vec![20_002, 20_004, 20_006]
        );
        let p = PortPool::new(65_534, 65_535);
        assert_eq!(p.free.iter().copied().collect::<Vec<_>>(), vec![65_534]);
    }

    #[test]
    fn pairs_are_bound_released_and_reused_and_exhaustion_is_an_error() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // Find a free range first: the test must not depend on the machine.
        let base = (0..200u16)
            .map(|i| 41_000 + i * 8)
            .find(|b| (*b..*b + 4).all(|p| UdpSocket::bind((ip, p)).is_ok()))
            .unwrap();
        let pool = pool(base, base + 3);
        let a = bind_pair(&pool, ip).unwrap();
        let b = bind_pair(&pool, ip).unwrap();
        assert_eq!(a.rtp.local_addr().unwrap().port(), base);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), base + 1);
        assert_eq!(b.lease.port(), base + 2);
        assert!(matches!(
            bind_pair(&pool, ip),
            Err(PortError::Exhausted { .. })
        ));
        drop(a);
        let c = bind_pair(&pool, ip).unwrap();
        assert_eq!(c.lease.port(), base);
    }

    #[test]
    fn a_port_taken_by_another_program_is_skipped() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let base = (0..200u16)
            .map(|i| 43_000 + i * 8)
            .find(|b| (*b..*b + 4).all(|p| UdpSocket::bind((ip, p)).is_ok()))
            .unwrap();
        let squatter = UdpSocket::bind((ip, base + 1)).unwrap();
        let pool = pool(base, base + 3);
        let pair = bind_pair(&pool, ip).unwrap();
        assert_eq!(pair.lease.port(), base + 2);
        drop(squatter);
        assert_eq!(bind_pair(&pool, ip).unwrap().lease.port(), base);
    }
}
