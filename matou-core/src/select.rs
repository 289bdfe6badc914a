//! Waiting inside one task on any number of futures: [`race_all`] (same
//! output type, any count), and the [`select!`](crate::select!),
//! [`race!`](crate::race!) and [`join!`](crate::join!) macros (mixed types, a
//! fixed list). No task is made and no future need be `Unpin`.
//!
//! Invariants, the same for all four:
//! - every future is polled only by the calling task, in input order on each
//!   wake-up, so the earliest ready input wins a tie (the order is biased, on
//!   purpose: it is the one documented and tested);
//! - a future is never polled again once it has returned `Ready`;
//! - when a race ends, every loser is dropped *before* the winner's value is
//!   handed back (before a `select!` arm's body runs), so what a loser holds
//!   (a lock guard, a promise, a registration) is released at once;
//! - dropping the enclosing future while it waits drops every input.
//!
//! The cancel safety of a whole race is the one of its inputs: a loser that
//! had made progress (bytes read into its own buffer) loses it when dropped.
//! To keep a loser, race a `&mut` of a pinned future that lives outside the
//! race (`fut.as_mut()`): only that borrow is dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Polls every future of `futures` (same output type, any number) until one
/// finishes; returns its index in input order and its value. The others are
/// dropped before it returns (see the module's rules); with an empty input it
/// waits forever.
///
/// One allocation for the whole set; inputs need not be `Unpin`.
///
/// ```
/// use matou_core::race_all;
///
/// matou_core::run(async {
///     let slow = |n| async move {
///         for _ in 0..n {
///             matou_core::yield_now().await;
///         }
///         n
///     };
///     let (index, value) = race_all([slow(5), slow(1), slow(3)]).await;
///     assert_eq!((index, value), (1, 1));
/// });
/// ```
pub fn race_all<I>(futures: I) -> RaceAll<I::Item>
where
    I: IntoIterator,
    I::Item: Future,
{
    RaceAll {
        futures: Some(futures.into_iter().collect::<Box<[_]>>().into()),
    }
}

/// The future returned by [`race_all`].
///
/// `Unpin` whatever its inputs (they are pinned in their own allocation), so
/// it can be raced by `&mut` and kept:
///
/// ```
/// use matou_core::race_all;
///
/// matou_core::run(async {
///     let mut race = race_all(vec![std::future::ready(3)]);
///     assert_eq!((&mut race).await, (0, 3));
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct RaceAll<F> {
    /// `None` once a winner was found (the losers are dropped then).
    futures: Option<Pin<Box<[F]>>>,
}

impl<F> std::fmt::Debug for RaceAll<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaceAll")
            .field("len", &self.futures.as_ref().map(|fs| fs.len()))
            .finish()
    }
}

// The inputs are pinned in their own allocation; `RaceAll` itself may move.
impl<F> Unpin for RaceAll<F> {}

impl<F: Future> Future for RaceAll<F> {
    type Output = (usize, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let futures = self
            .futures
            .as_mut()
            .expect("RaceAll polled after it returned");
        let len = futures.len();
        for i in 0..len {
            // SAFETY: the slice is pinned (`Pin<Box<[F]>>`) and never moved:
            // each element is projected in place, and the box is only ever
            // dropped whole.
            let fut = unsafe { futures.as_mut().map_unchecked_mut(|fs| &mut fs[i]) };
            if let Poll::Ready(v) = fut.poll(cx) {
                self.futures = None;
                return Poll::Ready((i, v));
            }
        }
        Poll::Pending
    }
}

/// Waits inside the current task for the first of several futures, of any
/// types, then runs that branch's body with its value; the value of the
/// `select!` is the body's. Written `pattern = future => body`, the pattern
/// irrefutable (a binding, `_`, a tuple).
///
/// Branches are polled in the order written (the first ready one wins a
/// tie). The losers are dropped before the body runs, so a body may freely
/// `.await`, `return`, `break` or use `?` of the enclosing function. To keep a
/// loser across iterations of a loop (a "stop" signal, a long-lived timer),
/// pin it outside and pass `fut.as_mut()`: only the borrow is dropped.
///
/// Cancel safety: dropping the `select!` while it waits drops every branch's
/// future; it loses what those futures would lose (a channel receive loses
/// nothing, see [`sync::Receiver::recv`](crate::sync::Receiver::recv)).
///
/// ```
/// use matou_core::{select, sync, yield_now};
/// use std::pin::pin;
///
/// matou_core::run(async {
///     let (tx, rx) = sync::channel::<u32>(4);
///     let mut stop = pin!(async {
///         for _ in 0..3 {
///             yield_now().await;
///         }
///     });
///     tx.send(1).await.unwrap();
///     tx.send(2).await.unwrap();
///     let mut got = Vec::new();
///     loop {
///         // `stop` survives each round; a losing `recv` loses no value.
///         let more = select! {
///             v = rx.recv() => { got.push(v.unwrap()); true },
///             () = stop.as_mut() => false,
///         };
///         if !more {
///             break;
///         }
///     }
///     assert_eq!(got, [1, 2]);
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($($pat:pat = $fut:expr => $body:expr),+ $(,)?) => {
        $crate::__select_branches!(@select [] $($pat = $fut => $body,)+)
    };
}

