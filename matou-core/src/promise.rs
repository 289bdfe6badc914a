//! Promises: the parent's handle on a child task, and the only way to get its
//! result or to cancel it. The rules are on [`Promise`]'s public docs.
//!
//! State of the handle itself (a `Cell`, touched only by its owner task):
//! `Live` ─first poll─> `Awaiting` ─await to the end─> `Spent`;
//! `Live`/`Awaiting`/`Spent` ─cancel─> `Cancelled`.
//!
//! A promise dropped while `Live` or `Awaiting` gives its claim on the result
//! up (`State::detach`): it drops the result itself if the child has
//! terminated, else the child's worker drops it at termination. Dropped while
//! `Awaiting`, it also requests the child's cancellation and marks it
//! `ABANDONED`, which tells the parent's worker that the child is owed a wait,
//! not an error.

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
    /// Never polled: dropping it now forgets the child.
    Live,
    /// Polled at least once (or cancellation started): dropping it now
    /// abandons the child (cancels it; the parent waits for its end).
    Awaiting,
    Spent,
    Cancelled,
}

/// The result-to-be of a child task. Await it (`promise.await`, or
/// `(&mut promise).await` to keep the handle), or [`cancel`](Promise::cancel) it.
///
/// # The rules (Miou's, fitted to Rust's drops and `?`)
///
/// - Only the task that spawned the child (its parent) may await or cancel
///   the promise; any other task gets [`Error::NotAChild`], whatever the
///   promise's state, and the promise is left as it was.
/// - Awaiting gives the child's value, [`Error::Panicked`] if it panicked,
///   [`Error::Cancelled`] if it was cancelled, [`Error::StillHasChildren`] if
///   it forgot children of its own; awaiting again after the result was taken
///   gives [`Error::AlreadyTaken`].
/// - [`Promise::cancel`] cancels the child and its whole subtree and returns
///   once all of them have terminated and their destructors have run; a
///   result the child had already produced is discarded.
/// - **Dropped while being awaited** (the promise was polled at least once,
///   by `.await` or a combinator, and the enclosing future was then dropped:
///   a timeout, a `race` loser, an early return out of a combinator): the
///   child is *abandoned*: it is cancelled, and its parent cannot terminate
///   before the child and its subtree have terminated and their destructors
///   ran. No task outlives its parent; nothing is reported.
/// - **Forgotten** (dropped without ever being polled or cancelled, e.g.
///   `let p = spawn(x); fallible()?; p.await`, or `let _ = spawn(x)`, or
///   kept somewhere past the parent's end): when the parent returns, the
///   forgotten children are cancelled and awaited, and the *parent* fails
///   with [`Error::StillHasChildren`] naming where they were spawned,
///   whatever it returned. That error reaches the grandparent through this
///   same kind of promise, like a panic does; only when it reaches the main
///   future does [`run`](crate::run) fail (panic; [`Builder::try_run`](crate::Builder::try_run)
///   returns it). A server whose connection handler forgets a child sees one
///   `Err` for that connection and keeps serving.
///
/// "Being awaited" is recorded by the promise's first poll: a flag in the
/// handle, so the distinction costs nothing at run time.
///
/// Dropped while being awaited: cancelled, waited for, no error.
///
/// ```
/// use matou_core::{race, spawn, yield_now, Either, live_tasks};
/// use std::pin::pin;
///
/// matou_core::run(async {
///     let before = live_tasks();
///     let slow = spawn(std::future::pending::<()>());
///     // The promise loses the race: polled once, then dropped with the race.
///     match race(pin!(slow), pin!(yield_now())).await {
///         Either::Right(()) => {}
///         Either::Left(_) => unreachable!(),
///     }
///     // The child is being cancelled; this task will wait for it at its end.
///     for _ in 0..3 { yield_now().await; }
///     assert_eq!(live_tasks(), before);
/// });
/// ```
///
/// Forgotten: the task that forgot it fails with `StillHasChildren`.
///
/// ```
/// use matou_core::{spawn, Error};
///
/// fn fallible() -> Result<(), &'static str> { Err("no") }
///
/// matou_core::run(async {
///     let handler = spawn(async {
///         let p = spawn(async { 42 });
///         fallible()?; // returns early: `p` is dropped, never awaited
///         p.await.map_err(|_| "child failed")
///     });
///     match handler.await {
///         Err(Error::StillHasChildren { children: 1, .. }) => {} // logged, not fatal
///         other => panic!("{other:?}"),
///     }
/// });
/// ```
///
/// Awaited, panicked, cancelled:
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
#[must_use = "a task is a resource: await or cancel its promise, or its parent fails with StillHasChildren"]
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

    pub(crate) fn header(&self) -> &TaskRef {
        &self.header
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

    fn is_unsettled(&self) -> bool {
        matches!(self.handle.get(), Handle::Live | Handle::Awaiting)
    }

    /// How `await_one` ranks a promise that would not wait: 2 when its child
    /// succeeded, 1 when it failed (or the await would fail at once), `None`
    /// when awaiting it would wait.
    pub(crate) fn readiness(&self) -> Option<u8> {
        if !self.is_unsettled() || self.check_parent().is_err() {
            return Some(1);
        }
        if !self.header.state.is_terminated() {
            return None;
        }
        // SAFETY: `TERMINATED` was observed (`Acquire`), the current task is
        // the parent and the promise is unsettled, so the result is this
        // promise's and only read here.
        Some(match unsafe { self.header.body.succeeded() } {
            Some(true) => 2,
            _ => 1,
        })
    }

    /// Requests cancellation without waiting (used to cancel many at once).
    pub(crate) fn start_cancel(&self) {
        if self.is_unsettled() && self.check_parent().is_ok() {
            self.handle.set(Handle::Awaiting);
            self.header.request_cancel();
        }
    }

    /// Records that the promise is being awaited (by a combinator that holds
    /// several and polls them one after the other), so that dropping it from
    /// now on abandons the child instead of forgetting it.
    pub(crate) fn mark_awaited(&self) {
        if self.handle.get() == Handle::Live && self.check_parent().is_ok() {
            self.handle.set(Handle::Awaiting);
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
        // The parent check comes first: another task learns nothing else.
        let cur = match self.check_parent() {
            Ok(cur) => cur,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match self.handle.get() {
            Handle::Cancelled => return Poll::Ready(Err(Error::Cancelled)),
            Handle::Spent => return Poll::Ready(Err(Error::AlreadyTaken)),
            Handle::Live | Handle::Awaiting => {}
        }
        self.handle.set(Handle::Awaiting);
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
            Handle::Live | Handle::Awaiting => {}
        }
        if !self.started {
            // Cancellation is a scheduling point, as in Miou: the tasks queued
            // before us run while the child winds down (seed 000's
            // "Cancel p1 / Do p0 / p1 cancelled").
            self.started = true;
            // Dropped from now on, the promise abandons the child (already
            // cancelled) rather than forgetting it.
            promise.handle.set(Handle::Awaiting);
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
        let abandoned = match self.handle.get() {
            Handle::Spent | Handle::Cancelled => return, // result taken or discarded
            Handle::Live => false,
            Handle::Awaiting => true,
        };
        if abandoned {
            // The await was cut short: the child is cancelled, and the
            // parent's end waits for it (`ABANDONED`).
            self.header.request_cancel();
        }
        if self.header.state.detach(abandoned) == Detached::DropResultHere {
            // SAFETY: `detach` saw `TERMINATED` (`AcqRel`), so the worker is
            // done with the task and, seeing no `DETACHED` when it
            // terminated, left the result to us; `take` matches the body.
            // A `T` that is not `Send` means a local child, on this thread.
            drop(unsafe { (self.take)(&self.header) });
            // Nothing is owed for an abandoned child that has ended: leave
            // the parent's table now (when the parent is the one dropping).
            if let (true, Ok(cur)) = (abandoned, self.check_parent()) {
                self.release(cur);
            }
        }
    }
}
