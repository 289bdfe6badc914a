//! The cross-thread wake-up of one reactor: an eventfd plus a coalescing flag.
//!
//! Protocol (`pending` is the only shared state besides the eventfd):
//!
//! ```text
//!   any thread: interrupt()                 the reactor's select
//!   -----------------------                 --------------------
//!   if !pending.swap(true): write(efd, 1)   epoll_wait ... sees WAKE_TOKEN
//!                                           pending.store(false)
//! ```
//!
//! - Coalescing: between two selects that see the wake-up, only the first
//!   interrupt writes; the others find `pending` set and return at once.
//! - Sticky: a write made before `select` leaves the eventfd's edge queued in
//!   epoll, so the next `epoll_wait` returns at once (the core relies on this).
//! - Never lost: `pending` is cleared only after `epoll_wait` returned because
//!   of a write, so an interrupt that found it set is covered by a select
//!   that is returning anyway; one that swaps after the clear writes again.
//! - On the io_uring backend the eventfd is watched by a multishot poll,
//!   which posts a completion on every write: the same edges, the same
//!   protocol.
//! - The eventfd is never read. With edge-triggered epoll every write is a new
//!   edge whatever the counter holds, and the counter cannot overflow in
//!   practice (2^64 writes); skipping the read saves a syscall per wake-up.

use crate::sys;
use matou_core::Interrupt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) struct EventFdInterrupt {
    fd: OwnedFd,
    pending: AtomicBool,
}

impl EventFdInterrupt {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(EventFdInterrupt {
            fd: sys::eventfd()?,
            pending: AtomicBool::new(false),
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The reactor saw the wake-up edge: later interrupts must write again.
    pub(crate) fn acknowledge(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }
}

impl Interrupt for EventFdInterrupt {
    fn interrupt(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            sys::eventfd_notify(self.fd.as_fd());
        }
    }
}