/// Waits inside the current task for the first of several futures with the
/// same output type and gives `(index, value)`, the index in the order
/// written. Like [`race_all`] for a fixed list, with no allocation; the
/// losers are dropped before it returns (see [`select!`](crate::select!) for
/// the rules and cancel safety).
///
/// ```
/// use matou_core::{race, yield_now};
///
/// matou_core::run(async {
///     let (i, v) = race!(
///         async { yield_now().await; "slow" },
///         async { "quick" },
///     );
///     assert_eq!((i, v), (1, "quick"));
/// });
/// ```
#[macro_export]
macro_rules! race {
    ($($fut:expr),+ $(,)?) => {
        $crate::__select_branches!(@race [] (0usize) $($fut,)+)
    };
}

/// Runs several futures, of any types, concurrently inside the current task
/// and gives all their values as a tuple, in the order written, once every
/// one has finished.
///
/// Cancel safety: dropping the `join!` while it waits drops every future
/// still running and every value already produced.
///
/// ```
/// use matou_core::{join, yield_now};
///
/// matou_core::run(async {
///     let (a, b) = join!(async { yield_now().await; 1 }, async { "b" });
///     assert_eq!((a, b), (1, "b"));
/// });
/// ```
#[macro_export]
macro_rules! join {
    ($($fut:expr),+ $(,)?) => {
        $crate::__select_branches!(@join [] $($fut,)+)
    };
}

/// Internals of `select!`, `race!` and `join!`. Each recursive step names
/// its branch's future and output slot `fut` and `out`: local names are
/// hygienic per macro expansion, so every step's pair is distinct.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_branches {
    (@select [$($done:tt)*] $pat:pat = $fut:expr => $body:expr, $($rest:tt)*) => {
        $crate::__select_branches!(@select [$($done)* (fut out ($pat) ($fut) ($body))] $($rest)*)
    };
    (@select [$(($f:ident $o:ident ($pat:pat) ($fut:expr) ($body:expr)))+]) => {{
        $( let mut $o = ::core::option::Option::None; )+
        {
            $( let mut $f = ::core::pin::pin!($fut); )+
            ::core::future::poll_fn(|cx| {
                $(
                    if let ::core::task::Poll::Ready(v) =
                        ::core::future::Future::poll($f.as_mut(), cx)
                    {
                        $o = ::core::option::Option::Some(v);
                        return ::core::task::Poll::Ready(());
                    }
                )+
                ::core::task::Poll::Pending
            })
            .await;
            // The losers drop here, before any body runs.
        }
        $( if let ::core::option::Option::Some(v) = $o { let $pat = v; $body } else )+
        { ::core::unreachable!("select! finished without a winner") }
    }};

    (@race [$($done:tt)*] ($index:expr) $fut:expr, $($rest:tt)*) => {
        $crate::__select_branches!(@race [$($done)* (fut ($index) ($fut))] ($index + 1usize) $($rest)*)
    };
    (@race [$(($f:ident ($index:expr) ($fut:expr)))+] ($count:expr)) => {{
        $( let mut $f = ::core::pin::pin!($fut); )+
        ::core::future::poll_fn(|cx| {
            $(
                if let ::core::task::Poll::Ready(v) =
                    ::core::future::Future::poll($f.as_mut(), cx)
                {
                    return ::core::task::Poll::Ready(($index, v));
                }
            )+
            ::core::task::Poll::Pending
        })
        .await
    }};

    (@join [$($done:tt)*] $fut:expr, $($rest:tt)*) => {
        $crate::__select_branches!(@join [$($done)* (fut out ($fut))] $($rest)*)
    };
    (@join [$(($f:ident $o:ident ($fut:expr)))+]) => {{
        $( let mut $f = ::core::pin::pin!($fut); let mut $o = ::core::option::Option::None; )+
        ::core::future::poll_fn(|cx| {
            let mut all_done = true;
            $(
                if $o.is_none() {
                    match ::core::future::Future::poll($f.as_mut(), cx) {
                        ::core::task::Poll::Ready(v) => $o = ::core::option::Option::Some(v),
                        ::core::task::Poll::Pending => all_done = false,
                    }
                }
            )+
            if all_done {
                ::core::task::Poll::Ready(())
            } else {
                ::core::task::Poll::Pending
            }
        })
        .await;
        ( $( $o.expect("join! finished every future"), )+ )
    }};
}
