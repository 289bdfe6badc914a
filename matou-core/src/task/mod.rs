//! Tasks: the shared header, the atomic state word, the type-erased body, and
//! the waiter slot of the promise.
//!
//! A task is split in two so that its future need not be `Send`:
//! - the **header** ([`header::Header`], behind an `Arc`) is what other threads
//!   see: the state bits, the waiter of the promise, the link to the parent;
//! - the **body** ([`cell::TaskCell`]: the future, then its result) is shared
//!   by the owning worker's slot and the promise, but its future is only ever
//!   touched by the owning worker's thread, and the promise reads the result
//!   only after `TERMINATED` (the protocol is in [`cell`]);
//! - the task's children table lives in the worker's slot, touched by that
//!   thread only.
//!
//! The life of a task, as the owning worker drives it, is written down in
//! [`state`] and `runtime::lifecycle`; who holds which reference is in
//! [`header`].
//!
//! This module knows nothing of the runtime: a task reaches its worker's
//! queue through the [`Scheduler`] its header was made with (the runtime's
//! `Shared` implements it), so the dependency goes one way, runtime -> task.

pub(crate) mod cell;
pub(crate) mod header;
pub(crate) mod state;
pub(crate) mod waiter;

#[cfg(all(test, loom))]
mod loom_models;

use header::TaskRef;
use std::cell::Cell;

/// What a task needs of the runtime: a way back onto its worker's queue.
pub(crate) trait Scheduler: Send + Sync + 'static {
    /// Queues `task`, whose `NOTIFIED` bit the caller has just flipped from 0
    /// to 1 (so it is in no queue), on its own worker: that worker's local
    /// queue when called on its thread, else its inbox.
    fn enqueue(&self, task: TaskRef);
}
use std::sync::atomic::{AtomicU64, Ordering};

/// A process-wide unique number. Each thread takes a block of numbers from a
/// global counter at a time, so workers do not contend on one cache line for
/// every task or syscall they create.
pub(crate) fn next_unique() -> u64 {
    const BLOCK: u64 = 1024;
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    RANGE
        .try_with(|r| {
            let (mut next, mut end) = r.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
                end = next + BLOCK;
            }
            r.set((next + 1, end));
            next
        })
        .unwrap_or_else(|_| NEXT_BLOCK.fetch_add(1, Ordering::Relaxed))
}

/// A task's identity, unique within the process.
///
/// ```
/// matou_core::run(async {
///     let a = matou_core::spawn(async {});
///     let b = matou_core::spawn(async {});
///     assert_ne!(a.id(), b.id());
///     let _ = (a.await, b.await);
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    pub(crate) fn next() -> TaskId {
        TaskId(next_unique())
    }

    /// The raw number, for logs.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}
