//! Promises: the parent's handle on a child task, and the only way to get its
//! result or to cancel it.
//!
//! Rules (Miou's):
//! - only the task that spawned the child (its parent) may await or cancel the
//!   promise; any other task gets [`Error::NotAChild`] and the promise is left
//!   as it was;
//! - awaiting gives the child's value, [`Error::Panicked`] if it panicked, or
//!   [`Error::Cancelled`] if it was cancelled;
//! - [`Promise::cancel`] cancels the child and its whole subtree and returns
//!   once all of them have terminated and their destructors have run; a result
//!   the child had already produced is discarded (a later await gives
//!   `Cancelled`);
//! - awaiting to the end or cancelling releases the child from the parent's
//!   children table. A promise dropped before either leaves the child there, and
//!   the parent returning then aborts the run with `StillHasChildren`.
//!
//! State of the handle itself (a `Cell`, touched only by its owner task):
//! `Live` ─await to the end─> `Spent`; `Live`/`Spent` ─cancel─> `Cancelled`.

use crate::error::Error;
use crate::runtime::context;
use crate::task::cell::Outcome;
use crate::task::header::Header;
use crate::task::TaskId;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Handle {
    Live,
    Spent,
    Cancelled,
}

/// The result-to-be of a child task. Await it (`promise.await`, or
/// `(&mut promise).await` to keep the handle), or [`cancel`](Promise::cancel) it.
#[must_use = "a task is a resource: await or cancel its promise, or the parent's return aborts the run"]
pub struct Promise<T> {
    header: Arc<Header>,
    result: Arc<dyn Outcome<T>>,
    parent: TaskId,
    child_key: usize,
    handle: Cell<Handle>,
}

// SAFETY: the only field that is not `Send` by itself is the result handle:
// a `dyn Outcome<T>` erases the task's future type, which need not be `Send`,
// but by the task cell's protocol (`task::cell`) the future never leaves its
// worker's thread and the last reference never finds one; what a promise
// reaches from another thread is the output `T`, hence `T: Send`.
unsafe impl<T: Send> Send for Promise<T> {}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise")
            .field("task", &self.header.id)
            .field("state", &self.header.state)
            .field("handle", &self.handle.get())
            .finish()
    }
}

impl<T> Promise<T> {
    pub(crate) fn new(
        header: Arc<Header>,
        result: Arc<dyn Outcome<T>>,
        parent: TaskId,
        child_key: usize,
    ) -> Self {
        Promise {
            header,
            result,
            parent,
            child_key,
            handle: Cell::new(Handle::Live),
        }
    }

    /// The child task's id.
    pub fn id(&self) -> TaskId {
        self.header.id
    }

    /// Whether the child has terminated (awaiting would not wait).
    pub fn is_finished(&self) -> bool {
        self.header.state.is_terminated()
    }

    fn check_parent(&self) -> Result<crate::runtime::worker::Current, Error> {
        match context::current() {
            Some(cur) if cur.id == self.parent => Ok(cur),
            _ => Err(Error::NotAChild),
        }
    }

    /// Releases the child from the parent's table (the parent is current).
    fn release(&self, cur: crate::runtime::worker::Current) {
        let key = self.child_key;
        context::with_worker(|w| w.remove_child(cur, key));
    }

    /// Requests cancellation without waiting (used to cancel many at once).
    pub(crate) fn start_cancel(&self) {
        if self.handle.get() == Handle::Live && self.check_parent().is_ok() {
            self.header.request_cancel();
        }
    }

    /// Cancels the child and its whole subtree, on whatever workers they run.
    ///
    /// Returns once every one of them has terminated and its destructors have
    /// run; other tasks keep running meanwhile. A result the child had
    /// already produced is discarded, and awaiting this promise afterwards
    /// gives [`Error::Cancelled`]. Cancelling twice is harmless.
    ///
    /// # Errors
    /// [`Error::NotAChild`] when the caller is not the task that spawned the
    /// child (nothing is cancelled then).
    pub fn cancel(&self) -> Cancel<'_, T> {
        Cancel {
            promise: self,
            started: false,
        }
    }
}

impl<T> Future for Promise<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.handle.get() {
            Handle::Cancelled => return Poll::Ready(Err(Error::Cancelled)),
            Handle::Spent => panic!("Promise awaited again after its result was taken"),
            Handle::Live => {}
        }
        let cur = match self.check_parent() {
            Ok(cur) => cur,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if !self.header.state.is_terminated() {
            self.header.waiter.register(cx.waker());
            if !self.header.state.is_terminated() {
                return Poll::Pending;
            }
        }
        self.release(cur);
        self.handle.set(Handle::Spent);
        // SAFETY: `TERMINATED` was observed just above (`Acquire`), and only
        // the parent, which is running this, ever takes the result.
        Poll::Ready(unsafe { self.result.take() }.unwrap_or(Err(Error::Cancelled)))
    }
}

/// The future returned by [`Promise::cancel`].
#[must_use = "cancellation completes only when awaited"]
pub struct Cancel<'a, T> {
    promise: &'a Promise<T>,
    started: bool,
}

impl<T> Future for Cancel<'_, T> {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let promise = self.promise;
        let cur = match promise.check_parent() {
            Ok(cur) => cur,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match promise.handle.get() {
            Handle::Cancelled => return Poll::Ready(Ok(())),
            Handle::Spent => {
                promise.handle.set(Handle::Cancelled);
                return Poll::Ready(Ok(()));
            }
            Handle::Live => {}
        }
        if !self.started {
            // Cancellation is a scheduling point, as in Miou: the tasks queued
            // before us run while the child winds down (seed 000's
            // "Cancel p1 / Do p0 / p1 cancelled").
            self.started = true;
            promise.header.request_cancel();
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if !promise.header.state.is_terminated() {
            promise.header.waiter.register(cx.waker());
            if !promise.header.state.is_terminated() {
                return Poll::Pending;
            }
        }
        promise.release(cur);
        promise.handle.set(Handle::Cancelled);
        // SAFETY: as in `Promise::poll`: terminated, and we are the parent.
        drop(unsafe { promise.result.take() });
        Poll::Ready(Ok(()))
    }
}
