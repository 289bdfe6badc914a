//! Syscalls: how a task parks until its worker's event source says it may go on
//! (Miou's `syscall`, `uid`, `suspend`, `signal`).
//!
//! A [`Syscall`] is created inside a task and is registered with that task's
//! worker, its *owner*, from creation, so a signal that arrives before the task
//! reaches [`suspend`] is not lost. It is `Send`: the future holding it may be
//! moved to another worker between two polls (e.g. polled once, then handed to
//! `call`). Only the owner's thread touches the owner's table, so a syscall
//! seen on another thread never waits there: polled on a foreign worker it
//! completes at once (a spurious wake-up, which every caller of an event
//! source must tolerate: it re-checks and makes a new syscall, on the worker
//! it is on now), and polled or dropped off its owner it hands its own
//! forgetting to the owner as a `Remote::Run` message.
//!
//! Invariants:
//! - a registered uid is in exactly one worker's table, until it is signalled
//!   and consumed by `suspend`, or dropped;
//! - a syscall dropped unsignalled (the task was cancelled, or the `suspend`
//!   future was dropped by a timeout) has its uid passed to the next `select`
//!   of its worker in `cancelled`, so the event source can forget it;
//! - a signal for an unknown uid is ignored;
//! - a syscall released off its owner is forgotten by the owner when it
//!   next drains its inbox, with the same rule (its uid reaches the owner's
//!   `select` in `cancelled` unless it had been signalled).

use crate::loom::sync::Arc;
use crate::runtime::shared::Remote;
use crate::runtime::worker::Worker;
use crate::runtime::{context, Shared};
use crate::seam::Uid;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
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
    /// This worker as the owner its syscalls record, made at the first one.
    /// One `Arc` per worker, so that making and dropping syscalls touches a
    /// reference count that only this worker's thread uses (cloning the
    /// run's `Arc<Shared>` instead would bounce one line between workers).
    owner: Option<Arc<Owner>>,
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

/// The worker a syscall is registered with: its run and its index.
struct Owner {
    shared: Arc<Shared>,
    index: usize,
}

impl Owner {
    /// `w` itself, as an owner (the same `Arc` for all its syscalls);
    /// `syscalls` is `w`'s table, already borrowed by the caller.
    fn of(w: &Worker, syscalls: &mut Syscalls) -> Arc<Owner> {
        syscalls
            .owner
            .get_or_insert_with(|| {
                Arc::new(Owner {
                    shared: w.shared.clone(),
                    index: w.index,
                })
            })
            .clone()
    }

    fn is(&self, w: &Worker) -> bool {
        w.index == self.index && Arc::ptr_eq(&w.shared, &self.shared)
    }

    /// Has the owner forget `uid`, from a thread that is not the owner's
    /// (the owner's inbox is closed once its run ended: nothing to forget).
    fn forget_remotely(&self, uid: Uid) {
        self.shared.push_remote(
            self.index,
            Remote::Run(Box::new(move |w: &Worker| forget_on(w, uid))),
        );
    }
}

/// Removes `uid` from its owner `w`'s table; one never signalled is passed to
/// the next `select` as cancelled.
fn forget_on(w: &Worker, uid: Uid) {
    let removed = w.syscalls.borrow_mut().parked.remove(&uid.0);
    if let Some(p) = removed {
        if !p.signalled {
            w.syscall_cancelled(uid);
        }
    }
}

/// A pending interaction with the system, owned by the task that created it.
///
/// Hand its [`uid`](Syscall::uid) to your event source, then [`suspend`] on it.
/// It is registered with the worker from creation, so a signal that arrives
/// before the task reaches `suspend` is not lost. Dropping it unsignalled
/// (directly, or by dropping its `Suspend`) cancels it: its uid reaches the
/// worker's next `select` in `cancelled`.
///
/// It is `Send` and `Sync`, so futures parked on it can be. It stays
/// registered with the worker that made it (its owner): moved to another
/// worker and polled there, its [`Suspend`] completes at once, spuriously,
/// and the owner forgets the syscall; dropped on another thread, the owner
/// forgets it too. A caller that waits again then makes a new syscall, on
/// the worker it is now on.
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
    owner: Arc<Owner>,
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
    let owner = context::with_current("matou::syscall", |w, cur| {
        let waker = w.waker_of(cur);
        let mut syscalls = w.syscalls.borrow_mut();
        syscalls.parked.insert(
            uid.0,
            Parked {
                waker,
                signalled: false,
            },
        );
        Owner::of(w, &mut syscalls)
    });
    Syscall {
        uid,
        armed: true,
        owner,
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
        let owner = &self.owner;
        let on_owner = context::with_worker(|w| {
            let here = owner.is(w);
            if here {
                forget_on(w, uid);
            }
            here
        });
        if on_owner != Some(true) {
            owner.forget_remotely(uid);
        }
    }
}

/// Parks the current task until its worker's event source returns a signal for
/// `syscall`.
///
/// Dropping the returned future before it completes (cancellation, timeout)
/// cancels the syscall: its uid reaches the next `select` in `cancelled`.
/// Polled on another worker than the syscall's (the future was moved), it
/// completes at once: see [`Syscall`].
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

impl Suspend {
    /// The uid of the syscall this future waits on: an event source that
    /// keeps `Suspend`s of its own (for poll-based callers) signals it to wake
    /// their task.
    pub fn uid(&self) -> Uid {
        self.syscall.uid
    }
}

impl Future for Suspend {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.syscall.armed {
            return Poll::Ready(());
        }
        let uid = self.syscall.uid.0;
        let owner = &self.syscall.owner;
        let ready = context::with_worker(|w| {
            if !owner.is(w) {
                // Moved off its owner: a spurious completion (see `Syscall`).
                owner.forget_remotely(Uid(uid));
                return true;
            }
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
        .unwrap_or_else(|| {
            // Polled off any worker (e.g. after the run): nothing to wait for.
            owner.forget_remotely(Uid(uid));
            true
        });
        if ready {
            self.syscall.armed = false;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
