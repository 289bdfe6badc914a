//! The typed body of a task: what its one allocation holds after the header,
//! in turn the closure that builds the future (for `call`), the future, and
//! the result.
//!
//! ```text
//!   Start(make) ──first poll──> Running(future) ──Ready──> Done(Ok(value))
//!        │                           │  └──panic──────────> Done(Err(Panicked))
//!        └──────── cancelled / dropped by the worker ─────> Consumed
//!   Done(..) ──the promise takes it (or drops it)─────────> Consumed
//! ```
//!
//! A task is one `Arc<Header<TaskCell<G, F>>>` ([`super::header`]), seen by
//! the runtime as a [`TaskRef`](super::header::TaskRef) (`Arc<Header<dyn
//! Body>>`): the worker drives the body through [`Body`], the promise takes
//! the result through [`take_output`], typed again.
//!
//! Who touches the stage, and when (the protocol that makes the `unsafe`
//! accesses, and the unconditional `Send`/`Sync`, sound):
//! - only the owning worker's thread, and only before it sets the task's
//!   `TERMINATED` bit (`Release`), builds, polls or drops the future and
//!   stores the result; so the future (which need not be `Send`) is
//!   created, polled and dropped on one thread only, and the worker always
//!   empties the stage of the future before it lets go of the task;
//! - after `TERMINATED`, the result belongs to the promise: it takes it
//!   (`Acquire` on `TERMINATED` first), or, when the promise is dropped
//!   first, the `DETACHED` handshake in [`super::state`] picks exactly one
//!   of the promise and the worker to drop it. A result whose type is not
//!   `Send` comes from a local `spawn`, whose promise cannot leave the
//!   worker's thread, so either way it is dropped there;
//! - so when the last reference goes, wherever that is (a waker may be the
//!   last), the stage holds no future and no result, only `Consumed` or a
//!   `Start` closure, which is `Send` (`call` requires it; `spawn`'s is a
//!   function pointer).

use super::header::{waker_vtable, Header, TaskRef};
use crate::error::{Error, PanicPayload};
use crate::loom::cell::UnsafeCell;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, RawWakerVTable};

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

// SAFETY: the task crosses threads (a `call` sends it to its worker; wakers
// and the promise may be anywhere) but, by the module's protocol, the future
// and a non-`Send` result never leave the owning worker's thread, and the
// closure `G` is `Send` by construction (`lazy` requires it, `running` uses a
// function pointer).
unsafe impl<G, F: Future> Send for TaskCell<G, F> {}
// SAFETY: shared references only reach the stage through the methods below,
// whose exclusive-access contract is the module's protocol.
unsafe impl<G, F: Future> Sync for TaskCell<G, F> {}

impl<F: Future> TaskCell<fn() -> F, F> {
    /// A cell for a future built on this thread (`spawn`, the root task).
    pub(crate) fn running(future: F) -> Self {
        TaskCell {
            stage: UnsafeCell::new(Stage::Running(future)),
        }
    }
}

impl<G: FnOnce() -> F + Send, F: Future> TaskCell<G, F> {
    /// A cell whose future `make` builds at the first poll (`call`).
    pub(crate) fn lazy(make: G) -> Self {
        TaskCell {
            stage: UnsafeCell::new(Stage::Start(make)),
        }
    }
}

