//! The typed body of a task: one allocation that holds, in turn, the closure
//! that builds the future (for `call`), the future, and the result.
//!
//! ```text
//!   Start(make) ──first poll──> Running(future) ──Ready──> Done(Ok(value))
//!        │                           │  └──panic──────────> Done(Err(Panicked))
//!        └──────── cancelled / dropped by the worker ─────> Consumed
//!   Done(..) ──parent takes it──> Consumed
//! ```
//!
//! Two handles share the cell (`Arc<TaskCell>`): the owning worker sees it as
//! an `Arc<dyn Runnable>` (drive it, store a panic, drop the future), the
//! promise as an `Arc<dyn Outcome<T>>` (take the result).
//!
//! Who touches the stage, and when (the protocol that makes the `unsafe`
//! accesses sound):
//! - only the owning worker's thread, and only before it sets the task's
//!   `TERMINATED` bit (`Release`), builds, polls or drops the future and
//!   stores the result;
//! - only the parent, and only after observing `TERMINATED` (`Acquire`),
//!   takes the result;
//! - so no two threads ever access the stage at once, and the future (which
//!   need not be `Send`) is created, polled and dropped on one thread only.
//!   Before its slot is removed the worker always empties the stage of the
//!   future (`drop_future`), so the last reference, wherever it is dropped,
//!   finds no future in the cell.

use crate::error::{Error, PanicPayload};
use crate::loom::cell::UnsafeCell;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

enum Stage<G, F: Future> {
    Start(G),
    Running(F),
    Done(Result<F::Output, Error>),
    Consumed,
}

/// A task's future and result (see the module docs). `G` builds the future
/// on the worker that runs it; a local spawn starts at `Running` and never
/// uses `G`.
pub(crate) struct TaskCell<G, F: Future> {
    stage: UnsafeCell<Stage<G, F>>,
}

// SAFETY: the cell crosses threads (a `call` sends it to its worker; the
// promise may be dropped anywhere) but the future `F` never does: the
// module's protocol keeps every access to `Running(F)` on the owning worker's
// thread, and the last reference never finds a future in the cell. What
// other threads may touch is `G` (before the first poll) and the output,
// hence these bounds.
unsafe impl<G: Send, F: Future> Send for TaskCell<G, F> where F::Output: Send {}
// SAFETY: shared references only reach the stage through the methods below,
// whose exclusive-access contract is the module's protocol.
unsafe impl<G: Send, F: Future> Sync for TaskCell<G, F> where F::Output: Send {}

impl<G, F: Future> TaskCell<G, F> {
    /// A cell for a future built on this thread (`spawn`, the root task).
    pub(crate) fn running(future: F) -> Self {
        TaskCell {
            stage: UnsafeCell::new(Stage::Running(future)),
        }
    }
}

impl<G: FnOnce() -> F, F: Future> TaskCell<G, F> {
    /// A cell whose future `make` builds at the first poll (`call`).
    pub(crate) fn lazy(make: G) -> Self {
        TaskCell {
            stage: UnsafeCell::new(Stage::Start(make)),
        }
    }
}

/// The body as the owning worker drives it.
pub(crate) trait Runnable {
    /// Polls the future (building it first if needed); on `Ready` the result
    /// is stored and the future already dropped.
    ///
    /// # Safety
    /// Only on the owning worker's thread, before `TERMINATED`, never
    /// re-entrantly.
    unsafe fn poll(&self, cx: &mut Context<'_>) -> Poll<()>;

    /// Records that `poll` panicked (the future, if any, is dropped).
    ///
    /// # Safety
    /// As for [`Runnable::poll`].
    unsafe fn store_panic(&self, payload: Box<dyn Any + Send>);

    /// Drops the future (or the closure that would build it), keeping any
    /// stored result. Called before the worker lets go of the cell.
    ///
    /// # Safety
    /// As for [`Runnable::poll`].
    unsafe fn drop_future(&self);
}

/// The result as the promise takes it.
pub(crate) trait Outcome<T> {
    /// Takes the stored result, if any (`None`: the task was cancelled or
    /// never ran).
    ///
    /// # Safety
    /// Only after observing the task's `TERMINATED` bit (`Acquire`), from one
    /// thread at a time.
    unsafe fn take(&self) -> Option<Result<T, Error>>;
}

impl<G: FnOnce() -> F, F: Future> Runnable for TaskCell<G, F> {
    unsafe fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.stage.with_mut(|stage| {
            // SAFETY: the caller has exclusive access (the module's protocol).
            let stage = unsafe { &mut *stage };
            if matches!(stage, Stage::Start(_)) {
                let Stage::Start(make) = std::mem::replace(stage, Stage::Consumed) else {
                    unreachable!("checked just above")
                };
                // A panic in `make` leaves `Consumed`; the worker's catch then
                // stores the panic.
                *stage = Stage::Running(make());
            }
            let Stage::Running(future) = stage else {
                return Poll::Ready(());
            };
            // SAFETY: the future is structurally pinned: the cell lives in an
            // `Arc` (it never moves) and the future is only ever dropped in
            // place, by overwriting the stage.
            let future = unsafe { Pin::new_unchecked(future) };
            match future.poll(cx) {
                Poll::Ready(value) => {
                    // Drops the future in place, then stores the value.
                    *stage = Stage::Done(Ok(value));
                    Poll::Ready(())
                }
                Poll::Pending => Poll::Pending,
            }
        })
    }

    unsafe fn store_panic(&self, payload: Box<dyn Any + Send>) {
        // SAFETY: forwarded contract.
        unsafe { self.drop_future() };
        let err = Error::Panicked(PanicPayload::new(payload));
        // SAFETY: the caller has exclusive access (the module's protocol).
        self.stage
            .with_mut(|stage| unsafe { *stage = Stage::Done(Err(err)) });
    }

    unsafe fn drop_future(&self) {
        self.stage.with_mut(|stage| {
            // SAFETY: the caller has exclusive access (the module's protocol).
            let stage = unsafe { &mut *stage };
            if matches!(stage, Stage::Start(_) | Stage::Running(_)) {
                *stage = Stage::Consumed;
            }
        })
    }
}

impl<G, F: Future> Outcome<F::Output> for TaskCell<G, F> {
    unsafe fn take(&self) -> Option<Result<F::Output, Error>> {
        self.stage.with_mut(|stage| {
            // SAFETY: the caller has exclusive access (the module's protocol).
            let stage = unsafe { &mut *stage };
            if !matches!(stage, Stage::Done(_)) {
                return None;
            }
            match std::mem::replace(stage, Stage::Consumed) {
                Stage::Done(result) => Some(result),
                _ => unreachable!("checked just above"),
            }
        })
    }
}

impl<G, F: Future> Drop for TaskCell<G, F> {
    fn drop(&mut self) {
        self.stage.with_mut(|stage| {
            // SAFETY: `&mut self`: nobody else holds the cell any more.
            let stage = unsafe { &mut *stage };
            if let Stage::Running(_) = stage {
                // Unreachable by the protocol (the worker empties the cell of
                // its future first). Should it happen, this thread may not be
                // the future's, so it is leaked rather than dropped here.
                debug_assert!(
                    false,
                    "a task cell outlived its worker slot with its future"
                );
                if let Stage::Running(future) = std::mem::replace(stage, Stage::Consumed) {
                    std::mem::forget(future);
                }
            }
        })
    }
}
