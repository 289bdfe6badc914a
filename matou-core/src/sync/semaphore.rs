//! [`Semaphore`]: a counter of permits that tasks acquire and release, with
//! FIFO hand-off.
//!
//! It owns a [`Permits`] counter. Invariants:
//! - permits in use are exactly those held by live [`Permit`]s and
//!   [`OwnedPermit`]s (plus those given up with `forget`);
//! - FIFO: a release serves the oldest waiters first, and no acquirer barges
//!   past a queued one (even `try_acquire`), so no waiter starves;
//! - a waiter dropped at any point (cancelled) never keeps permits: permits
//!   already handed to it go on to the next waiters;
//! - after [`Semaphore::close`], every queued and future acquisition fails;
//!   permits already held stay valid and are still returned on drop.

use super::permits::{AcquireState, ClosedFail, Permits, TryFail, MAX_PERMITS};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A FIFO semaphore.
///
/// Uncontended, acquiring and releasing each cost one atomic
/// compare-and-swap.
///
/// ```
/// use matou_core::sync::Semaphore;
///
/// matou_core::run(async {
///     let sem = Semaphore::new(2);
///     let a = sem.acquire().await.unwrap();
///     let _b = sem.acquire().await.unwrap();
///     assert!(sem.try_acquire().is_err());
///     drop(a);
///     assert_eq!(sem.available_permits(), 1);
/// });
/// ```
pub struct Semaphore {
    permits: Permits,
}

/// [`Semaphore::acquire`] failed: the semaphore is closed.
///
/// ```
/// use matou_core::sync::Semaphore;
///
/// matou_core::run(async {
///     let s = Semaphore::new(0);
///     s.close();
///     assert!(s.acquire().await.is_err());
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireError(());

/// Why [`Semaphore::try_acquire`] failed.
///
/// ```
/// use matou_core::sync::{Semaphore, TryAcquireError};
///
/// let s = Semaphore::new(1);
/// let held = s.try_acquire().unwrap();
/// assert_eq!(s.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
/// drop(held);
/// s.close();
/// assert_eq!(s.try_acquire().unwrap_err(), TryAcquireError::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryAcquireError {
    /// The semaphore is closed.
    Closed,
    /// Not enough permits available, or other tasks are queued first.
    NoPermits,
}

impl Semaphore {
    /// The most permits a semaphore can hold.
    pub const MAX_PERMITS: usize = MAX_PERMITS;

    /// A semaphore with `permits` available permits.
    ///
    /// # Panics
    /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
    pub fn new(permits: usize) -> Self {
        Semaphore {
            permits: Permits::new(permits),
        }
    }

    /// The permits available right now (not counting those being handed to
    /// queued waiters).
    pub fn available_permits(&self) -> usize {
        self.permits.available()
    }

    /// Adds `n` permits, serving queued waiters first.
    ///
    /// # Panics
    /// If the count would exceed [`Semaphore::MAX_PERMITS`].
    pub fn add_permits(&self, n: usize) {
        self.permits.release(n);
    }

    /// Waits for one permit.
    ///
    /// # Cancellation safety
    /// Safe. Dropping the future at any point leaves the semaphore as if the
    /// call had never been made: permits handed to it before it could return
    /// them go on to the next waiters (or back to the count), and the waiters
    /// it was holding back are served. Its place in the queue is lost.
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is or gets closed.
    pub fn acquire(&self) -> Acquire<'_> {
        self.acquire_many(1)
    }

    /// Waits for `n` permits at once; the waiters behind wait until this one
    /// is served (FIFO). Cancellation as [`acquire`](Self::acquire).
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is or gets closed.
    pub fn acquire_many(&self, n: usize) -> Acquire<'_> {
        Acquire {
            sem: self,
            state: AcquireState::new(n),
        }
    }

    /// [`acquire`](Self::acquire) for a semaphore in an `Arc`, giving a permit
    /// that owns its reference (to move into a spawned task).
    /// Cancellation as [`acquire`](Self::acquire).
    pub fn acquire_owned(self: Arc<Self>) -> AcquireOwned {
        self.acquire_many_owned(1)
    }

    /// [`acquire_many`](Self::acquire_many) giving an [`OwnedPermit`].
    pub fn acquire_many_owned(self: Arc<Self>, n: usize) -> AcquireOwned {
        AcquireOwned {
            sem: self,
            state: AcquireState::new(n),
        }
    }

    /// Takes one permit if one is available and nobody is queued.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire(&self) -> Result<Permit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if available and nobody is queued.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire_many(&self, n: usize) -> Result<Permit<'_>, TryAcquireError> {
        self.permits.try_acquire(n).map_err(try_error)?;
        Ok(Permit { sem: self, n })
    }

    /// [`try_acquire`](Self::try_acquire) giving an [`OwnedPermit`].
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire_owned(self: Arc<Self>) -> Result<OwnedPermit, TryAcquireError> {
        self.permits.try_acquire(1).map_err(try_error)?;
        Ok(OwnedPermit { sem: self, n: 1 })
    }

    /// Closes the semaphore: queued acquisitions fail now, later ones at
    /// once. Permits held stay valid.
    pub fn close(&self) {
        self.permits.close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.permits.is_closed()
    }
}

