//! [`Condition`]: a condition variable for [`Mutex`], as Miou's
//! `Condition`.
//!
//! It owns a FIFO of waiting tasks. Invariants:
//! - atomicity: [`Condition::wait`] joins the queue *before* it unlocks the
//!   mutex, so a `signal` or `broadcast` made by anyone who takes the mutex
//!   after the waiter released it (or who holds it while changing the
//!   predicate) always finds the waiter queued; no wake-up is lost;
//! - no spurious wake-ups: `wait` returns only after a `signal` or `broadcast`
//!   that came after it queued (it then re-takes the mutex, in the mutex's
//!   FIFO order);
//! - a signal is never swallowed by a cancelled waiter: a waiter dropped after
//!   a `signal` chose it, but before it re-took the mutex and returned, passes
//!   that signal on to the next waiter. (A `broadcast` reaches everyone anyway
//!   and is not passed on.)

use super::mutex::{Lock, Mutex, MutexGuard};
use super::waiters::{lock, WaitList, WakeList};
use crate::loom::sync::Mutex as StdMutex;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A queue of tasks waiting for a predicate about a [`Mutex`]'s data.
///
/// As with every condition variable, the predicate may be false again by the
/// time a woken waiter holds the mutex (another task may have taken it first),
/// so wait in a loop:
///
/// ```
/// use matou_core::sync::{Condition, Mutex};
/// use std::sync::Arc;
///
/// matou_core::run(async {
///     let state = Arc::new((Mutex::new(false), Condition::new()));
///     let s = state.clone();
///     let setter = matou_core::spawn(async move {
///         *s.0.lock().await = true;
///         s.1.signal();
///     });
///     let (m, c) = &*state;
///     let mut ready = m.lock().await;
///     while !*ready {
///         ready = c.wait(ready).await;
///     }
///     drop(ready);
///     setter.await.unwrap();
/// });
/// ```
pub struct Condition {
    waiters: StdMutex<WaitList<Notice>>,
}

/// What a queued waiter was woken by.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Notice {
    None,
    Signal,
    Broadcast,
}

impl Condition {
    /// A condition with no waiter.
    pub fn new() -> Self {
        Condition {
            waiters: StdMutex::new(WaitList::new()),
        }
    }

    /// Unlocks the mutex of `guard`, waits for a [`signal`](Self::signal) or
    /// [`broadcast`](Self::broadcast), then re-locks the mutex and returns its
    /// guard.
    ///
    /// The waiter queues when the future is first polled (the mutex stays
    /// locked until then), before the mutex is released: see the module
    /// invariants. No spurious wake-ups.
    ///
    /// # Cancellation safety
    /// Safe. If the future is dropped: before its first poll, the guard is
    /// dropped (the mutex unlocks); while queued, it leaves the queue; after
    /// a `signal` chose it, it passes that signal on to the next waiter (so a
    /// signal meant for "some waiter" is not lost with it); while re-locking,
    /// it behaves as a dropped [`Mutex::lock`] (never ends up holding the
    /// mutex). The caller does not get the guard back: a cancelled task does
    /// not hold the mutex.
    pub fn wait<'a, T>(&'a self, guard: MutexGuard<'a, T>) -> Wait<'a, T> {
        Wait {
            cond: self,
            state: WaitState::Start(guard),
        }
    }

    /// Wakes the oldest waiter, if any. A signal with no waiter is lost (as in
    /// Miou and POSIX).
    pub fn signal(&self) {
        let _wakes;
        let mut q = lock(&self.waiters);
        _wakes = signal_locked(&mut q);
    }

    /// Wakes every waiter queued at this time.
    pub fn broadcast(&self) {
        let mut wakes = WakeList::new();
        let mut q = lock(&self.waiters);
        while let Some((k, waker)) = q.pop_front() {
            *q.data_mut(k) = Notice::Broadcast;
            wakes.push(waker);
        }
    }
}

fn signal_locked(q: &mut WaitList<Notice>) -> WakeList {
    let mut wakes = WakeList::new();
    if let Some((k, waker)) = q.pop_front() {
        *q.data_mut(k) = Notice::Signal;
        wakes.push(waker);
    }
    wakes
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("waiters", &lock(&self.waiters).len())
            .finish()
    }
}