impl<G, F: Future> TaskCell<G, F> {
    /// Takes the stored result, if any (`None`: cancelled, or never ran).
    ///
    /// # Safety
    /// Only after observing the task's `TERMINATED` bit (`Acquire`), by the
    /// one party the module's protocol gives the result to.
    pub(crate) unsafe fn take(&self) -> Option<Result<F::Output, Error>> {
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

/// The body as the owning worker drives it.
pub(crate) trait Body: Send + Sync + 'static {
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
    /// As for [`Body::poll`].
    unsafe fn store_panic(&self, payload: Box<dyn Any + Send>);

    /// Replaces whatever the task produced with `err` (a task that forgot
    /// children fails with `StillHasChildren` whatever it returned). The
    /// result it replaces is dropped here: the caller catches a panic.
    ///
    /// # Safety
    /// As for [`Body::poll`].
    unsafe fn store_error(&self, err: Error);

    /// Drops the future (or the closure that would build it), keeping any
    /// stored result. Called before the worker lets go of the task.
    ///
    /// # Safety
    /// As for [`Body::poll`].
    unsafe fn drop_future(&self);

    /// Drops a stored result nobody will take (the promise is gone).
    ///
    /// # Safety
    /// By the worker, after `terminate` reported `DETACHED` (the promise gave
    /// the result up), on the task's own thread.
    unsafe fn drop_result(&self);

    /// Whether the stored result is a success (`None`: no result stored),
    /// without taking it; `await_one` prefers successes.
    ///
    /// # Safety
    /// As for [`TaskCell::take`]: after `TERMINATED`, by the party the result
    /// belongs to.
    unsafe fn succeeded(&self) -> Option<bool>;

    /// The raw-waker vtable for tasks with this body.
    fn waker_vtable(&self) -> &'static RawWakerVTable;
}

impl<G, F> Body for TaskCell<G, F>
where
    G: FnOnce() -> F + 'static,
    F: Future + 'static,
{
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
            // SAFETY: the future is structurally pinned: the task lives in an
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
        unsafe { self.store_error(Error::Panicked(PanicPayload::new(payload))) }
    }

    unsafe fn store_error(&self, err: Error) {
        // SAFETY: forwarded contract.
        unsafe { self.drop_future() };
        // SAFETY: the caller has exclusive access (the module's protocol).
        let previous = self
            .stage
            .with_mut(|stage| unsafe { std::mem::replace(&mut *stage, Stage::Done(Err(err))) });
        // Dropped once the error is in place, so a panicking destructor
        // cannot lose it.
        drop(previous);
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

    unsafe fn drop_result(&self) {
        // SAFETY: forwarded contract: the promise gave the result up.
        drop(unsafe { self.take() });
    }

    unsafe fn succeeded(&self) -> Option<bool> {
        self.stage.with_mut(|stage| {
            // SAFETY: the caller has exclusive access (the module's protocol).
            match unsafe { &*stage } {
                Stage::Done(result) => Some(result.is_ok()),
                _ => None,
            }
        })
    }

    fn waker_vtable(&self) -> &'static RawWakerVTable {
        waker_vtable::<Self>()
    }
}

/// Takes the result of `task`, typed again.
///
/// # Safety
/// `task` was created as an `Arc<Header<TaskCell<G, F>>>`; plus the contract
/// of [`TaskCell::take`].
pub(crate) unsafe fn take_output<G, F: Future>(task: &TaskRef) -> Option<Result<F::Output, Error>> {
    // SAFETY: the caller guarantees the concrete type; dropping the metadata
    // of the fat pointer keeps its address, the start of that header.
    let typed = unsafe { &*(std::sync::Arc::as_ptr(task) as *const Header<TaskCell<G, F>>) };
    // SAFETY: forwarded contract.
    unsafe { typed.body.take() }
}

impl<G, F: Future> Drop for TaskCell<G, F> {
    fn drop(&mut self) {
        self.stage.with_mut(|stage| {
            // SAFETY: `&mut self`: nobody else holds the task any more.
            let stage = unsafe { &mut *stage };
            if let Stage::Running(_) = stage {
                // Unreachable by the protocol (the worker empties the task of
                // its future first). Should it happen, this thread may not be
                // the future's, so it is leaked rather than dropped here.
                debug_assert!(false, "a task outlived its worker slot with its future");
                if let Stage::Running(future) = std::mem::replace(stage, Stage::Consumed) {
                    std::mem::forget(future);
                }
            }
        })
    }
}