fn try_error(e: TryFail) -> TryAcquireError {
    match e {
        TryFail::Closed => TryAcquireError::Closed,
        TryFail::NoPermits => TryAcquireError::NoPermits,
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available", &self.available_permits())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore closed")
    }
}

impl std::error::Error for AcquireError {}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryAcquireError::Closed => "semaphore closed",
            TryAcquireError::NoPermits => "no permits available",
        })
    }
}

impl std::error::Error for TryAcquireError {}

/// Permits taken from a [`Semaphore`], given back when dropped.
///
/// ```
/// use matou_core::sync::Semaphore;
///
/// let s = Semaphore::new(3);
/// let two = s.try_acquire_many(2).unwrap();
/// assert_eq!((two.num_permits(), s.available_permits()), (2, 1));
/// drop(two);
/// assert_eq!(s.available_permits(), 3);
/// s.try_acquire().unwrap().forget(); // gone for good
/// assert_eq!(s.available_permits(), 2);
/// ```
#[must_use = "the permits are released as soon as this is dropped"]
pub struct Permit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

impl Permit<'_> {
    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// Consumes the permits without giving them back.
    pub fn forget(mut self) {
        self.n = 0;
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.sem.permits.release(self.n);
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("n", &self.n).finish()
    }
}

/// Permits taken from a `Semaphore` in an `Arc`, given back when dropped.
/// It borrows nothing, so it can move into a spawned task.
///
/// ```
/// use matou_core::sync::Semaphore;
/// use std::sync::Arc;
///
/// matou_core::run(async {
///     let limit = Arc::new(Semaphore::new(1));
///     let permit = limit.clone().acquire_owned().await.unwrap();
///     let job = matou_core::spawn(async move {
///         let _permit = permit; // held for the job's lifetime
///     });
///     job.await.unwrap();
///     assert_eq!(limit.available_permits(), 1);
/// });
/// ```
#[must_use = "the permits are released as soon as this is dropped"]
pub struct OwnedPermit {
    sem: Arc<Semaphore>,
    n: usize,
}

impl OwnedPermit {
    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// Consumes the permits without giving them back.
    pub fn forget(mut self) {
        self.n = 0;
    }

    /// The semaphore these permits come from.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if self.n > 0 {
            self.sem.permits.release(self.n);
        }
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit").field("n", &self.n).finish()
    }
}

/// The future returned by [`Semaphore::acquire`]; see there for cancellation.
///
/// A waiter dropped while queued takes no permit with it:
///
/// ```
/// use matou_core::{race, sync::Semaphore};
///
/// matou_core::run(async {
///     let s = Semaphore::new(0);
///     let (winner, _) = race!(async { s.acquire().await.map(drop) }, async { Ok(()) });
///     assert_eq!(winner, 1);
///     s.add_permits(1);
///     assert!(s.try_acquire().is_ok()); // the dropped waiter did not keep it
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Acquire<'a> {
    sem: &'a Semaphore,
    state: AcquireState,
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<Permit<'a>, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let sem = self.sem;
        let n = self.state.n();
        self.state
            .poll(&sem.permits, cx)
            .map(|r| r.map(|()| Permit { sem, n }).map_err(closed))
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.state.cancel(&self.sem.permits);
    }
}

/// The future returned by [`Semaphore::acquire_owned`]; cancellation as
/// [`Semaphore::acquire`].
///
/// ```
/// use matou_core::sync::Semaphore;
/// use std::sync::Arc;
///
/// matou_core::run(async {
///     let s = Arc::new(Semaphore::new(2));
///     let p = s.clone().acquire_many_owned(2).await.unwrap();
///     assert_eq!((p.num_permits(), s.available_permits()), (2, 0));
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct AcquireOwned {
    sem: Arc<Semaphore>,
    state: AcquireState,
}

impl Future for AcquireOwned {
    type Output = Result<OwnedPermit, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let n = this.state.n();
        this.state.poll(&this.sem.permits, cx).map(|r| {
            r.map(|()| OwnedPermit {
                sem: this.sem.clone(),
                n,
            })
            .map_err(closed)
        })
    }
}

