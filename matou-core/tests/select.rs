//! `race_all`, `select!`, `race!`, `join!`: who wins, that losers are dropped
//! before the winner's body runs, that nothing is polled after `Ready`, and
//! that a pinned loser kept outside survives.

use matou_core::{join, race, race_all, select, yield_now, Builder};
use std::cell::Cell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};

/// Ready after `n` yields; records its drop in `dropped`, and panics if it
/// is polled after it returned.
struct After {
    n: u32,
    value: u32,
    done: bool,
    dropped: Rc<Cell<u32>>,
}

impl Future for After {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        assert!(!self.done, "polled after Ready");
        if self.n == 0 {
            self.done = true;
            return Poll::Ready(self.value);
        }
        self.n -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for After {
    fn drop(&mut self) {
        self.dropped.set(self.dropped.get() + 1);
    }
}

fn after(n: u32, value: u32, dropped: &Rc<Cell<u32>>) -> After {
    After {
        n,
        value,
        done: false,
        dropped: dropped.clone(),
    }
}

fn one_worker<F: Future + 'static>(f: F) -> F::Output {
    Builder::new().extra_workers(0).run(f)
}

#[test]
fn race_all_gives_the_first_to_finish_and_drops_the_losers_at_once() {
    one_worker(async {
        let dropped = Rc::new(Cell::new(0));
        let inputs: Vec<_> = [4, 1, 2, 9]
            .into_iter()
            .enumerate()
            .map(|(i, n)| after(n, i as u32 * 10, &dropped))
            .collect();
        let mut race = race_all(inputs);
        let (index, value) = (&mut race).await;
        assert_eq!((index, value), (1, 10));
        assert_eq!(dropped.get(), 4, "winner and losers dropped on return");
        drop(race);

        // A tie goes to the earliest input.
        let (index, _) = race_all([after(0, 1, &dropped), after(0, 2, &dropped)]).await;
        assert_eq!(index, 0);
    });
}

#[test]
fn race_macro_mixes_no_unpin_futures_and_ties_go_first() {
    one_worker(async {
        let (i, v) = race!(
            async {
                yield_now().await;
                yield_now().await;
                "slow"
            },
            async {
                yield_now().await;
                "quick"
            },
            std::future::pending(),
        );
        assert_eq!((i, v), (1, "quick"));
        let (i, v) = race!(async { 1 }, async { 2 });
        assert_eq!((i, v), (0, 1));
    });
}

#[test]
fn select_drops_losers_before_the_body_and_keeps_a_pinned_loser() {
    one_worker(async {
        let dropped = Rc::new(Cell::new(0));
        let mut stop = pin!(after(5, 99, &dropped));
        let mut rounds = 0;
        let ended_with = loop {
            let d = dropped.clone();
            let out = select! {
                v = after(1, rounds, &dropped) => {
                    // The `stop` borrow and nothing else was the loser.
                    assert_eq!(d.get(), rounds + 1, "the winner is dropped before the body");
                    yield_now().await; // a body may await
                    v
                },
                v = stop.as_mut() => break v,
            };
            assert_eq!(out, rounds);
            rounds += 1;
        };
        // `stop` was polled once per round and kept its countdown (5 yields)
        // across them, then won the sixth.
        assert_eq!(ended_with, 99);
        assert_eq!(rounds, 5);
        assert_eq!(
            dropped.get(),
            6,
            "the sixth round's future lost and was dropped"
        );
    });
}

#[test]
fn select_patterns_and_early_return() {
    one_worker(async {
        let r: Result<u32, String> = async {
            let v: u32 = select! {
                r = async { Err::<u32, String>("bad".into()) } => r?,
                _ = std::future::pending::<()>() => 0,
            };
            Ok(v)
        }
        .await;
        let (x, y) = select! {
            (a, b) = async { (1u32, 2u32) } => (b, a),
            _ = std::future::pending::<()>() => (0, 0),
        };
        assert_eq!((x, y), (2, 1), "tuple patterns bind");
        assert_eq!(
            r.unwrap_err(),
            "bad",
            "`?` in a body leaves the enclosing fn"
        );
    });
}

#[test]
fn join_waits_for_all_and_polls_none_after_ready() {
    one_worker(async {
        let dropped = Rc::new(Cell::new(0));
        let (a, b, c) = join!(
            after(3, 1, &dropped),
            async { "two" },
            after(1, 3, &dropped)
        );
        assert_eq!((a, b, c), (1, "two", 3));
        assert_eq!(dropped.get(), 2);
    });
}
