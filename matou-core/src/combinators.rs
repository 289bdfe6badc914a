//! Waiting on several promises: `await_all`, `await_one`, `await_first`, `both`.
//!
//! All of them keep Miou's rule that a task is a resource: `await_one` hands
//! back the promises it did not consume, `await_first` cancels them (and waits
//! until they have terminated) before it returns.

use crate::error::Error;
use crate::promise::Promise;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

/// Awaits every promise, in input order, without short-circuit: one failure
/// does not stop the others from being awaited.
pub async fn await_all<T>(promises: Vec<Promise<T>>) -> Vec<Result<T, Error>> {
    let mut results = Vec::with_capacity(promises.len());
    for p in promises {
        results.push(p.await);
    }
    results
}

/// Waits for the first promise to finish and returns its result with the
/// promises that remain (still running; they must be awaited or cancelled).
/// When several have finished, the earliest in input order wins.
///
/// # Panics
/// When `promises` is empty.
pub async fn await_one<T>(mut promises: Vec<Promise<T>>) -> (Result<T, Error>, Vec<Promise<T>>) {
    assert!(!promises.is_empty(), "await_one needs at least one promise");
    let (index, result) = poll_fn(|cx| {
        for (i, p) in promises.iter_mut().enumerate() {
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
pub async fn both<A, B>(a: Promise<A>, b: Promise<B>) -> (Result<A, Error>, Result<B, Error>) {
    let ra = a.await;
    let rb = b.await;
    (ra, rb)
}
