//! Host names: [`ToSocketAddrs`] (what std's trait accepts, resolved off the
//! workers), [`lookup_host`], and the Happy Eyeballs connection race
//! (RFC 8305) behind `TcpStream::connect`.
//!
//! Resolution runs std's resolver (`getaddrinfo`) on the
//! [blocking pool](crate::blocking); a literal address never leaves the
//! worker. Cancelling a lookup drops only the wait: the `getaddrinfo` call
//! finishes on its pool thread, which then idles out as usual.
//!
//! The race (`happy_eyeballs`): the addresses are reordered to alternate
//! families, starting with the family of the first one (RFC 8305 §4); an
//! attempt starts every 250 ms, or at once when the previous one failed; the
//! first to connect wins and every other attempt is dropped, which closes its
//! socket. The error of the last failure is returned when all fail.

use crate::blocking::unblock;
use crate::time::{sleep, Sleep};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// RFC 8305's recommended "Connection Attempt Delay".
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// What addresses can be given as: std's `ToSocketAddrs` forms (`SocketAddr`,
/// `(IpAddr, u16)`, `"host:port"`, `("host", port)`, `&[SocketAddr]`...) plus
/// `([u8; 4], u16)`. Sealed: implemented here only.
pub trait ToSocketAddrs: sealed::Sealed {}

mod sealed {
    use super::Target;
    pub trait Sealed {
        fn target(&self) -> std::io::Result<Target>;
    }
}

/// Either addresses known now or a name to resolve.
#[doc(hidden)]
#[derive(Debug)]
pub enum Target {
    Addrs(Vec<SocketAddr>),
    Name(String, u16),
}

macro_rules! literal {
    ($($ty:ty),*) => {$(
        impl ToSocketAddrs for $ty {}
        impl sealed::Sealed for $ty {
            fn target(&self) -> io::Result<Target> {
                Ok(Target::Addrs(vec![SocketAddr::from(*self)]))
            }
        }
    )*};
}
literal!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16),
    ([u8; 4], u16),
    ([u16; 8], u16)
);

/// `"host:port"` or a literal `"1.2.3.4:80"` / `"[::1]:80"`.
fn parse_host_port(s: &str) -> io::Result<Target> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Target::Addrs(vec![addr]));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("{s:?}: no port (want \"host:port\")")))?;
    let port = port
        .parse()
        .map_err(|_| invalid(format!("{s:?}: invalid port {port:?}")))?;
    host_port(host, port)
}

fn host_port(host: &str, port: u16) -> io::Result<Target> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Target::Addrs(vec![SocketAddr::new(ip, port)]));
    }
    if host.is_empty() {
        return Err(invalid("empty host name".into()));
    }
    Ok(Target::Name(host.to_owned(), port))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl ToSocketAddrs for str {}
impl sealed::Sealed for str {
    fn target(&self) -> io::Result<Target> {
        parse_host_port(self)
    }
}
impl ToSocketAddrs for String {}
impl sealed::Sealed for String {
    fn target(&self) -> io::Result<Target> {
        parse_host_port(self)
    }
}
impl ToSocketAddrs for (&str, u16) {}
impl sealed::Sealed for (&str, u16) {
    fn target(&self) -> io::Result<Target> {
        host_port(self.0, self.1)
    }
}
impl ToSocketAddrs for (String, u16) {}
impl sealed::Sealed for (String, u16) {
    fn target(&self) -> io::Result<Target> {
        host_port(&self.0, self.1)
    }
}
impl ToSocketAddrs for [SocketAddr] {}
impl sealed::Sealed for [SocketAddr] {
    fn target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(self.to_vec()))
    }
}
impl ToSocketAddrs for Vec<SocketAddr> {}
impl sealed::Sealed for Vec<SocketAddr> {
    fn target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(self.clone()))
    }
}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {
    fn target(&self) -> io::Result<Target> {
        (**self).target()
    }
}

/// Resolves `addr` to its socket addresses, off the workers for a name.
///
/// ```
/// let addrs = matou_unix::run(async {
///     matou_unix::net::lookup_host("localhost:80").await.unwrap()
/// });
/// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
/// ```
///
/// # Errors
/// `InvalidInput` for a malformed address, the resolver's error for a name
/// that does not resolve (and `NotFound`-like errors when it has no address).
pub async fn lookup_host(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs = match sealed::Sealed::target(&addr)? {
        Target::Addrs(a) => a,
        Target::Name(host, port) => {
            unblock(move || {
                std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                    .map(Iterator::collect::<Vec<_>>)
            })
            .await?
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        ));
    }
    Ok(addrs)
}

/// RFC 8305 §4: alternate the families, starting with the first address's.
pub(crate) fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let first_v6 = addrs.first().is_some_and(SocketAddr::is_ipv6);
    let (mut a, mut b): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|x| x.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.drain(..), b.drain(..));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// `Send`, so that `connect`'s future is (attempts are sockets and timers).
type Attempt<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// Races `connect` over `addrs` (already ordered), as the module docs say.
pub(crate) async fn happy_eyeballs<'a, T, F, Fut>(
    addrs: Vec<SocketAddr>,
    connect: F,
) -> io::Result<T>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>> + Send + 'a,
{
    let mut pending = addrs.into_iter();
    let mut running: Vec<Attempt<'a, T>> = Vec::new();
    let mut last_err: Option<io::Error> = None;
    let mut next_start: Option<Pin<Box<Sleep>>> = None;
    let mut start_now = true;
    std::future::poll_fn(|cx| loop {
        if start_now {
            start_now = false;
            if let Some(addr) = pending.next() {
                running.push(Box::pin(connect(addr)));
                next_start = Some(Box::pin(sleep(CONNECTION_ATTEMPT_DELAY)));
            }
        }
        let mut i = 0;
        while i < running.len() {
            match running[i].as_mut().poll(cx) {
                // Returning drops the other attempts, closing their sockets.
                Poll::Ready(Ok(s)) => return Poll::Ready(Ok(s)),
                Poll::Ready(Err(e)) => {
                    last_err = Some(e);
                    drop(running.swap_remove(i));
                    // RFC 8305 §5: a failure starts the next attempt at once.
                    start_now = pending.len() > 0;
                }
                Poll::Pending => i += 1,
            }
        }
        if start_now {
            continue;
        }
        if running.is_empty() {
            return Poll::Ready(Err(last_err
                .take()
                .unwrap_or_else(|| invalid("no address to connect to".into()))));
        }
        if let Some(delay) = next_start.as_mut() {
            if delay.as_mut().poll(cx).is_ready() {
                next_start = None;
                if pending.len() > 0 {
                    start_now = true;
                    continue;
                }
            }
        }
        return Poll::Pending;
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_alternate_starting_with_the_first() {
        let v4 = |p| SocketAddr::from(([127, 0, 0, 1], p));
        let v6 = |p| SocketAddr::from((Ipv6Addr::LOCALHOST, p));
        let got = interleave(vec![v6(1), v6(2), v6(3), v4(4), v4(5)]);
        assert_eq!(got, vec![v6(1), v4(4), v6(2), v4(5), v6(3)]);
        let got = interleave(vec![v4(1), v6(2), v6(3)]);
        assert_eq!(got, vec![v4(1), v6(2), v6(3)]);
    }
}
