//! Every system call of matou-unix, in one place, over `rustix`.
//!
//! The rest of the crate never calls the OS except through this module (or
//! through std's own socket types, for what std already does well: addresses,
//! `SO_ERROR`, `TCP_NODELAY`, `shutdown`). Invariants:
//! - every descriptor created here is `O_CLOEXEC`, and every socket is
//!   `O_NONBLOCK` from birth, so a forked child never inherits one and no
//!   operation can block a worker thread;
//! - errors come back as `std::io::Error` built from the raw errno, so callers
//!   (and users) keep the OS's meaning (`raw_os_error()` works);
//! - sends use `MSG_NOSIGNAL`: a peer that went away is an `EPIPE` error,
//!   never a process-killing `SIGPIPE`.

use rustix::event::epoll;
use rustix::event::{EventfdFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

pub(crate) use rustix::event::epoll::Event;

/// The readiness every registered descriptor is watched for: both directions,
/// peer hang-up, edge-triggered (the reactor retries the syscall first and only
/// waits after `EAGAIN`, so edges are all it needs).
fn interest() -> epoll::EventFlags {
    epoll::EventFlags::IN
        | epoll::EventFlags::OUT
        | epoll::EventFlags::RDHUP
        | epoll::EventFlags::ET
}

/// [`interest`] as poll(2) bits, for io_uring's `IORING_OP_POLL_ADD`
/// (edge-like by being multishot, so without `ET`). epoll's event bits are
/// poll(2)'s, which is what lets one set of predicates read both.
pub(crate) fn poll_interest() -> u32 {
    (interest() - epoll::EventFlags::ET).bits()
}

/// poll(2) bits for input only (eventfds), as [`epoll_add_input`] watches.
pub(crate) fn poll_input() -> u32 {
    epoll::EventFlags::IN.bits()
}

/// Whether a poll(2) result mask should wake readers and writers: the same
/// predicates as for an epoll event.
pub(crate) fn poll_readiness(mask: u32) -> (bool, bool) {
    let f = epoll::EventFlags::from_bits_retain(mask);
    (readable_flags(f), writable_flags(f))
}

/// Fails with `EPERM`, as `epoll_ctl` does, for a descriptor whose poll is
/// always ready (a regular file or a directory): watching it would only spin
/// the reactor.
pub(crate) fn check_pollable(fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::fs::FileType;
    let kind = FileType::from_raw_mode(rustix::fs::fstat(fd)?.st_mode);
    if matches!(kind, FileType::RegularFile | FileType::Directory) {
        return Err(Errno::PERM.into());
    }
    Ok(())
}

/// Flags of an event that should wake readers (hang-up and errors too: the
/// retried syscall then reports what happened).
pub(crate) fn is_readable(ev: &Event) -> bool {
    // `Event` is packed on x86_64: copy the field out before using it.
    let f = ev.flags;
    readable_flags(f)
}

fn readable_flags(f: epoll::EventFlags) -> bool {
    f.intersects(
        epoll::EventFlags::IN
            | epoll::EventFlags::PRI
            | epoll::EventFlags::HUP
            | epoll::EventFlags::RDHUP
            | epoll::EventFlags::ERR,
    )
}

/// Flags of an event that should wake writers.
pub(crate) fn is_writable(ev: &Event) -> bool {
    // `Event` is packed on x86_64: copy the field out before using it.
    let f = ev.flags;
    writable_flags(f)
}

fn writable_flags(f: epoll::EventFlags) -> bool {
    f.intersects(epoll::EventFlags::OUT | epoll::EventFlags::HUP | epoll::EventFlags::ERR)
}

pub(crate) fn token_of(ev: &Event) -> u64 {
    let data = ev.data;
    data.u64()
}

pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    Ok(epoll::create(epoll::CreateFlags::CLOEXEC)?)
}

/// Watches `fd` (both directions, edge-triggered) under `token`.
pub(crate) fn epoll_add(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
    Ok(epoll::add(
        ep,
        fd,
        epoll::EventData::new_u64(token),
        interest(),
    )?)
}

