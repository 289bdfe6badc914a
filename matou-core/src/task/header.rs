//! The shared part of a task: what wakers, promises and other workers hold.
//!
//! A `Header` is reference-counted (`Arc`) and `Send + Sync`; the task's future
//! is not in it (it stays in the owning worker's slot table, so it need not be
//! `Send`). Who holds an `Arc<Header>`:
//! - the owning worker's slot for the task, until the task terminates;
//! - the parent's children table, until the parent awaits or cancels the promise;
//! - every `Waker` made for the task, and the queue entries that schedule it;
//! - the [`Promise`](crate::Promise) and, for each child, the `parent` link.

use super::state::{Notify, State};
use super::waiter::WaiterSlot;
use super::TaskId;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::Arc;
use crate::runtime::Shared;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::task::{Wake, Waker};

/// Called when a task terminates, on its worker's thread (used by `Orphans`).
pub(crate) trait ExitHook: Send + Sync {
    fn task_exited(&self, key: usize, id: TaskId);
}

pub(crate) struct Header {
    pub(crate) state: State,
    pub(crate) id: TaskId,
    /// Index of the worker that owns the task; fixed (tasks never migrate).
    pub(crate) worker: usize,
    /// Key of the task's slot in its worker's table; written and read by the
    /// owning worker's thread only (an atomic just to keep `Header: Sync`).
    pub(crate) slot: AtomicUsize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) parent: Option<Arc<Header>>,
    pub(crate) spawned_at: &'static Location<'static>,
    /// The waker of whoever awaits or cancels the promise.
    pub(crate) waiter: WaiterSlot,
    pub(crate) exit_hook: Option<(Arc<dyn ExitHook>, usize)>,
}

impl Header {
    pub(crate) fn new(
        shared: Arc<Shared>,
        worker: usize,
        parent: Option<Arc<Header>>,
        spawned_at: &'static Location<'static>,
        exit_hook: Option<(Arc<dyn ExitHook>, usize)>,
    ) -> Header {
        Header {
            state: State::new_scheduled(),
            id: TaskId::next(),
            worker,
            slot: AtomicUsize::new(usize::MAX),
            shared,
            parent,
            spawned_at,
            waiter: WaiterSlot::new(),
            exit_hook,
        }
    }

    /// Puts the task on its worker's run queue unless it is already queued or
    /// has terminated.
    pub(crate) fn schedule(self: &Arc<Self>) {
        if self.state.notify() == Notify::Enqueue {
            crate::runtime::enqueue(self.clone());
        }
    }

    /// Asks the task to cancel itself (and its subtree) and schedules it so
    /// that its worker notices, interrupting that worker if it sleeps.
    pub(crate) fn request_cancel(self: &Arc<Self>) {
        if self.state.request_cancel() == Notify::Enqueue {
            crate::runtime::enqueue(self.clone());
        }
    }

    pub(crate) fn slot(&self) -> usize {
        self.slot.load(Ordering::Relaxed)
    }
}

impl Wake for Header {
    fn wake(self: Arc<Self>) {
        if self.state.notify() == Notify::Enqueue {
            crate::runtime::enqueue(self);
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.schedule();
    }
}

/// Calls `f` with a `Waker` for `header` that borrows the caller's reference
/// instead of taking one, so polling a task costs no reference-count traffic.
pub(crate) fn with_waker_ref<R>(header: &Arc<Header>, f: impl FnOnce(&Waker) -> R) -> R {
    // SAFETY: `Arc::from_raw` on the pointer of the live `header` re-creates
    // that same `Arc` without changing its count; `Waker::from` stores exactly
    // that pointer, and `ManuallyDrop` keeps the waker's drop (a decrement)
    // from running, so the count stays balanced. `header` outlives the call, so
    // the pointer stays valid; a clone made inside `f` increments normally.
    let waker = ManuallyDrop::new(Waker::from(unsafe { Arc::from_raw(Arc::as_ptr(header)) }));
    f(&waker)
}
