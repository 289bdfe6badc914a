//! Syscalls: how a task parks until its worker's event source says it may go on
//! (Miou's `syscall`, `uid`, `suspend`, `signal`).
//!
//! A [`Syscall`] is created inside a task and belongs to that task on that
//! worker (it is `!Send`). It is registered with the worker from creation, so a
//! signal that arrives before the task reaches [`suspend`] is not lost.
//! Invariants:
//! - a registered uid is in exactly one worker's table, until it is signalled
//!   and consumed by `suspend`, or dropped;
//! - a syscall dropped unsignalled (the task was cancelled, or the `suspend`
//!   future was dropped by a timeout) has its uid passed to the next `select`
//!   of its worker in `cancelled`, so the event source can forget it;
//! - a signal for an unknown uid is ignored.

use crate::runtime::context;
use crate::seam::Uid;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

struct Parked {
    waker: Waker,
    signalled: bool,
}

/// Uids are already unique numbers: hashing them costs one multiplication
/// (SipHash would cost ~20 ns per look-up, three look-ups per park).
/// Also used for tables keyed by [`TaskId`](crate::TaskId) (`Orphans`),
/// unique numbers as well.
#[derive(Default)]
pub(crate) struct UidHasher(u64);

impl Hasher for UidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // The table picks a bucket by the low bits: keeping the uid's own
        // (uids come in runs of consecutive numbers per thread) puts the
        // syscalls parked together in neighbouring buckets, where Fibonacci
        // hashing scattered them over a table far larger than the cache. The
        // top bits, the table's tag, are mixed.
        const TAG_BITS: u64 = !(u64::MAX >> 7);
        self.0 = n ^ (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) & TAG_BITS);
    }
}

/// A worker's table of registered syscalls.
#[derive(Default)]
pub(crate) struct Syscalls {
    parked: HashMap<u64, Parked, BuildHasherDefault<UidHasher>>,
}

impl Syscalls {
    pub(crate) fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }

    /// Marks `uid` signalled; returns the waker to call (outside any borrow).
    pub(crate) fn signal(&mut self, uid: Uid) -> Option<Waker> {
        let parked = self.parked.get_mut(&uid.0)?;
        if parked.signalled {
            return None;
        }
        parked.signalled = true;
        Some(parked.waker.clone())
    }

    pub(crate) fn clear(&mut self) {
        self.parked.clear();
    }
}

/// A pending interaction with the system, owned by the task that created it.
///
/// Hand its [`uid`](Syscall::uid) to your event source, then [`suspend`] on it.
/// It is registered with the worker from creation, so a signal that arrives
/// before the task reaches `suspend` is not lost. Dropping it unsignalled
/// (directly, or by dropping its `Suspend`) cancels it: its uid reaches the
/// worker's next `select` in `cancelled`. It is `!Send`: it belongs to the
/// task and worker that made it.
///
/// ```
/// matou_core::run(async {
///     let call = matou_core::syscall();
///     let uid = call.uid(); // what the event source is told to signal
///     drop(call); // never signalled: `uid` is passed to `select` as cancelled
///     # let _ = uid;
/// });
/// ```
#[must_use = "a syscall does nothing until it is suspended on"]
pub struct Syscall {
    uid: Uid,
    armed: bool,
    // A syscall belongs to one task on one worker.
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for Syscall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syscall").field("uid", &self.uid).finish()
    }
}

/// Creates a syscall for the current task.
///
/// # Panics
/// Outside a matou task.
#[track_caller]
pub fn syscall() -> Syscall {
    let uid = Uid(crate::task::next_unique());
    context::with_current("matou::syscall", |w, cur| {
        let waker = w.waker_of(cur);
        w.syscalls.borrow_mut().parked.insert(
            uid.0,
            Parked {
                waker,
                signalled: false,
            },
        );
    });
    Syscall {
        uid,
        armed: true,
        _not_send: PhantomData,
    }
}

impl Syscall {
    /// The uid that the event source must return in a [`Signal`](crate::Signal).
    pub fn uid(&self) -> Uid {
        self.uid
    }
}

impl Drop for Syscall {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let uid = self.uid;
        context::with_worker(|w| {
            let removed = w.syscalls.borrow_mut().parked.remove(&uid.0);
            if let Some(p) = removed {
                if !p.signalled {
                    w.syscall_cancelled(uid);
                }
            }
        });
    }
}

/// Parks the current task until its worker's event source returns a signal for
/// `syscall`.
///
/// Dropping the returned future before it completes (cancellation, timeout)
/// cancels the syscall: its uid reaches the next `select` in `cancelled`.
pub fn suspend(syscall: Syscall) -> Suspend {
    Suspend { syscall }
}

/// The future returned by [`suspend`].
///
/// Cancel safe in the sense that matters to an event source: dropping it
/// before the signal (a timeout, a race loser, a cancelled task) cancels the
/// syscall, and the uid is reported in `cancelled` so the source can forget
/// it; a signal that came first is simply unused.
///
/// ```
/// use matou_core::{race, suspend, syscall};
///
/// matou_core::run(async {
///     // The default source never signals: the `Suspend` loses the race and
///     // is dropped, which cancels its syscall.
///     let (winner, ()) = race!(suspend(syscall()), async {});
///     assert_eq!(winner, 1);
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Suspend {
    syscall: Syscall,
}

impl Future for Suspend {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.syscall.armed {
            return Poll::Ready(());
        }
        let uid = self.syscall.uid.0;
        let ready = context::with_worker(|w| {
            let mut syscalls = w.syscalls.borrow_mut();
            match syscalls.parked.get_mut(&uid) {
                Some(p) if p.signalled => {
                    syscalls.parked.remove(&uid);
                    true
                }
                Some(p) => {
                    if !p.waker.will_wake(cx.waker()) {
                        p.waker = cx.waker().clone();
                    }
                    false
                }
                None => true,
            }
        })
        .unwrap_or(true);
        if ready {
            self.syscall.armed = false;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