/// The future returned by [`Condition::wait`]; see there for cancellation.
///
/// Dropped while it waits, it gives up the mutex (the caller does not get
/// the guard back) and passes on any signal that had chosen it:
///
/// ```
/// use matou_core::{race, sync::{Condition, Mutex}};
///
/// matou_core::run(async {
///     let (m, c) = (Mutex::new(0), Condition::new());
///     let guard = m.lock().await;
///     let (winner, _) = race!(async { drop(c.wait(guard).await) }, async {});
///     assert_eq!(winner, 1);
///     assert!(m.try_lock().is_some()); // the dropped wait left the mutex free
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Wait<'a, T> {
    cond: &'a Condition,
    state: WaitState<'a, T>,
}

enum WaitState<'a, T> {
    /// Not polled yet: the caller's guard is still held.
    Start(MutexGuard<'a, T>),
    /// Queued on the condition; the mutex is released.
    Queued {
        key: usize,
        mutex: &'a Mutex<T>,
    },
    /// Woken; re-taking the mutex.
    Relock {
        lock: Lock<'a, T>,
        signalled: bool,
    },
    Done,
}

impl<'a, T> Future for Wait<'a, T> {
    type Output = MutexGuard<'a, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<MutexGuard<'a, T>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, WaitState::Done) {
                WaitState::Start(guard) => {
                    let key = lock(&this.cond.waiters).push_back(cx.waker(), Notice::None);
                    let mutex = MutexGuard::mutex(&guard);
                    this.state = WaitState::Queued { key, mutex };
                    drop(guard);
                    return Poll::Pending;
                }
                WaitState::Queued { key, mutex } => {
                    let mut q = lock(&this.cond.waiters);
                    if q.is_linked(key) {
                        q.set_waker(key, cx.waker());
                        drop(q);
                        this.state = WaitState::Queued { key, mutex };
                        return Poll::Pending;
                    }
                    let (_, notice) = q.remove(key);
                    drop(q);
                    this.state = WaitState::Relock {
                        lock: mutex.lock(),
                        signalled: notice == Notice::Signal,
                    };
                }
                WaitState::Relock {
                    mut lock,
                    signalled,
                } => {
                    return match Pin::new(&mut lock).poll(cx) {
                        Poll::Ready(guard) => Poll::Ready(guard),
                        Poll::Pending => {
                            this.state = WaitState::Relock { lock, signalled };
                            Poll::Pending
                        }
                    };
                }
                WaitState::Done => panic!("Condition::wait polled after completion"),
            }
        }
    }
}

impl<T> Drop for Wait<'_, T> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, WaitState::Done) {
            WaitState::Queued { key, .. } => {
                let _wakes;
                let mut q = lock(&self.cond.waiters);
                let (_, notice) = q.remove(key);
                if notice == Notice::Signal {
                    _wakes = signal_locked(&mut q);
                }
            }
            WaitState::Relock {
                lock,
                signalled: true,
            } => {
                drop(lock); // passes the mutex on if it was handed to us
                self.cond.signal();
            }
            WaitState::Start(_) | WaitState::Relock { .. } | WaitState::Done => {}
        }
    }
}

