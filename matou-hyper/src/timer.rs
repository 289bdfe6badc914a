//! [`MatouTimer`]: hyper's `rt::Timer` on matou's per-worker timers.
//!
//! hyper wants a `Sleep` that is `Send + Sync`, while matou's
//! [`Sleep`](matou::unix::time::Sleep) is parked on the worker that polls it
//! (`!Send`). [`HyperSleep`] holds a matou sleep together with the thread it
//! was made on, and keeps this invariant: the inner sleep is polled and
//! dropped only on that thread. A poll on another thread (the future was moved
//! to another worker) leaves the old sleep alone and files a new one on the
//! current worker; a drop on another thread cannot cancel the old timer there,
//! so it is leaked (`mem::forget`): its timer fires later and wakes a task
//! that no longer waits, a spurious wake-up matou tolerates. hyper polls and
//! drops its timers inside the connection task, which matou never moves, so
//! the leak path is not taken by hyper's server or client.
//! `Sync` is sound because a shared reference gives no access to the inner
//! sleep (only `Pin<&mut>` polls it).

use matou::unix::time;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

/// hyper's timer on matou: give it to hyper's builders (`.timer(MatouTimer)`,
/// hyper-util's `Client::builder(..).timer(..)` / `.pool_timer(..)`).
///
/// ```
/// use hyper::rt::Timer;
/// use matou_hyper::MatouTimer;
/// use std::time::{Duration, Instant};
///
/// matou::run(async {
///     let start = Instant::now();
///     MatouTimer.sleep(Duration::from_millis(5)).await;
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MatouTimer;

impl hyper::rt::Timer for MatouTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep::new(time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep::new(time::sleep_until(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        // hyper resets its header-read timer on every request: reuse the box.
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(mine) => mine.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// The `Send + Sync` sleep of [`MatouTimer`] (see the module doc for how it
/// stays on its worker). Completes at its deadline, never early; dropping it
/// before then cancels the timer (when dropped on the thread that polled it).
#[must_use = "futures do nothing unless awaited"]
pub struct HyperSleep {
    deadline: Instant,
    /// The matou sleep and the thread that owns it.
    inner: Option<(ThreadId, time::Sleep)>,
}

impl std::fmt::Debug for HyperSleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperSleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

// SAFETY: the inner `!Send` sleep is polled and dropped only on the thread
// recorded next to it (`poll` and `Drop` check; elsewhere it is forgotten,
// never touched), so moving a `HyperSleep` between threads moves no access to
// it.
unsafe impl Send for HyperSleep {}
// SAFETY: `&HyperSleep` exposes only `deadline`, a plain `Instant`; the inner
// sleep is reached through `Pin<&mut Self>` alone.
unsafe impl Sync for HyperSleep {}

impl HyperSleep {
    fn new(sleep: time::Sleep) -> Self {
        // Not filed yet: a matou sleep touches its worker only when polled,
        // so it may be made anywhere and is bound to a thread on first poll.
        HyperSleep {
            deadline: sleep.deadline(),
            inner: None,
        }
    }

    /// When this sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline; the timer is filed anew on the next poll (the old
    /// one is cancelled now if this is its thread).
    fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.release();
    }

    /// Drops the inner sleep on its own thread, forgets it elsewhere.
    fn release(&mut self) {
        if let Some((home, sleep)) = self.inner.take() {
            if home == thread::current().id() {
                drop(sleep);
            } else {
                std::mem::forget(sleep);
            }
        }
    }
}

impl Future for HyperSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let here = thread::current().id();
        let this = &mut *self;
        match &this.inner {
            Some((home, _)) if *home == here => {}
            _ => {
                this.release();
                this.inner = Some((here, time::sleep_until(this.deadline)));
            }
        }
        let (_, sleep) = this.inner.as_mut().expect("set above");
        // `time::Sleep` is `Unpin` (a deadline and an optional syscall).
        Pin::new(sleep).poll(cx)
    }
}

impl Drop for HyperSleep {
    fn drop(&mut self) {
        self.release();
    }
}

impl hyper::rt::Sleep for HyperSleep {}
