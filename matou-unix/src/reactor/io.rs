//! [`IoSource`]: a non-blocking descriptor plus its registration with the
//! reactor of the worker that uses it.
//!
//! Every socket type of the crate is a thin wrapper over an `IoSource`. An
//! operation tries its syscall first and waits only on `EAGAIN`, so a
//! descriptor that never blocks is never registered (registration is lazy).
//!
//! Moving between workers: a socket is `Send` and `Sync` and may be handed
//! to (or shared with, behind an `Arc`) tasks on other workers. Its
//! registration remembers which reactor it belongs to; when it must wait on a
//! different one, it first releases the old registration (`EPOLL_CTL_DEL` on
//! the old epoll, from this thread, while the descriptor is open, and the
//! token queued on the old reactor's forget list, freed at its next
//! `select`), then registers with the current one. The old reactor signals
//! the waiters it still had on that descriptor when it frees the entry, so a
//! task of that worker waiting on the same socket wakes, retries, and
//! registers back (a socket waited on from two workers at once works, at the
//! price of a re-registration per wait). Dropping a socket off its reactor's
//! thread (e.g. after the run) takes the same path.
//!
//! Invariants:
//! - the descriptor is registered with at most one epoll at a time: the
//!   registration is read and changed under its lock, and a reactor's
//!   `register` happens under it too;
//! - the registration is released before the descriptor is closed (the
//!   `Drop` of `IoSource` runs before its field's), so a reused descriptor
//!   number never inherits stale interest;
//! - no wait is lost to a move: a waiter filed on a reactor is either
//!   signalled by an event or signalled when that registration is released;
//! - a poll-based operation (`poll_io`) whose previous `WouldBlock` filed a
//!   wait that is still unsignalled returns `Pending` without its syscall:
//!   readiness is edge-triggered, so nothing became ready since (an event or
//!   a release would have signalled the wait), and the retry would only fail.

use super::{current, try_current, Dir, Remote};
use matou_core::{suspend, syscall};
use std::io;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

struct Registration {
    remote: Arc<Remote>,
    token: u64,
}

/// A non-blocking descriptor driven by the current worker's reactor.
pub(crate) struct IoSource<T: AsFd> {
    io: T,
    /// Locked only to read or change the registration (never across an
    /// await): uncontended unless the socket is shared between workers.
    reg: Mutex<Option<Registration>>,
}

impl<T: AsFd + std::fmt::Debug> std::fmt::Debug for IoSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.io.fmt(f)
    }
}

impl<T: AsFd> IoSource<T> {
    /// Wraps `io`, which must already be in non-blocking mode.
    pub(crate) fn new(io: T) -> Self {
        IoSource {
            io,
            reg: Mutex::new(None),
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    /// The token of this descriptor on `reactor`, registering it (and
    /// releasing a registration on another reactor) if needed.
    fn token_on(&self, reactor: &super::Reactor) -> io::Result<u64> {
        // Nothing inside can leave the registration half-changed, so a
        // poisoned lock is taken over as is.
        let mut reg = self.reg.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = reg.as_ref() {
            if Arc::ptr_eq(&r.remote, reactor.remote()) {
                return Ok(r.token);
            }
        }
        if let Some(old) = reg.take() {
            old.remote.release(old.token, self.io.as_fd());
        }
        let token = reactor.register(self.io.as_fd())?;
        *reg = Some(Registration {
            remote: reactor.remote().clone(),
            token,
        });
        Ok(token)
    }

    /// Waits until `dir` may be ready (possibly spuriously: retry the
    /// syscall). Cancel-safe: dropping the future forgets the wait.
    pub(crate) async fn ready(&self, dir: Dir) -> io::Result<()> {
        let call = {
            let reactor = current("matou-unix I/O");
            let token = self.token_on(&reactor)?;
            let call = syscall();
            reactor.add_io_waiter(token, dir, call.uid());
            call
        };
        suspend(call).await;
        Ok(())
    }

    /// The token of this descriptor on `reactor` if it is registered there
    /// (never registers nor moves the registration).
    fn token_here(&self, reactor: &super::Reactor) -> Option<u64> {
        let reg = self.reg.lock().unwrap_or_else(PoisonError::into_inner);
        reg.as_ref()
            .filter(|r| Arc::ptr_eq(&r.remote, reactor.remote()))
            .map(|r| r.token)
    }

    /// The poll form of [`IoSource::ready`], for `AsyncRead`-style callers:
    /// wakes `cx` when `dir` may be ready.
    pub(crate) fn poll_ready(&self, dir: Dir, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready_on(&current("matou-unix I/O"), dir, cx)
    }

    fn poll_ready_on(
        &self,
        reactor: &super::Reactor,
        dir: Dir,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let token = self.token_on(reactor)?;
        reactor.poll_io(token, dir, cx).map(Ok)
    }

    /// Runs the non-blocking `op` until it does not report `WouldBlock`,
    /// waiting for `dir` in between; `EINTR` is retried.
    pub(crate) async fn io<R>(
        &self,
        dir: Dir,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready(dir).await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// The poll form of [`IoSource::io`].
    pub(crate) fn poll_io<R>(
        &self,
        dir: Dir,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let reactor = current("matou-unix I/O");
        // A wait filed by an earlier poll and not signalled since means no
        // readiness came after that `WouldBlock`: the syscall would fail
        // again, so skip it (hyper, for one, polls a connection's read side
        // several times per request).
        if let Some(token) = self.token_here(&reactor) {
            if reactor.poll_filed(token, dir, cx) == Some(Poll::Pending) {
                return Poll::Pending;
            }
        }
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.poll_ready_on(&reactor, dir, cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return Poll::Ready(r),
            }
        }
    }
}

impl<T: AsFd> IoSource<T> {
    /// Releases the registration and gives the descriptor back.
    pub(crate) fn into_inner(mut self) -> T {
        self.release();
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used nor dropped again, so `io` is moved
        // out exactly once; the only other field, `reg`, is `None` after
        // `release`, so not dropping it leaks nothing.
        unsafe { std::ptr::read(&this.io) }
    }

    fn release(&mut self) {
        let reg = self.reg.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(reg) = reg.take() else {
            return;
        };
        match try_current() {
            Some(r) if Arc::ptr_eq(r.remote(), &reg.remote) => {
                r.deregister(reg.token, self.io.as_fd())
            }
            _ => reg.remote.release(reg.token, self.io.as_fd()),
        }
    }
}

impl<T: AsFd> Drop for IoSource<T> {
    fn drop(&mut self) {
        self.release();
    }
}