impl<T> fmt::Debug for Wait<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match self.state {
            WaitState::Start(_) => "start",
            WaitState::Queued { .. } => "queued",
            WaitState::Relock { .. } => "relocking",
            WaitState::Done => "done",
        };
        f.debug_struct("Wait").field("step", &step).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::testing::{poll_once, CountingWaker};

    /// Polls `w` until it is queued (first poll), asserting it is pending.
    fn queue<T>(w: &mut Wait<'_, T>, waker: &CountingWaker) {
        assert!(poll_once(w, &waker.waker()).is_pending());
    }

    #[test]
    fn wait_releases_the_mutex_and_retakes_it() {
        let (m, c) = (Mutex::new(0), Condition::new());
        let w = CountingWaker::new();
        let mut wait = c.wait(m.try_lock().unwrap());
        assert!(
            m.try_lock().is_none(),
            "unpolled wait still holds the guard"
        );
        queue(&mut wait, &w);
        *m.try_lock().expect("wait released the mutex") = 5;
        // No spurious wake-up: polling again without a signal stays pending.
        assert!(poll_once(&mut wait, &w.waker()).is_pending());
        let held = m.try_lock().unwrap();
        c.signal();
        assert_eq!(w.count(), 1);
        // Signalled, but the mutex is held: waits for it.
        assert!(poll_once(&mut wait, &w.waker()).is_pending());
        drop(held);
        let Poll::Ready(g) = poll_once(&mut wait, &w.waker()) else {
            panic!("mutex was handed to the signalled waiter");
        };
        assert_eq!(*g, 5);
    }

    #[test]
    fn signal_wakes_one_in_fifo_order_broadcast_all() {
        let (m, c) = (Mutex::new(()), Condition::new());
        let ws: Vec<_> = (0..3).map(|_| CountingWaker::new()).collect();
        let mut waits = Vec::new();
        for w in &ws {
            let mut wait = c.wait(m.try_lock().unwrap());
            queue(&mut wait, w);
            waits.push(wait);
        }
        c.signal();
        let counts = |ws: &[CountingWaker]| ws.iter().map(|w| w.count()).collect::<Vec<_>>();
        assert_eq!(counts(&ws), [1, 0, 0]);
        c.broadcast();
        assert_eq!(counts(&ws), [1, 1, 1]);
        for (wait, w) in waits.iter_mut().zip(&ws) {
            let Poll::Ready(g) = poll_once(wait, &w.waker()) else {
                panic!("woken waiter gets the free mutex");
            };
            drop(g);
        }
    }

    #[test]
    fn signal_without_waiters_is_lost() {
        let (m, c) = (Mutex::new(()), Condition::new());
        c.signal();
        let w = CountingWaker::new();
        let mut wait = c.wait(m.try_lock().unwrap());
        queue(&mut wait, &w);
        assert!(poll_once(&mut wait, &w.waker()).is_pending());
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn cancelled_signalled_waiter_passes_the_signal_on() {
        let (m, c) = (Mutex::new(()), Condition::new());
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut a = c.wait(m.try_lock().unwrap());
        queue(&mut a, &wa);
        let mut b = c.wait(m.try_lock().unwrap());
        queue(&mut b, &wb);
        c.signal(); // meant for one waiter: picks `a`
        drop(a); // `a` is cancelled before it runs
        assert_eq!(
            wb.count(),
            1,
            "the signal was swallowed by a cancelled waiter"
        );
        assert!(poll_once(&mut b, &wb.waker()).is_ready());
    }

    #[test]
    fn cancelled_waiter_while_relocking_passes_signal_and_mutex_on() {
        let (m, c) = (Mutex::new(()), Condition::new());
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut a = c.wait(m.try_lock().unwrap());
        queue(&mut a, &wa);
        let mut b = c.wait(m.try_lock().unwrap());
        queue(&mut b, &wb);
        let held = m.try_lock().unwrap();
        c.signal();
        assert!(poll_once(&mut a, &wa.waker()).is_pending()); // now re-locking
        drop(held); // hands the mutex to `a`
        drop(a);
        assert_eq!(
            wb.count(),
            1,
            "signal not passed on from the re-locking waiter"
        );
        assert!(
            poll_once(&mut b, &wb.waker()).is_ready(),
            "mutex not passed on"
        );
    }

    #[test]
    fn cancelled_unsignalled_waiter_does_not_take_a_later_signal() {
        let (m, c) = (Mutex::new(()), Condition::new());
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut a = c.wait(m.try_lock().unwrap());
        queue(&mut a, &wa);
        let mut b = c.wait(m.try_lock().unwrap());
        queue(&mut b, &wb);
        drop(a); // leaves the queue
        c.signal();
        assert_eq!(wb.count(), 1);
        assert!(poll_once(&mut b, &wb.waker()).is_ready());
    }

    #[test]
    fn cancelled_broadcast_waiter_does_not_signal_a_later_waiter() {
        let (m, c) = (Mutex::new(()), Condition::new());
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut a = c.wait(m.try_lock().unwrap());
        queue(&mut a, &wa);
        c.broadcast();
        let mut b = c.wait(m.try_lock().unwrap());
        queue(&mut b, &wb); // queued after the broadcast
        drop(a);
        assert_eq!(wb.count(), 0, "a broadcast reached a later waiter");
        assert!(poll_once(&mut b, &wb.waker()).is_pending());
    }
}
