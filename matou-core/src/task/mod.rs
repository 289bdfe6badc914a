//! Tasks: the shared header, the atomic state word, the type-erased body, and
//! the waiter slot of the promise.
//!
//! A task is split in two so that its future need not be `Send`:
//! - the **header** ([`header::Header`], behind an `Arc`) is what other threads
//!   see: the state bits, the waiter of the promise, the link to the parent;
//! - the **body** ([`cell::Runnable`]) and the task's children table live in a
//!   slot of the owning worker's table and are touched by that thread only.
//!
//! The life of a task, as the owning worker drives it, is written down in
//! [`state`]; who holds which reference is in [`header`].

pub(crate) mod cell;
pub(crate) mod header;
pub(crate) mod state;
pub(crate) mod waiter;

use std::sync::atomic::{AtomicU64, Ordering};

/// A task's identity, unique within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    pub(crate) fn next() -> TaskId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TaskId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The raw number, for logs.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}
