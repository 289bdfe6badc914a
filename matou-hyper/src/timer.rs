//! [`MatouTimer`]: hyper's `rt::Timer` on matou's per-worker timers.
//!
//! hyper wants a `Sleep` that is `Send + Sync`; matou's
//! [`Sleep`](matou::unix::time::Sleep) is both, so [`HyperSleep`] is a thin
//! wrapper that adds hyper's marker trait and `reset`. Moved to another
//! worker mid-wait, the inner sleep files its timer again there, keeping its
//! deadline; dropped anywhere, its timer is cancelled on the worker that
//! holds it (see `matou::unix::time`).

use matou::unix::time;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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

/// The `Send + Sync` sleep of [`MatouTimer`]: a matou sleep. Completes at
/// its deadline, never early; dropping it before then cancels the timer.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct HyperSleep {
    inner: time::Sleep,
}

impl HyperSleep {
    fn new(sleep: time::Sleep) -> Self {
        HyperSleep { inner: sleep }
    }

    /// When this sleep ends.
    pub fn deadline(&self) -> Instant {
        self.inner.deadline()
    }

    /// Moves the deadline: the old timer is cancelled now, the new one filed
    /// at the next poll.
    fn reset(&mut self, deadline: Instant) {
        self.inner = time::sleep_until(deadline);
    }
}

impl Future for HyperSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // `time::Sleep` is `Unpin` (a deadline and an optional syscall).
        Pin::new(&mut self.inner).poll(cx)
    }
}

impl hyper::rt::Sleep for HyperSleep {}
