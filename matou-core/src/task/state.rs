//! The atomic state word of a task: five bits that other threads may touch.
//!
//! Everything else about a task (its future, its children, whether it is
//! cancelling) lives in its worker's local tables and is touched by that
//! worker's thread only. These bits are the cross-thread part:
//!
//! | bit          | set by                               | cleared by                 |
//! |--------------|--------------------------------------|----------------------------|
//! | `NOTIFIED`   | any thread scheduling the task       | its worker, just before it runs the task |
//! | `CANCEL`     | the parent, or the worker of an ancestor being cancelled, or its own worker when it panicked with children | never |
//! | `TERMINATED` | its worker, once the future is dropped and the result stored | never |
//! | `JOIN_WAKER` | the parent, after writing its waker in the header's waiter slot | the parent, before rewriting it; only while not `TERMINATED` |
//! | `DETACHED`   | the promise, when it is dropped with its result untaken | never |
//! | `ABANDONED`  | the promise, with `DETACHED`, when it is dropped while being awaited (its await was cut short: a timeout, a race loser) | never |
//!
//! Transitions:
//!
//! ```text
//!   spawn ──> NOTIFIED ──run──> (idle) ──wake──> NOTIFIED ──run──> ...
//!                 │                 │
//!                 └── CANCEL set ───┴──> cancelling: children cancelled and
//!                                        awaited, future dropped ──> TERMINATED
//!   poll returns Ready, no live child ─────────────────────────────> TERMINATED
//! ```
//!
//! Invariants:
//! - A task is in at most one queue at a time: only the thread that flips
//!   `NOTIFIED` from 0 to 1 enqueues it.
//! - Once `TERMINATED` is set, the task's slot and future are gone; scheduling it
//!   is a no-op, and its result slot is final.
//! - `TERMINATED` is published with `Release`; whoever observes it with `Acquire`
//!   sees the stored result and every side effect of the task's destructors.
//! - `JOIN_WAKER` says who may touch the waiter slot (see `waiter`): while it
//!   is clear, only the parent (to write its waker); while it is set, only
//!   reads (the parent comparing wakers, the worker waking it once it has set
//!   `TERMINATED`). The parent can neither set nor clear it once `TERMINATED`
//!   is set, so the worker's read after `terminate` never races a write.
//! - `DETACHED` decides who drops a result nobody took: whichever of the
//!   promise's `detach` and the worker's `terminate` comes second sees the
//!   other's bit and drops it; the first leaves it alone. So exactly one does.
//! - `ABANDONED` tells the parent's worker, when the parent returns, that
//!   this child was not forgotten: its promise was polled and then dropped
//!   (which also requested its cancellation), so the parent only waits for
//!   its end. A child still in the table without it is forgotten.

use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::waker_cell::StateWord;
use std::fmt;

const NOTIFIED: usize = 1 << 0;
const CANCEL: usize = 1 << 1;
pub(crate) const TERMINATED: usize = 1 << 2;
pub(crate) const JOIN_WAKER: usize = 1 << 3;
const DETACHED: usize = 1 << 4;
const ABANDONED: usize = 1 << 5;

/// The atomic state word of one task (see the module docs).
pub(crate) struct State(AtomicUsize);

/// What [`State::notify`] decided.
#[must_use]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Notify {
    /// The caller flipped `NOTIFIED` and must enqueue the task.
    Enqueue,
    /// The task is already queued, or has terminated: nothing to do.
    Skip,
}

/// What [`State::terminate`] found.
#[must_use]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct Ended(usize);

impl Ended {
    /// The parent left a waker (`JOIN_WAKER`): wake it.
    pub(crate) fn wake_parent(self) -> bool {
        self.0 & JOIN_WAKER != 0 && self.0 & DETACHED == 0
    }

    /// The promise was dropped first (`DETACHED`): the worker drops the
    /// result.
    pub(crate) fn result_unclaimed(self) -> bool {
        self.0 & DETACHED != 0
    }
}

/// What [`State::detach`] found.
#[must_use]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Detached {
    /// The task had terminated: the promise drops the result itself.
    DropResultHere,
    /// The worker will drop the result when the task terminates.
    WorkerDropsIt,
}

/// A snapshot taken by the worker when it dequeues a task.
#[must_use]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

impl Snapshot {
    pub(crate) fn cancel_requested(self) -> bool {
        self.0 & CANCEL != 0
    }
}

impl State {
    /// A new task is born scheduled: its creator enqueues it (locally or by a
    /// remote spawn message), so nobody else must.
    pub(crate) fn new_scheduled() -> State {
        State(AtomicUsize::new(NOTIFIED))
    }

    /// Marks the task as needing a run.
    pub(crate) fn notify(&self) -> Notify {
        let prev = self.0.fetch_or(NOTIFIED, Ordering::AcqRel);
        if prev & (NOTIFIED | TERMINATED) == 0 {
            Notify::Enqueue
        } else {
            Notify::Skip
        }
    }

    /// Called by the owning worker when it takes the task off a queue.
    pub(crate) fn take_notified(&self) -> Snapshot {
        Snapshot(self.0.fetch_and(!NOTIFIED, Ordering::AcqRel))
    }

