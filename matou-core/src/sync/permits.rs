//! A FIFO counter of permits with an atomic fast path: the core of both
//! [`Semaphore`](super::Semaphore) and [`Mutex`](super::Mutex) (a mutex is one
//! permit).
//!
//! # State
//! `state` packs the number of available permits (`state >> SHIFT`) and two
//! flags:
//! - `CLOSED`: acquisitions fail from now on (set once, never cleared);
//! - `QUEUED`: some acquirer waits in `queue`. Invariant, kept under the queue
//!   lock: the queue is non-empty => `QUEUED` is set.
//!
//! # Who writes `state`
//! - The fast paths ([`Permits::try_acquire`], the first step of
//!   [`Permits::release`]) CAS it only while `QUEUED` is clear.
//! - Everything else runs under the queue lock. While `QUEUED` is set no fast
//!   path can succeed, so the lock holder is then the only writer.
//!
//! # No barging (FIFO hand-off)
//! While anyone waits, a fresh acquirer queues behind them even if permits are
//! available (they are being saved for the head of the queue), and a release
//! hands its permits straight to the waiters at the head, in order, before any
//! other acquirer can see them. So a waiter is never starved by a stream of
//! later acquirers. The head waiter asking for many permits holds back smaller
//! requests behind it, as a fair queue must.
//!
//! # Cancellation
//! An [`AcquireState`] that is dropped while queued removes its entry; one that
//! was already granted its permits (but not yet polled) gives them back with a
//! release, which hands them to the next waiters; one that was at the head
//! re-runs the hand-off, since the waiters behind it may now be served.
//!
//! # Memory ordering
//! A successful acquire synchronises with the release that provided its
//! permits: directly by `Acquire`/`Release` on `state` for the fast paths, and
//! through the queue lock for hand-offs (the releaser writes the grant under
//! the lock, the waiter reads it under the lock).

use super::waiters::{lock, WaitList, WakeList};
use crate::loom::sync::atomic::{AtomicUsize, Ordering::*};
use crate::loom::sync::Mutex;
use std::task::{Context, Poll};

const CLOSED: usize = 1;
const QUEUED: usize = 2;
const SHIFT: u32 = 2;

/// The largest number of permits a counter can hold.
pub(crate) const MAX_PERMITS: usize = usize::MAX >> SHIFT;

/// Why a non-waiting acquisition failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryFail {
    /// Not enough permits, or others are queued ahead.
    NoPermits,
    Closed,
}

/// The counter was closed while (or before) waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClosedFail;

pub(crate) struct Permits {
    state: AtomicUsize,
    queue: Mutex<WaitList<Need>>,
}

/// A queued acquirer: how many permits it wants, and what happened to it.
struct Need {
    n: usize,
    outcome: Outcome,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Waiting,
    /// The permits were handed over: the entry's owner holds them.
    Granted,
    Closed,
}

impl Permits {
    pub(crate) fn new(permits: usize) -> Self {
        assert!(
            permits <= MAX_PERMITS,
            "more than {MAX_PERMITS} permits requested"
        );
        Permits {
            state: AtomicUsize::new(permits << SHIFT),
            queue: Mutex::new(WaitList::new()),
        }
    }

    pub(crate) fn available(&self) -> usize {
        self.state.load(Acquire) >> SHIFT
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Acquire) & CLOSED != 0
    }

    /// Takes `n` permits if they are available and nobody is queued.
    pub(crate) fn try_acquire(&self, n: usize) -> Result<(), TryFail> {
        let mut s = self.state.load(Relaxed);
        loop {
            if s & CLOSED != 0 {
                return Err(TryFail::Closed);
            }
            if s & QUEUED != 0 || s >> SHIFT < n {
                return Err(TryFail::NoPermits);
            }
            match self
                .state
                .compare_exchange_weak(s, s - (n << SHIFT), Acquire, Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => s = actual,
            }
        }
    }

    /// Gives back `n` permits, handing them to queued acquirers first.
    ///
    /// # Panics
    /// If the count would exceed [`MAX_PERMITS`].
    pub(crate) fn release(&self, n: usize) {
        let mut s = self.state.load(Relaxed);
        while s & QUEUED == 0 {
            let new = add_permits(s, n);
            match self.state.compare_exchange_weak(s, new, Release, Relaxed) {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
        let _wakes;
        let mut q = lock(&self.queue);
        _wakes = self.release_locked(&mut q, n);
    }

    /// Adds `n` permits and grants the head waiters whose needs they cover.
    /// Returns the wakers to call once the lock is released.
    fn release_locked(&self, q: &mut WaitList<Need>, n: usize) -> WakeList {
        let mut wakes = WakeList::new();
        if q.is_empty() {
            // Nobody to hand to: add, and clear a stale QUEUED (the last
            // waiter left by cancellation). Races only with the fast paths.
            let mut s = self.state.load(Relaxed);
            loop {
                let new = add_permits(s, n) & !QUEUED;
                match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                    Ok(_) => return wakes,
                    Err(actual) => s = actual,
                }
            }
        }
        // QUEUED is set and we hold the lock: we are the only writer. Acquire
        // pairs with fast-path releases whose permits we may hand on.
        let s = self.state.load(Acquire);
        debug_assert!(s & QUEUED != 0);
        let mut avail = add_permits(s, n) >> SHIFT;
        while let Some(k) = q.front() {
            let need = q.data(k).n;
            if need > avail {
                break;
            }
            avail -= need;
            let (_, waker) = q.pop_front().expect("front exists");
            q.data_mut(k).outcome = Outcome::Granted;
            wakes.push(waker);
        }
        let queued = if q.is_empty() { 0 } else { QUEUED };
        self.state
            .store((avail << SHIFT) | queued | (s & CLOSED), Release);
        wakes
    }

    /// Fails every queued and every future acquisition. Permits keep being
    /// counted (releases still add them).
    pub(crate) fn close(&self) {
        let mut wakes = WakeList::new();
        let mut q = lock(&self.queue);
        while let Some((k, waker)) = q.pop_front() {
            q.data_mut(k).outcome = Outcome::Closed;
            wakes.push(waker);
        }
        self.state.fetch_or(CLOSED, Release);
        self.state.fetch_and(!QUEUED, Relaxed);
    }
}

