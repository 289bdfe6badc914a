//! The atomic state word of a task: three bits that other threads may touch.
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

use crate::loom::sync::atomic::{AtomicU8, Ordering};
use std::fmt;

const NOTIFIED: u8 = 1 << 0;
const CANCEL: u8 = 1 << 1;
const TERMINATED: u8 = 1 << 2;

/// The atomic state word of one task (see the module docs).
pub(crate) struct State(AtomicU8);

/// What [`State::notify`] decided.
#[must_use]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Notify {
    /// The caller flipped `NOTIFIED` and must enqueue the task.
    Enqueue,
    /// The task is already queued, or has terminated: nothing to do.
    Skip,
}

/// A snapshot taken by the worker when it dequeues a task.
#[must_use]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(u8);

impl Snapshot {
    pub(crate) fn cancel_requested(self) -> bool {
        self.0 & CANCEL != 0
    }
}

impl State {
    /// A new task is born scheduled: its creator enqueues it (locally or by a
    /// remote spawn message), so nobody else must.
    pub(crate) fn new_scheduled() -> State {
        State(AtomicU8::new(NOTIFIED))
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
        // Common case first: only NOTIFIED is set, and one compare-exchange
        // clears it (a bare `fetch_and` whose result is used compiles to a
        // compare-exchange loop anyway).
        match self
            .0
            .compare_exchange(NOTIFIED, 0, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(prev) => Snapshot(prev),
            Err(_) => Snapshot(self.0.fetch_and(!NOTIFIED, Ordering::AcqRel)),
        }
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

    pub(crate) fn cancel_requested(&self) -> bool {
        self.0.load(Ordering::Acquire) & CANCEL != 0
    }

    /// Publishes the end of the task (see the module invariants).
    pub(crate) fn terminate(&self) {
        self.0.fetch_or(TERMINATED, Ordering::AcqRel);
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.0.load(Ordering::Acquire) & TERMINATED != 0
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
        ] {
            if bits & bit != 0 {
                flags.entry(&format_args!("{name}"));
            }
        }
        flags.finish()
    }
}
