//! The type-erased body of a task: its future and the typed slot its result
//! goes to.
//!
//! The worker sees a task only as a `Pin<Box<dyn Runnable>>`. `poll` drives
//! the user's future and, on `Ready`, stores the value in the result slot; the
//! worker catches panics around `poll` and hands the payload to
//! [`Runnable::store_panic`], so a panic also ends up in the typed slot.
//! The slot is read by the promise only after the task's `TERMINATED` bit.

use crate::error::{Error, PanicPayload};
use crate::loom::sync::{Arc, Mutex};
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Where a task's result waits for its parent.
pub(crate) struct ResultSlot<T>(Mutex<Option<Result<T, Error>>>);

impl<T> ResultSlot<T> {
    pub(crate) fn new() -> Self {
        ResultSlot(Mutex::new(None))
    }
    pub(crate) fn put(&self, r: Result<T, Error>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    }
    pub(crate) fn take(&self) -> Option<Result<T, Error>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A task body as the worker sees it.
pub(crate) trait Runnable {
    /// Polls the future; on `Ready` the result is already in the slot.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
    /// Records that `poll` panicked.
    fn store_panic(&self, payload: Box<dyn Any + Send>);
}

/// A future whose output goes to a [`ResultSlot`].
pub(crate) struct TaskCell<F: Future> {
    future: F,
    slot: Arc<ResultSlot<F::Output>>,
}

impl<F: Future> TaskCell<F> {
    pub(crate) fn new(future: F, slot: Arc<ResultSlot<F::Output>>) -> Self {
        TaskCell { future, slot }
    }
}

impl<F: Future> Runnable for TaskCell<F> {
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `self`, `TaskCell` has no `Drop` impl and is not `Unpin`-dependent;
        // `slot` is not pinned and only read through a shared reference.
        let (future, slot) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.future), &this.slot)
        };
        match future.poll(cx) {
            Poll::Ready(value) => {
                slot.put(Ok(value));
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn store_panic(&self, payload: Box<dyn Any + Send>) {
        self.slot
            .put(Err(Error::Panicked(PanicPayload::new(payload))));
    }
}

/// A closure that builds the future on the worker that will run it (so the
/// future need not be `Send`), then behaves as a [`TaskCell`].
pub(crate) enum LazyCell<G, F: Future> {
    Start(Option<G>, Arc<ResultSlot<F::Output>>),
    Running(TaskCell<F>),
}

impl<G: FnOnce() -> F, F: Future> Runnable for LazyCell<G, F> {
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: only the fields of `Start` are touched through this
        // reference, and nothing in that variant is pinned (the closure and
        // the slot handle may move freely).
        let this = unsafe { self.as_mut().get_unchecked_mut() };
        if let LazyCell::Start(make, slot) = this {
            let make = make.take().expect("LazyCell started twice");
            let slot = slot.clone();
            // A panic in `make` leaves `Start(None, _)` behind, and the
            // worker's catch stores it through `store_panic`.
            let future = make();
            self.set(LazyCell::Running(TaskCell::new(future, slot)));
        }
        // SAFETY: the `Running` payload is structurally pinned: `self` is only
        // ever replaced as a whole through `Pin::set`, never moved out of.
        let running = unsafe {
            match self.get_unchecked_mut() {
                LazyCell::Running(cell) => Pin::new_unchecked(cell),
                LazyCell::Start(..) => unreachable!("LazyCell was just started"),
            }
        };
        running.poll(cx)
    }

    fn store_panic(&self, payload: Box<dyn Any + Send>) {
        let slot = match self {
            LazyCell::Start(_, slot) => slot,
            LazyCell::Running(cell) => &cell.slot,
        };
        slot.put(Err(Error::Panicked(PanicPayload::new(payload))));
    }
}
