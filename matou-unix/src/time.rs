//! Timers: [`sleep`], [`sleep_until`], [`timeout`] and [`interval`].
//!
//! A timer is one entry in its worker's timer wheel (see the reactor), keyed by
//! the uid of the `syscall` its task parks on: no thread, no descriptor per
//! timer. Dropping a pending [`Sleep`] drops its syscall; the core reports the
//! uid to the next `select`, which forgets the timer.
//!
//! [`Sleep`] and the futures of [`timeout`] and [`Interval::tick`] are `Send`
//! (a timeout's when its inner future is). Moved to another worker between
//! two polls, a pending `Sleep` forgets its timer on the old worker (by a
//! message) and files it again, same deadline, on the worker it is polled
//! on now.
//!
//! A timer never fires before its deadline, and at most one tick (1 ms) after
//! it when its worker is free to run it: the wheel rounds deadlines up to a
//! whole millisecond, and the worker sleeps in epoll until the wheel's next
//! deadline.

use crate::reactor;
use matou_core::{suspend, syscall, Suspend};
use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Waits until `duration` has passed.
///
/// # Panics
/// When polled on a worker without matou-unix's event source.
pub fn sleep(duration: Duration) -> Sleep {
    // A duration too long for `Instant` sleeps for a very long time instead.
    let now = Instant::now();
    sleep_until(now.checked_add(duration).unwrap_or_else(|| far_future(now)))
}

/// Waits until `deadline`.
///
/// # Panics
/// When polled on a worker without matou-unix's event source.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        parked: None,
    }
}

fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400 * 365 * 30)
}

/// The future of [`sleep`] and [`sleep_until`]. It is `Send`: polled on
/// another worker than the one its timer is filed with (it was moved), it
/// re-files the timer there, keeping its deadline.
///
/// Dropping it before the deadline cancels its timer (the reactor forgets
/// it); it can also be pinned and polled again after losing a race.
///
/// ```
/// use matou_unix::time::sleep;
/// use std::time::{Duration, Instant};
///
/// matou_unix::run(async {
///     let start = Instant::now();
///     let nap = sleep(Duration::from_millis(5));
///     assert!(nap.deadline() >= start + Duration::from_millis(5));
///     nap.await;
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    /// The parked syscall, once the timer is filed.
    parked: Option<Suspend>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Sleep {
    /// When this sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            if this.parked.is_none() {
                if Instant::now() >= this.deadline {
                    return Poll::Ready(());
                }
                let call = syscall();
                reactor::current("matou_unix::time::sleep").add_timer(this.deadline, call.uid());
                this.parked = Some(suspend(call));
            }
            let parked = this.parked.as_mut().expect("filed above");
            match Pin::new(parked).poll(cx) {
                Poll::Ready(()) => this.parked = None,
                Poll::Pending => return Poll::Pending,
            }
            // Signalled: the timer expired, or this sleep was moved to
            // another worker (a spurious completion). The deadline decides;
            // before it, the loop files the timer again, on this worker (a
            // fresh syscall is owned here, so it waits).
            if Instant::now() >= this.deadline {
                return Poll::Ready(());
            }
        }
    }
}

/// The error of [`timeout`]: the time ran out first.
///
/// ```
/// use matou_unix::time::timeout;
/// use std::time::Duration;
///
/// matou_unix::run(async {
///     let err = timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
///     assert_eq!(err.unwrap_err().to_string(), "deadline has elapsed");
///     // In time, the inner future's value:
///     assert_eq!(timeout(Duration::from_secs(1), async { 5 }).await, Ok(5));
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// Runs `future` for at most `duration`.
///
/// The returned future is `Send` when `future` is; moved to another worker,
/// its timer follows it (see [`Sleep`]).
///
/// The race happens inside the calling task: `future` is polled first, so one
/// that is ready at once wins even with a zero duration. When the time runs out
/// `future` is dropped, so its destructors run (and the I/O or timers it was
/// parked on are forgotten) before `timeout` returns `Err(Elapsed)`.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    timeout_at(
        Instant::now()
            .checked_add(duration)
            .unwrap_or_else(|| far_future(Instant::now())),
        future,
    )
    .await
}

/// Like [`timeout`], with an absolute deadline.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    let mut timer = sleep_until(deadline);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
    // `future` is dropped here, before the result reaches the caller.
}

/// A clock that ticks every `period`; the first tick completes at once.
///
/// # Panics
/// When `period` is zero.
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Like [`interval`], with the first tick at `start`.
///
/// # Panics
/// When `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        period > Duration::ZERO,
        "matou_unix::time::interval: the period must be positive"
    );
    Interval {
        next: start,
        period,
    }
}

/// See [`interval`]. Ticks stay on the grid `start + k * period`; when a tick
/// is late by more than a period, the missed ones are skipped rather than
/// delivered in a burst.
///
/// ```
/// use matou_unix::time::interval;
/// use std::time::Duration;
///
/// matou_unix::run(async {
///     let mut every = interval(Duration::from_millis(2));
///     let first = every.tick().await;
///     let second = every.tick().await;
///     assert_eq!(second - first, every.period()); // on the grid
/// });
/// ```
#[derive(Debug)]
pub struct Interval {
    next: Instant,
    period: Duration,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        let at = self.next;
        sleep_until(at).await;
        let now = Instant::now();
        let mut next = at + self.period;
        if next <= now {
            // Skip the ticks that were missed, staying on the grid.
            let behind = now.duration_since(at).as_nanos() / self.period.as_nanos();
            let periods = u32::try_from(behind + 1).unwrap_or(u32::MAX);
            next = at + self.period.saturating_mul(periods);
        }
        self.next = next;
        at
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}
