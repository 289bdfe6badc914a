//! Waiting on several promises: `await_all`, `await_one`, `await_first`,
//! `both`; and, inside one task, on the first of two futures: `race`.
//!
//! All of the promise combinators keep Miou's rule that a task is a resource:
//! `await_one` hands back the promises it did not consume, `await_first`
//! cancels them (and waits until they have terminated) before it returns.
//! `race` involves no task at all: it polls two futures of the calling task.

use crate::error::Error;
use crate::promise::Promise;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

/// Awaits every promise, in input order, without short-circuit: one failure
/// does not stop the others from being awaited.
///
/// Dropped midway, it abandons every promise it still holds (see
/// [`Promise`]'s rules): they are cancelled, not forgotten.
pub async fn await_all<T>(promises: Vec<Promise<T>>) -> Vec<Result<T, Error>> {
    for p in &promises {
        p.mark_awaited();
    }
    let mut results = Vec::with_capacity(promises.len());
    for p in promises {
        results.push(p.await);
    }
    results
}

/// Waits for the first promise to finish and returns its result with the
/// promises that remain (still running; they must be awaited or cancelled).
///
/// When several have finished already, one that succeeded is preferred, and
/// the choice among equals is random (seeded per worker), as in Miou: no
/// position in the input is privileged. O(n) per wake-up for n promises.
///
/// Dropped before it returns, it abandons every promise it holds (they are
/// cancelled, see [`Promise`]).
///
/// # Panics
/// When `promises` is empty.
pub async fn await_one<T>(mut promises: Vec<Promise<T>>) -> (Result<T, Error>, Vec<Promise<T>>) {
    assert!(!promises.is_empty(), "await_one needs at least one promise");
    for p in &promises {
        p.mark_awaited();
    }
    let (index, result) = poll_fn(|cx| {
        if let Some(i) = pick_ready(&promises) {
            if let Poll::Ready(r) = Pin::new(&mut promises[i]).poll(cx) {
                return Poll::Ready((i, r));
            }
        }
        for (i, p) in promises.iter_mut().enumerate() {
            // A child may end between the scan and here: then it wins.
            if let Poll::Ready(r) = Pin::new(p).poll(cx) {
                return Poll::Ready((i, r));
            }
        }
        Poll::Pending
    })
    .await;
    // The winner's promise is spent: its result is `result`.
    drop(promises.remove(index));
    (result, promises)
}

/// The index of a promise that would not wait, preferring successes and
/// choosing uniformly among equals (reservoir sampling, one pass).
fn pick_ready<T>(promises: &[Promise<T>]) -> Option<usize> {
    let mut best: Option<(u8, usize)> = None;
    let mut ties = 0usize;
    for (i, p) in promises.iter().enumerate() {
        let Some(rank) = p.readiness() else { continue };
        match best {
            Some((b, _)) if rank < b => {}
            Some((b, _)) if rank == b => {
                ties += 1;
                if crate::runtime::random_below(ties) == 0 {
                    best = Some((rank, i));
                }
            }
            _ => {
                best = Some((rank, i));
                ties = 1;
            }
        }
    }
    best.map(|(_, i)| i)
}

/// Waits for the first promise to finish, then cancels every other one and
/// waits until they have all terminated; returns the first result.
///
/// # Panics
/// When `promises` is empty.
pub async fn await_first<T>(promises: Vec<Promise<T>>) -> Result<T, Error> {
    let (result, rest) = await_one(promises).await;
    // Request every cancellation first so the subtrees wind down together.
    for p in &rest {
        p.start_cancel();
    }
    for p in &rest {
        // The only error is NotAChild, which the first await already reported.
        let _ = p.cancel().await;
    }
    result
}

/// Awaits both promises (Eio's `Fiber.both`); both always run to the end.
///
/// Dropped midway, it abandons both promises (they are cancelled).
pub async fn both<A, B>(a: Promise<A>, b: Promise<B>) -> (Result<A, Error>, Result<B, Error>) {
    a.mark_awaited();
    b.mark_awaited();
    let ra = a.await;
    let rb = b.await;
    (ra, rb)
}

/// One of two outcomes (see [`race`]).
///
/// ```
/// use matou_core::{race, Either};
/// use std::pin::pin;
///
/// matou_core::run(async {
///     let won = race(pin!(async { 1 }), pin!(async { "b" })).await;
///     assert_eq!(won, Either::Left(1)); // the first wins a tie
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<L, R> {
    /// The first future finished first.
    Left(L),
    /// The second one did.
    Right(R),
}

/// Polls `a` and `b`, both futures of the calling task (no task is made),
/// until one finishes; `a` is polled first, so it wins a tie.
///
/// The other future is left as it was: not polled again, not dropped. Both
/// are taken `Unpin` so that nothing is allocated: pass pinned references
/// (`pin!(fut)`, then `fut.as_mut()`), which also lets the caller keep using
/// the loser, e.g. race one long-lived "stop" signal against each read of a
/// loop.
///
/// ```
/// use matou_core::{race, Either};
/// use std::pin::pin;
///
/// matou_core::run(async {
///     let mut never = pin!(std::future::pending::<()>());
///     match race(never.as_mut(), pin!(async { 7 })).await {
///         Either::Right(v) => assert_eq!(v, 7),
///         Either::Left(()) => unreachable!(),
///     }
/// });
/// ```
pub fn race<A, B>(a: A, b: B) -> Race<A, B>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    Race { a, b }
}

/// The future returned by [`race`].
///
/// It borrows nothing and moves nothing: when it completes, the loser is
/// left as it was (not polled again, not dropped), so a pinned loser can be
/// raced again.
///
/// ```
/// use matou_core::{race, yield_now, Either};
/// use std::pin::pin;
///
/// matou_core::run(async {
///     let mut slow = pin!(async { yield_now().await; "slow" });
///     assert_eq!(race(slow.as_mut(), pin!(async { 0 })).await, Either::Right(0));
///     assert_eq!(slow.await, "slow"); // the loser is intact
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Race<A, B> {
    a: A,
    b: B,
}

impl<A: Future + Unpin, B: Future + Unpin> Future for Race<A, B> {
    type Output = Either<A::Output, B::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = Pin::new(&mut self.a).poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        Pin::new(&mut self.b).poll(cx).map(Either::Right)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{race, Either};
    use std::future::{poll_fn, Future};
    use std::pin::{pin, Pin};
    use std::task::{Context, Poll, Waker};

    fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn race_prefers_the_first_on_a_tie_and_leaves_the_loser_usable() {
        let mut a = pin!(async { 1 });
        let mut b = pin!(async { 2 });
        assert_eq!(
            poll_once(&mut race(a.as_mut(), b.as_mut())),
            Poll::Ready(Either::Left(1))
        );
        // The loser was not polled, nor dropped: it still gives its value.
        assert_eq!(poll_once(&mut b.as_mut()), Poll::Ready(2));

        let mut polls = 0;
        let mut twice = pin!(poll_fn(|_| {
            polls += 1;
            if polls == 2 {
                Poll::Ready("second poll")
            } else {
                Poll::Pending
            }
        }));
        let mut never = pin!(std::future::pending::<()>());
        let mut r = race(never.as_mut(), twice.as_mut());
        assert_eq!(poll_once(&mut r), Poll::Pending);
        assert_eq!(poll_once(&mut r), Poll::Ready(Either::Right("second poll")));
    }
}
