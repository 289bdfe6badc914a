//! Synchronisation primitives that suspend the waiting *task*, not the worker
//! it runs on: [`Mutex`] and [`Condition`] (as Miou's), [`Semaphore`], a
//! bounded multi-producer multi-consumer [`channel`] (Eio's `Stream`), and a
//! [`oneshot`] channel.
//!
//! They are built on `std::task` wakers only, knowing nothing of matou's
//! scheduler, so they work between tasks of one worker, across workers, and
//! under any other executor.
//!
//! # Shared design
//! - Every primitive but the oneshot keeps its waiting futures in a FIFO
//!   waiter queue (`waiters.rs`) under a short lock; wakers are always called
//!   after that lock is released.
//! - Fairness: [`Mutex`] and [`Semaphore`] hand off FIFO (a release serves the
//!   oldest waiter directly; nobody barges past a queued waiter), and the
//!   channel serves blocked senders and receivers in FIFO order, so no waiter
//!   starves.
//! - Cancellation in matou is dropping the pending future (after the task's
//!   children are cancelled), so *every waiting future has a `Drop` that keeps
//!   the primitive's invariants*, whatever step it was at: a lock or permits
//!   granted to a dropped waiter are passed on; a signal that chose a dropped
//!   condition waiter is passed on; a value handed to a dropped receiver goes
//!   back to the channel; a dropped sender's value is either in the channel
//!   (and will be delivered) or dropped with it, never both. Each operation's
//!   documentation states its cancellation safety.
//! - Fast paths: an uncontended `Mutex` lock/unlock or `Semaphore`
//!   acquire/release is one compare-and-swap; a channel operation is one
//!   short uncontended lock; a oneshot step is one or two atomic operations
//!   (it has no waiter queue, only one waker per side, so it is lock-free).
//!   No allocation per operation (the waiter queues reuse their slots).
//! - Everything another thread may touch comes from `crate::loom`, and
//!   `tests/loom_sync.rs` model-checks the cross-thread paths.

mod cell;
mod condition;
pub mod mpmc;
mod mutex;
pub mod oneshot;
mod permits;
mod semaphore;
mod waiters;

pub use condition::{Condition, Wait};
pub use mpmc::{
    channel, Receiver, RecvFuture, SendError, SendFuture, Sender, TryRecvError, TrySendError,
};
pub use mutex::{Lock, Mutex, MutexGuard};
pub use semaphore::{
    Acquire, AcquireError, AcquireOwned, OwnedPermit, Permit, Semaphore, TryAcquireError,
};

/// A tiny executor for the unit tests: `block_on` with a thread-park waker,
/// and single polls with a waker that counts its wakes.
#[cfg(all(test, not(loom)))]
pub(crate) mod testing {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::Thread;

    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Runs `fut` to completion on this thread, parking between polls.
    pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    /// Counts the wakes of the wakers it makes.
    #[derive(Clone, Default)]
    pub(crate) struct CountingWaker(Arc<Counter>);

    #[derive(Default)]
    pub(crate) struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl CountingWaker {
        pub(crate) fn new() -> Self {
            Self::default()
        }
        pub(crate) fn waker(&self) -> Waker {
            Waker::from(self.0.clone())
        }
        pub(crate) fn count(&self) -> usize {
            self.0 .0.load(Ordering::SeqCst)
        }
    }

    /// Polls `fut` once with `waker`.
    pub(crate) fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
        std::pin::Pin::new(fut).poll(&mut Context::from_waker(waker))
    }
}