impl Drop for AcquireOwned {
    fn drop(&mut self) {
        self.state.cancel(&self.sem.permits);
    }
}

fn closed(_: ClosedFail) -> AcquireError {
    AcquireError(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::testing::{block_on, poll_once, CountingWaker};

    #[test]
    fn counts_permits() {
        let s = Semaphore::new(3);
        let a = s.try_acquire_many(2).unwrap();
        assert_eq!(a.num_permits(), 2);
        assert_eq!(s.available_permits(), 1);
        assert_eq!(
            s.try_acquire_many(2).unwrap_err(),
            TryAcquireError::NoPermits
        );
        drop(a);
        assert_eq!(s.available_permits(), 3);
        s.try_acquire().unwrap().forget();
        assert_eq!(s.available_permits(), 2);
        s.add_permits(5);
        assert_eq!(s.available_permits(), 7);
        block_on(async {
            let p = s.acquire_many(7).await.unwrap();
            assert_eq!(s.available_permits(), 0);
            drop(p);
        });
    }

    #[test]
    fn fifo_no_barging_behind_a_big_request() {
        let s = Semaphore::new(1);
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut big = s.acquire_many(2);
        assert!(poll_once(&mut big, &wa.waker()).is_pending());
        // One permit is free, but `big` is queued first.
        assert_eq!(s.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        let mut small = s.acquire();
        assert!(poll_once(&mut small, &wb.waker()).is_pending());
        s.add_permits(1);
        assert_eq!((wa.count(), wb.count()), (1, 0));
        let Poll::Ready(Ok(p)) = poll_once(&mut big, &wa.waker()) else {
            panic!("big request served");
        };
        drop(p);
        assert_eq!(wb.count(), 1);
        assert!(poll_once(&mut small, &wb.waker()).is_ready());
    }

    #[test]
    fn cancelled_head_waiter_lets_the_next_be_served() {
        let s = Semaphore::new(1);
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut big = s.acquire_many(2);
        assert!(poll_once(&mut big, &wa.waker()).is_pending());
        let mut small = s.acquire();
        assert!(poll_once(&mut small, &wb.waker()).is_pending());
        drop(big);
        assert_eq!(wb.count(), 1, "the waiter behind a cancelled head is stuck");
        assert!(poll_once(&mut small, &wb.waker()).is_ready());
    }

    #[test]
    fn granted_then_cancelled_waiter_gives_permits_on() {
        let s = Semaphore::new(0);
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut a = s.acquire_many(2);
        assert!(poll_once(&mut a, &wa.waker()).is_pending());
        let mut b = s.acquire();
        assert!(poll_once(&mut b, &wb.waker()).is_pending());
        s.add_permits(2); // all to `a`
        assert_eq!((wa.count(), wb.count(), s.available_permits()), (1, 0, 0));
        drop(a);
        assert_eq!(wb.count(), 1);
        let Poll::Ready(Ok(pb)) = poll_once(&mut b, &wb.waker()) else {
            panic!("b served by a's permits");
        };
        assert_eq!(s.available_permits(), 1, "a's second permit was lost");
        drop(pb);
        assert_eq!(s.available_permits(), 2);
    }

    #[test]
    fn close_fails_waiters_and_later_acquires() {
        let s = Arc::new(Semaphore::new(1));
        let held = s.clone().try_acquire_owned().unwrap();
        let w = CountingWaker::new();
        let mut a = s.clone().acquire_owned();
        assert!(poll_once(&mut a, &w.waker()).is_pending());
        s.close();
        assert!(s.is_closed());
        assert_eq!(w.count(), 1);
        assert!(matches!(poll_once(&mut a, &w.waker()), Poll::Ready(Err(_))));
        assert_eq!(s.try_acquire().unwrap_err(), TryAcquireError::Closed);
        assert!(block_on(s.acquire()).is_err());
        drop(held);
        assert_eq!(s.available_permits(), 1);
    }

    #[test]
    fn threads_share_permits() {
        let s = Arc::new(Semaphore::new(2));
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (s, inside) = (s.clone(), inside.clone());
                std::thread::spawn(move || {
                    use std::sync::atomic::Ordering::SeqCst;
                    for _ in 0..if cfg!(miri) { 10 } else { 500 } {
                        block_on(async {
                            let _p = s.acquire().await.unwrap();
                            assert!(inside.fetch_add(1, SeqCst) < 2, "3 holders of 2 permits");
                            std::hint::spin_loop();
                            inside.fetch_sub(1, SeqCst);
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.available_permits(), 2);
    }
}