    /// Requests cancellation. Returns whether the task still needs to be
    /// scheduled to observe it (it has not terminated).
    pub(crate) fn request_cancel(&self) -> Notify {
        let prev = self.0.fetch_or(CANCEL | NOTIFIED, Ordering::AcqRel);
        if prev & (NOTIFIED | TERMINATED) == 0 {
            Notify::Enqueue
        } else {
            Notify::Skip
        }
    }

    /// Marks cancellation as requested without scheduling (the owning worker
    /// uses it on a task that panicked and now reaps its children).
    pub(crate) fn set_cancel(&self) {
        self.0.fetch_or(CANCEL, Ordering::AcqRel);
    }

    /// Publishes the end of the task (see the module invariants), and says
    /// what the worker still owes: waking the parent, dropping a result the
    /// promise gave up.
    pub(crate) fn terminate(&self) -> Ended {
        Ended(self.0.fetch_or(TERMINATED, Ordering::AcqRel))
    }

    /// The promise is dropped with its result untaken (see the module
    /// invariants for who then drops the result).
    /// `abandoned`: the promise was being awaited (see `ABANDONED`).
    pub(crate) fn detach(&self, abandoned: bool) -> Detached {
        let bits = if abandoned {
            DETACHED | ABANDONED
        } else {
            DETACHED
        };
        let prev = self.0.fetch_or(bits, Ordering::AcqRel);
        if prev & TERMINATED != 0 {
            Detached::DropResultHere
        } else {
            Detached::WorkerDropsIt
        }
    }

    /// Whether the promise was dropped while being awaited (see
    /// `ABANDONED`): the parent owes this child a wait, not an await.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) & ABANDONED != 0
    }

    /// Whether the task is queued to run (`NOTIFIED`), read by `task_tree`.
    pub(crate) fn is_notified(&self) -> bool {
        self.0.load(Ordering::Acquire) & NOTIFIED != 0
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.0.load(Ordering::Acquire) & TERMINATED != 0
    }

    /// Whether a cancel was requested (`CANCEL`), read outside a poll (an
    /// `OrphansHandle` refusing new children of a task being cancelled).
    pub(crate) fn is_cancel_requested(&self) -> bool {
        self.0.load(Ordering::Acquire) & CANCEL != 0
    }
}

/// The waiter slot's guard: `JOIN_WAKER`, with `TERMINATED` as the done bit.
impl StateWord for State {
    fn bits(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    fn update_unless(
        &self,
        change: impl Fn(usize) -> usize,
        unless: usize,
    ) -> Result<usize, usize> {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & unless != 0 {
                return Err(cur);
            }
            match self.0.compare_exchange_weak(
                cur,
                change(cur),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(prev) => return Ok(prev),
                Err(actual) => cur = actual,
            }
        }
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.0.load(Ordering::Relaxed);
        let mut flags = f.debug_set();
        for (bit, name) in [
            (NOTIFIED, "NOTIFIED"),
            (CANCEL, "CANCEL"),
            (TERMINATED, "TERMINATED"),
            (JOIN_WAKER, "JOIN_WAKER"),
            (DETACHED, "DETACHED"),
            (ABANDONED, "ABANDONED"),
        ] {
            if bits & bit != 0 {
                flags.entry(&format_args!("{name}"));
            }
        }
        flags.finish()
    }
}

/// A task's unfinished children and its "cancelling" flag, in one word: how
/// a cancelling task waits for its children without scanning them.
///
/// The count (the bits above `CANCELLING`) is incremented by the task's
/// worker at each spawn and decremented by each child's worker when the
/// child terminates; `CANCELLING` is set once, by the task's worker, and is
/// the one record of "this task waits for its children to end" (cancelled,
/// panicked, or returned with live children). One word, so the read-modify-
/// writes are totally ordered: either the last child's decrement sees
/// `CANCELLING` and schedules the task, or the task's later load sees 0 (or
/// both: a spurious run of an ended task is harmless). So the wait costs
/// O(1) per wake and one wake, whatever the number of children. Modelled in
/// `loom_models::last_child_wakes_its_cancelling_parent`.
pub(crate) struct ChildCount(AtomicUsize);

const CANCELLING: usize = 1;
const ONE_CHILD: usize = 2;

impl ChildCount {
    pub(crate) fn new() -> ChildCount {
        ChildCount(AtomicUsize::new(0))
    }

    pub(crate) fn spawned(&self) {
        self.0.fetch_add(ONE_CHILD, Ordering::Relaxed);
    }

    /// A child terminated; returns whether the task must be scheduled (it
    /// is cancelling and that was its last child).
    #[must_use]
    pub(crate) fn terminated(&self) -> bool {
        let before = self.0.fetch_sub(ONE_CHILD, Ordering::AcqRel);
        before == ONE_CHILD | CANCELLING
    }

    /// Returns whether the task was not cancelling before.
    #[must_use]
    pub(crate) fn start_cancelling(&self) -> bool {
        self.0.fetch_or(CANCELLING, Ordering::AcqRel) & CANCELLING == 0
    }

    pub(crate) fn is_cancelling(&self) -> bool {
        self.0.load(Ordering::Relaxed) & CANCELLING != 0
    }

    /// `Acquire`: seeing 0 means seeing every child's end.
    pub(crate) fn all_ended(&self) -> bool {
        self.0.load(Ordering::Acquire) < ONE_CHILD
    }
}
