//! `Mutex` and `Condition` on matou's runtime: between tasks of one worker
//! (`extra_workers(0)`) and across workers (`extra_workers(2)` with `call`),
//! including tasks cancelled while they wait.
//!
//! Across workers, "the task is queued on the primitive" is reached by the
//! task raising a flag just before it awaits, and the test then giving its
//! worker a moment (a short sleep); the assertions hold whatever the timing,
//! the sleep only makes the interesting interleaving the likely one.

use matou_core::sync::{Condition, Mutex};
use matou_core::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Yields until `cond` holds; panics (instead of hanging) after 10 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        yield_now().await;
    }
}

/// Lets the tasks queued on this worker run a few times.
async fn settle() {
    for _ in 0..8 {
        yield_now().await;
    }
}

/// Gives another worker time to reach its await.
fn pause() {
    std::thread::sleep(Duration::from_millis(20));
}

fn one_worker() -> Builder {
    Builder::new().extra_workers(0)
}

fn three_workers() -> Builder {
    Builder::new().extra_workers(2)
}

#[test]
fn mutex_excludes_on_one_worker_and_across_workers() {
    const PER: usize = if cfg!(miri) { 20 } else { 200 };
    one_worker().run(async {
        let m = Arc::new(Mutex::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                spawn(async move {
                    for _ in 0..PER {
                        let mut g = m.lock().await;
                        let v = *g;
                        yield_now().await; // the others queue meanwhile
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for r in await_all(tasks).await {
            r.unwrap();
        }
        assert_eq!(*m.lock().await, 4 * PER);
    });
    three_workers().run(async {
        let m = Arc::new(Mutex::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                call(move || async move {
                    for _ in 0..PER {
                        let mut g = m.lock().await;
                        let v = *g;
                        yield_now().await;
                        *g = v + 1;
                    }
                })
                .unwrap()
            })
            .collect();
        for _ in 0..PER {
            *m.lock().await += 1; // dom0 contends too
        }
        for r in await_all(tasks).await {
            r.unwrap();
        }
        assert_eq!(*m.lock().await, 5 * PER);
    });
}

#[test]
fn waiting_for_a_lock_suspends_the_task_not_the_worker() {
    one_worker().run(async {
        let m = Arc::new(Mutex::new(()));
        let g = m.lock().await;
        let m2 = m.clone();
        let waiter = spawn(async move { drop(m2.lock().await) });
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let other = spawn(async move { r.store(true, SeqCst) });
        settle().await;
        assert!(ran.load(SeqCst), "the worker was blocked by a lock waiter");
        assert!(!waiter.is_finished());
        drop(g);
        waiter.await.unwrap();
        other.await.unwrap();
    });
}

#[test]
fn lock_waiters_are_served_in_fifo_order() {
    one_worker().run(async {
        let m = Arc::new(Mutex::new(Vec::new()));
        let g = m.lock().await;
        let mut tasks = Vec::new();
        for i in 0..5 {
            let m = m.clone();
            tasks.push(spawn(async move { m.lock().await.push(i) }));
            settle().await; // task i queues before task i + 1 exists
        }
        drop(g);
        for r in await_all(tasks).await {
            r.unwrap();
        }
        assert_eq!(*m.lock().await, [0, 1, 2, 3, 4]);
    });
}

/// A task waiting for the lock, holder and waiter on one worker.
async fn cancel_lock_waiter_one_worker(granted_first: bool) {
    let m = Arc::new(Mutex::new(0));
    let g = m.lock().await;
    let m2 = m.clone();
    let waiter = spawn(async move { *m2.lock().await += 1 });
    settle().await; // the waiter is queued
    if granted_first {
        // Hand the lock to the waiter; it is woken but has not run yet, and
        // the cancellation drops it before it runs.
        drop(g);
        waiter.cancel().await.unwrap();
    } else {
        waiter.cancel().await.unwrap();
        drop(g);
    }
    let g = m.try_lock().expect("the cancelled waiter holds the lock");
    assert_eq!(*g, 0, "the cancelled waiter ran its critical section");
}

#[test]
fn cancelled_lock_waiter_never_holds_the_lock_one_worker() {
    one_worker().run(cancel_lock_waiter_one_worker(false));
    one_worker().run(cancel_lock_waiter_one_worker(true));
}

#[test]
fn cancelled_lock_waiter_never_holds_the_lock_across_workers() {
    three_workers().run(async {
        // Queued on another worker, cancelled while dom0 holds the lock.
        let m = Arc::new(Mutex::new(0));
        let g = m.lock().await;
        let queued = Arc::new(AtomicBool::new(false));
        let (m2, q2) = (m.clone(), queued.clone());
        let waiter = call(move || async move {
            q2.store(true, SeqCst);
            *m2.lock().await += 1;
        })
        .unwrap();
        until("waiter queued", || queued.load(SeqCst)).await;
        pause();
        waiter.cancel().await.unwrap();
        drop(g);
        assert_eq!(*m.try_lock().expect("lock held by a cancelled task"), 0);

        // The unlock races the cancellation: the waiter may get the lock and
        // finish, or be dropped before or after the hand-off; in every case
        // the lock ends up free.
        for _ in 0..if cfg!(miri) { 5 } else { 50 } {
            let g = m.lock().await;
            let (m2, q2) = (m.clone(), queued.clone());
            queued.store(false, SeqCst);
            let waiter = call(move || async move {
                q2.store(true, SeqCst);
                *m2.lock().await += 1;
            })
            .unwrap();
            until("waiter queued", || queued.load(SeqCst)).await;
            drop(g);
            waiter.cancel().await.unwrap();
            assert!(m.try_lock().is_some(), "lock held by a cancelled task");
        }
    });
}

#[test]
fn condition_wakes_a_waiter_on_another_worker() {
    three_workers().run(async {
        let s = Arc::new((Mutex::new(Vec::new()), Condition::new()));
        let s2 = s.clone();
        let consumer = call(move || async move {
            let (m, c) = (&s2.0, &s2.1);
            let mut got = Vec::new();
            let mut q = m.lock().await;
            while got.len() < 100 {
                while q.is_empty() {
                    q = c.wait(q).await;
                }
                got.append(&mut q);
            }
            got
        })
        .unwrap();
        for i in 0..100 {
            s.0.lock().await.push(i);
            s.1.signal();
            if i % 10 == 0 {
                yield_now().await;
            }
        }
        assert_eq!(consumer.await.unwrap(), (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn broadcast_wakes_every_waiter() {
    for shape in [0, 2] {
        Builder::new().extra_workers(shape).run(async move {
            let s = Arc::new((Mutex::new(false), Condition::new()));
            let queued = Arc::new(AtomicUsize::new(0));
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let (s, queued) = (s.clone(), queued.clone());
                    let body = move || async move {
                        let mut go = s.0.lock().await;
                        queued.fetch_add(1, SeqCst);
                        while !*go {
                            go = s.1.wait(go).await;
                        }
                    };
                    if shape == 0 {
                        spawn(body())
                    } else {
                        call(body).unwrap()
                    }
                })
                .collect();
            until("all waiting", || queued.load(SeqCst) == 3).await;
            *s.0.lock().await = true; // every waiter is queued once we hold it
            s.1.broadcast();
            for r in await_all(waiters).await {
                r.unwrap();
            }
        });
    }
}

/// Waiters `a` then `b` on the condition; one `signal` picks `a`, which is
/// cancelled before it can return: `b` must get the signal.
async fn cancelled_signalled_waiter(across: bool, hold_mutex: bool) {
    let s = Arc::new((Mutex::new(()), Condition::new()));
    let woke = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let queued = Arc::new(AtomicUsize::new(0));
    let mut ps = Vec::new();
    for i in 0..2 {
        let (s2, woke, q2) = (s.clone(), woke.clone(), queued.clone());
        let body = move || async move {
            let g = s2.0.lock().await;
            q2.fetch_add(1, SeqCst);
            let _g = s2.1.wait(g).await;
            woke[i].store(true, SeqCst);
        };
        ps.push(if across {
            call(body).unwrap()
        } else {
            spawn(body())
        });
        // `a` queues on the condition before `b` exists.
        until("waiter queued", || queued.load(SeqCst) == i + 1).await;
        drop(s.0.lock().await); // the waiter released the mutex: it is queued
    }
    let b = ps.pop().unwrap();
    let a = ps.pop().unwrap();
    let held = if hold_mutex {
        Some(s.0.lock().await) // `a` cannot re-take it, so cannot return
    } else {
        None
    };
    s.1.signal();
    a.cancel().await.unwrap();
    drop(held);
    assert!(!woke[0].load(SeqCst), "the cancelled waiter returned");
    until("the signal reaches b", || woke[1].load(SeqCst)).await;
    b.await.unwrap();
}

#[test]
fn cancelled_condition_waiter_does_not_swallow_a_signal_one_worker() {
    one_worker().run(cancelled_signalled_waiter(false, false));
    one_worker().run(cancelled_signalled_waiter(false, true));
}

#[test]
fn cancelled_condition_waiter_does_not_swallow_a_signal_across_workers() {
    three_workers().run(cancelled_signalled_waiter(true, true));
}