fn add_permits(s: usize, n: usize) -> usize {
    let permits = (s >> SHIFT)
        .checked_add(n)
        .filter(|&p| p <= MAX_PERMITS)
        .expect("permit count overflow");
    (permits << SHIFT) | (s & (CLOSED | QUEUED))
}

/// The state machine of one waiting acquisition of `n` permits, shared by the
/// acquire futures of [`Mutex`](super::Mutex) and
/// [`Semaphore`](super::Semaphore). Its owner must call [`AcquireState::poll`]
/// and, when dropped, [`AcquireState::cancel`], with the same `Permits`.
#[derive(Debug)]
pub(crate) struct AcquireState {
    n: usize,
    step: Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    Queued(usize),
    Done,
}

impl AcquireState {
    pub(crate) fn new(n: usize) -> Self {
        AcquireState {
            n,
            step: Step::Start,
        }
    }

    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Ready(Ok) once the caller holds the `n` permits.
    ///
    /// # Panics
    /// If polled again after it returned `Ready`.
    pub(crate) fn poll(
        &mut self,
        permits: &Permits,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ClosedFail>> {
        let result = match self.step {
            Step::Start => match permits.try_acquire(self.n) {
                Ok(()) => Ok(()),
                Err(TryFail::Closed) => Err(ClosedFail),
                Err(TryFail::NoPermits) => match self.enqueue(permits, cx) {
                    Some(r) => r,
                    None => return Poll::Pending,
                },
            },
            Step::Queued(key) => {
                let mut q = lock(&permits.queue);
                match q.data(key).outcome {
                    Outcome::Waiting => {
                        q.set_waker(key, cx.waker());
                        return Poll::Pending;
                    }
                    Outcome::Granted => {
                        q.remove(key);
                        Ok(())
                    }
                    Outcome::Closed => {
                        q.remove(key);
                        Err(ClosedFail)
                    }
                }
            }
            Step::Done => panic!("acquire future polled after completion"),
        };
        self.step = Step::Done;
        Poll::Ready(result)
    }

    /// Slow path: under the lock, acquire if still possible, else queue.
    fn enqueue(
        &mut self,
        permits: &Permits,
        cx: &mut Context<'_>,
    ) -> Option<Result<(), ClosedFail>> {
        let mut q = lock(&permits.queue);
        let mut s = permits.state.load(Relaxed);
        loop {
            if s & CLOSED != 0 {
                return Some(Err(ClosedFail));
            }
            if s & QUEUED != 0 {
                // Others wait: queue behind them (we hold the lock, so the
                // flag cannot be cleared under us).
                break;
            }
            let res = if s >> SHIFT >= self.n {
                permits
                    .state
                    .compare_exchange_weak(s, s - (self.n << SHIFT), Acquire, Relaxed)
                    .map(|_| true)
            } else {
                permits
                    .state
                    .compare_exchange_weak(s, s | QUEUED, Relaxed, Relaxed)
                    .map(|_| false)
            };
            match res {
                Ok(true) => return Some(Ok(())),
                Ok(false) => break,
                Err(actual) => s = actual,
            }
        }
        self.step = Step::Queued(q.push_back(
            cx.waker(),
            Need {
                n: self.n,
                outcome: Outcome::Waiting,
            },
        ));
        None
    }

    /// Leaves the queue, keeping the counter's invariants: permits granted
    /// but not yet taken are released (to the next waiters); leaving from the
    /// head lets the waiters behind be served.
    pub(crate) fn cancel(&mut self, permits: &Permits) {
        let Step::Queued(key) = self.step else { return };
        self.step = Step::Done;
        let _wakes;
        let mut q = lock(&permits.queue);
        let was_head = q.front() == Some(key);
        let (_, need) = q.remove(key);
        _wakes = match need.outcome {
            Outcome::Granted => permits.release_locked(&mut q, need.n),
            Outcome::Waiting if was_head || q.is_empty() => permits.release_locked(&mut q, 0),
            Outcome::Waiting | Outcome::Closed => WakeList::new(),
        };
    }
}
