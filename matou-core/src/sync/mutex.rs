//! [`Mutex`]: mutual exclusion that suspends the waiting *task*, not the
//! worker it runs on.
//!
//! It owns a value of type `T` and one permit of a FIFO [`Permits`] counter;
//! holding the permit is holding the lock, and the [`MutexGuard`] is the only
//! way to hold it. Invariants:
//! - at most one guard exists at a time, and the data is reached only through
//!   it;
//! - FIFO hand-off: an unlock with tasks waiting gives the lock straight to the
//!   oldest of them (the mutex never looks free in between), so no waiter
//!   starves and [`Mutex::try_lock`] never barges past the queue;
//! - a [`Lock`] future dropped at any point (the task was cancelled) never
//!   leaves the mutex held: if the lock had already been handed to it, the drop
//!   hands it on to the next waiter, or frees it.

use super::cell::DataCell;
use super::permits::{AcquireState, Permits};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

/// An asynchronous mutual-exclusion lock protecting a `T`.
///
/// Uncontended, [`lock`](Mutex::lock) and unlocking each cost one atomic
/// compare-and-swap. It works between tasks of one worker and across workers.
///
/// ```
/// use matou_core::sync::Mutex;
/// use std::sync::Arc;
///
/// let total = matou_core::run(async {
///     let m = Arc::new(Mutex::new(0));
///     let tasks: Vec<_> = (0..4)
///         .map(|_| {
///             let m = m.clone();
///             matou_core::spawn(async move { *m.lock().await += 1 })
///         })
///         .collect();
///     matou_core::await_all(tasks).await;
///     let n = *m.lock().await;
///     n
/// });
/// assert_eq!(total, 4);
/// ```
pub struct Mutex<T> {
    permits: Permits,
    data: DataCell<T>,
}

// SAFETY: the data is only reached through a `MutexGuard`, and at most one
// exists at a time (it holds the single permit), so sharing the mutex between
// threads only ever moves exclusive access to the `T` from one thread to
// another: that needs `T: Send`, not `T: Sync` (as for `std::sync::Mutex`).
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex {
            permits: Permits::new(1),
            data: DataCell::new(value),
        }
    }

    /// Waits for the lock, in FIFO order with the other waiters.
    ///
    /// # Cancellation safety
    /// Safe. Dropping the returned future at any point leaves the mutex as if
    /// this call had never been made: a waiter that is dropped after the lock
    /// was handed to it but before it was polled passes the lock on to the
    /// next waiter (or frees it). A cancelled task never ends up holding the
    /// lock, and its place in the queue is lost.
    pub fn lock(&self) -> Lock<'_, T> {
        Lock {
            mutex: self,
            state: AcquireState::new(1),
        }
    }

    /// Takes the lock if it is free and nobody is queued for it.
    ///
    /// `Some` really holds the lock (until the guard is dropped). Fair: it
    /// fails while tasks wait, even at the instant the lock is being handed
    /// over to one of them.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.permits.try_acquire(1).ok()?;
        Some(MutexGuard::new(self))
    }

    /// The data, through `&mut self`: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Consumes the mutex, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// The future returned by [`Mutex::lock`]; see there for cancellation.
///
/// A lock dropped while it waits never ends up holding the mutex:
///
/// ```
/// use matou_core::{race, sync::Mutex};
///
/// matou_core::run(async {
///     let m = Mutex::new(());
///     let held = m.lock().await;
///     let (winner, _) = race!(async { drop(m.lock().await) }, async {});
///     assert_eq!(winner, 1); // the waiting lock lost and was dropped
///     drop(held);
///     assert!(m.try_lock().is_some());
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Lock<'a, T> {
    mutex: &'a Mutex<T>,
    state: AcquireState,
}

impl<'a, T> Future for Lock<'a, T> {
    type Output = MutexGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<MutexGuard<'a, T>> {
        let mutex = self.mutex;
        match self.state.poll(&mutex.permits, cx) {
            Poll::Ready(Ok(())) => Poll::Ready(MutexGuard::new(mutex)),
            Poll::Ready(Err(_)) => unreachable!("a mutex is never closed"),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Lock<'_, T> {
    fn drop(&mut self) {
        self.state.cancel(&self.mutex.permits);
    }
}

impl<T> fmt::Debug for Lock<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("state", &self.state).finish()
    }
}

/// Proof of holding a [`Mutex`]: gives access to the data; unlocks on drop,
/// handing the lock to the oldest waiter if any.
///
/// ```
/// use matou_core::sync::Mutex;
///
/// matou_core::run(async {
///     let m = Mutex::new(vec![1]);
///     m.lock().await.push(2); // the guard derefs to the data
///     assert_eq!(*m.lock().await, [1, 2]);
/// });
/// ```
///
/// `Send` when `T: Send` (a task may hold it across an await and, in other
/// executors, move between threads); `Sync` only when `T: Sync` too.
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    /// Makes the guard `Sync` only if `T: Sync` (a shared guard gives `&T`).
    _data: PhantomData<&'a mut T>,
}