/// Watches `fd` for input only, edge-triggered (eventfds).
pub(crate) fn epoll_add_input(
    ep: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    token: u64,
) -> io::Result<()> {
    let flags = epoll::EventFlags::IN | epoll::EventFlags::ET;
    Ok(epoll::add(ep, fd, epoll::EventData::new_u64(token), flags)?)
}

/// Stops watching `fd`. Must be called while `fd` is still open: a closed
/// number could already name another file.
pub(crate) fn epoll_del(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(epoll::delete(ep, fd)?)
}

/// Waits for events into `events` (cleared first). `None` waits forever.
/// An `EINTR` is an empty wait, not an error.
pub(crate) fn epoll_wait(
    ep: BorrowedFd<'_>,
    events: &mut Vec<Event>,
    timeout: Option<Duration>,
) -> io::Result<()> {
    events.clear();
    let ts = match timeout {
        // Clamp absurd deadlines rather than fail: the wait is re-armed anyway.
        Some(d) => {
            Some(Timespec::try_from(d.min(Duration::from_secs(86_400))).map_err(|_| Errno::INVAL)?)
        }
        None => None,
    };
    match epoll::wait(ep, rustix::buffer::spare_capacity(events), ts.as_ref()) {
        Ok(_) | Err(Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
    )?)
}

/// Adds one to an eventfd's counter, making it readable (an edge for every
/// epoll watching it). Async-signal-safe: one raw `write`, no allocation, no
/// lock, errno untouched (rustix's raw backend does not use `errno`).
///
/// The only failure of a non-blocking eventfd write is `EAGAIN` when the
/// counter would overflow (after 2^64 writes never drained); the fd is then
/// readable anyway, which is all a wake-up needs, so errors are ignored.
pub(crate) fn eventfd_notify(fd: BorrowedFd<'_>) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

fn family_of(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    }
}

fn new_socket(family: AddressFamily, ty: SocketType) -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        family,
        ty,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Options for a listening TCP socket, applied before `bind`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListenConfig {
    pub(crate) reuse_addr: bool,
    pub(crate) reuse_port: bool,
    pub(crate) only_v6: Option<bool>,
    pub(crate) backlog: i32,
}

/// `socket` + options + `bind` + `listen`, non-blocking.
pub(crate) fn tcp_listen(addr: SocketAddr, cfg: ListenConfig) -> io::Result<std::net::TcpListener> {
    let fd = new_socket(family_of(&addr), SocketType::STREAM)?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, cfg.reuse_addr)?;
    if cfg.reuse_port {
        rustix::net::sockopt::set_socket_reuseport(&fd, true)?;
    }
    if let (SocketAddr::V6(_), Some(v6)) = (&addr, cfg.only_v6) {
        rustix::net::sockopt::set_ipv6_v6only(&fd, v6)?;
    }
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, cfg.backlog)?;
    Ok(std::net::TcpListener::from(fd))
}

/// `accept4(NONBLOCK | CLOEXEC)` on a TCP listener.
pub(crate) fn tcp_accept(
    listener: BorrowedFd<'_>,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    let (fd, addr) =
        rustix::net::acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let stream = std::net::TcpStream::from(fd);
    let addr = match addr.map(SocketAddr::try_from) {
        Some(Ok(a)) => a,
        // The kernel always reports an inet peer for TCP; ask again if not.
        _ => stream.peer_addr()?,
    };
    Ok((stream, addr))
}

/// Errors of `accept` that concern one connection that went away before it
/// was accepted (Linux passes pending network errors through `accept`); the
/// listener is fine and the right move is to accept the next one.
pub(crate) fn accept_error_is_transient(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(
            Errno::CONNABORTED
                | Errno::PROTO
                | Errno::NETDOWN
                | Errno::NOPROTOOPT
                | Errno::HOSTDOWN
                | Errno::NONET
                | Errno::HOSTUNREACH
                | Errno::OPNOTSUPP
                | Errno::NETUNREACH
        )
    )
}

