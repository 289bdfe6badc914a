//! Timers: sleep, sleep_until, timeout, interval, cancellation, many timers.

mod common;

use common::{run, WORKERS};
use matou_unix::time::{interval, sleep, sleep_until, timeout, Elapsed};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[test]
fn sleep_waits_at_least_its_duration() {
    for extra in WORKERS {
        let took = run("sleep", extra, async {
            let t0 = Instant::now();
            sleep(Duration::from_millis(50)).await;
            t0.elapsed()
        });
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}

#[test]
fn sleeps_run_concurrently() {
    // The sleepers tutorial's program: two sleeps of 100 and 200 ms in two
    // tasks take about 200 ms, not 300.
    let took = run("sleepers", 0, async {
        let t0 = Instant::now();
        let a = matou_core::spawn(sleep(Duration::from_millis(100)));
        let b = matou_core::spawn(sleep(Duration::from_millis(200)));
        for r in matou_core::await_all(vec![a, b]).await {
            r.unwrap();
        }
        t0.elapsed()
    });
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(300),
        "{took:?}"
    );
}

#[test]
fn sleep_until_a_past_instant_is_immediate() {
    run("sleep_until_past", 0, async {
        let t0 = Instant::now();
        sleep_until(t0).await;
        sleep(Duration::ZERO).await;
        assert!(t0.elapsed() < Duration::from_millis(50));
    });
}

#[test]
fn sleepers_wake_in_deadline_order_and_never_early() {
    // Many tasks with scattered deadlines: each wakes at or after its own.
    let n = 2000;
    let late = run("many_sleepers", 0, async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let deadline = start + Duration::from_micros((i * 7919 % 150_000) as u64);
                matou_core::spawn(async move {
                    sleep_until(deadline).await;
                    Instant::now() >= deadline
                })
            })
            .collect();
        matou_core::await_all(tasks)
            .await
            .into_iter()
            .filter(|r| !r.as_ref().unwrap())
            .count()
    });
    assert_eq!(late, 0, "some sleeper woke before its deadline");
}

#[test]
fn timeout_returns_the_value_when_in_time() {
    for extra in WORKERS {
        let r = run("timeout_ok", extra, async {
            timeout(Duration::from_secs(5), async {
                sleep(Duration::from_millis(10)).await;
                42
            })
            .await
        });
        assert_eq!(r, Ok(42));
    }
}

#[test]
fn a_ready_future_wins_even_with_a_zero_timeout() {
    let r = run("timeout_zero", 0, async {
        timeout(Duration::ZERO, async { 7 }).await
    });
    assert_eq!(r, Ok(7));
}

struct SetOnDrop(Rc<Cell<bool>>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn timeout_drops_the_inner_future_before_returning() {
    for extra in WORKERS {
        let (r, dropped, took) = run("timeout_elapsed", extra, async {
            let dropped = Rc::new(Cell::new(false));
            let guard = SetOnDrop(dropped.clone());
            let t0 = Instant::now();
            let r = timeout(Duration::from_millis(30), async move {
                let _g = guard;
                sleep(Duration::from_secs(30)).await;
            })
            .await;
            (r, dropped.get(), t0.elapsed())
        });
        assert_eq!(r, Err(Elapsed::from_test()));
        assert!(dropped, "the inner future's destructor must have run");
        assert!(
            took >= Duration::from_millis(30) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
}

/// `Elapsed` has no public constructor; get one from a real timeout.
trait FromTest {
    fn from_test() -> Self;
}
impl FromTest for Elapsed {
    fn from_test() -> Elapsed {
        matou_unix::run(async {
            timeout(Duration::ZERO, std::future::pending::<()>())
                .await
                .unwrap_err()
        })
    }
}

#[test]
fn interval_ticks_on_its_grid() {
    let (ticks, seen) = run("interval", 0, async {
        let t0 = Instant::now();
        let mut iv = interval(Duration::from_millis(20));
        let (mut at, mut seen) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let scheduled = iv.tick().await;
            let now = Instant::now();
            assert!(now >= scheduled);
            at.push(scheduled.duration_since(t0));
            seen.push(now.duration_since(t0));
        }
        (at, seen)
    });
    assert!(
        ticks[0] < Duration::from_millis(5),
        "the first tick is immediate: {ticks:?}"
    );
    // On the grid: every step is a whole number of periods (one, unless the
    // machine was so loaded that a tick came a full period late and the next
    // was skipped, as `interval_skips_missed_ticks` pins); a drift from the
    // grid shows as a step that is not a multiple.
    let period = Duration::from_millis(20);
    for w in ticks.windows(2) {
        let step = (w[1] - w[0]).as_nanos();
        assert!(
            step >= period.as_nanos() && step % period.as_nanos() == 0,
            "{ticks:?}"
        );
    }
    // Only missed ticks are skipped: the next tick is the first grid point
    // after the previous one was seen, so never more than a period after it
    // (however late a loaded machine delivered it).
    for i in 1..ticks.len() {
        assert!(
            ticks[i] <= seen[i - 1] + period,
            "tick {i} skipped one it could still keep: ticks {ticks:?}, seen {seen:?}"
        );
    }
}

#[test]
fn interval_skips_missed_ticks() {
    let gap = run("interval_skip", 0, async {
        let mut iv = interval(Duration::from_millis(10));
        iv.tick().await;
        // Block the worker for 5 periods.
        std::thread::sleep(Duration::from_millis(55));
        let a = iv.tick().await; // late: delivered at once
        let b = iv.tick().await; // the next one is on the grid after now
        b - a
    });
    assert!(
        gap >= Duration::from_millis(50),
        "missed ticks must not burst: {gap:?}"
    );
}

#[test]
fn cancelling_a_sleeping_task_is_prompt_on_any_worker() {
    for extra in WORKERS {
        let took = run("cancel_sleep", extra, async {
            let p = if matou_core::worker_count() > 1 {
                matou_core::call(|| sleep(Duration::from_secs(30))).unwrap()
            } else {
                matou_core::spawn(sleep(Duration::from_secs(30)))
            };
            sleep(Duration::from_millis(20)).await;
            let t0 = Instant::now();
            p.cancel().await.unwrap();
            t0.elapsed()
        });
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}

#[test]
fn many_pending_timers_cost_in_proportion() {
    // 200k timers filed at once by one task (each a heap entry and a table
    // entry, no thread, no fd), then all cancelled, then one more sleep
    // proves the worker still times correctly. The debug build keeps this
    // under a few seconds.
    let n = 200_000;
    run("many_timers", 0, async move {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut sleeps: Vec<_> = (0..n).map(|_| Box::pin(sleep_until(far))).collect();
        std::future::poll_fn(|cx| {
            for s in &mut sleeps {
                assert!(s.as_mut().poll(cx).is_pending());
            }
            std::task::Poll::Ready(())
        })
        .await;
        drop(sleeps);
        // The cancellations reach the reactor at its next select.
        let t0 = Instant::now();
        sleep(Duration::from_millis(20)).await;
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(20) && took < Duration::from_secs(5),
            "{took:?}"
        );
    });
}

use std::future::Future;
