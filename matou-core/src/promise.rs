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
//!
//! A promise dropped while `Live` gives its claim on the result up
//! (`State::detach`): it drops the result itself if the child has
//! terminated, else the child's worker drops it at termination.

use crate::error::Error;
use crate::runtime::context;
use crate::task::header::TaskRef;
use crate::task::state::Detached;
use crate::task::waiter::Registered;
use crate::task::TaskId;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Handle {
    Live,
    Spent,
    Cancelled,
}

/// The result-to-be of a child task. Await it (`promise.await`, or
/// `(&mut promise).await` to keep the handle), or [`cancel`](Promise::cancel) it.
///
/// What a promise guarantees (Miou's rules):
/// - only the task that spawned the child (its parent) may await or cancel
///   it; any other task gets [`Error::NotAChild`] and the promise is left as
///   it was;
/// - awaiting gives the child's value, [`Error::Panicked`] if it panicked (the
///   panic stays that task's: the parent decides), or [`Error::Cancelled`] if
///   it was cancelled;
/// - [`cancel`](Promise::cancel) cancels the child and its whole subtree and
///   returns once every one of them has terminated and its destructors have
///   run; a result already produced is discarded;
/// - awaiting to the end or cancelling releases the child from the parent's
///   children table: the parent may then return. A child neither awaited nor
///   cancelled when its parent returns is a forgotten child
///   ([`Error::StillHasChildren`]).
///
/// ```
/// use matou_core::{spawn, Error};
///
/// matou_core::run(async {
///     let ok = spawn(async { 1 });
///     let boom = spawn(async { panic!("child failed") });
///     let stuck = spawn(std::future::pending::<()>());
///     assert_eq!(ok.await.unwrap(), 1);
///     assert!(matches!(boom.await, Err(Error::Panicked(_)))); // the run goes on
///     stuck.cancel().await.unwrap(); // returns once `stuck` has terminated
///     assert!(matches!(stuck.await, Err(Error::Cancelled)));
/// });
/// ```
#[must_use = "a task is a resource: await or cancel its promise, or the parent's return aborts the run"]
pub struct Promise<T> {
    header: TaskRef,
    /// Takes the result out of the task, typed again (`cell::take_output`
    /// for the task's concrete body type).
    ///
    /// Safety contract: only after observing `TERMINATED`, by the party the
    /// task cell's protocol gives the result to (this promise, unless it was
    /// dropped first).
    take: unsafe fn(&TaskRef) -> Option<Result<T, Error>>,
    parent: TaskId,
    child_key: usize,
    handle: Cell<Handle>,
    /// `Send` only when `T` is: the promise may take (and so drop) a `T` on
    /// whatever thread it is on.
    _result: PhantomData<T>,
}

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
    /// # Safety
    /// `take` must be `cell::take_output` for `header`'s concrete body type.
    pub(crate) unsafe fn new(
        header: TaskRef,
        take: unsafe fn(&TaskRef) -> Option<Result<T, Error>>,
        parent: TaskId,
        child_key: usize,
    ) -> Self {
        Promise {
            header,
            take,
            parent,
            child_key,
            handle: Cell::new(Handle::Live),
            _result: PhantomData,
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

    /// Leaves the caller's waker for the child's termination, or reports
    /// that it has terminated. Only after `check_parent` succeeded.
    fn register(&self, cx: &Context<'_>) -> Registered {
        // SAFETY: the caller checked that the current task is the parent, so
        // this runs on the parent's one thread, and polling is not re-entrant.
        unsafe { self.header.waiter.register(&self.header.state, cx.waker()) }
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
        if self.register(cx) == Registered::Waiting {
            return Poll::Pending;
        }
        self.release(cur);
        self.handle.set(Handle::Spent);
        // SAFETY: `register` observed `TERMINATED` (`Acquire`), the promise is
        // live (not detached), and `take` matches the body (`new`'s contract).
        Poll::Ready(unsafe { (self.take)(&self.header) }.unwrap_or(Err(Error::Cancelled)))
    }
}

/// The future returned by [`Promise::cancel`].
///
/// ```
/// use std::rc::Rc;
///
/// matou_core::run(async {
///     let guard = Rc::new(());
///     let held = guard.clone();
///     let child = matou_core::spawn(async move {
///         let _held = held;
///         std::future::pending::<()>().await
///     });
///     child.cancel().await.unwrap();
///     // The child's destructors have run by the time `cancel` returns.
///     assert_eq!(Rc::strong_count(&guard), 1);
/// });
/// ```
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
        if promise.register(cx) == Registered::Waiting {
            return Poll::Pending;
        }
        promise.release(cur);
        promise.handle.set(Handle::Cancelled);
        // SAFETY: as in `Promise::poll`: terminated, and the promise is live.
        drop(unsafe { (promise.take)(&promise.header) });
        Poll::Ready(Ok(()))
    }
}

// The promise never pins anything (the result is taken out by value); the
// `PhantomData<T>` above is there for `Send` only.
impl<T> Unpin for Promise<T> {}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if self.handle.get() != Handle::Live {
            return; // the result was taken (or discarded) already
        }
        if self.header.state.detach() == Detached::DropResultHere {
            // SAFETY: `detach` saw `TERMINATED` (`AcqRel`), so the worker is
            // done with the task and, seeing no `DETACHED` when it
            // terminated, left the result to us; `take` matches the body.
            // A `T` that is not `Send` means a local child, on this thread.
            drop(unsafe { (self.take)(&self.header) });
        }
    }
}