impl<'a, T> MutexGuard<'a, T> {
    fn new(mutex: &'a Mutex<T>) -> Self {
        MutexGuard {
            mutex,
            _data: PhantomData,
        }
    }

    /// The mutex this guard locks (for [`Condition::wait`](super::Condition::wait)).
    pub(crate) fn mutex(this: &Self) -> &'a Mutex<T> {
        this.mutex
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the mutex's only permit, so no other guard
        // (the only other way to reach the data) exists until it is dropped,
        // and the returned reference cannot outlive `&self`.
        self.mutex.data.with(|p| unsafe { &*p })
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only
        // reference derived from the guard.
        self.mutex.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.permits.release(1);
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::testing::{block_on, poll_once, CountingWaker};
    use std::sync::Arc;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn auto_traits() {
        assert_send_sync::<Mutex<u8>>();
        assert_send_sync::<Mutex<std::cell::Cell<u8>>>();
        assert_send::<MutexGuard<'static, std::cell::Cell<u8>>>();
        assert_send_sync::<MutexGuard<'static, u8>>();
        assert_send::<Lock<'static, u8>>();
    }

    #[test]
    fn try_lock_really_locks() {
        let m = Mutex::new(1);
        let g = m.try_lock().expect("free");
        assert!(m.try_lock().is_none(), "a second try_lock must fail");
        let w = CountingWaker::new();
        let mut l = m.lock();
        assert!(poll_once(&mut l, &w.waker()).is_pending());
        drop(g);
        assert_eq!(w.count(), 1, "the waiter is woken by the unlock");
        let g = match poll_once(&mut l, &w.waker()) {
            Poll::Ready(g) => g,
            Poll::Pending => panic!("lock was handed over"),
        };
        assert_eq!(*g, 1);
        drop(g);
        assert!(m.try_lock().is_some());
    }

    #[test]
    fn guard_gives_exclusive_access() {
        let mut m = Mutex::new(vec![1]);
        block_on(async {
            m.lock().await.push(2);
            let g = m.lock().await;
            assert_eq!(*g, [1, 2]);
        });
        m.get_mut().push(3);
        assert_eq!(m.into_inner(), [1, 2, 3]);
    }

    #[test]
    fn fifo_hand_off_and_no_barging() {
        let m = Mutex::new(Vec::new());
        let g = m.try_lock().unwrap();
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut a = m.lock();
        let mut b = m.lock();
        assert!(poll_once(&mut a, &wa.waker()).is_pending());
        assert!(poll_once(&mut b, &wb.waker()).is_pending());
        drop(g);
        // Handed to `a`, not yet polled: the mutex is not free for anyone else.
        assert!(
            m.try_lock().is_none(),
            "try_lock barged past a granted waiter"
        );
        assert_eq!((wa.count(), wb.count()), (1, 0));
        assert!(poll_once(&mut b, &wb.waker()).is_pending(), "b overtook a");
        let Poll::Ready(mut ga) = poll_once(&mut a, &wa.waker()) else {
            panic!("a was granted the lock");
        };
        ga.push('a');
        drop(ga);
        assert_eq!(wb.count(), 1);
        let Poll::Ready(mut gb) = poll_once(&mut b, &wb.waker()) else {
            panic!("b was granted the lock");
        };
        gb.push('b');
        drop(gb);
        assert_eq!(*m.try_lock().unwrap(), ['a', 'b']);
    }

    #[test]
    fn cancelled_waiter_never_holds_the_lock() {
        let m = Mutex::new(());
        let g = m.try_lock().unwrap();
        let w = CountingWaker::new();
        let mut a = m.lock();
        assert!(poll_once(&mut a, &w.waker()).is_pending());
        drop(a); // cancelled while queued
        drop(g);
        assert!(m.try_lock().is_some(), "the cancelled waiter kept the lock");
    }

    #[test]
    fn granted_then_cancelled_waiter_passes_the_lock_on() {
        let m = Mutex::new(());
        let g = m.try_lock().unwrap();
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut a = m.lock();
        let mut b = m.lock();
        assert!(poll_once(&mut a, &wa.waker()).is_pending());
        assert!(poll_once(&mut b, &wb.waker()).is_pending());
        drop(g); // hands the lock to `a`
        drop(a); // `a` cancelled before it could take it: passes it to `b`
        assert_eq!(wb.count(), 1, "b was not woken");
        assert!(poll_once(&mut b, &wb.waker()).is_ready());
        drop(b);

        // With no one behind, the lock becomes free.
        let g = m.try_lock().unwrap();
        let mut a = m.lock();
        assert!(poll_once(&mut a, &wa.waker()).is_pending());
        drop(g);
        drop(a);
        assert!(
            m.try_lock().is_some(),
            "the lock leaked with a dropped waiter"
        );
    }

    #[test]
    fn threads_exclude_each_other() {
        let m = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..if cfg!(miri) { 20 } else { 2000 } {
                        block_on(async {
                            let mut g = m.lock().await;
                            let v = *g;
                            std::hint::spin_loop();
                            *g = v + 1;
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let expect = if cfg!(miri) { 80 } else { 8000 };
        assert_eq!(*m.try_lock().unwrap(), expect);
    }
}