/// Errors of `accept` that mean "out of descriptors or kernel memory": the
/// pending connection stays in the backlog and can be accepted later.
pub(crate) fn accept_error_is_exhaustion(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
    )
}

/// Starts a non-blocking connect. `Ok(true)`: connected already; `Ok(false)`:
/// in progress, wait for writability then check `SO_ERROR`.
fn connect_start(fd: &OwnedFd, addr: &impl rustix::net::addr::SocketAddrArg) -> io::Result<bool> {
    match rustix::net::connect(fd, addr) {
        Ok(()) => Ok(true),
        // EINTR: the connection goes on asynchronously, as with EINPROGRESS.
        Err(Errno::INPROGRESS | Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A non-blocking TCP socket with its connect started.
pub(crate) fn tcp_connect(addr: SocketAddr) -> io::Result<(std::net::TcpStream, bool)> {
    let fd = new_socket(family_of(&addr), SocketType::STREAM)?;
    let done = connect_start(&fd, &addr)?;
    Ok((std::net::TcpStream::from(fd), done))
}

/// A non-blocking UDP socket bound to `addr`.
pub(crate) fn udp_bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let fd = new_socket(family_of(&addr), SocketType::DGRAM)?;
    rustix::net::bind(&fd, &addr)?;
    Ok(std::net::UdpSocket::from(fd))
}

/// A non-blocking Unix-domain stream socket bound to `path` and listening.
pub(crate) fn unix_listen(
    path: &Path,
    backlog: i32,
) -> io::Result<std::os::unix::net::UnixListener> {
    let fd = new_socket(AddressFamily::UNIX, SocketType::STREAM)?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
    rustix::net::listen(&fd, backlog)?;
    Ok(std::os::unix::net::UnixListener::from(fd))
}

/// `accept` on a Unix listener. std builds the peer's address (which is often
/// unnamed, a case rustix's address type cannot hand to std); the accepted
/// socket is then made non-blocking.
pub(crate) fn unix_accept(
    listener: &std::os::unix::net::UnixListener,
) -> io::Result<(
    std::os::unix::net::UnixStream,
    std::os::unix::net::SocketAddr,
)> {
    let (stream, addr) = listener.accept()?;
    stream.set_nonblocking(true)?;
    Ok((stream, addr))
}

/// Starts a non-blocking connect to a Unix socket. `EAGAIN` here means the
/// listener's backlog is full (the connect did not start): reported as
/// `WouldBlock` for the caller to retry later.
pub(crate) fn unix_connect(path: &Path) -> io::Result<(std::os::unix::net::UnixStream, bool)> {
    let fd = new_socket(AddressFamily::UNIX, SocketType::STREAM)?;
    let done = connect_start(&fd, &SocketAddrUnix::new(path)?)?;
    Ok((std::os::unix::net::UnixStream::from(fd), done))
}

/// `recv` on a stream socket. Zero means end of stream.
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::net::recv(fd, buf, RecvFlags::empty())?.0)
}

/// `send` with `MSG_NOSIGNAL`.
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::send(fd, buf, SendFlags::NOSIGNAL)?)
}

/// `sendmsg` of several buffers with `MSG_NOSIGNAL` (one syscall for a
/// vectored write).
pub(crate) fn send_vectored(fd: BorrowedFd<'_>, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let mut control = rustix::net::SendAncillaryBuffer::default();
    Ok(rustix::net::sendmsg(
        fd,
        bufs,
        &mut control,
        SendFlags::NOSIGNAL,
    )?)
}

/// The pending error of a socket (`SO_ERROR`), cleared by reading it.
pub(crate) fn take_socket_error(fd: impl AsFd) -> io::Result<Option<io::Error>> {
    Ok(rustix::net::sockopt::socket_error(fd)?
        .err()
        .map(io::Error::from))
}

