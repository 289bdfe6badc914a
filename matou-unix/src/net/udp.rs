//! UDP: [`UdpSocket`], datagrams over IPv4 or IPv6.
//!
//! std's `UdpSocket` in non-blocking mode does the syscalls (`sendto` with
//! `MSG_NOSIGNAL`, `recvfrom`); this type adds the waiting.

use super::impl_as_fd;
use crate::reactor::io::IoSource;
use crate::reactor::Dir;
use crate::sys;
use std::io;
use std::net::SocketAddr;

/// A UDP socket.
///
/// Each `send`/`recv` is one datagram; a dropped `recv_from` takes none.
///
/// ```
/// use matou_unix::net::UdpSocket;
///
/// matou_unix::run(async {
///     let a = UdpSocket::bind(([127, 0, 0, 1], 0)).unwrap();
///     let b = UdpSocket::bind(([127, 0, 0, 1], 0)).unwrap();
///     a.send_to(b"one datagram", b.local_addr().unwrap()).await.unwrap();
///     let mut buf = [0; 64];
///     let (n, from) = b.recv_from(&mut buf).await.unwrap();
///     assert_eq!((&buf[..n], from), (&b"one datagram"[..], a.local_addr().unwrap()));
/// });
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    inner: IoSource<std::net::UdpSocket>,
}

impl_as_fd!(UdpSocket);
super::impl_into_std!(UdpSocket, std::net::UdpSocket);

impl UdpSocket {
    /// Binds a socket to `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// The OS's, e.g. `EADDRINUSE`.
    pub fn bind(addr: impl Into<SocketAddr>) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            inner: IoSource::new(sys::udp_bind(addr.into())?),
        })
    }

    /// Adopts a std socket (switching it to non-blocking mode).
    ///
    /// # Errors
    /// When the mode cannot be changed.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            inner: IoSource::new(socket),
        })
    }

    /// Sets the default peer for [`UdpSocket::send`] and filters what
    /// [`UdpSocket::recv`] receives. `addr` is anything
    /// [`super::ToSocketAddrs`] takes (a name is resolved off the workers);
    /// the resolved addresses are tried in turn, those of the socket's own
    /// family first, until one is accepted (UDP has no handshake).
    ///
    /// # Errors
    /// `InvalidInput`, the resolver's, or the OS's for the last address.
    pub async fn connect(&self, addr: impl super::ToSocketAddrs) -> io::Result<()> {
        let mut last = None;
        for a in self.resolve(addr).await? {
            match self.inner.get_ref().connect(a) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::InvalidInput.into()))
    }

    /// The addresses of `addr`, those of this socket's family first.
    async fn resolve(&self, addr: impl super::ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
        let mut addrs = super::lookup_host(addr).await?;
        let v6 = self.local_addr()?.is_ipv6();
        addrs.sort_by_key(|a| a.is_ipv6() != v6);
        Ok(addrs)
    }

    /// Sends one datagram to `addr` (resolved as [`UdpSocket::connect`]
    /// does; the first address of the socket's family is used); returns its
    /// length.
    ///
    /// # Errors
    /// `InvalidInput`, the resolver's, or the OS's, e.g. `EMSGSIZE`.
    pub async fn send_to(&self, buf: &[u8], addr: impl super::ToSocketAddrs) -> io::Result<usize> {
        let addr = self.resolve(addr).await?[0];
        self.inner.io(Dir::Write, |s| s.send_to(buf, addr)).await
    }

    /// Receives one datagram; returns its length (truncated to `buf`) and
    /// sender.
    ///
    /// # Errors
    /// The OS's.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.io(Dir::Read, |s| s.recv_from(buf)).await
    }

    /// Sends one datagram to the connected peer.
    ///
    /// # Errors
    /// The OS's, e.g. `EDESTADDRREQ` when not connected, `ECONNREFUSED` after
    /// the peer's port reported unreachable.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.io(Dir::Write, |s| s.send(buf)).await
    }

    /// Receives one datagram from the connected peer.
    ///
    /// # Errors
    /// The OS's.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.io(Dir::Read, |s| s.recv(buf)).await
    }

    /// This socket's address.
    ///
    /// # Errors
    /// The OS's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    /// `ENOTCONN` when not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// `SO_BROADCAST`.
    ///
    /// # Errors
    /// The OS's.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.get_ref().set_broadcast(on)
    }
}