/// Whether a socket whose connect was started is connected now (`getpeername`).
pub(crate) fn is_connected(fd: impl AsFd) -> io::Result<bool> {
    match rustix::net::getpeername(fd) {
        Ok(_) => Ok(true),
        Err(Errno::NOTCONN) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Sets `O_NONBLOCK` on `fd`, keeping its other status flags.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// A non-blocking, close-on-exec pidfd for the child `pid` (readable once
/// the child has exited). `ENOSYS` on kernels before 5.3.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::NONBLOCK,
    )?)
}

/// Blocks until the child `pid` has exited, leaving it waitable (`WNOWAIT`:
/// std's `Child` still reaps it and keeps its status).
pub(crate) fn wait_exited_nowait(pid: u32) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        match rustix::process::waitid(
            rustix::process::WaitId::Pid(pid),
            rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT,
        ) {
            Err(Errno::INTR) => {}
            r => return r.map(drop).map_err(io::Error::from),
        }
    }
}

/// `read(2)` on any descriptor (pipes, ttys...).
pub(crate) fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::io::read(fd, buf)?)
}

/// `write(2)` on any descriptor. A pipe whose reader is gone gives `EPIPE`
/// only if `SIGPIPE` is ignored (Rust programs ignore it by default).
pub(crate) fn write_fd(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::io::write(fd, buf)?)
}

/// What [`open_cached`] opens `path` as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CachedOpen {
    /// `O_PATH`: a handle to look at the file with [`cached_stat`], which
    /// does not open the file itself (no driver's or FIFO's `open` runs).
    Handle,
    /// `O_RDONLY | O_NONBLOCK | O_NOCTTY`, for [`read_nowait`].
    Read,
}

/// Opens `path` (relative to the current directory) only if the kernel can
/// do it without waiting for a disk: every component of the path must be
/// in the kernel's lookup cache (`RESOLVE_CACHED`, Linux 5.12), else
/// `EAGAIN`; `O_NONBLOCK` turns a lease break into `EAGAIN` too. This is
/// the non-blocking attempt io_uring makes before it hands an `openat` to
/// its own worker threads. Close-on-exec.
pub(crate) fn open_cached(path: &Path, how: CachedOpen) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let flags = match how {
        CachedOpen::Handle => OFlags::PATH,
        CachedOpen::Read => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    };
    Ok(rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::CACHED,
    )?)
}

/// Whether `fd` is a regular file, and its length, from what the kernel has
/// cached (`AT_STATX_DONT_SYNC`: a network file system is not asked).
pub(crate) fn cached_stat(fd: BorrowedFd<'_>) -> io::Result<(bool, u64)> {
    use rustix::fs::{AtFlags, FileType, StatxFlags};
    let st = rustix::fs::statx(
        fd,
        c"",
        AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC,
        StatxFlags::TYPE | StatxFlags::SIZE,
    )?;
    let regular = FileType::from_raw_mode(st.stx_mode.into()) == FileType::RegularFile;
    Ok((regular, st.stx_size))
}

/// Reads at `fd`'s current offset (advancing it) only what can be read
/// without waiting for a device: `preadv2(RWF_NOWAIT)`, which copies from
/// the page cache and fails with `EAGAIN` when the data is not there (it
/// may return fewer bytes than asked: those that were). File systems and
/// devices without non-blocking reads fail with `EOPNOTSUPP`.
pub(crate) fn read_nowait(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    use rustix::io::ReadWriteFlags;
    // `u64::MAX`: the current offset, as read(2) uses it.
    Ok(rustix::io::preadv2(
        fd,
        &mut [io::IoSliceMut::new(buf)],
        u64::MAX,
        ReadWriteFlags::NOWAIT,
    )?)
}

/// Whether a [`read_nowait`] error says that such reads can never work on
/// this descriptor (not that this one would have blocked).
pub(crate) fn nowait_unsupported(e: &io::Error) -> bool {
    [Errno::OPNOTSUPP, Errno::INVAL, Errno::BADF, Errno::NOSYS]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}
